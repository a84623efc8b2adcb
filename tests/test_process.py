"""The container process: args/env/cwd/user, rlimits, caps, oom, sysctl, fds, keyring."""
import os
import subprocess

import pytest

import util

CAP_BITS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SETGID": 6,
            "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13,
            "CAP_SYS_CHROOT": 18, "CAP_AUDIT_WRITE": 29}


def mask(*caps):
    return sum(1 << CAP_BITS[c] for c in caps)


def sh(make_bundle, script, **process):
    b = make_bundle(["sh", "-c", script])
    b.config["process"].update(process)
    b.save()
    return b


def run_out(rt, b, cid, *extra, **kw):
    return rt.ok("run", *extra, "--bundle", b.path, cid, **kw).stdout


def status_fields(out):
    """{key: value} of /proc/self/status lines."""
    return {k: v.strip() for k, _, v in (x.partition(":") for x in out.splitlines()) if v}


def test_args_exact(rt, make_bundle, cid):
    b = make_bundle(["printf", "[%s]\\n", "a b", "", "c\"d", "$HOME", "*"])
    assert run_out(rt, b, cid) == '[a b]\n[]\n[c"d]\n[$HOME]\n[*]\n'


def test_path_lookup_uses_container_env(rt, make_bundle, cid):
    b = make_bundle(["myecho", "found"])
    os.makedirs(os.path.join(b.rootfs, "opt", "bin"))
    with open(os.path.join(b.rootfs, "opt", "bin", "myecho"), "w") as f:
        f.write("#!/bin/sh\necho \"$@\"\n")
    os.chmod(os.path.join(b.rootfs, "opt", "bin", "myecho"), 0o755)
    b.config["process"]["env"] = ["PATH=/opt/bin:/bin"]
    b.save()
    assert run_out(rt, b, cid) == "found\n"


def test_absolute_path_arg(rt, make_bundle, cid):
    b = make_bundle(["/bin/echo", "abs"])
    b.config["process"]["env"] = ["PATH=/nowhere"]
    b.save()
    assert run_out(rt, b, cid) == "abs\n"


def test_env_exact(rt, make_bundle, cid):
    b = make_bundle(["env"])
    b.config["process"]["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "EQ=a=b"]
    b.save()
    lines = run_out(rt, b, cid).splitlines()
    # runc adds HOME (from /etc/passwd) when the config does not set it: nothing else
    assert sorted(lines) == sorted(["PATH=/bin", "FOO=bar baz", "EMPTY=", "EQ=a=b", "HOME=/root"])


def test_env_home_kept(rt, make_bundle, cid):
    b = make_bundle(["env"])
    b.config["process"]["env"] = ["PATH=/bin", "HOME=/custom"]
    b.save()
    assert sorted(run_out(rt, b, cid).splitlines()) == ["HOME=/custom", "PATH=/bin"]


def test_env_home_from_a_long_passwd(rt, make_bundle, cid, tmp_path):
    """HOME is looked up past the first read's worth of the image's /etc/passwd (the runtime
    reads it in chunks) and an over-large one is refused in one line, nothing left."""
    if not rt.is_pyruntime:
        pytest.skip("the size bound is pyruntime's")
    b = make_bundle(["env"])
    b.config["process"]["env"] = ["PATH=/bin"]
    b.config["process"]["user"] = {"uid": 4242, "gid": 0}
    b.save()
    pw = os.path.join(b.rootfs, "etc", "passwd")
    filler = "".join("u%d:x:%d:0::/nonexistent:/bin/false\n" % (i, 10000 + i) for i in range(4000))
    with open(pw, "a") as f:
        f.write(filler + "far:x:4242:0::/far/home:/bin/sh\n")
    assert os.path.getsize(pw) > 65536
    assert "HOME=/far/home" in run_out(rt, b, cid).splitlines()
    rt.ok("delete", "--force", cid)
    with open(pw, "a") as f:
        f.write("#" * (4 << 20) + "\n")
    r = rt.run("create", "--bundle", b.path, cid)
    assert r.returncode != 0
    assert "larger than 4 MiB" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


def test_host_env_not_leaked(rt, make_bundle, cid):
    b = make_bundle(["env"])
    out = run_out(rt, b, cid, env={"PYRT_SECRET_LEAK": "1"})
    assert "PYRT_SECRET_LEAK" not in out


def test_cwd(rt, make_bundle, cid):
    b = sh(make_bundle, "pwd", cwd="/tmp")
    assert run_out(rt, b, cid) == "/tmp\n"


def test_cwd_created_when_missing(rt, make_bundle, cid):
    # runc creates a missing cwd (before making the root read-only)
    b = sh(make_bundle, "pwd", cwd="/new/work/dir")
    assert run_out(rt, b, cid) == "/new/work/dir\n"
    assert os.path.isdir(os.path.join(b.rootfs, "new", "work", "dir"))


def test_user_ids(rt, make_bundle, cid):
    b = sh(make_bundle, "id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
           user={"uid": 1000, "gid": 1001, "additionalGids": [10, 20]})
    out = run_out(rt, b, cid)
    lines = out.splitlines()
    assert lines[:2] == ["1000", "1001"]
    st = status_fields("\n".join(lines[2:]))
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1001"] * 4
    assert sorted(st["Groups"].split()) == ["10", "20"]


# runc refuses ids above 2^31-1 ("uids and gids must be in range 0-2147483647"). 4294967295
# is (uid_t)-1, which setresuid/setresgid read as "leave unchanged": taken as is, the
# process would keep the init's root identity instead of the one the config names.
@pytest.mark.parametrize("user", [
    {"uid": 4294967295, "gid": 1000},
    {"uid": 1000, "gid": 4294967295},
    {"uid": 2147483648, "gid": 1000},
    {"uid": 1000, "gid": 1000, "additionalGids": [10, 2147483648]},
], ids=["uid-minus-one", "gid-minus-one", "uid-2^31", "additional-gid-2^31"])
def test_user_ids_out_of_range_refused(rt, make_bundle, cid, user):
    b = sh(make_bundle, "echo ran; id -u; id -g", user=user)
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode != 0 and "ran" not in r.stdout, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "uids and gids must be in range 0-2147483647" in lines[0], lines[0]


def test_more_than_1024_additional_gids(rt, make_bundle, cid):
    # every one of them, as runc sets them (the kernel allows 65536)
    gids = list(range(1, 1301))
    b = sh(make_bundle, "grep Groups: /proc/self/status",
           user={"uid": 1000, "gid": 1000, "additionalGids": gids})
    assert sorted(int(g) for g in run_out(rt, b, cid).split()[1:]) == gids


def test_user_without_additional_gids_has_no_groups(rt, make_bundle, cid):
    b = sh(make_bundle, "grep Groups: /proc/self/status", user={"uid": 1000, "gid": 1000})
    assert run_out(rt, b, cid).split() == ["Groups:"]


def test_umask(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", "umask"])
    b.config["process"]["user"]["umask"] = 0o27
    b.save()
    assert run_out(rt, b, cid).strip() == "0027"


def test_default_umask(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", "umask"])
    assert run_out(rt, b, cid).strip() == "0022"


def test_rlimits(rt, make_bundle, cid):
    b = sh(make_bundle, "ulimit -n; ulimit -Hn; grep 'Max core' /proc/self/limits",
           rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
                    {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192}])
    lines = run_out(rt, b, cid).splitlines()
    assert lines[:2] == ["1000", "2000"]
    assert lines[2].split()[4:6] == ["4096", "8192"]


def test_rlimits_unlimited_and_above_2_63(rt, make_bundle, cid):
    # the u64 limits whole: RLIM_INFINITY stays unlimited, 2^63 is no negative number
    b = sh(make_bundle, "grep -E 'Max (core|file size)' /proc/self/limits",
           rlimits=[{"type": "RLIMIT_CORE", "soft": 1 << 63, "hard": (1 << 64) - 1},
                    {"type": "RLIMIT_FSIZE", "soft": (1 << 64) - 1, "hard": (1 << 64) - 1}])
    out = run_out(rt, b, cid)
    lines = {x[:26].strip(): x[26:].split()[:2] for x in out.splitlines()}
    assert lines["Max core file size"] == [str(1 << 63), "unlimited"], out
    assert lines["Max file size"] == ["unlimited", "unlimited"], out


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(rt, make_bundle, cid, nnp):
    b = sh(make_bundle, "grep NoNewPrivs /proc/self/status", noNewPrivileges=nnp)
    assert run_out(rt, b, cid).split() == ["NoNewPrivs:", "1" if nnp else "0"]


def _caps_out(rt, b, cid):
    st = status_fields(run_out(rt, b, cid))
    return {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_capabilities_default_root(rt, make_bundle, cid):
    # root execs without file caps: permitted/effective become the bounding set; the
    # default config's ambient set cannot be raised (empty inheritable), silently
    b = sh(make_bundle, "cat /proc/self/status")
    caps = _caps_out(rt, b, cid)
    want = mask("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert caps == {"CapInh": 0, "CapPrm": want, "CapEff": want, "CapBnd": want, "CapAmb": 0}


def test_capabilities_non_root_sets(rt, make_bundle, cid):
    # as a non-root user every set is observable separately after execve
    b = sh(make_bundle, "cat /proc/self/status",
           user={"uid": 1000, "gid": 1000},
           capabilities={
               "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
               "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
               "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
               "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
               "ambient": ["CAP_KILL"]})
    assert _caps_out(rt, b, cid) == {
        "CapBnd": mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"),
        "CapInh": mask("CAP_KILL", "CAP_NET_BIND_SERVICE"),
        "CapPrm": mask("CAP_KILL"), "CapEff": mask("CAP_KILL"), "CapAmb": mask("CAP_KILL")}


def test_capabilities_above_bit_31(rt, make_bundle, cid):
    # the capability sets' upper 32-bit words (CAP_MAC_OVERRIDE=32 .. CAP_CHECKPOINT_RESTORE
    # =40): bounding and inheritable as given; ambient raised only if permitted's and
    # inheritable's upper words arrived too
    high = {"CAP_MAC_OVERRIDE": 32, "CAP_SYSLOG": 34, "CAP_PERFMON": 38, "CAP_BPF": 39,
            "CAP_CHECKPOINT_RESTORE": 40}
    hm = lambda *n: sum(1 << high[x] for x in n)  # noqa: E731
    b = sh(make_bundle, "cat /proc/self/status",
           user={"uid": 1000, "gid": 1000},
           capabilities={
               "bounding": ["CAP_KILL", "CAP_SYSLOG", "CAP_PERFMON", "CAP_BPF",
                            "CAP_CHECKPOINT_RESTORE"],
               "effective": ["CAP_BPF"],
               "permitted": ["CAP_BPF", "CAP_PERFMON", "CAP_KILL"],
               "inheritable": ["CAP_PERFMON", "CAP_BPF"],
               "ambient": ["CAP_BPF"]})
    assert _caps_out(rt, b, cid) == {
        "CapBnd": mask("CAP_KILL") | hm("CAP_SYSLOG", "CAP_PERFMON", "CAP_BPF",
                                        "CAP_CHECKPOINT_RESTORE"),
        "CapInh": hm("CAP_PERFMON", "CAP_BPF"),
        "CapPrm": hm("CAP_BPF"), "CapEff": hm("CAP_BPF"), "CapAmb": hm("CAP_BPF")}


def test_capabilities_none(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /proc/self/status", capabilities={})
    assert _caps_out(rt, b, cid) == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0,
                                     "CapAmb": 0}


def test_capability_effect(rt, make_bundle, cid):
    # without CAP_CHOWN root cannot give a file away; with it, it can
    script = "touch /tmp/f && chown 1234 /tmp/f 2>/dev/null && echo chowned || echo denied"
    b = sh(make_bundle, script)
    b.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    b.save()
    assert run_out(rt, b, cid + "-a").strip() == "denied"
    caps = ["CAP_CHOWN", "CAP_KILL"]
    b.config["process"]["capabilities"] = {k: list(caps) for k in
                                           ("bounding", "effective", "permitted")}
    b.save()
    assert run_out(rt, b, cid + "-b").strip() == "chowned"


def test_oom_score_adj_positive(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /proc/self/oom_score_adj", oomScoreAdj=500)
    assert run_out(rt, b, cid).strip() == "500"


def test_oom_score_adj_negative_fails_clearly(rt, make_bundle, cid):
    with open("/proc/self/status") as f:
        eff = int(status_fields(f.read())["CapEff"], 16)
    if eff & (1 << 24):
        pytest.skip("this host has CAP_SYS_RESOURCE: a negative oomScoreAdj is allowed")
    b = sh(make_bundle, "echo should-not-run", oomScoreAdj=-500)
    p = rt.run("run", "--bundle", b.path, cid)
    assert p.returncode == 1
    assert "should-not-run" not in p.stdout
    assert "oom_score_adj" in p.stderr
    assert "Traceback" not in p.stderr
    assert rt.ok("list", "-q").stdout == ""


def test_sysctl_namespaced(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")
    b.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}
    b.save()
    with open("/proc/sys/kernel/shmmax") as f:
        host_shmmax = f.read()
    assert run_out(rt, b, cid).split() == ["1", "123456789"]
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read() == host_shmmax


def test_sysctl_not_namespaced_rejected(rt, make_bundle, cid):
    b = sh(make_bundle, "echo should-not-run")
    b.config["linux"]["sysctl"] = {"vm.swappiness": "10"}
    b.save()
    with open("/proc/sys/vm/swappiness") as f:
        before = f.read()
    p = rt.run("run", "--bundle", b.path, cid)
    assert p.returncode == 1
    assert "vm.swappiness" in p.stderr
    assert "Traceback" not in p.stderr
    with open("/proc/sys/vm/swappiness") as f:
        assert f.read() == before


def test_sysctl_net_without_netns_rejected(rt, make_bundle, cid):
    b = sh(make_bundle, "echo should-not-run")
    b.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "network"]
    b.save()
    p = rt.run("run", "--bundle", b.path, cid)
    assert p.returncode == 1
    assert "net.ipv4.ip_forward" in p.stderr


def test_stdin_inherited(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", "cat; echo done >&2"])
    p = rt.run("run", "--bundle", b.path, cid, input="line one\nline two\n")
    assert p.returncode == 0
    assert p.stdout == "line one\nline two\n"
    assert "done\n" in p.stderr


def test_no_extra_fds(rt, make_bundle, cid):
    # only 0 1 2, plus the directory fd `ls` itself opens
    b = make_bundle(["ls", "/proc/self/fd"])
    assert run_out(rt, b, cid).split() == ["0", "1", "2", "3"]


def test_no_extra_fds_after_start(rt, make_bundle, cid, pyrt_tmp):
    # create/start path: the init blocked on the exec fifo must not leak its fds either
    out = os.path.join(pyrt_tmp, "out")
    os.mkdir(out)
    b = make_bundle(["sh", "-c", "ls /proc/self/fd > /out/fds"])
    b.config["mounts"].append({"destination": "/out", "type": "bind", "source": out,
                               "options": ["rbind", "rw"]})
    b.save()
    with open(os.devnull, "w") as null:
        p = rt.run("create", "--bundle", b.path, cid, stdout=null, stderr=null)
    assert p.returncode == 0
    rt.ok("start", cid)
    path = os.path.join(out, "fds")
    assert util.wait_for(lambda: os.path.exists(path) and open(path).read())
    with open(path) as f:
        assert f.read().split() == ["0", "1", "2", "3"]


def test_preserve_fds(rt, make_bundle, cid, pyrt_tmp):
    extra = os.path.join(pyrt_tmp, "extra")
    with open(extra, "w") as f:
        f.write("passed-through\n")
    b = make_bundle(["sh", "-c", "cat <&3; ls /proc/self/fd"])
    # the shell gives the runtime the file as fd 3
    argv = ["sh", "-c", 'exec "$@" 3<"$F"', "sh"] + rt.cmd + [
        "--root", rt.root, "run", "--preserve-fds", "1", "--bundle", b.path, cid]
    p = subprocess.run(argv, env=dict(os.environ, F=extra), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert lines[:2] == ["passed-through", "0"]
    assert lines[1:] == ["0", "1", "2", "3", "4"]


def test_fds_not_preserved_without_flag(rt, make_bundle, cid, pyrt_tmp):
    extra = os.path.join(pyrt_tmp, "extra")
    with open(extra, "w") as f:
        f.write("x\n")
    b = make_bundle(["ls", "/proc/self/fd"])
    argv = ["sh", "-c", 'exec "$@" 3<"$F"', "sh"] + rt.cmd + [
        "--root", rt.root, "run", "--bundle", b.path, cid]
    p = subprocess.run(argv, env=dict(os.environ, F=extra), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "1", "2", "3"]


def _keys(rt, make_bundle, cid, *extra):
    # as a non-root user /proc/keys lists only keys the process possesses (or owns)
    b = sh(make_bundle, "cat /proc/keys", user={"uid": 1000, "gid": 1000})
    b.config["linux"]["maskedPaths"].remove("/proc/keys")
    b.save()
    return [x for x in run_out(rt, b, cid, *extra).splitlines() if " keyring " in x]


def test_new_session_keyring(rt, make_bundle, cid):
    rings = _keys(rt, make_bundle, cid)
    assert any(cid in x for x in rings), rings


def test_no_new_keyring(rt, make_bundle, cid):
    rings = _keys(rt, make_bundle, cid, "--no-new-keyring")
    assert not any(cid in x for x in rings), rings
