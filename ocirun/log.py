"""The runtime's log: `--log FILE` with `--log-format text|json`.

json: one object per line, {"level", "msg", "time" (RFC 3339)}; containerd's shim shows the
msg of the last "level":"error" line to the user, so every failure ends with exactly one.
Without --log, errors (by the CLI) and warnings (in logrus's text format, as runc writes
them then) go to stderr; --debug's lines too.
text: logrus's format, `time="..." level=error msg="..."`, the msg quoted as Go's %q does.

Logging never fails the runtime: if the log cannot be written (a missing directory, a full
disk), one notice goes to stderr and the run goes on as without --log (errors still reach
stderr, by the CLI).
"""

import os
import time

from ._lean import dumps

_path: str | None = None
_json = False
_debug = False
_last_ns = 0


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    global _path, _json, _debug
    _path, _json, _debug = path, fmt == "json", debug


def _stamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def to_file() -> bool:
    """--log was given (and is writable so far)."""
    return bool(_path)


def enabled() -> bool:
    """--debug is on: callers may skip work that only feeds debug messages."""
    return _debug


_QUOTE = {
    "\\": "\\\\",
    '"': '\\"',
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def quote(text: str) -> str:
    """`text` in double quotes, escaped as Go's %q (logrus's text format) does."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = []
    for ch in text:
        esc = _QUOTE.get(ch)
        if esc is None:
            if ch.isprintable():
                esc = ch
            else:
                n = ord(ch)
                esc = f"\\x{n:02x}" if n < 0x80 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"
        out.append(esc)
    return '"' + "".join(out) + '"'


def _stderr(text: str) -> None:
    try:
        os.write(2, text.encode(errors="replace"))
    except OSError:
        pass  # nowhere left to say it


def write(level: str, msg: str) -> None:
    global _path
    if not _path:
        if level == "debug":
            _stderr(f"DEBU {msg}\n")
        elif level == "warning":  # as runc's logrus does without --log
            _stderr(f'time="{_stamp()}" level=warning msg={quote(msg)}\n')
        return
    if _json:
        line = dumps({"level": level, "msg": msg, "time": _stamp()})
    else:
        line = f'time="{_stamp()}" level={level} msg={quote(msg)}'
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(_path, flags, 0o644)
        try:
            os.write(fd, (line + "\n").encode(errors="replace"))
        finally:
            os.close(fd)
    except OSError as e:
        _stderr(f"write log {_path}: {e.strerror or e}\n")
        _path = None  # once: go on as without --log
        write(level, msg)


def error(msg: str) -> None:
    write("error", msg)


def warning(msg: str) -> None:
    write("warning", msg)


def debug(msg: str) -> None:
    if _debug:
        write("debug", msg)


def phase(name: str) -> None:
    """--debug: log the time since the previous phase mark. The first mark starts the clock
    and logs what came before it: the interpreter's start-up and the imports, as the CPU
    time the process has used so far (the wall time before Python runs is not knowable
    from inside; the two differ little on an idle machine)."""
    global _last_ns
    if not _debug:
        return
    now = time.perf_counter_ns()
    if _last_ns:
        debug(f"phase {name}: {(now - _last_ns) / 1e6:.2f} ms")
    else:
        debug(f"phase interpreter start-up + imports (CPU): {time.process_time() * 1e3:.2f} ms")
    _last_ns = now


def begin() -> None:
    """--debug: where a command's own work begins. Starts the phase clock (see phase), or
    does nothing when an earlier step of the same call started it (run: create, start)."""
    if _debug and not _last_ns:
        phase("")
