"""The container's cgroups: make them, put processes in, limit, freeze, signal, read, remove.

    m = open_manager(config["linux"], cid)     # paths by runc's rules, nothing made yet
    warnings = m.create()                      # mkdir + linux.resources (+ v1 device rules)
    m.add(pid)                                 # before the init runs anything of the user's
    state["cgroup_paths"] = m.paths            # JSON; from_state(m.paths) reopens it later
    m.freeze(); m.thaw(); m.state(); m.pids(); m.kill_all(sig); m.update(resources)
    m.stats(); m.oom_count(); m.device_rules(); m.destroy()

v1 and hybrid hosts get a V1Manager (one directory per mounted hierarchy, name=systemd and,
in hybrid mode, the controller-less cgroup2 tree too: "" in `dirs`); v2 hosts a V2Manager.
Stdlib only; the v1/v2 modules load on first use.
"""

from .common import ROOT, CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .common import FS, Manager

__all__ = ["CgroupError", "detect_mode", "open_manager", "from_state", "shares_to_weight"]


def detect_mode(root: str = ROOT, mountinfo: str | None = None) -> str:
    """ "v2" (cgroup2 at root), "hybrid" (v1 controllers plus a cgroup2 mount) or "v1"."""
    from .common import layout

    return layout(root, mountinfo).mode


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

        # SystemdManager has Manager's interface around a Manager (duck-typed, not a subclass)
        return systemd_manager(linux, cid, root=root, mountinfo=mountinfo, fs=fs)  # type: ignore[return-value]
    from . import common

    linux = linux or {}
    res = linux.get("resources") or {}
    lay = common.layout(root, mountinfo)
    inner = common.inner_path(linux, cid, systemd)
    own = {} if inner.startswith("/") else common.own_cgroups(self_cgroup)
    dirs = common.resolve_dirs(lay, inner, own)
    roots = {sub: lay.v1[sub][0] for sub in dirs if sub}
    if "" in dirs:
        assert lay.unified is not None  # "" is the cgroup2 mount's directory
        roots[""] = lay.unified[0]
    skipped: dict = {}
    if rootless and not linux.get("cgroupsPath"):
        from .rootless import asks_limits, skip_unwritable

        skipped = skip_unwritable(lay, dirs, roots, own, fs or common.DEFAULT_FS)
        if lay.mode == "v2" and skipped and asks_limits(res):
            raise CgroupError(
                "rootless needs no limits + no cgrouppath when no permission "
                f"is granted for cgroups: {skipped['']} is not writable"
            )
    if lay.mode == "v2":
        from .v2 import V2Manager

        m: Manager = V2Manager(dirs, linux=linux, roots=roots, fs=fs)
    else:
        from .v1 import V1Manager, check

        check(res)  # fail before anything is made
        m = V1Manager(dirs, mode=lay.mode, linux=linux, roots=roots, fs=fs)
    m.rootless, m.skipped = rootless, skipped
    return m


def from_state(paths: dict, *, fs: "FS | None" = None) -> "Manager":
    """Reopen the manager `m.paths` described (for kill --all, pause, ps, update, delete)."""
    if not isinstance(paths, dict) or "dirs" not in paths:
        raise CgroupError("no cgroup paths in the container's state")
    if paths.get("driver") == "systemd":
        from .systemd import from_state as systemd_state

        return systemd_state(paths, fs=fs)  # type: ignore[return-value]
    kw: dict = dict(roots=paths.get("roots") or {}, created=paths.get("created") or [], fs=fs)
    if paths.get("mode") == "v2":
        from .v2 import V2Manager

        return V2Manager(dict(paths["dirs"]), **kw)
    from .v1 import V1Manager

    return V1Manager(dict(paths["dirs"]), mode=paths.get("mode") or "v1", **kw)


def shares_to_weight(shares: int) -> int:
    """cpu.shares -> cgroup v2 cpu.weight, as current runc/crun convert."""
    from .v2 import shares_to_weight as conv

    return conv(shares)
