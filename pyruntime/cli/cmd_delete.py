from ._common import runtime

HELP = "delete any resources held by the container often used with detached container"
USAGE = "delete [command options] <container-id>"
FLAGS = [(("-f", "--force"), "force", "bool", "Forcibly deletes the container if it is still running (uses SIGKILL)")]
NARGS = (1, 1)


def run(opts, args, g):
    runtime(g).delete(args[0], force=opts.get("force", False))
    return 0
