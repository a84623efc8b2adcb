"""Kubernetes pods with a real network: containerd's CRI plugin runs pod sandboxes on the
`pyruntime` handler (what a RuntimeClass with `handler: pyruntime` selects) and wires them
with Debian's CNI plugins (bridge + host-local IPAM, and containerd's own loopback).

Containment: containerd (hence every CNI plugin it execs) runs in a network namespace of
its own (engutil.Sandbox.private_net), so the bridge, the veths' host ends and anything
the bridge plugin would set (ip_forward, iptables; ipMasq is off and there is no portmap)
exist only there and go away with it. The pods' namespaces are bound under containerd's
state dir (netns_mounts_under_state_dir), the IPAM's reservations under the sandbox
(dataDir). The pod subnet is a /24 that no host address or route overlaps, and the test
checks that the host's addresses never change.

Where systemd is PID 1 on cgroup v2 (the qemu guest: tools/engines/cri-v2-systemd.sh, the
two-pod test; V2_SYSTEMD=1 V2_TESTS=tests/engines/test_cri_cni.py
tools/cgroup-v2-vm/run-v2-tests.sh, the one-pod smoke) the handler uses the systemd cgroup
driver (SystemdCgroup = true, pods under a slice of their own), containerd the native
snapshotter (the guest's root is an overlay, which overlayfs cannot stack on), and the
guest loads the bridge and veth modules that tools/cgroup-v2-vm/net-modules.sh unpacks.
"""
import ipaddress
import json
import os
import subprocess

import pytest

import engutil
import util

grpc = pytest.importorskip("grpc", reason="grpcio is not installed (tools/engines/install.sh)")
cri = pytest.importorskip("cri_api.v1.api_pb2",
                          reason="container-runtime-interface-api is not installed "
                                 "(tools/engines/install.sh)")
import test_cri  # noqa: E402  (the CRI client and containerd config of the host-network test)

CNI_BIN = "/usr/lib/cni"
CNI_PLUGINS = ("bridge", "host-local", "loopback")
BRIDGE = "pyrtcni0"
NETWORK = "pyrt-pods"
# libcni caches each attachment's result here; containerd 1.6 offers no setting for it.
CNI_CACHE = "/var/lib/cni"

pytestmark = pytest.mark.skipif(
    engutil.have("containerd", "ctr", "containerd-shim-runc-v2", "ip", "nsenter") is not None
    or not all(os.access(os.path.join(CNI_BIN, p), os.X_OK) for p in CNI_PLUGINS),
    reason="containerd or the CNI plugins are not installed (tools/engines/install.sh)")

sandbox = engutil.make_sandbox_fixture("cni")

SYSTEMD = os.path.isdir("/run/systemd/system") and util.cgroup2_unified()
# The emulated guest runs every runtime command ~30x slower.
SLOW = 10 if SYSTEMD else 1
# There the two-pod test takes ~4 min and replaces the one-pod smoke only when asked for
# (its stage, tools/engines/cri-v2-systemd.sh, asks); a quick check runs the smoke.
FULL = os.environ.get("PYRT_CRI_CNI_FULL") == "1"
GUEST_MODULES = os.path.join(engutil.REPO, "tools", "cgroup-v2-vm", "kernel", "lib", "modules",
                             os.uname().release, "kernel")
NET_MODULES = ("net/llc/llc", "net/802/stp", "net/bridge/bridge", "drivers/net/veth")


def load_guest_modules():
    """The guest's kernel has bridge and veth as modules, not in its initramfs: load them
    from tools/cgroup-v2-vm/kernel (only that kernel's own tree: never on another host)."""
    if not os.path.isdir(GUEST_MODULES):
        return
    for m in NET_MODULES:
        if not os.path.exists("/sys/module/" + os.path.basename(m)):
            ko = os.path.join(GUEST_MODULES, m + ".ko")
            if not os.path.exists(ko):
                pytest.skip("%s is missing: run tools/cgroup-v2-vm/net-modules.sh" % ko)
            engutil.run(["busybox", "insmod", ko], check=True)

# Private ranges to pick the pod subnet from (the first that nothing on the host overlaps).
CANDIDATES = ("10.213.47.0/24", "10.231.74.0/24", "172.29.213.0/24", "192.168.213.0/24")


def host_networks():
    """Every IPv4 network the host's addresses and routes cover."""
    nets = []
    for argv in (["ip", "-4", "-j", "addr"], ["ip", "-4", "-j", "route", "show", "table",
                                              "all"]):
        for e in json.loads(engutil.run(argv, check=True).stdout or "[]"):
            for a in e.get("addr_info", []):
                nets.append(ipaddress.ip_network("%s/%s" % (a["local"], a["prefixlen"]),
                                                 strict=False))
            dst = e.get("dst")
            if dst and dst != "default":
                try:
                    nets.append(ipaddress.ip_network(dst, strict=False))
                except ValueError:
                    pass
    return nets


def pick_subnet():
    used = host_networks()
    for c in CANDIDATES:
        net = ipaddress.ip_network(c)
        if not any(net.overlaps(u) for u in used):
            return net
    pytest.skip("every candidate pod subnet overlaps a host network")


def conflist(subnet, ipam):
    """The pods' network: a bridge with no address of its own (isGateway off), no
    masquerading, the IPAM's reservations under ipam."""
    return {"cniVersion": "1.0.0", "name": NETWORK,
            "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": False,
                         "ipMasq": False, "hairpinMode": False,
                         "ipam": {"type": "host-local", "dataDir": ipam,
                                  "ranges": [[{"subnet": str(subnet)}]]}}]}


def host_addrs():
    return sorted(engutil.run(["ip", "-o", "addr"], check=True).stdout.split("\n"))


# WRAPPER, plus the runtime's own words on a failure: the tail of the --log file the shim
# passes (the shim keeps it in the task's bundle, gone by the time a test looks).
WRAPPER = engutil.WRAPPER.replace("exit $rc\n", """\
if [ $rc != 0 ]; then
  prev=
  for a in "$@"; do
    [ "$prev" = --log ] && {{ echo "$rc $*"; tail -n 3 "$a"; }} >> {log}.errors
    prev=$a
  done
fi
exit $rc
""")
assert WRAPPER != engutil.WRAPPER


class CniCri(test_cri.Cri):
    """Test_cri's client with pods in their own network namespace (NamespaceMode POD)."""

    slice = None
    wrapper = WRAPPER

    def errors(self):
        """What the runtime said in the calls that failed."""
        return engutil._read(self.calls_log + ".errors") or ""

    def assert_calls_ok(self, cid, first="create"):
        calls = self.calls(cid)
        assert calls and calls[0][1][0] == first, calls
        assert all(rc == 0 for rc, _ in calls), "%s\n%s" % (
            "\n".join("%d %s" % (rc, " ".join(a)) for rc, a in calls), self.errors())

    def pod_config(self, name):
        # The systemd driver wants a slice as the parent (the kubelet's kubepods-*.slice).
        parent = self.slice if SYSTEMD else "/%s/%s" % (self.sb.tag, name)
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, uid=os.urandom(8).hex(),
                                            namespace="pyrt"),
            hostname=name, log_directory=self.sb.mkdir("logs", name),
            linux=cri.LinuxPodSandboxConfig(cgroup_parent=parent))

    def calls(self, cid):
        # The shim puts --systemd-cgroup after the flags wrapper_calls strips.
        return [(rc, a[1:] if a[:1] == ["--systemd-cgroup"] else a)
                for rc, a in super().calls(cid)]

    def create(self, pod, cfg, name, command, **kw):
        c = cri.ContainerConfig(metadata=cri.ContainerMetadata(name=name),
                                image=cri.ImageSpec(image=self.image), command=command,
                                log_path=name + ".log", **kw)
        return self.rt.CreateContainer(cri.CreateContainerRequest(
            pod_sandbox_id=pod, config=c, sandbox_config=cfg)).container_id

    def start(self, pod, cfg, name, command):
        cid = self.create(pod, cfg, name, command)
        self.rt.StartContainer(cri.StartContainerRequest(container_id=cid))
        return cid

    def exec(self, cid, cmd, timeout=20 * SLOW):
        return self.rt.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout))

    def pod_status(self, pod):
        return self.rt.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=pod,
                                                                    verbose=True))

    def node(self, *argv):
        """Run argv in containerd's (the node's) network namespace."""
        return engutil.run(["nsenter", "--net=" + self.sb.netns, "--"] + list(argv),
                           check=True).stdout


@pytest.fixture(scope="module")
def kube(sandbox, images):
    subnet = pick_subnet()
    load_guest_modules()
    before = host_addrs()
    cache_existed = os.path.exists(CNI_CACHE)
    sandbox.private_net()
    ipam = sandbox.mkdir("cni", "ipam")
    # Test_cri's config points containerd at <sandbox>/cni/{bin,conf}: the plugins are
    # linked in from Debian's package, the network list written before containerd starts.
    for p in CNI_PLUGINS:
        os.symlink(os.path.join(CNI_BIN, p), os.path.join(sandbox.mkdir("cni", "bin"), p))
    sandbox.write("cni/conf/10-pyrt.conflist", json.dumps(conflist(subnet, ipam), indent=1))
    config = test_cri.CONFIG.replace(
        '[plugins."io.containerd.grpc.v1.cri"]\n',
        '[plugins."io.containerd.grpc.v1.cri"]\n  netns_mounts_under_state_dir = true\n', 1)
    assert config != test_cri.CONFIG
    if SYSTEMD:
        config = config.replace("SystemdCgroup = false", "SystemdCgroup = true")
        config = config.replace('snapshotter = "overlayfs"', 'snapshotter = "native"')
        # No dash: a dash in a slice's name nests it in the slice named by its prefix.
        CniCri.slice = "pyrtcni%s.slice" % os.urandom(4).hex()
        sandbox.cgroup_names.append(CniCri.slice)
    # No IPv6 in the node's namespace: the bridge and the veths' host ends get no
    # link-local addresses either.
    for k in ("all", "default"):
        subprocess.run(["nsenter", "--net=" + sandbox.netns, "--", "sysctl", "-q", "-w",
                        "net.ipv6.conf.%s.disable_ipv6=1" % k], check=True)
    c = CniCri(sandbox, images, config)
    c.subnet, c.ipam, c.host_before = subnet, ipam, before
    try:
        engutil.wait_for(lambda: all(x.status for x in c.rt.Status(
            cri.StatusRequest()).status.conditions), timeout=30 * SLOW,
            what="CRI NetworkReady")
        yield c
    finally:
        for p in c.rt.ListPodSandbox(cri.ListPodSandboxRequest()).items:
            c.remove_pod(p.id)
        c.channel.close()
        subprocess.run(["nsenter", "--net=" + sandbox.netns, "--", "ip", "link", "del",
                        BRIDGE], stderr=subprocess.DEVNULL)
        if SYSTEMD:
            subprocess.run(["systemctl", "stop", CniCri.slice], timeout=60 * SLOW)
    assert host_addrs() == before, "the host's addresses changed"
    left = cached(sandbox)
    if not cache_existed:
        # Only the empty dirs libcni made for us: rmdir fails on anything else.
        for dirpath, _, _ in sorted(os.walk(CNI_CACHE), reverse=True):
            os.rmdir(dirpath)
    assert not left, "CNI results cached for removed pods: %s" % left


def cached(sb):
    """The CNI result cache entries of our network (<network>-<container id>-<ifname>)."""
    d = os.path.join(CNI_CACHE, "results")
    return sorted(f for f in (os.listdir(d) if os.path.isdir(d) else [])
                  if f.startswith(NETWORK + "-"))


def assert_no_iptables_rules(kube):
    r = engutil.run(["nsenter", "--net=" + kube.sb.netns, "--", "iptables", "-S"])
    if r.returncode and "Failed to initialize nft" in r.stderr:
        return   # a kernel without nf_tables loaded (the guest): nothing can have rules
    assert r.stdout.splitlines() == ["-P INPUT ACCEPT", "-P FORWARD ACCEPT",
                                     "-P OUTPUT ACCEPT"], r


@pytest.mark.skipif(SYSTEMD and FULL, reason="test_pods_on_a_cni_bridge covers it")
def test_pod_smoke(kube):
    """One pod, one container: its IP, the driver's cgroup, ExecSync over the pod's eth0,
    stats, logs, stop and removal (the guest's quick check: ~1 min there)."""
    pod, cfg = kube.run_pod("smoke")
    smoke_pod = pod
    try:
        st = kube.pod_status(pod).status
        assert st.state == cri.SANDBOX_READY and st.runtime_handler == "pyruntime"
        ip = st.network.ip
        assert ipaddress.ip_address(ip) in kube.subnet, st.network
        cid = kube.start(pod, cfg, "web", [
            "sh", "-c", "mkdir /tmp/www && hostname > /tmp/www/index.html && echo web-up "
            "&& exec httpd -f -p 8081 -h /tmp/www"])
        pid = json.loads(kube.rt.ContainerStatus(cri.ContainerStatusRequest(
            container_id=cid, verbose=True)).info["info"])["pid"]
        cgroups = open("/proc/%d/cgroup" % pid).read().splitlines()
        if SYSTEMD:
            unit = "cri-containerd-%s.scope" % cid
            assert cgroups == ["0::/%s/%s" % (kube.slice, unit)], cgroups
        else:
            assert any(l.endswith(":memory:/%s/smoke/%s" % (kube.sb.tag, cid))
                       for l in cgroups), cgroups
        r = kube.exec(cid, ["sh", "-c", "ip -o -4 addr show dev eth0; "
                            "wget -q -O - http://%s:8081/" % ip])
        assert r.exit_code == 0, r
        out = r.stdout.decode()
        assert (" %s/%d " % (ip, kube.subnet.prefixlen)) in out and out.endswith("\nsmoke\n"), r
        s = kube.rt.ContainerStats(cri.ContainerStatsRequest(container_id=cid)).stats
        assert s.attributes.id == cid and s.memory.working_set_bytes.value > 0, s
        log = os.path.join(cfg.log_directory, "web.log")
        assert [l.split(" ", 1)[1] for l in open(log).read().splitlines()] == \
            ["stdout F web-up"]
        assert_no_iptables_rules(kube)
        kube.rt.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=10 * SLOW))
        st = kube.status(cid)
        assert st.state == cri.CONTAINER_EXITED and st.exit_code == 143, st
        kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
        kube.remove_pod(pod)
        pod = None
        assert not [f for f in os.listdir(os.path.join(kube.ipam, NETWORK)) if f[0].isdigit()]
        if SYSTEMD:
            assert engutil.run(["systemctl", "is-active", unit]).stdout.strip() != "active"
        # The pod's sandbox (pause) container too: created, killed and deleted on the handler.
        for c in (cid, smoke_pod):
            kube.assert_calls_ok(c)
    finally:
        if pod is not None:
            kube.remove_pod(pod)


@pytest.mark.skipif(SYSTEMD and not FULL,
                    reason="~4 min in the emulated guest: PYRT_CRI_CNI_FULL=1 runs it "
                           "(tools/engines/cri-v2-systemd.sh)")
def test_pods_on_a_cni_bridge(kube):
    assert kube.rt.Status(cri.StatusRequest()).status.conditions
    a, acfg = kube.run_pod("pod-a")
    b = None
    try:
        st = kube.pod_status(a)
        assert st.status.state == cri.SANDBOX_READY
        assert st.status.runtime_handler == "pyruntime"
        assert kube.calls(a)[0][1][0] == "create", "the pause container is not on the handler"
        ip_a = st.status.network.ip
        assert ipaddress.ip_address(ip_a) in kube.subnet, st.status.network
        netns = json.loads(st.info["info"])["runtimeSpec"]["linux"]["namespaces"]
        netns = [n["path"] for n in netns if n["type"] == "network"][0]
        assert netns.startswith(kube.sb.dir + "/"), netns

        # Two containers of one pod talk over its loopback: the server listens on 127.0.0.1
        # only, the client is another container (another mount/pid view, same network).
        web = kube.start(a, acfg, "web", [
            "sh", "-c", "mkdir /tmp/www && hostname > /tmp/www/index.html && "
            "echo web-up && echo web-err >&2 && { "
            "httpd -f -p 127.0.0.1:8080 -h /tmp/www & "
            "httpd -f -p 8081 -h /tmp/www & wait; }"])
        side = kube.start(a, acfg, "side", [
            "sh", "-c", "until wget -q -O - http://127.0.0.1:8080/; do sleep 0.1; done; "
            "exec sleep 100000"])
        # The cgroup the driver placed it in: a transient scope under the pod's slice, or
        # the cgroupfs path <parent>/<id>.
        pid = json.loads(kube.rt.ContainerStatus(cri.ContainerStatusRequest(
            container_id=web, verbose=True)).info["info"])["pid"]
        cgroups = open("/proc/%d/cgroup" % pid).read().splitlines()
        if SYSTEMD:
            unit = "cri-containerd-%s.scope" % web
            assert cgroups == ["0::/%s/%s" % (kube.slice, unit)], cgroups
            assert engutil.run(["systemctl", "is-active", unit]).stdout.strip() == "active"
        else:
            mem = [l for l in cgroups if l.split(":")[1] == "memory"]
            assert mem == [mem[0].split(":")[0] + ":memory:/%s/pod-a/%s" % (kube.sb.tag, web)]

        log = os.path.join(acfg.log_directory, "side.log")
        engutil.wait_for(lambda: "pod-a" in (engutil._read(log) or ""), timeout=30 * SLOW,
                         what="the side container's fetch over the pod's localhost")
        line = [l for l in open(log).read().splitlines() if "pod-a" in l][0]
        assert line.split(" ", 1)[1] == "stdout F pod-a", line
        weblog = open(os.path.join(acfg.log_directory, "web.log")).read().splitlines()
        assert [l.split(" ", 1)[1] for l in weblog] in (
            ["stdout F web-up", "stderr F web-err"], ["stderr F web-err", "stdout F web-up"]), \
            weblog

        # The pod's interface is the CNI's: eth0 holds the address the CRI reports.
        r = kube.exec(side, ["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        assert r.exit_code == 0 and (" %s/%d " % (ip_a, kube.subnet.prefixlen)) in \
            r.stdout.decode(), r

        # A second pod reaches the first by its pod IP over the bridge; its own loopback
        # is not the first pod's.
        b, bcfg = kube.run_pod("pod-b")
        ip_b = kube.pod_status(b).status.network.ip
        assert ipaddress.ip_address(ip_b) in kube.subnet and ip_b != ip_a
        cli = kube.start(b, bcfg, "client", ["sleep", "100000"])
        r = kube.exec(cli, ["wget", "-q", "-O", "-", "http://%s:8081/" % ip_a])
        assert (r.exit_code, r.stdout) == (0, b"pod-a\n"), r
        r = kube.exec(cli, ["wget", "-q", "-T", "3", "-O", "-", "http://127.0.0.1:8080/"])
        assert r.exit_code != 0 and r.stdout == b"", r
        r = kube.exec(cli, ["sh", "-c", "hostname; echo oops >&2; exit 4"])
        assert (r.exit_code, r.stdout, r.stderr) == (4, b"pod-b\n", b"oops\n"), r

        # Only the test bridge and loopback hold addresses, in the node's namespace; the
        # host's did not change.
        node = kube.node("ip", "-o", "addr").splitlines()
        assert {l.split()[1] for l in node} <= {"lo", BRIDGE}, node
        assert host_addrs() == kube.host_before
        assert_no_iptables_rules(kube)

        stats = kube.rt.ListContainerStats(cri.ListContainerStatsRequest(
            filter=cri.ContainerStatsFilter(pod_sandbox_id=a))).stats
        assert sorted(s.attributes.id for s in stats) == sorted([web, side])
        for s in stats:
            assert s.memory.working_set_bytes.value > 0, s
            assert s.cpu.usage_core_nano_seconds.value > 0, s

        reserved = lambda: sorted(f for f in os.listdir(os.path.join(kube.ipam, NETWORK))
                                  if f[0].isdigit())
        assert reserved() == sorted([ip_a, ip_b])
        veths = lambda: [l for l in kube.node("ip", "-o", "link").splitlines()
                         if "master " + BRIDGE in l]
        assert len(veths()) == 2
        assert len(cached(kube.sb)) == 2

        # Stop and removal: the containers first (TERM: not pid 1 in the pod's pid
        # namespace), then the sandbox, which gives back the IP, the veth and the netns.
        kube.rt.StopContainer(cri.StopContainerRequest(container_id=side, timeout=5))
        st = kube.status(side)
        assert st.state == cri.CONTAINER_EXITED and st.exit_code == 143, st
        kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=side))
        kube.remove_pod(a)
        assert reserved() == [ip_b]
        assert len(veths()) == 1
        assert not os.path.exists(netns)
        assert not kube.rt.ListContainers(cri.ListContainersRequest(
            filter=cri.ContainerFilter(pod_sandbox_id=a))).containers
        kube.remove_pod(b)
        b = None
        assert reserved() == [] and veths() == [] and cached(kube.sb) == []
        if SYSTEMD:
            assert engutil.run(["systemctl", "is-active", unit]).stdout.strip() != "active"
        for cid in (a, web, side, cli):
            kube.assert_calls_ok(cid)
    finally:
        for p in (a, b):
            if p is not None:
                try:
                    kube.remove_pod(p)
                except grpc.RpcError:
                    pass
