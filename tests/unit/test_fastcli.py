"""The fast parser must accept exactly what the typer CLI accepts for the hot commands."""

from __future__ import annotations

import pytest
import typer.main

from ocirun import fastcli
from ocirun.cli import app


def _typer_commands() -> dict:
    group = typer.main.get_command(app)
    return group.commands


def _options(params) -> dict[str, tuple[str, bool]]:
    out = {}
    for p in params:
        if p.param_type_name == "option" and not p.hidden:
            for opt in p.opts + p.secondary_opts:
                out[opt] = (p.name, not p.is_flag)
    return out


def test_global_options_match_typer():
    group = typer.main.get_command(app)
    typer_opts = _options(group.params)
    typer_opts.pop("--version"), typer_opts.pop("-v"), typer_opts.pop("--help", None)
    assert {k: v[1] for k, v in typer_opts.items()} == {
        k: v[1] for k, v in fastcli.GLOBAL.items()}


@pytest.mark.parametrize("name", sorted(fastcli.COMMANDS))
def test_command_options_match_typer(name):
    cmd = _typer_commands()[name]
    options, positional, required = fastcli.COMMANDS[name]
    typer_opts = {k: v for k, v in _options(cmd.params).items() if k not in ("-h", "--help")}
    assert set(typer_opts) == set(options), f"{name}: option names differ"
    for opt, (key, takes_value) in options.items():
        tkey, ttakes = typer_opts[opt]
        assert (key, takes_value) == (tkey, ttakes), f"{name} {opt}"
    args = [p for p in cmd.params if p.param_type_name == "argument"]
    assert [a.name for a in args] == list(positional)
    assert sum(1 for a in args if a.required) == required


@pytest.mark.parametrize("argv, expected", [
    (["start", "c1"], ("start", {}, {"cid": "c1"})),
    (["--root", "/r", "--log", "/l.json", "--log-format", "json", "create", "--bundle", "/b",
      "--pid-file", "/b/init.pid", "c1"],
     ("create", {"root": "/r", "log_file": "/l.json", "log_format": "json"},
      {"bundle": "/b", "pid_file": "/b/init.pid", "cid": "c1"})),
    (["--log-format=json", "--log", "/l", "create", "-b", "/b", "--preserve-fds=2", "c1"],
     ("create", {"log_format": "json", "log_file": "/l"},
      {"bundle": "/b", "preserve_fds": 2, "cid": "c1"})),
    (["kill", "c1", "9"], ("kill", {}, {"cid": "c1", "sig": "9"})),
    (["kill", "--all", "c1", "KILL"], ("kill", {}, {"all_": True, "cid": "c1", "sig": "KILL"})),
    (["delete", "--force", "c1"], ("delete", {}, {"force": True, "cid": "c1"})),
    (["run", "-d", "--keep", "c1"], ("run", {}, {"detach": True, "keep": True, "cid": "c1"})),
])
def test_parse(argv, expected):
    assert fastcli.parse(argv) == expected


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["start"], ["start", "a", "b"], ["start", "--help", "c1"],
    ["create", "--bogus", "c1"], ["create", "--preserve-fds", "x", "c1"],
    ["--root"], ["list"], ["spec"], ["--version"], ["create", "--no-pivot=1", "c1"],
    ["kill", "c1", "TERM", "extra"],
])
def test_parse_gives_up_to_typer(argv):
    assert fastcli.parse(argv) is None
