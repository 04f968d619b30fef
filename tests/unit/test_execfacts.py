"""ocirun/execfacts.py: what create records for exec, and when exec works it out again."""

from __future__ import annotations

import pytest

from ocirun import _lean, execfacts
from ocirun.plan_security import Filter

PATHS = {"mode": "hybrid", "dirs": {"cpu": "/sys/fs/cgroup/cpu/c", "": "/sys/fs/cgroup/unified/c"}}


class FakeManager:
    def __init__(self, where):
        self.where = where

    def placement(self):
        return self.where


def through_state(rec: dict) -> dict:
    """The record as exec reads it back from state.json."""
    return _lean.loads(_lean.dumps({"pid": 1, "cgroup_paths": PATHS, "exec": rec}))


@pytest.fixture
def root(monkeypatch):
    monkeypatch.setattr(execfacts.os, "geteuid", lambda: 0)


@pytest.fixture
def computed(monkeypatch):
    """compute() replaced by a marker: which path of(..) took."""
    calls = []

    def compute(seccomp, paths, pid):
        calls.append((seccomp, paths, pid))
        return "computed"

    monkeypatch.setattr(execfacts, "compute", compute)
    return calls


def test_the_record_round_trips_through_state_json(root, computed, monkeypatch):
    monkeypatch.setattr(execfacts, "setgroups_denied", lambda pid: pid == 42)
    filt = Filter(bytes(range(16)), 0x8, True, ["WAIT_KILLABLE_RECV ignored"], ["unknown bar"])
    where = (["/sys/fs/cgroup/cpu/c/tasks"], "/sys/fs/cgroup/unified/c")
    warned = []
    monkeypatch.setattr(execfacts.log, "warning", warned.append)
    facts, recorded = execfacts.of(
        through_state(execfacts.record(filt, FakeManager(where), 42)), None
    )
    assert recorded and not computed
    assert (facts.seccomp.bpf, facts.seccomp.flags, facts.seccomp.notify) == (filt.bpf, 8, True)
    assert facts.seccomp.insns == 2
    assert facts.cgroups.placement() == where
    assert facts.cgroups.paths == PATHS
    assert facts.setgroups_denied is True
    assert warned == ["seccomp: WAIT_KILLABLE_RECV ignored"]  # as a compile would say
    assert facts.seccomp.notes == ["unknown bar"]


def test_no_filter_no_placement(root, computed, monkeypatch):
    monkeypatch.setattr(execfacts, "setgroups_denied", lambda pid: False)
    facts, recorded = execfacts.of(
        through_state(execfacts.record(None, FakeManager(None), 7)), None
    )
    assert recorded
    assert facts.seccomp is None
    assert facts.cgroups.placement() is None  # a manager with no placement: add() moves it
    assert facts.setgroups_denied is False


def test_no_cgroups_means_the_process_stays_where_the_caller_is(root, computed, monkeypatch):
    monkeypatch.setattr(execfacts, "setgroups_denied", lambda pid: False)
    data = through_state(execfacts.record(None, None, 7))
    data["cgroup_paths"] = {}
    facts, recorded = execfacts.of(data, None)
    assert recorded and facts.cgroups is None


GOOD = {
    "version": 1,
    "seccomp": ["00" * 8, 0, False, [], []],
    "placement": None,
    "setgroups_denied": False,
}


@pytest.mark.parametrize(
    "damage",
    [
        {"version": 2},
        {"seccomp": ["zz", 0, False, []]},
        {"seccomp": [1, 0, False, [], []]},
        {"seccomp": ["00", 0, False, [], "x"]},
        {"seccomp": "00"},
        {"placement": [["a"]]},
        {"placement": [["a", 3], None]},
        {"placement": [[], 5]},
        {"setgroups_denied": "no"},
    ],
)
def test_a_record_exec_cannot_read_is_worked_out_again(root, computed, damage):
    assert execfacts.of(through_state(GOOD), None)[1]  # the undamaged one is used
    facts, recorded = execfacts.of(through_state(dict(GOOD, **damage)), {"x": 1})
    assert (facts, recorded) == ("computed", False)
    assert computed == [({"x": 1}, PATHS, 1)]


def test_no_record_an_older_ocirun(root, computed):
    data = through_state(GOOD)
    del data["exec"]
    assert execfacts.of(data, None) == ("computed", False)


def test_a_caller_that_is_not_root_works_it_out(computed, monkeypatch):
    """Whether it may move a process into the container's cgroups depends on the caller."""
    monkeypatch.setattr(execfacts.os, "geteuid", lambda: 1000)
    assert execfacts.of(through_state(GOOD), None) == ("computed", False)


def test_cgroups_add_loads_the_manager_only_then(monkeypatch):
    from ocirun import cgroups

    added = []

    class Manager:
        def add(self, pid):
            added.append(pid)

    seen = []
    monkeypatch.setattr(cgroups, "from_state", lambda paths: seen.append(paths) or Manager())
    cg = execfacts.Cgroups(PATHS, None)
    assert not seen
    cg.add(99)
    assert (seen, added) == ([PATHS], [99])
