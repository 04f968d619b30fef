"""What the fault tests share: running ocirun, killing it at a chosen syscall, and the check
that nothing of a container is left (state dir, process, cgroup in every hierarchy, mount,
cache temporary).

Sizes: the default keeps the suite to a few minutes; OCIRUN_FAULTS=full runs every kill
point and the issue's full volumes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import uuid

from testenv import OCIRUN, ROOTFS

FULL = os.environ.get("OCIRUN_FAULTS", "") == "full"
CGROUP_TOP = "/sys/fs/cgroup"
FIGURES: dict[str, int] = {}  # printed at the end of the session (conftest.py)


def count(name: str, n: int = 1) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + n


def uid(name: str) -> str:
    """A container id no other run shares (ids name cgroups: host-wide)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def call(
    rt, *args, env=None, timeout=30, stdin=subprocess.DEVNULL, wrap: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """`[wrap...] ocirun --root R args...`, output in files (a created container keeps the
    caller's stdout open: a pipe would never reach EOF)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(
            [*wrap, OCIRUN, "--root", rt.root, *args],
            stdin=stdin,
            stdout=out,
            stderr=err,
            env=env,
            timeout=timeout,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"{' '.join(map(str, r.args))} failed ({r.returncode}): {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def one_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    """A failure on exactly one line of stderr, no traceback, every needle in it."""
    assert r.returncode != 0, f"accepted: {r.args} {r.stdout}{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"not one line: {r.stderr[:2000]!r}"
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0][:2000]!r}"
    return lines[0]


def own_cgroup(cid: str):
    """cgroupsPath /<cid>: the container's directory is <hierarchy>/<cid> in every one."""

    def mutate(c):
        c["linux"]["cgroupsPath"] = "/" + cid

    return mutate


def run_detached(rt, make_bundle, cid: str, args=("sleep", "600")) -> None:
    """`run --detach` of a container (sleeping by default) in cgroups of its own."""
    ok(
        call(
            rt,
            "run",
            "--detach",
            "--bundle",
            make_bundle(args=list(args), mutate=own_cgroup(cid)),
            cid,
        )
    )


def cgroups_named(name: str) -> list[str]:
    """<hierarchy>/<name> in every v1 hierarchy and the cgroup2 mount."""
    return [
        os.path.join(CGROUP_TOP, h, name)
        for h in sorted(os.listdir(CGROUP_TOP))
        if os.path.isdir(os.path.join(CGROUP_TOP, h, name))
    ]


def procs_rooted_in(path: str) -> list[int]:
    pids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/root").startswith(path):
                    pids.append(int(p))
            except OSError:
                continue
    return pids


def mounts() -> list[str]:
    """The mount points of this (the host's) mount namespace, one per mount."""
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f)


def cache_temporaries() -> list[str]:
    top = os.environ.get("OCIRUN_CACHE_DIR", "")
    out = []
    for d, _, files in os.walk(top) if top else ():
        out.extend(os.path.join(d, n) for n in files if n.endswith(".tmp"))
    return out


def leftovers(rt, cids, mounts_before: list[str] | None = None) -> dict:
    """Everything of containers `cids` still there; {} when nothing is."""
    left = {}
    names = set(os.listdir(rt.root)) if os.path.isdir(rt.root) else set()
    if names & set(cids):
        left["state dirs"] = sorted(names & set(cids))
    cg = [d for cid in cids for d in cgroups_named(cid)]
    if cg:
        left["cgroups"] = cg
    procs = procs_rooted_in(str(ROOTFS))
    if procs:
        left["processes"] = procs
    if mounts_before is not None:
        added = sorted(set(mounts()) - set(mounts_before))
        ours = [m for m in added if m.startswith(str(ROOTFS)) or any(c in m for c in cids)]
        if ours:
            left["mounts"] = ours
    tmp = cache_temporaries()
    if tmp:
        left["cache temporaries"] = tmp
    return left


def wait_stopped(rt, cid: str, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while json.loads(ok(call(rt, "state", cid)).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} did not stop"
        time.sleep(0.01)


# --------------------------------------------------------------------------- kill points

_SYSCALL = re.compile(r"^([a-z_0-9]+)\(")


def syscalls_after(trace: str, marker: str) -> list[tuple[str, int]]:
    """(name, n) for each syscall of an strace log from the first one whose line holds
    `marker` on: the n-th call of that syscall by the process (strace counts injections per
    syscall)."""
    seen: dict[str, int] = {}
    out, on = [], False
    for i, line in enumerate(trace.splitlines()):
        m = _SYSCALL.match(line)
        if not m:
            continue  # signals, exit lines, resumed calls
        name = m.group(1)
        seen[name] = seen.get(name, 0) + 1
        if not on and i > 0 and marker in line:
            on = True
        if on:
            out.append((name, seen[name]))
    return out


def record(rt, args: list[str], marker: str, env=None) -> list[tuple[str, int]]:
    """Run `ocirun args` once under strace; its syscalls from the first naming `marker`."""
    with tempfile.NamedTemporaryFile("r", prefix="ocirun-trace-") as log:
        ok(call(rt, *args, env=env, wrap=("strace", "-qq", "-o", log.name)))
        points = syscalls_after(log.read(), marker)
    assert points, f"no syscall of {args} names {marker}"
    return points


def pick(points: list, n_default: int) -> list:
    """Every point with OCIRUN_FAULTS=full, else about n_default spread evenly (the first
    and the last included)."""
    if FULL or len(points) <= n_default:
        return list(points)
    step = (len(points) - 1) / (n_default - 1)
    return [points[round(i * step)] for i in range(n_default)]


def killed_at(rt, args: list[str], point: tuple[str, int], env=None, timeout=30):
    """Run `ocirun args`, SIGKILLed on entering the point's syscall (before it runs)."""
    name, n = point
    return call(
        rt,
        *args,
        env=env,
        timeout=timeout,
        wrap=(
            "strace",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            f"trace={name}",
            "-e",
            f"inject={name}:signal=KILL:when={n}",
        ),
    )


class Root:
    """Another --root, used as the `rt` fixture is (call(root, ...), root.state(id))."""

    def __init__(self, root: str):
        self.root = root

    def state(self, cid: str) -> dict:
        return json.loads(ok(call(self, "state", cid)).stdout)
