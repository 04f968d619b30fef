"""What the hot commands load. Engines call state, start, kill and delete for every
container; each must pay for little more than the interpreter (issue 6), so none may load
the planner, the compiled shim, the schema validator, typer, or even `os` (~1 ms here).

Each command runs as the `ocirun` front door's fallback runs it (csrc/launcher/launcher.c:
`python3 -IS -c <import main>` with the checkout and the venv's site-packages on sys.path),
under `-X importtime`, whose stderr names every module the process imported, against a
real container. (The front door itself answers these commands without Python when create
left a record: test_frontdoor.py; this is the path of every container it hands over.)
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tempfile
import time

from clitools import call, ok
from testenv import REPO

# Loaded by create, exec or the typer CLI: never by the four hot commands.
HEAVY = {
    "os",
    "posixpath",
    "__future__",
    "re",
    "enum",
    "json",
    "typing",
    "socket",
    "subprocess",
    "typer",
    "click",
    "jsonschema",
    "_cffi_backend",
    "ocirun._native",
    "ocirun.container",
    "ocirun.plan",
    "ocirun.plan_rootfs",
    "ocirun.spec",
    "ocirun.validate",
    "ocirun.seccomp",
    "ocirun.seccomp_cache",
    "ocirun.cli",
    "ocirun.cgroups.devices",
    "select",
}


# What the front door's fallback runs (launcher.c's CODE, built with SOURCE_DIR).
FALLBACK = (
    "import sys;n=2;sys.path[0:0]=sys.argv[1:1+n];del sys.argv[1:1+n];"
    "sys.argv[0]='ocirun';from ocirun.main import main;main()"
)


def imports_of(rt, *args: str) -> set[str]:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                "-X",
                "importtime",
                "-c",
                FALLBACK,
                str(REPO),
                sysconfig.get_paths()["purelib"],
                "--root",
                rt.root,
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            timeout=30,
        )
        err.seek(0)
        text = err.read()
    assert p.returncode == 0, text
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    names.discard("imported package")  # the header line
    assert "ocirun.fastcli" in names, text  # the listing was read
    return names


def test_state_start_kill_delete_import_nothing_heavy(rt, make_bundle):
    ok(call(rt, "create", "--bundle", make_bundle(args=["sleep", "30"]), "c1"))
    try:
        loaded = {}
        for args in (["state", "c1"], ["start", "c1"], ["kill", "c1", "KILL"]):
            loaded[args[0]] = imports_of(rt, *args)
        deadline = time.monotonic() + 10
        while '"stopped"' not in ok(call(rt, "state", "c1")).stdout:
            assert time.monotonic() < deadline, "the killed container did not stop"
            time.sleep(0.02)
        loaded["delete"] = imports_of(rt, "delete", "c1")
    finally:
        call(rt, "delete", "--force", "c1")
    assert "ocirun.cgroups.common" in loaded["delete"]  # it does remove the cgroups
    for cmd, names in loaded.items():
        assert not names & HEAVY, f"{cmd} imported {sorted(names & HEAVY)}"
