"""The state of containers under the root dir (default /run/ocirun): `<root>/<id>/`.

Each container dir (0700) holds `state.json` (written atomically: tmp + rename) and, between
create and start, `exec.fifo`. Before create makes any cgroup it writes down which it will
make in `cgroups.json`, so that `delete --force` can remove them even when state.json never
came to be (a create killed midway) or is damaged. A lock (flock on the dir) serializes
operations on one id.
The status is derived, never stored: the init pid alive with the start time we recorded
(a reused pid is someone else) -> paused if frozen, created while exec.fifo exists, else
running; otherwise stopped (status.py: the front door's own C, through cffi).
"""

import errno
import fcntl
import os
import time

from . import _lean as json
from .errors import (
    ContainerExists,
    ContainerNotFound,
    OcirunError,
    StateDamaged,
    UsageError,
    sys_error,
)

# The status names and their derivation; importers take them from here too.
from .status import (  # noqa: F401
    CREATED,
    CREATING,
    FIFO,
    PAUSED,
    RUNNING,
    STOPPED,
    derive_status,
    freezer_file,
    proc_start_time,
)

DEFAULT_ROOT = "/run/ocirun"
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"  # the config as created: later edits of the bundle don't count
CGROUPS_FILE = "cgroups.json"  # the cgroups create is about to make (Manager.planned_paths)
RESULT = "exec.result"  # the init reports a failure after `start` here (hooks, execve)

MAX_ID = 255  # NAME_MAX: the id names the state dir (and cgroups)
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")


def check_id(cid: str) -> None:
    """Raise UsageError unless `cid` is a valid container id: non-empty, not '.' or '..',
    only [A-Za-z0-9_+.-] (so never '/'), at most 255 of them. Every command checks it
    before it touches `<root>/<id>`, as runc does: `delete ../x` must not reach outside
    the root."""
    if not isinstance(cid, str) or not cid:
        raise UsageError('invalid container id "": must not be empty')
    if "/" in cid:
        why = 'must not contain "/"'
    elif cid in (".", ".."):
        why = '"." and ".." are reserved'
    elif not set(cid) <= _ID_CHARS:
        why = "only letters, digits and _ + . - are allowed"
    elif len(cid) > MAX_ID:
        why = f"longer than {MAX_ID} characters (it names a directory)"
        cid = cid[:32] + "..."
    else:
        return
    import json as stdjson  # the error path only

    shown = stdjson.dumps(cid, ensure_ascii=False)  # quoted, control characters escaped
    raise UsageError(f"invalid container id {shown}: {why}")


def now_rfc3339() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + f".{t % 10**9:09d}Z"


# state.json's mark of a container without a pid namespace of its own (none, or one it
# joined): its init's death does not end its other processes, so SIGKILL is for all of them.
SHARED_PIDNS = "shared_pidns"


def has_own_pid_namespace(config: dict) -> bool:
    """A new pid namespace, made for the container (runc's Namespaces.IsPrivate)."""
    namespaces = (config.get("linux") or {}).get("namespaces") or []
    return any(
        isinstance(ns, dict) and ns.get("type") == "pid" and not ns.get("path") for ns in namespaces
    )


def init_record(
    config: dict, cid: str, pid: int, bundle: str, rootfs: str, cgroup_paths: dict, **extra
) -> dict:
    """What state.json says of a container whose init `pid` create (or restore) started."""
    hooks = config.get("hooks") or {}
    if not has_own_pid_namespace(config):
        extra = {SHARED_PIDNS: True, **extra}
    return {
        "ociVersion": config.get("ociVersion", ""),
        "id": cid,
        "pid": pid,
        "start_time": proc_start_time(pid),
        "bundle": bundle,
        "rootfs": rootfs,
        "created": now_rfc3339(),
        "owner": "",
        "annotations": config.get("annotations") or {},
        "hooks": {k: hooks[k] for k in ("poststart", "poststop") if hooks.get(k)},
        "cgroup_paths": cgroup_paths,
        **extra,
    }


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to a temporary beside `path`, then rename it over `path`. Raises OSError;
    a failure leaves no temporary behind."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def root_error(root: str, exc: OSError) -> OcirunError:
    """An OSError on the root dir itself as one line: `root /x: Not a directory`."""
    if isinstance(exc, FileExistsError):  # os.makedirs: the root is there, but not a dir
        return sys_error(OSError(errno.ENOTDIR, ""), f"root {root}")
    return sys_error(exc, f"root {root}{_not_root_hint(exc, root)}")


def _not_root_hint(exc: OSError, path: str) -> str:
    """Why a non-root caller can't use the system's root dir, and what to do (only for the
    system's root: a --root the caller gave is theirs to fix)."""
    if exc.errno not in (errno.EPERM, errno.EACCES) or os.geteuid() == 0:
        return ""
    if path != DEFAULT_ROOT and not path.startswith(DEFAULT_ROOT + "/"):
        return ""
    return f" (as uid {os.geteuid()}: give --root, or set XDG_RUNTIME_DIR)"


class Container:
    """One container's state dir, locked for the lifetime of this object."""

    def __init__(
        self, root: str, cid: str, dirfd: int, data: dict | None, damage: str | None = None
    ):
        self.root = root
        self.id = cid
        self.dir = os.path.join(root, cid)
        self._dirfd = dirfd
        self.data = data or {}
        self.damage = damage  # why state.json could not be read (load(damaged_ok=True))

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str, cid: str) -> "Container":
        check_id(cid)
        path = os.path.join(root, cid)
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
        except OSError as e:
            raise root_error(root, e) from None
        from .rootless import xdg_root

        if root == xdg_root():
            # as runc: sticky, so that the session's cleanup of $XDG_RUNTIME_DIR (files
            # not touched for a while) leaves it alone
            st = os.stat(root)
            if not st.st_mode & 0o1000 and st.st_uid == os.geteuid():
                os.chmod(root, (st.st_mode & 0o777) | 0o1000)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise ContainerExists(cid) from None
        except OSError as e:
            raise sys_error(e, f"mkdir {path}{_not_root_hint(e, path)}") from None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return cls(root, cid, fd, None)

    @classmethod
    def load(cls, root: str, cid: str, *, damaged_ok: bool = False) -> "Container":
        """The container, locked. A damaged state.json raises StateDamaged, or with
        `damaged_ok` (delete --force) gives a container without data and with `damage`."""
        check_id(cid)
        path = os.path.join(root, cid)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(cid) from None
        except OSError as e:  # EACCES: a root dir we may not enter
            raise sys_error(e, f"open {path}") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = _read_state(path)
        except StateDamaged as e:
            if not damaged_ok:
                os.close(fd)
                raise
            return cls(root, cid, fd, None, e.message)
        if data is None:
            # Removed while we waited for the lock, or a create that died half-way.
            if not os.path.isdir(path):
                os.close(fd)
                raise ContainerNotFound(cid)
        return cls(root, cid, fd, data)

    def close(self) -> None:
        if self._dirfd >= 0:
            os.close(self._dirfd)
            self._dirfd = -1

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- contents --------------------------------------------------------------------------
    @property
    def fifo_path(self) -> str:
        return f"{self.dir}/{FIFO}"

    @property
    def result_path(self) -> str:
        return f"{self.dir}/{RESULT}"

    @property
    def pid(self) -> int:
        return int(self.data.get("pid") or 0)

    def save(self, data: dict) -> None:
        self.data = data
        self._write(STATE_FILE, json.dumps(data).encode())

    def save_config(self, raw: bytes) -> None:
        self._write(CONFIG_FILE, raw)

    def save_cgroups(self, paths: dict) -> None:
        """Write down the cgroups create is about to make, before it makes any."""
        self._write(CGROUPS_FILE, json.dumps(paths).encode())

    def cgroup_paths(self) -> dict | None:
        """The container's cgroups: from state.json, else (a create that died before
        writing it, a damaged state.json) from what create wrote down before making them."""
        paths = self.data.get("cgroup_paths")
        if paths:
            return paths
        try:
            with open(f"{self.dir}/{CGROUPS_FILE}", "rb") as f:
                paths = json.loads(f.read())
        except (OSError, ValueError):
            return None
        return paths if isinstance(paths, dict) else None

    def _write(self, name: str, data: bytes) -> None:
        path = f"{self.dir}/{name}"
        try:
            atomic_write(path, data)
        except OSError as e:  # ENOSPC, EROFS, ...
            raise sys_error(e, f"write {path}") from None

    def load_config(self) -> dict:
        path = f"{self.dir}/{CONFIG_FILE}"
        try:
            with open(path, "rb") as f:
                raw = f.read()
            config = json.loads(raw)  # as create saved it: without nulls (gonull)
        except OSError as e:
            raise sys_error(e, f"read {path}") from None
        except ValueError as e:
            raise OcirunError(f"read {path}: invalid JSON: {e}") from None
        if not isinstance(config, dict):
            raise OcirunError(f"read {path}: not a JSON object")
        return config

    def destroy(self) -> None:
        """Remove the state dir (flat: state.json, exec.fifo, temporaries)."""
        try:
            try:
                names = os.listdir(self.dir)
            except FileNotFoundError:
                names = []
            # config.json first, state.json last: a delete killed midway never leaves a
            # config.json without its state.json (which would read as damage)
            names.sort(key=lambda n: (n != CONFIG_FILE, n == STATE_FILE))
            for name in names:
                try:
                    os.unlink(f"{self.dir}/{name}")
                except FileNotFoundError:
                    pass
                except IsADirectoryError:
                    if name not in (STATE_FILE, CONFIG_FILE, CGROUPS_FILE):
                        raise  # a stray dir: reported, not removed
                    import shutil  # one of our files made a dir: damage to clean

                    shutil.rmtree(f"{self.dir}/{name}")
            try:
                os.rmdir(self.dir)
            except FileNotFoundError:
                pass
        except OSError as e:  # EBUSY, EPERM (an immutable file), EISDIR (a stray subdir)
            raise sys_error(e, f"remove {e.filename or self.dir}") from None
        finally:
            self.close()

    def status(self) -> str:
        return derive_status(self.dir, self.data)

    def oci_state(self) -> dict:
        """The state runtime-spec defines, with runc's extra fields (rootfs, created, owner)."""
        status = self.status()
        d = self.data
        out = {
            "ociVersion": d.get("ociVersion", "1.3.0"),
            "id": self.id,
            "pid": self.pid if status in (CREATED, RUNNING, PAUSED) else 0,
            "status": status,
            "bundle": d.get("bundle", ""),
            "rootfs": d.get("rootfs", ""),
            "created": d.get("created", ""),
            "owner": d.get("owner", ""),
        }
        if d.get("annotations"):
            out["annotations"] = d["annotations"]
        return out


def _read_state(path: str) -> dict | None:
    """state.json's contents; None when there is none (yet: a create in progress, or one
    that died before writing it). StateDamaged when there is one but it is not a state:
    written atomically, it is never half-written by us, so that is damage to report."""
    name = f"{path}/{STATE_FILE}"
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        _check_missing(path, name)
        return None
    except OSError as e:  # EIO, EACCES, EISDIR
        raise StateDamaged(name, (e.strerror or str(e)).lower()) from None
    return _parse_state(name, raw)


def _check_missing(path: str, name: str) -> None:
    """No state.json: a create at work or dead before writing it, unless the container's
    config.json (written after state.json) is there: then it was removed, which is damage."""
    if os.path.exists(f"{path}/{CONFIG_FILE}"):
        raise StateDamaged(name, "missing")


def _parse_state(name: str, raw: bytes) -> dict:
    if not raw.strip():
        raise StateDamaged(name, "empty file")
    try:
        data = json.loads(raw)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, nested too deeply
        raise StateDamaged(name, f"invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise StateDamaged(name, "not a JSON object")
    pid = data.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
        raise StateDamaged(name, "no init pid")
    return data


def list_ids(root: str) -> list[str]:
    """The container ids under root (none if root does not exist)."""
    try:
        with os.scandir(root) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except FileNotFoundError:
        return []
    except OSError as e:  # ENOTDIR, EACCES
        raise root_error(root, e) from None


_owners: dict[int, str] = {}


def owner_name(uid: int) -> str:
    """The user name of uid, or "#uid" when it has none (runc's `list` OWNER)."""
    name = _owners.get(uid)
    if name is None:
        import pwd

        try:
            name = pwd.getpwuid(uid).pw_name
        except (KeyError, OSError):
            name = f"#{uid}"
        _owners[uid] = name
    return name


def peek(root: str, cid: str) -> dict | None:
    """State of one container for `list`, without taking its lock; None if it has none (yet)
    or went away. A state we may not read is an error (`load container ID: ...`).
    Unlike `state` (owner "", as runc), the owner is the name of the state dir's owner."""
    path = os.path.join(root, cid)
    try:
        uid = os.stat(path).st_uid
        with open(f"{path}/{STATE_FILE}", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        _check_missing(path, f"{path}/{STATE_FILE}")
        return None  # removed meanwhile, or a create in progress (or dead half-way)
    except IsADirectoryError:
        raise StateDamaged(f"{path}/{STATE_FILE}", "is a directory") from None
    except OSError as e:  # EACCES: another user's container
        raise sys_error(e, f"load container {cid}") from None
    data = _parse_state(f"{path}/{STATE_FILE}", raw)  # damaged: `list` warns, goes on
    c = Container(root, cid, -1, data)
    return dict(c.oci_state(), owner=owner_name(uid))


def write_pid_file(path: str, pid: int) -> None:
    """Decimal, no newline, atomically (go-runc reads it the moment create returns)."""
    try:
        atomic_write(os.path.abspath(path), str(pid).encode(), 0o644)
    except OSError as e:
        raise sys_error(e, f"write pid file {path}") from None
