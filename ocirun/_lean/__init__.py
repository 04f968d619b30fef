"""What the command line does to start fast, in one place.

Engines run `ocirun create`, `exec` and `run` for every container and probe; the C front
door (csrc/launcher) answers state/start/kill/delete/list itself and execs `python3 -IS
-c <import ocirun.main>` for the rest and for its fallbacks (scripts/mklauncher.py), so
what Python imports is most of what those commands cost beyond the interpreter's own
start (~8 ms here). Three measures are kept, each because it saves well over 0.5 ms on
create/exec (python -X importtime, best of 5, Python 3.11, the 2-core dev VM):

- `argv`: the hot commands' argv parser, built from the one declaration of the command
  line (ocirun/clispec.py), so that create/run/exec and the fallbacks never import typer
  and click: `import ocirun.cli` costs ~40 ms. Help, errors and the other commands go to
  the typer app (cli.py), built from the same declaration.
- `json`: json.loads/dumps on the C accelerator alone. `import json` imports `re` and
  `enum` (json.decoder, json.encoder compile regexes): ~6 ms, and nothing else on the
  create/exec path needs `re`.
- `sha256`: the builtin module's sha256. `hashlib` loads OpenSSL: ~2.5 ms; create hashes
  its config for the validation cache on every call.

Everything else is ordinary Python (`os`, `errno`, `signal`, `typing`): `posix` instead of
`os` saved nothing on create/exec, which import os anyway, and ~1 ms only on the front
door's fallbacks. tests/integration/test_hot_imports.py checks the boundary these keep.
"""
