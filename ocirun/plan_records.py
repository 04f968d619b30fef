"""The plan's records: `Plan` and its sections (the groups of struct ocirun_plan, csrc/ocirun.h)
and the pieces it holds (mounts, devices), with what the planner is told (Options, the host's
CgroupLayout). Plain records (`_lean.Record`: dataclasses cost ~6 ms on every create and
exec).
"""

from __future__ import annotations

from ._lean import Record
from .frozen import Section
from .plan_security import CHECK_FACCESSAT2, EXEC_EXECVEAT, SECCOMP_NONE
from .tables import MS_REC, MS_SLAVE, SIGNALS

MNT_DIR, MNT_FILE = 0, 1

ALL_CAPS = (1 << 64) - 1  # a capability mask with every bit set

WAIT_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTERM")


class Mount(Section):
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
        "inherit_mode",
        "dir_only",
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
        inherit_mode: bool = False,
        dir_only: bool = False,
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
        # a tmpfs without mode=: on a target that exists, its mode (runc >= 1.1.10), so that
        # e.g. a tmpfs over a 1777 /tmp keeps the sticky bit; a target made for it: 1777
        self.inherit_mode = inherit_mode
        # procfs/sysfs: a target that exists must be a directory, not a symlink or a file
        # (runc, CVE-2023-28642: a /proc symlinked elsewhere escapes LSM rules on /proc)
        self.dir_only = dir_only
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


class Device(Section):
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


class CgroupLayout(Record):
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


class Options(Record):
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


class IdMaps(Section):
    """How the runtime writes a new user namespace's maps (decided for the plan):
    `uid_tool`/`gid_tool` name newuidmap/newgidmap when they must do it, else the map is
    written directly; `deny_setgroups` when gid_map needs setgroups denied first."""

    __slots__ = ("uid_tool", "gid_tool", "deny_setgroups")

    def __init__(self, uid_tool: str = "", gid_tool: str = "", deny_setgroups: bool = False):
        self.uid_tool, self.gid_tool, self.deny_setgroups = uid_tool, gid_tool, deny_setgroups


class Namespaces(Section):
    """Which namespaces the init makes (clone, unshare) and joins, and what it does in them
    before anything else: id maps, time offsets, loopback, network devices moved in."""

    __slots__ = (
        "clone_flags",
        "joins",
        "unshare_flags",
        "fork_after",
        "userns_sync",
        "uid_map",
        "gid_map",
        "idmaps",
        "timens_offsets",
        "loopback_up",
        "net_devices",
        "netdev_sync",
    )

    _lists = ("joins",)
    _deep = ("net_devices", "idmaps")

    def __init__(self) -> None:
        self.clone_flags = 0
        self.joins: list[tuple[str, int]] = []  # (path, CLONE_NEW*)
        self.unshare_flags = 0
        self.fork_after = False
        self.userns_sync = False
        self.uid_map = ""
        self.gid_map = ""
        self.idmaps: IdMaps | None = None  # how a non-root caller writes the maps (rootless)
        self.timens_offsets: str | None = None
        self.loopback_up = False
        # linux.netDevices (plan_netdevices.NetDevice): the init stops once its network
        # namespace exists, for the parent to move them in (netdevices.py)
        self.net_devices: list = []
        self.netdev_sync = False


class Hooks(Section):
    """The hooks the init runs itself, each (path, argv, envp, timeout); `sync`: it stops
    before pivot_root for the parent to run its own (prestart, createRuntime)."""

    __slots__ = ("sync", "create", "start")

    _deep = ("create", "start")

    def __init__(self) -> None:
        self.sync = False
        self.create: list[tuple[str, list[str], list[str], int]] = []  # createContainer
        self.start: list[tuple[str, list[str], list[str], int]] = []  # startContainer


class Rootfs(Section):
    """The container's filesystem: the rootfs and its propagation, mounts, /dev nodes,
    symlinks, masked and read-only paths, pivot_root or not."""

    __slots__ = (
        "setup_rootfs",
        "reopen_dev_null",
        "path",
        "root_propagation",
        "root_propagation_end",
        "rootfs_parent_unshared",
        "rootfs_readonly",
        "no_pivot",
        "host_mount_ns",
        "mounts",
        "devices",
        "symlinks",
        "masked_paths",
        "readonly_paths",
        "hide_before_move",
        "dev_readonly",
    )

    _lists = ("symlinks", "masked_paths", "readonly_paths", "hide_before_move")
    _deep = ("mounts", "devices")

    def __init__(self, no_pivot: bool = False) -> None:
        self.setup_rootfs = False
        # stdio on the host's /dev/null is reopened on the container's (plan_rootfs)
        self.reopen_dev_null = False
        self.path = ""  # root.path, absolute on the host
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
        # --no-pivot: the runtime's whole procfs/sysfs mounts outside the rootfs, detached
        # (or covered) before the move, as runc's msMoveRoot: chroot leaves them in the
        # container's namespace, where they would let it mount a bare procfs/sysfs
        self.hide_before_move: list[str] = []
        # a read-only tmpfs /dev: mounted writable, remounted read-only once filled
        self.dev_readonly = False


class Kernel(Section):
    """The container's kernel settings: uts names, sysctls, the oom score."""

    __slots__ = ("hostname", "domainname", "sysctls", "oom_score_adj")

    _lists = ("sysctls",)

    def __init__(self) -> None:
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.sysctls: list[tuple[str, str]] = []  # (/proc/sys/... path, value)
        self.oom_score_adj: str | None = None


class Process(Section):
    """The process the init becomes: argv, env, cwd, user, limits, scheduling, terminal."""

    __slots__ = (
        "argv",
        "envp",
        "path_env",
        "home_from_passwd",
        "cwd",
        "make_cwd",
        "uid",
        "gid",
        "groups",
        "keep_groups",
        "umask",
        "rlimits",
        "personality",
        "ioprio",
        "sched",
        "cpu_initial",
        "cpu_final",
        "mempolicy",
        "preserve_fds",
        "terminal",
        "console_rows",
        "console_cols",
    )

    _lists = ("argv", "envp", "groups", "rlimits")

    def __init__(self, preserve_fds: int = 0) -> None:
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
        self.personality = -1
        self.ioprio = -1
        # (policy, nice, priority, flags, runtime, deadline, period)
        self.sched: tuple | None = None
        self.cpu_initial: bytes | None = None  # sched_setaffinity masks
        self.cpu_final: bytes | None = None
        self.mempolicy: tuple[int, bytes] | None = None  # (mode | flags, node mask)
        self.preserve_fds = preserve_fds
        self.terminal = False
        self.console_rows = 0
        self.console_cols = 0


class Security(Section):
    """The process's privileges and how it is exec'd: capabilities, no_new_privs, the
    seccomp filter and when it is loaded, the session keyring, the trampoline's route."""

    __slots__ = (
        "no_new_privs",
        "caps",
        "new_keyring",
        "seccomp_when",
        "seccomp_bpf",
        "seccomp_flags",
        "exec_route",
        "exec_check",
    )

    _deep = ("caps",)

    def __init__(self, new_keyring: bool = True) -> None:
        self.no_new_privs = False
        self.caps: dict[str, int] = {}  # set name -> bit mask
        self.new_keyring = new_keyring
        self.seccomp_when = SECCOMP_NONE
        self.seccomp_bpf = b""  # struct sock_filter[]
        self.seccomp_flags = 0
        # The process is exec'd through a sealed trampoline, so that /proc/self/exe never
        # leads the container to the runtime's own binary (CVE-2019-5736); this is how the
        # init reaches it (plan_security.exec_route).
        self.exec_route = EXEC_EXECVEAT
        self.exec_check = CHECK_FACCESSAT2  # how argv[0] is checked (plan_security.exec_check)


class Plan(Section):
    """The init's whole programme, in sections that follow struct ocirun_plan's groups
    (csrc/ocirun.h; the C struct is flat, `_native` names each field's section). Complete
    and frozen, deeply, once `plan.build` returns it: nothing after the planner decides
    anything."""

    __slots__ = (
        "cgroup_sync",
        "wait_signals",
        "trace",
        "ns",
        "hooks",
        "rootfs",
        "kernel",
        "process",
        "security",
        "warnings",
        "notes",
    )

    _lists = ("warnings", "notes")
    _deep = ("ns", "hooks", "rootfs", "kernel", "process", "security")

    def __init__(self, no_pivot: bool = False, new_keyring: bool = True, preserve_fds: int = 0):
        self.cgroup_sync = False  # the parent moves the child into its cgroups first
        # While the init waits for `start` it is pid 1 of its namespace, which ignores every
        # signal left at its default action: these end it, so `kill ID TERM` works on a
        # created container as with runc (whose waiting init is a Go program).
        self.wait_signals = sum(1 << SIGNALS[s] for s in WAIT_SIGNALS)
        self.trace = False  # --debug: the init reports its phase times
        self.ns = Namespaces()
        self.hooks = Hooks()
        self.rootfs = Rootfs(no_pivot)
        self.kernel = Kernel()
        self.process = Process(preserve_fds)
        self.security = Security(new_keyring)
        # what the runtime must log as warnings (capabilities it cannot grant, ...)
        self.warnings: list[str] = []
        self.notes: list[str] = []  # decisions worth a debug line (nothing lost)
