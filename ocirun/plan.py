"""spec -> plan: every decision about the container's init, made here, in pure Python.

`build()` reads a validated config (a dict) and what the runtime knows about the host
(`HostFacts`: the cgroup layout, the capability bounding set, the compiled seccomp filter,
...) and returns a complete `Plan`, frozen deeply, whose sections (ns, hooks, rootfs,
kernel, process, security) hold the fields of `struct ocirun_plan` (csrc/ocirun.h) by its
groups; `_native` only copies them. It does no I/O, so every choice is
unit-testable without root, and it is the only semantic check of a config after the schema
(validate.py): it collects every problem and raises one ConfigError. The sections are
planned in plan_namespaces, plan_process, plan_rootfs, plan_security (and plan_netdevices,
plan_rootless in rootless.py, where the config asks for them).
"""

from __future__ import annotations

import os

from ._lean import Callable, Record
from .errors import ConfigError, OcirunError
from .plan_namespaces import (  # noqa: F401 (part of the planner's interface)
    idmap_text,
    joined_types,
    plan_kernel_settings,
    plan_namespaces,
    sysctl_path,
)
from .plan_process import (  # noqa: F401 (part of the planner's interface)
    ALL_CPUS,
    cpu_mask,
    plan_hooks,
    plan_memory_policy,
    plan_personality,
    plan_process,
    process_with_exec_flags,
)
from .plan_records import (  # noqa: F401 (part of the planner's interface)
    ALL_CAPS,
    MNT_DIR,
    MNT_FILE,
    WAIT_SIGNALS,
    CgroupLayout,
    Device,
    Mount,
    Options,
    Plan,
)
from .plan_security import (  # noqa: F401 (the plan's constants, by their usual name)
    CHECK_FACCESSAT2,
    CHECK_MODE_BITS,
    EXEC_EXECVEAT,
    EXEC_PROC_FD,
    SECCOMP_EARLY,
    SECCOMP_LAST,
    SECCOMP_NONE,
    SECCOMP_READY,
    exec_check,
    exec_route,
    seccomp_when,
)
from .tables import NAMESPACES


class HostFacts(Record):
    """What `build` is told about the host and the runtime (read by hostfacts.py): how
    cgroups are mounted (for `cgroup` mounts), the runtime's capability bounding set, its
    euid (rootless), the compiled seccomp filter (seccomp.Filter: bpf, flags, notify),
    --debug (the init reports its phase times), whether setgroups is denied in the user
    namespace an exec joins, how to ask whether a bind source is a directory or the rootfs
    on a nodev mount, and whether the kernel has faccessat2."""

    __slots__ = (
        "cgroups",
        "cap_bounding",
        "euid",
        "seccomp",
        "trace",
        "setgroups_denied",
        "is_dir",
        "faccessat2",
        "is_nodev",
        "is_proc_root",
        "proc_sys_mounts",
    )

    def __init__(
        self,
        cgroups: CgroupLayout | None = None,
        cap_bounding: int = ALL_CAPS,
        euid: int = 0,
        seccomp=None,
        trace: bool = False,
        setgroups_denied: bool = False,
        is_dir: Callable[[str], bool] = os.path.isdir,
        faccessat2: bool = True,
        is_nodev: Callable[[str], bool] = lambda path: False,
        is_proc_root: Callable[[str], bool] = lambda path: False,
        proc_sys_mounts: Callable[[], tuple[str, ...]] = lambda: (),
    ):
        self.cgroups = cgroups if cgroups is not None else CgroupLayout()
        self.cap_bounding, self.euid, self.seccomp = cap_bounding, euid, seccomp
        self.trace, self.setgroups_denied, self.is_dir = trace, setgroups_denied, is_dir
        self.faccessat2 = faccessat2  # the kernel has faccessat2 (5.8+)
        self.is_nodev = is_nodev  # whether the host mounts a path nodev (the rootfs)
        self.is_proc_root = is_proc_root  # a bind source is a procfs's root (may go at /proc)
        # whole procfs/sysfs mounts of the runtime's namespace (asked for --no-pivot only)
        self.proc_sys_mounts = proc_sys_mounts


def build(
    config: dict, bundle: str, opts: Options | None = None, host: HostFacts | None = None
) -> Plan:
    opts = opts or Options()
    host = host or HostFacts()
    linux = config.get("linux") or {}
    plan = Plan(
        no_pivot=opts.no_pivot,
        new_keyring=not opts.no_new_keyring,
        preserve_fds=opts.preserve_fds + opts.listen_fds,
    )
    plan.cgroup_sync = opts.cgroups
    problems: list[str] = []
    new = plan_namespaces(plan, linux)
    plan_process(plan, config["process"], host.cap_bounding)
    if host.euid != 0:
        from .rootless import plan_rootless

        plan_rootless(
            plan, linux, config.get("mounts") or [], new, joined_types(plan.ns.joins), problems
        )
    if opts.listen_fds:
        # Socket activation, as runc: the fds follow fds 3.., and the process is pid 1.
        plan.process.envp = [
            e for e in plan.process.envp if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))
        ]
        plan.process.envp += [f"LISTEN_FDS={opts.listen_fds}", "LISTEN_PID=1"]
    plan_hooks(plan, config.get("hooks") or {})
    plan_memory_policy(plan, linux)
    plan_personality(plan, linux)
    plan_kernel_settings(plan, config, linux, new, problems)
    if linux.get("netDevices"):
        from .plan_netdevices import plan_devices

        plan.ns.net_devices = plan_devices(
            linux["netDevices"], new, joined_types(plan.ns.joins), problems
        )
        plan.ns.netdev_sync = bool(plan.ns.net_devices)
    from .plan_rootfs import rootfs

    rootfs(
        plan,
        config,
        linux,
        bundle,
        new,
        host.is_dir,
        host.cgroups,
        problems,
        host.is_nodev,
        host.is_proc_root,
    )
    if "mount" not in new and all(t != NAMESPACES["mount"] for _, t in plan.ns.joins):
        # No mount namespace: runc makes the mounts in its own and chroots; so do we, without
        # touching the propagation of the runtime's mounts (the runtime-tools program
        # linux_ns_itype runs such a config). delete unmounts them again. (A joined mount
        # namespace gets the rootfs set up in it, as runc does: runtime-tools' linux_ns_path
        # joins one that `unshare --mount` made.)
        plan.rootfs.host_mount_ns = True
        plan.rootfs.root_propagation = plan.rootfs.root_propagation_end = 0
        plan.rootfs.rootfs_parent_unshared = False
    elif plan.rootfs.no_pivot:
        inside = plan.rootfs.path.rstrip("/") + "/"
        plan.rootfs.hide_before_move = [
            m for m in host.proc_sys_mounts() if not (m + "/").startswith(inside)
        ]
    # runc creates a missing cwd while it sets up the rootfs.
    plan.process.make_cwd = plan.rootfs.setup_rootfs
    _security(plan, host, linux.get("seccomp"), config.get("mounts") or [], problems)
    _unsupported(config, linux, problems)
    if problems:
        raise ConfigError(problems)
    plan.freeze()
    return plan


def _unsupported(config: dict, linux: dict, problems: list[str]) -> None:
    """What ocirun can't do yet is an error, never silently skipped."""
    if linux.get("intelRdt"):
        problems.append("/linux/intelRdt: not supported by ocirun yet")


def _security(
    plan: Plan, host: HostFacts, seccomp: dict | None, mounts: list[dict], problems: list[str]
) -> None:
    """The seccomp filter and when it is loaded, the route to the trampoline, --debug."""
    plan.security.exec_route, why = exec_route(seccomp, mounts, problems)
    if why:  # the same sealed trampoline, reached another way: nothing dropped
        plan.notes.append(why)
    if host.seccomp is not None:
        plan.security.seccomp_bpf, plan.security.seccomp_flags = (
            host.seccomp.bpf,
            host.seccomp.flags,
        )
        plan.security.seccomp_when = seccomp_when(plan.security.no_new_privs, host.seccomp.notify)
    plan.security.exec_check, why = exec_check(seccomp, plan.security.seccomp_when, host.faccessat2)
    if why:
        plan.notes.append(why)
    plan.trace = host.trace


def build_exec(
    process: dict,
    joins: list[tuple[str, int]],
    opts: Options | None = None,
    host: HostFacts | None = None,
    *,
    seccomp: dict | None = None,
    mounts: list[dict] | None = None,
    personality: dict | None = None,
    memory_policy: dict | None = None,
) -> Plan:
    """The plan of a process joining a running container: its namespaces (`joins`, as
    (path, CLONE_NEW*), the caller having left out those we already share), no rootfs work,
    the process's own settings; `seccomp` and `mounts` are the container's config's (the
    route to the trampoline depends on them), and so are `personality` and `memory_policy`
    (linux.personality, linux.memoryPolicy: every process of the container gets them, as
    runc gives them)."""
    opts = opts or Options()
    host = host or HostFacts()
    plan = Plan(
        new_keyring=not opts.no_new_keyring, preserve_fds=opts.preserve_fds + opts.listen_fds
    )
    plan.cgroup_sync = opts.cgroups
    plan.ns.joins = sorted(joins, key=lambda j: j[1] != NAMESPACES["user"])
    joined = {t for _, t in plan.ns.joins}
    # setns into a pid or time namespace applies to our children: the process is one fork on.
    plan.ns.fork_after = bool({NAMESPACES["pid"], NAMESPACES["time"]} & joined)
    plan_process(plan, process, host.cap_bounding)
    plan_personality(plan, {"personality": personality} if personality else {})
    plan_memory_policy(plan, {"memoryPolicy": memory_policy} if memory_policy else {})
    if host.setgroups_denied:  # a rootless container mapping only the caller's gid
        if plan.process.groups:
            raise OcirunError(
                "cannot set any additional groups in a rootless container "
                "(setgroups is denied in its user namespace)"
            )
        plan.process.keep_groups = True
    problems: list[str] = []
    _security(plan, host, seccomp, mounts or [], problems)
    if problems:
        raise ConfigError(problems)
    plan.freeze()
    return plan
