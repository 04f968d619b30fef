"""The command line as engines and users drive it: --version, --log/--log-format (the
containerd shim reads the last "error" line of the JSON log), --systemd-cgroup, spec,
features, and command-line mistakes. No user error may end in a Python traceback.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from clitools import call
from testenv import OCIRUN, ROOTFS


def clean_failure(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode != 0, f"expected a failure: {r.stdout}{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip(), "no message on stderr"
    for n in needles:
        assert n in r.stderr, f"{n!r} not in {r.stderr!r}"


def nothing_created(rt) -> None:
    assert rt.ok("list", "-q").stdout == ""
    left = os.listdir(rt.root) if os.path.isdir(rt.root) else []
    assert [e for e in left if not e.startswith(".")] == []


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def read_json_log(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    assert lines, f"{path} is empty"
    out = []
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        assert {"level", "msg", "time"} <= set(obj), line
        assert isinstance(obj["msg"], str)
        assert RFC3339.match(obj["time"]), obj
        t = datetime.datetime.fromisoformat(obj["time"].replace("Z", "+00:00"))
        assert t.tzinfo is not None
        assert abs(datetime.datetime.now(datetime.UTC) - t) < datetime.timedelta(minutes=5)
        out.append(obj)
    return out


def last_error(entries: list[dict]) -> str:
    errors = [e["msg"] for e in entries if e["level"] == "error"]
    assert errors, f"no error line in {entries}"
    return errors[-1]


# --------------------------------------------------------------------------- version


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(flag):
    r = subprocess.run([OCIRUN, flag], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ocirun version ")
    assert len(lines[0]) > len("ocirun version ")
    assert "spec: 1.3.0" in lines
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------- --log


LOG_FORMS = {
    "separate": lambda f: ["--log", f, "--log-format", "json"],
    "equals": lambda f: [f"--log={f}", "--log-format=json"],
    "mixed": lambda f: ["--log-format", "json", f"--log={f}"],
}


@pytest.mark.parametrize("form", LOG_FORMS)
@pytest.mark.parametrize(
    "command",
    [["state", "nope"], ["delete", "nope"], ["kill", "nope", "KILL"], ["list", "--format", "yaml"]],
    ids=["state", "delete", "kill", "list"],
)
def test_json_log_on_failure(rt, tmp_path, form, command):
    """containerd shows the msg of the last "level":"error" line of the JSON log."""
    log = tmp_path / "log.json"
    r = call(rt, *LOG_FORMS[form](str(log)), *command)
    clean_failure(r)
    entries = read_json_log(log)
    assert last_error(entries) == r.stderr.strip()


def test_json_log_of_init_failure_with_debug(rt, make_bundle, tmp_path):
    """A failure inside the container's init, with --debug lines before it."""
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

    log = tmp_path / "log.json"
    r = call(
        rt,
        "--debug",
        "--log",
        str(log),
        "--log-format",
        "json",
        "create",
        "--bundle",
        make_bundle(args=["true"], mutate=mutate),
        "c1",
    )
    clean_failure(r, missing)
    entries = read_json_log(log)
    assert last_error(entries) == r.stderr.strip()
    assert entries[-1]["level"] == "error"
    assert {e["level"] for e in entries} <= {"debug", "info", "warning", "error"}
    nothing_created(rt)


PHASE = re.compile(r"^phase (.+): (\d+\.\d\d) ms$")


def phases(log: Path) -> list[str]:
    """The phase names --debug logged (each with a time), in order; the log is emptied."""
    names = []
    for e in read_json_log(log):
        m = PHASE.match(e["msg"])
        if e["level"] == "debug" and m:
            names.append(m.group(1))
    log.write_text("")
    return names


def test_debug_times_each_phase_of_create_start_exec_delete(rt, make_bundle, tmp_path):
    """Issue 6: --debug says where the time of each hot command goes."""
    log = tmp_path / "log.json"
    dbg = ("--debug", "--log", str(log), "--log-format", "json")
    startup = "interpreter start-up + imports (CPU)"
    door = "front door start-up (CPU)"  # start and delete: the C front door (issue 16)
    bundle = make_bundle(args=["sleep", "30"])
    try:
        assert call(rt, *dbg, "create", "--bundle", bundle, "c1").returncode == 0
        assert phases(log) == [
            startup,
            "parse config.json",
            "validate (schema + checks, cached now)",
            "check rootfs",
            "plan",
            "cgroups",
            "clone",
            "init setup (namespaces, mounts, hooks, pivot, credentials)",
            "state",
        ]
        assert call(rt, *dbg, "create", "--bundle", bundle, "c2").returncode == 0
        assert phases(log)[1:4] == ["parse config.json", "validate (cache hit)", "check rootfs"]
        assert call(rt, "delete", "--force", "c2").returncode == 0
        assert call(rt, *dbg, "start", "c1").returncode == 0
        assert phases(log) == [
            door,
            "lock + state",
            "release (exec.fifo)",
            "the init's execve (startContainer hooks first)",
        ]
        assert call(rt, *dbg, "exec", "c1", "true").returncode == 0
        assert phases(log) == [
            startup,
            "lock + state, config, plan",
            "clone",
            "setup (join namespaces, cgroups, credentials)",
            "execve",
        ]
        assert call(rt, "kill", "c1", "KILL").returncode == 0
        assert call(rt, *dbg, "delete", "--force", "c1").returncode == 0
        assert phases(log) == [
            door,
            "lock + state, load cgroup driver, stop what runs",
            "remove cgroups",
            "remove state dir",
        ]
    finally:
        call(rt, "delete", "--force", "c1")
        call(rt, "delete", "--force", "c2")


def test_debug_phases_of_run_are_one_sequence(rt, make_bundle, tmp_path):
    """run = create + start + wait + delete: one start-up line, then every step's phases."""
    log = tmp_path / "log.json"
    r = call(
        rt,
        "--debug",
        "--log",
        str(log),
        "--log-format",
        "json",
        "run",
        "--bundle",
        make_bundle(args=["true"]),
        "c1",
    )
    assert r.returncode == 0, r.stderr
    names = phases(log)
    assert names.count("interpreter start-up + imports (CPU)") == 1
    assert names[:4] == [
        "interpreter start-up + imports (CPU)",
        "parse config.json",
        "validate (schema + checks, cached now)",
        "check rootfs",
    ]
    ran = names.index("the container's process ran")
    assert names.index("release (exec.fifo)") < ran < names.index("remove state dir")
    assert names[-1] == "remove state dir"


def test_json_log_of_multi_problem_config_error(rt, make_bundle, tmp_path):
    """Several config problems: one line on stderr ("; "), the same text as one error msg."""

    def mutate(cfg):
        cfg["process"]["cwd"] = "relative"
        cfg["hostname"] = 5

    log = tmp_path / "log.json"
    r = call(
        rt,
        "--log",
        str(log),
        "--log-format",
        "json",
        "create",
        "--bundle",
        make_bundle(mutate=mutate),
        "c1",
    )
    clean_failure(r, "/process/cwd", "/hostname")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "; config.json: /" in r.stderr
    assert last_error(read_json_log(log)) == r.stderr.strip()
    nothing_created(rt)


def test_log_appends(rt, tmp_path):
    """Every call appends to the log (the shim passes the same file to every call)."""
    log = tmp_path / "log.json"
    call(rt, "--log", str(log), "--log-format", "json", "state", "one")
    call(rt, "--log", str(log), "--log-format", "json", "state", "two")
    msgs = [e["msg"] for e in read_json_log(log) if e["level"] == "error"]
    assert msgs == ['container "one" does not exist', 'container "two" does not exist']


def test_text_log_quotes_msg(rt, tmp_path):
    log = tmp_path / "log.txt"
    r = call(rt, "--log", str(log), "state", "nope")
    clean_failure(r)
    line = log.read_text().strip().splitlines()[-1]
    assert "level=error" in line
    assert 'msg="container \\"nope\\" does not exist"' in line, line


def test_log_in_missing_directory_is_a_clean_error(rt, tmp_path):
    r = subprocess.run(
        [OCIRUN, "--root", rt.root, "--log", str(tmp_path / "no" / "log.json"), "state", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    clean_failure(r, 'container "nope" does not exist')


def test_containerd_call_shape(rt, make_bundle):
    """containerd's shim: cwd = bundle, --log <bundle>/log.json --log-format json, an
    absolute --bundle and --pid-file, then start/state/delete with the same globals."""
    bundle = Path(make_bundle(args=["sleep", "30"]))
    glob = ["--log", str(bundle / "log.json"), "--log-format", "json"]
    r = call(
        rt,
        *glob,
        "create",
        "--bundle",
        str(bundle),
        "--pid-file",
        str(bundle / "init.pid"),
        "c1",
        cwd=str(bundle),
    )
    try:
        assert r.returncode == 0, r.stderr
        pid = (bundle / "init.pid").read_text()
        assert pid.isdigit()
        st = json.loads(call(rt, *glob, "state", "c1", cwd=str(bundle)).stdout)
        assert st["status"] == "created" and st["pid"] == int(pid)
        assert st["bundle"] == str(bundle)
        assert call(rt, *glob, "start", "c1", cwd=str(bundle)).returncode == 0
        st = json.loads(call(rt, *glob, "state", "c1", cwd=str(bundle)).stdout)
        assert st["status"] == "running"
        assert call(rt, *glob, "kill", "c1", "9", cwd=str(bundle)).returncode == 0
        r = call(rt, *glob, "delete", "--force", "c1", cwd=str(bundle))
        assert r.returncode == 0, r.stderr
        assert rt.ok("list", "-q").stdout == ""
        log = bundle / "log.json"
        if log.exists() and log.read_text().strip():
            assert [e for e in read_json_log(log) if e["level"] == "error"] == []
    finally:
        rt.cli("delete", "--force", "c1")


def test_default_bundle_is_cwd(rt, make_bundle):
    """--bundle defaults to the current directory (runc: `runc create ID` in the bundle)."""
    bundle = make_bundle(args=["sleep", "30"])
    r = call(rt, "create", "c1", cwd=bundle)
    try:
        assert r.returncode == 0, r.stderr
        assert rt.state("c1")["bundle"] == bundle
    finally:
        rt.cli("delete", "--force", "c1")


# --------------------------------------------------------------------------- --systemd-cgroup


@pytest.mark.skipif(os.path.exists("/run/systemd/system"), reason="systemd runs here")
@pytest.mark.parametrize("cmd", ["create", "run"])
def test_systemd_cgroup_without_systemd(rt, make_bundle, cmd):
    """No systemd on this host: one clean line saying D-Bus can't be reached, nothing left.
    (The driver itself is tested in the VM's systemd boot: tests/vm/test_systemd.py.)"""
    r = call(rt, "--systemd-cgroup", cmd, "--bundle", make_bundle(args=["sleep", "30"]), "c1")
    clean_failure(r, "--systemd-cgroup", "cannot reach systemd over D-Bus")
    assert len(r.stderr.strip().splitlines()) == 1
    nothing_created(rt)


# --------------------------------------------------------------------------- spec


def spec_bundle(rt, tmp_path: Path, *flags: str, **process) -> Path:
    """`ocirun spec [flags]` in a new bundle dir, then only root.path (the shared rootfs) and
    the given process fields changed."""
    bundle = tmp_path / ("b" + "".join(flags).replace("-", "_"))
    bundle.mkdir()
    r = call(rt, "spec", *flags, "--bundle", str(bundle))
    assert r.returncode == 0, r.stderr
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["root"]["path"] = str(ROOTFS)
    cfg["process"].update(process)
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def test_spec_config_runs_as_written(rt, tmp_path):
    """runc spec's defaults (terminal: true, ambient capabilities, hostname runc) run with
    only the args changed: `run` in the foreground gives the process a pty of its own."""
    bundle = spec_bundle(rt, tmp_path, args=["sh", "-c", "echo from-spec; hostname; tty; exit 3"])
    r = call(rt, "run", "--bundle", str(bundle), "c1")
    assert r.returncode == 3, r.stderr
    lines = r.stdout.replace("\r\n", "\n").splitlines()
    assert lines[:2] == ["from-spec", "runc"], r.stdout
    assert re.fullmatch(r"/dev/pts/\d+", lines[2]), r.stdout


def test_spec_config_needs_a_console_socket_to_create(rt, tmp_path):
    """terminal: true and `create` without --console-socket: a clean refusal, as runc's; with
    terminal false (the one other change), create works."""
    bundle = spec_bundle(rt, tmp_path, args=["sh", "-c", "echo from-spec"])
    r = call(rt, "create", "--bundle", str(bundle), "c1")
    clean_failure(r, "--console-socket")
    nothing_created(rt)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(cfg))
    r = call(rt, "create", "--bundle", str(bundle), "c1")
    try:
        assert r.returncode == 0, r.stderr
        assert rt.state("c1")["status"] == "created"
    finally:
        rt.cli("delete", "--force", "c1")


def test_spec_rootless_config_runs(rt, tmp_path):
    """--rootless: a user namespace mapping root to the caller (root here), /sys bound."""
    bundle = spec_bundle(
        rt,
        tmp_path,
        "--rootless",
        terminal=False,
        args=["sh", "-c", "cat /proc/self/uid_map; id -u"],
    )
    r = call(rt, "run", "--bundle", str(bundle), "c1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", str(os.geteuid()), "1", "0"], r.stdout


def test_spec_in_cwd_and_no_overwrite(rt, tmp_path):
    r = call(rt, "spec", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    path = tmp_path / "config.json"
    first = path.read_text()
    json.loads(first)
    path.write_text(first + " ")  # mark it: a refusal must leave it as it is
    r = call(rt, "spec", cwd=str(tmp_path))
    clean_failure(r, "exists")
    assert path.read_text() == first + " "
    r = call(rt, "spec", "--bundle", str(tmp_path))
    clean_failure(r, str(path), "exists")


def test_spec_rootless_has_user_namespace(rt, tmp_path):
    r = call(rt, "spec", "--rootless", "--bundle", str(tmp_path))
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "config.json").read_text())
    types = [n["type"] for n in cfg["linux"]["namespaces"]]
    assert "user" in types
    assert cfg["linux"]["uidMappings"] and cfg["linux"]["gidMappings"]
    # The plain spec has none.
    plain = tmp_path / "plain"
    plain.mkdir()
    call(rt, "spec", "--bundle", str(plain))
    assert "user" not in [
        n["type"] for n in json.loads((plain / "config.json").read_text())["linux"]["namespaces"]
    ]


def test_spec_into_missing_dir_is_clean_error(rt, tmp_path):
    r = call(rt, "spec", "--bundle", str(tmp_path / "missing"))
    clean_failure(r, str(tmp_path / "missing"))


# --------------------------------------------------------------------------- features


def test_features(rt):
    r = call(rt, "features")
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)
    assert f["ociVersionMin"].startswith("1.")
    assert f["ociVersionMax"] == "1.3.0"
    assert isinstance(f["mountOptions"], list)
    assert {"ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec"} <= set(f["mountOptions"])
    ns = f["linux"]["namespaces"]
    assert isinstance(ns, list)
    assert {"pid", "network", "ipc", "uts", "mount", "user", "cgroup"} <= set(ns)


# --------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["list", "--bogus"],
        ["--bogus", "list"],
        ["create", "--bogus", "x"],
        ["create"],
        ["kill"],
        ["start", "a", "b"],
        ["--root"],
        ["create", "--bundle"],
        ["create", "--preserve-fds", "abc", "x"],
        ["run", "--preserve-fds", "-1", "x"],
        ["--log-format", "xml", "list"],
        ["--log-format=xml", "state", "x"],
        ["list", "--format", "yaml"],
        ["kill", "--all", "x"],
        ["kill", "x", "NOSIG"],
        ["delete", "--force=yes", "x"],
        ["kill", "--all=maybe", "x"],
        ["--debug=2", "list"],
        ["run", "-dt", "x"],  # Go's flag package has no combined short flags either
        ["--rootless", "maybe", "create", "x"],  # runc too: only where it creates
        ["--rootless=yes", "run", "x"],
    ],
    ids=lambda a: " ".join(a),
)
def test_command_line_mistakes(rt, argv):
    r = subprocess.run(
        [OCIRUN, "--root", rt.root, *argv],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    clean_failure(r)
    nothing_created(rt)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["list"], id="list"),
        pytest.param(["state", "x"], id="state"),
        pytest.param(["create", "--bundle", "B", "x"], id="create"),
    ],
)
def test_root_is_a_file(make_bundle, tmp_path, argv):
    """--root naming a regular file: a clean error, whatever the command."""
    blocker = tmp_path / "root-file"
    blocker.write_text("not a dir")
    argv = [make_bundle(args=["true"]) if a == "B" else a for a in argv]
    r = subprocess.run(
        [OCIRUN, "--root", str(blocker), *argv],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    clean_failure(r)
    assert blocker.read_text() == "not a dir"


# --------------------------------------------------------------------------- runc's flag syntax


def test_go_flag_syntax_end_to_end(rt, make_bundle, tmp_path):
    """What runc's Go flag parser takes: -name for --name, --b for -b, booleans with a value,
    flags after the id (but not after exec's id: those are the command's)."""
    bundle = make_bundle(args=["sleep", "30"])
    pid_file = tmp_path / "init.pid"
    r = call(
        rt,
        "-debug=false",
        "create",
        "c1",
        "-bundle",
        bundle,
        f"-pid-file={pid_file}",
        "--no-new-keyring=false",
    )
    try:
        assert r.returncode == 0, r.stderr
        assert rt.state("c1")["pid"] == int(pid_file.read_text())
        assert call(rt, "-log-format=json", "start", "c1").returncode == 0
        r = call(rt, "exec", "-detach=false", "--tty=0", "c1", "echo", "-t", "--tty=1")
        assert (r.returncode, r.stdout) == (0, "-t --tty=1\n"), r.stderr
        r = call(rt, "list", "-format=json", "-quiet=false")
        assert [c["id"] for c in json.loads(r.stdout)] == ["c1"], r.stderr
        assert call(rt, "kill", "c1", "KILL", "-all=true").returncode == 0
        r = call(rt, "delete", "c1", "--force=1")
        assert r.returncode == 0, r.stderr
        nothing_created(rt)
    finally:
        rt.cli("delete", "--force", "c1")


def test_ignored_runc_flags_say_so_in_the_debug_log(rt, make_bundle, tmp_path):
    """run --no-subreaper, exec --ignore-paused, update --kernel-memory: accepted, and one
    debug line each (on the fast path and on typer's). --criu (checkpoint/restore's CRIU) and
    --rootless (rootless mode) are used, not ignored: no such line for them."""
    log = tmp_path / "log.json"
    glob = [
        "--criu",
        "/usr/sbin/criu",
        "--rootless=auto",
        "--debug",
        "--log",
        str(log),
        "--log-format",
        "json",
    ]
    r = call(
        rt,
        *glob,
        "run",
        "-d",
        "--no-subreaper",
        "--bundle",
        make_bundle(args=["sleep", "30"]),
        "c1",
    )
    try:
        assert r.returncode == 0, r.stderr
        r = call(rt, *glob, "exec", "--ignore-paused", "c1", "true")
        assert r.returncode == 0, r.stderr
        r = call(rt, *glob, "update", "--kernel-memory", "64m", "--kernel-memory-tcp=1m", "c1")
        assert r.returncode == 0, r.stderr
        r = call(rt, *glob, "update", "c1", "--pids-limit", "50", "-kernel-memory=1m")
        assert r.returncode == 0, r.stderr
        r = call(rt, *glob, "spec", "--bundle", str(tmp_path))  # typer's path
        assert r.returncode == 0, r.stderr
    finally:
        rt.cli("delete", "--force", "c1")
    debug = [e["msg"] for e in read_json_log(log) if e["level"] == "debug"]
    said = [m.split(":")[0] for m in debug if m.startswith("ignoring ")]
    assert not [m for m in said if "--criu" in m or "--rootless" in m], debug
    assert said.count("ignoring --kernel-memory 64m") == 1
    assert said.count("ignoring --kernel-memory 1m") == 1
    for flag in ("--no-subreaper", "--ignore-paused", "--kernel-memory-tcp 1m"):
        assert said.count(f"ignoring {flag}") == 1, (flag, debug)
    assert not [e for e in read_json_log(log) if e["level"] == "error"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["checkpoint", "--image-path", "/tmp/img", "--lazy-pages", "c1"],
            "checkpoint --lazy-pages is not supported by ocirun",
        ),
        (
            ["restore", "-b", "/tmp", "--detach", "--lazy-pages", "c1"],
            "restore --lazy-pages is not supported by ocirun",
        ),
        (
            ["update", "--l3-cache-schema", "L3:0=ff", "c1"],
            "Intel RDT/CAT: l3 cache schema is not enabled",
        ),
        (
            ["update", "--mem-bw-schema=MB:0=50", "c1"],
            "Intel RDT/MBA: memory bandwidth schema is not enabled",
        ),
        (
            ["exec", "--cgroup", "sub", "c1", "true"],
            "exec --cgroup is not supported: the process joins the container's own cgroup",
        ),
    ],
    ids=lambda a: a[0] if isinstance(a, list) else None,
)
def test_runc_features_ocirun_lacks_are_one_line_errors(rt, argv, message):
    """Accepted on the command line as runc accepts them, then refused in one line: ignoring
    them would silently drop what was asked for."""
    r = call(rt, *argv)
    clean_failure(r)
    assert r.returncode == (255 if argv[0] == "exec" else 1)  # runc's exec fails with 255
    assert r.stderr.strip() == message


@pytest.mark.parametrize(
    "argv, heading",
    [
        (["help"], "Usage: ocirun [OPTIONS] COMMAND"),
        (["h", "kill"], "Usage: ocirun kill [OPTIONS]"),
        (["help", "exec"], "Usage: ocirun exec [OPTIONS]"),
        (["-help"], "Usage: ocirun [OPTIONS] COMMAND"),
        (["create", "-h"], "Usage: ocirun create [OPTIONS]"),
    ],
)
def test_help_as_runc_takes_it(rt, argv, heading):
    r = call(rt, *argv)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(heading), r.stdout
