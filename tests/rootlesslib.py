"""A non-root user with subordinate ids, for running real containers rootless.

`rootless_user()` adds the user (useradd without automatic subordinate ids, then usermod
--add-subuids/--add-subgids: shadow's tools lock /etc/subuid and /etc/subgid), gives it a
private base directory (home, $XDG_RUNTIME_DIR, $XDG_CACHE_HOME, a copy of the busybox
rootfs it owns: bundles/busybox/rootfs itself is never touched), and at the end kills its
processes (by pid), removes the user (userdel also drops its subordinate ids) and the
base directory. Idempotent: a user left by an aborted run is removed first.

`why_not()` says why this machine can't run such tests (a skip reason), or None.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from testenv import OCIRUN, ROOTFS

NAME = "ocirunrl"
SUB_START, SUB_COUNT = 524288, 65536


class User:
    def __init__(self, name: str, uid: int, gid: int, base: Path):
        self.name, self.uid, self.gid, self.base = name, uid, gid, base
        self.home = base / "home"
        self.run_dir = base / "run"  # $XDG_RUNTIME_DIR
        self.cache = base / "cache"  # $XDG_CACHE_HOME
        self.rootfs = base / "rootfs"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "XDG_RUNTIME_DIR": str(self.run_dir),
            "XDG_CACHE_HOME": str(self.cache),
            "LANG": "C.UTF-8",
        }
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--init-groups",
            "--",
            *args,
        ]

    def run(
        self,
        *args: str,
        cwd: str | Path | None = None,
        timeout: float = 60,
        env: dict | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Output goes to files, not pipes: a detached container keeps its stdio open."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.run(
                self.argv(*args),
                cwd=str(cwd or self.base),
                env=env or self.env(),
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                timeout=timeout,
            )
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read().decode(), err.read().decode()
        return p

    def pids(self) -> list[int]:
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == self.uid:
                        out.append(int(entry))
                except OSError:
                    pass
        return out

    def kill_all(self) -> None:
        """Kill every process of the user, by pid (containers it left, podman's pause)."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def chown_tree(self, path: Path) -> None:
        subprocess.run(["chown", "-hR", f"{self.uid}:{self.gid}", str(path)], check=True)


def _remove_user(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True)  # also its subuid/subgid lines
    for path in ("/etc/subuid", "/etc/subgid"):
        text = Path(path).read_text() if os.path.exists(path) else ""
        if any(line.startswith(name + ":") for line in text.splitlines()):
            subprocess.run(
                [
                    "usermod",
                    "--del-subuids" if path.endswith("uid") else "--del-subgids",
                    f"{SUB_START}-{SUB_START + SUB_COUNT - 1}",
                    name,
                ],
                capture_output=True,
            )


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (to add a test user)"
    for tool in ("useradd", "usermod", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    for tool in ("newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package uidmap; scripts/deps.sh)"
    if not (ROOTFS / "bin" / "busybox").exists():
        return "bundles/busybox/rootfs missing (make bundle)"
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return "user namespaces are disabled (user.max_user_namespaces = 0)"
    except OSError:
        return "no user namespaces in this kernel"
    for knob in (
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ):
        try:
            value = Path(knob).read_text().strip()
        except OSError:
            continue
        if (knob.endswith("clone") and value == "0") or (knob.endswith("userns") and value == "1"):
            return f"unprivileged user namespaces are refused here ({knob} = {value})"
    return None


@contextmanager
def rootless_user():
    _remove_user(NAME)
    base = Path(tempfile.mkdtemp(prefix="ocirun-rootless.", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        subprocess.run(
            [
                "useradd",
                "-M",
                "-d",
                str(base / "home"),
                "-s",
                "/usr/sbin/nologin",
                "-U",
                "-K",
                "SUB_UID_COUNT=0",
                "-K",
                "SUB_GID_COUNT=0",
                NAME,
            ],
            check=True,
            capture_output=True,
        )
        try:
            span = f"{SUB_START}-{SUB_START + SUB_COUNT - 1}"
            subprocess.run(
                ["usermod", "--add-subuids", span, "--add-subgids", span, NAME],
                check=True,
                capture_output=True,
            )
            import pwd

            pw = pwd.getpwnam(NAME)
            user = User(NAME, pw.pw_uid, pw.pw_gid, base)
            for d in (user.home, user.run_dir, user.cache):
                d.mkdir(mode=0o700)
            subprocess.run(["cp", "-a", str(ROOTFS), str(user.rootfs)], check=True)
            for d in ("tmp", "var/tmp"):  # what other tests left there is not ours
                shutil.rmtree(user.rootfs / d, ignore_errors=True)
                (user.rootfs / d).mkdir(mode=0o1777)
            for path in (user.home, user.run_dir, user.cache, user.rootfs):
                user.chown_tree(path)
            r = user.run(OCIRUN, "--version")
            if r.returncode != 0:
                raise RuntimeError(f"{OCIRUN} does not run as {NAME}: {r.stderr.strip()}")
            try:
                yield user
            finally:
                user.kill_all()
        finally:
            _remove_user(NAME)
    finally:
        shutil.rmtree(base, ignore_errors=True)
