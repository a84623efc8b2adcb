import json
import sys

HELP = "show the enabled features"
USAGE = "features"
NARGS = (0, 0)


def run(opts, args, g):
    from .. import features
    sys.stdout.write(json.dumps(features.document(), indent=4) + "\n")
    return 0
