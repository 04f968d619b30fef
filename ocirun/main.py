"""Entry point of the `ocirun` executable (and of the C front door's hand-over to Python).

The hot commands (create, run, exec, and state, start, kill, delete, list when the front
door hands them over) are parsed by _lean.py, which imports only what the command
needs; anything else goes to the typer app (cli.py).
"""

import os
import sys


def main() -> None:
    argv = sys.argv[1:]
    try:
        from ._lean import dispatch

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
    os._exit(code)


if __name__ == "__main__":
    main()
