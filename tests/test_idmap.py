"""Idmapped mounts (spec 1.3: `idmap`/`ridmap` options, per-mount uidMappings/gidMappings):
file ownership as seen through the mount inside the container."""
import json
import os

import pytest

MAP_1000_TO_0 = [{"containerID": 1000, "hostID": 0, "size": 1}]


@pytest.fixture
def src(pyrt_tmp):
    d = os.path.join(pyrt_tmp, "idmap-src")
    os.mkdir(d)
    os.chown(d, 1000, 1000)   # the container's root (on-disk 1000) may write in it
    for name, uid in (("f1000", 1000), ("f0", 0), ("f2000", 2000)):
        p = os.path.join(d, name)
        open(p, "w").close()
        os.chown(p, uid, uid)
    sub = os.path.join(pyrt_tmp, "idmap-sub")
    os.mkdir(sub)
    open(os.path.join(sub, "g1000"), "w").close()
    os.chown(os.path.join(sub, "g1000"), 1000, 1000)
    return d


def _owners(stdout):
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith("/m"):
            out[os.path.basename(parts[0])] = (int(parts[1]), int(parts[2]))
    return out


def _bundle(make_bundle, script, mount, **linux):
    b = make_bundle(args=["/bin/sh", "-c", script])
    b.config["mounts"].append(mount)
    b.config["linux"].update(linux)
    b.save()
    return b


def test_idmap_per_mount_mapping(rt, make_bundle, cid, src):
    """On-disk uid/gid 1000 maps to 0 through the mount; ids outside the mapping are the
    overflow id; the host's view of the files is unchanged."""
    m = {"destination": "/m", "type": "bind", "source": src, "options": ["bind", "idmap"],
         "uidMappings": MAP_1000_TO_0, "gidMappings": MAP_1000_TO_0}
    b = _bundle(make_bundle, "stat -c '%n %u %g' /m/*; grep ' /m ' /proc/self/mountinfo", m)
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode == 0, r.stderr
    own = _owners(r.stdout)
    assert own["f1000"] == (0, 0)
    assert own["f0"] == (65534, 65534)
    assert own["f2000"] == (65534, 65534)
    assert "idmapped" in r.stdout
    assert os.stat(os.path.join(src, "f1000")).st_uid == 1000


def test_idmap_write_through_mapping(rt, make_bundle, cid, src):
    """A file the container's root creates through the mount is owned by on-disk 1000."""
    m = {"destination": "/m", "type": "bind", "source": src, "options": ["bind", "idmap"],
         "uidMappings": MAP_1000_TO_0, "gidMappings": MAP_1000_TO_0}
    b = _bundle(make_bundle, "touch /m/new && echo ok", m)
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode == 0, r.stderr
    st = os.stat(os.path.join(src, "new"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_ridmap_is_recursive(rt, make_bundle, cid, src, pyrt_tmp):
    """ridmap maps the submounts of the source too; idmap without it does not."""
    sub = os.path.join(pyrt_tmp, "idmap-sub")
    inner = os.path.join(src, "inner")
    os.mkdir(inner)
    import subprocess
    subprocess.run(["mount", "--bind", sub, inner], check=True)
    try:
        for opt, expect in (("ridmap", (0, 0)), ("idmap", None)):
            m = {"destination": "/m", "type": "bind", "source": src,
                 "options": ["rbind", opt],
                 "uidMappings": MAP_1000_TO_0, "gidMappings": MAP_1000_TO_0}
            b = _bundle(make_bundle, "stat -c '%n %u %g' /m/inner/g1000", m)
            r = rt.run("run", "-b", b.path, "%s-%s" % (cid, opt))
            if expect is None:
                # the submount came along (rbind) but without the mapping: refused by the
                # kernel or shown unmapped; never mapped
                assert r.returncode != 0 or _owners(r.stdout)["g1000"] != (0, 0)
            else:
                assert r.returncode == 0, r.stderr
                assert _owners(r.stdout)["g1000"] == expect
    finally:
        subprocess.run(["umount", "-l", inner], check=False)


def test_idmap_uses_container_user_namespace_mapping(rt, make_bundle, cid, src):
    """`idmap` without its own mappings takes the container's: on-disk root files are the
    container's root, although the container's root is host uid 100000."""
    maps = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    m = {"destination": "/m", "type": "bind", "source": src, "options": ["bind", "idmap"]}
    b = _bundle(make_bundle, "stat -c '%n %u %g' /m/*; cat /proc/self/uid_map", m,
                uidMappings=maps, gidMappings=maps)
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.save()
    for root, dirs, files in os.walk(b.rootfs):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), 100000, 100000)
    os.chown(b.rootfs, 100000, 100000)
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode == 0, r.stderr
    own = _owners(r.stdout)
    assert own["f0"] == (0, 0)
    assert own["f1000"] == (1000, 1000)
    assert "100000" in r.stdout


def test_idmap_on_non_bind_mount_refused(rt, make_bundle, cid):
    m = {"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
         "uidMappings": MAP_1000_TO_0, "gidMappings": MAP_1000_TO_0}
    b = _bundle(make_bundle, "true", m)
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode != 0
    assert "bind" in r.stderr


def test_features_report_idmap(rt):
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1 predates idmapped mounts")
    doc = json.loads(rt.ok("features").stdout)
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert "idmap" in doc["mountOptions"] and "ridmap" in doc["mountOptions"]
