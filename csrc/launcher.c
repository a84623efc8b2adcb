/*
 * The `pyruntime` command: starts the Python CLI, and for create/run/exec first sets off
 * the one slow kernel step those commands hit.
 *
 * Moving a process between cgroups takes the global cgroup_threadgroup_rwsem for write;
 * after a quiet spell the first such write waits for an RCU grace period (5-15 ms on the
 * project's VM), holding cgroup_mutex, and a write within the following grace period is
 * fast. create/run/exec must place a process, so a throw-away child writes its own pid
 * into the cgroup it is already in (a no-op move) while the interpreter starts, and
 * again every few ms until the launched runtime is done: that wait then overlaps ~10 ms
 * of start-up instead of following it. A child, not a thread: an exec waits for every
 * other thread of the process to exit.
 *
 * Nothing here decides anything about containers: a failed or skipped warm-up only costs
 * time.
 *
 * The Python half is the script next to this binary, `<self>-entry`, and the interpreter
 * is the one its `#!` line names. Nothing is compiled in, so one binary serves every
 * install: a wheel is built before anyone knows where it will be installed, and pip
 * writes the interpreter of the environment it installs into on that `#!` line (a
 * `#!python` script of the wheel). setup.py builds it for wheels, sdists and `pip
 * install .`; pyruntime/install_launcher.py for a development tree.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WARM_EVERY_MS 5
#define WARM_FOR_MS 150

/* global flags that take a value, as the CLI defines them */
static const char *const VALUE_FLAGS[] = {"log", "log-format", "root", "criu", "rootless", NULL};

static int places_a_process(const char *cmd)
{
    return !strcmp(cmd, "create") || !strcmp(cmd, "run") || !strcmp(cmd, "exec");
}

/*
 * Whether the warm-up child pays off for this command. On a cgroup v2-only host the
 * cgroupfs driver clones the init straight into its cgroup (clone3 CLONE_INTO_CGROUP):
 * create and run then move nothing, and the child's own moves would only take the
 * write lock that clone3 (a reader, like every fork) may then wait behind. Kept for
 * exec (the process is still moved), v1/hybrid hosts (create 41.3 ms with it, 46.9
 * without, CPU 20.3 vs 20.7 ms; on a machine at load 10-15 it cost instead: README
 * "Performance" has the figures), the systemd driver
 * (systemd moves the init) and PYRT_CLONE_INTO_CGROUP=0. Where clone3 is refused the
 * runtime falls back to a move that pays the grace period in line: correct, slower.
 * PYRT_WARMUP=0 turns it off everywhere, PYRT_WARMUP=1 on (to measure both).
 */
static int wants_warmup(const char *cmd, int argc, char **argv)
{
    const char *warm = getenv("PYRT_WARMUP");
    if (warm && (!strcmp(warm, "0") || !strcmp(warm, "1")))
        return warm[0] == '1';
    if (!strcmp(cmd, "exec"))
        return 1;
    const char *cic = getenv("PYRT_CLONE_INTO_CGROUP");
    if (cic && !strcmp(cic, "0"))
        return 1;
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0)
        return 1;   /* v1 or hybrid: the init is moved */
    for (int i = 1; i < argc && strcmp(argv[i], cmd); i++)
        if (!strcmp(argv[i], "--systemd-cgroup") || !strncmp(argv[i], "--systemd-cgroup=", 17))
            return 1;
    return 0;
}

/* The command word: the first argument after the global flags. */
static const char *command_of(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0')
            return a;
        if (!strcmp(a, "--"))
            return i + 1 < argc ? argv[i + 1] : NULL;
        const char *name = a + 1 + (a[1] == '-');
        if (strchr(name, '='))
            continue;
        for (const char *const *f = VALUE_FLAGS; *f; f++) {
            if (!strcmp(name, *f)) {
                i++;
                break;
            }
        }
    }
    return NULL;
}

/* "N:controllers:/path" of /proc/self/cgroup -> a cgroup.procs we are in */
static int procs_file(char *out, size_t len)
{
    char buf[8192];
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    int found = -1;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *ctrl = c1 + 1, *path = c2 + 1;
        const char *sep = strcmp(path, "/") ? "/" : "";
        if (!strcmp(line, "0") && ctrl[0] == '\0' && found < 0) {
            const char *base = access("/sys/fs/cgroup/unified", F_OK) == 0
                               ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
            if (snprintf(out, len, "%s%s%scgroup.procs", base, path, sep) < (int)len)
                found = 0;
        } else if (!strcmp(ctrl, "pids") || !strcmp(ctrl, "freezer") || !strcmp(ctrl, "devices")) {
            /* a v1 hierarchy first: on hybrid hosts the v2 one may have no controllers */
            if (snprintf(out, len, "/sys/fs/cgroup/%s%s%scgroup.procs", ctrl, path, sep) < (int)len)
                return 0;
        }
    }
    return found;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void warm_cgroup_migration(void)
{
    pid_t launcher = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return; /* the launcher, or fork failed: go on either way */
    /* hold nothing of the caller's: no stdio pipe kept open, no cwd pinned */
    syscall(SYS_close_range, 0U, ~0U, 0U);
    if (chdir("/") < 0)
        _exit(0);
    /* named for what it is in ps/top, not a second copy of the command; last, so the
       name also says the caller's files are let go */
    prctl(PR_SET_NAME, "pyrt-cg-warmup", 0, 0, 0);
    char path[4096], me[24];
    if (procs_file(path, sizeof(path)) != 0)
        _exit(0);
    int n = snprintf(me, sizeof(me), "%d", (int)getpid());
    /* The fast state lasts about one grace period after the last move (under 20 ms
       here, measured): re-moving every WARM_EVERY_MS (~40 us each) keeps it until the
       launcher has placed its process, or exited, or WARM_FOR_MS passed. */
    double end = now_ms() + WARM_FOR_MS;
    do {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        ssize_t w = write(fd, me, n);
        close(fd);
        if (w < 0)
            break; /* not allowed (rootless, read-only cgroupfs): no warm-up, no harm */
        struct timespec pause = {0, WARM_EVERY_MS * 1000000L};
        nanosleep(&pause, NULL);
    } while (getppid() == launcher && now_ms() < end);
    _exit(0);
}

/*
 * The interpreter named by the entry script's first line: `#!PATH` (what pip writes, even
 * with spaces in PATH), a kernel-style `#!PATH ARG` (install_launcher), or the /bin/sh
 * trampoline other installers write for a path the kernel cannot take (spaces, over
 * 127 bytes):
 *     #!/bin/sh
 *     '''exec' "/path/to/python" "$0" "$@"
 */
static int interpreter_of(const char *entry, char *out, size_t len)
{
    char buf[2 * PATH_MAX + 64];
    int fd = open(entry, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    if (n < 3 || buf[0] != '#' || buf[1] != '!') {
        errno = ENOEXEC;
        return -1;
    }
    char *p = buf + 2 + strspn(buf + 2, " \t");
    char *line2 = strchr(p, '\n');
    size_t k;
    static const char TRAMPOLINE[] = "/bin/sh\n'''exec' ";
    if (!strncmp(p, TRAMPOLINE, 7) && line2 && !strncmp(line2, TRAMPOLINE + 7, 10)) {
        p = line2 + 10;
        if (*p == '"')
            k = strcspn(++p, "\"\n");
        else
            k = strcspn(p, " \t\r\n");
    } else {
        k = strcspn(p, "\r\n");
        while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
            k--;
        /* the whole line unless that is no executable: then up to a blank, as the kernel */
        if (k < len) {
            memcpy(out, p, k);
            out[k] = '\0';
        }
        if (k >= len || access(out, X_OK) != 0)
            k = strcspn(p, " \t\r\n");
    }
    if (k == 0 || k >= len || p[0] != '/') {
        errno = ENOEXEC;
        return -1;
    }
    memcpy(out, p, k);
    out[k] = '\0';
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = command_of(argc, argv);
    if (cmd && places_a_process(cmd) && wants_warmup(cmd, argc, argv))
        warm_cgroup_migration();
    /* our own file with symlinks resolved: /usr/local/bin/pyruntime may link to a venv's */
    static char entry[PATH_MAX + 8], python[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", entry, PATH_MAX);
    if (n <= 0 || n >= PATH_MAX) {
        fprintf(stderr, "pyruntime: cannot find the launcher's own path: %s\n",
                n < 0 ? strerror(errno) : "too long");
        return 127;
    }
    memcpy(entry + n, "-entry", sizeof("-entry"));
    if (interpreter_of(entry, python, sizeof(python)) < 0) {
        fprintf(stderr, "pyruntime: no interpreter in %s: %s\n", entry, strerror(errno));
        return 127;
    }
    char **args = calloc((size_t)argc + 4, sizeof(char *));
    if (!args) {
        fputs("pyruntime: out of memory\n", stderr);
        return 1;
    }
    int k = 0;
    /* not our own name: from argv[0] the interpreter would look for its prefix (and a
       pyvenv.cfg) next to this launcher */
    args[k++] = python;
    args[k++] = "-IS";
    args[k++] = entry;
    for (int i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execv(python, args);
    fprintf(stderr, "pyruntime: cannot run %s: %s\n", python, strerror(errno));
    return 127;
}
