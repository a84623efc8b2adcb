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
from . import oslite as os

from . import faults
from . import DEFAULT_ROOT, OCI_VERSION, fastjson, state as st
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
    s = str(s)
    digits = s[1:] if s[:1] in ("+", "-") else s
    if digits.isdigit() and digits.isascii():
        n = int(s)
        # runc: any integer is a signal number, 0 probes; the kernel refuses the rest
        if 0 <= n < 65:
            return n
        raise RuntimeErr("unable to signal init: invalid argument")
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


class Runtime:
    def __init__(self, root=DEFAULT_ROOT, systemd_cgroup=False, rootless="auto", log=None,
                 debug=False, cache_dir=None, listen_fds=0):
        self.root = root
        # the caller's, as arguments (the CLI reads them from its environment): where
        # validated configs and compiled filters are cached (None: nowhere), and how many
        # socket-activation fds after stdio the caller passes (LISTEN_FDS)
        self.cache_dir = cache_dir
        self.listen_fds = max(int(listen_fds or 0), 0)
        self.debug = bool(debug and log)   # debug lines (the executed plan's digest) to log
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.log = log  # callable(level, msg) for warnings, or None

    def _warn(self, msg):
        if self.log:
            self.log("warning", msg)

    def _debug(self, msg):
        if self.debug:
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
            if c.no_state:
                # a directory without state.json: not a container (runc skips it too);
                # a create in progress writes its "creating" state first thing
                self._warn("load container %s: container does not exist" % cid)
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
        from .launch import cache_path, write_pid_file
        pass_fds = open_fds(3, 3 + max(int(preserve_fds or 0), 0) + self.listen_fds)
        validate(cid)
        # run in the foreground may relay the terminal itself (no console socket needed)
        self._fg = _foreground
        from . import config as config_mod
        bundle = os.path.abspath(bundle or ".")
        st.ensure_root(self.root)
        config = config_mod.load(bundle, cache_dir=cache_path(self.cache_dir, "config"))
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
            "ociVersion": OCI_VERSION, "id": cid, "status": "creating", "pid": 0,
            "bundle": bundle, "rootfs": config["_rootfs"],
            "created": st.now_rfc3339(os.fstat(dirfd).st_mtime_ns),
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
                write_pid_file(pid_file, launch.pid)
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
        cg_replace = None
        if mgr is not None and self._is_rootless() and isinstance(getattr(mgr, "mounts", None), dict):
            from . import rootless
            st.record_cgroups(c, mgr, mgr.intent())
            cg_replace = rootless.settle_cgroups(mgr, c)
            st.record_cgroups(c, mgr)
        from . import stdio
        child_stdio = parent_stdio = ()
        listen = self.listen_fds
        fg = getattr(self, "_fg", False)
        fifo_fd = None
        try:
            plan = self._plan(c.id, config, bundle, mgr, no_pivot, no_new_keyring, preserve_fds,
                              fg, listen, pass_fds, cg_replace)
            if self.debug:
                self.log("debug", "create %s: plan sha256 %s" % (c.id, plan_mod.digest(plan)))
            if not process.get("terminal") and fg:
                child_stdio, parent_stdio = stdio.pipes(3 + preserve_fds + listen)
            fifo = os.path.join(c.dir, st.FIFO)
            os.mkfifo(fifo, 0o622)
            fifo_fd = os.open(fifo, os.O_RDWR | os.O_CLOEXEC)
            idmap_fds = {}
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
        launch = Launch(plan, fifo_fd, mount_fds=idmap_fds, stdio_fds=child_stdio or None)
        launch.stdio = parent_stdio
        try:
            born = plan.get("clone_into_cgroup") or plan.get("cgroup_join")
            if born:
                # the init is born in its cgroups, which must exist first
                self._make_cgroups(c, mgr)
            try:
                pid = launch.spawn()
            finally:
                stdio.close(child_stdio)   # the init has its own copies now
            for fd in idmap_fds.values():   # the init has its own copies now
                os.close(fd)
            idmap_fds = {}
            c.data["pid"] = pid
            c.data["start_time"], _ = st.proc_start_time(pid)
            # with a pid namespace of its own, killing the init takes every process of
            # the container: delete then never signals what else is in its cgroup
            c.data["pidns"] = "pid" in plan["namespaces"]["clone"]
            st.record_cgroups(c, mgr, mgr.intent() if mgr is not None else [])
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
            if mgr is not None and not born:
                self._make_cgroups(c, mgr)
            faults.at("create:cgroup")
            launch.send()
            faults.at("create:go")
            devices_later = False
            if mgr is not None:
                # Concurrently with the init's own setup; it waits at its "cgroup" sync.
                # The v1 device rules wait for that sync wherever the init's builder
                # took it into the devices cgroup, also when it is moved below because
                # some other placement failed.
                devices_later = bool(plan.get("cgroup_join"))
                mgr.devices_later = devices_later
                mgr.apply()
                if launch.placed_in_cgroups:
                    if plan.get("clone_into_cgroup"):
                        self._debug("init %d: born in its cgroup %s (clone3 CLONE_INTO_CGROUP)"
                                    % (pid, plan["clone_into_cgroup"]))
                    if plan.get("cgroup_join"):
                        self._debug("init %d: born in its cgroup v1 hierarchies (its builder "
                                    "joined them)" % pid)
                else:
                    from .executor import strerror
                    if launch.cgroup_errno:
                        self._debug("init %d: clone3 CLONE_INTO_CGROUP %s: %s; moving it there"
                                    % (pid, plan["clone_into_cgroup"],
                                       strerror(launch.cgroup_errno)))
                    if launch.cgroup_join_errno:
                        self._debug("init %d: joining its cgroup v1 hierarchies: %s; moving "
                                    "it there" % (pid, strerror(launch.cgroup_join_errno)))
                    mgr.add_pid(pid)
            console = None
            if process.get("terminal"):
                from .launch import ConsoleKeeper, ConsoleSender
                console = ConsoleSender(console_socket) if console_socket else ConsoleKeeper(launch)
            hooks = config.get("hooks") or {}

            def on_sync(tag, step):
                faults.at("create:sync")
                if tag == "cgroup" and devices_later:
                    mgr.apply_devices()
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
            for fd in idmap_fds.values():
                os.close(fd)
        return launch, mgr

    def _make_cgroups(self, c, mgr):
        intent = mgr.intent()
        st.record_cgroups(c, mgr, intent)
        try:
            mgr.create()
        finally:
            # what create made must be on record even if it failed halfway
            if mgr.created != intent:
                st.record_cgroups(c, mgr)
        if not mgr.exclusive():
            n = len(mgr.pids())   # another container's: delete will spare them
            if n:
                self._warn("container's cgroup is not empty: %d process(es) found" % n)
                self._warn("DEPRECATED: running container in a non-empty cgroup won't "
                           "be supported in runc 1.2; "
                           "https://github.com/opencontainers/runc/issues/3132")
    def _plan(self, cid, config, bundle, mgr, no_pivot, no_new_keyring, preserve_fds,
              foreground, listen_fds, pass_fds, cgroup_replace):
        """The one way a create plan is made (create runs it, plan() returns it): the
        host's facts first (hostfacts), then plan.build from config + facts."""
        from . import hostfacts, plan as plan_mod
        linux = config.get("linux") or {}
        process = config.get("process") or {}
        from .launch import cache_path, seccomp_filter
        seccomp_prog = seccomp_filter(linux, cache_path(self.cache_dir, "seccomp"))
        setgroups = False
        if os.geteuid() != 0 and linux.get("gidMappings"):
            from . import rootless
            # the runtime will deny setgroups before writing its own gid as the only map
            setgroups = rootless.setgroups_denied({"gid_mappings": linux["gidMappings"]})
        mask = 0
        if not process.get("terminal") and not foreground:
            from .stdio import inherited_mask
            mask = inherited_mask()
        facts = hostfacts.gather(config, bundle, listen_fds=listen_fds, pass_fds=pass_fds,
                                 stdio_mask=mask, seccomp=seccomp_prog,
                                 cgroup_replace=cgroup_replace, setgroups_denied=setgroups)
        opts = {"no_pivot": no_pivot, "no_new_keyring": no_new_keyring,
                "preserve_fds": preserve_fds, "foreground": foreground}
        return plan_mod.build(config, bundle, cid, opts, facts, cgroup_mgr=mgr)

    def plan(self, cid, bundle, no_pivot=False, no_new_keyring=False, preserve_fds=0):
        """The plan `create` would run for this bundle now, changing nothing (`pyruntime
        plan`). A rootless v1 host's cgroup hierarchies the user may not write are
        foreseen here, where create learns them by making the cgroups."""
        from . import config as config_mod
        from .executor import open_fds
        from .launch import cache_path
        pass_fds = open_fds(3, 3 + max(int(preserve_fds or 0), 0) + self.listen_fds)
        validate(cid)
        bundle = os.path.abspath(bundle or ".")
        config = config_mod.load(bundle, cache_dir=cache_path(self.cache_dir, "config"))
        linux = config.get("linux") or {}
        mgr = None
        if self._needs_cgroup(config):
            from . import cgroups
            mgr = cgroups.new(cid, linux.get("cgroupsPath"), linux.get("resources"),
                              systemd=self.systemd_cgroup, rootless=self._is_rootless(),
                              linux_devices=linux.get("devices"),
                              annotations=config.get("annotations"))
        cg_replace = None
        if mgr is not None and self._is_rootless() and isinstance(getattr(mgr, "mounts", None), dict):
            from . import rootless
            cg_replace = rootless.foresee_cgroups(mgr)
        return self._plan(cid, config, bundle, mgr, no_pivot, no_new_keyring, preserve_fds,
                          False, self.listen_fds, pass_fds, cg_replace)

    def _is_rootless(self):
        # --rootless as runc reads it: "auto"/"" detect, else Go's strconv.ParseBool
        v = self.rootless
        if v is True or v is False:
            return v
        v = v or "auto"
        if v.lower() == "auto":
            return os.geteuid() != 0
        if v in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if v in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise RuntimeErr('strconv.ParseBool: parsing "%s": invalid syntax' % v)

    def _needs_cgroup(self, config):
        return True

    def _refuse_unsupported(self, config, console_socket):
        process = config["process"]
        from .launch import check_terminal
        check_terminal(process.get("terminal"), console_socket, not getattr(self, "_fg", False))
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
                from .errors import strerror
                raise RuntimeErr("unable to start container process: write %s_map: %s"
                                 % (kind, strerror(e.errno)))

    # ---- start / run -------------------------------------------------------------------

    def start(self, cid, _defer_late=False):
        """Start the created container. _defer_late (run in the foreground): return at
        the start byte, with the fifo's read end for _late_word(), instead of waiting for
        the exec; run learns of a failure after start once the process is gone anyway, and
        so skips the wait (and what it imports) on every run."""
        c = self.load(cid, lock=True)
        try:
            status = c.status()
            if status == "stopped":
                raise InvalidState("cannot start a container that has stopped")
            if status == "paused":
                raise InvalidState("cannot start a container in the paused state")
            if status != "created":
                raise InvalidState("cannot start an already running container")
            fifo = os.path.join(c.dir, st.FIFO)
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                raise InvalidState("cannot start a container that has stopped")
            hooks = c.hooks()
            # poststart hooks must see the exec'd process: then run waits like start
            defer = _defer_late and not hooks.get("poststart")
            late_fd = -1
            word = ""
            try:
                if defer:
                    # opened before the byte goes in: the init's word stays readable
                    late_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                os.write(fd, b"0")
                if not defer:
                    wfd, fd = fd, -1
                    word = _wait_exec(wfd, fifo, c)
                faults.at("start:fifo-written")
                os.unlink(fifo)
            except BaseException:
                if late_fd >= 0:
                    os.close(late_fd)
                raise
            finally:
                if fd >= 0:
                    os.close(fd)
            if defer:
                return late_fd
            if word:
                # a step after the wait for start failed: the init wrote why, and died
                raise RuntimeErr(word)
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
        if detach:
            pid = self.create(cid, bundle, **create_kw)
            try:
                self.start(cid)
            except BaseException:
                self.delete(cid, force=True)
                raise
            return 0
        from .launch import Forwarder, exit_code
        fwd = Forwarder()
        late_fd = None
        try:
            launch = self.create(cid, bundle, _foreground=True, **create_kw)
            pid = launch.pid
            fwd.target = pid
            try:
                late_fd = self.start(cid, _defer_late=True)
                fwd.flush()
                master = getattr(launch, "console_master", None)
                pipes, launch.stdio = launch.stdio, ()
                if master is not None:
                    # run -t without --console-socket: a person at a terminal
                    from .tty import relay
                    try:
                        status = relay(master, pid, forwarder=fwd)
                    finally:
                        os.close(master)
                        launch.console_master = None
                elif pipes:
                    from .stdio import relay
                    status = relay(pid, pipes, forwarder=fwd)
                else:
                    status = fwd.wait(pid)
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
            # the process is reaped: from here nothing may signal its pid
            late = _late_word(late_fd) if late_fd is not None else ""
            if not keep:
                self.delete(cid, force=True)
            if late:
                # a step after the wait for start failed: the init wrote why, and died
                raise RuntimeErr(late)
            return exit_code(status)
        finally:
            if late_fd is not None:
                os.close(late_fd)
            fwd.restore()

    # ---- kill / delete -----------------------------------------------------------------

    def kill(self, cid, sig="SIGTERM", all=False):
        c = self.load(cid)   # runc: "container does not exist" before a bad signal
        signum = parse_signal(sig)
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


def _wait_exec(wfd, fifo, c):
    """Hold `start` until the init has exec'd the user's process: the init keeps its end
    of the fifo open close-on-exec, so a reader sees EOF at that exec (or at the init's
    death, after writing why into the fifo). Closes wfd; returns _late_word()'s text."""
    import fcntl
    import termios
    import time
    rfd = -1
    try:
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # a reader must not take the start byte: wait until the init has read it
        buf = bytearray(4)
        while True:
            fcntl.ioctl(rfd, termios.FIONREAD, buf)
            if not int.from_bytes(buf, "little") or c.status() != "created":
                break
            time.sleep(0.001)
        os.close(wfd)
        wfd = -1
        fcntl.fcntl(rfd, fcntl.F_SETFL, fcntl.fcntl(rfd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return _late_word(rfd)
    finally:
        if wfd >= 0:
            os.close(wfd)
        if rfd >= 0:
            os.close(rfd)


def _late_word(fd):
    """What the init wrote into the exec fifo after the start byte, read to the end (EOF,
    or nothing more on a non-blocking fd): the line of a step that failed after start,
    or ""."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            break
        except InterruptedError:
            continue
        if not chunk:
            break
        if len(data) < 65536:
            data += chunk
    # our start byte, when the init died before reading it (no message says "0...")
    data = data[1:] if data[:1] == b"0" else data
    return data.decode(errors="replace").strip()


def _write_oom_score_adj(pid, v):
    try:
        with open("/proc/%d/oom_score_adj" % pid, "w") as f:
            f.write(str(v))
    except OSError as e:
        from .errors import strerror
        hint = ""
        if e.errno in (1, 13) and v < 0:
            hint = " (lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host does not grant)"
        raise RuntimeErr("unable to start container process: error during container init: "
                         "set oom_score_adj to %d: %s%s" % (v, strerror(e.errno), hint))


# ---- operations that live in their own modules (one concern each) ----------------------
# Runtime's methods below are thin: the work is in pyruntime/execproc.py (exec),
# pyruntime/cgroupops.py (pause, resume, update, events, ps). Keeping them out of this file
# keeps each concern easy to find and lets each import only what it needs.

def _exec_base(self, cid, ignore_paused=False, base=True):
    """Check that `cid` can exec now (the errors exec would give); with `base`, return the
    process exec starts from: the container's config.json process (runc's default)."""
    from .execproc import check_state
    c = self.load(cid)
    check_state(c, ignore_paused)
    if not base:
        return None
    try:
        return (c.config() or {}).get("process") or {}
    except (OSError, ValueError):
        return {}


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


def _update(self, cid, resources, l3_cache_schema=None, mem_bw_schema=None):
    from .cgroupops import update
    return update(self, cid, resources, l3_cache_schema=l3_cache_schema,
                  mem_bw_schema=mem_bw_schema)


def _stats(self, cid):
    from .cgroupops import stats
    return stats(self, cid)


def _events(self, cid, interval, emit, stats_only=False):
    """Call emit(event dict) with the container's stats every `interval` seconds (and its
    OOM events) until it stops; stats_only: once."""
    from .cgroupops import events
    return events(self, cid, interval, emit, stats_only=stats_only)


def _ps(self, cid):
    from .cgroupops import pids
    return pids(self, cid)


Runtime.exec = _exec
Runtime.exec_base = _exec_base
Runtime.pause = _pause
Runtime.resume = _resume
Runtime.update = _update
Runtime.stats = _stats
Runtime.pids = _ps
Runtime.events = _events
