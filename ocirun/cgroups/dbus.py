"""The D-Bus wire protocol, the subset the systemd cgroup driver needs (bus.py sends it):
marshal/unmarshal convert between D-Bus signatures and Python values; Message, decode and
message_length frame them; method_call builds a call. `struct` only, stdlib.
"""

from __future__ import annotations

import struct

# ================================================================ the wire protocol


class DBusError(Exception):
    """An error reply: `name` (org.freedesktop.systemd1.NoSuchUnit, ...) and its text."""

    def __init__(self, name: str, message: str = ""):
        super().__init__(f"{name}: {message}" if message else name)
        self.name, self.message = name, message


_ALIGN = {
    "y": 1,
    "b": 4,
    "n": 2,
    "q": 2,
    "i": 4,
    "u": 4,
    "x": 8,
    "t": 8,
    "d": 8,
    "h": 4,
    "s": 4,
    "o": 4,
    "g": 1,
    "a": 4,
    "(": 8,
    "{": 8,
    "v": 1,
}
_FIXED = {
    "y": "B",
    "b": "I",
    "n": "h",
    "q": "H",
    "i": "i",
    "u": "I",
    "x": "q",
    "t": "Q",
    "d": "d",
    "h": "I",
}
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
    """ "sa(sv)u" -> ["s", "a(sv)", "u"]: the complete types in order."""
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
                for key, value in v.items() if isinstance(v, dict) else v:
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
                v = bytes(self.data[self.off : end])
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
_FIELD_TYPES = {
    _F_PATH: "o",
    _F_IFACE: "s",
    _F_MEMBER: "s",
    _F_ERROR: "s",
    _F_REPLY: "u",
    _F_DEST: "s",
    _F_SENDER: "s",
    _F_SIG: "g",
    9: "u",
}


class Message:
    __slots__ = ("type", "flags", "serial", "fields", "body")

    def __init__(self, type_: int, serial: int, fields: dict, body: tuple = (), flags: int = 0):
        self.type, self.serial, self.fields, self.body, self.flags = (
            type_,
            serial,
            fields,
            body,
            flags,
        )

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
        w.put(
            "a(yv)",
            [
                (code, (_FIELD_TYPES[code], value))
                for code, value in sorted(self.fields.items())
                if value is not None
            ],
        )
        w.pad(8)
        return bytes(w.buf) + body


def message_length(head: bytes | bytearray) -> int:
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
        br = _Reader(data[r.off :], 0, big)
        body = tuple(br.get(t) for t in split_signature(sig))
    return Message(type_, serial, fields, body, flags)


def method_call(
    serial: int, dest: str | None, path: str, iface: str | None, member: str, sig: str, body: tuple
) -> Message:
    """A METHOD_CALL message (an absent `dest`/`iface`, or an empty `sig`, is left out)."""
    fields = {_F_PATH: path, _F_IFACE: iface, _F_MEMBER: member, _F_DEST: dest, _F_SIG: sig or None}
    return Message(METHOD_CALL, serial, fields, body)
