"""The checks of a config.json the schema cannot express (validate.py runs the schema
first): absolute paths, duplicates, cross-field rules, exact capability/rlimit names, the
seccomp profile's rules. Every problem is "JSONPOINTER: message". Cold path: the verdict is
cached with the config (spec.py, cache.py).
"""

from __future__ import annotations

import re
from typing import TypeGuard

from . import tables

_SPEC_MAJOR = "1"

# --------------------------------------------------------------------------- helpers


def _escape(part) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(parts) -> str:
    """JSON pointer for a path given as a sequence of keys/indices; the root is "/"."""
    parts = list(parts)
    if not parts:
        return "/"
    return "".join("/" + _escape(p) for p in parts)


def sort_key(parts) -> tuple:
    # ints sort before strings at the same depth, numerically; strings lexically.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts)


DEV_MAX = {"major": (1 << 12) - 1, "minor": (1 << 20) - 1}  # the kernel's dev_t: 12 + 20 bits


def _is_int(v) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _obj(v) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v) -> list:
    return v if isinstance(v, list) else []


_RLIMIT_FORM = re.compile(r"^RLIMIT_[A-Z]+$")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~].*)?$")
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")


def semantic_problems(cfg: dict) -> list[str]:
    out: list[str] = []

    def add(parts, msg: str) -> None:
        out.append(f"{pointer(parts)}: {msg}")

    def absolute(parts, value, what: str = "") -> None:
        if isinstance(value, str) and not value.startswith("/"):
            add(parts, f"{what}must be an absolute path, got {value!r}")

    # ociVersion: any 1.x
    version = cfg.get("ociVersion")
    if isinstance(version, str):
        m = _VERSION.match(version)
        if not m:
            add(["ociVersion"], f"invalid ociVersion {version!r}: expected 1.x.y")
        elif m.group(1) != _SPEC_MAJOR:
            add(
                ["ociVersion"],
                f"unsupported ociVersion {version!r}: ocirun implements runtime-spec 1.x",
            )

    # process (runc refuses to create a container without one)
    if "process" not in cfg:
        add([], "'process' is a required property")
    proc = cfg.get("process")
    if isinstance(proc, dict):
        if "args" not in proc:
            add(["process"], "'args' is a required property")
        elif isinstance(proc["args"], list) and not proc["args"]:
            add(["process", "args"], "must not be empty: it names the program to run")
        absolute(["process", "cwd"], proc.get("cwd"))
        for i, kv in enumerate(_list(proc.get("env"))):
            if isinstance(kv, str) and "=" not in kv:
                add(
                    ["process", "env", i],
                    f"invalid environment variable {kv!r}: expected "
                    "KEY=value (runc refuses it too)",
                )
        _check_rlimits(proc, add)
        _check_scheduling(proc, add)

    # root
    if "root" not in cfg:
        add([], "'root' is a required property")

    # mounts
    for i, mount in enumerate(_list(cfg.get("mounts"))):
        dest = _obj(mount).get("destination")
        if isinstance(dest, str) and not dest.strip():
            add(["mounts", i, "destination"], "must not be empty")

    # hooks
    hooks = _obj(cfg.get("hooks"))
    for phase in tables.HOOK_PHASES:
        for i, hook in enumerate(_list(hooks.get(phase))):
            hook = _obj(hook)
            absolute(["hooks", phase, i, "path"], hook.get("path"))
            timeout = hook.get("timeout")
            if _is_int(timeout) and timeout <= 0:
                add(["hooks", phase, i, "timeout"], f"must be greater than zero, got {timeout}")

    linux = _obj(cfg.get("linux"))
    # None when linux or linux.namespaces is malformed: the schema reports that, and the
    # checks that depend on which namespaces exist are skipped rather than piled on.
    namespaces = _check_namespaces(cfg, add)
    if namespaces is not None:
        _check_id_mappings(linux, namespaces, add)

        # hostname/domainname need a UTS namespace of the container's own
        for key in ("hostname", "domainname"):
            if isinstance(cfg.get(key), str) and cfg[key] and "uts" not in namespaces:
                add([key], "setting it requires a uts namespace in /linux/namespaces")

    # timeOffsets (without a new time namespace the planner ignores them, as runc does)
    offsets = linux.get("timeOffsets")
    if isinstance(offsets, dict) and offsets and namespaces is not None:
        if "time" in namespaces and namespaces["time"]:
            add(
                ["linux", "timeOffsets"],
                "cannot be set when joining an existing time namespace (path)",
            )
        for clock in offsets:
            if clock not in tables.TIME_CLOCKS:
                add(
                    ["linux", "timeOffsets", clock],
                    f"unknown clock {clock!r} (expected one of {', '.join(tables.TIME_CLOCKS)})",
                )

    # devices (a relative path is taken from the container's /, as runc does)
    for i, dev in enumerate(_list(linux.get("devices"))):
        dev = _obj(dev)
        dtype = dev.get("type")
        if dtype in ("c", "b", "u"):
            for key in ("major", "minor"):
                if key not in dev:
                    add(["linux", "devices", i], f"{key!r} is required for device type {dtype!r}")
                elif _is_int(dev[key]) and not 0 <= dev[key] <= DEV_MAX[key]:
                    # (-1 is a wildcard in resources.devices, never a node's number)
                    add(
                        ["linux", "devices", i, key],
                        f"{dev[key]} is not a {key} device number (0 to {DEV_MAX[key]} on Linux)",
                    )

    # masked / readonly paths: relative ones are taken from the container's / (runc)

    # sysctl names must not escape /proc/sys
    for name in _obj(linux.get("sysctl")):
        if not _sysctl_name_ok(name):
            add(["linux", "sysctl", name], f"invalid sysctl name {name!r}")

    _check_seccomp(linux, add)
    _check_memory_policy(_obj(linux.get("memoryPolicy")), add)
    return out


MAX_CPU = 8191  # the kernel's largest NR_CPUS
MAX_NODE = 1023  # the kernel's largest MAX_NUMNODES (NODES_SHIFT 10)


def _check_memory_policy(mp: dict, add) -> None:
    """linux.memoryPolicy's nodes, said before anything is made, in runc's words: a node
    list (a number past the kernel's last node, "0-9876543210", would be a mask of
    gigabytes); MPOL_DEFAULT and MPOL_LOCAL take none (set_mempolicy says only EINVAL)."""
    nodes, mode = mp.get("nodes"), mp.get("mode")
    if not isinstance(nodes, str) or not nodes:
        return
    if not _cpu_list_ok(nodes, MAX_NODE):
        add(
            ["linux", "memoryPolicy", "nodes"],
            f'invalid memory policy node list {nodes!r}: not like "0-3,6" (nodes 0 to {MAX_NODE})',
        )
    elif mode in ("MPOL_DEFAULT", "MPOL_LOCAL"):
        count = len(_cpu_set(nodes))
        add(
            ["linux", "memoryPolicy", "nodes"],
            f"invalid memory policy: {mode} mode requires 0 nodes but got {count}",
        )


def _check_scheduling(proc: dict, add) -> None:
    """ioPriority's level (0-7, as runc checks), the scheduler's priority and nice, and
    execCPUAffinity's CPU lists (the schema's pattern also lets "-1", "1-" and a trailing
    newline through)."""
    level = _obj(proc.get("ioPriority")).get("priority")
    if _is_int(level) and not 0 <= level <= 7:
        add(["process", "ioPriority", "priority"], f"must be 0 to 7, got {level}")
    sched = _obj(proc.get("scheduler"))
    for key, lo, hi in (("priority", 0, 99), ("nice", -20, 19)):  # sched_setattr(2)'s ranges
        value = sched.get(key)
        if _is_int(value) and not lo <= value <= hi:
            add(["process", "scheduler", key], f"must be {lo} to {hi}, got {value}")
    for key, spec in _obj(proc.get("execCPUAffinity")).items():
        if isinstance(spec, str) and not _cpu_list_ok(spec):
            add(
                ["process", "execCPUAffinity", key],
                f'{spec!r} is not a CPU list like "0-3,6" (CPUs 0 to {MAX_CPU})',
            )


def _cpu_list_ok(spec: str, highest: int = MAX_CPU) -> bool:
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return False
        if int(hi or lo) < int(lo) or int(hi or lo) > highest:
            return False
    return True


def _cpu_set(spec: str) -> set[int]:
    """The numbers of a list _cpu_list_ok accepted."""
    out: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _check_rlimits(proc: dict, add) -> None:
    seen: dict[str, int] = {}
    for i, rl in enumerate(_list(proc.get("rlimits"))):
        rl = _obj(rl)
        rtype = rl.get("type")
        if isinstance(rtype, str) and _RLIMIT_FORM.match(rtype):
            if rtype not in tables.RLIMITS:
                add(["process", "rlimits", i, "type"], f"unknown rlimit {rtype!r}")
            elif rtype in seen:
                add(
                    ["process", "rlimits", i, "type"],
                    f"duplicate rlimit {rtype!r} (also at /process/rlimits/{seen[rtype]})",
                )
            else:
                seen[rtype] = i
        soft, hard = rl.get("soft"), rl.get("hard")
        if _is_int(soft) and _is_int(hard) and soft > hard:
            add(["process", "rlimits", i], f"soft limit {soft} is greater than hard limit {hard}")


def _check_namespaces(cfg: dict, add) -> dict[str, str] | None:
    """Check linux.namespaces; return {type: path or ''}, or None when the namespaces
    cannot be known: linux or linux.namespaces is not what the schema wants, or an entry
    has no valid type (the schema reports it; it might have been the one a check needs)."""
    if "linux" not in cfg:
        return {}
    linux = cfg["linux"]
    if not isinstance(linux, dict):
        return None
    if "namespaces" not in linux:
        return {}
    entries = linux["namespaces"]
    if not isinstance(entries, list):
        return None
    found: dict[str, str] = {}
    where: dict[str, int] = {}
    known = True
    for i, ns in enumerate(entries):
        ns = _obj(ns)
        ntype, path = ns.get("type"), ns.get("path")
        if isinstance(path, str) and path:
            if not path.startswith("/"):
                add(["linux", "namespaces", i, "path"], f"must be an absolute path, got {path!r}")
        if not (isinstance(ntype, str) and ntype in tables.NAMESPACES):
            known = False
            continue
        if ntype in found:
            add(
                ["linux", "namespaces", i, "type"],
                f"duplicate namespace type {ntype!r} (also at /linux/namespaces/{where[ntype]})",
            )
            continue
        found[ntype] = path if isinstance(path, str) else ""
        where[ntype] = i
    return found if known else None


def _check_id_mappings(linux: dict, namespaces: dict[str, str], add) -> None:
    kinds = (("uidMappings", "uid"), ("gidMappings", "gid"))
    if "user" in namespaces:
        if namespaces["user"]:
            return  # joining an existing user namespace: its mappings are already set
        for key, kind in kinds:
            value = linux.get(key)
            if value is None or (isinstance(value, list) and not value):
                add(
                    ["linux", key] if key in linux else ["linux"],
                    f"a new user namespace requires {kind} mappings ({key!r} is missing or empty)",
                )
    # Mappings without a user namespace are ignored (with a warning, by the planner), as
    # runc ignores them.


def _sysctl_name_ok(name: str) -> bool:
    if not name or name.startswith(("/", ".")):
        return False
    if "/" in name:
        return all(part not in ("", ".", "..") for part in name.split("/"))
    return all(part for part in name.split("."))


# Syscalls a SCMP_ACT_NOTIFY rule may not name: the child uses them (after the filter is
# loaded) to hand the listener fd to the parent; notifying them would hang the container
# forever. `write` is runc's rule; send/sendto/sendmsg are ocirun's sync socket.
NOTIFY_FORBIDDEN = frozenset({"write", "send", "sendto", "sendmsg"})


def _errno_range(obj: dict, key: str, where: list, add) -> None:
    value = obj.get(key)
    if _is_int(value) and not 0 <= value <= 0xFFFF:
        add(where + [key], f"must be an integer in 0..65535, got {value!r}")


def _check_seccomp(linux: dict, add) -> None:
    sec = _obj(linux.get("seccomp"))
    if not sec:
        return
    base = ["linux", "seccomp"]
    has_listener = isinstance(sec.get("listenerPath"), str) and bool(sec["listenerPath"])
    if sec.get("listenerMetadata") and not has_listener:
        add(base + ["listenerMetadata"], "must not be set without listenerPath")
    default = sec.get("defaultAction")
    if default == "SCMP_ACT_NOTIFY":
        add(base + ["defaultAction"], "SCMP_ACT_NOTIFY cannot be the default action")
    if "defaultErrnoRet" in sec and isinstance(default, str) and default not in _ERRNO_ACTIONS:
        add(base + ["defaultErrnoRet"], f"not supported with defaultAction {default!r}")
    _errno_range(sec, "defaultErrnoRet", base, add)
    uses_notify = False
    for i, rule in enumerate(_list(sec.get("syscalls"))):
        rule = _obj(rule)
        where = base + ["syscalls", i]
        action = rule.get("action")
        uses_notify = uses_notify or action == "SCMP_ACT_NOTIFY"
        if "errnoRet" in rule and isinstance(action, str) and action not in _ERRNO_ACTIONS:
            add(where + ["errnoRet"], f"not supported with action {action!r}")
        else:
            _errno_range(rule, "errnoRet", where, add)
        if action == "SCMP_ACT_NOTIFY":
            for j, name in enumerate(_list(rule.get("names"))):
                if name in NOTIFY_FORBIDDEN:
                    add(
                        where + ["names", j],
                        f"SCMP_ACT_NOTIFY cannot be used for {name!r} (the runtime needs it "
                        "to hand over the listener)",
                    )
        for k, arg in enumerate(_list(rule.get("args"))):
            index = _obj(arg).get("index")
            if _is_int(index) and index > 5:
                add(
                    where + ["args", k, "index"],
                    f"must be 0..5 (a syscall has 6 arguments), got {index!r}",
                )
            for key in ("value", "valueTwo"):
                value = _obj(arg).get(key)
                if _is_int(value) and value >= 1 << 64:
                    add(
                        where + ["args", k, key],
                        f"must be an unsigned 64-bit integer, got {value!r}",
                    )
    if uses_notify and not has_listener:
        add(base + ["listenerPath"], "required when a rule uses SCMP_ACT_NOTIFY")
