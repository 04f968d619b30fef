"""Load and validate a bundle's config.json (OCI runtime-spec 1.3.0).

Validation is two passes: the project's JSON Schema (schemas/*.json, draft-04) for shapes,
types and enums, then semantic checks the schema cannot express (absolute paths,
duplicates, cross-field rules, exact capability/rlimit names). Every problem is reported
as "JSONPOINTER: message".

Importing jsonschema costs tens of milliseconds, so it is imported lazily, only when a
config actually has to be validated; `load_bundle_cached` skips validation entirely for a
config already validated with the same schemas and validator code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat

from . import __version__, tables
from .errors import BundleError, ConfigError, OcirunError, UsageError

TOP_SCHEMA = "config-schema.json"
CONFIG_NAME = "config.json"

# Override for tests/packaging; None = search next to the package (see schemas_dir()).
SCHEMAS_DIR: str | None = None

_HERE = os.path.dirname(os.path.abspath(__file__))
_SPEC_MAJOR = "1"


# --------------------------------------------------------------------------- schemas


def schemas_dir() -> str:
    """The directory holding the schema files: SCHEMAS_DIR if set, else `ocirun/schemas`
    (installed package data), else `<repo>/schemas` (source checkout)."""
    if SCHEMAS_DIR:
        return SCHEMAS_DIR
    for cand in (os.path.join(_HERE, "schemas"), os.path.join(os.path.dirname(_HERE), "schemas")):
        if os.path.isfile(os.path.join(cand, TOP_SCHEMA)):
            return cand
    raise OcirunError(f"ocirun installation broken: {TOP_SCHEMA} not found next to {_HERE}")


def _schema_files(sdir: str) -> list[str]:
    return sorted(n for n in os.listdir(sdir) if n.endswith(".json"))


@functools.lru_cache(maxsize=4)
def _validator(sdir: str, stamp: tuple):
    """A Draft4Validator for config-schema.json, every schema file registered under its
    file name (relative $refs like "defs.json#/definitions/uint32" resolve offline).
    `stamp` (names + mtimes + sizes) only keys the cache."""
    import jsonschema
    from referencing import Registry
    from referencing.jsonschema import DRAFT4

    resources = []
    for name in _schema_files(sdir):
        with open(os.path.join(sdir, name), "rb") as f:
            resources.append((name, DRAFT4.create_resource(json.loads(f.read()))))
    registry = Registry().with_resources(resources)
    top = registry.contents(TOP_SCHEMA)
    return jsonschema.Draft4Validator(top, registry=registry)


def _get_validator():
    sdir = schemas_dir()
    stamp = []
    for name in _schema_files(sdir):
        st = os.stat(os.path.join(sdir, name))
        stamp.append((name, st.st_mtime_ns, st.st_size))
    return _validator(sdir, tuple(stamp))


# --------------------------------------------------------------------------- helpers


def _escape(part) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(parts) -> str:
    """JSON pointer for a path given as a sequence of keys/indices; the root is "/"."""
    parts = list(parts)
    if not parts:
        return "/"
    return "".join("/" + _escape(p) for p in parts)


def _sort_key(parts) -> tuple:
    # ints sort before strings at the same depth, numerically; strings lexically.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _obj(v) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v) -> list:
    return v if isinstance(v, list) else []


# --------------------------------------------------------------------------- validate


def validate(config: dict) -> list[str]:
    """All problems with `config`, each 'JSONPOINTER: message'. Schema errors first
    (sorted by path), then semantic ones. An empty list means valid."""
    problems = _schema_problems(config)
    if isinstance(config, dict):
        problems += [p for p in _semantic_problems(config) if p not in problems]
    return problems


def _schema_problems(config) -> list[str]:
    from jsonschema.exceptions import best_match

    found = []
    for err in _get_validator().iter_errors(config):
        message = err.message
        if err.context:
            if all(sub.validator == "required" and not sub.relative_path for sub in err.context):
                # anyOf of alternatives like [{"required": ["a"]}, {"required": ["b"]}]
                names = [repr(n) for sub in err.context for n in sub.validator_value]
                message = f"at least one of {', '.join(dict.fromkeys(names))} is required"
            else:
                # anyOf/oneOf: report the most relevant sub-error.
                err = best_match([err]) or err
                message = err.message
        found.append((_sort_key(err.absolute_path), pointer(err.absolute_path), message))
    found.sort(key=lambda t: (t[0], t[2]))
    out: list[str] = []
    for _key, path, msg in found:
        line = f"{path}: {msg}"
        if line not in out:
            out.append(line)
    return out


_CAP_FORM = re.compile(r"^CAP_[A-Z_]+$")
_RLIMIT_FORM = re.compile(r"^RLIMIT_[A-Z]+$")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~].*)?$")
_HOOK_PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")


def _semantic_problems(cfg: dict) -> list[str]:
    out: list[str] = []

    def add(parts, msg: str) -> None:
        out.append(f"{pointer(parts)}: {msg}")

    def absolute(parts, value, what: str = "") -> None:
        if isinstance(value, str) and not value.startswith("/"):
            add(parts, f"{what}must be an absolute path, got {value!r}")

    # ociVersion: any 1.x
    version = cfg.get("ociVersion")
    if isinstance(version, str):
        m = _VERSION.match(version)
        if not m:
            add(["ociVersion"], f"invalid ociVersion {version!r}: expected 1.x.y")
        elif m.group(1) != _SPEC_MAJOR:
            add(["ociVersion"], f"unsupported ociVersion {version!r}: ocirun implements runtime-spec 1.x")

    # process (runc refuses to create a container without one)
    if "process" not in cfg:
        add([], "'process' is a required property")
    proc = cfg.get("process")
    if isinstance(proc, dict):
        if "args" not in proc:
            add(["process"], "'args' is a required property")
        elif isinstance(proc["args"], list) and not proc["args"]:
            add(["process", "args"], "must not be empty: it names the program to run")
        absolute(["process", "cwd"], proc.get("cwd"))
        _check_caps(proc, add)
        _check_rlimits(proc, add)

    # root
    if "root" not in cfg:
        add([], "'root' is a required property")

    # mounts
    for i, mount in enumerate(_list(cfg.get("mounts"))):
        dest = _obj(mount).get("destination")
        if isinstance(dest, str) and not dest.strip():
            add(["mounts", i, "destination"], "must not be empty")

    # hooks
    hooks = _obj(cfg.get("hooks"))
    for phase in _HOOK_PHASES:
        for i, hook in enumerate(_list(hooks.get(phase))):
            hook = _obj(hook)
            absolute(["hooks", phase, i, "path"], hook.get("path"))
            timeout = hook.get("timeout")
            if _is_int(timeout) and timeout <= 0:
                add(["hooks", phase, i, "timeout"], f"must be greater than zero, got {timeout}")

    linux = _obj(cfg.get("linux"))
    namespaces = _check_namespaces(linux, add)
    _check_id_mappings(linux, namespaces, add)

    # hostname/domainname need a UTS namespace of the container's own
    for key in ("hostname", "domainname"):
        if isinstance(cfg.get(key), str) and cfg[key] and "uts" not in namespaces:
            add([key], "setting it requires a uts namespace in /linux/namespaces")

    # timeOffsets
    offsets = linux.get("timeOffsets")
    if isinstance(offsets, dict) and offsets:
        if "time" not in namespaces:
            add(["linux", "timeOffsets"], "requires a time namespace in /linux/namespaces")
        elif namespaces["time"]:
            add(["linux", "timeOffsets"], "cannot be set when joining an existing time namespace (path)")
        for clock in offsets:
            if clock not in tables.TIME_CLOCKS:
                add(["linux", "timeOffsets", clock],
                    f"unknown clock {clock!r} (expected one of {', '.join(tables.TIME_CLOCKS)})")

    # devices
    for i, dev in enumerate(_list(linux.get("devices"))):
        dev = _obj(dev)
        absolute(["linux", "devices", i, "path"], dev.get("path"))
        dtype = dev.get("type")
        if dtype in ("c", "b", "u"):
            for key in ("major", "minor"):
                if key not in dev:
                    add(["linux", "devices", i], f"{key!r} is required for device type {dtype!r}")

    # masked / readonly paths
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_list(linux.get(key))):
            absolute(["linux", key, i], path)

    # sysctl names must not escape /proc/sys
    for name in _obj(linux.get("sysctl")):
        if not _sysctl_name_ok(name):
            add(["linux", "sysctl", name], f"invalid sysctl name {name!r}")

    _check_seccomp(linux, add)
    return out


def _check_caps(proc: dict, add) -> None:
    caps = _obj(proc.get("capabilities"))
    for cap_set in tables.CAP_SETS:
        for i, name in enumerate(_list(caps.get(cap_set))):
            if isinstance(name, str) and _CAP_FORM.match(name) and name not in tables.CAPS:
                add(["process", "capabilities", cap_set, i], f"unknown capability {name!r}")


def _check_rlimits(proc: dict, add) -> None:
    seen: dict[str, int] = {}
    for i, rl in enumerate(_list(proc.get("rlimits"))):
        rl = _obj(rl)
        rtype = rl.get("type")
        if isinstance(rtype, str) and _RLIMIT_FORM.match(rtype):
            if rtype not in tables.RLIMITS:
                add(["process", "rlimits", i, "type"], f"unknown rlimit {rtype!r}")
            elif rtype in seen:
                add(["process", "rlimits", i, "type"],
                    f"duplicate rlimit {rtype!r} (also at /process/rlimits/{seen[rtype]})")
            else:
                seen[rtype] = i
        soft, hard = rl.get("soft"), rl.get("hard")
        if _is_int(soft) and _is_int(hard) and soft > hard:
            add(["process", "rlimits", i], f"soft limit {soft} is greater than hard limit {hard}")


def _check_namespaces(linux: dict, add) -> dict[str, str]:
    """Check linux.namespaces; return {type: path or ''} for the well-formed entries."""
    found: dict[str, str] = {}
    where: dict[str, int] = {}
    for i, ns in enumerate(_list(linux.get("namespaces"))):
        ns = _obj(ns)
        ntype, path = ns.get("type"), ns.get("path")
        if isinstance(path, str) and path:
            if not path.startswith("/"):
                add(["linux", "namespaces", i, "path"], f"must be an absolute path, got {path!r}")
        if not (isinstance(ntype, str) and ntype in tables.NAMESPACES):
            continue
        if ntype in found:
            add(["linux", "namespaces", i, "type"],
                f"duplicate namespace type {ntype!r} (also at /linux/namespaces/{where[ntype]})")
            continue
        found[ntype] = path if isinstance(path, str) else ""
        where[ntype] = i
    return found


def _check_id_mappings(linux: dict, namespaces: dict[str, str], add) -> None:
    kinds = (("uidMappings", "uid"), ("gidMappings", "gid"))
    if "user" in namespaces:
        if namespaces["user"]:
            return  # joining an existing user namespace: its mappings are already set
        for key, kind in kinds:
            value = linux.get(key)
            if value is None or (isinstance(value, list) and not value):
                add(["linux", key] if key in linux else ["linux"],
                    f"a new user namespace requires {kind} mappings ({key!r} is missing or empty)")
    else:
        for key, kind in kinds:
            if isinstance(linux.get(key), list) and linux[key]:
                add(["linux", key], f"{kind} mappings require a user namespace in /linux/namespaces")


def _sysctl_name_ok(name: str) -> bool:
    if not name or name.startswith(("/", ".")):
        return False
    if "/" in name:
        return all(part not in ("", ".", "..") for part in name.split("/"))
    return all(part for part in name.split("."))


def _check_seccomp(linux: dict, add) -> None:
    sec = _obj(linux.get("seccomp"))
    if not sec:
        return
    base = ["linux", "seccomp"]
    has_listener = isinstance(sec.get("listenerPath"), str) and bool(sec["listenerPath"])
    if sec.get("listenerMetadata") and not has_listener:
        add(base + ["listenerMetadata"], "must not be set without listenerPath")
    default = sec.get("defaultAction")
    if default == "SCMP_ACT_NOTIFY":
        add(base + ["defaultAction"], "SCMP_ACT_NOTIFY cannot be the default action")
    if "defaultErrnoRet" in sec and isinstance(default, str) and default not in _ERRNO_ACTIONS:
        add(base + ["defaultErrnoRet"], f"not supported with defaultAction {default!r}")
    uses_notify = False
    for i, rule in enumerate(_list(sec.get("syscalls"))):
        rule = _obj(rule)
        action = rule.get("action")
        uses_notify = uses_notify or action == "SCMP_ACT_NOTIFY"
        if "errnoRet" in rule and isinstance(action, str) and action not in _ERRNO_ACTIONS:
            add(base + ["syscalls", i, "errnoRet"], f"not supported with action {action!r}")
    if uses_notify and not has_listener:
        add(base + ["listenerPath"], "required when a rule uses SCMP_ACT_NOTIFY")


# --------------------------------------------------------------------------- bundle


def _read_bundle(bundle: str) -> tuple[str, bytes, dict]:
    path = os.path.abspath(bundle or ".")
    if not os.path.exists(path):
        raise BundleError(f"bundle {path}: no such directory")
    if not os.path.isdir(path):
        raise BundleError(f"bundle {path}: not a directory")
    cfg_path = os.path.join(path, CONFIG_NAME)
    try:
        with open(cfg_path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise BundleError(f"JSON specification file {CONFIG_NAME} not found in bundle {path}") from None
    except OSError as e:
        raise BundleError(f"read {cfg_path}: {e.strerror or e}") from None
    try:
        config = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise BundleError(f"{cfg_path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{cfg_path}: invalid JSON: {e}") from None
    if not isinstance(config, dict):
        raise BundleError(f"{cfg_path}: top level must be a JSON object, not {_json_type(config)}")
    return path, raw, config


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


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


def cache_key(raw: bytes) -> str:
    """sha256 over everything a validation verdict depends on: the config bytes, every
    schema file, the ocirun version and the validator's own source (spec.py, tables.py)."""
    h = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    feed("version", __version__.encode())
    for src in (__file__, tables.__file__):
        with open(src, "rb") as f:
            feed(os.path.basename(src), f.read())
    sdir = schemas_dir()
    for name in _schema_files(sdir):
        with open(os.path.join(sdir, name), "rb") as f:
            feed("schema:" + name, f.read())
    feed("config", raw)
    return h.hexdigest()


def _cache_dir_trusted(cache_dir: str) -> bool:
    """Only trust markers in a directory we own that nobody else can write to."""
    try:
        st = os.lstat(cache_dir)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _write_marker(cache_dir: str, key: str) -> None:
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        if not _cache_dir_trusted(cache_dir):
            return
        marker = os.path.join(cache_dir, key)
        tmp = f"{marker}.tmp.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.close(fd)
        os.rename(tmp, marker)
    except OSError:
        pass  # the cache is only an optimisation


def load_bundle_cached(bundle: str, cache_dir: str) -> tuple[str, bytes, dict]:
    """load_bundle, but skip schema + semantic validation when `<cache_dir>/<cache_key>`
    exists (a config validated earlier with the same schemas and validator). The bundle
    and rootfs checks always run."""
    path, raw, config = _read_bundle(bundle)
    key = cache_key(raw)
    hit = os.path.exists(os.path.join(cache_dir, key)) and _cache_dir_trusted(cache_dir)
    if not hit:
        problems = validate(config)
        if problems:
            raise ConfigError(problems)
        _write_marker(cache_dir, key)
    _check_rootfs(path, config)
    return path, raw, config


# --------------------------------------------------------------------------- container id

_ID_CHARS = re.compile(r"[A-Za-z0-9_+.-]+")


def check_id(cid: str) -> None:
    """Raise UsageError unless `cid` is a valid container id: non-empty, not '.' or '..',
    only [A-Za-z0-9_+.-] (so never '/')."""
    if not isinstance(cid, str) or not cid:
        raise UsageError('invalid container id "": must not be empty')
    shown = json.dumps(cid, ensure_ascii=False)  # quoted, control characters escaped
    if "/" in cid:
        raise UsageError(f'invalid container id {shown}: must not contain "/"')
    if cid in (".", ".."):
        raise UsageError(f'invalid container id {shown}: "." and ".." are reserved')
    if not _ID_CHARS.fullmatch(cid):
        raise UsageError(f"invalid container id {shown}: only letters, digits and _ + . - are allowed")
