"""runc's `events --stats` data object (types/events.go of runc 1.1): field
names, and Go's omitempty rules so the JSON has the same shape."""

from pyruntime.cgroups import common


def empty_stats():
    return {
        "cpu": {"usage": {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [],
                          "kernel": 0, "user": 0},
                "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}},
        "cpuset": {"cpus": [], "cpu_exclusive": 0, "mems": [], "mem_hardwall": 0,
                   "mem_exclusive": 0, "memory_migrate": 0, "memory_spread_page": 0,
                   "memory_spread_slab": 0, "memory_pressure": 0, "sched_load_balance": 0,
                   "sched_relax_domain_level": 0},
        "memory": {"cache": 0, "usage": _mem0(), "swap": _mem0(), "kernel": _mem0(),
                   "kernelTCP": _mem0(), "raw": {}},
        "pids": {"current": 0, "limit": 0},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _mem0():
    return {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}


# fields serialised with omitempty (zero value / empty list / empty map dropped)
_OMIT = {
    ("cpu", "usage"): {"total", "percpu", "percpu_kernel", "percpu_user"},
    ("cpu", "throttling"): {"periods", "throttledPeriods", "throttledTime"},
    ("cpuset",): {"cpus", "mems"},
    ("memory",): {"cache", "raw"},
    ("pids",): {"current", "limit"},
}
_MEMENTRY_OMIT = {"usage", "max"}
_BLK_OMIT = {"major", "minor", "op", "value"}


def omit_empty(s):
    # Go encodes maps with sorted keys and structs in field order: match both
    s["memory"]["raw"] = dict(sorted(s["memory"]["raw"].items()))
    s["hugetlb"] = dict(sorted(s["hugetlb"].items()))
    if s["cpuset"]:
        order = list(empty_stats()["cpuset"])
        s["cpuset"] = {k: s["cpuset"][k] for k in order if k in s["cpuset"]}
    for path, keys in _OMIT.items():
        d = s
        for p in path:
            d = d[p]
        for k in keys:
            if not d.get(k):
                d.pop(k, None)
    for e in ("usage", "swap", "kernel", "kernelTCP"):
        ent = s["memory"][e]
        for k in _MEMENTRY_OMIT:
            if not ent.get(k):
                ent.pop(k, None)
    blk = s["blkio"]
    for k in list(blk):
        if not blk[k]:
            del blk[k]
            continue
        blk[k] = [{f: v for f, v in ent.items() if v or f not in _BLK_OMIT} for ent in blk[k]]
    for ps, h in s["hugetlb"].items():
        for k in ("usage", "max"):
            if not h.get(k):
                h.pop(k, None)
    return s


def parse_list(text):
    """'0-2,5' -> [0, 1, 2, 5]"""
    out = []
    for part in text.strip().split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def cpuset_stats(d, v2=False):
    res = {}
    if v2:
        res["cpus"] = parse_list(common.read_file(d, "cpuset.cpus.effective", ""))
        res["mems"] = parse_list(common.read_file(d, "cpuset.mems.effective", ""))
        for k in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                  "memory_spread_page", "memory_spread_slab", "memory_pressure",
                  "sched_load_balance", "sched_relax_domain_level"):
            res[k] = 0
        return res
    res["cpus"] = parse_list(common.read_file(d, "cpuset.cpus", ""))
    res["mems"] = parse_list(common.read_file(d, "cpuset.mems", ""))
    for k in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
              "memory_spread_page", "memory_spread_slab", "memory_pressure",
              "sched_load_balance", "sched_relax_domain_level"):
        res[k] = common.read_int(d, "cpuset." + k)
    return res


def blk_entries(text):
    """'8:0 Read 4096' lines -> BlkioEntry dicts ('Total' lines skipped)."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 2 or ":" not in f[0]:
            continue
        ma, _, mi = f[0].partition(":")
        if len(f) == 3:
            op, val = f[1], f[2]
        else:
            op, val = "", f[1]
        try:
            out.append({"major": int(ma), "minor": int(mi), "op": op, "value": int(val)})
        except ValueError:
            pass
    return out


def memory_entry(d, prefix):
    """v1 <prefix>.{usage_in_bytes,max_usage_in_bytes,failcnt,limit_in_bytes}."""
    if not common.exists(d, prefix + ".usage_in_bytes"):
        return _mem0()
    return {"limit": common.read_int(d, prefix + ".limit_in_bytes"),
            "usage": common.read_int(d, prefix + ".usage_in_bytes"),
            "max": common.read_int(d, prefix + ".max_usage_in_bytes"),
            "failcnt": common.read_int(d, prefix + ".failcnt")}
