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
    rest = ["args"] if name in fastcli._REST else []
    assert [a.name for a in args] == list(positional) + rest
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
    (["list", "-f", "json"], ("list", {}, {"fmt": "json"})),
    (["--root", "/r", "list", "-q"], ("list", {"root": "/r"}, {"quiet": True})),
    (["run", "-d", "--keep", "c1"], ("run", {}, {"detach": True, "keep": True, "cid": "c1"})),
    (["exec", "--process", "/p.json", "--detach", "--pid-file", "/x.pid", "c1"],
     ("exec", {}, {"process_file": "/p.json", "detach": True, "pid_file": "/x.pid", "cid": "c1"})),
    (["exec", "-e", "A=1", "--env=B=2", "-t", "c1", "sh", "-c", "echo -n hi"],
     ("exec", {}, {"env": ["A=1", "B=2"], "tty": True, "cid": "c1",
                   "args": ["sh", "-c", "echo -n hi"]})),
])
def test_parse(argv, expected):
    assert fastcli.parse(argv) == expected


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["start"], ["start", "a", "b"], ["start", "--help", "c1"],
    ["create", "--bogus", "c1"], ["create", "--preserve-fds", "x", "c1"],
    ["--root"], ["list", "x"], ["spec"], ["--version"], ["create", "--no-pivot=1", "c1"],
    ["kill", "c1", "TERM", "extra"],
    ["exec", "-g", "x", "c1", "true"],
])
def test_parse_gives_up_to_typer(argv):
    assert fastcli.parse(argv) is None


@pytest.mark.parametrize("name", sorted(fastcli.COMMANDS))
def test_every_fast_command_has_a_body_taking_its_keywords(name):
    import inspect

    from ocirun import commands

    fn = fastcli.command_function(commands, name)
    params = inspect.signature(fn).parameters
    options, positional, _ = fastcli.COMMANDS[name]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for key in {k for k, _ in options.values()} | set(positional):
        assert key in params or takes_any, f"{name}: commands.{fn.__name__} lacks {key}"
