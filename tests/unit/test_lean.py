"""ocirun._lean: its loads/dumps agree with the standard json module, output and errors
alike; its sha256 with hashlib's. (Its argv parser: test_clispec.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ocirun import _lean

SAMPLES = [
    {},
    [],
    "",
    0,
    -1,
    1.5,
    1e300,
    True,
    False,
    None,
    'ünïcödé \u2028 "q" \\ \n\t',
    {
        "ociVersion": "1.3.0",
        "id": "c1",
        "pid": 42,
        "status": "running",
        "bundle": "/b",
        "annotations": {"a.b": "c", "n": [1, 2, {"x": None}]},
        "empty": {},
        "list": [],
    },
    [1, [2, [3, [4]]], {"k": [True, False]}],
    {"b": 1, "a": 2, "c": {"z": 1, "y": 2}},
]


@pytest.mark.parametrize("obj", SAMPLES)
@pytest.mark.parametrize("indent", [None, 2, 4])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_dumps_matches_json(obj, indent, sort_keys):
    assert _lean.dumps(obj, indent=indent, sort_keys=sort_keys) == json.dumps(
        obj, indent=indent, sort_keys=sort_keys
    )


@pytest.mark.parametrize("obj", SAMPLES)
def test_loads_round_trip(obj):
    text = json.dumps(obj)
    assert _lean.loads(text) == json.loads(text)
    assert _lean.loads(text.encode()) == json.loads(text)
    assert _lean.loads("  \n" + text + " \n") == obj


@pytest.mark.parametrize("bad", ["", "   ", "{", '{"a" 1}', "[1,]", "{} x", "nul", '"\\x"'])
def test_loads_errors_like_json(bad):
    with pytest.raises(json.JSONDecodeError) as ours:
        _lean.loads(bad)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(bad)
    assert (ours.value.lineno, ours.value.colno) == (theirs.value.lineno, theirs.value.colno)


def test_dumps_rejects_unserializable():
    with pytest.raises(TypeError):
        _lean.dumps({"x": object()})


def test_import_does_not_load_json_or_re():
    code = (
        "import sys; import ocirun._lean as f; f.dumps(f.loads('{\"a\": [1]}'), indent=2);"
        "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_syntax_errors_in_a_fresh_interpreter():
    """Without json.decoder imported, the C scanner can't raise its error: still a clean
    JSONDecodeError (not SystemError)."""
    code = (
        "import sys; import ocirun._lean as f\n"
        "for bad in ('[1', '{\"a\":', '[1,]', 'nul', '{} x', ''):\n"
        "    try: f.loads(bad)\n"
        "    except ValueError as e: print(type(e).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n{code}"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["JSONDecodeError"] * 6


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 300])
def test_sha256_is_hashlibs(data):
    import hashlib

    assert _lean.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    h = _lean.sha256()
    h.update(data)
    assert h.digest() == hashlib.sha256(data).digest()
