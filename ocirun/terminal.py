"""process.terminal on the runtime's side: the console socket, and `run`'s own tty proxy.

The init sends the pty master over the console socket (see csrc/terminal.c). With
`--console-socket`, the engine receives it; `run` without one receives it itself and
proxies the user's terminal: raw mode, window size (SIGWINCH), stdin -> master -> stdout.
"""

from __future__ import annotations

import _socket
import array
import os
import select
import socket

from ._lean import signal
from .errors import OcirunError


def connect(path: str) -> socket.socket:
    """The engine's console socket, connected before clone (the init only sends on it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OcirunError(f"connect to console socket {path}: {e.strerror}") from None
    return s


def recv_master(sock: _socket.socket) -> int:
    """Receive the pty master (one message: name as data, one fd)."""
    fds = array.array("i")
    msg, anc, _flags, _addr = sock.recvmsg(
        4096, socket.CMSG_SPACE(fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, type_, data in anc:
        if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise OcirunError("the container init sent no terminal")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def keep_line_ends(master: int) -> None:
    """For proxy() into a captured stdout (a script, a CI log): the process's "\n" arrives
    as "\n", not the pty's "\r\n" (runc clears ONLCR on the pty it proxies too, and
    scripts compare the lines). Called as the master arrives, before the process may write.
    On a terminal it stays: there the caller's raw mode leaves the line ends to the pty."""
    import termios

    if os.isatty(1):
        return
    try:
        attrs = termios.tcgetattr(master)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(master, termios.TCSANOW, attrs)
    except termios.error:
        pass


def proxy(master: int, pid: int, wait) -> int:
    """Relay the user's terminal to the container's until `wait()` reports the exit."""
    import termios
    import tty

    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    if stdin_tty:
        _copy_winsize(0, master)
        tty.setraw(0)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(0, master))
    try:
        inputs = [master, 0]
        while True:
            try:
                ready, _, _ = select.select(inputs, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed, the process is gone
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    inputs.remove(0)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
    return wait()
