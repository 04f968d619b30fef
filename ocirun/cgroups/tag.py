"""Which cgroup directories are ocirun's, and whose: `create` marks each directory it made
for a container with an extended attribute naming its --root and id (and the parents it
made for it); `ocirun gc` removes only directories so marked for its own root, never
another runtime's or another root's. trusted.* for root (no unprivileged user can set or
forge it), user.* otherwise. Best effort: where a filesystem has no xattrs, gc just can't
find that container's cgroups once its state is gone (delete --force still can).

On create's path: a handful of setxattr calls.
"""

import os

from .. import _lean as json


def attr_name() -> str:
    return "trusted.ocirun" if os.geteuid() == 0 else "user.ocirun"


def mark(m, root: str, cid: str) -> None:
    """Tag the leaf directories manager `m` made (not a pre-existing cgroup it joins)."""
    made = getattr(getattr(m, "fs_manager", m), "created", None)
    if not made:
        return
    name = attr_name()
    for d in set(m.dirs.values()):
        if d not in made:
            continue
        parents = [p for p in made if d.startswith(p + "/")]
        value = json.dumps({"root": root, "id": cid, "parents": parents}).encode()
        try:
            os.setxattr(d, name, value)
        except OSError:
            pass


def read(path: str, name: str) -> dict | None:
    """The tag on `path` as {"root", "id", "parents"}, None if it has none (or not ours)."""
    try:
        tag = json.loads(os.getxattr(path, name, follow_symlinks=False))
    except (OSError, ValueError):
        return None
    if not (
        isinstance(tag, dict)
        and isinstance(tag.get("root"), str)
        and isinstance(tag.get("id"), str)
    ):
        return None
    parents = tag.get("parents")
    tag["parents"] = (
        [p for p in parents if isinstance(p, str) and path.startswith(p + "/")]
        if isinstance(parents, list)
        else []
    )
    return tag
