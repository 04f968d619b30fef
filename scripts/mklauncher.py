"""Build the development venv's `ocirun`: the C front door (csrc/launcher), as the wheel
ships it, with the checkout first on the sys.path of the Python it falls back to.

Engines call the runtime for every start, exec and state query; the front door does state,
start, kill, delete and list itself and execs `python3 -IS` (isolated: nothing in an
engine's environment can inject modules; no `site`) for the rest: see docs/fastpath.md.

Run by `make build` with the venv's python: python scripts/mklauncher.py VENV_BIN_DIR
"""

import os
import sys

source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout
sys.path.insert(0, os.path.join(source, "csrc", "launcher"))

from frontdoor import compile_front_door  # noqa: E402

bindir = os.path.abspath(sys.argv[1])
compile_front_door(os.path.join(bindir, "ocirun"), venv=os.path.dirname(bindir), source_dir=source)
