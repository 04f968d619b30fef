"""`ocirun gc [--dry-run]` against each leftover crashed or killed runtimes leave (the kill
sweep in test_kill_points.py also runs gc after half of its kills), and what it must never
touch: live containers (running, created, paused), a state dir an operation holds, a runc
container's cgroups, another ocirun root's containers and cgroups."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

import faultlib
import pytest
from faultlib import (
    Root,
    call,
    cgroups_named,
    count,
    leftovers,
    mounts,
    ok,
    own_cgroup,
    uid,
    wait_stopped,
)


def run_detached(rt, make_bundle, cid, args=("sleep", "600")) -> int:
    """faultlib.run_detached, counted; the init's pid."""
    faultlib.run_detached(rt, make_bundle, cid, args)
    count("containers run")
    return rt.state(cid)["pid"]


def gc(rt, *flags) -> list[str]:
    r = ok(call(rt, "gc", *flags))
    assert r.stderr == "", r.stderr
    return r.stdout.splitlines()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_each_leftover_is_found_said_and_removed(rt, make_bundle):
    before = mounts()
    root = rt.root
    # a container whose init died, nobody deleted it
    dead = uid("dead")
    os.kill(run_detached(rt, make_bundle, dead), 9)
    # a stopped container (its process exited), nobody deleted it
    stopped = uid("stopped")
    run_detached(rt, make_bundle, stopped, ["true"])
    wait_stopped(rt, stopped)
    # a create that died before writing its state: its init waits on exec.fifo
    halfmade = uid("half")
    ok(
        call(
            rt,
            "create",
            "--bundle",
            make_bundle(args=["sleep", "600"], mutate=own_cgroup(halfmade)),
            halfmade,
        )
    )
    init = rt.state(halfmade)["pid"]
    for name in ("state.json", "config.json"):
        os.unlink(os.path.join(root, halfmade, name))
    old = time.time() - 60
    os.utime(os.path.join(root, halfmade), (old, old))
    # cgroups of a container whose state dir is gone (its process still in them)
    orphan = uid("orphan")
    orphan_pid = run_detached(rt, make_bundle, orphan)
    shutil.rmtree(os.path.join(root, orphan))
    # a temporary of a dead writer in a live container; a live writer's is kept
    live = uid("live")
    run_detached(rt, make_bundle, live)
    dead_tmp = os.path.join(root, live, "state.json.tmp999999999")
    live_tmp = os.path.join(root, live, f"state.json.tmp{os.getpid()}")
    for p in (dead_tmp, live_tmp):
        open(p, "w").close()
    # a cache temporary of a dead writer, and the old cache under --root
    cache_tmp = os.path.join(os.environ["OCIRUN_CACHE_DIR"], "config", ".x.999999999.ab.tmp")
    open(cache_tmp, "w").close()
    os.makedirs(os.path.join(root, ".cache", "config"))

    dry = gc(rt, "--dry-run")
    expect = {
        f"would remove container {root}/{dead}: its init (pid",
        f"would remove container {root}/{stopped}: its init (pid",
        f"would remove container {root}/{halfmade}: a create that died before it wrote",
        f"would remove cgroup /sys/fs/cgroup/memory/{orphan}: container {orphan} of {root} "
        "has no state any more; its processes would be killed",
        f"would remove temporary {dead_tmp}: its writer (pid 999999999) is gone",
        f"would remove cache {cache_tmp}: a temporary whose writer",
        f"would remove cache {root}/.cache: ocirun's old cache under --root",
    }
    for e in expect:
        assert any(line.startswith(e) for line in dry), (e, dry)
    assert len([x for x in dry if f"/{orphan}:" in x]) == len(cgroups_named(orphan)) >= 2
    assert not any(live_tmp in x or f"{root}/{live}:" in x for x in dry), dry
    # nothing removed by the dry run
    assert {dead, stopped, halfmade, live} <= set(os.listdir(root))
    assert cgroups_named(orphan) and alive(orphan_pid) and alive(init)
    assert os.path.exists(dead_tmp) and os.path.exists(cache_tmp)

    done = gc(rt)

    def what(lines):  # (kind, path) of each line
        return [tuple(x.split(": ")[0].split()[-2:]) for x in lines]

    assert what(dry) == what(done) and all(x.startswith("removed ") for x in done), done
    assert any("init still waited" in x and "it was killed" in x for x in done), done
    assert sorted(os.listdir(root)) == [live]
    assert os.listdir(os.path.join(root, live)) != [] and os.path.exists(live_tmp)
    assert not os.path.exists(dead_tmp) and not os.path.exists(cache_tmp)
    assert not alive(init) and not alive(orphan_pid)
    assert gc(rt) == []  # nothing left to find
    assert rt.state(live)["status"] == "running"
    os.unlink(live_tmp)
    ok(call(rt, "delete", "--force", live))
    assert not leftovers(rt, [dead, stopped, halfmade, orphan, live], before)


def test_a_start_killed_after_releasing_the_init_leaves_a_stale_fifo(rt, make_bundle, strace):
    cid = uid("fifo")
    ok(
        call(
            rt,
            "create",
            "--bundle",
            make_bundle(args=["sleep", "600"], mutate=own_cgroup(cid)),
            cid,
        )
    )
    count("containers run")
    # killed on its first unlink: exec.fifo, after the write that released the init (unlinkat
    # from the C front door, unlink from Python's start)
    r = call(
        rt,
        "start",
        cid,
        wrap=(
            "strace",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=unlink,unlinkat",
            "-e",
            "inject=unlink,unlinkat:signal=KILL:when=1",
        ),
    )
    assert r.returncode != 0
    assert rt.state(cid)["status"] == "created"  # a lie: the init runs
    why = (
        f"the init (pid {rt.state(cid)['pid']}) no longer holds it (a start killed "
        "after releasing the init)"
    )
    d = os.path.join(rt.root, cid)
    assert gc(rt, "--dry-run") == [
        f"would remove fifo {d}/exec.fifo: {why}",
        f"would remove fifo {d}/exec.result: {why}",
    ]
    assert gc(rt) == [f"removed fifo {d}/exec.fifo: {why}", f"removed fifo {d}/exec.result: {why}"]
    assert rt.state(cid)["status"] == "running"
    ok(call(rt, "delete", "--force", cid))


def test_live_containers_and_busy_state_dirs_are_never_touched(rt, make_bundle):
    running, created, paused, busy = (uid(n) for n in ("running", "created", "paused", "busy"))
    pids = [run_detached(rt, make_bundle, running)]
    ok(
        call(
            rt,
            "create",
            "--bundle",
            make_bundle(args=["sleep", "600"], mutate=own_cgroup(created)),
            created,
        )
    )
    pids.append(rt.state(created)["pid"])
    pids.append(run_detached(rt, make_bundle, paused))
    ok(call(rt, "pause", paused))
    # a dead container whose state dir an operation holds locked: skipped
    os.kill(run_detached(rt, make_bundle, busy), 9)
    fd = os.open(os.path.join(rt.root, busy), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert gc(rt) == []
        assert busy in os.listdir(rt.root)
    finally:
        os.close(fd)
    states = {c: rt.state(c)["status"] for c in (running, created, paused)}
    assert states == {running: "running", created: "created", paused: "paused"}
    assert all(alive(p) for p in pids)
    assert gc(rt)[0].startswith(f"removed container {rt.root}/{busy}: its init")
    for c in (running, created, paused):
        assert cgroups_named(c), c
        ok(call(rt, "delete", "--force", c))


@pytest.fixture
def other_roots(tmp_path):
    """A runc root and a second ocirun root, each cleaned (by pid and id) afterwards."""
    made = {"runc": f"/run/ocirun-faults-runc-{uid('r')}", "ids": []}
    yield made
    for cid in made["ids"]:
        subprocess.run(
            ["runc", "--root", made["runc"], "delete", "--force", cid], capture_output=True
        )
    shutil.rmtree(made["runc"], ignore_errors=True)


def test_another_runtime_and_another_root_are_left_alone(rt, make_bundle, other_roots):
    if not shutil.which("runc"):
        pytest.skip("runc is not installed: no other runtime to compare with")
    before = mounts()
    # runc's container, killed: its cgroups stay until runc deletes it
    theirs = uid("runc")
    other_roots["ids"].append(theirs)
    bundle = make_bundle(args=["sleep", "600"], mutate=own_cgroup(theirs))
    with tempfile.TemporaryFile("w+") as err:  # a pipe would stay open in the container
        r = subprocess.run(
            ["runc", "--root", other_roots["runc"], "run", "-d", "--bundle", bundle, theirs],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=30,
        )
        err.seek(0)
        assert r.returncode == 0, err.read()
    runc_dirs = cgroups_named(theirs)
    assert len(runc_dirs) >= 2
    # ocirun's second root: an orphaned cgroup set (state dir gone) and a dead container
    rt2 = Root(f"{rt.root}-second")
    orphan, dead = uid("orphan2"), uid("dead2")
    run_detached(rt2, make_bundle, orphan)
    shutil.rmtree(os.path.join(rt2.root, orphan))
    os.kill(run_detached(rt2, make_bundle, dead), 9)
    # ours, with a container of the same names' kind in the first root
    mine = uid("mine")
    run_detached(rt, make_bundle, mine)
    shutil.rmtree(os.path.join(rt.root, mine))
    try:
        lines = gc(rt)
        assert all(f"/{mine}:" in x for x in lines) and lines, lines
        assert cgroups_named(theirs) == runc_dirs and cgroups_named(orphan)
        assert dead in os.listdir(rt2.root)
        state = json.loads(
            subprocess.run(
                ["runc", "--root", other_roots["runc"], "state", theirs],
                capture_output=True,
                text=True,
            ).stdout
        )
        assert state["status"] == "running"
        lines2 = gc(rt2)
        assert any(x.startswith(f"removed container {rt2.root}/{dead}") for x in lines2)
        assert any(f"/{orphan}:" in x for x in lines2) and cgroups_named(orphan) == []
        assert cgroups_named(theirs) == runc_dirs
    finally:
        subprocess.run(["rm", "-rf", rt2.root])
    assert not leftovers(rt, [mine, orphan, dead], before)
