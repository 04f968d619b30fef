"""`ocirun events --stats`: what a container's cgroups report, in runc's JSON shape (its
omitempty fields dropped the way Go drops them), from the v1 hierarchies or the cgroup2
directory. Loaded by the stats readers only (V1Manager.stats, V2Manager.stats).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .common import flat_keyed, omit_empty, to_int

if TYPE_CHECKING:
    from .v1 import V1Manager
    from .v2 import V2Manager

_UNLIMITED = 2**64 - 1


# ---------------------------------------------------------------- cgroup v1


def v1_stats(m: V1Manager) -> dict:
    return {
        "cpu": _v1_cpu(m),
        "cpuset": _v1_cpuset(m),
        "memory": _v1_memory(m),
        "pids": _v1_pids(m),
        "blkio": _v1_blkio(m),
        "hugetlb": _v1_hugetlb(m),
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _v1_cpu(m: V1Manager) -> dict:
    usage: dict = {
        "total": 0,
        "percpu": [],
        "percpu_kernel": [],
        "percpu_user": [],
        "kernel": 0,
        "user": 0,
    }
    d = m.dirs.get("cpuacct")
    if d:
        usage["total"] = to_int(m._opt(d, "cpuacct.usage"))
        usage["percpu"] = [int(x) for x in (m._opt(d, "cpuacct.usage_percpu") or "").split()]
        for line in (m._opt(d, "cpuacct.usage_all") or "").splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3:
                usage["percpu_user"].append(int(parts[1]))
                usage["percpu_kernel"].append(int(parts[2]))
        ticks = flat_keyed(m._opt(d, "cpuacct.stat") or "")
        hz = os.sysconf("SC_CLK_TCK") or 100
        usage["user"] = to_int(ticks.get("user")) * 1_000_000_000 // hz
        usage["kernel"] = to_int(ticks.get("system")) * 1_000_000_000 // hz
    throttling = {}
    d = m.dirs.get("cpu")
    if d:
        st = flat_keyed(m._opt(d, "cpu.stat") or "")
        throttling = {
            "periods": to_int(st.get("nr_periods")),
            "throttledPeriods": to_int(st.get("nr_throttled")),
            "throttledTime": to_int(st.get("throttled_time")),
        }
    omit_empty(throttling, ("periods", "throttledPeriods", "throttledTime"))
    omit_empty(usage, ("total", "percpu", "percpu_kernel", "percpu_user"))
    return {"usage": usage, "throttling": throttling}


def _v1_cpuset(m: V1Manager) -> dict:
    d = m.dirs.get("cpuset")
    out = {
        "cpus": [],
        "cpu_exclusive": 0,
        "mems": [],
        "mem_hardwall": 0,
        "mem_exclusive": 0,
        "memory_migrate": 0,
        "memory_spread_page": 0,
        "memory_spread_slab": 0,
        "memory_pressure": 0,
        "sched_load_balance": 0,
        "sched_relax_domain_level": 0,
    }
    if d:
        out["cpus"] = parse_list(m._opt(d, "cpuset.cpus") or "")
        out["mems"] = parse_list(m._opt(d, "cpuset.mems") or "")
        for key in out:
            if key not in ("cpus", "mems"):
                out[key] = to_int(m._opt(d, "cpuset." + key))
    return omit_empty(out, ("cpus", "mems"))


def _v1_memory(m: V1Manager) -> dict:
    d = m.dirs.get("memory")
    out: dict = {
        "cache": 0,
        "usage": _entry(),
        "swap": _entry(),
        "kernel": _entry(),
        "kernelTCP": _entry(),
        "raw": {},
    }
    if d:
        raw = {k: to_int(v) for k, v in flat_keyed(m._opt(d, "memory.stat") or "").items()}
        out["raw"] = raw
        out["cache"] = raw.get("cache", 0)
        for key, prefix in (
            ("usage", "memory"),
            ("swap", "memory.memsw"),
            ("kernel", "memory.kmem"),
            ("kernelTCP", "memory.kmem.tcp"),
        ):
            if m._has(d, prefix + ".usage_in_bytes"):
                out[key] = _entry(
                    to_int(m._opt(d, prefix + ".limit_in_bytes")),
                    to_int(m._opt(d, prefix + ".usage_in_bytes")),
                    to_int(m._opt(d, prefix + ".max_usage_in_bytes")),
                    to_int(m._opt(d, prefix + ".failcnt")),
                )
    return omit_empty(out, ("cache", "raw"))


def _v1_pids(m: V1Manager) -> dict:
    d = m.dirs.get("pids")
    if not d:
        return {}
    limit = to_int(m._opt(d, "pids.max"))
    out = {
        "current": to_int(m._opt(d, "pids.current")),
        "limit": 0 if limit == _UNLIMITED else limit,
    }
    return omit_empty(out, ("current", "limit"))


def _v1_blkio(m: V1Manager) -> dict:
    d = m.dirs.get("blkio")
    if not d:
        return {}
    out: dict = {}
    # CFQ's accounting if the kernel has it, else BFQ's, else the throttling layer's.
    for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
        if m._has(d, prefix + "io_service_bytes_recursive"):
            break
    for key, name in (
        ("ioServiceBytesRecursive", "io_service_bytes_recursive"),
        ("ioServicedRecursive", "io_serviced_recursive"),
        ("ioQueueRecursive", "io_queued_recursive"),
        ("ioServiceTimeRecursive", "io_service_time_recursive"),
        ("ioWaitTimeRecursive", "io_wait_time_recursive"),
        ("ioMergedRecursive", "io_merged_recursive"),
        ("ioTimeRecursive", "time_recursive"),
        ("sectorsRecursive", "sectors_recursive"),
    ):
        entries = blkio_entries(m._opt(d, prefix + name) or "")
        if entries:
            out[key] = entries
    return out


def _v1_hugetlb(m: V1Manager) -> dict:
    d = m.dirs.get("hugetlb")
    out: dict = {}
    if not d:
        return out
    for size in hugepage_sizes():
        prefix = f"hugetlb.{size}."
        if m._has(d, prefix + "usage_in_bytes"):
            out[size] = omit_empty(
                {
                    "usage": to_int(m._opt(d, prefix + "usage_in_bytes")),
                    "max": to_int(m._opt(d, prefix + "max_usage_in_bytes")),
                    "failcnt": to_int(m._opt(d, prefix + "failcnt")),
                },
                ("usage", "max"),
            )
    return out


# ---------------------------------------------------------------- cgroup v2


def v2_stats(m: V2Manager) -> dict:
    d = m.dirs[""]
    st = flat_keyed(m._opt(d, "cpu.stat") or "")
    usage = omit_empty(
        {
            "total": to_int(st.get("usage_usec")) * 1000,
            "kernel": to_int(st.get("system_usec")) * 1000,
            "user": to_int(st.get("user_usec")) * 1000,
        },
        ("total",),
    )
    throttling = omit_empty(
        {
            "periods": to_int(st.get("nr_periods")),
            "throttledPeriods": to_int(st.get("nr_throttled")),
            "throttledTime": to_int(st.get("throttled_usec")) * 1000,
        },
        ("periods", "throttledPeriods", "throttledTime"),
    )
    cpus = m._opt(d, "cpuset.cpus.effective") or m._opt(d, "cpuset.cpus") or ""
    mems = m._opt(d, "cpuset.mems.effective") or m._opt(d, "cpuset.mems") or ""
    cpuset = omit_empty({"cpus": parse_list(cpus), "mems": parse_list(mems)}, ("cpus", "mems"))
    pids_max = to_int(m._opt(d, "pids.max"))
    pids = omit_empty(
        {
            "current": to_int(m._opt(d, "pids.current")),
            "limit": 0 if pids_max == _UNLIMITED else pids_max,
        },
        ("current", "limit"),
    )
    hugetlb = {}
    for size in hugepage_sizes():
        cur = m._opt(d, f"hugetlb.{size}.current")
        if cur is not None:
            ev = flat_keyed(m._opt(d, f"hugetlb.{size}.events") or "")
            hugetlb[size] = omit_empty(
                {"usage": to_int(cur), "failcnt": to_int(ev.get("max"))}, ("usage",)
            )
    return {
        "cpu": {"usage": usage, "throttling": throttling},
        "cpuset": cpuset,
        "memory": _v2_memory(m, d),
        "pids": pids,
        "blkio": _v2_io(m, d),
        "hugetlb": hugetlb,
        "intel_rdt": {},
        "network_interfaces": None,
    }


def _v2_memory(m: V2Manager, d: str) -> dict:
    raw = {k: to_int(v) for k, v in flat_keyed(m._opt(d, "memory.stat") or "").items()}
    events = flat_keyed(m._opt(d, "memory.events") or "")
    usage = _entry(
        to_int(m._opt(d, "memory.max")),
        to_int(m._opt(d, "memory.current")),
        to_int(m._opt(d, "memory.peak")),
        to_int(events.get("max")),
    )
    # v1 reports swap as memory+swap: so does runc on v2.
    swap = _entry()
    if m._has(d, "memory.swap.current"):
        limit = to_int(m._opt(d, "memory.swap.max"))
        if limit != _UNLIMITED:
            limit = min(limit + usage["limit"], _UNLIMITED)
        used = to_int(m._opt(d, "memory.swap.current")) + usage.get("usage", 0)
        events = flat_keyed(m._opt(d, "memory.swap.events") or "")
        swap = _entry(limit, used, 0, to_int(events.get("max")))
    return omit_empty(
        {
            "cache": raw.get("file", 0),
            "usage": usage,
            "swap": swap,
            "kernel": _entry(),
            "kernelTCP": _entry(),
            "raw": raw,
        },
        ("cache", "raw"),
    )


def _v2_io(m: V2Manager, d: str) -> dict:
    service_bytes: list[dict] = []
    serviced: list[dict] = []
    for line in (m._opt(d, "io.stat") or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, op, out in (
            ("rbytes", "Read", service_bytes),
            ("wbytes", "Write", service_bytes),
            ("rios", "Read", serviced),
            ("wios", "Write", serviced),
        ):
            if key in kv:
                out.extend(blkio_entries(f"{parts[0]} {op} {kv[key]}"))
    return omit_empty(
        {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced},
        ("ioServiceBytesRecursive", "ioServicedRecursive"),
    )


# ---------------------------------------------------------------- shared


def _entry(limit: int = 0, usage: int = 0, peak: int = 0, failcnt: int = 0) -> dict:
    return omit_empty(
        {"limit": limit, "usage": usage, "max": peak, "failcnt": failcnt}, ("usage", "max")
    )


def parse_list(text: str) -> list[int]:
    """ "0-2,5" -> [0, 1, 2, 5] (cpuset lists)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def blkio_entries(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            dev, op, value = parts
        elif len(parts) == 2 and ":" in parts[0]:
            dev, op, value = parts[0], "", parts[1]
        else:
            continue  # "Total N"
        major, _, minor = dev.partition(":")
        out.append(
            omit_empty(
                {"major": int(major), "minor": int(minor), "op": op, "value": int(value)},
                ("major", "minor", "op", "value"),
            )
        )
    return out


def hugepage_sizes() -> list[str]:
    """Page sizes as the hugetlb files name them ("2MB", "1GB")."""
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return []
    out = []
    for n in names:
        if n.startswith("hugepages-") and n.endswith("kB"):
            kb = int(n[len("hugepages-") : -2])
            if kb >= 1 << 20:
                out.append(f"{kb >> 20}GB")
            elif kb >= 1 << 10:
                out.append(f"{kb >> 10}MB")
            else:
                out.append(f"{kb}KB")
    return out
