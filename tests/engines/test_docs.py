"""docs/engines.md: its snippets parse, name pyruntime, match what the engine tests run, and
its daemon.json starts a dockerd whose containers run on pyruntime."""
import json
import os
import re
import tomllib

import pytest

import engutil

DOC = os.path.join(engutil.REPO, "docs", "engines.md")


def blocks(lang):
    return re.findall(r"```%s\n(.*?)```" % lang, open(DOC).read(), re.S)


def test_containerd_snippet():
    (toml,) = blocks("toml")[:1]
    rt = tomllib.loads(toml)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"][
        "runtimes"]["pyruntime"]
    assert rt["runtime_type"] == "io.containerd.runc.v2"
    assert rt["options"]["BinaryName"] == "/usr/local/bin/pyruntime"
    # The CRI test runs this very table (its BinaryName is a logging wrapper, plus a Root).
    import test_cri
    tested = tomllib.loads(test_cri.CONFIG.format(d="/x", pause="p", wrapper="/w"))["plugins"][
        "io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["pyruntime"]
    assert tested["runtime_type"] == rt["runtime_type"]
    assert set(rt["options"]) <= set(tested["options"])
    assert tested["options"]["SystemdCgroup"] == rt["options"]["SystemdCgroup"]


def test_runtimeclass_handler_is_the_containerd_runtime():
    (yaml,) = blocks("yaml")
    assert re.search(r"^handler: pyruntime$", yaml, re.M)
    assert re.search(r"^kind: RuntimeClass$", yaml, re.M)


def test_podman_snippet():
    conf = tomllib.loads(blocks("toml")[1])
    assert conf["engine"]["runtime"] == "pyruntime"
    assert conf["engine"]["runtimes"]["pyruntime"] == ["/usr/local/bin/pyruntime"]


@pytest.mark.skipif(engutil.have("dockerd", "docker") is not None,
                    reason="docker.io is not installed (tools/engines/install.sh)")
def test_daemon_json_runs_containers_on_pyruntime(images):
    (text,) = blocks("json")
    conf = json.loads(text)
    assert conf["runtimes"]["pyruntime"]["path"] == "/usr/local/bin/pyruntime"
    sb = engutil.Sandbox("doc")
    try:
        cfg = sb.write("daemon.json", text)
        sock = sb.path("docker.sock")
        sb.start("dockerd", [
            "dockerd", "--config-file", cfg, "-H", "unix://" + sock,
            "--data-root", sb.path("data"), "--exec-root", sb.path("exec"),
            "--pidfile", sb.path("docker.pid"), "--iptables=false", "--ip6tables=false",
            "--bridge=none", "--ip-forward=false", "--ip-masq=false",
            "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", "/" + sb.tag,
        ], sock=sock, timeout=90)
        env = {"DOCKER_CONFIG": sb.mkdir("cli"), "DOCKER_HOST": "unix://" + sock}
        engutil.run(["docker", "import", images.rootfs_tar, "pyrt-doc:1"], env=env,
                    check=True)
        r = engutil.run(["docker", "run", "--rm", "--network", "none", "pyrt-doc:1", "sh",
                         "-c", "exit 6"], env=env)
        assert r.returncode == 6, r.stderr
        info = json.loads(engutil.run(["docker", "info", "--format", "{{json .}}"],
                                      env=env, check=True).stdout)
        assert info["DefaultRuntime"] == "pyruntime"
    finally:
        leaks = sb.cleanup()
    assert not leaks
