"""linux.netDevices: host network interfaces moved into the container's network namespace
(renamed there when the entry has a "name") and moved back to the host on delete.

The runtime does it itself, over rtnetlink, while the init waits for its first GO: one
RTM_NEWLINK per device changes its namespace and its name at once, so a name clash in the
container fails before anything moved. Imported only when a config has netDevices.
"""
from . import oslite as os
import socket
import struct

from .errors import ConfigError, RuntimeErr

RTM_NEWLINK, NLMSG_ERROR = 16, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
IFLA_IFNAME, IFLA_NET_NS_PID, IFLA_NET_NS_FD = 3, 19, 28
CLONE_NEWNET = 0x40000000
IFNAMSIZ = 16


def check_name(name, field):
    """dev_valid_name(): what the kernel would refuse, said before anything is moved."""
    if (not isinstance(name, str) or not name or len(name.encode()) >= IFNAMSIZ
            or name in (".", "..") or any(c in name for c in "/: \t\n\r\v\f\0")):
        raise ConfigError("%s: %r is not a valid network interface name" % (field, name))


def validate(linux, ns):
    devs = linux.get("netDevices")
    if not devs:
        return
    if "network" not in ns:
        raise ConfigError("linux.netDevices: needs a network namespace other than the host's")
    seen = set()
    for host, d in devs.items():
        check_name(host, "linux.netDevices")
        name = (d or {}).get("name") or host
        check_name(name, "linux.netDevices.%s.name" % host)
        if name in seen:
            raise ConfigError("linux.netDevices.%s.name: %s is used twice" % (host, name))
        seen.add(name)


def _attr(kind, data):
    n = 4 + len(data)
    return struct.pack("HH", n, kind) + data + b"\0" * (-n % 4)


def _move(sock, index, name, ns_kind, ns_val):
    body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, 0, 0)
    body += _attr(ns_kind, struct.pack("I", ns_val)) + _attr(IFLA_IFNAME, name.encode() + b"\0")
    msg = struct.pack("IHHII", 16 + len(body), RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body
    sock.send(msg)
    while True:
        data = sock.recv(65536)
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("IH", data, off)
            if kind == NLMSG_ERROR:
                err = -struct.unpack_from("i", data, off + 16)[0]
                if err:
                    raise OSError(err, os.strerror(err))
                return
            off += (length + 3) & ~3


def _nl():
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)


def move_in(pid, devs):
    """Move each host device into the netns of `pid`; returns the (host, name) pairs moved.
    On a failure the ones already moved are brought back before the error is raised."""
    from .errors import strerror
    done = []
    sock = _nl()
    try:
        for host, d in devs.items():
            name = (d or {}).get("name") or host
            try:
                index = socket.if_nametoindex(host)
            except OSError:
                raise RuntimeErr("linux.netDevices: %s: no such network interface on the host"
                                 % host) from None
            try:
                _move(sock, index, name, IFLA_NET_NS_PID, pid)
            except OSError as e:
                raise RuntimeErr("linux.netDevices: move %s into the container as %s: %s"
                                 % (host, name, strerror(e.errno))) from None
            done.append((host, name))
    except BaseException:
        try:
            move_out("/proc/%d/ns/net" % pid, dict((h, {"name": n}) for h, n in done))
        except RuntimeErr:
            pass
        raise
    finally:
        sock.close()
    return done


def _setns(fd):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def move_out(ns_path, devs):
    """Give the devices back to the runtime's network namespace under their host names.
    Best effort for each; the first failure is raised after all were tried."""
    from .errors import strerror
    if not devs:
        return
    try:
        # an int: an fd the caller holds on the namespace (it outlives the init)
        target = (os.dup(ns_path) if isinstance(ns_path, int)
                  else os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        return  # the namespace is gone, and the devices with it (or back at the host's)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    first = None
    sock = None
    try:
        # a netlink socket and interface indexes belong to the namespace they are made in
        _setns(target)
        try:
            sock = _nl()
            indexes = {}
            for host, d in devs.items():
                name = (d or {}).get("name") or host
                try:
                    indexes[host] = (socket.if_nametoindex(name), name)
                except OSError:
                    pass  # deleted or renamed inside the container: nothing to give back
        finally:
            _setns(home)
        try:
            for host, (index, name) in (indexes.items() if sock is not None else ()):
                try:
                    _move(sock, index, host, IFLA_NET_NS_FD, home)
                except OSError as e:
                    first = first or RuntimeErr("linux.netDevices: move %s back to the host "
                                                "as %s: %s" % (name, host, strerror(e.errno)))
        finally:
            if sock is not None:
                sock.close()
    finally:
        os.close(target)
        os.close(home)
    if first is not None:
        raise first
