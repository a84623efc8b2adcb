import json
import sys

from ._common import CREATE_FLAGS, runtime

HELP = "print the steps the container init would perform for a bundle, without running anything"
USAGE = "plan [command options] [container-id]"
FLAGS = [f for f in CREATE_FLAGS if f[1] in ("bundle", "no_pivot", "no_new_keyring", "preserve_fds")]
NARGS = (0, 1)


def _default(o):
    if isinstance(o, (bytes, bytearray)):
        return "<%d bytes>" % len(o)
    raise TypeError(repr(o))


def run(opts, args, g):
    rt = runtime(g)
    cid = args[0] if args else "plan"
    p = rt.plan(cid, opts.get("bundle"), no_pivot=opts.get("no_pivot", False),
                no_new_keyring=opts.get("no_new_keyring", False),
                preserve_fds=opts.get("preserve_fds") or 0)
    if g.debug:
        from ..plan import digest
        g.debugf("plan %s: plan sha256 %s" % (cid, digest(p)))
    sys.stdout.write(json.dumps(p, indent=2, default=_default) + "\n")
    return 0
