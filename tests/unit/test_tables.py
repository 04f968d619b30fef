"""The hand-kept kernel tables agree with what Python's own modules know on this system."""

from __future__ import annotations

import resource
import signal

import pytest

from ocirun import tables
from ocirun.commands import parse_signal
from ocirun.errors import UsageError


def test_signals_match_the_signal_module():
    for sig in signal.Signals:
        if sig.name.startswith("SIG") and not sig.name.startswith("SIGRT"):
            assert tables.SIGNALS[sig.name] == sig.value, sig.name
    assert (tables.SIGRTMIN, tables.SIGRTMAX) == (signal.SIGRTMIN, signal.SIGRTMAX)


def test_rlimits_match_the_resource_module():
    known = [n for n in tables.RLIMITS if hasattr(resource, n)]
    assert len(known) >= 14
    for name in known:
        assert getattr(resource, name) == tables.RLIMITS[name], name


@pytest.mark.parametrize(
    "text,num",
    [("TERM", 15), ("sigkill", 9), ("9", 9), ("HUP", 1), ("RTMIN+3", 37), ("RTMAX", 64), ("0", 0)],
)  # runc: kill ID 0 checks the init is alive
def test_parse_signal(text, num):
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", ["", "SIG0", "65", "FOO", "SIGRTMIN+99", "-9"])
def test_parse_signal_rejects(text):
    with pytest.raises(UsageError):
        parse_signal(text)
