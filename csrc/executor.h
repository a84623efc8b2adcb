/* The plan executor: the only C in the container's start path.
 * Python decides everything; this file only performs the steps it is given. */
#ifndef PYRT_EXECUTOR_H
#define PYRT_EXECUTOR_H

#include <stddef.h>

/* Step ops; keep in sync with pyruntime/executor.py (OPS). */
enum {
    OP_SYNC = 1, OP_ROOT_PROPAGATION, OP_BIND_ROOTFS, OP_MOUNT, OP_REMOUNT, OP_PROPAGATION,
    OP_SETATTR, OP_MKNOD, OP_BIND_DEVICE, OP_SYMLINK, OP_PIVOT_ROOT, OP_CHROOT, OP_MASK,
    OP_READONLY, OP_REMOUNT_ROOT_RO, OP_SETHOSTNAME, OP_SETDOMAINNAME, OP_WRITE, OP_RLIMIT,
    OP_KEYRING, OP_SETSID, OP_CLOSE_FDS, OP_IDENTITY, OP_CHDIR, OP_CAPS, OP_UMASK,
    OP_NO_NEW_PRIVS, OP_SECCOMP, OP_LOOKUP, OP_READY, OP_WAIT_START, OP_EXEC, OP_BECOME_ROOT,
    OP_CONSOLE, OP_DUP_STDIO, OP_SETNS, OP_MKDIR, OP_UNSHARE, OP_LOOPBACK_UP, OP_HOOK,
    /* OCI 1.3 process/linux fields */
    OP_SCHED, OP_IOPRIO, OP_MEMPOLICY, OP_PERSONALITY, OP_AFFINITY,
    /* the init of a joined pid namespace: forked there once its root is built */
    OP_FORK_INIT, OP_DETACH_OLD_ROOT
};

/* Message kinds on the sync socket. */
enum {
    MSG_PID = 1, MSG_SYNC = 2, MSG_READY = 3, MSG_ERROR = 4, MSG_FD = 5,
    MSG_GO = 10, MSG_ABORT = 11
};

struct pyrt_step {
    int op;
    unsigned long flags;
    long n1, n2, n3, n4;
    const char *s1, *s2, *s3, *s4;
    char *const *v1;
    char *const *v2;
    const void *buf;
    size_t buflen;
    unsigned long long m[5];
};

struct pyrt_spawn {
    unsigned long clone_flags;
    int nsteps;
    struct pyrt_step *steps;
    int njoin;
    const int *join_fds;
    const int *join_types;
    int unshare_time;
    const char *timens_offsets;
    int sock;           /* the init's end of the sync socketpair */
    int parent_sock;    /* the runtime's end: closed in the children */
    int fifo_fd;        /* exec fifo, opened O_RDWR by the runtime; -1 when none */
    int force_stage1;   /* unused: every spawn goes through the stub, an intermediate process */
    int keep_dumpable;  /* stay dumpable until the first GO (an unprivileged runtime must
                           still write the uid/gid maps); non-dumpable from the start otherwise */
    int stub_fd;        /* the sealed memfd copy of the init stub, exec'd before anything
                           enters a container namespace */
    int cgroup_fd;      /* the init's cgroup v2 dir (O_PATH): born there by clone3
                           CLONE_INTO_CGROUP, no migration; -1: a plain clone */
    int cgroup_errno;   /* out: 0 born in cgroup_fd; else clone3's errno (a plain clone
                           followed, the runtime moves the init) */
};

struct pyrt_msg {
    int kind;
    int step;
    int err;
    int value;
    char text[512];
};

/* pyrt_spawn's return when the intermediate stage failed: details in pyrt_last_msg() */
#define PYRT_STAGE_ERROR (-1000000)
int pyrt_spawn(struct pyrt_spawn *sp);
void pyrt_last_msg(struct pyrt_msg *out);
int pyrt_recv(int fd, struct pyrt_msg *msg, int *fd_out, int timeout_ms);
int pyrt_send(int fd, int kind, int value);
int pyrt_open_in_root(const char *root, const char *path, int flags);
int pyrt_setns_run(int npaths, const int *fds, const int *types, const char *path,
                   char *const *argv, char *const *envp, int stdin_fd, int stdout_fd,
                   int stderr_fd, const char *cwd, int err_fd, int stub_fd);
int pyrt_stub_open(const char *path);
int pyrt_send_fd(int sock, int fd, const char *name);
int pyrt_recv_fd(int sock);
int pyrt_socketpair(int *fds);
#endif
