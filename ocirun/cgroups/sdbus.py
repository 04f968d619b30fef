"""The systemd cgroup driver's calls to systemd (Systemd, on one D-Bus connection): start and
stop transient units and wait for their jobs, set and read their properties. Where systemd
is reached: the system bus ($DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket),
then systemd's private socket (/run/systemd/private, root only) when no bus daemon runs; a
non-root caller's own manager on its session bus. The wire protocol is dbus.py's.
"""

from __future__ import annotations

import os
import time

from .bus import CALL_TIMEOUT, Connection, parse_address
from .common import CgroupError
from .dbus import SIGNAL, DBusError
from .units import SD_PATH, parse_version, unit_object_path

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
PRIVATE_BUS = "unix:path=/run/systemd/private"
JOB_TIMEOUT = 30.0  # runc waits as long for a start or stop job

SD_DEST = "org.freedesktop.systemd1"
SD_MANAGER = "org.freedesktop.systemd1.Manager"
PROPERTIES = "org.freedesktop.DBus.Properties"
_GONE = (
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.systemd1.NoSuchJob",
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownInterface",
)
_NO_UNIT = ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed")


def bus_addresses(user: bool = False) -> list[str]:
    if user:
        return user_bus_addresses()
    env = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    out = [env or SYSTEM_BUS]
    if os.geteuid() == 0 and not env:
        out.append(PRIVATE_BUS)
    return out


def user_bus_addresses() -> list[str]:
    """The caller's own systemd manager (a non-root caller, as runc): the session bus of
    $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus."""
    env = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if env:
        return [env]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return [f"unix:path={xdg.rstrip('/')}/bus"]
    raise CgroupError(
        "--systemd-cgroup as a non-root user needs its systemd user manager: "
        "neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set"
    )


def reason(e: BaseException) -> str:
    """One line, worded as the rest of ocirun's errors ("no such file or directory")."""
    if isinstance(e, DBusError):
        return e.message or e.name
    if isinstance(e, OSError) and e.errno and e.strerror:
        return e.strerror.lower() if e.strerror == os.strerror(e.errno) else e.strerror
    return (str(e) or type(e).__name__).splitlines()[0]


class Systemd:
    """The calls the driver makes, on one connection to systemd."""

    def __init__(self, conn: Connection, address: str = SYSTEM_BUS):
        self.conn, self.address = conn, address
        self.matched = False
        self._version: int | None = None
        conn.keep = lambda m: m.member == "JobRemoved" and m.interface == SD_MANAGER

    @classmethod
    def connect(
        cls, addresses: list[str] | None = None, *, timeout: float = CALL_TIMEOUT
    ) -> Systemd:
        """The first of `addresses` where systemd answers; CgroupError (one line) if none."""
        addresses = addresses or bus_addresses()
        first: tuple[str, BaseException] | None = None
        for address in addresses:
            try:
                sd = cls(Connection(address, timeout=timeout), address)
            except (OSError, ValueError, DBusError) as e:
                first = first or (address, e)
                continue
            try:
                sd.version  # noqa: B018 (a D-Bus call): is systemd there, not only a bus?
                return sd
            except (OSError, ValueError, DBusError) as e:
                sd.conn.close()
                first = first or (address, e)
        if first is None:
            raise CgroupError("--systemd-cgroup: no D-Bus address to reach systemd at")
        address, error = first
        where = address
        try:
            where = parse_address(address)[1]
        except ValueError:
            pass
        raise CgroupError(
            f"--systemd-cgroup: cannot reach systemd over D-Bus ({where}): {reason(error)}"
        )

    def close(self) -> None:
        self.conn.close()

    def _call(self, path: str, iface: str, member: str, sig: str = "", *args):
        return self.conn.call(SD_DEST, path, iface, member, sig, *args)

    @property
    def version(self) -> int:
        if self._version is None:
            (v,) = self._call(SD_PATH, PROPERTIES, "Get", "ss", SD_MANAGER, "Version")
            self._version = parse_version(v[1] if isinstance(v, tuple) else str(v))
        return self._version

    def get(self, path: str, iface: str, prop: str):
        (v,) = self._call(path, PROPERTIES, "Get", "ss", iface, prop)
        return v[1]

    def _match_jobs(self) -> None:
        if self.matched or not self.conn.unique_name:
            return  # peer-to-peer (the private socket): systemd sends us every signal
        self.conn.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            "s",
            f"type='signal',sender='{SD_DEST}',path='{SD_PATH}',"
            f"interface='{SD_MANAGER}',member='JobRemoved'",
        )
        self.matched = True

    def start(self, unit: str, props: list, *, timeout: float = JOB_TIMEOUT) -> None:
        """StartTransientUnit and wait for its job; an existing failed leftover of the same
        name is reset and the start retried once."""
        self._match_jobs()
        for attempt in (0, 1):
            try:
                (job,) = self._call(
                    SD_PATH,
                    SD_MANAGER,
                    "StartTransientUnit",
                    "ssa(sv)a(sa(sv))",
                    unit,
                    "replace",
                    props,
                    [],
                )
                break
            except DBusError as e:
                if e.name != "org.freedesktop.systemd1.UnitExists" or attempt:
                    raise
                self.reset_failed(unit)
        result = self.wait_job(job, unit, timeout, want="active")
        if result != "done":
            self.reset_failed(unit)
            raise CgroupError(f"error creating systemd unit `{unit}`: got `{result}`")

    def stop(self, unit: str, *, timeout: float = JOB_TIMEOUT) -> str:
        """StopUnit, waiting for the job; "gone" when there was no such unit."""
        self._match_jobs()
        try:
            (job,) = self._call(SD_PATH, SD_MANAGER, "StopUnit", "ss", unit, "replace")
        except DBusError as e:
            if e.name in _NO_UNIT:
                return "gone"
            raise
        return self.wait_job(job, unit, timeout, want="inactive")

    def reset_failed(self, unit: str) -> None:
        try:
            self._call(SD_PATH, SD_MANAGER, "ResetFailedUnit", "s", unit)
        except DBusError:
            pass  # not failed, or gone: nothing to reset

    def set_properties(self, unit: str, props: list) -> None:
        self._call(SD_PATH, SD_MANAGER, "SetUnitProperties", "sba(sv)", unit, True, props)

    def active_state(self, unit: str) -> str:
        try:
            return self.get(unit_object_path(unit), "org.freedesktop.systemd1.Unit", "ActiveState")
        except DBusError as e:
            if e.name in _GONE or e.name in _NO_UNIT:
                return "inactive"
            raise

    def control_group(self, unit: str) -> str:
        iface = "org.freedesktop.systemd1." + ("Slice" if unit.endswith(".slice") else "Scope")
        return self.get(unit_object_path(unit), iface, "ControlGroup")

    def wait_job(self, job: str, unit: str, timeout: float, *, want: str) -> str:
        """The job's result ("done", "failed", "canceled", ...): from its JobRemoved signal,
        or, when no signal comes (systemd sends them on the bus only while someone has
        subscribed), from the job object's disappearance and the unit's state."""
        deadline = time.monotonic() + timeout
        nap = 0.002
        while True:
            for i, m in enumerate(self.conn.signals):
                if len(m.body) >= 4 and m.body[1] == job:
                    del self.conn.signals[i]
                    return m.body[3]
            now = time.monotonic()
            if now >= deadline:
                raise CgroupError(
                    f"timeout of {timeout:g}s waiting for systemd's job on {unit} ({job})"
                )
            msg = self.conn.receive(min(nap, deadline - now))
            if msg is not None:
                if msg.type == SIGNAL and self.conn.keep(msg):
                    self.conn.signals.append(msg)
                continue
            try:
                self.get(job, "org.freedesktop.systemd1.Job", "State")
            except DBusError as e:
                if e.name not in _GONE:
                    raise
                # the job is over; its signal may have come with the error reply
                if any(len(m.body) >= 4 and m.body[1] == job for m in self.conn.signals):
                    continue
                state = self.active_state(unit)
                return (
                    "done"
                    if state == want
                    or (want == "active" and state in ("active", "activating", "reloading"))
                    else state or "failed"
                )
            nap = min(nap * 2, 0.1)
