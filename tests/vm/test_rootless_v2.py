"""Rootless on a cgroup v2 host (the VM), by a real non-root user, ocirun beside runc:
- cgroupfs: the user can't write the hierarchy (no delegation), so no limits means the
  container stays in the user's cgroup and limits are an error (both boots);
- --systemd-cgroup with the user's own systemd manager (the systemd boot: user@<uid>.service
  started for the test user): a transient scope in its user.slice, with the limits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import rootlesslib  # noqa: E402

IN_VM = os.environ.get("OCIRUN_IN_VM") == "1"
SYSTEMD = IN_VM and os.path.isdir("/run/systemd/system")
OCIRUN = os.path.join(os.path.dirname(sys.executable), "ocirun")
RUNTIMES = {"ocirun": OCIRUN, "runc": shutil.which("runc") or "/usr/sbin/runc"}
MiB = 1 << 20

_why = None if IN_VM else "runs inside the cgroup v2 VM only"
_why = _why or rootlesslib.why_not()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"rootless v2: {_why}")


@pytest.fixture(scope="module")
def user():
    with rootlesslib.rootless_user() as u:
        yield u


@pytest.fixture(params=["ocirun", "runc"])
def runtime(request):
    return request.param


def _bundle(user, name: str, args: list[str], edit=None) -> Path:
    d = user.base / "bundles" / name
    d.mkdir(parents=True)
    user.chown_tree(d.parent)
    r = user.run(OCIRUN, "spec", "--rootless", "--bundle", str(d))
    assert r.returncode == 0, r.stderr
    cfg = json.loads((d / "config.json").read_text())
    cfg["root"]["path"] = str(user.rootfs)
    cfg["process"].update(terminal=False, args=args)
    if edit:
        edit(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    user.chown_tree(d)
    return d


def test_cgroupfs_without_delegation(user, runtime):
    """No limits: the container stays in the caller's cgroup; limits: refused, as runc's
    fs2 manager refuses them (nothing left either way)."""
    mine = Path("/proc/self/cgroup").read_text().strip()
    b = _bundle(user, f"v2-none-{runtime}", ["cat", "/proc/self/cgroup"])
    r = user.run(RUNTIMES[runtime], "run", f"rl-v2a-{runtime}", cwd=b)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == mine  # setpriv kept our cgroup: the container is in it

    def limits(cfg):
        cfg["linux"]["resources"] = {"memory": {"limit": 64 * MiB}}

    b = _bundle(user, f"v2-mem-{runtime}", ["true"], limits)
    r = user.run(RUNTIMES[runtime], "run", f"rl-v2b-{runtime}", cwd=b)
    assert r.returncode != 0
    assert (
        "rootless needs no limits + no cgrouppath when no permission is granted for "
        "cgroups" in r.stderr
    ), r.stderr
    assert not os.listdir(user.run_dir / runtime)


# ------------------------------------------------------------- the user's systemd manager


@pytest.fixture(scope="module")
def session(user):
    """user@<uid>.service started (as a lingering user's would be): its bus, its cgroup."""
    if not SYSTEMD:
        pytest.skip("needs the VM's systemd boot")
    unit = f"user@{user.uid}.service"
    r = subprocess.run(["systemctl", "start", unit], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    run_dir = f"/run/user/{user.uid}"
    env = user.env(XDG_RUNTIME_DIR=run_dir, DBUS_SESSION_BUS_ADDRESS=f"unix:path={run_dir}/bus")
    for _ in range(100):
        if os.path.exists(f"{run_dir}/bus"):
            break
        time.sleep(0.1)
    try:
        yield env
    finally:
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=120)


def _scope_gone(user, env, unit: str) -> bool:
    for _ in range(100):
        r = subprocess.run(
            user.argv("systemctl", "--user", "show", unit, "-pLoadState"),
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if "LoadState=not-found" in r.stdout:
            return True
        time.sleep(0.1)
    return False


def _cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text().strip().split("::", 1)[1]


def test_systemd_user_scope_with_limits(user, session, runtime):
    """--systemd-cgroup as the user: runc-<id>.scope in the manager's user.slice with the
    limits, gone after delete."""
    cid = f"rl-sd-{runtime}"

    def limits(cfg):
        cfg["linux"]["resources"] = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 30}}

    b = _bundle(user, f"sd-{runtime}", ["sleep", "100"], limits)

    def rt(*a):
        return user.run(
            RUNTIMES[runtime],
            "--systemd-cgroup",
            *a,
            cwd=b,
            env=session,
            timeout=120,
        )

    r = rt("run", "-d", cid)
    assert r.returncode == 0, f"{runtime}: {r.stderr}"
    try:
        pid = json.loads(rt("state", cid).stdout)["pid"]
        cg = _cgroup_of(pid)
        assert cg == (
            f"/user.slice/user-{user.uid}.slice/user@{user.uid}.service/user.slice/runc-{cid}.scope"
        ), cg
        d = Path("/sys/fs/cgroup" + cg)
        assert (d / "memory.max").read_text().strip() == str(64 * MiB)
        assert (d / "pids.max").read_text().strip() == "30"
    finally:
        r = rt("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert _scope_gone(user, session, f"runc-{cid}.scope")
    run_dir = Path(session["XDG_RUNTIME_DIR"]) / runtime
    assert not run_dir.exists() or not os.listdir(run_dir)


def test_systemd_user_lifecycle_and_exec(user, session, runtime):
    """An exec'd process may not be moved into the scope (cgroup2 wants the common ancestor
    of its cgroup and the scope writable, and the caller runs outside the user's manager):
    it stays in the caller's cgroup, as runc leaves it."""
    cid = f"rl-sd-life-{runtime}"
    b = _bundle(user, f"sd-life-{runtime}", ["sleep", "100"])

    def run(*a):
        return user.run(
            RUNTIMES[runtime],
            "--systemd-cgroup",
            *a,
            cwd=b,
            env=session,
            timeout=120,
        )

    r = run("create", cid)
    assert r.returncode == 0, r.stderr
    try:
        assert run("start", cid).returncode == 0
        r = run("exec", cid, "cat", "/proc/self/cgroup")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == Path("/proc/self/cgroup").read_text().strip(), r.stdout
        r = run("ps", cid)
        assert r.returncode == 0 and "sleep" in r.stdout, r.stdout + r.stderr
    finally:
        r = run("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert _scope_gone(user, session, f"runc-{cid}.scope")
