"""The on-disk cache of compiled seccomp filters: linux.seccomp -> seccomp.Filter, by content.

`create` and `exec` compile the same profile over and over. compile_cached() keys a profile
by its canonical JSON plus what the program depends on (the libseccomp and shim this process
maps, the machine, the kernel release, the compiler's and this module's code) and keeps one
`<key>.bpf` file per profile in a cache.Store: a directory that must be ours and not
group/world-writable, bounded in entries and bytes. A hit calls no libseccomp function and
never reaches seccomp.compile().

Nothing heavy at import time: sha256 is _lean's (the builtin module, not hashlib), and
the compiled shim is imported only when the first key is computed (to name its file).
"""

from __future__ import annotations

import os

from . import _lean as json
from . import seccomp as sc
from ._lean import sha256 as _sha256
from .seccomp import Filter

_CACHE_MAGIC = b"ocirun-seccomp-cache 1\n"
_CACHE_MAX = 1 << 20
_static: bytes | None = None


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
    """The per-process part of the cache key (memoized): the libseccomp and shim in use
    (the shim holds the C half of the compiler), the machine, the kernel, and the Python
    code that compiles or stores a filter: all of it what is installed, never the source
    tree."""
    global _static
    if _static is None:
        uts = os.uname()
        parts = [_libseccomp_id(), uts.machine, uts.release]
        here = os.path.dirname(os.path.abspath(__file__))
        compilers = (sc.__file__, os.path.join(here, "seccomp_stub.py"), __file__)
        for path in (os.path.abspath(p) for p in compilers):
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


def compile_cached(seccomp: dict, cache_dir: str | None) -> Filter:
    """seccomp.compile(), memoized in cache_dir (created 0700; None: no cache). The directory
    is only used when it is ours and not group/world-writable; otherwise this compiles
    without it (and says so in Filter.notes). A hit calls no libseccomp function."""
    from .cache import Store

    key = cache_key(seccomp)
    with Store(cache_dir) as store:
        if store.fd < 0:
            filt = sc.compile(seccomp)
            if cache_dir:
                filt.notes.append(f"seccomp cache {cache_dir!r} not used: {store.why}")
            return filt
        hit = _cache_read(store, key)
        if hit is not None:
            return hit
        filt = sc.compile(seccomp)
        _cache_write(store, key, filt)
        return filt


def _cache_read(store, key: str) -> Filter | None:
    data = store.get(key + ".bpf", _CACHE_MAX)
    if data is None or not data.startswith(_CACHE_MAGIC):
        return None
    head, sep, bpf = data[len(_CACHE_MAGIC) :].partition(b"\n")
    try:
        meta = json.loads(head)
        if (
            not sep
            or meta["key"] != key
            or meta["len"] != len(bpf)
            or len(bpf) % 8
            or not bpf
            or meta["sha256"] != _sha256(bpf).hexdigest()
        ):
            return None
        return Filter(
            bpf,
            int(meta["flags"]),
            bool(meta["notify"]),
            list(meta["warnings"]),
            list(meta["notes"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _cache_write(store, key: str, filt: Filter) -> None:
    """Best effort: a failure only costs a compile next time. Readers see the old file, no
    file, or the whole new one (cache.Store.put)."""
    meta = {
        "key": key,
        "len": len(filt.bpf),
        "sha256": _sha256(filt.bpf).hexdigest(),
        "flags": filt.flags,
        "notify": filt.notify,
        "warnings": filt.warnings,
        "notes": filt.notes,
    }
    store.put(key + ".bpf", _CACHE_MAGIC + json.dumps(meta).encode() + b"\n" + filt.bpf)
