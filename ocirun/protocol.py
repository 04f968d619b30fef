"""The parent's half of the sync protocol with a starting container process (the messages
are csrc/ocirun.h's OCIRUN_MSG_*): the id maps, cgroup placement, hooks, network devices and
seccomp listener it asks for, and how its failures are worded.
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~5 ms to import
import os

from . import _native, log
from ._lean import Callable
from .errors import InitError
from .plan import Plan


def write_idmaps(pid: int, p: Plan) -> None:
    if p.ns.idmaps is not None:  # a non-root caller: setgroups, newuidmap/newgidmap
        from .rootless import write_idmaps as write_rootless

        write_rootless(pid, p.ns.uid_map, p.ns.gid_map, p.ns.idmaps)
        return
    for name, text in (("uid_map", p.ns.uid_map), ("gid_map", p.ns.gid_map)):
        path = f"/proc/{pid}/{name}"
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError as e:
            raise InitError(e.errno or 0, f"write {path}") from None


def seccomp_listener(seccomp: dict | None, state: dict):
    """The on_listener callback of the handshake: hand the fd to listenerPath."""

    def send(pid: int, fd: int) -> None:
        from .seccomp_notify import send_listener

        assert seccomp is not None  # the init has a listener only where a profile asks

        send_listener(
            seccomp["listenerPath"], fd, dict(state, pid=pid), seccomp.get("listenerMetadata") or ""
        )

    return send


def exec_error(msg: _native.Msg) -> InitError:
    """A failed executable lookup or execve, worded as runc's Go errors are (lower-case
    strerror): podman maps "no such file or directory" to 127, "permission denied" to 126."""
    if msg.type != _native.MSG_EXEC_ERROR:
        return InitError(msg.err, msg.text)
    detail = os.strerror(msg.err).lower() if msg.err else ""
    return InitError(0, f"{msg.text}: {detail}" if detail else msg.text)


def handshake(
    sync: _socket.socket,
    pid: int,
    p: Plan,
    *,
    cgroups=None,
    on_hooks: Callable[[int], None] | None = None,
    on_listener: Callable[[int, int], None] | None = None,
    on_netdev: Callable[[int], None] | None = None,
    on_pid: Callable[[int], None] | None = None,
) -> int:
    """Answer the child until it is ready; return the init's pid. `on_pid(init_pid)`: the
    pid of an init forked after the clone, as soon as it is known (a failure later in the
    handshake must still end it). `cgroups` (a manager)
    takes the child first; `on_netdev(pid)` moves linux.netDevices into the network
    namespace of `pid` once it exists; `on_hooks(init_pid)` runs the runtime's hooks when
    the init reaches that point (before pivot_root); `on_listener(init_pid, fd)` takes a
    seccomp notify listener. The child asks only for what its plan says."""
    init_pid = pid
    while True:
        msg = _native.recv(sync)
        if msg is None:
            raise InitError(0, "container init exited before it was ready")
        if msg.type == _native.MSG_CGROUP and cgroups is not None:
            cgroups.add(pid)  # the clone's pid: the child may see itself as 1
            _native.send(sync, _native.MSG_CGROUP_DONE)
        elif msg.type == _native.MSG_IDMAP:
            write_idmaps(pid, p)
            _native.send(sync, _native.MSG_IDMAP_DONE)
        elif msg.type == _native.MSG_PID:
            init_pid = msg.value
            if on_pid is not None:
                on_pid(init_pid)
            _native.send(sync, _native.MSG_GO)
        elif msg.type == _native.MSG_HOOKS and on_hooks is not None:
            on_hooks(init_pid)
            _native.send(sync, _native.MSG_HOOKS_DONE)
        elif msg.type == _native.MSG_NETDEV and on_netdev is not None:
            on_netdev(pid)  # the clone's pid: an init forked after is in its namespace
            _native.send(sync, _native.MSG_NETDEV_DONE)
        elif msg.type == _native.MSG_SECCOMP_FD and on_listener is not None:
            try:
                on_listener(init_pid, msg.fd)
            finally:
                os.close(msg.fd)
        elif msg.type == _native.MSG_READY:
            if msg.text:
                log.debug(f"init phases, us since clone: {msg.text.strip()}")
            return init_pid
        elif msg.type == _native.MSG_EXEC_ERROR:
            raise exec_error(msg)
        elif msg.type == _native.MSG_ERROR:
            raise InitError(msg.err, msg.text)
        else:
            if msg.fd >= 0:
                os.close(msg.fd)
            raise InitError(0, f"unexpected message {msg.type} from the container init")
