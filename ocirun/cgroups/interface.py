"""The interface every cgroup manager has: V1Manager and V2Manager (cgroupfs, through their
CgroupfsManager base) and SystemdManager (a systemd unit around one of those). What the rest
of ocirun calls (container.py, lifecycle.py, execute.py, gc.py, restore.py) is this and no
more. For type checking only: the hot commands never import it (typing costs ~2 ms).
"""

from typing import Protocol

from .common import FS


class Manager(Protocol):
    notes: list[str]  # warnings known before create(), returned by it

    @property
    def mode(self) -> str:
        """ "v1", "hybrid" or "v2"."""
        ...

    @property
    def linux(self) -> dict:
        """config["linux"]: cgroupsPath, resources, devices."""
        ...

    @property
    def skipped(self) -> dict[str, str]:
        """Rootless: the hierarchies left to the caller's cgroup (not writable)."""
        ...

    @property
    def dirs(self) -> dict[str, str]:
        """{subsystem: directory}; "" is the cgroup2 directory (v2, or hybrid's)."""
        ...

    @property
    def fs(self) -> FS: ...

    @property
    def paths(self) -> dict:
        """What state.json keeps (JSON), for cgroups.from_state to reopen the manager."""
        ...

    def planned_paths(self) -> dict:
        """`paths` as create() will leave them, written down before it makes anything."""
        ...

    def visible_dirs(self) -> dict[str, str]:
        """Where the container's processes are, hierarchy by hierarchy."""
        ...

    # -- lifecycle
    def create(self) -> list[str]:
        """Make the cgroup(s) and apply linux.resources; returns warnings. Nothing made is
        left behind on failure."""
        ...

    def placement(self) -> tuple[list[str], str | None] | None:
        """How a new process enters the cgroups at birth (v1 tasks files, the cgroup2
        directory for CLONE_INTO_CGROUP), or None when add() must move it."""
        ...

    def add(self, pid: int) -> None: ...

    def update(self, resources: dict) -> list[str]: ...

    def destroy(self) -> None:
        """Remove what create() made; idempotent."""
        ...

    # -- processes
    def pids(self, everywhere: bool = False) -> list[int]: ...

    def kill_all(self, sig: int) -> None: ...

    def can_freeze(self) -> bool: ...

    def freeze(self) -> None: ...

    def thaw(self) -> None: ...

    def state(self) -> str:
        """ "FROZEN" or "THAWED"."""
        ...

    def frozen_now(self) -> bool:
        """Would a task put here now stop at once (frozen here or above)?"""
        ...

    # -- reading
    def stats(self) -> dict: ...

    def oom_count(self) -> int: ...

    def memory_usage(self) -> int: ...

    def check_before_update(self, memory: dict) -> None: ...

    def device_rules(self) -> list[dict]: ...
