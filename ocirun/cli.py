"""The typer app: every command, with help and full error messages, built from the one
declaration of the command line (ocirun/clispec.py).

The hot commands usually never get here: _lean.py parses what engines send and calls
the same bodies. Everything else — help, the other commands, any command line the fast
parser does not fully understand — is handled by this app.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from . import clispec, commands
from .clispec import BOOL, INT, INTS, STRS, Arg, Command, Flag
from .errors import OcirunError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="ocirun: an OCI container runtime, a drop-in for runc.",
)


class _State:
    globals: commands.Globals | None = None


S = _State()


def _version(value: bool) -> None:
    if value:
        print(commands.version_text(_criu_flag()))
        raise typer.Exit()


def _criu_flag() -> str | None:
    """--criu's value for --version, which click handles before any other global flag."""
    import sys

    names = next(f.names for f in clispec.GLOBAL if f.key == "criu")
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if clispec.go_name(name, names):
            return value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
        if not arg.startswith("-"):
            break
    return None


# ------------------------------------------------------- from clispec to typer parameters

_TYPES = {INT: int, BOOL: bool, INTS: list[int], STRS: list[str]}


def _annotation(p: Flag | Arg):
    t = _TYPES.get(p.kind, str)
    return t | None if p.default is None else t


def _parameter(p: Flag | Arg) -> inspect.Parameter:
    if isinstance(p, Flag):
        info = typer.Option(p.default, *p.names, help=p.help, hidden=p.hidden, min=p.min)
    else:
        info = typer.Argument(p.default, help=p.help, metavar=p.metavar)
    return inspect.Parameter(
        p.key, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=_annotation(p)
    )


def _signed(fn: Any, params, doc: str | None, *extra: inspect.Parameter):
    """fn, with the signature typer reads to build the click command: the declared
    parameters, then `extra` ones."""
    signature = inspect.Signature([*(_parameter(p) for p in params), *extra])
    fn.__signature__ = signature
    fn.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    fn.__doc__ = doc
    return fn


def _main_options(**kw) -> None:
    kw.pop("version")
    try:
        S.globals = commands.Globals(**kw)
    except OcirunError as e:
        raise typer.Exit(commands.report(e)) from None


_VERSION = typer.Option(
    False, "--version", "-v", callback=_version, is_eager=True, help="print the version"
)
_VERSION_PARAM = inspect.Parameter(
    "version", inspect.Parameter.KEYWORD_ONLY, default=_VERSION, annotation=bool
)
app.callback()(_signed(_main_options, clispec.GLOBAL, None, _VERSION_PARAM))


def _add(command: Command) -> None:
    def run_body(**kw) -> None:
        raise typer.Exit(command.function()(S.globals, **kw))

    settings = {} if command.interspersed else {"allow_interspersed_args": False}
    callback = _signed(run_body, command.params, command.help)
    app.command(command.name, context_settings=settings)(callback)


for _command in clispec.COMMANDS.values():
    _add(_command)


@app.command("help")
def help_(topic: list[str] | None = typer.Argument(None, help="a command")) -> None:
    """Show the commands, or one command's help (as `ocirun COMMAND --help`)."""
    app(args=[*(topic or [])[:1], "--help"], prog_name="ocirun")


app.command("h", hidden=True)(help_)


# ----------------------------------------------------------------- runc's flag syntax


def go_style(argv: list[str], group) -> list[str]:
    """argv as click wants it, from what runc's Go flag parser accepts: `-root` and `--b`
    (one dash or two, whatever the name's length) become the option's long name, and a
    boolean given a value (`--detach=true`, `-d=0`) becomes the bare flag or nothing.
    Options end at `--`, and at the first argument of a command that takes no options
    after its arguments (exec, ps: runc's SkipArgReorder). Anything else is left alone,
    for click to report. _lean.py reads the same syntax for the hot commands."""
    from .clispec import GO_BOOLS, go_name

    out: list[str] = []
    scope = group
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            out += argv[i - 1 :]
            break
        if not arg.startswith("-") or arg == "-":
            out.append(arg)
            if scope is group:  # the command's name
                scope = group.commands.get(arg)
                if scope is None:
                    out += argv[i:]
                    break
            elif not scope.context_settings.get("allow_interspersed_args", True):
                out += argv[i:]
                break
            continue
        name, eq, value = arg.partition("=")
        names = {o: p for p in scope.params if p.param_type_name == "option" for o in p.opts}
        found = go_name(name, names)
        if found is None:
            out.append("--help" if go_name(name, ("-h", "--help")) and not eq else arg)
            continue
        param = names[found]
        canonical = max(param.opts, key=len)
        if param.is_flag:
            if not eq:
                out.append(canonical)
            elif value in GO_BOOLS:
                out += [canonical] if GO_BOOLS[value] else []
            else:
                out.append(arg)  # click: "does not take a value"
        elif eq:
            out.append(f"{canonical}={value}")
        elif i < len(argv):  # the value, whatever it looks like (`--cpu-quota -1`)
            out.append(f"{canonical}={argv[i]}")
            i += 1
        else:
            out.append(canonical)  # click: "requires an argument"
    return out


def main(argv: list[str] | None = None) -> None:
    import sys

    import typer.main

    argv = sys.argv[1:] if argv is None else argv
    group = typer.main.get_command(app)
    try:
        code = group.main(args=go_style(argv, group), prog_name="ocirun", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors: one line, not a usage page
        e: Any = exc  # click's exception API (format_message, show, ctx): checked below
        code = getattr(e, "exit_code", 1)
        if not hasattr(e, "format_message"):
            raise
        if type(e).__name__ == "NoArgsIsHelpError":  # `ocirun` alone: the help, as runc
            e.show()
            sys.exit(code)
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "ocirun"
        print(f"{where}: {e.format_message()} (see {where} --help)", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
