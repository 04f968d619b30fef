"""cleanup.Cleanup keeps contextlib.ExitStack's contract for what ocirun uses of it: each
scenario runs through both and must leave the same trace."""

from __future__ import annotations

import contextlib

import pytest

from ocirun import log
from ocirun.cleanup import Cleanup, quietly
from ocirun.errors import OcirunError


class _ExitStack(contextlib.ExitStack):
    """The reference: ExitStack with Cleanup's best-effort `add`."""

    def add(self, fn, *args):
        self.callback(quietly, fn, *args)


@pytest.fixture(params=[Cleanup, _ExitStack], ids=["Cleanup", "ExitStack"])
def stack(request):
    return request.param


def test_steps_run_newest_first_on_success_and_on_failure(stack):
    trace: list[str] = []
    with stack() as s:
        s.add(trace.append, "a")
        s.add(trace.append, "b")
    assert trace == ["b", "a"]
    trace.clear()
    with pytest.raises(ValueError), stack() as s:
        s.add(trace.append, "a")
        s.add(trace.append, "b")
        raise ValueError("the operation's own error")
    assert trace == ["b", "a"]


def test_pop_all_hands_the_steps_on(stack):
    trace: list[str] = []
    with stack() as s:
        s.add(trace.append, "undo")
        kept = s.pop_all()
    assert trace == []  # success: nothing undone
    with kept:
        pass
    assert trace == ["undo"]


def test_a_failing_step_is_logged_and_the_others_still_run(stack, monkeypatch):
    logged: list[str] = []
    monkeypatch.setattr(log, "debug", logged.append)
    trace: list[str] = []

    def fails(exc):
        raise exc

    with pytest.raises(RuntimeError, match="the operation's own error"), stack() as s:
        s.add(trace.append, "first added")
        s.add(fails, OSError(5, "Input/output error"))
        s.add(fails, OcirunError("not ours to raise"))
        s.add(trace.append, "last added")
        raise RuntimeError("the operation's own error")
    assert trace == ["last added", "first added"]
    assert len(logged) == 2 and all(m.startswith("cleanup: ") for m in logged), logged


def test_a_bug_in_a_step_surfaces_after_every_step_ran(stack):
    trace: list[str] = []

    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError), stack() as s:
        s.add(trace.append, "first added")
        s.add(bug)
        s.add(trace.append, "last added")
    assert trace == ["last added", "first added"]
