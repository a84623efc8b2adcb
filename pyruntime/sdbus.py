"""The few calls of systemd's D-Bus API the systemd cgroup driver makes, over jeepney.

Imported only on --systemd-cgroup paths (jeepney pulls in enum, struct, socket...).
The system bus is used, with a match rule and Subscribe for the job signals. Not the
manager's private socket (/run/systemd/private, runc's choice as root): in the test guest
a request sent right behind the authentication's BEGIN there sometimes went unanswered
for a minute; the bus daemon takes that pipelining as every D-Bus client does it. The
private socket is the fallback when there is no bus daemon.
"""

from . import oslite as os
import time

from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnectionBase, prep_socket, timeout_to_deadline

from pyruntime.errors import CgroupError, strerror

PRIVATE = "/run/systemd/private"
SYSTEM_BUS = "/run/dbus/system_bus_socket"
MANAGER = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                      interface="org.freedesktop.systemd1.Manager")
JOB_TIMEOUT = 30.0   # runc's wait for a unit job
CALL_TIMEOUT = 60.0


class DBusError(CgroupError):
    def __init__(self, name, text):
        super().__init__(text or name)
        self.name = name


class Systemd:
    def __init__(self):
        private = not os.path.exists(SYSTEM_BUS) and os.geteuid() == 0
        try:
            sock = prep_socket(PRIVATE if private else SYSTEM_BUS, timeout=5.0)
        except (OSError, TimeoutError) as e:
            raise CgroupError("cannot connect to systemd over D-Bus: %s" % (
                strerror(e) if getattr(e, "strerror", None) else e)) from None
        self.conn = DBusConnectionBase(sock)
        self.jobs = {}      # job path -> result, from JobRemoved signals
        if not private:
            bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                              interface="org.freedesktop.DBus")
            self.call(new_method_call(bus, "Hello"))
            self.call(message_bus.AddMatch(
                "type='signal',sender='org.freedesktop.systemd1',"
                "interface='org.freedesktop.systemd1.Manager',member='JobRemoved'"))
            self.manager("Subscribe")

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------------- plumbing

    def _receive(self, deadline):
        msg = self.conn._receive(deadline)
        h = msg.header
        if (h.message_type is MessageType.signal
                and h.fields.get(HeaderFields.member) == "JobRemoved" and len(msg.body) >= 4):
            self.jobs[msg.body[1]] = msg.body[3]
        return msg

    def call(self, msg, timeout=CALL_TIMEOUT):
        serial = next(self.conn.outgoing_serial)
        data, _ = self.conn._serialise(msg, serial)
        self.conn.sock.sendall(data)
        deadline = timeout_to_deadline(timeout)
        while True:
            try:
                reply = self._receive(deadline)
            except TimeoutError:
                raise CgroupError("systemd did not answer %s in %d s" % (
                    msg.header.fields.get(HeaderFields.member), timeout)) from None
            except ConnectionError as e:
                raise CgroupError("D-Bus connection to systemd lost: %s" % e) from None
            if reply.header.fields.get(HeaderFields.reply_serial) != serial:
                continue
            if reply.header.message_type is MessageType.error:
                name = reply.header.fields.get(HeaderFields.error_name, "")
                text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else name
                raise DBusError(name, text)
            return reply.body

    def manager(self, method, signature=None, *args):
        return self.call(new_method_call(MANAGER, method, signature, args))

    def wait_job(self, job, timeout=JOB_TIMEOUT):
        """The job's result ('done', 'failed', ...); None when it did not end in time."""
        deadline = time.monotonic() + timeout
        while job not in self.jobs:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self._receive(timeout_to_deadline(left))
            except TimeoutError:
                return None
            except ConnectionError as e:
                raise CgroupError("D-Bus connection to systemd lost: %s" % e) from None
        return self.jobs.pop(job)

    # -------------------------------------------------------------- API

    def version(self):
        """systemd's version number (252 for "252.38-1~deb12u1"); 0 if unknown."""
        props = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                            interface="org.freedesktop.DBus.Properties")
        try:
            (sig, v), = self.call(new_method_call(props, "Get", "ss", (MANAGER.interface, "Version")))
        except (DBusError, ValueError):
            return 0
        digits = ""
        for ch in str(v).lstrip("v"):
            if not ch.isdigit():
                break
            digits += ch
        return int(digits or 0)

    def start_transient_unit(self, name, props):
        """props: [(name, (signature, value))]. Waits for the start job as runc does.
        False when the unit exists already (not an error for runc either)."""
        try:
            job, = self.manager("StartTransientUnit", "ssa(sv)a(sa(sv))", name, "replace",
                                props, [])
        except DBusError as e:
            if e.name == "org.freedesktop.systemd1.UnitExists":
                return False
            raise
        result = self.wait_job(job)
        if result != "done":
            self.reset_failed(name)
            if result is None:
                raise CgroupError("Timeout waiting for systemd to create " + name)
            raise CgroupError("error creating systemd unit `%s`: got `%s`" % (name, result))
        return True

    def stop_unit(self, name):
        """Stop the unit and wait for the job; a unit already gone is not an error."""
        try:
            job, = self.manager("StopUnit", "ss", name, "replace")
        except DBusError as e:
            if e.name == "org.freedesktop.systemd1.NoSuchUnit":
                return
            raise
        if self.wait_job(job) is None:
            raise CgroupError("Timed out while waiting for systemd to remove " + name)

    def set_unit_properties(self, name, props):
        self.manager("SetUnitProperties", "sba(sv)", name, True, props)

    def reset_failed(self, name):
        try:
            self.manager("ResetFailedUnit", "s", name)
        except CgroupError:
            pass
