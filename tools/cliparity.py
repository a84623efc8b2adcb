#!/usr/bin/env python3
"""Differential CLI check: the same invocations against runc and pyruntime, side by side.

    python tools/cliparity.py [--a runc] [--b .venv/bin/pyruntime] [-k SUBSTR] [-v]

Each case puts a container into a state (none, created, running, paused, stopped), runs
one command line against each runtime with its own --root, and compares exit status,
stdout and stderr after normalising what legitimately differs (runtime name, root and
bundle paths, pids, timestamps). Cases marked "rc" compare only the exit status (help
text, version lines); "rc+err" also the error lines. Prints the differing cases; exit 1
when there are any. Needs root, busybox-static and both runtimes; a developer's tool, not
part of the package or the suite (tests/test_cli_parity.py pins the differences fixed).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)
from util import default_config  # noqa: E402
import mkrootfs  # noqa: E402

ID = "c1"
STATES = ("none", "created", "running", "paused", "stopped")


def cases():
    c = []

    def add(state, argv, mode="full", name=None):
        c.append((name or "%s: %s" % (state, " ".join(argv)), state, argv, mode))

    # ---- usage: every subcommand with missing / extra args / unknown flag / --help
    cmds1 = ["start", "delete", "state", "pause", "resume", "kill", "ps", "events", "update",
             "exec", "create", "run", "checkpoint", "restore"]
    for cmd in cmds1:
        add("none", [cmd], "rc+err")
        add("none", [cmd, "--bogus", ID], "rc+err")
        add("none", [cmd, "--help"], "rc")
        add("none", ["help", cmd], "rc")
    for cmd in ("start", "delete", "state", "pause", "resume", "events", "update", "create",
                "run", "checkpoint", "restore"):
        add("none", [cmd, ID, "extra"], "rc+err")
    add("none", ["kill", ID, "KILL", "extra"], "rc+err")
    for cmd in ("list", "spec", "features"):
        add("none", [cmd, "extra"], "rc+err")
        add("none", [cmd, "--bogus"], "rc+err")
        add("none", [cmd, "--help"], "rc")
    add("none", [], "rc")
    add("none", ["help"], "rc")
    add("none", ["--help"], "rc")
    add("none", ["-h"], "rc")
    add("none", ["h"], "rc")
    add("none", ["help", "nosuch"], "rc+err")
    add("none", ["nosuch"], "rc+err")
    add("none", ["--bogus"], "rc+err")
    add("none", ["--version"], "rc")
    add("none", ["-v"], "rc")
    add("none", ["--version", "list"], "rc")
    add("none", ["version"], "rc+err")
    # ---- global flags
    add("none", ["--debug", "list"])
    add("none", ["--log-format", "json", "state", "nosuch"])
    add("none", ["--log-format", "xml", "list"])
    add("none", ["--log-format"], "rc+err")
    add("none", ["--log", "{tmp}/x.log", "state", "nosuch"])
    add("none", ["--log", "{tmp}/nodir/x.log", "list"])
    add("none", ["--systemd-cgroup", "list"])
    add("none", ["--systemd-cgroup=false", "list"])
    add("none", ["--systemd-cgroup=maybe", "list"], "rc+err")
    add("none", ["--criu", "/nonexistent", "list"])
    add("none", ["--rootless", "true", "list"])
    add("none", ["--rootless", "false", "list"])
    add("none", ["--rootless", "bogus", "list"], "rc+err")
    add("none", ["--rootless", "bogus", "state", "nosuch"], "rc+err")
    add("none", ["--root", "{tmp}/nonexist-root", "list"])
    add("none", ["--root", "{tmp}/nonexist-root", "state", ID])
    add("none", ["--root", "{tmp}/afile", "list"], "rc+err")
    add("none", ["--root", "relroot", "list"], "rc+err")
    # ---- ids
    for bad in ("", ".", "..", "a/b", "a b", "-x", "x" * 1025, "ümlaut", "a:b", "a+b", "_a",
                "a" * 300):
        add("none", ["create", "-b", "{bundle}", bad], "rc+err", name="create id %r" % bad[:20])
        add("none", ["state", bad], "rc+err", name="state id %r" % bad[:20])
    for cmd in ("start", "delete", "state", "pause", "resume", "kill", "ps", "events",
                "update", "checkpoint"):
        add("none", [cmd, "nosuch"], "rc+err")
    add("none", ["exec", "nosuch", "true"], "rc+err")
    add("none", ["delete", "-f", "nosuch"])
    add("created", ["create", "-b", "{bundle}", ID], "rc+err", name="duplicate create")
    add("running", ["run", "-b", "{bundle}", "-d", ID], "rc+err", name="duplicate run")
    # ---- each command in each state
    for st in STATES[1:]:
        add(st, ["start", ID], "rc+err")
        add(st, ["pause", ID], "rc+err")
        add(st, ["resume", ID], "rc+err")
        add(st, ["exec", ID, "true"], "rc+err")
        add(st, ["exec", "-d", ID, "true"], "rc+err")
        add(st, ["kill", ID], "rc+err")
        add(st, ["kill", ID, "KILL"], "rc+err")
        add(st, ["kill", "--all", ID, "KILL"], "rc+err")
        add(st, ["kill", ID, "0"], "rc+err")
        add(st, ["delete", ID], "rc+err")
        add(st, ["delete", "--force", ID], "rc+err")
        add(st, ["state", ID], "full")
        add(st, ["ps", ID], "rc+err")
        add(st, ["ps", "-f", "json", ID], "rc+err")
        add(st, ["events", "--stats", ID], "rc+err")
        add(st, ["update", "--pids-limit", "100", ID], "rc+err")
        add(st, ["list"], "full")
        add(st, ["list", "-q"], "full")
        add(st, ["list", "-f", "json"], "full")
    for sig in ("9", "SIGKILL", "kill", "sigkill", "HUP", "SIGRTMIN", "SIGRTMIN+1", "RTMIN+3",
                "BOGUS", "65", "-9", "0x9", " 9", "SIG", "99999999999", "31", "32", "34", "64"):
        add("running", ["kill", ID, sig], "rc+err")
    add("running", ["kill", "-a", ID], "rc+err")
    add("running", ["kill", "--all=true", ID, "TERM"], "rc+err")
    add("created", ["start", ID], "rc+err", name="created: start (then again)")
    # ---- ps
    add("running", ["ps", ID, "-ef"], "rc+err")
    add("running", ["ps", ID, "-o", "pid"], "rc+err")
    add("running", ["ps", "-f", "table", ID], "rc+err")
    add("running", ["ps", "-f", "yaml", ID], "rc+err")
    add("running", ["ps", ID, "--format", "json"], "rc+err")
    # ---- list
    add("none", ["list", "-f", "json"])
    add("none", ["list", "--format", "table"])
    add("none", ["list", "-f", "yaml"], "rc+err")
    add("none", ["list", "-q", "-f", "yaml"], "rc+err")
    add("garbage", ["list"])
    add("garbage", ["list", "-q"])
    add("garbage", ["list", "-f", "json"])
    add("several", ["list", "-q"])
    add("several", ["list", "-f", "json"], "rc")
    # ---- spec
    add("none", ["spec", "-b", "{tmp}/newspec"])
    add("none", ["spec", "--rootless", "-b", "{tmp}/newspec"])
    add("none", ["spec", "-b", "{bundle}"], "rc+err")
    add("none", ["spec", "-b", "{tmp}/nodir/sub"], "rc+err")
    add("none", ["features"], "rc")
    add("none", ["features", "x"], "rc+err")
    # ---- exec flags
    add("running", ["exec", ID], "rc+err")
    add("running", ["exec", "-p", "{tmp}/nonexist.json", ID], "rc+err")
    add("running", ["exec", "-p", "{tmp}/garbage.json", ID], "rc+err")
    add("running", ["exec", "-p", "{tmp}/proc.json", ID], "full")
    add("running", ["exec", "-e", "FOO=bar", ID, "sh", "-c", "echo $FOO"])
    add("running", ["exec", "-e", "FOO", ID, "sh", "-c", "echo ${FOO-unset}"])
    add("running", ["exec", "--cwd", "/tmp", ID, "pwd"])
    add("running", ["exec", "--cwd", "relative", ID, "pwd"], "rc+err")
    add("running", ["exec", "--cwd", "/nonexist", ID, "pwd"], "rc+err")
    add("running", ["exec", "-u", "1000:1000", ID, "id"])
    add("running", ["exec", "-u", "1000", ID, "id"])
    add("running", ["exec", "-u", "user", ID, "id"], "rc+err")
    add("running", ["exec", "-u", "-1", ID, "id"], "rc+err")
    add("running", ["exec", "-u", "1:x", ID, "id"], "rc+err")
    add("running", ["exec", "-g", "10", "-g", "20", ID, "id", "-G"])
    add("running", ["exec", "-g", "x", ID, "id"], "rc+err")
    add("running", ["exec", "--cap", "CAP_SYS_ADMIN", ID, "true"], "rc+err")
    add("running", ["exec", "--cap", "CAP_BOGUS", ID, "true"], "rc+err")
    add("running", ["exec", "--cap", "sys_admin", ID, "true"], "rc+err")
    add("running", ["exec", "--no-new-privs", ID, "true"], "rc+err")
    add("running", ["exec", "-d", "--pid-file", "{tmp}/e.pid", ID, "true"], "rc+err")
    add("running", ["exec", "--pid-file", "rel.pid", ID, "true"], "rc+err")
    add("running", ["exec", "-t", ID, "true"], "rc+err")
    add("running", ["exec", "-t", "-d", ID, "true"], "rc+err")
    add("running", ["exec", "-d", "--console-socket", "{tmp}/nosock", ID, "true"], "rc+err")
    add("running", ["exec", "-d", "-t", "--console-socket", "{tmp}/nosock", ID, "true"],
        "rc+err")
    add("running", ["exec", ID, "/nonexistent"], "rc+err")
    add("running", ["exec", ID, "/etc"], "rc+err")
    add("running", ["exec", ID, "sh", "-c", "exit 7"], "rc+err")
    add("running", ["exec", ID, "sh", "-c", "kill -9 $$"], "rc+err")
    add("running", ["exec", "--preserve-fds", "-1", ID, "true"], "rc+err")
    add("running", ["exec", "--preserve-fds", "x", ID, "true"], "rc+err")
    add("running", ["exec", "--ignore-paused", ID, "true"], "rc+err")
    add("paused", ["exec", "--ignore-paused", "-d", ID, "true"], "rc+err")
    add("running", ["exec", "--cgroup", "nosuch", ID, "true"], "rc+err")
    add("running", ["exec", ID, "--", "true"], "rc+err")
    add("running", ["exec", ID, "echo", "-e", "x"])
    # ---- create / run flags
    add("none", ["create", ID], "rc+err", name="create in cwd without config")
    add("none", ["create", "-b", "{tmp}/nonexist", ID], "rc+err")
    add("none", ["create", "-b", "{bundle}", "--pid-file", "rel.pid", ID], "rc+err")
    add("none", ["create", "-b", "{bundle}", "--pid-file", "{tmp}/nodir/x.pid", ID], "rc+err")
    add("none", ["create", "-b", "{bundle}", "--no-pivot", ID], "rc+err")
    add("none", ["create", "-b", "{bundle}", "--preserve-fds", "2", ID], "rc+err")
    add("none", ["create", "-b", "{bundle}", "--preserve-fds", "-1", ID], "rc+err")
    add("none", ["create", "-b", "{bundle}", "--preserve-fds", "x", ID], "rc+err")
    add("none", ["create", "-b", "{bundle}", "--console-socket", "{tmp}/nosock", ID],
        "rc+err")
    add("none", ["create", "-b", "{tbundle}", ID], "rc+err", name="create terminal no socket")
    add("none", ["create", "-b", "{tbundle}", "--console-socket", "{tmp}/nosock", ID],
        "rc+err", name="create terminal bad socket")
    add("none", ["run", "-d", "-b", "{bundle}", ID], "rc+err")
    add("none", ["run", "-b", "{tbundle}", ID], "rc+err", name="run terminal no socket")
    add("none", ["run", "-d", "-b", "{tbundle}", ID], "rc+err", name="run -d terminal")
    add("none", ["run", "-b", "{tbundle}", "--console-socket", "{tmp}/nosock", ID],
        "rc+err", name="run terminal socket not detached")
    add("none", ["run", "-b", "{ebundle}", ID], "rc+err", name="run exit 3")
    add("none", ["run", "-b", "{nbundle}", ID], "rc+err", name="run nonexistent binary")
    add("none", ["run", "-b", "{gbundle}", ID], "rc+err", name="run garbage config")
    add("none", ["create", "-b", "{gbundle}", ID], "rc+err", name="create garbage config")
    add("none", ["run", "--keep", "-b", "{ebundle}", ID], "rc+err", name="run --keep")
    # ---- update / events
    add("running", ["update", ID], "rc+err")
    add("running", ["update", "-r", "{tmp}/nonexist.json", ID], "rc+err")
    add("running", ["update", "-r", "{tmp}/garbage.json", ID], "rc+err")
    add("running", ["update", "--memory", "abc", ID], "rc+err")
    add("running", ["update", "--cpu-quota", "x", ID], "rc+err")
    add("running", ["update", "--pids-limit", "x", ID], "rc+err")
    add("running", ["events", "--interval", "x", "--stats", ID], "rc+err")
    add("running", ["events", "--interval", "0s", ID], "rc+err")
    add("stopped", ["events", ID], "rc+err")
    add("none", ["checkpoint", "nosuch"], "rc+err")
    # ---- more
    for st in ("created", "paused", "stopped"):
        add(st, ["checkpoint", ID], "rc+err")
        add(st, ["update", "-r", "-", ID], "rc+err")
    add("running", ["exec", "-e", "=x", ID, "true"], "rc+err")
    add("running", ["exec", "-e", "A=1", "-e", "B", ID, "true"], "rc+err")
    add("running", ["exec", "-p", "{tmp}/proc.json", ID, "extra", "args"], "full")
    add("none", ["run", "-d", "--pid-file", "{tmp}/r.pid", "-b", "{bundle}", ID], "rc+err")
    add("none", ["create", "--no-new-keyring", "-b", "{bundle}", ID], "rc+err")
    add("none", ["--log", "{tmp}", "list"], "rc+err")
    add("none", ["--log-format", "json", "state"], "rc+err")
    add("none", ["--log-format=json", "--bogus"], "rc+err")
    add("none", ["list", "--format=json", "-q"])
    add("running", ["list", "-q", "--format", "json"])
    add("none", ["delete", "-f"], "rc+err")
    add("none", ["kill", "-a"], "rc+err")
    add("none", ["ps"], "rc+err")
    add("running", ["ps", ID, "-o", "bogus"], "rc+err")
    add("none", ["spec", "-b", "{tmp}", "--rootless=false"])
    add("none", ["-h", "list"], "rc")
    add("none", ["list", "-h"], "rc")
    add("none", ["--root"], "rc+err")
    add("none", ["--debug=false", "list"])
    add("none", ["--", "list"], "rc+err")
    add("none", ["list", "--"], "rc+err")
    add("running", ["exec", ID, "sh", "-c", "echo out; echo err >&2"], "full")
    add("running", ["exec", "--user", "0:0", "--cwd", "/", ID, "true"], "rc+err")
    add("running", ["exec", "--apparmor", "bogus", ID, "true"], "rc+err")
    add("running", ["exec", "--process-label", "x", ID, "true"], "rc+err")
    add("none", ["run", "-b", "{bundle}", "--detach=true", ID], "rc+err")
    add("running", ["kill", ID, "sigterm"], "rc+err")
    add("running", ["kill", ID, "SIGterm"], "rc+err")
    add("running", ["kill", ID, "TERM", "--all"], "rc+err")
    add("running", ["delete", ID, "-f"], "rc+err")
    add("running", ["state", ID, "--bogus"], "rc+err")
    add("running", ["ps", "-f", "json", ID, "-ef"], "rc+err")
    add("running", ["ps", ID, "-f", "json"], "rc+err")
    add("none", ["run", "-b", "{sbundle}", ID], "rc+err", name="run killed by a signal")
    add("none", ["run", "-b", "{pbundle}", ID], "rc+err", name="run config without process")
    add("none", ["create", "-b", "{pbundle}", ID], "rc+err", name="create config without process")
    add("none", ["--root", "{tmp}/r/", "list"])
    add("none", ["spec", "-b", "{tmp}/afile"], "rc+err")
    add("stopped", ["kill", "--all", ID, "9"], "rc+err")
    add("stopped", ["kill", "--all", ID, "0"], "rc+err")
    add("created", ["kill", "--all", ID, "0"], "rc+err")
    add("created", ["pause", ID], "rc+err", name="created: pause then state")
    add("running", ["exec", "--env", "A=1", "--env=B=2", ID, "sh", "-c", "echo $A$B"])
    add("running", ["exec", "-u", "1000:1000", "-g", "5", ID, "id"])
    add("running", ["exec", "--cap=CAP_NET_RAW", ID, "grep", "CapBnd", "/proc/self/status"])
    return c


# ------------------------------------------------------------------------------------
class Env:
    def __init__(self, base):
        self.base = base
        self.tmp = os.path.join(base, "tmp")
        os.makedirs(self.tmp)
        rootfs = mkrootfs.build(os.path.join(base, "rootfs"))
        self.bundles = {}
        for key, args, term in (("bundle", ["sleep", "1000"], False),
                                ("tbundle", ["sleep", "1000"], True),
                                ("ebundle", ["sh", "-c", "exit 3"], False),
                                ("nbundle", ["/nonexistent"], False),
                                ("sbundle", ["sh", "-c", "kill -USR1 $$"], False),
                                ("pbundle", None, False)):
            p = os.path.join(base, key)
            os.makedirs(p)
            cfg = default_config(args or ["true"], term)
            cfg["root"]["path"] = rootfs
            if args is None:
                del cfg["process"]
            with open(os.path.join(p, "config.json"), "w") as f:
                json.dump(cfg, f)
            self.bundles[key] = p
        p = os.path.join(base, "gbundle")
        os.makedirs(p)
        with open(os.path.join(p, "config.json"), "w") as f:
            f.write("{not json")
        self.bundles["gbundle"] = p
        with open(os.path.join(self.tmp, "garbage.json"), "w") as f:
            f.write("{not json")
        with open(os.path.join(self.tmp, "afile"), "w") as f:
            f.write("x")
        proc = default_config(["echo", "from-process-file"])["process"]
        with open(os.path.join(self.tmp, "proc.json"), "w") as f:
            json.dump(proc, f)


class Runner:
    def __init__(self, cmd, env, name):
        self.cmd = cmd
        self.env = env
        self.name = name
        self.root = os.path.join(env.base, "root-" + name)
        self.cwd = os.path.join(env.base, "cwd-" + name)
        os.makedirs(self.cwd, exist_ok=True)

    def run(self, argv, timeout=20, root=True):
        full = list(self.cmd) + (["--root", self.root] if root else []) + argv
        # files, not pipes: a created container inherits the runtime's stdio
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                p = subprocess.run(full, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, timeout=timeout, start_new_session=True)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                rc = 124
            out.seek(0)
            err.seek(0)
            return (rc, out.read().decode(errors="replace"),
                    err.read().decode(errors="replace") + ("TIMEOUT" if rc == 124 else ""))

    def ids(self):
        try:
            return os.listdir(self.root)
        except FileNotFoundError:
            return []

    def cleanup(self):
        for i in self.ids():
            self.run(["delete", "-f", i])
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.cwd, ignore_errors=True)
        os.makedirs(self.cwd)
        for n in os.listdir(self.env.tmp):
            if n not in ("garbage.json", "afile", "proc.json"):
                p = os.path.join(self.env.tmp, n)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)

    def setup(self, state):
        b = self.env.bundles["bundle"]
        if state == "none":
            return True
        if state == "garbage":
            os.makedirs(os.path.join(self.root, "junkdir"))
            with open(os.path.join(self.root, "junkfile"), "w") as f:
                f.write("x")
            os.makedirs(os.path.join(self.root, "badstate"))
            with open(os.path.join(self.root, "badstate", "state.json"), "w") as f:
                f.write("{not json")
            return True
        if state == "several":
            for i in ("c1", "c2", "c3"):
                if self.run(["create", "-b", b, i])[0]:
                    return False
            return True
        rc, _, err = self.run(["create", "-b", b, ID])
        if rc:
            print("setup create failed (%s): %s" % (self.name, err), file=sys.stderr)
            return False
        if state == "created":
            return True
        self.run(["start", ID])
        if state == "paused":
            self.run(["pause", ID])
        if state == "stopped":
            self.run(["kill", ID, "KILL"])
            for _ in range(100):
                rc, out, _ = self.run(["state", ID])
                if '"stopped"' in out:
                    break
                time.sleep(0.05)
        return True

    def pid(self):
        rc, out, _ = self.run(["state", ID])
        try:
            return json.loads(out).get("pid") if rc == 0 else None
        except ValueError:
            return None


def norm(text, r, pid):
    t = text
    for path, tag in ((r.root, "ROOT"), (r.cwd, "CWD"), (r.env.tmp, "TMP"),
                      (r.env.base, "BASE")):
        t = t.replace(path, tag)
    t = re.sub(r'time="[^"]*"', 'time=T', t)
    t = re.sub(r'"time":"[^"]*"', '"time":T', t)
    t = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?", "TS", t)
    if pid:
        t = re.sub(r"\b%d\b" % pid, "PID", t)
    t = re.sub(r"\bpyruntime\b|\brunc\b", "RT", t)
    t = re.sub(r"\bRT-[a-z]+\b", "RT-x", t)
    return t


def errlines(err):
    return [l for l in err.splitlines() if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", default="runc")
    ap.add_argument("--b", default=os.path.join(HERE, "..", ".venv", "bin", "pyruntime"))
    ap.add_argument("-k", default="")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("--skip", type=int, default=0, help="skip the first N cases")
    o = ap.parse_args()
    base = tempfile.mkdtemp(prefix="cliparity-")
    os.chmod(base, 0o755)
    env = Env(base)
    ra, rb = Runner([o.a], env, "a"), Runner([os.path.abspath(o.b)], env, "b")
    diffs = 0
    total = 0
    try:
        for name, state, argv, mode in cases()[o.skip:]:
            if o.k and o.k not in name:
                continue
            total += 1
            res = []
            for r in (ra, rb):
                ok = r.setup(state)
                pid = r.pid()
                fmt = dict(env.bundles, tmp=env.tmp, id=ID)
                args = [re.sub(r"\{(\w+)\}", lambda m: fmt.get(m.group(1), m.group(0)), a)
                        for a in argv]
                rc, out, err = r.run(args)
                after = r.run(["list", "-q"])[1].split()
                res.append((ok, rc, norm(out, r, pid), norm(err, r, pid), sorted(after)))
                r.cleanup()
            (oka, rca, oa, ea, la), (okb, rcb, ob, eb, lb) = res
            bad = []
            if not (oka and okb):
                bad.append("setup failed (%s)" % ("a" if not oka else "b"))
            if rca != rcb:
                bad.append("rc %s vs %s" % (rca, rcb))
            if la != lb:
                bad.append("containers left %s vs %s" % (la, lb))
            if mode == "full" and oa != ob:
                bad.append("stdout")
            if mode in ("full", "rc+err") and errlines(ea) != errlines(eb):
                bad.append("stderr")
            if bad or o.v:
                diffs += bool(bad)
                print("=== %s  [%s]  %s" % (name, mode, "; ".join(bad) or "same"))
                if "stdout" in bad or o.v:
                    print("  A out: %r\n  B out: %r" % (oa[:600], ob[:600]))
                print("  A err: %r\n  B err: %r" % (ea[-700:], eb[-700:]))
    finally:
        for r in (ra, rb):
            r.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    print("%d cases, %d differ" % (total, diffs))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
