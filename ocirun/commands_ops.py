"""The commands on a running container's processes and limits: pause, resume, ps,
update and events (runc's flags and value syntax: sizes, Go durations)."""

from collections.abc import Callable

from .commands import Globals, compact, guarded, ignored
from .errors import OcirunError, UsageError


def pause(g: Globals, cid: str) -> int:
    from . import lifecycle

    return guarded(lambda: lifecycle.pause(g.root, cid))


def resume(g: Globals, cid: str) -> int:
    from . import lifecycle

    return guarded(lambda: lifecycle.resume(g.root, cid))


def ps(g: Globals, cid: str, fmt: str = "table", ps_args: list[str] | None = None) -> int:
    """json: only the array of host pids (containerd parses stdout alone); table: `ps`
    output (with ps_args, default -ef) limited to the container's processes."""
    from . import lifecycle

    def go():
        if fmt not in ("table", "json"):
            raise UsageError(f"invalid format {fmt!r}: use table or json")
        pids = lifecycle.pids(g.root, cid)
        if fmt == "json":
            print(compact(pids))
            return 0
        import subprocess

        try:
            out = subprocess.run(
                ["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=True
            ).stdout.splitlines()
        except (OSError, subprocess.CalledProcessError) as e:
            raise OcirunError(f"ps: {e}") from None
        if not out:
            return 0
        header = out[0].split()
        if "PID" not in header:
            raise OcirunError("ps output has no PID column")
        col = header.index("PID")
        print(out[0])
        wanted = set(pids)
        for line in out[1:]:
            fields = line.split()
            if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
                print(line)
        return 0

    return guarded(go)


def update(
    g: Globals,
    cid: str,
    resources_file: str | None = None,
    kernel_memory: str | None = None,
    kernel_memory_tcp: str | None = None,
    l3_cache_schema: str | None = None,
    mem_bw_schema: str | None = None,
    **flags,
) -> int:
    """runc's update: --resources FILE ('-' = stdin, as containerd sends it) and/or flags."""
    from . import lifecycle

    def go() -> None:
        # runc's own words where Intel RDT is not enabled: ocirun never enables it.
        if l3_cache_schema:
            raise OcirunError("Intel RDT/CAT: l3 cache schema is not enabled")
        if mem_bw_schema:
            raise OcirunError("Intel RDT/MBA: memory bandwidth schema is not enabled")
        obsolete = False
        for flag, value in (
            ("--kernel-memory", kernel_memory),
            ("--kernel-memory-tcp", kernel_memory_tcp),
        ):
            if value:  # runc ignores them too ("obsoleted"); no kernel still has the knob
                ignored(flag, value, "kernel memory limits are obsolete (as in runc)")
                obsolete = True
        res: dict = {}
        if resources_file:
            from .spec import read_json_object

            res = read_json_object(
                resources_file, "resources", at=("linux", "resources"), dash_is_stdin=True
            )
        _merge_update_flags(res, flags)
        if not res and not obsolete:
            raise UsageError("update: nothing to change (give --resources or a limit flag)")
        lifecycle.update(g.root, cid, res)

    return guarded(go)


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
}


def parse_size(text: str) -> int:
    """A memory size as runc takes it: bytes, or with k/m/g/t (binary) units; -1 = no limit."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    num = t.rstrip("kmgtb")
    unit = t[len(num) :]
    try:
        value = float(num)
    except ValueError:
        raise UsageError(f"invalid size: {text}") from None
    if unit not in _SIZE_UNITS or value < 0:
        raise UsageError(f"invalid size: {text}")
    return int(value * _SIZE_UNITS[unit])


def _merge_update_flags(res: dict, flags: dict) -> None:
    def put(section: str, key: str, value) -> None:
        res.setdefault(section, {})[key] = value

    for flag, (section, key, conv) in _UPDATE_FLAGS.items():
        value = flags.get(flag)
        if value is not None:
            put(section, key, conv(value))


_UPDATE_FLAGS: dict[str, tuple[str, str, Callable[[str], object]]] = {
    "blkio_weight": ("blockIO", "weight", int),
    "cpu_period": ("cpu", "period", int),
    "cpu_quota": ("cpu", "quota", int),
    "cpu_burst": ("cpu", "burst", int),
    "cpu_idle": ("cpu", "idle", int),
    "cpu_share": ("cpu", "shares", int),
    "cpu_rt_period": ("cpu", "realtimePeriod", int),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime", int),
    "cpuset_cpus": ("cpu", "cpus", str),
    "cpuset_mems": ("cpu", "mems", str),
    "memory": ("memory", "limit", parse_size),
    "memory_reservation": ("memory", "reservation", parse_size),
    "memory_swap": ("memory", "swap", parse_size),
    "pids_limit": ("pids", "limit", int),
}


def events(g: Globals, cid: str, stats: bool = False, interval: str = "5s") -> int:
    from . import lifecycle

    def go():
        secs = _parse_duration(interval)

        def emit(event: dict) -> None:
            print(compact(event), flush=True)

        lifecycle.events(g.root, cid, emit, once=stats, interval=secs)

    return guarded(go)


def _parse_duration(text: str) -> float:
    """Go-style durations as runc takes them: 5s, 500ms, 1m, 1.5s."""
    t = text.strip()
    for suffix, scale in (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if t.endswith(suffix):
            try:
                value = float(t[: -len(suffix)]) * scale
            except ValueError:
                break
            if value > 0:
                return value
            break
    raise UsageError(f"invalid interval: {text}")
