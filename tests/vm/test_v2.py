"""cgroup v2, for real: containers run with .venv/bin/ocirun inside the cgroup-v2-only VM
(make test-vm). Each test checks the kernel's own files under /sys/fs/cgroup, or what the
container sees through its cgroup namespace.

Under QEMU's TCG one ocirun call takes seconds, so most checks share one long-running
container (`box`, module scope) created with every limit at once; the tests that need a
container of their own (OOM, a full pids cgroup, kill --all, a device update) make one.
Tests run in file order: the ones that change `box` come after the ones reading it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bpftestlib import attached  # noqa: E402

CG = "/sys/fs/cgroup"
BASE = "/ocirun-vm"
OCIRUN = os.path.join(os.path.dirname(sys.executable), "ocirun")
REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "busybox"
TIMEOUT = 180  # one ocirun call, under TCG


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _keyed(path: str) -> dict:
    return dict(line.split(None, 1) for line in _read(path).splitlines())


def _wait_until(cond, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _block_device():
    """(name, major, minor) of a disk in the VM (run.sh attaches a scratch /dev/vda)."""
    for name in ("vda", "sda", "vdb"):
        try:
            major, minor = _read(f"/sys/block/{name}/dev").split(":")
            return name, int(major), int(minor)
        except OSError:
            continue
    return None


DISK = _block_device()


class Runtime:
    """.venv/bin/ocirun with a private --root; output through files (a detached container
    would hold pipes open)."""

    def __init__(self, root: str, tmp: Path):
        self.root, self.tmp, self.made = root, tmp, []

    def call(self, *args: str) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(
                [OCIRUN, "--root", self.root, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=TIMEOUT,
                text=True,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())

    def ok(self, *args: str) -> subprocess.CompletedProcess:
        r = self.call(*args)
        assert r.returncode == 0, f"ocirun {' '.join(args)} failed ({r.returncode}): {r.stderr}"
        return r

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)

    def bundle(self, cid: str, resources: dict, args) -> str:
        cfg = json.loads((BUNDLE / "config.json").read_text())
        cfg["root"]["path"] = str(BUNDLE / "rootfs")
        cfg["process"]["args"] = list(args)
        cfg["linux"]["cgroupsPath"] = f"{BASE}/{cid}"
        cfg["linux"]["resources"] = copy.deepcopy(resources)
        d = self.tmp / cid
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
        return str(d)

    def start(self, resources: dict, args=("sleep", "10000"), how="run-d") -> tuple:
        """A container (`run -d`, or `create`d): (cid, its cgroup dir)."""
        cid = "v2-" + uuid.uuid4().hex[:10]
        b = self.bundle(cid, resources, args)
        self.made.append(cid)
        self.ok(*(["create"] if how == "create" else ["run", "-d"]), "--bundle", b, cid)
        return cid, f"{CG}{BASE}/{cid}"

    def run(self, resources: dict, args) -> subprocess.CompletedProcess:
        cid = "v2-" + uuid.uuid4().hex[:10]
        self.made.append(cid)
        return self.call("run", "--bundle", self.bundle(cid, resources, args), cid)

    def cleanup(self) -> list[str]:
        """Delete what is left; returns the cgroup dirs that are still there."""
        for cid in self.made:
            if os.path.exists(f"{self.root}/{cid}"):
                self.call("delete", "--force", cid)
        shutil.rmtree(self.root, ignore_errors=True)
        return [c for c in self.made if os.path.exists(f"{CG}{BASE}/{c}")]


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    with open("/proc/self/mountinfo") as f:
        fstypes = {ln.split(" - ")[1].split()[0] for ln in f if ln.split()[4] == CG}
    assert fstypes == {"cgroup2"}, f"{CG} is not cgroup2 only: {fstypes}"
    r = Runtime(f"/run/ocirun-vm-test/{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("b"))
    yield r
    left = r.cleanup()
    assert not left, f"cgroup dirs left behind: {left}"


BOX_RESOURCES = {
    "memory": {"limit": 64 << 20},
    "cpu": {"quota": 50000, "period": 100000, "shares": 512},
    "pids": {"limit": 50},
    "unified": {"memory.high": "50000000"},
}
if DISK:
    BOX_RESOURCES["blockIO"] = {
        "throttleReadBpsDevice": [{"major": DISK[1], "minor": DISK[2], "rate": 1 << 20}],
        "throttleWriteIOPSDevice": [{"major": DISK[1], "minor": DISK[2], "rate": 100}],
    }


@pytest.fixture(scope="module")
def box(rt):
    """One running container with every limit: (cid, cgroup dir)."""
    return rt.start(BOX_RESOURCES)


def _sh(script: str) -> tuple:
    return ("sh", "-c", script)


# ----------------------------------------------------------------------------- limits


def test_memory_max(rt, box):
    cid, d = box
    assert _read(f"{d}/memory.max") == "67108864"
    pid = rt.state(cid)["pid"]
    assert _read(f"{d}/cgroup.procs").split() == [str(pid)]
    assert _read(f"/proc/{pid}/cgroup") == f"0::{BASE}/{cid}"


def test_the_container_sees_its_limit_through_its_cgroupns(rt, box):
    cid, _ = box
    out = rt.ok("exec", cid, "cat", "/sys/fs/cgroup/memory.max", "/proc/self/cgroup").stdout
    assert out.split() == ["67108864", "0::/"]


def test_cpu_max_and_weight_from_shares(box):
    _, d = box
    assert _read(f"{d}/cpu.max") == "50000 100000"
    assert _read(f"{d}/cpu.weight") == "59"  # runc >= 1.3.2's conversion of 512


def test_pids_max(box):
    assert _read(f"{box[1]}/pids.max") == "50"


def test_io_max(box):
    if DISK is None:
        pytest.skip("no block device in this VM (run.sh attaches a scratch disk as /dev/vda)")
    _, major, minor = DISK
    assert _read(f"{box[1]}/io.max") == f"{major}:{minor} rbps=1048576 wbps=max riops=max wiops=100"


def test_unified_key_values(box):
    assert _read(f"{box[1]}/memory.high") == str(50000000 // 4096 * 4096)  # page-rounded


def test_events_stats_shape(rt, box):
    cid, _ = box
    ev = json.loads(rt.ok("events", "--stats", cid).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert {"cpu", "memory", "pids", "blkio", "hugetlb"} <= set(data)
    assert data["memory"]["usage"]["limit"] == 64 << 20
    assert data["memory"]["usage"]["usage"] > 0
    assert data["pids"]["current"] >= 1 and data["pids"]["limit"] == 50
    assert data["cpu"]["usage"]["total"] > 0
    assert "anon" in data["memory"]["raw"] and "file" in data["memory"]["raw"]


# ----------------------------------------------------------------------------- devices

PROBE = (
    "echo x > /dev/null && echo null:ok; "
    "head -c1 /dev/zero >/dev/null && echo zero:ok; "
    "mknod /dev/mem2 c 1 1 && echo mknod-c:ok; "
    "head -c1 /dev/mem2 >/dev/null 2>/dev/e; echo mem:$?:$(cat /dev/e); "
    "mknod /dev/blk b {major} {minor} && echo mknod-b:ok; "
    "head -c1 /dev/blk >/dev/null 2>/dev/e; echo blk:$?:$(cat /dev/e); "
    "rm -f /dev/mem2 /dev/blk /dev/e"
)
DENIED = "Operation not permitted"


def _probe(rt, cid, dev=None):
    _, major, minor = dev or DISK or ("none", 7, 0)  # a loop device's number if no disk
    r = rt.ok("exec", cid, *_sh(PROBE.format(major=major, minor=minor)))
    return dict(line.split(":", 1) for line in r.stdout.splitlines())


def test_device_filter_allows_the_defaults_and_denies_the_rest(rt, box):
    cid, d = box
    assert len(attached(d)) == 1
    got = _probe(rt, cid)
    assert got["null"] == "ok" and got["zero"] == "ok", got
    assert got["mknod-c"] == "ok" and got["mknod-b"] == "ok", got  # "c *:* m", "b *:* m"
    assert got["mem"].startswith("1:") and DENIED in got["mem"], got
    assert got["blk"].startswith("1:") and DENIED in got["blk"], got


def test_device_rules_of_the_config_and_update_replaces_the_program(rt, tmp_path):
    if DISK is None:
        pytest.skip("no block device in this VM to allow")
    _, major, minor = DISK
    cid, d = rt.start(
        {"devices": [{"allow": True, "type": "b", "major": major, "minor": minor, "access": "r"}]}
    )
    [first] = attached(d)
    assert _probe(rt, cid)["blk"] == "0:"  # read allowed by the config's rule
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"devices": []}))
    rt.ok("update", "--resources", str(res), cid)
    [second] = attached(d)  # replaced, not added
    assert second != first
    got = _probe(rt, cid)
    assert got["blk"].startswith("1:") and DENIED in got["blk"], got
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(d)


# ----------------------------------------------------------------------------- processes


def test_pids_limit_makes_a_fork_fail(rt):
    cid, d = rt.start({"pids": {"limit": 10}})
    assert _read(f"{d}/pids.max") == "10"
    # the exec'd shell gets as far as the limit; then its fork fails (and ash gives up)
    r = rt.call(
        "exec",
        cid,
        *_sh("i=0; while [ $i -lt 20 ]; do sleep 10000 & i=$((i+1)); done; echo all-forked"),
    )
    assert r.returncode != 0 and "all-forked" not in r.stdout
    assert "can't fork" in r.stderr, r.stderr
    assert int(_keyed(f"{d}/pids.events")["max"]) >= 1
    assert 2 <= int(_read(f"{d}/pids.current")) <= 10
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(d)


def test_memory_limit_oom_kills(rt):
    # dd's 64 MiB buffer can't fit in 16 MiB: the OOM killer ends it, memory.events says so
    r = rt.run(
        {"memory": {"limit": 16 << 20, "swap": 16 << 20}},
        _sh(
            "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd:$?; "
            "cat /sys/fs/cgroup/memory.events"
        ),
    )
    assert r.returncode == 0, r.stderr
    out = dict(line.replace(":", " ").split() for line in r.stdout.splitlines())
    assert out["dd"] == "137" and int(out["oom_kill"]) >= 1, r.stdout


def test_kill_all(rt):
    cid, d = rt.start({}, args=_sh("sleep 10000 & sleep 10000 & wait"))
    assert _wait_until(lambda: len(_read(f"{d}/cgroup.procs").split()) == 3)
    assert len(json.loads(rt.ok("ps", "--format", "json", cid).stdout)) == 3
    rt.ok("kill", "--all", cid, "KILL")
    assert _wait_until(lambda: _keyed(f"{d}/cgroup.events")["populated"] == "0")
    assert rt.state(cid)["status"] == "stopped"
    rt.ok("delete", cid)
    assert not os.path.exists(d)


def test_pause_resume(rt, box):
    cid, d = box
    rt.ok("pause", cid)
    assert _read(f"{d}/cgroup.freeze") == "1"
    assert _keyed(f"{d}/cgroup.events")["frozen"] == "1"
    assert rt.state(cid)["status"] == "paused"
    rt.ok("resume", cid)
    assert _read(f"{d}/cgroup.freeze") == "0"
    assert _keyed(f"{d}/cgroup.events")["frozen"] == "0"
    assert rt.state(cid)["status"] == "running"


# ----------------------------------------------------------------------------- update


def test_update_changes_memory_max_live(rt, box, tmp_path):
    cid, d = box
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"memory": {"limit": 96 << 20}}))
    rt.ok("update", "--resources", str(res), cid)
    assert _read(f"{d}/memory.max") == str(96 << 20)
    rt.ok(
        "update",
        "--memory",
        "128M",
        "--pids-limit",
        "40",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "50000",
        cid,
    )
    assert _read(f"{d}/memory.max") == str(128 << 20)
    assert _read(f"{d}/pids.max") == "40"
    assert _read(f"{d}/cpu.max") == "20000 50000"


@pytest.mark.parametrize("shares,weight", [(2, 1), (2048, 174), (262144, 10000)])
def test_update_cpu_shares_to_weight(rt, box, shares, weight):
    cid, d = box
    rt.ok("update", "--cpu-share", str(shares), cid)
    assert _read(f"{d}/cpu.weight") == str(weight)


def test_delete_leaves_no_cgroup(rt, box):
    cid, d = box
    assert os.path.isdir(d)
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(d)
    # the parent it made went too, unless another container still lives there
    others = (
        [e.name for e in os.scandir(f"{CG}{BASE}") if e.is_dir()]
        if os.path.exists(f"{CG}{BASE}")
        else None
    )
    assert others is None or others, "the empty parent cgroup was left behind"


def test_a_rejected_unified_key_fails_create_and_leaves_nothing(rt):
    cid = "v2-" + uuid.uuid4().hex[:10]
    r = rt.call(
        "create", "--bundle", rt.bundle(cid, {"unified": {"nosuch.knob": "1"}}, ("true",)), cid
    )
    assert r.returncode != 0
    assert "nosuch.knob" in r.stderr
    assert not os.path.exists(f"{CG}{BASE}/{cid}")
    assert not os.path.exists(f"{rt.root}/{cid}")
