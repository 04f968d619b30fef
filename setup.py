"""setuptools hooks pyproject.toml cannot express: the cffi shim (cffi_modules) and the
`ocirun` command, the C front door (csrc/launcher/, docs/fastpath.md) compiled for the
interpreter that builds the wheel."""

import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def launcher() -> list[str]:
    sys.path.insert(0, os.path.join(HERE, "csrc", "launcher"))
    from frontdoor import compile_front_door

    out_dir = os.path.join(HERE, "build", "launcher")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "ocirun")
    compile_front_door(out)
    return [os.path.relpath(out, HERE)]


# data_files, not scripts: setuptools reads scripts as text to rewrite their #! line. The
# launcher lands in <prefix>/bin, i.e. the venv's bin/, executable.
setup(cffi_modules=["csrc/build_shim.py:ffibuilder"], data_files=[("bin", launcher())])
