"""Running the real `ocirun` binary from integration tests, the one way they all need.

Output goes to files, not pipes: a created container keeps the caller's stdout/stderr
open, so a pipe would never reach EOF.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from testenv import OCIRUN


def call(
    rt,
    *args,
    env=None,
    fds: dict[int, int] | None = None,
    stdout=None,
    cwd=None,
    timeout=30,
    global_args=(),
) -> subprocess.CompletedProcess:
    """`ocirun --root R [global_args] args...`. `stdout`: an open file for the container's
    output instead of ours; `fds` {target fd: our fd}: the child gets exactly these extra
    fds (a caller that leaks them)."""

    def leak():
        for target, ours in (fds or {}).items():
            os.dup2(ours, target)  # dup2 clears O_CLOEXEC on the new fd

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(
            [OCIRUN, "--root", rt.root, *global_args, *args],
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else out,
            stderr=err,
            env=env,
            cwd=cwd,
            timeout=timeout,
            close_fds=not fds,
            preexec_fn=leak if fds else None,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"{' '.join(r.args[3:])} failed ({r.returncode}): {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def fails(r: subprocess.CompletedProcess, *needles: str) -> None:
    """A clean user error: non-zero, every needle on stderr, no traceback."""
    assert r.returncode != 0, f"expected failure, got rc 0: {r.stdout}{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr: {r.stderr!r}"


def not_warnings(stderr: str) -> list[str]:
    """stderr's lines but the warnings (printed as runc's logrus does without --log)."""
    return [line for line in stderr.splitlines() if " level=warning msg=" not in line]
