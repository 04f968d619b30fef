"""OSErrors a user can provoke on the paths of commands.py, state.py and log.py: each must
end in one clean line on stderr (no traceback) and the right exit code, and leave nothing.

Covers: a --root that is a file, lies under a file, or may not be entered; a state dir or
state.json we may not read (another user's container); a --pid-file that cannot be written;
a --log that cannot be written; a stray entry in a state dir; a relative --root in a deleted
cwd; the text log's quoting. The permission cases run ocirun as `nobody`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from testenv import OCIRUN

NOBODY = 65534


def ocirun(*args, root=None, user=None, cwd=None, timeout=30) -> subprocess.CompletedProcess:
    """ocirun with stdout/stderr in files (a created container keeps pipes open)."""
    cmd = [OCIRUN, *(["--root", str(root)] if root is not None else []), *map(str, args)]
    kw = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, timeout=timeout, **kw
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, p.returncode, out.read(), err.read())


def one_line_error(r: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == code, f"rc {r.returncode}: {r.stdout}{r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def failure_code(argv: list[str]) -> int:
    """runc's exit code for a failed command: 255 for exec (so that it can't be taken for
    the process's own exit status), 1 for the others."""
    return 255 if argv[0] == "exec" else 1


@pytest.fixture
def shared(tmp_path):
    """A directory `nobody` may traverse (pytest's tmp_path is 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="ocirun-cli-errors-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def shared_bundle(shared, make_bundle):
    """A bundle `nobody` can read (its rootfs is the shared busybox one), with the user
    namespace a non-root caller needs (runc refuses a rootless config without one before
    it touches the root)."""

    def userns(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": NOBODY, "size": 1}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": NOBODY, "size": 1}]
        for m in cfg["mounts"]:  # as `runc spec --rootless`: no gid= the mapping lacks
            m["options"] = [o for o in m.get("options", []) if not o.startswith("gid=")]

    src = Path(make_bundle(args=["true"], mutate=userns))
    dst = shared / "bundle"
    dst.mkdir(mode=0o755)
    shutil.copy(src / "config.json", dst / "config.json")
    (dst / "config.json").chmod(0o644)
    return dst


# --------------------------------------------------------------------------- --root


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["list", "-q"],
        ["list", "--format", "json"],
        ["create", "--bundle", "B", "x"],
        ["run", "--bundle", "B", "x"],
    ],
    ids=lambda a: " ".join(a),
)
def test_root_under_a_regular_file(make_bundle, tmp_path, argv):
    """--root /file/sub: ENOTDIR from every step that would make or read it."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = [make_bundle(args=["true"]) if a == "B" else a for a in argv]
    r = ocirun(*argv, root=blocker / "sub")
    one_line_error(r, f"root {blocker / 'sub'}", "Not a directory")
    assert blocker.read_text() == "x"


def test_root_is_a_file_names_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(ocirun("list", root=blocker), f"root {blocker}: Not a directory")


@pytest.mark.parametrize(
    "argv",
    [
        ["state", "x"],
        ["kill", "x"],
        ["kill", "x", "KILL"],
        ["start", "x"],
        ["delete", "x"],
        ["exec", "x", "true"],
    ],
    ids=lambda a: " ".join(a),
)
def test_id_under_a_root_that_is_a_file(tmp_path, argv):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(
        ocirun(*argv, root=blocker), 'container "x" does not exist', code=failure_code(argv)
    )


def test_delete_force_under_a_root_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = ocirun("delete", "--force", "x", root=blocker)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_relative_root_in_a_deleted_cwd(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    # The child starts in `gone`, which is removed before ocirun resolves --root.
    r = subprocess.run(
        ["sh", "-c", f'rmdir "{gone}" && exec "$@"', "sh", OCIRUN, "--root", "relative", "list"],
        cwd=str(gone),
        capture_output=True,
        text=True,
        timeout=30,
    )
    one_line_error(r, "root relative")


# --------------------------------------------------------------------------- permissions


@pytest.fixture
def private_root(shared):
    """A root dir, 0700 root: nobody may not list or enter it."""
    root = shared / "root"
    root.mkdir(mode=0o700)
    (root / "c1").mkdir(mode=0o700)
    (root / "c1" / "state.json").write_text('{"id": "c1", "pid": 0}')
    return root


@pytest.mark.parametrize(
    "argv", [["list"], ["list", "-q"], ["list", "--format", "json"]], ids=lambda a: " ".join(a)
)
def test_list_root_without_permission(private_root, argv):
    one_line_error(
        ocirun(*argv, root=private_root, user=NOBODY), f"root {private_root}: Permission denied"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["state", "c1"],
        ["kill", "c1"],
        ["delete", "c1"],
        ["delete", "--force", "c1"],
        ["start", "c1"],
        ["exec", "c1", "true"],
    ],
    ids=lambda a: " ".join(a),
)
def test_container_without_permission(private_root, argv):
    r = ocirun(*argv, root=private_root, user=NOBODY)
    one_line_error(r, "c1", "Permission denied", code=failure_code(argv))
    assert (private_root / "c1" / "state.json").exists()


def test_create_in_root_without_permission(private_root, shared_bundle):
    r = ocirun("create", "--bundle", shared_bundle, "c2", root=private_root, user=NOBODY)
    one_line_error(r, str(private_root / "c2"), "Permission denied")
    assert sorted(os.listdir(private_root)) == ["c1"]


def test_create_root_in_unwritable_parent(private_root, shared_bundle):
    root = private_root / "sub" / "root"
    r = ocirun("create", "--bundle", shared_bundle, "c2", root=root, user=NOBODY)
    one_line_error(r, f"root {root}: Permission denied")


def test_list_skips_an_unreadable_container_with_a_warning(shared):
    """runc: `load container ID: ...` on stderr, the others listed, exit 0."""
    root = shared / "root"
    root.mkdir(mode=0o755)
    for cid, mode in (("mine", 0o755), ("theirs", 0o700)):
        (root / cid).mkdir(mode=mode)
        (root / cid / "state.json").write_text(json.dumps({"id": cid, "pid": 0}))
        (root / cid / "state.json").chmod(0o644)
    os.chown(root / "mine", NOBODY, NOBODY)
    r = ocirun("list", "--format", "json", root=root, user=NOBODY)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == "load container theirs: Permission denied"
    states = json.loads(r.stdout)
    assert [(s["id"], s["status"], s["owner"]) for s in states] == [("mine", "stopped", "nobody")]


def test_list_owner_without_a_name(tmp_path):
    """An owner uid with no passwd entry is listed as runc does: #uid."""
    root = tmp_path / "root"
    (root / "c1").mkdir(parents=True)
    (root / "c1" / "state.json").write_text('{"id": "c1", "pid": 0}')
    os.chown(root / "c1", 54321, 54321)
    r = ocirun("list", "--format", "json", root=root)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["owner"] == "#54321"
    r = ocirun("state", "c1", root=root)
    assert r.returncode == 0 and json.loads(r.stdout)["owner"] == "", r.stderr


# --------------------------------------------------------------------------- state dir


def test_delete_with_a_stray_directory_in_the_state_dir(rt):
    """The state dir is flat: something else in it is reported, not a traceback."""
    cdir = Path(rt.root, "c1")
    (cdir / "stray").mkdir(parents=True)
    (cdir / "state.json").write_text('{"id": "c1", "pid": 0}')
    try:
        one_line_error(rt.cli("delete", "c1"), str(cdir / "stray"))
    finally:
        (cdir / "stray").rmdir()
    assert rt.cli("delete", "c1").returncode == 0
    assert not cdir.exists()


def test_exec_without_the_saved_config(rt, make_bundle):
    """The state dir lost config.json (a hand-made or damaged one): exec says so."""
    r = ocirun("create", "--bundle", make_bundle(args=["sleep", "30"]), "c1", root=rt.root)
    assert r.returncode == 0, r.stderr
    try:
        os.unlink(Path(rt.root, "c1", "config.json"))
        r = rt.cli("exec", "c1", "true")
        one_line_error(r, "config.json", "No such file or directory", code=255)
        Path(rt.root, "c1", "config.json").write_text("[1")
        one_line_error(rt.cli("exec", "c1", "true"), "config.json", "invalid JSON", code=255)
    finally:
        rt.cli("delete", "--force", "c1")


# --------------------------------------------------------------------------- --pid-file


def test_pid_file_in_missing_dir(rt, make_bundle, tmp_path):
    pid_file = tmp_path / "no" / "init.pid"
    r = ocirun(
        "create",
        "--bundle",
        make_bundle(args=["sleep", "30"]),
        "--pid-file",
        pid_file,
        "c1",
        root=rt.root,
    )
    assert one_line_error(r) == f"write pid file {pid_file}: No such file or directory"
    assert rt.ok("list", "-q").stdout == ""


def test_pid_file_is_a_directory(rt, make_bundle, tmp_path):
    """rename over a directory fails: rolled back, and no temporary left beside it."""
    target = tmp_path / "pid"
    target.mkdir()
    r = ocirun(
        "create",
        "--bundle",
        make_bundle(args=["sleep", "30"]),
        "--pid-file",
        target,
        "c1",
        root=rt.root,
    )
    one_line_error(r, f"write pid file {target}: Is a directory")
    assert rt.ok("list", "-q").stdout == ""
    assert not [e for e in os.listdir(tmp_path) if ".tmp" in e], os.listdir(tmp_path)


def test_pid_file_in_missing_dir_for_run(rt, make_bundle, tmp_path):
    pid_file = tmp_path / "no" / "init.pid"
    r = ocirun(
        "run", "--bundle", make_bundle(args=["true"]), "--pid-file", pid_file, "c1", root=rt.root
    )
    one_line_error(r, f"write pid file {pid_file}")
    assert rt.ok("list", "-q").stdout == ""


# --------------------------------------------------------------------------- --log


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_in_missing_dir_still_reports_the_error(rt, tmp_path, fmt):
    log = tmp_path / "no" / "log"
    r = ocirun("--log", log, "--log-format", fmt, "state", "nope", root=rt.root)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [
        f"write log {log}: No such file or directory",
        'container "nope" does not exist',
    ], lines


def test_log_is_a_directory(rt, tmp_path):
    r = ocirun("--log", tmp_path, "state", "nope", root=rt.root)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == 'container "nope" does not exist'


def test_unwritable_log_does_not_fail_a_working_command(rt, make_bundle, tmp_path):
    """--debug writes on success too: a log that cannot be written must not fail create."""
    log = tmp_path / "no" / "log.json"
    r = ocirun(
        "--debug",
        "--log",
        log,
        "--log-format",
        "json",
        "create",
        "--bundle",
        make_bundle(args=["sleep", "30"]),
        "c1",
        root=rt.root,
    )
    try:
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.count("write log") == 1, r.stderr
        assert rt.state("c1")["status"] == "created"
    finally:
        rt.cli("delete", "--force", "c1")


@pytest.mark.parametrize(
    "name, quoted",
    [
        ('a"b', r'msg="bundle /nonexistent/a\"b: no such directory"'),
        ("a\\b", r'msg="bundle /nonexistent/a\\b: no such directory"'),
        ("a\nb", r'msg="bundle /nonexistent/a\nb: no such directory"'),
        ("a\tb\x01", r'msg="bundle /nonexistent/a\tb\x01: no such directory"'),
    ],
    ids=["quote", "backslash", "newline", "control"],
)
def test_text_log_escapes_msg(rt, tmp_path, name, quoted):
    """logrus's text format quotes values as Go's %q: one line per entry."""
    log = tmp_path / "log.txt"
    r = ocirun("--log", log, "create", "--bundle", "/nonexistent/" + name, "c1", root=rt.root)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and quoted in lines[0], lines


@pytest.mark.parametrize("cid", ["..", ".", "../x", "a b", "a\nb"])
@pytest.mark.parametrize(
    "cmd",
    [
        ["state"],
        ["start"],
        ["kill"],
        ["delete"],
        ["delete", "-f"],
        ["pause"],
        ["resume"],
        ["ps"],
        ["events", "--stats"],
        ["update", "--pids-limit", "10"],
        ["exec", "-t"],
    ],
)
def test_a_bad_id_is_refused_by_every_command(rt, cmd, cid):
    """As runc: `delete ../other-root/c1` once deleted a container outside --root."""
    r = ocirun(*cmd, cid, root=rt.root)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("invalid container id "), r.stderr


def test_delete_cannot_reach_a_container_of_another_root(rt, make_bundle, tmp_path):
    other = tmp_path / "other-root"
    r = ocirun("create", "--bundle", make_bundle(args=["sleep", "30"]), "c1", root=other)
    assert r.returncode == 0, r.stderr
    try:
        rel = "../" + other.name + "/c1"
        (tmp_path / "root-b").mkdir()
        r = ocirun("delete", "--force", rel, root=tmp_path / "root-b")
        assert r.returncode == 2 and "invalid container id" in r.stderr, r.stderr
        r = ocirun("state", "c1", root=other)
        assert r.returncode == 0 and '"created"' in r.stdout, r.stderr
    finally:
        ocirun("delete", "--force", "c1", root=other)


def test_exec_pid_file_in_missing_dir(rt, make_bundle, tmp_path):
    """exec --pid-file: the same clean error; the exec'd process does not stay behind."""
    r = ocirun("run", "--detach", "--bundle", make_bundle(args=["sleep", "30"]), "c1", root=rt.root)
    assert r.returncode == 0, r.stderr
    try:
        pid_file = tmp_path / "no" / "exec.pid"
        r = ocirun("exec", "--pid-file", pid_file, "c1", "sleep", "31", root=rt.root)
        assert (
            one_line_error(r, code=255) == f"write pid file {pid_file}: No such file or directory"
        )
        left = []
        for p in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{p}/cmdline").read_bytes() == b"sleep\x0031\x00":
                    left.append(p)
            except OSError:
                pass
        assert not left, f"the exec'd process is still there: {left}"
    finally:
        rt.cli("delete", "--force", "c1")
