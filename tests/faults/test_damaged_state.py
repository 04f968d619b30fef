"""Damaged state beside healthy containers: state.json truncated, garbage, empty, not an
object, without a pid, nested too deep, a directory, or missing beside the config.json written
after it. `list` and `state` keep working for the healthy ones and name the damage on one
line; `gc` leaves a damaged container whose processes live (saying so); `delete --force`
cleans it, processes and cgroups included. (Part A's test in
tests/integration/test_reliability.py covers the truncated file on its own.)"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from faultlib import call, count, leftovers, mounts, ok, one_line, run_detached, uid

DAMAGE = {
    "truncated": lambda raw: raw[: len(raw) // 2],
    "garbage": lambda raw: b"\x00\xffnot json at all\x80",
    "empty": lambda raw: b"",
    "array": lambda raw: b"[1, 2, 3]",
    "no-pid": lambda raw: json.dumps(
        {k: v for k, v in json.loads(raw).items() if k != "pid"}
    ).encode(),
    "pid-string": lambda raw: json.dumps(dict(json.loads(raw), pid="12")).encode(),
    "deep": lambda raw: b"[" * 100000 + b"]" * 100000,
}


def damage(path: str, how: str) -> None:
    if how == "directory":
        os.unlink(path)
        os.mkdir(path)
    elif how == "missing":
        os.unlink(path)
    else:
        with open(path, "rb") as f:
            raw = f.read()
        with open(path, "wb") as f:
            f.write(DAMAGE[how](raw))


@pytest.mark.parametrize("how", [*DAMAGE, "directory", "missing"])
def test_damaged_beside_healthy(rt, make_bundle, how):
    before = mounts()
    good1, bad, good2 = uid("good"), uid("bad"), uid("good")
    for cid in (good1, bad, good2):
        run_detached(rt, make_bundle, cid)
    ok(call(rt, "exec", "--detach", bad, "sleep", "600"))
    path = os.path.join(rt.root, bad, "state.json")
    pid = json.load(open(path))["pid"]
    damage(path, how)

    listed = ok(call(rt, "list", "--format", "json"))
    ids = [c["id"] for c in json.loads(listed.stdout)]
    assert good1 in ids and good2 in ids, listed.stdout
    for cid in (good1, good2):
        assert json.loads(ok(call(rt, "state", cid)).stdout)["status"] == "running"
    assert bad not in ids
    assert len(listed.stderr.strip().splitlines()) == 1 and path in listed.stderr
    one_line(call(rt, "state", bad), path, "damaged container state")
    one_line(call(rt, "delete", bad), path)
    os.kill(pid, 0)  # nothing so far touched the damaged container's processes

    g = ok(call(rt, "gc"))
    assert f"kept {rt.root}/{bad}: " in g.stdout and "still run" in g.stdout, g.stdout
    assert g.stdout.count("\n") == 1, g.stdout  # nothing else: the healthy ones untouched
    os.kill(pid, 0)

    ok(call(rt, "delete", "--force", bad, timeout=20))
    assert not leftovers(rt, [bad], None).get("cgroups")
    assert sorted(os.listdir(rt.root)) == sorted([good1, good2])
    for cid in (good1, good2):
        assert json.loads(ok(call(rt, "state", cid)).stdout)["status"] == "running"
        ok(call(rt, "delete", "--force", cid))
    assert not leftovers(rt, [good1, bad, good2], before)
    count("containers run", 3)


def test_damaged_state_of_a_dead_container_is_removed_by_gc(rt, make_bundle):
    cid = uid("bad")
    run_detached(rt, make_bundle, cid)
    path = os.path.join(rt.root, cid, "state.json")
    ok(call(rt, "kill", cid, "KILL"))
    damage(path, "garbage")
    r = ok(call(rt, "gc", "--dry-run"))
    assert r.stdout.startswith(f"would remove container {rt.root}/{cid}: damaged state"), r.stdout
    assert os.path.isdir(os.path.join(rt.root, cid))
    r = ok(call(rt, "gc"))
    assert r.stdout.startswith(f"removed container {rt.root}/{cid}: damaged state"), r.stdout
    assert not leftovers(rt, [cid])
    count("containers run")


def test_damaged_state_without_a_record_of_its_cgroups_is_left_to_delete_force(rt, make_bundle):
    cid = uid("bad")
    run_detached(rt, make_bundle, cid)
    d = os.path.join(rt.root, cid)
    os.unlink(os.path.join(d, "cgroups.json"))
    damage(os.path.join(d, "state.json"), "truncated")
    r = ok(call(rt, "gc"))
    assert r.stdout.startswith(f"kept {d}: damaged state") and "delete --force" in r.stdout
    shutil.copy(os.path.join(d, "state.json"), os.path.join(d, "state.json.bak"))
    ok(call(rt, "delete", "--force", cid))
    # no record of its cgroups: delete --force removes the state; gc finds the tagged cgroups
    r = ok(call(rt, "gc"))
    assert f"container {cid} of {rt.root} has no state any more" in r.stdout, r.stdout
    assert not leftovers(rt, [cid])
    count("containers run")
