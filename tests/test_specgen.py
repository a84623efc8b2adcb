"""The default `spec` config: same content as `runc spec`, declared as OCI 1.3.0."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pyruntime import config, specgen
from pyruntime.errors import ConfigError

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "oci-runtime-spec-v1.3.0"


def runc_spec(tmp_path, rootless):
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    d = tmp_path / ("runc-rootless" if rootless else "runc")
    d.mkdir()
    subprocess.run(["runc", "spec"] + (["--rootless"] if rootless else []), cwd=d, check=True)
    return (d / "config.json").read_text()


def upstream_validator():
    if not (UPSTREAM / "config-schema.json").exists():
        pytest.skip(f"upstream OCI schemas not found at {UPSTREAM}")
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = [(p.as_uri(), Resource.from_contents(json.loads(p.read_text()),
                                                     default_specification=DRAFT4))
                 for p in UPSTREAM.glob("*.json")]
    return jsonschema.Draft4Validator({"$ref": (UPSTREAM / "config-schema.json").as_uri()},
                                      registry=Registry().with_resources(resources))


@pytest.mark.parametrize("rootless", [False, True])
def test_same_content_as_runc(tmp_path, rootless):
    theirs = json.loads(runc_spec(tmp_path, rootless))
    assert theirs.pop("ociVersion").startswith("1.")
    mine = specgen.default_spec(rootless)
    assert mine.pop("ociVersion") == "1.3.0"
    assert mine == theirs


@pytest.mark.parametrize("rootless", [False, True])
def test_same_bytes_as_runc_but_version(tmp_path, rootless):
    theirs = runc_spec(tmp_path, rootless)
    version = json.loads(theirs)["ociVersion"]
    expected = theirs.replace(f'"ociVersion": "{version}"', '"ociVersion": "1.3.0"', 1)
    assert specgen.dumps(specgen.default_spec(rootless)) == expected


def test_rootless_differences():
    spec = specgen.default_spec(rootless=True)
    linux = spec["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert sys_mount["type"] == "none" and "rbind" in sys_mount["options"]
    assert not any(o.startswith("gid=") for m in spec["mounts"] for o in m.get("options", []))


def test_default_spec_is_a_fresh_copy():
    a = specgen.default_spec()
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["linux"]["maskedPaths"].clear()
    b = specgen.default_spec()
    assert "CAP_SYS_ADMIN" not in b["process"]["capabilities"]["bounding"]
    assert b["linux"]["maskedPaths"]


def test_write_spec(tmp_path):
    path = specgen.write_spec(tmp_path)
    text = Path(path).read_text()
    assert text.startswith('{\n\t"ociVersion": "1.3.0",\n\t"process": {\n\t\t"terminal": true')
    assert not text.endswith("\n")
    assert json.loads(text) == specgen.default_spec()


def test_write_spec_refuses_to_overwrite(tmp_path):
    (tmp_path / "config.json").write_text("precious")
    with pytest.raises(ConfigError, match=r"^File config.json exists. Remove it first$"):
        specgen.write_spec(tmp_path)
    assert (tmp_path / "config.json").read_text() == "precious"


def test_write_spec_refuses_dangling_symlink(tmp_path):
    (tmp_path / "config.json").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="File config.json exists"):
        specgen.write_spec(tmp_path)
    assert not (tmp_path / "nowhere").exists()


def test_write_spec_missing_dir(tmp_path):
    with pytest.raises(ConfigError, match="no such file or directory"):
        specgen.write_spec(tmp_path / "missing")


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_passes_our_validation(tmp_path, rootless):
    specgen.write_spec(tmp_path, rootless=rootless)
    (tmp_path / "rootfs").mkdir()
    got = config.load(tmp_path)
    assert got["_rootfs"] == str(tmp_path / "rootfs")
    assert got["_warnings"] == []


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_passes_upstream_schema(rootless):
    v = upstream_validator()
    assert [e.message for e in v.iter_errors(specgen.default_spec(rootless))] == []
