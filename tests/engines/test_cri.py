"""Kubernetes' path: containerd's CRI plugin with a `pyruntime` runtime handler (what a
RuntimeClass with `handler: pyruntime` selects), driven over gRPC with the CRI v1 stubs of
PyPI's container-runtime-interface-api.

Pods use the host network (no CNI here: nothing is configured on the host's interfaces);
their pause image is made locally (busybox sleeping until TERM). The handler's BinaryName is
a wrapper that records each pyruntime call and its exit status; its Root is in the sandbox.
restrict_oom_score_adj: the sandbox's -998 needs CAP_SYS_RESOURCE, which this host lacks.
"""
import json
import os
import time
import uuid

import pytest

import daemons
import engutil

grpc = pytest.importorskip("grpc", reason="grpcio is not installed (tools/engines/install.sh)")
cri = pytest.importorskip("cri_api.v1.api_pb2",
                          reason="container-runtime-interface-api is not installed "
                                 "(tools/engines/install.sh)")
from cri_api.v1 import api_pb2_grpc  # noqa: E402

pytestmark = pytest.mark.skipif(engutil.have("containerd", "ctr", "containerd-shim-runc-v2")
                                is not None, reason="containerd is not installed "
                                "(tools/engines/install.sh)")

sandbox = engutil.make_sandbox_fixture("cri")

PAUSE = "pyrt/pause:1"

# the handler "pyruntime" (docs/engines.md's table, test_docs.py compares them), its
# BinaryName the calls-logging wrapper and its Root in the sandbox
CONFIG = daemons.containerd_config(cri="""\
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyruntime]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyruntime.options]
        BinaryName = "{wrapper}"
        Root = "{d}/pyruntime-root"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
""")


class Cri:
    wrapper = engutil.WRAPPER

    def __init__(self, sb, images, config=CONFIG):
        self.sb = sb
        self.calls_log = sb.path("calls.log")
        wrapper = daemons.calls_wrapper(sb, self.calls_log, self.wrapper)
        sb.mkdir("cni", "bin")
        sb.mkdir("cni", "conf")
        self.sock = daemons.start_containerd(sb, config, pause=PAUSE, wrapper=wrapper)
        base = engutil._tar_dir(images.rootfs)
        pause = sb.path("pause.tar")
        engutil.image_archive(pause, "docker.io/" + PAUSE, [base], cmd=None, entrypoint=[
            "sh", "-c", "trap 'exit 0' TERM INT; sleep 2147483647 & wait"])
        for archive in (pause, images.archive):
            daemons.ctr(self.sock, "k8s.io", "images", "import", archive, check=True)
        self.image = "docker.io/" + images.name
        daemons.ctr(self.sock, "k8s.io", "images", "tag", images.name, self.image, check=True)
        self.channel = grpc.insecure_channel("unix://" + self.sock)
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.img = api_pb2_grpc.ImageServiceStub(self.channel)

    def pyrt_state(self, cid):
        r = engutil.run([engutil.PYRUNTIME, "--root", os.path.join(self.sb.dir,
                         "pyruntime-root", "k8s.io"), "state", cid], check=True)
        return json.loads(r.stdout)

    def calls(self, cid):
        return engutil.wrapper_calls(self.calls_log, cid)

    def pod_config(self, name):
        host = cri.NamespaceOption(network=cri.NODE)
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="pyrt"),
            log_directory=self.sb.mkdir("logs", name),
            linux=cri.LinuxPodSandboxConfig(
                cgroup_parent="/%s/%s" % (self.sb.tag, name),
                security_context=cri.LinuxSandboxSecurityContext(namespace_options=host)))

    def run_pod(self, name):
        cfg = self.pod_config(name)
        r = self.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=cfg,
                                                           runtime_handler="pyruntime"))
        return r.pod_sandbox_id, cfg

    def create(self, pod, cfg, name, command, **kw):
        sec = kw.pop("security", {})
        c = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name), image=cri.ImageSpec(image=self.image),
            command=command, log_path=name + ".log",
            linux=cri.LinuxContainerConfig(security_context=cri.LinuxContainerSecurityContext(
                namespace_options=cri.NamespaceOption(network=cri.NODE), **sec)), **kw)
        return self.rt.CreateContainer(cri.CreateContainerRequest(
            pod_sandbox_id=pod, config=c, sandbox_config=cfg)).container_id

    def status(self, cid):
        return self.rt.ContainerStatus(cri.ContainerStatusRequest(container_id=cid)).status

    def remove_pod(self, pod):
        self.rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod))
        self.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod))


@pytest.fixture(scope="module")
def kube(sandbox, images):
    c = Cri(sandbox, images)
    yield c
    for p in c.rt.ListPodSandbox(cri.ListPodSandboxRequest()).items:
        c.remove_pod(p.id)
    c.channel.close()


def test_version_and_handler(kube):
    v = kube.rt.Version(cri.VersionRequest())
    assert v.runtime_name == "containerd" and v.runtime_api_version == "v1"


def test_pod_lifecycle(kube):
    pod, cfg = kube.run_pod("lifecycle")
    try:
        st = kube.rt.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
        assert st.state == cri.SANDBOX_READY
        assert kube.calls(pod)[0][1][0] == "create", "the pause container is not on pyruntime"

        cid = kube.create(pod, cfg, "main", ["sh", "-c", "echo hello-log; sleep 1000"],
                          security={"readonly_rootfs": True})
        kube.rt.StartContainer(cri.StartContainerRequest(container_id=cid))
        assert kube.status(cid).state == cri.CONTAINER_RUNNING

        r = kube.rt.ExecSync(cri.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; touch /x; exit 3"],
            timeout=30))
        assert r.exit_code == 3
        assert r.stdout == b"out\n"
        assert b"err\n" in r.stderr and b"Read-only file system" in r.stderr

        # The container joined the pause container's namespaces by path (pid, ipc, uts,
        # network: NamespaceMode POD is the CRI default; network is the host's here).
        pause_pid = kube.pyrt_state(pod)["pid"]
        r = kube.rt.ExecSync(cri.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "readlink /proc/self/ns/ipc; readlink /proc/self/ns/net"],
            timeout=30))
        assert r.stdout.decode().split() == [os.readlink("/proc/%d/ns/ipc" % pause_pid),
                                             os.readlink("/proc/self/ns/net")]

        stats = kube.rt.ContainerStats(cri.ContainerStatsRequest(container_id=cid)).stats
        assert stats.attributes.id == cid and stats.memory.working_set_bytes.value > 0

        kube.rt.UpdateContainerResources(cri.UpdateContainerResourcesRequest(
            container_id=cid, linux=cri.LinuxContainerResources(
                memory_limit_in_bytes=64 << 20, cpu_shares=512)))
        r = kube.rt.ExecSync(cri.ExecSyncRequest(
            container_id=cid, cmd=["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
            timeout=30))
        assert r.stdout.strip() == str(64 << 20).encode()

        log = os.path.join(cfg.log_directory, "main.log")
        engutil.wait_for(lambda: os.path.exists(log) and "hello-log" in open(log).read(),
                         what="CRI log line")
        line = [l for l in open(log).read().splitlines() if "hello-log" in l][0]
        assert line.split(" ", 1)[1] == "stdout F hello-log", line

        # Not pid 1 (the pod's pid namespace is the pause container's): TERM kills it.
        kube.rt.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=5))
        st = kube.status(cid)
        assert st.state == cri.CONTAINER_EXITED and st.exit_code == 143
        # Sharing a pid namespace, the shim kills what is left in its cgroup after the exit.
        assert ["kill", "--all", cid, "9"] in [a for rc, a in kube.calls(cid)], kube.calls(cid)
        kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
        calls = kube.calls(cid)
        assert all(rc == 0 for rc, _ in calls), calls
        assert [c[1][0] for c in calls][:2] == ["create", "start"]
    finally:
        kube.remove_pod(pod)
    assert all(rc == 0 for rc, _ in kube.calls(pod)), kube.calls(pod)
    assert not kube.rt.ListPodSandbox(cri.ListPodSandboxRequest(
        filter=cri.PodSandboxFilter(id=pod))).items


def test_exited_container_and_tty(kube):
    pod, cfg = kube.run_pod("exits")
    try:
        cid = kube.create(pod, cfg, "quick", ["sh", "-c", "exit 7"])
        kube.rt.StartContainer(cri.StartContainerRequest(container_id=cid))
        engutil.wait_for(lambda: kube.status(cid).state == cri.CONTAINER_EXITED,
                         what="container exit")
        assert kube.status(cid).exit_code == 7
        # Kubernetes stops containers that already exited: the engine must not fail.
        kube.rt.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=1))
        kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))

        tid = kube.create(pod, cfg, "tty", ["sh", "-c", "tty; sleep 1000"], tty=True,
                          stdin=True)
        kube.rt.StartContainer(cri.StartContainerRequest(container_id=tid))
        log = os.path.join(cfg.log_directory, "tty.log")
        engutil.wait_for(lambda: os.path.exists(log) and "/dev/" in open(log).read(),
                         what="tty log")
        assert "/dev/pts/0" in open(log).read() or "/dev/console" in open(log).read()
        kube.rt.StopContainer(cri.StopContainerRequest(container_id=tid, timeout=1))
        kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=tid))
        for c in (cid, tid):
            assert all(rc == 0 for rc, _ in kube.calls(c)), kube.calls(c)
    finally:
        kube.remove_pod(pod)
