"""What the v1 and v2 managers share: the error, file access, how the host mounts cgroups,
where a container's cgroup goes (runc's rules), device rules, and the manager's skeleton.

Stdlib only and cheap to import: it is on the hot path of `create` and `delete`; what only
create needs (posixpath, for the cgroup's path) is imported there.
"""

import posix  # not os: delete and kill --all use this module (see ../paths.py)
import time

from ..errors import OcirunError
from ..paths import exists, in_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

ROOT = "/sys/fs/cgroup"

# The v1 hierarchies a container joins, in the order runc walks them (name=systemd and misc
# are joined without limits).
V1_SUBSYSTEMS = (
    "cpuset",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "pids",
    "blkio",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "freezer",
    "rdma",
    "name=systemd",
    "misc",
)
_V1_CONTROLLERS = frozenset(s for s in V1_SUBSYSTEMS if not s.startswith("name="))

KERNEL_MEMORY_WARNING = "Kernel memory settings are ignored and will be removed"


class CgroupError(OcirunError):
    """A cgroup could not be made, configured, read or removed. For a rejected write,
    `path`, `value` and `errno` say which file, what was written and why."""

    def __init__(
        self, message: str, path: str | None = None, value: str | None = None, errno: int = 0
    ):
        super().__init__(message)
        self.path, self.value, self.errno = path, value, errno


def _strerror(e: OSError) -> str:
    # Go's (and so runc's) wording is lower case: "invalid argument".
    return posix.strerror(e.errno).lower() if e.errno else str(e)


class FS:
    """cgroupfs, one kernel call a method: what a manager does to the system goes through
    its `fs`. Tests substitute a fake (a directory tree whose mkdir makes the knobs, and
    that records the device filter instead of loading it)."""

    def mkdir(self, path: str) -> None:
        posix.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        posix.rmdir(path)

    def read(self, path: str) -> str:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            chunks = []
            while True:
                b = posix.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode()
        finally:
            posix.close(fd)

    def write(self, path: str, data: str) -> None:
        # No O_CREAT: a knob the kernel lacks must fail (ENOENT), not appear.
        fd = posix.open(path, posix.O_WRONLY | posix.O_TRUNC | posix.O_CLOEXEC)
        try:
            posix.write(fd, data.encode())
        finally:
            posix.close(fd)

    def exists(self, path: str) -> bool:
        return exists(path)

    def subdirs(self, path: str) -> list[str]:
        try:
            with posix.scandir(path) as it:
                return [e.path for e in it if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    def attach_device_filter(self, path: str, rules: list[dict]) -> int:
        """Make `rules` (devices.device_rules) the device filter of cgroup2 directory `path`:
        an eBPF program, replacing the one there before (ebpf.attach)."""
        from . import ebpf  # the compiled shim: create and update only

        return ebpf.attach(path, rules)

    def wait_for(self, path: str, key: str, value: str, timeout: float) -> bool:
        """Wait until the flat-keyed file (cgroup v2 `cgroup.events`) has `key value`.
        The kernel flags a change with POLLPRI, so no sleep loop on real cgroupfs."""
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except FileNotFoundError:
            return True  # the cgroup is gone: nothing left to wait for
        try:
            p = None  # made when the first read does not match: `select` is an extension
            deadline = time.monotonic() + timeout
            while True:
                posix.lseek(fd, 0, 0)
                try:
                    text = posix.read(fd, 4096).decode()
                except OSError:
                    return True  # ENODEV: removed under us
                if flat_keyed(text).get(key) == value:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if p is None:
                    import select

                    # kernfs counts events from the open, so one since then still shows.
                    p = select.poll()
                    p.register(fd, select.POLLPRI)
                events = p.poll(left * 1000)
                if not any(ev & (select.POLLPRI | select.POLLERR) for _, ev in events):
                    time.sleep(min(0.005, max(left, 0)))  # a regular file (tests): no POLLPRI
        finally:
            posix.close(fd)


DEFAULT_FS = FS()


def write_file(fs: FS, path: str, value: str) -> None:
    try:
        fs.write(path, value)
    except OSError as e:
        if e.errno == 2 and not fs.exists(path):
            raise CgroupError(f"open {path}: {_strerror(e)}", path, value, e.errno) from None
        raise CgroupError(
            f'failed to write "{value}": write {path}: {_strerror(e)}', path, value, e.errno or 0
        ) from None


def read_file(fs: FS, path: str) -> str:
    try:
        return fs.read(path)
    except OSError as e:
        raise CgroupError(f"open {path}: {_strerror(e)}", path, None, e.errno or 0) from None


def read_opt(fs: FS, path: str) -> str | None:
    """The file's text, or None when it does not exist (an optional knob)."""
    try:
        return fs.read(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == 19:  # ENODEV: the cgroup was removed meanwhile
            return None
        raise CgroupError(f"open {path}: {_strerror(e)}", path, None, e.errno or 0) from None


def flat_keyed(text: str) -> dict[str, str]:
    """`key value` lines (cgroup.events, memory.stat, cpu.stat, memory.oom_control)."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k:
            out[k] = v.strip()
    return out


def to_int(text: str | None, default: int = 0) -> int:
    """A number as cgroupfs prints it; "max" reads as 2**64-1 (as runc reports it)."""
    if text is None:
        return default
    text = text.strip()
    if text == "max":
        return 2**64 - 1
    try:
        return int(text)
    except ValueError:
        return default


# ---------------------------------------------------------------- how the host mounts cgroups


class Layout:
    """Where the hierarchies are: `v1` maps subsystem -> (mountpoint, mount root);
    `unified` is the cgroup2 mount (at `root` in v2 mode, e.g. root/unified in hybrid)."""

    __slots__ = ("root", "mode", "v1", "unified")

    def __init__(self, root: str, mode: str, v1: dict, unified: tuple | None):
        self.root, self.mode, self.v1, self.unified = root, mode, v1, unified


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 4 <= len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str, root: str = ROOT, visible=None) -> Layout:
    """The cgroup hierarchies mountinfo lists under `root`. `visible(mountpoint, dev)`, if
    given, drops an entry whose filesystem is not the one found at its mountpoint now."""
    root = root.rstrip("/") or "/"
    v1: dict = {}
    unified = None
    v2_root = None
    for line in text.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields = pre.split()
        rest = post.split()
        if len(fields) < 5 or not rest:
            continue
        fstype = rest[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mountpoint, mroot = _unescape(fields[4]), _unescape(fields[3])
        if mountpoint != root and not mountpoint.startswith(root + "/"):
            continue
        if visible is not None and not visible(mountpoint, fields[2]):
            continue
        if fstype == "cgroup2":
            if mountpoint == root:
                v2_root = (mountpoint, mroot)
            elif unified is None:
                unified = (mountpoint, mroot)
            continue
        for opt in (rest[2] if len(rest) > 2 else "").split(","):
            if opt in _V1_CONTROLLERS or opt.startswith("name="):
                v1.setdefault(opt, (mountpoint, mroot))
    if v2_root is not None:
        return Layout(root, "v2", {}, v2_root)
    if v1:
        return Layout(root, "hybrid" if unified else "v1", v1, unified)
    if unified is not None:
        return Layout(root, "v2", {}, unified)
    raise CgroupError(f"no cgroup mount found under {root}")


def is_mounted_at(mountpoint: str, dev: str) -> bool:
    """Is the filesystem found at `mountpoint` the one mountinfo lists there as `dev`
    ("major:minor", its superblock)? Not when something was mounted over it since: a tmpfs
    over /sys/fs/cgroup/unified hides the cgroup2 mount (benchmarks do it for crun), and
    its directory is no cgroup (clone3 CLONE_INTO_CGROUP: EBADF). So a cgroup filesystem
    is recognised by what is there, as statfs's f_type would (Python has no statfs): the
    superblock at the path must be the one the kernel calls cgroup or cgroup2."""
    try:
        st = posix.stat(mountpoint)
    except OSError:
        return False
    major, _, minor = dev.partition(":")
    return f"{posix.major(st.st_dev)}:{posix.minor(st.st_dev)}" == f"{major}:{minor}"


_layouts: dict = {}


def layout(root: str = ROOT, mountinfo: str | None = None) -> Layout:
    """This host's layout (the hierarchies really found at their mountpoints), or the one
    `mountinfo` (a file's text: tests) describes."""
    if mountinfo is not None:
        return parse_mountinfo(mountinfo, root)
    got = _layouts.get(root)
    if got is None:
        with open("/proc/self/mountinfo") as f:
            got = _layouts[root] = parse_mountinfo(f.read(), root, is_mounted_at)
    return got


def parse_self_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup as {subsystem: path}; "" is the cgroup2 line (0::/path)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if not parts[1]:
            out.setdefault("", parts[2])
        for c in parts[1].split(","):
            if c:
                out.setdefault(c, parts[2])
    return out


# ---------------------------------------------------------------- where the cgroup goes


def clean_path(p: str) -> str:
    """runc's CleanPath: lexical, and a relative path can't climb out of its base."""
    if not p:
        return ""
    import posixpath

    if p.startswith("/"):
        return "/" + posixpath.normpath(p).lstrip("/")
    return posixpath.normpath("/" + p).lstrip("/")


def _join(base: str, inner: str) -> str:
    inner = inner.strip("/")
    return in_dir(base, inner) if inner else base


def _under_mount(mountpoint: str, mroot: str, cgroup: str) -> str:
    """Host path of `cgroup` (a path as /proc/self/cgroup shows it) in a hierarchy mounted
    from `mroot`."""
    rel = cgroup
    if mroot not in ("", "/"):
        import posixpath

        rel = posixpath.relpath(cgroup, mroot)
        if rel.startswith(".."):
            raise CgroupError(f"cgroup {cgroup} is outside the mount of {mountpoint}")
        if rel == ".":
            rel = ""
    return _join(mountpoint, rel)


def expand_slice(slice_: str) -> str:
    """systemd's slice naming: "a-b-c.slice" lives at /a.slice/a-b.slice/a-b-c.slice."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise CgroupError(f"invalid slice name: {slice_}")
    name = slice_[: -len(".slice")]
    if name == "-":
        return "/"
    if not name or "--" in name or name.startswith("-") or name.endswith("-"):
        raise CgroupError(f"invalid slice name: {slice_}")
    path, prefix = "", ""
    for part in name.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        path += f"/{prefix}.slice"
    return path


def inner_path(linux: dict, cid: str, systemd: bool) -> str:
    """The cgroup's path below a hierarchy: absolute ("/a/b") as given, relative ("a/b")
    for "under the runtime's own cgroup". An absent cgroupsPath means the container id
    relative to the runtime's cgroup (runc's cgroupfs driver)."""
    raw = linux.get("cgroupsPath") or ""
    if not systemd:
        return clean_path(raw) if raw else cid
    # --systemd-cgroup: "slice:prefix:name" (runc's format), laid out as systemd would.
    if not raw:
        parent, prefix, name = "system.slice", "runc", cid
    else:
        parts = raw.split(":")
        if len(parts) != 3:
            raise CgroupError(
                'expected cgroupsPath to be of format "slice:prefix:name" for '
                f'systemd cgroups, got "{raw}" instead'
            )
        parent, prefix, name = parts[0] or "system.slice", parts[1], parts[2]
    if name.endswith(".slice"):
        return expand_slice(name)
    base = expand_slice(parent)
    return _join(base, f"{prefix}-{name}.scope" if prefix else f"{name}.scope")


def resolve_dirs(lay: Layout, inner: str, own: dict[str, str]) -> dict[str, str]:
    """{subsystem: host directory}; "" is the cgroup2 directory (v2, or hybrid's)."""
    absolute = inner.startswith("/")
    dirs: dict[str, str] = {}
    if lay.mode == "v2":
        assert lay.unified is not None  # a v2 layout has its cgroup2 mount
        mp, mroot = lay.unified
        if absolute:
            dirs[""] = _join(mp, inner)
        else:
            # runc (fs2): the parent of its own cgroup, which likely has processes in it.
            mine = own.get("", "/")
            import posixpath

            dirs[""] = _join(_under_mount(mp, mroot, posixpath.dirname(mine) or "/"), inner)
        return dirs
    for sub in V1_SUBSYSTEMS:
        where = lay.v1.get(sub)
        if where is None:
            continue
        mp, mroot = where
        dirs[sub] = (
            _join(mp, inner)
            if absolute
            else _join(_under_mount(mp, mroot, own.get(sub, "/")), inner)
        )
    if "devices" not in dirs:
        raise CgroupError(
            "the devices cgroup controller is not mounted: refusing to run a "
            "container without device restrictions"
        )
    if lay.mode == "hybrid" and lay.unified:
        mp, mroot = lay.unified
        dirs[""] = (
            _join(mp, inner)
            if absolute
            else _join(_under_mount(mp, mroot, own.get("", "/")), inner)
        )
    return dirs


def own_cgroups(text: str | None = None) -> dict[str, str]:
    if text is None:
        with open("/proc/self/cgroup") as f:
            text = f.read()
    return parse_self_cgroup(text)


# ---------------------------------------------------------------- the manager's skeleton


class Manager:
    """One container's cgroup(s). `dirs` maps subsystem -> directory; `created` lists the
    directories create() made (parents first), the only ones destroy() removes."""

    mode = ""

    def __init__(
        self,
        dirs: dict[str, str],
        *,
        linux: dict | None = None,
        created: list[str] | None = None,
        roots: dict | None = None,
        fs: "FS | None" = None,
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
        import posixpath

        missing: list[str] = []
        for sub, d in self.dirs.items():
            top = self.roots.get(sub, "")
            rel = posixpath.relpath(d, top) if top else ""
            if not top or rel == "." or rel.startswith(".."):
                continue
            cur = top
            for part in rel.split("/"):
                cur = in_dir(cur, part)
                if cur not in missing and not self.fs.exists(cur):
                    missing.append(cur)
        return dict(self.paths, created=missing)

    def visible_dirs(self) -> dict[str, str]:
        """Where the container's processes are, hierarchy by hierarchy: its own cgroups,
        and the caller's where rootless skipped one (what a `cgroup` mount binds)."""
        return {**self.skipped, **self.dirs}

    def path(self, subsystem: str) -> str | None:
        return self.dirs.get(subsystem)

    def exists(self) -> bool:
        d = self._main_dir()
        return self.fs.exists(d) if d else False

    # -- creation helpers
    def _mkdirs(self) -> None:
        import posixpath

        seen = set()
        for sub, d in self.dirs.items():
            if d in seen:
                continue  # co-mounted controllers ("cpu,cpuacct") share a directory
            seen.add(d)
            top = self.roots.get(sub, "")
            rel = posixpath.relpath(d, top) if top else ""
            if not top or rel == "." or rel.startswith(".."):
                if not self.fs.exists(d):
                    raise CgroupError(f"cgroup hierarchy {top or d} is not mounted")
                continue
            cur = top
            for part in rel.split("/"):
                cur = in_dir(cur, part)
                try:
                    self.fs.mkdir(cur)
                except FileExistsError:
                    continue
                except OSError as e:
                    raise CgroupError(
                        f"mkdir {cur}: {_strerror(e)}", cur, None, e.errno or 0
                    ) from None
                self.created.append(cur)

    def _write(self, d: str, name: str, value) -> None:
        write_file(self.fs, in_dir(d, name), str(value))

    def _read(self, d: str, name: str) -> str:
        return read_file(self.fs, in_dir(d, name))

    def _opt(self, d: str, name: str) -> str | None:
        return read_opt(self.fs, in_dir(d, name))

    def _has(self, d: str, name: str) -> bool:
        return self.fs.exists(in_dir(d, name))

    def add(self, pid: int) -> None:
        """Move `pid` (and so everything it forks later) into the cgroup(s)."""
        for d in _unique(self.dirs.values()):
            path = in_dir(d, "cgroup.procs")
            for attempt in range(5):
                try:
                    self.fs.write(path, str(pid))
                    break
                except OSError as e:
                    # EINVAL: a task still in TASK_NEW (just cloned); it settles quickly.
                    if e.errno == 22 and attempt < 4:
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
        v1 = _unique(d for sub, d in self.dirs.items() if sub)  # co-mounted ones share one
        return [in_dir(d, "tasks") for d in v1], self.dirs.get("")

    def pids(self, everywhere: bool = False) -> list[int]:
        """Every process in the cgroup and its sub-cgroups; `everywhere`: in any of the
        container's directories (v1: a process may have been put in some hierarchies only)."""
        d = self._main_dir()
        out: list[int] = []
        seen = set()
        stack = _unique(self.dirs.values()) if everywhere else [d] if d else []
        while stack:
            cur = stack.pop()
            text = read_opt(self.fs, in_dir(cur, "cgroup.procs"))
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
                posix.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_all(self, sig: int) -> None:
        """Signal every process; frozen meanwhile so none forks past the signal. After
        SIGKILL the cgroup is left thawed, even one that was frozen before (paused, or by a
        kill_all that died midway): a v1-frozen task dies only once thawed, and whoever
        killed it is about to wait for that."""
        can_freeze = self._can_freeze()
        frozen = False
        try:
            if can_freeze and self.state() != "FROZEN":
                try:
                    self.freeze()
                    frozen = True
                except CgroupError:
                    if sig != 9:
                        raise
                    # stuck FREEZING: kill it anyway, as runc does (with a warning)
            self._signal_each(sig)
        finally:
            if frozen or (can_freeze and sig == 9):  # SIGKILL
                self.thaw()

    def device_rules(self) -> list[dict]:
        """The effective device rules (see devices.device_rules), for v2's eBPF program."""
        from .devices import device_rules

        return device_rules(self.linux)

    # -- what each driver implements (v1.py, v2.py)
    def create(self) -> list[str]:
        raise NotImplementedError

    def update(self, resources: dict) -> list[str]:
        raise NotImplementedError

    def stats(self) -> dict:
        raise NotImplementedError

    def oom_count(self) -> int:
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
                if e.errno != 16 or time.monotonic() >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _wait_empty(self) -> None:
        """Give exiting tasks a moment to leave before rmdir (cgroup2 tells us when)."""
        d = self.dirs.get("")
        if d and self.fs.exists(in_dir(d, "cgroup.events")):
            self.fs.wait_for(in_dir(d, "cgroup.events"), "populated", "0", 1.0)

    # -- to be provided by v1/v2
    def _main_dir(self) -> str | None:
        raise NotImplementedError

    def _can_freeze(self) -> bool:
        raise NotImplementedError

    def state(self) -> str:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError


def _unique(items: "Iterable[str]") -> list[str]:
    seen, out = set(), []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def omit_empty(d: dict, keys: "Iterable[str]") -> dict:
    """Drop the keys Go's `omitempty` would (zero, empty list/map, None)."""
    for k in keys:
        if k in d and not d[k]:
            del d[k]
    return d
