"""Where cgroups are: how this host mounts the hierarchies (mountinfo), which cgroup the
runtime itself is in (/proc/self/cgroup), and where a container's cgroup goes by runc's
rules (cgroupsPath, systemd's slice naming). What create and gc need, not delete.
"""

import os
import posixpath

from .common import ROOT, CgroupError

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


class Layout:
    """Where the hierarchies are: `v1` maps subsystem -> (mountpoint, mount root);
    `unified` is the cgroup2 mount (at `root` in v2 mode, e.g. root/unified in hybrid)."""

    __slots__ = ("root", "mode", "v1", "unified")

    def __init__(self, root: str, mode: str, v1: dict, unified: tuple | None):
        self.root, self.mode, self.v1, self.unified = root, mode, v1, unified


def unescape(s: str) -> str:
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
        mountpoint, mroot = unescape(fields[4]), unescape(fields[3])
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
        st = os.stat(mountpoint)
    except OSError:
        return False
    major, _, minor = dev.partition(":")
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" == f"{major}:{minor}"


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
    if p.startswith("/"):
        return "/" + posixpath.normpath(p).lstrip("/")
    return posixpath.normpath("/" + p).lstrip("/")


def join(base: str, inner: str) -> str:
    inner = inner.strip("/")
    return posixpath.join(base, inner) if inner else base


def under_mount(mountpoint: str, mroot: str, cgroup: str) -> str:
    """Host path of `cgroup` (a path as /proc/self/cgroup shows it) in a hierarchy mounted
    from `mroot`."""
    rel = cgroup
    if mroot not in ("", "/"):
        rel = posixpath.relpath(cgroup, mroot)
        if rel.startswith(".."):
            raise CgroupError(f"cgroup {cgroup} is outside the mount of {mountpoint}")
        if rel == ".":
            rel = ""
    return join(mountpoint, rel)


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
    return join(base, f"{prefix}-{name}.scope" if prefix else f"{name}.scope")


def resolve_dirs(lay: Layout, inner: str, own: dict[str, str]) -> dict[str, str]:
    """{subsystem: host directory}; "" is the cgroup2 directory (v2, or hybrid's)."""
    absolute = inner.startswith("/")
    dirs: dict[str, str] = {}
    if lay.mode == "v2":
        assert lay.unified is not None  # a v2 layout has its cgroup2 mount
        mp, mroot = lay.unified
        if absolute:
            dirs[""] = join(mp, inner)
        else:
            # runc (fs2): the parent of its own cgroup, which likely has processes in it.
            mine = own.get("", "/")
            dirs[""] = join(under_mount(mp, mroot, posixpath.dirname(mine) or "/"), inner)
        return dirs
    for sub in V1_SUBSYSTEMS:
        where = lay.v1.get(sub)
        if where is None:
            continue
        mp, mroot = where
        dirs[sub] = (
            join(mp, inner) if absolute else join(under_mount(mp, mroot, own.get(sub, "/")), inner)
        )
    if "devices" not in dirs:
        raise CgroupError(
            "the devices cgroup controller is not mounted: refusing to run a "
            "container without device restrictions"
        )
    if lay.mode == "hybrid" and lay.unified:
        mp, mroot = lay.unified
        dirs[""] = (
            join(mp, inner) if absolute else join(under_mount(mp, mroot, own.get("", "/")), inner)
        )
    return dirs


def own_cgroups(text: str | None = None) -> dict[str, str]:
    if text is None:
        with open("/proc/self/cgroup") as f:
            text = f.read()
    return parse_self_cgroup(text)


def mount_roots(lay: Layout, dirs: dict[str, str]) -> dict[str, str]:
    """{subsystem: the mountpoint its directory is below} for the keys of `dirs` (where a
    manager's mkdir starts)."""
    roots = {sub: lay.v1[sub][0] for sub in dirs if sub}
    if "" in dirs:
        assert lay.unified is not None  # "" is the cgroup2 mount's directory
        roots[""] = lay.unified[0]
    return roots
