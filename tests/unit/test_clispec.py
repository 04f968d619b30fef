"""The command line is declared once (ocirun/clispec.py): the typer app and the hot
commands' parser are built from it and must read argv alike; the C front door's own copy
of its flags (csrc/launcher/launcher.c) must match it."""

from __future__ import annotations

import re

import pytest
import typer.main
from testenv import REPO

from ocirun import _lean as fast
from ocirun import clispec
from ocirun.cli import app

HOT = sorted(name for name, c in clispec.COMMANDS.items() if c.hot)


def _typer_commands() -> dict:
    group = typer.main.get_command(app)
    return group.commands


def _options(params) -> dict[str, tuple[str, bool]]:
    out = {}
    for p in params:
        if p.param_type_name == "option":
            for opt in p.opts + p.secondary_opts:
                out[opt] = (p.name, not p.is_flag)
    return out


def _declared(flags) -> dict[str, tuple[str, bool]]:
    return {name: (f.key, f.takes_value) for f in flags for name in f.names}


def test_global_options_are_the_declared_ones():
    group = typer.main.get_command(app)
    typer_opts = _options(group.params)
    typer_opts.pop("--version"), typer_opts.pop("-v"), typer_opts.pop("--help", None)
    typer_opts.pop("-h", None)
    assert typer_opts == _declared(clispec.GLOBAL)


@pytest.mark.parametrize("name", sorted(clispec.COMMANDS))
def test_command_options_are_the_declared_ones(name):
    cmd = _typer_commands()[name]
    declared = clispec.COMMANDS[name]
    typer_opts = {k: v for k, v in _options(cmd.params).items() if k not in ("-h", "--help")}
    assert typer_opts == _declared(declared.flags())
    args = [p for p in cmd.params if p.param_type_name == "argument"]
    assert [a.name for a in args] == [a.key for a in declared.args()]
    assert [a.required for a in args] == [a.default is clispec.REQUIRED for a in declared.args()]
    assert cmd.context_settings.get("allow_interspersed_args", True) == declared.interspersed


@pytest.mark.parametrize("name", sorted(clispec.COMMANDS))
def test_every_command_has_a_body_taking_its_keywords(name):
    import inspect

    declared = clispec.COMMANDS[name]
    fn = declared.function()
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for p in declared.params:
        assert p.key in params or takes_any, f"{name}: {declared.body} lacks {p.key}"


# ------------------------------------------------------------------ the C front door


def _c_table(source: str, var: str) -> dict[str, bool]:
    """launcher.c's `struct opt VAR[] = { { "name", takes_value, &slot }, ... }`."""
    body = re.search(rf"struct opt {var}\[\] = \{{(.*?)\}};", source, re.S)
    assert body, var
    return {m[0]: m[1] == "1" for m in re.findall(r'\{ "([\w-]+)", (\d)', body.group(1))}


def test_front_door_flags_are_the_declared_ones():
    """The front door parses the global flags and kill/delete/list's flags itself: the
    same names (without their dashes: it reads -x and --x alike) and the same kinds. A
    flag it lacks would send the call to Python (slower, still right); one it reads
    differently would not."""
    source = (REPO / "csrc" / "launcher" / "launcher.c").read_text()

    def declared(flags):
        return {n.lstrip("-"): f.takes_value for f in flags for n in f.names}

    assert _c_table(source, "gopts") == declared(clispec.GLOBAL)
    for var, name in (("kill_opts", "kill"), ("delete_opts", "delete"), ("list_opts", "list")):
        assert _c_table(source, var) == declared(clispec.COMMANDS[name].flags()), name
    assert "table = none" in source  # state and start: no flags, as declared
    for name in ("state", "start"):
        assert clispec.COMMANDS[name].flags() == []
    # the commands it answers are hot ones: their bodies are commands.<name>
    for name in re.findall(r'strcmp\(cmd, "(\w+)"\)', source):
        assert clispec.COMMANDS[name].hot, name


# ------------------------------------------------------------------ the fast parser


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
    assert fast.parse(argv) == expected


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
    assert fast.parse(argv) is None


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
    for name in HOT:
        real = clispec.COMMANDS[name].function()

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

    cmd, g, kw = fast.parse(argv)
    gb = _bound(commands.Globals.__init__, (None,), g)
    gb.pop("self")
    fn = clispec.COMMANDS[cmd].function()
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
