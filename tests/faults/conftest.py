"""The fault suite runs real containers as root; at the end it prints its figures (kill
points tried, containers run, fuzz cases) and what was left over (always 0, or a test
failed)."""

from __future__ import annotations

import os
import shutil

import pytest
from faultlib import FIGURES, FULL
from testenv import ROOTFS


def pytest_collection_modifyitems(config, items):
    why = None
    if os.geteuid() != 0 or not (ROOTFS / "bin" / "busybox").exists():
        why = "the fault suite needs root and bundles/busybox/rootfs (make bundle)"
    for item in items:
        if (
            why
            and "tests/faults/" in str(item.fspath)
            and not getattr(item.module, "WITHOUT_ROOT", False)
        ):
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture
def strace():
    if not shutil.which("strace"):
        pytest.skip("strace is not installed (make deps installs it): no syscall to stop at")


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        size = "full (OCIRUN_FAULTS=full)" if FULL else "default (OCIRUN_FAULTS=full: all)"
        terminalreporter.write_line(f"fault suite figures, {size} size:")
        for name, n in sorted(FIGURES.items()):
            terminalreporter.write_line(f"  {name}: {n}")
