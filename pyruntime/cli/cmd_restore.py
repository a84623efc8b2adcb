from ._common import runtime

HELP = "restore a container from a previous checkpoint"
USAGE = "restore [command options] <container-id>"
DESCRIPTION = ("Restores the saved state of the container instance that was previously saved\n"
               "using the runc checkpoint command.")
FLAGS = [
    (("--console-socket",), "console_socket", "str", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"),
    (("--image-path",), "image_path", "str", "path to criu image files for restoring"),
    (("--work-path",), "work_path", "str", "path for saving work files and logs"),
    (("--tcp-established",), "tcp_established", "bool", "allow open tcp connections"),
    (("--ext-unix-sk",), "ext_unix_sk", "bool", "allow external unix sockets"),
    (("--shell-job",), "shell_job", "bool", "allow shell jobs"),
    (("--file-locks",), "file_locks", "bool", "handle file locks, for safety"),
    (("--manage-cgroups-mode",), "manage_cgroups_mode", "str", "cgroups mode: 'soft' (default), 'full' and 'strict'"),
    (("-b", "--bundle"), "bundle", "str", "path to the root of the bundle directory"),
    (("-d", "--detach"), "detach", "bool", "detach from the container's process"),
    (("--pid-file",), "pid_file", "str", "specify the file to write the process id to"),
    (("--no-subreaper",), "no_subreaper", "bool", "disable the use of the subreaper used to reap reparented processes"),
    (("--no-pivot",), "no_pivot", "bool", "do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk"),
    (("--empty-ns",), "empty_ns", "list", "create a namespace, but don't restore its properties"),
    (("--auto-dedup",), "auto_dedup", "bool", "enable auto deduplication of memory images"),
    (("--lazy-pages",), "lazy_pages", "bool", "use userfaultfd to lazily restore memory pages"),
    (("--lsm-profile",), "lsm_profile", "str", "Specify an LSM profile to be used during restore in the form of TYPE:NAME."),
    (("--lsm-mount-context",), "lsm_mount_context", "str", "Specify an LSM mount context to be used during restore."),
]
NARGS = (1, 1)


def run(opts, args, g):
    from ..criu import restore
    return restore(runtime(g), args[0], opts.get("bundle") or ".",
                   criu=getattr(g, "criu", None) or "criu",
                   image_path=opts.get("image_path"), work_path=opts.get("work_path"),
                   detach=opts.get("detach"), pid_file=opts.get("pid_file"),
                   console_socket=opts.get("console_socket"),
                   no_subreaper=opts.get("no_subreaper"), no_pivot=opts.get("no_pivot"),
                   tcp_established=opts.get("tcp_established"),
                   ext_unix_sk=opts.get("ext_unix_sk"), shell_job=opts.get("shell_job"),
                   file_locks=opts.get("file_locks"),
                   manage_cgroups_mode=opts.get("manage_cgroups_mode") or "",
                   empty_ns=opts.get("empty_ns"), auto_dedup=opts.get("auto_dedup"),
                   lazy_pages=opts.get("lazy_pages"), lsm_profile=opts.get("lsm_profile"),
                   lsm_mount_context=opts.get("lsm_mount_context"))
