
from ._common import runtime
from ..errors import RuntimeErr

HELP = "update container resource constraints"
USAGE = "update [command options] <container-id>"
_RES_HELP = """path to the file containing the resources to update or '-' to read from the standard input

The accepted format is as follow (unchanged values can be omitted):

{
  "memory": {
    "limit": 0,
    "reservation": 0,
    "swap": 0
  },
  "cpu": {
    "shares": 0,
    "quota": 0,
    "period": 0,
    "realtimeRuntime": 0,
    "realtimePeriod": 0,
    "cpus": "",
    "mems": ""
  },
  "blockIO": {
    "weight": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored."""
FLAGS = [
    (("--resources", "-r"), "resources", "str", _RES_HELP),
    (("--blkio-weight",), "blkio_weight", "int", "Specifies per cgroup weight, range is from 10 to 1000 (default: 0)"),
    (("--cpu-period",), "cpu_period", "str", "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default"),
    (("--cpu-quota",), "cpu_quota", "str", "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
    (("--cpu-burst",), "cpu_burst", "str", "CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given period"),
    (("--cpu-share",), "cpu_share", "str", "CPU shares (relative weight vs. other containers)"),
    (("--cpu-rt-period",), "cpu_rt_period", "str", "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default"),
    (("--cpu-rt-runtime",), "cpu_rt_runtime", "str", "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period"),
    (("--cpuset-cpus",), "cpuset_cpus", "str", "CPU(s) to use"),
    (("--cpuset-mems",), "cpuset_mems", "str", "Memory node(s) to use"),
    (("--memory",), "memory", "str", "Memory limit (in bytes)"),
    (("--memory-reservation",), "memory_reservation", "str", "Memory reservation or soft_limit (in bytes)"),
    (("--memory-swap",), "memory_swap", "str", "Total memory usage (memory + swap); set '-1' to enable unlimited swap"),
    (("--pids-limit",), "pids_limit", "int", "Maximum number of pids allowed in the container (default: 0)"),
    (("--l3-cache-schema",), "l3_cache_schema", "str", "The string of Intel RDT/CAT L3 cache schema"),
    (("--mem-bw-schema",), "mem_bw_schema", "str", "The string of Intel RDT/MBA memory bandwidth schema"),
]
NARGS = (1, 1)

_SIZE = r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$"
_MULT = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(s):
    """docker/go-units RAMInBytes: binary suffixes, case-insensitive ("64M", "1.5g", "512KiB")."""
    import re  # flags only: containerd's `update --resources -` never gets here
    m = re.match(_SIZE, s)
    if not m:
        raise ValueError("invalid size: '%s'" % s)
    try:
        n = float(m.group(1))
    except ValueError:
        raise ValueError("invalid size: '%s'" % s)
    if m.group(2):
        n *= _MULT[m.group(2).lower()]
    return int(n)


def _go_uint(opt, val):
    if not val.isdigit():
        raise RuntimeErr('invalid value for %s: strconv.ParseUint: parsing "%s": invalid syntax' % (opt, val))
    return int(val)


def _go_int(opt, val):
    import re
    if not re.fullmatch(r"[+-]?\d+", val):
        raise RuntimeErr('invalid value for %s: strconv.ParseInt: parsing "%s": invalid syntax' % (opt, val))
    return int(val)


def resources_from_flags(opts):
    """LinuxResources holding only what the flags set (0 = leave as is, as in runc)."""
    r = {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {}}
    if opts.get("blkio_weight"):
        r["blockIO"]["weight"] = opts["blkio_weight"]
    if opts.get("cpuset_cpus"):
        r["cpu"]["cpus"] = opts["cpuset_cpus"]
    if opts.get("cpuset_mems"):
        r["cpu"]["mems"] = opts["cpuset_mems"]
    for opt, key in (("cpu-period", "period"), ("cpu-rt-period", "realtimePeriod"),
                     ("cpu-share", "shares"), ("cpu-burst", "burst")):
        v = opts.get(opt.replace("-", "_"))
        if v:
            r["cpu"][key] = _go_uint(opt, v)
    for opt, key in (("cpu-quota", "quota"), ("cpu-rt-runtime", "realtimeRuntime")):
        v = opts.get(opt.replace("-", "_"))
        if v:
            r["cpu"][key] = _go_int(opt, v)
    for opt, key in (("memory", "limit"), ("memory-swap", "swap"),
                     ("memory-reservation", "reservation")):
        v = opts.get(opt.replace("-", "_"))
        if v:
            if v == "-1":
                r["memory"][key] = -1
            else:
                try:
                    r["memory"][key] = ram_in_bytes(v)
                except ValueError as e:
                    raise RuntimeErr("invalid value for %s: %s" % (opt, e))
    if opts.get("pids_limit"):
        r["pids"]["limit"] = opts["pids_limit"]
    return {k: v for k, v in r.items() if v}


def run(opts, args, g):
    if opts.get("resources"):
        from ..cgroupops import load_resources
        res = load_resources(opts["resources"])
    else:
        res = resources_from_flags(opts)
    runtime(g).update(args[0], res, l3_cache_schema=opts.get("l3_cache_schema"),
                      mem_bw_schema=opts.get("mem_bw_schema"))
    return 0
