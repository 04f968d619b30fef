"""`ocirun checkpoint`: dump a running container's process tree to disk with CRIU, as runc
does (libcontainer's Checkpoint), and what `restore` (restore.py) shares with it: the CRIU
options both take, the mounts CRIU must treat as external, the namespaces joined by path.

External mounts: every bind mount of the config (and of the container's own cgroup dirs,
and of host device nodes in a user namespace) comes from outside the container's mount
namespace, which CRIU cannot dump. As runc does, the dump names each by its destination
(ext-mount-map DEST:DEST), and the restore maps that name to the bind's source in the new
bundle (DEST:SOURCE). Everything else (proc, sysfs, tmpfs contents, devpts, the binds of
the container's own /dev/null over masked paths) CRIU dumps itself.

Where runc differs from runtime-spec's "stopped": after a checkpoint without
--leave-running the container is gone (its state dir, its cgroups), so that the same id
can be restored; `delete` of it then says it does not exist, as with runc.
"""

from __future__ import annotations

import os

from . import log
from .errors import InvalidState, OcirunError, UsageError
from .state import PAUSED, RUNNING, Container

DESCRIPTORS = "descriptors.json"  # runc's name: where the init's fds 0-2 pointed
EMPTY_NS = {"network": 0x40000000}  # --empty-ns: runc accepts only network (CLONE_NEWNET)
CG_MODES = ("soft", "full", "strict", "ignore")
# The key CRIU's image names a namespace joined by path under (runc's names).
EXTERNAL_NS = {"network": ("net", "extRootNetNS"), "pid": ("pid", "extRootPidNS")}


class CriuOptions:
    """The flags checkpoint and restore share (runc's names)."""

    def __init__(
        self,
        image_path: str | None = None,
        work_path: str | None = None,
        tcp_established: bool = False,
        ext_unix_sk: bool = False,
        shell_job: bool = False,
        file_locks: bool = False,
        manage_cgroups_mode: str | None = None,
        empty_ns: str | None = None,
        auto_dedup: bool = False,
    ):
        self.image_path = image_path or "checkpoint"  # runc: ./checkpoint
        self.work_path = work_path
        self.tcp_established, self.ext_unix_sk = tcp_established, ext_unix_sk
        self.shell_job, self.file_locks, self.auto_dedup = shell_job, file_locks, auto_dedup
        if manage_cgroups_mode is not None and manage_cgroups_mode not in CG_MODES:
            raise UsageError(
                f"invalid --manage-cgroups-mode {manage_cgroups_mode!r}: use " + ", ".join(CG_MODES)
            )
        self.manage_cgroups_mode = manage_cgroups_mode
        if empty_ns is not None and empty_ns not in EMPTY_NS:
            raise UsageError(f"invalid --empty-ns {empty_ns!r}: only network is supported")
        self.empty_ns = EMPTY_NS.get(empty_ns or "", 0)


class CheckpointOptions(CriuOptions):
    def __init__(
        self,
        leave_running: bool = False,
        pre_dump: bool = False,
        parent_path: str | None = None,
        **kw,
    ):
        super().__init__(**kw)
        self.leave_running, self.pre_dump, self.parent_path = leave_running, pre_dump, parent_path


def open_dir(path: str, what: str, *, create: bool) -> int:
    """A directory fd for CRIU (images_dir_fd, work_dir_fd), the directory made if asked."""
    if create:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as e:
            raise OcirunError(f"{what} {path}: {(e.strerror or str(e))}") from None
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise OcirunError(f"{what} {path}: {e.strerror or e}") from None


def base_opts(pbm, o: CriuOptions, images_fd: int, work_fd: int, log_name: str, root: str):
    """The criu_opts both commands send (runc's criuOpts, dump and restore alike)."""
    opts = pbm.criu_opts(
        images_dir_fd=images_fd,
        log_level=4,
        log_file=log_name,
        root=root,
        manage_cgroups=True,
        notify_scripts=True,
        shell_job=o.shell_job,
        ext_unix_sk=o.ext_unix_sk,
        tcp_established=o.tcp_established,
        file_locks=o.file_locks,
        orphan_pts_master=True,
        auto_dedup=o.auto_dedup,
    )
    if work_fd >= 0:
        opts.work_dir_fd = work_fd
    if o.empty_ns:
        opts.empty_ns = o.empty_ns
    if o.manage_cgroups_mode:
        opts.manage_cgroups_mode = getattr(pbm, o.manage_cgroups_mode.upper())
    return opts


def log_path(o: CriuOptions, name: str) -> str:
    return os.path.join(os.path.abspath(o.work_path or o.image_path), name)


def container_plan(config: dict, bundle: str, cgroup_dirs: dict):
    """The plan `create` made (or would make) of `config`: its mounts and devices say which
    binds CRIU must treat as external."""
    from . import plan as planmod
    from .hostfacts import cap_bounding, cgroup_layout

    layout = cgroup_layout()
    layout.dirs = dict(cgroup_dirs or {})
    host = planmod.HostFacts(cgroups=layout, cap_bounding=cap_bounding(), euid=os.geteuid())
    return planmod.build(config, bundle, planmod.Options(cgroups=True), host)


def external_mounts(p) -> list[tuple[str, str]]:
    """(destination in the container, source on the host) of every bind from outside."""
    from .tables import MS_BIND

    out = [
        (m.target, m.source)
        for m in p.rootfs.mounts
        if m.flags & MS_BIND and m.fstype is None and m.source
    ]
    out += [(d.path, d.host_path) for d in p.rootfs.devices if d.host_path]
    return out


def joined_namespaces(config: dict) -> dict[str, str]:
    """{type: path} of the namespaces CRIU must leave alone (joined by path: the engine's
    network namespace, a pod's pid namespace)."""
    return {
        ns["type"]: ns["path"]
        for ns in (config.get("linux") or {}).get("namespaces") or []
        if ns.get("path") and ns.get("type") in EXTERNAL_NS
    }


def _check_pre_dump(criu, o: CheckpointOptions) -> None:
    if not (o.pre_dump or o.parent_path):
        return
    flag = "--pre-dump" if o.pre_dump else "--parent-path"
    if not criu.mem_track():
        raise OcirunError(
            f"checkpoint {flag}: CRIU cannot track memory changes on this "
            "kernel (no soft-dirty bits), so there is nothing to pre-dump"
        )


def checkpoint(root: str, cid: str, o: CheckpointOptions, criu_flag: str | None) -> None:
    from . import criu_rpc

    pbm = criu_rpc.pb()
    with Container.load(root, cid) as c:
        status = c.status()
        if status not in (RUNNING, PAUSED):
            raise InvalidState("container not running")
        criu = criu_rpc.find(criu_flag)
        if criu.version_number() < 30000:
            raise OcirunError(
                f"CRIU {criu.version()} ({criu.path}) is too old: "
                "checkpoint/restore needs 3.0 or newer"
            )
        _check_pre_dump(criu, o)
        config = c.load_config()
        cgroup_paths = c.cgroup_paths() or {}
        p = container_plan(config, c.data.get("bundle", ""), cgroup_paths.get("dirs") or {})
        fds = []
        try:
            images = open_dir(o.image_path, "image path", create=True)
            fds.append(images)
            work = -1
            if o.work_path:
                work = open_dir(o.work_path, "work path", create=True)
                fds.append(work)
            name = "pre-dump.log" if o.pre_dump else "dump.log"
            opts = base_opts(pbm, o, images, work, name, c.data["rootfs"])
            opts.pid = c.pid
            opts.leave_running = o.leave_running or o.pre_dump
            if o.parent_path:
                opts.parent_img = o.parent_path
                opts.track_mem = True
            if o.pre_dump:
                opts.track_mem = True
            freezer = _freezer_dir(cgroup_paths)
            if freezer:
                opts.freeze_cgroup = freezer
            for dest, _src in external_mounts(p):
                opts.ext_mnt.add(key=dest, val=dest)
            for ns_type, path in joined_namespaces(config).items():
                kind, key = EXTERNAL_NS[ns_type]
                try:
                    ino = os.stat(path).st_ino
                except OSError as e:
                    raise OcirunError(f"namespace {path}: {e.strerror}") from None
                opts.external.append(f"{kind}[{ino}]:{key}")
            _write_descriptors(o.image_path, c.pid)
            kind = pbm.PRE_DUMP if o.pre_dump else pbm.DUMP
            log.debug(f"criu {criu.path}: {pbm.criu_req_type.Name(kind)} of pid {c.pid}")
            criu.call(pbm.criu_req(type=kind, opts=opts), log=log_path(o, name))
        finally:
            for fd in fds:
                os.close(fd)
        if o.leave_running or o.pre_dump:
            return
        # CRIU killed the tree after the dump: the container is destroyed as runc does.
        from .lifecycle import _destroy

        _destroy(c, c.status())


def _freezer_dir(paths: dict) -> str | None:
    """The cgroup CRIU freezes the tree with (runc: the freezer's path; v2's own dir)."""
    dirs = paths.get("dirs") or {}
    if paths.get("mode") == "v2":
        return dirs.get("")
    return dirs.get("freezer")


def _write_descriptors(images: str, pid: int) -> None:
    """What the init's stdio was (runc's descriptors.json): restore hands its own stdio to
    the restored tree in place of the pipes named here."""
    import json

    links = []
    for fd in range(3):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            links.append("")
    path = os.path.join(images, DESCRIPTORS)
    try:
        with open(path, "w") as f:
            json.dump(links, f)
    except OSError as e:
        raise OcirunError(f"write {path}: {e.strerror}") from None
