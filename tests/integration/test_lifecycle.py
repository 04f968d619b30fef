"""The container lifecycle as runtime-spec runtime.md defines it, on real containers:
create -> created -> start -> running -> (exit | kill) -> stopped -> delete, plus `run`, `list`
and the errors runc users (and engines parsing runc's words) see at each wrong step.

A created container inherits the stdout/stderr of `ocirun create`, so create/run --detach
are never run with pipes (a pipe would not reach EOF while the container lives): `call()`
sends them to files.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from clitools import call, fails
from testenv import OCIRUN

TRAP = (
    'trap "echo got-TERM; exit 7" TERM; trap "echo got-USR1" USR1; echo ready; '
    "while :; do sleep 0.1; done"
)


# --------------------------------------------------------------------------- helpers


def create(rt, cid, bundle, *extra, stdout=None, cwd=None) -> subprocess.CompletedProcess:
    r = call(rt, "create", "--bundle", bundle, *extra, cid, stdout=stdout, cwd=cwd)
    assert r.returncode == 0, f"create {cid} failed ({r.returncode}): {r.stderr}"
    assert "Traceback" not in r.stderr
    return r


def wait_status(rt, cid, want: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = rt.state(cid)
        if st["status"] == want or time.monotonic() > deadline:
            assert st["status"] == want, f"{cid} is {st['status']}, expected {want}"
            return st
        time.sleep(0.05)


def wait_for_text(path: Path, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got = path.read_text() if path.exists() else ""
        if text in got or time.monotonic() > deadline:
            assert text in got, f"{text!r} never appeared in {path}: {got!r}"
            return got
        time.sleep(0.05)


@pytest.fixture
def trapping(rt, make_bundle, tmp_path):
    """Container c1 started with TRAP and ready: its output file. Deleted afterwards."""
    out = tmp_path / "out"
    with open(out, "w") as f:
        create(rt, "c1", make_bundle(args=["sh", "-c", TRAP]), stdout=f)
    try:
        rt.ok("start", "c1")
        wait_for_text(out, "ready")
        yield out
    finally:
        rt.cli("delete", "--force", "c1")


def wait_gone(pid: int, timeout: float = 10) -> None:
    """The pid is gone (or no longer alive: a zombie has no /proc/<pid>/root target)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), f"process {pid} still alive"


def ids(rt) -> list[str]:
    return rt.ok("list", "-q").stdout.split()


def assert_gone(rt, cid: str) -> None:
    r = rt.cli("state", cid)
    fails(r, f'container "{cid}" does not exist')
    assert cid not in ids(rt)


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_rfc3339(text: str) -> datetime.datetime:
    assert RFC3339.match(text), f"not RFC 3339: {text!r}"
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- create / state


def test_create_state_and_pid_file(rt, make_bundle, tmp_path):
    """runtime.md state: ociVersion, id, status, pid (REQUIRED when created or running),
    bundle (the absolute path to the bundle), annotations; runc adds created and owner.
    The pid file holds the decimal pid, no newline; a relative --pid-file and --bundle are
    resolved against the caller's cwd."""
    annotations = {"org.example.key": "value", "com.example/other": "x y"}
    bundle = Path(
        make_bundle(args=["sleep", "30"], mutate=lambda c: c.update(annotations=annotations))
    )
    before = datetime.datetime.now(datetime.UTC)
    create(
        rt,
        "c1",
        bundle.name,
        "--pid-file",
        "init.pid",
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
    )
    try:
        st = rt.state("c1")
        assert st["status"] == "created"
        assert st["id"] == "c1"
        assert st["ociVersion"] == "1.3.0"
        assert isinstance(st["pid"], int) and st["pid"] > 0
        assert os.path.isdir(f"/proc/{st['pid']}")
        assert st["bundle"] == str(bundle) and os.path.isabs(st["bundle"])
        assert "owner" in st
        created = parse_rfc3339(st["created"])
        assert before - datetime.timedelta(seconds=5) <= created
        after = datetime.datetime.now(datetime.UTC)
        assert created <= after + datetime.timedelta(seconds=5)
        assert st["annotations"] == annotations
        pid_file = tmp_path / "init.pid"
        raw = pid_file.read_bytes()
        assert raw == str(st["pid"]).encode(), f"pid file holds {raw!r}"
        # The init waits for start: it has not exec'd `sleep` yet.
        cmdline = Path(f"/proc/{st['pid']}/cmdline").read_bytes()
        assert cmdline != b"sleep\x0030\x00"
    finally:
        rt.cli("delete", "--force", "c1")


def test_create_relative_pid_file_in_cwd(rt, make_bundle, tmp_path):
    """--pid-file init.pid (no directory) lands in the caller's cwd, not the bundle."""
    bundle = make_bundle(args=["sleep", "30"])
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    create(rt, "c1", bundle, "--pid-file", "init.pid", cwd=str(cwd), stdout=subprocess.DEVNULL)
    try:
        assert (cwd / "init.pid").read_text() == str(rt.state("c1")["pid"])
        assert not (Path(bundle) / "init.pid").exists()
    finally:
        rt.cli("delete", "--force", "c1")


def test_create_pid_file_in_missing_dir_fails_cleanly(rt, make_bundle, tmp_path):
    bundle = make_bundle(args=["sleep", "30"])
    r = call(
        rt,
        "create",
        "--bundle",
        bundle,
        "--pid-file",
        str(tmp_path / "no" / "such" / "init.pid"),
        "c1",
    )
    fails(r, str(tmp_path / "no" / "such"))
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ids(rt) == []


def test_delete_created_container_needs_force(rt, make_bundle):
    """runtime.md delete: a created, never started container is not stopped: delete is an
    error with no effect (runc 1.1 deletes it; runtime-tools' `delete` checks the spec's
    rule); --force deletes it and its init goes."""
    create(rt, "c1", make_bundle(args=["sleep", "30"]), stdout=subprocess.DEVNULL)
    pid = rt.state("c1")["pid"]
    fails(rt.cli("delete", "c1"), "cannot delete container c1 that is not stopped: created")
    assert rt.state("c1")["status"] == "created"
    rt.ok("delete", "--force", "c1")
    assert_gone(rt, "c1")
    wait_gone(pid)


def test_create_existing_id_fails_and_leaves_first_alone(rt, make_bundle, tmp_path):
    """runtime.md create: MUST generate an error if the ID is not unique across all
    containers within the scope of the runtime."""
    out = tmp_path / "out"
    with open(out, "w") as f:
        create(rt, "c1", make_bundle(args=["sh", "-c", "echo first; sleep 30"]), stdout=f)
    try:
        before = rt.state("c1")
        r = call(rt, "create", "--bundle", make_bundle(args=["sh", "-c", "echo second"]), "c1")
        fails(r, "container with id exists: c1")
        assert rt.state("c1") == before
        rt.ok("start", "c1")
        assert wait_for_text(out, "first") == "first\n"
        assert rt.state("c1")["status"] == "running"
        assert rt.state("c1")["pid"] == before["pid"]
    finally:
        rt.cli("delete", "--force", "c1")


# --------------------------------------------------------------------------- start


def test_start_runs_process_with_create_stdout(rt, make_bundle, tmp_path):
    """start: the user-specified program is run; until then it is not. Its stdout is the
    one `create` was given."""
    out = tmp_path / "out"
    with open(out, "w") as f:
        create(rt, "c1", make_bundle(args=["sh", "-c", "echo out-$((6*7)); sleep 30"]), stdout=f)
    try:
        time.sleep(0.2)
        assert out.read_text() == "", "the process ran before start"
        assert rt.state("c1")["status"] == "created"
        before = rt.state("c1")
        r = rt.cli("start", "c1")
        assert r.returncode == 0, r.stderr
        assert r.stdout == ""
        assert wait_for_text(out, "out-42") == "out-42\n"
        st = rt.state("c1")
        assert st["status"] == "running"
        pid = st["pid"]
        assert pid == before["pid"]
        assert st["created"] == before["created"]
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0030\x00"
    finally:
        rt.cli("delete", "--force", "c1")


def test_start_twice_fails(rt, make_bundle):
    create(rt, "c1", make_bundle(args=["sleep", "30"]), stdout=subprocess.DEVNULL)
    try:
        rt.ok("start", "c1")
        r = rt.cli("start", "c1")
        fails(r, "cannot start an already running container")
        assert rt.state("c1")["status"] == "running"
    finally:
        rt.cli("delete", "--force", "c1")


def test_start_after_exit_fails(rt, make_bundle):
    """runtime.md start: this operation MUST generate an error if it is not provided the
    container ID (in the created state)."""
    create(rt, "c1", make_bundle(args=["true"]), stdout=subprocess.DEVNULL)
    rt.ok("start", "c1")
    wait_status(rt, "c1", "stopped")
    r = rt.cli("start", "c1")
    fails(r, "cannot start a container that has stopped")
    assert rt.state("c1")["status"] == "stopped"
    rt.ok("delete", "c1")
    assert_gone(rt, "c1")


def test_start_of_killed_created_container_fails(rt, make_bundle):
    """The init killed before start: the container is stopped, start refuses."""
    create(rt, "c1", make_bundle(args=["sleep", "30"]), stdout=subprocess.DEVNULL)
    rt.ok("kill", "c1", "KILL")
    wait_status(rt, "c1", "stopped")
    fails(rt.cli("start", "c1"), "cannot start a container that has stopped")
    rt.ok("delete", "c1")


def test_concurrent_starts_exactly_one_wins(rt, make_bundle, tmp_path):
    """Two `start`s of one created container at once: one starts it, the other is refused."""
    out = tmp_path / "out"
    bundle = make_bundle(args=["sh", "-c", "echo started; sleep 30"])
    for i in range(3):
        cid = f"c{i}"
        with open(out, "w") as f:
            create(rt, cid, bundle, stdout=f)
        try:
            procs = [
                subprocess.Popen(
                    [OCIRUN, "--root", rt.root, "start", cid],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            results = [(p.wait(timeout=30), p.stderr.read()) for p in procs]
            for p in procs:
                p.stdout.close()
                p.stderr.close()
            codes = sorted(rc for rc, _ in results)
            assert codes[0] == 0 and codes[1] != 0, results
            loser = next(err for rc, err in results if rc != 0)
            assert "cannot start an already running container" in loser, loser
            assert "Traceback" not in loser
            assert wait_for_text(out, "started") == "started\n"
            assert rt.state(cid)["status"] == "running"
        finally:
            rt.cli("delete", "--force", cid)


def test_concurrent_creates_of_one_id_exactly_one_wins(rt, make_bundle):
    bundle = make_bundle(args=["sleep", "30"])
    errs = [tempfile.TemporaryFile("w+") for _ in range(2)]
    try:
        procs = [
            subprocess.Popen(
                [OCIRUN, "--root", rt.root, "create", "--bundle", bundle, "c1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=e,
            )
            for e in errs
        ]
        codes = [p.wait(timeout=30) for p in procs]
        texts = []
        for e in errs:
            e.seek(0)
            texts.append(e.read())
        assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, (codes, texts)
        loser = texts[codes.index(max(codes))]
        assert "container with id exists: c1" in loser, loser
        assert "Traceback" not in loser
        assert ids(rt) == ["c1"]
        assert rt.state("c1")["status"] == "created"
    finally:
        for e in errs:
            e.close()
        rt.cli("delete", "--force", "c1")


# --------------------------------------------------------------------------- kill


@pytest.mark.parametrize(
    "sig, trapped",
    [
        ([], "got-TERM"),  # default TERM
        (["TERM"], "got-TERM"),
        (["SIGTERM"], "got-TERM"),
        (["15"], "got-TERM"),
        (["term"], "got-TERM"),
        (["KILL"], None),
        (["SIGKILL"], None),
        (["9"], None),
    ],
    ids=["default", "TERM", "SIGTERM", "15", "lower", "KILL", "SIGKILL", "9"],
)
def test_kill_signal_reaches_process(rt, trapping, sig, trapped):
    """runtime.md kill: MUST send the specified signal to the container process."""
    out = trapping
    r = rt.cli("kill", "c1", *sig)
    assert r.returncode == 0, r.stderr
    wait_status(rt, "c1", "stopped")
    if trapped:
        assert wait_for_text(out, trapped) == f"ready\n{trapped}\n"
    else:
        assert out.read_text() == "ready\n"  # SIGKILL: no trap ran


def test_kill_term_stops_created_container(rt, make_bundle):
    create(rt, "c1", make_bundle(args=["sleep", "30"]), stdout=subprocess.DEVNULL)
    try:
        pid = rt.state("c1")["pid"]
        rt.ok("kill", "c1")
        wait_status(rt, "c1", "stopped", timeout=3)
        wait_gone(pid)
        fails(rt.cli("start", "c1"), "cannot start a container that has stopped")
    finally:
        rt.cli("delete", "--force", "c1")


def test_kill_non_fatal_signal_keeps_running(rt, trapping):
    out = trapping
    rt.ok("kill", "c1", "USR1")
    assert wait_for_text(out, "got-USR1") == "ready\ngot-USR1\n"
    assert rt.state("c1")["status"] == "running"


def test_kill_stopped_container_fails(rt, make_bundle):
    """runtime.md kill: MUST generate an error if the container is not created or running."""
    create(rt, "c1", make_bundle(args=["true"]), stdout=subprocess.DEVNULL)
    rt.ok("start", "c1")
    wait_status(rt, "c1", "stopped")
    fails(rt.cli("kill", "c1", "KILL"), "container not running")
    fails(rt.cli("kill", "c1"), "container not running")
    rt.ok("delete", "c1")


def _host_pidns_container(rt, make_bundle, cid: str) -> list[int]:
    """A running container without a pid namespace of its own, plus three processes exec'd
    into it: the pids of all four."""
    bundle = make_bundle(
        args=["sleep", "1000"],
        mutate=lambda c: c["linux"].update(
            namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
        ),
    )
    create(rt, cid, bundle, stdout=subprocess.DEVNULL)
    rt.ok("start", cid)
    init = rt.state(cid)["pid"]
    for _ in range(3):
        r = call(rt, "exec", "--detach", cid, "sleep", "1001", stdout=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
    pids = [init]
    deadline = time.monotonic() + 10
    while len(pids) < 4:
        assert time.monotonic() < deadline, pids
        pids = [init] + [
            int(p)
            for p in os.listdir("/proc")
            if p.isdigit() and _cmdline(int(p)) == b"sleep\x001001\x00"
        ]
        time.sleep(0.02)
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize("init_gone", [False, True], ids=["init alive", "init gone"])
def test_kill_KILL_without_own_pid_namespace_kills_every_process(rt, make_bundle, init_gone):
    """As runc (>= 1.2): without a pid namespace of its own, the init's death does not end
    the container's other processes, so `kill KILL` sends SIGKILL to every process in its
    cgroups, and does so (no error) when the init is already gone."""
    pids = _host_pidns_container(rt, make_bundle, "hp1")
    try:
        if init_gone:
            os.kill(pids[0], 9)
            wait_status(rt, "hp1", "stopped")
        rt.ok("kill", "hp1", "KILL")
        for pid in pids:
            wait_gone(pid)
        wait_status(rt, "hp1", "stopped")
        fails(rt.cli("kill", "hp1", "TERM"), "container not running")
    finally:
        rt.cli("delete", "--force", "hp1")


def test_kill_all_of_a_stopped_container_is_no_error(rt, make_bundle):
    """runc: `kill --all` of a stopped container succeeds, and still signals what the init
    left behind in its cgroups (without a pid namespace, the exec'd processes)."""
    pids = _host_pidns_container(rt, make_bundle, "hp2")
    try:
        os.kill(pids[0], 9)
        wait_status(rt, "hp2", "stopped")
        assert all(os.path.exists(f"/proc/{p}") for p in pids[1:])
        for args in (["kill", "--all", "hp2", "KILL"], ["kill", "-a", "hp2", "0"]):
            r = rt.cli(*args)
            assert (r.returncode, r.stderr) == (0, ""), (args, r.stderr)
        for pid in pids:
            wait_gone(pid)
    finally:
        rt.cli("delete", "--force", "hp2")


def test_kill_signal_0_checks_the_init_is_alive(rt, trapping):
    """As runc: `kill ID 0` sends nothing and succeeds while the init lives."""
    out = trapping
    rt.ok("kill", "c1", "0")
    assert rt.state("c1")["status"] == "running"
    rt.ok("kill", "c1", "KILL")
    wait_status(rt, "c1", "stopped")
    fails(rt.cli("kill", "c1", "0"), "container not running")
    assert out.read_text() == "ready\n"  # the trap saw no signal


@pytest.mark.parametrize("bad", ["NOPE", "SIGNOPE", "SIG0", "99999", "-"])
def test_kill_bad_signal_fails_and_sends_nothing(rt, trapping, bad):
    out = trapping
    r = rt.cli("kill", "c1", bad)
    fails(r, "invalid signal", bad)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    time.sleep(0.2)
    assert rt.state("c1")["status"] == "running"
    assert out.read_text() == "ready\n"


# --------------------------------------------------------------------------- delete


def test_delete_running_needs_force(rt, make_bundle):
    """runtime.md delete: attempting to delete a container that is not stopped MUST have no
    effect on the container and MUST generate an error."""
    create(rt, "c1", make_bundle(args=["sleep", "30"]), stdout=subprocess.DEVNULL)
    try:
        rt.ok("start", "c1")
        pid = rt.state("c1")["pid"]
        r = rt.cli("delete", "c1")
        fails(r, "cannot delete container c1 that is not stopped: running")
        st = rt.state("c1")
        assert st["status"] == "running" and st["pid"] == pid
        r = rt.cli("delete", "--force", "c1")
        assert r.returncode == 0, r.stderr
        assert_gone(rt, "c1")
        wait_gone(pid)
    finally:
        rt.cli("delete", "--force", "c1")


def test_delete_force_short_flag(rt, make_bundle):
    create(rt, "c1", make_bundle(args=["sleep", "30"]), stdout=subprocess.DEVNULL)
    rt.ok("start", "c1")
    pid = rt.state("c1")["pid"]
    rt.ok("delete", "-f", "c1")
    assert_gone(rt, "c1")
    wait_gone(pid)


def test_delete_force_nonexistent_is_ok(rt):
    r = rt.cli("delete", "--force", "nonexistent")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["delete", "nonexistent"],
        ["state", "nonexistent"],
        ["start", "nonexistent"],
        ["kill", "nonexistent"],
        ["kill", "nonexistent", "KILL"],
    ],
    ids=["delete", "state", "start", "kill", "kill-KILL"],
)
def test_nonexistent_container(rt, args):
    r = rt.cli(*args)
    fails(r, 'container "nonexistent" does not exist')
    assert r.stderr.strip() == 'container "nonexistent" does not exist'


# --------------------------------------------------------------------------- run


def test_run_exit_code_and_output(rt, make_bundle):
    r = rt.cli("run", "--bundle", make_bundle(args=["sh", "-c", "echo hello-out; exit 3"]), "r1")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "hello-out\n"
    assert "Traceback" not in r.stderr
    assert_gone(rt, "r1")


def test_run_exit_zero(rt, make_bundle):
    r = rt.cli("run", "--bundle", make_bundle(args=["sh", "-c", "echo hostname=$(hostname)"]), "r1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hostname=ocirun-demo\n"
    assert_gone(rt, "r1")


@pytest.mark.parametrize("signame, num", [("KILL", 9), ("TERM", 15)])
def test_run_self_signalled_is_128_plus_n(rt, make_bundle, signame, num):
    """Killed by signal N -> exit code 128+N. The process is pid 1 of its own pid namespace,
    which its own signals cannot kill: this container shares the host's pid namespace."""

    def no_pidns(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]

    bundle = make_bundle(
        args=["sh", "-c", f"echo before; kill -{signame} $$; echo after"], mutate=no_pidns
    )
    r = rt.cli("run", "--bundle", bundle, "r1")
    assert r.returncode == 128 + num, (r.returncode, r.stderr)
    assert r.stdout == "before\n"
    assert_gone(rt, "r1")


def test_run_killed_from_outside_is_137(rt, make_bundle):
    """`ocirun kill ID KILL` on a foreground `run`: run exits 128+9 and removes the container."""
    bundle = make_bundle(args=["sh", "-c", "echo up; sleep 30"])
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(
            [OCIRUN, "--root", rt.root, "run", "--bundle", bundle, "r1"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                out.seek(0)
                if "up" in out.read() or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert rt.state("r1")["status"] == "running"
            rt.ok("kill", "r1", "KILL")
            assert p.wait(timeout=10) == 137
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        err.seek(0)
        assert "Traceback" not in err.read()
    assert_gone(rt, "r1")


def test_run_keep_leaves_stopped(rt, make_bundle):
    bundle = make_bundle(args=["sh", "-c", "echo kept; exit 4"])
    r = rt.cli("run", "--keep", "--bundle", bundle, "r1")
    assert r.returncode == 4, r.stderr
    assert r.stdout == "kept\n"
    st = rt.state("r1")
    assert st["status"] == "stopped"
    assert ids(rt) == ["r1"]
    rt.ok("delete", "r1")
    assert_gone(rt, "r1")


def test_run_detach(rt, make_bundle, tmp_path):
    out = tmp_path / "out"
    with open(out, "w") as f:
        r = call(
            rt,
            "run",
            "--detach",
            "--bundle",
            make_bundle(args=["sh", "-c", "echo detached; sleep 30"]),
            "r1",
            stdout=f,
        )
    try:
        assert r.returncode == 0, r.stderr
        assert wait_for_text(out, "detached") == "detached\n"
        st = rt.state("r1")
        assert st["status"] == "running"
        assert os.path.isdir(f"/proc/{st['pid']}")
    finally:
        rt.cli("delete", "--force", "r1")
    assert_gone(rt, "r1")


# --------------------------------------------------------------------------- list


def test_list_formats(rt, make_bundle):
    b1, b2 = make_bundle(args=["sleep", "30"]), make_bundle(args=["sleep", "30"])
    create(rt, "bbb", b1, stdout=subprocess.DEVNULL)
    create(rt, "aaa", b2, stdout=subprocess.DEVNULL)
    try:
        rt.ok("start", "bbb")
        pids = {c: rt.state(c)["pid"] for c in ("aaa", "bbb")}

        table = rt.ok("list").stdout.splitlines()
        assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        rows = {line.split()[0]: line.split() for line in table[1:]}
        assert set(rows) == {"aaa", "bbb"}
        assert rows["aaa"][1:4] == [str(pids["aaa"]), "created", b2]
        assert rows["bbb"][1:4] == [str(pids["bbb"]), "running", b1]
        parse_rfc3339(rows["aaa"][4])

        js = json.loads(rt.ok("list", "--format", "json").stdout)
        assert isinstance(js, list)
        by_id = {s["id"]: s for s in js}
        assert set(by_id) == {"aaa", "bbb"}
        assert by_id["aaa"]["status"] == "created" and by_id["bbb"]["status"] == "running"
        assert by_id["aaa"]["pid"] == pids["aaa"] and by_id["bbb"]["bundle"] == b1

        assert rt.ok("list", "-q").stdout == "aaa\nbbb\n"
        assert rt.ok("list", "--quiet").stdout == "aaa\nbbb\n"
    finally:
        rt.cli("delete", "--force", "aaa")
        rt.cli("delete", "--force", "bbb")
    assert rt.ok("list", "-q").stdout == ""
    assert rt.ok("list", "--format", "json").stdout.strip() == "[]"


def test_list_names_owner(rt, make_bundle):
    create(rt, "c1", make_bundle(args=["sleep", "30"]), stdout=subprocess.DEVNULL)
    try:
        row = rt.ok("list").stdout.splitlines()[1].split()
        assert len(row) == 6 and row[5] == "root", row
        assert json.loads(rt.ok("list", "--format", "json").stdout)[0]["owner"] == "root"
    finally:
        rt.cli("delete", "--force", "c1")


def test_list_empty_root(rt):
    """No container ever made (the root dir does not even exist)."""
    r = rt.ok("list")
    assert r.stdout.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert json.loads(rt.ok("list", "--format", "json").stdout) == []


def test_stale_state_dirs_never_crash(rt, make_bundle):
    """A half-written container dir (garbage state.json, or none at all, as a create killed
    mid-way leaves) must not break list/state for the others."""
    create(rt, "good", make_bundle(args=["sleep", "30"]), stdout=subprocess.DEVNULL)
    garbage, empty = Path(rt.root, "garbage"), Path(rt.root, "empty")
    garbage.mkdir()
    (garbage / "state.json").write_text('{"id": "garbage", "pid": ')
    empty.mkdir()
    try:
        for args in (["list"], ["list", "--format", "json"], ["list", "-q"]):
            r = rt.cli(*args)
            assert r.returncode == 0, r.stderr
            assert "Traceback" not in r.stderr
            assert "good" in r.stdout
        assert "good" in [s["id"] for s in json.loads(rt.ok("list", "--format", "json").stdout)]
        for cid in ("garbage", "empty"):
            r = rt.cli("state", cid)
            assert "Traceback" not in r.stderr
            if r.returncode == 0:
                st = json.loads(r.stdout)
                assert st["id"] == cid and st["status"] in ("creating", "stopped")
            else:
                assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert rt.state("good")["status"] == "created"
        for cid in ("garbage", "empty"):
            r = rt.cli("delete", "--force", cid)
            assert "Traceback" not in r.stderr
    finally:
        shutil.rmtree(garbage, ignore_errors=True)
        shutil.rmtree(empty, ignore_errors=True)
        rt.cli("delete", "--force", "good")


# --------------------------------------------------------------------------- failures in create


@pytest.mark.parametrize("cmd", ["create", "run"])
@pytest.mark.parametrize(
    "args, needles",
    [
        (["/nonexistent"], ["/nonexistent", "no such file or directory"]),
        (["nosuchcmd"], ["nosuchcmd", "executable file not found in $PATH"]),
        (["/etc/passwd"], ["/etc/passwd", "permission denied"]),
        (["/etc"], ["/etc", "permission denied"]),
    ],
    ids=["absent-path", "absent-in-PATH", "not-executable", "directory"],
)
def test_missing_entrypoint(rt, make_bundle, cmd, args, needles):
    """runc's wording (engines map it to 126/127); no container is left."""
    r = call(rt, cmd, "--bundle", make_bundle(args=args), "c1")
    fails(r, *needles)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""
    assert ids(rt) == []
    assert not os.path.exists(os.path.join(rt.root, "c1"))


def test_failing_mount_names_syscall_path_and_errno(rt, make_bundle, tmp_path):
    missing = str(tmp_path / "no-such-src")

    def mutate(cfg):
        cfg["mounts"].append(
            {
                "destination": "/dev/bind-target",
                "type": "bind",
                "source": missing,
                "options": ["rbind"],
            }
        )

    r = call(rt, "create", "--bundle", make_bundle(args=["true"], mutate=mutate), "c1")
    fails(r, "mount", missing, "No such file or directory")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ids(rt) == []
    assert not os.path.exists(os.path.join(rt.root, "c1"))


def test_failing_namespace_join_names_path(rt, make_bundle):
    path = "/proc/999999999/ns/net"

    def mutate(cfg):
        cfg["linux"]["namespaces"][1] = {"type": "network", "path": path}

    r = call(rt, "create", "--bundle", make_bundle(args=["true"], mutate=mutate), "c1")
    fails(r, path, "No such file or directory")
    assert ids(rt) == []
