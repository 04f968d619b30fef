"""The hot path's front end: parse the command lines engines send, without typer.

Engines call the runtime for every container start, exec and state query, and typer costs
more to import than a whole container start. This parser knows exactly the hot commands
and their flags (`COMMANDS`, kept identical to cli.py's by tests/unit/test_fastcli.py) and
gives up — returns None — on anything else (help, an unknown flag, a bad value), so typer
handles it with its full messages.

Flags are read the way runc's Go flag parser reads them: `-name` and `--name` are one flag
(`-root`, `--b`), `--flag=value` or `--flag value`, and a boolean flag may be given a value
(`--detach=true`, `-d=0`). cli.py's `go_style` rewrites argv the same way for typer.
"""

# global flags: option -> (Globals keyword, takes a value)
GLOBAL = {
    "--root": ("root", True),
    "--log": ("log_file", True),
    "--log-format": ("log_format", True),
    "--debug": ("debug", False),
    "--systemd-cgroup": ("systemd_cgroup", False),
    "--criu": ("criu", True),  # checkpoint/restore's CRIU (typer's path); kept in Globals
    "--rootless": ("rootless", True),
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

_EXEC = {
    "--process": ("process_file", True),
    "-p": ("process_file", True),
    "--tty": ("tty", False),
    "-t": ("tty", False),
    "--user": ("user", True),
    "-u": ("user", True),
    "--additional-gids": ("additional_gids", True),
    "-g": ("additional_gids", True),
    "--cwd": ("cwd", True),
    "--env": ("env", True),
    "-e": ("env", True),
    "--cap": ("caps", True),
    "-c": ("caps", True),
    "--no-new-privs": ("no_new_privs", False),
    "--apparmor": ("apparmor", True),
    "--process-label": ("process_label", True),
    "--detach": ("detach", False),
    "-d": ("detach", False),
    "--pid-file": ("pid_file", True),
    "--console-socket": ("console_socket", True),
    "--preserve-fds": ("preserve_fds", True),
    "--cgroup": ("cgroup", True),
    "--ignore-paused": ("ignore_paused", False),
}

# command -> (options, positional parameter names, how many are required); for `exec`, the
# words after the id are the command (options stop at the id, as in runc).
COMMANDS: dict[str, tuple[dict, tuple[str, ...], int]] = {
    "exec": (_EXEC, ("cid",), 1),
    "create": (_CREATE, ("cid",), 1),
    "run": (
        {
            **_CREATE,
            "--detach": ("detach", False),
            "-d": ("detach", False),
            "--keep": ("keep", False),
            "--no-subreaper": ("no_subreaper", False),
        },
        ("cid",),
        1,
    ),
    "start": ({}, ("cid",), 1),
    "state": ({}, ("cid",), 1),
    "kill": ({"--all": ("all_", False), "-a": ("all_", False)}, ("cid", "sig"), 1),
    "delete": ({"--force": ("force", False), "-f": ("force", False)}, ("cid",), 1),
    "list": (
        {
            "--format": ("fmt", True),
            "-f": ("fmt", True),
            "--quiet": ("quiet", False),
            "-q": ("quiet", False),
        },
        (),
        0,
    ),
}
_INT_OPTIONS = {"preserve_fds"}
_LIST_OPTIONS = {"additional_gids", "env", "caps"}  # repeatable: collected in order
_REST = {"exec"}  # the command's trailing words, after its id, are its arguments


# Go's strconv.ParseBool, which runc's boolean flags use for `--flag=value`.
GO_BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}


def go_name(name: str, known) -> str | None:
    """The name under which `known` lists option `name`, as Go's flag package matches it:
    one or two leading dashes alike (`-root` is `--root`, `--b` is `-b`)."""
    if name in known:
        return name
    if name.startswith("--"):
        alt = name[1:]
    elif name.startswith("-") and len(name) > 2:
        alt = "-" + name
    else:
        return None
    return alt if alt in known else None


def _take(args: list[str], i: int, table: dict, out: dict) -> int | None:
    """Consume the option at args[i] (`--opt value`, `--opt=value`, `-opt`, `--flag=true`)
    into `out`; return the next index, or None if it is not a (well-formed) option of
    `table`."""
    name, eq, value = args[i].partition("=")
    name = go_name(name, table)
    if name is None:
        return None
    key, takes_value = table[name]
    if not takes_value:
        if eq:
            if value not in GO_BOOLS:
                return None  # let typer say what is wrong
            out[key] = GO_BOOLS[value]
        else:
            out[key] = True
        return i + 1
    if not eq:
        if i + 1 >= len(args):
            return None
        value = args[i + 1]
        i += 1
    if key in _INT_OPTIONS or key == "additional_gids":
        if not value.isdigit():
            return None
        value = int(value)
    if key in _LIST_OPTIONS:
        out.setdefault(key, []).append(value)
    else:
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
        if cmd in _REST and pos:
            kw["args"] = argv[i:]
            break
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
    if argv in (["--version"], ["-v"]):  # podman asks on every `podman info`
        from .commands import version_text

        print(version_text())
        return 0
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
    return command_function(commands, cmd)(globals_, **kw)


def command_function(commands_module, cmd: str):
    """commands.<cmd>, or commands.<cmd>_ where the name is a Python builtin (exec)."""
    return getattr(commands_module, cmd, None) or getattr(commands_module, cmd + "_")
