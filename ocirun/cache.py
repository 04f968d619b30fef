"""ocirun's on-disk cache: validated-config verdicts (spec.py) and compiled seccomp filters
(seccomp_cache.py), each entry named by a hash of everything it depends on.

Never under --root: the state root holds containers only (engines check that an emptied
root is empty). Where it lives:
  $OCIRUN_CACHE_DIR, if set (set but empty: no cache at all);
  else /var/cache/ocirun for root (in the initial user namespace);
  else $XDG_CACHE_HOME/ocirun, or ~/.cache/ocirun.
One directory per kind of entry below it (`path(kind)`).

Bounded: after each write a store keeps at most MAX_ENTRIES entries and MAX_BYTES bytes,
dropping the least recently used first (and the temporaries of writers that died; a hit
refreshes an entry's mtime, at most once a minute). Concurrent writers are fine: entries
appear by rename, whole or not at all.
Best effort throughout: a directory that can't be made, isn't ours, is read-only or full
only means no caching; nothing here ever fails a container.
"""

import os
import stat

ENV = "OCIRUN_CACHE_DIR"
MAX_ENTRIES = 256
MAX_BYTES = 4 << 20
_REFRESH_NS = 60 * 10**9  # a hit re-stamps an entry older than this
_STALE_TMP_NS = 600 * 10**9  # a temporary this old was left by a killed writer


def base_dir() -> str | None:
    """The cache's top directory, or None when there is to be no cache."""
    env = os.environ.get(ENV)
    if env is not None:
        try:
            return os.path.abspath(env) if env else None
        except OSError:  # relative, in a cwd that was removed
            return None
    if os.geteuid() == 0:
        from .rootless import in_user_namespace

        # root of a user namespace (rootless podman runs its runtime so) can't own
        # /var/cache/ocirun: its user's cache, as for a non-root caller
        if not in_user_namespace():
            return "/var/cache/ocirun"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and xdg.startswith("/"):
        return os.path.join(xdg, "ocirun")
    home = os.environ.get("HOME")
    if not home or not home.startswith("/"):
        return None
    return os.path.join(home, ".cache", "ocirun")


def path(kind: str) -> str | None:
    """The directory of one kind of entry ("config", "seccomp"), or None (no cache)."""
    base = base_dir()
    return os.path.join(base, kind) if base else None


class Store:
    """One cache directory, used through a directory fd (opened O_NOFOLLOW) and only when it
    is ours and not group/world-writable; `why` says why not otherwise. No method raises
    OSError."""

    def __init__(self, directory: str | None):
        self.path = directory
        self.fd = -1
        self.why = "" if directory else "no cache directory"
        if not directory:
            return
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (OSError, ValueError) as e:  # ValueError: a NUL in $OCIRUN_CACHE_DIR
            self.why = getattr(e, "strerror", None) or str(e)
            return
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            os.close(fd)
            self.why = (
                f"owned by uid {st.st_uid} with mode {st.st_mode & 0o7777:o} (want "
                "ours, not group/world-writable)"
            )
            return
        self.fd = fd

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def get(self, name: str, max_size: int = 1 << 20) -> bytes | None:
        """The entry's bytes, or None: absent, not a regular file of ours, too big."""
        if self.fd < 0:
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != os.geteuid()
                or st.st_mode & 0o022
                or st.st_size > max_size
            ):
                return None
            data = os.read(fd, st.st_size + 1) if st.st_size else b""
            if len(data) != st.st_size:
                return None
            now = _now_ns()
            if now - st.st_mtime_ns > _REFRESH_NS:
                try:
                    os.utime(fd, ns=(now, now))  # recently used: evicted last
                except OSError:
                    pass  # a read-only cache still serves hits
            return data
        except OSError:
            return None
        finally:
            os.close(fd)

    def put(self, name: str, data: bytes) -> bool:
        """Write the entry (temporary + rename), then trim the store. False if not written."""
        if self.fd < 0:
            return False
        tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=self.fd,
            )
        except OSError:
            return False
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError:  # ENOSPC, EDQUOT, EIO...
            self._unlink(tmp)
            return False
        self.trim()
        return True

    def trim(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        """Drop the least recently used entries beyond the bounds, and stale temporaries."""
        if self.fd < 0:
            return
        entries, total, now = [], 0, _now_ns()
        try:
            with os.scandir(self.fd) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if e.name.endswith(".tmp"):
                        if now - st.st_mtime_ns > _STALE_TMP_NS or _writer_gone(e.name):
                            self._unlink(e.name)
                        continue
                    entries.append((st.st_mtime_ns, e.name, st.st_size))
                    total += st.st_size
        except OSError:
            return
        if len(entries) <= max_entries and total <= max_bytes:
            return
        entries.sort()
        for i, (_, name, size) in enumerate(entries):
            if len(entries) - i <= max_entries and total <= max_bytes:
                break
            self._unlink(name)
            total -= size

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass


def tmp_writer(name: str) -> int | None:
    """The pid of the writer of temporary `.<entry>.<pid>.<random>.tmp` (put), else None."""
    parts = name.split(".")
    return int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None


def _writer_gone(name: str) -> bool:
    """A temporary whose writer is dead (killed between its write and its rename)."""
    pid = tmp_writer(name)
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass
    return False


def _now_ns() -> int:
    import time

    return time.time_ns()


def drop_legacy(root: str) -> None:
    """Remove `<root>/.cache`, where ocirun kept its cache before: the state root is for
    containers only. Only a real directory of ours (links inside are removed, never
    followed); quietly."""
    legacy = os.path.join(root, ".cache")
    try:
        st = os.lstat(legacy)
    except OSError:
        return  # the usual case: one failed lstat
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return
    try:
        for top, dirs, files in os.walk(legacy, topdown=False):
            for n in files:
                os.unlink(os.path.join(top, n))
            for n in dirs:
                p = os.path.join(top, n)
                (os.unlink if os.path.islink(p) else os.rmdir)(p)
        os.rmdir(legacy)
    except OSError:
        pass
