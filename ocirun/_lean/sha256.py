"""sha256 from the interpreter's builtin module: `hashlib` loads OpenSSL (_hashlib), ~2.5 ms
measured, and create hashes its config (spec.cache_key) and seccomp profile on every call."""

try:
    from _sha256 import sha256 as _ctor  # builtin, CPython up to 3.11
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from _sha2 import sha256 as _ctor  # 3.12+
    except ImportError:
        from hashlib import sha256 as _ctor


def sha256(data: bytes = b""):
    """hashlib.sha256(data), the same digest."""
    return _ctor(data)
