"""spec -> plan, the rootfs part: the container's mounts, /dev nodes and symlinks.

Called by `plan.build()` for a container with a new mount namespace; it fills in the
plan's `rootfs` section (path, propagation, mounts, devices, symlinks, masked and read-only
paths). Pure as the rest of the planner: what it needs to know about the host (is a bind
source a directory? how are cgroups mounted?) comes in as arguments.
"""

from __future__ import annotations

import os
import posixpath

from ._lean import Callable
from .defaults import DEFAULT_DEVICE_NODES
from .plan_namespaces import idmap_text
from .plan_records import MNT_DIR, MNT_FILE, CgroupLayout, Device, Mount, Plan
from .tables import (
    MOUNT_ATTR__ATIME,
    MOUNT_FLAGS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_UNBINDABLE,
    NAMESPACES,
    PROPAGATION,
    RECURSIVE_MOUNT_ATTRS,
)

S_IFCHR, S_IFBLK, S_IFIFO = 0o020000, 0o060000, 0o010000

DEFAULT_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)

# Flags a read-only (or otherwise restricted) bind needs a second, remount call for.
_REMOUNT_MASK = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC


def rootfs(
    plan: Plan,
    config: dict,
    linux: dict,
    bundle: str,
    new: set[str],
    is_dir: Callable[[str], bool],
    cgroups: CgroupLayout,
    problems: list[str],
    is_nodev: Callable[[str], bool] = lambda path: False,
    is_proc_root: Callable[[str], bool] = lambda path: False,
) -> None:
    """The rootfs part of `plan`; what the config gets wrong goes to `problems`.
    `is_nodev(path)`: whether the host mounts `path` nodev (the rootfs); `is_proc_root`:
    whether a bind source is the root of a procfs."""
    root = config.get("root") or {}
    plan.rootfs.setup_rootfs = True
    plan.rootfs.path = posixpath.normpath(posixpath.join(bundle, root.get("path", "rootfs")))
    plan.rootfs.rootfs_readonly = bool(root.get("readonly"))
    prop = linux.get("rootfsPropagation")
    if prop:
        flag = PROPAGATION[prop]
        if prop in ("unbindable", "runbindable"):
            # pivot on a slave root, then make it so.
            plan.rootfs.root_propagation, plan.rootfs.root_propagation_end = MS_SLAVE | MS_REC, flag
        elif prop in ("shared", "rshared"):
            # As runc: / keeps (or joins) the host's peer groups from the start, so a shared
            # bind volume stays in the host's group and mounts made inside reach the host
            # (Kubernetes' Bidirectional propagation). pivot_root only needs the rootfs's own
            # mount and its parent not to be shared: rootfs_parent_unshared sees to that.
            plan.rootfs.root_propagation = plan.rootfs.root_propagation_end = flag
        else:
            plan.rootfs.root_propagation = flag
    in_userns = "user" in new or any(t == NAMESPACES["user"] for _, t in plan.ns.joins)
    # Bind sources are copied (open_tree) by the runtime where it may: not as a non-root
    # caller, who has no power over its own mount namespace (the init binds them, as runc).
    detach = in_userns and os.geteuid() == 0
    if not in_userns:
        from .rootless import in_user_namespace

        # the runtime itself in a user namespace (rootless podman runs it so): no mknod, no
        # cgroup v1 mount either
        in_userns = in_user_namespace()
    dev_bound = False
    has_devpts = False
    for i, m in enumerate(config.get("mounts") or []):
        dest = m["destination"]
        if not dest.startswith("/"):
            dest = "/" + dest  # relative destinations (1.2) are relative to the root
        dest = posixpath.normpath(dest)
        if m.get("type") == "cgroup":
            plan.rootfs.mounts.extend(
                _cgroup_mounts(dest, m.get("options") or [], cgroups, "cgroup" in new, in_userns)
            )
            continue
        mount = _mount(dest, m, bundle, is_dir, problems, f"/mounts/{i}")
        if mount.flags & MS_BIND:
            _idmap(mount, m, linux, "user" in new, problems, f"/mounts/{i}")
        if (detach or mount.idmap) and mount.flags & MS_BIND:
            mount.detached = True
            kind = plan.rootfs.root_propagation & (
                MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE
            )
            mount.moved_propagation = kind | MS_REC if kind else 0
        _check_proc_mount(dest, mount, is_proc_root, problems, f"/mounts/{i}")
        if dest == "/dev" and mount.flags & MS_BIND:
            dev_bound = True
        elif dest == "/dev" and mount.flags & MS_RDONLY:
            # As runc: /dev is mounted writable, filled (devices, links, /dev/pts, the
            # console), then made read-only (finalizeRootfs).
            mount.flags &= ~MS_RDONLY
            plan.rootfs.dev_readonly = True
        if dest == "/dev/pts" and mount.fstype == "devpts":
            has_devpts = True
        plan.rootfs.mounts.append(mount)
    if not dev_bound:
        mounted = {m.target for m in plan.rootfs.mounts}
        _devices(plan, linux, in_userns, mounted)
        plan.rootfs.symlinks = list(DEFAULT_LINKS)
        if has_devpts:
            plan.rootfs.symlinks.append(("pts/ptmx", "/dev/ptmx"))
    plan.rootfs.reopen_dev_null = _reopen_dev_null(plan, linux, dev_bound, is_nodev)
    plan.rootfs.masked_paths = [_in_root(p) for p in linux.get("maskedPaths") or []]
    plan.rootfs.readonly_paths = [_in_root(p) for p in linux.get("readonlyPaths") or []]


def _in_root(path: str) -> str:
    """A path as the container sees it: relative ones from its /, "/dev/fuse/" as /dev/fuse
    (runc joins them with the rootfs and cleans them)."""
    return posixpath.normpath("/" + path.lstrip("/"))


# Files under /proc a bind may cover (lxcfs's), as runc allows; nothing else under /proc.
_PROC_BINDS = frozenset(
    (
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/sys/kernel/ns_last_pid",
    )
)


def _check_proc_mount(
    dest: str,
    mount: Mount,
    is_proc_root: Callable[[str], bool],
    problems: list[str],
    where: str,
) -> None:
    """Only a real procfs at /proc: a new one, or (as runc) a bind of the root of one, e.g.
    the host's /proc for a container sharing the host's pid namespace where a new procfs
    may not be mounted (rootless podman --pid=host). Under it, only binds over lxcfs's
    files (a bind of a host directory at /proc, or a tmpfs over /proc/sys, would hide or
    fake the kernel's interfaces the runtime and the container rely on)."""
    if dest == "/proc":
        bound_procfs = bool(mount.flags & MS_BIND) and is_proc_root(mount.source or "")
        if mount.fstype != "proc" and not bound_procfs:
            problems.append(f"{where}/destination: only a proc filesystem may be mounted at /proc")
    elif dest.startswith("/proc/") and dest not in _PROC_BINDS:
        problems.append(f"{where}/destination: {dest} is under /proc: not allowed")


def _mount(
    dest: str, m: dict, bundle: str, is_dir: Callable[[str], bool], problems: list[str], where: str
) -> Mount:
    flags = propagation = attr_set = attr_clr = 0
    data: list[str] = []
    copyup = False
    idmap_opt = None
    for opt in m.get("options") or []:
        if opt == "tmpcopyup":
            copyup = True
        elif opt in MOUNT_FLAGS:
            set_, clear = MOUNT_FLAGS[opt]
            flags = (flags | set_) & ~clear
        elif opt in PROPAGATION:
            propagation |= PROPAGATION[opt]
        elif opt in RECURSIVE_MOUNT_ATTRS:
            set_, clear = RECURSIVE_MOUNT_ATTRS[opt]
            if clear & MOUNT_ATTR__ATIME:  # a new atime replaces the old one
                attr_set &= ~MOUNT_ATTR__ATIME
            attr_set = (attr_set & ~clear) | set_
            attr_clr = (attr_clr & ~set_) | clear
        elif opt in ("idmap", "ridmap"):
            idmap_opt = opt
        else:
            data.append(opt)
    source = m.get("source")
    if flags & MS_BIND:
        if not source:
            problems.append(f"{where}/source: a bind mount needs a source")
            source = ""
        elif not source.startswith("/"):
            source = posixpath.join(bundle, source)
        kind = MNT_DIR if is_dir(source) else MNT_FILE
        # mount(2) ignores everything but MS_BIND|MS_REC on a bind: the rest is a remount.
        remount = flags & (_REMOUNT_MASK | MS_STRICTATIME)
        return Mount(
            target=dest,
            source=source,
            fstype=None,
            data=None,
            flags=flags & (MS_BIND | MS_REC),
            remount=remount,
            propagation=propagation,
            kind=kind,
            attr_set=attr_set,
            attr_clr=attr_clr,
            idmap_recursive=idmap_opt == "ridmap",
        )
    fstype = m.get("type") or source or "none"
    if copyup and fstype != "tmpfs":
        problems.append(f"{where}/options: tmpcopyup is for tmpfs mounts")
    if idmap_opt or m.get("uidMappings") or m.get("gidMappings"):
        problems.append(f"{where}: idmapped mounts are for bind mounts (type {fstype!r})")
    return Mount(
        target=dest,
        source=source or fstype,
        fstype=fstype,
        data=",".join(data) or None,
        flags=flags,
        propagation=propagation,
        copyup=copyup,
        inherit_mode=fstype == "tmpfs" and not any(d.startswith("mode=") for d in data),
        dir_only=fstype in ("proc", "sysfs"),
        attr_set=attr_set,
        attr_clr=attr_clr,
    )


def _idmap(
    mount: Mount, m: dict, linux: dict, in_new_userns: bool, problems: list[str], where: str
) -> None:
    """Make `mount` (a bind) idmapped when the config asks: its own uidMappings and
    gidMappings, or, for idmap/ridmap without them, the container's (runtime-spec 1.2)."""
    opts = m.get("options") or []
    own_uid, own_gid = m.get("uidMappings") or [], m.get("gidMappings") or []
    if not (own_uid or own_gid or "idmap" in opts or "ridmap" in opts):
        return
    if bool(own_uid) != bool(own_gid):
        problems.append(f"{where}: an idmapped mount needs both uidMappings and gidMappings")
        return
    if not own_uid:
        if not in_new_userns:
            problems.append(
                f"{where}/options: idmap without mappings of its own needs the "
                "container's user namespace (linux.uidMappings)"
            )
            return
        own_uid, own_gid = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    mount.idmap = (idmap_text(own_uid), idmap_text(own_gid))
    mount.detached = True


def _cgroup_mounts(
    dest: str, options: list[str], cgroups: CgroupLayout, new_cgroupns: bool, in_userns: bool
) -> list[Mount]:
    flags = 0
    for opt in options:
        if opt in MOUNT_FLAGS:
            set_, clear = MOUNT_FLAGS[opt]
            flags = (flags | set_) & ~clear
    flags &= ~MS_BIND
    if cgroups.unified and not cgroups.v1:
        if not new_cgroupns and cgroups.dirs.get(""):
            return [
                Mount(
                    target=dest,
                    source=cgroups.dirs[""],
                    fstype=None,
                    flags=MS_BIND | MS_REC,
                    remount=flags & _REMOUNT_MASK,
                )
            ]
        return [Mount(target=dest, source="cgroup2", fstype="cgroup2", flags=flags)]
    # v1 (or hybrid): a tmpfs holding one mount per hierarchy, read-only on top if asked.
    mounts = [
        Mount(
            target=dest, source="tmpfs", fstype="tmpfs", data="mode=755", flags=flags & ~MS_RDONLY
        )
    ]
    # A fresh cgroup mount shows the container its own subtree only inside a cgroup
    # namespace, and a user namespace may not mount cgroup v1 at all: otherwise bind the
    # container's own cgroup dirs (as runc does).
    bind = (in_userns or not new_cgroupns) and cgroups.dirs
    for name, opts in cgroups.v1:
        target = posixpath.join(dest, name)
        own = next((cgroups.dirs[s] for s in opts.split(",") if s in cgroups.dirs), None)
        if bind and own:
            mounts.append(
                Mount(
                    target=target,
                    source=own,
                    fstype=None,
                    flags=MS_BIND | MS_REC,
                    remount=flags & _REMOUNT_MASK,
                )
            )
        else:
            mounts.append(
                Mount(target=target, source="cgroup", fstype="cgroup", data=opts, flags=flags)
            )
    if flags & MS_RDONLY:
        mounts.append(Mount(target=dest, source=None, fstype=None, remount=MS_RDONLY))
    return mounts


def _reopen_dev_null(
    plan: Plan, linux: dict, dev_bound: bool, is_nodev: Callable[[str], bool]
) -> bool:
    """Whether the init moves stdio on the host's /dev/null to the container's (as runc: the
    host's /dev is not in the container's mount namespace, and CRIU cannot dump a file whose
    mount it cannot see). Only where the container gets a usable null device of its own: not
    a node made on a nodev mount (the /dev the config mounts, or the rootfs itself), nor one
    the container's device cgroup refuses (linux.devices naming /dev/null drops the default
    rule that allows it, as runc does)."""
    if dev_bound or any(m.target == "/dev/null" and m.flags & MS_BIND for m in plan.rootfs.mounts):
        return True
    null = next((d for d in plan.rootfs.devices if d.path == "/dev/null"), None)
    if null is None:
        plan.notes.append("no /dev/null of the container's own: stdio on the host's stays")
        return False
    if not _device_allowed(linux, "c", 1, 3, "rw"):
        plan.notes.append(
            "the device cgroup does not allow /dev/null (c 1:3): stdio on the host's stays"
        )
        return False
    if null.host_path is not None:
        return True  # a bind of the host's node: usable wherever it is bound
    dev = next((m for m in reversed(plan.rootfs.mounts) if m.target == "/dev"), None)
    if dev is not None and (dev.flags | dev.remount) & MS_NODEV:
        plan.notes.append("/dev is nodev: stdio on the host's /dev/null stays")
        return False
    if dev is None and is_nodev(plan.rootfs.path):
        plan.notes.append("the rootfs is on a nodev mount: stdio on the host's /dev/null stays")
        return False
    return True


def _device_allowed(linux: dict, kind: str, major: int, minor: int, access: str) -> bool:
    """Whether the container's device cgroup rules (last match wins) allow `access`."""
    from .cgroups.devices import device_rules
    from .errors import OcirunError

    try:
        rules = device_rules(linux)
    except OcirunError:
        return True  # the cgroup setup reports it
    allowed = set()
    for r in rules:
        if r["type"] not in ("a", kind) or r["major"] not in (-1, major):
            continue
        if r["minor"] not in (-1, minor):
            continue
        if r["allow"]:
            allowed |= set(r["access"])
        else:
            allowed -= set(r["access"])
    return set(access) <= allowed


def _devices(plan: Plan, linux: dict, in_userns: bool, mounted: set[str]) -> None:
    # "/dev/fuse/" names /dev/fuse (runc cleans the path too)
    configured = {
        _in_root(d["path"]): dict(d, path=_in_root(d["path"])) for d in linux.get("devices") or []
    }
    # A default device the config mounts something over is left to that mount.
    devices: list[dict] = [
        dict(path=p, type=t, major=ma, minor=mi, fileMode=0o666)
        for p, t, ma, mi in DEFAULT_DEVICE_NODES
        if p not in configured and p not in mounted
    ]
    devices.extend(configured.values())
    for d in devices:
        kind = {"c": S_IFCHR, "u": S_IFCHR, "b": S_IFBLK, "p": S_IFIFO}[d["type"]]
        mode = d.get("fileMode")
        mode = 0o666 if mode is None else int(mode)
        # a fifo has no device number (mknod ignores it; runtime-tools' config sets one)
        dev = 0 if kind == S_IFIFO else os.makedev(int(d.get("major", 0)), int(d.get("minor", 0)))
        plan.rootfs.devices.append(
            Device(
                path=d["path"],
                mode=kind | (mode & 0o7777),
                dev=dev,
                uid=int(d.get("uid", 0)),
                gid=int(d.get("gid", 0)),
                # mknod is refused in a user namespace: bind the host's node instead.
                host_path=d["path"] if in_userns else None,
            )
        )
