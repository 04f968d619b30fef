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

This module is the manager. The unit names and properties come from units.py, the calls to
systemd from sdbus.py (over bus.py and dbus.py: stdlib only, ~1 ms to import). A
non-root caller asks its own systemd manager (runc's rootless systemd driver): the session
bus, user.slice by default, the unit's cgroup below the manager's own (user@<uid>.service,
delegated to the user).

`delete` and `kill --all` of such a container load this module: what only create and update
need (the device rules, the host's layout, the v1 checks) is imported where they use it,
measured: at the top it cost those commands 1.7 ms.
"""

from __future__ import annotations

import os
import posixpath

from .. import log
from . import cgroupfs_manager
from .cgroupfs import CgroupfsManager
from .common import FS, ROOT, CgroupError
from .dbus import DBusError
from .sdbus import SD_MANAGER, Systemd, bus_addresses, reason, user_bus_addresses
from .units import (
    SD_PATH,
    device_properties,
    parse_cgroups_path,
    resource_properties,
    unit_cgroup,
    unit_name,
    unit_properties,
)

# ================================================================ the manager


class SystemdManager:
    """A container's cgroup as a systemd unit, plus the cgroupfs manager (`fs_manager`, a
    V1Manager or V2Manager) on the unit's cgroup for everything done through files. Has
    interface.Manager: the unit's own part is create, add, update and destroy; the rest is
    the cgroupfs manager's, forwarded below."""

    def __init__(
        self,
        fs_manager: CgroupfsManager,
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

    # -- interface.Manager, through the cgroupfs manager
    @property
    def mode(self) -> str:
        return self.fs_manager.mode

    @property
    def dirs(self) -> dict[str, str]:
        return self.fs_manager.dirs

    @property
    def linux(self) -> dict:
        return self.fs_manager.linux

    @property
    def fs(self) -> FS:
        return self.fs_manager.fs

    @property
    def skipped(self) -> dict[str, str]:
        return self.fs_manager.skipped

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

    def visible_dirs(self) -> dict[str, str]:
        return self.fs_manager.visible_dirs()

    def pids(self, everywhere: bool = False) -> list[int]:
        return self.fs_manager.pids(everywhere)

    def kill_all(self, sig: int) -> None:
        self.fs_manager.kill_all(sig)

    def can_freeze(self) -> bool:
        return self.fs_manager.can_freeze()

    def freeze(self) -> None:
        self.fs_manager.freeze()

    def thaw(self) -> None:
        self.fs_manager.thaw()

    def state(self) -> str:
        return self.fs_manager.state()

    def frozen_now(self) -> bool:
        return self.fs_manager.frozen_now()

    def stats(self) -> dict:
        return self.fs_manager.stats()

    def oom_count(self) -> int:
        return self.fs_manager.oom_count()

    def memory_usage(self) -> int:
        return self.fs_manager.memory_usage()

    def check_before_update(self, memory: dict) -> None:
        self.fs_manager.check_before_update(memory)

    def device_rules(self) -> list[dict]:
        return self.fs_manager.device_rules()

    # -- systemd
    def systemd(self) -> Systemd:
        if self._sd is None:
            addresses = self._addresses
            if addresses is None and self.address:
                addresses = [self.address] + [a for a in bus_addresses() if a != self.address]
            self._sd = Systemd.connect(addresses)
        return self._sd

    def _fail(self, what: str, e: BaseException) -> CgroupError:
        if isinstance(e, CgroupError):
            return e
        return CgroupError(f"systemd unit {self.unit}: {what}: {reason(e)}")

    def _properties(self, pid: int | None) -> tuple[list, list[str]]:
        from .devices import device_rules  # create only

        linux = self.fs_manager.linux
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
            from .v1 import check  # create only

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
        # before systemd applies the limit (and the kernel OOM-kills to meet it)
        self.check_before_update(resources.get("memory") or {})
        try:
            sd = self.systemd()
            props = resource_properties(resources, mode=self.mode, version=sd.version)
            devices = resources.get("devices") is not None
            warnings: list[str] = []
            if devices:
                from .devices import device_rules  # update only

                rules = device_rules(dict(self.linux, resources={"devices": resources["devices"]}))
                dev, warnings = device_properties(rules, sd.version)
                props = dev + props
            if props:
                thaw = False
                if devices and self.mode != "v2" and self.can_freeze() and self.state() != "FROZEN":
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
            top = systemd.get(SD_PATH, SD_MANAGER, "ControlGroup")
        except (OSError, ValueError, DBusError) as e:
            systemd.close()
            raise CgroupError(
                f"--systemd-cgroup: the user's systemd manager: {reason(e)}"
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
) -> CgroupfsManager:
    """The cgroupfs manager on the unit's cgroup `cgroup` (below each hierarchy's root)."""
    from .layout import layout, mount_roots, resolve_dirs  # create only

    lay = layout(root, mountinfo)
    dirs = resolve_dirs(lay, cgroup, {})
    return cgroupfs_manager(lay.mode, dirs, linux=linux, roots=mount_roots(lay, dirs), fs=fs)


def from_state(
    paths: dict, *, fs: FS | None = None, systemd: Systemd | None = None
) -> SystemdManager:
    """Reopen what SystemdManager.paths described."""
    if not paths.get("unit"):
        raise CgroupError("no systemd unit in the container's cgroup state")
    inner = cgroupfs_manager(
        paths.get("mode") or "v1",
        dict(paths["dirs"]),
        roots=paths.get("roots") or {},
        created=paths.get("created") or [],
        fs=fs,
    )
    return SystemdManager(
        inner,
        unit=paths["unit"],
        slice_=paths.get("slice") or "",
        description="",
        address=paths.get("bus") or None,
        started=True,
        systemd=systemd,
    )
