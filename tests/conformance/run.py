"""Run the OCI runtime-tools validation suite (built by build.sh) against a runtime.

Every validation/*/*.t runs with its own timeout, cwd = the built tree (the tests open
./runtimetest and ./rootfs-amd64.tar.gz), TMPDIR = a fresh directory (their bundles), and
RUNTIME = a wrapper that adds `--root DIR` of our own, so their containers never mix with
anyone else's and whatever a test leaves behind is found and removed after it.

A test passes when its TAP has a plan, every point is `ok` and it exits 0. A failing point
listed in EXPECTED (a host limit or a bug in the test itself, each with its reason) does
not fail the run; anything else that fails, or a timeout, does. `--compare` runs the suite
against pyruntime and runc in turn and prints one table of both.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# test -> {point number or None (the whole test): (kind, reason)}; kind is "host" (this
# machine cannot do it: no runtime could pass here) or "test bug" (the test is wrong at
# this commit of runtime-tools: no runtime can pass it).
HOST, TEST_BUG = "host", "test bug"
# kept on purpose: runc does the same and engines rely on it
RUNC = "as runc"
EXPECTED = {
    "start": {7: (TEST_BUG, "wants `start` to succeed without process; the spec says it "
                            "MUST fail")},
    "delete": {n: (RUNC, "deletes a created container without --force, as runc does "
                         "(containerd deletes created tasks so); the spec says error")
               for n in (2, 3)},
    "hooks_stdin": {1: (RUNC, "prestart hooks see status \"creating\" (create has not "
                              "finished), as runc; the test wants \"created\"")},
    "linux_cgroups_hugetlb": {None: (HOST, "hugetlb is bound to the cgroup2 tree, not v1")},
    "linux_cgroups_relative_hugetlb": {
        None: (HOST, "hugetlb is bound to the cgroup2 tree, not v1")},
    "linux_cgroups_network": {None: (HOST, "net_cls/net_prio are not mounted")},
    "linux_cgroups_relative_network": {None: (HOST, "net_cls/net_prio are not mounted")},
    "linux_cgroups_blkio": {None: (HOST, "no blkio.leaf_weight on kernel >= 5.0")},
    "linux_cgroups_relative_blkio": {None: (HOST, "no blkio.leaf_weight on kernel >= 5.0")},
    "linux_mount_label": {None: (HOST, "no SELinux")},
    "linux_process_apparmor_profile": {None: (HOST, "no AppArmor")},
    "process_capabilities": {
        None: (HOST, "the host bounding set lacks CAP_SYS_RESOURCE")},
    # memory.kmem.limit_in_bytes: kernel >= 5.16 accepts a write and ignores it
    "linux_cgroups_memory": {n: (HOST, "kernel >= 5.16 ignores memory.kmem.limit_in_bytes")
                             for n in (6, 15, 24, 33, 42, 51)},
    "linux_cgroups_relative_memory": {
        6: (HOST, "kernel >= 5.16 ignores memory.kmem.limit_in_bytes")},
    "linux_cgroups_pids": {None: (TEST_BUG, "compares *int64 pointers, not values")},
    "linux_cgroups_relative_pids": {None: (TEST_BUG, "compares *int64 pointers, not values")},
    "delete_resources": {3: (TEST_BUG, "compares *int64 pointers, not values")},
    "hooks": {None: (TEST_BUG, "its expected output string can never match")},
    "misc_props": {1: (TEST_BUG, "the bundle never gets /runtimetest")},
    "pidfile": {None: (TEST_BUG, "kills a container that has already stopped")},
    "prestart": {None: (TEST_BUG, "expects prestart to run at start; spec >= 1.1 says create")},
    "process_rlimits": {13: (TEST_BUG, "runtimetest is Go >= 1.19, which raises its own "
                                       "soft NOFILE limit to the hard one at start-up")},
}


def parse_tap(text):
    """-> (planned count or None, {point: ok?}, {point: description})"""
    plan, points, descs = None, {}, {}
    for line in text.splitlines():
        if line.startswith("1.."):
            try:
                plan = int(line[3:].split()[0])
            except (ValueError, IndexError):
                pass
            continue
        ok = line.startswith("ok ")
        if not ok and not line.startswith("not ok "):
            continue
        rest = line[3:] if ok else line[7:]
        num, _, desc = rest.partition(" ")
        if not num.isdigit():
            continue
        # "# SKIP" counts as ok, "# TODO" failures are not failures (TAP's meaning)
        directive = desc.rpartition("#")[2].strip().lower() if "#" in desc else ""
        points[int(num)] = ok or directive.startswith(("skip", "todo"))
        descs[int(num)] = desc.lstrip("- ").strip()
    return plan, points, descs


def make_wrapper(runtime, root, bindir):
    """RUNTIME for the tests: the runtime under test with our --root."""
    os.makedirs(bindir, exist_ok=True)
    path = os.path.join(bindir, "runtime")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec %s --root %s "$@"\n' % (shquote(runtime), shquote(root)))
    os.chmod(path, 0o755)
    return path


def shquote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def cleanup_root(runtime, root):
    """Remove every container a test left in our root -> their ids. The inits are
    processes this run started; a delete that does not finish gets its init killed."""
    left = []
    try:
        ids = sorted(os.listdir(root))
    except FileNotFoundError:
        return left
    for cid in ids:
        if not os.path.isdir(os.path.join(root, cid)):
            continue
        left.append(cid)
        try:
            subprocess.run([runtime, "--root", root, "delete", "--force", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        except subprocess.TimeoutExpired:
            pass
        sdir = os.path.join(root, cid)
        if os.path.isdir(sdir):
            try:
                with open(os.path.join(sdir, "state.json")) as f:
                    d = json.load(f)
                # runc's state.json says init_process_pid, ours pid
                pid = d.get("init_process_pid") or d.get("pid")
            except (OSError, ValueError):
                pid = None
            if pid:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            try:
                subprocess.run([runtime, "--root", root, "delete", "--force", cid],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=20)
            except subprocess.TimeoutExpired:
                print("conformance: cannot delete container %s in %s" % (cid, root))
    return left


def mounts_under(path):
    """Mount points at or below path in our mount namespace, deepest first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def remove_tmp(tmp):
    """Remove a test's TMPDIR -> the mounts that were left in it (in the host's mount
    namespace: a container's mounts propagated out). Never walks into a mount: a host
    /proc, /sys or /dev can be among them."""
    left = mounts_under(tmp)
    for mp in left:
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
    if mounts_under(tmp):
        print("conformance: mounts remain under %s, not removing it" % tmp)
        return left
    shutil.rmtree(tmp, ignore_errors=True)
    return left


def failure_lines(text):
    """The TAP minus the passing points and their diagnostics, 4000 characters at most."""
    out, skip = [], False
    for line in text.splitlines():
        if line.startswith("ok "):
            skip = True
            continue
        if line.startswith("not ok ") or line.startswith("1..") or not line.startswith(" "):
            skip = False
        if not skip and line != "TAP version 13":
            out.append(line)
    s = "\n".join(out)
    if len(s) > 4000:
        s = s[:4000] + "\n[...]"
    return s + "\n" if s else ""


def run_one(tree, test, wrapper, runtime, root, timeout, verbose):
    exe = os.path.join(tree, "validation", test, test + ".t")
    tmp = tempfile.mkdtemp(prefix="pyrt-conf-tmp-")
    env = dict(os.environ, RUNTIME=wrapper, TMPDIR=tmp)
    start = time.monotonic()
    proc = subprocess.Popen([exe], cwd=tree, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    took = time.monotonic() - start
    text = out.decode(errors="replace")
    left = cleanup_root(runtime, root)
    left_mounts = remove_tmp(tmp)
    plan, points, descs = parse_tap(text)
    failed = sorted(n for n, ok in points.items() if not ok)
    expected = EXPECTED.get(test, {})
    if timed_out:
        verdict = "timeout"
    elif plan is None and not points and proc.returncode == 0:
        # the *_fail tests print no TAP at all: exit 0 is their pass (util.Fatal exits 1)
        verdict = "xpass" if None in expected else "pass"
    elif plan is None or len(points) < plan or (not points and '"error"' in text):
        # no plan, missing points, or (lifecycle tests: "1..0" is their pass) an error
        # diagnostic and no point: the test failed or gave up
        verdict = "xfail" if None in expected else "fail"
    elif not failed and proc.returncode == 0:
        verdict = "xpass" if None in expected else "pass"
    elif None in expected or (failed and all(n in expected for n in failed)):
        verdict = "xfail"
    else:
        verdict = "fail"
    if verbose:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    elif verdict in ("fail", "timeout"):
        sys.stdout.write(failure_lines(text))
    return {"test": test, "verdict": verdict, "failed": failed, "descs": descs,
            "rc": proc.returncode, "seconds": took, "left": left,
            "left_mounts": left_mounts}


def reason(test, failed):
    exp = EXPECTED.get(test, {})
    if None in exp:
        kind, why = exp[None]
        return "%s: %s" % (kind, why)
    by = {}
    for n in failed:
        if n in exp:
            by.setdefault(exp[n], []).append(str(n))
    return "; ".join("point%s %s, %s: %s" % ("s" if len(ns) > 1 else "", ",".join(ns), kind, why)
                     for (kind, why), ns in by.items())


def run_suite(tree, runtime, tests, timeout, verbose, label):
    root = tempfile.mkdtemp(prefix="pyrt-conf-root-", dir="/run")
    bindir = tempfile.mkdtemp(prefix="pyrt-conf-bin-")
    wrapper = make_wrapper(runtime, root, bindir)
    results = []
    try:
        for test in tests:
            r = run_one(tree, test, wrapper, runtime, root, timeout, verbose)
            results.append(r)
            mark = {"pass": "ok", "xpass": "ok (expected to fail)", "xfail": "expected failure",
                    "fail": "FAILED", "timeout": "TIMEOUT"}[r["verdict"]]
            extra = ""
            if r["failed"] and r["verdict"] in ("fail", "xfail"):
                extra = " points " + ",".join(map(str, r["failed"]))
            if r["verdict"] == "xfail":
                extra += " (" + reason(test, r["failed"]) + ")"
            if r["left"]:
                extra += " [left behind, removed: %s]" % " ".join(r["left"])
            if r["left_mounts"]:
                extra += " [%d mounts left in the host's namespace, unmounted]" % len(
                    r["left_mounts"])
            print("%s %-38s %-16s %5.1fs%s" % (label, test, mark, r["seconds"], extra),
                  flush=True)
    finally:
        cleanup_root(runtime, root)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(bindir, ignore_errors=True)
    return results


def resolve(runtime):
    path = shutil.which(runtime)
    if not path:
        sys.exit("conformance: runtime %r not found" % runtime)
    return os.path.abspath(path)


def summary(results):
    n = {v: 0 for v in ("pass", "xpass", "xfail", "fail", "timeout")}
    for r in results:
        n[r["verdict"]] += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", required=True, help="the built runtime-tools tree")
    ap.add_argument("--runtime", default=os.environ.get("RUNTIME")
                    or os.environ.get("PYRT_RUNTIME") or "pyruntime")
    ap.add_argument("--timeout", type=float,
                    default=float(os.environ.get("PYRT_CONFORMANCE_TIMEOUT", "60")))
    ap.add_argument("--compare", action="store_true",
                    help="run against the runtime and runc, print a table of both")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every test's TAP")
    ap.add_argument("tests", nargs="*", help="test names (default: all)")
    a = ap.parse_args()

    tree = os.path.abspath(a.tree)
    alltests = sorted(d for d in os.listdir(os.path.join(tree, "validation"))
                      if os.path.isfile(os.path.join(tree, "validation", d, d + ".t")))
    tests = a.tests or alltests
    unknown = [t for t in tests if t not in alltests]
    if unknown:
        sys.exit("conformance: no such test: " + " ".join(unknown))
    if os.geteuid() != 0:
        sys.exit("conformance: the validation suite needs root")

    runtime = resolve(a.runtime)
    cg_before = suite_cgroups()
    print("conformance: %d tests of %s against %s, %gs each at most"
          % (len(tests), tree, runtime, a.timeout), flush=True)
    results = run_suite(tree, runtime, tests, a.timeout, a.verbose, "pyrt" if a.compare else "")
    if a.compare:
        runc = run_suite(tree, resolve("runc"), tests, a.timeout, a.verbose, "runc")
        print_table(results, runc)
        nr = summary(runc)
        print("runc: %d of %d pass" % (nr["pass"] + nr["xpass"], len(runc)))
    n = summary(results)
    bad = [r["test"] for r in results if r["verdict"] in ("fail", "timeout")]
    left = sorted(suite_cgroups() - cg_before)
    if left and not a.compare:
        # the runtime under test left the suite's cgroups (runc 1.1.5 does; with --compare
        # it is not ours to judge): a leak fails the stage, then the empty dirs go
        print("conformance: cgroups left behind: " + " ".join(left))
        bad.append("cgroup-leak")
    for d in sorted(left, key=lambda d: -d.count("/")):
        try:
            os.rmdir(d)
        except OSError:
            pass
    if bad:
        print("conformance: unexpected failures: " + " ".join(bad))
    xpass = [r["test"] for r in results if r["verdict"] == "xpass"]
    if xpass:
        print("conformance: listed as expected to fail but passed: " + " ".join(xpass))
    # the closing line run-tests.sh sums (expected failures are neither passed nor failed)
    print("%d passed, %d failed, %d expected failures"
          % (n["pass"] + n["xpass"], n["fail"] + n["timeout"], n["xfail"]))
    return 1 if bad else 0


def suite_cgroups():
    """The suite's own cgroup dirs (cgroupsPath [/]testdir/cgrouptest, absolute or below
    the runner's cgroup) in every hierarchy, by name: nothing else is looked at or removed."""
    out = set()
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        if top.count("/") > 8:
            dirs[:] = []
            continue
        if os.path.basename(top) == "testdir" or top.endswith("/testdir/cgrouptest"):
            out.add(top)
    return out


def print_table(mine, runc):
    verdict = {"pass": "pass", "xpass": "pass", "xfail": "fail (expected)",
               "fail": "FAIL", "timeout": "TIMEOUT"}
    theirs = {r["test"]: r for r in runc}
    print("\n| test | pyruntime | runc 1.1.5 | why not passing |\n|---|---|---|---|")
    for r in mine:
        o = theirs[r["test"]]
        why = reason(r["test"], r["failed"] or o["failed"]) if (
            r["verdict"] not in ("pass", "xpass") or o["verdict"] not in ("pass", "xpass")) else ""
        print("| %s | %s | %s | %s |" % (r["test"], verdict[r["verdict"]],
                                          verdict[o["verdict"]], why))


if __name__ == "__main__":
    sys.exit(main())
