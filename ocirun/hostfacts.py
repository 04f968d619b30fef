"""What the planner needs to know about the host, read here so that `plan.build` stays pure:
how cgroups are mounted, the runtime's capability bounding set, which LSMs are enforced,
the fds the caller hands on (--preserve-fds, LISTEN_FDS).
"""

from __future__ import annotations

import os

from . import log
from .errors import OcirunError
from .plan import ALL_CAPS, CgroupLayout

_KEEP_NOT = ("rw", "ro")
_KEEP_NOT_PREFIX = ("relatime", "nosuid", "nodev", "noexec")


def cgroup_layout() -> CgroupLayout:
    """How this host mounts cgroups (for `cgroup` mounts inside the container)."""
    from .hostmounts import mountinfo

    layout = CgroupLayout()
    for m in mountinfo():
        if not m.mountpoint.startswith("/sys/fs/cgroup"):
            continue
        if m.fstype == "cgroup2" and m.mountpoint == "/sys/fs/cgroup":
            layout.unified = True
        elif m.fstype == "cgroup":
            keep = [
                o
                for o in m.super_options.split(",")
                if o not in _KEEP_NOT and not o.startswith(_KEEP_NOT_PREFIX)
            ]
            layout.v1.append((os.path.basename(m.mountpoint), ",".join(keep)))
    return layout


def is_proc_root(path: str) -> bool:
    """Whether `path` is the root of a procfs mount (what runc lets a bind put at /proc)."""
    from .hostmounts import mountinfo

    try:
        real = os.path.realpath(path)
        if os.stat(real).st_ino != 1:  # procfs's root inode (PROC_ROOT_INO)
            return False
    except OSError:
        return False
    return any(m.mountpoint == real and m.fstype == "proc" for m in mountinfo())


def full_proc_sys_mounts() -> tuple[str, ...]:
    """Mount points of every whole procfs or sysfs in the runtime's mount namespace: with
    --no-pivot they stay in the container's, and while one is there unmasked the kernel lets
    the container mount a new procfs/sysfs (mnt_already_visible)."""
    from .hostmounts import mountinfo

    return tuple(
        m.mountpoint for m in mountinfo() if m.root == "/" and m.fstype in ("proc", "sysfs")
    )


def is_nodev(path: str) -> bool:
    """Whether the mount holding `path` is nodev (device nodes made there can't be opened)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_NODEV)
    except OSError:
        return False


def kernel_has_faccessat2() -> bool:
    """faccessat2(2) exists from Linux 5.8."""
    release = os.uname().release.split(".")
    try:
        return (int(release[0]), int(release[1].split("-")[0])) >= (5, 8)
    except (IndexError, ValueError):
        return False


def cap_bounding() -> int:
    """The runtime's own capability bounding set: what any process it starts can have."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return ALL_CAPS


def seccomp_filter(seccomp: dict | None):
    """linux.seccomp compiled (cached by content): a seccomp.Filter, or None without one."""
    if not seccomp:
        return None
    from . import cache
    from .seccomp_cache import compile_cached

    filt = compile_cached(seccomp, cache.path("seccomp"))
    for w in filt.warnings:
        log.warning(f"seccomp: {w}")
    for n in filt.notes:
        log.debug(f"seccomp: {n}")
    return filt


def setgroups_denied(pid: int | str) -> bool:
    """Is setgroups(2) denied in the user namespace of `pid` ("self" for ours)?"""
    try:
        with open(f"/proc/{pid}/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def check_lsm(process: dict) -> None:
    """An AppArmor profile or SELinux label we cannot apply: refused where the host enforces
    that LSM (the process would run unconfined), ignored with a warning where it does not
    (as runc does when AppArmor is disabled)."""
    for key, enabled_file, name in (
        ("apparmorProfile", "/sys/module/apparmor/parameters/enabled", "AppArmor"),
        ("selinuxLabel", "/sys/fs/selinux/enforce", "SELinux"),
    ):
        if not process.get(key):
            continue
        try:
            with open(enabled_file) as f:
                on = f.read().strip() in ("Y", "1")
        except OSError:
            on = False
        if on:
            raise OcirunError(
                f"process.{key}: {name} is enabled on this host, and ocirun "
                f"cannot apply {name} profiles yet"
            )
        log.warning(f"process.{key} ignored: {name} is not enabled on this host")


def check_preserved_fds(count: int) -> None:
    """fds 3 .. 3+count-1 go to the container's process: each must be the caller's, open
    before the runtime opens anything of its own. A gap would be filled by the runtime's
    fds (the state dir holding the container's lock, exec.fifo, exec.result), handed to the
    init, and `start` would wait on that lock for ever. runc refuses the same way."""
    for i in range(count):
        try:
            os.fstat(3 + i)
        except OSError as e:
            raise OcirunError(
                f"unable to stat preserved-fd {i} (of {count}): fstat {3 + i}: "
                f"{(e.strerror or str(e)).lower()}"
            ) from None


def listen_fds() -> int:
    """LISTEN_FDS meant for us (LISTEN_PID unset or ours), as runc honours it."""
    n, pid = os.environ.get("LISTEN_FDS", ""), os.environ.get("LISTEN_PID", "")
    if not n.isdigit() or (pid and pid != str(os.getpid())):
        return 0
    return int(n)
