"""The parent side of starting a process in a container, shared by `create` (the init) and
`exec` (a process joining it), in the shape of runc's parentProcess: open what the child
needs before the clone (namespace fds, cgroup placement, detached mount sources), clone it
(csrc/spawn.c), answer it over the sync socket until it is ready (protocol.py), and register
how to undo each step on the caller's cleanup stacks.
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~5 ms to import
import errno
import os

from . import _native, log
from ._lean import Callable
from .cleanup import Cleanup
from .errors import InitError, OcirunError
from .plan import Plan
from .protocol import handshake
from .tables import MS_REC, SIGNALS


def console_ends(
    terminal: bool,
    console_socket: str | None,
    own_console: bool,
    *,
    socket_without_terminal: str,
    terminal_without_socket: str,
) -> tuple[_socket.socket | None, _socket.socket | None]:
    """(the socket the init sends the pty master on, our receiving end or None): the
    engine's --console-socket, or a socketpair when we proxy the terminal ourselves. The
    two refusals are worded by the command (create's and exec's flags differ)."""
    if not terminal:
        if console_socket:
            raise OcirunError(socket_without_terminal)
        return None, None
    if console_socket:
        from . import terminal as term

        return term.connect(console_socket), None
    if own_console:
        ours, theirs = _native.socketpair("stream")
        return theirs, ours
    raise OcirunError(terminal_without_socket)


def open_namespaces(p: Plan, always: Cleanup) -> list[int]:
    """fds of the namespaces the plan joins, opened before the clone: a missing path fails
    here, before anything runs."""
    fds = []
    for path, _ in p.ns.joins:
        try:
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError as e:
            raise InitError(e.errno or 0, f"open namespace {path}") from None
        always.add(os.close, fds[-1])
    return fds


def open_placement(cg, always: Cleanup) -> _native.Placement | None:
    """The fds by which the child enters the cgroups of manager `cg` itself, or None when
    the parent must move it (cg.add)."""
    where = cg.placement() if cg is not None else None
    if where is None:
        return None
    tasks, into = where
    fds = []
    try:
        for path in tasks:
            fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
            always.add(os.close, fds[-1])
        into_fd = -1
        if into:
            into_fd = os.open(into, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            always.add(os.close, into_fd)
    except OSError as e:
        from .cgroups.common import CgroupError, _strerror

        raise CgroupError(f"open {e.filename}: {_strerror(e)}") from None
    return _native.Placement(fds, tasks, into_fd)


def open_mount_sources(p: Plan, always: Cleanup) -> dict[int, int]:
    """Detached copies of the bind sources the plan wants made in the runtime's namespaces
    (plan.Mount.detached), by index in p.rootfs.mounts: a missing or unreadable source fails here,
    before anything runs."""
    fds: dict[int, int] = {}
    with Cleanup() as users_done:
        users: dict[tuple[str, str], int] = {}  # one user namespace per mapping
        for i, m in enumerate(p.rootfs.mounts):
            if not m.detached:
                continue
            assert m.source is not None  # a detached mount is a bind
            try:
                fds[i] = _native.open_tree(m.source, bool(m.flags & MS_REC) or m.idmap_recursive)
            except OSError as e:
                raise InitError(e.errno or 0, f"open_tree {m.source}") from None
            always.add(os.close, fds[i])
            if not m.idmap:
                continue
            if m.idmap not in users:
                users[m.idmap] = _native.userns_fd(*m.idmap)
                users_done.add(os.close, users[m.idmap])
            try:
                _native.idmap_mount(fds[i], users[m.idmap], m.idmap_recursive)
            except OSError as e:
                why = "the filesystem can't be idmapped" if e.errno == errno.EINVAL else e.strerror
                raise InitError(0, f"idmapped mount of {m.source} at {m.target}: {why}") from None
    return fds


def reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, SIGNALS["SIGKILL"])
    except ProcessLookupError:
        pass


def _clone(p: Plan, fds: _native.SpawnFds, placement: _native.Placement) -> int:
    """_native.spawn with `placement`; where the kernel has no clone3 or CLONE_INTO_CGROUP
    (before 5.7), without it: the plan's cgroup_sync then has the parent move the child
    (MSG_CGROUP). Decided here, logged at debug."""
    fds.task_fds = placement.task_fds
    try:
        return _native.spawn(p, fds, placement, cgroup_sync=False)
    except OSError as e:
        if placement.into_fd < 0 or e.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
        log.debug(f"clone3 into the cgroup refused ({e.strerror}): the parent moves the child")
    fds.task_fds = []
    return _native.spawn(p, fds, None, cgroup_sync=p.cgroup_sync)


class ParentProcess:
    """One process being started in a container, seen from the runtime. `always` releases
    what is only needed until the child is ready; `on_failure` undoes what a failed start
    leaves (the child itself, here)."""

    def __init__(self, plan: Plan, always: Cleanup, on_failure: Cleanup, cgroups=None):
        self.plan, self.always, self.on_failure, self.cgroups = plan, always, on_failure, cgroups
        self.pid = -1  # the clone's (the intermediate's, with fork_after)
        self.init_pid = -1  # the process that execs the container's program
        self.sync: _socket.socket | None = None  # our end of the sync socket
        self._intermediate_reaped = False

    def start(
        self,
        *,
        fifo_fd: int = -1,
        state_fd: int = -1,
        result_fd: int = -1,
        console: _socket.socket | None = None,
        mount_fds: dict[int, int] | None = None,
        on_hooks: Callable[[int], None] | None = None,
        on_listener: Callable[[int, int], None] | None = None,
        on_netdev: Callable[[int], None] | None = None,
    ) -> int:
        """Clone and answer the child until it is ready; returns the init's pid. The
        callbacks are protocol.handshake's."""
        p = self.plan
        ns_fds = open_namespaces(p, self.always)
        placement = open_placement(self.cgroups, self.always)
        parent, child = _native.socketpair()
        self.sync = parent
        self.on_failure.add(parent.close)
        fds = _native.SpawnFds(
            sync=child.fileno(),
            fifo=fifo_fd,
            ns=ns_fds,
            state=state_fd,
            console=console.fileno() if console is not None else -1,
            result=result_fd,
            mounts=mount_fds or {},
            preserve=p.process.preserve_fds,
        )
        try:
            if placement is None:
                self.pid = _native.spawn(p, fds, None, cgroup_sync=p.cgroup_sync)
            else:
                self.pid = _clone(p, fds, placement)
        finally:
            child.close()
            if console is not None:
                console.close()  # the child has its copy
        log.phase("clone")
        self.on_failure.add(reap, self.pid)
        self.on_failure.add(kill_quietly, self.pid)
        self.init_pid = handshake(
            parent,
            self.pid,
            p,
            cgroups=self.cgroups,
            on_hooks=on_hooks,
            on_listener=on_listener,
            on_netdev=on_netdev,
            on_pid=self._forked,
        )
        if self.init_pid != self.pid:
            reap(self.pid)  # the intermediate has exited
            self._intermediate_reaped = True
        return self.init_pid

    def _forked(self, init_pid: int) -> None:
        if init_pid != self.pid:
            self.on_failure.add(self._end_forked, init_pid)

    def _end_forked(self, init_pid: int) -> None:
        """A failed start's init forked after the clone (joining a pid namespace): killed,
        and reaped once the intermediate is gone, as it then is ours (a subreaper: run,
        exec). Left a zombie, it would pass to the host's init, and the container's
        pid-namespace init would not finish dying (delete --force waits) until that init
        reaped it."""
        kill_quietly(init_pid)
        if not self._intermediate_reaped:
            kill_quietly(self.pid)
            reap(self.pid)
            self._intermediate_reaped = True
        reap(init_pid)
