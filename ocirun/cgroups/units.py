"""The systemd cgroup driver's translation of the OCI config into systemd's terms: unit
names, cgroup and object paths, and the unit properties for linux.resources and the device
rules, as [(name, (D-Bus signature, value))]. No D-Bus here (systemd.py sends what this
builds); `version` is systemd's, and decides which properties it is given.

    parse_cgroups_path("slice:prefix:name", cid) -> (slice, prefix, name)   # runc's rules
    unit_name(prefix, name), unit_cgroup(slice_, unit), unit_object_path(unit)
    unit_properties(...)                   # all StartTransientUnit gets
    resource_properties(...), device_properties(...)  # SetUnitProperties on update

Delete of a --systemd-cgroup container loads this module for the unit's name and object
path: what only create and update use (layout.py's slice paths, v2.py's conversions,
ebpf.py's access bits) is imported where it is used.
"""

from __future__ import annotations

import os
import posixpath

from .common import CgroupError

SD_PATH = "/org/freedesktop/systemd1"  # systemd's manager object; units live below it
_U64_MAX = 2**64 - 1  # systemd's "infinity"


# ================================================================ names and paths


def parse_cgroups_path(
    raw: str | None, cid: str, default_slice: str = "system.slice"
) -> tuple[str, str, str]:
    """linux.cgroupsPath in runc's systemd form -> (slice, prefix, name). Absent: the
    container runs in system.slice (a user's manager: user.slice) as runc-<id>.scope."""
    if not raw:
        return default_slice, "runc", cid
    parts = raw.split(":")
    if len(parts) != 3:
        raise CgroupError(
            'expected cgroupsPath to be of format "slice:prefix:name" for '
            f'systemd cgroups, got "{raw}" instead'
        )
    slice_, prefix, name = parts
    if not name:
        raise CgroupError(f'cgroupsPath "{raw}": the unit name part is empty')
    return slice_ or default_slice, prefix, name


def unit_name(prefix: str, name: str) -> str:
    """runc's naming: a scope "<prefix>-<name>.scope", unless the name is a slice."""
    if name.endswith(".slice"):
        return name
    return f"{prefix}-{name}.scope"


def unit_cgroup(slice_: str, unit: str) -> str:
    """Where systemd puts the unit's cgroup (below each hierarchy's root): a scope under its
    slice's path, a slice where its own name says ("a-b.slice" -> /a.slice/a-b.slice)."""
    from .layout import expand_slice  # create only (see the module doc)

    if unit.endswith(".slice"):
        return expand_slice(unit)
    base = expand_slice(slice_)
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
    return SD_PATH + "/unit/" + ("".join(out) or "_")


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
            if key in (
                "memory.high",
                "memory.low",
                "memory.min",
                "memory.max",
                "memory.swap.max",
                "pids.max",
            ):
                name = {
                    "memory.high": "MemoryHigh",
                    "memory.low": "MemoryLow",
                    "memory.min": "MemoryMin",
                    "memory.max": "MemoryMax",
                    "memory.swap.max": "MemorySwapMax",
                    "pids.max": "TasksMax",
                }[key]
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
                props.append(
                    (
                        "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes",
                        ("ay", range_to_bits(value)),
                    )
                )
        except ValueError:
            raise CgroupError(f'unified resource "{key}" value invalid: "{value}"') from None
    return props


def resource_properties(res: dict, *, mode: str, version: int) -> list:
    """The unit properties for linux.resources: [(name, (D-Bus signature, value))]. `mode` is
    the host's ("v2", "v1", "hybrid": systemd then drives the v1 controllers)."""
    from .v2 import blkio_to_io_weight, shares_to_weight, swap_to_v2  # (see the module doc)

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


def device_properties(
    rules: list[dict], version: int, *, proc_devices: str | None = None
) -> tuple[list, list[str]]:
    """DevicePolicy/DeviceAllow for the effective rule list (devices.device_rules: in order,
    last match wins, from deny-all) -> (properties, warnings).

    systemd takes an allow-list. Ours is enforced exactly by cgroupfs (v1 devices.allow/deny,
    v2 our eBPF program, which the kernel ANDs with systemd's): systemd gets an allow-list
    that covers every device our rules allow (a deny among the allows narrows only ours), so
    its copy can never take away what the container may use."""
    from .ebpf import access_bits  # (see the module doc)

    start = 0
    for i, r in enumerate(rules):
        if r["type"] == "a" and r["major"] < 0 and r["minor"] < 0 and access_bits(r["access"]) == 7:
            start = i  # decides everything: the rules before it don't matter
    rules = [r for r in rules[start:] if access_bits(r["access"])]
    reset: tuple[str, tuple[str, list]] = ("DeviceAllow", ("a(ss)", []))
    if (
        rules
        and rules[0]["allow"]
        and rules[0]["type"] == "a"
        and rules[0]["major"] < 0
        and rules[0]["minor"] < 0
        and access_bits(rules[0]["access"]) == 7
    ):
        # default allow: systemd has no deny-list; "auto" with no entries allows all
        warnings = []
        if any(not r["allow"] for r in rules[1:]):
            warnings.append(
                "systemd cannot express device deny rules: the unit allows "
                "every device, the rules are enforced through cgroupfs only"
            )
        return [("DevicePolicy", ("s", "auto")), reset], warnings
    allow: dict[str, str] = {}  # path -> access, in first-seen order
    for r in rules:
        if not r["allow"]:
            continue
        for kind in ("c", "b") if r["type"] == "a" else (r["type"],):
            prefix = "char-" if kind == "c" else "block-"
            major, minor = r["major"], r["minor"]
            if major < 0:
                # "*:*" is a glob over the type; systemd has no "*:n": allow the type (ours
                # still narrows it to n)
                path = prefix + "*"
            elif minor < 0:
                path = (
                    prefix + str(major)
                    if version >= 240
                    else (_device_group(kind, major, proc_devices) or prefix + "*")
                )
            else:
                path = f"/dev/{'char' if kind == 'c' else 'block'}/{major}:{minor}"
                if version < 240 and not os.path.exists(path):
                    continue  # old systemd stat()s the path; nothing there to open anyway
            allow[path] = "".join(
                ch for ch in "rwm" if ch in r["access"] or ch in allow.get(path, "")
            )
    return [
        ("DevicePolicy", ("s", "strict")),
        reset,
        ("DeviceAllow", ("a(ss)", list(allow.items()))),
    ], []


def unit_properties(
    *,
    unit: str,
    slice_: str,
    description: str,
    pid: int | None,
    mode: str,
    version: int,
    resources: dict,
    device_rules: list[dict] | None,
    proc_devices: str | None = None,
) -> tuple[list, list[str]]:
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
    props += [
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        ("IOAccounting" if mode == "v2" else "BlockIOAccounting", ("b", True)),
        ("TasksAccounting", ("b", True)),
        ("DefaultDependencies", ("b", False)),
    ]
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
