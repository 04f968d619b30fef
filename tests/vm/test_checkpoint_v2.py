"""checkpoint / restore on a cgroup-v2-only host (the VM of `make test-vm`): CRIU freezes
the tree through the container's own cgroup (cgroup.freeze) and restores it into the new
container's cgroup (cg_root for the unified hierarchy). CRIU is the host's build
(build/criu/bin/criu, `make criu`), seen through the guest's read-only view of the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OCIRUN = os.path.join(os.path.dirname(sys.executable), "ocirun")
CRIU = REPO / "build" / "criu" / "bin" / "criu"
BUNDLE = REPO / "bundles" / "busybox"
CG = "/sys/fs/cgroup"
TIMEOUT = 300  # one call, under TCG
# written then renamed: a reader never sees the file empty
COUNT = (
    "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/t; mv /dev/shm/t /dev/shm/n; "
    "sleep 0.1; done"
)


@pytest.fixture(scope="module")
def criu() -> str:
    if not CRIU.exists():
        pytest.skip(f"no CRIU build at {CRIU} (make criu on the host)")
    r = subprocess.run([str(CRIU), "check"], capture_output=True, text=True, timeout=TIMEOUT)
    if r.returncode != 0:
        pytest.skip(f"`criu check` fails in the VM: {r.stderr.strip()[-300:]}")
    return str(CRIU)


def test_checkpoint_restore_on_cgroup_v2(criu, tmp_path):
    root = f"/run/ocirun-vm-ck/{uuid.uuid4().hex[:8]}"

    log = tmp_path / "ocirun.log"

    def call(*args):
        # stdio on /dev/null: a detached container keeps a pipe open (communicate would
        # wait for ever), and CRIU cannot dump stdio on a host file. Errors: in --log.
        return subprocess.run(
            [OCIRUN, "--root", root, "--criu", criu, "--log", str(log), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=TIMEOUT,
        )

    def ok(*args):
        r = call(*args)
        if r.returncode != 0:
            criu_logs = [
                f"{p}:\n" + "".join(open(p).readlines()[-25:]) for p in tmp_path.glob("img/*.log")
            ]
            raise AssertionError(
                f"{args} failed: {log.read_text()[-1000:]}\n" + "\n".join(criu_logs)
            )
        return r

    def count(cid) -> int:
        r = subprocess.run(
            [OCIRUN, "--root", root, "exec", cid, "cat", "/dev/shm/n"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert r.returncode == 0, r.stderr
        return int(r.stdout)

    cid = "ck-" + uuid.uuid4().hex[:8]
    cfg = json.loads((BUNDLE / "config.json").read_text())
    # a private copy: a restore makes /sys/fs/cgroup in the rootfs (CRIU), and the host's
    # bundle, shared with the VM, must stay as it was
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(BUNDLE / "rootfs"), str(rootfs)], check=True)
    cfg["root"]["path"] = str(rootfs)
    cfg["process"]["args"] = ["sh", "-c", COUNT]
    cfg["linux"]["cgroupsPath"] = f"/ocirun-vm-ck/{cid}"
    # The host's network namespace: CRIU locks a dumped one with iptables-restore, and the
    # VM's kernel has no netfilter ("Failed to initialize nft: Protocol not supported").
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    cgdir = f"{CG}/ocirun-vm-ck/{cid}"
    try:
        ok("run", "-d", "--bundle", str(tmp_path), cid)
        time.sleep(1)
        before = count(cid)
        images = str(tmp_path / "img")
        ok("checkpoint", "--image-path", images, cid)
        assert not os.path.exists(cgdir)
        ok("restore", "-d", "--image-path", images, "--bundle", str(tmp_path), cid)
        pid = json.loads(
            subprocess.run(
                [OCIRUN, "--root", root, "state", cid], capture_output=True, text=True
            ).stdout
        )["pid"]
        with open(f"{cgdir}/cgroup.procs") as f:
            assert str(pid) in f.read().split()
        after = count(cid)
        assert after >= before
        time.sleep(1)
        assert count(cid) > after
        ok("delete", "--force", cid)
        assert not os.path.exists(cgdir)
    finally:
        call("delete", "--force", cid)
        try:
            os.rmdir(f"{CG}/ocirun-vm-ck")
        except OSError:
            pass
