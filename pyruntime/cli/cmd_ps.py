import sys

from ._common import runtime
from ..errors import RuntimeErr

HELP = "ps displays the processes running inside a container"
USAGE = "ps [command options] <container-id> [ps options]"
FLAGS = [(("-f", "--format"), "format", "str", 'select one of: table or json (default: "table")')]
NARGS = (1, None)
STOP_AT_FIRST_ARG = True  # everything after the id goes to ps(1)


def run(opts, args, g):
    pids = runtime(g).pids(args[0])
    fmt = opts.get("format") or "table"
    if fmt == "json":
        # Go encodes an empty (nil) slice as null
        from ..fastjson import dumps
        sys.stdout.write(dumps(pids or None, compact=True) + "\n")
        return 0
    if fmt != "table":
        raise RuntimeErr("invalid format option")
    import subprocess
    ps_args = args[1:] or ["-ef"]
    try:
        p = subprocess.run(["ps"] + ps_args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        raise RuntimeErr('exec: "ps": %s' % (e.strerror or e).lower())
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeErr("exit status %d: %s" % (p.returncode, out))
    lines = out.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise RuntimeErr("couldn't find PID field in ps output")
    idx = titles.index("PID")
    want = set(pids)
    res = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        try:
            pid = int(fields[idx])
        except (IndexError, ValueError):
            raise RuntimeErr('unable to parse pid: strconv.Atoi: parsing "%s": invalid syntax'
                             % (fields[idx] if idx < len(fields) else ""))
        if pid in want:
            res.append(line)
    sys.stdout.write("\n".join(res) + "\n")
    return 0
