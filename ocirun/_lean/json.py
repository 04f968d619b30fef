"""json.loads / json.dumps on the C accelerator (`_json`) alone, without the `json` package.

`import json` imports `re` and `enum` (json.decoder, json.scanner and json.encoder compile
regexes when imported): 5-6 ms measured, against create's ~7 ms of imports in all, and
nothing else on the create/exec/state path needs `re`. The C scanner and encoder that
`json` itself uses need neither, so this module drives them directly, with the same
results as json.loads / json.dumps (ensure_ascii), errors included: anything the C scanner
refuses is handed to `json` itself (imported then, on the error path only), which raises
the error with json's own wording and position.
"""

try:
    import _json
except ImportError:  # pragma: no cover - not CPython: the standard module is fine
    _json = None


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
_scanner = _json.make_scanner(_Context()) if _json else None


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
