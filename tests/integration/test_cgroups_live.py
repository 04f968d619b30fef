"""Real cgroups on this host (root). Two kinds of test:

* the Manager straight against /sys/fs/cgroup (no runtime wiring needed): limits land in the
  kernel's files, processes are added, frozen, signalled, counted, OOM-killed, and nothing
  is left behind;
* the CLI (`ocirun create/pause/kill --all/update/events/ps/delete`) on real containers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from testenv import OCIRUN

from ocirun.cgroups import CgroupError, from_state, open_manager
from ocirun.cgroups.layout import layout

CG = "/sys/fs/cgroup"
BASE = "/ocirun-test"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _wait_until(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture
def cg():
    """make(resources=..., **linux) -> a created Manager at /ocirun-test/<uuid>. Afterwards
    every process in it is killed and every directory it made must be gone."""
    if not os.path.isdir(f"{CG}/memory") or layout().mode == "v2":
        pytest.skip("these direct tests target this host's cgroup v1 (hybrid) layout")
    made = []

    def make(resources: dict | None = None, **linux):
        linux.setdefault("cgroupsPath", f"{BASE}/{uuid.uuid4().hex[:12]}")
        linux["resources"] = resources or {}
        m = open_manager(linux, "cid")
        made.append(m)
        m.create()
        return m

    yield make
    for m in made:
        try:
            m.kill_all(signal.SIGKILL)
            _wait_until(lambda m=m: not m.pids(), 5)
        except (CgroupError, OSError):
            pass
        m.destroy()
        left = [d for d in m.created if os.path.exists(d)]
        assert not left, f"cgroup dirs left behind: {left}"


def _held(m, argv: list[str], **kw) -> subprocess.Popen:
    """Start argv in m's cgroups before it runs: it waits on stdin until added (as the
    runtime adds the init before it runs anything of the user's)."""
    p = subprocess.Popen(
        ["/bin/sh", "-c", 'read _; exec "$@"', "sh", *argv], stdin=subprocess.PIPE, **kw
    )
    m.add(p.pid)
    p.stdin.write(b"\n")
    p.stdin.close()
    return p


def test_limits_land_in_the_kernel_files(cg):
    m = cg(
        {
            "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swappiness": 0},
            "pids": {"limit": 20},
            "cpu": {
                "shares": 512,
                "quota": 50000,
                "period": 100000,
                "burst": 10000,
                "cpus": "0",
                "mems": "0",
            },
            "blockIO": {"throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": 10 << 20}]},
        }
    )
    d = m.dirs
    assert _read(f"{d['memory']}/memory.limit_in_bytes") == str(64 << 20)
    assert _read(f"{d['memory']}/memory.soft_limit_in_bytes") == str(32 << 20)
    assert _read(f"{d['memory']}/memory.swappiness") == "0"
    assert _read(f"{d['pids']}/pids.max") == "20"
    assert _read(f"{d['cpu']}/cpu.shares") == "512"
    assert _read(f"{d['cpu']}/cpu.cfs_quota_us") == "50000"
    assert _read(f"{d['cpu']}/cpu.cfs_period_us") == "100000"
    assert _read(f"{d['cpu']}/cpu.cfs_burst_us") == "10000"
    assert _read(f"{d['cpuset']}/cpuset.cpus") == "0"
    assert _read(f"{d['blkio']}/blkio.throttle.write_bps_device") == f"254:0 {10 << 20}"
    # every mounted hierarchy, name=systemd and the hybrid cgroup2 tree included
    for sub in (
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "pids",
        "name=systemd",
        "",
    ):
        assert os.path.isdir(d[sub]), sub
    assert d[""].startswith(f"{CG}/unified/")
    # device rules: deny all, then runc's defaults
    devices = _read(f"{d['devices']}/devices.list").splitlines()
    assert "a *:* rwm" not in devices and "c 1:3 rwm" in devices and "c 136:* rwm" in devices


def test_process_lifecycle_add_freeze_thaw_kill(cg):
    m = cg({"memory": {"limit": 64 << 20}})
    p = _held(m, ["sleep", "100"])
    path = m.dirs["memory"][len(f"{CG}/memory") :]
    lines = _read(f"/proc/{p.pid}/cgroup").splitlines()
    assert f"4:memory:{path}" in lines or any(ln.endswith(f":memory:{path}") for ln in lines)
    assert f"0::{path}" in lines  # the hybrid cgroup2 tree
    assert any(ln.endswith(f":name=systemd:{path}") for ln in lines)
    assert m.pids() == [p.pid]

    m.freeze()
    assert m.state() == "FROZEN"
    assert _read(f"{m.dirs['freezer']}/freezer.state") == "FROZEN"
    m.thaw()
    assert m.state() == "THAWED"
    # a later command reopens the manager from state.json
    again = from_state(json.loads(json.dumps(m.paths)))
    again.kill_all(signal.SIGKILL)
    assert p.wait(timeout=5) == -signal.SIGKILL
    assert _wait_until(lambda: not again.pids())


def test_kill_all_reaches_every_process_with_any_signal(cg):
    m = cg()
    p = _held(m, ["/bin/sh", "-c", "sleep 100 & sleep 100 & wait"])
    assert _wait_until(lambda: len(m.pids()) == 3)
    m.kill_all(signal.SIGTERM)  # freeze, signal each, thaw
    assert p.wait(timeout=5) in (-signal.SIGTERM, 143)
    assert _wait_until(lambda: not m.pids())


def test_pids_limit_stops_forks(cg):
    m = cg({"pids": {"limit": 20}})
    p = _held(
        m,
        ["/bin/sh", "-c", "for i in $(seq 40); do sleep 10 & done; sleep 10"],
        stderr=subprocess.PIPE,
    )
    assert _wait_until(lambda: int(_read(f"{m.dirs['pids']}/pids.current")) >= 20)
    time.sleep(0.2)
    assert int(_read(f"{m.dirs['pids']}/pids.current")) == 20
    assert 15 <= len(m.pids()) <= 20  # pids.current also counts a task still being reaped
    events = dict(line.split() for line in _read(f"{m.dirs['pids']}/pids.events").splitlines())
    assert int(events["max"]) > 0  # forks refused
    m.kill_all(signal.SIGKILL)
    p.wait(timeout=5)
    assert b"fork" in p.stderr.read().lower()


def test_memory_limit_oom_kills(cg):
    m = cg({"memory": {"limit": 16 << 20, "swap": 16 << 20}})
    assert m.oom_count() == 0
    p = _held(
        m,
        [sys.executable, "-S", "-c", "s = b'x' * (64 << 20); print(len(s))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.wait(timeout=30) == -signal.SIGKILL
    assert m.oom_count() >= 1
    stats = m.stats()
    assert stats["memory"]["usage"]["limit"] == 16 << 20
    assert stats["memory"]["usage"]["max"] == 16 << 20  # it got to the limit


def test_update_live_cgroup(cg):
    m = cg({"memory": {"limit": 64 << 20}, "pids": {"limit": 20}, "cpu": {"shares": 512}})
    p = _held(m, ["sleep", "100"])
    again = from_state(m.paths)
    assert (
        again.update(
            {
                "memory": {"limit": 128 << 20, "swap": 256 << 20},
                "pids": {"limit": 30},
                "cpu": {"shares": 256, "quota": 20000},
            }
        )
        == []
    )
    assert _read(f"{m.dirs['memory']}/memory.limit_in_bytes") == str(128 << 20)
    assert _read(f"{m.dirs['memory']}/memory.memsw.limit_in_bytes") == str(256 << 20)
    assert _read(f"{m.dirs['pids']}/pids.max") == "30"
    assert _read(f"{m.dirs['cpu']}/cpu.shares") == "256"
    assert _read(f"{m.dirs['cpu']}/cpu.cfs_quota_us") == "20000"
    # lowering memory+swap under memory: the writes are ordered so both land
    again.update({"memory": {"limit": 32 << 20, "swap": 48 << 20}})
    assert _read(f"{m.dirs['memory']}/memory.limit_in_bytes") == str(32 << 20)
    assert _read(f"{m.dirs['memory']}/memory.memsw.limit_in_bytes") == str(48 << 20)
    m.kill_all(signal.SIGKILL)
    p.wait(timeout=5)


def test_rejected_value_names_file_and_leaves_nothing():
    path = f"{BASE}/{uuid.uuid4().hex[:12]}"
    m = open_manager({"cgroupsPath": path, "resources": {"cpu": {"cpus": "7"}}}, "cid")
    base_existed = os.path.isdir(f"{CG}/cpuset{BASE}")
    with pytest.raises(CgroupError) as ei:
        m.create()
    assert f'failed to write "7": write {CG}/cpuset{path}/cpuset.cpus: ' in str(ei.value)
    for h in os.listdir(CG):
        assert not os.path.exists(f"{CG}/{h}{path}")
        if not base_existed:
            assert not os.path.exists(f"{CG}/{h}{BASE}")


def test_stats_from_a_busy_cgroup(cg):
    m = cg({"memory": {"limit": 64 << 20}, "pids": {"limit": 10}})
    p = _held(m, ["/bin/sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
    p.wait(timeout=60)
    s = m.stats()
    assert s["cpu"]["usage"]["total"] > 0
    assert len(s["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert s["memory"]["usage"]["max"] > 0
    assert s["memory"]["raw"]["hierarchical_memory_limit"] == 64 << 20
    assert s["pids"]["limit"] == 10
    assert json.loads(json.dumps(s)) == s


def test_destroy_waits_for_dying_tasks_and_keeps_existing_parents(cg):
    parent = f"{BASE}-keep-{uuid.uuid4().hex[:8]}"
    os.mkdir(f"{CG}/memory{parent}")
    try:
        m = open_manager({"cgroupsPath": f"{parent}/c"}, "cid")
        m.create()
        assert f"{CG}/memory{parent}" not in m.created
        assert f"{CG}/pids{parent}" in m.created
        p = _held(m, ["sleep", "100"])
        m.kill_all(signal.SIGKILL)
        m.destroy()  # right after the kill: rmdir must wait out the dying task
        p.wait(timeout=5)
        assert os.path.isdir(f"{CG}/memory{parent}")
        assert not os.path.exists(f"{CG}/memory{parent}/c")
        assert not os.path.exists(f"{CG}/pids{parent}")
        m.destroy()  # idempotent
    finally:
        os.rmdir(f"{CG}/memory{parent}")


# ----------------------------------------------------------------------- through the CLI


def call(rt, *args, timeout=30) -> subprocess.CompletedProcess:
    """ocirun with stdout/stderr in files: a detached container would hold pipes open."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(
            [OCIRUN, "--root", rt.root, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            timeout=timeout,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())


def ok(rt, *args) -> subprocess.CompletedProcess:
    r = call(rt, *args)
    assert r.returncode == 0, f"ocirun {' '.join(args)} failed ({r.returncode}): {r.stderr}"
    return r


def state(rt, cid) -> dict:
    return json.loads(ok(rt, "state", cid).stdout)


def _cgroup_bundle(make_bundle, cid, resources, args=("sleep", "100")):
    def mutate(cfg):
        cfg["linux"]["cgroupsPath"] = f"{BASE}/{cid}"
        cfg["linux"]["resources"] = resources

    return make_bundle(args=list(args), mutate=mutate)


@pytest.fixture
def cid():
    return "cg-" + uuid.uuid4().hex[:10]


def test_cli_create_applies_limits_and_delete_removes_them(rt, make_bundle, cid):
    b = _cgroup_bundle(make_bundle, cid, {"memory": {"limit": 64 << 20}, "pids": {"limit": 20}})
    ok(rt, "create", "--bundle", b, cid)
    try:
        pid = state(rt, cid)["pid"]
        assert _read(f"{CG}/memory{BASE}/{cid}/memory.limit_in_bytes") == str(64 << 20)
        assert _read(f"{CG}/pids{BASE}/{cid}/pids.max") == "20"
        assert str(pid) in _read(f"{CG}/memory{BASE}/{cid}/cgroup.procs").split()
        assert str(pid) in _read(f"{CG}/unified{BASE}/{cid}/cgroup.procs").split()
        _assert_in_every_cgroup(pid, cid)
    finally:
        ok(rt, "delete", "--force", cid)
    for h in os.listdir(CG):
        assert not os.path.exists(f"{CG}/{h}{BASE}/{cid}")


def _assert_in_every_cgroup(pid: int, cid: str) -> None:
    """pid is in the container's cgroup of every hierarchy: each v1 one (it moved itself
    through `tasks`) and the cgroup2 tree (cloned into it)."""
    lines = _read(f"/proc/{pid}/cgroup").splitlines()
    assert len(lines) > 2
    for line in lines:
        path = line.split(":", 2)[2]
        assert path.endswith(f"{BASE}/{cid}"), (pid, line)


def test_cli_exec_process_joins_every_cgroup(rt, make_bundle, cid, tmp_path):
    b = _cgroup_bundle(make_bundle, cid, {"pids": {"limit": 20}}, args=("sleep", "100"))
    ok(rt, "run", "-d", "--bundle", b, cid)
    try:
        pid_file = tmp_path / "exec.pid"
        ok(rt, "exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "100")
        pid = int(pid_file.read_text())
        _assert_in_every_cgroup(pid, cid)
        assert str(pid) in _read(f"{CG}/pids{BASE}/{cid}/cgroup.procs").split()
        assert _read(f"{CG}/pids{BASE}/{cid}/pids.current") == "2"
    finally:
        ok(rt, "delete", "--force", cid)


def test_cli_container_sees_its_own_limit_through_cgroupns(rt, make_bundle, cid):
    b = _cgroup_bundle(
        make_bundle,
        cid,
        {"memory": {"limit": 64 << 20}},
        args=("cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/proc/self/cgroup"),
    )
    out = ok(rt, "run", "--bundle", b, cid).stdout.split()
    assert out[0] == str(64 << 20)
    assert all(line.endswith(":/") for line in out[1:])


def test_cli_pause_resume(rt, make_bundle, cid):
    ok(rt, "run", "-d", "--bundle", _cgroup_bundle(make_bundle, cid, {}), cid)
    try:
        ok(rt, "pause", cid)
        assert state(rt, cid)["status"] == "paused"
        assert _read(f"{CG}/freezer{BASE}/{cid}/freezer.state") == "FROZEN"
        ok(rt, "resume", cid)
        assert state(rt, cid)["status"] == "running"
    finally:
        ok(rt, "delete", "--force", cid)


def test_cli_kill_all_and_ps(rt, make_bundle, cid):
    b = _cgroup_bundle(make_bundle, cid, {}, args=("sh", "-c", "sleep 100 & sleep 100 & wait"))
    ok(rt, "run", "-d", "--bundle", b, cid)
    try:
        assert _wait_until(
            lambda: len(json.loads(ok(rt, "ps", "--format", "json", cid).stdout)) == 3
        )
        ok(rt, "kill", "--all", cid, "KILL")
        assert _wait_until(lambda: not _read(f"{CG}/pids{BASE}/{cid}/cgroup.procs"))
    finally:
        ok(rt, "delete", "--force", cid)


def test_cli_update_and_events_stats(rt, make_bundle, cid, tmp_path):
    ok(rt, "run", "-d", "--bundle", _cgroup_bundle(make_bundle, cid, {"pids": {"limit": 20}}), cid)
    try:
        res = tmp_path / "r.json"
        res.write_text(json.dumps({"memory": {"limit": 96 << 20}, "pids": {"limit": 30}}))
        ok(rt, "update", "--resources", str(res), cid)
        assert _read(f"{CG}/memory{BASE}/{cid}/memory.limit_in_bytes") == str(96 << 20)
        ok(rt, "update", "--pids-limit", "40", cid)
        assert _read(f"{CG}/pids{BASE}/{cid}/pids.max") == "40"
        out = ok(rt, "events", "--stats", cid).stdout
        ev = json.loads(out)
        assert ev["type"] == "stats" and ev["id"] == cid
        # compact, as runc's Go encoder writes it: scripts match these bytes
        assert out == json.dumps(ev, separators=(",", ":")) + "\n"
        assert out.startswith(f'{{"type":"stats","id":"{cid}","data":{{')
        pids = ok(rt, "ps", "--format", "json", cid).stdout
        assert pids == json.dumps(json.loads(pids), separators=(",", ":")) + "\n"
        assert ev["data"]["pids"]["limit"] == 40
        assert ev["data"]["memory"]["usage"]["limit"] == 96 << 20
    finally:
        ok(rt, "delete", "--force", cid)


def test_cli_rejected_limit_fails_create_and_leaves_nothing(rt, make_bundle, cid):
    b = _cgroup_bundle(make_bundle, cid, {"cpu": {"cpus": "7"}})
    r = call(rt, "create", "--bundle", b, cid)
    if r.returncode == 0:
        call(rt, "delete", "--force", cid)
    assert r.returncode != 0
    assert "cpuset.cpus" in r.stderr
    for h in os.listdir(CG):
        assert not os.path.exists(f"{CG}/{h}{BASE}/{cid}")


def test_cli_events_reports_an_oom_kill(rt, make_bundle, cid):
    """A memory-limited container whose process outgrows the limit is OOM-killed, and
    `events` (runc's JSON shapes) reports it as {"type": "oom"} before ending with the
    container."""
    b = _cgroup_bundle(
        make_bundle,
        cid,
        {"memory": {"limit": 32 << 20}},
        args=("sh", "-c", "sleep 0.5; head -c 200m /dev/zero | tail; sleep 1"),
    )
    ok(rt, "run", "-d", "--bundle", b, cid)
    try:
        events = subprocess.run(
            [OCIRUN, "--root", rt.root, "events", "--interval", "100ms", cid],
            capture_output=True,
            text=True,
            timeout=30,
        )
        kinds = [json.loads(line)["type"] for line in events.stdout.splitlines()]
        assert events.returncode == 0, events.stderr
        assert "oom" in kinds and kinds[0] == "stats", kinds
    finally:
        ok(rt, "delete", "--force", cid)


@pytest.mark.parametrize("frozen", ["itself", "its parent"])
def test_cli_create_into_a_frozen_cgroup_fails_at_once(rt, make_bundle, cid, frozen):
    """A freezer cgroup left FROZEN (by a killed pause, an operator) would hold the new
    init before it is ready: create would hang. runc refuses at once with this text."""
    if not os.path.isdir(f"{CG}/freezer"):
        pytest.skip("this host has no v1 freezer hierarchy")
    made = f"{CG}/freezer{BASE}/{cid}"
    target = made if frozen == "itself" else f"{made}/ctr"
    base_existed = os.path.isdir(f"{CG}/freezer{BASE}")
    os.makedirs(made)
    try:
        with open(f"{made}/freezer.state", "w") as f:
            f.write("FROZEN")

        def mutate(cfg):
            cfg["linux"]["cgroupsPath"] = target[len(f"{CG}/freezer") :]

        b = make_bundle(args=["true"], mutate=mutate)
        r = call(rt, "create", "--bundle", b, cid, timeout=20)
        if r.returncode == 0:
            call(rt, "delete", "--force", cid)
        assert r.returncode != 0
        assert "container's cgroup unexpectedly frozen" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert call(rt, "state", cid).returncode != 0, "a refused create left its state"
        for h in os.listdir(CG):
            if h != "freezer":
                assert not os.path.exists(f"{CG}/{h}{BASE}/{cid}"), h
    finally:
        call(rt, "delete", "--force", cid)  # after a hang: the held init
        with open(f"{made}/freezer.state", "w") as f:
            f.write("THAWED")
        for d in (f"{made}/ctr", made):
            if os.path.isdir(d):
                for pid in _read(f"{d}/cgroup.procs").split():
                    os.kill(int(pid), signal.SIGKILL)
                assert _wait_until(lambda d=d: not _read(f"{d}/cgroup.procs"))
                os.rmdir(d)
        if not base_existed:
            os.rmdir(f"{CG}/freezer{BASE}")


def test_cli_create_into_a_cgroup_in_use_fails(rt, make_bundle, cid):
    """Two containers with one cgroupsPath: the second create is refused (runc >= 1.2, with
    this text; 1.1 only warned), before its init exists, and leaves the first untouched."""

    def mutate(cfg):
        cfg["linux"]["cgroupsPath"] = f"{BASE}/{cid}-shared"

    b = make_bundle(args=["sleep", "30"], mutate=mutate)
    ok(rt, "run", "-d", "--bundle", b, cid)
    try:
        r = call(rt, "create", "--bundle", b, cid + "-2", timeout=20)
        if r.returncode == 0:
            call(rt, "delete", "--force", cid + "-2")
        assert r.returncode != 0
        assert "container's cgroup is not empty: 1 process(es) found" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert call(rt, "state", cid + "-2").returncode != 0, "a refused create left its state"
        assert '"running"' in ok(rt, "state", cid).stdout
        pid = json.loads(ok(rt, "state", cid).stdout)["pid"]
        assert str(pid) in _read(f"{CG}/pids{BASE}/{cid}-shared/cgroup.procs")
    finally:
        ok(rt, "delete", "--force", cid)
    assert not os.path.exists(f"{CG}/pids{BASE}/{cid}-shared")
