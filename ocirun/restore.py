"""`ocirun restore`: a new container from a CRIU checkpoint and a bundle, as runc does
(libcontainer's Restore). CRIU recreates the process tree and its namespaces itself: the C
shim is not involved. Planned here:

- the container's cgroups are made as `create` makes them, CRIU is put in them before it
  starts (cg_root tells it to restore the tree there, not at the dumped paths);
- the rootfs is bound at a private directory CRIU takes as the root; missing mount points
  are made in the rootfs; the binds of the new config are the dumped external mounts'
  sources (checkpoint.py);
- the pipes the dumped init had as stdio (descriptors.json) become restore's own stdio
  (inherit_fd), so an engine's pipes reach the restored process;
- a terminal's pty master, which CRIU sends us (orphan-pts-master), goes to --console-socket;
- prestart/createRuntime hooks run when CRIU has made the namespaces (setup-namespaces).

The restored init is our child (rst_sibling): without --detach we wait for it as `run` does.
On failure nothing is left: CRIU kills what it restored, we remove cgroups and state.
"""

from __future__ import annotations

import ctypes
import os
import signal

from . import checkpoint as ck
from . import log
from . import state as statemod
from .errors import OcirunError
from .state import Container

MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 0x1000, 0x4000, 1 << 18, 2


class RestoreOptions(ck.CriuOptions):
    def __init__(
        self,
        bundle: str = ".",
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_subreaper: bool = False,
        no_pivot: bool = False,
        systemd_cgroup: bool = False,
        **kw,
    ):
        super().__init__(**kw)
        self.bundle, self.detach, self.pid_file = bundle, detach, pid_file
        self.console_socket, self.no_subreaper, self.no_pivot = (
            console_socket,
            no_subreaper,
            no_pivot,
        )
        self.systemd_cgroup = systemd_cgroup


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(src: str, dst: str, flags: int) -> None:
    if _libc().mount(src.encode(), dst.encode(), None, flags, None) < 0:
        err = ctypes.get_errno()
        raise OcirunError(f"mount {src} on {dst}: {os.strerror(err)}")


def _unmount(path: str) -> None:
    _libc().umount2(path.encode(), MNT_DETACH)


def read_descriptors(images: str) -> list[str]:
    import json

    path = os.path.join(images, ck.DESCRIPTORS)
    try:
        with open(path, "rb") as f:
            fds = json.loads(f.read())
    except FileNotFoundError:
        raise OcirunError(
            f"restore: {images} holds no checkpoint ({ck.DESCRIPTORS} missing)"
        ) from None
    except (OSError, ValueError) as e:
        raise OcirunError(f"restore: read {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(fds, list) or not all(isinstance(s, str) for s in fds):
        raise OcirunError(f"restore: {path}: not a list of paths")
    return fds


def _check_images(images: str) -> None:
    if not os.path.isdir(images):
        why = "not a directory" if os.path.exists(images) else "no such directory"
        raise OcirunError(f"restore: image path {images}: {why}")
    if not os.path.exists(os.path.join(images, "inventory.img")):
        raise OcirunError(f"restore: {images} holds no checkpoint (inventory.img missing)")


def _make_mountpoints(p, rootfs: str) -> None:
    """Create the mount points CRIU will mount on, in the rootfs, where missing (runc's
    makeCriuRestoreMountpoints). Not under a tmpfs: CRIU restores its contents itself."""
    from .plan import MNT_FILE

    tmpfs = [m.target for m in p.rootfs.mounts if m.fstype == "tmpfs"]
    real_root = os.path.realpath(rootfs)
    for m in p.rootfs.mounts:
        if any(m.target != t and m.target.startswith(t.rstrip("/") + "/") for t in tmpfs):
            continue
        path = os.path.join(real_root, m.target.lstrip("/"))
        if os.path.lexists(path):
            continue
        parent = os.path.realpath(os.path.dirname(path))
        if parent != real_root and not parent.startswith(real_root + "/"):
            raise OcirunError(f"mount point {m.target} resolves outside the rootfs")
        try:
            os.makedirs(parent, 0o755, exist_ok=True)
            if m.kind == MNT_FILE:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            else:
                os.mkdir(path, 0o755)
        except OSError as e:
            raise OcirunError(f"make mount point {m.target}: {e.strerror}") from None


def _cgroup_roots(pid: int) -> list[tuple[str | None, str]]:
    """(controller, path) of every hierarchy `pid` is in: where CRIU is to restore the
    tree's cgroups (controller None: the unified hierarchy, CRIU's default root)."""
    roots = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _num, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                roots.append((None, path))
            else:
                roots += [(ctrl, path) for ctrl in ctrls.split(",")]
    return roots


def restore(root: str, cid: str, o: RestoreOptions, criu_flag: str | None) -> int:
    from . import cache, cgroups, criu_rpc, spec
    from .cleanup import Cleanup
    from .hostfacts import check_lsm

    log.begin()
    statemod.check_id(cid)
    if o.no_pivot:
        log.debug("ignoring --no-pivot: CRIU sets up the container's root itself")
    criu = criu_rpc.find(criu_flag)
    pbm = criu_rpc.pb()
    images = os.path.abspath(o.image_path)
    _check_images(images)
    descriptors = read_descriptors(images)
    bundle, raw, config = spec.load_bundle_cached(o.bundle, cache.path("config"))
    check_lsm(config["process"])
    cg = cgroups.open_manager(config.get("linux"), cid, systemd=o.systemd_cgroup)
    p = ck.container_plan(config, bundle, cg.paths.get("dirs") or {})
    if p.process.terminal and not o.console_socket:
        raise OcirunError("restore: process.terminal needs --console-socket")
    if o.console_socket and not p.process.terminal:
        raise OcirunError("--console-socket needs process.terminal set to true")
    joined = ck.joined_namespaces(config)
    log_file = ck.log_path(o, "restore.log")
    hooks = config.get("hooks") or {}
    base_state = {
        "ociVersion": config.get("ociVersion", ""),
        "id": cid,
        "bundle": bundle,
        "annotations": config.get("annotations") or {},
    }

    with Cleanup() as undo:  # what a failed restore undoes
        console = None
        if o.console_socket:
            from . import terminal

            console = terminal.connect(o.console_socket)
            undo.add(console.close)
        c = Container.create(root, cid)
        undo.add(c.destroy)
        c.save_cgroups(cg.planned_paths())
        for warning in cg.create():
            log.warning(warning)
        undo.add(cg.destroy)
        fds = []
        images_fd = ck.open_dir(images, "image path", create=False)
        fds.append(images_fd)
        undo.add(os.close, images_fd)
        work_fd = -1
        if o.work_path:
            work_fd = ck.open_dir(o.work_path, "work path", create=True)
            undo.add(os.close, work_fd)
        _make_mountpoints(p, p.rootfs.path)
        # CRIU wants the root on a mount of its own, private to this restore.
        criu_root = os.path.join(root, f".criu-root-{cid}")
        if os.path.lexists(criu_root):  # left by a restore killed midway: the id was free
            _unmount(criu_root)
            os.rmdir(criu_root)
        os.mkdir(criu_root, 0o700)
        undo.add(os.rmdir, criu_root)
        _mount(p.rootfs.path, criu_root, MS_BIND | MS_REC)
        undo.add(_unmount, criu_root)
        _mount("none", criu_root, MS_PRIVATE | MS_REC)

        opts = ck.base_opts(pbm, o, images_fd, work_fd, "restore.log", criu_root)
        opts.rst_sibling = True
        opts.evasive_devices = True
        for dest, src in ck.external_mounts(p):
            opts.ext_mnt.add(key=dest, val=src)
        extra = []
        for ns_type, path in joined.items():
            try:
                nsfd = os.open(path, os.O_RDONLY)  # inherited by CRIU: no O_CLOEXEC needed
            except OSError as e:
                raise OcirunError(f"open namespace {path}: {e.strerror}") from None
            undo.add(os.close, nsfd)
            extra.append(nsfd)
            opts.inherit_fd.add(key=ck.EXTERNAL_NS[ns_type][1], fd=nsfd)
        for i, name in enumerate(descriptors[:3]):
            if name.startswith("pipe:"):
                opts.inherit_fd.add(key=name, fd=i)

        req = pbm.criu_req(type=pbm.RESTORE, opts=opts)  # a copy of opts

        def place(pid: int) -> None:
            cg.add(pid)
            for ctrl, path in _cgroup_roots(pid):
                entry = req.opts.cg_root.add(path=path)
                if ctrl is not None:
                    entry.ctrl = ctrl

        restored = {}

        def on_notify(script: str, pid: int, sent: list[int]) -> None:
            log.debug(f"criu notify {script} pid {pid}")
            if script == "setup-namespaces" and (
                hooks.get("prestart") or hooks.get("createRuntime")
            ):
                from . import hooks as hookmod

                st = dict(base_state, pid=pid, status=statemod.CREATED)
                hookmod.run("prestart", hooks.get("prestart") or [], st)
                hookmod.run("createRuntime", hooks.get("createRuntime") or [], st)
            elif script == "post-restore":
                restored["pid"] = pid
            elif script == "orphan-pts-master" and console is not None and sent:
                import socket

                socket.send_fds(console, [b"/dev/ptmx"], [sent[0]])

        if not o.no_subreaper and not o.detach:
            from . import _native

            _native.set_child_subreaper()
        resp = criu.call(
            req,
            log=log_file,
            on_notify=on_notify,
            stdio=(0, 1, 2),
            before=place,
            extra_fds=tuple(extra),
        )
        init_pid = resp.restore.pid or restored.get("pid", 0)
        undo.add(_kill_quietly, init_pid)
        c.save(
            statemod.init_record(
                config, cid, init_pid, bundle, p.rootfs.path, cg.paths, restored=True
            )
        )
        c.save_config(raw)
        if o.pid_file:
            statemod.write_pid_file(o.pid_file, init_pid)
        undo.pop_all()
    _unmount(criu_root)
    os.rmdir(criu_root)
    for fd in fds + extra + ([work_fd] if work_fd >= 0 else []):
        os.close(fd)
    if console is not None:
        console.close()
    c.close()
    log.debug(f"restored {cid}: init pid {init_pid}")
    if o.detach:
        return 0
    from .lifecycle import delete, wait_forwarding_signals

    code = wait_forwarding_signals(init_pid)
    try:
        delete(root, cid, force=True)
    except OcirunError:
        pass
    return code


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
