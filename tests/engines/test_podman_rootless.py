"""Rootless podman (podman run by a non-root user, its own storage) with `--runtime
<ocirun>` and, beside it, runc: run busybox, exec into it, stop and remove it.

Offline: the image is the OCI archive of bundles/busybox/rootfs (images.py), loaded into
the user's private storage. `--network none`: a non-root user gets no /dev/net/tun here for
slirp4netns. Podman runs the runtime inside its own user namespace (root there, the user's
subordinate ids mapped), so this also covers ocirun as root of a user namespace. After
each test: no container in podman, nothing in the runtime's state dir; at the end the
user's processes (podman's pause process) are killed by pid and the user removed.
"""

from __future__ import annotations

import json
import os
import shutil

import images
import pytest
import rootlesslib
from enginelib import PM_IMAGE, ROOTFS, RUNTIMES

_why = rootlesslib.why_not() or (
    None if shutil.which("podman") and shutil.which("conmon") else "podman or conmon not installed"
)
pytestmark = pytest.mark.skipif(_why is not None, reason=f"rootless podman: {_why}")


class UserPodman:
    def __init__(self, user):
        self.user = user
        base = user.base / "podman"
        self.graphroot, self.runroot = base / "storage", base / "run"
        self.tmpdir = base / "tmp"
        for d in (base, self.graphroot, self.runroot, self.tmpdir):
            d.mkdir(exist_ok=True)
        user.chown_tree(base)

    def __call__(self, *args: str, runtime: str | None = None, timeout: float = 120):
        argv = [
            "podman",
            "--root",
            str(self.graphroot),
            "--runroot",
            str(self.runroot),
            "--tmpdir",
            str(self.tmpdir),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "--storage-driver",
            "overlay",
            *(["--runtime", RUNTIMES[runtime]] if runtime else []),
            *args,
        ]
        return self.user.run(*argv, timeout=timeout, env=self.user.env(CONTAINERS_CONF="/dev/null"))

    def runtime_state(self, runtime: str) -> list[str]:
        """What is left in the state dir podman gives the runtime ($XDG_RUNTIME_DIR/<name>)."""
        d = self.user.run_dir / os.path.basename(RUNTIMES[runtime])
        return os.listdir(d) if d.exists() else []


@pytest.fixture(scope="module")
def podman():
    with rootlesslib.rootless_user() as user:
        pm = UserPodman(user)
        archive = images.write_oci_archive(ROOTFS, user.base / "busybox-oci.tar", PM_IMAGE)
        user.chown_tree(archive)
        r = pm("load", "-i", str(archive))
        assert r.returncode == 0, r.stderr
        yield pm
        pm("rm", "--all", "--force")


@pytest.fixture(params=["runc", "ocirun"])
def runtime(request, podman):
    yield request.param
    r = podman("ps", "-a", "--format", "{{.Names}}")
    left = r.stdout.split()
    if left:
        podman("rm", "--force", *left)
    assert not left, f"containers left in podman: {left}"
    assert not podman.runtime_state(request.param), podman.runtime_state(request.param)


def test_run_busybox(podman, runtime):
    r = podman(
        "run",
        "--rm",
        "--network",
        "none",
        PM_IMAGE,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; ip -o link | wc -l",
        runtime=runtime,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    user = podman.user
    assert lines[0] == "0", r.stdout
    # container root is the user; the rest comes from its subordinate ids (podman's userns)
    assert lines[1].split() == ["0", str(user.uid), "1"], r.stdout
    assert lines[2].split() == ["1", str(rootlesslib.SUB_START), str(rootlesslib.SUB_COUNT)]
    assert lines[3] == "1", r.stdout  # --network none: loopback alone


def test_exec_stop_rm(podman, runtime):
    name = f"rl-pm-{runtime}"
    r = podman(
        "run", "-d", "--name", name, "--network", "none", PM_IMAGE, "sleep", "1000", runtime=runtime
    )
    assert r.returncode == 0, r.stderr
    try:
        r = podman("exec", name, "sh", "-c", "echo hi; id -u; ps -o pid,args")
        assert r.returncode == 0, r.stderr
        out = r.stdout.splitlines()
        assert out[:2] == ["hi", "0"], r.stdout
        assert "1 sleep 1000" in " ".join(r.stdout.split()), r.stdout
        info = json.loads(podman("inspect", name).stdout)[0]
        assert info["State"]["Status"] == "running"
        assert info["OCIRuntime"] == RUNTIMES[runtime]
        cid = info["Id"]
        assert podman.runtime_state(runtime) == [cid]  # the runtime's state, as the user
        r = podman("stop", "-t", "1", name)
        assert r.returncode == 0, r.stderr
        st = json.loads(podman("inspect", name).stdout)[0]["State"]
        assert st["Status"] == "exited", st
        r = podman("rm", name)
        assert r.returncode == 0, r.stderr
    finally:
        podman("rm", "--force", name)
