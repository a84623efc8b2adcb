"""Fault injection for the reliability tests (tests/test_faults.py).

PYRUNTIME_FAULT=<point> makes the runtime SIGKILL itself when it reaches that point, the way
an engine (or the OOM killer) kills it mid-call. Unset, `at()` is one comparison with None.

Points (see the callers in api.py):
  create:state-dir     the state dir and a "creating" state.json exist, nothing spawned
  create:spawned       the init is cloned (waits for GO), pid on record; no cgroup yet,
                       unless it was born in its cgroups (clone3, the v1 `tasks` joins)
  create:cgroup        the cgroup dirs exist (the init in them only if born there), GO
                       not sent
  create:go            GO sent: the init is running its mount steps
  create:sync          the init waits at its first sync step ("cgroup" or "hooks": the
                       rootfs is mounted)
  create:before-pidfile  state.json says "created", the pid file is not written yet
  start:fifo-written   the init got its start byte, exec.fifo is not unlinked yet
  delete:killed        the init is killed and gone, cgroups and state dir still there
  exec:<name>          points of pyruntime/execproc.py, if it defines any
"""
from . import oslite as os

ACTIVE = os.environ.get("PYRUNTIME_FAULT") or None


def at(point):
    if ACTIVE is not None and ACTIVE == point:
        os.kill(os.getpid(), 9)
