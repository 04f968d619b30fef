"""The plan's `ns` section: which namespaces are made (clone or unshare) and joined (setns),
the id maps, time offsets; and its `kernel` section, what lives in them: hostname,
domainname, sysctls (each checked to belong to a namespace of the container's). Pure:
called by plan.build.
"""

from __future__ import annotations

from .plan_records import Plan
from .tables import NAMESPACES


def plan_namespaces(plan: Plan, linux: dict) -> set[str]:
    new: set[str] = set()
    joins: list[tuple[str, int]] = []
    for ns in linux.get("namespaces") or []:
        if ns.get("path"):
            joins.append((ns["path"], NAMESPACES[ns["type"]]))
        else:
            new.add(ns["type"])
    # A joined user namespace goes first: it owns (and so grants us power over) the rest.
    joins.sort(key=lambda j: j[1] != NAMESPACES["user"])
    plan.ns.joins = joins
    flags = 0
    for t in new:
        flags |= NAMESPACES[t]
    joined = {t for _, t in joins}
    if not joins and "time" not in new:
        # Everything new: clone(2) creates it all, and the child is already the init.
        plan.ns.clone_flags = flags
    else:
        # Joins come first (setns), then unshare; pid and time namespaces entered that way
        # hold only our children, so the init is one fork further.
        plan.ns.unshare_flags = flags
        plan.ns.fork_after = bool(
            {"pid", "time"} & new or {NAMESPACES["pid"], NAMESPACES["time"]} & joined
        )
    plan.ns.userns_sync = "user" in new
    if plan.ns.userns_sync:
        plan.ns.uid_map = idmap_text(linux.get("uidMappings") or [])
        plan.ns.gid_map = idmap_text(linux.get("gidMappings") or [])
    elif "user" not in joined_types(joins) and (
        linux.get("uidMappings") or linux.get("gidMappings")
    ):
        plan.warnings.append(
            "ignoring uidMappings/gidMappings: the container has no user namespace of its own"
        )
    if linux.get("timeOffsets") and "time" not in new:
        plan.warnings.append("ignoring timeOffsets: the container has no time namespace of its own")
    if "time" in new and linux.get("timeOffsets"):
        plan.ns.timens_offsets = "".join(
            f"{clock} {int(off.get('secs', 0))} {int(off.get('nanosecs', 0))}\n"
            for clock, off in sorted(linux["timeOffsets"].items())
        )
    plan.ns.loopback_up = "network" in new
    if plan.cgroup_sync and "cgroup" in new and plan.ns.clone_flags & NAMESPACES["cgroup"]:
        # The parent places the child in its cgroups after clone: a cgroup namespace made by
        # clone would be rooted in the runtime's cgroup, so unshare it after the placement.
        plan.ns.clone_flags &= ~NAMESPACES["cgroup"]
        plan.ns.unshare_flags |= NAMESPACES["cgroup"]
    return new


def joined_types(joins: list[tuple[str, int]]) -> set[str]:
    flags = {flag for _, flag in joins}
    return {name for name, flag in NAMESPACES.items() if flag in flags}


def idmap_text(mappings: list[dict]) -> str:
    """linux.uidMappings-style entries as /proc/<pid>/uid_map text."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def plan_kernel_settings(
    plan: Plan, config: dict, linux: dict, new: set[str], problems: list[str]
) -> None:
    joined_uts = any(t == NAMESPACES["uts"] for _, t in plan.ns.joins)
    for key in ("hostname", "domainname"):
        value = config.get(key)
        if value is None:
            continue
        if "uts" not in new and not joined_uts:
            # validate.py refuses a non-empty one; an empty one sets nothing (and must not
            # reach the host's uts namespace)
            continue
        setattr(plan.kernel, key, value)
    ours = new | {t for t, flag in NAMESPACES.items() if flag in {f for _, f in plan.ns.joins}}
    for key, value in sorted((linux.get("sysctl") or {}).items()):
        path = sysctl_path(key)
        dotted = path[len("/proc/sys/") :].replace("/", ".")
        ns = _sysctl_namespace(dotted)
        if ns is None:
            problems.append(
                f"/linux/sysctl/{key}: not in a separate kernel namespace: it would change the host"
            )
        elif ns not in ours:
            problems.append(
                f"/linux/sysctl/{key}: needs a new or joined {ns} namespace: it "
                "would change the host's"
            )
        name = (
            dotted[len("kernel.") :] if dotted in ("kernel.hostname", "kernel.domainname") else None
        )
        if name and config.get(name) is not None and str(value) != config[name]:
            problems.append(f"/linux/sysctl/{key}: {value!r} contradicts /{name} {config[name]!r}")
        elif name == "hostname":
            # runc and crun refuse it whatever its value: /hostname is the field for it
            problems.append(f"/linux/sysctl/{key}: not allowed: it conflicts with /hostname")
        plan.kernel.sysctls.append((path, str(value)))


# Namespaced sysctls (as runc allows them): the namespace each belongs to.
_IPC_SYSCTLS = frozenset(
    (
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    )
)


def _sysctl_namespace(dotted: str) -> str | None:
    if dotted in _IPC_SYSCTLS or dotted.startswith("fs.mqueue."):
        return "ipc"
    if dotted.startswith("net."):
        return "network"
    if dotted in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def sysctl_path(name: str) -> str:
    """The /proc/sys file of a sysctl name, by sysctl(8)'s rule: if the first separator is
    '/', dots are part of names (net/ipv4/conf/eth0.100/forwarding); if it is '.', dots and
    slashes swap (net.ipv4.conf.eth0/100.forwarding)."""
    slash, dot = name.find("/"), name.find(".")
    if slash != -1 and (dot == -1 or slash < dot):
        return "/proc/sys/" + name
    return "/proc/sys/" + name.translate(str.maketrans("./", "/."))
