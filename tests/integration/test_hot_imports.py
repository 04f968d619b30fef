"""What the commands engines send per container load: the boundary the measures of
ocirun/_lean.py keep (its docstring says what each saves).

- none of them imports typer or click (the argv parser in _lean.py), nor `json`, `re`
  and `hashlib` (its JSON and sha256);
- create and exec, with a config whose validation is cached and no netDevices, load no
  jsonschema and no pyroute2;
- state, start, kill and delete, as the front door hands them to Python, load none of the
  planner, the compiled shim or the schema validator either.

Each command runs as the `ocirun` front door's fallback runs it (csrc/launcher/launcher.c:
`python3 -IS -c <import main>` with the checkout and the venv's site-packages on sys.path),
under `-X importtime`, whose stderr names every module the process imported, against a
real container. (The front door itself answers state/start/kill/delete without Python
when create left a record: test_frontdoor.py; this is the path of every container it
hands over.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tempfile
import time

from clitools import call, ok
from testenv import REPO

# What no command engines send per container may load.
NEVER = {"typer", "click", "json", "re", "hashlib", "jsonschema", "pyroute2"}

# What state, start, kill and delete may not load either: create's and exec's machinery
# (they may load cffi for ocirun._status: the front door's own status derivation, the
# one implementation of it, issue 16 — but not the shim).
SPAWN = {
    "ocirun._shim",
    "ocirun._native",
    "ocirun.container",
    "ocirun.execute",
    "ocirun.plan",
    "ocirun.plan_rootfs",
    "ocirun.spec",
    "ocirun.validate",
    "ocirun.seccomp",
    "ocirun.seccomp_cache",
    "ocirun.cli",
    "ocirun.cgroups.devices",
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
    assert "ocirun._lean" in names, text  # the listing was read
    # a package's name too (pyroute2 for pyroute2.iproute)
    return names | {n.split(".", 1)[0] for n in names}


def test_hot_commands_import_only_what_they_need(rt, make_bundle):
    bundle = make_bundle(args=["sleep", "30"])
    ok(call(rt, "create", "--bundle", bundle, "c0"))  # validates the config: cached now
    ok(call(rt, "delete", "--force", "c0"))
    loaded = {"create": imports_of(rt, "create", "--bundle", bundle, "c1")}
    try:
        for args in (["state", "c1"], ["start", "c1"]):
            loaded[args[0]] = imports_of(rt, *args)
        ok(call(rt, "exec", "c1", "true"))  # validates the process: cached now
        loaded["exec"] = imports_of(rt, "exec", "c1", "true")
        loaded["kill"] = imports_of(rt, "kill", "c1", "KILL")
        deadline = time.monotonic() + 10
        while '"stopped"' not in ok(call(rt, "state", "c1")).stdout:
            assert time.monotonic() < deadline, "the killed container did not stop"
            time.sleep(0.02)
        loaded["delete"] = imports_of(rt, "delete", "c1")
    finally:
        call(rt, "delete", "--force", "c1")
    assert "ocirun.cgroups.common" in loaded["delete"]  # it does remove the cgroups
    assert "ocirun._native" in loaded["create"]  # the listing of a whole create
    for cmd, names in loaded.items():
        heavy = NEVER if cmd in ("create", "exec") else NEVER | SPAWN
        assert not names & heavy, f"{cmd} imported {sorted(names & heavy)}"


# What exec may not load when create recorded its facts (ocirun/execfacts.py): the
# cgroup manager, the seccomp compiler and its cache, create's own module; nor, when its
# flags change only args (the process create validated), the validator and its cache.
DECIDED_AT_CREATE = {
    "ocirun.cgroups",
    "ocirun.container",
    "ocirun.seccomp",
    "ocirun.seccomp_cache",
    "ocirun.rootless",
    "ocirun.spec",
    "ocirun.cache",
}


def test_exec_uses_what_create_recorded(rt, make_bundle):
    """exec into a container with a seccomp profile: the filter and the cgroup placement
    come from state.json's "exec" record; with the record removed, exec works them out
    again (and loads what that takes): the measure is the record, not an accident."""

    def profile(cfg):
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}],
        }

    bundle = make_bundle(args=["sleep", "30"], mutate=profile)
    ok(call(rt, "run", "-d", "--bundle", bundle, "hot-exec"))
    try:
        recorded = imports_of(rt, "exec", "hot-exec", "true")
        assert not recorded & DECIDED_AT_CREATE, sorted(recorded & DECIDED_AT_CREATE)
        # a flag that changes the process: validated again (through the cache)
        assert "ocirun.spec" in imports_of(rt, "exec", "--cwd", "/tmp", "hot-exec", "true")
        state_file = f"{rt.root}/hot-exec/state.json"
        with open(state_file) as f:
            state = json.load(f)
        assert state["exec"]["seccomp"] is not None
        del state["exec"]
        with open(state_file, "w") as f:
            json.dump(state, f)
        worked_out = imports_of(rt, "exec", "hot-exec", "true")
        assert {"ocirun.cgroups", "ocirun.seccomp_cache"} <= worked_out, sorted(worked_out)
    finally:
        call(rt, "delete", "--force", "hot-exec")
