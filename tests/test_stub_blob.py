"""The init stub's plan reader (csrc/executor.c read_blob) against a damaged blob.

The runtime writes the blob itself (write_blob) and hands it to the stub by fd, so nothing
hostile reaches it through the CLI; the reader still checks every offset and length it
turns into a pointer, so that a blob that is wrong in any way ends in the stub's one refusal
(exit 127) before anything runs, never a read past the blob (a crash) or a half-run plan.
Each blob here is built with the compiled module's own struct layout (cffi) and fed to the
installed stub exactly as pyrt_spawn does: `_pyrt_init <fd of a memfd>`.
"""
import os
import subprocess

import pytest

pytest.importorskip("pyruntime._executor")
from pyruntime._executor import ffi, lib  # noqa: E402

import pyruntime  # noqa: E402

STUB = os.path.join(os.path.dirname(os.path.abspath(pyruntime.__file__)), "_pyrt_init")
MAGIC, SPAWN, HOOK = 0x70797274, 1, 2
PAGE = 4096
SP_OFF = 32                                    # 16-aligned, after the 24-byte header
ST_OFF = (SP_OFF + ffi.sizeof("struct pyrt_spawn") + 15) // 16 * 16
STR_OFF = ST_OFF + ffi.sizeof("struct pyrt_step") + 16


@pytest.fixture(autouse=True)
def _pyruntime_only(rt):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's init stub")


def _blob(mode, sp, step=None, size=PAGE, sp_off=SP_OFF, tail=b""):
    """A blob of `size` bytes: header, spawn (offsets, not pointers), one step, the string
    "/bin/true" at STR_OFF, and `tail` as its last bytes."""
    buf = bytearray(size)
    hdr = ffi.new("uint32_t[2]", [MAGIC, mode])
    buf[0:8] = bytes(ffi.buffer(hdr))
    buf[8:16] = size.to_bytes(8, "little")
    buf[16:24] = (sp_off % (1 << 64)).to_bytes(8, "little")
    raw = bytes(ffi.buffer(sp))
    buf[SP_OFF:SP_OFF + len(raw)] = raw
    if step is not None:
        raw = bytes(ffi.buffer(step))
        buf[ST_OFF:ST_OFF + len(raw)] = raw
    buf[STR_OFF:STR_OFF + 10] = b"/bin/true\0"
    if tail:
        buf[size - len(tail):] = tail
    return bytes(buf)


def _spawn(nsteps=1, njoin=0, join_off=0, types_off=0):
    sp = ffi.new("struct pyrt_spawn *")
    sp.nsteps = nsteps
    sp.steps = ffi.cast("struct pyrt_step *", ST_OFF if nsteps else 0)
    sp.njoin = njoin
    sp.join_fds = ffi.cast("int *", join_off)
    sp.join_types = ffi.cast("int *", types_off)
    sp.sock = sp.parent_sock = sp.fifo_fd = sp.cgroup_fd = sp.stub_fd = -1
    return sp


def _ns_hook(**ptrs):
    st = ffi.new("struct pyrt_step *")
    st.op = lib.OP_NS_HOOK
    h = st.u.ns_hook
    h.path = ffi.cast("char *", STR_OFF)
    h.stdin_fd = h.stdout_fd = h.stderr_fd = h.err_fd = -1
    for k, v in ptrs.items():
        setattr(h, k, ffi.cast("char **", v))
    return st


def _run(blob, keep=()):
    fd = os.memfd_create("pyrt-test-blob", 0)
    try:
        os.write(fd, blob)
        # through a shell: a stub that got as far as cloning an init (CLONE_PARENT) leaves
        # it to the shell, which reaps it, not to the test process
        p = subprocess.run(["sh", "-c", '"$0" "$1"; echo "rc=$?"', STUB, str(fd)],
                           pass_fds=(fd,) + tuple(keep), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
    finally:
        os.close(fd)
    return p.stdout.strip().splitlines()[-1]


def test_a_sound_blob_runs():
    # the control: the same construction, undamaged, runs the hook (/bin/true: 0)
    args = STR_OFF + 16
    blob = bytearray(_blob(HOOK, _spawn(), _ns_hook(args=args)))
    blob[args:args + 16] = STR_OFF.to_bytes(8, "little") + bytes(8)
    assert _run(bytes(blob)) == "rc=0"


def test_vector_without_its_null_is_refused():
    # argv runs to the blob's last byte with no NULL: its terminator would be past the blob
    # (whatever follows the mapping: a crash, garbage, or a zero that runs the hook)
    n = (PAGE - (STR_OFF + 16)) // 8
    blob = _blob(HOOK, _spawn(), _ns_hook(args=STR_OFF + 16),
                 tail=STR_OFF.to_bytes(8, "little") * n)
    assert _run(blob) == "rc=127"


def test_join_count_past_the_blob_is_refused():
    # two namespace fds where the blob holds one: the second would be read past its end
    ns = os.open("/proc/self/ns/uts", os.O_RDONLY)
    try:
        types = STR_OFF + 16
        blob = bytearray(_blob(HOOK, _spawn(njoin=2, join_off=PAGE - 4, types_off=types),
                               _ns_hook(), tail=ns.to_bytes(4, "little")))
        blob[types:types + 8] = (0x04000000).to_bytes(4, "little") * 2   # CLONE_NEWUTS
        # the first join (our own uts namespace) works; the second fd is past the blob
        assert _run(bytes(blob), keep=(ns,)) == "rc=127"
    finally:
        os.close(ns)


def test_buffer_length_that_wraps_is_refused():
    # a seccomp program whose length makes offset + length wrap around
    st = ffi.new("struct pyrt_step *")
    st.op = lib.OP_SECCOMP
    st.u.seccomp.program = ffi.cast("void *", STR_OFF)
    st.u.seccomp.len = (1 << 64) - STR_OFF + 8
    assert _run(_blob(SPAWN, _spawn(), st)) == "rc=127"


def test_steps_past_the_blob_are_refused():
    assert _run(_blob(HOOK, _spawn(nsteps=1 << 20), _ns_hook())) == "rc=127"
