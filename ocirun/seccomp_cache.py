"""The on-disk cache of compiled seccomp filters: linux.seccomp -> seccomp.Filter, by content.

`create` and `exec` compile the same profile over and over. compile_cached() keys a profile
by its canonical JSON plus what the program depends on (the libseccomp and shim this process
maps, the machine, the kernel release, the compiler's and this module's code) and keeps one
`<key>.bpf` file per profile in a directory that must be ours and not group/world-writable.
A hit calls no libseccomp function and never reaches seccomp.compile().

Nothing heavy at import time: sha256 comes from the builtin module when there is one, and
the compiled shim is imported only when the first key is computed (to name its file).
"""

from __future__ import annotations

import os

from . import fastjson as json
from . import seccomp as sc
from .seccomp import Filter

_CACHE_MAGIC = b"ocirun-seccomp-cache 1\n"
_CACHE_MAX = 1 << 20
_static: bytes | None = None
_sha256_ctor = None


def _sha256(data: bytes = b""):
    global _sha256_ctor
    if _sha256_ctor is None:
        try:
            from _sha256 import sha256 as ctor  # builtin up to 3.11
        except ImportError:
            try:
                from _sha2 import sha256 as ctor  # 3.12+
            except ImportError:
                from hashlib import sha256 as ctor
        _sha256_ctor = ctor
    return _sha256_ctor(data)


def _file_id(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:-"
    return f"{path}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _libseccomp_id() -> str:
    """Which libseccomp this process runs (path, version in its name, inode, size, mtime),
    read from /proc/self/maps: no libseccomp call."""
    from . import _shim
    found = []
    try:
        with open("/proc/self/maps", "rb") as f:
            for line in f:
                if b"libseccomp" in line:
                    path = line.split(None, 5)[-1].strip().decode(errors="replace")
                    if path.startswith("/") and path not in found:
                        found.append(path)
    except OSError:
        pass
    return ";".join(_file_id(p) for p in found) + "|" + _file_id(_shim.__file__)


def _static_key() -> bytes:
    """The per-process part of the cache key (memoized): the libseccomp and shim in use,
    the machine, the kernel, and the code that compiles or stores a filter."""
    global _static
    if _static is None:
        uts = os.uname()
        parts = [_libseccomp_id(), uts.machine, uts.release]
        here = os.path.dirname(os.path.abspath(__file__))
        for path in (os.path.abspath(sc.__file__), os.path.abspath(__file__),
                     os.path.join(os.path.dirname(here), "csrc", "seccomp.c")):
            try:
                with open(path, "rb") as f:
                    parts.append(_sha256(f.read()).hexdigest())
            except OSError:
                parts.append("-")
        _static = "\0".join(parts).encode()
    return _static


def cache_key(seccomp: dict) -> str:
    text = json.dumps(seccomp, sort_keys=True)
    h = _sha256(_CACHE_MAGIC)
    h.update(_static_key())
    h.update(b"\0")
    h.update(text.encode())
    return h.hexdigest()


def compile_cached(seccomp: dict, cache_dir: str) -> Filter:
    """seccomp.compile(), memoized in cache_dir (created 0700). The directory is only used
    when it is ours and not group/world-writable; otherwise this compiles without it (and
    says so in Filter.warnings). A hit calls no libseccomp function."""
    key = cache_key(seccomp)
    dfd, why = _open_cache_dir(cache_dir)
    if dfd is None:
        filt = sc.compile(seccomp)
        filt.warnings.append(f"seccomp cache {cache_dir!r} not used: {why}")
        return filt
    try:
        hit = _cache_read(dfd, key)
        if hit is not None:
            return hit
        filt = sc.compile(seccomp)
        _cache_write(dfd, key, filt)
        return filt
    finally:
        os.close(dfd)


def _open_cache_dir(path: str):
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        return None, e.strerror or str(e)
    st = os.fstat(dfd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(dfd)
        return None, f"owned by uid {st.st_uid} with mode {st.st_mode & 0o7777:o} (want ours, " \
                     "not group/world-writable)"
    return dfd, ""


def _cache_read(dfd: int, key: str) -> Filter | None:
    try:
        fd = os.open(key + ".bpf", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != os.geteuid() \
                or st.st_mode & 0o022 or st.st_size > _CACHE_MAX:
            return None
        data = os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not data.startswith(_CACHE_MAGIC):
        return None
    head, sep, bpf = data[len(_CACHE_MAGIC):].partition(b"\n")
    try:
        meta = json.loads(head)
        if not sep or meta["key"] != key or meta["len"] != len(bpf) or len(bpf) % 8 or not bpf \
                or meta["sha256"] != _sha256(bpf).hexdigest():
            return None
        return Filter(bpf, int(meta["flags"]), bool(meta["notify"]), list(meta["warnings"]))
    except (ValueError, KeyError, TypeError):
        return None


def _cache_write(dfd: int, key: str, filt: Filter) -> None:
    """Best effort: a failure only costs a compile next time. tmp + rename, so readers see
    the old file, no file, or the whole new one."""
    meta = {"key": key, "len": len(filt.bpf), "sha256": _sha256(filt.bpf).hexdigest(),
            "flags": filt.flags, "notify": filt.notify, "warnings": filt.warnings}
    data = _CACHE_MAGIC + json.dumps(meta).encode() + b"\n" + filt.bpf
    tmp = f".{key}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
    except OSError:
        return
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, key + ".bpf", src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
