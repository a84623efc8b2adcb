"""Small helpers shared by command modules."""


def runtime(g):
    from ..api import Runtime
    return Runtime(g.root, systemd_cgroup=g.systemd_cgroup, rootless=g.rootless,
                   log=lambda level, msg: g._emit(level, msg) if level != "debug" else g.debugf(msg))


CREATE_FLAGS = [
    (("-b", "--bundle"), "bundle", "str", "path to the root of the bundle directory, defaults to the current directory"),
    (("--console-socket",), "console_socket", "str", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"),
    (("--pid-file",), "pid_file", "str", "specify the file to write the process id to"),
    (("--no-pivot",), "no_pivot", "bool", "do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk"),
    (("--no-new-keyring",), "no_new_keyring", "bool", "do not create a new session keyring for the container.  This will cause the container to inherit the calling processes session key"),
    (("--preserve-fds",), "preserve_fds", "int", "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total) (default: 0)"),
]


def create_kwargs(opts):
    pf = opts.get("preserve_fds") or 0
    if pf < 0:
        from ..errors import RuntimeErr
        raise RuntimeErr("--preserve-fds must be a non-negative number")
    return dict(pid_file=opts.get("pid_file"), console_socket=opts.get("console_socket"),
                no_pivot=opts.get("no_pivot", False), no_new_keyring=opts.get("no_new_keyring", False),
                preserve_fds=pf)


def fail_prefix(cmd, e):
    """runc prefixes create/run/exec errors with the command: engines show the line as-is."""
    from ..errors import RuntimeErr
    return RuntimeErr("%s failed: %s" % (cmd, e))
