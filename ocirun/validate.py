"""Validate a config.json (OCI runtime-spec 1.3.0): the schema, then semantic checks
(validate_rules.py).

Two passes: the project's JSON Schema (schemas/*.json, draft-04) for shapes, types and
enums, then checks the schema cannot express (absolute paths, duplicates, cross-field
rules, exact capability/rlimit names). Every problem is reported as "JSONPOINTER: message".

This module is the cold path: `spec.load_bundle_cached` imports it only when a config has
not been validated before. jsonschema (tens of ms to import) is imported only here, lazily.
"""

from __future__ import annotations

import functools
import json
import os

from ._lean import Iterable
from .spec import TOP_SCHEMA, schemas_dir
from .validate_rules import (  # noqa: F401 (NOTIFY_FORBIDDEN: seccomp's docs name it here)
    NOTIFY_FORBIDDEN,
    pointer,
    semantic_problems,
    sort_key,
)

# --------------------------------------------------------------------------- schemas


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


# --------------------------------------------------------------------------- validate


MAX_DEPTH = 128  # arrays/objects in arrays/objects; real configs stay below 10


def _too_deep(value) -> str | None:
    """A problem when `value` nests arrays/objects more than MAX_DEPTH levels deep (no
    config needs it, and the schema walk, repr and copies recurse once per level), or holds
    a string (or key) no syscall can take: a NUL would cut it short where it reaches C, an
    unpaired surrogate ("\\ud800" in the JSON) is not Unicode and has no UTF-8 form."""
    stack: list[tuple[object, int, tuple]] = [(value, 1, ())]
    while stack:
        v, depth, parts = stack.pop()
        items: Iterable[tuple[object, object]]
        if isinstance(v, dict):
            items = v.items()
        elif isinstance(v, list):
            items = enumerate(v)
        else:
            continue
        if depth > MAX_DEPTH:
            return f"{pointer(parts[:6])}: nested more than {MAX_DEPTH} levels deep"
        for k, sub in items:
            for text, where in ((k, "key"), (sub, "value")):
                if isinstance(text, str):
                    bad = _bad_string(text)
                    if bad:
                        at = parts + (k,) if where == "value" else parts
                        return f"{pointer(at)}: {where} {bad}"
            if isinstance(sub, (dict, list)):
                stack.append((sub, depth + 1, parts + (k,)))
    return None


def _bad_string(text: str) -> str | None:
    if "\0" in text:
        return "contains a NUL character"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (not Unicode, no UTF-8 form)"
    return None


def validate(config: dict) -> list[str]:
    """All problems with `config`, each 'JSONPOINTER: message'. Schema errors first
    (sorted by path), then semantic ones. An empty list means valid."""
    deep = _too_deep(config)
    if deep:
        return [deep]
    problems = _schema_problems(config)
    if isinstance(config, dict):
        problems += [p for p in semantic_problems(config) if p not in problems]
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
        if err.instance is None and message.startswith("None "):
            # a null array element (null members are gone, ocirun/gonull.py): JSON's word
            message = "null" + message[4:]
        found.append((sort_key(err.absolute_path), pointer(err.absolute_path), message))
    found.sort(key=lambda t: (t[0], t[2]))
    out: list[str] = []
    for _key, path, msg in found:
        line = f"{path}: {msg}"
        if line not in out:
            out.append(line)
    return out
