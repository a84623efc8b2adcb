"""cgroup v2 driver (unified hierarchy at /sys/fs/cgroup). v1-style resources
are converted the way runc does (shares -> cpu.weight, memsw -> swap.max,
blkio weight -> io.weight or io.bfq.weight)."""

from .. import oslite as os
import time

from pyruntime.errors import CgroupError
from pyruntime.cgroups import common
from pyruntime.cgroups.base import BaseManager, R, need, num, maxstr
from pyruntime.cgroups.common import write_file, exists

KEY = ""  # the single hierarchy's key in paths/mounts


class V2Manager(BaseManager):
    driver = "v2"

    def __init__(self, container_id, cgroups_path, resources, rootless=False,
                 linux_devices=None, mountinfo=None):
        super().__init__(container_id, cgroups_path or "", resources, rootless, linux_devices)
        mp, root = common.v2_mountpoint(mountinfo) if mountinfo is not None else common.v2_mountpoint()
        mp = common.CGROUP_ROOT if _is_mount(mountinfo, common.CGROUP_ROOT) else mp
        absolute, parts = self._path_parts()
        if absolute:
            base = mp
        else:
            own = common.read_proc_cgroup().get("", "/")
            # our own cgroup has processes in it, so (no internal processes rule)
            # runc goes one level up for relative paths
            base = common.host_dir(mp, root, os.path.dirname(own))
        self.paths[KEY] = common.leaf_dir(mp, base, parts)
        self.mounts[KEY] = mp

    @property
    def leaf(self):
        return self.paths[KEY]

    @property
    def mountpoint(self):
        return self.mounts[KEY]

    def _pids_dir(self):
        return self.leaf

    def birth_dir(self):
        """The dir the init can be cloned straight into (clone3 CLONE_INTO_CGROUP): one
        hierarchy, so no other cgroup needs a migration."""
        return None if KEY in self.skipped else self.leaf

    def _create_one(self, key, d):
        made = common.mkdirs(self.mountpoint, d)
        # enable every available controller on the way down (not in the leaf)
        cur = self.mountpoint
        for p in os.path.relpath(d, self.mountpoint).split("/")[:-1]:
            self._enable_controllers(cur)
            cur = os.path.join(cur, p)
        self._enable_controllers(cur)
        return made

    @staticmethod
    def _enable_controllers(d):
        avail = common.read_file(d, "cgroup.controllers", "").split()
        enabled = set(common.read_file(d, "cgroup.subtree_control", "").split())
        want = [c for c in avail if c not in enabled]
        if not want:
            return
        try:
            write_file(d, "cgroup.subtree_control", " ".join("+" + c for c in want), "cgroup")
        except CgroupError:
            for c in want:  # some may be refused (e.g. threaded/domain issues): take the rest
                try:
                    write_file(d, "cgroup.subtree_control", "+" + c, "cgroup")
                except CgroupError:
                    pass

    def _controllers(self):
        return set(common.read_file(self.leaf, "cgroup.controllers", "").split())

    def _need(self, ctrl, rkey):
        if ctrl not in self._controllers():
            raise CgroupError(f"cgroup: {ctrl} controller is not available in "
                              f"{self.leaf}/cgroup.controllers ({rkey})")
        return self.leaf

    # ---------------------------------------------------------- resources

    def _set(self, r, changed, update):
        if "memory" in changed:
            self._memory(need(r, "memory"), update)
        if "cpu" in changed:
            self._cpu(need(r, "cpu"))
        if "pids" in changed:
            p = need(r, "pids")
            if p.get("limit") is not None:
                k = f"{R}.pids.limit"
                lim = common.as_int(p["limit"], k)
                write_file(self._need("pids", k), "pids.max", maxstr(lim), k)
        if "blockIO" in changed:
            self._io(need(r, "blockIO"))
        if r.get("hugepageLimits") and "hugepageLimits" in changed:
            for i, h in enumerate(r["hugepageLimits"]):
                k = f"{R}.hugepageLimits[{i}]"
                d = self._need("hugetlb", k)
                ps = common.pagesize_to_suffix(h.get("pageSize"), k)
                write_file(d, f"hugetlb.{ps}.max", str(h["limit"]), k)
                if exists(d, f"hugetlb.{ps}.rsvd.max"):
                    write_file(d, f"hugetlb.{ps}.rsvd.max", str(h["limit"]), k)
        n = need(r, "network")
        if "network" in changed and (n.get("classID") is not None or n.get("priorities")):
            raise CgroupError(f"cgroup: net_cls/net_prio do not exist on cgroup v2 ({R}.network)")
        if r.get("rdma") and "rdma" in changed:
            from pyruntime.cgroups.v1 import _rdma_line
            d = self._need("rdma", f"{R}.rdma")
            for dev, lim in r["rdma"].items():
                write_file(d, "rdma.max", _rdma_line(dev, lim), f"{R}.rdma.{dev}")
        if not update or "devices" in changed:
            from pyruntime.cgroups import devices  # only where rules are set: not delete/kill/pause
            rules = devices.normalize(r.get("devices"), self.linux_devices)
            try:
                devices.apply_v2(self.leaf, rules)
            except CgroupError:
                if not self.rootless:
                    raise
        if r.get("unified") and "unified" in changed:
            self._unified(r["unified"])

    def _memory(self, m, update):
        if not m:
            return
        k = f"{R}.memory"
        limit = common.as_int(num(m.get("limit")), f"{k}.limit")
        swap_in = common.as_int(num(m.get("swap")), f"{k}.swap")
        res = num(m.get("reservation"))
        if not (limit or swap_in or res):
            return  # swappiness, disableOOMKiller, kernel*: no v2 equivalent (runc ignores them)
        d = self._need("memory", k)
        swap = common.swap_v1_to_v2(swap_in, limit, f"{k}.swap")
        sstr = maxstr(swap) if swap else ("0" if swap_in > 0 else "")
        if sstr:
            if not exists(d, "memory.swap.max"):
                if swap != -1:  # "unlimited" without swap accounting is a no-op
                    raise CgroupError(f"cgroup: memory.swap.max: swap accounting is not available ({k}.swap)")
            else:
                write_file(d, "memory.swap.max", sstr, f"{k}.swap")
        if limit:
            if update and m.get("checkBeforeUpdate") and limit > 0:
                usage = common.read_int(d, "memory.current")
                if usage > limit:
                    raise CgroupError(f"cgroup: memory.max: rejecting memory limit {limit} below "
                                      f"current usage {usage} ({k}.limit)")
            write_file(d, "memory.max", maxstr(limit), f"{k}.limit")
        if res:
            write_file(d, "memory.low", maxstr(res), f"{k}.reservation")

    def _cpu(self, c):
        if not c:
            return
        k = f"{R}.cpu"
        if num(c.get("realtimeRuntime")) or num(c.get("realtimePeriod")):
            key = "realtimeRuntime" if num(c.get("realtimeRuntime")) else "realtimePeriod"
            raise CgroupError(f"cgroup: realtime scheduling is not supported on cgroup v2 ({k}.{key})")
        if c.get("cpus") or c.get("mems"):
            d = self._need("cpuset", f"{k}.cpus")
            if c.get("cpus"):
                write_file(d, "cpuset.cpus", c["cpus"], f"{k}.cpus")
            if c.get("mems"):
                write_file(d, "cpuset.mems", c["mems"], f"{k}.mems")
        if c.get("idle") is not None:
            write_file(self._need("cpu", f"{k}.idle"), "cpu.idle", str(c["idle"]), f"{k}.idle")
        shares = num(c.get("shares"))
        if shares:
            w = common.shares_to_weight(shares)
            if not 1 <= w <= 10000:
                raise CgroupError(f"cgroup: cpu.weight: shares {shares} out of range ({k}.shares)")
            write_file(self._need("cpu", f"{k}.shares"), "cpu.weight", str(w), f"{k}.shares")
        if c.get("burst") is not None:
            write_file(self._need("cpu", f"{k}.burst"), "cpu.max.burst", str(c["burst"]), f"{k}.burst")
        quota, period = num(c.get("quota")), num(c.get("period"))
        if quota or period:
            s = str(quota) if quota > 0 else "max"
            if period:
                s += f" {period}"
            write_file(self._need("cpu", f"{k}.quota"), "cpu.max", s, f"{k}.quota")

    def _io(self, b):
        if not b:
            return
        k = f"{R}.blockIO"
        if num(b.get("leafWeight")):
            raise CgroupError(f"cgroup: blkio leaf weight does not exist on cgroup v2 ({k}.leafWeight)")
        d = self._need("io", k)
        bfq = exists(d, "io.bfq.weight")
        if num(b.get("weight")):
            if bfq:
                write_file(d, "io.bfq.weight", str(b["weight"]), f"{k}.weight")
            else:
                write_file(d, "io.weight", str(common.blkio_weight_to_io_weight(b["weight"])), f"{k}.weight")
        for i, wd in enumerate(b.get("weightDevice") or []):
            if wd.get("leafWeight") is not None:
                raise CgroupError(f"cgroup: blkio leaf weight does not exist on cgroup v2 "
                                  f"({k}.weightDevice[{i}].leafWeight)")
            if wd.get("weight") is None:
                continue
            if not bfq:
                raise CgroupError(f"cgroup: io.bfq.weight: per-device weight needs the BFQ scheduler "
                                  f"({k}.weightDevice[{i}])")
            write_file(d, "io.bfq.weight", f"{wd['major']}:{wd['minor']} {wd['weight']}",
                       f"{k}.weightDevice[{i}]")
        for name, field in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                            ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for i, td in enumerate(b.get(name) or []):
                write_file(d, "io.max", f"{td['major']}:{td['minor']} {field}={td['rate']}",
                           f"{k}.{name}[{i}]")

    def _unified(self, u):
        ctrls = self._controllers()
        for name, value in u.items():
            k = f"{R}.unified.{name}"
            if "/" in name or name in (".", "..") or not name:
                raise CgroupError(f"cgroup: unified resource {name!r} must be a file name ({k})")
            if not exists(self.leaf, name):
                c, dot, _ = name.partition(".")
                if not dot:
                    raise CgroupError(f"cgroup: unified resource {name!r} must be in the form "
                                      f"CONTROLLER.PARAMETER ({k})")
                if c not in ctrls and c != "cgroup":
                    raise CgroupError(f"cgroup: {name}: controller {c!r} not available ({k})")
            write_file(self.leaf, name, value, k)

    # ---------------------------------------------------------- freezer / kill

    def freeze(self):
        self._freeze("1")

    def thaw(self):
        self._freeze("0")

    def _freeze(self, v):
        if not exists(self.leaf, "cgroup.freeze"):
            raise CgroupError("cgroup: cgroup.freeze: freezer not supported by the kernel (freezer)")
        write_file(self.leaf, "cgroup.freeze", v, "freezer")
        want = f"frozen {v}"
        delay = 0.001
        deadline = time.monotonic() + 10
        while want not in common.read_file(self.leaf, "cgroup.events", ""):
            if time.monotonic() > deadline:
                raise CgroupError(f"cgroup: cgroup.events: timed out waiting for '{want}' (freezer)")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def is_frozen(self):
        if not os.path.isdir(self.leaf):
            return False
        return common.read_file(self.leaf, "cgroup.freeze", "0").strip() == "1"

    def kill_all(self, sig=9):
        if sig == 9 and exists(self.leaf, "cgroup.kill"):
            write_file(self.leaf, "cgroup.kill", "1", "cgroup.kill")
            return
        super().kill_all(sig)

    # ---------------------------------------------------------- events / stats

    def oom_count(self):
        return common.read_kv(self.leaf, "memory.events").get("oom_kill", 0)

    def stats(self):
        from pyruntime.cgroups.stats import empty_stats, cpuset_stats, omit_empty
        d = self.leaf
        s = empty_stats()
        kv = common.read_kv(d, "cpu.stat")
        u = s["cpu"]["usage"]
        u["total"] = kv.get("usage_usec", 0) * 1000
        u["user"] = kv.get("user_usec", 0) * 1000
        u["kernel"] = kv.get("system_usec", 0) * 1000
        t = s["cpu"]["throttling"]
        t["periods"] = kv.get("nr_periods", 0)
        t["throttledPeriods"] = kv.get("nr_throttled", 0)
        t["throttledTime"] = kv.get("throttled_usec", 0) * 1000
        if exists(d, "cpuset.cpus.effective"):
            s["cpuset"] = cpuset_stats(d, v2=True)
        if exists(d, "memory.current"):
            mem = s["memory"]
            raw = common.read_kv(d, "memory.stat")
            mem["raw"] = raw
            mem["cache"] = raw.get("file", 0)
            usage = {"limit": common.read_int(d, "memory.max"),
                     "usage": common.read_int(d, "memory.current"),
                     "max": common.read_int(d, "memory.peak"),
                     "failcnt": common.read_kv(d, "memory.events").get("max", 0)}
            mem["usage"] = usage
            if exists(d, "memory.swap.current"):
                # v1 reports memory+swap; add memory so the numbers compare
                sw_lim = common.read_int(d, "memory.swap.max")
                mem["swap"] = {"usage": common.read_int(d, "memory.swap.current") + usage["usage"],
                               "limit": sw_lim if sw_lim == 2 ** 64 - 1 else sw_lim + usage["limit"],
                               "max": 0, "failcnt": common.read_kv(d, "memory.swap.events").get("max", 0)}
        if exists(d, "pids.current"):
            s["pids"]["current"] = common.read_int(d, "pids.current")
            mx = common.read_file(d, "pids.max", "max").strip()
            s["pids"]["limit"] = 0 if mx == "max" else int(mx)
        if exists(d, "io.stat"):
            sb, sv = [], []
            for line in common.read_file(d, "io.stat", "").splitlines():
                f = line.split()
                if not f or ":" not in f[0]:
                    continue
                ma, _, mi = f[0].partition(":")
                vals = dict(x.split("=", 1) for x in f[1:] if "=" in x)
                for key, op, lst in (("rbytes", "Read", sb), ("wbytes", "Write", sb),
                                     ("rios", "Read", sv), ("wios", "Write", sv)):
                    if key in vals:
                        lst.append({"major": int(ma), "minor": int(mi), "op": op, "value": int(vals[key])})
            s["blkio"] = {"ioServiceBytesRecursive": sb, "ioServicedRecursive": sv}
        if "hugetlb" in self._controllers() or any(f.startswith("hugetlb.") for f in _ls(d)):
            for f in sorted(_ls(d)):
                if f.startswith("hugetlb.") and f.endswith(".current") and ".rsvd." not in f:
                    ps = f.split(".")[1]
                    s["hugetlb"][ps] = {"usage": common.read_int(d, f),
                                        "max": 0,
                                        "failcnt": common.read_kv(d, f"hugetlb.{ps}.events").get("max", 0)}
        return omit_empty(s)

    def mount_steps(self, mount, cgroupns):
        from pyruntime.cgroups.mounts import v2_steps
        return v2_steps(self, mount, cgroupns)


def _ls(d):
    try:
        return os.listdir(d)
    except OSError:
        return []


def _is_mount(mountinfo, path):
    mi = mountinfo if mountinfo is not None else common.read_mountinfo()
    return any(m == path and fs == "cgroup2" for m, _r, fs, _o in mi)
