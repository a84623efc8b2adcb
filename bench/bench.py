#!/usr/bin/env python3
"""pyruntime vs runc on the same busybox bundle and the same config.

    .venv/bin/python bench/bench.py            # 30 iterations per runtime
    .venv/bin/python bench/bench.py --smoke    # 3 iterations, no thresholds (run-tests.sh)
    .venv/bin/python bench/bench.py -n 100 --only run_true --json out.json

Config: the runc `spec` default with terminal false and args ["/bin/true"]. Each runtime has
its own --root under one temp dir; every iteration uses a fresh container id and deletes
the container. Runtimes alternate A B A B after warm-up so drift hits both alike. The
table shows medians in ms, the ratio pyruntime/runc, and for `run` the floor: creating the
same namespaces and exec'ing the same binary with unshare(1), no runtime at all.

Adding a benchmark: write `def name(b, rt) -> {phase: seconds}` decorated with
`@benchmark("label")`; one iteration per call, phases become table rows (a single phase
named "" is shown on the benchmark's own row). An optional `floor=` callable returning
seconds fills the floor column. Planned: exec, seccomp, throughput, state/list with 500
containers, memory.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BENCHMARKS = []
TIMEOUT = int(os.environ.get("PYRT_BENCH_TIMEOUT", "60"))  # seconds per runtime command


def benchmark(label, floor=None):
    def register(fn):
        BENCHMARKS.append((fn.__name__, label, fn, floor))
        return fn
    return register


class BenchError(Exception):
    pass


class Runtime:
    def __init__(self, name, cmd, root):
        self.name = name
        self.cmd = cmd
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.seq = 0

    def new_id(self):
        self.seq += 1
        return "pyrt-bench-%s-%d-%d" % (self.name, os.getpid(), self.seq)

    def argv(self, *args):
        return self.cmd + ["--root", self.root] + list(args)

    def _spawn(self, args, stderr, timeout):
        # Own session, so a timeout takes the runtime's helpers along with it.
        p = subprocess.Popen(self.argv(*args), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                p.kill()
            p.wait()
            raise BenchError("%s: `%s` timed out after %ds" % (
                self.name, " ".join(self.argv(*args)), timeout)) from None

    def call(self, *args):
        """Run one runtime command, return its wall time; raise BenchError on failure."""
        # stderr to a file, not a pipe: a created container inherits the runtime's stdio.
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            rc = self._spawn(args, err, TIMEOUT)
            dt = time.perf_counter() - t0
            if rc != 0:
                err.seek(0)
                raise BenchError("%s: `%s` exited %d: %s" % (
                    self.name, " ".join(self.argv(*args)), rc,
                    err.read().decode(errors="replace").strip()))
        return dt

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
    """Shared fixtures: the bundle (rootfs + config) every runtime uses."""

    def __init__(self, tmp):
        self.tmp = tmp
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
            c = json.load(f)
        c["process"]["terminal"] = False
        c["process"]["args"] = ["/bin/true"]
        with open(path, "w") as f:
            json.dump(c, f, indent=2)


# --- benchmarks -----------------------------------------------------------------------

def floor_unshare(b):
    t0 = time.perf_counter()
    subprocess.run(["unshare", "--pid", "--fork", "--net", "--ipc", "--uts", "--mount",
                    "chroot", b.rootfs, "/bin/true"], check=True)
    return time.perf_counter() - t0


@benchmark("run /bin/true", floor=floor_unshare)
def run_true(b, rt):
    cid = rt.new_id()
    try:
        return {"": rt.call("run", "--bundle", b.bundle, cid)}
    finally:
        rt.cleanup(cid)  # run deletes the container itself; this is for failures


def _wait_exit(pid, timeout=30):
    # pidfd works for non-children; a pid already gone counts as exited.
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        import select
        if not select.select([fd], [], [], timeout)[0]:
            raise BenchError("container process %d did not exit" % pid)
    finally:
        os.close(fd)


@benchmark("lifecycle (separate processes)")
def lifecycle(b, rt):
    cid = rt.new_id()
    pidfile = os.path.join(b.tmp, cid + ".pid")
    try:
        t = {"create": rt.call("create", "--bundle", b.bundle, "--pid-file", pidfile, cid)}
        with open(pidfile) as f:
            pid = int(f.read())
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


def fmt_ms(v):
    return "%.1f" % (v * 1000) if v is not None else "-"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--iterations", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--smoke", action="store_true",
                    help="3 iterations, 1 warm-up, no thresholds: just prove it runs")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--pyruntime", default=default_pyruntime(), help="pyruntime command")
    ap.add_argument("--runc", default="runc", help="runc command")
    ap.add_argument("--max-ratio", type=float, default=None,
                    help="fail if a benchmark's pyruntime/runc median ratio exceeds this")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    if a.smoke:
        a.iterations, a.warmup, a.max_ratio = 3, 1, None
    if os.geteuid() != 0:
        print("bench: must run as root", file=sys.stderr)
        return 1
    selected = [x for x in BENCHMARKS if not a.only or x[0] in a.only.split(",")]
    if not selected:
        print("bench: no benchmark matches --only %s" % a.only, file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="pyrt-bench-")
    os.chmod(tmp, 0o755)
    runtimes = []
    rootfs_key = None
    rc = 1
    try:
        runtimes = [Runtime("pyruntime", resolve(a.pyruntime, "pyruntime"),
                            os.path.join(tmp, "root-pyruntime")),
                    Runtime("runc", resolve(a.runc, "runc"), os.path.join(tmp, "root-runc"))]
        b = Bench(tmp)
        st = os.stat(b.rootfs)
        rootfs_key = (st.st_dev, st.st_ino)
        results = []
        for name, label, fn, floor in selected:
            results += measure(b, runtimes, name, label, fn, floor, a.warmup, a.iterations)
        print_table(results, a.iterations)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"iterations": a.iterations, "results": results}, f, indent=2)
        rc = 0
        if a.max_ratio is not None:
            bad = [r for r in results if r["phase"] in ("", "total") and r["ratio"]
                   and r["ratio"] > a.max_ratio]
            if bad:
                print("bench: ratio above %.2f: %s" % (
                    a.max_ratio, ", ".join(r["benchmark"] for r in bad)), file=sys.stderr)
                rc = 1
    except BenchError as e:
        print("bench: FAILED: %s" % e, file=sys.stderr)
    finally:
        for rt in runtimes:
            rt.cleanup()
        left = sweep(tmp, rootfs_key) if rootfs_key else []
        if left:
            print("bench: FAILED: leftovers cleaned up: %s" % ", ".join(left), file=sys.stderr)
            rc = 1
        if not any(l.split()[4].startswith(tmp + "/") for l in open("/proc/self/mountinfo")):
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


def measure(b, runtimes, name, label, fn, floor, warmup, iterations):
    samples = {rt.name: {} for rt in runtimes}
    floors = []
    for i in range(warmup + iterations):
        for rt in runtimes:  # alternate A B A B
            phases = fn(b, rt)
            if i >= warmup:
                for k, v in phases.items():
                    samples[rt.name].setdefault(k, []).append(v)
        if floor is not None and i >= warmup:
            floors.append(floor(b))
    rows = []
    for k in samples["pyruntime"]:
        p = statistics.median(samples["pyruntime"][k])
        r = statistics.median(samples["runc"][k])
        whole = k in ("", "total")
        rows.append({
            "benchmark": name, "phase": k,
            "label": label if whole else "  " + k,
            "pyruntime_ms": p * 1000, "runc_ms": r * 1000,
            "ratio": p / r if r else None,
            "floor_ms": statistics.median(floors) * 1000 if floors and whole else None,
        })
    return rows


def print_table(results, n):
    # totals above their phases
    order = []
    for name in dict.fromkeys(r["benchmark"] for r in results):
        rows = [r for r in results if r["benchmark"] == name]
        rows.sort(key=lambda r: (r["phase"] not in ("", "total"),))
        order += rows
    print("%-32s %13s %9s %7s %9s" % ("benchmark (median of %d)" % n, "pyruntime ms", "runc ms",
                                      "ratio", "floor ms"))
    for r in order:
        print("%-32s %13s %9s %7s %9s" % (
            r["label"], fmt_ms(r["pyruntime_ms"] / 1000), fmt_ms(r["runc_ms"] / 1000),
            "%.2f" % r["ratio"] if r["ratio"] else "-",
            fmt_ms(r["floor_ms"] / 1000) if r["floor_ms"] is not None else "-"))


if __name__ == "__main__":
    sys.exit(main())
