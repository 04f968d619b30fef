"""`podman container checkpoint` / `container restore` through the runtime (issue 18), beside
runc: podman drives the runtime's `checkpoint` (with --image-path/--work-path) and, through
conmon, `restore --detach`. CRIU 4.2 comes from scripts/criu-build.sh and is put first on
PATH: podman looks for `criu` there itself, and the runtimes inherit it."""

from __future__ import annotations

import os
import subprocess

import pytest
from enginelib import REPO, run, wait_until

pytestmark = pytest.mark.parametrize("runtime", ["runc", "ocirun"])

# written then renamed: a reader never sees the file empty
COUNT = (
    "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/t; mv /dev/shm/t /dev/shm/n; "
    "sleep 0.1; done"
)


@pytest.fixture(scope="module")
def criu_dir() -> str:
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "criu-build.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    last = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode != 0:
        pytest.skip(f"CRIU not built: {last or r.stderr.strip()[-300:]}")
    check = subprocess.run(
        [os.path.join(last, "criu"), "check"], capture_output=True, text=True, timeout=120
    )
    if check.returncode != 0:
        pytest.skip(f"`criu check` fails on this kernel: {check.stderr.strip()[-300:]}")
    return last


@pytest.mark.parametrize("tty", [False, True], ids=["pipes", "tty"])
def test_podman_checkpoint_and_restore(pm, criu_dir, tty):
    """With a tty, conmon holds the pty master: the restore gets CRIU's new one through
    --console-socket."""
    env = dict(pm.env, PATH=f"{criu_dir}:{pm.env.get('PATH', '/usr/bin:/bin')}")

    def podman(*args, timeout=120):
        return run(pm.argv(*args), env=env, timeout=timeout)

    def count() -> int:
        r = podman("exec", name, "cat", "/dev/shm/n")
        assert r.returncode == 0, r.stderr
        return int(r.stdout)

    name = pm.name("ckpt-tty" if tty else "ckpt")
    pm.start_detached(name, "sh", "-c", COUNT, opts=("-t",) if tty else ())
    assert wait_until(lambda: count() >= 3)
    pid = int(pm.inspect(name, "{{.State.Pid}}"))
    r = podman("container", "checkpoint", name)
    assert r.returncode == 0, f"checkpoint failed:\n{r.stdout}{r.stderr}"
    assert pm.inspect(name, "{{.State.Status}}") == "exited"
    assert not os.path.exists(f"/proc/{pid}")
    r = podman("container", "restore", name)
    assert r.returncode == 0, f"restore failed:\n{r.stdout}{r.stderr}"
    assert pm.inspect(name, "{{.State.Status}}") == "running"
    first = count()
    assert wait_until(lambda: count() > first)
    # the shell's counter came back: it goes on, it does not start again at 1
    assert first > 3
    r = podman("rm", "--force", "--time", "0", name)
    assert r.returncode == 0, r.stderr


def test_podman_export_and_import_under_a_new_name(pm, criu_dir, tmp_path):
    """Migration as podman does it: checkpoint --export to a tarball, then restore --import
    as another container (new id, new bundle) while the first is removed."""
    env = dict(pm.env, PATH=f"{criu_dir}:{pm.env.get('PATH', '/usr/bin:/bin')}")

    def podman(*args, timeout=120):
        return run(pm.argv(*args), env=env, timeout=timeout)

    def count(name) -> int:
        r = podman("exec", name, "cat", "/dev/shm/n")
        assert r.returncode == 0, r.stderr
        return int(r.stdout)

    name, copy = pm.name("export"), pm.name("import")
    pm.start_detached(name, "sh", "-c", COUNT)
    assert wait_until(lambda: count(name) >= 3)
    archive = tmp_path / "ckpt.tar.gz"
    r = podman("container", "checkpoint", "--export", str(archive), name)
    assert r.returncode == 0, f"checkpoint --export failed:\n{r.stdout}{r.stderr}"
    assert podman("rm", "--force", "--time", "0", name).returncode == 0
    r = podman("container", "restore", "--import", str(archive), "--name", copy)
    assert r.returncode == 0, f"restore --import failed:\n{r.stdout}{r.stderr}"
    first = count(copy)
    assert first > 3 and wait_until(lambda: count(copy) > first)
    assert podman("rm", "--force", "--time", "0", copy).returncode == 0
