from ._common import runtime

HELP = "checkpoint a running container"
USAGE = "checkpoint [command options] <container-id>"
DESCRIPTION = "The checkpoint command saves the state of the container instance."
FLAGS = [
    (("--image-path",), "image_path", "str", "path for saving criu image files"),
    (("--work-path",), "work_path", "str", "path for saving work files and logs"),
    (("--parent-path",), "parent_path", "str", "path for previous criu image files in pre-dump"),
    (("--leave-running",), "leave_running", "bool", "leave the process running after checkpointing"),
    (("--tcp-established",), "tcp_established", "bool", "allow open tcp connections"),
    (("--tcp-skip-in-flight",), "tcp_skip_in_flight", "bool", "skip in-flight tcp connections"),
    (("--link-remap",), "link_remap", "bool", "allow one to link unlinked files back when possible"),
    (("--ext-unix-sk",), "ext_unix_sk", "bool", "allow external unix sockets"),
    (("--shell-job",), "shell_job", "bool", "allow shell jobs"),
    (("--lazy-pages",), "lazy_pages", "bool", "use userfaultfd to lazily restore memory pages"),
    (("--status-fd",), "status_fd", "int", "criu writes \\0 to this FD once lazy-pages is ready (default: -1)"),
    (("--page-server",), "page_server", "str", "ADDRESS:PORT of the page server"),
    (("--file-locks",), "file_locks", "bool", "handle file locks, for safety"),
    (("--pre-dump",), "pre_dump", "bool", "dump container's memory information only, leave the container running after this"),
    (("--manage-cgroups-mode",), "manage_cgroups_mode", "str", "cgroups mode: 'soft' (default), 'full' and 'strict'"),
    (("--empty-ns",), "empty_ns", "list", "create a namespace, but don't restore its properties"),
    (("--auto-dedup",), "auto_dedup", "bool", "enable auto deduplication of memory images"),
]
NARGS = (1, 1)


def run(opts, args, g):
    from ..criu import checkpoint
    sfd = opts.get("status_fd")
    checkpoint(runtime(g), args[0], criu=getattr(g, "criu", None) or "criu",
               image_path=opts.get("image_path"), work_path=opts.get("work_path"),
               parent_path=opts.get("parent_path"), leave_running=opts.get("leave_running"),
               tcp_established=opts.get("tcp_established"), ext_unix_sk=opts.get("ext_unix_sk"),
               shell_job=opts.get("shell_job"), file_locks=opts.get("file_locks"),
               pre_dump=opts.get("pre_dump"),
               manage_cgroups_mode=opts.get("manage_cgroups_mode") or "",
               empty_ns=opts.get("empty_ns"), auto_dedup=opts.get("auto_dedup"),
               lazy_pages=opts.get("lazy_pages"), status_fd=-1 if sfd is None else sfd,
               page_server=opts.get("page_server"),
               tcp_skip_in_flight=opts.get("tcp_skip_in_flight"), link_remap=opts.get("link_remap"))
    return 0

