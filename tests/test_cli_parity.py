"""What runc 1.1.5 prints and returns where engines, shells and conformance suites look:
usage errors, exit statuses, error lines. Found with tools/cliparity.py (runs the same
invocations against both runtimes); every test here passes against runc too
(PYRT_RUNTIME=runc).

Differences tools/cliparity.py still shows, kept on purpose:
- ociVersion in state/list is the spec pyruntime implements (1.3.0), not runc's 1.0.2-dev.
- `kill` takes SIGRTMIN/SIGRTMIN+n/RTMIN-n names (runc 1.1.5: unknown signal).
- an unknown command's message has no trailing "\n" (runc: "No help topic for 'x'\n").
- a --root holding junk: list names the bad entries as warning log lines (runc: bare
  lines); a corrupt state.json goes with `delete --force` (runc cannot remove it).
- ids longer than 1024 are refused as invalid (runc: lstat ... file name too long).
- JSON syntax errors (config.json, -p process.json, update -r) are Python's words, not
  Go's decoder's; --cgroup failures are worded differently.
- `exec -t` / `run` with process.terminal and no --console-socket relay the pty through
  the runtime's own stdio when it has no terminal (runc fails: open /dev/tty).
- `--preserve-fds -1` is refused (runc ignores a negative count).
- `exec --ignore-paused -d` into a paused container returns (runc 1.1.5 hangs).
- a created container is deleted without --force, as runc does and containerd relies on
  (the spec says error; see README's conformance table).
- `kill c1 --all TERM`: the word after a bool flag stays an argument (runc's CLI takes it
  as the flag's value and signals a container named TERM).
"""
import json
import os
import time

import pytest

SLEEPER = ["sleep", "1000"]


def one_error_line(p, *needles):
    """stderr is exactly one log line (what engines read), holding every needle."""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert "level=error" in lines[0], p.stderr
    for n in needles:
        assert n in lines[0], (n, p.stderr)
    assert "Traceback" not in p.stderr
    return lines[0]


def created(rt, make_bundle, cid, args=SLEEPER):
    b = make_bundle(args)
    rt.ok("create", "--bundle", b.path, cid)
    return b


def wait_status(rt, cid, status, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if rt.state(cid)["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError("%s never became %s" % (cid, status))


# ---- usage errors: the help goes to stdout, the one error line to stderr ----------------

@pytest.mark.parametrize("argv,msg", [
    (["state"], '\\"state\\" requires exactly 1 argument(s)'),
    (["kill"], '\\"kill\\" requires a minimum of 1 argument(s)'),
    (["kill", "x", "KILL", "extra"], '\\"kill\\" requires a maximum of 2 argument(s)'),
    (["list", "extra"], '\\"list\\" requires exactly 0 argument(s)'),
    (["delete", "a", "b"], '\\"delete\\" requires exactly 1 argument(s)'),
])
def test_wrong_arg_count_help_on_stdout(rt, argv, msg):
    p = rt.run(*argv)
    assert p.returncode == 1
    one_error_line(p, msg)
    assert p.stdout.startswith("Incorrect Usage.\n\nNAME:\n"), p.stdout
    assert "%s - " % argv[0] in p.stdout.splitlines()[3]


@pytest.mark.parametrize("cmd", ["state", "delete", "kill", "exec", "create", "list", "spec"])
def test_unknown_command_flag_help_on_stdout(rt, cmd):
    p = rt.run(cmd, "--bogus", "x")
    assert p.returncode == 1
    one_error_line(p, "flag provided but not defined: -bogus")
    assert p.stdout.startswith("Incorrect Usage: flag provided but not defined: -bogus\n\n"
                               "NAME:\n"), p.stdout


def test_unknown_global_flag_main_help_on_stdout(rt):
    p = rt.run("--bogus", "list")
    assert p.returncode == 1
    one_error_line(p, "flag provided but not defined: -bogus")
    assert p.stdout.startswith("Incorrect Usage. flag provided but not defined: -bogus\n\n")
    assert "COMMANDS:" in p.stdout


def test_global_flag_without_value(rt):
    p = rt.run("--log-format")
    assert p.returncode == 1
    one_error_line(p, "flag needs an argument: -log-format")
    assert p.stdout.startswith("Incorrect Usage. flag needs an argument: -log-format\n\n")


@pytest.mark.parametrize("argv,flag", [(["delete", "--force=maybe", "x"], "force"),
                                       (["--systemd-cgroup=maybe", "list"], "systemd-cgroup")])
def test_bad_boolean_value(rt, argv, flag):
    p = rt.run(*argv)
    assert p.returncode == 1
    one_error_line(p, 'invalid boolean value \\"maybe\\" for -%s: parse error' % flag)
    assert p.stdout.startswith("Incorrect Usage")


@pytest.mark.parametrize("argv", [["nosuch"], ["version"], ["help", "nosuch"]])
def test_unknown_command_exit_3(rt, argv):
    # urfave/cli's status for a command it does not know; nothing on stdout
    p = rt.run(*argv)
    assert p.returncode == 3
    assert p.stdout == ""
    one_error_line(p, "No help topic for '%s'" % argv[-1])


def test_help_of_a_command_exit_0(rt):
    for argv in (["help", "state"], ["state", "--help"], ["h", "kill"]):
        p = rt.ok(*argv)
        assert "state" in p.stdout or "kill" in p.stdout
        assert p.stderr == ""


def test_bad_log_format_is_one_line_no_usage(rt):
    p = rt.run("--log-format", "xml", "list")
    assert p.returncode == 1
    assert p.stdout == ""
    one_error_line(p, "invalid log-format: xml")


def test_bad_int_flag_value_is_a_usage_error(rt):
    p = rt.run("events", "--interval", "x", "nosuch")
    assert p.returncode == 1
    one_error_line(p, 'invalid value \\"x\\" for flag -interval: parse error')
    assert p.stdout.startswith("Incorrect Usage: ")


# ---- ids and roots ------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [["state"], ["delete"], ["kill"]])
def test_empty_id(rt, cmd):
    p = rt.run(*cmd, "")
    assert p.returncode == 1
    one_error_line(p, "container id cannot be empty")


def test_empty_id_create(rt, make_bundle):
    b = make_bundle(rootfs=False)
    p = rt.run("create", "--bundle", b.path, "")
    assert p.returncode == 1
    one_error_line(p, "create failed: container id cannot be empty")
    assert rt.container_ids() == []


@pytest.mark.parametrize("cmd", [["list"], ["state", "x"], ["delete", "x"], ["kill", "x"],
                                 ["delete", "--force", "x"]])
def test_root_that_is_a_file(rt, pyrt_tmp, cmd):
    root = os.path.join(pyrt_tmp, "rootfile")
    with open(root, "w") as f:
        f.write("not a dir")
    p = rt.run("--root", root, *cmd)
    assert p.returncode == 1
    one_error_line(p, "mkdir %s: not a directory" % root)
    with open(root) as f:
        assert f.read() == "not a dir"


def test_create_with_missing_bundle_names_it(rt, pyrt_tmp, cid):
    missing = os.path.join(pyrt_tmp, "no-such-bundle")
    p = rt.run("create", "--bundle", missing, cid)
    assert p.returncode == 1
    one_error_line(p, "create failed: chdir %s: no such file or directory" % missing)
    assert rt.container_ids() == []


@pytest.mark.parametrize("rootless", [False, True])
def test_spec_with_missing_bundle_names_it(rt, pyrt_tmp, rootless):
    missing = os.path.join(pyrt_tmp, "nodir", "sub")
    p = rt.run("spec", *(["--rootless"] if rootless else []), "--bundle", missing)
    assert p.returncode == 1
    one_error_line(p, "chdir %s: no such file or directory" % missing)
    assert not os.path.exists(os.path.join(pyrt_tmp, "nodir"))


# ---- states -------------------------------------------------------------------------------

def test_start_paused(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    rt.ok("pause", cid)
    p = rt.run("start", cid)
    assert p.returncode == 1
    one_error_line(p, "cannot start a container in the paused state")
    assert rt.state(cid)["status"] == "paused"
    rt.ok("resume", cid)


@pytest.mark.parametrize("state", ["created", "running", "paused"])
def test_kill_signal_0_probes(rt, make_bundle, cid, state):
    created(rt, make_bundle, cid)
    if state != "created":
        rt.ok("start", cid)
    if state == "paused":
        rt.ok("pause", cid)
    p = rt.ok("kill", cid, "0")
    assert p.stderr == ""
    assert rt.state(cid)["status"] == state
    if state == "paused":
        rt.ok("resume", cid)


def test_kill_signal_0_stopped(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    rt.ok("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")
    p = rt.run("kill", cid, "0")
    assert p.returncode == 1
    one_error_line(p, "container not running")


@pytest.mark.parametrize("sig,msg", [
    (" 9", 'unknown signal \\" 9\\"'),
    ("9 ", 'unknown signal \\"9 \\"'),
    ("BOGUS", 'unknown signal \\"BOGUS\\"'),
    ("65", "unable to signal init: invalid argument"),
    ("-9", "unable to signal init: invalid argument"),
    ("99999999999", "unable to signal init: invalid argument"),
])
def test_kill_bad_signal(rt, make_bundle, cid, sig, msg):
    created(rt, make_bundle, cid)
    p = rt.run("kill", cid, sig)
    assert p.returncode == 1
    one_error_line(p, msg)
    assert rt.state(cid)["status"] == "created"


def test_kill_missing_container_before_bad_signal(rt):
    p = rt.run("kill", "nosuch", "BOGUS")
    assert p.returncode == 1
    one_error_line(p, "container does not exist")


# ---- list ---------------------------------------------------------------------------------

def test_list_skips_dirs_without_state(rt, make_bundle, cid):
    # a directory in the root that holds no state.json is not a container: not listed,
    # named on stderr, exit 0, and left alone
    created(rt, make_bundle, cid)
    junk = os.path.join(rt.root, "junkdir")
    os.mkdir(junk)
    with open(os.path.join(rt.root, "junkfile"), "w") as f:
        f.write("x")
    try:
        p = rt.ok("list", "-q")
        assert p.stdout.split() == [cid]
        assert "junkdir" in p.stderr
        assert [e["id"] for e in json.loads(rt.ok("list", "-f", "json").stdout)] == [cid]
        table = rt.ok("list").stdout.splitlines()
        assert len(table) == 2 and table[1].startswith(cid + " ")
        assert os.path.isdir(junk)
    finally:
        os.rmdir(junk)
        os.unlink(os.path.join(rt.root, "junkfile"))


def test_list_only_junk_is_empty(rt):
    os.makedirs(os.path.join(rt.root, "junkdir"))
    try:
        p = rt.ok("list", "-f", "json")
        assert json.loads(p.stdout) in (None, [])
        assert rt.ok("list", "-q").stdout == ""
    finally:
        os.rmdir(os.path.join(rt.root, "junkdir"))


# ---- process env and exec flags ---------------------------------------------------------

def test_env_without_equals_refused_at_create(rt, make_bundle, cid):
    # the spec's env has POSIX environ's NAME=value form; runc refuses the rest
    b = make_bundle(["true"])
    b.config["process"]["env"].append("FOO")
    b.save()
    p = rt.run("run", "--bundle", b.path, cid)
    assert p.returncode == 1
    one_error_line(p, 'invalid environment variable: \\"FOO\\"')
    assert rt.container_ids() == []


def test_exec_env_without_equals(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    p = rt.run("exec", "-e", "FOO", cid, "true")
    assert p.returncode == 255
    one_error_line(p, "exec failed: ", 'invalid environment variable: \\"FOO\\"')


@pytest.mark.parametrize("val,why", [("x", "invalid syntax"),
                                     ("99999999999999999999", "value out of range")])
def test_exec_additional_gid_not_a_number_is_usage(rt, make_bundle, cid, val, why):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    p = rt.run("exec", "-g", val, cid, "true")
    assert p.returncode == 1
    one_error_line(p, 'invalid value \\"%s\\" for flag -g: strconv.ParseInt: parsing '
                   '\\"%s\\": %s' % (val, val, why))
    assert p.stdout.startswith("Incorrect Usage: ")


@pytest.mark.parametrize("user", ["-1", "2147483648", "1:-1"])
def test_exec_user_out_of_range(rt, make_bundle, cid, user):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    p = rt.run("exec", "-u", user, cid, "true")
    assert p.returncode == 255
    one_error_line(p, "exec failed: ", "uids and gids must be in range 0-2147483647")


def test_exec_user_id_in_range(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    p = rt.ok("exec", "-u", "+1000:1000", cid, "id", "-u")
    assert p.stdout == "1000\n"


def test_console_socket_that_cannot_be_dialled(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(SLEEPER, terminal=True)
    sock = os.path.join(pyrt_tmp, "no-such-socket")
    p = rt.run("create", "--bundle", b.path, "--console-socket", sock, cid)
    assert p.returncode == 1
    one_error_line(p, "create failed: dial unix %s: connect: no such file or directory" % sock)
    assert rt.container_ids() == []


def test_exec_console_socket_that_cannot_be_dialled(rt, make_bundle, cid, pyrt_tmp):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    sock = os.path.join(pyrt_tmp, "no-such-socket")
    p = rt.run("exec", "-d", "-t", "--console-socket", sock, cid, "true")
    assert p.returncode == 255
    one_error_line(p, "exec failed: dial unix %s: connect: no such file or directory" % sock)


@pytest.mark.parametrize("env", ["=x", "FOO"])
def test_exec_process_file_bad_env(rt, make_bundle, cid, pyrt_tmp, env):
    b = created(rt, make_bundle, cid)
    rt.ok("start", cid)
    proc = dict(b.config["process"], args=["true"], env=b.config["process"]["env"] + [env])
    path = os.path.join(pyrt_tmp, "process.json")
    with open(path, "w") as f:
        json.dump(proc, f)
    p = rt.run("exec", "-p", path, cid)
    assert p.returncode == 255
    line = one_error_line(p, "exec failed: unable to start container process: ")
    assert "environment variable" in line and env in line


def test_exec_env_empty_name(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    p = rt.run("exec", "-e", "=x", cid, "true")
    assert p.returncode == 255
    one_error_line(p, "exec failed: unable to start container process: ",
                   "environment variable name can't be empty")


def test_env_empty_name_refused_at_create(rt, make_bundle, cid):
    b = make_bundle(["true"])
    b.config["process"]["env"].append("=x")
    b.save()
    p = rt.run("create", "--bundle", b.path, cid)
    assert p.returncode == 1
    one_error_line(p, "environment variable name can't be empty")
    assert rt.container_ids() == []


@pytest.mark.parametrize("state", ["created", "running", "stopped"])
def test_update_empty_resources_input(rt, make_bundle, cid, state):
    created(rt, make_bundle, cid)
    if state != "created":
        rt.ok("start", cid)
    if state == "stopped":
        rt.ok("kill", cid, "KILL")
        wait_status(rt, cid, "stopped")
    p = rt.run("update", "-r", "-", cid, input="")
    assert p.returncode == 1
    one_error_line(p, 'msg=EOF')


# ---- flags after the positionals (runc's CLI moves them in front, except for exec/ps) ----

def test_flags_after_the_id(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    rt.ok("kill", cid, "KILL", "--all")
    wait_status(rt, cid, "stopped")
    rt.ok("delete", cid, "-f")
    assert rt.container_ids() == []


def test_value_flag_after_the_id(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(SLEEPER)
    pid_file = os.path.join(pyrt_tmp, "c.pid")
    rt.ok("create", cid, "--bundle", b.path, "--pid-file=" + pid_file)
    with open(pid_file) as f:
        assert int(f.read()) == rt.state(cid)["pid"]
    assert json.loads(rt.ok("list", "--format", "json").stdout)[0]["id"] == cid
    assert rt.ok("list", "-q").stdout == cid + "\n"


def test_unknown_flag_after_the_id_is_an_argument(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    p = rt.run("state", cid, "--bogus")
    assert p.returncode == 1
    one_error_line(p, '\\"state\\" requires exactly 1 argument(s)')


def test_exec_flags_after_the_id_belong_to_the_process(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    p = rt.ok("exec", cid, "echo", "-e", "x", "--tty")
    assert p.stdout == "x --tty\n"


# ---- timestamps ---------------------------------------------------------------------------

@pytest.mark.parametrize("ns,text", [
    (1764572819154967759, "2025-12-01T07:06:59.154967759Z"),
    (1764572819154967000, "2025-12-01T07:06:59.154967Z"),
    (1764572819000000000, "2025-12-01T07:06:59Z"),
])
def test_created_is_go_rfc3339nano(monkeypatch, ns, text):
    # runc writes `created` with Go's RFC3339Nano: no trailing zeros in the fraction (the
    # list table's columns and a byte-wise comparison of state output depend on it)
    import time
    from pyruntime import state
    monkeypatch.setattr(time, "time_ns", lambda: ns)
    assert state.now_rfc3339() == text


def test_created_matches_the_format(rt, make_bundle, cid):
    import re
    created(rt, make_bundle, cid)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", rt.state(cid)["created"])


def test_bool_flag_after_the_id_takes_no_value(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    p = rt.run("kill", cid, "--all", "KILL")
    if not rt.is_pyruntime:
        # runc's CLI takes KILL as --all's value and signals a container named KILL
        assert p.returncode == 1 and "container does not exist" in p.stderr
        return
    assert p.returncode == 0, p.stderr
    wait_status(rt, cid, "stopped")


def test_help_flag_after_the_id(rt):
    p = rt.ok("state", "x", "--help")
    assert p.stdout.startswith("NAME:\n") and "state" in p.stdout.splitlines()[1]


@pytest.mark.parametrize("cmd", ["create", "run"])
def test_rootless_value_not_a_bool(rt, make_bundle, cid, cmd):
    b = make_bundle(["true"])
    p = rt.run("--rootless", "bogus", cmd, "--bundle", b.path, cid)
    assert p.returncode == 1
    one_error_line(p, '%s failed: strconv.ParseBool: parsing \\"bogus\\": invalid syntax' % cmd)
    assert rt.container_ids() == []


def test_rootless_value_go_bool_forms(rt, make_bundle, cid):
    b = make_bundle(["true"])
    rt.ok("--rootless", "F", "run", "--bundle", b.path, cid)
    # and commands that do not look at it do not mind it
    assert rt.ok("--rootless", "bogus", "list", "-q").stdout == ""


# ---- closed stdio -------------------------------------------------------------------------

def _close_fd(fd):
    return lambda: os.close(fd)


@pytest.mark.parametrize("fd", [0, 1, 2])
def test_create_with_a_closed_stdio_fd(rt, make_bundle, cid, fd):
    # runc's create succeeds with a closed stdout; the container inherits fds 0-2 as its
    # stdio, so a closed one must not be taken by a file the runtime opens on the way
    b = make_bundle(SLEEPER)
    p = rt.run("create", "--bundle", b.path, cid, preexec_fn=_close_fd(fd))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in (p.stderr or "")
    pid = rt.state(cid)["pid"]
    target = os.readlink("/proc/%d/fd/%d" % (pid, fd)) if os.path.lexists(
        "/proc/%d/fd/%d" % (pid, fd)) else None
    if rt.is_pyruntime:
        # runc 1.1.5 hands the container an O_PATH fd of /sys/fs/cgroup there instead
        assert target in (None, "/dev/null"), target
    rt.ok("start", cid)
    assert rt.state(cid)["status"] == "running"


@pytest.mark.parametrize("argv", [["state", "nosuch"], ["--version"], ["list"], ["state"]])
def test_closed_stdout_no_traceback(rt, argv):
    p = rt.run(*argv, preexec_fn=_close_fd(1))
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    assert len(p.stderr.splitlines()) <= 1, p.stderr


def test_text_log_escapes_control_characters(rt):
    # a value with ESC/CR in it (here the bad --log-format itself) is one inert line
    p = rt.run("--log-format", 'x\x1by\rz\x7f"\\\t\n', "list")
    assert p.returncode == 1
    line = one_error_line(p)
    assert line.endswith('msg="invalid log-format: x\\x1by\\rz\\x7f\\"\\\\\\t\\n"'), line
    assert "\x1b" not in p.stderr and "\r" not in p.stderr


# ---- a pid file that cannot be written: runc's line, nothing left behind ----------------

@pytest.mark.parametrize("cmd", [["create"], ["run", "-d"]])
def test_pid_file_in_a_missing_dir(rt, make_bundle, cid, pyrt_tmp, cmd):
    b = make_bundle(SLEEPER)
    missing = os.path.join(pyrt_tmp, "no-such-dir")
    p = rt.run(*cmd, "--pid-file", os.path.join(missing, "c.pid"), "--bundle", b.path, cid)
    assert p.returncode == 1
    one_error_line(p, "open %s/.c.pid: no such file or directory" % missing)
    assert rt.container_ids() == []   # runc removes the container too


def test_exec_pid_file_in_a_missing_dir(rt, make_bundle, cid, pyrt_tmp):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    missing = os.path.join(pyrt_tmp, "no-such-dir")
    p = rt.run("exec", "-d", "--pid-file", os.path.join(missing, "e.pid"), cid, "sleep", "999")
    assert p.returncode == 255
    one_error_line(p, "exec failed: open %s/.e.pid: no such file or directory" % missing)
    # the process whose pid could not be told is gone (runc kills it)
    assert "sleep 999" not in rt.ok("ps", cid).stdout


def test_exec_apparmor_without_apparmor(rt, make_bundle, cid):
    if os.path.exists("/sys/module/apparmor/parameters/enabled"):
        pytest.skip("the host has AppArmor")
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    p = rt.run("exec", "--apparmor", "pyrt-test", cid, "true")
    assert p.returncode == 255
    line = one_error_line(p)
    assert 'msg="exec failed: unable to start container process: apparmor failed to apply ' \
           'profile: write /proc/self/attr/' in line, line
