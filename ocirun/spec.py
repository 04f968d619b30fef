"""Load a bundle's config.json, validated, on the hot path of create/run.

`load_bundle_cached` reads the bundle and skips validation for a config already validated
with the same schemas, validator code and libraries (a marker file named by the sha256 of
all of it, in the cache of ocirun/cache.py); only a miss imports `validate` (and, through
it, jsonschema).
"""

from __future__ import annotations

import os
import stat

from . import __version__, _lean, log
from .errors import BundleError, ConfigError, OcirunError

CONFIG_NAME = "config.json"


def validate(config: dict) -> list[str]:
    """All problems of `config`, each 'JSONPOINTER: message' (see ocirun.validate)."""
    from . import validate as v

    return v.validate(config)


TOP_SCHEMA = "config-schema.json"
_HERE = os.path.dirname(os.path.abspath(__file__))


def schemas_dir() -> str:
    """The directory holding the schema files: `ocirun/schemas`, package data installed
    with the code (the checkout's top-level schemas/ links to it)."""
    cand = os.path.join(_HERE, "schemas")
    if os.path.isfile(os.path.join(cand, TOP_SCHEMA)):
        return cand
    raise OcirunError(f"ocirun installation broken: {TOP_SCHEMA} not found in {cand}")


# --------------------------------------------------------------------------- bundle


def _read_bundle(bundle: str, config_name: str = CONFIG_NAME) -> tuple[str, bytes, dict]:
    """`config_name`: crun's --config, the config file's path relative to the bundle (as
    crun, which reads it after a chdir into the bundle) or absolute."""
    path = os.path.abspath(bundle or ".")
    if not os.path.exists(path):
        raise BundleError(f"bundle {path}: no such directory")
    if not os.path.isdir(path):
        raise BundleError(f"bundle {path}: not a directory")
    cfg_path = os.path.join(path, config_name)
    try:
        raw = read_regular(cfg_path)
    except FileNotFoundError:
        raise BundleError(
            f"JSON specification file {config_name} not found in bundle {path}"
        ) from None
    except OSError as e:
        raise BundleError(f"read {cfg_path}: {e.strerror or e}") from None
    try:
        config = _lean.loads(raw)  # NaN/Infinity refused: not JSON
    except _lean.JSONDecodeError as e:
        raise BundleError(
            f"{cfg_path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{cfg_path}: invalid JSON: {e}") from None
    if not isinstance(config, dict):
        raise BundleError(f"{cfg_path}: top level must be a JSON object, not {_json_type(config)}")
    if b"null" in raw and _go_nulls(config, ()):
        # what is validated, cached and saved with the state is the config without them
        raw = _lean.dumps(config).encode()
    return path, raw, config


def _go_nulls(value, at: tuple[str, ...]) -> bool:
    """Null members read as runc reads them (ocirun/gonull.py); True if any were there."""
    from .gonull import normalize

    return normalize(value, at)


MAX_JSON_FILE = 16 << 20  # a config of real use is a few KiB


def read_regular(path: str, limit: int = MAX_JSON_FILE, pipes: bool = False) -> bytes:
    """The bytes of regular file `path` (a link to one is fine). A FIFO, a device (a link to
    /dev/zero would be read for ever) or a file over `limit` bytes is an OSError. `pipes`:
    a pipe or FIFO is read too, to its end (a shell's `-p <(...)`, /dev/stdin); one
    without a writer reads as empty, never waits for one."""
    import errno

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
    try:
        st = os.fstat(fd)
        if pipes and stat.S_ISFIFO(st.st_mode):
            os.set_blocking(fd, True)
            return _read_to_end(fd, limit)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = os.read(fd, min(st.st_size, limit) + 1) if st.st_size else b""
        while len(data) <= limit:
            more = os.read(fd, limit + 1 - len(data))
            if not more:
                break
            data += more
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB")
        return data
    finally:
        os.close(fd)


def _read_to_end(fd: int, limit: int) -> bytes:
    import errno

    chunks, size = [], 0
    while size <= limit:
        more = os.read(fd, 65536)
        if not more:
            break
        chunks.append(more)
        size += len(more)
    if size > limit:
        raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB")
    return b"".join(chunks)


def _json_type(value) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _check_rootfs(bundle: str, config: dict) -> None:
    rel = config["root"]["path"]
    rootfs = rel if os.path.isabs(rel) else os.path.join(bundle, rel)
    if not os.path.exists(rootfs):
        raise BundleError(f"rootfs {rootfs} (root.path): no such directory")
    if not os.path.isdir(rootfs):
        raise BundleError(f"rootfs {rootfs} (root.path): not a directory")


def load_bundle(bundle: str) -> tuple[str, bytes, dict]:
    """Return (absolute bundle path, raw config.json bytes, parsed config), validated.
    BundleError for an unusable bundle/config file/rootfs; ConfigError for an invalid config."""
    path, raw, config = _read_bundle(bundle)
    problems = validate(config)
    if problems:
        raise ConfigError(problems)
    _check_rootfs(path, config)
    return path, raw, config


# --------------------------------------------------------------------------- cache


# The modules a verdict comes from: the validator, its tables, this loader, the JSON parser.
_VALIDATOR_SOURCES = ("spec.py", "validate.py", "validate_rules.py", "tables.py", "_lean.py")
# The libraries validate.py drives; an upgrade rewrites their files (new inode, mtime).
_VALIDATOR_LIBRARIES = ("jsonschema", "referencing")


def _library_ids() -> str:
    """Which jsonschema and referencing this interpreter would import (file identities of
    their __init__.py, found on sys.path without importing them), and the Python version."""
    import sys

    ids = [sys.version]
    for lib in _VALIDATOR_LIBRARIES:
        for d in sys.path:
            try:
                st = os.stat(os.path.join(d or ".", lib, "__init__.py"))
            except OSError:
                continue
            ids.append(f"{d}/{lib}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
            break
        else:
            ids.append(f"{lib}:-")
    return "\n".join(ids)


def cache_key(raw: bytes) -> str:
    """sha256 over everything a validation verdict depends on: the config bytes, every
    schema file, the ocirun version, the validator's own source and the libraries it uses.
    A change to any of them is a miss: a hit can't accept what validation now rejects."""
    h = _lean.sha256()

    def feed(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    feed("version", __version__.encode())
    feed("libraries", _library_ids().encode())
    here = os.path.dirname(os.path.abspath(__file__))
    for name in _VALIDATOR_SOURCES:
        with open(os.path.join(here, name), "rb") as f:
            feed(name, f.read())
    sdir = schemas_dir()
    for name in sorted(n for n in os.listdir(sdir) if n.endswith(".json")):
        with open(os.path.join(sdir, name), "rb") as f:
            feed("schema:" + name, f.read())
    feed("config", raw)
    return h.hexdigest()


def _verdict_cached(cache_dir: str | None, key: str) -> bool:
    from .cache import Store

    with Store(cache_dir) as store:
        return store.get(key, 0) is not None


def _write_marker(cache_dir: str | None, key: str) -> None:
    """Remember a valid config (an empty file named by its key); best effort."""
    from .cache import Store

    with Store(cache_dir) as store:
        store.put(key, b"")


def load_bundle_cached(
    bundle: str, cache_dir: str | None, config_name: str = CONFIG_NAME
) -> tuple[str, bytes, dict]:
    """load_bundle, but skip schema + semantic validation when `<cache_dir>/<cache_key>`
    exists (a config validated earlier with the same schemas and validator). The bundle
    and rootfs checks always run. cache_dir None: no cache. `config_name`: see _read_bundle."""
    path, raw, config = _read_bundle(bundle, config_name)
    log.phase("parse config.json")
    key = cache_key(raw)
    hit = _verdict_cached(cache_dir, key)
    if not hit:
        problems = validate(config)
        if problems:
            raise ConfigError(problems)
        _write_marker(cache_dir, key)
    log.phase("validate (cache hit)" if hit else "validate (schema + checks, cached now)")
    _check_rootfs(path, config)
    return path, raw, config


def validate_process_cached(process: dict, cache_dir: str | None, source: str) -> None:
    """Validate an exec's process object (from --process FILE or the flags) the way a
    config's process is validated, cached the same way. Problems name `source`."""
    raw = _lean.dumps(process, sort_keys=True).encode()
    key = cache_key(b"process\0" + raw)
    if _verdict_cached(cache_dir, key):
        return
    wrapper = {"ociVersion": "1.3.0", "root": {"path": "/"}, "process": process}
    problems = [p for p in validate(wrapper) if p.startswith("/process")]
    if problems:
        raise ConfigError(problems, source=source)
    _write_marker(cache_dir, key)


def read_json_object(
    path: str, what: str, *, at: tuple[str, ...] = (), dash_is_stdin: bool = False
) -> dict:
    """The JSON object in file `path` that a flag names (exec --process, update
    --resources: there "-" is standard input); `what` words the error for a non-object.
    Its null members are read as runc reads them, as the part `at` of a config
    (("process",), ("linux", "resources"))."""
    try:
        if dash_is_stdin and path == "-":
            import sys

            text = sys.stdin.buffer.read()
        else:
            text = read_regular(path, pipes=True)
        value = _lean.loads(text)
    except OSError as e:
        raise OcirunError(f"read {path}: {e.strerror}") from None
    except ValueError as e:
        raise OcirunError(f"{path}: invalid JSON: {e}") from None
    if not isinstance(value, dict):
        raise OcirunError(f"{path}: {what} must be a JSON object")
    if b"null" in text:
        _go_nulls(value, at)
    return value


def validate_resources(resources: dict) -> None:
    """Validate the linux.resources object `update` was given (schema + semantics)."""
    wrapper = {
        "ociVersion": "1.3.0",
        "root": {"path": "/"},
        "process": {"args": ["x"], "cwd": "/"},
        "linux": {"resources": resources},
    }
    problems = [
        p[len("/linux/resources") :] or "/"
        for p in validate(wrapper)
        if p.startswith("/linux/resources")
    ]
    if problems:
        raise ConfigError(problems, source="resources")
