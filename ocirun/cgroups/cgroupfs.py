"""The cgroupfs manager's skeleton: what V1Manager (v1.py) and V2Manager (v2.py) share:
the state record, making the directories, moving processes in, listing and signalling
them, removing the cgroups (and undoing a failed create), checkBeforeUpdate.

On the hot path (delete, kill --all): no os, posixpath or typing here (see common.py).
"""

import errno
import os
import time

from ..tables import SIGNALS
from .common import DEFAULT_FS, FS, CgroupError, _strerror, read_file, read_opt, write_file

SIGKILL = SIGNALS["SIGKILL"]


def levels_below(top: str, d: str) -> list[str]:
    """Each directory from `top`'s child down to `d`, top first; [] unless `d` is below
    `top` (what mkdir -p below a hierarchy's mountpoint makes)."""
    prefix = top.rstrip("/") + "/"
    if not top or not d.startswith(prefix):
        return []
    out, cur = [], top
    for part in d[len(prefix) :].split("/"):
        if part:
            cur = os.path.join(cur, part)
            out.append(cur)
    return out


class CgroupfsManager:
    """One container's cgroup(s), through cgroupfs files: what V1Manager and V2Manager share.
    `dirs` maps subsystem -> directory ("" is the cgroup2 one); `created` lists the
    directories create() made (parents first), the only ones destroy() removes."""

    mode = ""

    def __init__(
        self,
        dirs: dict[str, str],
        *,
        linux: dict | None = None,
        created: list[str] | None = None,
        roots: dict | None = None,
        fs: FS | None = None,
    ):
        self.dirs = dirs
        self.linux = linux or {}
        self.created: list[str] = list(created or [])
        self.roots = roots or {}  # subsystem -> mountpoint (where mkdir starts)
        self.fs = fs or DEFAULT_FS
        self.notes: list[str] = []  # warnings known before create(), returned by it
        self.rootless = False  # runc's rootless cgroup manager: device rules are best effort
        self.skipped: dict[str, str] = {}  # rootless: hierarchies left to the caller's cgroup

    # -- state.json
    @property
    def paths(self) -> dict:
        return {
            "mode": self.mode,
            "dirs": dict(self.dirs),
            "roots": dict(self.roots),
            "created": list(self.created),
        }

    def planned_paths(self) -> dict:
        """`paths` as create() will leave them, `created` naming the directories that do
        not exist yet (those create() will make): written down before create() makes any,
        so that a create killed midway can be undone from this record alone."""
        missing: list[str] = []
        for sub, d in self.dirs.items():
            for cur in levels_below(self.roots.get(sub, ""), d):
                if cur not in missing and not self.fs.exists(cur):
                    missing.append(cur)
        return dict(self.paths, created=missing)

    def visible_dirs(self) -> dict[str, str]:
        """Where the container's processes are, hierarchy by hierarchy: its own cgroups,
        and the caller's where rootless skipped one (what a `cgroup` mount binds)."""
        return {**self.skipped, **self.dirs}

    # -- creation helpers
    def _mkdirs(self) -> None:
        seen = set()
        for sub, d in self.dirs.items():
            if d in seen:
                continue  # co-mounted controllers ("cpu,cpuacct") share a directory
            seen.add(d)
            top = self.roots.get(sub, "")
            new = levels_below(top, d)
            if not new and not self.fs.exists(d):
                raise CgroupError(f"cgroup hierarchy {top or d} is not mounted")
            for cur in new:
                try:
                    self.fs.mkdir(cur)
                except FileExistsError:
                    continue
                except OSError as e:
                    raise CgroupError(
                        f"mkdir {cur}: {_strerror(e)}", cur, None, e.errno or 0
                    ) from None
                self.created.append(cur)

    def _undo(self) -> None:
        """A failed create(): remove what it made, sub-cgroups made meanwhile included
        (a hook's, or the kernel's for a threaded cgroup), deepest first."""
        for d in reversed(self.created):
            for sub in self._subtree(d):
                self._rmdir(sub, 0)
            self._rmdir(d, 0)
        self.created = []

    def _write(self, d: str, name: str, value) -> None:
        write_file(self.fs, os.path.join(d, name), str(value))

    def _read(self, d: str, name: str) -> str:
        return read_file(self.fs, os.path.join(d, name))

    def _opt(self, d: str, name: str) -> str | None:
        return read_opt(self.fs, os.path.join(d, name))

    def _has(self, d: str, name: str) -> bool:
        return self.fs.exists(os.path.join(d, name))

    def add(self, pid: int) -> None:
        """Move `pid` (and so everything it forks later) into the cgroup(s)."""
        for d in dict.fromkeys(self.dirs.values()):
            path = os.path.join(d, "cgroup.procs")
            for attempt in range(5):
                try:
                    self.fs.write(path, str(pid))
                    break
                except OSError as e:
                    # EINVAL: a task still in TASK_NEW (just cloned); it settles quickly.
                    if e.errno == errno.EINVAL and attempt < 4:
                        time.sleep(0.01)
                        continue
                    raise CgroupError(
                        f"failed to write {pid}: write {path}: {_strerror(e)}",
                        path,
                        str(pid),
                        e.errno or 0,
                    ) from None

    def placement(self) -> tuple[list[str], str | None] | None:
        """How a new process enters these cgroups at birth, instead of add() moving it:
        the v1 `tasks` files it writes "0" to itself (moving a thread, itself, skips the
        global lock add() takes, whose first taking waits an RCU grace period: 5-15 ms
        here), and the cgroup2 directory to clone3(CLONE_INTO_CGROUP) it into (v2, or the
        cgroup2 tree of a hybrid host), or None."""
        v1 = dict.fromkeys(d for sub, d in self.dirs.items() if sub)  # co-mounted: one dir
        return [os.path.join(d, "tasks") for d in v1], self.dirs.get("")

    def pids(self, everywhere: bool = False) -> list[int]:
        """Every process in the cgroup and its sub-cgroups; `everywhere`: in any of the
        container's directories (v1: a process may have been put in some hierarchies only)."""
        d = self._main_dir()
        out: list[int] = []
        seen = set()
        stack = list(dict.fromkeys(self.dirs.values())) if everywhere else [d] if d else []
        while stack:
            cur = stack.pop()
            text = read_opt(self.fs, os.path.join(cur, "cgroup.procs"))
            if text is None:
                continue
            for tok in text.split():
                pid = int(tok)
                if pid not in seen:
                    seen.add(pid)
                    out.append(pid)
            stack.extend(self.fs.subdirs(cur))
        return out

    def _signal_each(self, sig: int) -> None:
        for pid in self.pids(everywhere=True):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_all(self, sig: int) -> None:
        """Signal every process; frozen meanwhile so none forks past the signal. After
        SIGKILL the cgroup is left thawed, even one that was frozen before (paused, or by a
        kill_all that died midway): a v1-frozen task dies only once thawed, and whoever
        killed it is about to wait for that."""
        can_freeze = self.can_freeze()
        frozen = False
        try:
            if can_freeze and self.state() != "FROZEN":
                try:
                    self.freeze()
                    frozen = True
                except CgroupError:
                    if sig != SIGKILL:
                        raise
                    # stuck FREEZING: kill it anyway, as runc does (with a warning)
            self._signal_each(sig)
        finally:
            if frozen or (can_freeze and sig == SIGKILL):
                self.thaw()

    def device_rules(self) -> list[dict]:
        """The effective device rules (see devices.device_rules), for v2's eBPF program."""
        from .devices import device_rules  # create and update only (it loads os)

        return device_rules(self.linux)

    def check_before_update(self, memory: dict) -> None:
        """linux.resources.memory.checkBeforeUpdate: refuse a new limit at or below what the
        cgroup uses now (the kernel would reclaim, then OOM-kill, to meet it)."""
        limit = memory.get("limit") or 0
        if memory.get("checkBeforeUpdate") and limit > 0:
            usage = self.memory_usage()
            if limit <= usage:
                raise CgroupError(f"rejecting memory limit {limit} below current usage {usage}")

    # -- what each version implements (v1.py, v2.py)
    def create(self) -> list[str]:
        raise NotImplementedError

    def update(self, resources: dict) -> list[str]:
        raise NotImplementedError

    def stats(self) -> dict:
        raise NotImplementedError

    def oom_count(self) -> int:
        raise NotImplementedError

    def memory_usage(self) -> int:
        """Bytes the cgroup uses now (0 when there is no memory controller)."""
        raise NotImplementedError

    # -- removal
    def destroy(self) -> None:
        """Remove what create() made, deepest first; idempotent. The container's own
        cgroups go with any sub-cgroups made inside them; parents made by create() go only
        once empty (another container may share them)."""
        leaves = set(self.dirs.values())
        self._wait_empty()
        # Tasks that just died may linger an instant: EBUSY is retried until this deadline.
        deadline = time.monotonic() + 1.0
        left = []
        for d in reversed(self.created):
            if d in leaves:
                if self._rmdir(d, 0):
                    continue  # the usual case: no sub-cgroups to look for, no task left
                for sub in self._subtree(d) + [d]:
                    if not self._rmdir(sub, deadline):
                        left.append(sub)
            else:
                self._rmdir(d, 0)  # a parent: gone if empty (else EBUSY: another cgroup's)
        if left:
            raise CgroupError("failed to remove cgroup paths: " + ", ".join(left))

    def _subtree(self, d: str) -> list[str]:
        """Sub-cgroups below d, deepest first."""
        order, stack = [], list(self.fs.subdirs(d))
        while stack:
            cur = stack.pop()
            order.append(cur)
            stack.extend(self.fs.subdirs(cur))
        order.sort(key=lambda p: p.count("/"), reverse=True)
        return order

    def _rmdir(self, d: str, deadline: float) -> bool:
        delay = 0.001
        while True:
            try:
                self.fs.rmdir(d)
                return True
            except FileNotFoundError:
                return True
            except OSError as e:
                # EBUSY: tasks still leaving (or a sub-cgroup); anything else is final.
                if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _wait_empty(self) -> None:
        """Give exiting tasks a moment to leave before rmdir (cgroup2 tells us when)."""
        d = self.dirs.get("")
        if d and self.fs.exists(os.path.join(d, "cgroup.events")):
            self.fs.wait_for(os.path.join(d, "cgroup.events"), "populated", "0", 1.0)

    # -- what each version implements, for the freezer
    def _main_dir(self) -> str | None:
        raise NotImplementedError

    def can_freeze(self) -> bool:
        """Is there a freezer to hold the tasks still while they are signalled?"""
        raise NotImplementedError

    def state(self) -> str:
        raise NotImplementedError

    def frozen_now(self) -> bool:
        """Would a task put here now stop at once (this cgroup or an ancestor frozen or
        freezing)? A create checks it before its init enters: that init would never
        report ready (runc: "container's cgroup unexpectedly frozen")."""
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError
