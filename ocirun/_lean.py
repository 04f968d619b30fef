"""What the command line does to start fast, in one place.

Engines run `ocirun create`, `exec` and `run` for every container and probe; the C front
door (csrc/launcher) answers state/start/kill/delete/list itself and execs `python3 -IS
-c <import ocirun.main>` for the rest and for its fallbacks (scripts/mklauncher.py), so
what Python imports is most of what those commands cost beyond the interpreter's own
start (~8 ms here). Three measures are kept, each because it saves well over 0.5 ms on
create/exec. Measured by swapping each for the ordinary way, 40 alternating runs through
the front door's fallback code (`python3 -IS -c`), best run, Python 3.11, 2-core dev VM:

- the hot commands' argv parser (`parse`, `dispatch`), built from the one declaration of
  the command line (ocirun/clispec.py): without it, create and exec go through the typer
  app (typer, click, pydantic, the click command tree): ~140 ms instead of ~18. Help,
  errors and the other commands go to the typer app (cli.py), built from the same
  declaration.
- `loads`/`dumps`: json.loads/dumps on the C accelerator alone. With the json module,
  which imports `re` and `enum` (json.decoder, json.encoder compile regexes): create
  +5.2 ms, exec +4.8 ms; nothing else on their path needs `re`.
- `sha256`: the builtin module's sha256. With hashlib, which loads OpenSSL: create +2.1
  ms, exec +2.2 ms (each hashes its config or process for the validation cache).
- `Callable`, `Iterable`, `Sequence` for annotations of the modules on create's and
  exec's path, from `_collections_abc`, the module `collections.abc` re-exports and `os`
  has already loaded: importing `collections.abc` runs the `collections` package, ~2.5 ms
  (`python -IS -c 'import os, collections'` 10.3 ms against 7.8, hyperfine).
- `cleanup.Cleanup` is not `contextlib.ExitStack` for the same reason (~3 ms: contextlib
  brings collections, functools and types); see its docstring.
- `Record`, the plan's plain records (keyword construction, equality, repr), instead of
  dataclasses, whose import (inspect, re, enum...) costs ~6 ms on create and exec.
- `signal`: the `_signal` builtin behind the signal module, whose Signals/Handlers enums
  import `enum` (~4 ms) for `run`'s signal forwarding and the terminal's SIGWINCH.
- `TYPE_CHECKING` for the imports the type checker alone needs on the paths of delete and
  kill --all (the front door's fallbacks): `typing` costs ~2 ms. mypy honours any
  `TYPE_CHECKING` name.

Everything else is ordinary Python (`os`, `errno`, `signal`, `typing`): `posix` instead of
`os` saved nothing on create/exec, which import os anyway, and ~1 ms only on the front
door's fallbacks. tests/integration/test_hot_imports.py checks the boundary these keep.
"""

try:
    import _json
except ImportError:  # pragma: no cover - not CPython: the standard module is fine
    _json = None  # type: ignore[assignment]
try:
    from _sha256 import sha256 as _sha256  # builtin, CPython up to 3.11
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from _sha2 import sha256 as _sha256  # 3.12+
    except ImportError:
        from hashlib import sha256 as _sha256

import _signal as signal  # noqa: F401 (see the docstring)
from _collections_abc import Callable, Iterable, Sequence  # noqa: F401 (see the docstring)

from .clispec import COMMANDS, GLOBAL, GO_BOOLS, INT, INTS, REQUIRED, STRS, Flag, go_name

TYPE_CHECKING = False  # see the docstring


class Record:
    """A plain record: keyword construction (by the subclass), equality and repr over its
    __slots__ (what dataclasses would give; see the docstring)."""

    __slots__ = ()

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------------------------- JSON

# json.loads / json.dumps on the C accelerator (`_json`). Same results as the json module
# (ensure_ascii), errors included: anything the C scanner refuses is handed to `json`
# itself (imported then, on the error path only), which raises with its own wording and
# position.


class _Context:
    """What _json.make_scanner reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str):
        # NaN and Infinity are not JSON: configs and state files never carry them.
        raise ValueError(f"{name} is not valid JSON")


_WS = " \t\n\r"
_scanner = _json.make_scanner(_Context()) if _json else None  # type: ignore[arg-type]


def __getattr__(name: str):
    """json.JSONDecodeError, imported only when an except clause looks for it."""
    if name == "JSONDecodeError":
        from json import JSONDecodeError

        return JSONDecodeError
    raise AttributeError(name)


def _error(msg: str, doc: str, pos: int):
    from json import JSONDecodeError

    return JSONDecodeError(msg, doc, pos)


def loads(s: str | bytes | bytearray):
    if _scanner is None:  # pragma: no cover
        import json

        return json.loads(s)
    if isinstance(s, (bytes, bytearray)):
        s = bytes(s).decode()  # strict UTF-8, like the "utf-8-sig" codec without its import
        if s.startswith("\ufeff"):
            s = s[1:]
    i, n = 0, len(s)
    while i < n and s[i] in _WS:
        i += 1
    try:
        obj, end = _scanner(s, i)
    except RecursionError:
        raise _too_deep() from None
    except Exception:
        # A syntax error. The C scanner builds its error from json.decoder, which is not
        # imported here (what it raises then differs between CPython versions): json
        # itself parses the document again and raises the error.
        return _std_loads(s)
    while end < n and s[end] in _WS:
        end += 1
    if end != n:
        raise _error("Extra data", s, end)
    return obj


def _std_loads(s: str):
    import json

    try:
        return json.loads(s, parse_constant=_Context.parse_constant)
    except RecursionError:
        raise _too_deep() from None


def _too_deep() -> ValueError:
    # The C scanner recurses once per nesting level, up to the interpreter's limit (~1000):
    # a document nested deeper is refused as invalid, never a RecursionError traceback.
    return ValueError("arrays and objects nested too deeply")


def _compact_encoder(sort_keys: bool):
    return _json.make_encoder(
        None, _default, _json.encode_basestring_ascii, None, ": ", ", ", sort_keys, False, True
    )


def _default(o):
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(obj, indent: int | None = None, sort_keys: bool = False) -> str:
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(obj, indent=indent, sort_keys=sort_keys)
    if indent is None:
        return "".join(_compact_encoder(sort_keys)(obj, 0))
    parts: list[str] = []
    _pretty(obj, indent, 0, sort_keys, parts)
    return "".join(parts)


def _pretty(obj, indent: int, level: int, sort_keys: bool, out: list[str]) -> None:
    """json.dumps(obj, indent=indent) layout."""
    pad = "\n" + " " * (indent * (level + 1))
    if isinstance(obj, dict) and obj:
        items = sorted(obj.items()) if sort_keys else obj.items()
        out.append("{")
        first = True
        for k, v in items:
            out.append(pad if first else "," + pad)
            first = False
            if not isinstance(k, str):
                k = "".join(_compact_encoder(False)(k, 0))  # numbers/bools: as json does
            out.append(_json.encode_basestring_ascii(k) + ": ")
            _pretty(v, indent, level + 1, sort_keys, out)
        out.append("\n" + " " * (indent * level) + "}")
    elif isinstance(obj, (list, tuple)) and obj:
        out.append("[")
        for i, v in enumerate(obj):
            out.append(pad if i == 0 else "," + pad)
            _pretty(v, indent, level + 1, sort_keys, out)
        out.append("\n" + " " * (indent * level) + "]")
    else:
        out.append("".join(_compact_encoder(sort_keys)(obj, 0)))


# -------------------------------------------------------------------------------- sha256


def sha256(data: bytes = b""):
    """hashlib.sha256(data), the same digest."""
    return _sha256(data)


# ---------------------------------------------------------------------------------- argv

# The hot commands' argv parser, built from the declaration (ocirun/clispec.py): the
# commands marked hot, their flags and arguments. It gives up — parse() returns None — on
# anything else (help, an unknown flag, a bad value, a missing argument), and the typer
# app (cli.py) then handles argv with its full messages.


def _table(flags) -> dict[str, Flag]:
    """option name -> Flag"""
    return {name: f for f in flags for name in f.names}


def _take(args: list[str], i: int, table: dict[str, Flag], out: dict) -> int | None:
    """Consume the option at args[i] (`--opt value`, `--opt=value`, `-opt`, `--flag=true`)
    into `out`; return the next index, or None if it is not a (well-formed) option of
    `table`."""
    given, eq, text = args[i].partition("=")
    name = go_name(given, table)
    if name is None:
        return None
    flag = table[name]
    if not flag.takes_value:
        if eq:
            if text not in GO_BOOLS:
                return None  # let typer say what is wrong
            out[flag.key] = GO_BOOLS[text]
        else:
            out[flag.key] = True
        return i + 1
    if not eq:
        if i + 1 >= len(args):
            return None
        text = args[i + 1]
        i += 1
    value: str | int = text
    if flag.kind in (INT, INTS):
        if not text.isdigit():
            return None
        value = int(text)
    if flag.kind in (INTS, STRS):
        out.setdefault(flag.key, []).append(value)
    else:
        out[flag.key] = value
    return i + 1


def parse(argv: list[str]) -> tuple[str, dict, dict] | None:
    """(command, global keywords, command keywords), or None to let typer handle argv."""
    g: dict = {}
    i = 0
    global_flags = _table(GLOBAL)
    while i < len(argv) and argv[i].startswith("-"):
        nxt = _take(argv, i, global_flags, g)
        if nxt is None:
            return None
        i = nxt
    command = COMMANDS.get(argv[i]) if i < len(argv) else None
    if command is None or not command.hot:
        return None
    table = _table(command.flags())
    args = command.args()
    rest = args[-1].key if args and args[-1].kind == STRS else None  # exec's command
    if rest is not None:
        args = args[:-1]
    kw: dict = {}
    pos: list[str] = []
    i += 1
    while i < len(argv):
        arg = argv[i]
        if rest is not None and pos:  # options end at the id, as in runc
            kw[rest] = argv[i:]
            break
        if arg.startswith("-") and arg != "-":
            nxt = _take(argv, i, table, kw)
            if nxt is None:
                return None
            i = nxt
        else:
            pos.append(arg)
            i += 1
    required = sum(1 for a in args if a.default is REQUIRED)
    if not required <= len(pos) <= len(args):
        return None
    kw.update(zip((a.key for a in args), pos))
    return command.name, g, kw


def dispatch(argv: list[str]) -> int | None:
    """Run a hot command; None when argv is not one (the caller falls back to typer)."""
    if argv in (["--version"], ["-v"]):  # podman asks on every `podman info`
        from .commands import version_text

        print(version_text())
        return 0
    parsed = parse(argv)
    if parsed is None:
        return None
    name, g, kw = parsed
    from . import commands
    from .errors import OcirunError

    try:
        globals_ = commands.Globals(**g)
    except OcirunError as e:
        return commands.report(e)
    return COMMANDS[name].function()(globals_, **kw)
