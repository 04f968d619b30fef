"""`ocirun gc [--dry-run]`: find and remove what crashed or killed runtimes left behind
(runc and crun have no such command). For one --root:

  container   a state dir whose init is gone and that no `delete` removed: a create that
              died before it wrote state.json, a stopped container nobody deleted, a delete
              killed halfway, a damaged state.json;
  temporary   `<file>.tmp<pid>` in a state dir whose writer died mid atomic write;
  fifo        exec.fifo or exec.result a live init no longer holds (a `start` killed
              after releasing the init: the state said "created" for a running container);
  cgroup      a directory `create` tagged (cgroups/tag.py) for a container of this root
              that has no state dir any more;
  cache       temporaries of a killed cache writer, entries beyond the cache's bounds, the
              old cache under --root.

Conservative: a state dir locked by a running operation is skipped; a container whose init
lives is never touched but for its stale files; one whose init is gone while processes
still run in its cgroups, or whose damaged state names no cgroups, is reported and left
to `delete --force`. Only cgroups tagged for this very root are taken.
"""

from __future__ import annotations

import os

STALE_EMPTY_DIR_S = 5.0  # an empty unlocked state dir younger than this may be a create
#                          between its mkdir and its flock: left alone


class Finding:
    """One leftover: what, where, why, and (after a failed removal) what went wrong."""

    def __init__(self, kind: str, path: str, why: str):
        self.kind, self.path, self.why = kind, path, why
        self.error: str | None = None

    def line(self, dry_run: bool) -> str:
        return f"{'would remove' if dry_run else 'removed'} {self.kind} {self.path}: {self.why}"


class Report:
    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.found: list[Finding] = []
        self.kept: list[str] = []  # leftovers left alone on purpose, with why

    def add(self, kind: str, path: str, why: str) -> Finding:
        f = Finding(kind, path, why)
        self.found.append(f)
        return f

    def remove(self, kind: str, path: str, why: str, fn, *args, **kw) -> None:
        """Record the finding; unless dry-run, fn(*args, **kw) removes it (an OSError or
        OcirunError: the finding's error)."""
        from .errors import OcirunError

        f = self.add(kind, path, why)
        if self.dry_run:
            return
        try:
            fn(*args, **kw)
        except FileNotFoundError:
            pass
        except OSError as e:
            f.error = f"{e.strerror or e}"
        except OcirunError as e:
            f.error = e.message


def collect(root: str, dry_run: bool = False) -> Report:
    """Find (and unless dry_run, remove) the leftovers of `root`'s containers."""
    from . import state as statemod

    report = Report(dry_run)
    for cid in statemod.list_ids(root):
        _container(root, cid, report)
    _cgroups(root, report)
    _cache(root, report)
    return report


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


# --------------------------------------------------------------------------- state dirs


def _try_lock(path: str) -> int | None:
    """The state dir's fd, locked; None while an operation holds the lock (or it went)."""
    import fcntl

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


def _held_by(pid: int) -> set[tuple[int, int]] | None:
    """(dev, ino) of every fd of process `pid`, None if they can't be read."""
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


def _stale_files(c, report: Report, live_pid: int) -> None:
    """Temporaries of dead writers; exec.fifo/exec.result a live init no longer holds."""
    from .state import FIFO, RESULT

    try:
        names = sorted(os.listdir(c.dir))
    except OSError:
        return
    held = None
    for name in names:
        path = f"{c.dir}/{name}"
        base, sep, writer = name.rpartition(".tmp")  # state.atomic_write's temporaries
        if sep and base and writer.isdigit():
            if not _alive(int(writer)):
                report.remove(
                    "temporary", path, f"its writer (pid {writer}) is gone", os.unlink, path
                )
        elif name in (FIFO, RESULT) and live_pid:
            if held is None:
                held = _held_by(live_pid)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if held is None or (st.st_dev, st.st_ino) in held:
                continue
            report.remove(
                "fifo",
                path,
                f"the init (pid {live_pid}) no longer holds it "
                "(a start killed after releasing the init)",
                os.unlink,
                path,
            )


def _container(root: str, cid: str, report: Report) -> None:
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
        if data is not None and status in (statemod.CREATED, statemod.RUNNING, statemod.PAUSED):
            _stale_files(c, report, c.pid)
            return
        if damage is not None:
            why = "damaged state: " + damage.split(": ", 1)[-1]
        elif data is None:
            # No state.json: a create that died before writing it (a live one holds the
            # lock). Empty and young: perhaps one between its mkdir and its flock.
            try:
                young = time.time() - os.stat(path).st_mtime < STALE_EMPTY_DIR_S
                if young and not os.listdir(path):
                    report.kept.append(
                        f"{path}: empty, made less than {STALE_EMPTY_DIR_S:g} s "
                        "ago: perhaps a create about to lock it"
                    )
                    return
            except OSError:
                return
            why = "a create that died before it wrote the container's state"
        else:
            why = f"its init (pid {c.pid}) is gone and no delete removed it"
        try:
            cg = lifecycle.cgroups_of(c)
            pids = sorted(cg.pids(everywhere=True)) if cg is not None else []
        except OcirunError as e:
            report.kept.append(f"{path}: {why}; its cgroups can't be read ({e}): left alone")
            return
        if damage is not None and cg is None:
            report.kept.append(
                f"{path}: {why}; no record of its cgroups or processes: "
                f"`delete --force {cid}` removes it"
            )
            return
        if pids and data is None and damage is None:
            # The init of a create killed before it wrote state.json: it only waits.
            verb = "would be" if report.dry_run else "was"
            why += f"; its init still waited (pids {' '.join(map(str, pids))}): it {verb} killed"
        elif pids:
            report.kept.append(
                f"{path}: {why}; {len(pids)} process(es) still run in its "
                f"cgroups (pids {' '.join(map(str, pids[:8]))}): "
                f"`delete --force {cid}` removes it"
            )
            return
        report.remove("container", path, why, lifecycle._destroy, c, status)
    finally:
        c.close()


# --------------------------------------------------------------------------- cgroups


def _tagged(top: str, name: str, root: str) -> list[tuple[str, dict]]:
    """(dir, tag) of every cgroup below `top` tagged as a container of `root`. A tagged dir's
    subtree is its container's own: not searched."""
    from .cgroups import tag as tagmod

    found, stack = [], [top]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for e in it:
                if not e.is_dir(follow_symlinks=False):
                    continue
                tag = tagmod.read(e.path, name)
                if tag is None:
                    stack.append(e.path)
                elif tag["root"] == root:
                    found.append((e.path, tag))
    return found


def _cgroups(root: str, report: Report) -> None:
    from . import state as statemod
    from .cgroups import CgroupError, from_state
    from .cgroups import tag as tagmod
    from .cgroups.layout import layout
    from .errors import OcirunError

    try:
        lay = layout()
    except (OSError, CgroupError) as e:
        report.kept.append(f"cgroups: not searched: {e}")
        return
    hierarchies, seen = [], set()  # (key as a manager's `dirs` has it, mountpoint)
    for sub, (mp, _) in sorted(lay.v1.items()):
        if mp not in seen:
            seen.add(mp)
            hierarchies.append((sub, mp))
    if lay.unified and lay.unified[0] not in seen:
        hierarchies.append(("", lay.unified[0]))
    by_id: dict[str, tuple[dict, set]] = {}
    for sub, mp in hierarchies:
        for d, tag in _tagged(mp, tagmod.attr_name(), root):
            cid = tag["id"]
            try:
                statemod.check_id(cid)
            except OcirunError:
                continue
            if os.path.lexists(os.path.join(root, cid)):
                continue  # its container's state is there: delete's (or the above's) job
            dirs, parents = by_id.setdefault(cid, ({}, set()))
            dirs[sub] = d
            parents.update(tag["parents"])
    for cid, (dirs, parents) in sorted(by_id.items()):
        made = sorted(parents, key=lambda p: p.count("/")) + sorted(set(dirs.values()))
        m = from_state({"mode": lay.mode, "dirs": dirs, "roots": {}, "created": made})
        try:
            pids = sorted(m.pids(everywhere=True))
        except OcirunError:
            pids = []
        why = f"container {cid} of {root} has no state any more"
        if pids:
            verb = "would be" if report.dry_run else "were"
            why += f"; its processes {verb} killed (pids {' '.join(map(str, pids[:8]))})"

        error = None
        if not report.dry_run:
            try:
                if pids:
                    m.kill_all(9)
                m.destroy()
            except OcirunError as e:
                error = e.message
        for d in sorted(set(dirs.values())):
            f = report.add("cgroup", d, why)
            if error and os.path.exists(d):
                f.error = error


# --------------------------------------------------------------------------- cache


def _cache(root: str, report: Report) -> None:
    from . import cache

    legacy = os.path.join(root, ".cache")
    if os.path.isdir(legacy) and not os.path.islink(legacy):

        def drop():
            cache.drop_legacy(root)
            if os.path.exists(legacy):
                raise OSError(0, "not ours, or not empty")

        report.remove(
            "cache",
            legacy,
            "ocirun's old cache under --root (it lives in "
            f"{cache.base_dir() or 'no directory'} now)",
            drop,
        )
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
                            entries.append((e.name, e.stat(follow_symlinks=False)))
                        except OSError:
                            continue
            except OSError:
                continue
            live = []
            for n, st in entries:
                if not n.endswith(".tmp"):
                    live.append((st.st_mtime_ns, n, st.st_size))
                    continue
                pid = cache.tmp_writer(n)
                if pid is not None and not _alive(pid):
                    report.remove(
                        "cache",
                        os.path.join(directory, n),
                        f"a temporary whose writer (pid {pid}) is gone",
                        os.unlink,
                        n,
                        dir_fd=store.fd,
                    )
            live.sort()
            total = sum(s for _, _, s in live)
            for i, (_, n, size) in enumerate(live):
                if len(live) - i <= cache.MAX_ENTRIES and total <= cache.MAX_BYTES:
                    break
                report.remove(
                    "cache",
                    os.path.join(directory, n),
                    f"beyond the cache's bounds ({cache.MAX_ENTRIES} entries, "
                    f"{cache.MAX_BYTES >> 20} MiB): least recently used",
                    os.unlink,
                    n,
                    dir_fd=store.fd,
                )
                total -= size
