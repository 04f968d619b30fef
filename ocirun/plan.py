"""spec -> plan: every decision about the container's init, made here, in pure Python.

`build()` reads a validated config (a dict) and returns a `Plan` whose fields map one to one
onto `struct ocirun_plan` (csrc/ocirun.h). It does no I/O: what it needs to know about the host
(is a bind source a directory? how are cgroups mounted?) comes in as arguments, so every
choice here is unit-testable without root. The rootfs part (mounts, /dev, symlinks) is
planned in `plan_rootfs`.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # `typing` itself costs ~2 ms to import

from .defaults import DEFAULT_PATH
from .errors import ConfigError
from .plan_security import (  # noqa: F401 (the plan's constants, by their usual name)
    EXEC_EXECVEAT,
    EXEC_PROC_FD,
    SECCOMP_EARLY,
    SECCOMP_LAST,
    SECCOMP_NONE,
    SECCOMP_READY,
    exec_route,
    seccomp_when,
)
from .tables import (
    CAPS,
    MS_REC,
    MS_SLAVE,
    NAMESPACES,
    RLIMITS,
    SIGNALS,
)

MNT_DIR, MNT_FILE = 0, 1

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

ALL_CAPS = (1 << 64) - 1  # a capability mask with every bit set

WAIT_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTERM")


class _Record:
    """A plain record: keyword construction, equality and repr (dataclasses costs ~6 ms to
    import, on every call of the runtime)."""

    __slots__ = ()

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({args})"


class Mount(_Record):
    __slots__ = (
        "target",
        "source",
        "fstype",
        "data",
        "flags",
        "remount",
        "propagation",
        "kind",
        "copyup",
        "detached",
        "moved_propagation",
        "attr_set",
        "attr_clr",
        "idmap",
        "idmap_recursive",
    )

    def __init__(
        self,
        target: str,
        source: str | None,
        fstype: str | None,
        data: str | None = None,
        flags: int = 0,
        remount: int = 0,
        propagation: int = 0,
        kind: int = MNT_DIR,
        copyup: bool = False,
        detached: bool = False,
        moved_propagation: int = 0,
        attr_set: int = 0,
        attr_clr: int = 0,
        idmap: tuple[str, str] | None = None,
        idmap_recursive: bool = False,
    ):
        self.target, self.source, self.fstype, self.data = target, source, fstype, data
        self.flags, self.remount, self.propagation, self.kind = flags, remount, propagation, kind
        self.copyup = copyup  # tmpcopyup: the tmpfs starts with what the image had there
        # a bind whose source the runtime copies (open_tree) before the clone, in the host's
        # namespaces: a container in a user namespace may not be able to reach it (runc)
        self.detached = detached
        # applied to a detached copy right after it is attached: what the mounts copied
        # into the container's namespace got from the root propagation
        self.moved_propagation = moved_propagation
        # recursive attributes (rro, rnosuid, ...): mount_setattr(AT_RECURSIVE) once mounted
        self.attr_set, self.attr_clr = attr_set, attr_clr
        # idmapped mount: (uid_map, gid_map) of the user namespace whose mapping the runtime
        # gives the detached copy (mount_setattr MOUNT_ATTR_IDMAP), recursively for ridmap
        self.idmap, self.idmap_recursive = idmap, idmap_recursive


class Device(_Record):
    __slots__ = ("path", "mode", "dev", "uid", "gid", "host_path")

    def __init__(
        self,
        path: str,
        mode: int,
        dev: int,
        uid: int = 0,
        gid: int = 0,
        host_path: str | None = None,
    ):
        self.path, self.mode, self.dev = path, mode, dev
        self.uid, self.gid, self.host_path = uid, gid, host_path


class CgroupLayout(_Record):
    """How the host mounts cgroups: v1 hierarchies (dir name, mount options) and/or v2."""

    __slots__ = ("v1", "unified", "dirs")

    def __init__(
        self,
        v1: list[tuple[str, str]] | None = None,
        unified: bool = False,
        dirs: dict[str, str] | None = None,
    ):
        self.v1 = list(v1 or [])
        self.unified = unified
        # the container's own cgroup dir per subsystem ("" = cgroup2), as the manager plans it
        self.dirs = dict(dirs or {})


class Options(_Record):
    """What the command line adds to the config."""

    __slots__ = ("no_pivot", "no_new_keyring", "preserve_fds", "listen_fds", "cgroups")

    def __init__(
        self,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
        listen_fds: int = 0,
        cgroups: bool = False,
    ):
        self.no_pivot, self.no_new_keyring, self.preserve_fds = (
            no_pivot,
            no_new_keyring,
            preserve_fds,
        )
        self.cgroups = cgroups  # the runtime manages the container's cgroups
        # LISTEN_FDS from the runtime's environment (socket activation): passed on
        self.listen_fds = listen_fds


class Plan:
    """The init's whole programme; one attribute per field of struct ocirun_plan."""

    def __init__(self, no_pivot: bool = False, new_keyring: bool = True, preserve_fds: int = 0):
        # namespaces
        self.cgroup_sync = False  # the parent moves the child into its cgroups first
        self.clone_flags = 0
        self.joins: list[tuple[str, int]] = []  # (path, CLONE_NEW*)
        self.unshare_flags = 0
        self.fork_after = False
        self.userns_sync = False
        self.uid_map = ""
        self.gid_map = ""
        self.idmaps = None  # rootless.IdMaps: how a non-root caller writes the maps
        self.timens_offsets: str | None = None
        self.loopback_up = False
        # linux.netDevices (plan_netdevices.NetDevice): the init stops once its network
        # namespace exists, for the parent to move them in (netdevices.py)
        self.net_devices: list = []
        self.netdev_sync = False
        # hooks run by the init: (path, argv, envp, timeout)
        self.hooks_sync = False
        self.create_hooks: list[tuple[str, list[str], list[str], int]] = []
        self.start_hooks: list[tuple[str, list[str], list[str], int]] = []
        # rootfs
        self.setup_rootfs = False
        # stdio on the host's /dev/null is reopened on the container's (plan_rootfs)
        self.reopen_dev_null = False
        self.rootfs = ""
        self.root_propagation = MS_SLAVE | MS_REC
        self.root_propagation_end = 0
        self.rootfs_parent_unshared = True  # as runc (rootfsParentMountPrivate)
        self.rootfs_readonly = False
        self.no_pivot = no_pivot
        # no mount namespace of its own: mounts in the runtime's, chroot (as runc)
        self.host_mount_ns = False
        self.mounts: list[Mount] = []
        self.devices: list[Device] = []
        self.symlinks: list[tuple[str, str]] = []  # (target, link path)
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        # kernel settings
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.sysctls: list[tuple[str, str]] = []  # (/proc/sys/... path, value)
        self.oom_score_adj: str | None = None
        # process
        self.argv: list[str] = []
        self.envp: list[str] = []
        self.path_env = ""  # where argv[0] is looked up
        self.home_from_passwd = False  # no HOME in process.env: the init looks it up
        self.cwd = "/"
        self.make_cwd = False  # create a missing cwd in the rootfs (runc does)
        self.uid = 0
        self.gid = 0
        self.groups: list[int] = []
        self.keep_groups = False  # setgroups is denied (rootless): leave the groups alone
        self.umask = 0o022
        self.rlimits: list[tuple[int, int, int]] = []
        self.no_new_privs = False
        self.apply_caps = False
        self.caps: dict[str, int] = {}  # set name -> bit mask
        # what the runtime must log as warnings (capabilities it cannot grant, ...)
        self.warnings: list[str] = []
        self.notes: list[str] = []  # decisions worth a debug line (nothing lost)
        self.new_keyring = new_keyring
        self.personality = -1
        self.ioprio = -1
        self.sched: tuple | None = (
            None  # (policy, nice, priority, flags, runtime, deadline, period)
        )
        self.cpu_initial: bytes | None = None  # sched_setaffinity masks
        self.cpu_final: bytes | None = None
        self.mempolicy: tuple[int, bytes] | None = None  # (mode | flags, node mask)
        self.seccomp_when = SECCOMP_NONE
        self.seccomp_bpf = b""  # struct sock_filter[]
        self.seccomp_flags = 0
        self.preserve_fds = preserve_fds
        self.trace = False  # --debug: the init reports its phase times
        # While the init waits for `start` it is pid 1 of its namespace, which ignores every
        # signal left at its default action: these end it, so `kill ID TERM` works on a
        # created container as with runc (whose waiting init is a Go program).
        self.wait_signals = sum(1 << SIGNALS[s] for s in WAIT_SIGNALS)
        # The process is exec'd through a sealed trampoline, so that /proc/self/exe never
        # leads the container to the runtime's own binary (CVE-2019-5736); this is how the
        # init reaches it (plan_security.exec_route).
        self.exec_route = EXEC_EXECVEAT
        self.terminal = False
        self.console_rows = 0
        self.console_cols = 0


def build(
    config: dict,
    bundle: str,
    opts: Options | None = None,
    *,
    is_dir: Callable[[str], bool] = os.path.isdir,
    cgroups: CgroupLayout | None = None,
    cap_bounding: int = ALL_CAPS,
) -> Plan:
    opts = opts or Options()
    linux = config.get("linux") or {}
    plan = Plan(
        no_pivot=opts.no_pivot,
        new_keyring=not opts.no_new_keyring,
        preserve_fds=opts.preserve_fds + opts.listen_fds,
    )
    plan.cgroup_sync = opts.cgroups
    problems: list[str] = []
    new = _namespaces(plan, linux)
    _process(plan, config["process"], cap_bounding)
    if os.geteuid() != 0:
        from .rootless import plan_rootless

        plan_rootless(
            plan, linux, config.get("mounts") or [], new, joined_types(plan.joins), problems
        )
    if opts.listen_fds:
        # Socket activation, as runc: the fds follow fds 3.., and the process is pid 1.
        plan.envp = [e for e in plan.envp if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
        plan.envp += [f"LISTEN_FDS={opts.listen_fds}", "LISTEN_PID=1"]
    _hooks(plan, config.get("hooks") or {})
    _memory_policy(plan, linux)
    _personality(plan, linux)
    _kernel_settings(plan, config, linux, new, problems)
    if linux.get("netDevices"):
        from .plan_netdevices import plan_devices

        plan.net_devices = plan_devices(
            linux["netDevices"], new, joined_types(plan.joins), problems
        )
        plan.netdev_sync = bool(plan.net_devices)
    if "mount" in new or any(t == NAMESPACES["mount"] for _, t in plan.joins):
        # A joined mount namespace gets the rootfs set up in it too, as runc does (the
        # runtime-tools program linux_ns_path joins one that `unshare --mount` made).
        # here, not at the top: plan_rootfs imports Mount and Device from this module
        from .plan_rootfs import rootfs

        rootfs(plan, config, linux, bundle, new, is_dir, cgroups or CgroupLayout(), problems)
    else:
        # No mount namespace: runc makes the mounts in its own and chroots; so do we, without
        # touching the propagation of the runtime's mounts (the runtime-tools program
        # linux_ns_itype runs such a config). delete unmounts them again.
        from .plan_rootfs import rootfs

        rootfs(plan, config, linux, bundle, new, is_dir, cgroups or CgroupLayout(), problems)
        plan.host_mount_ns = True
        plan.root_propagation = plan.root_propagation_end = 0
        plan.rootfs_parent_unshared = False
    # runc creates a missing cwd while it sets up the rootfs.
    plan.make_cwd = plan.setup_rootfs
    _exec_route(plan, linux.get("seccomp"), config.get("mounts") or [], problems)
    _unsupported(config, linux, problems)
    if problems:
        raise ConfigError(problems)
    return plan


def _unsupported(config: dict, linux: dict, problems: list[str]) -> None:
    """What ocirun can't do yet is an error, never silently skipped."""
    if linux.get("intelRdt"):
        problems.append("/linux/intelRdt: not supported by ocirun yet")


def _exec_route(plan: Plan, seccomp: dict | None, mounts: list[dict], problems: list[str]) -> None:
    plan.exec_route, why = exec_route(seccomp, mounts, problems)
    if why:
        plan.warnings.append(why)


def set_seccomp(plan: Plan, bpf: bytes, flags: int, notify: bool) -> None:
    """Hand the compiled filter to the plan and choose when the init loads it."""
    plan.seccomp_bpf, plan.seccomp_flags = bpf, flags
    plan.seccomp_when = seccomp_when(plan.no_new_privs, notify)


def build_exec(
    process: dict,
    joins: list[tuple[str, int]],
    opts: Options | None = None,
    cap_bounding: int = ALL_CAPS,
    *,
    seccomp: dict | None = None,
    mounts: list[dict] | None = None,
) -> Plan:
    """The plan of a process joining a running container: its namespaces (`joins`, as
    (path, CLONE_NEW*), the caller having left out those we already share), no rootfs work,
    the process's own settings; `seccomp` and `mounts` are the container's (the route to
    the trampoline depends on them)."""
    opts = opts or Options()
    plan = Plan(
        new_keyring=not opts.no_new_keyring, preserve_fds=opts.preserve_fds + opts.listen_fds
    )
    plan.cgroup_sync = opts.cgroups
    plan.joins = sorted(joins, key=lambda j: j[1] != NAMESPACES["user"])
    joined = {t for _, t in plan.joins}
    # setns into a pid or time namespace applies to our children: the process is one fork on.
    plan.fork_after = bool({NAMESPACES["pid"], NAMESPACES["time"]} & joined)
    _process(plan, process, cap_bounding)
    problems: list[str] = []
    _exec_route(plan, seccomp, mounts or [], problems)
    if problems:
        raise ConfigError(problems)
    return plan


def _copy_json(value):
    """A deep copy of parsed JSON (dicts, lists, scalars); copy.deepcopy costs ~1 ms to
    import on exec's hot path."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def exec_process(
    base: dict,
    args: list[str],
    *,
    env: Sequence[str] = (),
    cwd: str | None = None,
    user: str | None = None,
    additional_gids: Sequence[int] = (),
    caps: Sequence[str] = (),
    no_new_privs: bool = False,
    tty: bool = False,
) -> dict:
    """The process `exec` runs without --process: the container's, with the flags on top
    (runc's rules: -e overrides by name, --cap adds to bounding/effective/permitted)."""
    from .errors import UsageError

    proc = _copy_json(base)
    proc["args"] = list(args)
    proc["terminal"] = tty
    if env:
        names = {e.split("=", 1)[0] for e in env}
        proc["env"] = [e for e in proc.get("env") or [] if e.split("=", 1)[0] not in names]
        proc["env"] += list(env)
    if cwd:
        proc["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"invalid --user {user!r}: use UID[:GID] (numbers)")
        proc["user"] = dict(proc.get("user") or {}, uid=int(uid))
        if gid:
            proc["user"]["gid"] = int(gid)
    if additional_gids:
        proc.setdefault("user", {})["additionalGids"] = [int(g) for g in additional_gids]
    if caps:
        sets = proc.setdefault("capabilities", {})
        for name in ("bounding", "effective", "permitted"):
            have = sets.setdefault(name, [])
            have += [c for c in caps if c not in have]
    if no_new_privs:
        proc["noNewPrivileges"] = True
    return proc


# --- namespaces ---------------------------------------------------------------------------


def _namespaces(plan: Plan, linux: dict) -> set[str]:
    new: set[str] = set()
    joins: list[tuple[str, int]] = []
    for ns in linux.get("namespaces") or []:
        if ns.get("path"):
            joins.append((ns["path"], NAMESPACES[ns["type"]]))
        else:
            new.add(ns["type"])
    # A joined user namespace goes first: it owns (and so grants us power over) the rest.
    joins.sort(key=lambda j: j[1] != NAMESPACES["user"])
    plan.joins = joins
    flags = 0
    for t in new:
        flags |= NAMESPACES[t]
    joined = {t for _, t in joins}
    if not joins and "time" not in new:
        # Everything new: clone(2) creates it all, and the child is already the init.
        plan.clone_flags = flags
    else:
        # Joins come first (setns), then unshare; pid and time namespaces entered that way
        # hold only our children, so the init is one fork further.
        plan.unshare_flags = flags
        plan.fork_after = bool(
            {"pid", "time"} & new or {NAMESPACES["pid"], NAMESPACES["time"]} & joined
        )
    plan.userns_sync = "user" in new
    if plan.userns_sync:
        plan.uid_map = idmap_text(linux.get("uidMappings") or [])
        plan.gid_map = idmap_text(linux.get("gidMappings") or [])
    elif "user" not in joined_types(joins) and (
        linux.get("uidMappings") or linux.get("gidMappings")
    ):
        plan.warnings.append(
            "ignoring uidMappings/gidMappings: the container has no user namespace of its own"
        )
    if linux.get("timeOffsets") and "time" not in new:
        plan.warnings.append("ignoring timeOffsets: the container has no time namespace of its own")
    if "time" in new and linux.get("timeOffsets"):
        plan.timens_offsets = "".join(
            f"{clock} {int(off.get('secs', 0))} {int(off.get('nanosecs', 0))}\n"
            for clock, off in sorted(linux["timeOffsets"].items())
        )
    plan.loopback_up = "network" in new
    if plan.cgroup_sync and "cgroup" in new and plan.clone_flags & NAMESPACES["cgroup"]:
        # The parent places the child in its cgroups after clone: a cgroup namespace made by
        # clone would be rooted in the runtime's cgroup, so unshare it after the placement.
        plan.clone_flags &= ~NAMESPACES["cgroup"]
        plan.unshare_flags |= NAMESPACES["cgroup"]
    return new


def joined_types(joins: list[tuple[str, int]]) -> set[str]:
    flags = {flag for _, flag in joins}
    return {name for name, flag in NAMESPACES.items() if flag in flags}


def idmap_text(mappings: list[dict]) -> str:
    """linux.uidMappings-style entries as /proc/<pid>/uid_map text."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


# --- process ------------------------------------------------------------------------------


def _process(plan: Plan, proc: dict, cap_bounding: int = ALL_CAPS) -> None:
    plan.argv = list(proc["args"])
    plan.envp = list(proc.get("env") or [])
    # argv[0] is looked up in process.env's PATH, else in the default one (as runc's Go).
    plan.path_env = DEFAULT_PATH[len("PATH=") :]
    for kv in plan.envp:
        if kv.startswith("PATH="):
            plan.path_env = kv[5:]
    # As runc and crun: HOME from the container's /etc/passwd, read by the init (the file
    # is the one the container sees, after its mounts).
    plan.home_from_passwd = not any(kv.startswith("HOME=") for kv in plan.envp)
    plan.cwd = proc.get("cwd") or "/"
    user = proc.get("user") or {}
    plan.uid = int(user.get("uid", 0))
    plan.gid = int(user.get("gid", 0))
    plan.groups = [int(g) for g in user.get("additionalGids") or []]
    if user.get("umask") is not None:
        plan.umask = int(user["umask"]) & 0o777  # all umask(2) takes of it (as runc)
    plan.rlimits = [
        (RLIMITS[r["type"]], int(r["soft"]), int(r["hard"])) for r in proc.get("rlimits") or []
    ]
    plan.no_new_privs = bool(proc.get("noNewPrivileges"))
    plan.terminal = bool(proc.get("terminal"))
    size = proc.get("consoleSize") or {}
    plan.console_rows, plan.console_cols = int(size.get("height", 0)), int(size.get("width", 0))
    if proc.get("oomScoreAdj") is not None:
        plan.oom_score_adj = str(int(proc["oomScoreAdj"]))
    _scheduling(plan, proc)
    caps = proc.get("capabilities")
    if caps is not None:
        # As runc: with no capabilities object the process keeps what it inherits.
        plan.apply_caps = True
        plan.caps = _capabilities(caps, cap_bounding, plan.warnings)


def _cap_names(mask: int) -> str:
    return ", ".join(n for n, bit in CAPS.items() if mask >> bit & 1)


def _capabilities(caps: dict, bounding: int, warnings: list[str]) -> dict[str, int]:
    """The five sets as bit masks. What cannot be granted is left out with a warning, not a
    failure (runtime-spec config.md; runc): unknown names, capabilities outside the
    runtime's own bounding set (`bounding`), and ambient ones missing from permitted or
    inheritable (runc spec's default lists three such), which the kernel refuses to raise."""
    masks, unknown = {}, []
    for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        mask = 0
        for c in caps.get(name) or []:
            if c in CAPS:
                mask |= 1 << CAPS[c]
            elif c not in unknown:
                unknown.append(c)
        masks[name] = mask
    if unknown:
        warnings.append(f"ignoring unknown capabilities: {', '.join(unknown)}")
    missing = 0
    for name, mask in masks.items():
        missing |= mask & ~bounding
        masks[name] = mask & bounding
    if missing:
        warnings.append(
            "ignoring capabilities outside the runtime's bounding set: " + _cap_names(missing)
        )
    raisable = masks["ambient"] & masks["permitted"] & masks["inheritable"]
    if masks["ambient"] != raisable:
        warnings.append(
            "ignoring ambient capabilities that are not both permitted and "
            "inheritable: " + _cap_names(masks["ambient"] & ~raisable)
        )
        masks["ambient"] = raisable
    return masks


def cpu_mask(spec: str) -> bytes:
    """A cpu_set_t for a list like "0-3,6" (runtime-spec execCPUAffinity)."""
    cpus: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    size = max(8, (max(cpus, default=0) // 64 + 1) * 8)
    mask = bytearray(size)
    for c in cpus:
        mask[c // 8] |= 1 << (c % 8)
    return bytes(mask)


# Without execCPUAffinity.final the process may run on every CPU its cgroup allows, not just
# where the runtime happened to be pinned (runc >= 1.3.1); the kernel trims to the cpuset.
ALL_CPUS = b"\xff" * 128


def _scheduling(plan: Plan, proc: dict) -> None:
    from .tables import IOPRIO_CLASS_SHIFT, IOPRIO_CLASSES, SCHED_FLAGS, SCHED_POLICIES

    sched = proc.get("scheduler")
    if sched:
        flags = 0
        for f in sched.get("flags") or []:
            flags |= SCHED_FLAGS[f]
        plan.sched = (
            SCHED_POLICIES[sched["policy"]],
            int(sched.get("nice", 0)),
            int(sched.get("priority", 0)),
            flags,
            int(sched.get("runtime", 0)),
            int(sched.get("deadline", 0)),
            int(sched.get("period", 0)),
        )
    io = proc.get("ioPriority")
    if io:
        plan.ioprio = IOPRIO_CLASSES[io["class"]] << IOPRIO_CLASS_SHIFT | int(io.get("priority", 0))
    aff = proc.get("execCPUAffinity") or {}
    if aff.get("initial"):
        plan.cpu_initial = cpu_mask(aff["initial"])
    plan.cpu_final = cpu_mask(aff["final"]) if aff.get("final") else ALL_CPUS


def _personality(plan: Plan, linux: dict) -> None:
    """linux.personality (runtime-spec: linux's, not process's; flags: none defined yet)."""
    pers = linux.get("personality")
    if pers:
        from .tables import PERSONALITIES

        plan.personality = PERSONALITIES[pers["domain"]]


def _memory_policy(plan: Plan, linux: dict) -> None:
    from .tables import MPOL_FLAGS, MPOL_MODES

    mp = linux.get("memoryPolicy")
    if not mp:
        return
    mode = MPOL_MODES[mp["mode"]]
    for f in mp.get("flags") or []:
        mode |= MPOL_FLAGS[f]
    nodes = mp.get("nodes") or ""
    plan.mempolicy = (mode, cpu_mask(nodes) if nodes else b"")


# --- hooks --------------------------------------------------------------------------------


def _hooks(plan: Plan, hooks: dict) -> None:
    def entries(kind: str):
        return [
            (
                h["path"],
                list(h.get("args") or [h["path"]]),
                list(h.get("env") or []),
                int(h.get("timeout") or 0),
            )
            for h in hooks.get(kind) or []
        ]

    plan.create_hooks = entries("createContainer")
    plan.start_hooks = entries("startContainer")
    # The init stops before pivot_root so that the parent can run prestart/createRuntime
    # and fill in the state the init's own hooks read on stdin.
    plan.hooks_sync = any(
        hooks.get(k) for k in ("prestart", "createRuntime", "createContainer", "startContainer")
    )


# --- hostname, sysctls ------------------------------------------------------------------


def _kernel_settings(
    plan: Plan, config: dict, linux: dict, new: set[str], problems: list[str]
) -> None:
    joined_uts = any(t == NAMESPACES["uts"] for _, t in plan.joins)
    for key in ("hostname", "domainname"):
        value = config.get(key)
        if value is None:
            continue
        if "uts" not in new and not joined_uts:
            problems.append(f"/{key}: setting it needs a new or joined uts namespace")
        setattr(plan, key, value)
    ours = new | {t for t, flag in NAMESPACES.items() if flag in {f for _, f in plan.joins}}
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
        plan.sysctls.append((path, str(value)))


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
