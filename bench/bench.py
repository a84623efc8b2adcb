#!/usr/bin/env python3
"""pyruntime vs runc on the same busybox bundle and the same config.

    .venv/bin/python bench/bench.py            # 30 iterations per runtime (fewer for the
                                               # slow ones: throughput, memory)
    .venv/bin/python bench/bench.py --smoke    # few iterations, small batches, no
                                               # thresholds (run-tests.sh); ~20-40 s
    .venv/bin/python bench/bench.py -n 100 --only run_true,exec_true --json out.json
    .venv/bin/python bench/bench.py --markdown # the table as Markdown (README)

Config: the runc `spec` default with terminal false and args ["/bin/true"] (other bundles
share the same rootfs and change only what their benchmark is about). Each runtime has its
own --root under one temp dir; every iteration uses fresh container ids and deletes its
containers. Runtimes alternate A B A B after warm-up so drift hits both alike (except
state/list, see there). The table shows medians, the ratio pyruntime/runc (lower is
better, for time and memory alike), the target ratio and whether it is met, and a floor
where one makes sense: the same work with no runtime at all.

Benchmarks (names for --only):
  run_true    `run` of /bin/true, wall time. Floor: unshare(1) of the same namespaces +
              chroot + /bin/true.
  lifecycle   create, start, wait for exit, delete: separate processes, as containerd does.
  kill        `kill <id> CONT` of a running `sleep` container (created once per runtime).
  exec_true   `exec` of /bin/true (foreground, no tty) into a running `sleep` container
              created once per runtime. Floor: nsenter(1) into that container's namespaces.
  seccomp     `create` with the Docker default profile (spec-fixtures/seccomp/) as
              linux.seccomp, timed alone (delete is outside the timed part); also create
              without it and the difference (information only). pyruntime caches compiled
              filters by content (/var/cache/pyruntime): after warm-up the cache is hot, as
              on a node that keeps starting containers with Docker's profile.
  throughput  100 `run`s of /bin/true (6 with --smoke), two workers in parallel, wall time of
              the batch. Floor: the same batch of unshare(1) runs.
  state_list  `state <id>`, `list`, `list -f json` with 500 created (not started)
              containers (20 with --smoke) in a separate --root. Those containers exist for
              one runtime at a time (runs are per runtime, not alternated): 500 idle inits
              of both runtimes at once would take gigabytes of a shared machine.
  memory      peak RSS of the runtime process for `create` and for `exec` (ru_maxrss from
              wait4 in a small C helper: the process and the descendants it reaped), VmRSS of the container's
              init between create and start, and its anonymous memory (Pss_Anon, what
              grows with the number of containers; information only).
  ctr_run     `ctr run --rm` of /bin/true through a private containerd (tests/engines
              helpers: own socket/root/state under a temp dir, cgroupfs, a locally built
              busybox image), `--runc-binary` pyruntime vs runc. Skipped, with a note in the
              table, when containerd is not installed (tools/engines/install.sh).
  create_variants  `create` as it is (the init born in its cgroups, no warm-up child), with
              the launcher's warm-up child anyway (PYRT_WARMUP=1), and with the init moved
              into its cgroups instead (PYRT_CLONE_INTO_CGROUP=0), with and without the
              warm-up child: wall time and user+sys CPU of each, the CPU
              measured apart through a child-subreaper helper so the warm-up child (an
              orphan once the runtime exits) is counted. runc ignores the variables.
  docker_run  `docker run --rm --network none` of the busybox image through a private
              dockerd (tests/engines/test_docker.py's set-up), `--runtime` pyruntime vs
              runc (both registered with --add-runtime). Full bench only.
  podman_run  `podman --runtime X run --rm` of the busybox image, podman confined to a temp
              dir as in tests/engines/test_podman.py. Full bench only.
Both engine rows are skipped with the reason printed under --smoke or where the engine is
not installed. After the table, the moonshot line: `run /bin/true` against 0.6 of runc.

Exit status: 1 if any benchmark failed for either runtime or anything was left behind
(containers, processes, cgroups, mounts, daemons); targets are reported, never enforced
unless --max-ratio is given (ignored with --smoke).

Adding a benchmark: write `def name(b, rt) -> {phase: value}` decorated with
`@benchmark("label")`; one iteration per call, values are seconds (or bytes with
unit="MiB"), phases become table rows (a single phase named "" or "total" is the
benchmark's own row). Options: floor=callable(b, ctxs) -> seconds; fixture=a generator
(b, rt) set up once per runtime, its yielded value passed as a third argument; shared=a
generator (b) set up once for both runtimes (passed as the third argument when there is no
fixture); info=phases shown without a target; max_iterations/max_warmup caps; alternate;
cpu=False to drop the CPU row. Every benchmark in ms gets an information row "CPU user+sys":
the user+system CPU time of the runtime processes an iteration ran (getrusage
RUSAGE_CHILDREN delta: the runtime and what it reaped, not a container init it left
running). Runtimes are timed by waiting on a pidfd (Popen.wait with a timeout sleeps in
1, 2, 4 ... 50 ms steps and once rounded every figure up to one of them), and iterations
are 50 ms apart so that one runtime's cgroup moves do not warm the kernel lock for the
other's.
A fixture raising Skip marks the benchmark skipped.
"""
import argparse
import contextlib
import json
import os
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECCOMP_PROFILE = os.path.join(REPO, "spec-fixtures", "seccomp", "docker-default-amd64.json")

BENCHMARKS = []
TIMEOUT = int(os.environ.get("PYRT_BENCH_TIMEOUT", "60"))  # seconds per runtime command
COOLDOWN = 0.05  # seconds between iterations, untimed; see measure()
WHOLE = ("", "total")
CPU = "CPU user+sys"
UNITS = {"ms": 1000.0, "MiB": 1.0 / (1 << 20)}  # value (seconds or bytes) -> shown unit


class Spec:
    def __init__(self, fn, label, floor=None, fixture=None, shared=None, unit="ms",
                 target=1.0, info=(), max_iterations=None, max_warmup=None, alternate=True,
                 cpu=None, smoke=True):
        self.fn, self.name, self.label = fn, fn.__name__, label
        self.floor, self.fixture, self.shared = floor, fixture, shared
        self.unit, self.target, self.info = unit, target, tuple(info)
        self.max_iterations, self.max_warmup = max_iterations, max_warmup
        self.alternate = alternate
        self.smoke = smoke    # False: skipped by --smoke (engines: minutes of set-up)
        # CPU row: the runtime processes must be our (reaped) children for it to count.
        self.cpu = unit == "ms" if cpu is None else cpu
        if self.cpu:
            self.info += (CPU,)


def benchmark(label, **kw):
    def register(fn):
        BENCHMARKS.append(Spec(fn, label, **kw))
        return fn
    return register


class BenchError(Exception):
    pass


class Skip(Exception):
    pass


class Runtime:
    def __init__(self, name, cmd, root, tag=None):
        self.name = name
        self.cmd = cmd
        self.root = root
        self.tag = tag or name  # in container ids (and so cgroup names): unique per root
        os.makedirs(root, exist_ok=True)
        self.seq = 0
        self.lock = threading.Lock()

    def new_id(self):
        with self.lock:
            self.seq += 1
            return "pyrt-bench-%s-%d-%d" % (self.tag, os.getpid(), self.seq)

    def argv(self, *args):
        return self.cmd + ["--root", self.root] + list(args)

    def _spawn(self, args, stderr, timeout, prefix=()):
        # Own session, so a timeout takes the runtime's helpers along with it.
        argv = list(prefix) + self.argv(*args)
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        try:
            return _wait_child(p, timeout)
        except subprocess.TimeoutExpired:
            stuck = _session_snapshot(p.pid)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                p.kill()
            p.wait()
            raise BenchError("%s: `%s` timed out after %ds; its session was: %s" % (
                self.name, " ".join(argv), timeout, stuck)) from None

    def call(self, *args, prefix=()):
        """Run one runtime command, return its wall time; raise BenchError on failure."""
        # stderr to a file, not a pipe: a created container inherits the runtime's stdio.
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            rc = self._spawn(args, err, TIMEOUT, prefix)
            dt = time.perf_counter() - t0
            if rc != 0:
                err.seek(0)
                raise BenchError("%s: `%s` exited %d: %s" % (
                    self.name, " ".join(self.argv(*args)), rc,
                    err.read().decode(errors="replace").strip()))
        return dt

    def peak_rss(self, b, *args):
        """Run one runtime command through b.maxrss; its ru_maxrss in bytes."""
        out = os.path.join(b.tmp, "maxrss.%d" % threading.get_ident())
        self.call(*args, prefix=b.maxrss_helper() + [out])
        with open(out) as f:
            return int(f.read()) * 1024

    def cpu(self, b, *args, env=()):
        """Run one runtime command through b.cpu_helper(); user+sys CPU seconds of it and
        of every process it started that exited meanwhile, orphans included (the
        launcher's warm-up child outlives the command by a few ms; RUSAGE_CHILDREN of this
        process never sees it)."""
        out = os.path.join(b.tmp, "cpu.%d" % threading.get_ident())
        self.call(*args, prefix=b.cpu_helper() + [out] + (["env"] + list(env) if env else []))
        with open(out) as f:
            return int(f.read()) / 1e6

    def leftovers(self):
        try:
            return [e.name for e in os.scandir(self.root) if e.is_dir()]
        except FileNotFoundError:
            return []

    def cleanup(self, cid=None):
        for c in ([cid] if cid else self.leftovers()):
            if os.path.isdir(os.path.join(self.root, c)):
                try:
                    self._spawn(("delete", "--force", c), subprocess.DEVNULL, 20)
                except BenchError:
                    pass


def _session_snapshot(sid):
    """What the processes of session `sid` are blocked in (for a timeout's report)."""
    out = []
    for ent in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % ent) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            if int(fields[3]) != sid:  # field 6: session id
                continue
            comm = st[st.index("(") + 1:st.rindex(")")]
            with open("/proc/%s/wchan" % ent) as f:
                wchan = f.read()
            try:
                with open("/proc/%s/stack" % ent) as f:
                    stack = " < ".join(l.split()[1].split("+")[0] for l in f if l.strip())
            except OSError:
                stack = "?"
            out.append("%s %s state %s wchan %s [%s]" % (ent, comm, fields[0], wchan, stack))
        except (OSError, ValueError, IndexError):
            continue
    return "; ".join(out) or "(no process left)"


def sweep_dead_runs():
    """Empty cgroups an earlier bench left when it was killed before its own sweep: named
    pyrt-bench-<tag>-<pid>-<n> after a bench process that no longer exists. Only empty
    ones are removed (rmdir, never a signal); returns how many."""
    import re
    name = re.compile(r"pyrt-bench-.+-(\d+)-\d+$")
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            m = name.match(d)
            if m and top != "/sys/fs/cgroup" and not os.path.exists("/proc/" + m.group(1)):
                found.append(os.path.join(top, d))
    n = 0
    for cg in sorted(found, key=lambda p: -p.count("/")):
        try:
            os.rmdir(cg)   # EBUSY while a process is in it: left alone
            n += 1
        except OSError:
            pass
    return n


def sweep(tmp, rootfs_key):
    """Kill and remove what a failed runtime left behind; returns a list of findings.

    Only touches what is provably ours: processes whose root is the bench rootfs, cgroups
    named after this process's container ids, mounts under the bench temp dir.
    """
    found = []
    tag = "-%d-" % os.getpid()
    for ent in os.listdir("/proc"):
        if ent.isdigit() and int(ent) != os.getpid():
            try:
                st = os.stat("/proc/%s/root" % ent)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == rootfs_key:
                found.append("process %s" % ent)
                try:
                    os.kill(int(ent), signal.SIGKILL)
                except OSError:
                    pass
    cgs = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        cgs += [os.path.join(top, d) for d in dirs if d.startswith("pyrt-bench-") and tag in d]
    for cg in sorted(cgs, key=lambda p: -p.count("/")):
        found.append("cgroup %s" % cg)
        deadline = time.monotonic() + 5
        while os.path.exists(cg) and time.monotonic() < deadline:
            try:
                with open(os.path.join(cg, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        os.kill(int(pid), signal.SIGKILL)
                os.rmdir(cg)
            except OSError:
                time.sleep(0.05)
    mounts = [l.split()[4] for l in open("/proc/self/mountinfo")]
    for m in reversed([m for m in mounts if m.startswith(tmp + "/")]):
        found.append("mount %s" % m)
        subprocess.run(["umount", "-l", m])
    return found


class Bench:
    """Shared fixtures: the bundles (one rootfs, several configs) every runtime uses."""

    def __init__(self, tmp, smoke=False):
        self.tmp = tmp
        self.smoke = smoke
        self.batch = 6 if smoke else 100      # throughput: containers per batch
        self.many = 20 if smoke else 500      # state_list: containers present
        self.extra_runtimes = []              # other --roots, cleaned up by main() too
        self.bundle = os.path.join(tmp, "bundle")
        self.rootfs = os.path.join(self.bundle, "rootfs")
        os.makedirs(self.bundle)
        sys.path.insert(0, os.path.join(REPO, "tools"))
        import mkrootfs
        mkrootfs.build(self.rootfs)
        # The runc default spec: runc is the oracle and the same file goes to both runtimes.
        subprocess.run(["runc", "spec", "--bundle", self.bundle], check=True)
        path = os.path.join(self.bundle, "config.json")
        with open(path) as f:
            self.config = json.load(f)
        self.config["process"]["terminal"] = False
        self.config["process"]["args"] = ["/bin/true"]
        with open(path, "w") as f:
            json.dump(self.config, f, indent=2)
        self.bundles = {}
        self._maxrss = None

    def variant(self, name, edit):
        """A bundle dir whose config is the default one changed by edit(config), on the same
        rootfs (absolute root.path); made once, returns its path."""
        if name not in self.bundles:
            self.bundles[name] = self._write_bundle("bundle-" + name, edit)
        return self.bundles[name]

    def _write_bundle(self, dirname, edit):
        d = os.path.join(self.tmp, dirname)
        os.makedirs(d)
        c = json.loads(json.dumps(self.config))
        c["root"]["path"] = self.rootfs
        edit(c)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f, indent=2)
        return d

    def process_file(self):
        """The process JSON containerd writes for `exec --process`: /bin/true, made once."""
        path = os.path.join(self.tmp, "exec-process.json")
        if not os.path.exists(path):
            p = json.loads(json.dumps(self.config["process"]))
            p["args"] = ["/bin/true"]
            p["terminal"] = False
            with open(path, "w") as f:
                json.dump(p, f)
        return path

    def fresh_bundle(self, tag):
        """A bundle dir of its own whose config differs from every other (an annotation),
        as engines send one per container: no runtime can have seen it before."""
        return self._write_bundle("bundle-fresh-" + tag, lambda c: c.setdefault(
            "annotations", {}).update({"org.pyruntime.bench.id": tag}))

    def maxrss_helper(self):
        """argv prefix `HELPER OUTFILE`: runs the rest, writes its ru_maxrss (KiB) to OUTFILE.

        Not wait4 from here: ru_maxrss survives exec, so any child of this Python process
        starts with our own ~15 MiB (the forked or vfork-shared mm before exec counts) and
        every smaller runtime would read the same. The helper is a small C program: its
        child's pre-exec mm is ~1 MiB, below any runtime's figure.
        """
        if self._maxrss is None:
            exe = os.path.join(self.tmp, "maxrss")
            src = exe + ".c"
            with open(src, "w") as f:
                f.write(MAXRSS_C)
            r = subprocess.run(["cc", "-O2", "-o", exe, src], capture_output=True, text=True)
            if r.returncode:
                raise BenchError("cannot build the maxrss helper: %s" % r.stderr.strip())
            self._maxrss = [exe]
        return self._maxrss

    def cpu_helper(self):
        """argv prefix `HELPER OUTFILE`: runs the rest as a child subreaper, writes the
        user+sys CPU (us) of the command and of the orphans it left that exited within
        300 ms."""
        if getattr(self, "_cpu", None) is None:
            self._cpu = [self._cc("cpu", CPU_C)]
        return self._cpu

    def _cc(self, name, source):
        exe = os.path.join(self.tmp, name)
        with open(exe + ".c", "w") as f:
            f.write(source)
        r = subprocess.run(["cc", "-O2", "-o", exe, exe + ".c"], capture_output=True, text=True)
        if r.returncode:
            raise BenchError("cannot build the %s helper: %s" % (name, r.stderr.strip()))
        return exe

    def sleep_bundle(self):
        return self.variant("sleep", lambda c: c["process"].update(args=["sleep", "1000"]))

    def seccomp_bundle(self):
        def edit(c):
            with open(SECCOMP_PROFILE) as f:
                c["linux"]["seccomp"] = json.load(f)
        return self.variant("seccomp", edit)


MAXRSS_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    if (argc < 3) return 126;
    pid_t pid = fork();
    if (pid < 0) return 126;
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) return 126;
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%ld\n", ru.ru_maxrss) < 0 || fclose(f)) return 126;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
"""


CPU_C = r"""
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    if (argc < 3) return 126;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) return 126;
    pid_t pid = fork();
    if (pid < 0) return 126;
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return 126;
    /* orphans come to us; a created container's init stays alive: poll, 300 ms at most */
    struct timespec t0, t, nap = {0, 2000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pid_t p = waitpid(-1, NULL, WNOHANG);
        if (p < 0)
            break;
        if (p > 0)
            continue;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > 300)
            break;
        nanosleep(&nap, NULL);
    }
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    long us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L
              + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%ld\n", us) < 0 || fclose(f)) return 126;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
"""


# --- helpers ----------------------------------------------------------------------------

def parallel(fn, items, workers=2):
    """fn(item) for every item, `workers` at a time; the first exception stops the batch
    (items already running finish) and is raised."""
    it = iter(items)
    lock = threading.Lock()
    errors = []

    def work():
        while not errors:
            with lock:
                item = next(it, None)
            if item is None:
                return
            try:
                fn(item)
            except BaseException as e:  # noqa: B036 -- re-raised in the caller's thread
                errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _wait_child(p, timeout):
    """Popen.wait(timeout) without its sleep loop.

    With a timeout, Popen.wait polls with sleeps of 1, 2, 4, ... 50 ms, so a measured time
    rounds up to the next of 1, 3, 7, 15, 31, 63, 113, 163 ... ms: that once made a 10 ms
    command read as 16 ms next to a 5 ms one read as 8 ms. A pidfd wakes us when it exits.
    """
    fd = os.pidfd_open(p.pid)
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(p.args, timeout)
    finally:
        os.close(fd)
    return p.wait()


def _wait_exit(pid, timeout=30):
    # pidfd works for non-children; a pid already gone counts as exited.
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise BenchError("container process %d did not exit" % pid)
    finally:
        os.close(fd)


def _read_pid(path):
    with open(path) as f:
        return int(f.read())


def _proc_kib(path, key):
    """A "Key: N kB" field of a /proc file (status, smaps_rollup, meminfo), in bytes."""
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise BenchError("no %s in %s" % (key, path))


@contextlib.contextmanager
def container(b, rt, bundle, start=False):
    """A created (or started) container of `bundle`, deleted on exit: yields {cid, pid}."""
    cid = rt.new_id()
    pidfile = os.path.join(b.tmp, cid + ".pid")
    try:
        rt.call("create", "--bundle", bundle, "--pid-file", pidfile, cid)
        if start:
            rt.call("start", cid)
        yield {"cid": cid, "pid": _read_pid(pidfile)}
        rt.call("delete", "--force", cid)
    finally:
        rt.cleanup(cid)
        if os.path.exists(pidfile):
            os.unlink(pidfile)


def sleeper(b, rt):
    """Fixture: a running `sleep 1000` container of this runtime."""
    return container(b, rt, b.sleep_bundle(), start=True)


# --- benchmarks -----------------------------------------------------------------------

UNSHARE = ["unshare", "--pid", "--fork", "--net", "--ipc", "--uts", "--mount", "chroot"]


def floor_unshare(b, ctxs):
    t0 = time.perf_counter()
    subprocess.run(UNSHARE + [b.rootfs, "/bin/true"], check=True)
    return time.perf_counter() - t0


@benchmark("run /bin/true", floor=floor_unshare)
def run_true(b, rt):
    cid = rt.new_id()
    try:
        return {"": rt.call("run", "--bundle", b.bundle, cid)}
    finally:
        rt.cleanup(cid)  # run deletes the container itself; this is for failures


@benchmark("lifecycle (separate processes)")
def lifecycle(b, rt):
    cid = rt.new_id()
    pidfile = os.path.join(b.tmp, cid + ".pid")
    try:
        t = {"create": rt.call("create", "--bundle", b.bundle, "--pid-file", pidfile, cid)}
        pid = _read_pid(pidfile)
        t0 = time.perf_counter()
        t["start"] = rt.call("start", cid)
        _wait_exit(pid)
        t["wait"] = time.perf_counter() - t0 - t["start"]
        t["delete"] = rt.call("delete", cid)
        t["total"] = sum(t.values())
        return t
    finally:
        rt.cleanup(cid)
        if os.path.exists(pidfile):
            os.unlink(pidfile)


@benchmark("kill (SIGCONT to a running init)", fixture=sleeper)
def kill(b, rt, ctx):
    # SIGCONT: the signal reaches the init and changes nothing, so one container serves
    # every iteration
    return {"": rt.call("kill", ctx["cid"], "CONT")}


def floor_nsenter(b, ctxs):
    # Into runc's sleeper (either would do): the namespaces and root of a live container.
    pid = ctxs["runc"]["pid"]
    t0 = time.perf_counter()
    subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w",
                    "/bin/true"], check=True)
    return time.perf_counter() - t0


@benchmark("exec /bin/true", fixture=sleeper, floor=floor_nsenter)
def exec_true(b, rt, ctx):
    t = {"": rt.call("exec", ctx["cid"], "/bin/true")}
    time.sleep(COOLDOWN)  # as between iterations: a cold cgroup lock for each
    t["--process FILE (containerd's form)"] = rt.call("exec", "--process", b.process_file(),
                                                      ctx["cid"])
    return t


@benchmark("create, Docker seccomp profile", info=("without profile", "seccomp overhead"))
def seccomp(b, rt):
    t = {}
    for phase, bundle in (("", b.seccomp_bundle()), ("without profile", b.bundle)):
        cid = rt.new_id()
        try:
            t[phase] = rt.call("create", "--bundle", bundle, cid)
            rt.call("delete", "--force", cid)
        finally:
            rt.cleanup(cid)
    t["seccomp overhead"] = t[""] - t["without profile"]
    return t


@benchmark("create, a new config each time")
def create_fresh(b, rt):
    cid = rt.new_id()
    d = b.fresh_bundle(cid)
    try:
        t = {"": rt.call("create", "--bundle", d, cid)}
        rt.call("delete", "--force", cid)
        return t
    finally:
        rt.cleanup(cid)
        shutil.rmtree(d, ignore_errors=True)


@benchmark("create: cgroup placement, warm-up child", cpu=False,
           info=("CPU user+sys", "warm-up child anyway (PYRT_WARMUP=1)", "CPU, warm-up child",
                 "moved, not born in cgroup (PYRT_CLONE_INTO_CGROUP=0)", "CPU, moved",
                 "moved, no warm-up child", "CPU, moved, no warm-up child"))
def create_variants(b, rt):
    """create as it is (the init born in its cgroups: clone3 on v2, its builder's own
    `tasks` writes on v1; no warm-up child), with the warm-up child anyway, and with the
    init moved into its cgroups instead, with and without the warm-up child: wall time, and
    user+sys CPU of the runtime, its children and the warm-up child (measured apart, through
    the subreaper helper, so its 300 ms of reaping stays out of the wall times). runc
    ignores the variables: its rows are runc again."""
    variants = [("", "CPU user+sys", ()),
                ("warm-up child anyway (PYRT_WARMUP=1)", "CPU, warm-up child",
                 ("PYRT_WARMUP=1",)),
                ("moved, not born in cgroup (PYRT_CLONE_INTO_CGROUP=0)", "CPU, moved",
                 ("PYRT_CLONE_INTO_CGROUP=0",)),
                ("moved, no warm-up child", "CPU, moved, no warm-up child",
                 ("PYRT_CLONE_INTO_CGROUP=0", "PYRT_WARMUP=0"))]
    t = {}
    for phase, cpu_phase, env in variants:
        for what in ("time", "cpu"):
            cid = rt.new_id()
            try:
                if what == "time":
                    t[phase] = rt.call("create", "--bundle", b.bundle, cid,
                                       prefix=["env"] + list(env))
                else:
                    t[cpu_phase] = rt.cpu(b, "create", "--bundle", b.bundle, cid, env=env)
                rt.call("delete", "--force", cid)
            finally:
                rt.cleanup(cid)
            time.sleep(COOLDOWN)  # as between iterations: a cold cgroup lock for each
    return t


def floor_throughput(b, ctxs):
    t0 = time.perf_counter()
    parallel(lambda _: subprocess.run(UNSHARE + [b.rootfs, "/bin/true"], check=True),
             range(b.batch))
    return time.perf_counter() - t0


@benchmark("throughput: {batch} x run, 2 at a time", floor=floor_throughput,
           max_iterations=5, max_warmup=1)
def throughput(b, rt):
    ids = [rt.new_id() for _ in range(b.batch)]
    try:
        t0 = time.perf_counter()
        parallel(lambda cid: rt.call("run", "--bundle", b.bundle, cid), ids)
        return {"": time.perf_counter() - t0}
    finally:
        for cid in ids:
            rt.cleanup(cid)


@contextlib.contextmanager
def many_containers(b, rt):
    """Fixture: b.many created containers in their own --root; yields {rt, cid}."""
    r = Runtime(rt.name, rt.cmd, os.path.join(b.tmp, "root-%s-many" % rt.name),
                tag=rt.name + "-many")
    b.extra_runtimes.append(r)
    bundle = b.sleep_bundle()
    ids = [r.new_id() for _ in range(b.many)]
    try:
        # The first one alone: is there memory for all of them (idle inits are not free)?
        pidfile = os.path.join(b.tmp, ids[0] + ".pid")
        r.call("create", "--bundle", bundle, "--pid-file", pidfile, ids[0])
        rss = _proc_kib("/proc/%d/status" % _read_pid(pidfile), "VmRSS")
        os.unlink(pidfile)
        avail = _proc_kib("/proc/meminfo", "MemAvailable")
        if rss * b.many > avail // 2:
            raise BenchError("%s: %d idle inits of %.1f MiB would take more than half of the "
                             "%.0f MiB available" % (rt.name, b.many, rss / 2**20,
                                                     avail / 2**20))
        parallel(lambda cid: r.call("create", "--bundle", bundle, cid), ids[1:])
        yield {"rt": r, "cid": ids[len(ids) // 2]}
        parallel(lambda cid: r.call("delete", "--force", cid), ids)
    finally:
        r.cleanup()


@benchmark("state/list, {many} containers present", fixture=many_containers,
           alternate=False)
def state_list(b, rt, ctx):
    r = ctx["rt"]
    return {"state": r.call("state", ctx["cid"]), "list": r.call("list"),
            "list -f json": r.call("list", "-f", "json")}


@benchmark("memory (lower is better)", unit="MiB", fixture=sleeper,
           info=("init anon (Pss_Anon)",), max_iterations=10)
def memory(b, rt, ctx):
    t = {}
    cid = rt.new_id()
    pidfile = os.path.join(b.tmp, cid + ".pid")
    try:
        t["create: runtime peak RSS"] = rt.peak_rss(b, "create", "--bundle", b.bundle,
                                                    "--pid-file", pidfile, cid)
        pid = _read_pid(pidfile)
        t["init RSS, created"] = _proc_kib("/proc/%d/status" % pid, "VmRSS")
        t["init anon (Pss_Anon)"] = _proc_kib("/proc/%d/smaps_rollup" % pid, "Pss_Anon")
        rt.call("delete", "--force", cid)
    finally:
        rt.cleanup(cid)
        if os.path.exists(pidfile):
            os.unlink(pidfile)
    t["exec: runtime peak RSS"] = rt.peak_rss(b, "exec", ctx["cid"], "/bin/true")
    return t


@contextlib.contextmanager
def _engine_sandbox(what, prefix, *binaries):
    """(engutil, daemons, a tests/engines Sandbox) for an engine's benchmark: Skip when
    one of `binaries` is missing; the sandbox cleaned up at the end, BenchError if it
    found anything left behind."""
    engutil, daemons = _engines()
    missing = engutil.have(*binaries)
    if missing:
        raise Skip("%s not installed (tools/engines/install.sh)" % missing)
    sb = engutil.Sandbox(prefix)
    try:
        yield engutil, daemons, sb
    finally:
        leaks = sb.cleanup()
    if leaks:
        raise BenchError("%s sandbox left behind (cleaned up): %s" % (what, "; ".join(leaks)))


@contextlib.contextmanager
def containerd(b):
    """Shared: a private containerd under a tests/engines Sandbox with the busybox image
    (tests/engines/daemons.py's set-up, as test_containerd.py's without its debug log)."""
    with _engine_sandbox("containerd", "bench", "containerd", "ctr",
                         "containerd-shim-runc-v2") as (engutil, daemons, sb):
        try:
            sock = daemons.start_containerd(sb, daemons.containerd_config())
            images = engutil.Images(sb)
            ctr = daemons.ctr_argv(sock, "pyrt-bench")
            r = engutil.run(ctr + ["images", "import", images.archive])
        except (RuntimeError, TimeoutError, OSError) as e:
            raise BenchError("containerd: %s\n%s" % (e, sb.log("containerd")[-2000:]))
        if r.returncode:
            raise BenchError("ctr images import: %s" % r.stderr.strip())
        yield {"sb": sb, "ctr": ctr, "image": images.name}


@benchmark("ctr run --rm /bin/true (containerd)", shared=containerd, target=0.95, cpu=False)
def ctr_run(b, rt, ctd):
    sb = ctd["sb"]
    cid = rt.new_id()
    argv = ctd["ctr"] + ["run", "--rm", "--runc-binary", _single_binary(sb, rt),
                         "--runc-root", sb.mkdir("runc-root-" + rt.name),
                         "--fifo-dir", sb.mkdir("fifo"), "--cgroup", "/%s/%s" % (sb.tag, cid),
                         ctd["image"], cid, "/bin/true"]
    return {"": _timed_engine(rt, argv, cleanup=[ctd["ctr"] + ["tasks", "rm", "-f", cid],
                                                 ctd["ctr"] + ["containers", "rm", cid]])}


def _engines():
    """tests/engines' engutil (sandboxes, images) and daemons (the engines' set-up)."""
    d = os.path.join(REPO, "tests", "engines")
    if d not in sys.path:
        sys.path.insert(0, d)
    import daemons
    import engutil
    return engutil, daemons


def _single_binary(sb, rt):
    """One executable path for the runtime (engines take a path, not a command line)."""
    if len(rt.cmd) == 1:
        return rt.cmd[0]
    path = sb.path("%s-wrapper" % rt.name)
    if not os.path.exists(path):
        _engines()[1].wrapper(sb, os.path.basename(path), rt.cmd)
    return path


def _timed_engine(rt, argv, env=None, cleanup=()):
    """Wall time of one engine command (its output to a file); BenchError on failure."""
    e = dict(os.environ, **env) if env else None
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=e)
        try:
            _wait_child(p, TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise BenchError("%s: `%s` timed out after %ds" % (rt.name, " ".join(argv), TIMEOUT))
        dt = time.perf_counter() - t0
        if p.returncode:
            out.seek(0)
            for c in cleanup:
                subprocess.run(c, capture_output=True, env=e)
            raise BenchError("%s: `%s` exited %d: %s" % (
                rt.name, " ".join(argv), p.returncode,
                out.read().decode(errors="replace").strip()))
    return dt


@contextlib.contextmanager
def dockerd(b):
    """Shared: a private dockerd (tests/engines/test_docker.py's set-up: own socket,
    data-root, exec-root and pidfile under a tests/engines Sandbox, no iptables/bridge,
    cgroupfs under the sandbox's name), both runtimes registered with --add-runtime, the
    busybox rootfs imported as an image. A dockerd already running elsewhere is not
    touched."""
    with _engine_sandbox("dockerd", "bdkr", "dockerd", "docker",
                         "containerd") as (engutil, daemons, sb):
        rts = {"bench-" + rt.name: _single_binary(sb, rt) for rt in b.runtimes}
        try:
            env = daemons.start_dockerd(sb, runtimes=rts).env
            images = engutil.Images(sb)
            r = engutil.run(["docker", "import", images.rootfs_tar, "pyrt-busybox:1"],
                            env=env, timeout=120)
        except (RuntimeError, TimeoutError, OSError) as e:
            raise BenchError("dockerd: %s\n%s" % (e, sb.log("dockerd")[-2000:]))
        if r.returncode:
            raise BenchError("docker import: %s" % r.stderr.strip())
        yield {"sb": sb, "env": env, "image": "pyrt-busybox:1"}
        left = engutil.run(["docker", "ps", "-a", "-q"], env=env).stdout.split()
        if left:
            engutil.run(["docker", "rm", "-f"] + left, env=env)


@benchmark("docker run --rm /bin/true (dockerd)", shared=dockerd, cpu=False, smoke=False)
def docker_run(b, rt, d):
    name = rt.new_id()
    argv = ["docker", "run", "--rm", "--network", "none", "--name", name,
            "--runtime", "bench-" + rt.name, d["image"], "/bin/true"]
    return {"": _timed_engine(rt, argv, d["env"],
                              cleanup=[["docker", "rm", "-f", name]])}


@contextlib.contextmanager
def podman(b):
    """Shared: podman confined to a tests/engines Sandbox (tests/engines/test_podman.py's
    containers.conf/storage.conf through CONTAINERS_*), each runtime a wrapper with its
    own --root there, the busybox rootfs imported as an image."""
    with _engine_sandbox("podman", "bpod", "podman", "conmon") as (engutil, daemons, sb):
        env = daemons.podman_env(sb, {
            "bench-" + rt.name: daemons.wrapper(sb, "rt-" + rt.name, rt.cmd,
                                                root=sb.mkdir("root-" + rt.name))
            for rt in b.runtimes})
        images = engutil.Images(sb)
        r = engutil.run(["podman", "import", images.rootfs_tar, "pyrt-busybox:1"], env=env,
                        timeout=120)
        if r.returncode:
            raise BenchError("podman import: %s" % (r.stdout + r.stderr).strip())
        yield {"sb": sb, "env": env, "image": "localhost/pyrt-busybox:1"}
        engutil.run(["podman", "rm", "-a", "-f"], env=env)


@benchmark("podman run --rm /bin/true", shared=podman, cpu=False, smoke=False)
def podman_run(b, rt, p):
    name = rt.new_id()
    argv = ["podman", "--runtime", "bench-" + rt.name, "run", "--rm", "--pull", "never",
            "--cgroup-parent", "/" + p["sb"].tag, "--name", name, p["image"], "/bin/true"]
    return {"": _timed_engine(rt, argv, p["env"],
                              cleanup=[["podman", "rm", "-f", name]])}


# --- driver ---------------------------------------------------------------------------

def resolve(cmd, what):
    import shlex
    argv = shlex.split(cmd)
    path = shutil.which(argv[0])
    if path is None:
        raise BenchError("%s not found: %s" % (what, argv[0]))
    return [os.path.abspath(path)] + argv[1:]


def default_pyruntime():
    sib = os.path.join(os.path.dirname(sys.executable), "pyruntime")
    return sib if os.access(sib, os.X_OK) else "pyruntime"


def machine():
    u = os.uname()
    return "%d CPUs, %s %s, load average %s" % (
        os.cpu_count(), u.sysname, u.release, " ".join("%.2f" % x for x in os.getloadavg()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--iterations", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--smoke", action="store_true",
                    help="3 iterations, 1 warm-up, small batches, no thresholds: just prove "
                         "it runs (non-zero exit if any benchmark fails)")
    ap.add_argument("--only", default="", help="comma-separated benchmark names: " +
                    ",".join(s.name for s in BENCHMARKS))
    ap.add_argument("--pyruntime", default=default_pyruntime(), help="pyruntime command")
    ap.add_argument("--runc", default="runc", help="runc command")
    ap.add_argument("--max-ratio", type=float, default=None,
                    help="fail if a pyruntime/runc median ratio that has a target exceeds "
                         "this")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    a = ap.parse_args(argv)
    if a.smoke:
        a.iterations, a.warmup, a.max_ratio = 3, 1, None
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 1
    only = [x for x in a.only.split(",") if x]
    unknown = set(only) - {s.name for s in BENCHMARKS}
    selected = [s for s in BENCHMARKS if not only or s.name in only]
    if unknown or not selected:
        print("bench: no benchmark named %s" % ",".join(sorted(unknown) or only),
              file=sys.stderr)
        return 2

    stale = sweep_dead_runs()
    if stale:
        print("bench: removed %d empty cgroups of earlier, killed bench runs" % stale,
              file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="pyrt-bench-")
    os.chmod(tmp, 0o755)
    runtimes = []
    b = None
    rootfs_key = None
    rc = 1
    load_before = machine()
    try:
        runtimes = [Runtime("pyruntime", resolve(a.pyruntime, "pyruntime"),
                            os.path.join(tmp, "root-pyruntime")),
                    Runtime("runc", resolve(a.runc, "runc"), os.path.join(tmp, "root-runc"))]
        b = Bench(tmp, smoke=a.smoke)
        b.runtimes = runtimes
        st = os.stat(b.rootfs)
        rootfs_key = (st.st_dev, st.st_ino)
        results = []
        for spec in selected:
            results += measure(b, runtimes, spec, a.warmup, a.iterations)
        failed = [r for r in results if r.get("error")]
        rc = 1 if failed else 0
        info = {"machine_before": load_before, "machine_after": machine(),
                "iterations": a.iterations, "warmup": a.warmup, "smoke": a.smoke,
                "date": time.strftime("%Y-%m-%d %H:%M")}
        (print_markdown if a.markdown else print_table)(results, info)
        for r in failed:
            print("bench: FAILED: %s: %s" % (r["benchmark"], r["error"]), file=sys.stderr)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(dict(info, results=results), f, indent=2)
        if a.max_ratio is not None:
            bad = [r for r in results if r.get("target") and r["ratio"]
                   and r["ratio"] > a.max_ratio]
            if bad:
                print("bench: ratio above %.2f: %s" % (a.max_ratio, ", ".join(
                    "%s %s" % (r["benchmark"], r["phase"]) for r in bad)), file=sys.stderr)
                rc = 1
    except BenchError as e:
        print("bench: FAILED: %s" % e, file=sys.stderr)
        rc = 1
    finally:
        for rt in runtimes + (b.extra_runtimes if b else []):
            rt.cleanup()
        left = sweep(tmp, rootfs_key) if rootfs_key else []
        if left:
            print("bench: FAILED: leftovers cleaned up: %s" % ", ".join(left), file=sys.stderr)
            rc = 1
        if not any(l.split()[4].startswith(tmp + "/") for l in open("/proc/self/mountinfo")):
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


def measure(b, runtimes, spec, warmup, iterations):
    """Run one benchmark for every runtime; returns its table rows. Failures and skips are
    rows too (with "error"/"skipped"): one broken benchmark does not hide the others."""
    if spec.max_iterations:
        iterations = min(iterations, spec.max_iterations)
    if spec.max_warmup is not None:
        warmup = min(warmup, spec.max_warmup)
    label = spec.label.format(batch=b.batch, many=b.many)
    if b.smoke and not spec.smoke:
        return [dict(row(spec, label, ""), skipped="full bench only (not with --smoke)")]
    samples = {rt.name: {} for rt in runtimes}
    floors = []
    try:
        with contextlib.ExitStack() as stack:
            shared = stack.enter_context(spec.shared(b)) if spec.shared else None
            ctxs = {}

            def setup(rt, st):
                if spec.fixture:
                    ctxs[rt.name] = st.enter_context(spec.fixture(b, rt))
                else:
                    ctxs[rt.name] = shared

            def once(i, rt):
                # Let the kernel's cgroup-migration lock go cold (it stays fast for about
                # one RCU grace period, <20 ms here, after the last move): otherwise
                # whichever runtime goes second rides on the first one's warm-up.
                time.sleep(COOLDOWN)
                args = (b, rt) if spec.fixture is None and spec.shared is None \
                    else (b, rt, ctxs[rt.name])
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                phases = spec.fn(*args)
                if spec.cpu:
                    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    phases[CPU] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
                if i >= warmup:
                    for k, v in phases.items():
                        samples[rt.name].setdefault(k, []).append(v)

            def floor(i):
                if spec.floor is not None and i >= warmup:
                    floors.append(spec.floor(b, ctxs))

            if spec.alternate:
                for rt in runtimes:
                    setup(rt, stack)
                for i in range(warmup + iterations):
                    for rt in runtimes:  # alternate A B A B
                        once(i, rt)
                    floor(i)
            else:  # one runtime after the other, each with its fixture torn down after
                for rt in runtimes:
                    with contextlib.ExitStack() as own:
                        setup(rt, own)
                        for i in range(warmup + iterations):
                            once(i, rt)
                for i in range(warmup + iterations):
                    floor(i)
    except Skip as e:
        return [dict(row(spec, label, ""), skipped=str(e))]
    except Exception as e:  # noqa: BLE001 -- a benchmark's failure is a table row
        if not isinstance(e, BenchError):
            import traceback
            traceback.print_exc()
        return [dict(row(spec, label, ""), error=str(e).splitlines()[0] if str(e) else repr(e),
                     detail=str(e))]
    rows = []
    scale = UNITS[spec.unit]
    for k in samples["pyruntime"]:
        p = statistics.median(samples["pyruntime"][k]) * scale
        r = statistics.median(samples["runc"][k]) * scale
        whole = k in WHOLE
        ratio = p / r if r > 0 and p >= 0 else None
        x = row(spec, label, k)
        x.update(pyruntime=p, runc=r, ratio=ratio, iterations=iterations,
                 floor=statistics.median(floors) * scale if floors and whole else None,
                 samples={n: [v * scale for v in samples[n][k]] for n in samples})
        if x["target"] is not None and ratio is not None:
            x["met"] = round(ratio, 2) <= x["target"]  # judged as printed
        rows.append(x)
    return rows


def row(spec, label, phase):
    whole = phase in WHOLE
    return {"benchmark": spec.name, "phase": phase, "label": label if whole else phase,
            "title": label, "unit": spec.unit, "pyruntime": None, "runc": None, "ratio": None,
            "target": None if phase in spec.info else spec.target, "met": None,
            "floor": None, "iterations": None}


def table_rows(results):
    """(label, indent, row or None) in print order: each benchmark's own row first, its
    phases indented below (a benchmark without a whole row gets a header line)."""
    out = []
    for name in dict.fromkeys(r["benchmark"] for r in results):
        rows = [r for r in results if r["benchmark"] == name]
        whole = [r for r in rows if r["phase"] in WHOLE]
        if whole:
            out.append((whole[0]["label"], 0, whole[0]))
        else:
            out.append((rows[0]["title"], 0, None))
        out += [(r["label"], 1, r) for r in rows if r["phase"] not in WHOLE]
    return out


def cells(r):
    """The value cells of a row: pyruntime, runc, ratio, target, met, floor."""
    if r is None:
        return [""] * 6
    if r.get("skipped"):
        return ["skipped: " + r["skipped"], "", "", "", "", ""]
    if r.get("error"):
        return ["ERROR (details on stderr)", "", "", "", "", ""]
    fmt = "%.1f" if r["unit"] == "ms" else "%.2f"
    return [fmt % r["pyruntime"], fmt % r["runc"],
            "%.2f" % r["ratio"] if r["ratio"] is not None else "-",
            "<= %.2f" % r["target"] if r["target"] is not None else "info",
            {True: "yes", False: "NO", None: "-"}[r["met"]],
            fmt % r["floor"] if r["floor"] is not None else "-"]


MOONSHOT = 0.6  # issue 13: `run /bin/true` where crun stands


def moonshot(results):
    """The line issue 13 asks for on every run: `run /bin/true` against its moonshot."""
    r = next((r for r in results if r["benchmark"] == "run_true" and r["phase"] in WHOLE
              and r.get("ratio") is not None), None)
    if r is None:
        return "moonshot: run /bin/true not measured"
    return "moonshot: run /bin/true %.2f of runc (moonshot <= %.2f: %s)" % (
        r["ratio"], MOONSHOT, "met" if round(r["ratio"], 2) <= MOONSHOT else "not met")


def print_table(results, info):
    head = "%-36s %-4s %10s %9s %6s %8s %4s %8s"
    print(head % ("benchmark (medians)", "unit", "pyruntime", "runc", "ratio", "target",
                  "met", "floor"))
    for label, indent, r in table_rows(results):
        c = cells(r)
        name = "  " * indent + label
        if r is not None and (r.get("skipped") or r.get("error")):
            print("%-36s %s" % (name, c[0]))
        else:
            print((head % ((name, r["unit"] if r else "") + tuple(c))).rstrip())
    print(moonshot(results))
    print("iterations: %d (%d warm-up; throughput <= 5, memory <= 10)%s" % (
        info["iterations"], info["warmup"], ", smoke" if info["smoke"] else ""))
    print("machine: %s (start); %s (end)" % (info["machine_before"],
                                              info["machine_after"].split("load average ")[1]))


def print_markdown(results, info):
    print("| benchmark | unit | pyruntime | runc | ratio | target | met | floor |")
    print("|---|---|---:|---:|---:|---|---|---:|")
    for label, indent, r in table_rows(results):
        c = cells(r)
        name = "&nbsp;&nbsp;" * indent + label
        print("| %s | %s | %s |" % (name, r["unit"] if r else "", " | ".join(c)))
    print()
    print(moonshot(results) + ".")
    print()
    print("Medians of %d iterations (throughput: up to 5, memory: up to 10) after %d warm-up, "
          "runtimes alternating (state/list: one after the other); %s; %s; load average at the end %s." % (
              info["iterations"], info["warmup"], info["date"], info["machine_before"],
              info["machine_after"].split("load average ")[1]))


if __name__ == "__main__":
    sys.exit(main())
