"""The hot path's front end: parse the command lines engines send, without typer.

Engines call the runtime for every container start, exec and state query, and typer costs
more to import than a whole container start. This parser knows exactly the hot commands
and their flags (`COMMANDS`, kept identical to cli.py's by tests/unit/test_fastcli.py) and
gives up — returns None — on anything else (help, an unknown flag, a bad value), so typer
handles it with its full messages.
"""

from __future__ import annotations

# global flags: option -> (Globals keyword, takes a value)
GLOBAL = {
    "--root": ("root", True),
    "--log": ("log_file", True),
    "--log-format": ("log_format", True),
    "--debug": ("debug", False),
    "--systemd-cgroup": ("systemd_cgroup", False),
}

_CREATE = {
    "--bundle": ("bundle", True),
    "-b": ("bundle", True),
    "--pid-file": ("pid_file", True),
    "--console-socket": ("console_socket", True),
    "--no-pivot": ("no_pivot", False),
    "--no-new-keyring": ("no_new_keyring", False),
    "--preserve-fds": ("preserve_fds", True),
}

# command -> (options, positional parameter names, how many are required)
COMMANDS: dict[str, tuple[dict, tuple[str, ...], int]] = {
    "create": (_CREATE, ("cid",), 1),
    "run": ({**_CREATE,
             "--detach": ("detach", False), "-d": ("detach", False),
             "--keep": ("keep", False),
             "--no-subreaper": ("no_subreaper", False)}, ("cid",), 1),
    "start": ({}, ("cid",), 1),
    "state": ({}, ("cid",), 1),
    "kill": ({"--all": ("all_", False), "-a": ("all_", False)}, ("cid", "sig"), 1),
    "delete": ({"--force": ("force", False), "-f": ("force", False)}, ("cid",), 1),
}
_INT_OPTIONS = {"preserve_fds"}


def _take(args: list[str], i: int, table: dict, out: dict) -> int | None:
    """Consume the option at args[i] (either `--opt value` or `--opt=value`) into `out`;
    return the next index, or None if it is not a (well-formed) option of `table`."""
    name, eq, value = args[i].partition("=")
    if name not in table:
        return None
    key, takes_value = table[name]
    if not takes_value:
        if eq:
            return None  # --flag=value: leave the subtleties to typer
        out[key] = True
        return i + 1
    if not eq:
        if i + 1 >= len(args):
            return None
        value = args[i + 1]
        i += 1
    if key in _INT_OPTIONS:
        if not value.isdigit():
            return None
        value = int(value)
    out[key] = value
    return i + 1


def parse(argv: list[str]) -> tuple[str, dict, dict] | None:
    """(command, global keywords, command keywords), or None to let typer handle argv."""
    g: dict = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        nxt = _take(argv, i, GLOBAL, g)
        if nxt is None:
            return None
        i = nxt
    if i >= len(argv) or argv[i] not in COMMANDS:
        return None
    cmd = argv[i]
    options, positional, required = COMMANDS[cmd]
    kw: dict = {}
    pos: list[str] = []
    i += 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-":
            nxt = _take(argv, i, options, kw)
            if nxt is None:
                return None
            i = nxt
        else:
            pos.append(arg)
            i += 1
    if not required <= len(pos) <= len(positional):
        return None
    kw.update(zip(positional, pos))
    return cmd, g, kw


def dispatch(argv: list[str]) -> int | None:
    """Run a hot command; None when argv is not one (the caller falls back to typer)."""
    parsed = parse(argv)
    if parsed is None:
        return None
    cmd, g, kw = parsed
    from . import commands
    from .errors import OcirunError

    try:
        globals_ = commands.Globals(**g)
    except OcirunError as e:
        return commands.report(e)
    return getattr(commands, cmd)(globals_, **kw)
