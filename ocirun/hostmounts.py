"""Mounts a container without a mount namespace of its own leaves in the runtime's.

runc runs such a config: the container's mounts (proc, /dev, binds...) are made under the
rootfs in the runtime's own mount namespace and the init chroots into it. Nothing takes them
away when the container ends, so `create` notes which mounts at or under the rootfs were
there before (an engine's overlay, say), and `delete` (or a failed `create`) unmounts the
rest, newest first.
"""

from __future__ import annotations

import errno
import os

from .cgroups.layout import unescape as _unescape

MNT_DETACH = 2


class MountEntry:
    """One line of /proc/self/mountinfo (paths unescaped)."""

    __slots__ = ("mount_id", "mountpoint", "fstype", "source", "super_options", "root")

    def __init__(
        self, mount_id: int, mountpoint: str, fstype: str, source: str, opts: str, root: str = "/"
    ):
        self.mount_id, self.mountpoint, self.fstype = mount_id, mountpoint, fstype
        self.source, self.super_options = source, opts
        self.root = root  # the directory of its filesystem it shows ("/": all of it)


def mountinfo() -> list[MountEntry]:
    """The runtime's mount table, oldest first."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            fstype, source, opts = (post.split() + ["", "", ""])[:3]
            out.append(
                MountEntry(
                    int(fields[0]),
                    _unescape(fields[4]),
                    fstype,
                    _unescape(source),
                    opts,
                    _unescape(fields[3]),
                )
            )
    return out


def _under(rootfs: str) -> list[tuple[int, str]]:
    """(mount id, mount point) of every mount at or under `rootfs`, oldest first."""
    prefix = rootfs.rstrip("/") + "/"
    return [
        (m.mount_id, m.mountpoint)
        for m in mountinfo()
        if m.mountpoint == rootfs or m.mountpoint.startswith(prefix)
    ]


def snapshot(rootfs: str) -> list[int]:
    """The ids of the mounts at or under `rootfs` now: those are not ours to remove."""
    return [mid for mid, _ in _under(rootfs)]


def unmount_new(rootfs: str, keep: list[int]) -> list[str]:
    """Unmount (lazily) what was mounted at or under `rootfs` since `snapshot`; returns
    the failures as messages."""
    import ctypes  # here, not at the top: every create reads mountinfo, ctypes costs ~1.4 ms

    libc = ctypes.CDLL(None, use_errno=True)
    failures = []
    for mid, point in reversed(_under(rootfs)):
        if mid in keep:
            continue
        if libc.umount2(point.encode(), MNT_DETACH) < 0:
            err = ctypes.get_errno()
            if err != errno.EINVAL:  # already gone with a parent
                failures.append(f"unmount {point}: {os.strerror(err)}")
    return failures
