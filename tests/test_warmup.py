"""The launcher's cgroup warm-up child (csrc/launcher.c wants_warmup): create/run take it
only for the systemd driver, i.e. where --systemd-cgroup says true (the cgroupfs driver has
the init born in its cgroups, on v1 and v2 hosts alike).

The create itself fails at once (no bundle); what is observed is the launcher's "warmup
create" line in PYRT_FASTPATH_TRACE.
"""
import os
import subprocess

import pytest

def warmed(rt, pyrt_tmp, flags):
    trace = os.path.join(pyrt_tmp, "trace")
    if os.path.exists(trace):
        os.unlink(trace)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYRT_WARMUP", "PYRT_CLONE_INTO_CGROUP")}
    env["PYRT_FASTPATH_TRACE"] = trace
    argv = (rt.cmd + ["--root", rt.root] + flags
            + ["create", "--bundle", os.path.join(pyrt_tmp, "nonexistent"), "pyrt-warmup-x"])
    r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "nonexistent" in r.stderr, r
    lines = open(trace).read().splitlines() if os.path.exists(trace) else []
    return "warmup create" in lines


@pytest.mark.parametrize("flags,want", [
    ([], False),
    (["--systemd-cgroup"], True),
    (["-systemd-cgroup"], True),
    (["--systemd-cgroup=true"], True),
    (["--systemd-cgroup=1"], True),
    (["--systemd-cgroup=T"], True),
    (["--systemd-cgroup=false"], False),
    (["--systemd-cgroup=0"], False),
    (["--systemd-cgroup=f"], False),
    (["--systemd-cgroup=F"], False),
    (["--systemd-cgroup=FALSE"], False),
    (["--systemd-cgroup=False"], False),
])
def test_warmup_only_for_a_true_systemd_flag(rt, pyrt_tmp, flags, want):
    if not rt.is_pyruntime:
        pytest.skip("the launcher's warm-up child is pyruntime's")
    assert warmed(rt, pyrt_tmp, flags) is want
