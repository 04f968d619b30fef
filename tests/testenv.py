"""Where the tests find the repository, the busybox bundle and the `ocirun` they run.

A plain module, not conftest: `from conftest import ...` resolves to whichever conftest.py
pytest imported last (tests/vm has one too), so shared names live here.

OCIRUN_BIN runs the suite against another build of ocirun (an installed wheel: `make test`
checks the packaged launcher so); by default, the `ocirun` beside the Python running pytest.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
BASE_CONFIG = REPO / "bundles" / "busybox" / "config.json"
OCIRUN = os.environ.get("OCIRUN_BIN") or str(Path(sys.executable).parent / "ocirun")

# The capabilities the busybox bundle gives its process (every set: Docker's default 14).
BUNDLE_CAPS: list[str] = json.loads(BASE_CONFIG.read_text())["process"]["capabilities"]["bounding"]
