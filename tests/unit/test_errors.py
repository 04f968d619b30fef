"""Whatever goes wrong, the user gets one line on stderr and a non-zero exit code."""

from __future__ import annotations

import errno

import pytest

from ocirun import _lean as fastjson
from ocirun import commands
from ocirun.errors import ConfigError, OcirunError


def test_config_error_is_one_line_with_every_pointer():
    e = ConfigError(["/a: bad", "/b/0: worse"])
    assert e.problems == ["config.json: /a: bad", "config.json: /b/0: worse"]
    assert str(e) == "config.json: /a: bad; config.json: /b/0: worse"


def test_config_error_clips_a_huge_problem():
    e = ConfigError(["/a: " + "x" * 100_000 + " is not of type 'string'"])
    assert len(str(e)) < 600 and str(e).startswith("config.json: /a: xxx")
    assert "more characters" in str(e)


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EBADF, "Bad file descriptor"),
        RecursionError("maximum recursion depth exceeded"),
        KeyError("pid"),
        ValueError("two\nlines"),
    ],
)
def test_an_unexpected_exception_is_one_line(capsys, exc):
    def boom():
        raise exc

    assert commands.guarded(boom) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("unexpected error in boom (test_errors.py:"), err
    assert type(exc).__name__ in err


def test_a_user_error_with_a_newline_stays_one_line(capsys):
    def boom():
        raise OcirunError("bundle /x/a\nb: no such directory")

    assert commands.guarded(boom) == 1
    assert capsys.readouterr().err == "bundle /x/a\\nb: no such directory\n"


@pytest.mark.parametrize(
    "text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 5000 + "1" + "}" * 5000, "[" * 100_000]
)  # too deep and broken
def test_json_nested_too_deeply_is_a_value_error(text):
    with pytest.raises(ValueError, match="nested too deeply"):
        fastjson.loads(text)
