"""`exec`: a new process in a running container.

It joins every namespace of the container's init (those we do not already share), gets its
process settings from --process FILE or the container's process with the flags on top, and
is protected like the init (non-dumpable before joining, no fd but stdio and preserved ones).
"""

from __future__ import annotations

import os

from . import _native, execfacts, log
from . import plan as planmod
from .cleanup import Cleanup
from .errors import InitError, InvalidState, OcirunError
from .hostfacts import cap_bounding, check_lsm, check_preserved_fds, kernel_has_faccessat2
from .options import ExecOptions
from .protocol import exec_error, seccomp_listener
from .spawner import ParentProcess, console_ends
from .state import CREATED, PAUSED, RUNNING, STOPPED, Container, write_pid_file
from .tables import NAMESPACES, NS_PROC_NAMES


def _exec_process(config: dict, opts: ExecOptions) -> dict:
    """The process to run, validated: from --process FILE, or the container's with the
    flags on top. Only what the flags change is validated again: the container's process
    passed create's validation, and argv (args) and -t (terminal) can't be invalid."""
    if opts.process_file:
        from . import spec

        proc = spec.read_json_object(opts.process_file, "a process", at=("process",))
        if proc.get("capabilities") is None and "capabilities" in (config.get("process") or {}):
            # as runc: a process without capabilities gets the container's
            proc["capabilities"] = config["process"]["capabilities"]
        source = opts.process_file
    else:
        if not opts.args:
            raise OcirunError("exec needs a command: ocirun exec ID COMMAND [ARG...]")
        base = config.get("process") or {}
        caps = [
            x.upper() if x.upper().startswith("CAP_") else "CAP_" + x.upper() for x in opts.caps
        ]
        proc = planmod.process_with_exec_flags(
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
        changed = (
            opts.env or opts.cwd or opts.user or opts.additional_gids or caps or opts.no_new_privs
        )
        if not changed:
            check_lsm(proc)
            return proc
    from . import cache, spec

    spec.validate_process_cached(proc, cache.path("config"), source)
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


def _plan(c: Container, config: dict, proc: dict, opts: ExecOptions, facts: execfacts.Facts):
    seccomp = (config.get("linux") or {}).get("seccomp")
    host = planmod.HostFacts(
        cap_bounding=cap_bounding(),
        euid=os.geteuid(),
        seccomp=facts.seccomp,
        trace=log.enabled(),
        faccessat2=kernel_has_faccessat2(),
        setgroups_denied=facts.setgroups_denied,
    )
    p = planmod.build_exec(
        proc,
        _joins(config, c.pid),
        planmod.Options(preserve_fds=opts.preserve_fds, cgroups=facts.cgroups is not None),
        host,
        seccomp=seccomp,
        mounts=config.get("mounts") or [],
        personality=(config.get("linux") or {}).get("personality"),
        memory_policy=(config.get("linux") or {}).get("memoryPolicy"),
    )
    for note in p.notes:
        log.debug(note)
    return p


def exec_(root: str, cid: str, opts: ExecOptions) -> int:
    from .lifecycle import wait_forwarding_signals

    log.begin()
    check_preserved_fds(opts.preserve_fds)  # before we open any fd (the state dir: the lock)
    with Container.load(root, cid) as c:
        status = c.status()
        if status == PAUSED:
            raise InvalidState("cannot exec in a paused container")
        if status not in (RUNNING, CREATED):
            raise InvalidState(f"cannot exec in a {STOPPED} container")
        config = c.load_config()
        proc = _exec_process(config, opts)
        facts, recorded = execfacts.of(c.data, (config.get("linux") or {}).get("seccomp"))
        if not recorded:
            log.debug("exec: no usable record of create's facts: worked out now")
        cg = facts.cgroups
        p = _plan(c, config, proc, opts, facts)
        state = c.oci_state()
    log.phase("lock + state, config, plan")
    console, ours = console_ends(
        p.process.terminal,
        opts.console_socket,
        not opts.detach,
        socket_without_terminal="--console-socket needs --tty",
        terminal_without_socket="a detached exec with a tty needs --console-socket",
    )
    # An exec joining a pid namespace is forked after the clone: a subreaper gets it back,
    # to wait for (not detached), and to reap if the start fails (detached too: it then
    # passes to our caller's subreaper, as it would have anyway, once we exit).
    _native.set_child_subreaper()
    with Cleanup() as always, Cleanup() as on_failure:
        if console is not None:
            always.add(console.close)
        if ours is not None:
            on_failure.add(ours.close)
        process = ParentProcess(p, always, on_failure, cgroups=cg)
        proc_pid = process.start(
            console=console,
            on_listener=seccomp_listener((config.get("linux") or {}).get("seccomp"), state),
        )
        log.phase("setup (join namespaces, cgroups, credentials)")
        for warning in p.warnings:  # once the process exists (a failed exec says only why)
            log.warning(warning)
        # The child's end closes at execve; a message instead means execve failed.
        assert process.sync is not None
        msg = _native.recv(process.sync)
        if msg is not None:
            raise exec_error(msg)
        log.phase("execve")
        if opts.pid_file:
            write_pid_file(opts.pid_file, proc_pid)
        on_failure.pop_all()
        always.add(process.sync.close)
    if opts.detach:
        return 0
    if ours is not None:
        from . import terminal

        master = terminal.recv_master(ours)
        ours.close()
        terminal.keep_line_ends(master)
        return terminal.proxy(master, proc_pid, lambda: wait_forwarding_signals(proc_pid))
    return wait_forwarding_signals(proc_pid)
