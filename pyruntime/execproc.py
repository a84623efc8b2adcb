"""exec: run one more process in a running container (`runc exec`).

The process joins every namespace of the container's init (user first, pid through the
executor's intermediate fork), is placed in the container's cgroup before it runs a single
instruction of its own, then runs the same process tail as the init (plan.process_steps):
fds, identity, cwd, capabilities, seccomp, no_new_privs, lookup, exec.

    rt.exec(cid, process_dict, detach=False, pid_file=None, console_socket=None,
            preserve_fds=0, pidfd_socket=None, cgroup=(), ignore_paused=False)

Foreground: returns the process's exit status (128+N for a signal). Detached: returns its
host pid once it has exec'd.
"""
from . import oslite as os

from . import fastjson, faults
from .errors import InvalidState, RuntimeErr, strerror
from .procspec import validate_process
from .executor import Launch, MSG_ERROR, MSG_GO, MSG_SYNC

EXEC_CONTEXT = "exec"


def check_state(c, ignore_paused):
    status = c.status()
    if status in ("stopped", "creating"):
        raise InvalidState("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)")
    return status


def _refuse_unsupported(process):
    # apparmorProfile is the process tail's (process_steps), as at create: Docker sends
    # "unconfined" with every exec on an AppArmor host
    for key in ("selinuxLabel",):
        if process.get(key):
            raise RuntimeErr("process.%s is not supported by this build of pyruntime" % key)


def build_plan(c, config, process, opts, facts, paused=False, born=False):
    """The exec plan: join the container's namespaces, then the process tail. born: the
    process is to be born in the container's cgroups (as the init: clone3 on v2, its
    builder's own `tasks` writes on v1) instead of moved there."""
    from . import plan as plan_mod
    from .namespaces import namespaces_to_join
    from .plan import _step
    steps = [_step("setsid", "create a new session")]
    if process.get("terminal"):
        cs = process.get("consoleSize") or {}
        steps.append(_step("console", "set up the console", rows=cs.get("height", 0),
                           cols=cs.get("width", 0), dev_console=False))
    if not c.data.get("no_new_keyring"):
        steps.append(_step("keyring", "join a new session keyring", name="_ses." + c.id))
    for rl in process.get("rlimits") or ():
        t = rl.get("type")
        if t not in plan_mod.RLIMITS:
            raise RuntimeErr("process.rlimits: unknown rlimit type %s" % t)
        steps.append(_step("rlimit", "setrlimit %s" % t, resource=plan_mod.RLIMITS[t],
                           soft=rl.get("soft", 0), hard=rl.get("hard", 0), name=t))
    tail = plan_mod.process_steps(process, opts, facts, exec_mode=True)
    for s in tail:
        if s["op"] == "chdir":
            s["desc"] = 'chdir to cwd ("%s") set in config.json failed' % s["path"]
    if paused:
        # --ignore-paused: the process joins the frozen cgroup only once it is set up
        # (it freezes there, right before exec); before that it would freeze mid-setup
        # and never report READY.
        i = max(i for i, s in enumerate(tail) if s["op"] == "ready")
        tail.insert(i + 1, _step("sync", "join the container's cgroup", tag="cgroup"))
    steps.extend(tail)
    plan = {
        "id": c.id,
        "rootfs": c.data.get("rootfs", ""),
        "namespaces": {"clone": [], "join": namespaces_to_join(c.pid)},
        "uid_mappings": [], "gid_mappings": [], "time_offsets": {},
        "steps": steps,
    }
    if born and c.data.get("cgroup") and facts.get("clone_into_cgroup", True):
        from . import cgroups
        from .errors import CgroupError
        try:
            mgr = cgroups.from_state(c.data["cgroup"])
        except CgroupError:
            mgr = None   # the move refuses the record, with its own message
        if mgr is not None:
            birth = mgr.birth_dir()
            join = mgr.join_files()
            if birth:
                plan["clone_into_cgroup"] = birth
            if join:
                plan["cgroup_join"] = join
    return plan


def _cgroup_join(c, pid, subs):
    cg = c.data.get("cgroup")
    if not cg:
        return
    from . import cgroups
    from .cgroups import common
    mgr = cgroups.from_state(cg)
    if not subs:
        mgr.add_pid(pid)
        return
    # --cgroup [<controller>[,<controller>]:]<path>: a sub-cgroup (must exist) of the
    # container's, per hierarchy; hierarchies not named keep the container's own cgroup
    chosen = {}
    for spec in subs:
        ctrl, sep, path = spec.rpartition(":")
        path = path.strip("/")
        if not path or ".." in path.split("/"):
            raise RuntimeErr("invalid --cgroup argument: %s" % spec)
        want = set(ctrl.split(",")) if sep and ctrl else None
        for key, d in mgr.dirs():
            names = set(key.split(",")) if key else {""}
            if want is None or names & want or (key == "" and want is not None and
                                                getattr(mgr, "driver", "") in ("v2", "systemd")):
                chosen[key] = os.path.join(d, path)
    for key, d in mgr.dirs():
        target = chosen.get(key, d)
        try:
            common.write_file(target, "cgroup.procs", str(pid), "cgroup %s" % (key or "unified"))
        except RuntimeErr:
            if mgr.rootless:
                continue
            raise


def _set_affinity(pid, text):
    from .errors import ConfigError
    from .plan import cpu_mask
    try:
        mask = cpu_mask(text, "process.execCPUAffinity.initial")
    except ConfigError as e:
        raise RuntimeErr(str(e)) from None
    cpus = [i for i in range(mask.bit_length()) if mask >> i & 1]
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as e:
        raise RuntimeErr("process.execCPUAffinity.initial: set the CPU affinity to %s: %s"
                         % (text, strerror(e.errno)))


def _send_pidfd(path, pid):
    """--pidfd-socket: a pidfd of the process over a unix socket (SCM_RIGHTS), as runc 1.2."""
    import socket
    from .executor import send_fd
    try:
        pfd = os.pidfd_open(pid)
    except OSError as e:
        raise RuntimeErr("pidfd_open: %s" % strerror(e.errno))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
        send_fd(s.fileno(), pfd, "pidfd")
    except OSError as e:
        raise RuntimeErr("failed to send the pidfd to %s: %s" % (path, strerror(e.errno) if e.errno else e))
    finally:
        s.close()
        os.close(pfd)


def exec_process(rt, cid, process, detach=False, pid_file=None, console_socket=None,
                 preserve_fds=0, pidfd_socket=None, cgroup=(), ignore_paused=False,
                 stdin_fd=0, stdout_fd=1):
    from .executor import open_fds
    from .launch import cache_path, check_terminal, seccomp_filter
    # before the runtime opens anything: only these of the caller's fds may pass (never
    # the namespace fds or the state the runtime opens below)
    pass_fds = open_fds(3, 3 + max(int(preserve_fds or 0), 0) + rt.listen_fds)
    c = rt.load(cid)
    status = check_state(c, ignore_paused)
    if process is None:
        raise RuntimeErr("process args cannot be empty")
    process = fastjson.clone(process)
    validate_process(process)
    terminal = bool(process.get("terminal"))
    check_terminal(terminal, console_socket, detach)
    if preserve_fds < 0:
        raise RuntimeErr("--preserve-fds must be a non-negative number")
    _refuse_unsupported(process)
    if terminal and not console_socket and not process.get("consoleSize") and os.isatty(stdin_fd):
        # the relay's terminal size, applied by the console step before the process runs
        import fcntl
        import struct
        import termios
        try:
            rows, cols = struct.unpack("HHHH", fcntl.ioctl(stdin_fd, termios.TIOCGWINSZ, b"\0" * 8))[:2]
            if rows and cols:
                process["consoleSize"] = {"height": rows, "width": cols}
        except OSError:
            pass
    try:
        config = c.config()
    except (OSError, ValueError):
        config = {}
    linux = config.get("linux") or {}

    from . import hostfacts
    from .plan import process_env
    listen = rt.listen_fds
    process["env"] = process_env(process.get("env"), hostfacts.home_of(
        c.data.get("rootfs", "/"), process), listen)

    # the container's personality and memory policy hold for its every process
    opts = {"preserve_fds": preserve_fds,
            "linux": {k: linux[k] for k in ("personality", "memoryPolicy") if linux.get(k)}}
    facts = {"listen_fds": listen, "pass_fds": pass_fds, "last_cap": hostfacts.last_cap(),
             "apparmor_exec": hostfacts.apparmor_exec() if process.get("apparmorProfile") else None}
    facts["seccomp"] = seccomp_filter(linux, cache_path(rt.cache_dir, "seccomp"))
    facts["clone_into_cgroup"] = os.environ.get("PYRT_CLONE_INTO_CGROUP") != "0"
    try:
        with open("/proc/%d/setgroups" % c.pid) as f:
            facts["setgroups_denied"] = f.read().strip() == "deny"
    except OSError:
        pass
    from . import stdio
    child_stdio = parent_stdio = ()
    if terminal:
        opts["stdio"] = {"chown": 7}      # the console is on 0-2 by then
    elif not detach:
        # foreground: pipes the runtime relays, not the caller's files
        child_stdio, parent_stdio = stdio.pipes(3 + preserve_fds + listen, stdout_fd)
        opts["stdio"] = {"pipes": True, "chown": 7}
    else:
        opts["stdio"] = {"chown": stdio.inherited_mask()}
    # whoever takes a set of fds over (the spawned process, the relay) empties its entry
    held = {"child": child_stdio, "parent": parent_stdio}
    try:
        return _exec(rt, c, process, config, linux, opts, facts, status, detach, pid_file,
                     console_socket, pidfd_socket, cgroup, stdin_fd, stdout_fd, held)
    finally:
        stdio.close(held["child"] + held["parent"])


def _exec(rt, c, process, config, linux, opts, facts, status, detach, pid_file, console_socket,
          pidfd_socket, cgroup, stdin_fd, stdout_fd, held):
    from . import stdio
    from .launch import ConsoleSender, Forwarder, exit_code, write_pid_file
    paused = status == "paused"
    # Born in the cgroups where nothing else decides the order: a paused container's
    # frozen cgroup is joined only once the process is set up, --cgroup names
    # sub-cgroups, and execCPUAffinity.initial holds before the cgroup (its cpuset) does.
    initial = (process.get("execCPUAffinity") or {}).get("initial")
    born = not paused and not cgroup and not initial
    plan = build_plan(c, config, process, opts, facts, paused=paused, born=born)
    for s in plan["steps"]:
        for w in s.pop("warnings", None) or ():
            if w.startswith("unknown capabilities ignored: "):
                names = dict.fromkeys(w.split(": ", 1)[1].split(", "))
                w = "ignoring unknown or unavailable capabilities: [%s]" % " ".join(names)
            rt._warn(w)

    fwd = None if detach else Forwarder()
    master = []
    try:
        launch = _ExecLaunch(plan, force_stage1=True, context=EXEC_CONTEXT,
                             stdio_fds=held["child"] or None)
        try:
            try:
                pid = launch.spawn()
            finally:
                stdio.close(held["child"])   # the process has its own copies now
                held["child"] = ()
        except RuntimeErr:
            # the init died meanwhile (a dying pid namespace refuses new members: ENOMEM)
            if not c.alive():
                raise InvalidState("cannot exec in a stopped container") from None
            raise
        if fwd:
            fwd.target = pid
        try:
            faults.at("exec:spawned")
            if pidfd_socket:
                _send_pidfd(pidfd_socket, pid)
            if initial:
                # while the runtime sets the process up, before its cgroup move
                _set_affinity(pid, initial)
            if launch.placed_in_cgroups:
                rt._debug("exec %d: born in its cgroups" % pid)
            elif not paused:
                if launch.cgroup_errno or launch.cgroup_join_errno:
                    rt._debug("exec %d: not born in its cgroups (%s); moving it there"
                              % (pid, strerror(launch.cgroup_errno or launch.cgroup_join_errno)))
                _cgroup_join(c, pid, cgroup)
            faults.at("exec:cgroup")
            launch.send()
            sender = ConsoleSender(console_socket) if console_socket else None

            def on_fd(step, fd):
                try:
                    if step["op"] == "console":
                        if sender is not None:
                            sender.send(fd)
                        else:
                            master.append(os.dup(fd))
                    elif step["op"] == "seccomp":
                        from . import seccomp
                        s = c.oci_state()
                        seccomp.send_listener(linux["seccomp"], fd, dict(s, pid=pid))
                finally:
                    os.close(fd)

            launch.run(on_fd=on_fd)
            faults.at("exec:ready")
            if paused:
                msg, r = launch.recv()
                if msg is None or msg[0] != MSG_SYNC:
                    raise RuntimeErr("unable to start container process: the process exited unexpectedly")
                _cgroup_join(c, pid, cgroup)
                launch.send(MSG_GO)
            else:
                # The sync socket is close-on-exec: EOF means the execve succeeded.
                msg, r = launch.recv()
                if msg is not None and msg[0] == MSG_ERROR:
                    raise RuntimeErr(launch.error_text(msg[1], msg[2], msg[4]))
            launch.close()
            if pid_file:
                # a process whose pid could not be told is not left behind (runc kills it)
                write_pid_file(pid_file, pid)
        except BaseException:
            launch.kill()
            for fd in master:
                os.close(fd)
            raise
        if detach:
            return pid
        if master:
            from .tty import relay
            try:
                status_ = relay(master[0], pid, stdin_fd, stdout_fd, forwarder=fwd)
            finally:
                os.close(master[0])
        elif held["parent"]:
            parent, held["parent"] = held["parent"], ()   # the relay closes them
            status_ = stdio.relay(pid, parent, forwarder=fwd, stdin_fd=stdin_fd,
                                  stdout_fd=stdout_fd)
        else:
            status_ = fwd.wait(pid)
    finally:
        if fwd:
            fwd.restore()
    return exit_code(status_)


class _ExecLaunch(Launch):
    """Launch with runc's exec error wording ("unable to start container process: <what>")."""

    def error_text(self, step, err, text):
        if text.startswith("exec: "):
            return "unable to start container process: " + text
        desc = self.steps[step]["desc"] if 0 <= step < len(self.steps) else "step %d" % step
        msg = "unable to start container process: " + desc
        if text:
            msg += ": " + text
        if err:
            msg += ": " + strerror(err)
        return msg
