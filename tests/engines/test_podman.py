"""podman 4.3 + conmon with `--runtime runc|ocirun` (containers.conf [engine.runtimes],
"ocirun" in runtime_supports_json so it gets --log-format=json): every scenario runs
with both runtimes, on private storage (conftest.py). conmon calls create/exec, podman
itself start/kill/pause/resume/delete, without --root: ocirun keeps its state in
/run/ocirun (see /work/shared/reference/engine-calls-podman.txt)."""

from __future__ import annotations

import os
import re
import time

import pytest
from enginelib import NOT_FOUND, cgroup_dirs, pids_in_cgroup, pty_run, wait_until

pytestmark = pytest.mark.parametrize("runtime", ["runc", "ocirun"])


def ok(r, what="podman"):
    assert r.returncode == 0, f"{what} failed ({r.returncode}):\n{r.stdout}{r.stderr}"
    return r


def exit_code(pm, name: str) -> int:
    """`podman wait`: the container's exit code once it has stopped."""
    r = ok(pm.podman("wait", name, timeout=30))
    return int(r.stdout.strip())


def cgroup_pids(cid: str) -> list[tuple[int, str]]:
    return pids_in_cgroup(f"/libpod-{cid}\n")


def test_run_output_and_exit_code(pm):
    r = pm.run("--rm", pm.image, "sh", "-c", "echo hello; exit 3")
    assert r.stdout == "hello\n", r.stderr
    assert r.returncode == 3, r.stderr


def test_create_error_reaches_user(pm):
    """podman maps the runtime's log.json error to exit 127 for a missing executable."""
    r = pm.run("--rm", pm.image, "/nonexistent")
    assert r.returncode == 127, (r.returncode, r.stderr)
    assert r.stderr.startswith("Error: "), r.stderr
    assert any(n in r.stderr.lower() for n in NOT_FOUND), r.stderr
    assert "/nonexistent" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and '{"level"' not in r.stderr, r.stderr


def test_stdin_reaches_process(pm):
    r = pm.run("--rm", "--interactive", pm.image, "cat", input="data\nmore\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "data\nmore\n"


def test_detached_run_and_exec(pm):
    name = pm.name("exec")
    cid = pm.start_detached(name, "sleep", "100")
    assert pm.inspect(name, "{{.State.Status}}") == "running"
    assert os.path.isdir(os.path.join(pm.state_root, cid)), f"{pm.runtime} did not run it"
    r = pm.podman("exec", name, "sh", "-c", "echo in-$((6*7)); cat /proc/1/cmdline; exit 7")
    assert r.stdout == "in-42\nsleep\x00100\x00", r.stderr
    assert r.returncode == 7, r.stderr
    r = pm.podman("exec", "--interactive", name, "cat", input="via-exec\n")
    assert (r.returncode, r.stdout) == (0, "via-exec\n"), r.stderr
    r = pm.podman(
        "exec",
        "--user",
        "1000:1000",
        "--workdir",
        "/tmp",
        "--env",
        "FOO=baz",
        name,
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $FOO",
    )
    assert (r.returncode, r.stdout) == (0, "1000\n1000\n/tmp\nbaz\n"), r.stderr
    ok(pm.podman("rm", "--force", "--time", "0", name))


def test_exec_tty(pm):
    name = pm.name("exectty")
    pm.start_detached(name, "sleep", "100")
    r = pm.podman("exec", "--tty", name, "sh", "-c", "tty; [ -t 1 ] && echo stdout-tty; exit 5")
    out = r.stdout.replace("\r", "")
    assert re.search(r"^/dev/pts/\d+$", out, re.M), (out, r.stderr)
    assert "stdout-tty" in out, (out, r.stderr)
    assert r.returncode == 5, r.stderr
    ok(pm.podman("rm", "--force", "--time", "0", name))


def test_run_tty(pm):
    """`podman run -it` under a pty: the runtime sends the pty master to conmon.
    (podman 4.3 can drop the output of a process that exits at once, with any
    runtime: hence the sleep first.)"""
    argv = pm.run_argv(
        "--rm",
        "--interactive",
        "--tty",
        pm.image,
        "sh",
        "-c",
        "sleep 0.3; tty; read x; echo got-$x; exit 4",
    )
    rc, out = pty_run(argv, env=pm.env, input=b"hi\n", input_delay=0.5)
    assert re.search(r"^/dev/pts/\d+$", out, re.M), out
    assert "got-hi" in out, out
    assert rc == 4, out


def test_top(pm):
    name = pm.name("top")
    cid = pm.start_detached(name, "sleep", "100")
    ok(pm.podman("exec", "--detach", name, "sleep", "77"))
    assert wait_until(
        lambda: sorted(c for _, c in cgroup_pids(cid)) == ["sleep 100", "sleep 77"], timeout=5
    ), cgroup_pids(cid)
    r = ok(pm.podman("top", name, "pid", "args"))
    rows = [line.split(None, 1) for line in r.stdout.splitlines()[1:] if line.strip()]
    args = sorted(a.strip() for _, a in rows)
    assert args == ["sleep 100", "sleep 77"], r.stdout
    assert ["1", "sleep 100"] in [[p, a.strip()] for p, a in rows], r.stdout
    ok(pm.podman("rm", "--force", "--time", "0", name))


def test_resources(pm):
    """Limits from the spec land in the container's cgroup."""
    name = pm.name("limits")
    cid = pm.start_detached(
        name, "sleep", "100", opts=("--memory", "64m", "--pids-limit", "50", "--cpu-shares", "512")
    )
    dirs = {d.split("/")[-3]: d for d in cgroup_dirs(f"/libpod_parent/libpod-{cid}")}
    assert open(dirs["memory"] + "/memory.limit_in_bytes").read().strip() == str(64 << 20)
    assert open(dirs["pids"] + "/pids.max").read().strip() == "50"
    assert open(dirs["cpu"] + "/cpu.shares").read().strip() == "512"
    ok(pm.podman("update", "--memory", "100m", name))  # `<rt> update --resources FILE`
    assert open(dirs["memory"] + "/memory.limit_in_bytes").read().strip() == str(100 << 20)
    ok(pm.podman("rm", "--force", "--time", "0", name))


def test_read_only_and_tmpfs(pm):
    """--read-only root with podman's tmpfs mounts (options ... "tmpcopyup": the tmpfs
    starts with a copy of what the image has at that path)."""
    r = pm.run(
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        pm.image,
        "sh",
        "-c",
        "touch /x 2>&1; touch /tmp/y /run/y /scratch/z && echo writable",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "touch: /x: Read-only file system\nwritable\n", r.stderr
    r = pm.run(
        "--rm",
        "--tmpfs",
        "/etc:size=1m",
        pm.image,
        "sh",
        "-c",
        "grep -c ^root: /etc/passwd; awk '$2 == \"/etc\" {print $3}' /proc/mounts",
    )
    assert (r.returncode, r.stdout) == (0, "1\ntmpfs\n"), r.stderr


def test_user_namespace(pm):
    r = pm.run(
        "--rm",
        "--uidmap",
        "0:100000:65536",
        "--gidmap",
        "0:100000:65536",
        pm.image,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /x && echo writable",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "100000", "65536", "writable"], r.stderr


def test_restart_same_id(pm):
    """podman re-creates an exited container under the same id: the runtime's delete
    must have removed everything of the first run."""
    name = pm.name("again")
    r = pm.run("--name", name, pm.image, "sh", "-c", "echo once")
    assert (r.returncode, r.stdout) == (0, "once\n"), r.stderr
    r = pm.podman("start", "--attach", name)
    assert (r.returncode, r.stdout) == (0, "once\n"), r.stderr
    ok(pm.podman("rm", name))
    name = pm.name("restart")
    pm.start_detached(name, "sleep", "100")
    ok(pm.podman("restart", "--time", "0", name))
    assert pm.inspect(name, "{{.State.Status}}") == "running"
    r = pm.podman("exec", name, "echo", "alive")
    assert (r.returncode, r.stdout) == (0, "alive\n"), r.stderr
    ok(pm.podman("rm", "--force", "--time", "0", name))


def test_pause_unpause(pm):
    name = pm.name("pause")
    cid = pm.start_detached(name, "sleep", "100")
    freezer = [d for d in cgroup_dirs(f"/libpod_parent/libpod-{cid}") if "/freezer/" in d]
    assert freezer, cgroup_dirs(f"/libpod_parent/libpod-{cid}")
    ok(pm.podman("pause", name))
    assert pm.inspect(name, "{{.State.Status}}") == "paused"
    assert open(os.path.join(freezer[0], "freezer.state")).read().strip() == "FROZEN"
    ok(pm.podman("unpause", name))
    assert pm.inspect(name, "{{.State.Status}}") == "running"
    assert open(os.path.join(freezer[0], "freezer.state")).read().strip() == "THAWED"
    r = pm.podman("exec", name, "echo", "alive")
    assert (r.returncode, r.stdout) == (0, "alive\n"), r.stderr
    ok(pm.podman("rm", "--force", "--time", "0", name))


def test_kill_term(pm):
    name = pm.name("term")
    pm.start_detached(name, "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done")
    ok(pm.podman("kill", "--signal", "TERM", name))
    assert exit_code(pm, name) == 42
    ok(pm.podman("rm", name))


def test_kill_kill(pm):
    name = pm.name("kill")
    pm.start_detached(name, "sleep", "100")
    ok(pm.podman("kill", "--signal", "KILL", name))
    assert exit_code(pm, name) == 137
    ok(pm.podman("rm", name))


def test_kill_all_without_pid_namespace(pm):
    """With --pid host podman signals through `kill --all`: every process of the
    container's cgroup must get it, or the children outlive the container."""
    name = pm.name("killall")
    cid = pm.start_detached(
        name, "sh", "-c", "sleep 100 & sleep 101 & wait", opts=("--pid", "host")
    )
    procs = wait_until(lambda: len(cgroup_pids(cid)) == 3 and cgroup_pids(cid), timeout=5)
    assert procs, cgroup_pids(cid)
    ok(pm.podman("kill", "--signal", "KILL", name))
    assert exit_code(pm, name) == 137
    assert wait_until(
        lambda: not [p for p, _ in procs if os.path.exists(f"/proc/{p}")], timeout=5
    ), procs
    ok(pm.podman("rm", name))


def test_stop(pm):
    """stop = TERM, then KILL after the timeout when TERM is ignored."""
    name = pm.name("stop")
    pm.start_detached(name, "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done")
    t = time.monotonic()
    ok(pm.podman("stop", "--time", "20", name))
    assert time.monotonic() - t < 10, "TERM did not stop the container"
    assert pm.inspect(name, "{{.State.ExitCode}}") == "42"
    ok(pm.podman("rm", name))

    name = pm.name("stopkill")
    pm.start_detached(name, "sleep", "100")  # pid 1 without a handler: TERM is ignored
    ok(pm.podman("stop", "--time", "1", name))
    assert pm.inspect(name, "{{.State.ExitCode}}") == "137"
    ok(pm.podman("rm", name))


def test_rm_force(pm):
    name = pm.name("rmf")
    cid = pm.start_detached(name, "sleep", "100")
    pid = int(pm.inspect(name, "{{.State.Pid}}"))
    r = pm.podman("rm", name)
    assert r.returncode != 0, "removing a running container without --force must fail"
    ok(pm.podman("rm", "--force", "--time", "0", name))
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=5)
    assert pm.podman("container", "exists", cid).returncode == 1
