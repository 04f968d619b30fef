"""A container's status, derived, never stored: the init pid alive with the start time we
recorded (a reused pid is someone else) -> paused if frozen, created while exec.fifo
exists, else running; otherwise stopped.

The derivation is the front door's C (csrc/launcher/status.c, built for Python as the cffi
module ocirun._status): one implementation for the front door and Python, fed here with
state.json's facts.
"""

CREATING, CREATED, RUNNING, STOPPED, PAUSED = "creating", "created", "running", "stopped", "paused"

FIFO = "exec.fifo"  # present between create and start (state.FIFO)

_INT_MAX = 2**31 - 1
_ULLONG_MAX = 2**64 - 1
_AT_FDCWD = -100  # fcntl.h's AT_FDCWD: os does not export it
_STATUS_NAMES = (CREATED, RUNNING, STOPPED, PAUSED)  # csrc/launcher/front.h's enum status


def derive_status(path: str, data: dict | None) -> str:
    """The status from state.json's facts, by the front door's own code (status.c's
    container_status, through cffi): one implementation for both."""
    if not data:
        return CREATING
    pid, start = data.get("pid"), data.get("start_time")
    if not _is_int(pid, _INT_MAX) or not _is_int(start, _ULLONG_MAX):
        return STOPPED  # no init we could recognise
    freezer = freezer_file(data.get("cgroup_paths"))
    from ._status import ffi, lib

    status = lib.container_status(
        _AT_FDCWD,
        f"{path}/{FIFO}".encode(errors="surrogateescape"),
        pid,
        start,
        freezer[0].encode(errors="surrogateescape") if freezer else ffi.NULL,
        freezer[1] if freezer else ffi.NULL,
    )
    return _STATUS_NAMES[status]


def _is_int(v: object, top: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top


def freezer_file(paths: dict | None) -> tuple[str, bytes] | None:
    """The file that says whether the container is frozen and its frozen value (v1
    freezer.state, v2 cgroup.freeze), or None: no freezer. The lifecycle record carries it
    for the front door (fastrecord.py)."""
    if not isinstance(paths, dict):
        return None
    dirs = paths.get("dirs") or {}
    if not isinstance(dirs, dict):
        return None
    if paths.get("mode") == "v2":
        d = dirs.get("", "")
        return (d + "/cgroup.freeze", b"1") if isinstance(d, str) else None
    d = dirs.get("freezer")
    return (d + "/freezer.state", b"FROZEN") if isinstance(d, str) else None


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None if gone or a zombie:
    the front door's reader (csrc/launcher/status.c), through cffi."""
    from ._status import ffi, lib

    if not 0 < pid <= _INT_MAX:
        return None
    out = ffi.new("unsigned long long *")
    return None if lib.proc_start_time(pid, out) else out[0]
