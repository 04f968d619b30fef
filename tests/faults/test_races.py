"""Races on one id: concurrent creates, concurrent delete --force, kill racing delete. The
state dir's lock serializes them: exactly one create wins, the others fail on one line that
names the id; every delete --force succeeds; nothing is left, nothing hangs."""

from __future__ import annotations

import json
import subprocess
import tempfile

from faultlib import (
    FULL,
    call,
    count,
    leftovers,
    mounts,
    ok,
    one_line,
    own_cgroup,
    run_detached,
    uid,
    wait_stopped,
)
from testenv import OCIRUN

ROUNDS = 10 if FULL else 3


def together(rt, *commands: list[str], timeout: float = 30) -> list[subprocess.CompletedProcess]:
    """Start every command at once (as nearly as processes can), then wait for them all."""
    procs = []
    for args in commands:
        out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        procs.append(
            (
                subprocess.Popen(
                    [OCIRUN, "--root", rt.root, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                ),
                out,
                err,
                args,
            )
        )
    results = []
    for p, out, err, args in procs:
        rc = p.wait(timeout=timeout)
        out.seek(0)
        err.seek(0)
        results.append(subprocess.CompletedProcess(args, rc, out.read(), err.read()))
        out.close()
        err.close()
    return results


def test_eight_concurrent_creates_of_one_id(rt, make_bundle):
    before = mounts()
    for _ in range(ROUNDS):
        cid = uid("race")
        bundle = make_bundle(args=["sleep", "600"], mutate=own_cgroup(cid))
        results = together(rt, *[["create", "--bundle", bundle, cid]] * 8)
        won = [r for r in results if r.returncode == 0]
        assert len(won) == 1, [(r.returncode, r.stderr) for r in results]
        for r in results:
            if r.returncode:
                assert one_line(r, cid, "exists"), r.stderr
        assert rt.state(cid)["status"] == "created"
        ok(call(rt, "start", cid))
        assert rt.state(cid)["status"] == "running"
        ok(call(rt, "delete", "--force", cid))
        assert not leftovers(rt, [cid], before)
        count("containers run")


def test_eight_concurrent_delete_force(rt, make_bundle):
    before = mounts()
    for _ in range(ROUNDS):
        cid = uid("race")
        run_detached(rt, make_bundle, cid)
        ok(call(rt, "exec", "--detach", cid, "sleep", "600"))
        for r in together(rt, *[["delete", "--force", cid]] * 8):
            ok(r)
        assert not leftovers(rt, [cid], before)
        count("containers run")


def test_kill_racing_delete(rt, make_bundle):
    """kill, kill --all, delete and delete --force at once on a running container, and
    kill against delete of a stopped one: each succeeds or fails on one line."""
    before = mounts()
    for _ in range(ROUNDS):
        cid = uid("race")
        run_detached(rt, make_bundle, cid)
        results = together(
            rt,
            ["kill", cid, "KILL"],
            ["kill", "--all", cid, "TERM"],
            ["delete", cid],
            ["kill", cid, "TERM"],
            ["delete", "--force", cid],
            ["state", cid],
        )
        for r in results:
            if r.returncode:
                one_line(r)
        assert results[4].returncode == 0, results[4].stderr  # delete --force
        assert not leftovers(rt, [cid], before)
        count("containers run")

        cid = uid("race")
        ok(
            call(
                rt,
                "run",
                "--detach",
                "--bundle",
                make_bundle(args=["true"], mutate=own_cgroup(cid)),
                cid,
            )
        )
        wait_stopped(rt, cid)
        results = together(rt, ["kill", cid, "KILL"], ["delete", cid], ["kill", cid, "KILL"])
        assert results[1].returncode == 0, results[1].stderr
        for r in (results[0], results[2]):
            if r.returncode:
                one_line(r)  # "container not running" or "does not exist"
        assert not leftovers(rt, [cid], before)
        assert json.loads(ok(call(rt, "list", "--format", "json")).stdout or "[]") == []
        count("containers run")
