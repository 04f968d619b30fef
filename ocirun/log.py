"""The runtime's log: `--log FILE` with `--log-format text|json`.

json: one object per line, {"level", "msg", "time" (RFC 3339)}; containerd's shim shows the
msg of the last "level":"error" line to the user, so every failure ends with exactly one.
Without --log, nothing but errors is written, and those go to stderr (by the CLI).
"""

from __future__ import annotations

import json
import os
import time

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


def enabled() -> bool:
    """--debug is on: callers may skip work that only feeds debug messages."""
    return _debug


def write(level: str, msg: str) -> None:
    if not _path:
        if level == "debug":
            os.write(2, f"DEBU {msg}\n".encode())
        return
    if _json:
        line = json.dumps({"level": level, "msg": msg, "time": _stamp()})
    else:
        line = f'time="{_stamp()}" level={level} msg="{msg}"'
    fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def error(msg: str) -> None:
    write("error", msg)


def warning(msg: str) -> None:
    write("warning", msg)


def debug(msg: str) -> None:
    if _debug:
        write("debug", msg)


def phase(name: str) -> None:
    """--debug: log the time since the previous phase mark (the first mark only starts)."""
    global _last_ns
    if not _debug:
        return
    now = time.perf_counter_ns()
    if _last_ns:
        debug(f"phase {name}: {(now - _last_ns) / 1e6:.2f} ms")
    _last_ns = now
