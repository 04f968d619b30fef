"""`exec`: a new process in a running container.

It joins every namespace of the container's init (those we do not already share), gets its
process settings from --process FILE or the container's process with the flags on top, and
is protected like the init (non-dumpable before joining, no fd but stdio and preserved ones).
"""

from __future__ import annotations

import os

from . import log, spec
from . import plan as planmod
from .errors import InitError, InvalidState, OcirunError
from .state import CREATED, PAUSED, RUNNING, STOPPED, Container, write_pid_file
from .tables import NAMESPACES, NS_PROC_NAMES


class ExecOptions:
    def __init__(
        self,
        process_file: str | None = None,
        args: list[str] | None = None,
        tty: bool = False,
        user: str | None = None,
        additional_gids: list[int] | None = None,
        cwd: str | None = None,
        env: list[str] | None = None,
        caps: list[str] | None = None,
        no_new_privs: bool = False,
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
        preserve_fds: int = 0,
    ):
        self.process_file, self.args, self.tty = process_file, list(args or []), tty
        self.user, self.additional_gids, self.cwd = user, list(additional_gids or []), cwd
        self.env, self.caps, self.no_new_privs = list(env or []), list(caps or []), no_new_privs
        self.detach, self.pid_file, self.console_socket = detach, pid_file, console_socket
        self.preserve_fds = preserve_fds


def _process(config: dict, opts: ExecOptions, cache_dir: str) -> dict:
    if opts.process_file:
        proc = spec.read_json_object(opts.process_file, "a process")
        source = opts.process_file
    else:
        if not opts.args:
            raise OcirunError("exec needs a command: ocirun exec ID COMMAND [ARG...]")
        base = config.get("process") or {}
        caps = [
            x.upper() if x.upper().startswith("CAP_") else "CAP_" + x.upper() for x in opts.caps
        ]
        proc = planmod.exec_process(
            base,
            opts.args,
            env=opts.env,
            cwd=opts.cwd,
            user=opts.user,
            additional_gids=opts.additional_gids,
            caps=caps,
            no_new_privs=opts.no_new_privs,
            tty=opts.tty,
        )
        source = "exec"
    spec.validate_process_cached(proc, cache_dir, source)
    from .container import check_lsm

    check_lsm(proc)
    return proc


def _joins(config: dict, pid: int) -> list[tuple[str, int]]:
    """The init's namespaces we do not share yet (setns into our own user ns is refused)."""
    joins = []
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        name = NS_PROC_NAMES[ns["type"]]
        path = f"/proc/{pid}/ns/{name}"
        try:
            theirs, ours = os.stat(path), os.stat(f"/proc/self/ns/{name}")
        except OSError as e:
            raise InitError(e.errno or 0, f"stat {path}") from None
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            joins.append((path, NAMESPACES[ns["type"]]))
    return joins


def exec_(root: str, cid: str, opts: ExecOptions) -> int:
    from . import _native
    from .container import (
        Undo,
        _handshake,
        _kill_quietly,
        _reap,
        apply_seccomp,
        cap_bounding,
        check_preserved_fds,
        exec_error,
        open_namespaces,
        open_placement,
        seccomp_listener,
        spawn_placed,
    )
    from .lifecycle import wait_forwarding_signals

    log.begin()
    check_preserved_fds(opts.preserve_fds)  # before we open any fd (the state dir: the lock)
    with Container.load(root, cid) as c:
        status = c.status()
        if status == PAUSED:
            raise InvalidState("cannot exec in a paused container")
        if status not in (RUNNING, CREATED):
            raise InvalidState(f"cannot exec in a {STOPPED} container")
        from . import cache

        cache_dir = cache.path("config")
        config = c.load_config()
        proc = _process(config, opts, cache_dir)
        cg = None
        if (c.data.get("cgroup_paths") or {}).get("dirs"):
            from . import cgroups

            cg = cgroups.from_state(c.data["cgroup_paths"])
            if os.geteuid() != 0:
                from .cgroups.rootless import can_join

                if not can_join(c.data["cgroup_paths"]):
                    log.debug(
                        "rootless: the process stays in the caller's cgroups (it may "
                        "not move one into the container's), as with runc"
                    )
                    cg = None
        p = planmod.build_exec(
            proc,
            _joins(config, c.pid),
            planmod.Options(preserve_fds=opts.preserve_fds, cgroups=cg is not None),
            cap_bounding=cap_bounding(),
            seccomp=(config.get("linux") or {}).get("seccomp"),
            mounts=config.get("mounts") or [],
        )
        from .rootless import setgroups_denied

        if setgroups_denied(c.pid):  # a rootless container mapping only the caller's gid
            if p.groups:
                raise OcirunError(
                    "cannot set any additional groups in a rootless container "
                    "(setgroups is denied in its user namespace)"
                )
            p.keep_groups = True
        for warning in p.warnings:
            log.warning(warning)
        for note in p.notes:
            log.debug(note)
        p.trace = log.enabled()
        seccomp = (config.get("linux") or {}).get("seccomp")
        if seccomp:
            apply_seccomp(p, seccomp, root)
        state = c.oci_state()
    log.phase("lock + state, config, plan")
    console = ours = None
    if p.terminal:
        if opts.console_socket:
            from . import terminal

            console = terminal.connect(opts.console_socket)
        elif not opts.detach:
            ours, console = _native.socketpair("stream")
        else:
            raise OcirunError("a detached exec with a tty needs --console-socket")
    elif opts.console_socket:
        raise OcirunError("--console-socket needs --tty")

    if not opts.detach:
        _native.set_child_subreaper()
    with Undo() as undo:
        ns_fds = open_namespaces(p, undo)
        placement = open_placement(cg, undo)
        parent, child = _native.socketpair()
        undo.add(parent.close)
        try:
            pid = spawn_placed(
                p, placement, child.fileno(), -1, ns_fds, -1, console.fileno() if console else -1
            )
        finally:
            child.close()
        if console is not None:
            console.close()
        log.phase("clone")
        undo.add(_reap, pid)
        undo.add(_kill_quietly, pid)
        proc_pid = _handshake(
            parent, pid, p, cgroups=cg, on_listener=seccomp_listener(seccomp, state)
        )
        if proc_pid != pid:
            _reap(pid)
            undo.add(_kill_quietly, proc_pid)
        log.phase("setup (join namespaces, cgroups, credentials)")
        # The child's end closes at execve; a message instead means execve failed.
        msg = _native.recv(parent)
        if msg is not None:
            raise exec_error(msg)
        log.phase("execve")
        if opts.pid_file:
            write_pid_file(opts.pid_file, proc_pid)
        undo.disarm()
    for fd in ns_fds:
        os.close(fd)
    if placement is not None:
        placement.close()
    parent.close()
    if opts.detach:
        return 0
    if ours is not None:
        from . import terminal

        master = terminal.recv_master(ours)
        ours.close()
        return terminal.proxy(master, proc_pid, lambda: wait_forwarding_signals(proc_pid))
    return wait_forwarding_signals(proc_pid)
