"""--systemd-cgroup: the container's cgroup is a transient systemd unit, asked for over D-Bus.

    m = open_manager(config["linux"], cid)   # names only: "slice:prefix:name" -> unit, path
    m.create()       # reach systemd (fails here, before clone, when it can't), check limits
    m.add(pid)       # StartTransientUnit(unit, PIDs=[pid], limits...), wait for the job,
                     # then the cgroupfs manager (v1/v2) on the unit's cgroup does the rest
    m.paths          # {"driver": "systemd", "unit", "bus", + the cgroupfs manager's paths}
    from_state(m.paths).destroy()   # StopUnit, ResetFailedUnit, remove what is left

cgroupsPath is runc's "slice:prefix:name": an empty slice is system.slice, the unit is
"<prefix>-<name>.scope", a name ending in ".slice" makes that slice instead (no PIDs=, the
init joins it through cgroupfs). Without a cgroupsPath: "system.slice:runc:<id>".

What systemd can express goes into the unit's properties (so a `systemctl daemon-reload`
re-applies the same values); everything, including what systemd can't express, is also
written to cgroupfs by the V1Manager/V2Manager pointed at the unit's cgroup, which then does
freeze/thaw, pids, kill, stats and the device rules (v2: our eBPF program next to systemd's).

The D-Bus client is the minimal subset of the wire protocol this needs (EXTERNAL auth,
method calls, one signal), stdlib only: `socket` + `struct`, ~1 ms to import where jeepney
costs 10-40 ms (typing, enum, selectors). The system bus is tried first
($DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket), then systemd's private socket
(/run/systemd/private, root only) when no bus daemon runs.
"""

from __future__ import annotations

import os
import posixpath
import struct
import time

from . import common
from .common import ROOT, CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .common import FS, Manager

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
PRIVATE_BUS = "unix:path=/run/systemd/private"
JOB_TIMEOUT = 30.0  # runc waits as long for a start or stop job
CALL_TIMEOUT = 30.0  # a reply: pid 1 can be busy for seconds (daemon-reload, boot)
_U64_MAX = 2**64 - 1  # systemd's "infinity"

_SD = "org.freedesktop.systemd1"
_SD_PATH = "/org/freedesktop/systemd1"
_SD_MGR = "org.freedesktop.systemd1.Manager"
_PROPS = "org.freedesktop.DBus.Properties"
_GONE = ("org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.systemd1.NoSuchJob",
         "org.freedesktop.DBus.Error.UnknownMethod", "org.freedesktop.DBus.Error.UnknownInterface")
_NO_UNIT = ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed")


# ================================================================ the D-Bus wire protocol

class DBusError(Exception):
    """An error reply: `name` (org.freedesktop.systemd1.NoSuchUnit, ...) and its text."""

    def __init__(self, name: str, message: str = ""):
        super().__init__(f"{name}: {message}" if message else name)
        self.name, self.message = name, message


_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8, "h": 4,
          "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q", "t": "Q",
          "d": "d", "h": "I"}
_split_cache: dict[str, list[str]] = {}


def _type_end(sig: str, i: int) -> int:
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        j = i + 1
        while sig[j] not in ")}":
            j = _type_end(sig, j)
        return j + 1
    if c not in _ALIGN:
        raise ValueError(f"bad D-Bus signature {sig!r}")
    return i + 1


def split_signature(sig: str) -> list[str]:
    """"sa(sv)u" -> ["s", "a(sv)", "u"]: the complete types in order."""
    got = _split_cache.get(sig)
    if got is None:
        got, i = [], 0
        try:
            while i < len(sig):
                j = _type_end(sig, i)
                got.append(sig[i:j])
                i = j
        except IndexError:
            raise ValueError(f"bad D-Bus signature {sig!r}") from None
        _split_cache[sig] = got
    return got


class _Writer:
    """Marshals values, little-endian. Python shapes: b bool, integers int, s/o/g str,
    ay bytes, a<x> list, a{kv} dict (or a list of pairs), (..) tuple, v (signature, value)."""

    __slots__ = ("buf",)

    def __init__(self):
        self.buf = bytearray()

    def pad(self, n: int) -> None:
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, t: str, v) -> None:
        c = t[0]
        fmt = _FIXED.get(c)
        if fmt is not None:
            self.pad(_ALIGN[c])
            self.buf += struct.pack("<" + fmt, (1 if v else 0) if c == "b" else v)
        elif c in "so":
            b = v.encode()
            self.pad(4)
            self.buf += struct.pack("<I", len(b)) + b + b"\0"
        elif c == "g":
            b = v.encode()
            self.buf += bytes((len(b),)) + b + b"\0"
        elif c == "v":
            sig, value = v
            if len(split_signature(sig)) != 1:
                raise ValueError(f"a variant holds one complete type, not {sig!r}")
            self.put("g", sig)
            self.put(sig, value)
        elif c == "a":
            self.pad(4)
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            elem = t[1:]
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            if elem == "y":
                self.buf += bytes(v)
            elif elem[0] == "{":
                kt, vt = split_signature(elem[1:-1])
                for key, value in (v.items() if isinstance(v, dict) else v):
                    self.pad(8)
                    self.put(kt, key)
                    self.put(vt, value)
            else:
                for item in v:
                    self.put(elem, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c == "(":
            self.pad(8)
            subs = split_signature(t[1:-1])
            if len(subs) != len(v):
                raise ValueError(f"struct {t} needs {len(subs)} values, got {len(v)}")
            for sub, item in zip(subs, v):
                self.put(sub, item)
        else:
            raise ValueError(f"cannot marshal D-Bus type {t!r}")


def marshal(sig: str, values) -> bytes:
    """The body for `sig` (its complete types, one value each)."""
    w = _Writer()
    types = split_signature(sig)
    if len(types) != len(values):
        raise ValueError(f"signature {sig!r} needs {len(types)} values, got {len(values)}")
    for t, v in zip(types, values):
        w.put(t, v)
    return bytes(w.buf)


class _Reader:
    __slots__ = ("data", "off", "e")

    def __init__(self, data: bytes, off: int = 0, big: bool = False):
        self.data, self.off, self.e = data, off, ">" if big else "<"

    def align(self, n: int) -> None:
        self.off += -self.off % n

    def _u32(self) -> int:
        self.align(4)
        (n,) = struct.unpack_from(self.e + "I", self.data, self.off)
        self.off += 4
        return n

    def get(self, t: str):
        c = t[0]
        fmt = _FIXED.get(c)
        if fmt is not None:
            self.align(_ALIGN[c])
            (v,) = struct.unpack_from(self.e + fmt, self.data, self.off)
            self.off += struct.calcsize(fmt)
            return bool(v) if c == "b" else v
        if c in "sog":
            n = self.data[self.off] if c == "g" else self._u32()
            start = self.off + (1 if c == "g" else 0)
            end = start + n
            if end >= len(self.data) or self.data[end] != 0:
                raise ValueError("a string runs past the message or lacks its NUL")
            self.off = end + 1
            return self.data[start:end].decode()
        if c == "v":
            sig = self.get("g")
            if len(split_signature(sig)) != 1:
                raise ValueError(f"bad variant signature {sig!r}")
            return (sig, self.get(sig))
        if c == "a":
            n = self._u32()
            elem = t[1:]
            self.align(_ALIGN[elem[0]])
            end = self.off + n
            if end > len(self.data):
                raise ValueError("array runs past the message")
            if elem == "y":
                v = bytes(self.data[self.off:end])
                self.off = end
                return v
            if elem[0] == "{":
                kt, vt = split_signature(elem[1:-1])
                d = {}
                while self.off < end:
                    self.align(8)
                    k = self.get(kt)
                    d[k] = self.get(vt)
                return d
            out = []
            while self.off < end:
                out.append(self.get(elem))
            return out
        if c == "(":
            self.align(8)
            return tuple(self.get(sub) for sub in split_signature(t[1:-1]))
        raise ValueError(f"cannot unmarshal D-Bus type {t!r}")


def unmarshal(sig: str, data: bytes, big: bool = False) -> tuple:
    r = _Reader(data, 0, big)
    return tuple(r.get(t) for t in split_signature(sig))


# message types, header fields
METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED = 1
_F_PATH, _F_IFACE, _F_MEMBER, _F_ERROR, _F_REPLY, _F_DEST, _F_SENDER, _F_SIG = range(1, 9)
_FIELD_TYPES = {_F_PATH: "o", _F_IFACE: "s", _F_MEMBER: "s", _F_ERROR: "s", _F_REPLY: "u",
                _F_DEST: "s", _F_SENDER: "s", _F_SIG: "g", 9: "u"}


class Message:
    __slots__ = ("type", "flags", "serial", "fields", "body")

    def __init__(self, type_: int, serial: int, fields: dict, body: tuple = (), flags: int = 0):
        self.type, self.serial, self.fields, self.body, self.flags = (
            type_, serial, fields, body, flags)

    path = property(lambda self: self.fields.get(_F_PATH))
    interface = property(lambda self: self.fields.get(_F_IFACE))
    member = property(lambda self: self.fields.get(_F_MEMBER))
    error_name = property(lambda self: self.fields.get(_F_ERROR))
    reply_serial = property(lambda self: self.fields.get(_F_REPLY))
    destination = property(lambda self: self.fields.get(_F_DEST))
    sender = property(lambda self: self.fields.get(_F_SENDER))
    signature = property(lambda self: self.fields.get(_F_SIG, ""))

    def encode(self) -> bytes:
        sig = self.signature
        body = marshal(sig, self.body) if sig else b""
        w = _Writer()
        w.buf += struct.pack("<cBBBII", b"l", self.type, self.flags, 1, len(body), self.serial)
        w.put("a(yv)", [(code, (_FIELD_TYPES[code], value))
                        for code, value in sorted(self.fields.items()) if value is not None])
        w.pad(8)
        return bytes(w.buf) + body


def message_length(head: bytes) -> int:
    """The whole message's length from its first 16 bytes."""
    e = ">" if head[:1] == b"B" else "<"
    if head[:1] not in (b"l", b"B"):
        raise ValueError("not a D-Bus message (endianness byte)")
    body_len, _, fields_len = struct.unpack_from(e + "III", head, 4)
    hlen = 16 + fields_len
    return hlen + (-hlen % 8) + body_len


def decode(data: bytes) -> Message:
    big = data[:1] == b"B"
    r = _Reader(data, 0, big)
    _, type_, flags, version = struct.unpack_from("cBBB", data, 0)
    if version != 1:
        raise ValueError(f"D-Bus protocol version {version}")
    r.off = 8
    serial = r.get("u")
    fields = {code: value for code, (_sig, value) in r.get("a(yv)")}
    r.align(8)
    sig = fields.get(_F_SIG, "")
    body = ()
    if sig:
        br = _Reader(data[r.off:], 0, big)
        body = tuple(br.get(t) for t in split_signature(sig))
    return Message(type_, serial, fields, body, flags)


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
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


class Connection:
    """A blocking D-Bus connection (a bus daemon's, or a peer-to-peer one to systemd).
    Signals that arrive while a reply is awaited are kept in `signals` if `keep(msg)`."""

    def __init__(self, address: str, *, timeout: float = CALL_TIMEOUT,
                 hello: bool | None = None):
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
                (self.unique_name,) = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                "org.freedesktop.DBus", "Hello")
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
            raise OSError(13, "D-Bus authentication refused: "
                          + line.decode(errors="replace").strip())

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

    def call(self, dest: str | None, path: str, iface: str | None, member: str,
             sig: str = "", *args, timeout: float | None = None) -> tuple:
        """Call a method; its reply's body (a tuple), or DBusError for an error reply."""
        serial = self.next_serial()
        self.send(Message(METHOD_CALL, serial, {
            _F_PATH: path, _F_IFACE: iface, _F_MEMBER: member, _F_DEST: dest,
            _F_SIG: sig or None}, args))
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


# ================================================================ names and paths

def parse_cgroups_path(raw: str | None, cid: str) -> tuple[str, str, str]:
    """linux.cgroupsPath in runc's systemd form -> (slice, prefix, name). Absent: the
    container runs in system.slice as runc-<id>.scope."""
    if not raw:
        return "system.slice", "runc", cid
    parts = raw.split(":")
    if len(parts) != 3:
        raise CgroupError('expected cgroupsPath to be of format "slice:prefix:name" for '
                          f'systemd cgroups, got "{raw}" instead')
    slice_, prefix, name = parts
    if not name:
        raise CgroupError(f'cgroupsPath "{raw}": the unit name part is empty')
    return slice_ or "system.slice", prefix, name


def unit_name(prefix: str, name: str) -> str:
    """runc's naming: a scope "<prefix>-<name>.scope", unless the name is a slice."""
    if name.endswith(".slice"):
        return name
    return f"{prefix}-{name}.scope"


def unit_cgroup(slice_: str, unit: str) -> str:
    """Where systemd puts the unit's cgroup (below each hierarchy's root): a scope under its
    slice's path, a slice where its own name says ("a-b.slice" -> /a.slice/a-b.slice)."""
    if unit.endswith(".slice"):
        return common.expand_slice(unit)
    base = common.expand_slice(slice_)
    return posixpath.join(base, unit)


def unit_object_path(unit: str) -> str:
    """The unit's D-Bus object (systemd escapes each byte outside [A-Za-z0-9], and a leading
    digit, as _xx)."""
    out = []
    for i, b in enumerate(unit.encode()):
        if (0x41 <= b <= 0x5A) or (0x61 <= b <= 0x7A) or (i > 0 and 0x30 <= b <= 0x39):
            out.append(chr(b))
        else:
            out.append(f"_{b:02x}")
    return _SD_PATH + "/unit/" + ("".join(out) or "_")


def parse_version(text: str) -> int:
    """systemd's Version ("252.38-1~deb12u1", "v245.4-1.fc32", "255") -> 252; -1 unknown."""
    text = text.strip().lstrip('"v')
    digits = ""
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else -1


# ================================================================ properties

def _u64(value: int, what: str) -> int:
    if value == -1:
        return _U64_MAX
    if not 0 <= value <= _U64_MAX:
        raise CgroupError(f"invalid {what} value: {value}")
    return value


def range_to_bits(text: str) -> bytes:
    """A cpuset list ("0-3,8") as systemd's AllowedCPUs= takes it: bit n of byte n//8."""
    bits = 0
    for part in text.replace(" ", "").strip().split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise CgroupError(f'invalid cpuset list "{text}"') from None
        if a < 0 or b < a or b > 65535:
            raise CgroupError(f'invalid cpuset list "{text}"')
        bits |= ((1 << (b - a + 1)) - 1) << a
    if not bits:
        raise CgroupError(f'invalid cpuset list "{text}"')
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def cpu_quota_properties(quota: int | None, period: int | None, version: int) -> list:
    """CPUQuotaPerSecUSec (+ CPUQuotaPeriodUSec, systemd >= 242) as runc derives them:
    quota/period per second, rounded up to 10 ms (systemd keeps whole percents)."""
    props: list = []
    quota, period = quota or 0, period or 0
    if period and version >= 242:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_sec = _U64_MAX
        if quota > 0:
            per_sec = quota * 1000000 // (period or 100000)
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    return props


def _unified_properties(unified: dict, version: int) -> list:
    """linux.resources.unified keys systemd has a property for (the rest: cgroupfs only)."""
    props: list = []
    idle = str(unified.get("cpu.idle", "")).strip() == "1" and version >= 252
    for key in sorted(unified):
        value = str(unified[key]).strip()
        try:
            if key in ("memory.high", "memory.low", "memory.min", "memory.max",
                       "memory.swap.max", "pids.max"):
                name = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow",
                        "memory.min": "MemoryMin", "memory.max": "MemoryMax",
                        "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax"}[key]
                num = _U64_MAX if value == "max" else int(value)
                if not 0 <= num <= _U64_MAX:
                    raise ValueError
                props.append((name, ("t", num)))
            elif key == "cpu.weight" and not idle:
                props.append(("CPUWeight", ("t", int(value))))
            elif key == "cpu.idle" and idle:
                props.append(("CPUWeight", ("t", 0)))  # systemd's way to ask for cpu.idle 1
            elif key == "cpu.max":
                fields = value.split()
                if not 1 <= len(fields) <= 2:
                    raise ValueError
                quota = 0 if fields[0] == "max" else int(fields[0])
                period = int(fields[1]) if len(fields) == 2 else 100000
                props += cpu_quota_properties(quota, period, version)
            elif key in ("cpuset.cpus", "cpuset.mems") and version >= 244:
                props.append(("AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes",
                              ("ay", range_to_bits(value))))
        except ValueError:
            raise CgroupError(f'unified resource "{key}" value invalid: "{value}"') from None
    return props


def resource_properties(res: dict, *, mode: str, version: int) -> list:
    """The unit properties for linux.resources: [(name, (D-Bus signature, value))]. `mode` is
    the host's ("v2", "v1", "hybrid": systemd then drives the v1 controllers)."""
    from .v2 import blkio_to_io_weight, shares_to_weight, swap_to_v2

    res = res or {}
    props: list = []
    mem = res.get("memory") or {}
    cpu = res.get("cpu") or {}
    limit, swap, low = mem.get("limit") or 0, mem.get("swap") or 0, mem.get("reservation") or 0
    pids = (res.get("pids") or {}).get("limit")
    weight = (res.get("blockIO") or {}).get("weight") or 0
    if mode == "v2":
        if limit:
            props.append(("MemoryMax", ("t", _u64(limit, "memory"))))
        if low:
            props.append(("MemoryLow", ("t", _u64(low, "memory reservation"))))
        if limit or swap:
            v2swap = swap_to_v2(swap, limit)
            if v2swap:
                props.append(("MemorySwapMax", ("t", _u64(v2swap, "memory swap"))))
            elif swap > 0:  # swap == limit: no swap at all
                props.append(("MemorySwapMax", ("t", 0)))
        idle = cpu.get("idle") == 1 and version >= 252
        if idle:
            props.append(("CPUWeight", ("t", 0)))
        elif cpu.get("shares"):
            props.append(("CPUWeight", ("t", shares_to_weight(cpu["shares"]))))
    else:
        if limit:
            props.append(("MemoryLimit", ("t", _u64(limit, "memory"))))
        if cpu.get("shares"):
            props.append(("CPUShares", ("t", cpu["shares"])))
    props += cpu_quota_properties(cpu.get("quota"), cpu.get("period"), version)
    if pids is not None and (pids > 0 or pids == -1):
        props.append(("TasksMax", ("t", _u64(pids, "pids"))))
    if weight:
        if mode == "v2":
            props.append(("IOWeight", ("t", blkio_to_io_weight(weight))))
        else:
            props.append(("BlockIOWeight", ("t", weight)))
    if mode == "v2" and version >= 244:
        if cpu.get("cpus"):
            props.append(("AllowedCPUs", ("ay", range_to_bits(cpu["cpus"]))))
        if cpu.get("mems"):
            props.append(("AllowedMemoryNodes", ("ay", range_to_bits(cpu["mems"]))))
    if mode == "v2" and res.get("unified"):
        props += _unified_properties(res["unified"], version)
    return props


def _device_group(kind: str, major: int, proc_devices: str | None) -> str | None:
    """systemd < 240 names a whole major by its /proc/devices group: "char-pts"."""
    if proc_devices is None:
        try:
            with open("/proc/devices") as f:
                proc_devices = f.read()
        except OSError:
            return None
    section = None
    for line in proc_devices.splitlines():
        line = line.strip()
        if line == "Character devices:":
            section = "c"
        elif line == "Block devices:":
            section = "b"
        elif line and section == kind:
            num, _, group = line.partition(" ")
            if num == str(major) and group.strip():
                return ("char-" if kind == "c" else "block-") + group.strip()
    return None


def device_properties(rules: list[dict], version: int, *,
                      proc_devices: str | None = None) -> tuple[list, list[str]]:
    """DevicePolicy/DeviceAllow for the effective rule list (devices.device_rules: in order,
    last match wins, from deny-all) -> (properties, warnings).

    systemd takes an allow-list. Ours is enforced exactly by cgroupfs (v1 devices.allow/deny,
    v2 our eBPF program, which the kernel ANDs with systemd's): systemd gets an allow-list
    that covers every device our rules allow (a deny among the allows narrows only ours), so
    its copy can never take away what the container may use."""
    from .ebpf import access_bits

    start = 0
    for i, r in enumerate(rules):
        if r["type"] == "a" and r["major"] < 0 and r["minor"] < 0 and \
                access_bits(r["access"]) == 7:
            start = i  # decides everything: the rules before it don't matter
    rules = [r for r in rules[start:] if access_bits(r["access"])]
    reset = ("DeviceAllow", ("a(ss)", []))
    if rules and rules[0]["allow"] and rules[0]["type"] == "a" and rules[0]["major"] < 0 \
            and rules[0]["minor"] < 0 and access_bits(rules[0]["access"]) == 7:
        # default allow: systemd has no deny-list; "auto" with no entries allows all
        warnings = []
        if any(not r["allow"] for r in rules[1:]):
            warnings.append("systemd cannot express device deny rules: the unit allows "
                            "every device, the rules are enforced through cgroupfs only")
        return [("DevicePolicy", ("s", "auto")), reset], warnings
    allow: dict[str, str] = {}  # path -> access, in first-seen order
    for r in rules:
        if not r["allow"]:
            continue
        for kind in (("c", "b") if r["type"] == "a" else (r["type"],)):
            prefix = "char-" if kind == "c" else "block-"
            major, minor = r["major"], r["minor"]
            if major < 0:
                # "*:*" is a glob over the type; systemd has no "*:n": allow the type (ours
                # still narrows it to n)
                path = prefix + "*"
            elif minor < 0:
                path = prefix + str(major) if version >= 240 else (
                    _device_group(kind, major, proc_devices) or prefix + "*")
            else:
                path = f"/dev/{'char' if kind == 'c' else 'block'}/{major}:{minor}"
                if version < 240 and not os.path.exists(path):
                    continue  # old systemd stat()s the path; nothing there to open anyway
            allow[path] = "".join(ch for ch in "rwm"
                                  if ch in r["access"] or ch in allow.get(path, ""))
    return [("DevicePolicy", ("s", "strict")), reset,
            ("DeviceAllow", ("a(ss)", list(allow.items())))], []


def unit_properties(*, unit: str, slice_: str, description: str, pid: int | None,
                    mode: str, version: int, resources: dict, device_rules: list[dict] | None,
                    proc_devices: str | None = None) -> tuple[list, list[str]]:
    """Everything StartTransientUnit gets: the unit's shape, then the limits."""
    props: list = [("Description", ("s", description))]
    if unit.endswith(".slice"):
        props.append(("Wants", ("as", [slice_])))  # a slice's parent is named by its name
    else:
        props.append(("Slice", ("s", slice_)))
        props.append(("Delegate", ("b", True)))
        if pid is not None:
            props.append(("PIDs", ("au", [pid])))
    # accounting on in every controller (v1: systemd realizes the unit in those hierarchies)
    props += [("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
              ("IOAccounting" if mode == "v2" else "BlockIOAccounting", ("b", True)),
              ("TasksAccounting", ("b", True)), ("DefaultDependencies", ("b", False))]
    warnings: list[str] = []
    if device_rules is not None:
        dev, warnings = device_properties(device_rules, version, proc_devices=proc_devices)
        props += dev
    props += resource_properties(resources, mode=mode, version=version)
    oom_group = str(((resources or {}).get("unified") or {}).get("memory.oom.group", "")).strip()
    if mode == "v2" and oom_group in ("0", "1") and version >= 253:
        # (scopes take OOMPolicy= since v253; older ones refuse the whole unit for it)
        props.append(("OOMPolicy", ("s", "kill" if oom_group == "1" else "continue")))
    return props, warnings


# ================================================================ talking to systemd

def _bus_addresses() -> list[str]:
    env = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    out = [env or SYSTEM_BUS]
    if os.geteuid() == 0 and not env:
        out.append(PRIVATE_BUS)
    return out


def _reason(e: BaseException) -> str:
    """One line, worded as the rest of ocirun's errors ("no such file or directory")."""
    if isinstance(e, DBusError):
        return e.message or e.name
    if isinstance(e, OSError) and e.errno and e.strerror:
        return e.strerror.lower() if e.strerror == os.strerror(e.errno) else e.strerror
    return (str(e) or type(e).__name__).splitlines()[0]


class Systemd:
    """The calls the driver makes, on one connection to systemd."""

    def __init__(self, conn: Connection, address: str = SYSTEM_BUS):
        self.conn, self.address = conn, address
        self.matched = False
        self._version: int | None = None
        conn.keep = lambda m: m.member == "JobRemoved" and m.interface == _SD_MGR

    @classmethod
    def connect(cls, addresses: list[str] | None = None, *,
                timeout: float = CALL_TIMEOUT) -> Systemd:
        """The first of `addresses` where systemd answers; CgroupError (one line) if none."""
        addresses = addresses or _bus_addresses()
        first: tuple[str, BaseException] | None = None
        for address in addresses:
            try:
                sd = cls(Connection(address, timeout=timeout), address)
            except (OSError, ValueError, DBusError) as e:
                first = first or (address, e)
                continue
            try:
                sd.version  # is systemd there (and not only a bus daemon)?
                return sd
            except (OSError, ValueError, DBusError) as e:
                sd.conn.close()
                first = first or (address, e)
        address, e = first
        where = address
        try:
            where = parse_address(address)[1]
        except ValueError:
            pass
        raise CgroupError(f"--systemd-cgroup: cannot reach systemd over D-Bus ({where}): "
                          f"{_reason(e)}")

    def close(self) -> None:
        self.conn.close()

    def _call(self, path: str, iface: str, member: str, sig: str = "", *args):
        return self.conn.call(_SD, path, iface, member, sig, *args)

    @property
    def version(self) -> int:
        if self._version is None:
            (v,) = self._call(_SD_PATH, _PROPS, "Get", "ss", _SD_MGR, "Version")
            self._version = parse_version(v[1] if isinstance(v, tuple) else str(v))
        return self._version

    def get(self, path: str, iface: str, prop: str):
        (v,) = self._call(path, _PROPS, "Get", "ss", iface, prop)
        return v[1]

    def _match_jobs(self) -> None:
        if self.matched or not self.conn.unique_name:
            return  # peer-to-peer (the private socket): systemd sends us every signal
        self.conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                       "AddMatch", "s", f"type='signal',sender='{_SD}',path='{_SD_PATH}',"
                       f"interface='{_SD_MGR}',member='JobRemoved'")
        self.matched = True

    def start(self, unit: str, props: list, *, timeout: float = JOB_TIMEOUT) -> None:
        """StartTransientUnit and wait for its job; an existing failed leftover of the same
        name is reset and the start retried once."""
        self._match_jobs()
        for attempt in (0, 1):
            try:
                (job,) = self._call(_SD_PATH, _SD_MGR, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                                    unit, "replace", props, [])
                break
            except DBusError as e:
                if e.name != "org.freedesktop.systemd1.UnitExists" or attempt:
                    raise
                self.reset_failed(unit)
        result = self.wait_job(job, unit, timeout, want="active")
        if result != "done":
            self.reset_failed(unit)
            raise CgroupError(f"error creating systemd unit `{unit}`: got `{result}`")

    def stop(self, unit: str, *, timeout: float = JOB_TIMEOUT) -> str:
        """StopUnit, waiting for the job; "gone" when there was no such unit."""
        self._match_jobs()
        try:
            (job,) = self._call(_SD_PATH, _SD_MGR, "StopUnit", "ss", unit, "replace")
        except DBusError as e:
            if e.name in _NO_UNIT:
                return "gone"
            raise
        return self.wait_job(job, unit, timeout, want="inactive")

    def reset_failed(self, unit: str) -> None:
        try:
            self._call(_SD_PATH, _SD_MGR, "ResetFailedUnit", "s", unit)
        except DBusError:
            pass  # not failed, or gone: nothing to reset

    def set_properties(self, unit: str, props: list) -> None:
        self._call(_SD_PATH, _SD_MGR, "SetUnitProperties", "sba(sv)", unit, True, props)

    def active_state(self, unit: str) -> str:
        try:
            return self.get(unit_object_path(unit), "org.freedesktop.systemd1.Unit",
                            "ActiveState")
        except DBusError as e:
            if e.name in _GONE or e.name in _NO_UNIT:
                return "inactive"
            raise

    def control_group(self, unit: str) -> str:
        iface = "org.freedesktop.systemd1." + ("Slice" if unit.endswith(".slice") else "Scope")
        return self.get(unit_object_path(unit), iface, "ControlGroup")

    def wait_job(self, job: str, unit: str, timeout: float, *, want: str) -> str:
        """The job's result ("done", "failed", "canceled", ...): from its JobRemoved signal,
        or, when no signal comes (systemd sends them on the bus only while someone has
        subscribed), from the job object's disappearance and the unit's state."""
        deadline = time.monotonic() + timeout
        nap = 0.002
        while True:
            for i, m in enumerate(self.conn.signals):
                if len(m.body) >= 4 and m.body[1] == job:
                    del self.conn.signals[i]
                    return m.body[3]
            now = time.monotonic()
            if now >= deadline:
                raise CgroupError(f"timeout of {timeout:g}s waiting for systemd's job on "
                                  f"{unit} ({job})")
            msg = self.conn.receive(min(nap, deadline - now))
            if msg is not None:
                if msg.type == SIGNAL and self.conn.keep(msg):
                    self.conn.signals.append(msg)
                continue
            try:
                self.get(job, "org.freedesktop.systemd1.Job", "State")
            except DBusError as e:
                if e.name not in _GONE:
                    raise
                # the job is over; its signal may have come with the error reply
                if any(len(m.body) >= 4 and m.body[1] == job for m in self.conn.signals):
                    continue
                state = self.active_state(unit)
                return "done" if state == want or (want == "active" and state in
                                                   ("active", "activating", "reloading")) \
                    else state or "failed"
            nap = min(nap * 2, 0.1)


# ================================================================ the manager

class SystemdManager:
    """A container's cgroup as a systemd unit, plus the cgroupfs manager (`fs_manager`, a
    V1Manager or V2Manager) on the unit's cgroup for everything done through files."""

    def __init__(self, fs_manager: Manager, *, unit: str, slice_: str, description: str,
                 address: str | None = None, started: bool = False,
                 systemd: Systemd | None = None, addresses: list[str] | None = None):
        self.fs_manager = fs_manager
        self.unit, self.slice, self.description = unit, slice_, description
        self.address = address
        self.started = started  # the unit is ours (started here, or a container's from state)
        self._sd = systemd
        self._addresses = addresses
        self.notes: list[str] = []

    # -- the Manager interface, through the cgroupfs manager
    mode = property(lambda self: self.fs_manager.mode)
    dirs = property(lambda self: self.fs_manager.dirs)
    linux = property(lambda self: self.fs_manager.linux)
    fs = property(lambda self: self.fs_manager.fs)

    @property
    def paths(self) -> dict:
        p = self.fs_manager.paths
        p.update(driver="systemd", unit=self.unit, slice=self.slice,
                 bus=self.address or (self._sd.address if self._sd else ""))
        return p

    def path(self, subsystem: str) -> str | None:
        return self.fs_manager.path(subsystem)

    def exists(self) -> bool:
        return self.fs_manager.exists()

    def pids(self) -> list[int]:
        return self.fs_manager.pids()

    def kill_all(self, sig: int) -> None:
        self.fs_manager.kill_all(sig)

    def freeze(self) -> None:
        self.fs_manager.freeze()

    def thaw(self) -> None:
        self.fs_manager.thaw()

    def state(self) -> str:
        return self.fs_manager.state()

    def stats(self) -> dict:
        return self.fs_manager.stats()

    def oom_count(self) -> int:
        return self.fs_manager.oom_count()

    def device_rules(self) -> list[dict]:
        return self.fs_manager.device_rules()

    # -- systemd
    def systemd(self) -> Systemd:
        if self._sd is None:
            addresses = self._addresses
            if addresses is None and self.address:
                addresses = [self.address] + [a for a in _bus_addresses() if a != self.address]
            self._sd = Systemd.connect(addresses)
        return self._sd

    def _fail(self, what: str, e: BaseException) -> CgroupError:
        if isinstance(e, CgroupError):
            return e
        return CgroupError(f"systemd unit {self.unit}: {what}: {_reason(e)}")

    def _properties(self, pid: int | None) -> tuple[list, list[str]]:
        linux = self.fs_manager.linux
        from .devices import device_rules

        return unit_properties(unit=self.unit, slice_=self.slice, description=self.description,
                               pid=pid, mode=self.mode, version=self.systemd().version,
                               resources=linux.get("resources") or {},
                               device_rules=device_rules(linux))

    def create(self) -> list[str]:
        """Before clone: reach systemd and check what the unit would get. Nothing is made
        yet (a scope needs a pid: add() starts it)."""
        if self.mode != "v2":
            from .v1 import check

            check(self.linux.get("resources") or {})
        self.systemd()
        _, warnings = self._properties(0)
        return self.notes + warnings

    def placement(self) -> tuple[list[str], str | None] | None:
        """None for the init: systemd moves it, as it starts the unit with its pid. Later
        processes (exec) join the unit's cgroups as cgroupfs ones."""
        return self.fs_manager.placement() if self.started else None

    def add(self, pid: int) -> None:
        """The container's init (first call): start the unit with it, then let the cgroupfs
        manager set up the unit's cgroup. Any later process (exec) joins through cgroupfs."""
        if self.started:
            self.fs_manager.add(pid)
            return
        try:
            props, _ = self._properties(pid)
            self.systemd().start(self.unit, props)
        except (OSError, ValueError, DBusError) as e:
            raise self._fail("start", e) from None
        self.started = True
        try:
            actual = self.systemd().control_group(self.unit)
        except (OSError, ValueError, DBusError):
            actual = ""
        if actual:
            self._rebase(actual)
        self.close()  # done with D-Bus here (destroy() reconnects if it must)
        warnings = self.fs_manager.create()
        self.fs_manager.add(pid)  # v1: the hierarchies systemd doesn't drive; slices
        from .. import log

        for w in warnings:
            log.warning(w)

    def _rebase(self, cgroup: str) -> None:
        """Point the cgroupfs manager at `cgroup` (systemd's word for the unit's path)."""
        old = self.fs_manager
        want = {sub: _rejoin(d, old.roots.get(sub, ""), cgroup) for sub, d in old.dirs.items()}
        if want != old.dirs:
            old.dirs.clear()
            old.dirs.update(want)

    def update(self, resources: dict) -> list[str]:
        """SetUnitProperties (runtime) with what systemd can express, then cgroupfs."""
        resources = resources or {}
        mem = resources.get("memory") or {}
        if mem.get("checkBeforeUpdate") and (mem.get("limit") or 0) > 0:
            self._check_usage(mem["limit"])  # before systemd applies it and OOM-kills
        try:
            sd = self.systemd()
            props = resource_properties(resources, mode=self.mode, version=sd.version)
            devices = resources.get("devices") is not None
            warnings: list[str] = []
            if devices:
                from .devices import device_rules

                rules = device_rules(dict(self.linux, resources={"devices":
                                                                 resources["devices"]}))
                dev, warnings = device_properties(rules, sd.version)
                props = dev + props
            if props:
                thaw = False
                if devices and self.mode != "v2" and self.fs_manager._can_freeze() \
                        and self.state() != "FROZEN":
                    # v1: systemd rewrites devices.allow/deny from scratch, briefly denying
                    # all; freeze so no task meets that window (as runc does)
                    self.freeze()
                    thaw = True
                try:
                    sd.set_properties(self.unit, props)
                finally:
                    if thaw:
                        self.thaw()
        except (OSError, ValueError, DBusError) as e:
            raise self._fail("set properties", e) from None
        finally:
            self.close()
        return warnings + self.fs_manager.update(resources)

    def _check_usage(self, limit: int) -> None:
        from .common import read_opt, to_int

        if self.mode == "v2":
            f = posixpath.join(self.dirs[""], "memory.current")
        else:
            d = self.dirs.get("memory")
            if not d:
                return
            f = posixpath.join(d, "memory.usage_in_bytes")
        usage = to_int(read_opt(self.fs, f))
        if limit <= usage:
            raise CgroupError(f"rejecting memory limit {limit} below current usage {usage}")

    def destroy(self) -> None:
        """StopUnit (waiting for it), ResetFailedUnit, then remove whatever cgroup dirs are
        left (v1 hierarchies systemd doesn't drive; sub-cgroups old systemd leaves).
        Idempotent; without systemd at hand the cgroupfs part still runs."""
        m = self.fs_manager
        if not self.started and not m.created:
            return  # add() never ran: nothing of ours exists (the name may be another's)
        err = None
        if self.started:
            try:
                sd = self.systemd()
                result = sd.stop(self.unit)
                sd.reset_failed(self.unit)
                if result not in ("done", "gone", "inactive"):
                    from .. import log

                    log.warning(f"stopping systemd unit {self.unit}: got {result}")
            except (OSError, ValueError, DBusError, CgroupError) as e:
                err = self._fail("stop", e)
            finally:
                self.close()
        leaves = [d for d in dict.fromkeys(m.dirs.values()) if d not in m.created]
        if self.started:
            m.created = list(m.created) + leaves
        try:
            m.destroy()
        finally:
            m.created = [d for d in m.created if d not in leaves]
        if err is not None and any(self.fs.exists(d) for d in m.dirs.values()):
            raise err

    def close(self) -> None:
        if self._sd is not None:
            self.address = self.address or self._sd.address  # (for paths, and reconnecting)
            self._sd.close()
            self._sd = None


def _rejoin(d: str, top: str, cgroup: str) -> str:
    if not top:
        return d
    return posixpath.join(top, cgroup.lstrip("/")) if cgroup.strip("/") else top


def open_manager(linux: dict | None, cid: str, *, root: str = ROOT,
                 mountinfo: str | None = None, fs: FS | None = None,
                 addresses: list[str] | None = None,
                 systemd: Systemd | None = None) -> SystemdManager:
    """The manager for --systemd-cgroup (see the module's docstring). Nothing is asked of
    systemd until create(). `addresses` (D-Bus addresses to try) and `systemd` (a connected
    Systemd) are for tests."""
    linux = linux or {}
    slice_, prefix, name = parse_cgroups_path(linux.get("cgroupsPath"), cid)
    unit = unit_name(prefix, name)
    cgroup = unit_cgroup(slice_, unit)  # (checks the slice names)
    return SystemdManager(_fs_manager(linux, cgroup, root, mountinfo, fs), unit=unit,
                          slice_=slice_, description=f"ocirun container {cid}",
                          systemd=systemd, addresses=addresses)


def _fs_manager(linux: dict, cgroup: str, root: str, mountinfo: str | None,
                fs: FS | None) -> Manager:
    lay = common.layout(root, mountinfo)
    dirs = common.resolve_dirs(lay, cgroup, {})
    roots = {sub: lay.v1[sub][0] for sub in dirs if sub}
    if "" in dirs:
        roots[""] = lay.unified[0]
    if lay.mode == "v2":
        from .v2 import V2Manager

        return V2Manager(dirs, linux=linux, roots=roots, fs=fs)
    from .v1 import V1Manager

    return V1Manager(dirs, mode=lay.mode, linux=linux, roots=roots, fs=fs)


def from_state(paths: dict, *, fs: FS | None = None,
               systemd: Systemd | None = None) -> SystemdManager:
    """Reopen what SystemdManager.paths described."""
    from . import from_state as fs_from_state

    if not paths.get("unit"):
        raise CgroupError("no systemd unit in the container's cgroup state")
    base = {k: v for k, v in paths.items() if k not in ("driver", "unit", "slice", "bus")}
    inner = fs_from_state(base, fs=fs)
    return SystemdManager(inner, unit=paths["unit"], slice_=paths.get("slice") or "",
                          description="", address=paths.get("bus") or None, started=True,
                          systemd=systemd)
