"""Making containers: create and run, undone on failure (the rest of the lifecycle is
in lifecycle.py).

`create` leaves nothing behind when it fails: every side effect registers its undo on an
`Undo` list that only a successful create disarms. The init's mounts live in its own mount
namespace, so killing it takes them away.
"""

from __future__ import annotations

import errno
import os

from . import fastjson as json
from . import log, spec
from . import plan as planmod
from . import state as statemod
from .errors import InitError, OcirunError
from .lifecycle import delete, start, wait_forwarding_signals
from .state import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket


class CreateOptions:
    """create's command-line options."""

    def __init__(
        self,
        bundle: str = ".",
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
        systemd_cgroup: bool = False,
        rootless_cgroups: bool = False,
    ):
        self.bundle, self.pid_file, self.console_socket = bundle, pid_file, console_socket
        self.systemd_cgroup = systemd_cgroup
        self.rootless_cgroups = rootless_cgroups  # skip cgroups we can't write (runc's rule)
        self.no_pivot, self.no_new_keyring, self.preserve_fds = (
            no_pivot,
            no_new_keyring,
            preserve_fds,
        )


class Created:
    """What `create` hands to `run`: the init pid, the parent end of the sync socket and,
    for a terminal without --console-socket, our end of the console socket."""

    def __init__(self, pid: int, sync: socket.socket, console: socket.socket | None = None):
        self.pid, self.sync, self.console = pid, sync, console


class Undo:
    """Undo actions, run newest first unless disarmed (contextlib costs ~3 ms to import)."""

    def __init__(self) -> None:
        self.actions: list = []

    def add(self, fn, *args) -> None:
        self.actions.append((fn, args))

    def disarm(self) -> None:
        self.actions.clear()

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, *exc) -> None:
        while self.actions:
            fn, args = self.actions.pop()
            try:
                fn(*args)
            except (OSError, OcirunError):
                pass  # best effort: the original error is what the user must see


def cgroup_layout() -> planmod.CgroupLayout:
    """How this host mounts cgroups (for `cgroup` mounts inside the container)."""
    layout = planmod.CgroupLayout()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _src, opts = (post.split() + ["", "", ""])[:3]
            mountpoint = pre.split()[4]
            if not mountpoint.startswith("/sys/fs/cgroup"):
                continue
            if fstype == "cgroup2" and mountpoint == "/sys/fs/cgroup":
                layout.unified = True
            elif fstype == "cgroup":
                keep = [
                    o
                    for o in opts.split(",")
                    if o not in ("rw", "ro")
                    and not o.startswith(("relatime", "nosuid", "nodev", "noexec"))
                ]
                layout.v1.append((os.path.basename(mountpoint), ",".join(keep)))
    return layout


def cap_bounding() -> int:
    """The runtime's own capability bounding set: what any process it starts can have."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return planmod.ALL_CAPS


def _write_idmaps(pid: int, p: planmod.Plan) -> None:
    if p.idmaps is not None:  # a non-root caller: setgroups, newuidmap/newgidmap
        from .rootless import write_idmaps

        write_idmaps(pid, p.uid_map, p.gid_map, p.idmaps)
        return
    for name, text in (("uid_map", p.uid_map), ("gid_map", p.gid_map)):
        path = f"/proc/{pid}/{name}"
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError as e:
            raise InitError(e.errno or 0, f"write {path}") from None


def _handshake(
    sync: socket.socket,
    pid: int,
    p: planmod.Plan,
    *,
    on_hooks=None,
    on_listener=None,
    cgroups=None,
    on_netdev=None,
) -> int:
    """Answer the child until it is ready; return the init's pid. `cgroups` (a manager)
    takes the child first; `on_netdev(pid)` moves linux.netDevices into the network
    namespace of `pid` once it exists; `on_hooks(init_pid)` runs the runtime's hooks when
    the init reaches that point (before pivot_root); `on_listener(init_pid, fd)` takes a
    seccomp notify listener."""
    from . import _native as n

    init_pid = pid
    while True:
        msg = n.recv(sync)
        if msg is None:
            raise InitError(0, "container init exited before it was ready")
        if msg.type == n.MSG_CGROUP:
            cgroups.add(pid)  # the clone's pid: the child may see itself as 1
            n.send(sync, n.MSG_CGROUP_DONE)
        elif msg.type == n.MSG_IDMAP:
            _write_idmaps(pid, p)
            n.send(sync, n.MSG_IDMAP_DONE)
        elif msg.type == n.MSG_PID:
            init_pid = msg.value
            n.send(sync, n.MSG_GO)
        elif msg.type == n.MSG_HOOKS:
            on_hooks(init_pid)
            n.send(sync, n.MSG_HOOKS_DONE)
        elif msg.type == n.MSG_NETDEV:
            on_netdev(pid)  # the clone's pid: an init forked after is in its namespace
            n.send(sync, n.MSG_NETDEV_DONE)
        elif msg.type == n.MSG_SECCOMP_FD:
            try:
                on_listener(init_pid, msg.fd)
            finally:
                os.close(msg.fd)
        elif msg.type == n.MSG_READY:
            if msg.text:
                log.debug(f"init phases, us since clone: {msg.text.strip()}")
            return init_pid
        elif msg.type == n.MSG_EXEC_ERROR:
            raise exec_error(msg)
        elif msg.type == n.MSG_ERROR:
            raise InitError(msg.err, msg.text)
        else:
            raise InitError(0, f"unexpected message {msg.type} from the container init")


def exec_error(msg) -> InitError:
    """A failed executable lookup or execve, worded as runc's Go errors are (lower-case
    strerror): podman maps "no such file or directory" to 127, "permission denied" to 126."""
    from . import _native

    if msg.type != _native.MSG_EXEC_ERROR:
        return InitError(msg.err, msg.text)
    detail = os.strerror(msg.err).lower() if msg.err else ""
    return InitError(0, f"{msg.text}: {detail}" if detail else msg.text)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def apply_seccomp(p: planmod.Plan, seccomp: dict, root: str) -> None:
    """Compile linux.seccomp (cached by content) into the plan."""
    from . import cache
    from .seccomp_cache import compile_cached

    filt = compile_cached(seccomp, cache.path("seccomp"))
    for w in filt.warnings:
        log.warning(f"seccomp: {w}")
    planmod.set_seccomp(p, filt.bpf, filt.flags, filt.notify)


def seccomp_listener(seccomp: dict | None, state: dict):
    """The on_listener callback of _handshake: hand the fd to listenerPath."""

    def send(pid: int, fd: int) -> None:
        from . import seccomp as sc

        sc.send_listener(
            seccomp["listenerPath"], fd, dict(state, pid=pid), seccomp.get("listenerMetadata") or ""
        )

    return send


def check_lsm(process: dict) -> None:
    """An AppArmor profile or SELinux label we cannot apply: refused where the host enforces
    that LSM (the process would run unconfined), ignored with a warning where it does not
    (as runc does when AppArmor is disabled)."""
    for key, enabled_file, name in (
        ("apparmorProfile", "/sys/module/apparmor/parameters/enabled", "AppArmor"),
        ("selinuxLabel", "/sys/fs/selinux/enforce", "SELinux"),
    ):
        if not process.get(key):
            continue
        try:
            with open(enabled_file) as f:
                on = f.read().strip() in ("Y", "1")
        except OSError:
            on = False
        if on:
            raise OcirunError(
                f"process.{key}: {name} is enabled on this host, and ocirun "
                f"cannot apply {name} profiles yet"
            )
        log.warning(f"process.{key} ignored: {name} is not enabled on this host")


def open_namespaces(p: planmod.Plan, undo: Undo) -> list[int]:
    """fds of the namespaces the plan joins, opened before the clone: a missing path fails
    here, before anything runs."""
    fds = []
    for path, _ in p.joins:
        try:
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError as e:
            raise InitError(e.errno or 0, f"open namespace {path}") from None
        undo.add(os.close, fds[-1])
    return fds


def open_placement(cg, undo: Undo):
    """The fds by which the child enters the cgroups of manager `cg` itself (a
    _native.Placement), or None when the parent must move it (cg.add)."""
    where = cg.placement() if cg is not None else None
    if where is None:
        return None
    from . import _native
    from .cgroups.common import CgroupError, _strerror

    tasks, into = where
    fds = []
    try:
        for path in tasks:
            fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
            undo.add(os.close, fds[-1])
        into_fd = -1
        if into:
            into_fd = os.open(into, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            undo.add(os.close, into_fd)
    except OSError as e:
        raise CgroupError(f"open {e.filename}: {_strerror(e)}") from None
    return _native.Placement(fds, tasks, into_fd)


def spawn_placed(
    p: planmod.Plan, placement, sync_fd: int, *args, mount_fds: dict[int, int] | None = None
) -> int:
    """_native.spawn with `placement`; where the kernel has no clone3 or CLONE_INTO_CGROUP
    (before 5.7), without it: the parent then moves the child (MSG_CGROUP)."""
    from errno import EINVAL, ENOSYS

    from . import _native

    try:
        return _native.spawn(p, sync_fd, *args, placement=placement, mount_fds=mount_fds)
    except OSError as e:
        if placement is None or placement.into_fd < 0 or e.errno not in (ENOSYS, EINVAL):
            raise
    return _native.spawn(p, sync_fd, *args, mount_fds=mount_fds)


def open_mount_sources(p: planmod.Plan, undo: Undo) -> dict[int, int]:
    """Detached copies of the bind sources the plan wants made in the runtime's namespaces
    (plan.Mount.detached), by index in p.mounts: a missing or unreadable source fails here,
    before anything runs."""
    from . import _native
    from .tables import MS_REC

    fds: dict[int, int] = {}
    users: dict[tuple[str, str], int] = {}  # one user namespace per mapping
    try:
        for i, m in enumerate(p.mounts):
            if not m.detached:
                continue
            try:
                fds[i] = _native.open_tree(m.source, bool(m.flags & MS_REC) or m.idmap_recursive)
            except OSError as e:
                raise InitError(e.errno or 0, f"open_tree {m.source}") from None
            undo.add(os.close, fds[i])
            if m.idmap:
                if m.idmap not in users:
                    users[m.idmap] = _native.userns_fd(*m.idmap)
                try:
                    _native.idmap_mount(fds[i], users[m.idmap], m.idmap_recursive)
                except OSError as e:
                    why = (
                        "the filesystem can't be idmapped"
                        if e.errno == errno.EINVAL
                        else e.strerror
                    )
                    raise InitError(
                        0, f"idmapped mount of {m.source} at {m.target}: {why}"
                    ) from None
    finally:
        for fd in users.values():
            os.close(fd)
    return fds


def check_preserved_fds(count: int) -> None:
    """fds 3 .. 3+count-1 go to the container's process: each must be the caller's, open
    before the runtime opens anything of its own. A gap would be filled by the runtime's
    fds (the state dir holding the container's lock, exec.fifo, exec.result), handed to the
    init, and `start` would wait on that lock for ever. runc refuses the same way."""
    for i in range(count):
        try:
            os.fstat(3 + i)
        except OSError as e:
            raise OcirunError(
                f"unable to stat preserved-fd {i} (of {count}): fstat {3 + i}: "
                f"{(e.strerror or str(e)).lower()}"
            ) from None


def _listen_fds() -> int:
    """LISTEN_FDS meant for us (LISTEN_PID unset or ours), as runc honours it."""
    n, pid = os.environ.get("LISTEN_FDS", ""), os.environ.get("LISTEN_PID", "")
    if not n.isdigit() or (pid and pid != str(os.getpid())):
        return 0
    return int(n)


def _console(p: planmod.Plan, opts: CreateOptions, own_console: bool):
    """(socket the init sends the pty master on, our receiving end or None)."""
    if not p.terminal:
        if opts.console_socket:
            raise OcirunError("--console-socket needs process.terminal set to true")
        return None, None
    if opts.console_socket:
        from . import terminal

        return terminal.connect(opts.console_socket), None
    if own_console:
        from . import _native

        ours, theirs = _native.socketpair("stream")
        return theirs, ours
    raise OcirunError("process.terminal needs --console-socket (or `run` in the foreground)")


def create(
    root: str, cid: str, opts: CreateOptions, *, keep_sync: bool = False, own_console: bool = False
) -> Created:
    log.begin()
    statemod.check_id(cid)
    check_preserved_fds(opts.preserve_fds + _listen_fds())  # before we open any fd
    from . import cache

    cache.drop_legacy(root)
    bundle, raw, config = spec.load_bundle_cached(opts.bundle, cache.path("config"))
    log.phase("check rootfs")
    from . import cgroups

    # paths only: nothing made yet
    cg = cgroups.open_manager(
        config.get("linux"), cid, systemd=opts.systemd_cgroup, rootless=opts.rootless_cgroups
    )
    layout = cgroup_layout()
    layout.dirs = cg.visible_dirs()
    if getattr(cg, "skipped", None):  # runc says nothing either: limits asked fail anyway
        log.debug(
            "rootless: not writable, left in the caller's cgroups: "
            + ", ".join(sorted(s or "cgroup2" for s in cg.skipped))
        )
    p = planmod.build(
        config,
        bundle,
        planmod.Options(
            no_pivot=opts.no_pivot,
            no_new_keyring=opts.no_new_keyring,
            preserve_fds=opts.preserve_fds,
            listen_fds=_listen_fds(),
            cgroups=True,
        ),
        cgroups=layout,
        cap_bounding=cap_bounding(),
    )
    for warning in p.warnings:
        log.warning(warning)
    for note in p.notes:
        log.debug(note)
    p.trace = log.enabled()
    seccomp = (config.get("linux") or {}).get("seccomp")
    if seccomp:
        apply_seccomp(p, seccomp, root)
    check_lsm(config["process"])
    if p.net_devices:
        from . import netdevices

        netdevices.check_host(p.net_devices)  # before any side effect
    console, console_ours = _console(p, opts, own_console)
    log.phase("plan")

    with Undo() as undo:
        for sock in (console, console_ours):
            if sock is not None:
                undo.add(sock.close)
        c = Container.create(root, cid)
        kept: list[str] = []  # why the state dir must stay (its cgroups could not go)
        undo.add(lambda: c.close() if kept else c.destroy())
        # Before any mkdir: a create killed from here on leaves cgroups delete can find.
        c.save_cgroups(cg.planned_paths())
        for warning in cg.create():
            log.warning(warning)
        undo.add(_drop_cgroups, cg, kept)  # after the init is killed (undone in reverse)
        from .cgroups import tag

        tag.mark(cg, root, cid)  # ocirun's, of this container and root: for `gc`
        log.phase("cgroups")
        os.mkfifo(c.fifo_path, 0o600)
        fifo_fd = os.open(c.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        undo.add(os.close, fifo_fd)
        os.mkfifo(c.result_path, 0o600)
        result_fd = os.open(c.result_path, os.O_RDWR | os.O_CLOEXEC)  # never blocks
        undo.add(os.close, result_fd)
        ns_fds = open_namespaces(p, undo)
        host_mounts = None
        if p.host_mount_ns:
            from . import hostmounts

            host_mounts = hostmounts.snapshot(p.rootfs)
            undo.add(hostmounts.unmount_new, p.rootfs, host_mounts)  # after the kill
        hooks = config.get("hooks") or {}
        state_fd = -1
        if p.hooks_sync:
            state_fd = os.memfd_create("ocirun-state", os.MFD_CLOEXEC)
            undo.add(os.close, state_fd)
        base_state = {
            "ociVersion": config.get("ociVersion", ""),
            "id": cid,
            "status": statemod.CREATING,
            "bundle": bundle,
            "annotations": config.get("annotations") or {},
        }

        def on_hooks(init_pid: int) -> None:
            # After lifecycle step 2 (the environment exists) the status is "created", which
            # is what prestart, createRuntime and createContainer hooks see (runtime-spec
            # runtime.md; crun; runtime-tools' hooks_stdin).
            state = dict(base_state, pid=init_pid, status=statemod.CREATED)
            os.pwrite(state_fd, json.dumps(state).encode(), 0)
            if hooks.get("prestart") or hooks.get("createRuntime"):
                from . import hooks as hookmod

                hookmod.run("prestart", hooks.get("prestart") or [], state)
                hookmod.run("createRuntime", hooks.get("createRuntime") or [], state)

        movers = []  # netdevices.Mover: holds the container's network namespace till done

        def on_netdev(pid: int) -> None:
            from . import netdevices

            movers.append(netdevices.move_in(p.net_devices, pid, undo))

        from . import _native

        placement = open_placement(cg, undo)
        mount_fds = open_mount_sources(p, undo)
        parent, child = _native.socketpair()
        undo.add(parent.close)
        try:
            pid = spawn_placed(
                p,
                placement,
                child.fileno(),
                fifo_fd,
                ns_fds,
                state_fd,
                console.fileno() if console else -1,
                result_fd,
                mount_fds=mount_fds,
            )
        finally:
            child.close()
        log.phase("clone")
        undo.add(_reap, pid)
        undo.add(_kill_quietly, pid)
        init_pid = _handshake(
            parent,
            pid,
            p,
            on_hooks=on_hooks,
            cgroups=cg,
            on_listener=seccomp_listener(seccomp, base_state),
            on_netdev=on_netdev,
        )
        if state_fd >= 0:
            # What startContainer hooks will read at `start`.
            created = json.dumps(dict(base_state, pid=init_pid, status=statemod.CREATED)).encode()
            os.ftruncate(state_fd, 0)
            os.pwrite(state_fd, created, 0)
        log.phase("init setup (namespaces, mounts, hooks, pivot, credentials)")
        if init_pid != pid:
            _reap(pid)  # the intermediate has exited
            undo.add(_kill_quietly, init_pid)
        start_time = statemod.proc_start_time(init_pid)
        c.save(
            {
                "ociVersion": config.get("ociVersion", ""),
                "id": cid,
                "pid": init_pid,
                "start_time": start_time,
                "bundle": bundle,
                "rootfs": p.rootfs,
                "created": statemod.now_rfc3339(),
                "owner": "",
                "annotations": config.get("annotations") or {},
                "hooks": {k: hooks[k] for k in ("poststart", "poststop") if hooks.get(k)},
                "cgroup_paths": cg.paths,
                **({"host_mounts": host_mounts} if host_mounts is not None else {}),
            }
        )
        c.save_config(raw)
        from . import fastrecord

        main_dir = getattr(cg, "_main_dir", None)  # the systemd manager: Python deletes
        fastrecord.write(c.dir, c.data, main_dir() if main_dir else None)
        if opts.pid_file:
            statemod.write_pid_file(opts.pid_file, init_pid)
        undo.disarm()
        log.phase("state")
    for mover in movers:
        mover.close()
    os.close(fifo_fd)
    os.close(result_fd)
    for fd in [*ns_fds, *mount_fds.values()]:
        os.close(fd)
    if placement is not None:
        placement.close()
    if state_fd >= 0:
        os.close(state_fd)
    if console is not None:
        console.close()
    c.close()
    if not keep_sync:
        parent.close()
    return Created(init_pid, parent, console_ours)


def _drop_cgroups(cg, kept: list[str]) -> None:
    """Undo of a failed create: kill whatever is in the container's cgroups (a hook may have
    put a process there), then remove them; if that fails, `kept` says so and the state dir
    stays (its cgroups.json lets delete --force finish: never a cgroup without a record)."""
    try:
        if _made_by_this_create(cg):
            cg.kill_all(9)
        cg.destroy()
    except OcirunError as e:
        kept.append(e.message)
        raise


def _made_by_this_create(cg) -> bool:
    """Whether the container's cgroups are this create's own: only then may its undo kill
    what is in them. A cgroup it joined, or a systemd unit whose name a running container
    already holds (its start failed), has someone else's processes in it."""
    if hasattr(cg, "started"):  # the systemd driver: the unit is ours once it started
        return bool(cg.started)
    return bool(cg.dirs) and set(cg.dirs.values()) <= set(cg.created)


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)  # SIGKILL
    except ProcessLookupError:
        pass


def run(
    root: str, cid: str, opts: CreateOptions, *, detach: bool = False, keep: bool = False
) -> int:
    """create + start; without detach, wait and return the exit code (128+N for signal N)."""
    from . import _native

    if not detach:
        # The init may be our grandchild (extra fork): make orphans ours to wait for.
        _native.set_child_subreaper()
    created = create(root, cid, opts, keep_sync=True, own_console=not detach)
    master = -1
    try:
        if created.console is not None:
            from . import terminal

            master = terminal.recv_master(created.console)
            created.console.close()
        start(root, cid)
        # The init's end of the socket closes at execve; a message means execve failed.
        msg = _native.recv(created.sync)
    except BaseException:
        _delete_quietly(root, cid)
        raise
    finally:
        created.sync.close()
    if msg is not None:
        _delete_quietly(root, cid)
        raise exec_error(msg)
    if detach:
        return 0
    if master >= 0:
        from . import terminal

        code = terminal.proxy(master, created.pid, lambda: wait_forwarding_signals(created.pid))
    else:
        code = wait_forwarding_signals(created.pid)
    log.phase("the container's process ran")
    if not keep:
        _delete_quietly(root, cid)
    return code


def _delete_quietly(root: str, cid: str) -> None:
    try:
        delete(root, cid, force=True)
    except OcirunError:
        pass
