"""The hot commands' argv parser: what engines send, parsed without importing typer.

Built from the one declaration of the command line (ocirun/clispec.py): the commands
marked hot, their flags and arguments. It gives up — parse() returns None — on anything
else (help, an unknown flag, a bad value, a missing argument), and the typer app (cli.py)
then handles argv with its full messages. Saves typer's import, ~40 ms, on every create,
run and exec, and on the front door's fallbacks.
"""

from ..clispec import COMMANDS, GLOBAL, GO_BOOLS, INT, INTS, STRS, Flag, go_name

# option name -> Flag, for the global flags and each hot command
_GLOBAL = {name: f for f in GLOBAL for name in f.names}
_TABLES = {
    c.name: {name: f for f in c.flags() for name in f.names} for c in COMMANDS.values() if c.hot
}


def _take(args: list[str], i: int, table: dict[str, Flag], out: dict) -> int | None:
    """Consume the option at args[i] (`--opt value`, `--opt=value`, `-opt`, `--flag=true`)
    into `out`; return the next index, or None if it is not a (well-formed) option of
    `table`."""
    name, eq, value = args[i].partition("=")
    name = go_name(name, table)
    if name is None:
        return None
    flag = table[name]
    if not flag.takes_value:
        if eq:
            if value not in GO_BOOLS:
                return None  # let typer say what is wrong
            out[flag.key] = GO_BOOLS[value]
        else:
            out[flag.key] = True
        return i + 1
    if not eq:
        if i + 1 >= len(args):
            return None
        value = args[i + 1]
        i += 1
    if flag.kind in (INT, INTS):
        if not value.isdigit():
            return None
        value = int(value)
    if flag.kind in (INTS, STRS):
        out.setdefault(flag.key, []).append(value)
    else:
        out[flag.key] = value
    return i + 1


def parse(argv: list[str]) -> tuple[str, dict, dict] | None:
    """(command, global keywords, command keywords), or None to let typer handle argv."""
    g: dict = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        nxt = _take(argv, i, _GLOBAL, g)
        if nxt is None:
            return None
        i = nxt
    if i >= len(argv) or argv[i] not in _TABLES:
        return None
    command = COMMANDS[argv[i]]
    table = _TABLES[command.name]
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
    required = sum(1 for a in args if a.default is ...)
    if not required <= len(pos) <= len(args):
        return None
    kw.update(zip((a.key for a in args), pos))
    return command.name, g, kw


def dispatch(argv: list[str]) -> int | None:
    """Run a hot command; None when argv is not one (the caller falls back to typer)."""
    if argv in (["--version"], ["-v"]):  # podman asks on every `podman info`
        from ..commands import version_text

        print(version_text())
        return 0
    parsed = parse(argv)
    if parsed is None:
        return None
    name, g, kw = parsed
    from .. import commands
    from ..errors import OcirunError

    try:
        globals_ = commands.Globals(**g)
    except OcirunError as e:
        return commands.report(e)
    return COMMANDS[name].function()(globals_, **kw)
