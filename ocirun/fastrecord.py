"""The lifecycle record: what create decided, for the `ocirun` front door (csrc/launcher).

Written by create beside state.json, after it (atomically: tmp + rename), as `key=value`
lines the C front door reads without a JSON parser (the format: csrc/launcher/record.c;
docs/fastpath.md). It carries what state, start, kill, delete and list need: the init's pid
and start time, the freezer file, the cgroup dirs in removal order, whether Python must act
(poststart or poststop hooks, host mounts, a systemd unit), and the state's fixed fields.
It also names state.json as create left it (inode, size, mtime): a state.json rewritten
since makes the record stale, and the front door hands the call to Python. state.json stays
the one source of truth for every Python command; the record is a cache of it.

Best effort: a value the format can't carry (a newline, a non-UTF-8 path), a record over
the size limit or a failed write means no record, and every command goes to Python.
"""

import os

from . import _lean as json
from .state import STATE_FILE, atomic_write, freezer_file

NAME = "lifecycle.rec"
VERSION = "ocirun-record 2"
MAX = 1 << 20  # csrc/launcher/front.h REC_MAX


def _value(v) -> str:
    if not isinstance(v, str) or "\n" in v or "\0" in v:
        raise ValueError("not a record value")
    v.encode()  # strict UTF-8: a surrogate-escaped path raises
    return v


def render(dir_: str, data: dict, main_dir: str | None) -> bytes:
    """The record for the container in dir_ whose state.json holds `data`; main_dir: the
    cgroup delete must find empty (the cgroup manager's main dir). ValueError if it can't
    be one."""
    st = os.stat(f"{dir_}/{STATE_FILE}")
    pid, start = data.get("pid"), data.get("start_time")
    if not (isinstance(pid, int) and pid > 0 and isinstance(start, int) and start >= 0):
        raise ValueError("no init to record")
    paths = data.get("cgroup_paths") or None
    hooks = data.get("hooks") or {}
    python_delete = (
        bool(hooks.get("poststop"))
        or data.get("host_mounts") is not None
        or not paths
        or paths.get("driver") == "systemd"
    )
    lines = [
        VERSION,
        f"state={st.st_ino} {st.st_size} {st.st_mtime_ns}",
        f"pid={pid}",
        f"start_time={start}",
    ]
    freezer = freezer_file(paths)
    if freezer is not None:
        lines += [f"freezer={_value(freezer[0])}", f"frozen={freezer[1].decode()}"]
    if paths and paths.get("mode") != "v2" and paths.get("driver") != "systemd":
        # kill --all and delete --force signal what these hold (Manager.pids(everywhere))
        for d in dict.fromkeys((paths.get("dirs") or {}).values()):
            lines.append(f"cgroup={_value(d)}")
    if paths and not python_delete:
        if main_dir:
            lines.append(f"procs_dir={_value(main_dir)}")
        leaves = set((paths.get("dirs") or {}).values())
        for d in reversed(paths.get("created") or []):
            lines.append(f"{'rmdir' if d in leaves else 'rmdir_parent'}={_value(d)}")
    lines += [
        f"python_start={int(bool(hooks.get('poststart')))}",
        f"python_delete={int(python_delete)}",
    ]
    if data.get("shared_pidns"):  # SIGKILL goes to the whole cgroup: lifecycle.kill
        lines.append("python_kill=1")
    for key in ("ociVersion", "bundle", "rootfs", "created"):
        lines.append(f"{key}={_value(data.get(key, ''))}")
    annotations = data.get("annotations")
    if annotations:
        lines.append(f"annotations={json.dumps(annotations)}")
    lines.append("end")
    raw = ("\n".join(lines) + "\n").encode()
    if len(raw) > MAX:
        raise ValueError("record too big")
    return raw


def write(dir_: str, data: dict, main_dir: str | None) -> None:
    """Write the record (best effort: see the module's doc)."""
    try:
        raw = render(dir_, data, main_dir)
        atomic_write(f"{dir_}/{NAME}", raw)
    except (ValueError, OSError):
        pass
