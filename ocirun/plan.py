"""spec -> plan: every decision about the container's init, made here, in pure Python.

`build()` reads a validated config (a dict) and returns a `Plan` whose fields map one to one
onto `struct ocirun_plan` (csrc/ocirun.h). It does no I/O: what it needs to know about the host
(is a bind source a directory? how are cgroups mounted?) comes in as arguments, so every
choice here is unit-testable without root.
"""

from __future__ import annotations

import os
import posixpath
TYPE_CHECKING = False  # `typing` itself costs ~2 ms to import

from .errors import ConfigError
from .tables import (
    CAPS,
    MOUNT_FLAGS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_SLAVE,
    MS_STRICTATIME,
    NAMESPACES,
    PROPAGATION,
    RLIMITS,
    SIGNALS,
)

MNT_DIR, MNT_FILE = 0, 1
# when the init loads its seccomp filter (csrc/ocirun.h OCIRUN_SECCOMP_*)
SECCOMP_NONE, SECCOMP_EARLY, SECCOMP_READY, SECCOMP_LAST = 0, 1, 2, 3
S_IFCHR, S_IFBLK, S_IFIFO = 0o020000, 0o060000, 0o010000

# What runc gives every container in /dev, unless linux.devices names the same path.
DEFAULT_DEVICES = (
    ("/dev/null", "c", 1, 3),
    ("/dev/zero", "c", 1, 5),
    ("/dev/full", "c", 1, 7),
    ("/dev/tty", "c", 5, 0),
    ("/dev/random", "c", 1, 8),
    ("/dev/urandom", "c", 1, 9),
)
DEFAULT_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)
if TYPE_CHECKING:
    from typing import Callable

WAIT_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTERM")

# Flags a read-only (or otherwise restricted) bind needs a second, remount call for.
_REMOUNT_MASK = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC


class _Record:
    """A plain record: keyword construction, equality and repr (dataclasses costs ~6 ms to
    import, on every call of the runtime)."""

    __slots__ = ()

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({args})"


class Mount(_Record):
    __slots__ = ("target", "source", "fstype", "data", "flags", "remount", "propagation", "kind",
                 "copyup")

    def __init__(self, target: str, source: str | None, fstype: str | None,
                 data: str | None = None, flags: int = 0, remount: int = 0,
                 propagation: int = 0, kind: int = MNT_DIR, copyup: bool = False):
        self.target, self.source, self.fstype, self.data = target, source, fstype, data
        self.flags, self.remount, self.propagation, self.kind = flags, remount, propagation, kind
        self.copyup = copyup  # tmpcopyup: the tmpfs starts with what the image had there


class Device(_Record):
    __slots__ = ("path", "mode", "dev", "uid", "gid", "host_path")

    def __init__(self, path: str, mode: int, dev: int, uid: int = 0, gid: int = 0,
                 host_path: str | None = None):
        self.path, self.mode, self.dev = path, mode, dev
        self.uid, self.gid, self.host_path = uid, gid, host_path


class CgroupLayout(_Record):
    """How the host mounts cgroups: v1 hierarchies (dir name, mount options) and/or v2."""

    __slots__ = ("v1", "unified", "dirs")

    def __init__(self, v1: list[tuple[str, str]] | None = None, unified: bool = False,
                 dirs: dict[str, str] | None = None):
        self.v1 = list(v1 or [])
        self.unified = unified
        # the container's own cgroup dir per subsystem ("" = cgroup2), as the manager plans it
        self.dirs = dict(dirs or {})


class Options(_Record):
    """What the command line adds to the config."""

    __slots__ = ("no_pivot", "no_new_keyring", "preserve_fds", "listen_fds", "cgroups")

    def __init__(self, no_pivot: bool = False, no_new_keyring: bool = False,
                 preserve_fds: int = 0, listen_fds: int = 0, cgroups: bool = False):
        self.no_pivot, self.no_new_keyring, self.preserve_fds = (
            no_pivot, no_new_keyring, preserve_fds)
        self.cgroups = cgroups  # the runtime manages the container's cgroups
        # LISTEN_FDS from the runtime's environment (socket activation): passed on
        self.listen_fds = listen_fds


class Plan:
    """The init's whole programme; one attribute per field of struct ocirun_plan."""

    def __init__(self, no_pivot: bool = False, new_keyring: bool = True,
                 preserve_fds: int = 0):
        # namespaces
        self.cgroup_sync = False  # the parent moves the child into its cgroups first
        self.clone_flags = 0
        self.joins: list[tuple[str, int]] = []  # (path, CLONE_NEW*)
        self.unshare_flags = 0
        self.fork_after = False
        self.userns_sync = False
        self.uid_map = ""
        self.gid_map = ""
        self.timens_offsets: str | None = None
        self.loopback_up = False
        # hooks run by the init: (path, argv, envp, timeout)
        self.hooks_sync = False
        self.create_hooks: list[tuple[str, list[str], list[str], int]] = []
        self.start_hooks: list[tuple[str, list[str], list[str], int]] = []
        # rootfs
        self.setup_rootfs = False
        self.rootfs = ""
        self.root_propagation = MS_SLAVE | MS_REC
        self.root_propagation_end = 0
        self.rootfs_parent_unshared = True  # as runc (rootfsParentMountPrivate)
        self.rootfs_readonly = False
        self.no_pivot = no_pivot
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
        self.path_env: str | None = None
        self.cwd = "/"
        self.uid = 0
        self.gid = 0
        self.groups: list[int] = []
        self.umask = 0o022
        self.rlimits: list[tuple[int, int, int]] = []
        self.no_new_privs = False
        self.apply_caps = False
        self.caps: dict[str, int] = {}  # set name -> bit mask
        self.new_keyring = new_keyring
        self.personality = -1
        self.ioprio = -1
        self.sched: tuple | None = None  # (policy, nice, priority, flags, runtime, deadline, period)
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
        # exec the process through a sealed trampoline, so that /proc/self/exe never leads
        # the container to the runtime's own binary (CVE-2019-5736)
        self.trampoline = True
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
) -> Plan:
    opts = opts or Options()
    linux = config.get("linux") or {}
    plan = Plan(no_pivot=opts.no_pivot, new_keyring=not opts.no_new_keyring,
                preserve_fds=opts.preserve_fds + opts.listen_fds)
    plan.cgroup_sync = opts.cgroups
    problems: list[str] = []
    new = _namespaces(plan, linux)
    _process(plan, config["process"])
    if opts.listen_fds:
        # Socket activation, as runc: the fds follow fds 3.., and the process is pid 1.
        plan.envp = [e for e in plan.envp if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
        plan.envp += [f"LISTEN_FDS={opts.listen_fds}", "LISTEN_PID=1"]
    _hooks(plan, config.get("hooks") or {})
    _memory_policy(plan, linux)
    _kernel_settings(plan, config, linux, new, problems)
    if "mount" in new:
        _rootfs(plan, config, linux, bundle, new, is_dir, cgroups or CgroupLayout(), problems)
    elif not any(t == NAMESPACES["mount"] for _, t in plan.joins):
        problems.append("/linux/namespaces: a mount namespace is required to set up the rootfs")
    _unsupported(config, linux, problems)
    if problems:
        raise ConfigError(problems)
    return plan


# Recursive mount attributes (mount_setattr) and idmapped mounts: not done yet, so refused
# rather than passed to mount(2) as data or ignored.
_RECURSIVE = frozenset(("rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
                        "rnoatime", "ratime", "rrelatime", "rnorelatime", "rstrictatime",
                        "rnostrictatime", "rnosymfollow", "rsymfollow", "rnodiratime",
                        "rdiratime", "idmap", "ridmap"))


def _unsupported(config: dict, linux: dict, problems: list[str]) -> None:
    """What ocirun can't do yet is an error, never silently skipped."""
    for key in ("netDevices", "intelRdt"):
        if linux.get(key):
            problems.append(f"/linux/{key}: not supported by ocirun yet")
    for i, m in enumerate(config.get("mounts") or []):
        for key in ("uidMappings", "gidMappings"):
            if m.get(key):
                problems.append(f"/mounts/{i}/{key}: idmapped mounts are not supported yet")
        for j, opt in enumerate(m.get("options") or []):
            if opt in _RECURSIVE:
                problems.append(f"/mounts/{i}/options/{j}: {opt!r} is not supported yet")


def set_seccomp(plan: Plan, bpf: bytes, flags: int, notify: bool) -> None:
    """Hand the compiled filter to the plan and choose when the init loads it (runc's order):
    without no_new_privs loading needs CAP_SYS_ADMIN, so it goes before the credentials; a
    notify listener must reach the runtime before READY; otherwise as late as possible."""
    plan.seccomp_bpf, plan.seccomp_flags = bpf, flags
    if not plan.no_new_privs:
        plan.seccomp_when = SECCOMP_EARLY
    elif notify:
        plan.seccomp_when = SECCOMP_READY
    else:
        plan.seccomp_when = SECCOMP_LAST


def build_exec(process: dict, joins: list[tuple[str, int]], opts: Options | None = None) -> Plan:
    """The plan of a process joining a running container: its namespaces (`joins`, as
    (path, CLONE_NEW*), the caller having left out those we already share), no rootfs work,
    the process's own settings."""
    opts = opts or Options()
    plan = Plan(new_keyring=not opts.no_new_keyring,
                preserve_fds=opts.preserve_fds + opts.listen_fds)
    plan.cgroup_sync = opts.cgroups
    plan.joins = sorted(joins, key=lambda j: j[1] != NAMESPACES["user"])
    joined = {t for _, t in plan.joins}
    # setns into a pid or time namespace applies to our children: the process is one fork on.
    plan.fork_after = bool({NAMESPACES["pid"], NAMESPACES["time"]} & joined)
    _process(plan, process)
    return plan


def _copy_json(value):
    """A deep copy of parsed JSON (dicts, lists, scalars); copy.deepcopy costs ~1 ms to
    import on exec's hot path."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def exec_process(base: dict, args: list[str], *, env: list[str] = (), cwd: str | None = None,
                 user: str | None = None, additional_gids: list[int] = (),
                 caps: list[str] = (), no_new_privs: bool = False, tty: bool = False) -> dict:
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
        plan.uid_map = _idmap(linux.get("uidMappings") or [])
        plan.gid_map = _idmap(linux.get("gidMappings") or [])
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


def _idmap(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


# --- process ------------------------------------------------------------------------------

def _process(plan: Plan, proc: dict) -> None:
    plan.argv = list(proc["args"])
    plan.envp = list(proc.get("env") or [])
    for kv in plan.envp:
        if kv.startswith("PATH="):
            plan.path_env = kv[5:]
    plan.cwd = proc.get("cwd") or "/"
    user = proc.get("user") or {}
    plan.uid = int(user.get("uid", 0))
    plan.gid = int(user.get("gid", 0))
    plan.groups = [int(g) for g in user.get("additionalGids") or []]
    if user.get("umask") is not None:
        plan.umask = int(user["umask"])
    plan.rlimits = [(RLIMITS[r["type"]], int(r["soft"]), int(r["hard"]))
                    for r in proc.get("rlimits") or []]
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
        plan.caps = {
            name: sum(1 << CAPS[c] for c in set(caps.get(name) or []))
            for name in ("bounding", "effective", "permitted", "inheritable", "ambient")
        }


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
    from .tables import (IOPRIO_CLASS_SHIFT, IOPRIO_CLASSES, PERSONALITIES, SCHED_FLAGS,
                         SCHED_POLICIES)

    sched = proc.get("scheduler")
    if sched:
        flags = 0
        for f in sched.get("flags") or []:
            flags |= SCHED_FLAGS[f]
        plan.sched = (SCHED_POLICIES[sched["policy"]], int(sched.get("nice", 0)),
                      int(sched.get("priority", 0)), flags, int(sched.get("runtime", 0)),
                      int(sched.get("deadline", 0)), int(sched.get("period", 0)))
    io = proc.get("ioPriority")
    if io:
        plan.ioprio = IOPRIO_CLASSES[io["class"]] << IOPRIO_CLASS_SHIFT | int(io.get("priority", 0))
    aff = proc.get("execCPUAffinity") or {}
    if aff.get("initial"):
        plan.cpu_initial = cpu_mask(aff["initial"])
    plan.cpu_final = cpu_mask(aff["final"]) if aff.get("final") else ALL_CPUS
    pers = proc.get("personality")
    if pers:
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
        return [(h["path"], list(h.get("args") or [h["path"]]), list(h.get("env") or []),
                 int(h.get("timeout") or 0)) for h in hooks.get(kind) or []]

    plan.create_hooks = entries("createContainer")
    plan.start_hooks = entries("startContainer")
    # The init stops before pivot_root so that the parent can run prestart/createRuntime
    # and fill in the state the init's own hooks read on stdin.
    plan.hooks_sync = any(hooks.get(k) for k in
                          ("prestart", "createRuntime", "createContainer", "startContainer"))


# --- hostname, sysctls ------------------------------------------------------------------

def _kernel_settings(plan: Plan, config: dict, linux: dict, new: set[str],
                     problems: list[str]) -> None:
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
        dotted = path[len("/proc/sys/"):].replace("/", ".")
        ns = _sysctl_namespace(dotted)
        if ns is None:
            problems.append(f"/linux/sysctl/{key}: not in a separate kernel namespace: it "
                            "would change the host")
        elif ns not in ours:
            problems.append(f"/linux/sysctl/{key}: needs a new or joined {ns} namespace: it "
                            "would change the host's")
        plan.sysctls.append((path, str(value)))


# Namespaced sysctls (as runc allows them): the namespace each belongs to.
_IPC_SYSCTLS = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                          "kernel.shm_rmid_forced"))


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


# --- rootfs -------------------------------------------------------------------------------

def _rootfs(plan: Plan, config: dict, linux: dict, bundle: str, new: set[str],
            is_dir: Callable[[str], bool], cgroups: CgroupLayout,
            problems: list[str]) -> None:
    root = config.get("root") or {}
    plan.setup_rootfs = True
    plan.rootfs = posixpath.normpath(posixpath.join(bundle, root.get("path", "rootfs")))
    plan.rootfs_readonly = bool(root.get("readonly"))
    prop = linux.get("rootfsPropagation")
    if prop:
        flag = PROPAGATION[prop]
        if prop in ("shared", "rshared", "unbindable", "runbindable"):
            # pivot_root refuses a shared root: pivot on a slave one, then make it so.
            plan.root_propagation, plan.root_propagation_end = MS_SLAVE | MS_REC, flag
        else:
            plan.root_propagation = flag
    in_userns = "user" in new or any(t == NAMESPACES["user"] for _, t in plan.joins)
    dev_bound = False
    has_devpts = False
    for i, m in enumerate(config.get("mounts") or []):
        dest = m["destination"]
        if not dest.startswith("/"):
            dest = "/" + dest  # relative destinations (1.2) are relative to the root
        dest = posixpath.normpath(dest)
        if m.get("type") == "cgroup":
            plan.mounts.extend(_cgroup_mounts(dest, m.get("options") or [], cgroups,
                                              "cgroup" in new, in_userns))
            continue
        mount = _mount(dest, m, bundle, is_dir, problems, f"/mounts/{i}")
        _check_proc_mount(dest, mount, problems, f"/mounts/{i}")
        if dest == "/dev" and mount.flags & MS_BIND:
            dev_bound = True
        if dest == "/dev/pts" and mount.fstype == "devpts":
            has_devpts = True
        plan.mounts.append(mount)
    if not dev_bound:
        mounted = {m.target for m in plan.mounts}
        _devices(plan, linux, in_userns, mounted)
        plan.symlinks = list(DEFAULT_LINKS)
        if has_devpts:
            plan.symlinks.append(("pts/ptmx", "/dev/ptmx"))
    plan.masked_paths = list(linux.get("maskedPaths") or [])
    plan.readonly_paths = list(linux.get("readonlyPaths") or [])


# Files under /proc a bind may cover (lxcfs's), as runc allows; nothing else under /proc.
_PROC_BINDS = frozenset(("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                         "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
                         "/proc/sys/kernel/ns_last_pid"))


def _check_proc_mount(dest: str, mount: Mount, problems: list[str], where: str) -> None:
    """Only a real procfs at /proc; under it, only binds over lxcfs's files (a bind of a
    host directory at /proc, or a tmpfs over /proc/sys, would hide or fake the kernel's
    interfaces the runtime and the container rely on)."""
    if dest == "/proc":
        if mount.fstype != "proc":
            problems.append(f"{where}/destination: only a proc filesystem may be mounted "
                            "at /proc")
    elif dest.startswith("/proc/") and dest not in _PROC_BINDS:
        problems.append(f"{where}/destination: {dest} is under /proc: not allowed")


def _mount(dest: str, m: dict, bundle: str, is_dir: Callable[[str], bool],
           problems: list[str], where: str) -> Mount:
    flags = propagation = 0
    data: list[str] = []
    copyup = False
    for opt in m.get("options") or []:
        if opt == "tmpcopyup":
            copyup = True
        elif opt in MOUNT_FLAGS:
            set_, clear = MOUNT_FLAGS[opt]
            flags = (flags | set_) & ~clear
        elif opt in PROPAGATION:
            propagation |= PROPAGATION[opt]
        else:
            data.append(opt)
    source = m.get("source")
    if flags & MS_BIND:
        if not source:
            problems.append(f"{where}/source: a bind mount needs a source")
            source = ""
        elif not source.startswith("/"):
            source = posixpath.join(bundle, source)
        kind = MNT_DIR if is_dir(source) else MNT_FILE
        # mount(2) ignores everything but MS_BIND|MS_REC on a bind: the rest is a remount.
        remount = flags & (_REMOUNT_MASK | MS_STRICTATIME)
        return Mount(target=dest, source=source, fstype=None, data=None,
                     flags=flags & (MS_BIND | MS_REC), remount=remount,
                     propagation=propagation, kind=kind)
    fstype = m.get("type") or source or "none"
    if copyup and fstype != "tmpfs":
        problems.append(f"{where}/options: tmpcopyup is for tmpfs mounts")
    return Mount(target=dest, source=source or fstype, fstype=fstype,
                 data=",".join(data) or None, flags=flags, propagation=propagation,
                 copyup=copyup)


def _cgroup_mounts(dest: str, options: list[str], cgroups: CgroupLayout,
                   new_cgroupns: bool, in_userns: bool) -> list[Mount]:
    flags = 0
    for opt in options:
        if opt in MOUNT_FLAGS:
            set_, clear = MOUNT_FLAGS[opt]
            flags = (flags | set_) & ~clear
    flags &= ~MS_BIND
    if cgroups.unified and not cgroups.v1:
        if not new_cgroupns and cgroups.dirs.get(""):
            return [Mount(target=dest, source=cgroups.dirs[""], fstype=None,
                          flags=MS_BIND | MS_REC, remount=flags & _REMOUNT_MASK)]
        return [Mount(target=dest, source="cgroup2", fstype="cgroup2", flags=flags)]
    # v1 (or hybrid): a tmpfs holding one mount per hierarchy, read-only on top if asked.
    mounts = [Mount(target=dest, source="tmpfs", fstype="tmpfs", data="mode=755",
                    flags=flags & ~MS_RDONLY)]
    # A fresh cgroup mount shows the container its own subtree only inside a cgroup
    # namespace, and a user namespace may not mount cgroup v1 at all: otherwise bind the
    # container's own cgroup dirs (as runc does).
    bind = (in_userns or not new_cgroupns) and cgroups.dirs
    for name, opts in cgroups.v1:
        target = posixpath.join(dest, name)
        own = next((cgroups.dirs[s] for s in opts.split(",") if s in cgroups.dirs), None)
        if bind and own:
            mounts.append(Mount(target=target, source=own, fstype=None,
                                flags=MS_BIND | MS_REC, remount=flags & _REMOUNT_MASK))
        else:
            mounts.append(Mount(target=target, source="cgroup", fstype="cgroup", data=opts,
                                flags=flags))
    if flags & MS_RDONLY:
        mounts.append(Mount(target=dest, source=None, fstype=None, remount=MS_RDONLY))
    return mounts


def _devices(plan: Plan, linux: dict, in_userns: bool, mounted: set[str]) -> None:
    configured = {d["path"]: d for d in linux.get("devices") or []}
    # A default device the config mounts something over is left to that mount.
    devices = [dict(path=p, type=t, major=ma, minor=mi, fileMode=0o666)
               for p, t, ma, mi in DEFAULT_DEVICES if p not in configured and p not in mounted]
    devices.extend(configured.values())
    for d in devices:
        kind = {"c": S_IFCHR, "u": S_IFCHR, "b": S_IFBLK, "p": S_IFIFO}[d["type"]]
        mode = d.get("fileMode")
        mode = 0o666 if mode is None else int(mode)
        dev = os.makedev(int(d.get("major", 0)), int(d.get("minor", 0)))
        plan.devices.append(Device(
            path=d["path"], mode=kind | (mode & 0o7777), dev=dev,
            uid=int(d.get("uid", 0)), gid=int(d.get("gid", 0)),
            # mknod is refused in a user namespace: bind the host's node instead.
            host_path=d["path"] if in_userns else None,
        ))
