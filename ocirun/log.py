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


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    global _path, _json, _debug
    _path, _json, _debug = path, fmt == "json", debug


def _stamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def write(level: str, msg: str) -> None:
    if not _path:
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
