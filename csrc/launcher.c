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
#include <strings.h>
#include <dirent.h>
#include <signal.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "texts.h"

#define WARM_EVERY_MS 5
#define WARM_FOR_MS 150

/* global flags that take a value, as the CLI defines them */
static const char *const VALUE_FLAGS[] = {"log", "log-format", "root", "criu", "rootless", NULL};

static int places_a_process(const char *cmd)
{
    return !strcmp(cmd, "create") || !strcmp(cmd, "run") || !strcmp(cmd, "exec");
}

/*
 * Whether the warm-up child pays off for this command. The cgroupfs driver has the init
 * born in its cgroups: clone3 CLONE_INTO_CGROUP on cgroup v2 (and for the unified
 * hierarchy of a hybrid host), and on v1 its builder first moves its one thread itself
 * ("0" in `tasks`), which takes no threadgroup lock. create and run then move nothing,
 * and the child's first move would hold the cgroup mutex through a grace period (6-14
 * ms here), the very time create makes its cgroup dirs. exec's process is born there the
 * same way. Kept for an exec that moves its process (--cgroup, --ignore-paused: any
 * argument that reads so, a command's own included, which only costs a warm-up), the
 * systemd driver (systemd moves the init) and PYRT_CLONE_INTO_CGROUP=0. The launcher
 * reads no JSON, so an exec whose process asks for execCPUAffinity.initial is moved
 * without one; so is whatever the kernel refuses to place at birth. Such a move pays
 * the grace period in line: correct, slower. PYRT_WARMUP=0 turns it off everywhere,
 * PYRT_WARMUP=1 on (to measure both).
 */
static int wants_warmup(const char *cmd, int argc, char **argv)
{
    const char *warm = getenv("PYRT_WARMUP");
    if (warm && (!strcmp(warm, "0") || !strcmp(warm, "1")))
        return warm[0] == '1';
    const char *cic = getenv("PYRT_CLONE_INTO_CGROUP");
    if (cic && !strcmp(cic, "0"))
        return 1;
    if (!strcmp(cmd, "exec")) {
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i] + (argv[i][0] == '-' && argv[i][1] == '-');
            if (!strcmp(a, "-cgroup") || !strncmp(a, "-cgroup=", 8)
                    || !strcmp(a, "-ignore-paused") || !strncmp(a, "-ignore-paused=", 15))
                return 1;
        }
    }
    /* the systemd driver only where the flag says true (the CLI's boolean words), not
       for `--systemd-cgroup=false` */
    for (int i = 1; i < argc && strcmp(argv[i], cmd); i++) {
        const char *a = argv[i] + (argv[i][0] == '-' && argv[i][1] == '-');
        if (!strcmp(a, "-systemd-cgroup"))
            return 1;
        if (!strncmp(a, "-systemd-cgroup=", 16) && (!strcasecmp(a + 16, "1")
                || !strcasecmp(a + 16, "t") || !strcasecmp(a + 16, "true")))
            return 1;
    }
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

/* A small file's text, NUL-terminated: its length, or -1. */
static ssize_t read_text(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* "N:controllers:/path" of /proc/self/cgroup -> a cgroup.procs we are in */
static int procs_file(char *out, size_t len)
{
    char buf[8192];
    if (read_text("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
        return -1;
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
    ssize_t n = read_text(entry, buf, sizeof(buf));
    if (n < 0)
        return -1;
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

/* ======================================================================================
 * The fast path: start, state, kill and delete of a container in its ordinary state,
 * without the interpreter.
 *
 * `create` (Python) decided everything and wrote it down as <root>/<id>/fast.plan
 * (pyruntime/fastplan.py documents the format). Here that plan is performed for the
 * ordinary case only, with the checks the Python path makes (the same flock, the
 * state file's ownership, the init's pid + start time through a pidfd), plus one more:
 * the plan names state.json's identity, so a state file rewritten or damaged since
 * create voids it. Anything else -- an option or flag not listed here, a check that
 * does not hold, any error before the first change -- returns, and main() starts the
 * Python path with the same argv: every error message and every unusual case has one
 * implementation, there. PYRT_FASTPATH=0 turns this off; PYRT_FASTPATH_TRACE=FILE
 * appends one line per command saying which path ran, and "warmup CMD" when the cgroup
 * warm-up child is started (for the tests).
 * ====================================================================================== */

#define FP_PLAN "fast.plan"
/* the launcher's hand-off to the Python path: a start whose init failed after the start
   byte (cli/__init__.py Globals.start_error); never taken from the caller */
#define START_ERROR_ENV "PYRT_START_ERROR"
static int start_error_set;
#define FP_MAX_DIRS 64

struct fp_plan {
    unsigned long long st[7];   /* dev ino size mtime_s mtime_ns ctime_s ctime_ns */
    long pid;
    unsigned long long start_time;
    int freeze;                 /* 0 none, 1 v1 freezer.state, 2 v2 cgroup.freeze */
    char *freeze_path;
    int poststart, delete_ok;
    char *pids;
    char *leaf[FP_MAX_DIRS], *parent[FP_MAX_DIRS];
    int nleaf, nparent;
    char *head, *mid, *tail;
    int seen_state, seen_init, seen_json, end;
};

static const char *fp_cmd = "-";

static void fp_trace(const char *what, const char *why)
{
    const char *f = getenv("PYRT_FASTPATH_TRACE");
    if (!f || !*f)
        return;
    int fd = open(f, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[512];
    int n = snprintf(line, sizeof(line), "%s %s%s%s\n", what, fp_cmd, why ? ": " : "",
                     why ? why : "");
    if (n > 0 && write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0) {
        /* a trace that cannot be written is no reason to change what runs */
    }
    close(fd);
}

/* Not taken: the caller returns to main(), which runs the Python path. */
#define FALLBACK(why) do { fp_trace("fallback", why); goto fallback; } while (0)

/* runc's id rule, as pyruntime/ids.py */
static int fp_valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 1024 || !strcmp(s, ".") || !strcmp(s, ".."))
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '+' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* a value the CLI takes for a boolean flag (`--flag=VALUE`, pyruntime/cli parse_flags) */
static int fp_bool(const char *v)
{
    static const char *const OK[] = {"1", "t", "true", "0", "f", "false", NULL};
    for (const char *const *o = OK; *o; o++)
        if (!strcasecmp(v, *o))
            return 1;
    return 0;
}

/* pyruntime/api.py parse_signal, for the forms it accepts; 0 for anything else */
static int fp_signal(const char *s)
{
    static const struct { const char *name; int num; } SIGS[] = {
        {"HUP", 1}, {"INT", 2}, {"QUIT", 3}, {"ILL", 4}, {"TRAP", 5}, {"ABRT", 6},
        {"IOT", 6}, {"BUS", 7}, {"FPE", 8}, {"KILL", 9}, {"USR1", 10}, {"SEGV", 11},
        {"USR2", 12}, {"PIPE", 13}, {"ALRM", 14}, {"TERM", 15}, {"STKFLT", 16},
        {"CHLD", 17}, {"CONT", 18}, {"STOP", 19}, {"TSTP", 20}, {"TTIN", 21},
        {"TTOU", 22}, {"URG", 23}, {"XCPU", 24}, {"XFSZ", 25}, {"VTALRM", 26},
        {"PROF", 27}, {"WINCH", 28}, {"IO", 29}, {"POLL", 29}, {"PWR", 30}, {"SYS", 31},
    };
    size_t n = strlen(s);
    if (n == 0 || n > 16)
        return 0;
    if (s[0] >= '0' && s[0] <= '9') {
        int v = 0;
        for (const char *p = s; *p; p++) {
            if (*p < '0' || *p > '9')
                return 0;
            v = v * 10 + (*p - '0');
            if (v > 64)
                return 0;
        }
        return v;   /* 1..64; 0 is refused by Python */
    }
    char up[24];
    for (size_t i = 0; i <= n; i++)
        up[i] = (s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i];
    const char *name = strncmp(up, "SIG", 3) ? up : up + 3;
    for (size_t i = 0; i < sizeof(SIGS) / sizeof(SIGS[0]); i++)
        if (!strcmp(name, SIGS[i].name))
            return SIGS[i].num;
    return 0;   /* RTMIN+n and the like: Python's */
}

static char *fp_unhex(const char *h)
{
    if (!strcmp(h, "-"))
        return strdup("");
    size_t n = strlen(h);
    if (n % 2)
        return NULL;
    char *out = malloc(n / 2 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = h[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) {
                free(out);
                return NULL;
            }
            v = v * 16 + d;
        }
        if (v == 0) {   /* no NUL inside a path or the JSON */
            free(out);
            return NULL;
        }
        out[i] = (char)v;
    }
    out[n / 2] = '\0';
    return out;
}

static int fp_ull(const char *s, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno || *end ? -1 : 0;
}

/* A file of ours: a regular file owned by us (or root) that no one else may write, as
   state.py trusts state.json. */
static int fp_trusted(const struct stat *st)
{
    return S_ISREG(st->st_mode) && (st->st_uid == geteuid() || st->st_uid == 0)
           && !(st->st_mode & 022);
}

static int fp_read_plan(int dirfd, struct fp_plan *p)
{
    memset(p, 0, sizeof(*p));
    int fd = openat(dirfd, FP_PLAN, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !fp_trusted(&st) || st.st_size <= 0 || st.st_size > (1 << 20)) {
        close(fd);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t got = 0;
    while (buf && got < st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)(st.st_size - got));
        if (r <= 0)
            break;
        got += r;
    }
    close(fd);
    if (!buf || got != st.st_size) {
        free(buf);
        return -1;
    }
    buf[got] = '\0';
    int lineno = 0;
    for (char *line = buf, *next; *line; line = next) {
        next = strchr(line, '\n');
        if (!next)
            goto bad;   /* a plan ends with "end\n": a torn one is not read */
        *next++ = '\0';
        char *w[10];
        int nw = 0;
        for (char *t = strtok(line, " "); t && nw < 10; t = strtok(NULL, " "))
            w[nw++] = t;
        if (nw == 0 || p->end)
            goto bad;
        if (lineno++ == 0) {
            if (nw != 2 || strcmp(w[0], "pyrt-fastplan") || strcmp(w[1], "1"))
                goto bad;
        } else if (!strcmp(w[0], "state") && nw == 8) {
            for (int i = 0; i < 7; i++)
                if (fp_ull(w[i + 1], &p->st[i]) < 0)
                    goto bad;
            p->seen_state = 1;
        } else if (!strcmp(w[0], "init") && nw == 3) {
            unsigned long long pid;
            if (fp_ull(w[1], &pid) < 0 || pid < 2 || pid >= (1 << 22)
                || fp_ull(w[2], &p->start_time) < 0)
                goto bad;
            p->pid = (long)pid;
            p->seen_init = 1;
        } else if (!strcmp(w[0], "freeze") && nw >= 2) {
            if (!strcmp(w[1], "none") && nw == 2)
                p->freeze = 0;
            else if ((!strcmp(w[1], "v1") || !strcmp(w[1], "v2")) && nw == 3) {
                p->freeze = w[1][1] - '0';
                if (!(p->freeze_path = fp_unhex(w[2])) || p->freeze_path[0] != '/')
                    goto bad;
            } else
                goto bad;
        } else if (!strcmp(w[0], "poststart") && nw == 2) {
            p->poststart = strcmp(w[1], "0") != 0;
        } else if (!strcmp(w[0], "delete") && nw == 2) {
            p->delete_ok = !strcmp(w[1], "1");
        } else if ((!strcmp(w[0], "pids") || !strcmp(w[0], "leaf") || !strcmp(w[0], "parent"))
                   && nw == 2) {
            char *d = fp_unhex(w[1]);
            /* cgroup dirs, absolute, below /sys/fs/cgroup/ (state.py checks the record
               the same way when Python loads it) */
            if (!d || strncmp(d, "/sys/fs/cgroup/", 15) || strstr(d, "/../") || strstr(d, "/./")
                || d[strlen(d) - 1] == '/') {
                free(d);
                goto bad;
            }
            if (w[0][0] == 'p' && w[0][1] == 'i')
                p->pids = d;
            else if (w[0][0] == 'l' && p->nleaf < FP_MAX_DIRS)
                p->leaf[p->nleaf++] = d;
            else if (w[0][0] == 'p' && p->nparent < FP_MAX_DIRS)
                p->parent[p->nparent++] = d;
            else {
                free(d);
                goto bad;
            }
        } else if (!strcmp(w[0], "json") && nw == 4) {
            if (!(p->head = fp_unhex(w[1])) || !(p->mid = fp_unhex(w[2]))
                || !(p->tail = fp_unhex(w[3])))
                goto bad;
            p->seen_json = 1;
        } else if (!strcmp(w[0], "end") && nw == 1) {
            p->end = 1;
        } else
            goto bad;
    }
    free(buf);
    return p->end && p->seen_state && p->seen_init && p->seen_json ? 0 : -1;
bad:
    free(buf);
    return -1;
}

/* state.json is the very file create wrote the plan for, and trusted as Python trusts it */
static int fp_state_matches(int dirfd, const struct fp_plan *p)
{
    struct stat st;
    if (fstatat(dirfd, "state.json", &st, AT_SYMLINK_NOFOLLOW) < 0 || !fp_trusted(&st))
        return 0;
    unsigned long long now[7] = {
        (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
        (unsigned long long)st.st_size, (unsigned long long)st.st_mtim.tv_sec,
        (unsigned long long)st.st_mtim.tv_nsec, (unsigned long long)st.st_ctim.tv_sec,
        (unsigned long long)st.st_ctim.tv_nsec};
    return !memcmp(now, p->st, sizeof(now));
}

/* /proc/PID/stat: the state letter and the start time (field 22), as state.py reads them */
static int fp_proc_start(long pid, unsigned long long *start, char *letter)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (read_text(path, buf, sizeof(buf)) <= 0)
        return -1;
    char *r = strrchr(buf, ')');
    if (!r || r[1] != ' ')
        return -1;
    char *f = r + 2;
    *letter = *f;
    for (int i = 0; i < 19; i++) {
        f = strchr(f, ' ');
        if (!f)
            return -1;
        f++;
    }
    char *end;
    *start = strtoull(f, &end, 10);
    return end == f ? -1 : 0;
}

static int fp_alive(const struct fp_plan *p)
{
    unsigned long long s;
    char letter;
    if (fp_proc_start(p->pid, &s, &letter) < 0)
        return 0;
    return s == p->start_time && letter != 'Z' && letter != 'X';
}

/* sig to the init: a pidfd first, then the start time (the pidfd names that one process
   for good). -> the pidfd, or -1 with why set and nothing sent. */
static int fp_signal_init(const struct fp_plan *p, int sig, const char **why)
{
    int pfd = (int)syscall(SYS_pidfd_open, (pid_t)p->pid, 0);
    if (pfd < 0) {
        *why = "no pidfd";
        return -1;
    }
    if (!fp_alive(p)) {
        *why = "the init is not running";
    } else if (syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) < 0) {
        *why = "pidfd_send_signal";
    } else {
        return pfd;
    }
    close(pfd);
    return -1;
}

/* 1 frozen, 0 not, -1 cannot tell (then Python decides) */
static int fp_frozen(const struct fp_plan *p)
{
    if (p->freeze == 0)
        return 0;
    char buf[64];
    ssize_t n = read_text(p->freeze_path, buf, sizeof(buf));
    if (n <= 0)
        return -1;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (p->freeze == 2)
        return !strcmp(buf, "1");
    return !strcmp(buf, "FROZEN") || !strcmp(buf, "FREEZING");
}

/* state.py's Container.status() for a container whose state.json says "created";
   NULL: cannot tell. *fifo gets the fifo opened for writing when "created". */
static const char *fp_status(int dirfd, const struct fp_plan *p, int *fifo)
{
    *fifo = -1;
    if (!fp_alive(p))
        return "stopped";
    int fr = fp_frozen(p);
    if (fr < 0)
        return NULL;
    if (fr)
        return "paused";
    /* only the waiting init holds the fifo open for reading: ENXIO once it runs */
    int fd = openat(dirfd, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        *fifo = fd;
        return "created";
    }
    if (errno == ENOENT || errno == ENXIO)
        return "running";
    return NULL;
}

static int fp_write_all(int fd, const char *s, size_t n, size_t *done)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
        *done += (size_t)w;
    }
    return 0;
}

/* cgroup.procs of d lists no process (a missing cgroup has none) */
static int fp_cgroup_empty(const char *d)
{
    char path[PATH_MAX + 16], buf[64];
    if (snprintf(path, sizeof(path), "%s/cgroup.procs", d) >= (int)sizeof(path))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    return n == 0;
}

/* The state dir holds files only (a dir inside is remove_dir()'s rmtree: Python's) */
static int fp_flat(int dirfd)
{
    int fd = dup(dirfd);
    if (fd < 0)
        return 0;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return 0;
    }
    rewinddir(d);
    int ok = 1;
    for (struct dirent *e; ok && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (e->d_type == DT_DIR
            || (e->d_type == DT_UNKNOWN && (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0
                                            || S_ISDIR(st.st_mode))))
            ok = 0;
    }
    closedir(d);
    return ok;
}

/* teardown.delete() for a stopped container whose plan says the rest is cgroup dirs and
   the state dir: -1 before any change (take the Python path), else the exit status */
static int fp_delete(int dirfd, const char *dir, const struct fp_plan *p)
{
    if (!p->delete_ok) {
        fp_trace("fallback", "hooks, devices or a cgroup driver the plan leaves to Python");
        return -1;
    }
    if (!fp_flat(dirfd)) {
        fp_trace("fallback", "the state dir is not flat");
        return -1;
    }
    /* processes left in the cgroup: Python decides whose they are */
    if (p->pids && !fp_cgroup_empty(p->pids)) {
        fp_trace("fallback", "processes remain in the cgroup");
        return -1;
    }
    for (int i = 0; i < p->nleaf; i++) {
        if (rmdir(p->leaf[i]) < 0 && errno != ENOENT) {
            /* Python's destroy() repeats the removals done (gone: skipped) and decides */
            fp_trace("fallback", "a cgroup dir cannot be removed");
            return i == 0 ? -1 : -2;
        }
    }
    for (int i = 0; i < p->nparent; i++)
        rmdir(p->parent[i]);   /* only if empty now: a neighbour's cgroup keeps it */
    int fd = dup(dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        fp_trace("fallback", "cannot list the state dir");
        return -2;
    }
    rewinddir(d);   /* the offset is shared with dirfd, which fp_flat() read through */
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd, e->d_name, 0) < 0 && errno != ENOENT) {
            fprintf(stderr, "pyruntime: delete: unlink %s/%s: %s\n", dir, e->d_name,
                    err_text(errno));
            rc = 1;
        }
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) < 0 && errno != ENOENT) {
        fprintf(stderr, "pyruntime: delete: rmdir %s: %s\n", dir, err_text(errno));
        rc = 1;
    }
    return rc;
}

/* Hold `start` until the init has exec'd the user's process, as api._wait_exec does: the
   init's end of the fifo is close-on-exec, so a reader sees EOF at that exec, or at the
   init's death after it wrote why a step after start failed (into buf, NUL-terminated
   by the caller; returns its length). Closes wfd. */
static size_t fp_wait_exec(int dirfd, int wfd, const struct fp_plan *p, char *buf, size_t cap)
{
    size_t n = 0;
    int rfd = openat(dirfd, "exec.fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (rfd < 0) {
        close(wfd);
        return 0;
    }
    /* a reader must not take the start byte: wait until the init has read it */
    for (;;) {
        int avail = 0;
        if (ioctl(rfd, FIONREAD, &avail) < 0 || avail == 0 || !fp_alive(p))
            break;
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
    }
    close(wfd);
    fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) & ~O_NONBLOCK);
    for (;;) {
        char chunk[4096];
        ssize_t r = read(rfd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t k = (size_t)r < cap - 1 - n ? (size_t)r : cap - 1 - n;
        memcpy(buf + n, chunk, k);
        n += k;
    }
    close(rfd);
    if (n > 0 && buf[0] == '0') {
        /* our start byte, when the init died before reading it (no message says "0...") */
        memmove(buf, buf + 1, n - 1);
        n--;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    return n;
}

static const char *command_of(int argc, char **argv);

static void fast_path(int argc, char **argv)
{
    const char *v = getenv("PYRT_FASTPATH");
    if (v && !strcmp(v, "0"))
        return;   /* off: not even a trace line */
    const char *c = command_of(argc, argv);
    if (!c || (strcmp(c, "start") && strcmp(c, "state") && strcmp(c, "kill")
               && strcmp(c, "delete")))
        return;   /* not a command of this path */
    fp_cmd = c;
    const char *root = NULL, *log = NULL;
    int i = 1, dirfd = -1, fifo = -1;
    struct fp_plan plan;
    memset(&plan, 0, sizeof(plan));
    char dir[PATH_MAX];
    /* the global options engines pass; any other (or another spelling) is Python's */
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i] + 1 + (argv[i][1] == '-');
        const char *eq = strchr(a, '=');
        size_t k = eq ? (size_t)(eq - a) : strlen(a);
        const char **dest = NULL;
        if (k == 4 && !strncmp(a, "root", 4))
            dest = &root;
        else if (k == 3 && !strncmp(a, "log", 3))
            dest = &log;
        else if (k == 10 && !strncmp(a, "log-format", 10)) {
            const char *f = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!f || (strcmp(f, "text") && strcmp(f, "json")))
                FALLBACK("a --log-format this path does not know");
            continue;
        } else if ((k == 5 && !strncmp(a, "debug", 5)) || (k == 14 && !strncmp(a, "systemd-cgroup", 14))) {
            /* neither changes what these commands do or print when they work (the cgroup
               driver is the one create recorded); engines also pass `=true` */
            if (eq && !fp_bool(eq + 1))
                FALLBACK("a boolean value this path does not know");
            continue;
        } else
            FALLBACK("a global option this path does not handle");
        if (eq)
            *dest = eq + 1;
        else if (i + 1 < argc)
            *dest = argv[++i];
        else
            FALLBACK("an option without its value");
    }
    if (i >= argc)
        return;
    fp_cmd = argv[i];
    char **args = argv + i + 1;
    int nargs = argc - i - 1, force = 0, sig = 0;
    int is_start = !strcmp(fp_cmd, "start"), is_state = !strcmp(fp_cmd, "state");
    int is_kill = !strcmp(fp_cmd, "kill"), is_delete = !strcmp(fp_cmd, "delete");
    if (!is_start && !is_state && !is_kill && !is_delete)
        FALLBACK("a command this path does not run");   /* "--" before it, say */
    if (getenv("PYRUNTIME_FAULT"))
        FALLBACK("fault injection");
    while (is_delete && nargs > 0 && (!strcmp(args[0], "-f") || !strcmp(args[0], "--force")
                                      || !strcmp(args[0], "-force"))) {
        force = 1;
        args++;
        nargs--;
    }
    if (nargs < 1 || nargs > (is_kill ? 2 : 1) || args[0][0] == '-')
        FALLBACK("arguments this path does not handle");
    const char *id = args[0];
    if (!fp_valid_id(id))
        FALLBACK("an invalid id");
    if (is_kill && !(sig = fp_signal(nargs > 1 ? args[1] : "SIGTERM")))
        FALLBACK("a signal this path does not parse");
    if (!root) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (geteuid() != 0 && xdg && *xdg) {
            static char xroot[PATH_MAX];
            if (snprintf(xroot, sizeof(xroot), "%s/pyruntime", xdg) >= (int)sizeof(xroot))
                FALLBACK("root path too long");
            root = xroot;
        } else
            root = "/run/pyruntime";
    }
    if (!*root || snprintf(dir, sizeof(dir), "%s/%s", root, id) >= (int)sizeof(dir))
        FALLBACK("an unusual root");
    if (log && *log && strcmp(log, "/dev/stderr")) {
        /* the Python path opens (creates) the log first thing, whatever the command */
        int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (lfd < 0)
            FALLBACK("the log cannot be opened");
        close(lfd);
    }
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0) {
        if (errno == ENOENT && is_delete && force) {
            fp_trace("fast", NULL);   /* delete --force of what is not there: nothing to do */
            exit(0);
        }
        FALLBACK("no state dir");
    }
    /* start and delete change the container: under the lock Python takes too */
    if ((is_start || is_delete) && flock(dirfd, LOCK_EX) < 0)
        FALLBACK("flock");
    if (fp_read_plan(dirfd, &plan) < 0)
        FALLBACK("no valid plan");
    if (!fp_state_matches(dirfd, &plan))
        FALLBACK("state.json is not the one the plan was made for");

    if (is_state) {
        const char *status = fp_status(dirfd, &plan, &fifo);
        if (fifo >= 0)
            close(fifo);
        if (!status)
            FALLBACK("status not clear");
        char pid[24];
        snprintf(pid, sizeof(pid), "%ld", strcmp(status, "stopped") ? plan.pid : 0L);
        size_t done = 0;
        signal(SIGPIPE, SIG_IGN);   /* as the interpreter: EPIPE, not death */
        if (fp_write_all(1, plan.head, strlen(plan.head), &done) < 0
            || fp_write_all(1, pid, strlen(pid), &done) < 0
            || fp_write_all(1, plan.mid, strlen(plan.mid), &done) < 0
            || fp_write_all(1, "\"", 1, &done) < 0
            || fp_write_all(1, status, strlen(status), &done) < 0
            || fp_write_all(1, "\"", 1, &done) < 0
            || fp_write_all(1, plan.tail, strlen(plan.tail), &done) < 0) {
            signal(SIGPIPE, SIG_DFL);
            if (done == 0)
                FALLBACK("stdout");
            fp_trace("fast", "stdout failed");
            exit(120);   /* what the interpreter reports for a failed flush */
        }
        fp_trace("fast", NULL);
        exit(0);
    }
    if (is_kill) {
        const char *why;
        int pfd = fp_signal_init(&plan, sig, &why);
        if (pfd < 0)
            FALLBACK(why);
        close(pfd);
        fp_trace("fast", NULL);
        exit(0);
    }
    if (is_start) {
        if (plan.poststart)
            FALLBACK("poststart hooks");
        const char *status = fp_status(dirfd, &plan, &fifo);
        if (!status || strcmp(status, "created"))
            FALLBACK("not created");
        if (write(fifo, "0", 1) != 1)
            FALLBACK("fifo write");
        static char late[65536];
        size_t nlate = fp_wait_exec(dirfd, fifo, &plan, late, sizeof(late));
        fifo = -1;
        int rc = 0;
        if (unlinkat(dirfd, "exec.fifo", 0) < 0 && errno != ENOENT) {
            fprintf(stderr, "pyruntime: start: unlink %s/exec.fifo: %s\n", dir, err_text(errno));
            rc = 1;
        }
        if (nlate) {
            /* the init failed after the start byte and wrote why: the Python path words
               the line (--log, --log-format) from what the launcher hands it */
            late[nlate] = '\0';
            if (setenv(START_ERROR_ENV, late, 1) == 0) {
                start_error_set = 1;
                fp_trace("fast", "the init failed after start: Python reports it");
                goto fallback;
            }
            fprintf(stderr, "pyruntime: start: %s\n", late);
            rc = 1;
        }
        fp_trace("fast", NULL);
        exit(rc);
    }
    /* delete, with or without --force, of a stopped container; with --force also of a
       live one (teardown._teardown): SIGKILL to the init, named by a pidfd and then its
       start time as kill does, and a wait for it (10 s) before the same removal. A
       frozen cgroup (its task cannot die until thawed) and everything fp_delete() leaves
       to Python go there before anything changes; after the signal Python finishes
       what the fast path does not (it finds the init dead or dying). */
    if (fp_alive(&plan)) {
        if (!force)
            FALLBACK("the init is alive");
        if (!plan.delete_ok)
            FALLBACK("hooks, devices or a cgroup driver the plan leaves to Python");
        if (fp_frozen(&plan) != 0)
            FALLBACK("the cgroup is frozen, or its state cannot be read");
        const char *why;
        int pfd = fp_signal_init(&plan, SIGKILL, &why);
        if (pfd < 0)
            FALLBACK(why);
        struct pollfd pf = { pfd, POLLIN, 0 };
        int r;
        do {
            r = poll(&pf, 1, 10000);
        } while (r < 0 && errno == EINTR);
        close(pfd);
        if (r <= 0)
            FALLBACK("the init did not exit");
    }
    int rc = fp_delete(dirfd, dir, &plan);
    if (rc < 0)
        goto fallback;
    fp_trace("fast", NULL);
    exit(rc);

fallback:
    if (fifo >= 0)
        close(fifo);
    if (dirfd >= 0)
        close(dirfd);   /* and the lock with it, before Python takes it */
}

/*
 * The interpreter starts in the C locale, whatever the caller's: under any other locale
 * it loads that locale's files (or, from C, coerces itself to C.UTF-8 and loads those):
 * ~130 KiB of peak RSS on every create and exec, for an encoding that is UTF-8 either
 * way (-X utf8, as in runc, bytes pass through). The caller's LC_ALL is handed over in
 * PYRT_LC_ALL ("u": it was unset, "s" + value) and put back by the CLI's entry() before
 * anything runs, so hooks and whatever else inherits our environment get the caller's.
 */
static void c_locale_for_interpreter(void)
{
    const char *was = getenv("LC_ALL");
    if (was && !strcmp(was, "C")) {
        unsetenv("PYRT_LC_ALL");   /* a caller's own would be taken for ours */
        return;
    }
    size_t n = was ? strlen(was) : 0;
    char *mark = malloc(n + 2);
    if (!mark)
        return;
    mark[0] = was ? 's' : 'u';
    memcpy(mark + 1, was ? was : "", n + 1);
    if (setenv("PYRT_LC_ALL", mark, 1) == 0 && setenv("LC_ALL", "C", 1) < 0)
        unsetenv("PYRT_LC_ALL");
    free(mark);
}

int main(int argc, char **argv)
{
    unsetenv(START_ERROR_ENV);
    fast_path(argc, argv);   /* returns only when the Python path must run */
    const char *cmd = command_of(argc, argv);
    if (cmd && places_a_process(cmd) && wants_warmup(cmd, argc, argv)) {
        fp_cmd = cmd;
        fp_trace("warmup", NULL);
        warm_cgroup_migration();
    }
    /* our own file with symlinks resolved: /usr/local/bin/pyruntime may link to a venv's */
    static char entry[PATH_MAX + 8], python[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", entry, PATH_MAX);
    if (n <= 0 || n >= PATH_MAX) {
        fprintf(stderr, "pyruntime: cannot find the launcher's own path: %s\n",
                n < 0 ? err_text(errno) : "too long");
        return 127;
    }
    memcpy(entry + n, "-entry", sizeof("-entry"));
    if (interpreter_of(entry, python, sizeof(python)) < 0) {
        fprintf(stderr, "pyruntime: no interpreter in %s: %s\n", entry, err_text(errno));
        return 127;
    }
    char **args = calloc((size_t)argc + 4, sizeof(char *));
    if (!args) {
        fputs("pyruntime: out of memory\n", stderr);
        return 1;
    }
    c_locale_for_interpreter();
    int k = 0;
    /* not our own name: from argv[0] the interpreter would look for its prefix (and a
       pyvenv.cfg) next to this launcher */
    args[k++] = python;
    args[k++] = "-IS";
    args[k++] = "-Xutf8";
    args[k++] = entry;
    for (int i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    execv(python, args);
    fprintf(stderr, "pyruntime: cannot run %s: %s\n", python, err_text(errno));
    return 127;
}
