"""containerd 1.6 (ctr + the io.containerd.runc.v2 shim) with `--runc-binary`: every
scenario runs once with runc and once with ocirun, against a private containerd
(conftest.py). The shim calls the runtime as
`<rt> --root <runc-root>/<ns> --log <bundle>/log.json --log-format json <cmd> ...`
(see /work/shared/reference/engine-calls-containerd.txt)."""

from __future__ import annotations

import os
import re

import pytest
from enginelib import (
    CTD_NS,
    NOT_FOUND,
    Background,
    cgroup_dirs,
    pids_in_cgroup,
    pty_run,
    wait_until,
)

pytestmark = pytest.mark.parametrize("runtime", ["runc", "ocirun"])


def ok(r, what="ctr"):
    assert r.returncode == 0, f"{what} failed ({r.returncode}):\n{r.stdout}{r.stderr}"
    return r


def test_run_output_and_exit_code(ctd):
    name = ctd.name("hello")
    for _ in range(2):  # the same id again: nothing of the first run may be in the way
        r = ctd.run(name, "sh", "-c", "echo hello; exit 3")
        assert r.stdout == "hello\n", r.stderr
        assert r.returncode == 3, r.stderr


def test_create_error_reaches_user(ctd):
    """The shim reports the msg of the last error line of log.json."""
    r = ctd.run(ctd.name("noent"), "/nonexistent")
    assert r.returncode != 0
    err = r.stderr
    assert "OCI runtime create failed" in err, err
    assert any(n in err.lower() for n in NOT_FOUND), err
    assert "/nonexistent" in err, err
    assert "Traceback" not in err and '{"level"' not in err, err


def test_stdin_reaches_process(ctd):
    # ctr 1.6 never closes the task's stdin on EOF, so read one line, not to EOF.
    r = ctd.run(ctd.name("stdin"), "head", "-n", "1", input="data\nmore\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "data\n"


def test_detached_run_and_exec(ctd):
    name = ctd.name("exec")
    ctd.start_detached(name, "sleep", "100")
    assert ctd.task_status(name) == "RUNNING"
    assert os.path.isdir(os.path.join(ctd.state_root, name)), f"{ctd.runtime} did not run it"
    r = ctd.ctr(
        "tasks",
        "exec",
        "--fifo-dir",
        ctd.fifo_dir,
        "--exec-id",
        "x1",
        name,
        "sh",
        "-c",
        "echo in-$((6*7)); cat /proc/1/cmdline; exit 7",
    )
    assert r.stdout == "in-42\nsleep\x00100\x00", r.stderr
    assert r.returncode == 7, r.stderr
    r = ctd.ctr(
        "tasks",
        "exec",
        "--fifo-dir",
        ctd.fifo_dir,
        "--exec-id",
        "x2",
        "--user",
        "1000",
        "--cwd",
        "/tmp",
        name,
        "sh",
        "-c",
        "id -u; pwd",
    )
    assert (r.returncode, r.stdout) == (0, "1000\n/tmp\n"), r.stderr
    ctd.remove(name)


def test_exec_tty(ctd):
    name = ctd.name("exectty")
    ctd.start_detached(name, "sleep", "100")
    rc, out = pty_run(
        ctd.argv(
            "tasks",
            "exec",
            "--tty",
            "--fifo-dir",
            ctd.fifo_dir,
            "--exec-id",
            "t1",
            name,
            "sh",
            "-c",
            "tty; [ -t 0 ] && echo stdin-tty; exit 5",
        )
    )
    assert re.search(r"^/dev/pts/\d+$", out, re.M), out
    assert "stdin-tty" in out, out
    assert rc == 5, out
    ctd.remove(name)


def test_run_tty(ctd):
    """`ctr run -t`: the runtime hands the pty master to the shim over --console-socket."""
    argv = ctd.run_argv(
        ctd.name("tty"),
        "sh",
        "-c",
        "sleep 0.3; tty; read x; echo got-$x; exit 4",
        opts=("--rm", "--tty"),
    )
    rc, out = pty_run(argv, input=b"hi\n", input_delay=0.5)
    assert re.search(r"^/dev/pts/\d+$", out, re.M), out
    assert "got-hi" in out, out
    assert rc == 4, out


def test_ps(ctd):
    name = ctd.name("ps")
    init = ctd.start_detached(name, "sleep", "100")
    ok(
        ctd.ctr(
            "tasks",
            "exec",
            "--detach",
            "--fifo-dir",
            ctd.fifo_dir,
            "--exec-id",
            "bg",
            name,
            "sleep",
            "77",
        )
    )

    def procs():
        found = pids_in_cgroup(f"/{CTD_NS}/{name}\n")
        return found if sorted(cmd for _, cmd in found) == ["sleep 100", "sleep 77"] else None

    in_cgroup = wait_until(procs, timeout=5)  # the exec'd one may still be the runtime
    assert in_cgroup, pids_in_cgroup(f"/{CTD_NS}/{name}\n")
    r = ok(ctd.ctr("tasks", "ps", name))
    listed = {int(line.split()[0]) for line in r.stdout.splitlines()[1:] if line.strip()}
    assert listed == {pid for pid, _ in in_cgroup}, (r.stdout, in_cgroup)
    assert init in listed
    ctd.remove(name)


def test_metrics_from_container_cgroup(ctd):
    """Metrics come from cgroupsPath /<ns>/<id>, where the runtime must put the container."""
    name = ctd.name("metrics")
    init = ctd.start_detached(name, "sleep", "100")
    dirs = [d for d in cgroup_dirs(f"/{CTD_NS}/{name}") if re.search(r"/(memory|pids)/", d)]
    assert len(dirs) == 2, cgroup_dirs(f"/{CTD_NS}/{name}")
    for d in dirs:
        assert str(init) in open(os.path.join(d, "cgroup.procs")).read().split(), d
    r = ok(ctd.ctr("tasks", "metrics", name))
    values = dict(line.split(None, 1) for line in r.stdout.splitlines() if len(line.split()) >= 2)
    assert int(values["pids.current"]) == 1, r.stdout
    assert int(values["memory.usage_in_bytes"]) > 0, r.stdout
    ctd.remove(name)


def test_resources(ctd):
    """Limits from the spec land in the container's cgroup."""
    name = ctd.name("limits")
    ctd.run(
        name,
        "sleep",
        "100",
        opts=("--detach", "--memory-limit", str(64 << 20), "--cpu-shares", "512"),
    )
    dirs = {d.split("/")[-3]: d for d in cgroup_dirs(f"/{CTD_NS}/{name}")}
    assert open(dirs["memory"] + "/memory.limit_in_bytes").read().strip() == str(64 << 20)
    assert open(dirs["cpu"] + "/cpu.shares").read().strip() == "512"
    ctd.remove(name)


def test_read_only_and_mounts(ctd):
    r = ctd.run(
        ctd.name("ro"),
        "sh",
        "-c",
        "touch /x 2>&1; touch /scratch/y && echo writable; cat /h",
        opts=(
            "--rm",
            "--read-only",
            "--mount",
            "type=tmpfs,src=tmpfs,dst=/scratch,options=size=1m",
            "--mount",
            "type=bind,src=/etc/hostname,dst=/h,options=rbind:ro",
        ),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "touch: /x: Read-only file system\nwritable\n" + open("/etc/hostname").read()
    ), r.stderr


def test_pause_resume(ctd):
    name = ctd.name("pause")
    ctd.start_detached(name, "sleep", "100")
    freezer = [d for d in cgroup_dirs(f"/{CTD_NS}/{name}") if "/freezer/" in d]
    ok(ctd.ctr("tasks", "pause", name))
    assert ctd.task_status(name) == "PAUSED"
    for d in freezer:
        assert open(os.path.join(d, "freezer.state")).read().strip() == "FROZEN"
    ok(ctd.ctr("tasks", "resume", name))
    assert ctd.task_status(name) == "RUNNING"
    for d in freezer:
        assert open(os.path.join(d, "freezer.state")).read().strip() == "THAWED"
    r = ctd.ctr(
        "tasks", "exec", "--fifo-dir", ctd.fifo_dir, "--exec-id", "after", name, "echo", "alive"
    )
    assert (r.returncode, r.stdout) == (0, "alive\n"), r.stderr
    ctd.remove(name)


def test_kill_term(ctd):
    name = ctd.name("term")
    bg = Background(
        ctd.run_argv(
            name,
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        )
    )
    try:
        bg.wait_for("ready")
        ok(ctd.ctr("tasks", "kill", "--signal", "TERM", name))
        rc, out, err = bg.finish()
    finally:
        bg.kill()
    assert "got-term" in out, (out, err)
    assert rc == 42, (out, err)


def test_kill_kill(ctd):
    name = ctd.name("kill")
    bg = Background(ctd.run_argv(name, "sh", "-c", "echo ready; exec sleep 100"))
    try:
        bg.wait_for("ready")
        wait_until(lambda: ctd.task_status(name) == "RUNNING", timeout=5)
        ok(ctd.ctr("tasks", "kill", "--signal", "KILL", name))
        rc, out, err = bg.finish()
    finally:
        bg.kill()
    assert rc == 137, (out, err)


def test_kill_all(ctd):
    """`kill --all`: every process of the container's cgroup, not just init."""
    name = ctd.name("killall")
    bg = Background(
        ctd.run_argv(name, "sh", "-c", "trap '' TERM; sleep 100 & sleep 101 & echo ready; wait")
    )
    try:
        bg.wait_for("ready")
        procs = wait_until(
            lambda: (
                len(pids_in_cgroup(f"/{CTD_NS}/{name}\n")) == 3
                and pids_in_cgroup(f"/{CTD_NS}/{name}\n")
            ),
            timeout=5,
        )
        assert procs, pids_in_cgroup(f"/{CTD_NS}/{name}\n")
        ok(ctd.ctr("tasks", "kill", "--all", "--signal", "KILL", name))
        rc, out, err = bg.finish()
    finally:
        bg.kill()
    assert rc == 137, (out, err)
    assert not [p for p, _ in procs if os.path.exists(f"/proc/{p}")], procs


def test_rm_force(ctd):
    name = ctd.name("rmf")
    init = ctd.start_detached(name, "sleep", "100")
    r = ctd.ctr("containers", "delete", name)
    assert r.returncode != 0, "deleting a container with a running task must fail"
    ok(ctd.ctr("tasks", "delete", "--force", name))
    ok(ctd.ctr("containers", "delete", name))
    assert wait_until(lambda: not os.path.exists(f"/proc/{init}"), timeout=5)
    assert ctd.task_status(name) is None
