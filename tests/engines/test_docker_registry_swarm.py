"""Docker with a private registry and a single-node swarm, containers on pyruntime.

The dockerd of test_docker.py (same flags: pyruntime added and the default runtime, no
iptables/bridge, cgroupfs), but started in a network namespace of the sandbox's own
(Sandbox.private_net): `docker swarm init` makes a docker_gwbridge bridge with an address
and an ingress sandbox with vxlan/IPVS, which must not land in the host's namespace. The
registry (Debian's docker-registry, the distribution v2 server) runs in the same namespace
with its own config and storage under the temp dir, on 127.0.0.1 (insecure by default for
dockerd: 127.0.0.0/8), so nothing listens on the host's ports and the ports are free by
construction.
"""
import json
import os
import subprocess
import threading

import pytest

import engutil
from test_docker import Docker

pytestmark = pytest.mark.skipif(
    engutil.have("dockerd", "docker", "containerd", "docker-registry", "unshare", "nsenter",
                 "ip") is not None,
    reason="docker.io/docker-registry is not installed (tools/engines/install.sh)")

REGISTRY_PORT = 5000        # in the sandbox's network namespace: nothing else listens there
SWARM_PORT = 2377
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""

sandbox = engutil.make_sandbox_fixture("dkrs")


@pytest.fixture(scope="module")
def docker(sandbox, images):
    sandbox.private_net()
    d = Docker(sandbox, images)
    yield d
    d("swarm", "leave", "--force")
    ids = d("ps", "-a", "-q").stdout.split()
    if ids:
        d("rm", "-f", *ids)


@pytest.fixture(scope="module")
def registry(sandbox, docker):
    """The registry's address, with the busybox import pushed as <addr>/pyrt/busybox:1."""
    storage = sandbox.mkdir("registry")
    conf = sandbox.write("registry.yml", REGISTRY_CONFIG.format(storage=storage,
                                                                port=REGISTRY_PORT))
    addr = "127.0.0.1:%d" % REGISTRY_PORT
    p = sandbox.start("registry", ["docker-registry", "serve", conf])

    def listening():
        if p.poll() is not None:
            raise RuntimeError("docker-registry exited with %s:\n%s"
                               % (p.returncode, sandbox.log("registry")[-3000:]))
        return "listening on " + addr in sandbox.log("registry")
    engutil.wait_for(listening, timeout=30, what="docker-registry on " + addr)
    ref = addr + "/pyrt/busybox:1"
    docker.ok("tag", docker.image, ref)
    docker.ok("push", ref, timeout=120)
    return addr


def test_push_pull_run(docker, registry, sandbox):
    ref = registry + "/pyrt/busybox:1"
    info = json.loads(docker.ok("info", "--format", "{{json .RegistryConfig}}").stdout)
    assert "127.0.0.0/8" in info["InsecureRegistryCIDRs"], info
    image_id = docker.ok("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
    repo = os.path.join(sandbox.path("registry"), "docker", "registry", "v2", "repositories",
                        "pyrt", "busybox", "_manifests", "tags", "1")
    assert os.path.isdir(repo), "the push did not reach the registry's storage"
    # Remove every local image sharing its layers, so the pull downloads them again.
    docker.ok("rmi", ref, docker.image, docker.layered)
    assert docker.ok("images", "-q").stdout.strip() == ""
    docker.ok("pull", ref, timeout=120)
    assert docker.ok("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() == image_id

    # The container blocks on stdin until its state in pyruntime's root has been looked at.
    p = subprocess.Popen(["docker", "run", "--rm", "-i", "--network", "none", "--runtime",
                          "pyruntime", ref, "sh", "-c", "echo pulled-ok; read x; exit 7"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, **docker.env))
    watchdog = threading.Timer(60, p.kill)     # readline() must not hang the suite
    watchdog.start()
    try:
        assert p.stdout.readline() == "pulled-ok\n", p.stderr.read()
        # The output can come before dockerd has recorded the start (-a, then wait).
        cids = docker.ok("ps", "-a", "-q", "--no-trunc", "--filter",
                         "ancestor=" + ref).stdout.split()
        assert len(cids) == 1
        state = engutil.wait_for(lambda: (lambda s: s["Running"] and s)(
            docker.inspect(cids[0])["State"]), timeout=30, what="dockerd to see it running")
        st = docker.pyrt_state(cids[0])
        assert st and st["status"] == "running" and st["pid"] == state["Pid"], st
        out, err = p.communicate("go\n", timeout=60)
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert (p.returncode, out, err) == (7, "", "")
    assert docker.pyrt_state(cids[0]) is None      # --rm deleted it from pyruntime too


def test_swarm_service_runs_on_default_runtime(docker, registry):
    ref = registry + "/pyrt/busybox:1"
    r = docker("swarm", "init", "--advertise-addr", "127.0.0.1",
               "--listen-addr", "127.0.0.1:%d" % SWARM_PORT, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        # Host networking = the dockerd's private namespace (without --network the task
        # also runs, on a "bridge" network that --bridge=none leaves without a device).
        docker.ok("service", "create", "--detach", "--name", "pyrt-svc",
                  "--restart-condition", "none", "--network", "host", ref,
                  "sh", "-c", "trap 'exit 0' TERM; echo svc-ok; sleep 60 & wait",
                  timeout=60)

        def running():
            r = docker.ok("service", "ps", "--no-trunc", "--format", "{{json .}}", "pyrt-svc")
            tasks = [json.loads(l) for l in r.stdout.splitlines()]
            assert not any(t["Error"] for t in tasks), tasks
            return [t for t in tasks if t["CurrentState"].startswith("Running")]
        task = engutil.wait_for(running, timeout=60, what="pyrt-svc's task running")[0]
        cid = json.loads(docker.ok("inspect", "--type", "task", task["ID"]).stdout)[0][
            "Status"]["ContainerStatus"]["ContainerID"]
        info = docker.inspect(cid)
        assert info["HostConfig"]["Runtime"] == "pyruntime"
        st = docker.pyrt_state(cid)
        assert st and st["status"] == "running" and st["pid"] == info["State"]["Pid"], st
        root = os.path.join(docker.exec_root, "runtime-runc", "moby")   # as Docker.pyrt_state
        listed = engutil.run([engutil.PYRUNTIME, "--root", root, "list", "-q"], check=True)
        assert cid in listed.stdout.split()
        engutil.wait_for(lambda: "svc-ok" in docker.ok("service", "logs", "--raw",
                                                       "pyrt-svc").stdout,
                         timeout=30, what="svc-ok in the service's logs")
        docker.ok("service", "rm", "pyrt-svc")
        engutil.wait_for(lambda: docker.pyrt_state(cid) is None, timeout=60,
                         what="the task's container deleted from pyruntime")
    finally:
        docker("service", "rm", "pyrt-svc")
        docker.ok("swarm", "leave", "--force", timeout=60)
    assert docker.ok("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == \
        "inactive"
