"""What `exec` needs of a running container beyond its config: decided at create, recorded.

Every exec would otherwise work out again what cannot have changed since create: the
compiled seccomp filter (a hash of the profile and a cache lookup), how a new process
enters the container's cgroups (the cgroup manager and its modules), whether setgroups(2)
is denied in the container's user namespace. Those imports were most of exec's own time
(bench/README.md). create records them in state.json's "exec" member; exec builds its plan
from the record and the flags alone.

A container without the record (made by an older ocirun, or by restore), or a caller that
is not root (whether it may move a process into the container's cgroups depends on the
caller, as with runc), gets them worked out now by `compute`, the same function create
records.
"""

from __future__ import annotations

import os

from . import log
from .hostfacts import seccomp_filter, setgroups_denied
from .plan_security import Filter

KEY = "exec"
VERSION = 1


class Cgroups:
    """The container's cgroups as the spawner uses them for a new process: where it enters
    at birth (`placement`, as the manager said at create) and, where the kernel can't
    (no clone3) or the manager had no placement, the manager that moves it, loaded then."""

    def __init__(self, paths: dict, placement: tuple[list[str], str | None] | None):
        self.paths, self._placement = paths, placement

    def placement(self) -> tuple[list[str], str | None] | None:
        return self._placement

    def add(self, pid: int) -> None:
        from . import cgroups

        cgroups.from_state(self.paths).add(pid)


class Facts:
    """The compiled seccomp filter (plan_security.Filter or None), the cgroups a new process
    joins (Cgroups, a manager, or None: it stays where the caller is), and whether the
    container's user namespace denies setgroups(2)."""

    __slots__ = ("seccomp", "cgroups", "setgroups_denied")

    def __init__(self, seccomp: Filter | None, cgroups, setgroups_denied: bool):
        self.seccomp, self.cgroups, self.setgroups_denied = seccomp, cgroups, setgroups_denied


def record(filt, cg, init_pid: int) -> dict:
    """state.json's "exec" member for a container whose init is `init_pid`: `filt` its
    compiled seccomp filter (or None), `cg` its cgroup manager (or None)."""
    where = cg.placement() if cg is not None else None
    return {
        "version": VERSION,
        "seccomp": None
        if filt is None
        else [filt.bpf.hex(), filt.flags, filt.notify, list(filt.warnings), list(filt.notes)],
        "placement": None if where is None else [list(where[0]), where[1]],
        "setgroups_denied": setgroups_denied(init_pid),
    }


def _from_record(rec: dict, paths: dict | None) -> Facts:
    seccomp = None
    if rec["seccomp"] is not None:
        bpf, flags, notify, warnings, notes = rec["seccomp"]
        seccomp = Filter(bytes.fromhex(bpf), flags, notify, warnings, notes)
        for w in warnings:  # as seccomp_filter logs them when it compiles or finds the filter
            log.warning(f"seccomp: {w}")
        for n in notes:
            log.debug(f"seccomp: {n}")
    cg = None
    if (paths or {}).get("dirs"):
        where = rec["placement"]
        cg = Cgroups(paths or {}, None if where is None else (where[0], where[1]))
    return Facts(seccomp, cg, rec["setgroups_denied"])


def _valid(rec) -> bool:
    if not isinstance(rec, dict) or rec.get("version") != VERSION:
        return False
    sec, where = rec.get("seccomp"), rec.get("placement")
    return (
        isinstance(rec.get("setgroups_denied"), bool)
        and (
            sec is None
            or isinstance(sec, list)
            and len(sec) == 5
            and isinstance(sec[0], str)
            and isinstance(sec[1], int)
            and isinstance(sec[2], bool)
            and isinstance(sec[3], list)
            and isinstance(sec[4], list)
        )
        and (
            where is None
            or isinstance(where, list)
            and len(where) == 2
            and isinstance(where[0], list)
            and all(isinstance(t, str) for t in where[0])
            and (where[1] is None or isinstance(where[1], str))
        )
    )


def compute(seccomp: dict | None, paths: dict | None, init_pid: int) -> Facts:
    """The facts worked out now: `seccomp` the config's linux.seccomp, `paths` the state's
    cgroup_paths."""
    return Facts(
        seccomp_filter(seccomp),
        _manager(paths),
        setgroups_denied(init_pid),
    )


def _manager(paths: dict | None):
    """The manager of the container's cgroups for the new process to join, or None."""
    if not (paths or {}).get("dirs"):
        return None
    from . import cgroups

    assert paths is not None
    cg = cgroups.from_state(paths)
    if os.geteuid() != 0:
        from .cgroups.rootless import can_join

        if not can_join(paths):
            log.debug(
                "rootless: the process stays in the caller's cgroups (it may "
                "not move one into the container's), as with runc"
            )
            return None
    return cg


def of(data: dict, seccomp: dict | None) -> tuple[Facts, bool]:
    """exec's facts of the container whose state.json holds `data`: (facts, recorded)."""
    rec = data.get(KEY)
    if os.geteuid() == 0 and _valid(rec):
        return _from_record(rec, data.get("cgroup_paths")), True
    return compute(seccomp, data.get("cgroup_paths"), data["pid"]), False
