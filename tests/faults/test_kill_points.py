"""SIGKILL of the runtime at many points of create, start, exec -d, delete and delete --force:
stopped on entering a chosen syscall (strace's fault injection: the n-th call of syscall X,
taken from a recorded run), which is exact and repeatable where a delay is not. After each
kill, `list` and `state` still answer; then either `delete --force` alone, or `gc` and then
`delete --force` (gc may leave only a live container, whose stale files it removed) leave
nothing: no state dir, process, cgroup in any hierarchy, mount or cache temporary.

By default about 30 points per operation, spread over all of it from the first syscall that
touches the state root (create: the config cache); OCIRUN_FAULTS=full tries every syscall.
tests/integration/test_reliability.py sweeps delays over create and delete --force too.
"""

from __future__ import annotations

import json
import os

import pytest
from faultlib import (
    call,
    count,
    killed_at,
    leftovers,
    mounts,
    ok,
    own_cgroup,
    pick,
    record,
    uid,
    wait_stopped,
)

N = 16  # points per operation by default

LIVE = {"created", "running", "paused"}


def after_kill(rt, cid: str, i: int) -> None:
    """What a user does next: look, then clean up (even i: delete --force; odd: gc first)."""
    r = call(rt, "list")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    r = call(rt, "state", cid)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 1, r.stderr
    if i % 2:
        g = ok(call(rt, "gc"))
        assert "not removed" not in g.stderr, g.stderr
        if os.path.isdir(os.path.join(rt.root, cid)):
            # gc leaves a live container alone, but its state must now be true
            st = json.loads(ok(call(rt, "state", cid)).stdout)
            # or a create killed between its mkdir and its lock: gc can't tell it from a
            # live one for a few seconds, and says so
            young = f"kept {rt.root}/{cid}: empty, made less than"
            assert st["status"] in LIVE or young in g.stdout, (st, g.stdout)
            if st["status"] == "created":
                assert os.path.exists(os.path.join(rt.root, cid, "exec.fifo"))
        again = ok(call(rt, "gc", "--dry-run"))
        assert all(line.startswith("kept") for line in again.stdout.splitlines()), again.stdout
    ok(call(rt, "delete", "--force", cid, timeout=20))


def sweep(rt, prepare, args_of, marker: str, name: str) -> None:
    """prepare(cid) makes what the operation needs; args_of(cid) is its command line."""
    before = mounts()
    for warm in (True, False):  # once to fill the caches, once to record the syscalls
        cid = uid("rec")
        prepare(cid)
        if warm:
            ok(call(rt, *args_of(cid)))
        else:
            points = record(rt, args_of(cid), marker)
        ok(call(rt, "delete", "--force", cid))
    tried = reached = 0
    for i, point in enumerate(pick(points, N)):
        cid = uid("k")
        prepare(cid)
        r = killed_at(rt, args_of(cid), point)
        tried += 1
        reached += r.returncode != 0
        after_kill(rt, cid, i)
        left = leftovers(rt, [cid], before)
        if left.get("cache temporaries") and not i % 2:
            # a cache writer's, not the container's: not delete's to remove, but gc's (and
            # the cache's next write's)
            ok(call(rt, "gc"))
            left = leftovers(rt, [cid], before)
        assert not left, f"{name} killed at {point} (#{i}): left {left}"
    count(f"kill points tried ({name})", tried)
    count("kill points tried", tried)
    count("kill points that left something", 0)
    assert reached >= tried // 2, f"only {reached} of {tried} kills hit {name} before it ended"


def _sleeper(make_bundle, cid: str, args=("sleep", "600")) -> str:
    return make_bundle(args=list(args), mutate=own_cgroup(cid))


@pytest.mark.usefixtures("strace")
def test_create(rt, make_bundle):
    bundles = {}

    def prepare(cid):
        bundles[cid] = _sleeper(make_bundle, cid)

    # From the config cache on: a new cgroupsPath is a new config, a cache miss and write.
    sweep(
        rt,
        prepare,
        lambda cid: ["create", "--bundle", bundles[cid], cid],
        os.environ["OCIRUN_CACHE_DIR"],
        "create",
    )


@pytest.mark.usefixtures("strace")
def test_start(rt, make_bundle):
    def prepare(cid):
        ok(call(rt, "create", "--bundle", _sleeper(make_bundle, cid), cid))

    sweep(rt, prepare, lambda cid: ["start", cid], rt.root, "start")


@pytest.mark.usefixtures("strace")
def test_exec_detached(rt, make_bundle):
    def prepare(cid):
        ok(call(rt, "run", "--detach", "--bundle", _sleeper(make_bundle, cid), cid))

    sweep(rt, prepare, lambda cid: ["exec", "--detach", cid, "sleep", "600"], rt.root, "exec -d")


@pytest.mark.usefixtures("strace")
def test_delete_of_a_stopped_container(rt, make_bundle):
    def prepare(cid):
        ok(call(rt, "run", "--detach", "--bundle", _sleeper(make_bundle, cid, ["true"]), cid))
        wait_stopped(rt, cid)

    sweep(rt, prepare, lambda cid: ["delete", cid], rt.root, "delete")


@pytest.mark.usefixtures("strace")
def test_delete_force_of_a_running_container(rt, make_bundle):
    def prepare(cid):
        ok(call(rt, "run", "--detach", "--bundle", _sleeper(make_bundle, cid), cid))
        ok(call(rt, "exec", "--detach", cid, "sleep", "600"))

    sweep(rt, prepare, lambda cid: ["delete", "--force", cid], rt.root, "delete --force")
