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
import os

from . import fastjson, faults
from .errors import InvalidState, RuntimeErr
from .executor import Launch, MSG_ERROR, MSG_GO, MSG_SYNC, strerror

EXEC_CONTEXT = "exec"


def process_from_flags(base, args, cwd=None, env=(), user=None, gids=(), caps=(),
                       no_new_privs=False, apparmor=None, label=None, tty=False):
    """runc's exec default: the container's config.json process, overridden by flags."""
    p = fastjson.clone(base or {})
    p["args"] = list(args)
    if cwd:
        p["cwd"] = cwd
    if apparmor:
        p["apparmorProfile"] = apparmor
    if label:
        p["selinuxLabel"] = label
    if caps:
        c = p.get("capabilities") or {}
        # Not inheritable: an inheritable cap would survive an exec of a file with
        # inheritable file caps (CVE-2022-29162); runc >= 1.1.2 adds it to these four.
        for k in ("bounding", "effective", "permitted", "ambient"):
            c[k] = list(c.get(k) or []) + list(caps)
        p["capabilities"] = c
    p["env"] = list(p.get("env") or []) + list(env)
    p["terminal"] = bool(tty)
    if no_new_privs:
        p["noNewPrivileges"] = True
    u = p.get("user") or {}
    if user:
        parts = user.split(":", 1)
        if len(parts) > 1:
            u["gid"] = _atoi(parts[1], "gid")
        u["uid"] = _atoi(parts[0], "uid")
    for g in gids:
        try:
            n = int(g)
        except (TypeError, ValueError):
            raise RuntimeErr('invalid value "%s" for flag -additional-gids' % g)
        if n < 0:
            raise RuntimeErr("additional-gids must be a positive number %d" % n)
        u.setdefault("additionalGids", [])
        u["additionalGids"] = list(u["additionalGids"]) + [n]
    p["user"] = u
    validate_process(p)
    return p


def _atoi(s, what):
    try:
        if s.strip() != s or not s.lstrip("+-").isdigit():
            raise ValueError
        n = int(s)
        if n < 0 or n > 0xFFFFFFFF:
            raise ValueError
        return n
    except ValueError:
        raise RuntimeErr('parsing %s as int for %s failed: strconv.Atoi: parsing "%s": invalid syntax'
                         % (s, what, s))


_U32, _U64 = (1 << 32) - 1, (1 << 64) - 1


def _bad(field, want):
    # the gist of what Go's decoder says when runc reads the same file
    return RuntimeErr("json: cannot unmarshal into Go struct field Process.%s of type %s" % (field, want))


def _check_types(p):
    def uint(v, top, field):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
            raise _bad(field, "uint%d" % (32 if top == _U32 else 64))

    def strlist(v, field):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise _bad(field, "[]string")
        if any("\0" in x for x in v):
            raise RuntimeErr("process.%s: a string contains a NUL byte" % field)

    for k in ("terminal", "noNewPrivileges"):
        if k in p and not isinstance(p[k], bool):
            raise _bad(k, "bool")
    if "cwd" in p and not isinstance(p["cwd"], str):
        raise _bad("cwd", "string")
    for k in ("args", "env"):
        if p.get(k) is not None:
            strlist(p[k], k)
    u = p.get("user")
    if u is not None:
        if not isinstance(u, dict):
            raise _bad("user", "specs.User")
        for k in ("uid", "gid"):
            if k in u:
                uint(u[k], _U32, "user." + k)
        if u.get("umask") is not None:
            uint(u["umask"], _U32, "user.umask")
        for g in u.get("additionalGids") or ():
            uint(g, _U32, "user.additionalGids")
    cs = p.get("consoleSize")
    if cs is not None:
        if not isinstance(cs, dict):
            raise _bad("consoleSize", "specs.Box")
        for k in ("height", "width"):
            if k in cs:
                uint(cs[k], _U64, "consoleSize." + k)
                if cs[k] > 0xFFFF:
                    raise RuntimeErr("process.consoleSize.%s: %d is too large" % (k, cs[k]))
    caps = p.get("capabilities")
    if caps is not None:
        if not isinstance(caps, dict):
            raise _bad("capabilities", "specs.LinuxCapabilities")
        for k, v in caps.items():
            if v is not None:
                strlist(v, "capabilities." + k)
    rl = p.get("rlimits")
    if rl is not None:
        if not isinstance(rl, list) or not all(isinstance(r, dict) for r in rl):
            raise _bad("rlimits", "[]specs.POSIXRlimit")
        for r in rl:
            if not isinstance(r.get("type"), str):
                raise _bad("rlimits.type", "string")
            for k in ("hard", "soft"):
                uint(r.get(k, 0), _U64, "rlimits." + k)


def validate_process(p):
    """runc's validateProcessSpec (same messages), after the type checks its JSON
    decoding does."""
    if not isinstance(p, dict):
        raise RuntimeErr("process: must be an object")
    _check_types(p)
    cwd = p.get("cwd")
    if not cwd:
        raise RuntimeErr("Cwd property must not be empty")
    if not cwd.startswith("/"):
        raise RuntimeErr("Cwd must be an absolute path")
    if not p.get("args"):
        raise RuntimeErr("args must not be empty")


def load_process_file(path):
    """-p FILE: a process object as containerd and conmon write it."""
    from .fastjson import loads  # containerd execs this way: `json` costs ~5 ms
    try:
        with open(path, "rb") as f:
            p = loads(f.read())
    except OSError as e:
        raise RuntimeErr("open %s: %s" % (path, strerror(e.errno)))
    except (ValueError, RecursionError) as e:
        raise RuntimeErr("%s: invalid process JSON: %s" % (path, e))
    validate_process(p)
    return p


def namespaces_to_join(pid, for_children=False):
    """Every namespace of `pid` that differs from ours, in join order (user first).
    for_children: the pid namespace its children get (an init's builder is outside it)."""
    from .plan import JOIN_ORDER, NS_PROC_NAMES
    out = []
    for t in JOIN_ORDER:
        name = NS_PROC_NAMES[t]
        if for_children and t == "pid":
            name = "pid_for_children"
        path = "/proc/%d/ns/%s" % (pid, name)
        try:
            theirs = os.stat(path)
        except FileNotFoundError:
            continue  # the kernel has no such namespace type
        except OSError as e:
            raise RuntimeErr("cannot inspect %s: %s" % (path, strerror(e.errno)))
        try:
            ours = os.stat("/proc/self/ns/" + name)
            if (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino):
                continue  # joining our own namespace is a no-op (and EPERM for user)
        except OSError:
            pass
        out.append({"type": t, "path": path})
    return out


def _check_state(c, ignore_paused):
    status = c.status()
    if status in ("stopped", "creating"):
        raise InvalidState("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)")
    return status


def _refuse_unsupported(process):
    for key in ("apparmorProfile", "selinuxLabel"):
        if process.get(key):
            raise RuntimeErr("process.%s is not supported by this build of pyruntime" % key)


def build_plan(c, config, process, opts, paused=False):
    """The exec plan: join the container's namespaces, then the process tail."""
    from . import plan as plan_mod
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
    tail = plan_mod.process_steps(process, opts, exec_mode=True)
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
    return {
        "id": c.id,
        "rootfs": c.data.get("rootfs", ""),
        "namespaces": {"clone": [], "join": namespaces_to_join(c.pid)},
        "uid_mappings": [], "gid_mappings": [], "time_offsets": {},
        "steps": steps,
    }


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
    from .api import _cache_dir, _home_of, _listen_fds
    from .executor import open_fds
    # before the runtime opens anything: only these of the caller's fds may pass (never
    # the namespace fds or the state the runtime opens below)
    pass_fds = open_fds(3, 3 + max(int(preserve_fds or 0), 0) + _listen_fds())
    c = rt.load(cid)
    status = _check_state(c, ignore_paused)
    if process is None:
        raise RuntimeErr("process args cannot be empty")
    process = fastjson.clone(process)
    validate_process(process)
    terminal = bool(process.get("terminal"))
    if detach and terminal and not console_socket:
        raise RuntimeErr("cannot allocate tty if runc will detach without setting console socket")
    if console_socket and (not detach or not terminal):
        raise RuntimeErr("cannot use console socket if runc will not detach or allocate tty")
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

    env = list(process.get("env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + _home_of(c.data.get("rootfs", "/"), (process.get("user") or {}).get("uid", 0)))
    listen = _listen_fds()
    if listen:
        # runc: the socket-activation fds follow stdio, and the process is told so
        env += ["LISTEN_FDS=%d" % listen, "LISTEN_PID=1"]
    process["env"] = env

    # the container's personality and memory policy hold for its every process
    opts = {"preserve_fds": preserve_fds, "listen_fds": listen, "pass_fds": pass_fds,
            "linux": {k: linux[k] for k in ("personality", "memoryPolicy") if linux.get(k)}}
    if linux.get("seccomp"):
        from . import seccomp
        prog = seccomp.compile(linux["seccomp"], cache_dir=_cache_dir("seccomp"))
        opts["seccomp"] = {"program": prog.bpf, "flags": prog.flags, "notify": prog.notify}
    try:
        with open("/proc/%d/setgroups" % c.pid) as f:
            opts["setgroups_denied"] = f.read().strip() == "deny"
    except OSError:
        pass
    from . import stdio
    child_stdio = parent_stdio = ()
    if terminal:
        opts["stdio"] = {"chown": 7}      # the console is on 0-2 by then
    elif not detach:
        # foreground: pipes the runtime relays, not the caller's files
        child_stdio, parent_stdio = stdio.pipes(3 + preserve_fds + listen, stdout_fd)
        opts["stdio"] = {"fds": list(child_stdio), "chown": 7}
    else:
        opts["stdio"] = {"chown": stdio.inherited_mask()}
    # whoever takes a set of fds over (the spawned process, the relay) empties its entry
    held = {"child": child_stdio, "parent": parent_stdio}
    try:
        return _exec(rt, c, process, config, linux, opts, status, detach, pid_file,
                     console_socket, pidfd_socket, cgroup, stdin_fd, stdout_fd, held)
    finally:
        stdio.close(held["child"] + held["parent"])


def _exec(rt, c, process, config, linux, opts, status, detach, pid_file, console_socket,
          pidfd_socket, cgroup, stdin_fd, stdout_fd, held):
    from . import stdio
    from .api import _ConsoleSender, _write_pid_file
    paused = status == "paused"
    plan = build_plan(c, config, process, opts, paused=paused)
    for s in plan["steps"]:
        for w in s.pop("warnings", None) or ():
            if w.startswith("unknown capabilities ignored: "):
                names = dict.fromkeys(w.split(": ", 1)[1].split(", "))
                w = "ignoring unknown or unavailable capabilities: [%s]" % " ".join(names)
            rt._warn(w)

    fwd = None if detach else _Forwarder()
    master = []
    try:
        launch = _ExecLaunch(plan, force_stage1=True, context=EXEC_CONTEXT)
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
            initial = (process.get("execCPUAffinity") or {}).get("initial")
            if initial:
                # while the runtime sets the process up, before its cgroup move
                _set_affinity(pid, initial)
            if not paused:
                _cgroup_join(c, pid, cgroup)
            faults.at("exec:cgroup")
            launch.send()
            sender = _ConsoleSender(console_socket) if console_socket else None

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
        except BaseException:
            launch.kill()
            for fd in master:
                os.close(fd)
            raise
        if pid_file:
            _write_pid_file(pid_file, pid)
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
    if os.WIFSIGNALED(status_):
        return 128 + os.WTERMSIG(status_)
    return os.WEXITSTATUS(status_)


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


class _Forwarder:
    """Signals sent to the runtime go to the process (as runc's signal handler does)."""

    def __init__(self):
        import _signal as signal  # the C module: `signal` builds enums
        self.target = 0
        self.pending = []
        sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGTSTP, signal.SIGTTIN,
                signal.SIGTTOU)
        self.old = {s: signal.signal(s, self._handle) for s in sigs}

    def _handle(self, signum, _frame):
        if self.target:
            try:
                os.kill(self.target, signum)
            except ProcessLookupError:
                pass
        else:
            self.pending.append(signum)

    def flush(self):
        for s in self.pending:
            try:
                os.kill(self.target, s)
            except ProcessLookupError:
                pass
        self.pending = []

    def wait(self, pid):
        self.flush()
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return status
            except InterruptedError:
                continue
            except ChildProcessError:
                return 0

    def restore(self):
        import _signal as signal  # the C module: `signal` builds enums
        for s, h in self.old.items():
            try:
                signal.signal(s, h)
            except (TypeError, ValueError):
                pass
        self.old = {}
