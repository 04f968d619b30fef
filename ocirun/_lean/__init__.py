"""What the command line does to start fast, in one place.

Engines run `ocirun create`, `exec` and `run` for every container and every probe; the C
front door (csrc/launcher) answers state/start/kill/delete/list itself and hands the rest
to `python -IS -m`-style code (scripts/mklauncher.py), so what Python imports is most of
what those commands cost beyond the interpreter's own start (~8 ms here). Two measures are
kept, each because it saves more than 0.5 ms on create/exec (python -X importtime, 2-core
VM, Python 3.11; figures in the commit that introduced this package):

- `argv`: the hot commands' argv parser, built from the one declaration of the command
  line (ocirun/clispec.py), so that create/run/exec/start/state/kill/delete/list never
  import typer and click (typer's app: ~35 ms). Help, errors and the other commands go to
  the typer app (ocirun/cli.py), built from the same declaration.
- `json`: json.loads/dumps on the C accelerator alone: `import json` imports `re` and
  `enum` (5-6 ms), which nothing else on the create/exec path needs.

Everything else is ordinary Python (`os`, `errno`, `signal`, annotations): the tricks
that saved less (posix instead of os, ~1 ms only on the Python fallback of the front
door's commands, 0 on create/exec, which import os anyway) were dropped.
tests/integration/test_hot_imports.py checks the boundary these two measures keep.
"""
