"""docs/engines.md: its snippets parse, name pyruntime, match what the engine tests run, and
its daemon.json starts a dockerd whose containers run on pyruntime."""
import json
import os
import re
import tomllib

import pytest

import daemons
import engutil

DOC = os.path.join(engutil.REPO, "docs", "engines.md")


def blocks(lang):
    return re.findall(r"```%s\n(.*?)```" % lang, open(DOC).read(), re.S)


def block(lang, marker):
    """The first `lang` block that contains marker: the doc has several of each kind, and
    the v2 + systemd section repeats an engine's snippet with its cgroup driver changed
    (those are checked by test_every_snippet_parses_and_names_pyruntime)."""
    found = [b for b in blocks(lang) if marker in b]
    assert found, "no %s block in docs/engines.md contains %r" % (lang, marker)
    return found[0]


def test_every_snippet_parses_and_names_pyruntime():
    for b in blocks("toml"):
        assert "pyruntime" in str(tomllib.loads(b))
    for b in blocks("json"):
        assert json.loads(b)
    assert len(blocks("toml")) >= 4 and len(blocks("json")) >= 3


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
    yaml = block("yaml", "kind: RuntimeClass")
    assert re.search(r"^handler: pyruntime$", yaml, re.M)
    assert re.search(r"^kind: RuntimeClass$", yaml, re.M)


def test_kubernetes_node_snippets():
    """The v2 + systemd node: the handler with SystemdCgroup = true and Debian's CNI
    plugins, a kubelet on the same driver, and the network the CNI test builds (the same
    plugin chain; the test adds no gateway, masquerading or port mapping)."""
    conf = tomllib.loads(block("toml", "SystemdCgroup = true"))
    crip = conf["plugins"]["io.containerd.grpc.v1.cri"]
    rt = crip["containerd"]["runtimes"]["pyruntime"]
    assert rt["runtime_type"] == "io.containerd.runc.v2"
    assert rt["options"] == {"BinaryName": "/usr/local/bin/pyruntime", "SystemdCgroup": True}
    assert crip["cni"]["bin_dir"] == "/usr/lib/cni"
    kubelet = block("yaml", "kind: KubeletConfiguration")
    assert re.search(r"^cgroupDriver: systemd$", kubelet, re.M)
    net = json.loads(block("json", '"plugins"'))
    import test_cri_cni
    assert test_cri_cni.CNI_BIN == crip["cni"]["bin_dir"]
    tested = test_cri_cni.conflist("10.1.2.0/24", "/x")
    assert [p["type"] for p in net["plugins"]][:1] == [p["type"] for p in tested["plugins"]]
    assert net["plugins"][0]["ipam"]["type"] == tested["plugins"][0]["ipam"]["type"]
    assert net["cniVersion"] == tested["cniVersion"]
    # Every plugin the doc names is one Debian's package ships (the test's skip condition
    # already requires the package).
    assert {p["type"] for p in net["plugins"]} | {"loopback"} <= set(
        os.listdir(test_cri_cni.CNI_BIN))


def test_podman_snippet():
    conf = tomllib.loads(block("toml", "[engine]"))
    assert conf["engine"]["runtime"] == "pyruntime"
    assert conf["engine"]["runtimes"]["pyruntime"] == ["/usr/local/bin/pyruntime"]


@pytest.mark.skipif(engutil.have("dockerd", "docker") is not None,
                    reason="docker.io is not installed (tools/engines/install.sh)")
def test_daemon_json_runs_containers_on_pyruntime(images):
    text = block("json", '"runtimes"')
    conf = json.loads(text)
    assert conf["runtimes"]["pyruntime"]["path"] == "/usr/local/bin/pyruntime"
    sb = engutil.Sandbox("doc")
    try:
        # the doc's daemon.json alone names the runtime
        env = daemons.start_dockerd(sb, config=text, extra_flags=False).env
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
