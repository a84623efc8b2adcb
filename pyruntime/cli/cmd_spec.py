HELP = "create a new specification file"
USAGE = "spec [command options]"
FLAGS = [
    (("-b", "--bundle"), "bundle", "str", "path to the root of the bundle directory"),
    (("--rootless",), "rootless", "bool", "generate a configuration for a rootless container"),
]
NARGS = (0, 0)


def run(opts, args, g):
    from .. import specgen
    specgen.write_spec(opts.get("bundle") or ".", rootless=opts.get("rootless", False))
    return 0
