"""What the checkpoint/restore tests share: CRIU built from ../shared/criu (the `criu`
fixture), a container's stdout on a pipe (Pipe), ocirun or runc with --criu (Ctl, and the
`ctl` fixture giving each in turn), and the checks that nothing is left behind."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
import uuid

import pytest
from testenv import OCIRUN, REPO, ROOTFS

COUNT = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"


@pytest.fixture
def make_bundle(make_bundle, tmp_path):
    """conftest's make_bundle on a private copy of the rootfs: a restore can make mount
    points in the rootfs (CRIU re-creates /sys/fs/cgroup there), which the shared one must
    not gain."""
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(ROOTFS), str(rootfs)], check=True)

    def make(args=None, mutate=None, config=None):
        def private(cfg):
            cfg["root"]["path"] = str(rootfs)
            if mutate:
                mutate(cfg)

        return make_bundle(args, private, config)

    return make


@pytest.fixture(scope="module")
def criu() -> str:
    """CRIU's path; skipped, with the reason, only where it cannot be built or `criu check`
    fails on this kernel."""
    if os.geteuid() != 0:
        pytest.skip("checkpoint/restore needs root")
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


class Pipe:
    """The read end of a container's stdout; the numbers it printed so far."""

    def __init__(self):
        self.r, self.w = os.pipe()
        self.buf = b""
        self.seen: list[int] = []  # every number read so far

    def close_writer(self):
        if self.w >= 0:
            os.close(self.w)
            self.w = -1

    def numbers(self, want: int = 1, timeout: float = 10) -> list[int]:
        """At least `want` more lines (or whatever came before EOF), as ints."""
        deadline = time.monotonic() + timeout
        lines: list[int] = []
        while len(lines) < want and time.monotonic() < deadline:
            if not select.select([self.r], [], [], max(0, deadline - time.monotonic()))[0]:
                break
            chunk = os.read(self.r, 4096)
            if not chunk:
                break
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            lines += [int(x) for x in done if x.strip().isdigit()]
        self.seen += lines
        return lines

    def drain(self, timeout: float = 10) -> list[int]:
        """Everything up to EOF (every writer gone)."""
        return self.numbers(want=10**9, timeout=timeout)

    def close(self):
        self.close_writer()
        os.close(self.r)


class Ctl:
    """ocirun or runc, with CRIU, against a private root."""

    def __init__(self, exe: list[str], root: str, criu: str):
        self.exe, self.root, self.criu = exe, root, criu

    def __call__(self, *args, stdout=None, stderr=None, timeout=60, cwd=None):
        with open(os.devnull, "rb") as null:
            return subprocess.run(
                [*self.exe, "--root", self.root, "--criu", self.criu, *args],
                stdin=null,
                stdout=stdout or subprocess.PIPE,
                stderr=stderr or subprocess.PIPE,
                timeout=timeout,
                cwd=cwd,
                text=True,
            )

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, f"{args} failed ({r.returncode}): {r.stderr}"
        return r

    def start(self, cid: str, bundle: str, pipe: Pipe, *extra: str):
        """run -d (ocirun, runc) or restore -d: the container's stdout and stderr on the pipe."""
        args = extra or ("run",)
        r = self(*args, "-d", "-b", bundle, cid, stdout=pipe.w, stderr=pipe.w)
        assert r.returncode == 0, f"{args} {cid} failed ({r.returncode}): see its output"

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)

    def cleanup(self, cid: str):
        self("delete", "--force", cid)


@pytest.fixture(params=["ocirun", "runc"])
def ctl(request, rt, criu):
    """The runtime under test; runc beside ocirun where it is installed."""
    if request.param == "ocirun":
        yield Ctl([OCIRUN], rt.root, criu)
        return
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    c = Ctl(["runc"], f"/run/ocirun-test-runc/{uuid.uuid4().hex[:12]}", criu)
    yield c
    shutil.rmtree(c.root, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(c.root))  # the last one out
    except OSError:
        pass


def cgroup_dirs(cid: str) -> list[str]:
    out = []
    for top, dirs, _files in os.walk("/sys/fs/cgroup"):
        out += [os.path.join(top, d) for d in dirs if d == cid]
        dirs[:] = [d for d in dirs if d != cid and top.count("/") < 6]
    return out


def criu_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if ".criu-root-" in line.split()[4]]


def nothing_left(ctl: Ctl, *cids: str) -> None:
    for cid in cids:
        assert cgroup_dirs(cid) == [], f"cgroups of {cid} left behind"
    assert criu_mounts() == []


def init_view(pid: int) -> tuple[str, str]:
    """(the init's pid in its own namespace, its command line)."""
    with open(f"/proc/{pid}/status") as f:
        nspid = next(line.split()[-1] for line in f if line.startswith("NSpid:"))
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return nspid, f.read().decode()


def gone(ctl: Ctl, cid: str) -> None:
    """After a checkpoint without --leave-running: destroyed, as runc does."""
    r = ctl("state", cid)
    assert r.returncode != 0 and "does not exist" in r.stderr, r


def line(pipe: Pipe, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while b"\n" not in pipe.buf and time.monotonic() < deadline:
        if select.select([pipe.r], [], [], 0.5)[0]:
            chunk = os.read(pipe.r, 4096)
            if not chunk:
                break
            pipe.buf += chunk
    line, _, pipe.buf = pipe.buf.partition(b"\n")
    return line.decode().strip()
