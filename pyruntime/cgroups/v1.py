"""cgroup v1 driver (legacy and hybrid hosts): one directory per hierarchy."""

from .. import oslite as os
import time

from pyruntime.errors import CgroupError
from pyruntime.cgroups import common
from pyruntime.cgroups.base import BaseManager, R, need, num
from pyruntime.cgroups.common import write_file, exists

# The directory used for pids()/freeze when several are available.
_PIDS_PREF = ("devices", "freezer", "pids", "memory", "cpu", "cpuacct", "blkio", "cpuset")


class V1Manager(BaseManager):
    driver = "v1"

    def __init__(self, container_id, cgroups_path, resources, rootless=False,
                 linux_devices=None, mountinfo=None):
        super().__init__(container_id, cgroups_path or "", resources, rootless, linux_devices)
        self.ctrl = {}   # controller or name=X -> hierarchy key
        absolute, parts = self._path_parts()
        own = None if absolute else common.read_proc_cgroup()
        for h in common.v1_hierarchies(mountinfo):
            key, mp = h["key"], h["mountpoint"]
            if absolute:
                base = mp
            else:
                cg = own.get(h["controllers"][0])
                if cg is None:
                    continue  # this process is not in that hierarchy (cannot be: skip)
                base = common.host_dir(mp, h["root"], cg)
            self.paths[key] = common.leaf_dir(mp, base, parts)
            self.mounts[key] = mp
            for c in h["controllers"]:
                self.ctrl[c] = key
        v2 = [(m, r) for m, r, fs, _o in (mountinfo or common.read_mountinfo()) if fs == "cgroup2"]
        if v2 and self.paths:
            # hybrid: the container gets a cgroup of its own in the unified hierarchy
            # too (key ""), as runc does, so /proc/PID/cgroup's 0:: line names it
            mp, root = v2[0]
            base = mp if absolute else common.host_dir(mp, root, own.get("", "/"))
            self.paths[""] = common.leaf_dir(mp, base, parts)
            self.mounts[""] = mp

    # True: apply() leaves the device rules to apply_devices(). An init born in the
    # devices cgroup (join_files) makes its device nodes while apply() runs, and a v1
    # rule change is no one write: "a" denied first, then each allowed. Written at the
    # init's "cgroup" sync instead, after its nodes as runc does (its Set after Apply).
    devices_later = False

    def join_files(self):
        # "0" in `tasks` moves the writer's own thread, without the threadgroup lock a
        # cgroup.procs write takes, whose first taking waits out an RCU grace period
        # (6-14 ms here, with the cgroup mutex held, so every mkdir waits too); the
        # builder is single-threaded, so its thread is the whole process. Rootless
        # runtimes keep the old way: hierarchies they may not write are skipped there.
        if self.rootless:
            return []
        return [os.path.join(d, "tasks") for key, d in self.dirs() if key]

    def birth_dir(self):
        # hybrid: the unified hierarchy takes no `tasks` write (a thread may not leave
        # its domain), but clone3 CLONE_INTO_CGROUP puts the init there at birth
        if self.rootless or "" not in self.paths or "" in self.skipped:
            return None
        return self.paths[""]

    def _init_from_state(self, d):
        self.ctrl = {}
        for key in self.paths:
            for c in key.split(","):
                self.ctrl[c] = key

    def path(self, controller):
        key = self.ctrl.get(controller)
        return self.paths[key] if key and key not in self.skipped else None

    def _need(self, controller, rkey):
        p = self.path(controller)
        if not p:
            raise CgroupError(f"cgroup: {controller} controller is not mounted ({rkey})")
        return p

    def _pids_dir(self):
        for c in _PIDS_PREF:
            if self.path(c):
                return self.path(c)
        return next(iter(self.paths.values()), None)

    def _create_one(self, key, d):
        made = common.mkdirs(self.mounts[key], d)
        if "cpuset" in key.split(","):
            # new cpuset cgroups start empty and refuse tasks: inherit the parent's (a
            # parent someone else made empty too, as runc does)
            mp = self.mounts[key]
            chain = []
            cur = d
            while cur.startswith(mp + "/"):
                chain.append(cur)
                cur = os.path.dirname(cur)
            for cur in reversed(chain):
                parent = os.path.dirname(cur)
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not common.read_file(cur, f, "").strip():
                        write_file(cur, f, common.read_file(parent, f, "").strip() or "\n", "cgroup cpuset")
        return made

    # ---------------------------------------------------------- resources

    def _set(self, r, changed, update):
        if r.get("unified"):
            raise CgroupError("cgroup: invalid configuration: cannot use unified on cgroup v1 "
                              f"({R}.unified)")
        if "memory" in changed:
            self._memory(need(r, "memory"), update)
        if "cpu" in changed:
            self._cpu(need(r, "cpu"))
        if "pids" in changed:
            p = need(r, "pids")
            if p.get("limit") is not None:
                lim = common.as_int(p["limit"], f"{R}.pids.limit")
                write_file(self._need("pids", f"{R}.pids.limit"), "pids.max",
                           "max" if lim < 0 else str(lim), f"{R}.pids.limit")
        if "blockIO" in changed:
            self._blkio(need(r, "blockIO"))
        if r.get("hugepageLimits") and "hugepageLimits" in changed:
            self._hugetlb(r["hugepageLimits"])
        if "network" in changed:
            self._network(need(r, "network"))
        if r.get("rdma") and "rdma" in changed:
            d = self._need("rdma", f"{R}.rdma")
            for dev, lim in r["rdma"].items():
                write_file(d, "rdma.max", _rdma_line(dev, lim), f"{R}.rdma.{dev}")
        if ("devices" in changed) if update else not self.devices_later:
            self._devices(r)

    def apply_devices(self):
        """The device rules apply() left out (devices_later)."""
        self._devices(self.resources)

    def _devices(self, r):
        from pyruntime.cgroups import devices  # only where rules are set: not delete/kill/pause
        rules = devices.normalize(r.get("devices"), self.linux_devices)
        d = self.path("devices")
        if d is None:
            if not self.rootless:
                raise CgroupError(f"cgroup: devices controller is not mounted ({R}.devices)")
        else:
            try:
                devices.apply_v1(d, rules)
            except CgroupError:
                if not self.rootless:
                    raise

    def _memory(self, m, update):
        if not m:
            return
        k = f"{R}.memory"
        d = self._need("memory", k)
        limit = common.as_int(num(m.get("limit")), f"{k}.limit")
        swap = common.as_int(num(m.get("swap")), f"{k}.swap")
        if update and m.get("checkBeforeUpdate") and limit > 0:
            usage = common.read_int(d, "memory.usage_in_bytes")
            if usage > limit:
                raise CgroupError(f"cgroup: memory.limit_in_bytes: rejecting memory limit {limit} "
                                  f"below current usage {usage} ({k}.limit)")
        if limit == -1 and swap == 0 and exists(d, "memory.memsw.limit_in_bytes"):
            swap = -1
        if limit and swap:
            cur = common.read_int(d, "memory.limit_in_bytes")
            # order the two writes so the kernel's memsw >= limit check holds
            if swap == -1 or cur < swap:
                self._swap(d, swap, k)
                self._limit(d, limit, k)
            else:
                self._limit(d, limit, k)
                self._swap(d, swap, k)
        else:
            self._limit(d, limit, k)
            self._swap(d, swap, k)
        res = num(m.get("reservation"))
        if res:
            write_file(d, "memory.soft_limit_in_bytes", str(res), f"{k}.reservation")
        if m.get("disableOOMKiller"):
            write_file(d, "memory.oom_control", "1", f"{k}.disableOOMKiller")
        sw = m.get("swappiness")
        if sw is not None and sw != -1:
            if not 0 <= sw <= 100:
                raise CgroupError(f"cgroup: memory.swappiness: invalid value {sw}, "
                                  f"valid range is 0-100 ({k}.swappiness)")
            write_file(d, "memory.swappiness", str(sw), f"{k}.swappiness")
        # kernel: ignored, as runc does (kernel >= 5.16 accepts the write and ignores it);
        # kernelTCP the kernel still enforces
        ktcp = num(m.get("kernelTCP"))
        if ktcp and exists(d, "memory.kmem.tcp.limit_in_bytes"):
            write_file(d, "memory.kmem.tcp.limit_in_bytes", str(ktcp), f"{k}.kernelTCP")

    def _limit(self, d, limit, k):
        if not limit:
            return
        try:
            write_file(d, "memory.limit_in_bytes", str(limit), f"{k}.limit")
        except CgroupError as e:
            if "device or resource busy" not in str(e):
                raise
            usage = common.read_int(d, "memory.usage_in_bytes")
            peak = common.read_int(d, "memory.max_usage_in_bytes")
            raise CgroupError(f"cgroup: memory.limit_in_bytes: unable to set memory limit to {limit} "
                              f"(current usage: {usage}, peak usage: {peak}) ({k}.limit)") from None

    def _swap(self, d, swap, k):
        if not swap:
            return
        if not exists(d, "memory.memsw.limit_in_bytes"):
            raise CgroupError(f"cgroup: memory.memsw.limit_in_bytes: swap accounting is not "
                              f"enabled in the kernel ({k}.swap)")
        write_file(d, "memory.memsw.limit_in_bytes", str(swap), f"{k}.swap")

    def _cpu(self, c):
        if not c:
            return
        k = f"{R}.cpu"
        if c.get("cpus") or c.get("mems"):
            d = self._need("cpuset", f"{k}.cpus")
            if c.get("cpus"):
                write_file(d, "cpuset.cpus", c["cpus"], f"{k}.cpus")
            if c.get("mems"):
                write_file(d, "cpuset.mems", c["mems"], f"{k}.mems")
        keys = ("shares", "quota", "period", "burst", "idle", "realtimeRuntime", "realtimePeriod")
        if not any(c.get(x) is not None for x in keys):
            return
        d = self._need("cpu", k)
        # realtime first: a RT task can only join once the group has runtime
        if num(c.get("realtimePeriod")):
            write_file(d, "cpu.rt_period_us", str(c["realtimePeriod"]), f"{k}.realtimePeriod")
        if num(c.get("realtimeRuntime")):
            write_file(d, "cpu.rt_runtime_us", str(c["realtimeRuntime"]), f"{k}.realtimeRuntime")
        shares = num(c.get("shares"))
        if shares:
            write_file(d, "cpu.shares", str(shares), f"{k}.shares")
            got = common.read_int(d, "cpu.shares")
            if shares > got:
                raise CgroupError(f"cgroup: cpu.shares: the maximum allowed cpu-shares is {got} ({k}.shares)")
            if shares < got:
                raise CgroupError(f"cgroup: cpu.shares: the minimum allowed cpu-shares is {got} ({k}.shares)")
        period, quota = num(c.get("period")), num(c.get("quota"))
        retry_period = False
        if period:
            try:
                write_file(d, "cpu.cfs_period_us", str(period), f"{k}.period")
            except CgroupError as e:
                # a smaller period can be refused until the new quota is in
                if "invalid argument" not in str(e) or not quota:
                    raise
                retry_period = True
        if quota:
            write_file(d, "cpu.cfs_quota_us", str(quota), f"{k}.quota")
            if retry_period:
                write_file(d, "cpu.cfs_period_us", str(period), f"{k}.period")
        if c.get("burst") is not None:
            write_file(d, "cpu.cfs_burst_us", str(c["burst"]), f"{k}.burst")
        if c.get("idle") is not None:
            write_file(d, "cpu.idle", str(c["idle"]), f"{k}.idle")

    def _blkio(self, b):
        if not b:
            return
        k = f"{R}.blockIO"
        d = self._need("blkio", k)
        bfq = not exists(d, "blkio.weight") and exists(d, "blkio.bfq.weight")
        wfile = "blkio.bfq.weight" if bfq else "blkio.weight"
        if num(b.get("weight")):
            write_file(d, wfile, str(b["weight"]), f"{k}.weight")
        if num(b.get("leafWeight")):
            write_file(d, "blkio.leaf_weight", str(b["leafWeight"]), f"{k}.leafWeight")
        for i, wd in enumerate(b.get("weightDevice") or []):
            dev = f"{wd['major']}:{wd['minor']}"
            if wd.get("weight") is not None:
                write_file(d, wfile + "_device", f"{dev} {wd['weight']}", f"{k}.weightDevice[{i}].weight")
            if wd.get("leafWeight") is not None:
                write_file(d, "blkio.leaf_weight_device", f"{dev} {wd['leafWeight']}",
                           f"{k}.weightDevice[{i}].leafWeight")
        for name, f in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                        ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                        ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                        ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
            for i, td in enumerate(b.get(name) or []):
                write_file(d, f, f"{td['major']}:{td['minor']} {td['rate']}", f"{k}.{name}[{i}]")

    def _hugetlb(self, limits):
        for i, h in enumerate(limits):
            k = f"{R}.hugepageLimits[{i}]"
            d = self._need("hugetlb", k)
            ps = common.pagesize_to_suffix(h.get("pageSize"), k)
            write_file(d, f"hugetlb.{ps}.limit_in_bytes", str(h["limit"]), k)
            if exists(d, f"hugetlb.{ps}.rsvd.limit_in_bytes"):
                write_file(d, f"hugetlb.{ps}.rsvd.limit_in_bytes", str(h["limit"]), k)

    def _network(self, n):
        if not n:
            return
        k = f"{R}.network"
        if n.get("classID") is not None:
            d = self._need("net_cls", f"{k}.classID")
            write_file(d, "net_cls.classid", str(n["classID"]), f"{k}.classID")
        for i, p in enumerate(n.get("priorities") or []):
            d = self._need("net_prio", f"{k}.priorities")
            write_file(d, "net_prio.ifpriomap", f"{p['name']} {p['priority']}", f"{k}.priorities[{i}]")

    # ---------------------------------------------------------- freezer

    def freeze(self):
        d = self._need("freezer", "freezer")
        # FREEZING can get stuck when a task is in an uninterruptible sleep;
        # runc retries, thawing briefly now and then.
        for i in range(1000):
            if i and i % 50 == 0:
                write_file(d, "freezer.state", "THAWED", "freezer")
                time.sleep(0.01)
            write_file(d, "freezer.state", "FROZEN", "freezer")
            time.sleep(0.0001 if i < 25 else 0.001)
            st = common.read_file(d, "freezer.state", "").strip()
            if st == "FROZEN":
                return
        write_file(d, "freezer.state", "THAWED", "freezer")
        raise CgroupError("cgroup: freezer.state: unable to freeze")

    def thaw(self):
        d = self._need("freezer", "freezer")
        write_file(d, "freezer.state", "THAWED", "freezer")

    def is_frozen(self):
        d = self.path("freezer")
        if not d or not os.path.isdir(d):
            return False
        return common.read_file(d, "freezer.state", "").strip() in ("FROZEN", "FREEZING")

    # ---------------------------------------------------------- events / stats

    def oom_count(self):
        d = self.path("memory")
        if not d:
            return 0
        kv = common.read_kv(d, "memory.oom_control")
        return kv.get("oom_kill", 0)

    def stats(self):
        from pyruntime.cgroups.stats import empty_stats, cpuset_stats, blk_entries, memory_entry
        s = empty_stats()
        d = self.path("cpuacct")
        if d:
            u = s["cpu"]["usage"]
            u["total"] = common.read_int(d, "cpuacct.usage")
            per = common.read_file(d, "cpuacct.usage_percpu", "").split()
            u["percpu"] = [int(x) for x in per]
            kv = common.read_kv(d, "cpuacct.stat")
            hz = os.sysconf("SC_CLK_TCK") or 100
            u["user"] = kv.get("user", 0) * 1_000_000_000 // hz
            u["kernel"] = kv.get("system", 0) * 1_000_000_000 // hz
            lines = common.read_file(d, "cpuacct.usage_all", "").splitlines()[1:]
            if lines:
                u["percpu_user"] = [int(l.split()[1]) for l in lines]
                u["percpu_kernel"] = [int(l.split()[2]) for l in lines]
        d = self.path("cpu")
        if d:
            kv = common.read_kv(d, "cpu.stat")
            t = s["cpu"]["throttling"]
            t["periods"] = kv.get("nr_periods", 0)
            t["throttledPeriods"] = kv.get("nr_throttled", 0)
            t["throttledTime"] = kv.get("throttled_time", 0)
        d = self.path("cpuset")
        if d:
            s["cpuset"] = cpuset_stats(d)
        d = self.path("memory")
        if d:
            mem = s["memory"]
            raw = common.read_kv(d, "memory.stat")
            mem["raw"] = raw
            mem["cache"] = raw.get("cache", 0)
            mem["usage"] = memory_entry(d, "memory")
            mem["swap"] = memory_entry(d, "memory.memsw")
            mem["kernel"] = memory_entry(d, "memory.kmem")
            mem["kernelTCP"] = memory_entry(d, "memory.kmem.tcp")
        d = self.path("pids")
        if d:
            s["pids"]["current"] = common.read_int(d, "pids.current")
            mx = common.read_file(d, "pids.max", "max").strip()
            s["pids"]["limit"] = 0 if mx == "max" else int(mx)
        d = self.path("blkio")
        if d:
            b = s["blkio"]
            if exists(d, "blkio.io_serviced_recursive"):
                pre = "blkio."
            elif exists(d, "blkio.bfq.io_serviced_recursive"):
                pre = "blkio.bfq."
            else:
                pre = None
            if pre:
                for field, f in (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                                 ("ioServicedRecursive", "io_serviced_recursive"),
                                 ("ioQueueRecursive", "io_queued_recursive"),
                                 ("ioServiceTimeRecursive", "io_service_time_recursive"),
                                 ("ioWaitTimeRecursive", "io_wait_time_recursive"),
                                 ("ioMergedRecursive", "io_merged_recursive"),
                                 ("ioTimeRecursive", "time_recursive"),
                                 ("sectorsRecursive", "sectors_recursive")):
                    b[field] = blk_entries(common.read_file(d, pre + f, ""))
            else:
                b["ioServiceBytesRecursive"] = blk_entries(
                    common.read_file(d, "blkio.throttle.io_service_bytes_recursive", ""))
                b["ioServicedRecursive"] = blk_entries(
                    common.read_file(d, "blkio.throttle.io_serviced_recursive", ""))
        d = self.path("hugetlb")
        if d:
            for f in sorted(os.listdir(d)):
                if f.startswith("hugetlb.") and f.endswith(".limit_in_bytes") and ".rsvd." not in f:
                    ps = f.split(".")[1]
                    s["hugetlb"][ps] = {"usage": common.read_int(d, f"hugetlb.{ps}.usage_in_bytes"),
                                        "max": common.read_int(d, f"hugetlb.{ps}.max_usage_in_bytes"),
                                        "failcnt": common.read_int(d, f"hugetlb.{ps}.failcnt")}
        from pyruntime.cgroups.stats import omit_empty
        return omit_empty(s)

    # ---------------------------------------------------------- mounts

    def mount_steps(self, mount, cgroupns):
        from pyruntime.cgroups.mounts import v1_steps
        return v1_steps(self, mount, cgroupns)


def _rdma_line(dev, lim):
    parts = [dev]
    if lim.get("hcaHandles") is not None:
        parts.append(f"hca_handle={lim['hcaHandles']}")
    if lim.get("hcaObjects") is not None:
        parts.append(f"hca_object={lim['hcaObjects']}")
    return " ".join(parts)
