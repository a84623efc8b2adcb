"""Operations on a live container's cgroup: pause, resume, update, stats, pids, events.

Runtime.pause/resume/update/stats/pids (api.py) call these. Messages are runc 1.1.5's,
since engines match on them ("container not running", "container not paused").
"""
from . import oslite as os

from .errors import InvalidState, RuntimeErr, strerror

# What `runc update` takes from a LinuxResources object; the rest (devices, hugepage
# limits, network, rdma, blkio throttles) is ignored as runc ignores it: engines send the
# whole object back and re-applying e.g. the device list would disturb a running container.
UPDATABLE = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP", "checkBeforeUpdate"),
    "cpu": ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod",
            "cpus", "mems", "idle"),
    "blockIO": ("weight",),
    "pids": ("limit",),
}


def _manager(c):
    cg = c.data.get("cgroup")
    if not cg:
        raise RuntimeErr("container %s has no cgroup" % c.id)
    from . import cgroups
    return cgroups.from_state(cg)


def _locked(rt, cid):
    return rt.load(cid, lock=True)


def _release(c):
    if c.dirfd is not None:
        os.close(c.dirfd)
        c.dirfd = None


def pause(rt, cid):
    c = _locked(rt, cid)
    try:
        if c.status() not in ("running", "created"):
            raise InvalidState("container not running")
        mgr = _manager(c)
        # state.py reports a frozen created container as "created": ask the cgroup too
        if mgr.is_frozen():
            raise InvalidState("container not running")
        mgr.freeze()
    finally:
        _release(c)


def resume(rt, cid):
    c = _locked(rt, cid)
    try:
        if not c.alive():
            raise InvalidState("container not paused")
        mgr = _manager(c)
        if not mgr.is_frozen():
            raise InvalidState("container not paused")
        mgr.thaw()
    finally:
        _release(c)


def filter_update(resources):
    """The part of a LinuxResources object `update` applies, validated like Go's JSON
    decoding into runc's struct would (a wrong type is an error naming the field)."""
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise RuntimeErr("json: cannot unmarshal %s into Go value of type specs.LinuxResources"
                         % _jtype(resources))
    out = {}
    for sect, keys in UPDATABLE.items():
        v = resources.get(sect)
        if v is None:
            continue
        if not isinstance(v, dict):
            raise RuntimeErr("json: cannot unmarshal %s into Go struct field LinuxResources.%s"
                             % (_jtype(v), sect))
        d = {}
        for k in keys:
            x = v.get(k)
            if x is None:
                continue
            want = bool if k == "checkBeforeUpdate" else str if k in ("cpus", "mems") else int
            if want is int and (isinstance(x, bool) or not isinstance(x, int)) or \
                    want is not int and not isinstance(x, want):
                raise RuntimeErr("json: cannot unmarshal %s into Go struct field %s.%s of type %s"
                                 % (_jtype(x), sect, k, want.__name__))
            d[k] = x
        # 0 / "" mean "leave as is" in runc's update (its fs drivers skip zero values)
        if sect == "pids" and d.get("limit") == 0:
            del d["limit"]
        if d:
            out[sect] = d
    u = resources.get("unified")
    if u:
        if not isinstance(u, dict) or not all(isinstance(x, str) for x in u.values()):
            raise RuntimeErr("json: cannot unmarshal into Go struct field LinuxResources.unified "
                             "of type map[string]string")
        out["unified"] = dict(u)
    return out


def _jtype(x):
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, (int, float)):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, list):
        return "array"
    return "object"


def load_resources(src):
    """`update -r FILE` (or - for stdin): a LinuxResources object as engines write it."""
    import sys
    from .fastjson import loads
    if src == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(src, "rb") as f:
                data = f.read()
        except OSError as e:
            raise RuntimeErr("open %s: %s" % (src, strerror(e)))
    if not data.strip():
        raise RuntimeErr("EOF")   # runc's decoder on empty input: nothing is changed
    try:
        return loads(data)
    except ValueError as e:
        raise RuntimeErr("invalid character in resources JSON: %s" % e)


def update(rt, cid, resources, l3_cache_schema=None, mem_bw_schema=None):
    """Apply `resources` (a LinuxResources dict) to a live container and record the merged
    result in state.json, so later updates and stats start from it. Intel RDT schemata are
    refused first (pyruntime has no resctrl support), as runc does without it."""
    if l3_cache_schema:
        raise RuntimeErr("Intel RDT/CAT: l3 cache schema is not enabled")
    if mem_bw_schema:
        raise RuntimeErr("Intel RDT/MBA: memory bandwidth schema is not enabled")
    from .fastjson import clone
    res = filter_update(resources)
    c = _locked(rt, cid)
    try:
        if c.status() in ("stopped", "creating"):
            raise InvalidState("container not running")
        mgr = _manager(c)
        mem = res.get("memory") or {}
        if mem.get("kernel") or mem.get("kernelTCP"):
            rt._warn("Kernel memory settings are ignored and will be removed")
        before = clone(mgr.resources)
        mgr.update(res)  # raises before recording: state.json keeps the last good set
        if mgr.resources != before:
            c.data["cgroup"] = mgr.to_state()
            c.save()
    finally:
        _release(c)


def stats(rt, cid):
    """runc's `events --stats` data object."""
    c = rt.load(cid)
    if c.status() in ("stopped", "creating"):
        raise InvalidState("container with id %s is not running" % cid)
    return _manager(c).stats()


def pids(rt, cid):
    """Host pids of every process in the container's cgroup (empty once it stopped)."""
    c = rt.load(cid)
    if not c.data.get("cgroup"):
        return []
    return _manager(c).pids()


def ps_table(pids, ps_args=()):
    """`ps`'s table: ps(1) run with `ps_args` (default -ef) on the host, keeping its header
    and the lines of `pids` (runc's wording for each failure)."""
    import subprocess
    ps_args = list(ps_args) or ["-ef"]
    try:
        p = subprocess.run(["ps"] + ps_args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        raise RuntimeErr('exec: "ps": %s' % strerror(e))
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeErr("exit status %d: %s" % (p.returncode, out))
    lines = out.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise RuntimeErr("couldn't find PID field in ps output")
    idx = titles.index("PID")
    want = set(pids)
    res = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        try:
            pid = int(fields[idx])
        except (IndexError, ValueError):
            raise RuntimeErr('unable to parse pid: strconv.Atoi: parsing "%s": invalid syntax'
                             % (fields[idx] if idx < len(fields) else ""))
        if pid in want:
            res.append(line)
    return "\n".join(res) + "\n"


def events(rt, cid, interval, emit, stats_only=False):
    """`events`: emit(dict) a stats event every `interval` seconds and an oom event
    whenever the cgroup's OOM-kill count rises, until the container stops or its cgroup
    goes away. stats_only: one stats event, then return."""
    import time
    c = rt.load(cid)
    if c.status() in ("stopped", "creating"):
        raise InvalidState("container with id %s is not running" % cid)
    mgr = _manager(c)
    if stats_only:
        emit({"type": "stats", "id": cid, "data": mgr.stats()})
        return
    ooms = mgr.oom_count()
    # OOM kills are checked often, stats at the interval; no inotify/eventfd needed for
    # a count that only grows
    tick = min(interval, 0.2)
    next_stats = time.monotonic() + interval
    from .stdio import gc_back_on
    gc_back_on()   # this loop lasts as long as the container
    while True:
        time.sleep(tick)
        n = mgr.oom_count()
        if n > ooms:
            for _ in range(n - ooms):
                emit({"type": "oom", "id": cid})
            ooms = n
        if not c.alive() or not any(os.path.isdir(d) for _, d in mgr.dirs()):
            return
        if time.monotonic() >= next_stats:
            next_stats += interval
            try:
                emit({"type": "stats", "id": cid, "data": mgr.stats()})
            except RuntimeErr as e:
                rt._warn(str(e))
