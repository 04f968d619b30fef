"""Shared fixtures. Integration tests run real containers as root from bundles/busybox."""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from testenv import BASE_CONFIG, OCIRUN, REPO, ROOTFS  # noqa: F401 (re-exported)

# Every ocirun the tests start (and ocirun's modules imported here) caches validated configs
# and seccomp filters in a private directory, never in the host's /var/cache/ocirun.
CACHE_DIR = tempfile.mkdtemp(prefix="ocirun-test-cache-")
os.environ["OCIRUN_CACHE_DIR"] = CACHE_DIR
atexit.register(shutil.rmtree, CACHE_DIR, True)


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0 and (ROOTFS / "bin" / "busybox").exists():
        return
    why = "integration tests need root and bundles/busybox/rootfs (make bundle)"
    for item in items:
        if "integration" in item.nodeid.split("/")[1:2] or "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=why))


class Runtime:
    """Runs the installed `ocirun` binary against a private --root."""

    def __init__(self, root: str):
        self.root = root

    def cli(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 30,
        cwd: str | None = None,
        global_args: tuple[str, ...] = (),
        **kw,
    ) -> subprocess.CompletedProcess:
        cmd = [OCIRUN, "--root", self.root, *global_args, *args]
        return subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd, **kw
        )

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        r = self.cli(*args, **kw)
        assert r.returncode == 0, f"ocirun {' '.join(args)} failed ({r.returncode}): {r.stderr}"
        return r

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)


def base_config() -> dict:
    cfg = json.loads(BASE_CONFIG.read_text())
    cfg["root"]["path"] = str(ROOTFS)
    return cfg


@pytest.fixture
def make_bundle(tmp_path):
    """make_bundle(args=[...], mutate=fn(cfg)) -> bundle dir with config.json (shared rootfs)."""
    count = [0]

    def make(args: list[str] | None = None, mutate=None, config: dict | None = None) -> str:
        count[0] += 1
        d = tmp_path / f"bundle{count[0]}"
        d.mkdir()
        cfg = copy.deepcopy(config) if config is not None else base_config()
        if args is not None:
            cfg["process"]["args"] = args
        if mutate:
            mutate(cfg)
        (d / "config.json").write_text(json.dumps(cfg, indent=1))
        return str(d)

    return make


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def _procs_rooted_in(path: str) -> list[int]:
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            root = os.readlink(f"/proc/{p}/root")
        except OSError:
            continue
        if root.startswith(path):
            pids.append(int(p))
    return pids


def _rootfs_listing() -> list[str]:
    """Every path in the shared rootfs (a runtime could create mount targets, devices or
    links anywhere in it); what is mounted in a container is not there on the host."""
    out = []
    for top, dirs, files in os.walk(ROOTFS):
        rel = os.path.relpath(top, ROOTFS)
        out.extend(os.path.join(rel, n) for n in dirs + files)
    return sorted(out)


@pytest.fixture
def rt():
    """A Runtime with a private root; afterwards nothing may be left behind, and the shared
    rootfs must be as it was (a test that needs new paths in it uses a private copy)."""
    root = f"/run/ocirun-test/{uuid.uuid4().hex[:12]}"
    runtime = Runtime(root)
    before = _rootfs_listing()
    yield runtime
    after = _rootfs_listing()
    left = os.listdir(root) if os.path.isdir(root) else []  # containers only: no cache
    for cid in left:  # clean up, then fail the test for leaking
        runtime.cli("delete", "--force", cid)
    procs = _procs_rooted_in(str(ROOTFS))
    for pid in procs:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    mounts = _mounts_under(str(ROOTFS))
    subprocess.run(["rm", "-rf", root])
    assert not left, f"state dirs left behind: {left}"
    assert not procs, f"container processes left behind: {procs}"
    assert not mounts, f"mounts left behind: {mounts}"
    assert after == before, (
        "the shared rootfs changed: added "
        f"{sorted(set(after) - set(before))}, removed "
        f"{sorted(set(before) - set(after))}"
    )
