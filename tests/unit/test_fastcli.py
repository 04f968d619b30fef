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
    assert {k: v[1] for k, v in typer_opts.items()} == {k: v[1] for k, v in fastcli.GLOBAL.items()}


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


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["start", "c1"], ("start", {}, {"cid": "c1"})),
        (
            [
                "--root",
                "/r",
                "--log",
                "/l.json",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/b/init.pid",
                "c1",
            ],
            (
                "create",
                {"root": "/r", "log_file": "/l.json", "log_format": "json"},
                {"bundle": "/b", "pid_file": "/b/init.pid", "cid": "c1"},
            ),
        ),
        (
            ["--log-format=json", "--log", "/l", "create", "-b", "/b", "--preserve-fds=2", "c1"],
            (
                "create",
                {"log_format": "json", "log_file": "/l"},
                {"bundle": "/b", "preserve_fds": 2, "cid": "c1"},
            ),
        ),
        (["kill", "c1", "9"], ("kill", {}, {"cid": "c1", "sig": "9"})),
        (["kill", "--all", "c1", "KILL"], ("kill", {}, {"all_": True, "cid": "c1", "sig": "KILL"})),
        (["delete", "--force", "c1"], ("delete", {}, {"force": True, "cid": "c1"})),
        (["list", "-f", "json"], ("list", {}, {"fmt": "json"})),
        (["--root", "/r", "list", "-q"], ("list", {"root": "/r"}, {"quiet": True})),
        (["run", "-d", "--keep", "c1"], ("run", {}, {"detach": True, "keep": True, "cid": "c1"})),
        (
            ["exec", "--process", "/p.json", "--detach", "--pid-file", "/x.pid", "c1"],
            (
                "exec",
                {},
                {"process_file": "/p.json", "detach": True, "pid_file": "/x.pid", "cid": "c1"},
            ),
        ),
        (
            ["exec", "-e", "A=1", "--env=B=2", "-t", "c1", "sh", "-c", "echo -n hi"],
            (
                "exec",
                {},
                {
                    "env": ["A=1", "B=2"],
                    "tty": True,
                    "cid": "c1",
                    "args": ["sh", "-c", "echo -n hi"],
                },
            ),
        ),
        # runc's Go flag syntax: one dash or two, booleans with a value
        (
            ["-root", "/r", "-debug", "state", "c1"],
            ("state", {"root": "/r", "debug": True}, {"cid": "c1"}),
        ),
        (
            ["--debug=false", "--systemd-cgroup=true", "state", "c1"],
            ("state", {"debug": False, "systemd_cgroup": True}, {"cid": "c1"}),
        ),
        (
            ["create", "--b", "/b", "-pid-file=/p", "--no-pivot=1", "-no-new-keyring=F", "c1"],
            (
                "create",
                {},
                {
                    "bundle": "/b",
                    "pid_file": "/p",
                    "no_pivot": True,
                    "no_new_keyring": False,
                    "cid": "c1",
                },
            ),
        ),
        (["kill", "-all", "c1"], ("kill", {}, {"all_": True, "cid": "c1"})),
        (
            ["kill", "c1", "KILL", "--all=true"],
            ("kill", {}, {"all_": True, "cid": "c1", "sig": "KILL"}),
        ),
        (["delete", "c1", "-f=t"], ("delete", {}, {"force": True, "cid": "c1"})),
        (["delete", "--force=False", "c1"], ("delete", {}, {"force": False, "cid": "c1"})),
        (
            ["run", "-d=TRUE", "--keep=0", "-no-subreaper", "c1"],
            ("run", {}, {"detach": True, "keep": False, "no_subreaper": True, "cid": "c1"}),
        ),
        (
            ["exec", "-detach=true", "--tty=false", "c1", "-t", "true"],
            ("exec", {}, {"detach": True, "tty": False, "cid": "c1", "args": ["-t", "true"]}),
        ),
        (["list", "-format=json", "-quiet"], ("list", {}, {"fmt": "json", "quiet": True})),
        # accepted and ignored (globals), or refused by the command body (exec --cgroup)
        (
            ["--criu", "/usr/sbin/criu", "--rootless=auto", "start", "c1"],
            ("start", {"criu": "/usr/sbin/criu", "rootless": "auto"}, {"cid": "c1"}),
        ),
        (
            ["exec", "--ignore-paused", "--cgroup", "sub", "c1", "true"],
            ("exec", {}, {"ignore_paused": True, "cgroup": "sub", "cid": "c1", "args": ["true"]}),
        ),
    ],
)
def test_parse(argv, expected):
    assert fastcli.parse(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["start"],
        ["start", "a", "b"],
        ["start", "--help", "c1"],
        ["create", "--bogus", "c1"],
        ["create", "--preserve-fds", "x", "c1"],
        ["--root"],
        ["list", "x"],
        ["spec"],
        ["--version"],
        ["create", "--no-pivot=yes", "c1"],
        ["create", "--no-pivot=", "c1"],
        ["--", "state", "c1"],
        ["-r", "/r", "state", "c1"],
        ["kill", "c1", "TERM", "extra"],
        ["exec", "-g", "x", "c1", "true"],
    ],
)
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


# --------------------------------------------------------------------------- parity


def _bound(fn, args, kwargs) -> dict:
    """fn's parameters as a call binds them, defaults filled in."""
    import inspect

    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    out.update(out.pop("opts", {}) or {})
    out.update(out.pop("flags", {}) or {})
    return out


def _typer_call(argv, monkeypatch) -> tuple[str, dict, dict]:
    """What the typer CLI calls for argv: (command, Globals keywords, command keywords)."""
    from ocirun import cli, commands

    real_globals = commands.Globals.__init__
    seen: dict = {}

    def fake_globals(self, *args, **kwargs):
        seen["g"] = _bound(real_globals, (self, *args), kwargs)

    monkeypatch.setattr(commands.Globals, "__init__", fake_globals)
    for name in fastcli.COMMANDS:
        real = fastcli.command_function(commands, name)

        def fake(*args, _name=name, _real=real, **kwargs):
            seen["cmd"] = (_name, _bound(_real, args, kwargs))
            return 0

        monkeypatch.setattr(commands, real.__name__, fake)
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0, argv
    name, kw = seen["cmd"]
    g = seen["g"]
    for d in (g, kw):
        d.pop("self", None), d.pop("g", None)
    return name, g, kw


def _fast_call(argv) -> tuple[str, dict, dict]:
    from ocirun import commands

    cmd, g, kw = fastcli.parse(argv)
    gb = _bound(commands.Globals.__init__, (None,), g)
    gb.pop("self")
    fn = fastcli.command_function(commands, cmd)
    kb = _bound(fn, (None,), kw)
    kb.pop("g")
    # What the body's **opts leaves to its callee's defaults: typer's defaults, the same.
    for p in _typer_commands()[cmd].params:
        kb.setdefault(p.name, p.default)
    return cmd, gb, kb


@pytest.mark.parametrize(
    "argv",
    [
        ["-root", "/r", "-debug", "state", "c1"],
        [
            "--root=/r",
            "--log",
            "/l",
            "--log-format=json",
            "--criu",
            "/c",
            "--rootless",
            "true",
            "--systemd-cgroup=false",
            "create",
            "-b",
            "/b",
            "--preserve-fds=2",
            "c1",
        ],
        ["create", "c1", "--b=/b", "-console-socket", "/s", "-no-pivot=true", "--pid-file", "/p"],
        ["run", "-d=1", "-keep", "--no-subreaper=false", "--bundle", "/b", "c1"],
        ["kill", "c1", "9", "-a=true"],
        ["kill", "--all=0", "c1"],
        ["kill", "c1"],
        ["delete", "-force", "c1"],
        ["delete", "c1", "--force=f"],
        ["list", "-f=json", "-q=T"],
        ["list", "--format", "table"],
        ["start", "c1"],
        ["state", "c1"],
        [
            "exec",
            "-p",
            "/p.json",
            "-d=true",
            "--pid-file=/x",
            "-tty=false",
            "--cgroup",
            "a",
            "-ignore-paused",
            "c1",
        ],
        [
            "exec",
            "-u",
            "1:2",
            "-g",
            "3",
            "--additional-gids=4",
            "-e",
            "A=1",
            "--cap",
            "CAP_KILL",
            "--no-new-privs",
            "--cwd=/tmp",
            "c1",
            "sh",
            "-c",
            "--",
            "-t",
        ],
    ],
    ids=lambda a: " ".join(a),
)
def test_typer_and_fast_parser_agree(argv, monkeypatch):
    """Both front ends call the same body with the same arguments, Go flag syntax included."""
    fast = _fast_call(argv)
    assert _typer_call(argv, monkeypatch) == fast


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["-root", "/r", "--debug=true", "state", "c1"], ["--root=/r", "--debug", "state", "c1"]),
        (["--debug=false", "list", "-quiet", "-f=json"], ["list", "--quiet", "--format=json"]),
        (
            ["update", "c1", "--cpu-quota", "-1", "-memory=1g"],
            ["update", "c1", "--cpu-quota=-1", "--memory=1g"],
        ),
        (["exec", "-t=1", "c1", "sh", "-debug=true"], ["exec", "--tty", "c1", "sh", "-debug=true"]),
        (["ps", "c1", "-f", "json"], ["ps", "c1", "-f", "json"]),  # ps: ps(1)'s options
        (["kill", "c1", "--all=maybe"], ["kill", "c1", "--all=maybe"]),  # click reports it
        (["--", "state", "-x"], ["--", "state", "-x"]),
        (["-help"], ["--help"]),
        (["create", "-h"], ["create", "--help"]),
        (["frob", "-root", "x"], ["frob", "-root", "x"]),
    ],
)
def test_go_style_rewrites_for_typer(argv, expected):
    from ocirun.cli import app, go_style

    assert go_style(argv, typer.main.get_command(app)) == expected
