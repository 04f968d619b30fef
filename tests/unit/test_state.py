"""The state dir's pure helpers: container ids (checked before any path is built from
them), and paths.py's os-free path functions the hot commands use."""

import os
import time
from pathlib import Path

import pytest

from ocirun import state
from ocirun.errors import StateDamaged, UsageError

# --------------------------------------------------------------------------- check_id


@pytest.mark.parametrize("cid", ["abc", "a.b-c_d+e", "A1", "0", "a" * 200, "..a", "x.."])
def test_check_id_valid(cid):
    state.check_id(cid)


@pytest.mark.parametrize(
    "cid,fragment",
    [
        ("", 'invalid container id ""'),
        ("a/b", 'invalid container id "a/b"'),
        ("/abs", 'must not contain "/"'),
        (".", "reserved"),
        ("..", "reserved"),
        ("a b", "only letters, digits"),
        ("a\nb", 'invalid container id "a\\nb"'),
        ("abc\n", "only letters, digits"),
        ("caf\u00e9", "only letters, digits"),
        ("a:b", "only letters, digits"),
    ],
)
def test_check_id_invalid(cid, fragment):
    with pytest.raises(UsageError) as ei:
        state.check_id(cid)
    assert fragment in str(ei.value)
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("cid", ["..", ".", "../x", "a/../../b", "/etc"])
def test_a_bad_id_is_refused_before_any_path_is_built(tmp_path, cid):
    """`delete ../other-root/c` once reached outside the root (runc refuses the id too)."""
    (tmp_path / "root").mkdir()
    with pytest.raises(UsageError):
        state.Container.load(str(tmp_path / "root"), cid)
    with pytest.raises(UsageError):
        state.Container.create(str(tmp_path / "root"), cid)
    assert os.listdir(tmp_path / "root") == []


# --------------------------------------------------------------------------- damage


GOOD = b'{"id": "c1", "pid": 42, "start_time": 7, "bundle": "/b"}'


@pytest.mark.parametrize(
    "raw, why",
    [
        (GOOD[:20], "invalid JSON"),
        (b"", "empty file"),
        (b" \n", "empty file"),
        (b"[1]", "not a JSON object"),
        (b"{}", "no init pid"),
        (b'{"pid": "1"}', "no init pid"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[" * 5000, "invalid JSON"),
    ],
)
def test_a_damaged_state_file_is_an_error_naming_it(tmp_path, raw, why):
    d = tmp_path / "c1"
    d.mkdir()
    (d / "state.json").write_bytes(raw)
    with pytest.raises(StateDamaged) as e:
        state.Container.load(str(tmp_path), "c1")
    msg = str(e.value)
    assert msg.startswith(f"{d}/state.json: damaged container state (") and why in msg, msg
    assert "\n" not in msg
    with pytest.raises(StateDamaged):
        state.peek(str(tmp_path), "c1")
    c = state.Container.load(str(tmp_path), "c1", damaged_ok=True)  # delete --force
    with c:
        assert c.data == {} and c.damage == msg


def test_cgroups_from_the_record_written_before_them(tmp_path):
    d = tmp_path / "c1"
    d.mkdir()
    with state.Container.load(str(tmp_path), "c1") as c:  # no state.json: a create died
        assert c.cgroup_paths() is None
        c.save_cgroups({"mode": "v1", "dirs": {"cpu": "/x"}, "created": ["/x"]})
        assert c.cgroup_paths()["created"] == ["/x"]
    (d / "state.json").write_bytes(GOOD[:-1] + b', "cgroup_paths": {"dirs": {"cpu": "/y"}}}')
    with state.Container.load(str(tmp_path), "c1") as c:  # state.json's win
        assert c.cgroup_paths() == {"dirs": {"cpu": "/y"}}


# The status: derived by the front door's C (csrc/launcher/status.c, through cffi) from
# state.json's facts. A live process with the recorded start time is the init; anything
# that can't be one (a pid or start time that isn't a plain number in range, a gone or
# reused pid) means stopped, never a traceback.
def _me() -> dict:
    return {"pid": os.getpid(), "start_time": state.proc_start_time(os.getpid())}


def test_status_of_a_live_init_follows_fifo_and_freezer(tmp_path):
    d = _me()
    assert state.derive_status(str(tmp_path), d) == state.RUNNING
    os.mkfifo(tmp_path / state.FIFO)
    assert state.derive_status(str(tmp_path), d) == state.CREATED
    freezer = tmp_path / "freezer"
    freezer.mkdir()
    (freezer / "freezer.state").write_text("FROZEN\n")
    paths = {"mode": "v1", "dirs": {"freezer": str(freezer)}}
    assert state.derive_status(str(tmp_path), dict(d, cgroup_paths=paths)) == state.PAUSED
    (freezer / "freezer.state").write_text("THAWED\n")
    assert state.derive_status(str(tmp_path), dict(d, cgroup_paths=paths)) == state.CREATED
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.freeze").write_text("1\n")
    paths = {"mode": "v2", "dirs": {"": str(v2)}}
    assert state.derive_status(str(tmp_path), dict(d, cgroup_paths=paths)) == state.PAUSED


@pytest.mark.parametrize(
    "changes",
    [
        {"start_time": None},
        {"start_time": -1},
        {"start_time": 2**64},
        {"start_time": True},
        {"start_time": "1"},
        {"pid": 0},
        {"pid": 2**31},
        {"pid": 2**70},
        {"start_time_delta": 1},
    ],
)
def test_anything_but_the_recorded_init_is_stopped(tmp_path, changes):
    d = _me()
    if changes.pop("start_time_delta", None):
        d["start_time"] += 1  # a reused pid
    d.update(changes)
    assert state.derive_status(str(tmp_path), d) == state.STOPPED


@pytest.mark.parametrize(
    "paths",
    [
        "x",
        {"dirs": "x"},
        {"dirs": {"freezer": 5}},
        {"mode": "v2", "dirs": {"": None}},
        {"dirs": {"freezer": "/nonexistent\0x"}},
    ],
)
def test_damaged_cgroup_paths_are_no_freezer(tmp_path, paths):
    assert state.derive_status(str(tmp_path), dict(_me(), cgroup_paths=paths)) == state.RUNNING


def test_proc_start_time(tmp_path):
    assert state.proc_start_time(os.getpid()) > 0
    assert state.proc_start_time(0) is None
    assert state.proc_start_time(2**40) is None
    assert state.proc_start_time(2**22 + 1) is None  # beyond pid_max


def test_a_zombie_is_no_init(tmp_path):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        for _ in range(500):  # until it has exited (a zombie: we have not reaped it)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.01)
        assert state.proc_start_time(pid) is None
        assert state.derive_status(str(tmp_path), {"pid": pid, "start_time": 0}) == state.STOPPED
    finally:
        os.waitpid(pid, 0)
