"""Compile the `ocirun` front door (csrc/launcher/*.c) for the interpreter running this.

Used by setup.py (the wheel's command) and scripts/mklauncher.py (the development venv's,
which also puts the checkout on sys.path: source_dir). Warnings are errors.
"""

import glob
import os
import subprocess
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(f for f in glob.glob(os.path.join(HERE, "*.c")) if not f.endswith("_fuzz.c"))


def site_rel(venv: str | None = None) -> str:
    """The site-packages path relative to the venv (or installation base)."""
    base = venv or sysconfig.get_config_var("base") or sysconfig.get_paths()["data"]
    purelib = sysconfig.get_paths(vars={"base": base, "platbase": base})["purelib"]
    return os.path.relpath(purelib, base)


def compile_front_door(
    out: str, *, venv: str | None = None, source_dir: str | None = None, cc: str | None = None
) -> None:
    """Build the command into `out` (atomically: a running copy is never overwritten)."""
    flags = [
        "-O2",
        "-std=gnu11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-D_FORTIFY_SOURCE=2",
        f'-DSITE_REL="{site_rel(venv)}"',
    ]
    if source_dir is not None:
        if '"' in source_dir or "\\" in source_dir:
            raise ValueError(f"checkout path not usable in a C string: {source_dir!r}")
        flags.append(f'-DSOURCE_DIR="{source_dir}"')
    tmp = f"{out}.tmp{os.getpid()}"
    try:
        subprocess.run([cc or os.environ.get("CC", "cc"), *flags, "-o", tmp, *SOURCES], check=True)
        os.rename(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
