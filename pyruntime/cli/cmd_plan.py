import json
import sys

from ._common import CREATE_FLAGS

HELP = "print the steps the container init would perform for a bundle, without running anything"
USAGE = "plan [command options] [container-id]"
FLAGS = [f for f in CREATE_FLAGS if f[1] in ("bundle", "no_pivot", "no_new_keyring", "preserve_fds")]
NARGS = (0, 1)


def _default(o):
    if isinstance(o, (bytes, bytearray)):
        return "<%d bytes>" % len(o)
    raise TypeError(repr(o))


def run(opts, args, g):
    import os
    from .. import config as config_mod, plan as plan_mod
    from ..ids import validate
    cid = validate(args[0]) if args else "plan"
    bundle = os.path.abspath(opts.get("bundle") or ".")
    config = config_mod.load(bundle)
    linux = config.get("linux") or {}
    from .. import cgroups
    mgr = cgroups.new(cid, linux.get("cgroupsPath"), linux.get("resources"),
                      systemd=g.systemd_cgroup, rootless=False,
                      linux_devices=linux.get("devices"))
    popts = {"no_pivot": opts.get("no_pivot"), "no_new_keyring": opts.get("no_new_keyring"),
             "preserve_fds": opts.get("preserve_fds") or 0}
    if linux.get("seccomp"):
        from .. import seccomp
        prog = seccomp.compile(linux["seccomp"])
        popts["seccomp"] = {"program": prog.bpf, "flags": prog.flags, "notify": prog.notify}
    p = plan_mod.build(config, bundle, cid, popts, cgroup_mgr=mgr)
    p["cgroup"] = mgr.to_state()
    sys.stdout.write(json.dumps(p, indent=2, default=_default) + "\n")
    return 0
