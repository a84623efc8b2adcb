/* pyruntime's plan executor.
 *
 * pyrt_spawn() clones the container init (through an intermediate process when namespaces
 * must be joined first) and the init runs the plan's steps in order, never returning to
 * Python. A failing step is reported as (step index, errno, text) over the sync socket;
 * the runtime turns that into the user's message. Every decision was made by Python.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/openat2.h>

#include "executor.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define KEYCTL_SETPERM 5

static int g_sock = -1;
static int g_rootfd = -1;
static const char *g_rootpath;
static char g_exe[PATH_MAX];
static int g_step = -1;
static struct pyrt_msg g_last;
static int g_fell_back;

/* Raw credential syscalls. glibc's wrappers broadcast the change to every thread it
 * knows of and wait for each to acknowledge; a child cloned from a multi-threaded runtime
 * inherits that thread list but not the threads, and would wait forever. The init is
 * single-threaded, so the plain syscalls are exactly right. */
static int sys_setresuid(uid_t u)
{
    return (int)syscall(SYS_setresuid, u, u, u);
}

static int sys_setresgid(gid_t g)
{
    return (int)syscall(SYS_setresgid, g, g, g);
}

static int sys_setgroups(int n, const gid_t *groups)
{
    return (int)syscall(SYS_setgroups, n, groups);
}

/* Go-style (lower-case) error text, as runc prints it. */
static const char *lerr(int e)
{
    static char b[128];
    snprintf(b, sizeof b, "%s", strerror(e));
    if (b[0] >= 'A' && b[0] <= 'Z')
        b[0] += 'a' - 'A';
    return b;
}

/* ---- messaging ---------------------------------------------------------------------- */

static void send_msg(int kind, int step, int err, int value, const char *text)
{
    struct pyrt_msg m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.step = step;
    m.err = err;
    m.value = value;
    if (text)
        snprintf(m.text, sizeof m.text, "%s", text);
    while (send(g_sock, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* sendmsg of one buffer with one fd attached (SCM_RIGHTS) */
static int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
    struct iovec iov = { (void *)buf, len };
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr mh;
    struct cmsghdr *c;
    int r;

    memset(&mh, 0, sizeof mh);
    memset(cbuf, 0, sizeof cbuf);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    while ((r = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return r < 0 ? -errno : 0;
}

static void send_fd_msg(int step, int fd, int value)
{
    struct pyrt_msg m;
    memset(&m, 0, sizeof m);
    m.kind = MSG_FD;
    m.step = step;
    m.value = value;
    send_with_fd(g_sock, &m, sizeof m, fd);
}

static __attribute__((noreturn)) void fail(int err, const char *fmt, ...)
{
    char text[512] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
    }
    send_msg(MSG_ERROR, g_step, err, 0, text);
    _exit(1);
}

static int wait_go(void)
{
    struct pyrt_msg m;
    ssize_t n;
    do {
        n = recv(g_sock, &m, sizeof m, 0);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof m)
        _exit(1);   /* the runtime went away: nobody to report to */
    if (m.kind != MSG_GO)
        _exit(1);
    return 0;
}

/* ---- safe path resolution inside the rootfs ------------------------------------------ */

static int openat2_in_root(int dirfd, const char *path, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* Open (O_PATH) `path` inside the rootfs, creating missing components as directories
 * (and the last one as `kind`: 'd' directory, 'f' file, 0 nothing). Symlinks are resolved
 * as if the rootfs were "/", so nothing can point the runtime outside it; a dangling
 * symlink is followed and its target made inside the rootfs, as runc's SecureJoin does. */
static int resolve_in_root(const char *path, int kind)
{
    char rem[2 * PATH_MAX], cur[PATH_MAX], tmp[2 * PATH_MAX];
    char *p;
    int fd, links = 0;

    while (*path == '/')
        path++;
    if (!*path)
        return openat2_in_root(g_rootfd, ".", O_PATH);
    fd = openat2_in_root(g_rootfd, path, O_PATH);
    if (fd >= 0 || errno != ENOENT || !kind)
        return fd;
    if (strlen(path) >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(rem, sizeof rem, "%s", path);
    cur[0] = 0;
    p = rem;
    for (;;) {
        char comp[NAME_MAX + 1];
        size_t len;
        int dfd, last;
        struct stat st;

        while (*p == '/')
            p++;
        if (!*p)
            break;
        len = strcspn(p, "/");
        if (len > NAME_MAX) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(comp, p, len);
        comp[len] = 0;
        p += len;
        while (*p == '/')
            p++;
        last = !*p;
        if (!strcmp(comp, "."))
            continue;
        if (!strcmp(comp, "..")) {
            char *sl = strrchr(cur, '/');
            if (sl)
                *sl = 0;
            else
                cur[0] = 0;
            continue;
        }
        dfd = openat2_in_root(g_rootfd, cur[0] ? cur : ".", O_PATH | O_DIRECTORY);
        if (dfd < 0)
            return -1;
        if (fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISLNK(st.st_mode)) {
                char target[PATH_MAX];
                ssize_t n;
                if (++links > 40) {
                    close(dfd);
                    errno = ELOOP;
                    return -1;
                }
                n = readlinkat(dfd, comp, target, sizeof target - 1);
                close(dfd);
                if (n < 0)
                    return -1;
                target[n] = 0;
                if (target[0] == '/')
                    cur[0] = 0;
                snprintf(tmp, sizeof tmp, "%s/%s", target, p);
                snprintf(rem, sizeof rem, "%s", tmp);
                p = rem;
                continue;
            }
        } else if (errno == ENOENT) {
            int r;
            if (last && kind == 'f') {
                r = openat(dfd, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (r >= 0)
                    close(r);
            } else {
                r = mkdirat(dfd, comp, 0755);
            }
            if (r < 0 && errno != EEXIST) {
                int e = errno;
                close(dfd);
                errno = e;
                return -1;
            }
        } else {
            int e = errno;
            close(dfd);
            errno = e;
            return -1;
        }
        close(dfd);
        if (strlen(cur) + len + 2 >= sizeof cur) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (cur[0])
            strcat(cur, "/");
        strcat(cur, comp);
    }
    return openat2_in_root(g_rootfd, cur[0] ? cur : ".", O_PATH);
}

static void fdpath(int fd, char *out, size_t len)
{
    snprintf(out, len, "/proc/self/fd/%d", fd);
}

/* Flags a remount must keep: in a user namespace they are locked and dropping one fails. */
static unsigned long locked_flags(const char *path)
{
    struct statvfs s;
    unsigned long f = 0;
    if (statvfs(path, &s) < 0)
        return 0;
    if (s.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (s.f_flag & ST_NODEV) f |= MS_NODEV;
    if (s.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (s.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (s.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (s.f_flag & ST_RELATIME) f |= MS_RELATIME;
    if (s.f_flag & ST_RDONLY) f |= MS_RDONLY;
    return f;
}

/* ---- the steps ----------------------------------------------------------------------- */

/* Open `path` in the root without following any symlink (ELOOP if one is there). */
static int open_no_symlinks(const char *path, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return syscall(SYS_openat2, g_rootfd, path, &how, sizeof how);
}

/* After a mount with a required type (proc, sysfs): the path must reach that filesystem
 * with no symlink on the way, so later writes to it cannot be redirected. */
static void check_mounted_fs(struct pyrt_step *s)
{
    struct statfs sf;
    int fd;
    if (!s->m[0] && !s->m[1])
        return;
    fd = s->m[1] ? open_no_symlinks(s->s2, O_PATH) : resolve_in_root(s->s2, 0);
    if (fd < 0)
        fail(errno, "%s must be mounted on an ordinary directory", s->s3 ? s->s3 : s->s1);
    if (s->m[0] && (fstatfs(fd, &sf) < 0 || (unsigned long long)sf.f_type != s->m[0]))
        fail(0, "%s is not a %s filesystem after mounting", s->s2, s->s3 ? s->s3 : "?");
    close(fd);
}

static void do_mount(struct pyrt_step *s)
{
    char target[64];
    int fd;
    if (s->m[1]) {
        /* the destination must not be a symlink (CVE-2019-16884, CVE-2023-28642) */
        fd = open_no_symlinks(s->s2, O_PATH);
        if (fd < 0 && errno == ELOOP)
            fail(0, "filesystem \"%s\" must be mounted on ordinary directory",
                 s->s3 ? s->s3 : s->s1);
        if (fd >= 0)
            close(fd);
    }
    fd = resolve_in_root(s->s2, s->n1 == 1 ? 'd' : s->n1 == 2 ? 'f' : 0);
    if (fd < 0)
        fail(errno, NULL);
    if (s->m[3]) {
        /* a mount the runtime prepared (idmapped): attach it */
        if (syscall(SYS_move_mount, (int)(s->m[3] - 1), "", fd, "",
                    0x00000004 /* MOVE_MOUNT_F_EMPTY_PATH */ | 0x00000040 /* T_EMPTY_PATH */) < 0)
            fail(errno, "move_mount");
        close((int)(s->m[3] - 1));
        close(fd);
        return;
    }
    fdpath(fd, target, sizeof target);
    if (mount(s->s1 && *s->s1 ? s->s1 : "none", target, s->s3, s->flags, s->s4) < 0) {
        int e = errno;
        /* the plan's alternative for this mount follows it (e.g. cgroup2 -> bind) */
        if (s->n4 > 0 && e < 64 && (s->n3 & (1L << e))) {
            g_fell_back = 1;
            close(fd);
            return;
        }
        /* sysfs in a new user namespace without a new network namespace cannot be
         * mounted; runc binds the host's /sys read-only instead, so do the same. */
        if (s->n2 && (e == EPERM || e == EBUSY) &&
            mount("/sys", target, NULL, MS_BIND | MS_REC, NULL) == 0) {
            close(fd);
            if (s->m[2]) {
                /* the bind brings the host's submounts (cgroupfs!) along: they get the
                 * mount's ro/nosuid/... too, recursively (CVE-2023-25809) */
                struct mount_attr a;
                int t = resolve_in_root(s->s2, 0);
                if (t < 0)
                    fail(errno, NULL);
                memset(&a, 0, sizeof a);
                a.attr_set = s->m[2];
                if (syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
                    fail(errno, "make the bound /sys read-only");
                close(t);
            }
            check_mounted_fs(s);
            return;
        }
        fail(e, NULL);
    }
    close(fd);
    check_mounted_fs(s);
}

static void do_remount(struct pyrt_step *s)
{
    char target[64];
    int fd = resolve_in_root(s->s2, 0);
    unsigned long keep;
    if (fd < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    keep = locked_flags(target) & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
    if (s->n1) /* only add flags: keep what the mount already has */
        keep |= locked_flags(target);
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | s->flags | keep, NULL) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_propagation(struct pyrt_step *s)
{
    char target[64];
    int fd = resolve_in_root(s->s2, 0);
    if (fd < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    if (mount(NULL, target, NULL, s->flags, NULL) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_setattr(struct pyrt_step *s)
{
    struct mount_attr a;
    int fd = resolve_in_root(s->s2, 0);
    if (fd < 0)
        fail(errno, NULL);
    memset(&a, 0, sizeof a);
    a.attr_set = s->m[0];
    a.attr_clr = s->m[1];
    a.propagation = s->m[2];
    a.userns_fd = s->n2 > 0 ? (unsigned long long)s->n2 : 0;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (s->n1 ? AT_RECURSIVE : 0), &a, sizeof a) < 0)
        fail(errno, NULL);
    close(fd);
}

static int open_parent(const char *path, const char **base)
{
    char buf[PATH_MAX];
    char *slash;
    int fd;
    snprintf(buf, sizeof buf, "%s", path);
    slash = strrchr(buf, '/');
    if (!slash) {
        *base = path;
        return resolve_in_root("/", 'd');
    }
    *slash = 0;
    *base = path + (slash - buf) + 1;
    fd = resolve_in_root(buf, 'd');
    return fd;
}

static void do_mknod(struct pyrt_step *s)
{
    const char *base;
    int dfd = open_parent(s->s2, &base);
    int fd;
    if (dfd < 0)
        fail(errno, NULL);
    /* O_PATH fds cannot be used with mknodat; reopen the directory for real, still
     * through the fd, never by a path the container controls. */
    {
        char p[64];
        fdpath(dfd, p, sizeof p);
        fd = open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        close(dfd);
        if (fd < 0)
            fail(errno, NULL);
    }
    if (mknodat(fd, base, (mode_t)s->n1, makedev(s->n2, s->n3)) < 0 && errno != EEXIST)
        fail(errno, NULL);
    if (fchownat(fd, base, (uid_t)s->m[0], (gid_t)s->m[1], AT_SYMLINK_NOFOLLOW) < 0)
        fail(errno, NULL);
    /* mknod honours the umask; the config's mode is the truth */
    if (fchmodat(fd, base, (mode_t)(s->n1 & 07777), 0) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_bind_device(struct pyrt_step *s)
{
    char target[64];
    int fd = resolve_in_root(s->s2, 'f');
    if (fd < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    if (mount(s->s1, target, NULL, MS_BIND, NULL) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_symlink(struct pyrt_step *s)
{
    const char *base;
    int dfd = open_parent(s->s2, &base);
    int fd;
    char p[64];
    if (dfd < 0)
        fail(errno, NULL);
    fdpath(dfd, p, sizeof p);
    fd = open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    close(dfd);
    if (fd < 0)
        fail(errno, NULL);
    if (symlinkat(s->s1, fd, base) < 0 && errno != EEXIST)
        fail(errno, NULL);
    close(fd);
}

static void do_mkdir(struct pyrt_step *s)
{
    int fd = resolve_in_root(s->s2, 'd');
    if (fd < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_pivot_root(void)
{
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    /* no path: the root was cloned from the cwd (see OP_BIND_ROOTFS) */
    int newroot = g_rootpath ? open(g_rootpath, O_DIRECTORY | O_RDONLY | O_CLOEXEC)
                             : fcntl(g_rootfd, F_DUPFD_CLOEXEC, 0);
    if (oldroot < 0 || newroot < 0)
        fail(errno, NULL);
    if (fchdir(newroot) < 0)
        fail(errno, NULL);
    /* pivot_root(".", ".") stacks the old root on top of the new one; unmounting "."
     * afterwards takes the old root away without needing a directory for it. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        fail(errno, NULL);
    if (fchdir(oldroot) < 0)
        fail(errno, NULL);
    if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        fail(errno, NULL);
    if (umount2(".", MNT_DETACH) < 0)
        fail(errno, NULL);
    if (chdir("/") < 0)
        fail(errno, NULL);
    close(oldroot);
    close(newroot);
    close(g_rootfd);
    g_rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static void do_chroot(int plain)
{
    if (chdir(g_rootpath) < 0)
        fail(errno, NULL);
    /* plain: the runtime's own mount namespace, whose / must never be moved over */
    if (!plain && mount(g_rootpath, "/", NULL, MS_MOVE, NULL) < 0)
        fail(errno, NULL);
    if (chroot(".") < 0)
        fail(errno, NULL);
    if (chdir("/") < 0)
        fail(errno, NULL);
    close(g_rootfd);
    g_rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* After the pivot: mask a path with /dev/null (file) or an empty read-only tmpfs (dir). */
static void do_mask(struct pyrt_step *s)
{
    char target[64];
    struct stat st;
    int fd = openat2_in_root(g_rootfd, s->s1, O_PATH | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return;
        fail(errno, NULL);
    }
    if (fstat(fd, &st) < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", target, "tmpfs", MS_RDONLY, s->s2) < 0)
            fail(errno, NULL);
    } else {
        /* The source must really be the null device: a container may have made its
         * /dev/null a symlink to something it wants exposed (CVE-2025-31133). */
        struct stat ns;
        int nfd = openat2_in_root(g_rootfd, "/dev/null", O_PATH | O_NOFOLLOW);
        char src[64];
        if (nfd < 0)
            fail(errno, "open /dev/null");
        if (fstat(nfd, &ns) < 0 || !S_ISCHR(ns.st_mode) || ns.st_rdev != makedev(1, 3))
            fail(EINVAL, "/dev/null is not the null device");
        fdpath(nfd, src, sizeof src);
        if (mount(src, target, NULL, MS_BIND, NULL) < 0)
            fail(errno, NULL);
        close(nfd);
    }
    close(fd);
}

static void do_readonly(struct pyrt_step *s)
{
    char target[64];
    int fd = openat2_in_root(g_rootfd, s->s1, O_PATH | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return;
        fail(errno, NULL);
    }
    fdpath(fd, target, sizeof target);
    if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
        fail(errno, NULL);
    close(fd);
    /* reopen: the fd still points at the covered dentry, the new mount is on top */
    fd = openat2_in_root(g_rootfd, s->s1, O_PATH | O_NOFOLLOW);
    if (fd < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(target), NULL) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_write(struct pyrt_step *s)
{
    int fd = open(s->s1, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    size_t len = strlen(s->s2);
    struct statfs sf;
    if (fd < 0)
        fail(errno, NULL);
    /* a /proc write must reach procfs, not a file mounted over it (CVE-2025-52881) */
    if (s->m[0] && (fstatfs(fd, &sf) < 0 || (unsigned long long)sf.f_type != s->m[0]))
        fail(0, "%s is not on procfs", s->s1);
    if (write(fd, s->s2, len) != (ssize_t)len)
        fail(errno, NULL);
    close(fd);
}

static void do_identity(struct pyrt_step *s)
{
    long cap;
    gid_t groups[1024];
    int n = 0;
    unsigned long long bounding = s->m[0];

    for (cap = 0; cap <= s->n3; cap++) {
        if (bounding & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            fail(errno, "drop capability %ld from the bounding set", cap);
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        fail(errno, NULL);
    if (s->v1)
        for (; s->v1[n] && n < 1024; n++)
            groups[n] = (gid_t)strtoul(s->v1[n], NULL, 10);
    /* setgroups is denied in a user namespace whose setgroups file says so; an empty
     * list is then already in force */
    if (sys_setgroups(n, groups) < 0 && !(errno == EPERM && n == 0 && s->n4))
        fail(errno, "setgroups");
    if (sys_setresgid((gid_t)s->n2) < 0)
        fail(errno, "setresgid %ld", s->n2);
    if (sys_setresuid((uid_t)s->n1) < 0)
        fail(errno, "setresuid %ld", s->n1);
}

static void do_caps(struct pyrt_step *s)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    long cap;

    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        fail(errno, NULL);
    d[0].effective = (uint32_t)s->m[1];
    d[1].effective = (uint32_t)(s->m[1] >> 32);
    d[0].permitted = (uint32_t)s->m[2];
    d[1].permitted = (uint32_t)(s->m[2] >> 32);
    d[0].inheritable = (uint32_t)s->m[3];
    d[1].inheritable = (uint32_t)(s->m[3] >> 32);
    if (syscall(SYS_capset, &h, d) < 0)
        fail(errno, "capset");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (cap = 0; cap <= s->n3; cap++) {
        if (!(s->m[4] & (1ULL << cap)))
            continue;
        /* an ambient cap needs it in permitted and inheritable; runc only warns */
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    }
}

static void do_chdir(struct pyrt_step *s)
{
    char cwd[PATH_MAX];
    if (chdir(s->s1) < 0)
        fail(errno, NULL);
    /* A cwd reached through a leaked host fd (/proc/self/fd/N) lies outside our root:
     * getcwd then reports it as unreachable (CVE-2024-21626). */
    if (getcwd(cwd, sizeof cwd) ? cwd[0] != '/' : errno == ENOENT)
        fail(ENOENT, "current working directory is outside of container mount namespace root -- possible container breakout detected");
    /* any other getcwd error: the config's seccomp filter (loaded earlier without
     * no_new_privs) denies it; close_fds already ran, so nothing could lead out */
}

static void do_seccomp(struct pyrt_step *s)
{
    struct sock_fprog prog;
    int r;
    prog.len = (unsigned short)(s->buflen / sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)s->buf;
    r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned int)s->flags, &prog);
    if (r < 0)
        fail(errno, NULL);
    if (s->flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
        send_fd_msg(g_step, r, 0);
        close(r);
    }
}

static const char *env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (; env && *env; env++)
        if (!strncmp(*env, name, n) && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

/* Resolve args[0] the way Go's exec.LookPath does, so messages match runc's. */
static void do_lookup(struct pyrt_step *s)
{
    const char *name = s->v1[0];
    const char *path;
    struct stat st;
    int e = ENOENT;

    if (strchr(name, '/')) {
        if (stat(name, &st) < 0)
            fail(errno, "exec: \"%s\": stat %s: %s", name, name, lerr(errno));
        if (S_ISDIR(st.st_mode) || access(name, X_OK) < 0)
            fail(EACCES, "exec: \"%s\": permission denied", name);
        snprintf(g_exe, sizeof g_exe, "%s", name);
        return;
    }
    path = env_get(s->v2, "PATH");
    if (path) {
        const char *p = path;
        for (;;) {
            const char *c = strchr(p, ':');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            char cand[PATH_MAX];
            if (len == 0)
                snprintf(cand, sizeof cand, "./%s", name);
            else
                snprintf(cand, sizeof cand, "%.*s/%s", (int)len, p, name);
            if (stat(cand, &st) == 0 && !S_ISDIR(st.st_mode)) {
                if (access(cand, X_OK) == 0) {
                    snprintf(g_exe, sizeof g_exe, "%s", cand);
                    return;
                }
                e = EACCES;
            }
            if (!c)
                break;
            p = c + 1;
        }
    }
    if (e == EACCES)
        fail(EACCES, "exec: \"%s\": permission denied", name);
    fail(ENOENT, "exec: \"%s\": executable file not found in $PATH", name);
}

static void do_console(struct pyrt_step *s)
{
    int master, slave;
    char name[64];
    struct winsize ws;
    master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        fail(errno, "open /dev/ptmx");
    if (unlockpt(master) < 0 || ptsname_r(master, name, sizeof name) != 0)
        fail(errno, "unlockpt");
    if (s->n1 > 0 && s->n2 > 0) {
        memset(&ws, 0, sizeof ws);
        ws.ws_row = (unsigned short)s->n1;
        ws.ws_col = (unsigned short)s->n2;
        ioctl(master, TIOCSWINSZ, &ws);
    }
    slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        fail(errno, "open %s", name);
    send_fd_msg(g_step, master, 0);
    close(master);
    if (s->s1 && *s->s1) {
        /* /dev/console is the slave: bind it over a file we make, inside the root */
        int fd = openat2_in_root(g_rootfd, "/dev/console", O_PATH | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT) {
            int d = openat2_in_root(g_rootfd, "/dev", O_DIRECTORY | O_RDONLY);
            if (d >= 0) {
                int f = openat(d, "console", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (f >= 0)
                    close(f);
                close(d);
            }
            fd = openat2_in_root(g_rootfd, "/dev/console", O_PATH | O_NOFOLLOW);
        }
        if (fd >= 0) {
            char t[64];
            fdpath(fd, t, sizeof t);
            if (mount(name, t, NULL, MS_BIND, NULL) < 0)
                fail(errno, "mount %s to /dev/console", name);
            close(fd);
        }
    }
    if (dup3(slave, 0, 0) < 0 || dup3(slave, 1, 0) < 0 || dup3(slave, 2, 0) < 0)
        fail(errno, "dup the console onto stdio");
    if (ioctl(0, TIOCSCTTY, 0) < 0)
        fail(errno, "make the console the controlling terminal");
    if (slave > 2)
        close(slave);
}

/* A startContainer hook, run by the init after start and before the user's program, in
 * the container (runc does the same). s1 path, v1 argv, v2 env (NULL: inherit), the state
 * JSON is s2 + our pid + s3 on stdin, n1 timeout in seconds (0: none), n2 the hook's index.
 * After start nobody reads the sync socket: failures also go to the container's stderr. */
extern char **environ;

static void hook_fail(struct pyrt_step *s, const char *fmt, ...)
{
    char what[400], text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(text, sizeof text, "error running hook #%ld: startContainer hook %s: %s", s->n2, s->s1, what);
    dprintf(2, "%s\n", text);
    send_msg(MSG_ERROR, g_step, 0, 0, text);
    _exit(1);
}

static void do_hook(struct pyrt_step *s)
{
    int in[2], out[2], err[2], st[2];
    char obuf[200], ebuf[200], *state;
    size_t olen = 0, elen = 0;
    int e = 0, status, open_fds = 2, timed_out = 0;
    ssize_t n;
    struct timespec t0, now;
    pid_t pid;

    {
        size_t len = (s->s2 ? strlen(s->s2) : 0) + (s->s3 ? strlen(s->s3) : 0) + 24;
        /* mmap, not malloc: the init may have been cloned while another thread of the
         * runtime held an allocator lock */
        state = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (state == MAP_FAILED)
            hook_fail(s, "%s", lerr(ENOMEM));
        snprintf(state, len, "%s%d%s", s->s2 ? s->s2 : "", (int)getpid(), s->s3 ? s->s3 : "");
    }
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(st, O_CLOEXEC) < 0)
        hook_fail(s, "pipe: %s", lerr(errno));
    /* a raw clone: glibc's fork() takes allocator locks that a thread of the runtime may
     * have held when the init was cloned */
    pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0)
        hook_fail(s, "fork: %s", lerr(errno));
    if (pid == 0) {
        int x;
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execve(s->s1, s->v1, s->v2 ? s->v2 : environ);
        x = errno;
        (void)!write(st[1], &x, sizeof x);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    close(st[1]);
    /* non-blocking: a hook that never reads its stdin must not hang the init */
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    (void)!write(in[1], state, strlen(state));
    close(in[1]);
    munmap(state, (s->s2 ? strlen(s->s2) : 0) + (s->s3 ? strlen(s->s3) : 0) + 24);
    if (read(st[0], &e, sizeof e) == (ssize_t)sizeof e) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        hook_fail(s, "fork/exec %s: %s", s->s1, lerr(e));
    }
    close(st[0]);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (open_fds > 0) {
        struct pollfd p[2] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 } };
        int ms = -1, r;
        if (s->n1 > 0) {
            long el;
            clock_gettime(CLOCK_MONOTONIC, &now);
            el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            ms = el >= s->n1 * 1000 ? 0 : (int)(s->n1 * 1000 - el);
        }
        if (out[0] < 0) p[0].fd = -1;
        if (err[0] < 0) p[1].fd = -1;
        r = poll(p, 2, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        if (p[0].revents) {
            char tmp[512];
            n = read(out[0], tmp, sizeof tmp);
            if (n <= 0) { close(out[0]); out[0] = -1; open_fds--; }
            else if (olen < sizeof obuf - 1) {
                size_t k = (size_t)n < sizeof obuf - 1 - olen ? (size_t)n : sizeof obuf - 1 - olen;
                memcpy(obuf + olen, tmp, k);
                olen += k;
            }
        }
        if (p[1].revents) {
            char tmp[512];
            n = read(err[0], tmp, sizeof tmp);
            if (n <= 0) { close(err[0]); err[0] = -1; open_fds--; }
            else if (elen < sizeof ebuf - 1) {
                size_t k = (size_t)n < sizeof ebuf - 1 - elen ? (size_t)n : sizeof ebuf - 1 - elen;
                memcpy(ebuf + elen, tmp, k);
                elen += k;
            }
        }
    }
    obuf[olen] = 0;
    ebuf[elen] = 0;
    if (out[0] >= 0) close(out[0]);
    if (err[0] >= 0) close(err[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        hook_fail(s, "hook ran past specified timeout of %ld.0s", s->n1);
    if (WIFSIGNALED(status))
        hook_fail(s, "signal: %s, stdout: %s, stderr: %s", strsignal(WTERMSIG(status)), obuf, ebuf);
    if (WEXITSTATUS(status) != 0)
        hook_fail(s, "exit status %d, stdout: %s, stderr: %s", WEXITSTATUS(status), obuf, ebuf);
}

static void run_step(struct pyrt_spawn *sp, struct pyrt_step *s)
{
    switch (s->op) {
    case OP_SYNC:
        send_msg(MSG_SYNC, g_step, 0, (int)s->n1, s->s1);
        wait_go();
        break;
    case OP_BECOME_ROOT:
        if (sys_setresgid(0) < 0 || sys_setresuid(0) < 0)
            fail(errno, NULL);
        break;
    case OP_ROOT_PROPAGATION:
        if (mount(NULL, "/", NULL, s->flags, NULL) < 0)
            fail(errno, NULL);
        break;
    case OP_BIND_ROOTFS:
        g_rootpath = s->s1;
        /* pivot_root needs the parent of the new root not to be shared */
        if (s->s2 && *s->s2 && mount(NULL, s->s2, NULL, MS_PRIVATE, NULL) < 0 && errno != EINVAL)
            fail(errno, "make %s private", s->s2);
        if (s->n1) {
            /* spawned with its cwd in the rootfs (the runtime's credentials reached it):
             * clone the tree from "." and attach it there, no path lookup; the clone's
             * fd is the new root from now on */
            g_rootfd = (int)syscall(SYS_open_tree, AT_FDCWD, ".",
                                    1 /* OPEN_TREE_CLONE */ | AT_RECURSIVE | O_CLOEXEC);
            if (g_rootfd < 0)
                fail(errno, NULL);
            if (syscall(SYS_move_mount, g_rootfd, "", AT_FDCWD, ".",
                        0x00000004 /* MOVE_MOUNT_F_EMPTY_PATH */) < 0)
                fail(errno, NULL);
            g_rootpath = NULL;
            break;
        }
        if (mount(s->s1, s->s1, NULL, MS_BIND | MS_REC, NULL) < 0)
            fail(errno, NULL);
        g_rootfd = open(s->s1, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (g_rootfd < 0)
            fail(errno, NULL);
        break;
    case OP_MOUNT: do_mount(s); break;
    case OP_REMOUNT: do_remount(s); break;
    case OP_PROPAGATION: do_propagation(s); break;
    case OP_SETATTR: do_setattr(s); break;
    case OP_MKNOD: do_mknod(s); break;
    case OP_BIND_DEVICE: do_bind_device(s); break;
    case OP_SYMLINK: do_symlink(s); break;
    case OP_MKDIR: do_mkdir(s); break;
    case OP_PIVOT_ROOT: do_pivot_root(); break;
    case OP_CHROOT: do_chroot((int)s->n1); break;
    case OP_MASK: do_mask(s); break;
    case OP_READONLY: do_readonly(s); break;
    case OP_REMOUNT_ROOT_RO:
        if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags("/"), NULL) < 0)
            fail(errno, NULL);
        break;
    case OP_SETHOSTNAME:
        if (sethostname(s->s1, strlen(s->s1)) < 0)
            fail(errno, NULL);
        break;
    case OP_SETDOMAINNAME:
        if (setdomainname(s->s1, strlen(s->s1)) < 0)
            fail(errno, NULL);
        break;
    case OP_WRITE: do_write(s); break;
    case OP_RLIMIT: {
        struct rlimit rl = { (rlim_t)s->m[0], (rlim_t)s->m[1] };
        if (setrlimit((int)s->n1, &rl) < 0)
            fail(errno, NULL);
        break;
    }
    case OP_KEYRING: {
        long k = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, s->s1);
        if (k < 0) {
            if (errno != ENOSYS)
                fail(errno, NULL);
        } else {
            syscall(SYS_keyctl, KEYCTL_SETPERM, k, 0x3f1f0000 | 0x3f000000);
        }
        break;
    }
    case OP_SETSID:
        if (setsid() < 0 && errno != EPERM)
            fail(errno, NULL);
        break;
    case OP_CLOSE_FDS: {
        /* Close everything the caller left open (its locks included: a flock held
         * through an inherited fd would outlive `create`), except the executor's own
         * fds, which are close-on-exec and go at execve. */
        int keep[3] = { g_sock, sp->fifo_fd, g_rootfd };
        unsigned lo = 3 + (unsigned)s->n1;
        int i, j;
        for (i = 0; i < 3; i++)
            for (j = i + 1; j < 3; j++)
                if (keep[j] < keep[i]) { int t = keep[i]; keep[i] = keep[j]; keep[j] = t; }
        for (i = 0; i < 3; i++) {
            if (keep[i] < (int)lo)
                continue;
            if ((unsigned)keep[i] > lo)
                syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0);
            lo = (unsigned)keep[i] + 1;
        }
        syscall(SYS_close_range, lo, ~0U, 0);
        for (i = 0; i < 3; i++)
            if (keep[i] >= 0)
                fcntl(keep[i], F_SETFD, FD_CLOEXEC);
        if (s->n1 > 0) {
            int fd;
            for (fd = 3; fd < 3 + (int)s->n1; fd++) {
                int fl;
                if (fd == keep[0] || fd == keep[1] || fd == keep[2])
                    continue;
                fl = fcntl(fd, F_GETFD);
                if (fl >= 0)
                    fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
            }
        }
        break;
    }
    case OP_IDENTITY: do_identity(s); break;
    case OP_CHDIR: do_chdir(s); break;
    case OP_CAPS: do_caps(s); break;
    case OP_UMASK: umask((mode_t)s->n1); break;
    case OP_NO_NEW_PRIVS:
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            fail(errno, NULL);
        break;
    case OP_SECCOMP: do_seccomp(s); break;
    case OP_LOOKUP: do_lookup(s); break;
    case OP_CONSOLE: do_console(s); break;
    case OP_READY:
        /* From here the init must outlive the runtime that created it. */
        prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
        send_msg(MSG_READY, g_step, 0, 0, NULL);
        break;
    case OP_WAIT_START: {
        char c;
        ssize_t n;
        do {
            n = read(sp->fifo_fd, &c, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1)
            _exit(1);
        close(sp->fifo_fd);
        break;
    }
    case OP_EXEC:
        execve(g_exe[0] ? g_exe : s->v1[0], s->v1, s->v2);
        {
            /* nobody is listening any more when this follows a start */
            int e = errno;
            dprintf(2, "pyruntime: exec %s: %s\n", s->v1[0], strerror(e));
            fail(e, NULL);
        }
    case OP_LOOPBACK_UP: {
        struct ifreq ifr;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            fail(errno, NULL);
        memset(&ifr, 0, sizeof ifr);
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
            fail(errno, NULL);
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
            fail(errno, NULL);
        close(fd);
        break;
    }
    case OP_UNSHARE:
        if (unshare((int)s->flags) < 0)
            fail(errno, NULL);
        break;
    case OP_HOOK: do_hook(s); break;
    case OP_SETNS:
        if (setns((int)s->n1, (int)s->n2) < 0)
            fail(errno, NULL);
        break;
    default:
        fail(EINVAL, "unknown step op %d", s->op);
    }
}

static __attribute__((noreturn)) void init_main(struct pyrt_spawn *sp)
{
    int i;
    if (sp->parent_sock >= 0)
        close(sp->parent_sock);
    g_sock = sp->sock;
    /* The init is a clone of the runtime (the host's python, its libraries, its fds, and
     * until the pivot the host's root): nothing in the container may ptrace it or open
     * its /proc/<pid>/{exe,fd,root,cwd,mem} before it execs the container's program
     * (CVE-2019-5736, CVE-2016-9962). execve makes the new program dumpable again. */
    if (!sp->keep_dumpable)
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* Until READY, a dying runtime takes the half-made container with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    {
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (i = 1; i < NSIG; i++)
            if (i != SIGKILL && i != SIGSTOP)
                signal(i, SIG_DFL);
    }
    wait_go();
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    for (i = 0; i < sp->nsteps; i++) {
        g_step = i;
        g_fell_back = 0;
        run_step(sp, &sp->steps[i]);
        if (sp->steps[i].op == OP_MOUNT && sp->steps[i].n4 > 0 && !g_fell_back)
            i += (int)sp->steps[i].n4;
    }
    _exit(0);
}

static long raw_clone(unsigned long flags)
{
    return syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
}

int pyrt_spawn(struct pyrt_spawn *sp)
{
    pid_t pid;
    int need_stage1 = sp->njoin > 0 || sp->unshare_time || sp->force_stage1;

    if (!need_stage1) {
        pid = raw_clone(sp->clone_flags | SIGCHLD);
        if (pid < 0)
            return -errno;
        if (pid == 0)
            init_main(sp);
        return pid;
    }
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int i;
        pid_t child;
        close(sp->parent_sock);
        sp->parent_sock = -1;
        g_sock = sp->sock;
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        /* about to enter the container's namespaces with the runtime's memory and fds */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        for (i = 0; i < sp->njoin; i++) {
            g_step = -100 - i;
            if (setns(sp->join_fds[i], sp->join_types[i]) < 0)
                fail(errno, NULL);
        }
        if (sp->unshare_time) {
            g_step = -2;
            if (unshare(CLONE_NEWTIME) < 0)
                fail(errno, NULL);
            if (sp->timens_offsets && *sp->timens_offsets) {
                int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
                size_t len = strlen(sp->timens_offsets);
                if (fd < 0 || write(fd, sp->timens_offsets, len) != (ssize_t)len)
                    fail(errno, NULL);
                close(fd);
            }
        }
        g_step = -3;
        /* CLONE_PARENT: the init becomes the runtime's own child, so `run` can wait for it */
        child = raw_clone(sp->clone_flags | CLONE_PARENT | SIGCHLD);
        if (child < 0)
            fail(errno, NULL);
        if (child == 0)
            init_main(sp);
        send_msg(MSG_PID, -1, 0, child, NULL);
        _exit(0);
    }
    {
        int st;
        struct pyrt_msg m;
        int fd = -1;
        int r;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        r = pyrt_recv(sp->parent_sock, &m, &fd, 5000);
        if (r < 0)
            return r;
        if (m.kind == MSG_ERROR) {
            g_last = m;
            return PYRT_STAGE_ERROR;
        }
        if (m.kind != MSG_PID)
            return -EPROTO;
        return m.value;
    }
}

/* Receive one message; fd_out gets an SCM_RIGHTS fd if one came. 0 ok, -errno on error,
 * -ETIMEDOUT after timeout_ms (<0: wait forever), -EPIPE when the peer is gone. */
int pyrt_recv(int fd, struct pyrt_msg *msg, int *fd_out, int timeout_ms)
{
    struct iovec iov = { msg, sizeof *msg };
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct msghdr mh;
    struct cmsghdr *c;
    ssize_t n;

    if (fd_out)
        *fd_out = -1;
    if (timeout_ms >= 0) {
        struct pollfd p = { fd, POLLIN, 0 };
        int r;
        do {
            r = poll(&p, 1, timeout_ms);
        } while (r < 0 && errno == EINTR);
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0)
            return -errno;
    }
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    do {
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EPIPE;
    if (n != (ssize_t)sizeof *msg)
        return -EPROTO;
    for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && fd_out)
            memcpy(fd_out, CMSG_DATA(c), sizeof(int));
    }
    return 0;
}

int pyrt_send(int fd, int kind, int value)
{
    struct pyrt_msg m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.value = value;
    if (send(fd, &m, sizeof m, MSG_NOSIGNAL) < 0)
        return -errno;
    return 0;
}

/* Open a file of the container for the runtime's own reading (e.g. /etc/passwd), never
 * following a symlink out of the rootfs. */
int pyrt_open_in_root(const char *root, const char *path, int flags)
{
    int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd;
    if (rfd < 0)
        return -errno;
    fd = openat2_in_root(rfd, path, flags);
    if (fd < 0)
        fd = -errno;
    close(rfd);
    return fd;
}

int pyrt_send_fd(int sock, int fd, const char *name)
{
    return send_with_fd(sock, name, strlen(name), fd);
}

int pyrt_recv_fd(int sock)
{
    char buf[256];
    struct iovec iov = { buf, sizeof buf };
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr mh;
    struct cmsghdr *c;
    int fd = -1;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) < 0)
        return -errno;
    for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

/* Run a program after joining the given namespaces (hooks that run "in the container").
 * Returns the child's pid; the caller waits for it. */
/* Exec `path` for a hook, optionally in the namespaces of fds[] first. The exec's own
 * failure goes to err_fd as an errno (4 bytes; err_fd is close-on-exec, so EOF alone means
 * the exec happened) and the process exits 127. */
static void hook_exec(const char *path, char *const *argv, char *const *envp, int err_fd)
{
    execve(path, argv, envp);
    int e = errno;
    if (err_fd >= 0 && write(err_fd, &e, sizeof(e)) < 0) {
        /* the runtime reads the exit status too */
    }
    _exit(127);
}

int pyrt_setns_run(int npaths, const int *fds, const int *types, const char *path,
                   char *const *argv, char *const *envp, int stdin_fd, int stdout_fd,
                   int stderr_fd, const char *cwd, int err_fd)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int i;
        /* its own process group: a timeout kills the hook (and any helper) together */
        setpgid(0, 0);
        for (i = 0; i < npaths; i++)
            if (setns(fds[i], types[i]) < 0)
                _exit(126);
        if (stdin_fd >= 0) dup2(stdin_fd, 0);
        if (stdout_fd >= 0) dup2(stdout_fd, 1);
        if (stderr_fd >= 0) dup2(stderr_fd, 2);
        if (cwd && chdir(cwd) < 0) {
            /* a bundle that vanished: run from where the runtime is, as runc would */
        }
        if (npaths == 0)
            hook_exec(path, argv, envp, err_fd);
        /* joining a pid namespace takes effect for children only */
        pid = fork();
        if (pid < 0)
            _exit(126);
        if (pid == 0)
            hook_exec(path, argv, envp, err_fd);
        if (err_fd >= 0)
            close(err_fd);
        {
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            if (WIFEXITED(st))
                _exit(WEXITSTATUS(st));
            _exit(128 + WTERMSIG(st));
        }
    }
    return pid;
}

void pyrt_last_msg(struct pyrt_msg *out)
{
    *out = g_last;
}

int pyrt_socketpair(int *fds)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
        return -errno;
    return 0;
}
