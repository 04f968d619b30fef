"""setuptools hooks pyproject.toml cannot express: the cffi shim (cffi_modules) and the
`ocirun` command, a small C launcher (csrc/launcher/launcher.c) compiled for the
interpreter that builds the wheel."""

import os
import subprocess
import sysconfig

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def launcher() -> list[str]:
    out_dir = os.path.join(HERE, "build", "launcher")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "ocirun")
    base = sysconfig.get_config_var("base") or sysconfig.get_paths()["data"]
    site_rel = os.path.relpath(sysconfig.get_paths(vars={"base": base, "platbase": base})
                               ["purelib"], base)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", f'-DSITE_REL="{site_rel}"',
                    "-o", out, os.path.join(HERE, "csrc", "launcher", "launcher.c")],
                   check=True)
    return [os.path.relpath(out, HERE)]


# data_files, not scripts: setuptools reads scripts as text to rewrite their #! line. The
# launcher lands in <prefix>/bin, i.e. the venv's bin/, executable.
setup(cffi_modules=["csrc/build_shim.py:ffibuilder"], data_files=[("bin", launcher())])
