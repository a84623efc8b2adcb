"""Plans for the launcher's fast path (csrc/launcher.c), written by `create` (and by
`restore`, for the restored container).

start, state, kill and delete of a container in its ordinary state are decided here, at
create, and written down as plain data beside state.json: what `state` prints (the JSON
as this package renders it, with holes for pid and status), which process `kill` and
`start` check (pid + start time), which fifo `start` opens, which cgroup dirs `delete`
removes and in what order, and whether hooks or anything else Python must handle is
involved. The launcher performs such a plan only when every check it makes holds;
anything else goes to the Python path, which stays the one implementation of every
error and every unusual case.

The plan holds only what create decided: it names state.json's identity (device,
inode, size, mtime, ctime) and is void once state.json is rewritten (update, a damaged
or replaced file): the launcher then takes the Python path, which reads and checks
state.json as always. Format (one `key value...` per line, strings hex-encoded so that
no byte of a path or annotation can break a line):

    pyrt-fastplan 1
    state <dev> <ino> <size> <mtime_s> <mtime_ns> <ctime_s> <ctime_ns>
    init <pid> <start_time>
    freeze none|v1|v2 [<hex path of freezer.state / cgroup.freeze>]
    poststart 0|1
    delete 0|1            1: delete of a stopped container is cgroup rmdirs + the state dir
    pids <hex dir>        the cgroup whose cgroup.procs must be empty (delete)
    leaf <hex dir>        in the order Python's destroy() removes them
    parent <hex dir>      the parents create made, deepest first, removed if empty
    json <hex head> <hex middle> <hex tail>   state: head PID middle "STATUS" tail
    end
"""
from . import oslite as os

from . import fastjson
from . import state as st

PLAN_FILE = "fast.plan"


# bytes.hex() runs interpreter code nothing else on create's path touches (a 64 KiB
# fault of peak RSS, measured); indexing a table of pairs does not
_DIGITS = "0123456789abcdef"
_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]


def _hex(s):
    return "".join([_PAIRS[c] for c in os.fsencode(s)]) or "-"


def write(c):
    """Write the plan for container c (status "created" after create, "running" after a
    restore; state.json just saved). Best effort: without a plan every command takes the
    Python path."""
    try:
        text = _render(c)
    except Exception:
        text = None
    path = os.path.join(c.dir, PLAN_FILE)
    if text is None:
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    try:
        st.write_atomic(path, text.encode())
    except Exception:
        pass


def _render(c):
    d = c.data
    if d.get("status") not in ("created", "running") or not d.get("pid") \
            or d.get("start_time") is None:
        return None
    fst = os.stat(os.path.join(c.dir, st.STATE_FILE), follow_symlinks=False)
    lines = ["pyrt-fastplan 1",
             "state %d %d %d %d %d %d %d" % (
                 fst.st_dev, fst.st_ino, fst.st_size, fst.st_mtime_ns // 10**9,
                 fst.st_mtime_ns % 10**9, fst.st_ctime_ns // 10**9, fst.st_ctime_ns % 10**9),
             "init %d %d" % (d["pid"], d["start_time"])]
    cg = d.get("cgroup")
    lines.append(_freeze_line(cg))
    hooks = c.hooks()
    lines.append("poststart %d" % bool(hooks.get("poststart")))
    lines += _delete_lines(c, cg, hooks)
    lines.append(_json_line(c))
    lines.append("end")
    return "\n".join(lines) + "\n"


def _freeze_line(cg):
    # the same file and reading as state._frozen()
    if not cg:
        return "freeze none"
    paths = cg.get("paths") or {}
    if cg.get("driver") in ("v2", "systemd"):
        d = paths.get("")
        if not isinstance(d, str):
            return "freeze none"
        return "freeze v2 " + _hex(os.path.join(d, "cgroup.freeze"))
    d = paths.get("freezer")
    if not d or "freezer" in (cg.get("skipped") or ()):
        return "freeze none"
    return "freeze v1 " + _hex(os.path.join(d, "freezer.state"))


def _delete_lines(c, cg, hooks):
    d = c.data
    if (hooks.get("poststop") or d.get("net_devices") or d.get("host_rootfs_mount")):
        return ["delete 0"]
    if not cg:
        return ["delete 1"]
    if cg.get("driver") not in ("v1", "v2"):
        return ["delete 0"]    # systemd: destroy() stops a unit over D-Bus
    from . import cgroups
    from .cgroups.base import BaseManager
    mgr = cgroups.from_state(cg)
    if type(mgr).destroy is not BaseManager.destroy:
        return ["delete 0"]
    leaves = [x for _, x in mgr.dirs()]
    pids = mgr._pids_dir()
    made = set(mgr.created)
    # the launcher takes cgroup dirs only where hierarchies are mounted on a normal host
    if not all(x.startswith("/sys/fs/cgroup/") and os.path.normpath(x) == x
               for x in leaves + sorted(made) + ([pids] if pids else [])):
        return ["delete 0"]
    out = ["delete 1"]
    if pids:
        out.append("pids " + _hex(pids))
    out += ["leaf " + _hex(x) for x in leaves]
    out += ["parent " + _hex(x) for x in sorted(made - set(leaves), key=lambda p: p.count("/"),
                                                   reverse=True)]
    return out


def _json_line(c):
    # the exact text `state` prints (cli/cmd_state.py), with pid and status cut out
    # any text found once where the holes go will do: the counts below check it (a
    # config that holds it only costs the fast path); os.urandom and .hex() would each
    # fault in interpreter code create uses nowhere else
    tok = "pyrt-hole-%d" % os.getpid()
    s = c.oci_state("created")
    s["pid"] = tok + "p"
    s["status"] = tok + "s"
    text = fastjson.dumps_indent(s)
    pq, sq = fastjson.dumps(tok + "p"), fastjson.dumps(tok + "s")
    if text.count(pq) != 1 or text.count(sq) != 1 or text.index(pq) > text.index(sq):
        raise ValueError("unexpected state rendering")
    head, rest = text.split(pq)
    mid, tail = rest.split(sq)
    return "json %s %s %s" % (_hex(head), _hex(mid), _hex(tail))
