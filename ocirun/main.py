"""Entry point of the `ocirun` executable.

The hot commands (create, start, state, kill, delete, run) are parsed by fastcli, which
imports only what the command needs; anything else goes to the typer CLI.
"""

import posix  # not os: see paths.py
import sys


def main() -> None:
    argv = sys.argv[1:]
    try:
        from .fastcli import dispatch

        code = dispatch(argv)
        if code is None:
            from .cli import main as typer_main

            typer_main(argv)
            return
    except Exception as e:  # outside any command body (commands.guarded): still one line
        from .commands import report, unexpected

        code = report(unexpected(e))
    # Skip the interpreter's teardown (module cleanup, GC): nothing is left to flush but
    # the std streams, and engines wait for this exit.
    sys.stdout.flush()
    sys.stderr.flush()
    posix._exit(code)


if __name__ == "__main__":
    main()
