"""Running as a user other than root ("rootless"), by runc 1.1's rules.

- the state lives under $XDG_RUNTIME_DIR/ocirun unless --root is given (`default_root`);
- the container needs a user namespace; the caller's own uid/gid alone is mapped by writing
  the map directly (gid_map after `setgroups` is denied, as the kernel requires), any other
  mapping through the setuid helpers newuidmap/newgidmap, checked here against
  /etc/subuid and /etc/subgid first so that a refused range is one clear line
  (`plan_idmaps`);
- cgroups the caller cannot write are skipped, as runc's rootless cgroup manager does
  (`rootless_cgroups` says when; cgroups/ does the skipping).

`default_root` is on the path of every command without --root: the user namespace is
looked at only for root with $XDG_RUNTIME_DIR set.
"""

import os

from ._lean import TYPE_CHECKING

if TYPE_CHECKING:
    from .plan_records import IdMaps

SYSTEM_ROOT = "/run/ocirun"
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
_FULL_MAP = ["0", "0", "4294967295"]

_in_userns: bool | None = None


def in_user_namespace() -> bool:
    """Is this process in a user namespace other than the initial one?"""
    global _in_userns
    if _in_userns is None:
        try:
            fd = os.open("/proc/self/uid_map", os.O_RDONLY | os.O_CLOEXEC)
            try:
                text = os.read(fd, 4096).decode()
            finally:
                os.close(fd)
            _in_userns = text.split() != _FULL_MAP
        except OSError:
            _in_userns = False
    return _in_userns


def _honor_xdg(xdg: str) -> bool:
    """runc's rule: a non-root caller uses $XDG_RUNTIME_DIR; root in the initial user
    namespace never does (its /run/user/0 would hide the system's containers); root in
    another user namespace does unless $USER says root."""
    if not xdg:
        return False
    if os.geteuid() != 0:
        return True
    if not in_user_namespace():
        return False
    return os.environ.get("USER") != "root"


def xdg_root() -> str | None:
    """$XDG_RUNTIME_DIR/ocirun when runc's rule picks it, else None."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    return xdg.rstrip("/") + "/ocirun" if _honor_xdg(xdg) else None


def default_root() -> str:
    """The state directory when --root is not given."""
    return xdg_root() or SYSTEM_ROOT


def rootless_cgroups(flag: str | None, systemd: bool) -> bool:
    """Whether cgroup permission problems are tolerated (runc's rootless cgroup manager):
    --rootless true/false as given; auto (or absent): for a non-root caller, and for root
    in a user namespace with the cgroupfs driver."""
    if flag is not None and flag.lower() not in ("", "auto"):
        from .clispec import GO_BOOLS

        return GO_BOOLS[flag]
    if os.geteuid() != 0:
        return True
    return in_user_namespace() and not systemd


# ------------------------------------------------------------------ id maps


def _own_only(mappings: list, own: int) -> bool:
    return (
        len(mappings) == 1
        and int(mappings[0].get("size", 0)) == 1
        and int(mappings[0].get("hostID", -1)) == own
    )


def subid_ranges(path: str, name: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges /etc/subuid-style `path` grants to user `name` (or uid)."""
    out: list[tuple[int, int]] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(uid)):
            continue
        if parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return out


def _granted(m: dict, own: int, ranges: "list[tuple[int, int]]") -> bool:
    """As newuidmap/newgidmap decide it: a range of one that is the caller's own id, or a
    range that one subordinate range holds whole."""
    host, size = int(m["hostID"]), int(m["size"])
    if size == 1 and host == own:
        return True
    return any(start <= host and host + size <= start + count for start, count in ranges)


def plan_idmaps(linux: dict, problems: list) -> "IdMaps":
    """How the maps of a new user namespace get written by this caller; problems found
    (a range /etc/subuid does not grant, no newuidmap) go to `problems`, one line each."""
    from .plan_records import IdMaps

    if os.geteuid() == 0:
        return IdMaps()  # CAP_SETUID over the parent namespace: any mapped id

    uid, gid = os.geteuid(), os.getegid()
    maps = IdMaps()
    for key, own, tool, path in (
        ("uidMappings", uid, "newuidmap", SUBUID),
        ("gidMappings", gid, "newgidmap", SUBGID),
    ):
        mappings = linux.get(key) or []
        if not mappings:
            problems.append(
                f"/linux/{key}: a rootless container (uid {uid}) needs at least one mapping"
            )
            continue
        if _own_only(mappings, own):
            if key == "gidMappings":
                maps.deny_setgroups = True
            continue
        import shutil

        found = shutil.which(
            tool, path="/usr/bin:/bin:/usr/sbin:/sbin:" + os.environ.get("PATH", "")
        )
        if not found:
            problems.append(
                f"/linux/{key}: mapping more than the caller's own id needs "
                f"{tool} (Debian package uidmap), which is not installed"
            )
            continue
        name = _user_name(uid)
        ranges = subid_ranges(path, name, own)
        for i, m in enumerate(mappings):
            if not _granted(m, own, ranges):
                host, size = int(m["hostID"]), int(m["size"])
                problems.append(
                    f"/linux/{key}/{i}: host ids {host}-{host + size - 1} are "
                    f"not granted to user {name} in {path}"
                )
        if key == "uidMappings":
            maps.uid_tool = found
        else:
            maps.gid_tool = found
    return maps


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return str(uid)


def write_idmaps(pid: int, uid_map: str, gid_map: str, maps: "IdMaps") -> None:
    """Write the maps of `pid`'s new user namespace as `maps` says (see plan_idmaps)."""
    from .errors import InitError

    if maps.deny_setgroups:
        _write(f"/proc/{pid}/setgroups", "deny")
    for name, text, tool in (
        ("uid_map", uid_map, maps.uid_tool),
        ("gid_map", gid_map, maps.gid_tool),
    ):
        if not tool:
            _write(f"/proc/{pid}/{name}", text)
            continue
        import subprocess

        argv = [tool, str(pid)] + text.split()
        r = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if r.returncode != 0:
            said = (r.stdout.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
            raise InitError(0, f"{' '.join(argv)}: {said}")


def _write(path: str, text: str) -> None:
    from .errors import InitError

    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise InitError(e.errno or 0, f"write {path}") from None


def plan_rootless(plan, linux: dict, mounts: list, new: set, joined: set, problems: list) -> None:
    """What a non-root caller's plan needs (plan.build calls it only for one): a user
    namespace, how its maps get written, and no setgroups(2) where it is denied."""
    if "user" not in new and "user" not in joined:
        problems.append(
            f"/linux/namespaces: rootless container requires user namespaces "
            f"(ocirun runs as uid {os.geteuid()}, not root)"
        )
        return
    if "user" not in new:
        return
    plan.ns.idmaps = plan_idmaps(linux, problems)
    _check_mount_ids(mounts, linux, problems)
    if plan.ns.idmaps.deny_setgroups:
        if plan.process.groups:
            problems.append(
                "/process/user/additionalGids: cannot set any additional groups "
                "in a rootless container (setgroups is denied in its user "
                "namespace: only the caller's own gid is mapped)"
            )
        plan.process.keep_groups = True


def _mapped(cid: int, mappings: list) -> bool:
    return any(
        int(m["containerID"]) <= cid < int(m["containerID"]) + int(m["size"]) for m in mappings
    )


def _check_mount_ids(mounts: list, linux: dict, problems: list) -> None:
    """uid=/gid= mount options must name ids the container maps (runc checks it too: the
    kernel's EINVAL would not say which mount); idmapped mounts are root's."""
    for i, m in enumerate(mounts):
        if (
            m.get("uidMappings")
            or m.get("gidMappings")
            or {"idmap", "ridmap"} & set(m.get("options") or [])
        ):
            problems.append(
                f"/mounts/{i}: idmapped mounts need ocirun to run as root "
                "(mount_setattr on the host's mounts), not in a rootless container"
            )
        for opt in m.get("options") or []:
            key, eq, value = opt.partition("=")
            if not eq or key not in ("uid", "gid") or not value.isdigit():
                continue
            if not _mapped(int(value), linux.get(f"{key}Mappings") or []):
                problems.append(
                    f"/mounts/{i}: cannot specify {key}={value}: {key} {value} "
                    "is not mapped in this rootless container"
                )
