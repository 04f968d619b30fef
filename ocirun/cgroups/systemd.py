"""--systemd-cgroup: the container's cgroup is a transient systemd unit, asked for over D-Bus.

    m = open_manager(config["linux"], cid)   # names only: "slice:prefix:name" -> unit, path
    m.create()       # reach systemd (fails here, before clone, when it can't), check limits
    m.add(pid)       # StartTransientUnit(unit, PIDs=[pid], limits...), wait for the job,
                     # then the cgroupfs manager (v1/v2) on the unit's cgroup does the rest
    m.paths          # {"driver": "systemd", "unit", "bus", + the cgroupfs manager's paths}
    from_state(m.paths).destroy()   # StopUnit, ResetFailedUnit, remove what is left

cgroupsPath is runc's "slice:prefix:name": an empty slice is system.slice, the unit is
"<prefix>-<name>.scope", a name ending in ".slice" makes that slice instead (no PIDs=, the
init joins it through cgroupfs). Without a cgroupsPath: "system.slice:runc:<id>".

What systemd can express goes into the unit's properties (so a `systemctl daemon-reload`
re-applies the same values); everything, including what systemd can't express, is also
written to cgroupfs by the V1Manager/V2Manager pointed at the unit's cgroup, which then does
freeze/thaw, pids, kill, stats and the device rules (v2: our eBPF program next to systemd's).

This module is the driver's half that talks to systemd (Systemd: the calls, on one
connection) and the manager built on it. The unit names and properties come from units.py,
the D-Bus wire protocol (stdlib only, ~1 ms to import) from dbus.py. The system bus is tried
first ($DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket), then systemd's private
socket (/run/systemd/private, root only) when no bus daemon runs. A non-root caller asks its
own systemd manager instead (runc's rootless systemd driver): the session bus
($DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus), user.slice by default, the unit's
cgroup below the manager's own (user@<uid>.service, delegated to the user).
"""

from __future__ import annotations

import os
import posixpath
import time

from . import common
from .common import ROOT, CgroupError
from .dbus import CALL_TIMEOUT, SIGNAL, Connection, DBusError, parse_address
from .units import (
    SD_PATH,
    device_properties,
    parse_cgroups_path,
    parse_version,
    resource_properties,
    unit_cgroup,
    unit_name,
    unit_object_path,
    unit_properties,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .common import FS, Manager

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
PRIVATE_BUS = "unix:path=/run/systemd/private"
JOB_TIMEOUT = 30.0  # runc waits as long for a start or stop job

_SD = "org.freedesktop.systemd1"
_SD_MGR = "org.freedesktop.systemd1.Manager"
_PROPS = "org.freedesktop.DBus.Properties"
_GONE = (
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.systemd1.NoSuchJob",
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownInterface",
)
_NO_UNIT = ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed")


# ================================================================ talking to systemd


def _bus_addresses(user: bool = False) -> list[str]:
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


def _reason(e: BaseException) -> str:
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
        conn.keep = lambda m: m.member == "JobRemoved" and m.interface == _SD_MGR

    @classmethod
    def connect(
        cls, addresses: list[str] | None = None, *, timeout: float = CALL_TIMEOUT
    ) -> Systemd:
        """The first of `addresses` where systemd answers; CgroupError (one line) if none."""
        addresses = addresses or _bus_addresses()
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
            f"--systemd-cgroup: cannot reach systemd over D-Bus ({where}): {_reason(error)}"
        )

    def close(self) -> None:
        self.conn.close()

    def _call(self, path: str, iface: str, member: str, sig: str = "", *args):
        return self.conn.call(_SD, path, iface, member, sig, *args)

    @property
    def version(self) -> int:
        if self._version is None:
            (v,) = self._call(SD_PATH, _PROPS, "Get", "ss", _SD_MGR, "Version")
            self._version = parse_version(v[1] if isinstance(v, tuple) else str(v))
        return self._version

    def get(self, path: str, iface: str, prop: str):
        (v,) = self._call(path, _PROPS, "Get", "ss", iface, prop)
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
            f"type='signal',sender='{_SD}',path='{SD_PATH}',"
            f"interface='{_SD_MGR}',member='JobRemoved'",
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
                    _SD_MGR,
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
            (job,) = self._call(SD_PATH, _SD_MGR, "StopUnit", "ss", unit, "replace")
        except DBusError as e:
            if e.name in _NO_UNIT:
                return "gone"
            raise
        return self.wait_job(job, unit, timeout, want="inactive")

    def reset_failed(self, unit: str) -> None:
        try:
            self._call(SD_PATH, _SD_MGR, "ResetFailedUnit", "s", unit)
        except DBusError:
            pass  # not failed, or gone: nothing to reset

    def set_properties(self, unit: str, props: list) -> None:
        self._call(SD_PATH, _SD_MGR, "SetUnitProperties", "sba(sv)", unit, True, props)

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


# ================================================================ the manager


class SystemdManager:
    """A container's cgroup as a systemd unit, plus the cgroupfs manager (`fs_manager`, a
    V1Manager or V2Manager) on the unit's cgroup for everything done through files."""

    def __init__(
        self,
        fs_manager: Manager,
        *,
        unit: str,
        slice_: str,
        description: str,
        address: str | None = None,
        started: bool = False,
        systemd: Systemd | None = None,
        addresses: list[str] | None = None,
    ):
        self.fs_manager = fs_manager
        self.unit, self.slice, self.description = unit, slice_, description
        self.address = address
        self.started = started  # the unit is ours (started here, or a container's from state)
        self._sd = systemd
        self._addresses = addresses
        self.notes: list[str] = []

    # -- the Manager interface, through the cgroupfs manager
    mode = property(lambda self: self.fs_manager.mode)
    dirs = property(lambda self: self.fs_manager.dirs)
    linux = property(lambda self: self.fs_manager.linux)
    fs = property(lambda self: self.fs_manager.fs)

    @property
    def paths(self) -> dict:
        p = self.fs_manager.paths
        p.update(
            driver="systemd",
            unit=self.unit,
            slice=self.slice,
            bus=self.address or (self._sd.address if self._sd else ""),
        )
        return p

    def planned_paths(self) -> dict:
        """What create() is about to make: the unit (by name; reopened, destroy() stops it
        if it exists) and its cgroup directories."""
        return self.paths

    def path(self, subsystem: str) -> str | None:
        return self.fs_manager.path(subsystem)

    def visible_dirs(self) -> dict[str, str]:
        return self.fs_manager.visible_dirs()

    def exists(self) -> bool:
        return self.fs_manager.exists()

    def pids(self, everywhere: bool = False) -> list[int]:
        return self.fs_manager.pids(everywhere)

    def kill_all(self, sig: int) -> None:
        self.fs_manager.kill_all(sig)

    def freeze(self) -> None:
        self.fs_manager.freeze()

    def thaw(self) -> None:
        self.fs_manager.thaw()

    def state(self) -> str:
        return self.fs_manager.state()

    def stats(self) -> dict:
        return self.fs_manager.stats()

    def oom_count(self) -> int:
        return self.fs_manager.oom_count()

    def device_rules(self) -> list[dict]:
        return self.fs_manager.device_rules()

    # -- systemd
    def systemd(self) -> Systemd:
        if self._sd is None:
            addresses = self._addresses
            if addresses is None and self.address:
                addresses = [self.address] + [a for a in _bus_addresses() if a != self.address]
            self._sd = Systemd.connect(addresses)
        return self._sd

    def _fail(self, what: str, e: BaseException) -> CgroupError:
        if isinstance(e, CgroupError):
            return e
        return CgroupError(f"systemd unit {self.unit}: {what}: {_reason(e)}")

    def _properties(self, pid: int | None) -> tuple[list, list[str]]:
        linux = self.fs_manager.linux
        from .devices import device_rules

        return unit_properties(
            unit=self.unit,
            slice_=self.slice,
            description=self.description,
            pid=pid,
            mode=self.mode,
            version=self.systemd().version,
            resources=linux.get("resources") or {},
            device_rules=device_rules(linux),
        )

    def create(self) -> list[str]:
        """Before clone: reach systemd and check what the unit would get. Nothing is made
        yet (a scope needs a pid: add() starts it)."""
        if self.mode != "v2":
            from .v1 import check

            check(self.linux.get("resources") or {})
        self.systemd()
        _, warnings = self._properties(0)
        return self.notes + warnings

    def placement(self) -> tuple[list[str], str | None] | None:
        """None for the init: systemd moves it, as it starts the unit with its pid. Later
        processes (exec) join the unit's cgroups as cgroupfs ones."""
        return self.fs_manager.placement() if self.started else None

    def add(self, pid: int) -> None:
        """The container's init (first call): start the unit with it, then let the cgroupfs
        manager set up the unit's cgroup. Any later process (exec) joins through cgroupfs."""
        if self.started:
            self.fs_manager.add(pid)
            return
        try:
            props, _ = self._properties(pid)
            self.systemd().start(self.unit, props)
        except (OSError, ValueError, DBusError) as e:
            raise self._fail("start", e) from None
        self.started = True
        try:
            actual = self.systemd().control_group(self.unit)
        except (OSError, ValueError, DBusError):
            actual = ""
        if actual:
            self._rebase(actual)
        self.close()  # done with D-Bus here (destroy() reconnects if it must)
        warnings = self.fs_manager.create()
        self.fs_manager.add(pid)  # v1: the hierarchies systemd doesn't drive; slices
        from .. import log

        for w in warnings:
            log.warning(w)

    def _rebase(self, cgroup: str) -> None:
        """Point the cgroupfs manager at `cgroup` (systemd's word for the unit's path)."""
        old = self.fs_manager
        want = {sub: _rejoin(d, old.roots.get(sub, ""), cgroup) for sub, d in old.dirs.items()}
        if want != old.dirs:
            old.dirs.clear()
            old.dirs.update(want)

    def update(self, resources: dict) -> list[str]:
        """SetUnitProperties (runtime) with what systemd can express, then cgroupfs."""
        resources = resources or {}
        mem = resources.get("memory") or {}
        if mem.get("checkBeforeUpdate") and (mem.get("limit") or 0) > 0:
            self._check_usage(mem["limit"])  # before systemd applies it and OOM-kills
        try:
            sd = self.systemd()
            props = resource_properties(resources, mode=self.mode, version=sd.version)
            devices = resources.get("devices") is not None
            warnings: list[str] = []
            if devices:
                from .devices import device_rules

                rules = device_rules(dict(self.linux, resources={"devices": resources["devices"]}))
                dev, warnings = device_properties(rules, sd.version)
                props = dev + props
            if props:
                thaw = False
                if (
                    devices
                    and self.mode != "v2"
                    and self.fs_manager._can_freeze()
                    and self.state() != "FROZEN"
                ):
                    # v1: systemd rewrites devices.allow/deny from scratch, briefly denying
                    # all; freeze so no task meets that window (as runc does)
                    self.freeze()
                    thaw = True
                try:
                    sd.set_properties(self.unit, props)
                finally:
                    if thaw:
                        self.thaw()
        except (OSError, ValueError, DBusError) as e:
            raise self._fail("set properties", e) from None
        finally:
            self.close()
        return warnings + self.fs_manager.update(resources)

    def _check_usage(self, limit: int) -> None:
        from .common import read_opt, to_int

        if self.mode == "v2":
            f = posixpath.join(self.dirs[""], "memory.current")
        else:
            d = self.dirs.get("memory")
            if not d:
                return
            f = posixpath.join(d, "memory.usage_in_bytes")
        usage = to_int(read_opt(self.fs, f))
        if limit <= usage:
            raise CgroupError(f"rejecting memory limit {limit} below current usage {usage}")

    def destroy(self) -> None:
        """StopUnit (waiting for it), ResetFailedUnit, then remove whatever cgroup dirs are
        left (v1 hierarchies systemd doesn't drive; sub-cgroups old systemd leaves).
        Idempotent; without systemd at hand the cgroupfs part still runs."""
        m = self.fs_manager
        if not self.started and not m.created:
            return  # add() never ran: nothing of ours exists (the name may be another's)
        err = None
        if self.started:
            try:
                sd = self.systemd()
                result = sd.stop(self.unit)
                sd.reset_failed(self.unit)
                if result not in ("done", "gone", "inactive"):
                    from .. import log

                    log.warning(f"stopping systemd unit {self.unit}: got {result}")
            except (OSError, ValueError, DBusError, CgroupError) as e:
                err = self._fail("stop", e)
            finally:
                self.close()
        leaves = [d for d in dict.fromkeys(m.dirs.values()) if d not in m.created]
        if self.started:
            m.created = list(m.created) + leaves
        try:
            m.destroy()
        finally:
            m.created = [d for d in m.created if d not in leaves]
        if err is not None and any(self.fs.exists(d) for d in m.dirs.values()):
            raise err

    def close(self) -> None:
        if self._sd is not None:
            self.address = self.address or self._sd.address  # (for paths, and reconnecting)
            self._sd.close()
            self._sd = None


def _rejoin(d: str, top: str, cgroup: str) -> str:
    if not top:
        return d
    return posixpath.join(top, cgroup.lstrip("/")) if cgroup.strip("/") else top


def open_manager(
    linux: dict | None,
    cid: str,
    *,
    root: str = ROOT,
    mountinfo: str | None = None,
    fs: FS | None = None,
    addresses: list[str] | None = None,
    systemd: Systemd | None = None,
    user: bool | None = None,
) -> SystemdManager:
    """The manager for --systemd-cgroup (see the module's docstring). Nothing is asked of
    the system's systemd until create(); `user` (default: a non-root caller) means the
    caller's own manager, asked for its cgroup at once. `addresses` (D-Bus addresses to
    try) and `systemd` (a connected Systemd) are for tests."""
    linux = linux or {}
    user = os.geteuid() != 0 if user is None else user
    slice_, prefix, name = parse_cgroups_path(
        linux.get("cgroupsPath"), cid, "user.slice" if user else "system.slice"
    )
    unit = unit_name(prefix, name)
    cgroup = unit_cgroup(slice_, unit)  # (checks the slice names)
    if user:
        # The user's manager runs in its own cgroup (user@<uid>.service): its units are
        # below that, which the plan needs now (a `cgroup` mount binds the unit's).
        addresses = addresses or user_bus_addresses()
        if systemd is None:
            systemd = Systemd.connect(addresses)
        try:
            top = systemd.get(SD_PATH, _SD_MGR, "ControlGroup")
        except (OSError, ValueError, DBusError) as e:
            systemd.close()
            raise CgroupError(
                f"--systemd-cgroup: the user's systemd manager: {_reason(e)}"
            ) from None
        cgroup = posixpath.join(top, cgroup.lstrip("/"))
    m = SystemdManager(
        _fs_manager(linux, cgroup, root, mountinfo, fs),
        unit=unit,
        slice_=slice_,
        description=f"ocirun container {cid}",
        systemd=systemd,
        addresses=addresses,
    )
    m.fs_manager.rootless = user  # a delegated subtree: no device filter of ours
    return m


def _fs_manager(
    linux: dict, cgroup: str, root: str, mountinfo: str | None, fs: FS | None
) -> Manager:
    lay = common.layout(root, mountinfo)
    dirs = common.resolve_dirs(lay, cgroup, {})
    roots = {sub: lay.v1[sub][0] for sub in dirs if sub}
    if "" in dirs:
        assert lay.unified is not None  # "" is the cgroup2 mount's directory
        roots[""] = lay.unified[0]
    if lay.mode == "v2":
        from .v2 import V2Manager

        return V2Manager(dirs, linux=linux, roots=roots, fs=fs)
    from .v1 import V1Manager

    return V1Manager(dirs, mode=lay.mode, linux=linux, roots=roots, fs=fs)


def from_state(
    paths: dict, *, fs: FS | None = None, systemd: Systemd | None = None
) -> SystemdManager:
    """Reopen what SystemdManager.paths described."""
    from . import from_state as fs_from_state

    if not paths.get("unit"):
        raise CgroupError("no systemd unit in the container's cgroup state")
    base = {k: v for k, v in paths.items() if k not in ("driver", "unit", "slice", "bus")}
    inner = fs_from_state(base, fs=fs)
    return SystemdManager(
        inner,
        unit=paths["unit"],
        slice_=paths.get("slice") or "",
        description="",
        address=paths.get("bus") or None,
        started=True,
        systemd=systemd,
    )
