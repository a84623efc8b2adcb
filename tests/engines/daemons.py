"""The engines' set-up, one for the engine tests (tests/engines, tests/engines/v2) and
bench/bench.py: containerd (config.toml, the daemon, `ctr`), dockerd (its flags, the
daemon, the client's environment) and podman (containers.conf, storage.conf and
registries.conf through CONTAINERS_*), each confined to an engutil.Sandbox: sockets,
roots, state, configs and logs under its temp dir, cgroups under its name, nothing of
the host's /etc, /var/lib or /run used, no iptables rule or bridge made.

bench/bench.py imports this from the checkout (it puts tests/engines on sys.path), so it
imports nothing the bench does not have: engutil and the standard library only.
"""
import json
import os
import shlex

import engutil

# --- containerd ----------------------------------------------------------------------------

# the CRI plugin (test_cri.py brings its own section) and the snapshotters and tracing
# plugins that probe the host or want what is not here
_CTD_DISABLED = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                 "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                 "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]


def containerd_config(cri=None, debug=False, extra=""):
    """containerd's config.toml for a sandbox, as a str.format template of {d} (the
    sandbox's dir; `cri` and `extra` may name more fields). cri: the CRI plugin's own
    section, or None to disable the plugin (`ctr` needs none of it); debug: debug-level
    log; extra: further sections, appended."""
    disabled = ([] if cri else ["io.containerd.grpc.v1.cri"]) + _CTD_DISABLED
    lines = ['version = 2', 'root = "{d}/root"', 'state = "{d}/state"',
             "disabled_plugins = [%s]" % ", ".join('"%s"' % p for p in disabled),
             '[grpc]', '  address = "{d}/c.sock"',
             '[ttrpc]', '  address = "{d}/c.sock.ttrpc"']
    if debug:
        lines += ['[debug]', '  level = "debug"']
    lines += ['[metrics]', '  address = ""',
              '[plugins."io.containerd.monitor.v1.cgroups"]', '  no_prometheus = true']
    return "\n".join(lines) + "\n" + (cri or "") + extra


def start_containerd(sb, config, timeout=60, **fields):
    """Write `config` (containerd_config's template, its {d} the sandbox's dir, other
    fields from `fields`) as <sandbox>/config.toml and start containerd on it; -> its
    socket, once it answers."""
    sb.write("config.toml", config.format(d=sb.dir, **fields))
    sock = sb.path("c.sock")
    sb.start("containerd", ["containerd", "--config", sb.path("config.toml")], sock=sock,
             timeout=timeout)
    return sock


def ctr_argv(sock, ns):
    return ["ctr", "-a", sock, "-n", ns]


def ctr(sock, ns, *args, **kw):
    """`ctr` on that containerd, in namespace `ns` (keywords: engutil.run's)."""
    return engutil.run(ctr_argv(sock, ns) + list(args), **kw)


# --- dockerd -------------------------------------------------------------------------------

class Dockerd:
    """A dockerd started by start_dockerd: its socket, exec-root, and the client's
    environment (`docker` reaches this daemon and keeps its config in the sandbox)."""

    def __init__(self, sock, exec_root, env, proc):
        self.sock, self.exec_root, self.env, self.proc = sock, exec_root, env, proc


def start_dockerd(sb, runtimes=None, default=None, driver="cgroupfs", parent=None,
                  data_root=None, config="{}", extra_flags=True, timeout=90):
    """A dockerd confined to the sandbox: own socket, data-root (`data_root`, else
    <sandbox>/data), exec-root, pidfile and daemon.json (`config`'s text), no iptables,
    bridge, forwarding or masquerading, the `driver` cgroup driver with the containers
    under `parent` (default: /<the sandbox's name>, what its cleanup removes), each of
    `runtimes` {name: path} added (--add-runtime) and `default` the default runtime.
    extra_flags=False leaves out what a plain daemon.json would not change either
    (--userland-proxy=false, --storage-driver overlay2). -> Dockerd, once it answers."""
    sock = sb.path("docker.sock")
    exec_root = sb.mkdir("exec")
    argv = ["dockerd", "-H", "unix://" + sock, "--data-root", data_root or sb.path("data"),
            "--exec-root", exec_root, "--pidfile", sb.path("docker.pid"),
            "--config-file", sb.write("daemon.json", config), "--iptables=false",
            "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false"]
    if extra_flags:
        argv += ["--userland-proxy=false"]
    argv += ["--exec-opt", "native.cgroupdriver=" + driver,
             "--cgroup-parent", parent or "/" + sb.tag]
    if extra_flags:
        argv += ["--storage-driver", "overlay2"]
    for name, path in (runtimes or {}).items():
        argv += ["--add-runtime", "%s=%s" % (name, path)]
    if default:
        argv += ["--default-runtime", default]
    env = {"DOCKER_CONFIG": sb.mkdir("cli"), "DOCKER_HOST": "unix://" + sock}
    proc = sb.start("dockerd", argv, sock=sock, timeout=timeout)
    return Dockerd(sock, exec_root, env, proc)


# --- podman --------------------------------------------------------------------------------

# nofile/nproc: podman's defaults (1048576, or the host maximum) need CAP_SYS_RESOURCE on
# this host, under runc too; file locks keep podman off the host's /dev/shm/libpod_lock
PODMAN_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "{manager}"
events_logger = "file"
events_logfile_path = "{d}/events.log"
lock_type = "file"
tmp_dir = "{d}/tmp"
static_dir = "{d}/storage/libpod"
volume_path = "{d}/storage/volumes"
{default}
[engine.runtimes]
{runtimes}
[network]
network_config_dir = "{d}/net"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{d}/storage"
runroot = "{d}/run"
"""


def podman_env(sb, runtimes, default=None, manager="cgroupfs"):
    """The environment that confines every `podman` call to the sandbox (podman has no
    daemon): containers.conf, storage.conf and registries.conf written there, named by
    CONTAINERS_CONF, CONTAINERS_STORAGE_CONF and CONTAINERS_REGISTRIES_CONF. runtimes:
    {name: path} ([engine.runtimes]); default: the runtime podman uses unless told;
    manager: podman's cgroup manager."""
    sb.mkdir("net")
    conf = PODMAN_CONF.format(
        d=sb.dir, manager=manager,
        default='runtime = "%s"\n' % default if default else "",
        runtimes="".join('%s = ["%s"]\n' % kv for kv in runtimes.items()))
    return {
        "CONTAINERS_CONF": sb.write("containers.conf", conf),
        "CONTAINERS_STORAGE_CONF": sb.write("storage.conf", STORAGE_CONF.format(d=sb.dir)),
        "CONTAINERS_REGISTRIES_CONF": sb.write("registries.conf",
                                               "unqualified-search-registries = []\n"),
    }


# --- an engine's command line --------------------------------------------------------------

class Cli:
    """`docker` or `podman` as a test calls it: every call with `env` (the sandboxed
    daemon's or config's) and `timeout` unless given, output captured (engutil.run);
    `ok` also asserts that it succeeded. Subclasses add their own defaults in `argv`."""

    def __init__(self, argv0, env, timeout=60):
        self.argv0, self.env, self.timeout = argv0, env, timeout

    def argv(self, args):
        return args

    def __call__(self, *args, **kw):
        kw.setdefault("timeout", self.timeout)
        return engutil.run([self.argv0] + self.argv(list(args)), env=self.env, **kw)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, "%s %s -> %d\n%s%s" % (
            self.argv0, " ".join(args), r.returncode, r.stdout, r.stderr)
        return r

    def inspect(self, name):
        return json.loads(self.ok("inspect", name).stdout)[0]


# --- the runtime as an engine runs it ------------------------------------------------------

def wrapper(sb, name, cmd, root=None):
    """<sandbox>/name: one executable that runs the command line `cmd` (a list) with the
    engine's arguments, for engines that take one path, not a command line; with `root`,
    the runtime's state goes there (podman runs its runtime with the default --root)."""
    argv = shlex.join(cmd) + (" --root %s" % shlex.quote(root) if root else "")
    path = sb.write(name, '#!/bin/sh\nexec %s "$@"\n' % argv)
    os.chmod(path, 0o755)
    return path


def calls_wrapper(sb, log, template=engutil.WRAPPER, name="pyruntime-wrapper"):
    """<sandbox>/name: the runtime under test (engutil.PYRUNTIME) in a script made from
    `template` ({pyruntime}, {log}; engutil.WRAPPER appends each call and its exit status
    to `log`, which engutil.wrapper_calls reads)."""
    path = sb.write(name, template.format(pyruntime=engutil.PYRUNTIME, log=log))
    os.chmod(path, 0o755)
    return path
