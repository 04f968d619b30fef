"""Hooks run in the runtime's namespace: prestart, createRuntime, poststart, poststop.

(createContainer and startContainer run inside the container, from the C init: hooks.c.)
Each hook gets the container's state JSON on stdin, exactly its own `env` (without one, the
runtime's environment, as runc and crun give it), its `args` as argv (argv[0] included) and
at most `timeout` seconds. Imported only when a config has hooks.
"""

from __future__ import annotations

import subprocess

from . import _lean as json
from .errors import HookError


def state_bytes(state: dict) -> bytes:
    return json.dumps(state).encode()


def _one(kind: str, i: int, hook: dict, stdin: bytes) -> None:
    path = hook["path"]
    argv = hook.get("args") or [path]
    env = None  # no `env`: the runtime's own (an empty list is an empty environment)
    if hook.get("env") is not None:
        env = dict(e.split("=", 1) for e in hook["env"] if "=" in e)
    what = f"error running {kind} hook #{i}: {path}"  # runc's words, then the hook's path
    try:
        proc = subprocess.run(
            argv,
            executable=path,
            input=stdin,
            env=env,
            capture_output=True,
            timeout=hook.get("timeout") or None,
            close_fds=True,
        )
    except subprocess.TimeoutExpired:
        raise HookError(f"{what}: timed out after {hook['timeout']} s") from None
    except OSError as e:
        raise HookError(f"{what}: {e.strerror}") from None
    if proc.returncode != 0:
        how = (
            f"killed by signal {-proc.returncode} ({_signal_name(-proc.returncode)})"
            if proc.returncode < 0
            else f"exit status {proc.returncode}"
        )
        out = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise HookError(f"{what}: {how}" + (f": {out.splitlines()[-1]}" if out else ""))


def _signal_name(sig: int) -> str:
    """As Go's os/exec words it ("bad system call"): the C library's description."""
    import signal

    text = signal.strsignal(sig) or "unknown signal"
    return text[:1].lower() + text[1:]


def run(kind: str, hooks: list[dict], state: dict) -> None:
    """Run hooks in order; the first failure raises HookError."""
    stdin = state_bytes(state)
    for i, hook in enumerate(hooks):
        _one(kind, i, hook, stdin)


def run_all(kind: str, hooks: list[dict], state: dict) -> list[str]:
    """Run every hook even if some fail (poststop); return the failures' messages."""
    stdin = state_bytes(state)
    failures = []
    for i, hook in enumerate(hooks):
        try:
            _one(kind, i, hook, stdin)
        except HookError as e:
            failures.append(e.message)
    return failures
