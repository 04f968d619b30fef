"""tests/vm: tests that run INSIDE the cgroup-v2-only VM (`make test-vm`, scripts/vm/).

They need what the host can't give (a cgroup v2 host with every controller, eBPF device
programs on the container's cgroup), so they are collected only when OCIRUN_IN_VM=1, which
scripts/vm/test-vm.sh sets inside the guest. A normal `make test` / `pytest tests` on the host
does not collect them at all; naming them explicitly outside the VM skips them with a reason.
OCIRUN_VM_SYSTEMD=1 says the guest runs systemd as pid 1 (test_systemd.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
IN_VM = os.environ.get("OCIRUN_IN_VM") == "1"
WHY = "tests/vm run only inside the cgroup v2 VM (make test-vm sets OCIRUN_IN_VM=1); this is not it"


def _named_explicitly(config) -> bool:
    for arg in config.args:
        p = Path(arg.split("::")[0]).resolve()
        if p == HERE or HERE in p.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if not IN_VM and not _named_explicitly(config):
        return True  # not collected on the host: `pytest tests` never sees them
    return None


def pytest_collection_modifyitems(config, items):
    if IN_VM:
        return
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=WHY))
