"""The few os.path functions the hot commands need, on `posix` alone.

`import os` (with posixpath, stat and _collections_abc) costs ~1 ms here, an eighth of a
whole `ocirun state`; state, start, kill and delete import `posix` (built in, loaded by the
interpreter anyway) and these instead. create, exec and the typer CLI use os as usual.
"""

import posix


def abspath(path: str) -> str:
    """os.path.abspath without importing os: relative to the cwd, '.', '..' and repeated
    slashes resolved lexically. Raises OSError when the cwd is gone."""
    if not path.startswith("/"):
        path = posix.getcwd() + "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def in_dir(d: str, name: str) -> str:
    """os.path.join(d, name) for a relative name."""
    return d + name if d.endswith("/") else f"{d}/{name}"


def _stat_mode(path: str) -> int:
    """st_mode of path (following symlinks), 0 when it cannot be stat'ed."""
    try:
        return posix.stat(path).st_mode
    except (OSError, ValueError):
        return 0


def exists(path: str) -> bool:
    return _stat_mode(path) != 0


def is_dir(path: str) -> bool:
    return _stat_mode(path) & 0o170000 == 0o040000
