"""process.terminal on real containers: the console socket protocol (one message: the pty's
name as data, exactly one fd), the pty as the process's stdio and controlling terminal,
/dev/console bound to it, consoleSize, input, the clean errors, and `run` proxying the
caller's own terminal (under pty.fork)."""

from __future__ import annotations

import array
import fcntl
import os
import pty
import re
import select
import signal
import socket
import struct
import tempfile
import termios
import time
from pathlib import Path

from clitools import call, fails, ok
from testenv import OCIRUN

PTS_MAJOR = 136


# --------------------------------------------------------------------------- helpers


class ConsoleServer:
    """The engine's side of --console-socket: bind + listen; accept after create."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(10)

    def receive(self) -> tuple[bytes, list[int]]:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(10)
            fds = array.array("i")
            data, anc, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
            assert not flags & socket.MSG_CTRUNC
            for level, kind, payload in anc:
                assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            # One message, then the sender is done: nothing more arrives.
            rest = conn.recv(4096)
        return data, list(fds), rest

    def close(self):
        self.sock.close()


def read_until_closed(master: int, timeout: float = 10) -> str:
    """Everything the container writes to its pty until the last slave fd closes (EIO)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if not r:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every slave is closed
            break
        if not data:
            break
        out += data
    return out.decode(errors="replace").replace("\r\n", "\n")


TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int); not in Python's termios


def pty_number(master: int) -> int:
    return struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]


def terminal(size: dict | None = None, args: list[str] | None = None):
    def mutate(cfg):
        cfg["process"]["terminal"] = True
        if size:
            cfg["process"]["consoleSize"] = size
        if args:
            cfg["process"]["args"] = args

    return mutate


def tty_nr(pid_stat: str) -> int:
    return int(pid_stat.rsplit(")", 1)[1].split()[4])  # field 7


SCRIPT = (
    "tty; stty size; "
    "echo fd0=$(readlink /proc/$$/fd/0) fd1=$(readlink /proc/$$/fd/1) "
    "fd2=$(readlink /proc/$$/fd/2); "
    "echo console=$(stat -c '%F %t:%T' /dev/console) ptsdev=$(stat -L -c '%t:%T' /proc/$$/fd/0); "
    "echo stat=$(cat /proc/self/stat); "
    "echo sid=$(cut -d' ' -f6 /proc/self/stat) pid=$$"
)


def create_with_console(rt, make_bundle, tmp_path, mutate, cid="tty1"):
    srv = ConsoleServer(tmp_path / "console.sock")
    try:
        r = call(
            rt, "create", "--bundle", make_bundle(mutate=mutate), "--console-socket", srv.path, cid
        )
        ok(r)
        data, fds, rest = srv.receive()
    finally:
        srv.close()
    return data, fds, rest


# --------------------------------------------------------------------------- console socket


def test_console_socket_message_and_pty(rt, make_bundle, tmp_path):
    data, fds, rest = create_with_console(
        rt, make_bundle, tmp_path, terminal({"height": 33, "width": 101}, ["sh", "-c", SCRIPT])
    )
    try:
        assert len(fds) == 1, f"expected exactly one fd, got {fds}"
        assert rest == b""
        master = fds[0]
        name = data.decode()
        m = re.fullmatch(r"/dev/pts/(\d+)", name)
        assert m, f"pty name {data!r}"
        assert pty_number(master) == int(m.group(1))
        assert rt.state("tty1")["status"] == "created"
        ok(call(rt, "start", "tty1"))
        out = read_until_closed(master)
        os.close(master)
    finally:
        ok(call(rt, "delete", "--force", "tty1"))
    lines = out.splitlines()
    assert lines[0] == name, out  # tty
    assert lines[1] == "33 101", out  # stty size == consoleSize
    assert lines[2] == f"fd0={name} fd1={name} fd2={name}", out
    n = int(m.group(1))
    dev = f"{PTS_MAJOR:x}:{n:x}"
    assert lines[3] == f"console=character special file {dev} ptsdev={dev}", out
    stat = lines[4].removeprefix("stat=")
    assert tty_nr(stat) == os.makedev(PTS_MAJOR, n), stat  # controlling terminal
    sid, pid = dict(kv.split("=") for kv in lines[5].split()).values()
    assert sid == pid == "1", lines[5]  # the init leads its session


def test_console_input_reaches_the_process(rt, make_bundle, tmp_path):
    _, fds, _ = create_with_console(
        rt,
        make_bundle,
        tmp_path,
        terminal(args=["sh", "-c", "stty -echo; read line; echo got:$line; exit 3"]),
    )
    master = fds[0]
    try:
        ok(call(rt, "start", "tty1"))
        time.sleep(0.2)
        os.write(master, b"hello pty\n")
        out = read_until_closed(master)
        os.close(master)
        deadline = time.monotonic() + 10
        while rt.state("tty1")["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.state("tty1")["status"] == "stopped"
    finally:
        ok(call(rt, "delete", "--force", "tty1"))
    assert "got:hello pty" in out.splitlines(), out


def test_pty_belongs_to_the_process_user(rt, make_bundle, tmp_path):
    def mutate(cfg):
        terminal(
            args=["sh", "-c", "id -u; stat -L -c %u:%a /proc/$$/fd/0; echo hi > /proc/$$/fd/1"]
        )(cfg)
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}

    _, fds, _ = create_with_console(rt, make_bundle, tmp_path, mutate)
    try:
        ok(call(rt, "start", "tty1"))
        out = read_until_closed(fds[0])
        os.close(fds[0])
    finally:
        ok(call(rt, "delete", "--force", "tty1"))
    lines = out.splitlines()
    assert lines[0] == "1000", out
    assert lines[1].startswith("1000:"), out
    assert lines[2] == "hi", out


def test_terminal_without_console_socket_is_a_clean_error(rt, make_bundle):
    r = call(rt, "create", "--bundle", make_bundle(mutate=terminal()), "tty1")
    fails(r, "console-socket")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ok(call(rt, "list", "-q")).stdout.split() == []


def test_console_socket_without_terminal_is_a_clean_error(rt, make_bundle, tmp_path):
    srv = ConsoleServer(tmp_path / "console.sock")
    try:
        r = call(
            rt,
            "create",
            "--bundle",
            make_bundle(args=["true"]),
            "--console-socket",
            srv.path,
            "tty1",
        )
    finally:
        srv.close()
    fails(r, "console-socket", "terminal")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ok(call(rt, "list", "-q")).stdout.split() == []


def test_console_socket_that_nobody_listens_on(rt, make_bundle, tmp_path):
    path = str(tmp_path / "nobody.sock")
    r = call(
        rt, "create", "--bundle", make_bundle(mutate=terminal()), "--console-socket", path, "tty1"
    )
    fails(r, path)
    assert ok(call(rt, "list", "-q")).stdout.split() == []


# --------------------------------------------------------------------------- run under a pty


def run_under_pty(
    argv: list[str],
    send: bytes = b"",
    rows: int = 0,
    cols: int = 0,
    on_output=None,
    timeout: float = 20,
) -> tuple[str, int]:
    """argv under a fresh pty (its stdin/stdout/stderr are the slave), window size set
    before it starts; `send` is typed once the output so far contains "ready", and
    `on_output(text)` is called on every new output. Returns (output, exit code)."""
    pid, master = pty.fork()
    if pid == 0:
        try:
            if rows or cols:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if not r:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child and everything holding the slave are gone
                break
            if not data:
                break
            out += data
            text = out.decode(errors="replace")
            if send and "ready" in text:
                os.write(master, send)
                send = b""
            if on_output:
                on_output(text)
        else:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    return out.decode(errors="replace").replace("\r\n", "\n"), os.waitstatus_to_exitcode(status)


def test_run_with_terminal_proxies_and_propagates_exit_code(rt, make_bundle):
    bundle = make_bundle(
        mutate=terminal(
            {"height": 5, "width": 6},
            args=[
                "sh",
                "-c",
                "tty; stty -echo; echo ready; read line; stty size; echo got:$line; exit 7",
            ],
        )
    )
    out, code = run_under_pty(
        [OCIRUN, "--root", rt.root, "run", "--bundle", bundle, "tty1"],
        send=b"typed\n",
        rows=24,
        cols=91,
    )
    assert code == 7, out
    lines = out.splitlines()
    assert re.fullmatch(r"/dev/pts/\d+", lines[0]), out
    # Once the proxy runs (our input got through), the caller's window size has replaced
    # consoleSize. (Before that, the process may still see consoleSize: `run` copies the
    # size only after `start`.)
    assert lines[-2:] == ["24 91", "got:typed"], out
    assert ok(call(rt, "list", "-q")).stdout.split() == []


def test_run_with_terminal_into_a_pipe_keeps_the_line_ends(rt, make_bundle):
    """Foreground `run` with a terminal whose stdout is captured (a script, a CI log): the
    lines end in "\n" as the process wrote them, not the pty's "\r\n" (runc clears ONLCR
    on the pty it proxies), so they compare as written."""
    bundle = make_bundle(mutate=terminal(args=["sh", "-c", "echo one; printf 'two\\n'"]))
    with tempfile.TemporaryFile() as out:  # binary: no newline translation on reading
        r = call(rt, "run", "--bundle", bundle, "tty1", stdout=out)
        assert r.returncode == 0, r.stderr
        out.seek(0)
        assert out.read() == b"one\ntwo\n"


def test_run_with_terminal_killed_from_outside(rt, make_bundle):
    """SIGKILL from the host (a pid namespace's init ignores it from inside): 128+9."""
    bundle = make_bundle(mutate=terminal(args=["sh", "-c", "echo ready; sleep 30"]))
    killed = []

    def kill_when_ready(text):
        if "ready" in text and not killed:
            killed.append(call(rt, "kill", "tty1", "KILL"))

    t0 = time.monotonic()
    out, code = run_under_pty(
        [OCIRUN, "--root", rt.root, "run", "--bundle", bundle, "tty1"], on_output=kill_when_ready
    )
    assert killed and killed[0].returncode == 0, killed
    assert code == 137, out
    assert time.monotonic() - t0 < 15
    assert ok(call(rt, "list", "-q")).stdout.split() == []
