"""config.json loading: schema, semantic checks, normalisation, the validation cache."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyruntime import config
from pyruntime.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "spec-fixtures" / "configs"
UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "oci-runtime-spec-v1.3.0"

BASE = {
    "ociVersion": "1.3.0",
    "root": {"path": "rootfs"},
    "process": {"cwd": "/", "args": ["sh"]},
    "linux": {"namespaces": [{"type": "mount"}]},
}


def make_bundle(tmp_path, spec, raw=None):
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(raw if raw is not None else json.dumps(spec))
    return bundle


def load_err(tmp_path, spec, **kw):
    bundle = make_bundle(tmp_path, spec)
    with pytest.raises(ConfigError) as ei:
        config.load(bundle, **kw)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def with_(path, value, base=BASE):
    """Copy of base with value set at a dotted path ('linux.seccomp')."""
    spec = copy.deepcopy(base)
    node = spec
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return spec


def upstream_validator():
    if not (UPSTREAM / "config-schema.json").exists():
        pytest.skip(f"upstream OCI schemas not found at {UPSTREAM}")
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = [(p.as_uri(), Resource.from_contents(json.loads(p.read_text()),
                                                     default_specification=DRAFT4))
                 for p in UPSTREAM.glob("*.json")]
    registry = Registry().with_resources(resources)
    root = (UPSTREAM / "config-schema.json").as_uri()
    return jsonschema.Draft4Validator({"$ref": root}, registry=registry)


# ------------------------------------------------------------------ reading

def test_missing_config_uses_runc_wording(tmp_path):
    with pytest.raises(ConfigError, match=r"^JSON specification file config.json not found$"):
        config.load(tmp_path)


def test_config_is_a_directory(tmp_path):
    (tmp_path / "config.json").mkdir()
    with pytest.raises(ConfigError, match="config.json: is a directory"):
        config.load(tmp_path)


@pytest.mark.parametrize("raw, where", [
    ("{]", "line 1, column 2"),
    ('{\n  "ociVersion": "1.3.0",\n  "root": {"path": "rootfs"},\n}', "line 4, column 1"),
    ("", "line 1, column 1"),
])
def test_bad_json_reports_position(tmp_path, raw, where):
    bundle = make_bundle(tmp_path, None, raw=raw)
    with pytest.raises(ConfigError) as ei:
        config.load(bundle)
    assert str(ei.value).startswith("config.json: invalid JSON at " + where)


def test_non_utf8_is_rejected(tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.json").write_bytes(b'{"ociVersion": "\xff"}')
    with pytest.raises(ConfigError, match="invalid JSON"):
        config.load(bundle)


# ------------------------------------------------------------------ schema rejections

REJECT = [
    # (dotted path, value, expected fragment)
    ("ociVersion", "2.0.0", "ociVersion: '2.0.0' is not a 1.x SemVer version"),
    ("ociVersion", "0.5.0-dev", "is not a 1.x SemVer version"),
    ("ociVersion", "1.0", "ociVersion: '1.0' is not a 1.x SemVer version"),
    ("ociVersion", "1.01.0", "is not a 1.x SemVer version"),
    ("ociVersion", 1, "ociVersion: 1 is not of type 'string'"),
    ("linux.namespaces", [{"type": "foo"}],
     "config.json: linux.namespaces[0].type: 'foo' is not one of ['mount', 'pid'"),
    ("linux.namespaces", [{"path": "/proc/1/ns/net"}],
     "linux.namespaces[0]: 'type' is a required property"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_FOO"},
     "linux.seccomp.defaultAction: 'SCMP_ACT_FOO' is not one of"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_FOO"}]},
     "linux.seccomp.syscalls[0].action: 'SCMP_ACT_FOO' is not one of"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]},
     "linux.seccomp.syscalls[0].args[0].op: 'SCMP_CMP_FOO' is not one of"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0]: 'value' is a required property"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]},
     "linux.seccomp.syscalls[0].names: [] should be non-empty"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FOO"]},
     "linux.seccomp.flags[0]: 'SECCOMP_FILTER_FLAG_FOO' is not one of"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_FOO"]},
     "linux.seccomp.architectures[0]: 'SCMP_ARCH_FOO' is not one of"),
    ("linux.seccomp", {"syscalls": []}, "linux.seccomp: 'defaultAction' is a required property"),
    ("process.rlimits", [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}],
     "process.rlimits[0].type: 'RLIMIT_FOO' is not one of"),
    ("process.rlimits", [{"type": "NOFILE", "soft": 1, "hard": 1}],
     "process.rlimits[0].type: 'NOFILE' is not one of"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": -1, "hard": 1}],
     "process.rlimits[0].soft: -1 is less than the minimum of 0"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1}],
     "process.rlimits[0]: 'hard' is a required property"),
    ("process.capabilities", {"bounding": ["CAP_CHOWN", "CAP_FOO"]},
     "process.capabilities.bounding[1]: 'CAP_FOO' is not one of ['CAP_CHOWN'"),
    ("process.capabilities", {"ambient": ["chown"]},
     "process.capabilities.ambient[0]: 'chown' is not one of"),
    ("linux.rootfsPropagation", "bogus", "linux.rootfsPropagation: 'bogus' is not one of"),
    ("linux.rootfsPropagation", "", "linux.rootfsPropagation: '' is not one of"),
    ("linux.devices", [{"type": "x", "path": "/dev/x"}], "linux.devices[0].type: 'x' is not one of"),
    ("linux.devices", [{"type": "c"}], "linux.devices[0]: 'path' is a required property"),
    ("linux.resources", {"devices": [{"allow": True, "type": "z"}]},
     "linux.resources.devices[0].type: 'z' is not one of ['a', 'b', 'c']"),
    ("linux.resources", {"devices": [{"allow": True, "access": "rwx"}]},
     "linux.resources.devices[0].access: 'rwx' does not match"),
    ("linux.resources", {"devices": [{"access": "rwm"}]},
     "linux.resources.devices[0]: 'allow' is a required property"),
    ("linux.resources", {"hugepageLimits": [{"pageSize": "2mb", "limit": 1}]},
     "linux.resources.hugepageLimits[0].pageSize: '2mb' does not match"),
    ("linux.resources", {"pids": {}}, "linux.resources.pids: 'limit' is a required property"),
    ("linux.resources", {"memory": {"limit": "1G"}},
     "linux.resources.memory.limit: '1G' is not of type 'integer'"),
    ("linux.resources", {"memory": {"checkBeforeUpdate": 1}},
     "linux.resources.memory.checkBeforeUpdate: 1 is not of type 'boolean'"),
    ("linux.resources", {"cpu": {"burst": -1}}, "linux.resources.cpu.burst: -1 is less than"),
    ("linux.resources", {"cpu": {"idle": "1"}}, "linux.resources.cpu.idle: '1' is not of type"),
    ("linux.resources", {"blockIO": {"weight": 70000}}, "linux.resources.blockIO.weight: 70000 is"),
    ("linux.resources", {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0]: 'minor' is a required property"),
    ("linux.resources", {"network": {"priorities": [{"name": "eth0"}]}},
     "linux.resources.network.priorities[0]: 'priority' is a required property"),
    ("linux.resources", {"rdma": {"mlx5_1": {"hcaHandles": -1}}},
     "linux.resources.rdma.mlx5_1.hcaHandles: -1 is less than the minimum of 0"),
    ("linux.resources", {"unified": {"memory.max": 5}},
     'linux.resources.unified["memory.max"]: 5 is not of type \'string\''),
    ("linux.sysctl", {"net.ipv4.ip_forward": 1},
     'linux.sysctl["net.ipv4.ip_forward"]: 1 is not of type \'string\''),
    ("linux.uidMappings", [{"containerID": 0, "hostID": -1, "size": 1}],
     "linux.uidMappings[0].hostID: -1 is less than the minimum of 0"),
    ("linux.gidMappings", [{"containerID": 0, "hostID": 0}],
     "linux.gidMappings[0]: 'size' is a required property"),
    ("linux.timeOffsets", {"boottime": {"secs": "1"}},
     "linux.timeOffsets.boottime.secs: '1' is not of type 'integer'"),
    ("linux.intelRdt", {"memBwSchema": "L3:0=ff"}, "linux.intelRdt.memBwSchema: 'L3:0=ff' does not"),
    ("linux.personality", {"domain": "LINUX64"},
     "linux.personality.domain: 'LINUX64' is not one of ['LINUX', 'LINUX32']"),
    ("linux.memoryPolicy", {"mode": "MPOL_FOO"}, "linux.memoryPolicy.mode: 'MPOL_FOO' is not one of"),
    ("linux.memoryPolicy", {"mode": "MPOL_BIND", "flags": ["MPOL_F_FOO"]},
     "linux.memoryPolicy.flags[0]: 'MPOL_F_FOO' is not one of"),
    ("linux.netDevices", {"eth0": {"name": 23}}, "linux.netDevices.eth0.name: 23 is not of type"),
    ("linux.maskedPaths", "/proc/kcore", "linux.maskedPaths: '/proc/kcore' is not of type 'array'"),
    ("linux.cgroupsPath", 5, "linux.cgroupsPath: 5 is not of type 'string'"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_FOO"},
     "process.ioPriority.class: 'IOPRIO_CLASS_FOO' is not one of"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8},
     "process.ioPriority.priority: 8 is greater than the maximum of 7"),
    ("process.scheduler", {"policy": "SCHED_FOO"}, "process.scheduler.policy: 'SCHED_FOO' is not one"),
    ("process.scheduler", {"nice": 1}, "process.scheduler: 'policy' is a required property"),
    ("process.scheduler", {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_FOO"]},
     "process.scheduler.flags[0]: 'SCHED_FLAG_FOO' is not one of"),
    ("process.execCPUAffinity", {"initial": "a-b"}, "process.execCPUAffinity.initial: 'a-b' does not"),
    ("process.user", {"uid": -1, "gid": 0}, "process.user.uid: -1 is less than the minimum of 0"),
    ("process.user", {"uid": 0, "gid": 4294967296}, "process.user.gid: 4294967296 is greater than"),
    ("process.consoleSize", {"height": 25}, "process.consoleSize: 'width' is a required property"),
    ("process.terminal", "yes", "process.terminal: 'yes' is not of type 'boolean'"),
    ("process.env", ["A=1", 2], "process.env[1]: 2 is not of type 'string'"),
    ("process", {"args": ["sh"]}, "process: 'cwd' is a required property"),
    ("root", {"readonly": True}, "root: 'path' is a required property"),
    ("mounts", [{"type": "tmpfs", "source": "tmpfs"}], "mounts[0]: 'destination' is a required"),
    ("mounts", [{"destination": "/x", "options": "ro"}], "mounts[0].options: 'ro' is not of type"),
    ("hooks", {"prestart": [{"args": ["x"]}]}, "hooks.prestart[0]: 'path' is a required property"),
    ("hooks", {"poststop": [{"path": "/bin/true", "timeout": 0}]},
     "hooks.poststop[0].timeout: 0 is less than the minimum of 1"),
    ("annotations", {"a": 1}, "annotations.a: 1 is not of type 'string'"),
    ("hostname", 5, "hostname: 5 is not of type 'string'"),
]


@pytest.mark.parametrize("path, value, fragment", REJECT, ids=[f"{r[0]}={r[1]!r}"[:60] for r in REJECT])
def test_schema_rejects(tmp_path, path, value, fragment):
    msg = load_err(tmp_path, with_(path, value))
    assert fragment in msg
    assert msg.startswith("config.json: ")


def test_missing_oci_version(tmp_path):
    spec = copy.deepcopy(BASE)
    del spec["ociVersion"]
    assert load_err(tmp_path, spec) == "config.json: 'ociVersion' is a required property"


def test_top_level_not_an_object(tmp_path):
    assert load_err(tmp_path, []) == "config.json: [] is not of type 'object'"


def test_long_enum_list_is_abbreviated(tmp_path):
    msg = load_err(tmp_path, with_("process.capabilities", {"bounding": ["CAP_FOO"]}))
    assert "'CAP_CHECKPOINT_RESTORE'] (41 allowed values)" in msg
    assert len(msg) < 300


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.3.0", "1.10.0+build.5", "1.2.0-rc.1"])
def test_accepted_versions(tmp_path, version):
    config.load(make_bundle(tmp_path, with_("ociVersion", version)))


@pytest.mark.parametrize("action", [
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"])
def test_every_seccomp_action_is_known(tmp_path, action):
    sc = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
          "syscalls": [{"names": ["mkdir"], "action": action}]}
    config.load(make_bundle(tmp_path, with_("linux.seccomp", sc)))


@pytest.mark.parametrize("prop", ["private", "shared", "slave", "unbindable",
                                  "rprivate", "rshared", "rslave", "runbindable"])
def test_rootfs_propagation_values(tmp_path, prop):
    config.load(make_bundle(tmp_path, with_("linux.rootfsPropagation", prop)))


def test_unknown_properties_are_ignored_and_kept(tmp_path):
    spec = json.loads((FIXTURES / "unknown-properties.json").read_text())
    got = config.load(make_bundle(tmp_path, spec))
    assert got["x-vendor-top"] == {"anything": [1, 2, 3]}
    assert got["linux"]["resources"]["x-vendor-resources"] == 5
    assert got["linux"]["namespaces"][0]["x-vendor-ns"] == "ignored"


def test_non_linux_sections_are_not_checked(tmp_path):
    spec = with_("windows", "not an object")
    spec["freebsd"] = {"jail": {"vnet": "disable"}}
    config.load(make_bundle(tmp_path, spec))


def test_own_schema_is_a_valid_draft7_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(Path(config.SCHEMA_PATH).read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert "additionalProperties" not in json.dumps(schema["properties"]["process"])


# ------------------------------------------------------------------ semantic checks

SEMANTIC = [
    # (spec, exact message) -- runc's wording where runc has the check
    ({k: v for k, v in BASE.items() if k != "process"}, "process property must not be empty"),
    (with_("process", {"cwd": "", "args": ["sh"]}), "Cwd property must not be empty"),
    (with_("process", {"cwd": "tmp", "args": ["sh"]}), "Cwd must be an absolute path"),
    (with_("process", {"cwd": "/"}), "args must not be empty"),
    (with_("process", {"cwd": "/", "args": []}), "args must not be empty"),
    ({k: v for k, v in BASE.items() if k != "root"}, "root must be specified"),
    (with_("linux.namespaces", [{"type": "pid"}, {"type": "mount"}, {"type": "pid"}]),
     'malformed spec file: duplicated ns {"pid" ""}'),
    (with_("linux.namespaces", [{"type": "mount"}, {"type": "mount", "path": "/proc/1/ns/mnt"}]),
     'malformed spec file: duplicated ns {"mount" "/proc/1/ns/mnt"}'),
    (with_("linux.namespaces", [{"type": "mount"}, {"type": "network", "path": "proc/1/ns/net"}]),
     "namespace network: path 'proc/1/ns/net' is not an absolute path"),
    (with_("hostname", "box"), "unable to set hostname without a private UTS namespace"),
    (with_("domainname", "example.org"), "unable to set domainname without a private UTS namespace"),
    (with_("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "User namespace mappings specified, but USER namespace isn't enabled in the config"),
    (with_("linux.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "User namespace mappings specified, but USER namespace isn't enabled in the config"),
    (with_("linux.namespaces", [{"type": "mount"}, {"type": "user"}]),
     "User namespaces enabled, but no uid mappings found."),
    (with_("linux", {"namespaces": [{"type": "mount"}, {"type": "user"}],
                     "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}),
     "User namespaces enabled, but no gid mappings found."),
    (with_("linux", {"namespaces": [], "maskedPaths": ["/proc/kcore"]}),
     "unable to restrict sys entries without a private MNT namespace"),
    (with_("linux", {"readonlyPaths": ["/proc/sys"]}),
     "unable to restrict sys entries without a private MNT namespace"),
    (with_("linux.timeOffsets", {"boottime": {"secs": 1}}),
     "time namespace offsets specified, but time namespace isn't enabled in the config"),
    (with_("linux.sysctl", {"kernel.shmmax": "1"}),
     'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace'),
    (with_("linux.sysctl", {"fs.mqueue.msg_max": "10"}),
     'sysctl "fs.mqueue.msg_max" is not allowed in the hosts ipc namespace'),
    (with_("linux.sysctl", {"net.ipv4.ip_forward": "1"}),
     'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    (with_("linux", {"namespaces": [{"type": "mount"},
                                    {"type": "network", "path": "/proc/self/ns/net"}],
                     "sysctl": {"net.core.somaxconn": "256"}}),
     'sysctl "net.core.somaxconn" not allowed in host network namespace'),
    (with_("linux", {"namespaces": [{"type": "mount"},
                                    {"type": "network", "path": "/nonexistent/pyrt-netns"}],
                     "sysctl": {"net.core.somaxconn": "256"}}),
     "invalid netns path: stat /nonexistent/pyrt-netns: no such file or directory"),
    (with_("linux.sysctl", {"net/ipv4/conf/eth0.100/rp_filter": "1"}),
     'sysctl "net.ipv4.conf.eth0/100.rp_filter" not allowed in host network namespace'),
    (with_("linux", {"namespaces": [{"type": "mount"}, {"type": "uts"}],
                     "sysctl": {"kernel.hostname": "x"}}),
     'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field'),
    (with_("linux.sysctl", {"kernel.domainname": "x"}),
     'sysctl "kernel.domainname" is not in a separate kernel namespace'),
    (with_("linux.sysctl", {"vm.swappiness": "1"}),
     'sysctl "vm.swappiness" is not in a separate kernel namespace'),
    (with_("linux.intelRdt", {"closID": ".."}), 'invalid intelRdt.ClosID ".."'),
    (with_("linux.intelRdt", {"closID": "a/b"}), 'invalid intelRdt.ClosID "a/b"'),
    (with_("linux.seccomp", {"defaultAction": "SCMP_ACT_NOTIFY"}),
     "SCMP_ACT_NOTIFY cannot be used as default action"),
    (with_("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]}),
     "SCMP_ACT_NOTIFY cannot be used for the write syscall"),
    (with_("process.scheduler", {"policy": "SCHED_OTHER", "nice": 20}), "invalid scheduler.nice: 20"),
    (with_("process.scheduler", {"policy": "SCHED_OTHER", "priority": 5}),
     "scheduler.priority can only be specified for SchedFIFO or SchedRR policy"),
    (with_("process.scheduler", {"policy": "SCHED_FIFO", "runtime": 5}),
     "scheduler runtime/deadline/period can only be specified for SchedDeadline policy"),
    (with_("process.rlimits", [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                               {"type": "RLIMIT_CORE", "soft": 1, "hard": 1}]),
     "rlimit RLIMIT_CORE is specified more than once"),
    (with_("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
     "rlimit RLIMIT_NOFILE: soft limit 2048 is greater than hard limit 1024"),
    (with_("hooks", {"createRuntime": [{"path": "bin/true"}]}),
     "hooks.createRuntime[0].path: 'bin/true' is not an absolute path"),
    (with_("mounts", [{"destination": "/x", "source": "/tmp", "options": ["bind"],
                       "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}]),
     "invalid mount mounts[0] (/x): uidMappings and gidMappings must be specified together"),
    (with_("mounts", [{"destination": "/x", "source": "/tmp", "type": "tmpfs",
                       "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
                       "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}]),
     "invalid mount mounts[0] (/x): gidMappings/uidMappings is supported only for mounts with "
     "the option 'bind'"),
    (with_("mounts", [{"destination": "/x", "source": "/tmp", "options": ["rbind", "idmap"]}]),
     "invalid mount mounts[0] (/x): idmap without uidMappings/gidMappings needs a user namespace"),
    (with_("mounts", [{"destination": "/x", "source": "tmp", "options": ["bind"],
                       "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
                       "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}]),
     "invalid mount mounts[0] (/x): mount source not absolute"),
]


@pytest.mark.parametrize("spec, message", SEMANTIC, ids=[m[:60] for _, m in SEMANTIC])
def test_semantic_rejects(tmp_path, spec, message):
    assert load_err(tmp_path, spec) == message


def test_selinux_label_needs_selinux(tmp_path):
    if os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled on this host")
    assert load_err(tmp_path, with_("process.selinuxLabel", "system_u:system_r:container_t:s0")) \
        == "selinux label is specified in config, but selinux is disabled or not supported"


def test_process_optional_when_not_required(tmp_path):
    spec = {k: v for k, v in BASE.items() if k != "process"}
    got = config.load(make_bundle(tmp_path, spec), require_process=False)
    assert "process" not in got


def test_namespaced_sysctls_accepted(tmp_path):
    spec = with_("linux", {
        "namespaces": [{"type": "mount"}, {"type": "ipc"}, {"type": "network"}, {"type": "uts"}],
        "sysctl": {"kernel.msgmax": "8192", "kernel.sem": "250 32000 32 128",
                   "kernel.shm_rmid_forced": "1", "fs.mqueue.queues_max": "256",
                   "net.ipv4.ip_forward": "1", "kernel.domainname": "x"}})
    config.load(make_bundle(tmp_path, spec))


def test_joined_user_namespace_needs_no_mappings(tmp_path):
    spec = with_("linux.namespaces", [{"type": "mount"}, {"type": "user", "path": "/proc/1/ns/user"}])
    config.load(make_bundle(tmp_path, spec))


def test_uts_joined_by_path_allows_hostname(tmp_path):
    # runc only asks that a uts namespace is listed, new or joined.
    spec = with_("linux.namespaces", [{"type": "mount"}, {"type": "uts", "path": "/proc/1/ns/uts"}])
    spec["hostname"] = "box"
    config.load(make_bundle(tmp_path, spec))


def test_relative_mount_destination_is_a_warning(tmp_path):
    got = config.load(make_bundle(tmp_path, with_("mounts", [
        {"destination": "tmp", "type": "tmpfs", "source": "tmpfs"}])))
    assert got["_warnings"] == ["mount destination tmp is not absolute. Support for non-absolute "
                                "mount destinations will be removed in a future release."]


# ------------------------------------------------------------------ rootfs & normalisation

def test_normalised_paths(tmp_path, monkeypatch):
    bundle = make_bundle(tmp_path, BASE)
    monkeypatch.chdir(tmp_path)
    got = config.load("bundle")
    assert got["_bundle"] == str(bundle)
    assert got["_rootfs"] == str(bundle / "rootfs")
    assert got["_warnings"] == []
    assert got["process"]["args"] == ["sh"]


def test_absolute_root_path(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    got = config.load(make_bundle(tmp_path, with_("root.path", str(elsewhere))))
    assert got["_rootfs"] == str(elsewhere)


def test_bundle_through_symlink_is_fine(tmp_path):
    bundle = make_bundle(tmp_path, BASE)
    link = tmp_path / "link"
    link.symlink_to(bundle)
    got = config.load(link)
    assert got["_bundle"] == str(link)
    assert got["_rootfs"] == str(bundle / "rootfs")


def test_missing_rootfs(tmp_path):
    bundle = make_bundle(tmp_path, with_("root.path", "nope"))
    with pytest.raises(ConfigError) as ei:
        config.load(bundle)
    assert str(ei.value) == f"invalid rootfs: stat {bundle}/nope: no such file or directory"


def test_rootfs_symlink_rejected(tmp_path):
    bundle = make_bundle(tmp_path, with_("root.path", "rl"))
    (bundle / "rl").symlink_to("rootfs")
    with pytest.raises(ConfigError, match=r"^invalid rootfs: not an absolute path, or a symlink$"):
        config.load(bundle)


def test_rootfs_not_a_directory(tmp_path):
    bundle = make_bundle(tmp_path, with_("root.path", "config.json"))
    with pytest.raises(ConfigError, match=r"^invalid rootfs: .*/config.json: not a directory$"):
        config.load(bundle)


# ------------------------------------------------------------------ fixtures

@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_fixtures_load(tmp_path, name):
    spec = json.loads((FIXTURES / f"{name}.json").read_text())
    got = config.load(make_bundle(tmp_path, spec))
    assert got["ociVersion"] == "1.3.0"


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_fixtures_valid_upstream(name):
    v = upstream_validator()
    spec = json.loads((FIXTURES / f"{name}.json").read_text())
    assert [e.message for e in v.iter_errors(spec)] == []


# ------------------------------------------------------------------ upstream test configs

# Where we deliberately judge differently from the upstream schema.
DIVERGENCES = {
    # Non-Linux platform sections are treated as unknown properties.
    "bad/freebsd-vnet-disable.json": "accept",
    # We require a 1.x ociVersion; upstream only asks for a string.
    "good/spec-example.json": "reject",
    "good/zos-example.json": "reject",
}


def _upstream_cases():
    if not UPSTREAM.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason=f"{UPSTREAM} not found"))]
    return sorted(str(p.relative_to(UPSTREAM / "test" / "config"))
                  for p in (UPSTREAM / "test" / "config").glob("*/*.json"))


@pytest.mark.parametrize("case", _upstream_cases())
def test_upstream_config_cases(case):
    v = upstream_validator()
    path = UPSTREAM / "test" / "config" / case
    raw = path.read_bytes()
    try:
        spec = json.loads(raw)
    except ValueError:
        with pytest.raises(ConfigError, match="invalid JSON"):
            config.parse(raw)
        assert case.startswith("bad/")
        return
    errors = list(v.iter_errors(spec))
    # Upstream verdict, minus rejections that are only about unknown properties.
    upstream_ok = all(e.validator == "additionalProperties" for e in errors)
    assert upstream_ok == case.startswith("good/")
    expected = DIVERGENCES.get(case, "accept" if upstream_ok else "reject")
    try:
        config.check_schema(spec)
        ours = "accept"
    except ConfigError:
        ours = "reject"
    assert ours == expected
    if case in DIVERGENCES and DIVERGENCES[case] == "reject":
        # ...and only because of the version: the rest of the document is fine.
        config.check_schema(dict(spec, ociVersion="1.3.0"))


# ------------------------------------------------------------------ validation cache

def test_cache_hit_skips_jsonschema(tmp_path):
    bundle = make_bundle(tmp_path, BASE)
    cache = tmp_path / "cache"
    config.load(bundle, cache_dir=cache)
    assert len(os.listdir(cache)) == 1
    code = ("import sys; from pyruntime import config; "
            f"config.load({str(bundle)!r}, cache_dir={str(cache)!r}); "
            "print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    assert out.stdout.strip() == "False"
    # Without the cache a valid config is still judged without jsonschema (the fast
    # checker, pyruntime.schemacheck); an invalid one imports it to name the JSON path.
    code = code.replace(f"cache_dir={str(cache)!r}", "cache_dir=None")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    assert out.stdout.strip() == "False"
    bad = make_bundle(tmp_path / "bad", with_("linux.namespaces", [{"type": "foo"}]))
    code = ("import sys; from pyruntime import config\n"
            "try:\n"
            f"    config.load({str(bad)!r}, cache_dir=None)\n"
            "except config.ConfigError as e:\n"
            "    print('jsonschema' in sys.modules, e)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), check=True)
    assert out.stdout.startswith("True config.json: linux.namespaces[0].type:"), out.stdout


def test_cache_never_records_failures(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError):
        config.load(make_bundle(tmp_path, with_("linux.namespaces", [{"type": "foo"}])),
                    cache_dir=cache)
    assert not cache.exists() or os.listdir(cache) == []


def test_cache_is_keyed_by_content(tmp_path):
    cache = tmp_path / "cache"
    bundle = make_bundle(tmp_path, BASE)
    config.load(bundle, cache_dir=cache)
    # Same bytes again: still one entry; an invalid edit must not ride on it.
    config.load(bundle, cache_dir=cache)
    assert len(os.listdir(cache)) == 1
    (bundle / "config.json").write_text(json.dumps(with_("linux.namespaces", [{"type": "foo"}])))
    with pytest.raises(ConfigError, match="is not one of"):
        config.load(bundle, cache_dir=cache)


def test_cache_hit_is_only_the_same_bytes(tmp_path):
    # Entries are named by length: a config of the same length that the schema refuses
    # must not pass on another's success.
    cache = tmp_path / "cache"
    good = json.dumps(with_("linux.namespaces", [{"type": "ipc"}]))
    bad = json.dumps(with_("linux.namespaces", [{"type": "foo"}]))
    assert len(good) == len(bad)
    bundle = make_bundle(tmp_path, None, raw=good)
    config.load(bundle, cache_dir=cache)
    (entry,) = os.listdir(cache)
    assert (cache / entry).read_text() == good
    (bundle / "config.json").write_text(bad)
    with pytest.raises(ConfigError, match="is not one of"):
        config.load(bundle, cache_dir=cache)
    (bundle / "config.json").write_text(good)
    (cache / entry).write_text(good[:-1])   # a torn entry: a miss, judged (and kept) again
    config.load(bundle, cache_dir=cache)
    assert (cache / entry).read_text() == good


def test_semantic_checks_run_on_cache_hit(tmp_path):
    cache = tmp_path / "cache"
    bundle = make_bundle(tmp_path, BASE)
    config.load(bundle, cache_dir=cache)
    (bundle / "rootfs").rmdir()
    with pytest.raises(ConfigError, match="invalid rootfs"):
        config.load(bundle, cache_dir=cache)


def test_cache_is_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "CACHE_MAX_ENTRIES", 4)
    cache = tmp_path / "cache"
    for i in range(10):
        spec = with_("annotations", {"n": str(i)})
        config.check_schema(spec, raw=json.dumps(spec).encode(), cache_dir=cache)
        assert len(os.listdir(cache)) <= 4


def test_unwritable_cache_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    config.load(make_bundle(tmp_path, BASE), cache_dir=blocker / "cache")


def test_json_path_formatting():
    assert config.json_path(["linux", "namespaces", 0, "type"]) == "linux.namespaces[0].type"
    assert config.json_path(["linux", "sysctl", "net.ipv4.ip_forward"]) == \
        'linux.sysctl["net.ipv4.ip_forward"]'
    assert config.json_path([]) == ""
