"""The C front door (csrc/launcher, docs/fastpath.md) against Python, on real containers.

Every answer the front door gives itself (state, start, kill, delete, list) is compared with
Python's for the same call (OCIRUN_NO_FASTPATH=1 sends a call to Python): stdout, stderr,
exit code and the --log line. A doctored record shows which side answered: the front door
serves a current record, and hands the call to Python when the record is stale, damaged or
absent.
"""

import fcntl
import json
import os
import random
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from testenv import OCIRUN

PY = {"OCIRUN_NO_FASTPATH": "1"}


def both(rt, *args, cwd=None, global_args=()):
    """(front door, Python) results of the same call."""
    fast = rt.cli(*args, cwd=cwd, global_args=global_args)
    py = rt.cli(*args, cwd=cwd, global_args=global_args, env=dict(os.environ, **PY))
    return fast, py


def same(rt, *args, **kw):
    fast, py = both(rt, *args, **kw)
    assert (fast.returncode, fast.stdout, fast.stderr) == (py.returncode, py.stdout, py.stderr)
    return fast


def create(rt, bundle, cid) -> None:
    """create with the init's stdio away from pipes (it holds them until it exits)."""
    with tempfile.TemporaryFile() as err:
        r = subprocess.run(
            [OCIRUN, "--root", rt.root, "create", "--bundle", bundle, cid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=30,
        )
        err.seek(0)
        assert r.returncode == 0, err.read()


def wait_stopped(rt, cid) -> None:
    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} still running"
        time.sleep(0.02)


def record(rt, cid) -> Path:
    return Path(rt.root) / cid / "lifecycle.rec"


ANNOTATIONS = {"org.example/x": "v", "ünï": "汉字 😀", 'quote"back\\slash': "a,b: {c}", "empty": ""}


def test_state_and_list_match_python_in_every_status(rt, make_bundle):
    bundle = make_bundle(args=["sleep", "30"], mutate=lambda c: c.update(annotations=ANNOTATIONS))
    create(rt, bundle, "fd1")
    create(rt, make_bundle(args=["true"]), "fd2")
    assert record(rt, "fd1").is_file()
    for step in ("created", "running", "paused", "resumed", "stopped"):
        if step == "running":
            rt.ok("start", "fd1")
        elif step == "paused":
            rt.ok("pause", "fd1")
        elif step == "resumed":
            rt.ok("resume", "fd1")
        elif step == "stopped":
            rt.ok("kill", "fd1", "KILL")
            wait_stopped(rt, "fd1")
        out = same(rt, "state", "fd1")
        assert out.returncode == 0 and json.loads(out.stdout)["annotations"] == ANNOTATIONS
        for args in (
            ("list",),
            ("list", "--format", "json"),
            ("list", "-q"),
            ("-root", rt.root, "list", "-f=json"),
        ):
            assert same(rt, *args).returncode == 0
    rt.ok("delete", "fd1")
    rt.ok("delete", "--force", "fd2")


def test_list_json_is_compact_as_runc_prints_it(rt, make_bundle):
    """runc prints `list --format json` as Go's json.Marshal does: no space after a
    separator (runc's own bats suite matches `"id":"x","pid":N` byte for byte); the
    annotations are printed the same way, their strings untouched."""
    bundle = make_bundle(args=["sleep", "30"], mutate=lambda c: c.update(annotations=ANNOTATIONS))
    create(rt, bundle, "fd4")
    create(rt, make_bundle(args=["sleep", "30"]), "fd5")
    try:
        out = same(rt, "list", "--format", "json").stdout
        states = json.loads(out)
        assert [s["id"] for s in states] == ["fd4", "fd5"]
        assert states[0]["annotations"] == ANNOTATIONS
        assert out == json.dumps(states, separators=(",", ":")) + "\n"
        assert out.startswith('[{"ociVersion":"')
        assert '"id":"fd4","pid":' in out and '},{"ociVersion":' in out
    finally:
        rt.ok("delete", "--force", "fd4")
        rt.ok("delete", "--force", "fd5")


def test_the_front_door_serves_a_current_record_python_a_stale_or_damaged_one(rt, make_bundle):
    create(rt, make_bundle(args=["sleep", "30"]), "fd3")
    rec = record(rt, "fd3")
    real = rt.state("fd3")["bundle"]
    rec.write_text(rec.read_text().replace(f"bundle={real}\n", "bundle=/doctored\n"))
    state_json = Path(rt.root) / "fd3" / "state.json"
    st = os.stat(state_json)
    os.utime(rec)  # the record's own mtime does not matter; state.json's does
    assert rt.state("fd3")["bundle"] == "/doctored"  # the front door answered
    os.utime(state_json, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # state.json rewritten
    assert rt.state("fd3")["bundle"] == real  # Python read state.json
    os.utime(state_json, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert rt.state("fd3")["bundle"] == "/doctored"
    for damage in ("", "ocirun-record 2\n", rec.read_text()[:-4], "garbage\0\n" * 100):
        rec.write_text(damage)
        assert rt.state("fd3")["bundle"] == real, damage
    rec.unlink()  # an older ocirun's container
    assert rt.state("fd3")["bundle"] == real
    assert same(rt, "list").returncode == 0
    rt.ok("start", "fd3")
    rt.ok("delete", "--force", "fd3")
    assert not (Path(rt.root) / "fd3").exists()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_errors_and_log_lines_match_python(rt, make_bundle, tmp_path, fmt):
    create(rt, make_bundle(args=["sleep", "30"]), "fd4")
    create(rt, make_bundle(args=["true"]), "fd5")
    rt.ok("start", "fd5")
    wait_stopped(rt, "fd5")
    calls = [
        ("state", "nope"),
        ("start", "nope"),
        ("kill", "nope"),
        ("delete", "nope"),
        ("delete", "fd4"),
        ("start", "fd5"),
        ("kill", "fd5"),
        ("kill", "fd5", "0"),
        ("delete", "--force", "nope"),
        ("kill", "fd4", "NOSUCH"),
        ("state", "../x"),
        ("list", "--format", "yaml"),
    ]
    for call in calls:
        logs = []
        for env in ({}, PY):
            log = tmp_path / f"log-{len(logs)}"
            r = rt.cli(
                *call,
                global_args=("--log", str(log), "--log-format", fmt),
                env=dict(os.environ, **env),
            )
            text = log.read_text() if log.exists() else ""
            logs.append(
                (r.returncode, r.stdout, r.stderr, re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "T", text))
            )
            log.unlink(missing_ok=True)
        assert logs[0] == logs[1], call
    rt.ok("start", "fd4")
    assert same(rt, "start", "fd4").returncode == 1  # already running
    rt.ok("delete", "--force", "fd4")
    rt.ok("delete", "fd5")


def test_start_reports_the_inits_failure_as_python_does(rt, make_bundle):
    # A startContainer hook runs in the init after start released it: its failure comes
    # back through exec.result.
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "echo bad; exit 3"]}
    bundle = make_bundle(args=["true"], mutate=lambda c: c.update(hooks={"startContainer": [hook]}))
    results = []
    for cid, env in (("fd6", {}), ("fd7", PY)):
        create(rt, bundle, cid)
        results.append(rt.cli("start", cid, env=dict(os.environ, **env)))
    fast, py = results
    assert fast.returncode == py.returncode == 1
    assert fast.stderr == py.stderr and "startContainer" in fast.stderr, fast.stderr
    for cid in ("fd6", "fd7"):
        rt.ok("delete", "--force", cid)


def test_kill_signals_through_the_front_door(rt, make_bundle):
    # The container's shell traps USR1 and exits 42 on it: the signal arrived.
    bundle = make_bundle(args=["sh", "-c", "trap 'exit 42' USR1; while :; do sleep 0.05; done"])
    create(rt, bundle, "fd8")
    rt.ok("start", "fd8")
    pid = rt.state("fd8")["pid"]
    time.sleep(0.2)
    assert rt.ok("kill", "fd8", "sigusr1").stderr == ""
    wait_stopped(rt, "fd8")
    assert rt.state("fd8")["status"] == "stopped"
    assert pid > 0
    rt.ok("delete", "fd8")


def test_delete_removes_cgroups_and_state_dir(rt, make_bundle):
    create(rt, make_bundle(args=["true"]), "fd9")
    rec = record(rt, "fd9").read_text()
    dirs = [line.split("=", 1)[1] for line in rec.splitlines() if line.startswith("rmdir=")]
    assert dirs and all(os.path.isdir(d) for d in dirs)
    rt.ok("start", "fd9")
    wait_stopped(rt, "fd9")
    rt.ok("delete", "fd9")
    assert not any(os.path.exists(d) for d in dirs)
    assert not (Path(rt.root) / "fd9").exists()


TOKENS = [
    "state",
    "start",
    "kill",
    "delete",
    "list",
    "exec",
    "--root",
    "-root",
    "--log-format",
    "json",
    "text",
    "--systemd-cgroup",
    "--systemd-cgroup=false",
    "--systemd-cgroup=x",
    "--criu",
    "x",
    "--rootless=auto",
    "-f",
    "--force",
    "--force=0",
    "-a",
    "--all=false",
    "--format",
    "table",
    "-q",
    "--quiet=T",
    "--",
    "-",
    "=",
    "--=",
    "nope",
    "TERM",
    "9",
    "SIGKILL",
    "rtmin+1",
    "99",
    "",
    "a/b",
    ".",
    "..",
    "-x",
    "--help",
    "-v",
    "---force",
]


HOSTILE = [
    ["state", "x" * 5000],
    ["--root", "/" + "a" * 5000, "state", "x"],
    ["--root", "/" + "a/" * 3000, "list"],
    ["state", "a\nb"],
    ["state", "caf\xe9"],
    ["kill", "x", "9" * 30],
    ["kill", "x", "sig" + "x" * 100],
    ["--log", "/nonexistent/dir/log", "--log-format", "json", "state", "nope"],
    ["--log", "/nonexistent/dir/log", "delete", "nope"],
    ["--root", "/proc/self/fd/0", "list"],
    ["--root", "/dev/null", "state", "x"],
    ["--root", "relative/../.", "delete", "-f", "x"],
    ["-root=", "list", "-quiet"],
    ["--systemd-cgroup=maybe", "state", "x"],
    ["state", "x", "y"],
    ["list", "extra"],
]


def test_hostile_command_lines_get_pythons_answers(rt, tmp_path):
    for args in HOSTILE:
        fast, py = both(rt, *args, cwd=str(tmp_path))
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            py.returncode,
            py.stdout,
            py.stderr,
        ), args
        assert fast.returncode < 128, args  # not killed by a signal


def test_random_command_lines_get_pythons_answers(rt, tmp_path):
    """Command lines the front door parses (or hands over) answer as Python's do."""
    rng = random.Random(16)
    for _ in range(120):
        args = [rng.choice(TOKENS) for _ in range(rng.randint(0, 5))]
        fast, py = both(rt, *args, cwd=str(tmp_path))
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            py.returncode,
            py.stdout,
            py.stderr,
        ), args


def test_the_command_is_the_front_door():
    with open(OCIRUN, "rb") as f:
        assert f.read(4) == b"\x7fELF"


def test_the_front_door_waits_for_the_containers_lock(rt, make_bundle):
    """state.py's lock protocol: flock on the container's dir, held by Python commands."""
    create(rt, make_bundle(args=["true"]), "fd10")
    rt.ok("start", "fd10")
    wait_stopped(rt, "fd10")
    path = Path(rt.root) / "fd10"
    # one command at a time: state and delete released together race each other
    for args in (("state", "fd10"), ("delete", "fd10")):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            proc = subprocess.Popen([OCIRUN, "--root", rt.root, *args], stdout=subprocess.DEVNULL)
            time.sleep(0.3)
            assert proc.poll() is None and path.exists(), args
        finally:
            os.close(fd)  # releases the lock
        assert proc.wait(10) == 0, args
    assert not path.exists()


def test_list_skips_a_container_being_created_as_python_does(rt, make_bundle):
    create(rt, make_bundle(args=["sleep", "30"]), "fd11")
    (Path(rt.root) / "fd12").mkdir(mode=0o700)  # a create between mkdir and state.json
    (Path(rt.root) / ".hidden").mkdir()
    try:
        for args in (("list",), ("list", "-f", "json"), ("list", "-q")):
            assert "fd12" not in same(rt, *args).stdout
    finally:
        os.rmdir(Path(rt.root) / "fd12")
        os.rmdir(Path(rt.root) / ".hidden")
        rt.ok("delete", "--force", "fd11")


def test_without_root_a_non_root_caller_gets_its_xdg_root(rt, make_bundle):
    """No --root: runc's rule picks $XDG_RUNTIME_DIR/ocirun for a non-root caller
    (rootless.default_root); the front door must not look in /run/ocirun instead."""
    top = Path(tempfile.mkdtemp(prefix="ocirun-fd-xdg-"))  # nobody must reach it
    xdg = top / "xdg"
    root = xdg / "ocirun"
    root.mkdir(parents=True)
    for d in (top, xdg, root):
        d.chmod(0o755)
    subprocess.run(
        [
            OCIRUN,
            "--root",
            str(root),
            "create",
            "--bundle",
            make_bundle(args=["sleep", "30"]),
            "fdx",
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
    )
    try:
        (root / "fdx").chmod(0o755)
        for f in (root / "fdx").iterdir():
            f.chmod(f.stat().st_mode | 0o444)
        r = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "env",
                f"XDG_RUNTIME_DIR={xdg}",
                OCIRUN,
                "state",
                "fdx",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["id"] == "fdx"
    finally:
        subprocess.run(
            [OCIRUN, "--root", str(root), "delete", "--force", "fdx"],
            capture_output=True,
            timeout=30,
        )
        subprocess.run(["rm", "-rf", str(top)])


@pytest.fixture
def lonely(tmp_path):
    """A copy of the front door without a Python beside it: a call it would hand over fails
    (`exec .../python3: No such file or directory`), so a success was served in C."""
    (tmp_path / "v" / "bin").mkdir(parents=True)
    door = tmp_path / "v" / "bin" / "ocirun"
    door.write_bytes(Path(OCIRUN).read_bytes())
    door.chmod(0o755)

    def run(rt, *args, env=None):
        return subprocess.run(
            [str(door), "--root", rt.root, *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )

    return run


def cgroup_dirs(rt, cid) -> list[str]:
    rec = record(rt, cid).read_text().splitlines()
    return [line.split("=", 1)[1] for line in rec if line.startswith("cgroup=")]


def procs(dirs) -> set[int]:
    out = set()
    for d in dirs:
        try:
            out |= {int(p) for p in Path(d, "cgroup.procs").read_text().split()}
        except FileNotFoundError:
            pass
    return out


def test_a_handover_is_visible_to_the_lonely_front_door(rt, lonely):
    r = lonely(rt, "spec")
    assert r.returncode == 127 and "python3" in r.stderr


def test_kill_all_signals_every_process_in_the_cgroups(rt, make_bundle, lonely):
    # a second process beside the init: --all reaches it through cgroup.procs
    bundle = make_bundle(args=["sh", "-c", "sleep 1000 & while :; do sleep 0.05; done"])
    create(rt, bundle, "fd20")
    rt.ok("start", "fd20")
    dirs = cgroup_dirs(rt, "fd20")
    assert dirs, "a cgroupfs v1/hybrid container records its dirs"
    deadline = time.monotonic() + 10
    while len(procs(dirs)) < 3:  # sh, its sleep 0.05, sleep 1000
        assert time.monotonic() < deadline
        time.sleep(0.02)
    r = lonely(rt, "kill", "--all", "fd20", "KILL")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    wait_stopped(rt, "fd20")
    deadline = time.monotonic() + 10
    while procs(dirs):
        assert time.monotonic() < deadline, procs(dirs)
        time.sleep(0.02)
    freezer = [d for d in dirs if "/freezer/" in d]
    if freezer:
        assert Path(freezer[0], "freezer.state").read_text().strip() == "THAWED"
    # a stopped container: no error (runc), from either side
    fast, py = both(rt, "kill", "--all", "fd20", "KILL")
    assert (fast.returncode, fast.stderr) == (py.returncode, py.stderr) == (0, "")
    assert lonely(rt, "kill", "-a", "fd20").stderr == ""
    rt.ok("delete", "fd20")


@pytest.mark.parametrize("started", [False, True], ids=["created", "running"])
def test_delete_force_of_a_live_container_in_the_front_door(rt, make_bundle, lonely, started):
    cid = f"fd21{'r' if started else 'c'}"
    create(rt, make_bundle(args=["sh", "-c", "sleep 1000 & sleep 1000"]), cid)
    if started:
        rt.ok("start", cid)
    pid = rt.state(cid)["pid"]
    dirs = cgroup_dirs(rt, cid)
    rmdirs = [
        line.split("=", 1)[1]
        for line in record(rt, cid).read_text().splitlines()
        if line.startswith("rmdir=")
    ]
    assert dirs and rmdirs
    r = lonely(rt, "delete", cid)
    assert r.returncode == 1
    status = "running" if started else "created"
    assert r.stderr == f"cannot delete container {cid} that is not stopped: {status}\n"
    r = lonely(rt, "delete", "--force", cid)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert not (Path(rt.root) / cid).exists()
    assert not any(os.path.exists(d) for d in rmdirs)
    assert (
        not os.path.exists(f"/proc/{pid}")
        or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    )


def test_a_paused_container_goes_to_python(rt, make_bundle, lonely):
    create(rt, make_bundle(args=["sleep", "1000"]), "fd22")
    rt.ok("start", "fd22")
    rt.ok("pause", "fd22")
    try:
        for args in (("kill", "--all", "fd22", "KILL"), ("delete", "--force", "fd22")):
            r = lonely(rt, *args)
            assert r.returncode == 127 and "python3" in r.stderr, args
        assert rt.state("fd22")["status"] == "paused"
        # with --debug, the hand-over leaves only Python's phase lines, no start-up of ours
        r = rt.cli("delete", "--force", "fd22", global_args=("--debug",))
        assert r.returncode == 0, r.stderr
        names = phases(r.stderr)
        assert names[0] == "interpreter start-up + imports (CPU)"
        assert "front door start-up (CPU)" not in names
    finally:
        rt.ok("delete", "--force", "fd22")
    assert not (Path(rt.root) / "fd22").exists()


PHASE = re.compile(r"phase ([^:]*): [0-9.]+ ms")


def phases(text: str) -> list[str]:
    return PHASE.findall(text)


@pytest.mark.parametrize("fmt", ["stderr", "text", "json"])
def test_debug_phases_as_python_writes_them(rt, make_bundle, lonely, tmp_path, fmt):
    log_args = () if fmt == "stderr" else ("--log", str(tmp_path / "log"), "--log-format", fmt)
    seen = {}
    for side in ("fast", "python"):
        cid = f"fd23{side[0]}"
        log = tmp_path / "log"
        log.unlink(missing_ok=True)
        create(rt, make_bundle(args=["true"]), cid)
        out = ""
        for cmd in ("start", "delete"):
            if cmd == "delete":
                wait_stopped(rt, cid)
            if side == "fast":
                r = lonely(rt, *log_args, "--debug", cmd, cid)
            else:
                r = rt.cli(cmd, cid, global_args=(*log_args, "--debug"), env=dict(os.environ, **PY))
            assert r.returncode == 0, r.stderr
            out += r.stderr
        if fmt == "stderr":
            lines = out.splitlines()
            assert all(line.startswith("DEBU phase ") for line in lines), lines
        else:
            assert out == ""
            lines = log.read_text().splitlines()
            for line in lines:
                if fmt == "json":
                    entry = json.loads(line)
                    assert entry["level"] == "debug" and set(entry) == {"level", "msg", "time"}
                else:
                    assert re.fullmatch(r'time="[^"]+" level=debug msg="phase [^"]+"', line), line
        seen[side] = phases("\n".join(lines))
    # each command's first mark: what ran before its work (the program's start)
    fast = ["start-up" if p == "front door start-up (CPU)" else p for p in seen["fast"]]
    py = ["start-up" if p == "interpreter start-up + imports (CPU)" else p for p in seen["python"]]
    assert fast == py
    assert fast[:3] == ["start-up", "lock + state", "release (exec.fifo)"]


def test_debug_lines_of_errors_and_no_ops_as_python_writes_them(rt, lonely):
    """Python's start and delete begin their clock before the container is looked up: a
    missing container still gets the start-up line (and then the error); state writes none."""

    def lines(text):
        text = re.sub(r"[0-9.]+ ms", "", text)
        return ["DEBU start-up" if "start-up" in x else x for x in text.splitlines()]

    for args in (("start", "nope"), ("delete", "nope"), ("delete", "-f", "nope"), ("state", "x")):
        fast = lonely(rt, "--debug", *args)
        py = rt.cli(*args, global_args=("--debug",), env=dict(os.environ, **PY))
        assert fast.returncode == py.returncode, args
        assert lines(fast.stderr) == lines(py.stderr), (args, fast.stderr, py.stderr)
