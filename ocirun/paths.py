"""Path helpers of the modules that still import them (state.py, cgroups/): os.path's, as
the rest of ocirun uses it. To be replaced by os.path at their call sites when those
modules' branches merge; nothing new should import this module."""

import os.path


def abspath(path: str) -> str:
    """os.path.abspath, and a leading "//" is "/" (as the front door reads --root: POSIX
    lets os.path keep exactly two leading slashes). Raises OSError when the cwd is gone."""
    return "/" + os.path.abspath(path).lstrip("/")


def in_dir(d: str, name: str) -> str:
    """d/name for a relative name (os.path.join, but never dropping d)."""
    return d + name if d.endswith("/") else f"{d}/{name}"


exists = os.path.exists
is_dir = os.path.isdir
