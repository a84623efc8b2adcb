/* The plan executor: the only C in the container's start path.
 * Python decides everything; this file only performs the steps it is given. */
#ifndef PYRT_EXECUTOR_H
#define PYRT_EXECUTOR_H

#include <stddef.h>

/* Step ops: the one list. Python takes the numbers from the compiled module (lib.OP_*,
 * cffi reads this header), so a plan op "mount" is OP_MOUNT and nothing is numbered twice. */
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
    OP_FORK_INIT, OP_DETACH_OLD_ROOT,
    /* not a plan op: the stub's one step when it runs a runtime hook in a container's
     * namespaces (pyrt_setns_run) */
    OP_NS_HOOK
};

/* Message kinds on the sync socket. */
enum {
    MSG_PID = 1, MSG_SYNC = 2, MSG_READY = 3, MSG_ERROR = 4, MSG_FD = 5,
    MSG_GO = 10, MSG_ABORT = 11
};

/* One struct per op, named as the plan's keys (docs/ARCHITECTURE.md, "The plan"). Paths in
 * container steps are resolved inside the rootfs. An fd field is -1 when there is none.
 * Ops without arguments (setsid, ready, ...) have no member. */
struct pyrt_sync { const char *tag; };
struct pyrt_flags { const char *target; unsigned long flags; };   /* root_propagation,
                                                                      propagation, unshare */
struct pyrt_bind_rootfs {
    const char *path;
    const char *parent;      /* made private first (pivot_root needs it), or NULL */
    int from_cwd;            /* clone the tree at the cwd, no path lookup */
};
struct pyrt_mount {
    const char *source, *target, *fstype, *data;
    unsigned long flags;
    int mkdir;               /* create the target: 0 no, 1 a directory, 2 a file */
    int no_symlinks;         /* no symlink anywhere on the target's path */
    unsigned long long fs_magic;  /* the target must be this filesystem after mounting */
    int mount_fd;            /* a detached mount the runtime made (idmapped): moved in */
    int fsmount;             /* made by fsopen/fsmount, attached by fd */
    unsigned long long fsmount_attrs;  /* MOUNT_ATTR_* of that mount */
    char *const *fs_options; /* its fsconfig options, "key=value" or "flag" */
    unsigned long long fallback_errnos;  /* bit per errno that runs the fallback */
    int fallback_n;          /* the next n steps: run only when this mount failed so */};
struct pyrt_remount { const char *target; unsigned long flags; int keep; };
struct pyrt_setattr {
    const char *target;
    unsigned long long attr_set, attr_clr, propagation;
    int recursive;
    int userns_fd;
};
struct pyrt_mknod {
    const char *target;
    unsigned int mode, major, minor;
    unsigned int uid, gid;
};
struct pyrt_bind_device { const char *source, *target; };
struct pyrt_symlink { const char *target, *linkname; };  /* like ln -s target linkname */
struct pyrt_path { const char *path; };                   /* mkdir, chdir, readonly */
struct pyrt_mask { const char *path; const char *tmpfs_data; };
struct pyrt_pivot_root { int keep_old_root; };
struct pyrt_chroot { int plain; };
struct pyrt_name { const char *name; };       /* sethostname, setdomainname, keyring */
struct pyrt_write { const char *path, *data; unsigned long long fs_magic; };
struct pyrt_rlimit { int resource; unsigned long long soft, hard; };
struct pyrt_close_fds { const int *pass_fds; int npass; };
struct pyrt_identity {
    long uid, gid;
    char *const *groups;     /* decimal gids */
    unsigned long long bounding;
    int last_cap;
    int setgroups_denied;
};
struct pyrt_caps {
    unsigned long long effective, permitted, inheritable, ambient;
    int last_cap;
};
struct pyrt_umask { unsigned int mask; };
struct pyrt_seccomp { const void *program; size_t len; unsigned long flags; };
struct pyrt_exec { char *const *args; char *const *env; };   /* lookup, exec */
struct pyrt_console { int rows, cols; int dev_console; };
struct pyrt_dup_stdio {
    int fds[3];              /* the runtime's pipes to put on 0, 1, 2; -1: keep */
    unsigned int uid;        /* owner for the fds in chown */
    int chown;               /* bit mask of 0-2 */
};
struct pyrt_setns { int fd; int nstype; };
/* A startContainer hook, run by the init. Python decides the policy: the timeout, how much
 * output the message keeps, the kill scope and the message's prefix. */
struct pyrt_hook {
    const char *path;
    char *const *args;
    char *const *env;        /* NULL: the init's environment */
    const char *state_head, *state_tail;  /* stdin: head + the init's pid + tail */
    const char *error_prefix;  /* "error running hook #N: startContainer hook PATH" */
    long timeout;            /* seconds; 0: none */
    long output_cap;         /* bytes of stdout and of stderr kept for the message */
    int kill_group;          /* the hook leads its own process group, killed on failure */
};
struct pyrt_sched {
    unsigned int policy;
    unsigned long long flags;
    int nice;
    unsigned int priority;
    unsigned long long runtime, deadline, period;
};
struct pyrt_value { long value; };            /* ioprio, personality */
struct pyrt_cpumask {                         /* mempolicy (nodes), affinity (CPUs) */
    int mode;
    const void *mask;        /* little-endian unsigned longs; NULL: see the C side */
    size_t len;
};
struct pyrt_ns_hook {        /* OP_NS_HOOK */
    const char *path, *cwd;
    char *const *args;
    char *const *env;
    int stdin_fd, stdout_fd, stderr_fd;
    int err_fd;              /* the exec's errno goes here */
};

struct pyrt_step {
    int op;
    /* After the wait for start the sync socket has no reader: the head of the one line a
     * failure of this step gives then (NULL before that wait). The init writes it, with
     * the error, into the exec fifo, which `start` reads to EOF. */
    const char *late_error;
    union {
        struct pyrt_sync sync;
        struct pyrt_flags flags;
        struct pyrt_bind_rootfs bind_rootfs;
        struct pyrt_mount mount;
        struct pyrt_remount remount;
        struct pyrt_setattr setattr;
        struct pyrt_mknod mknod;
        struct pyrt_bind_device bind_device;
        struct pyrt_symlink symlink;
        struct pyrt_path path;
        struct pyrt_mask mask;
        struct pyrt_pivot_root pivot_root;
        struct pyrt_chroot chroot;
        struct pyrt_name name;
        struct pyrt_write write;
        struct pyrt_rlimit rlimit;
        struct pyrt_close_fds close_fds;
        struct pyrt_identity identity;
        struct pyrt_caps caps;
        struct pyrt_umask umask;
        struct pyrt_seccomp seccomp;
        struct pyrt_exec exec;
        struct pyrt_console console;
        struct pyrt_dup_stdio dup_stdio;
        struct pyrt_setns setns;
        struct pyrt_hook hook;
        struct pyrt_sched sched;
        struct pyrt_value value;
        struct pyrt_cpumask cpumask;
        struct pyrt_ns_hook ns_hook;
    } u;
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
    int ncgroup_join;
    const int *cgroup_join_fds;  /* cgroup v1 `tasks` files (O_WRONLY): the stub writes "0"
                                    to each, moving itself, before it clones the init */
    int cgroup_join_errno;  /* out: 0 the stub joined every one; else the first errno (it
                               stopped there, the runtime moves the init) */
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
