"""`ocirun gc [--dry-run]`: find and remove what crashed or killed runtimes left behind.

runc and crun have no such command. A runtime SIGKILLed midway (or a host that lost power
between two steps) can leave, for one --root:

  container   a state dir whose init is gone and that no `delete` removed: a create that
              died before it wrote state.json, a stopped container whose `run` or engine
              died before deleting it, a delete killed halfway, a damaged state.json;
  temporary   `<file>.tmp<pid>` in a state dir, from an atomic write whose writer died;
  fifo        exec.fifo or exec.result in a container whose init no longer holds them (a
              `start` killed between releasing the init and removing the fifo: the state
              said "created" for a running container);
  cgroup      a container's cgroup directory (every hierarchy) whose container has no state
              dir any more (its create failed and could not remove it, its state was
              damaged beyond knowing its cgroups, someone removed the state dir);
  cache       temporaries of a killed cache writer, entries beyond the cache's bounds, the
              old cache under --root.

It is conservative. A state dir locked by a running operation is skipped; a container
whose init lives (created, running, paused) is never touched but for its stale files; a
container whose init is gone but whose cgroups still hold processes is reported, not
killed (`delete --force` does that on purpose). A cgroup directory is ocirun's only if
ocirun tagged it when it made it (`tag_cgroups`: an extended attribute naming the --root
and the id; trusted.* for root, which no unprivileged user can forge), and gc takes only
those of its own --root: never another runtime's cgroups, nor another root's containers.

Everything here is for the cold `gc` command but `tag_cgroups`, which create calls on its
hot path: this module imports nothing at load.
"""

from __future__ import annotations

STALE_EMPTY_DIR_S = 5.0  # an empty, unlocked state dir younger than this may be a create
#                          between its mkdir and its lock: left alone


def _tag_name() -> str:
    import os

    return "trusted.ocirun" if os.geteuid() == 0 else "user.ocirun"


def tag_cgroups(cg, root: str, cid: str) -> None:
    """Mark the cgroup directories create just made as container `cid` of `root`, for gc.
    Only those it made (not a pre-existing cgroup it joins); the value lists the parents it
    made too. Best effort: a filesystem without xattrs only means gc can't find them."""
    import os

    from . import fastjson as json

    made = list(getattr(getattr(cg, "fs_manager", cg), "created", None) or [])
    if not made:
        return
    name = _tag_name()
    done = set()
    for d in cg.dirs.values():
        if d in done or d not in made:
            continue
        done.add(d)
        parents = [p for p in made if d.startswith(p + "/")]
        value = json.dumps({"root": root, "id": cid, "parents": parents}).encode()
        try:
            os.setxattr(d, name, value)
        except OSError:
            pass


# --------------------------------------------------------------------------- findings


class Finding:
    """One leftover: what, where, why, and what became of it."""

    __slots__ = ("kind", "path", "why", "error")

    def __init__(self, kind: str, path: str, why: str):
        self.kind, self.path, self.why = kind, path, why
        self.error: str | None = None

    def line(self, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        return f"{verb} {self.kind} {self.path}: {self.why}"


class Report:
    def __init__(self) -> None:
        self.found: list[Finding] = []
        self.kept: list[str] = []  # leftovers gc leaves alone on purpose, with why

    def add(self, kind: str, path: str, why: str) -> Finding:
        f = Finding(kind, path, why)
        self.found.append(f)
        return f


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fd_inodes(pid: int) -> set[tuple[int, int]] | None:
    """(dev, ino) of every fd of process `pid`, None if it can't be read."""
    import os

    out = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for n in names:
        try:
            st = os.stat(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue
        out.add((st.st_dev, st.st_ino))
    return out


def _tmp_writer(name: str) -> int | None:
    """The pid in `<file>.tmp<pid>` (state.atomic_write's temporaries), else None."""
    base, sep, pid = name.rpartition(".tmp")
    if not sep or not base or not pid.isdigit():
        return None
    return int(pid)


# --------------------------------------------------------------------------- state dirs


def _try_lock(path: str) -> int | None:
    """The state dir's fd, locked; None when an operation holds the lock (or it went)."""
    import fcntl
    import os

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _stale_files(c, report: Report, dry_run: bool, live_pid: int) -> None:
    """Temporaries of dead writers; exec.fifo/exec.result a live init no longer holds."""
    import os

    from .state import FIFO, RESULT

    try:
        names = os.listdir(c.dir)
    except OSError:
        return
    held = None
    for name in sorted(names):
        path = f"{c.dir}/{name}"
        writer = _tmp_writer(name)
        if writer is not None:
            if _alive(writer):
                continue
            f = report.add("temporary", path, f"its writer (pid {writer}) is gone")
        elif name in (FIFO, RESULT) and live_pid:
            if held is None:
                held = _fd_inodes(live_pid)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if held is None or (st.st_dev, st.st_ino) in held:
                continue
            why = (f"the init (pid {live_pid}) no longer waits on it: a start was killed "
                   "after releasing it" if name == FIFO else
                   f"the init (pid {live_pid}) no longer reports through it")
            f = report.add("fifo", path, why)
        else:
            continue
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                f.error = f"unlink {path}: {e.strerror}"


def _container(root: str, cid: str, report: Report, dry_run: bool) -> None:
    import os
    import time

    from . import lifecycle
    from . import state as statemod
    from .errors import OcirunError, StateDamaged

    path = f"{root}/{cid}"
    try:
        statemod.check_id(cid)
    except OcirunError:
        report.kept.append(f"{path}: not a container id: left alone")
        return
    fd = _try_lock(path)
    if fd is None:
        return  # an operation is at work on it (or it just went)
    damage = None
    try:
        data = statemod._read_state(path)
    except StateDamaged as e:
        data, damage = None, e.message
    c = statemod.Container(root, cid, fd, data, damage)
    try:
        status = c.status()
        if status in (statemod.CREATED, statemod.RUNNING, statemod.PAUSED):
            _stale_files(c, report, dry_run, c.pid)
            return
        if data is None and damage is None:
            # No state.json: a create that died before writing it (a live create holds
            # the lock). Empty and young: perhaps one between its mkdir and its flock.
            try:
                st = os.stat(path)
                empty = not os.listdir(path)
            except OSError:
                return
            if empty and time.time() - st.st_mtime < STALE_EMPTY_DIR_S:
                return
            why = "a create that died before it wrote the container's state"
        elif damage is not None:
            why = "state.json: " + damage.split(": ", 1)[-1].split(";")[0]
        else:
            why = f"its init (pid {c.pid}) is gone and no delete removed it"
        try:
            cg = lifecycle.cgroups_of(c)
        except OcirunError as e:
            report.kept.append(f"{path}: {why}, but its cgroups can't be read ({e}): "
                               "left alone")
            return
        pids = cg.pids() if cg is not None else []
        if pids and (damage is not None or data is not None):
            # A container whose init is gone may still have processes (an exec'd one,
            # without a pid namespace): only delete --force kills a container's processes.
            report.kept.append(
                f"{path}: {why}, but {len(pids)} process(es) still run in its cgroups "
                f"(pids {' '.join(map(str, sorted(pids)[:8]))}): `delete --force {cid}` "
                "removes it")
            return
        if pids:
            why += f"; its orphaned init still waits (pids {' '.join(map(str, sorted(pids)))})"
        f = report.add("container", path, why)
        if dry_run:
            return
        try:
            lifecycle._destroy(c, status)
        except OcirunError as e:
            f.error = e.message
    finally:
        c.close()


# --------------------------------------------------------------------------- cgroups


def _hierarchies() -> list[tuple[str, str]]:
    """(subsystem key as a manager's `dirs` has it, mountpoint) of every cgroup hierarchy."""
    from .cgroups import common

    lay = common.layout()
    out, seen = [], set()
    for sub, (mp, _mroot) in sorted(lay.v1.items()):
        if mp not in seen:
            seen.add(mp)
            out.append((sub, mp))
    if lay.unified and lay.unified[0] not in seen:
        out.append(("", lay.unified[0]))
    return out


def _tagged(top: str, name: str, root: str) -> list[tuple[str, dict]]:
    """(dir, tag) of every cgroup below `top` tagged as a container of `root`. A tagged
    dir's subtree is the container's own: not searched."""
    import os

    from . import fastjson as json

    found = []
    stack = [top]
    while stack:
        cur = stack.pop()
        try:
            it = os.scandir(cur)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if not e.is_dir(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                try:
                    raw = os.getxattr(e.path, name, follow_symlinks=False)
                except OSError:
                    stack.append(e.path)
                    continue
                try:
                    tag = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(tag, dict) and tag.get("root") == root \
                        and isinstance(tag.get("id"), str):
                    found.append((e.path, tag))
    return found


def _cgroups(root: str, report: Report, dry_run: bool) -> None:
    import os

    from . import state as statemod
    from .cgroups import CgroupError, common, from_state
    from .errors import OcirunError

    name = _tag_name()
    by_id: dict[str, dict] = {}
    try:
        hierarchies = _hierarchies()
    except (OSError, CgroupError) as e:
        report.kept.append(f"cgroups: not searched: {e}")
        return
    mode = common.layout().mode
    for sub, mp in hierarchies:
        for d, tag in _tagged(mp, name, root):
            cid = tag["id"]
            try:
                statemod.check_id(cid)
            except OcirunError:
                continue
            if os.path.lexists(os.path.join(root, cid)):
                continue  # its container's state is there: delete's to remove
            entry = by_id.setdefault(cid, {"dirs": {}, "parents": []})
            entry["dirs"][sub] = d
            for p in tag.get("parents") or []:
                if isinstance(p, str) and d.startswith(p + "/") and p not in entry["parents"]:
                    entry["parents"].append(p)
    for cid, entry in sorted(by_id.items()):
        dirs = entry["dirs"]
        parents = sorted(entry["parents"], key=lambda p: p.count("/"))
        m = from_state({"mode": mode, "dirs": dirs, "roots": {}, "created": parents +
                        sorted(set(dirs.values()))})
        try:
            pids = m.pids()
        except OcirunError:
            pids = []
        why = f"container {cid} of {root} has no state any more"
        if pids:
            why += f"; its processes were killed (pids {' '.join(map(str, sorted(pids)[:8]))})"
        findings = [report.add("cgroup", d, why) for d in sorted(set(dirs.values()))]
        if dry_run:
            for f in findings:
                f.why = f.why.replace("were killed", "would be killed")
            continue
        try:
            if pids:
                m.kill_all(9)
            m.destroy()
        except OcirunError as e:
            for f in findings:
                if os.path.exists(f.path):
                    f.error = e.message


# --------------------------------------------------------------------------- cache


def _cache(root: str, report: Report, dry_run: bool) -> None:
    import os

    from . import cache

    legacy = os.path.join(root, ".cache")
    if os.path.isdir(legacy) and not os.path.islink(legacy):
        f = report.add("cache", legacy, "ocirun's old cache under --root (it lives in "
                       f"{cache.base_dir() or 'no directory'} now)")
        if not dry_run:
            cache.drop_legacy(root)
            if os.path.exists(legacy):
                f.error = f"remove {legacy}: not ours, or not empty"
    for kind in ("config", "seccomp"):
        directory = cache.path(kind)
        if not directory or not os.path.isdir(directory):
            continue
        with cache.Store(directory) as store:
            if store.fd < 0:
                continue
            entries = []
            try:
                with os.scandir(store.fd) as it:
                    for e in it:
                        try:
                            st = e.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        entries.append((e.name, st))
            except OSError:
                continue
            live = []
            for n, st in entries:
                if n.endswith(".tmp"):
                    parts = n.split(".")
                    # .<entry>.<pid>.<random>.tmp (cache.Store.put)
                    pid = parts[-3] if len(parts) >= 4 else ""
                    if pid.isdigit() and not _alive(int(pid)):
                        f = report.add("cache", os.path.join(directory, n),
                                       f"a temporary whose writer (pid {pid}) is gone")
                        if not dry_run:
                            store._unlink(n)
                    continue
                live.append((st.st_mtime_ns, n, st.st_size))
            live.sort()
            total = sum(s for _, _, s in live)
            for i, (_, n, size) in enumerate(live):
                if len(live) - i <= cache.MAX_ENTRIES and total <= cache.MAX_BYTES:
                    break
                report.add("cache", os.path.join(directory, n),
                           f"beyond the cache's bounds ({cache.MAX_ENTRIES} entries, "
                           f"{cache.MAX_BYTES >> 20} MiB): least recently used")
                total -= size
                if not dry_run:
                    store._unlink(n)


# --------------------------------------------------------------------------- the command


def collect(root: str, dry_run: bool = False) -> Report:
    """Find (and unless dry_run, remove) the leftovers of `root`'s containers."""
    from . import state as statemod

    report = Report()
    for cid in statemod.list_ids(root):
        _container(root, cid, report, dry_run)
    _cgroups(root, report, dry_run)
    _cache(root, report, dry_run)
    return report
