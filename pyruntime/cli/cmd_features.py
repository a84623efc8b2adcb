import sys

HELP = "show the enabled features"
USAGE = "features"
NARGS = (0, 0)


def run(opts, args, g):
    from .. import features
    from ..fastjson import dumps_indent  # containerd asks at every shim start: no `json`
    sys.stdout.write(dumps_indent(features.document(), indent=4) + "\n")
    return 0
