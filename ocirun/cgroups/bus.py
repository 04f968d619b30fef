"""The D-Bus connection the systemd cgroup driver (sdbus.py) talks through: EXTERNAL auth,
method calls, signals, over a unix socket (dbus.py has the wire format), stdlib only.

    c = Connection("unix:path=/run/dbus/system_bus_socket")  # auth, then Hello on a bus
    c.call(dest, path, iface, member, "ss", a, b)  # the reply's body, or DBusError
    c.receive(timeout)                             # the next Message (a signal), or None

The C `_socket` + `struct` only: ~1 ms to import where jeepney costs 10-40 ms (typing, enum,
selectors); delete loads it for a --systemd-cgroup container.
"""

from __future__ import annotations

import os
import time

from .dbus import (
    ERROR,
    METHOD_RETURN,
    SIGNAL,
    DBusError,
    Message,
    decode,
    message_length,
    method_call,
)

CALL_TIMEOUT = 30.0  # a reply: pid 1 can be busy for seconds (daemon-reload, boot)


def parse_address(address: str) -> tuple[str, str]:
    """("unix:path=/x" | "unix:abstract=y"; more, ";"-separated) -> (socket path, the text
    for messages). Only unix sockets: the system bus is always one."""
    for entry in address.split(";"):
        transport, _, params = entry.partition(":")
        if transport != "unix":
            continue
        kv = {}
        for p in params.split(","):
            k, _, v = p.partition("=")
            kv[k] = _unescape_value(v)
        if kv.get("path"):
            return kv["path"], kv["path"]
        if kv.get("abstract"):
            return "\0" + kv["abstract"], "@" + kv["abstract"]
    raise ValueError(f"no unix socket in D-Bus address {address!r}")


def _unescape_value(v: str) -> str:
    if "%" not in v:
        return v
    out, i = bytearray(), 0
    raw = v.encode()
    while i < len(raw):
        if raw[i] == 0x25 and i + 3 <= len(raw):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


class Connection:
    """A blocking D-Bus connection (a bus daemon's, or a peer-to-peer one to systemd).
    Signals that arrive while a reply is awaited are kept in `signals` if `keep(msg)`."""

    def __init__(self, address: str, *, timeout: float = CALL_TIMEOUT, hello: bool | None = None):
        import _socket  # the C module: `socket` itself imports enum and selectors

        path, self.where = parse_address(address)
        self.timeout = timeout
        self.serial = 0
        self.buf = bytearray()
        self.signals: list[Message] = []
        self.keep = lambda m: False
        self.unique_name = ""
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.sock = s
        try:
            s.settimeout(timeout)
            s.connect(path)
            self._auth()
            if hello is None:
                hello = path != "/run/systemd/private"
            if hello:
                (self.unique_name,) = self.call(
                    "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello"
                )
        except BaseException:
            s.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def _auth(self) -> None:
        """SASL EXTERNAL, with BEGIN sent along (as sd-bus does): systemd 252's server
        reads BEGIN and a message right behind it in one go, then leaves the message
        unanswered until more bytes come; pipelined, BEGIN is done before we write one."""
        uid = str(os.geteuid()).encode().hex()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid.encode() + b"\r\nBEGIN\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise OSError(
                13, "D-Bus authentication refused: " + line.decode(errors="replace").strip()
            )

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError(104, "the D-Bus peer closed the connection")
            self.buf += chunk
            if len(self.buf) > 16384:
                raise OSError(71, "D-Bus authentication: line too long")
        line, _, rest = bytes(self.buf).partition(b"\r\n")
        self.buf = bytearray(rest)
        return line

    def send(self, msg: Message) -> None:
        self.sock.sendall(msg.encode())

    def next_serial(self) -> int:
        self.serial = self.serial % 0xFFFFFFFF + 1
        return self.serial

    def receive(self, timeout: float | None) -> Message | None:
        """The next message, or None when `timeout` (s) passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        need = 16
        while True:
            if len(self.buf) >= 16:
                need = message_length(self.buf[:16])
                if need > 128 << 20:
                    raise OSError(90, "D-Bus message too long")
                if len(self.buf) >= need:
                    data = bytes(self.buf[:need])
                    del self.buf[:need]
                    return decode(data)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self.sock.settimeout(left if left is not None else self.timeout)
            try:
                chunk = self.sock.recv(max(65536, need - len(self.buf)))
            except TimeoutError:
                if deadline is None:
                    raise
                return None
            if not chunk:
                raise OSError(104, "the D-Bus peer closed the connection")
            self.buf += chunk

    def call(
        self,
        dest: str | None,
        path: str,
        iface: str | None,
        member: str,
        sig: str = "",
        *args,
        timeout: float | None = None,
    ) -> tuple:
        """Call a method; its reply's body (a tuple), or DBusError for an error reply."""
        serial = self.next_serial()
        self.send(method_call(serial, dest, path, iface, member, sig, args))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self.receive(deadline - time.monotonic())
            if msg is None:
                raise TimeoutError(f"no reply to {member} within {timeout or self.timeout:g}s")
            if msg.type in (METHOD_RETURN, ERROR) and msg.reply_serial == serial:
                if msg.type == ERROR:
                    text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
                    raise DBusError(msg.error_name or "org.freedesktop.DBus.Error.Failed", text)
                return msg.body
            if msg.type == SIGNAL and self.keep(msg):
                self.signals.append(msg)
