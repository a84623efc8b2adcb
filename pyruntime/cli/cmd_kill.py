from ._common import runtime

HELP = "kill sends the specified signal (default: SIGTERM) to the container's init process"
USAGE = "kill [command options] <container-id> [signal]"
FLAGS = [(("-a", "--all"), "all", "bool", "send the specified signal to all processes inside the container")]
NARGS = (1, 2)


def run(opts, args, g):
    runtime(g).kill(args[0], args[1] if len(args) > 1 else "SIGTERM", all=opts.get("all", False))
    return 0
