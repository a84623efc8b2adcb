"""What the v1 and v2 managers share: state round-trip, pid listing, kill/destroy."""

from .. import oslite as os
import time

from pyruntime import fastjson
from pyruntime.errors import CgroupError
from pyruntime.cgroups import common, record

R = "linux.resources"


class BaseManager:
    driver = None

    def __init__(self, container_id=None, cgroups_path=None, resources=None, rootless=False,
                 linux_devices=None):
        self.id = container_id
        self.cgroups_path = cgroups_path
        self.resources = resources if resources is not None else {}
        self.rootless = rootless
        self.linux_devices = linux_devices
        self.paths = {}       # hierarchy key -> leaf dir on the host
        self.mounts = {}      # hierarchy key -> mountpoint
        self.created = []     # dirs create() made, top-down
        self.skipped = []     # rootless: hierarchies we could not create
        self.mode = None

    # ---------------------------------------------------------- state

    def to_state(self):
        return {
            "driver": self.driver, "mode": self.mode, "id": self.id,
            "cgroups_path": self.cgroups_path, "paths": dict(self.paths),
            "mounts": dict(self.mounts), "created": list(self.created),
            "skipped": list(self.skipped),
            "resources": fastjson.clone(self.resources), "rootless": self.rootless,
            "linux_devices": fastjson.clone(self.linux_devices),
        }

    @classmethod
    def from_state(cls, d):
        # a state file is input like any other: a damaged or forged record must never
        # turn delete into signalling or removing cgroups that are not the container's
        why = record.problem(d, host=True)
        if why:
            raise CgroupError("cgroup state: " + why)
        m = cls.__new__(cls)
        BaseManager.__init__(m)
        m.mode = d.get("mode")
        m.id = d.get("id")
        m.cgroups_path = d.get("cgroups_path")
        m.paths = dict(d.get("paths") or {})
        m.mounts = dict(d.get("mounts") or {})
        m.created = list(d.get("created") or [])
        m.skipped = list(d.get("skipped") or [])
        m.resources = fastjson.clone(d.get("resources") or {})
        m.rootless = bool(d.get("rootless"))
        m.linux_devices = d.get("linux_devices")
        m._init_from_state(d)
        return m

    def _init_from_state(self, d):
        pass

    # ---------------------------------------------------------- lifecycle

    def dirs(self):
        """Distinct leaf dirs (co-mounted controllers share one)."""
        seen, out = set(), []
        for k, d in self.paths.items():
            if d not in seen and k not in self.skipped:
                seen.add(d)
                out.append((k, d))
        return out

    def create(self):
        made = []
        try:
            for key, d in self.dirs():
                try:
                    made.extend(self._create_one(key, d))
                except CgroupError:
                    # rootless without delegation: run without that hierarchy;
                    # a resource needing it fails later, naming its key
                    if not self.rootless:
                        raise
                    self.skipped.append(key)
        except BaseException:
            for d in reversed(made):
                common.rmdir_bounded(d, wait=0)
            raise
        self.created.extend(made)

    def _create_one(self, key, d):
        return common.mkdirs(self.mounts[key], d)

    def birth_dir(self):
        """The cgroup v2 dir the init is cloned into (clone3 CLONE_INTO_CGROUP), or None
        when placing it takes a migration anyway (v1 hierarchies, a systemd unit)."""
        return None

    def join_files(self):
        """The cgroup v1 `tasks` files the init's builder writes "0" to, moving itself
        before it clones the init (v1.py); none where the init is moved instead."""
        return []

    def add_pid(self, pid):
        for key, d in self.dirs():
            try:
                common.write_file(d, "cgroup.procs", str(pid), f"cgroup {key or 'unified'}")
            except CgroupError:
                if self.rootless:
                    continue
                raise

    def pids(self):
        d = self._pids_dir()
        return common.all_pids(d) if d and os.path.isdir(d) else []

    def _pids_dir(self):
        raise NotImplementedError

    def merged(self, resources):
        """Our resources with an update's applied: a section (memory, cpu...) it names
        gains or replaces only the keys it gives."""
        merged = fastjson.clone(self.resources)
        for k, v in (resources or {}).items():
            if isinstance(v, dict) and isinstance(merged.get(k), dict):
                merged[k].update(v)
            else:
                merged[k] = v
        return merged

    def update(self, resources):
        merged = self.merged(resources)
        self._set(merged, resources or {}, update=True)
        self.resources = merged

    def apply(self):
        self._set(self.resources, self.resources, update=False)

    def kill_all(self, sig=9):
        """Signal every process in the cgroup, frozen so none can fork meanwhile."""
        was_frozen = self.is_frozen()
        if not was_frozen:
            try:
                self.freeze()
            except CgroupError:
                pass  # best effort: signal anyway
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            # frozen tasks cannot die: thaw after SIGKILL even if the container
            # was paused (as runc does); other signals keep a paused one paused
            if not was_frozen or int(sig) == 9:
                self.thaw()

    def intent(self):
        """The dirs create() would make now, top-down: recorded before any mkdir, so
        whatever a create killed halfway made is still on record for delete."""
        out = []
        for key, d in self.dirs():
            for x in common.missing_dirs(self.mounts[key], d):
                if x not in out and x not in self.created:
                    out.append(x)
        return out

    def exclusive(self):
        """True when create() made every leaf: no other container was in it when this
        one was placed there (a later one may still have joined; callers check)."""
        made = set(self.created)
        return all(d in made for _, d in self.dirs())

    def destroy(self, kill=None, timeout=5.0):
        """Remove what the container owns, nothing else: its leaf dirs (with whatever
        was made below them) and then the parents create() made, if empty at that
        moment: one rmdir each, never a walk into them, never a wait.

        kill: SIGKILL the processes left in the leaves first; by default only when
        create() made every leaf (a cgroup that existed before holds someone else's
        processes). Returns the leaves that could not be removed because processes
        that are not the container's remain in them."""
        if kill is None:
            kill = self.exclusive()
        leaves = [d for _, d in self.dirs()]
        if kill and any(os.path.isdir(d) for d in leaves):
            deadline = time.monotonic() + timeout
            delay = 0.005
            while True:
                pids = self.pids()
                if not pids:
                    break
                try:
                    self.kill_all(9)
                except CgroupError:
                    pass
                if time.monotonic() > deadline:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        made = set(self.created)
        busy, failed = [], []
        for d in leaves:
            try:
                os.rmdir(d)  # the common case: empty, no cgroups made inside it
                continue
            except FileNotFoundError:
                continue
            except OSError:
                pass
            if not kill and common.read_procs_quiet(d):
                busy.append(d)   # someone else's processes: not ours to wait for
                continue
            if not kill and d not in made:
                # a cgroup that was there before: what is inside it is not ours either
                if not common.rmdir_bounded(d):
                    busy.append(d)
                continue
            # cgroups made inside the container's own (by an engine or a cgroup-namespaced
            # workload) are the container's too
            for cur, _subdirs, _ in os.walk(d, topdown=False):
                if not common.rmdir_bounded(cur):
                    (busy if common.read_procs_quiet(cur) else failed).append(cur)
                    break
        leafset = set(leaves)
        for d in sorted(made - leafset, key=lambda p: p.count("/"), reverse=True):
            if any(x.startswith(d + "/") for x in busy + failed):
                continue
            try:
                os.rmdir(d)  # only if empty now: a neighbour's cgroup keeps it
            except OSError:
                pass
        self.created = [d for d in self.created if os.path.isdir(d)]
        if failed:
            raise CgroupError(f"cgroup: rmdir {failed[0]}: device or resource busy")
        return busy

    # ---------------------------------------------------------- helpers

    def _path_parts(self):
        """Components of the leaf below its base, validated."""
        if not self.cgroups_path:
            if not self.id or "/" in self.id or self.id in (".", ".."):
                raise CgroupError(f"cgroup: invalid container id {self.id!r} for the default cgroup path")
            return False, [self.id]
        parts = common.check_inner(self.cgroups_path)
        return self.cgroups_path.startswith("/"), parts


def need(r, key):
    """r[key] as a dict or {} (absent/None)."""
    v = r.get(key)
    return v if isinstance(v, dict) else {}


def num(v, dflt=0):
    return dflt if v is None else v


def maxstr(v):
    """v2 style: negative means 'max'."""
    return "max" if v < 0 else str(v)
