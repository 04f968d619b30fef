"""containerd 1.6's checkpoint and restore through the runtime (issue 18), beside runc:
`ctr containers checkpoint --task` (the shim calls `<rt> checkpoint --image-path ...
--work-path ...`), then `ctr containers restore --live` as a new container (the shim calls
`<rt> restore --detach ...`). The shim finds no CRIU on containerd's PATH, so the
runtime is a wrapper adding `--criu` (as containerd's own `criu_path` option would)."""

from __future__ import annotations

import os
import subprocess

import pytest
from enginelib import REPO, wait_until

pytestmark = pytest.mark.parametrize("runtime", ["runc", "ocirun"])

# written then renamed: a reader never sees the file empty
COUNT = (
    "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/t; mv /dev/shm/t /dev/shm/n; "
    "sleep 0.1; done"
)


@pytest.fixture(scope="module")
def criu_path() -> str:
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "criu-build.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    last = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode != 0:
        pytest.skip(f"CRIU not built: {last or r.stderr.strip()[-300:]}")
    path = os.path.join(last, "criu")
    check = subprocess.run([path, "check"], capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        pytest.skip(f"`criu check` fails on this kernel: {check.stderr.strip()[-300:]}")
    return path


def test_containerd_checkpoint_and_restore(ctd, criu_path, tmp_path):
    wrapper = tmp_path / f"{ctd.runtime}-with-criu"
    wrapper.write_text(f'#!/bin/sh\nexec {ctd.binary} --criu {criu_path} "$@"\n')
    wrapper.chmod(0o755)
    ctd.binary = str(wrapper)

    def count(name) -> int:
        for _ in range(5):  # ctr exec's short output is now and then lost on its fifos
            r = ctd.ctr(
                "tasks", "exec", "--exec-id", f"c{os.urandom(3).hex()}", name, "cat", "/dev/shm/n"
            )
            assert r.returncode == 0, r.stderr
            if r.stdout.strip():
                return int(r.stdout)
        raise AssertionError(f"ctr exec {name} cat /dev/shm/n: no output")

    name, copy = ctd.name("ckpt"), ctd.name("ckpt-copy")
    ref = f"localhost/checkpoint/{name}:1"
    ctd.start_detached(name, "sh", "-c", COUNT)
    assert wait_until(lambda: count(name) >= 3)
    r = ctd.ctr("containers", "checkpoint", "--task", name, ref)
    assert r.returncode == 0, f"checkpoint failed:\n{r.stdout}{r.stderr}"
    ctd.remove(name)
    r = ctd.ctr("containers", "restore", "--live", copy, ref)
    assert r.returncode == 0, f"restore failed:\n{r.stdout}{r.stderr}"
    assert ctd.task_status(copy) == "RUNNING"
    first = count(copy)
    assert first > 3 and wait_until(lambda: count(copy) > first)
    ctd.remove(copy)
    ctd.ctr("images", "rm", ref)
