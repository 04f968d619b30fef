"""The only importer of the compiled shim (`ocirun._shim`, built from csrc/ by cffi).

It turns a `plan.Plan` into `struct ocirun_plan`, keeps every allocation alive while the
child is being cloned, and packs/unpacks the sync protocol's fixed-size messages.
"""

from __future__ import annotations

import _socket  # the C module: `socket` adds enum and selectors (~5 ms)
import os

from ._lean import Sequence
from ._shim import ffi, lib
from .plan import Mount, Plan
from .tables import MOUNT_ATTR_IDMAP, RLIMITS

MSG_IDMAP = lib.OCIRUN_MSG_IDMAP
MSG_IDMAP_DONE = lib.OCIRUN_MSG_IDMAP_DONE
MSG_PID = lib.OCIRUN_MSG_PID
MSG_GO = lib.OCIRUN_MSG_GO
MSG_READY = lib.OCIRUN_MSG_READY
MSG_ERROR = lib.OCIRUN_MSG_ERROR
MSG_EXEC_ERROR = lib.OCIRUN_MSG_EXEC_ERROR
MSG_HOOKS = lib.OCIRUN_MSG_HOOKS
MSG_HOOKS_DONE = lib.OCIRUN_MSG_HOOKS_DONE
MSG_CGROUP = lib.OCIRUN_MSG_CGROUP
MSG_CGROUP_DONE = lib.OCIRUN_MSG_CGROUP_DONE
MSG_SECCOMP_FD = lib.OCIRUN_MSG_SECCOMP_FD
MSG_NETDEV = lib.OCIRUN_MSG_NETDEV
MSG_NETDEV_DONE = lib.OCIRUN_MSG_NETDEV_DONE
MSG_SIZE = ffi.sizeof("struct ocirun_msg")


class Msg:
    __slots__ = ("type", "err", "value", "text", "fd")

    def __init__(self, type_: int, err: int, value: int, text: str, fd: int = -1):
        self.type, self.err, self.value, self.text, self.fd = type_, err, value, text, fd


class _Arena:
    """Owns every cdata the plan points to, so nothing is freed before the clone."""

    def __init__(self) -> None:
        self.keep: list = []

    def text(self, s: str | None):
        if s is None:
            return ffi.NULL
        c = ffi.new("char[]", s.encode())
        self.keep.append(c)
        return c

    def bytes(self, data: bytes):
        c = ffi.new("unsigned char[]", data)
        self.keep.append(c)
        return c

    def strv(self, items: Sequence[str]):
        """A NULL-terminated char *[] (argv/envp style); also usable with a count."""
        arr = ffi.new("const char *[]", len(items) + 1)
        for i, s in enumerate(items):
            arr[i] = self.text(s)
        arr[len(items)] = ffi.NULL
        self.keep.append(arr)
        return arr

    def ints(self, values: Sequence[int]):
        arr = self.array("int", len(values))
        for i, v in enumerate(values):
            arr[i] = v
        return arr

    def array(self, ctype: str, n: int):
        arr = ffi.new(f"{ctype}[]", max(n, 1))
        self.keep.append(arr)
        return arr


class SpawnFds:
    """The fds a clone hands the child, and so every fd it keeps open until its execve
    (with fds 3 .. 3+preserve-1, which go on to the container's process)."""

    def __init__(
        self,
        *,
        sync: int,
        fifo: int = -1,
        ns: list[int] | None = None,
        state: int = -1,
        console: int = -1,
        result: int = -1,
        mounts: dict[int, int] | None = None,
        task_fds: list[int] | None = None,
        preserve: int = 0,
    ):
        self.sync, self.fifo, self.state, self.console, self.result = (
            sync,
            fifo,
            state,
            console,
            result,
        )
        self.ns, self.mounts = list(ns or []), dict(mounts or {})
        self.preserve = preserve
        self.task_fds = list(task_fds or [])

    def keep(self, exec_fd: int) -> list[int]:
        fds = {self.sync, self.fifo, self.result, exec_fd, self.state, self.console}
        fds.update(self.ns, self.task_fds, self.mounts.values(), range(3, 3 + self.preserve))
        return sorted(fds - {-1})


def _hooks(a: _Arena, hooks: Sequence):
    arr = a.array("struct ocirun_hook", len(hooks))
    for i, (path, argv, envp, timeout) in enumerate(hooks):
        arr[i].path, arr[i].argv, arr[i].envp = a.text(path), a.strv(argv), a.strv(envp)
        arr[i].timeout = timeout
    return arr, len(hooks)


# struct ocirun_plan fields copied from the plan, each named with the section that holds
# it ("" for the plan itself) and its attribute there when the name differs: numbers and
# flags as they are; then strings (NULL for None), then string lists with their count
# field, then byte masks with their length field.
_SCALARS = (
    ("", "wait_signals"), ("", "trace"),
    ("ns", "clone_flags"), ("ns", "unshare_flags"), ("ns", "fork_after"),
    ("ns", "userns_sync"), ("ns", "loopback_up"), ("ns", "netdev_sync"),
    ("hooks", "hooks_sync", "sync"),
    ("rootfs", "setup_rootfs"), ("rootfs", "reopen_dev_null"), ("rootfs", "root_propagation"),
    ("rootfs", "root_propagation_end"), ("rootfs", "rootfs_parent_unshared"),
    ("rootfs", "rootfs_readonly"), ("rootfs", "no_pivot"), ("rootfs", "dev_readonly"),
    ("rootfs", "chroot_only", "host_mount_ns"),
    ("process", "make_cwd"), ("process", "home_from_passwd"), ("process", "uid"),
    ("process", "gid"), ("process", "umask"), ("process", "personality"),
    ("process", "ioprio"), ("process", "preserve_fds"), ("process", "console_rows"),
    ("process", "console_cols"),
    ("security", "exec_route"), ("security", "exec_check"), ("security", "no_new_privs"),
    ("security", "new_keyring"), ("security", "seccomp_when"),
    ("security", "seccomp_flags"),
)  # fmt: skip
_TEXTS = (
    ("ns", "timens_offsets"), ("rootfs", "rootfs", "path"), ("kernel", "hostname"),
    ("kernel", "domainname"), ("kernel", "oom_score_adj"), ("process", "path_env"),
    ("process", "cwd"),
)  # fmt: skip
_STRVS = (
    ("rootfs", "masked_paths", "n_masked"),
    ("rootfs", "readonly_paths", "n_readonly"),
    ("rootfs", "hide_before_move", "n_hide_before_move"),
)
_MASKS = (
    ("process", "cpu_initial", "cpu_initial_len"),
    ("process", "cpu_final", "cpu_final_len"),
)
_CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
_RLIMIT_NAMES = {v: k for k, v in RLIMITS.items()}


def _get(plan: Plan, section: str, attr: str):
    return getattr(getattr(plan, section), attr) if section else getattr(plan, attr)


def _fill(
    plan: Plan,
    fds: SpawnFds,
    exec_fd: int,
    placement: Placement | None,
    cgroup_sync: bool,
    a: _Arena,
):
    """struct ocirun_plan from the plan and the fds the spawner opened: field by field, no
    decision (the spawner chose placement and cgroup_sync, the fds to keep)."""
    p = ffi.new("struct ocirun_plan *")
    a.keep.append(p)
    for section, name, *attr in _SCALARS:
        setattr(p, name, _get(plan, section, attr[0] if attr else name))
    for section, name, *attr in _TEXTS:
        setattr(p, name, a.text(_get(plan, section, attr[0] if attr else name)))
    for section, name, count in _STRVS:
        values = _get(plan, section, name)
        setattr(p, name, a.strv(values))
        setattr(p, count, len(values))
    for section, name, length in _MASKS:
        mask = _get(plan, section, name)
        if mask:
            setattr(p, name, a.bytes(mask))
            setattr(p, length, len(mask))

    p.sync_fd, p.fifo_fd, p.result_fd = fds.sync, fds.fifo, fds.result
    p.state_fd, p.console_fd, p.exec_fd = fds.state, fds.console, exec_fd
    keep = fds.keep(exec_fd)
    p.keep_fds, p.n_keep_fds = a.ints(keep), len(keep)
    p.cgroup_sync = cgroup_sync
    task_fds = placement.task_fds if placement is not None else []
    p.cgroup_task_fds, p.n_cgroup_task_fds = a.ints(task_fds), len(task_fds)
    p.cgroup_task_paths = a.strv(placement.task_paths if placement is not None else [])
    p.cgroup_into_fd = placement.into_fd if placement is not None else -1

    ns, fs, kernel, proc, sec = plan.ns, plan.rootfs, plan.kernel, plan.process, plan.security
    joins = a.array("struct ocirun_ns_join", len(ns.joins))
    for i, ((_, nstype), fd) in enumerate(zip(ns.joins, fds.ns)):
        joins[i].fd, joins[i].nstype = fd, nstype
    p.joins, p.n_joins = joins, len(ns.joins)
    p.create_hooks, p.n_create_hooks = _hooks(a, plan.hooks.create)
    p.start_hooks, p.n_start_hooks = _hooks(a, plan.hooks.start)
    p.mounts, p.n_mounts = _mounts(a, fs.mounts, fds), len(fs.mounts)
    devices = a.array("struct ocirun_device", len(fs.devices))
    for i, d in enumerate(fs.devices):
        c = devices[i]
        c.path, c.host_path = a.text(d.path), a.text(d.host_path)
        c.mode, c.dev, c.uid, c.gid = d.mode, d.dev, d.uid, d.gid
    p.devices, p.n_devices = devices, len(fs.devices)
    links = a.array("struct ocirun_symlink", len(fs.symlinks))
    for i, (target, path) in enumerate(fs.symlinks):
        links[i].target, links[i].linkpath = a.text(target), a.text(path)
    p.symlinks, p.n_symlinks = links, len(fs.symlinks)
    sysctls = a.array("struct ocirun_sysctl", len(kernel.sysctls))
    for i, (path, value) in enumerate(kernel.sysctls):
        sysctls[i].path, sysctls[i].value = a.text(path), a.text(value)
    p.sysctls, p.n_sysctls = sysctls, len(kernel.sysctls)

    p.argv, p.envp, p.argc = a.strv(proc.argv), a.strv(proc.envp), len(proc.argv)
    groups = a.array("unsigned int", len(proc.groups))
    for i, g in enumerate(proc.groups):
        groups[i] = g
    p.groups, p.n_groups = groups, -1 if proc.keep_groups else len(proc.groups)
    rlimits = a.array("struct ocirun_rlimit", len(proc.rlimits))
    for i, (res, soft, hard) in enumerate(proc.rlimits):
        rlimits[i].name = a.text(_RLIMIT_NAMES.get(res, str(res)))
        rlimits[i].resource, rlimits[i].soft, rlimits[i].hard = res, soft, hard
    p.rlimits, p.n_rlimits = rlimits, len(proc.rlimits)
    for name in _CAP_SETS:
        setattr(p, f"cap_{name}", sec.caps.get(name, 0))
    if proc.sched:
        p.sched_set = 1
        (
            p.sched_policy,
            p.sched_nice,
            p.sched_priority,
            p.sched_flags,
            p.sched_runtime,
            p.sched_deadline,
            p.sched_period,
        ) = proc.sched
    if proc.mempolicy:
        p.mempolicy_set = 1
        p.mempolicy_mode = proc.mempolicy[0]
        if proc.mempolicy[1]:
            p.mempolicy_nodes = a.bytes(proc.mempolicy[1])
            p.mempolicy_nodes_len = len(proc.mempolicy[1])
    if sec.seccomp_bpf:
        p.seccomp_bpf, p.seccomp_len = a.bytes(sec.seccomp_bpf), len(sec.seccomp_bpf) // 8
    return p


def _mounts(a: _Arena, plan_mounts: Sequence[Mount], fds: SpawnFds):
    mounts = a.array("struct ocirun_mount", len(plan_mounts))
    for i, m in enumerate(plan_mounts):
        c = mounts[i]
        c.source, c.target = a.text(m.source), a.text(m.target)
        c.fstype, c.data = a.text(m.fstype), a.text(m.data)
        c.flags, c.remount, c.propagation, c.kind = m.flags, m.remount, m.propagation, m.kind
        c.copyup, c.inherit_mode, c.dir_only = m.copyup, m.inherit_mode, m.dir_only
        c.source_fd = fds.mounts.get(i, -1) if m.detached else -1
        c.moved_propagation = m.moved_propagation
        c.attr_set, c.attr_clr = m.attr_set, m.attr_clr
    return mounts


class Placement:
    """fds by which a new process enters its cgroups at birth (cgroups' Manager.placement):
    v1 `tasks` files it writes "0" to itself, the cgroup2 directory to clone3 it into."""

    def __init__(self, task_fds: list[int], task_paths: list[str], into_fd: int = -1):
        self.task_fds, self.task_paths, self.into_fd = task_fds, task_paths, into_fd

    def close(self) -> None:
        for fd in [*self.task_fds, self.into_fd]:
            if fd >= 0:
                os.close(fd)
        self.task_fds, self.into_fd = [], -1


def spawn(plan: Plan, fds: SpawnFds, placement: Placement | None, *, cgroup_sync: bool) -> int:
    """Clone the init running `plan`; return its pid (the intermediate's, with fork_after).
    With `placement`, the child enters its cgroups itself; with `cgroup_sync`, it asks the
    parent to move it (MSG_CGROUP)."""
    arena = _Arena()
    exec_fd = lib.ocirun_trampoline_fd()
    if exec_fd < 0:
        raise OSError(-exec_fd, os.strerror(-exec_fd), "memfd for the exec trampoline")
    try:
        pid = lib.ocirun_spawn(_fill(plan, fds, exec_fd, placement, cgroup_sync, arena))
    finally:
        os.close(exec_fd)
    if pid < 0:
        raise OSError(-pid, os.strerror(-pid))
    return pid


def open_tree(path: str, recursive: bool) -> int:
    """A detached copy of the mount tree at `path` (open_tree(OPEN_TREE_CLONE)), an fd."""
    fd = lib.ocirun_open_tree(path.encode(), int(recursive))
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd), path)
    return fd


def userns_fd(uid_map: str, gid_map: str) -> int:
    """An fd of a new user namespace with these mappings (for an idmapped mount)."""
    fd = lib.ocirun_userns_fd(uid_map.encode(), gid_map.encode())
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd), "user namespace for an idmapped mount")
    return fd


def idmap_mount(fd: int, userns: int, recursive: bool) -> None:
    """Give the detached mount `fd` the mapping of user namespace `userns`."""
    rc = lib.ocirun_mount_setattr(fd, int(recursive), MOUNT_ATTR_IDMAP, 0, userns)
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))


def set_child_subreaper() -> None:
    rc = lib.ocirun_set_child_subreaper()
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))


def send(sock: _socket.socket, type_: int) -> None:
    m = ffi.new("struct ocirun_msg *")
    m.type = type_
    sock.send(bytes(ffi.buffer(m)))


_FD_SPACE = 64  # CMSG_SPACE(sizeof(int)) is 24 on x86_64; room to spare


def socketpair(kind: str = "seqpacket"):
    """A unix socketpair, both ends close-on-exec, from the C module `_socket` (the
    `socket` wrapper costs ~5 ms to import on the hot path)."""
    return _socket.socketpair(
        _socket.AF_UNIX, _socket.SOCK_SEQPACKET if kind == "seqpacket" else _socket.SOCK_STREAM
    )


def recv(sock: _socket.socket) -> Msg | None:
    """The next message (with the fd it carries, if any), or None when every child end is
    closed (exec'd or dead)."""
    data, anc, _flags, _addr = sock.recvmsg(MSG_SIZE, _FD_SPACE, _socket.MSG_CMSG_CLOEXEC)
    fd = -1
    for level, type_, payload in anc:
        if level == _socket.SOL_SOCKET and type_ == _socket.SCM_RIGHTS and len(payload) >= 4:
            fd = int.from_bytes(payload[:4], "little")
    if len(data) < MSG_SIZE:
        return None
    m = ffi.from_buffer("struct ocirun_msg *", bytearray(data))
    return Msg(m.type, m.err, m.value, ffi.string(m.text).decode(errors="replace"), fd)
