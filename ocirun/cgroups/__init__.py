"""The container's cgroups: make them, put processes in, limit, freeze, signal, read, remove.

    m = open_manager(config["linux"], cid)     # paths by runc's rules, nothing made yet
    warnings = m.create()                      # mkdir + linux.resources (+ v1 device rules)
    m.add(pid)                                 # before the init runs anything of the user's
    state["cgroup_paths"] = m.paths            # JSON; from_state(m.paths) reopens it later
    m.freeze(); m.thaw(); m.state(); m.pids(); m.kill_all(sig); m.update(resources)
    m.stats(); m.oom_count(); m.device_rules(); m.destroy()

v1 and hybrid hosts get a V1Manager (one directory per mounted hierarchy, name=systemd and,
in hybrid mode, the controller-less cgroup2 tree too: "" in `dirs`); v2 hosts a V2Manager;
--systemd-cgroup a SystemdManager around one of those. All have interface.Manager.

    common.py    the error, cgroupfs access (FS), knob readers and parsers
    cgroupfs.py  V1Manager's and V2Manager's base: mkdir, add, pids, kill, destroy
    v1.py v2.py  the two cgroupfs versions: limits, freezer; stats.py what they report
    layout.py    how the host mounts cgroups, where a container's cgroup goes (runc's rules)
    devices.py   the device rules (v1 files; ebpf.py compiles them for v2)
    systemd.py   --systemd-cgroup (units.py: its properties; sdbus.py: the calls to
                 systemd, over bus.py (the connection) and dbus.py (the wire format))
    rootless.py  runc's rootless cgroup manager; tag.py: which cgroups are ours (gc)

delete and kill --all load this, common, cgroupfs and v1 or v2 only: none imports os or
typing (see common.py); the rest load on first use.
"""

from .._lean import TYPE_CHECKING
from .common import DEFAULT_FS, ROOT, CgroupError

if TYPE_CHECKING:  # interface.py loads typing (~2 ms): delete and kill --all must not
    from .cgroupfs import CgroupfsManager
    from .common import FS
    from .interface import Manager

__all__ = ["CgroupError", "cgroupfs_manager", "from_state", "open_manager"]


def cgroupfs_manager(
    mode: str,
    dirs: dict[str, str],
    *,
    linux: dict | None = None,
    roots: dict | None = None,
    created: list[str] | None = None,
    fs: "FS | None" = None,
) -> "CgroupfsManager":
    """The V1Manager ("v1", "hybrid") or V2Manager ("v2") on `dirs` (the one place either is
    made: for open_manager, from_state and the systemd driver's cgroupfs half)."""
    kw: dict = dict(linux=linux, roots=roots, created=created, fs=fs)
    if mode == "v2":
        from .v2 import V2Manager

        return V2Manager(dirs, **kw)
    from .v1 import V1Manager

    return V1Manager(dirs, mode=mode or "v1", **kw)


def open_manager(
    linux: dict | None,
    cid: str,
    *,
    systemd: bool = False,
    root: str = ROOT,
    mountinfo: str | None = None,
    self_cgroup: str | None = None,
    fs: "FS | None" = None,
    rootless: bool = False,
) -> "Manager":
    """The manager for config["linux"] (cgroupsPath, resources, devices) of container `cid`.

    cgroupsPath as runc's cgroupfs driver takes it: "/a/b" below each hierarchy's root,
    "a/b" below the runtime's own cgroup (v2: its parent), absent = "<cid>" relative.
    With `systemd`, "slice:prefix:name" (default system.slice:runc:<cid>) becomes a transient
    systemd scope made over D-Bus (cgroups/systemd.py), limits set both ways.
    With `rootless` (runc's rootless cgroup manager) and no cgroupsPath, a hierarchy the
    caller cannot write is skipped: the container stays in the caller's cgroup there, and
    a limit that needs it fails (v1: "cannot set <what> limit", v2: before anything).
    `mountinfo`, `self_cgroup` (file texts) and `fs` are for tests."""
    if systemd:
        from .systemd import open_manager as systemd_manager

        return systemd_manager(linux, cid, root=root, mountinfo=mountinfo, fs=fs)
    from .layout import inner_path, layout, mount_roots, own_cgroups, resolve_dirs

    linux = linux or {}
    res = linux.get("resources") or {}
    lay = layout(root, mountinfo)
    inner = inner_path(linux, cid, systemd)
    own = {} if inner.startswith("/") else own_cgroups(self_cgroup)
    dirs = resolve_dirs(lay, inner, own)
    roots = mount_roots(lay, dirs)
    skipped: dict = {}
    if rootless and not linux.get("cgroupsPath"):
        from .rootless import asks_limits, skip_unwritable

        skipped = skip_unwritable(lay, dirs, roots, own, fs or DEFAULT_FS)
        if lay.mode == "v2" and skipped and asks_limits(res):
            raise CgroupError(
                "rootless needs no limits + no cgrouppath when no permission "
                f"is granted for cgroups: {skipped['']} is not writable"
            )
    if lay.mode != "v2":
        from .v1 import check

        check(res)  # fail before anything is made
    m = cgroupfs_manager(lay.mode, dirs, linux=linux, roots=roots, fs=fs)
    m.rootless, m.skipped = rootless, skipped
    return m


def from_state(paths: dict, *, fs: "FS | None" = None) -> "Manager":
    """Reopen the manager `m.paths` described (for kill --all, pause, ps, update, delete)."""
    if not isinstance(paths, dict) or "dirs" not in paths:
        raise CgroupError("no cgroup paths in the container's state")
    if paths.get("driver") == "systemd":
        from .systemd import from_state as systemd_state

        return systemd_state(paths, fs=fs)
    return cgroupfs_manager(
        paths.get("mode") or "v1",
        dict(paths["dirs"]),
        roots=paths.get("roots") or {},
        created=paths.get("created") or [],
        fs=fs,
    )
