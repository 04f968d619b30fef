"""runc's rootless cgroup manager, the part that differs: with no cgroupsPath, hierarchies
the caller cannot write are left out (the container stays in the caller's cgroups there),
instead of failing the create."""

import os
import posixpath

from .common import FS, CgroupError
from .layout import Layout, own_cgroups, under_mount


def skip_unwritable(lay: Layout, dirs: dict, roots: dict, own: dict, fs: FS) -> dict:
    """Rootless: drop from `dirs` (and `roots`) each hierarchy where the caller could not
    make or join the container's cgroup (runc ignores EPERM/EACCES/EROFS there when no
    cgroupsPath is set). Returns {subsystem: the caller's own cgroup directory}, where the
    container stays and what a `cgroup` mount inside binds."""
    skipped = {}
    for sub, d in list(dirs.items()):
        if fs.exists(d):
            ok = os.access(os.path.join(d, "cgroup.procs"), os.W_OK, effective_ids=True)
        else:
            ok = os.access(posixpath.dirname(d), os.W_OK | os.X_OK, effective_ids=True)
        if ok:
            continue
        del dirs[sub]
        roots.pop(sub, None)
        where = lay.unified if sub == "" else lay.v1.get(sub)
        assert where is not None  # resolve_dirs gave a directory on that mount
        try:
            skipped[sub] = under_mount(where[0], where[1], own.get(sub, "/"))
        except CgroupError:
            skipped[sub] = where[0]
    return skipped


def asks_limits(res: dict) -> bool:
    """Does linux.resources set anything a controller would apply (device rules aside)?"""

    def set_(v) -> bool:
        if isinstance(v, dict):
            return any(set_(x) for x in v.values())
        if isinstance(v, list):
            return bool(v)
        return v is not None and v is not False

    return any(set_(v) for k, v in (res or {}).items() if k != "devices")


def can_join(paths: dict, self_cgroup: str | None = None) -> bool:
    """Could this (unprivileged) process move a new one into the cgroups `paths` (a
    manager's state) describe? The kernel wants cgroup.procs writable both in the target
    and in the nearest cgroup that holds the mover's too: a user's delegated subtree (its
    systemd manager's) is not enough when the caller runs elsewhere. runc then leaves an
    exec'd process where it is; so does ocirun (execute.py). (v1 asks the target only.)"""
    own = own_cgroups(self_cgroup)
    roots = paths.get("roots") or {}
    for sub, d in (paths.get("dirs") or {}).items():
        top = roots.get(sub, "")
        if not top or not (d == top or d.startswith(top.rstrip("/") + "/")):
            continue
        target = "/" + d[len(top) :].strip("/")
        mine = own.get(sub if sub else "", "/")
        common = "/"
        for a, b in zip(target.strip("/").split("/"), mine.strip("/").split("/")):
            if a != b or not a:
                break
            common = common.rstrip("/") + "/" + a
        for cg in (target, common) if sub == "" else (target,):  # the rule is cgroup2's
            if not os.access(
                os.path.join(top.rstrip("/") + cg, "cgroup.procs"), os.W_OK, effective_ids=True
            ):
                return False
    return True
