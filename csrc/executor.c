/* pyruntime's plan executor.
 *
 * pyrt_spawn() execs the init stub (this code linked statically, from a sealed memfd) with
 * the plan as a flat blob; the stub joins namespaces and clones the container init, which
 * runs the plan's steps in order, never returning to Python. A failing step is reported as (step index, errno, text) over the sync socket;
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
#include <sys/sendfile.h>
#include <pthread.h>
#include <sys/personality.h>
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
#ifndef __GLIBC__
/* musl, which builds the init stub where it is installed (csrc/muslcc.py): struct mount_attr
 * and the new mount API's constants come from the kernel's header */
#include <linux/mount.h>
#endif

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
static const char *g_late;   /* the step's late_error while it runs in the init */
static int g_fifo = -1;

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

#include "texts.h"

/* Go-style (lower-case) error text, as runc prints it. */
static const char *lerr(int e)
{
    static char b[128];
    snprintf(b, sizeof b, "%s", err_text(e));
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

/* A failure after the wait for start, told to `start` through the exec fifo (the one
 * thing it reads then): never blocking, as nobody may read it. */
static void late_report(const char *line)
{
    size_t len = strlen(line);
    fcntl(g_fifo, F_SETFL, fcntl(g_fifo, F_GETFL) | O_NONBLOCK);
    while (len > 0) {
        ssize_t w = write(g_fifo, line, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        line += w;
        len -= (size_t)w;
    }
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
    if (g_late) {
        char line[1024];
        snprintf(line, sizeof line, "%s%s%s%s%s", g_late, *text ? ": " : "", text,
                 err ? ": " : "", err ? lerr(err) : "");
        late_report(line);
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

/* Walk `path` inside the rootfs, resolving symlinks as if the rootfs were "/" (a dangling
 * symlink is followed and its target made inside the rootfs, as runc's SecureJoin does) and
 * creating missing components as directories. A magic link (/proc/N/cwd, /proc/self/root,
 * ...) is refused with ELOOP: its text names a path in another root.
 *
 * With `last` NULL: the last component is made as `kind` ('d' directory, 'f' file, 0
 * nothing) and an O_PATH fd of the final location is returned.
 * With `last`: symlinks in the last component are followed too, but it is not opened nor
 * made: the O_PATH fd of its (resolved, created) parent is returned and its name copied to
 * `last` (never "." or ".."); when the path ends at a directory through "." or "..",
 * `last` is "" and the fd is that directory. */
static int walk_in_root(const char *path, int kind, char *last)
{
    char rem[2 * PATH_MAX], cur[PATH_MAX], tmp[2 * PATH_MAX];
    char *p;
    int fd, links = 0;

    while (*path == '/')
        path++;
    if (last)
        last[0] = 0;
    if (!*path)
        return openat2_in_root(g_rootfd, ".", O_PATH);
    if (!last) {
        fd = openat2_in_root(g_rootfd, path, O_PATH);
        if (fd >= 0 || errno != ENOENT || !kind)
            return fd;
    }
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
        int dfd, final;
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
        final = !*p;
        if (!strcmp(comp, "."))
            continue;
        if (!strcmp(comp, "..")) {
            /* cur has no symlink in it: going up is lexical, and stops at the root */
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
                int probe;
                if (++links > 40) {
                    close(dfd);
                    errno = ELOOP;
                    return -1;
                }
                /* a magic link is refused by openat2 itself (RESOLVE_NO_MAGICLINKS) */
                snprintf(tmp, sizeof tmp, "%s/%s", cur, comp);
                probe = openat2_in_root(g_rootfd, tmp, O_PATH);
                if (probe >= 0)
                    close(probe);
                else if (errno == ELOOP) {
                    close(dfd);
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
            if (final && last) {
                memcpy(last, comp, len + 1);
                return dfd;
            }
        } else if (errno == ENOENT) {
            int r;
            if (final && last) {
                memcpy(last, comp, len + 1);
                return dfd;
            }
            if (final && kind == 'f') {
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

static int resolve_in_root(const char *path, int kind)
{
    return walk_in_root(path, kind, NULL);
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
static void check_mounted_fs(const struct pyrt_mount *m)
{
    struct statfs sf;
    int fd;
    if (!m->fs_magic && !m->no_symlinks)
        return;
    fd = m->no_symlinks ? open_no_symlinks(m->target, O_PATH) : resolve_in_root(m->target, 0);
    if (fd < 0)
        fail(errno, "%s must be mounted on an ordinary directory", m->fstype ? m->fstype : m->source);
    if (m->fs_magic && (fstatfs(fd, &sf) < 0 || (unsigned long long)sf.f_type != m->fs_magic))
        fail(0, "%s is not a %s filesystem after mounting", m->target, m->fstype ? m->fstype : "?");
    close(fd);
}

/* A new filesystem made with fsopen/fsmount and attached at `at` by fd: no path through
 * /proc/self/fd, which an init that mounts its procfs after the pivot does not have yet.
 * fs_options: "key=value" or "flag"; fsmount_attrs: the MOUNT_ATTR_* bits. */
static void do_fsmount(const struct pyrt_mount *m, int at)
{
    int fs, mnt, i;
    char *const *opt = m->fs_options;
    fs = (int)syscall(SYS_fsopen, m->fstype, 1 /* FSOPEN_CLOEXEC */);
    if (fs < 0)
        fail(errno, NULL);
    if (m->source && *m->source &&
        syscall(SYS_fsconfig, fs, 1 /* FSCONFIG_SET_STRING */, "source", m->source, 0) < 0)
        fail(errno, "source %s", m->source);
    for (i = 0; opt && opt[i]; i++) {
        char key[256];
        const char *eq = strchr(opt[i], '=');
        size_t n = eq ? (size_t)(eq - opt[i]) : strlen(opt[i]);
        if (n >= sizeof key)
            fail(EINVAL, "option %s", opt[i]);
        memcpy(key, opt[i], n);
        key[n] = 0;
        if (syscall(SYS_fsconfig, fs, eq ? 1 /* FSCONFIG_SET_STRING */ : 0 /* SET_FLAG */,
                    key, eq ? eq + 1 : NULL, 0) < 0)
            fail(errno, "option %s", opt[i]);
    }
    if (syscall(SYS_fsconfig, fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0) < 0)
        fail(errno, NULL);
    mnt = (int)syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, (unsigned)m->fsmount_attrs);
    if (mnt < 0)
        fail(errno, NULL);
    close(fs);
    if (syscall(SYS_move_mount, mnt, "", at, "",
                0x00000004 /* MOVE_MOUNT_F_EMPTY_PATH */ | 0x00000040 /* T_EMPTY_PATH */) < 0)
        fail(errno, "move_mount");
    close(mnt);
}

static void do_mount(const struct pyrt_mount *m)
{
    char target[64];
    int fd;
    if (m->no_symlinks) {
        /* the destination must not be a symlink (CVE-2019-16884, CVE-2023-28642) */
        fd = open_no_symlinks(m->target, O_PATH);
        if (fd < 0 && errno == ELOOP)
            fail(0, "filesystem \"%s\" must be mounted on ordinary directory",
                 m->fstype ? m->fstype : m->source);
        if (fd >= 0)
            close(fd);
    }
    fd = resolve_in_root(m->target, m->mkdir == 1 ? 'd' : m->mkdir == 2 ? 'f' : 0);
    if (fd < 0)
        fail(errno, NULL);
    if (m->fsmount) {
        do_fsmount(m, fd);
        close(fd);
        check_mounted_fs(m);
        return;
    }
    if (m->mount_fd >= 0) {
        /* a mount the runtime prepared (idmapped): attach it */
        if (syscall(SYS_move_mount, m->mount_fd, "", fd, "",
                    0x00000004 /* MOVE_MOUNT_F_EMPTY_PATH */ | 0x00000040 /* T_EMPTY_PATH */) < 0)
            fail(errno, "move_mount");
        close(m->mount_fd);
        close(fd);
        return;
    }
    fdpath(fd, target, sizeof target);
    if (mount(m->source && *m->source ? m->source : "none", target, m->fstype, m->flags, m->data) < 0) {
        int e = errno;
        /* the plan's alternative for this mount follows it (e.g. cgroup2 -> bind) */
        if (m->fallback_n > 0 && e < 64 && (m->fallback_errnos & (1ULL << e))) {
            g_fell_back = 1;
            close(fd);
            return;
        }
        fail(e, NULL);
    }
    close(fd);
    check_mounted_fs(m);
}

static void do_remount(const struct pyrt_remount *r)
{
    char target[64];
    int fd = resolve_in_root(r->target, 0);
    unsigned long keep;
    if (fd < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    keep = locked_flags(target) & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
    if (r->keep) /* only add flags: keep what the mount already has */
        keep |= locked_flags(target);
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | r->flags | keep, NULL) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_propagation(const struct pyrt_flags *p)
{
    char target[64];
    int fd = resolve_in_root(p->target, 0);
    if (fd < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    if (mount(NULL, target, NULL, p->flags, NULL) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_setattr(const struct pyrt_setattr *t)
{
    struct mount_attr a;
    int fd = resolve_in_root(t->target, 0);
    if (fd < 0)
        fail(errno, NULL);
    memset(&a, 0, sizeof a);
    a.attr_set = t->attr_set;
    a.attr_clr = t->attr_clr;
    a.propagation = t->propagation;
    a.userns_fd = t->userns_fd > 0 ? (unsigned long long)t->userns_fd : 0;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (t->recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0)
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

/* The device path is resolved inside the rootfs, its symlinks included (the node is made
 * where the link points, as runc does); the owner and mode are then set on the node just
 * made, through an fd, never through a name the image controls. */
static void do_mknod(const struct pyrt_mknod *d)
{
    char base[NAME_MAX + 1], p[64];
    int dfd = walk_in_root(d->target, 'd', base);
    int fd, nfd;
    struct stat st;
    mode_t fmt = (mode_t)d->mode & S_IFMT;
    if (dfd < 0)
        fail(errno, NULL);
    if (!base[0]) {
        /* the path names a directory ("/dev/..", even the rootfs): it exists, and what
         * exists is left as it is, as runc leaves it */
        close(dfd);
        return;
    }
    /* O_PATH fds cannot be used with mknodat; reopen the directory for real, still
     * through the fd, never by a path the container controls. */
    fdpath(dfd, p, sizeof p);
    fd = open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    close(dfd);
    if (fd < 0)
        fail(errno, NULL);
    if (mknodat(fd, base, (mode_t)d->mode, makedev(d->major, d->minor)) < 0) {
        /* something is there already (runc leaves it as it is) */
        if (errno == EEXIST) {
            close(fd);
            return;
        }
        fail(errno, NULL);
    }
    nfd = openat(fd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    if (nfd < 0 || fstat(nfd, &st) < 0)
        fail(errno, NULL);
    if ((st.st_mode & S_IFMT) != fmt ||
        ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && st.st_rdev != makedev(d->major, d->minor)))
        fail(EEXIST, "%s was replaced while it was made", d->target);
    if (fchownat(nfd, "", (uid_t)d->uid, (gid_t)d->gid, AT_EMPTY_PATH) < 0)
        fail(errno, NULL);
    /* mknod honours the umask; the config's mode is the truth. An O_PATH fd has no
     * fchmod: its /proc/self/fd link reaches exactly that inode. */
    fdpath(nfd, p, sizeof p);
    if (chmod(p, (mode_t)(d->mode & 07777)) < 0)
        fail(errno, NULL);
    close(nfd);
}

static void do_bind_device(const struct pyrt_bind_device *b)
{
    char target[64];
    struct stat st;
    int fd = resolve_in_root(b->target, 'f');
    if (fd < 0)
        fail(errno, NULL);
    /* a device goes over a file, never over a directory (the rootfs itself for "/..") */
    if (fstat(fd, &st) < 0)
        fail(errno, NULL);
    if (S_ISDIR(st.st_mode))
        fail(EISDIR, NULL);
    fdpath(fd, target, sizeof target);
    if (mount(b->source, target, NULL, MS_BIND, NULL) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_symlink(const struct pyrt_symlink *l)
{
    const char *base;
    int dfd = open_parent(l->linkname, &base);
    int fd;
    char p[64];
    if (dfd < 0)
        fail(errno, NULL);
    fdpath(dfd, p, sizeof p);
    fd = open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    close(dfd);
    if (fd < 0)
        fail(errno, NULL);
    if (symlinkat(l->target, fd, base) < 0 && errno != EEXIST)
        fail(errno, NULL);
    close(fd);
}

static void do_mkdir(const struct pyrt_path *d)
{
    int fd = resolve_in_root(d->path, 'd');
    if (fd < 0)
        fail(errno, NULL);
    close(fd);
}

/* Engines hand a detached container their own /dev/null as stdio. Its mount is outside
 * the container, where criu cannot find it ("Can't lookup mount"): once the container's
 * root is /, such fds are reopened on the container's /dev/null (runc does the same).
 * Only a char device with /dev/null's numbers replaces them; a rootfs without one, or
 * with a symlink or anything else there, leaves stdio as it is. */
static void reopen_dev_null(void)
{
    struct stat nul, st;
    int fd = open("/dev/null", O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &nul) == 0 && S_ISCHR(nul.st_mode) && nul.st_rdev == makedev(1, 3)) {
        for (int i = 0; i < 3; i++) {
            /* the same inode may sit on another mount (a bind of the host's node): the
             * mount is what criu looks up, so every match is replaced */
            if (fstat(i, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == nul.st_rdev
                && dup3(fd, i, 0) < 0)
                fail(errno, NULL);
        }
    }
    close(fd);
}

/* keep_old: the old root stays stacked on the new one (unreachable by any lookup from the
 * new root) until detach_old_root: a procfs made in a user namespace's mount namespace needs
 * a visible one in it (mount_too_revealing), and the init mounting it comes later. */
static void do_pivot_root(int keep_old)
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
    if (!keep_old && umount2(".", MNT_DETACH) < 0)
        fail(errno, NULL);
    if (chdir("/") < 0)
        fail(errno, NULL);
    close(oldroot);
    close(newroot);
    close(g_rootfd);
    g_rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    reopen_dev_null();
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
    if (!plain)
        reopen_dev_null();
}

/* After the pivot: mask a path with /dev/null (file) or an empty read-only tmpfs (dir). */
static void do_mask(const struct pyrt_mask *m)
{
    char target[64];
    struct stat st;
    /* a symlink is masked at its target inside the root, as runc does (a mount on the link
     * itself would leave the target readable) */
    int fd = openat2_in_root(g_rootfd, m->path, O_PATH);
    if (fd < 0) {
        if (errno == ENOENT)
            return;
        fail(errno, NULL);
    }
    if (fstat(fd, &st) < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", target, "tmpfs", MS_RDONLY, m->tmpfs_data) < 0)
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

static void do_readonly(const struct pyrt_path *r)
{
    char target[64];
    /* a symlink is made read-only at its target inside the root, as runc does */
    int fd = openat2_in_root(g_rootfd, r->path, O_PATH);
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
    fd = openat2_in_root(g_rootfd, r->path, O_PATH);
    if (fd < 0)
        fail(errno, NULL);
    fdpath(fd, target, sizeof target);
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(target), NULL) < 0)
        fail(errno, NULL);
    close(fd);
}

static void do_write(const struct pyrt_write *w)
{
    int fd = open(w->path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    size_t len = strlen(w->data);
    struct statfs sf;
    if (fd < 0)
        fail(errno, NULL);
    /* a /proc write must reach procfs, not a file mounted over it (CVE-2025-52881) */
    if (w->fs_magic && (fstatfs(fd, &sf) < 0 || (unsigned long long)sf.f_type != w->fs_magic))
        fail(0, "%s is not on procfs", w->path);
    if (write(fd, w->data, len) != (ssize_t)len)
        fail(errno, NULL);
    close(fd);
}

#define MAX_ID 0x7fffffffL   /* runc's range; (uid_t)-1 would mean "unchanged" */
#define MAX_GROUPS 65536     /* NGROUPS_MAX */

static void do_identity(const struct pyrt_identity *id)
{
    long cap;
    gid_t *groups = NULL;
    size_t glen = 0;
    int n = 0, i;
    unsigned long long bounding = id->bounding;

    if (id->uid < 0 || id->uid > MAX_ID || id->gid < 0 || id->gid > MAX_ID)
        fail(EINVAL, "uids and gids must be in range 0-%ld", MAX_ID);
    while (id->groups && id->groups[n])
        if (++n > MAX_GROUPS)
            fail(EINVAL, "setgroups: more than %d groups", MAX_GROUPS);
    if (n > 0) {
        /* mmap, not malloc (see hook_alloc): as many as the plan has, not a fixed array */
        glen = sizeof(gid_t) * (size_t)n;
        groups = mmap(NULL, glen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (groups == MAP_FAILED)
            fail(ENOMEM, "setgroups");
    }
    for (i = 0; i < n; i++) {
        char *end;
        unsigned long g = strtoul(id->groups[i], &end, 10);
        if (*end || end == id->groups[i] || g > (unsigned long)MAX_ID)
            fail(EINVAL, "uids and gids must be in range 0-%ld", MAX_ID);
        groups[i] = (gid_t)g;
    }

    for (cap = 0; cap <= id->last_cap; cap++) {
        if (bounding & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            fail(errno, "drop capability %ld from the bounding set", cap);
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        fail(errno, NULL);
    /* setgroups is denied in a user namespace whose setgroups file says so; an empty
     * list is then already in force */
    if (sys_setgroups(n, groups) < 0 && !(errno == EPERM && n == 0 && id->setgroups_denied))
        fail(errno, "setgroups");
    if (groups)
        munmap(groups, glen);
    if (sys_setresgid((gid_t)id->gid) < 0)
        fail(errno, "setresgid %ld", id->gid);
    if (sys_setresuid((uid_t)id->uid) < 0)
        fail(errno, "setresuid %ld", id->uid);
}

static void do_caps(const struct pyrt_caps *c)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    long cap;

    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        fail(errno, NULL);
    d[0].effective = (uint32_t)c->effective;
    d[1].effective = (uint32_t)(c->effective >> 32);
    d[0].permitted = (uint32_t)c->permitted;
    d[1].permitted = (uint32_t)(c->permitted >> 32);
    d[0].inheritable = (uint32_t)c->inheritable;
    d[1].inheritable = (uint32_t)(c->inheritable >> 32);
    if (syscall(SYS_capset, &h, d) < 0)
        fail(errno, "capset");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (cap = 0; cap <= c->last_cap; cap++) {
        if (!(c->ambient & (1ULL << cap)))
            continue;
        /* an ambient cap needs it in permitted and inheritable; runc only warns */
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
    }
}

static void do_chdir(const struct pyrt_path *d)
{
    char cwd[PATH_MAX];
    /* resolved in our root with openat2, so a magic link (/proc/N/cwd) is refused */
    int root = g_rootfd >= 0 ? g_rootfd : open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = root < 0 ? -1 : openat2_in_root(root, d->path, O_PATH | O_DIRECTORY);
    int e = errno;
    if (root >= 0 && root != g_rootfd)
        close(root);
    if (fd < 0 && (e == EPERM || e == ENOSYS)) {
        /* the config's seccomp filter (loaded earlier, without no_new_privs) denies
         * open/openat2: a plain chdir still resolves inside our root, and the getcwd
         * check below still catches a cwd that leads out of it */
        if (chdir(d->path) < 0)
            fail(errno, NULL);
    } else {
        if (fd < 0)
            fail(e, NULL);
        if (fchdir(fd) < 0)
            fail(errno, NULL);
        close(fd);
    }
    /* A cwd reached through a leaked host fd (/proc/self/fd/N) lies outside our root:
     * getcwd then reports it as unreachable (CVE-2024-21626). */
    if (getcwd(cwd, sizeof cwd) ? cwd[0] != '/' : errno == ENOENT)
        fail(ENOENT, "current working directory is outside of container mount namespace root -- possible container breakout detected");
    /* any other getcwd error: the config's seccomp filter (loaded earlier without
     * no_new_privs) denies it; close_fds already ran, so nothing could lead out */
}

static void do_seccomp(const struct pyrt_seccomp *f)
{
    struct sock_fprog prog;
    int r;
    /* sock_fprog's length is 16 bits: a longer program must not load as its prefix */
    if (!f->program || f->len == 0 || f->len % sizeof(struct sock_filter) ||
        f->len / sizeof(struct sock_filter) > BPF_MAXINSNS)
        fail(EINVAL, "a seccomp program of %zu bytes (at most %d instructions)",
             f->len, BPF_MAXINSNS);
    prog.len = (unsigned short)(f->len / sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)f->program;
    r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned int)f->flags, &prog);
    if (r < 0)
        fail(errno, NULL);
    if (f->flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
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
static void do_lookup(const struct pyrt_exec *x)
{
    const char *name = x->args[0];
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
    path = env_get(x->env, "PATH");
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

/* The process's stdio: fds[0..2] (-1: keep) are the runtime's pipes to put on
 * 0, 1, 2 (they are >= 3, so no dup3 clobbers a source). Then the fds in mask chown get
 * owner uid (runc's stdio fix-up: a non-root process must be able to reopen /proc/self/fd/N and
 * its tty); the group stays (devpts' tty group). /dev/null is never touched, and an
 * owner this namespace cannot map, or a read-only /dev, leaves the fd as it is. */
static void do_stdio(const struct pyrt_dup_stdio *d)
{
    int i;
    for (i = 0; i < 3; i++)
        if (d->fds[i] >= 0 && dup3(d->fds[i], i, 0) < 0)
            fail(errno, "dup fd %d", i);
    for (i = 0; i < 3; i++) {
        struct stat st;
        if (!(d->chown & (1 << i)) || fstat(i, &st) < 0)
            continue;
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
            continue;
        if (st.st_uid == (uid_t)d->uid)
            continue;
        if (fchown(i, (uid_t)d->uid, (gid_t)-1) < 0 &&
            errno != EINVAL && errno != EPERM && errno != EROFS)
            fail(errno, "fchown fd %d", i);
    }
}

static void do_console(const struct pyrt_console *c)
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
    if (c->rows > 0 && c->cols > 0) {
        memset(&ws, 0, sizeof ws);
        ws.ws_row = (unsigned short)c->rows;
        ws.ws_col = (unsigned short)c->cols;
        ioctl(master, TIOCSWINSZ, &ws);
    }
    slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        fail(errno, "open %s", name);
    send_fd_msg(g_step, master, 0);
    close(master);
    if (c->dev_console) {
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
 * the container (runc does the same). The policy is the plan's (pyruntime/hooks.py decides
 * it for every hook runner): the timeout, the output kept for the message, the kill scope
 * and the message's prefix; the wording after the prefix is hooks.py's too.
 * After start nobody reads the sync socket: failures also go to the container's stderr. */
extern char **environ;

/* mmap, not malloc: the init may have been cloned while another thread of the runtime
 * held an allocator lock */
static void *hook_alloc(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

struct hook_run {
    const struct pyrt_hook *h;
    pid_t pid;               /* the hook, once started: its group goes on failure */
    char *out, *err;         /* output_cap + 1 bytes each */
    size_t olen, elen;
};

static __attribute__((noreturn)) void hook_fail(struct hook_run *r, const char *fmt, ...)
{
    const struct pyrt_hook *h = r->h;
    size_t len = strlen(h->error_prefix) + strlen(h->path) +
                 2 * (size_t)(h->output_cap > 0 ? h->output_cap : 0) + 512;
    char *text = hook_alloc(len);
    size_t n;
    va_list ap;
    if (r->pid > 0 && h->kill_group)
        kill(-r->pid, SIGKILL);  /* whatever the failed hook left behind */
    if (!text) {
        dprintf(2, "%s: %s\n", h->error_prefix, lerr(ENOMEM));
        send_msg(MSG_ERROR, g_step, ENOMEM, 0, h->error_prefix);
        _exit(1);
    }
    n = (size_t)snprintf(text, len, "%s: ", h->error_prefix);
    va_start(ap, fmt);
    vsnprintf(text + n, len - n, fmt, ap);
    va_end(ap);
    if (g_late)
        late_report(text);  /* start says it: the line must not come twice in `run` */
    else
        dprintf(2, "%s\n", text);
    send_msg(MSG_ERROR, g_step, 0, 0, text);
    _exit(1);
}

/* Keep what fits below the cap of a chunk read from a hook's pipe. */
static void hook_keep(char *buf, size_t *len, long cap, const char *chunk, ssize_t n)
{
    size_t room = cap > 0 && (size_t)cap > *len ? (size_t)cap - *len : 0;
    size_t k = (size_t)n < room ? (size_t)n : room;
    memcpy(buf + *len, chunk, k);
    *len += k;
}

static void do_hook(const struct pyrt_hook *h)
{
    struct hook_run r;
    int in[2], out[2], err[2], st[2];
    char *state;
    int e = 0, status, open_fds = 2, timed_out = 0;
    size_t slen, cap = h->output_cap > 0 ? (size_t)h->output_cap : 0;
    ssize_t n;
    struct timespec t0, now;
    pid_t pid;

    memset(&r, 0, sizeof r);
    r.h = h;
    slen = (h->state_head ? strlen(h->state_head) : 0) + (h->state_tail ? strlen(h->state_tail) : 0) + 24;
    state = hook_alloc(slen);
    r.out = hook_alloc(cap + 1);
    r.err = hook_alloc(cap + 1);
    if (!state || !r.out || !r.err)
        hook_fail(&r, "%s", lerr(ENOMEM));
    snprintf(state, slen, "%s%d%s", h->state_head ? h->state_head : "", (int)getpid(),
             h->state_tail ? h->state_tail : "");
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(st, O_CLOEXEC) < 0)
        hook_fail(&r, "pipe: %s", lerr(errno));
    /* a raw clone: glibc's fork() takes allocator locks that a thread of the runtime may
     * have held when the init was cloned */
    pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0)
        hook_fail(&r, "fork: %s", lerr(errno));
    if (pid == 0) {
        int x;
        if (h->kill_group)
            setpgid(0, 0);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execve(h->path, h->args, h->env ? h->env : environ);
        x = errno;
        (void)!write(st[1], &x, sizeof x);
        _exit(127);
    }
    /* both sides: the group exists before the parent may have to kill it */
    if (h->kill_group)
        setpgid(pid, pid);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    close(st[1]);
    /* non-blocking: a hook that never reads its stdin must not hang the init */
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    (void)!write(in[1], state, strlen(state));
    close(in[1]);
    munmap(state, slen);
    if (read(st[0], &e, sizeof e) == (ssize_t)sizeof e) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        hook_fail(&r, "fork/exec %s: %s", h->path, lerr(e));
    }
    close(st[0]);
    r.pid = pid;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (open_fds > 0) {
        struct pollfd p[2] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 } };
        int ms = -1, rc;
        if (h->timeout > 0) {
            long el;
            clock_gettime(CLOCK_MONOTONIC, &now);
            el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            ms = el >= h->timeout * 1000 ? 0 : (int)(h->timeout * 1000 - el);
        }
        if (out[0] < 0) p[0].fd = -1;
        if (err[0] < 0) p[1].fd = -1;
        rc = poll(p, 2, ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0) {
            timed_out = 1;
            kill(h->kill_group ? -pid : pid, SIGKILL);
            break;
        }
        if (p[0].revents) {
            char tmp[4096];
            n = read(out[0], tmp, sizeof tmp);
            if (n <= 0) { close(out[0]); out[0] = -1; open_fds--; }
            else hook_keep(r.out, &r.olen, h->output_cap, tmp, n);
        }
        if (p[1].revents) {
            char tmp[4096];
            n = read(err[0], tmp, sizeof tmp);
            if (n <= 0) { close(err[0]); err[0] = -1; open_fds--; }
            else hook_keep(r.err, &r.elen, h->output_cap, tmp, n);
        }
    }
    r.out[r.olen] = 0;
    r.err[r.elen] = 0;
    if (out[0] >= 0) close(out[0]);
    if (err[0] >= 0) close(err[0]);
    {
        /* waited for, not yet reaped: while the leader is a zombie its pid cannot name
         * another group, so the kill reaches only what the failed hook started */
        siginfo_t si;
        memset(&si, 0, sizeof si);
        while (waitid(P_PID, pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
            ;
        if (h->kill_group && (timed_out || si.si_code != CLD_EXITED || si.si_status != 0))
            kill(-pid, SIGKILL);
        r.pid = 0;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        hook_fail(&r, "hook ran past specified timeout of %ld.0s", h->timeout);
    if (WIFSIGNALED(status))
        hook_fail(&r, "signal: %s, stdout: %s, stderr: %s", sig_text(WTERMSIG(status)), r.out, r.err);
    if (WEXITSTATUS(status) != 0)
        hook_fail(&r, "exit status %d, stdout: %s, stderr: %s", WEXITSTATUS(status), r.out, r.err);
    munmap(r.out, cap + 1);
    munmap(r.err, cap + 1);
}

static int fd_in(int fd, const int *list, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (list[i] == fd)
            return 1;
    return 0;
}

/* Close every fd >= 3 except `keep` (n of them). close_range first; where it is missing or
 * a seccomp filter denies it, close() what /proc/self/fd lists, and without /proc every fd
 * up to the highest one the process may hold. Fd hygiene must not depend on one syscall. */
static void close_all_but(const int *keep, int n)
{
    int lo = 3, hi, i, ok = 1;
    int sorted[64];
    int m = 0;

    if (n <= 64) {
        int j;
        for (i = 0; i < n; i++)
            if (keep[i] >= 3)
                sorted[m++] = keep[i];
        for (i = 0; i < m; i++)
            for (j = i + 1; j < m; j++)
                if (sorted[j] < sorted[i]) { int t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t; }
        for (i = 0; i < m && ok; i++) {
            if (sorted[i] < lo)
                continue;
            if (sorted[i] > lo && syscall(SYS_close_range, (unsigned)lo, (unsigned)sorted[i] - 1, 0) < 0)
                ok = 0;
            lo = sorted[i] + 1;
        }
        if (ok && syscall(SYS_close_range, (unsigned)lo, ~0U, 0) == 0)
            return;
    }
    {
        /* one by one: list /proc/self/fd with raw getdents (no allocation) */
        char buf[4096];
        int d = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0) {
            int again = 1;
            while (again) {
                long nread;
                again = 0;
                lseek(d, 0, SEEK_SET);
                while ((nread = syscall(SYS_getdents64, d, buf, sizeof buf)) > 0) {
                    long off = 0;
                    while (off < nread) {
                        struct { unsigned long long ino; long long off; unsigned short reclen;
                                 unsigned char type; char name[]; } *e = (void *)(buf + off);
                        int fd;
                        off += e->reclen;
                        if (e->name[0] < '0' || e->name[0] > '9')
                            continue;
                        fd = atoi(e->name);
                        if (fd < 3 || fd == d || fd_in(fd, keep, n))
                            continue;
                        close(fd);
                        again = 1;
                    }
                }
            }
            close(d);
            return;
        }
    }
    {
        struct rlimit rl;
        int fd;
        hi = 1 << 20;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)hi)
            hi = (int)rl.rlim_cur;
        for (fd = 3; fd < hi; fd++)
            if (!fd_in(fd, keep, n))
                close(fd);
    }
}

/* The caller's fds the plan lists (recorded by the runtime before it opened anything of
 * its own) pass to the program; every other fd closes, the executor's own stay
 * close-on-exec and go at execve. */
static void do_close_fds(struct pyrt_spawn *sp, const struct pyrt_close_fds *c)
{
    const int *pass = c->pass_fds;
    int npass = c->pass_fds ? c->npass : 0;
    int keep[4096 + 3];
    int n = 0, i;

    if (npass > 4096)
        fail(EINVAL, "too many preserved fds");
    for (i = 0; i < npass; i++)
        keep[n++] = pass[i];
    keep[n++] = g_sock;
    keep[n++] = sp->fifo_fd;
    keep[n++] = g_rootfd;
    close_all_but(keep, n);
    if (g_sock >= 0) fcntl(g_sock, F_SETFD, FD_CLOEXEC);
    if (sp->fifo_fd >= 0) fcntl(sp->fifo_fd, F_SETFD, FD_CLOEXEC);
    if (g_rootfd >= 0) fcntl(g_rootfd, F_SETFD, FD_CLOEXEC);
    for (i = 0; i < npass; i++) {
        int fl;
        if (pass[i] == g_sock || pass[i] == sp->fifo_fd || pass[i] == g_rootfd)
            continue;
        fl = fcntl(pass[i], F_GETFD);
        if (fl >= 0)
            fcntl(pass[i], F_SETFD, fl & ~FD_CLOEXEC);
    }
}

/* ---- OCI 1.3 process attributes: scheduler, I/O priority, memory policy, personality,
 * CPU affinity. Every value was checked and encoded by plan.py. ----------------------- */

struct pyrt_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

static void do_sched(const struct pyrt_sched *k)
{
    struct pyrt_sched_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.sched_policy = k->policy;
    a.sched_flags = k->flags;
    a.sched_nice = k->nice;
    a.sched_priority = k->priority;
    a.sched_runtime = k->runtime;
    a.sched_deadline = k->deadline;
    a.sched_period = k->period;
    if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
        fail(errno, NULL);
}

static void do_ioprio(const struct pyrt_value *v)
{
    /* IOPRIO_WHO_PROCESS, ourselves: children inherit it */
    if (syscall(SYS_ioprio_set, 1, 0, (int)v->value) < 0)
        fail(errno, NULL);
}

static void do_mempolicy(const struct pyrt_cpumask *m)
{
    /* the nodemask as unsigned longs; maxnode counts one more bit than it holds */
    unsigned long maxnode = m->len ? m->len * 8 + 1 : 0;
    if (syscall(SYS_set_mempolicy, m->mode, m->len ? m->mask : NULL, maxnode) < 0)
        fail(errno, NULL);
}

static void do_personality(const struct pyrt_value *v)
{
    if (personality((unsigned long)v->value) < 0)
        fail(errno, NULL);
}

static void do_affinity(const struct pyrt_cpumask *m)
{
    /* no mask: every CPU, which the kernel narrows to the cgroup's cpuset (the default) */
    unsigned char all[128];
    const void *mask = m->mask;
    size_t len = m->len;
    if (!len) {
        memset(all, 0xff, sizeof all);
        mask = all;
        len = sizeof all;
    }
    if (syscall(SYS_sched_setaffinity, 0, len, mask) < 0)
        fail(errno, NULL);
}

static int step_fds(const struct pyrt_spawn *sp, int from, int *out, int n, int max);
static long raw_clone(unsigned long flags);

/* The process that built the root (outside the joined pid namespace, whose pid_for_children
 * it set) forks the init there and leaves: nothing but the fds the remaining steps name
 * and the new root pass, so the init shows nothing of the host from its first moment.
 * The runtime learns the init's pid from us and answers the init with GO. */
static void do_fork_init(struct pyrt_spawn *sp)
{
    int keep[4096 + 64 + 3], n = 0;
    long child;

    keep[n++] = g_sock;
    keep[n++] = sp->fifo_fd;
    keep[n++] = g_rootfd;
    n = step_fds(sp, g_step + 1, keep, n, (int)(sizeof keep / sizeof keep[0]));
    close_all_but(keep, n);
    child = raw_clone(CLONE_PARENT | SIGCHLD);
    if (child < 0)
        fail(errno, NULL);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        wait_go();
        return;
    }
    send_msg(MSG_PID, g_step, 0, (int)child, NULL);
    _exit(0);
}

static void run_step(struct pyrt_spawn *sp, struct pyrt_step *s)
{
    switch (s->op) {
    case OP_SYNC:
        send_msg(MSG_SYNC, g_step, 0, 0, s->u.sync.tag);
        wait_go();
        break;
    case OP_BECOME_ROOT:
        if (sys_setresgid(0) < 0 || sys_setresuid(0) < 0)
            fail(errno, NULL);
        break;
    case OP_ROOT_PROPAGATION:
        if (mount(NULL, "/", NULL, s->u.flags.flags, NULL) < 0)
            fail(errno, NULL);
        break;
    case OP_BIND_ROOTFS: {
        const struct pyrt_bind_rootfs *b = &s->u.bind_rootfs;
        g_rootpath = b->path;
        /* pivot_root needs the parent of the new root not to be shared */
        if (b->parent && *b->parent && mount(NULL, b->parent, NULL, MS_PRIVATE, NULL) < 0 && errno != EINVAL)
            fail(errno, "make %s private", b->parent);
        if (b->from_cwd) {
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
        if (mount(b->path, b->path, NULL, MS_BIND | MS_REC, NULL) < 0)
            fail(errno, NULL);
        g_rootfd = open(b->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (g_rootfd < 0)
            fail(errno, NULL);
        break;
    }
    case OP_MOUNT: do_mount(&s->u.mount); break;
    case OP_REMOUNT: do_remount(&s->u.remount); break;
    case OP_PROPAGATION: do_propagation(&s->u.flags); break;
    case OP_SETATTR: do_setattr(&s->u.setattr); break;
    case OP_MKNOD: do_mknod(&s->u.mknod); break;
    case OP_BIND_DEVICE: do_bind_device(&s->u.bind_device); break;
    case OP_SYMLINK: do_symlink(&s->u.symlink); break;
    case OP_MKDIR: do_mkdir(&s->u.path); break;
    case OP_PIVOT_ROOT: do_pivot_root(s->u.pivot_root.keep_old_root); break;
    case OP_DETACH_OLD_ROOT:
        /* "/" as a mount point is the topmost mount there: the stacked old root */
        if (umount2("/", MNT_DETACH) < 0)
            fail(errno, NULL);
        break;
    case OP_CHROOT: do_chroot(s->u.chroot.plain); break;
    case OP_MASK: do_mask(&s->u.mask); break;
    case OP_READONLY: do_readonly(&s->u.path); break;
    case OP_REMOUNT_ROOT_RO:
        if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags("/"), NULL) < 0)
            fail(errno, NULL);
        break;
    case OP_SETHOSTNAME:
        if (sethostname(s->u.name.name, strlen(s->u.name.name)) < 0)
            fail(errno, NULL);
        break;
    case OP_SETDOMAINNAME:
        if (setdomainname(s->u.name.name, strlen(s->u.name.name)) < 0)
            fail(errno, NULL);
        break;
    case OP_WRITE: do_write(&s->u.write); break;
    case OP_RLIMIT: {
        struct rlimit rl = { (rlim_t)s->u.rlimit.soft, (rlim_t)s->u.rlimit.hard };
        if (setrlimit(s->u.rlimit.resource, &rl) < 0)
            fail(errno, NULL);
        break;
    }
    case OP_KEYRING: {
        long k = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, s->u.name.name);
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
    case OP_CLOSE_FDS: do_close_fds(sp, &s->u.close_fds); break;
    case OP_IDENTITY: do_identity(&s->u.identity); break;
    case OP_CHDIR: do_chdir(&s->u.path); break;
    case OP_CAPS: do_caps(&s->u.caps); break;
    case OP_UMASK: umask((mode_t)s->u.umask.mask); break;
    case OP_NO_NEW_PRIVS:
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            fail(errno, NULL);
        break;
    case OP_SECCOMP: do_seccomp(&s->u.seccomp); break;
    case OP_LOOKUP: do_lookup(&s->u.exec); break;
    case OP_CONSOLE: do_console(&s->u.console); break;
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
        /* kept open (close-on-exec): a `start` with poststart hooks reads the fifo to
         * EOF, which comes at the exec of the user's process (the spec's poststart point) */
        break;
    }
    case OP_EXEC:
        execve(g_exe[0] ? g_exe : s->u.exec.args[0], s->u.exec.args, s->u.exec.env);
        {
            /* after a start fail() tells `start`; in an exec nobody may be listening */
            int e = errno;
            if (!g_late)
                dprintf(2, "pyruntime: exec %s: %s\n", s->u.exec.args[0], err_text(e));
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
        if (unshare((int)s->u.flags.flags) < 0)
            fail(errno, NULL);
        break;
    case OP_HOOK: do_hook(&s->u.hook); break;
    case OP_SCHED: do_sched(&s->u.sched); break;
    case OP_IOPRIO: do_ioprio(&s->u.value); break;
    case OP_MEMPOLICY: do_mempolicy(&s->u.cpumask); break;
    case OP_PERSONALITY: do_personality(&s->u.value); break;
    case OP_AFFINITY: do_affinity(&s->u.cpumask); break;
    case OP_DUP_STDIO: do_stdio(&s->u.dup_stdio); break;
    case OP_SETNS:
        if (setns(s->u.setns.fd, s->u.setns.nstype) < 0)
            fail(errno, NULL);
        break;
    case OP_FORK_INIT: do_fork_init(sp); break;
    default:
        fail(EINVAL, "unknown step op %d", s->op);
    }
}

static __attribute__((noreturn)) void init_main(struct pyrt_spawn *sp)
{
    int i;
    g_sock = sp->sock;
    g_fifo = sp->fifo_fd;
    /* The init runs the stub (a sealed memfd), never a host file; still nothing in the
     * container may ptrace it or open its /proc/<pid>/{fd,root,mem} before it execs the
     * container's program (CVE-2016-9962). An unprivileged runtime must still write the
     * uid/gid maps of a new user namespace: dumpable until the first GO then. execve
     * makes the new program dumpable again. */
    prctl(PR_SET_DUMPABLE, sp->keep_dumpable ? 1 : 0, 0, 0, 0);
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
        g_late = sp->steps[i].late_error;
        run_step(sp, &sp->steps[i]);
        if (sp->steps[i].op == OP_MOUNT && sp->steps[i].u.mount.fallback_n > 0 && !g_fell_back)
            i += sp->steps[i].u.mount.fallback_n;
    }
    _exit(0);
}

static long raw_clone(unsigned long flags)
{
    return syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
}

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* struct clone_args up to .cgroup (CLONE_ARGS_SIZE_VER2, Linux 5.7) */
struct pyrt_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

/* A fork-like clone3 (the child runs on a copy of this stack) that starts the child in
 * the cgroup v2 dir cgroup_fd: the kernel places it under a read lock, so the write lock
 * of a migration (and its RCU grace period) never happens. -errno when the kernel, a
 * seccomp filter (ENOSYS) or the cgroup refuses: the caller then clones the old way. */
static long clone_into_cgroup(unsigned long flags, int cgroup_fd)
{
    struct pyrt_clone_args a;
    long r;
    memset(&a, 0, sizeof a);
    a.flags = (uint64_t)(flags & ~0xffUL) | CLONE_INTO_CGROUP;
    /* clone3 refuses one with CLONE_PARENT (EINVAL): the child takes the exit signal of
     * the caller, which the runtime cloned with SIGCHLD */
    a.exit_signal = (flags & CLONE_PARENT) ? 0 : (flags & 0xff);
    a.cgroup = (uint64_t)cgroup_fd;
    r = syscall(SYS_clone3, &a, sizeof a);
    return r < 0 ? -errno : r;
}

/* ---- the init stub --------------------------------------------------------------------
 *
 * Nothing the runtime starts in a container may be a clone of the runtime: a clone's
 * /proc/<pid>/exe and map_files are the host's interpreter and libraries, which a container
 * process with CAP_SYS_PTRACE could open and later overwrite (CVE-2019-5736). So the runtime
 * only forks (vfork-style) and execs the init stub - this same code, linked statically,
 * from a sealed memfd copy - while it is still a host process, and hands it the spawn
 * description as a flat blob in a memfd. The stub joins the namespaces and clones the init
 * (or runs a hook): everything that becomes visible in a container is the stub. */

#define BLOB_MAGIC 0x70797274u /* "pyrt" */
#define BLOB_SPAWN 1
#define BLOB_HOOK 2

struct blob_hdr {
    uint32_t magic, mode;
    uint64_t size;
    uint64_t sp_off;
};

struct wbuf {
    char *p;
    size_t len, cap;
    int oom;
};

/* Append n bytes (zeroes when data is NULL), 16-aligned; returns the offset (never 0: the
 * header is first) or 0 when out of memory. Offsets stand for pointers in the blob. */
static size_t wput(struct wbuf *w, const void *data, size_t n)
{
    size_t off = (w->len + 15) & ~(size_t)15;
    if (w->oom)
        return 0;
    if (off + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        char *np;
        while (cap < off + n)
            cap *= 2;
        np = realloc(w->p, cap);
        if (!np) {
            w->oom = 1;
            return 0;
        }
        w->p = np;
        w->cap = cap;
    }
    memset(w->p + w->len, 0, off - w->len);
    if (data)
        memcpy(w->p + off, data, n);
    else
        memset(w->p + off, 0, n);
    w->len = off + n;
    return off;
}

static size_t wstr(struct wbuf *w, const char *str)
{
    return str ? wput(w, str, strlen(str) + 1) : 0;
}

static size_t wvec(struct wbuf *w, char *const *v)
{
    size_t n = 0, off, i;
    if (!v)
        return 0;
    while (v[n])
        n++;
    off = wput(w, NULL, (n + 1) * sizeof(uint64_t));
    for (i = 0; i < n && !w->oom; i++) {
        size_t so = wstr(w, v[i]);
        if (!w->oom)
            ((uint64_t *)(w->p + off))[i] = so;
    }
    return off;
}

/* Every pointer a step holds, by op: where it is in the step, what it points to, and (a
 * buffer) how many bytes. The blob's writer and reader walk exactly these. */
enum { PTR_STR, PTR_VEC, PTR_BUF };
struct step_ptr {
    size_t off;
    int kind;
    size_t len;
};

static int step_ptrs(const struct pyrt_step *s, struct step_ptr *out)
{
    int n = 0;
    out[n].off = offsetof(struct pyrt_step, late_error);
    out[n].kind = PTR_STR;
    out[n].len = 0;
    n++;
#define P(k, field, l) do { out[n].off = offsetof(struct pyrt_step, u.field); \
        out[n].kind = (k); out[n].len = (l); n++; } while (0)
#define STR(field) P(PTR_STR, field, 0)
#define VEC(field) P(PTR_VEC, field, 0)
    switch (s->op) {
    case OP_SYNC: STR(sync.tag); break;
    case OP_ROOT_PROPAGATION: case OP_PROPAGATION: case OP_UNSHARE: STR(flags.target); break;
    case OP_BIND_ROOTFS: STR(bind_rootfs.path); STR(bind_rootfs.parent); break;
    case OP_MOUNT:
        STR(mount.source); STR(mount.target); STR(mount.fstype); STR(mount.data);
        VEC(mount.fs_options);
        break;
    case OP_REMOUNT: STR(remount.target); break;
    case OP_SETATTR: STR(setattr.target); break;
    case OP_MKNOD: STR(mknod.target); break;
    case OP_BIND_DEVICE: STR(bind_device.source); STR(bind_device.target); break;
    case OP_SYMLINK: STR(symlink.target); STR(symlink.linkname); break;
    case OP_MKDIR: case OP_CHDIR: case OP_READONLY: STR(path.path); break;
    case OP_MASK: STR(mask.path); STR(mask.tmpfs_data); break;
    case OP_SETHOSTNAME: case OP_SETDOMAINNAME: case OP_KEYRING: STR(name.name); break;
    case OP_WRITE: STR(write.path); STR(write.data); break;
    case OP_CLOSE_FDS:
        P(PTR_BUF, close_fds.pass_fds, sizeof(int) * (size_t)(s->u.close_fds.npass > 0 ? s->u.close_fds.npass : 0));
        break;
    case OP_IDENTITY: VEC(identity.groups); break;
    case OP_SECCOMP: P(PTR_BUF, seccomp.program, s->u.seccomp.len); break;
    case OP_LOOKUP: case OP_EXEC: VEC(exec.args); VEC(exec.env); break;
    case OP_HOOK:
        STR(hook.path); VEC(hook.args); VEC(hook.env); STR(hook.state_head);
        STR(hook.state_tail); STR(hook.error_prefix);
        break;
    case OP_MEMPOLICY: case OP_AFFINITY: P(PTR_BUF, cpumask.mask, s->u.cpumask.len); break;
    case OP_NS_HOOK: STR(ns_hook.path); STR(ns_hook.cwd); VEC(ns_hook.args); VEC(ns_hook.env); break;
    default: break;
    }
#undef STR
#undef VEC
#undef P
    return n;
}

#define PTR_AT(step, off) ((void **)((char *)(step) + (off)))

#define W_AT(w, off, type) ((type *)((w)->p + (off)))
#define W_SET(field, off) ((field) = (__typeof__(field))(uintptr_t)(off))

/* The whole spawn description (steps, strings, vectors, buffers) as one pointer-free blob
 * in a memfd (close-on-exec; the exec'ing child keeps it). Returns the fd or -errno. */
static int write_blob(const struct pyrt_spawn *sp, int mode)
{
    struct wbuf w = { NULL, 0, 0, 0 };
    struct blob_hdr h;
    size_t hoff, spoff, stoff, o;
    int i, fd;
    char *p;
    size_t left;

    memset(&h, 0, sizeof h);
    hoff = 0;
    wput(&w, &h, sizeof h);
    spoff = wput(&w, sp, sizeof *sp);
    stoff = sp->nsteps > 0 ? wput(&w, sp->steps, sizeof(struct pyrt_step) * (size_t)sp->nsteps) : 0;
    if (!w.oom) W_SET(W_AT(&w, spoff, struct pyrt_spawn)->steps, stoff);
    o = sp->njoin > 0 ? wput(&w, sp->join_fds, sizeof(int) * (size_t)sp->njoin) : 0;
    if (!w.oom) W_SET(W_AT(&w, spoff, struct pyrt_spawn)->join_fds, o);
    o = sp->njoin > 0 ? wput(&w, sp->join_types, sizeof(int) * (size_t)sp->njoin) : 0;
    if (!w.oom) W_SET(W_AT(&w, spoff, struct pyrt_spawn)->join_types, o);
    o = sp->ncgroup_join > 0 ? wput(&w, sp->cgroup_join_fds, sizeof(int) * (size_t)sp->ncgroup_join) : 0;
    if (!w.oom) W_SET(W_AT(&w, spoff, struct pyrt_spawn)->cgroup_join_fds, o);
    o = wstr(&w, sp->timens_offsets);
    if (!w.oom) W_SET(W_AT(&w, spoff, struct pyrt_spawn)->timens_offsets, o);
    for (i = 0; i < sp->nsteps && !w.oom; i++) {
        const struct pyrt_step *src = &sp->steps[i];
        struct step_ptr ptrs[8];
        int k, np = step_ptrs(src, ptrs);
        for (k = 0; k < np && !w.oom; k++) {
            const void *v = *PTR_AT(src, ptrs[k].off);
            size_t o2 = 0;
            if (ptrs[k].kind == PTR_STR)
                o2 = wstr(&w, v);
            else if (ptrs[k].kind == PTR_VEC)
                o2 = wvec(&w, v);
            else if (v && ptrs[k].len)
                o2 = wput(&w, v, ptrs[k].len);
            /* w.p may have moved: the step is found again by its offset */
            if (!w.oom)
                *PTR_AT(W_AT(&w, stoff, struct pyrt_step) + i, ptrs[k].off) = (void *)(uintptr_t)o2;
        }
    }
    if (w.oom) {
        free(w.p);
        return -ENOMEM;
    }
    h.magic = BLOB_MAGIC;
    h.mode = (uint32_t)mode;
    h.size = w.len;
    h.sp_off = spoff;
    memcpy(w.p + hoff, &h, sizeof h);
    fd = (int)syscall(SYS_memfd_create, "pyrt-plan", MFD_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(w.p);
        return -e;
    }
    for (p = w.p, left = w.len; left > 0;) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            free(w.p);
            return -e;
        }
        p += n;
        left -= (size_t)n;
    }
    free(w.p);
    return fd;
}

/* The stub's side: map the blob and turn its offsets back into pointers. Every offset and
 * length is checked against the blob before it becomes a pointer, without an addition that
 * could wrap: a string ends (NUL) inside it, a vector's NULL is inside it, a buffer and an
 * array fit in it, each at its type's alignment. Anything else: NULL, nothing runs. */
static int blob_span(size_t size, uintptr_t off, size_t len, size_t align)
{
    return off && off < size && len <= size - off && off % align == 0;
}

static struct pyrt_spawn *read_blob(int fd, int *mode)
{
    struct stat st;
    char *base;
    struct blob_hdr *h;
    struct pyrt_spawn *sp;
    size_t size;
    int i;

/* an offset (0: NULL) into a pointer to `len` bytes at `align` */
#define FIXN(field, len, align) do { uintptr_t o_ = (uintptr_t)(field); \
        if (o_) { if (!blob_span(size, o_, (len), (align))) return NULL; \
                  (field) = (__typeof__(field))(base + o_); } } while (0)
#define FIXS(field) do { uintptr_t o_ = (uintptr_t)(field); \
        if (o_) { if (o_ >= size || !memchr(base + o_, 0, size - o_)) return NULL; \
                  (field) = (__typeof__(field))(base + o_); } } while (0)
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof *h)
        return NULL;
    size = (size_t)st.st_size;
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED)
        return NULL;
    h = (struct blob_hdr *)base;
    if (h->magic != BLOB_MAGIC || h->size != size ||
        !blob_span(size, (uintptr_t)h->sp_off, sizeof *sp, _Alignof(struct pyrt_spawn)))
        return NULL;
    *mode = (int)h->mode;
    sp = (struct pyrt_spawn *)(base + h->sp_off);
    if (sp->nsteps < 0 || sp->njoin < 0 || (sp->nsteps > 0 && !sp->steps) ||
        (sp->njoin > 0 && (!sp->join_fds || !sp->join_types)) || sp->ncgroup_join < 0 ||
        (sp->ncgroup_join > 0 && !sp->cgroup_join_fds))
        return NULL;
    FIXN(sp->steps, sizeof *sp->steps * (size_t)sp->nsteps, _Alignof(struct pyrt_step));
    FIXN(sp->join_fds, sizeof(int) * (size_t)sp->njoin, _Alignof(int));
    FIXN(sp->join_types, sizeof(int) * (size_t)sp->njoin, _Alignof(int));
    FIXN(sp->cgroup_join_fds, sizeof(int) * (size_t)sp->ncgroup_join, _Alignof(int));
    FIXS(sp->timens_offsets);
    for (i = 0; i < sp->nsteps; i++) {
        struct pyrt_step *s = &sp->steps[i];
        struct step_ptr ptrs[8];
        int k, np = step_ptrs(s, ptrs);
        for (k = 0; k < np; k++) {
            void **f = PTR_AT(s, ptrs[k].off);
            if (ptrs[k].kind == PTR_STR) {
                FIXS(*f);
            } else if (ptrs[k].kind == PTR_BUF) {
                FIXN(*f, ptrs[k].len, _Alignof(unsigned long long));
            } else {
                /* a vector: its entries, up to and including the NULL, inside the blob */
                uintptr_t o = (uintptr_t)*f;
                char **v;
                size_t n;
                if (!o)
                    continue;
                if (!blob_span(size, o, sizeof(char *), _Alignof(char *)))
                    return NULL;
                v = (char **)(base + o);
                for (n = 0;; n++) {
                    if ((size - o) / sizeof(char *) <= n)
                        return NULL;
                    if (!v[n])
                        break;
                    FIXS(v[n]);
                }
                *f = v;
            }
        }
    }
#undef FIXN
#undef FIXS
    return sp;
}

struct exec_child {
    int stub_fd, blob_fd;
    const int *fds;     /* to keep across the exec */
    int nfds;
    char *const *envp;
    volatile int err;
};

/* The vfork-style child: still the runtime (shared memory!), in no container namespace.
 * Everything but the listed fds goes at the exec. */
static int exec_child_fn(void *arg)
{
    struct exec_child *c = arg;
    char num[16];
    char *argv[3];
    int i;

    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        /* no close_range: the runtime's fds are close-on-exec anyway (Python's default) */
    }
    for (i = 0; i < c->nfds; i++)
        if (c->fds[i] >= 0 && fcntl(c->fds[i], F_SETFD, 0) < 0 && errno != EBADF) {
            c->err = errno;
            _exit(127);
        }
    snprintf(num, sizeof num, "%d", c->blob_fd);
    argv[0] = "pyrt-init";
    argv[1] = num;
    argv[2] = NULL;
    syscall(SYS_execveat, c->stub_fd, "", argv, c->envp, AT_EMPTY_PATH);
    c->err = errno ? errno : ENOEXEC;
    _exit(127);
}

extern char **environ;

/* Start the stub with the blob; returns its pid (our child) or -errno. */
static int start_stub(const struct pyrt_spawn *sp, int mode, const int *fds, int nfds)
{
    struct exec_child c;
    sigset_t all, old;
    size_t stack_size = 64 * 1024;
    char *stack;
    int blob, pid, keep[4096 + 16], n = 0, i;

    if (sp->stub_fd < 0)
        return -ENOEXEC;
    if (nfds > 4096)
        return -EINVAL;
    blob = write_blob(sp, mode);
    if (blob < 0)
        return blob;
    for (i = 0; i < nfds; i++)
        keep[n++] = fds[i];
    keep[n++] = blob;
    stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        close(blob);
        return -ENOMEM;
    }
    memset(&c, 0, sizeof c);
    c.stub_fd = sp->stub_fd;
    c.blob_fd = blob;
    c.fds = keep;
    c.nfds = n;
    c.envp = environ;
    /* no handler of the runtime may run in the child, which shares its memory */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = clone(exec_child_fn, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
    if (pid < 0)
        pid = -errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);
    close(blob);
    if (pid > 0 && c.err) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        memset(&g_last, 0, sizeof g_last);
        g_last.kind = MSG_ERROR;
        g_last.step = -4;
        g_last.err = c.err;
        return PYRT_STAGE_ERROR;
    }
    return pid;
}

/* The fds that steps `from`.. of the plan name, appended to out[n..max). */
static int step_fds(const struct pyrt_spawn *sp, int from, int *out, int n, int max)
{
    int i;
#define ADD(fd) do { if ((fd) >= 0 && n < max) out[n++] = (fd); } while (0)
    for (i = from; i < sp->nsteps; i++) {
        const struct pyrt_step *s = &sp->steps[i];
        if (s->op == OP_MOUNT)
            ADD(s->u.mount.mount_fd);
        else if (s->op == OP_SETATTR && s->u.setattr.userns_fd > 0)
            ADD(s->u.setattr.userns_fd);
        else if (s->op == OP_SETNS)
            ADD(s->u.setns.fd);
        else if (s->op == OP_DUP_STDIO) {
            int k;
            for (k = 0; k < 3; k++)
                ADD(s->u.dup_stdio.fds[k]);
        }
        else if (s->op == OP_CLOSE_FDS && s->u.close_fds.pass_fds) {
            int k;
            for (k = 0; k < s->u.close_fds.npass; k++)
                ADD(s->u.close_fds.pass_fds[k]);
        }
    }
#undef ADD
    return n;
}

/* The fds a spawn hands to the stub: the plan's own and the caller's preserved ones. */
static int spawn_fds(const struct pyrt_spawn *sp, int *out, int max)
{
    int n = 0, i;
    if (sp->sock >= 0 && n < max) out[n++] = sp->sock;
    if (sp->fifo_fd >= 0 && n < max) out[n++] = sp->fifo_fd;
    if (sp->cgroup_fd >= 0 && n < max) out[n++] = sp->cgroup_fd;
    for (i = 0; i < sp->njoin; i++)
        if (sp->join_fds[i] >= 0 && n < max)
            out[n++] = sp->join_fds[i];
    for (i = 0; i < sp->ncgroup_join; i++)
        if (sp->cgroup_join_fds[i] >= 0 && n < max)
            out[n++] = sp->cgroup_join_fds[i];
    return step_fds(sp, 0, out, n, max);
}

int pyrt_spawn(struct pyrt_spawn *sp)
{
    int fds[4096 + 64], nfds, pid;
    int st;
    struct pyrt_msg m;
    int fd = -1;
    int r;

    nfds = spawn_fds(sp, fds, (int)(sizeof fds / sizeof fds[0]));
    pid = start_stub(sp, BLOB_SPAWN, fds, nfds);
    if (pid < 0)
        return pid;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    r = pyrt_recv(sp->parent_sock, &m, &fd, 5000);
    if (r < 0)
        return r;
    if (fd >= 0)
        close(fd);
    if (m.kind == MSG_ERROR) {
        g_last = m;
        return PYRT_STAGE_ERROR;
    }
    if (m.kind != MSG_PID)
        return -EPROTO;
    sp->cgroup_errno = sp->cgroup_fd >= 0 ? m.err : ENOENT;
    sp->cgroup_join_errno = sp->ncgroup_join > 0 ? m.step : ENOENT;
    return m.value;
}

/* A directory that leads nowhere: an empty, detached tmpfs. A process that becomes visible
 * in a container without entering its mount namespace must not sit in a host directory
 * (/proc/<pid>/cwd would lead a ptracing container out). */
static void leave_host_cwd(void)
{
    int fs, mnt;
    fs = (int)syscall(SYS_fsopen, "tmpfs", 1 /* FSOPEN_CLOEXEC */);
    if (fs < 0)
        return;  /* unprivileged: the user namespace's own walls protect it */
    if (syscall(SYS_fsconfig, fs, 1 /* FSCONFIG_SET_STRING */, "size", "4k", 0) < 0 ||
        syscall(SYS_fsconfig, fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0) < 0) {
        close(fs);
        return;
    }
    mnt = (int)syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, 0x1 | 0x2 | 0x4 | 0x8);
    close(fs);
    if (mnt < 0)
        return;
    if (fchdir(mnt) < 0) {
        /* the cwd stays what it was */
    }
    close(mnt);
}

/* Stage 1 in the stub: join, then clone the init (CLONE_PARENT: the runtime's own child,
 * so `run` can wait for it), report its pid, exit. */
static __attribute__((noreturn)) void stub_spawn(struct pyrt_spawn *sp)
{
    int i, joins_mnt = 0, joins_pid = 0, cgns_fd = -1, cgns_step = 0;
    pid_t child;

    g_sock = sp->sock;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    for (i = 0; i < sp->njoin; i++) {
        g_step = -100 - i;
        if (sp->join_types[i] == CLONE_NEWCGROUP && sp->cgroup_fd >= 0) {
            /* joined by the child, after clone3: CLONE_INTO_CGROUP wants both the
               cgroup left and the one entered visible from the caller's cgroup
               namespace (nsdelegate), and the runtime's is not from the container's */
            cgns_fd = sp->join_fds[i];
            cgns_step = g_step;
            continue;
        }
        if (setns(sp->join_fds[i], sp->join_types[i]) < 0)
            fail(errno, NULL);
        if (sp->join_types[i] == CLONE_NEWNS)
            joins_mnt = 1;
        if (sp->join_types[i] == CLONE_NEWPID)
            joins_pid = 1;
        close(sp->join_fds[i]);
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
    /* joining a mount namespace moved the cwd to its root; otherwise an init visible in a
     * joined pid namespace would start in the runtime's cwd */
    if (joins_pid && !joins_mnt)
        leave_host_cwd();
    /* Into the container's cgroup v1 hierarchies before the clone, so that the init is born
     * there. "0" in `tasks` moves the writing thread alone, which the kernel does without
     * its threadgroup lock, whose first taking waits for an RCU grace period (6-14 ms
     * here); this process has one thread, so that is the whole process. The runtime moves
     * the init (cgroup.procs) after a failure, wherever the stub got to. */
    int join_err = 0;
    for (i = 0; i < sp->ncgroup_join; i++) {
        if (!join_err && write(sp->cgroup_join_fds[i], "0", 1) != 1)
            join_err = errno ? errno : EIO;
        close(sp->cgroup_join_fds[i]);   /* a host file: never the init's */
    }
    g_step = -3;
    /* the init inherits this: dumpable until the unprivileged runtime wrote its maps */
    if (sp->keep_dumpable)
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    {
        int cg_err = 0;
        child = -1;
        if (sp->cgroup_fd >= 0) {
            long r = clone_into_cgroup(sp->clone_flags | CLONE_PARENT | SIGCHLD, sp->cgroup_fd);
            if (r >= 0)
                child = (pid_t)r;
            else
                cg_err = (int)-r;
        }
        if (child < 0)
            child = raw_clone(sp->clone_flags | CLONE_PARENT | SIGCHLD);
        if (child < 0)
            fail(errno, NULL);
        if (child == 0) {
            if (sp->cgroup_fd >= 0)
                close(sp->cgroup_fd); /* a host directory: nothing in the container keeps it */
            if (cgns_fd >= 0) {
                g_step = cgns_step;
                if (setns(cgns_fd, CLONE_NEWCGROUP) < 0)
                    fail(errno, NULL);
                close(cgns_fd);
            }
            init_main(sp);
        }
        if (sp->cgroup_fd >= 0)
            close(sp->cgroup_fd);
        if (cgns_fd >= 0)
            close(cgns_fd);
        /* err: how the init was placed (0: born in cgroup_fd; else clone3's errno); step:
           the v1 joins' (0: all made) */
        send_msg(MSG_PID, join_err, cg_err, child, NULL);
    }
    _exit(0);
}

static void hook_exec(const char *path, char *const *argv, char *const *envp, int err_fd);

/* A hook in the container's namespaces, in the stub: join, fork (a pid namespace takes
 * effect for children only), exec. Exit status: the hook's (126: could not join). */
static __attribute__((noreturn)) void stub_hook(struct pyrt_spawn *sp)
{
    const struct pyrt_ns_hook *h;
    int i, st, err_fd;
    pid_t pid;

    if (sp->nsteps != 1 || sp->steps[0].op != OP_NS_HOOK)
        _exit(126);
    h = &sp->steps[0].u.ns_hook;
    err_fd = h->err_fd;

    setpgid(0, 0);
    for (i = 0; i < sp->njoin; i++) {
        if (setns(sp->join_fds[i], sp->join_types[i]) < 0)
            _exit(126);
        close(sp->join_fds[i]);
    }
    if (h->stdin_fd >= 0) dup2(h->stdin_fd, 0);
    if (h->stdout_fd >= 0) dup2(h->stdout_fd, 1);
    if (h->stderr_fd >= 0) dup2(h->stderr_fd, 2);
    for (i = 1; i <= 3; i++) {
        int fd = i == 1 ? h->stdin_fd : i == 2 ? h->stdout_fd : h->stderr_fd;
        if (fd > 2)
            close(fd);
    }
    if (h->cwd && chdir(h->cwd) < 0) {
        /* a bundle that vanished: run from where we are, as runc would */
    }
    pid = fork();
    if (pid < 0)
        _exit(126);
    if (pid == 0)
        hook_exec(h->path, h->args, h->env, err_fd);
    if (err_fd >= 0)
        close(err_fd);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st))
        _exit(WEXITSTATUS(st));
    _exit(128 + WTERMSIG(st));
}

/* main() of the stub (csrc/stub_main.c): argv[1] is the blob's fd. */
int pyrt_stub_main(int argc, char **argv)
{
    struct pyrt_spawn *sp;
    int mode = 0, fd, i;

    /* Before anything: nobody may look into this process (the init takes its own
     * decision about dumpability). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    {
        /* the runtime blocked every signal around the vfork; a hook must not inherit that */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    if (argc < 2)
        return 127;
    fd = atoi(argv[1]);
    sp = read_blob(fd, &mode);
    close(fd);
    if (!sp)
        return 127;
    /* All that was handed over goes at the final execve, unless the plan passes it on
     * (the caller's preserved fds: close_fds clears their close-on-exec again). */
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        int fds[4096 + 64], n = spawn_fds(sp, fds, (int)(sizeof fds / sizeof fds[0]));
        for (i = 0; i < n; i++)
            fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    if (mode == BLOB_HOOK)
        stub_hook(sp);
    if (mode == BLOB_SPAWN)
        stub_spawn(sp);
    return 127;
}

/* The sealed, private copy of the stub that every spawn execs: /proc/<pid>/exe of what the
 * runtime starts in a container leads only to this memfd, never to a host file. */
int pyrt_stub_open(const char *path)
{
    int src, mfd, e;
    struct stat st;
    off_t off = 0;

    src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        return -errno;
    if (fstat(src, &st) < 0) {
        e = errno;
        close(src);
        return -e;
    }
    mfd = (int)syscall(SYS_memfd_create, "pyrt-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0010U /* MFD_EXEC */);
    if (mfd < 0 && errno == EINVAL)
        mfd = (int)syscall(SYS_memfd_create, "pyrt-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0) {
        e = errno;
        close(src);
        return -e;
    }
    while (off < st.st_size) {
        ssize_t n = sendfile(mfd, src, &off, (size_t)(st.st_size - off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = n < 0 ? errno : EIO;
            close(src);
            close(mfd);
            return -e;
        }
    }
    close(src);
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | 0x0010 /* F_SEAL_FUTURE_WRITE */) < 0 &&
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
        e = errno;
        close(mfd);
        return -e;
    }
    return mfd;
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
                   int stderr_fd, const char *cwd, int err_fd, int stub_fd)
{
    pid_t pid;
    if (npaths > 0) {
        /* into the container's namespaces: only through the stub */
        struct pyrt_spawn sp;
        struct pyrt_step step;
        int keep[4096 + 8], n = 0, i;
        if (npaths > 4096)
            return -EINVAL;
        memset(&sp, 0, sizeof sp);
        memset(&step, 0, sizeof step);
        step.op = OP_NS_HOOK;
        step.u.ns_hook.path = path;
        step.u.ns_hook.cwd = cwd;
        step.u.ns_hook.args = argv;
        step.u.ns_hook.env = envp;
        step.u.ns_hook.stdin_fd = stdin_fd;
        step.u.ns_hook.stdout_fd = stdout_fd;
        step.u.ns_hook.stderr_fd = stderr_fd;
        step.u.ns_hook.err_fd = err_fd;
        sp.nsteps = 1;
        sp.steps = &step;
        sp.njoin = npaths;
        sp.join_fds = fds;
        sp.join_types = types;
        sp.sock = sp.parent_sock = sp.fifo_fd = sp.cgroup_fd = -1;
        sp.stub_fd = stub_fd;
        for (i = 0; i < npaths; i++)
            keep[n++] = fds[i];
        keep[n++] = stdin_fd;
        keep[n++] = stdout_fd;
        keep[n++] = stderr_fd;
        keep[n++] = err_fd;
        return start_stub(&sp, BLOB_HOOK, keep, n);
    }
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* its own process group: a timeout kills the hook (and any helper) together */
        setpgid(0, 0);
        if (stdin_fd >= 0) dup2(stdin_fd, 0);
        if (stdout_fd >= 0) dup2(stdout_fd, 1);
        if (stderr_fd >= 0) dup2(stderr_fd, 2);
        if (cwd && chdir(cwd) < 0) {
            /* a bundle that vanished: run from where the runtime is, as runc would */
        }
        hook_exec(path, argv, envp, err_fd);
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
