"""The config.json podman 4.3 and containerd 1.6 (`ctr run`) write, captured from a private
podman / a private containerd (the classes of tests/engines/conftest.py, offline images
from bundles/busybox/rootfs). Each capture is a context manager: inside it the config and
everything it refers to (podman's bind-mount sources) exist and no container of the engine
runs; on leaving, everything made is removed, and what could not be is returned in
`Capture.left` for the caller to report."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ENGINES = Path(__file__).resolve().parents[1] / "engines"
CTD_NS = "ocirun-fc"  # not the engine tests' namespace: their cgroups stay theirs
RUNC = "/usr/sbin/runc"


def _engines():
    """tests/engines/conftest.py as a plain module (its fixtures are not registered here)."""
    if str(ENGINES) not in sys.path:
        sys.path.insert(0, str(ENGINES))
    mod = sys.modules.get("ocirun_fc_engines")
    if mod is None:
        spec = importlib.util.spec_from_file_location("ocirun_fc_engines", ENGINES / "conftest.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["ocirun_fc_engines"] = mod
    return mod


class Capture:
    def __init__(self, base: Path):
        self.base = base
        self.config: dict = {}
        self.left: dict[str, list] = {}


def _cgroup_existed(*paths: str) -> dict[str, bool]:
    eng = _engines()
    return {p: bool(eng.cgroup_dirs(p)) for p in paths}


def _rm_new_cgroups(existed: dict[str, bool], extra: list[str]) -> None:
    eng = _engines()
    for path in sorted(extra, key=len, reverse=True):
        eng.rmdir_cgroup(path)
    for path in sorted(existed, key=len, reverse=True):
        if not existed[path]:
            eng.rmdir_cgroup(path)


def _rmdir_new(existed: dict[str, bool]) -> None:
    for path in sorted(existed, key=len, reverse=True):
        if not existed[path]:
            try:
                os.rmdir(path)
            except OSError:
                pass


@contextmanager
def podman_config(name: str):
    """`podman create` + `podman init` (with runc; the config is written at init) +
    `podman stop`: the container's userdata/config.json, its bind sources still there."""
    eng = _engines()
    existed = {p: os.path.exists(p) for p in ("/var/lib/containers", "/run/runc")}
    cg_existed = _cgroup_existed("/libpod_parent", "/libpod_parent/conmon")
    base = Path(tempfile.mkdtemp(prefix="ocirun-fc-pm.", dir="/tmp"))  # conmon: short paths
    cap = Capture(base)
    pm = eng.Podman(base)
    cid = None
    try:
        pm.write_config()
        tar = eng.images.write_rootfs_tar(eng.ROOTFS, base / "rootfs.tar")
        r = pm.podman(
            "import",
            "--change",
            'CMD ["sh"]',
            "--change",
            f"ENV {eng.images.PATH_ENV}",
            str(tar),
            eng.PM_IMAGE,
            timeout=120,
        )
        assert r.returncode == 0, f"podman import failed: {r.stdout}{r.stderr}"
        r = pm.podman("create", "--name", name, eng.PM_IMAGE, "sh", runtime="runc")
        assert r.returncode == 0, f"podman create failed: {r.stderr}"
        cid = r.stdout.strip()
        for step in (("init", name), ("stop", "--time", "0", name)):
            r = pm.podman(*step, runtime="runc")
            assert r.returncode == 0, f"podman {step[0]} failed: {r.stderr}"
        path = Path(pm.graphroot) / "overlay-containers" / cid / "userdata" / "config.json"
        cap.config = json.loads(path.read_text())
        yield cap
    finally:
        pm.podman("rm", "--all", "--force", "--time", "0", runtime="runc")
        pm.podman("rmi", "--all", "--force")
        conmons = pm.conmons()
        eng.kill_pids(conmons)
        if cid and os.path.exists(os.path.join("/run/runc", cid)):
            cap.left["runc state (podman's)"] = [cid]
            subprocess.run([RUNC, "delete", "--force", cid], capture_output=True)
        cap.left["conmon"] = conmons
        cap.left["mounts"] = [
            m for m in eng.mounts_under(str(base)) if m != os.path.join(pm.graphroot, "overlay")
        ]
        eng.unmount_under(str(base))
        shutil.rmtree(base, ignore_errors=True)
        _rm_new_cgroups(cg_existed, [f"/libpod_parent/libpod-{cid}"] if cid else [])
        if not existed["/var/lib/containers"]:  # podman 4.3's blob cache ignores --root
            shutil.rmtree("/var/lib/containers", ignore_errors=True)
        _rmdir_new({"/run/runc": existed["/run/runc"]})
        cap.left = {k: v for k, v in cap.left.items() if v}


@contextmanager
def containerd_config(name: str):
    """`ctr run --detach` (runc) of the busybox image in a private containerd: the bundle's
    config.json, read while the task exists; the task and container are then removed."""
    eng = _engines()
    existed = {
        p: os.path.exists(p)
        for p in ("/run/containerd", "/run/containerd/s", "/run/containerd/fifo")
    }
    cg_existed = _cgroup_existed(f"/{CTD_NS}")
    base = Path(tempfile.mkdtemp(prefix="ocirun-fc-ctd.", dir="/tmp"))  # socket path <108
    cap = Capture(base)
    daemon = eng.Containerd(base)
    try:
        daemon.start()
        archive = eng.images.write_oci_archive(eng.ROOTFS, base / "busybox-oci.tar", eng.CTD_IMAGE)
        r = daemon.ctr(
            "images", "import", "--snapshotter", daemon.snapshotter, str(archive), ns=CTD_NS
        )
        assert r.returncode == 0, f"ctr images import failed: {r.stdout}{r.stderr}"
        r = daemon.ctr(
            "run",
            "--detach",
            "--snapshotter",
            daemon.snapshotter,
            "--runc-binary",
            RUNC,
            "--runc-root",
            str(base / "runc-root"),
            "--fifo-dir",
            str(base / "fifo"),
            eng.CTD_IMAGE,
            name,
            "sleep",
            "100",
            ns=CTD_NS,
        )
        assert r.returncode == 0, f"ctr run failed: {r.stdout}{r.stderr}"
        path = daemon.state / "io.containerd.runtime.v2.task" / CTD_NS / name / "config.json"
        cap.config = json.loads(path.read_text())
        daemon.ctr("tasks", "kill", "--all", "--signal", "KILL", name, ns=CTD_NS)
        eng.wait_until(
            lambda: (
                name not in daemon.ctr("tasks", "ls", "-q", ns=CTD_NS).stdout
                or "STOPPED" in daemon.ctr("tasks", "ls", ns=CTD_NS).stdout
            ),
            timeout=10,
        )
        daemon.ctr("tasks", "delete", "--force", name, ns=CTD_NS)
        daemon.ctr("containers", "delete", name, ns=CTD_NS)
        yield cap
    finally:
        if daemon.proc is not None:
            cap.left["tasks"] = daemon.ctr("tasks", "ls", "-q", ns=CTD_NS).stdout.split()
            cap.left["containers"] = daemon.ctr("containers", "ls", "-q", ns=CTD_NS).stdout.split()
            for task in cap.left["tasks"]:
                daemon.ctr("tasks", "kill", "--all", "--signal", "KILL", task, ns=CTD_NS)
                daemon.ctr("tasks", "delete", "--force", task, ns=CTD_NS)
            for c in cap.left["containers"]:
                daemon.ctr("containers", "delete", c, ns=CTD_NS)
            daemon.ctr("images", "rm", eng.CTD_IMAGE, ns=CTD_NS)
            daemon.stop()
        cap.left["mounts"] = eng.mounts_under(str(base))
        eng.unmount_under(str(base))
        shutil.rmtree(base, ignore_errors=True)
        _rm_new_cgroups(cg_existed, [f"/{CTD_NS}/{name}"])
        _rmdir_new(existed)
        cap.left = {k: v for k, v in cap.left.items() if v}
