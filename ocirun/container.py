"""Making containers: create and run, undone on failure (the rest of the lifecycle is
in lifecycle.py; the parent side of the clone is spawner.py).

`create` leaves nothing behind when it fails: every side effect registers its undo on an
on-failure cleanup stack that only a successful create empties (`pop_all`). The init's
mounts live in its own mount namespace, so killing it takes them away.
"""

from __future__ import annotations

import os

from . import _lean as json
from . import execfacts, fastrecord, log, spec  # before the clone: see _save
from . import plan as planmod
from . import state as statemod
from .cgroups.common import CgroupError
from .cleanup import Cleanup
from .errors import OcirunError
from .hostfacts import (  # noqa: F401 (cap_bounding, check_lsm: callers import them here)
    cap_bounding,
    cgroup_layout,
    check_lsm,
    check_preserved_fds,
    full_proc_sys_mounts,
    is_nodev,
    is_proc_root,
    kernel_has_faccessat2,
    listen_fds,
    seccomp_filter,
)
from .lifecycle import delete, start, wait_forwarding_signals
from .options import Created, CreateOptions
from .protocol import exec_error, seccomp_listener
from .spawner import ParentProcess, console_ends, open_mount_sources
from .state import Container
from .tables import SIGNALS


def _plan(config: dict, bundle: str, cid: str, opts: CreateOptions, n_listen: int):
    """(cgroup manager, plan, host facts) of a new container: the cgroups' paths only,
    nothing made."""
    from . import cgroups

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
    host = planmod.HostFacts(
        cgroups=layout,
        cap_bounding=cap_bounding(),
        euid=os.geteuid(),
        seccomp=seccomp_filter((config.get("linux") or {}).get("seccomp")),
        trace=log.enabled(),
        faccessat2=kernel_has_faccessat2(),
        is_nodev=is_nodev,
        is_proc_root=is_proc_root,
        proc_sys_mounts=full_proc_sys_mounts,
    )
    options = planmod.Options(
        no_pivot=opts.no_pivot,
        no_new_keyring=opts.no_new_keyring,
        preserve_fds=opts.preserve_fds,
        listen_fds=n_listen,
        cgroups=True,
    )
    p = planmod.build(config, bundle, options, host)
    for note in p.notes:
        log.debug(note)
    return cg, p, host


def create(
    root: str, cid: str, opts: CreateOptions, *, keep_sync: bool = False, own_console: bool = False
) -> Created:
    log.begin()
    statemod.check_id(cid)
    n_listen = listen_fds()
    check_preserved_fds(opts.preserve_fds + n_listen)  # before we open any fd
    from . import cache

    cache.drop_legacy(root)
    bundle, raw, config = spec.load_bundle_cached(opts.bundle, cache.path("config"), opts.config)
    log.phase("check rootfs")
    cg, p, host = _plan(config, bundle, cid, opts, n_listen)
    check_lsm(config["process"])
    if p.ns.net_devices:
        from . import netdevices

        netdevices.check_host(p.ns.net_devices)  # before any side effect
    console, console_ours = console_ends(
        p.process.terminal,
        opts.console_socket,
        own_console,
        socket_without_terminal="--console-socket needs process.terminal set to true",
        terminal_without_socket=(
            "process.terminal needs --console-socket (or `run` in the foreground)"
        ),
    )
    log.phase("plan")

    # `always` releases what only the start needs; `on_failure` undoes the rest (newest
    # first: the init dies before its cgroups and state dir go).
    with Cleanup() as always, Cleanup() as on_failure:
        if console is not None:
            always.add(console.close)
        if console_ours is not None:
            on_failure.add(console_ours.close)  # handed to run
        c = Container.create(root, cid)
        always.add(c.close)
        hooks = config.get("hooks") or {}
        base_state = {
            "ociVersion": config.get("ociVersion", ""),
            "id": cid,
            "status": statemod.CREATING,
            "bundle": bundle,
            "annotations": config.get("annotations") or {},
        }
        if hooks.get("poststop"):  # run last: once the init, cgroups and state dir are gone
            on_failure.add(_poststop_after_failure, hooks["poststop"], base_state)
        kept: list[str] = []  # why the state dir must stay (its cgroups could not go)
        on_failure.add(lambda: None if kept else c.destroy())
        # Before any mkdir: a create killed from here on leaves cgroups delete can find.
        c.save_cgroups(cg.planned_paths())
        for warning in cg.create():
            log.warning(warning)
        on_failure.add(_drop_cgroups, cg, kept)  # after the init is killed
        busy = cg.pids()  # another container's cgroup (the same cgroupsPath), a leftover
        if busy:  # runc >= 1.2 refuses too (1.1 warned): kill, pause, delete would hit both
            raise CgroupError(f"container's cgroup is not empty: {len(busy)} process(es) found")
        if cg.frozen_now():  # left FROZEN: the init would never get to say it is ready
            raise CgroupError("container's cgroup unexpectedly frozen")
        from .cgroups import tag

        tag.mark(cg, root, cid)  # ocirun's, of this container and root: for `gc`
        log.phase("cgroups")
        os.mkfifo(c.fifo_path, 0o600)
        fifo_fd = os.open(c.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        always.add(os.close, fifo_fd)
        os.mkfifo(c.result_path, 0o600)
        result_fd = os.open(c.result_path, os.O_RDWR | os.O_CLOEXEC)  # never blocks
        always.add(os.close, result_fd)
        host_mounts = None
        if p.rootfs.host_mount_ns:
            from . import hostmounts

            host_mounts = hostmounts.snapshot(p.rootfs.path)
            on_failure.add(hostmounts.unmount_new, p.rootfs.path, host_mounts)  # after the kill
        hook_state = _HookState(base_state, hooks, always) if p.hooks.sync else None

        def on_netdev(pid: int) -> None:
            from . import netdevices

            # The mover holds the container's network namespace until create is done.
            always.add(netdevices.move_in(p.ns.net_devices, pid, on_failure).close)

        init = ParentProcess(p, always, on_failure, cgroups=cg)
        init_pid = init.start(
            fifo_fd=fifo_fd,
            state_fd=hook_state.fd if hook_state is not None else -1,
            result_fd=result_fd,
            console=console,
            mount_fds=open_mount_sources(p, always),
            on_hooks=hook_state.init_waits if hook_state is not None else None,
            on_listener=seccomp_listener((config.get("linux") or {}).get("seccomp"), base_state),
            on_netdev=on_netdev,
        )
        for warning in p.warnings:  # once there is a container they are true of (runc's
            log.warning(warning)  # come from its init); a failed create says only why
        if hook_state is not None:
            hook_state.write(init_pid)  # what startContainer hooks will read at `start`
        log.phase("init setup (namespaces, mounts, hooks, pivot, credentials)")
        _save(c, config, raw, cid, init_pid, bundle, p, cg, host_mounts, host.seccomp)
        if opts.pid_file:
            statemod.write_pid_file(opts.pid_file, init_pid)
        on_failure.pop_all()
        log.phase("state")
    assert init.sync is not None
    if not keep_sync:
        init.sync.close()
    return Created(init_pid, init.sync, console_ours)


def _poststop_after_failure(poststop: list, base_state: dict) -> None:
    """A create that fails once the container exists (a prestart, createRuntime or
    createContainer hook among the causes) stops and destroys it, and the lifecycle goes
    on at step 12 (runtime-spec runtime.md): its poststop hooks run, as runc's and crun's
    do, to undo what the earlier hooks set up. Their failures are warnings, as at delete."""
    from . import hooks as hookmod

    state = dict(base_state, status=statemod.STOPPED)
    for failure in hookmod.run_all("poststop", poststop, state):
        log.warning(failure)


class _HookState:
    """The state JSON the init's hooks read on stdin (a memfd it inherits), and the runtime's
    own create-time hooks, run while the init waits before pivot_root."""

    def __init__(self, base_state: dict, hooks: dict, always: Cleanup):
        self.base_state, self.hooks = base_state, hooks
        self.fd = os.memfd_create("ocirun-state", os.MFD_CLOEXEC)
        always.add(os.close, self.fd)

    def write(self, init_pid: int) -> dict:
        # After lifecycle step 2 (the environment exists) the status is "created", which is
        # what prestart, createRuntime and createContainer hooks see (runtime-spec
        # runtime.md; crun; runtime-tools' hooks_stdin), and startContainer's at `start`.
        state = dict(self.base_state, pid=init_pid, status=statemod.CREATED)
        data = json.dumps(state).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        return state

    def init_waits(self, init_pid: int) -> None:
        state = self.write(init_pid)
        if self.hooks.get("prestart") or self.hooks.get("createRuntime"):
            from . import hooks as hookmod

            hookmod.run("prestart", self.hooks.get("prestart") or [], state)
            hookmod.run("createRuntime", self.hooks.get("createRuntime") or [], state)


def _save(c, config, raw, cid, init_pid, bundle, p, cg, host_mounts, filt) -> None:
    """state.json (with what exec will need: execfacts), config.json and the front door's
    record of a created container. Runs after the clone, while the init still shares our
    pages copy-on-write: each page Python touches here faults, so what it needs is
    imported at the top, before the clone."""
    extra = {"host_mounts": host_mounts} if host_mounts is not None else {}
    extra[execfacts.KEY] = execfacts.record(filt, cg, init_pid)
    c.save(statemod.init_record(config, cid, init_pid, bundle, p.rootfs.path, cg.paths, **extra))
    c.save_config(raw)
    main_dir = getattr(cg, "_main_dir", None)  # the systemd manager: Python deletes
    fastrecord.write(c.dir, c.data, main_dir() if main_dir else None)


def _drop_cgroups(cg, kept: list[str]) -> None:
    """Undo of a failed create: kill whatever is in the container's cgroups (a hook may have
    put a process there), then remove them; if that fails, `kept` says so and the state dir
    stays (its cgroups.json lets delete --force finish: never a cgroup without a record)."""
    try:
        if _made_by_this_create(cg):
            cg.kill_all(SIGNALS["SIGKILL"])
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
            terminal.keep_line_ends(master)  # before start: the process has written nothing
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
    except OcirunError as e:  # the error that made run fail is the one to report
        log.debug(f"cleanup: delete --force {cid}: {e}")
