"""Helpers shared by the engine tests (containerd, podman): paths, commands with
timeouts, a pty driver for `-t` runs, and the probes that find what a container
left behind (cgroups, mounts, processes)."""

from __future__ import annotations

import errno
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"


def _ocirun_path() -> str:
    venv = REPO / ".venv" / "bin" / "ocirun"
    if venv.exists():
        return str(venv)
    return str(Path(sys.executable).parent / "ocirun")


OCIRUN = _ocirun_path()
RUNC = "/usr/sbin/runc"
RUNTIMES = {"runc": RUNC, "ocirun": OCIRUN}

CTD_NS = "ocirun-test"  # containerd namespace of the tests
CTD_IMAGE = "docker.io/library/ocirun-busybox:latest"
PM_IMAGE = "localhost/ocirun-busybox:latest"

# The messages runc, crun (and so the engines' users) give for a missing entrypoint.
NOT_FOUND = ("no such file or directory", "executable file not found")


def run(
    cmd: list[str],
    *,
    input: str | None = None,
    timeout: float = 60,
    env: dict | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run CMD with text output captured; stdin is /dev/null unless INPUT is given."""
    r = subprocess.run(
        cmd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}"
    return r


def wait_until(fn, timeout: float = 10, interval: float = 0.05):
    """Call FN until it returns something truthy or TIMEOUT passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def pty_run(
    argv: list[str],
    *,
    env: dict | None = None,
    input: bytes = b"",
    input_delay: float = 0.0,
    timeout: float = 30,
) -> tuple[int, str]:
    """Run ARGV with a new pty as its controlling terminal and stdin/stdout/stderr.

    INPUT is typed into the terminal after INPUT_DELAY seconds. Returns
    (exit code, everything the terminal showed). The child is killed on timeout.
    """
    pid, master = pty.fork()
    if pid == 0:  # child: the pty slave is our stdio and controlling terminal
        try:
            os.execvpe(argv[0], argv, env if env is not None else os.environ)
        finally:
            os._exit(127)
    out = bytearray()
    start = time.monotonic()
    deadline = start + timeout
    pending = input
    timed_out = False
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if pending and now - start >= input_delay:
                n = os.write(master, pending)
                pending = pending[n:]
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError as e:
                if e.errno == errno.EIO:  # every slave fd closed: the program ended
                    break
                raise
            if not chunk:
                break
            out += chunk
    finally:
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(master)
    text = out.decode(errors="replace").replace("\r", "")
    assert not timed_out, f"{' '.join(argv)} timed out after {timeout}s; terminal showed:\n{text}"
    return os.waitstatus_to_exitcode(status), text


class Background:
    """A command running in the background whose stdout is read line by line."""

    def __init__(self, cmd: list[str], env: dict | None = None):
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.out = b""

    def wait_for(self, text: str, timeout: float = 20) -> None:
        """Read stdout until TEXT has appeared."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, (
                f"{text!r} not seen in {timeout}s from {' '.join(self.cmd)}: {self.out!r}"
            )
            ready, _, _ = select.select([fd], [], [], min(left, 0.1))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = self.proc.wait(timeout=5)
                    err = self.proc.stderr.read().decode(errors="replace")
                    raise AssertionError(
                        f"{' '.join(self.cmd)} ended ({rc}) before {text!r}: {self.out!r} {err}"
                    )
                self.out += chunk

    def finish(self, timeout: float = 20) -> tuple[int, str, str]:
        """Wait for the command to end: (exit code, stdout, stderr)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(
                f"{' '.join(self.cmd)} still running after {timeout}s: {(self.out + out)!r} {err!r}"
            ) from None
        return (
            self.proc.returncode,
            (self.out + out).decode(errors="replace"),
            err.decode(errors="replace"),
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


# --------------------------------------------------------------------------- probes


def _mountinfo() -> list[list[str]]:
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f]


def cgroup_mountpoints() -> list[str]:
    """Mount points of every cgroup v1 hierarchy and of the v2 tree."""
    points = []
    for fields in _mountinfo():
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            points.append(fields[4])
    return points


def cgroup_dirs(relpath: str) -> list[str]:
    """The directories that exist for cgroup RELPATH (e.g. "/ns/id") in any hierarchy."""
    rel = relpath.strip("/")
    return [
        os.path.join(m, rel) for m in cgroup_mountpoints() if os.path.isdir(os.path.join(m, rel))
    ]


def rmdir_cgroup(relpath: str) -> None:
    """Remove cgroup RELPATH in every hierarchy where it exists and is empty (best effort)."""
    for d in sorted(cgroup_dirs(relpath), key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass


def mounts_where(pred) -> list[str]:
    """Mount points (field 5 of mountinfo) for which PRED(mount point, whole line) holds."""
    return [f[4] for f in _mountinfo() if pred(f[4], " ".join(f))]


def mounts_under(path: str) -> list[str]:
    path = path.rstrip("/") + "/"
    return mounts_where(lambda mp, _line: mp.startswith(path))


def pids_where(pred) -> list[tuple[int, str]]:
    """(pid, cmdline) of processes for which PRED(cmdline, cgroup file text) holds."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/cgroup") as f:
                cgroups = f.read()
        except OSError:
            continue
        if pred(cmdline, cgroups):
            found.append((int(entry), cmdline))
    return found


def pids_in_cgroup(fragment: str) -> list[tuple[int, str]]:
    """Processes whose cgroup path (in any hierarchy) contains FRAGMENT."""
    return pids_where(lambda _cmd, cg: fragment in cg)


def kill_pids(pids: list[tuple[int, str]]) -> None:
    for pid, _ in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def state_entries(root: str) -> list[str]:
    """Everything under a runtime's --root: container state dirs only, nothing else."""
    try:
        return sorted(os.listdir(root))
    except FileNotFoundError:
        return []


def unmount_under(path: str) -> None:
    """Unmount everything mounted at or below PATH, deepest first (best effort)."""
    path = path.rstrip("/")
    points = mounts_where(lambda mp, _l: mp == path or mp.startswith(path + "/"))
    for mp in sorted(set(points), key=len, reverse=True):
        subprocess.run(
            ["umount", "-l", mp],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
