"""The library API: every operation the CLI offers, on a runtime root.

    from pyruntime import Runtime
    rt = Runtime("/run/pyruntime")
    rt.create("c1", "/path/to/bundle", pid_file="/tmp/c1.pid")
    rt.start("c1")
    rt.state("c1")            # the OCI state dict
    rt.kill("c1", "SIGTERM")
    rt.delete("c1", force=True)

Errors raise pyruntime.errors.RuntimeErr (str() is the one-line message).
"""
import os
import time

from . import faults
from . import fastjson, state as st
from .errors import InvalidState, RuntimeErr
from .ids import validate

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(s):
    if isinstance(s, int):
        return s
    s = str(s).strip()
    if s.isdigit():
        n = int(s)
        if 0 < n < 65:
            return n
        raise RuntimeErr("invalid signal: %s" % s)
    name = s.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in SIGNALS:
        return SIGNALS[name]
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        base = 34 if name.startswith("RTMIN") else 64
        off = name[5:]
        try:
            n = base + (int(off) if off else 0)
        except ValueError:
            n = -1
        if 34 <= n <= 64:
            return n
    raise RuntimeErr('unknown signal "%s"' % s)


def _now_rfc3339():
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%09dZ" % (ns % 10**9)


class Runtime:
    def __init__(self, root="/run/pyruntime", systemd_cgroup=False, rootless="auto", log=None):
        self.root = root
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.log = log  # callable(level, msg) for warnings, or None

    def _warn(self, msg):
        if self.log:
            self.log("warning", msg)

    def _debug(self, msg):
        if self.log:
            self.log("debug", msg)

    # ---- queries -----------------------------------------------------------------------

    def load(self, cid, lock=False):
        return st.load(self.root, cid, lock=lock)

    def state(self, cid):
        c = self.load(cid)
        return c.oci_state()

    def list(self):
        out = []
        names = {}  # uid -> user name: one passwd lookup per owner, not per container
        for cid in st.list_ids(self.root):
            try:
                c = st.load(self.root, cid)
            except RuntimeErr as e:
                self._warn(str(e))   # runc too names it and lists the rest
                continue
            s = c.oci_state()
            try:
                uid = os.stat(c.dir).st_uid
            except OSError:
                s["owner"] = ""
            else:
                if uid not in names:
                    try:
                        import pwd
                        names[uid] = pwd.getpwuid(uid).pw_name
                    except KeyError:
                        names[uid] = "#%d" % uid
                s["owner"] = names[uid]
            out.append(s)
        return out

    # ---- create ------------------------------------------------------------------------

    def create(self, cid, bundle, pid_file=None, console_socket=None, no_pivot=False,
               no_new_keyring=False, preserve_fds=0, _foreground=False):
        """Create the container; returns the init pid. The init waits for start()."""
        # before the runtime opens anything: only these of the caller's fds may pass
        from .executor import open_fds
        pass_fds = open_fds(3, 3 + max(int(preserve_fds or 0), 0) + _listen_fds())
        validate(cid)
        # run in the foreground may relay the terminal itself (no console socket needed)
        self._fg = _foreground
        from . import config as config_mod
        bundle = os.path.abspath(bundle or ".")
        st.ensure_root(self.root)
        config = config_mod.load(bundle, cache_dir=_cache_dir("config"))
        if not config.get("process"):
            raise RuntimeErr("process: the container's process is required for create")
        path = os.path.join(self.root, cid)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise RuntimeErr("container with given ID already exists")
        except OSError as e:
            raise RuntimeErr("unable to create the state directory %s: %s"
                             % (path, st._strerror(e)))
        dirfd = st.lock_dir(path)
        launch = None
        mgr = None
        cr_start, _ = st.proc_start_time(os.getpid())
        c = st.Container(self.root, cid, {
            "ociVersion": "1.3.0", "id": cid, "status": "creating", "pid": 0,
            "bundle": bundle, "rootfs": config["_rootfs"], "created": _now_rfc3339(),
            "owner": "", "annotations": config.get("annotations") or {},
            "creator_pid": os.getpid(), "creator_start": cr_start,
            "no_new_keyring": bool(no_new_keyring),
            # the hooks later commands run, so start/delete need not read config.json
            "hooks": {k: v for k, v in (config.get("hooks") or {}).items()
                      if k in ("poststart", "poststop") and v},
        })
        try:
            c.save()
            st.write_atomic(os.path.join(path, "config.json"),
                            fastjson.dumps({k: v for k, v in config.items() if not k.startswith("_")}).encode())
            faults.at("create:state-dir")
            launch, mgr = self._launch_init(c, config, bundle, console_socket, no_pivot,
                                            no_new_keyring, preserve_fds, pass_fds)
            c.data["status"] = "created"
            c.save()
            # start/state/kill/delete of the ordinary case, for the launcher (fastplan.py)
            from . import fastplan
            fastplan.write(c)
            faults.at("create:before-pidfile")
            if pid_file:
                _write_pid_file(pid_file, launch.pid)
            pid = launch.pid
            launch.close()
            if not _foreground:
                launch.pid = 0
            return launch if _foreground else pid
        except BaseException:
            from .teardown import net_devices_home
            net_devices_home(c)
            if mgr is None and c.data.get("cgroup"):
                # _launch_init failed: what it made (or meant to) is on record
                from . import cgroups
                try:
                    mgr = cgroups.from_state(c.data["cgroup"])
                except RuntimeErr:
                    pass
            _abort(launch, mgr)
            if launch is not None:
                from .stdio import close
                close(getattr(launch, "stdio", ()))
            if c.data.get("host_rootfs_mount"):
                from .teardown import detach_host_rootfs
                detach_host_rootfs(c.data)
            st.remove_dir(path)
            if (config.get("hooks") or {}).get("poststop"):
                # runc destroys a failed container the usual way: poststop hooks run
                from . import hooks as hooks_mod
                try:
                    hooks_mod.run_hooks(config["hooks"], "poststop", c.oci_state("stopped"),
                                        warn=self._warn)
                except Exception:
                    pass
            raise
        finally:
            if getattr(c, "netns_fd", None) is not None:
                os.close(c.netns_fd)
                c.netns_fd = None
            os.close(dirfd)

    def _launch_init(self, c, config, bundle, console_socket, no_pivot, no_new_keyring,
                     preserve_fds, pass_fds=None):
        from . import plan as plan_mod
        from .executor import Launch
        linux = config.get("linux") or {}
        process = config["process"]
        self._refuse_unsupported(config, console_socket)
        mgr = None
        if self._needs_cgroup(config):
            from . import cgroups
            mgr = cgroups.new(c.id, linux.get("cgroupsPath"), linux.get("resources"),
                              systemd=self.systemd_cgroup, rootless=self._is_rootless(),
                              linux_devices=linux.get("devices"),
                              annotations=config.get("annotations"))
        opts = {"no_pivot": no_pivot, "no_new_keyring": no_new_keyring,
                "preserve_fds": preserve_fds, "listen_fds": _listen_fds(), "pass_fds": pass_fds}
        if opts["listen_fds"]:
            # runc: socket activation fds follow stdio, and the process is told so
            process["env"] = list(process.get("env") or []) + [
                "LISTEN_FDS=%d" % opts["listen_fds"], "LISTEN_PID=1"]
        if linux.get("seccomp"):
            from . import seccomp
            prog = seccomp.compile(linux["seccomp"], cache_dir=_cache_dir("seccomp"))
            opts["seccomp"] = {"program": prog.bpf, "flags": prog.flags, "notify": prog.notify}
        env = process.get("env") or []
        if not any(e.startswith("HOME=") for e in env):
            # runc: HOME from the container's passwd entry for the user, else "/"
            process["env"] = env + ["HOME=" + _home_of(config["_rootfs"], (process.get("user") or {}).get("uid", 0))]
        if os.geteuid() != 0 and linux.get("gidMappings"):
            from . import rootless
            # the runtime will deny setgroups before writing its own gid as the only map
            opts["setgroups_denied"] = rootless.setgroups_denied(
                {"gid_mappings": linux["gidMappings"]})
        cg_replace = None
        if mgr is not None and self._is_rootless() and isinstance(getattr(mgr, "mounts", None), dict):
            from . import rootless
            _record_cgroups(c, mgr, mgr.intent())
            cg_replace = rootless.settle_cgroups(mgr, c)
            _record_cgroups(c, mgr)
        from . import stdio
        child_stdio = parent_stdio = ()
        if process.get("terminal"):
            opts["stdio"] = {"chown": 7}      # the console is on 0-2 by then
        elif getattr(self, "_fg", False):
            # run in the foreground: pipes the runtime relays, not the caller's files
            child_stdio, parent_stdio = stdio.pipes(3 + preserve_fds + opts["listen_fds"])
            opts["stdio"] = {"fds": list(child_stdio), "chown": 7}
        else:
            opts["stdio"] = {"chown": stdio.inherited_mask()}
        fifo_fd = None
        try:
            plan = plan_mod.build(config, bundle, c.id, opts, cgroup_mgr=mgr)
            if cg_replace:
                rootless.cgroup_binds(plan, cg_replace)
            fifo = os.path.join(c.dir, st.FIFO)
            os.mkfifo(fifo, 0o622)
            fifo_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
            idmap_fds = []
            if any(st.get("idmap") or st.get("host_clone") for st in plan["steps"]):
                from . import idmap
                idmap_fds = idmap.prepare(plan)
            if plan.get("host_rootfs_mount"):
                # with how many mounts the path had before ours: detach only what is ours
                from .teardown import mounts_at
                c.data["host_rootfs_mount"] = [plan["host_rootfs_mount"],
                                               mounts_at(plan["host_rootfs_mount"])]
        except BaseException:
            if fifo_fd is not None:
                os.close(fifo_fd)
            stdio.close(child_stdio + parent_stdio)
            raise
        launch = Launch(plan, fifo_fd)
        launch.stdio = parent_stdio
        try:
            if plan.get("clone_into_cgroup"):
                # the init is cloned straight into its cgroup, which must exist first
                self._make_cgroups(c, mgr)
            try:
                pid = launch.spawn()
            finally:
                stdio.close(child_stdio)   # the init has its own copies now
            for fd in idmap_fds:   # the init has its own copies now
                os.close(fd)
            idmap_fds = []
            c.data["pid"] = pid
            c.data["start_time"], _ = st.proc_start_time(pid)
            # with a pid namespace of its own, killing the init takes every process of
            # the container: delete then never signals what else is in its cgroup
            c.data["pidns"] = "pid" in plan["namespaces"]["clone"]
            _record_cgroups(c, mgr, mgr.intent() if mgr is not None else [])
            faults.at("create:spawned")
            self._write_id_maps(pid, plan)
            if linux.get("netDevices"):
                # into the init's network namespace before it runs (and the container with it)
                from . import netdev
                ns_path = next((n.get("path") for n in linux.get("namespaces") or ()
                                if n.get("type") == "network"), "") or ""
                c.data["net_devices"] = {}
                c.data["netns_path"] = ns_path
                # held until create returns: should the init die, the namespace (and the
                # devices in it) stay for a failed create to give them back
                c.netns_fd = os.open("/proc/%d/ns/net" % pid, os.O_RDONLY | os.O_CLOEXEC)
                for host, name in netdev.move_in(pid, linux["netDevices"]):
                    c.data["net_devices"][host] = name
                c.save()
            if plan.get("oom_score_adj") is not None:
                _write_oom_score_adj(pid, plan["oom_score_adj"])
            if mgr is not None and not plan.get("clone_into_cgroup"):
                self._make_cgroups(c, mgr)
            faults.at("create:cgroup")
            launch.send()
            faults.at("create:go")
            if mgr is not None:
                # concurrently with the init's own setup; it waits at its "cgroup" sync
                mgr.apply()
                if launch.born_in_cgroup:
                    self._debug("init %d: born in its cgroup %s (clone3 CLONE_INTO_CGROUP)"
                                % (pid, plan["clone_into_cgroup"]))
                else:
                    if launch.cgroup_errno is not None:
                        from .executor import strerror
                        self._debug("init %d: clone3 CLONE_INTO_CGROUP %s: %s; moving it there"
                                    % (pid, plan["clone_into_cgroup"],
                                       strerror(launch.cgroup_errno)))
                    mgr.add_pid(pid)
            console = None
            if process.get("terminal"):
                console = _ConsoleSender(console_socket) if console_socket else _ConsoleKeeper(launch)
            hooks = config.get("hooks") or {}

            def on_sync(tag, step):
                faults.at("create:sync")
                if tag == "hooks":
                    from . import hooks as hooks_mod
                    s = c.oci_state("creating")
                    s["pid"] = launch.pid
                    try:
                        hooks_mod.run_hooks(hooks, "prestart", s)
                        hooks_mod.run_hooks(hooks, "createRuntime", s)
                        hooks_mod.run_hooks(hooks, "createContainer", s, ns_pid=launch.pid)
                    except RuntimeErr as e:
                        # runc's wording: the hooks run during the init's setup
                        raise RuntimeErr("unable to start container process: error during "
                                         "container init: %s" % e) from None

            def on_fd(step, fd):
                try:
                    if step["op"] == "console" and console is not None:
                        console.send(fd)
                    elif step["op"] == "seccomp":
                        from . import seccomp
                        s = c.oci_state("creating")
                        s["pid"] = launch.pid
                        seccomp.send_listener(linux["seccomp"], fd, s)
                finally:
                    os.close(fd)

            def on_pid(new):
                # the init forked into a joined pid namespace by the process that built
                # its root (which is gone now): it is the one on record from here
                c.data["pid"] = new
                c.data["start_time"], _ = st.proc_start_time(new)
                c.save()
                st.save_owned(c)

            launch.run(on_sync=on_sync, on_fd=on_fd, on_pid=on_pid)
        except BaseException:
            _abort(launch, mgr)
            stdio.close(parent_stdio)
            raise
        finally:
            os.close(fifo_fd)
            for fd in idmap_fds:
                os.close(fd)
        return launch, mgr

    def _make_cgroups(self, c, mgr):
        intent = mgr.intent()
        _record_cgroups(c, mgr, intent)
        try:
            mgr.create()
        finally:
            # what create made must be on record even if it failed halfway
            if mgr.created != intent:
                _record_cgroups(c, mgr)
        if not mgr.exclusive():
            n = len(mgr.pids())   # another container's: delete will spare them
            if n:
                self._warn("container's cgroup is not empty: %d process(es) found" % n)
                self._warn("DEPRECATED: running container in a non-empty cgroup won't "
                           "be supported in runc 1.2; "
                           "https://github.com/opencontainers/runc/issues/3132")

    def _is_rootless(self):
        if self.rootless == "true":
            return True
        if self.rootless == "false":
            return False
        return os.geteuid() != 0

    def _needs_cgroup(self, config):
        return True

    def _refuse_unsupported(self, config, console_socket):
        process = config["process"]
        fg = getattr(self, "_fg", False)
        if process.get("terminal") and not console_socket and not fg:
            raise RuntimeErr("cannot allocate tty if runc will detach without setting console socket")
        if (not process.get("terminal") or fg) and console_socket:
            raise RuntimeErr("cannot use console socket if runc will not detach or allocate tty")
        linux = config.get("linux") or {}
        if linux.get("intelRdt") is not None:
            from .features import resctrl_mounted
            if not resctrl_mounted():
                raise RuntimeErr("linux.intelRdt: Intel RDT is not available on this host "
                                 "(no resctrl filesystem mounted at /sys/fs/resctrl)")
            raise RuntimeErr("linux.intelRdt is not supported by this build of pyruntime")
        # apparmorProfile / selinuxLabel / mountLabel are applied by the plan (writes to
        # /proc/self/attr, context= mount data), failing as runc 1.1 does where the host
        # lacks the LSM; runc refuses a process label up front when SELinux is off.
        if process.get("selinuxLabel"):
            from .features import selinux_enabled
            if not selinux_enabled():
                raise RuntimeErr("selinux label is specified in config, but selinux is disabled "
                                 "or not supported")

    def _write_id_maps(self, pid, plan):
        if "user" not in plan["namespaces"]["clone"]:
            return
        if os.geteuid() != 0:
            from . import rootless
            rootless.write_id_maps(pid, plan["uid_mappings"], plan["gid_mappings"])
            return
        for kind, maps in (("uid", plan["uid_mappings"]), ("gid", plan["gid_mappings"])):
            if not maps:
                continue
            data = "".join("%d %d %d\n" % (m["containerID"], m["hostID"], m["size"]) for m in maps)
            try:
                with open("/proc/%d/%s_map" % (pid, kind), "w") as f:
                    f.write(data)
            except OSError as e:
                from .executor import strerror
                raise RuntimeErr("unable to start container process: write %s_map: %s"
                                 % (kind, strerror(e.errno)))

    # ---- start / run -------------------------------------------------------------------

    def start(self, cid):
        c = self.load(cid, lock=True)
        try:
            status = c.status()
            if status == "stopped":
                raise InvalidState("cannot start a container that has stopped")
            if status != "created":
                raise InvalidState("cannot start an already running container")
            fifo = os.path.join(c.dir, st.FIFO)
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                raise InvalidState("cannot start a container that has stopped")
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
            faults.at("start:fifo-written")
            os.unlink(fifo)
            hooks = c.hooks()
            if hooks.get("poststart"):
                from . import hooks as hooks_mod
                # the spec: a failing poststart hook is a warning, the remaining hooks
                # and the lifecycle continue (the container stays running, start succeeds)
                hooks_mod.run_hooks(hooks, "poststart", c.oci_state("running"), warn=self._warn)
        finally:
            if c.dirfd is not None:
                os.close(c.dirfd)

    def run(self, cid, bundle, detach=False, keep=False, **create_kw):
        """create + start; in the foreground wait and return the exit status (128+N for
        a signal), forwarding signals to the container."""
        import _signal as signal  # the C module: `signal` imports enum
        if detach:
            pid = self.create(cid, bundle, **create_kw)
            try:
                self.start(cid)
            except BaseException:
                self.delete(cid, force=True)
                raise
            return 0
        forwarded = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                                 signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)]
        pending = []
        target = [0]

        def fwd(signum, _frame):
            if target[0]:
                try:
                    os.kill(target[0], signum)
                except ProcessLookupError:
                    pass
            else:
                pending.append(signum)

        old = {s: signal.signal(s, fwd) for s in forwarded}
        try:
            launch = self.create(cid, bundle, _foreground=True, **create_kw)
            pid = launch.pid
            target[0] = pid
            try:
                self.start(cid)
                for s in pending:
                    os.kill(pid, s)
                master = getattr(launch, "console_master", None)
                pipes, launch.stdio = launch.stdio, ()
                if master is not None:
                    # run -t without --console-socket: a person at a terminal
                    from .tty import relay
                    try:
                        status = relay(master, pid)
                    finally:
                        os.close(master)
                        launch.console_master = None
                elif pipes:
                    from .stdio import relay
                    status = relay(pid, pipes)
                while master is None and not pipes:
                    try:
                        _, status = os.waitpid(pid, 0)
                        break
                    except InterruptedError:
                        continue
                    except ChildProcessError:
                        status = 0
                        break
            except BaseException:
                from .stdio import close
                close(getattr(launch, "stdio", ()))
                try:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
                if not keep:
                    self.delete(cid, force=True)
                raise
            if os.WIFSIGNALED(status):
                code = 128 + os.WTERMSIG(status)
            else:
                code = os.WEXITSTATUS(status)
            if not keep:
                self.delete(cid, force=True)
            return code
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    # ---- kill / delete -----------------------------------------------------------------

    def kill(self, cid, sig="SIGTERM", all=False):
        signum = parse_signal(sig)
        c = self.load(cid)
        status = c.status()
        if status in ("stopped", "creating"):
            if all:
                return
            raise InvalidState("container not running")
        if all and c.data.get("cgroup"):
            from . import cgroups
            cgroups.from_state(c.data["cgroup"]).kill_all(signum)
            return
        from .teardown import signal_init
        if not signal_init(c.pid, c.data.get("start_time"), signum) and not all:
            raise InvalidState("container not running")

    def delete(self, cid, force=False):
        from .teardown import delete
        delete(self, cid, force)


def _record_cgroups(c, mgr, intent=()):
    """state.json and owned.json name the init and every cgroup dir that is or may be
    made (intent: the dirs about to be made, written before the first mkdir), so a
    create killed at any moment leaves nothing delete --force cannot find."""
    if mgr is not None:
        c.data["cgroup"] = rec = mgr.to_state()
        rec["created"] = rec["created"] + [d for d in intent if d not in rec["created"]]
    c.save()
    st.save_owned(c)


def _abort(launch, mgr):
    """Undo a create that failed: the init (it may be anywhere in its plan) and every
    cgroup directory made for it."""
    if launch is not None:
        launch.kill()
    if mgr is not None:
        try:
            mgr.destroy()
        except Exception:
            pass


def _cache_dir(kind):
    """Content-addressed caches (validated configs, compiled seccomp filters). Kept out of
    the state root, which holds containers and nothing else."""
    base = os.environ.get("PYRUNTIME_CACHE_DIR")
    if not base:
        if os.geteuid() == 0:
            base = "/var/cache/pyruntime"
        else:
            base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                "pyruntime")
    return os.path.join(base, kind)


_PASSWD_MAX = 4 << 20


def _home_of(rootfs, uid):
    """runc: HOME from the container's passwd entry for the user, "/" without one.

    The file is the container's to shape, and a running container reshapes it at will:
    it is resolved inside the rootfs (no symlink or magic link leads out), opened as an
    O_PATH handle first so that opening it cannot block or wake a device, and read only
    if it is a regular file of sane size. Anything else is one line, as runc says when
    it cannot parse the file (runc itself blocks forever on a FIFO)."""
    from .executor import open_in_root, strerror
    what = "unable to start container process: unable to setup user: /etc/passwd: "
    try:
        fd = open_in_root(rootfs, "/etc/passwd", os.O_PATH)
    except OSError as e:
        if e.errno in (2, 20):   # ENOENT, ENOTDIR: no passwd, runc's default
            return "/"
        raise RuntimeErr(what + strerror(e.errno)) from None
    try:
        info = os.fstat(fd)
        if info.st_mode & 0o170000 != 0o100000:   # S_ISREG
            raise RuntimeErr(what + "not a regular file")
        if info.st_size > _PASSWD_MAX:
            raise RuntimeErr(what + "larger than %d MiB" % (_PASSWD_MAX >> 20))
        # the same inode, now for reading
        rfd = os.open("/proc/self/fd/%d" % fd,
                      os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeErr(what + strerror(e.errno)) from None
    finally:
        os.close(fd)
    # Chunks, not one read of the bound: that would allocate (and on some paths touch)
    # 4 MiB for a file of a few hundred bytes, create's largest allocation.
    chunks, n = [], 0
    try:
        while n <= _PASSWD_MAX:
            b = os.read(rfd, 65536)
            if not b:
                break
            chunks.append(b)
            n += len(b)
    except OSError as e:
        raise RuntimeErr(what + strerror(e.errno)) from None
    finally:
        os.close(rfd)
    data = b"".join(chunks)
    if len(data) > _PASSWD_MAX:
        raise RuntimeErr(what + "larger than %d MiB" % (_PASSWD_MAX >> 20))
    want = str(uid)
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 6 and parts[2] == want:
            return parts[5] or "/"
    return "/"


def _write_oom_score_adj(pid, v):
    try:
        with open("/proc/%d/oom_score_adj" % pid, "w") as f:
            f.write(str(v))
    except OSError as e:
        from .executor import strerror
        hint = ""
        if e.errno in (1, 13) and v < 0:
            hint = " (lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host does not grant)"
        raise RuntimeErr("unable to start container process: error during container init: "
                         "set oom_score_adj to %d: %s%s" % (v, strerror(e.errno), hint))


def _listen_fds():
    if os.environ.get("LISTEN_PID") == str(os.getpid()):
        try:
            return int(os.environ.get("LISTEN_FDS", "0"))
        except ValueError:
            return 0
    return 0


def _write_pid_file(path, pid):
    path = os.path.abspath(path)
    st.write_atomic(path, str(pid).encode(), mode=0o644)


class _ConsoleKeeper:
    """run -t without --console-socket: keep the console master for the terminal relay."""

    def __init__(self, launch):
        self.launch = launch

    def send(self, fd):
        self.launch.console_master = os.dup(fd)
        if os.isatty(0):
            # before start: the process sees our size from its first instruction
            from .tty import copy_winsize
            copy_winsize(0, fd)


class _ConsoleSender:
    """Delivers the console master to --console-socket, as runc does (SCM_RIGHTS)."""

    def __init__(self, path):
        self.path = path

    def send(self, fd):
        import socket
        from .executor import send_fd
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.path)
            send_fd(s.fileno(), fd, "/dev/ptmx")
        except OSError as e:
            raise RuntimeErr("failed to send the console to %s: %s" % (self.path, e.strerror))
        finally:
            s.close()


# ---- operations that live in their own modules (one concern each) ----------------------
# Runtime's methods below are thin: the work is in pyruntime/execproc.py (exec),
# pyruntime/cgroupops.py (pause, resume, update, events, ps). Keeping them out of this file
# keeps each concern easy to find and lets each import only what it needs.

def _exec(self, cid, process, **kw):
    """Run `process` (an OCI process dict) in the container; see pyruntime.execproc."""
    from .execproc import exec_process
    return exec_process(self, cid, process, **kw)


def _pause(self, cid):
    from .cgroupops import pause
    return pause(self, cid)


def _resume(self, cid):
    from .cgroupops import resume
    return resume(self, cid)


def _update(self, cid, resources):
    from .cgroupops import update
    return update(self, cid, resources)


def _stats(self, cid):
    from .cgroupops import stats
    return stats(self, cid)


def _ps(self, cid):
    from .cgroupops import pids
    return pids(self, cid)


Runtime.exec = _exec
Runtime.pause = _pause
Runtime.resume = _resume
Runtime.update = _update
Runtime.stats = _stats
Runtime.pids = _ps
