"""`ocirun exec` on real containers: output and exit codes, --process files, runc's flags
(-e, --cwd, -u, --cap, -d, --pid-file, -t, --console-socket, --preserve-fds), the
namespaces and seccomp filter the new process gets, fd hygiene, the errors, and that
nothing is left after `delete --force`."""

from __future__ import annotations

import array
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from clitools import call, fails, ok
from testenv import BUNDLE_CAPS, OCIRUN, REPO

from ocirun.tables import CAPS

PROBE_DIR = "/home"
PROBE = f"{PROBE_DIR}/probe"
NS = ("mnt", "net", "uts", "ipc", "pid", "cgroup")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def probe_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe")
    subprocess.run(["sh", str(REPO / "tests/probe/build.sh"), str(out)], check=True)
    return out


def with_probe(probe_dir: Path):
    def mutate(cfg):
        cfg["mounts"].append(
            {
                "destination": PROBE_DIR,
                "type": "bind",
                "source": str(probe_dir),
                "options": ["rbind", "ro"],
            }
        )

    return mutate


class Running:
    """A started container running `sleep` (its init), deleted by force at the end."""

    def __init__(self, rt, make_bundle, cid="ex", mutate=None):
        self.rt, self.cid = rt, cid
        ok(
            call(
                rt,
                "run",
                "--detach",
                "--bundle",
                make_bundle(args=["sleep", "60"], mutate=mutate),
                cid,
            )
        )
        self.pid = rt.state(cid)["pid"]

    def exec(self, *cmd, flags=(), **kw):
        """`ocirun exec FLAGS... ID CMD...`"""
        return call(self.rt, "exec", *flags, self.cid, *cmd, **kw)

    def delete(self):
        ok(call(self.rt, "delete", "--force", self.cid))


@pytest.fixture
def running(rt, make_bundle):
    made = []

    def start(mutate=None, cid="ex"):
        c = Running(rt, make_bundle, cid, mutate)
        made.append(c)
        return c

    yield start
    for c in made:
        c.delete()


def mask(names) -> int:
    return sum(1 << CAPS[n] for n in set(names))


def status_of(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- basics


def test_exec_output_and_exit_code(running):
    c = running()
    r = c.exec("sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


def test_exec_killed_by_signal_is_128_plus_n(running):
    c = running()
    r = c.exec("sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + signal.SIGTERM, r.stderr


def test_exec_arguments_are_passed_verbatim(running):
    c = running()
    r = ok(c.exec("printf", "[%s]\\n", "a b", "", "--cwd", "-e", "x=y"))
    assert r.stdout.splitlines() == ["[a b]", "[]", "[--cwd]", "[-e]", "[x=y]"]


def test_exec_into_created_container(rt, make_bundle):
    ok(call(rt, "create", "--bundle", make_bundle(args=["sleep", "60"]), "ex"))
    try:
        assert rt.state("ex")["status"] == "created"
        r = ok(call(rt, "exec", "ex", "sh", "-c", "echo in-created; cat /proc/1/comm"))
        assert r.stdout.splitlines()[0] == "in-created"
        assert rt.state("ex")["status"] == "created"
    finally:
        ok(call(rt, "delete", "--force", "ex"))


def test_exec_into_stopped_container_fails(rt, make_bundle):
    ok(call(rt, "run", "--detach", "--bundle", make_bundle(args=["true"]), "ex"))
    try:
        deadline = time.monotonic() + 10
        while rt.state("ex")["status"] != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = call(rt, "exec", "ex", "echo", "hi")
        fails(r, "stopped")
        assert r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    finally:
        ok(call(rt, "delete", "--force", "ex"))


def test_exec_into_missing_container_fails(rt):
    fails(call(rt, "exec", "nope", "true"), 'container "nope" does not exist')


def test_exec_without_command_fails(running):
    c = running()
    r = call(c.rt, "exec", c.cid)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr


def test_exec_missing_binary_in_path(running):
    c = running()
    r = c.exec("no-such-binary", "arg")
    fails(r, "no-such-binary", "executable file not found in $PATH")
    assert r.stdout == ""


def test_exec_missing_absolute_binary(running):
    c = running()
    fails(c.exec("/bin/no-such-binary"), "/bin/no-such-binary", "no such file or directory")


def test_exec_failures_exit_255_and_the_process_status_passes_through(running, tmp_path):
    """As runc (>= 1.1): exec's own failure exits with 255, never a code the process
    itself could have returned; the process's status is passed on unchanged."""
    c = running()
    assert call(c.rt, "exec", c.cid, "false").returncode == 1
    assert call(c.rt, "exec", c.cid, "sh", "-c", "exit 42").returncode == 42
    for argv in (
        ["exec", "--pid-file", str(tmp_path / "no" / "pid"), c.cid, "true"],
        ["exec", c.cid, "no-such-binary"],
        ["exec", "no-such-container", "true"],
    ):
        r = call(c.rt, *argv)
        assert r.returncode == 255, (argv, r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="LINUX32 is x86_64's")
def test_exec_gets_the_containers_personality(running):
    """linux.personality is the container's, so an exec'd process gets it too (runc >= 1.2;
    runc's bats 'runc run personality with exec for i686')."""
    c = running(lambda cfg: cfg["linux"].update(personality={"domain": "LINUX32"}))
    assert ok(c.exec("uname", "-m")).stdout == "i686\n"


def test_exec_gets_the_containers_memory_policy(running):
    """linux.memoryPolicy is the container's: an exec'd process gets it too (runc's bats
    'runc run and exec memory policy prefer relative')."""
    policy = {"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}
    c = running(lambda cfg: cfg["linux"].update(memoryPolicy=policy))
    out = ok(c.exec("sh", "-c", "head -n 1 /proc/self/numa_maps")).stdout
    assert out.split()[1].startswith("prefer") and "relative" in out.split()[1], out


def _in_pid_namespace_of(pid: int) -> list[int]:
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.readlink(f"/proc/{entry}/ns/pid") == ns:
                found.append(int(entry))
        except OSError:
            pass
    return sorted(found)


@pytest.mark.parametrize("flags", [(), ("--detach",)], ids=["attached", "detached"])
def test_failed_exec_leaves_no_zombie_in_the_pid_namespace(running, flags):
    """The exec's process is forked after joining the pid namespace; when its execve fails
    it is reaped, not left a zombie for the host's init (which may reap late: until then
    the container's init cannot finish dying, and delete --force waits; crun's
    exec-not-exists took 1.5 s here)."""
    c = running()
    fails(c.exec("/bin/no-such-binary", flags=flags), "no such file or directory")
    assert _in_pid_namespace_of(c.pid) == [c.pid]


def test_exec_runtime_environment_does_not_leak(running):
    c = running()
    r = ok(c.exec("env", env=dict(os.environ, FOO_LEAK="1")))
    # HOME: the container's passwd entry, as runc sets it for exec too
    assert sorted(line.split("=", 1)[0] for line in r.stdout.splitlines()) == [
        "HOME",
        "PATH",
        "TERM",
    ]


# --------------------------------------------------------------------------- flags


def test_exec_env_overrides_and_adds(running):
    c = running()
    r = ok(c.exec("env", flags=("-e", "TERM=dumb", "-e", "NEW=a=b", "--env", "OTHER=")))
    env = r.stdout.splitlines()
    assert sorted(env) == sorted(
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=dumb",
            "NEW=a=b",
            "OTHER=",
            "HOME=/root",
        ]
    ), env


def test_exec_cwd(running):
    c = running()
    assert ok(c.exec("pwd", flags=("--cwd", "/usr/bin"))).stdout == "/usr/bin\n"


def test_exec_user(running):
    c = running()
    r = ok(
        c.exec(
            "sh",
            "-c",
            "id -u; id -g; id -G; grep CapEff /proc/self/status",
            flags=("-u", "1000:1001", "-g", "2000"),
        )
    )
    assert r.stdout.split() == ["1000", "1001", "1001", "2000", "CapEff:", "0000000000000000"]


def test_exec_cap_adds_to_the_sets(running):
    c = running()
    base = mask(BUNDLE_CAPS)
    plain = status_of(ok(c.exec("cat", "/proc/self/status")).stdout)
    assert int(plain["CapBnd"], 16) == base
    st = status_of(ok(c.exec("cat", "/proc/self/status", flags=("--cap", "CAP_NET_ADMIN"))).stdout)
    want = base | mask(["CAP_NET_ADMIN"])
    for key in ("CapBnd", "CapPrm", "CapEff"):
        assert int(st[key], 16) == want, (key, st[key])
    # ... and it works: only CAP_NET_ADMIN may take lo down in the container's netns.
    assert c.exec("ip", "link", "set", "lo", "down").returncode != 0
    ok(c.exec("ip", "link", "set", "lo", "down", flags=("--cap", "CAP_NET_ADMIN")))


def test_exec_process_file_detached_with_pid_file(running, tmp_path):
    c = running()
    process = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [3000]},
        "args": [
            "sh",
            "-c",
            "pwd > /dev/shm/out; id >> /dev/shm/out; env >> /dev/shm/out; exec sleep 60",
        ],
        "env": ["PATH=/bin:/usr/bin", "FROM_FILE=yes"],
        "cwd": "/var/log",
        "capabilities": {
            k: ["CAP_CHOWN", "CAP_KILL"]
            for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
        },
        "noNewPrivileges": True,
    }
    pfile = tmp_path / "process.json"
    pfile.write_text(json.dumps(process))
    pid_file = tmp_path / "exec.pid"
    t0 = time.monotonic()
    ok(call(c.rt, "exec", "--process", str(pfile), "--detach", "--pid-file", str(pid_file), c.cid))
    assert time.monotonic() - t0 < 10  # --detach did not wait for the 60 s sleep
    raw = pid_file.read_text()
    assert re.fullmatch(r"[1-9]\d*", raw), f"pid file holds {raw!r}"
    pid = int(raw)
    assert alive(pid)
    # The host pid is the exec'd process, in the container's pid namespace.
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{c.pid}/ns/pid")
    nspid = status_of(Path(f"/proc/{pid}/status").read_text())["NSpid"].split()
    assert nspid[0] == str(pid) and len(nspid) == 2
    ps = ok(c.exec("ps", "-o", "pid,user,args")).stdout
    assert any(line.split()[:3] == [nspid[1], "1000", "sleep"] for line in ps.splitlines()), ps
    deadline = time.monotonic() + 5
    out = ""
    while "FROM_FILE" not in out and time.monotonic() < deadline:
        out = c.exec("cat", "/dev/shm/out").stdout
        time.sleep(0.05)
    lines = out.splitlines()
    assert lines[0] == "/var/log"
    assert lines[1] == "uid=1000 gid=1000 groups=3000", lines[1]  # additionalGids only
    # HOME=/: uid 1000 has no passwd entry in the image (runc's rule)
    assert sorted(lines[2:]) == [
        "FROM_FILE=yes",
        "HOME=/",
        "PATH=/bin:/usr/bin",
        "PWD=/var/log",
        "SHLVL=1",
    ] or sorted(lines[2:]) == ["FROM_FILE=yes", "HOME=/", "PATH=/bin:/usr/bin", "PWD=/var/log"], (
        lines
    )
    st = status_of(Path(f"/proc/{pid}/status").read_text())
    want = mask(["CAP_CHOWN", "CAP_KILL"])
    assert {
        k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    } == dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), want)
    assert st["NoNewPrivs"] == "1"


def test_exec_flags_are_validated(running):
    """Only args and -t leave the process create validated as it was; what other flags
    change is validated again, as the container's process was."""
    c = running()
    fails(c.exec("true", flags=("--cwd", "relative")), "/cwd", "'relative'")
    fails(c.exec("true", flags=("--env", "NOEQUALS")), "NOEQUALS")
    fails(c.exec("true", flags=("--user", "4294967296")), "4294967296")
    assert ok(c.exec("pwd", flags=("--cwd", "/tmp"))).stdout == "/tmp\n"


def test_exec_invalid_process_file(running, tmp_path):
    c = running()
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"args": ["true"], "cwd": "relative", "capabilities": {"bounding": ["CAP_TEST"]}}'
    )
    r = call(c.rt, "exec", "--process", str(bad), c.cid)
    fails(r, "/cwd", "'relative'")  # an unknown capability alone would only be a warning
    missing = tmp_path / "missing.json"
    fails(call(c.rt, "exec", "--process", str(missing), c.cid), str(missing))
    bad.write_text("[1]")
    fails(
        call(c.rt, "exec", "--process", str(bad), c.cid), f"{bad}: a process must be a JSON object"
    )
    bad.write_text("{")
    fails(call(c.rt, "exec", "--process", str(bad), c.cid), f"{bad}: invalid JSON")


def test_exec_process_file_from_a_pipe(running, tmp_path):
    """As runc reads it: `exec -p <(...)` (a shell's process substitution, a pipe), or a
    FIFO; one without a writer reads as empty (a clean error, no wait); a device is still
    refused."""
    c = running()
    r, w = os.pipe()
    os.write(w, json.dumps({"args": ["echo", "from-a-pipe"], "cwd": "/"}).encode())
    os.close(w)
    out = ok(call(c.rt, "exec", "-p", "/dev/fd/5", c.cid, fds={5: r}))
    os.close(r)
    assert out.stdout == "from-a-pipe\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    fails(call(c.rt, "exec", "-p", str(fifo), c.cid, timeout=10), f"{fifo}: invalid JSON")
    assert time.monotonic() - t0 < 5
    fails(call(c.rt, "exec", "-p", "/dev/zero", c.cid, timeout=10), "not a regular file")


# --------------------------------------------------------------------------- namespaces etc.


def test_exec_joins_every_namespace_of_the_container(running):
    c = running()
    script = "for n in " + " ".join(NS) + "; do readlink /proc/self/ns/$n; done"
    r = ok(c.exec("sh", "-c", script))
    theirs = [os.readlink(f"/proc/{c.pid}/ns/{n}") for n in NS]
    ours = [os.readlink(f"/proc/self/ns/{n}") for n in NS]
    assert r.stdout.splitlines() == theirs
    assert all(a != b for a, b in zip(theirs, ours)), "the container shares a namespace?"
    # The same root: the container's hostname file, not the host's.
    assert ok(c.exec("hostname")).stdout == "ocirun-demo\n"


@pytest.mark.parametrize("record", ["recorded at create", "worked out by exec"])
def test_exec_gets_the_containers_seccomp_filter(running, record):
    """The filter comes from state.json's "exec" record (execfacts), or, where there is
    none (a container made by an older ocirun), is compiled (cached) again."""

    def mutate(cfg):
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
            ],
        }

    c = running(mutate)
    state_file = os.path.join(c.rt.root, c.cid, "state.json")
    with open(state_file) as f:
        state = json.load(f)
    assert state["exec"]["seccomp"][0], "create recorded no filter"
    if record == "worked out by exec":
        del state["exec"]
        with open(state_file, "w") as f:
            json.dump(state, f)
    r = c.exec("sh", "-c", "grep Seccomp: /proc/self/status; mkdir /dev/shm/x")
    assert r.stdout.split() == ["Seccomp:", "2"]
    assert r.returncode == 1
    assert "Permission denied" in r.stderr, r.stderr


def test_exec_leaked_fds_do_not_reach_the_process(running, probe_dir, tmp_path):
    c = running(with_probe(probe_dir))
    opened = [os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in ("/", "/etc", str(tmp_path))]
    rp, wp = os.pipe()
    opened += [rp, wp]
    try:
        leaks = {3 + i: fd for i, fd in enumerate(opened)}
        r = ok(c.exec(PROBE, "fds", fds=leaks))
        assert sorted(int(line.split()[0]) for line in r.stdout.splitlines()) == [0, 1, 2], r.stdout
        os.write(wp, b"preserved\n")
        os.close(opened.pop())  # wp: the reader in the container then sees EOF
        r = ok(
            c.exec(
                "sh",
                "-c",
                f"{PROBE} fds; {PROBE} read 3",
                flags=("--preserve-fds", "1"),
                fds={3: rp, 4: opened[0]},
            )
        )
        lines = r.stdout.splitlines()
        assert sorted(int(x.split()[0]) for x in lines if " -> " in x) == [0, 1, 2, 3], r.stdout
        assert lines[-1] == "preserved"
    finally:
        for fd in opened:
            os.close(fd)


def test_exec_cwd_through_leaked_fd_cve_2024_21626(running, tmp_path):
    c = running()
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for n in range(3, 9):
            r = c.exec(
                "sh",
                "-c",
                "cat ../../../etc/hostname; pwd",
                flags=("--cwd", f"/proc/self/fd/{n}"),
                fds={k: fd for k in range(3, 9)},
            )
            assert "Traceback" not in r.stderr
            if r.returncode == 0:
                assert r.stdout.splitlines()[0] == "ocirun-demo", (n, r.stdout)
            else:
                assert f"/proc/self/fd/{n}" in r.stderr, (n, r.stderr)
    finally:
        os.close(fd)


def test_delete_force_kills_exec_processes(rt, make_bundle, tmp_path):
    ok(call(rt, "run", "--detach", "--bundle", make_bundle(args=["sleep", "60"]), "ex"))
    pid_file = tmp_path / "p"
    try:
        ok(call(rt, "exec", "--detach", "--pid-file", str(pid_file), "ex", "sleep", "61"))
        pid = int(pid_file.read_text())
        assert alive(pid)
    finally:
        ok(call(rt, "delete", "--force", "ex"))
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert ok(call(rt, "list", "-q")).stdout.split() == []


# --------------------------------------------------------------------------- tty


def test_exec_tty_with_console_socket(running, tmp_path):
    c = running()
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(10)
    err = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        [
            OCIRUN,
            "--root",
            c.rt.root,
            "exec",
            "-t",
            "--console-socket",
            path,
            c.cid,
            "sh",
            "-c",
            "tty; stty -echo; read l; echo got:$l; exit 4",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    master = -1
    try:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(10)
            fds = array.array("i")
            data, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
            for _, _, payload in anc:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        assert len(fds) == 1, list(fds)
        master = fds[0]
        assert re.fullmatch(rb"/dev/pts/\d+", data), data
        out = b""
        deadline = time.monotonic() + 10
        sent = False
        while time.monotonic() < deadline:
            if not sent and b"\n" in out:
                os.write(master, b"line\n")
                sent = True
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        code = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if master >= 0:
            os.close(master)
        srv.close()
    err.seek(0)
    lines = out.decode().replace("\r\n", "\n").splitlines()
    assert lines[0] == data.decode(), lines
    assert "got:line" in lines, lines
    assert code == 4, err.read()


def test_exec_tty_without_console_socket_under_a_pty(running):
    c = running()
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execv(
                OCIRUN,
                [
                    OCIRUN,
                    "--root",
                    c.rt.root,
                    "exec",
                    "-t",
                    c.cid,
                    "sh",
                    "-c",
                    "tty; test -t 0 && echo stdin-is-a-tty; exit 5",
                ],
            )
        finally:
            os._exit(127)
    out = b""
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    lines = out.decode().replace("\r\n", "\n").splitlines()
    assert re.fullmatch(r"/dev/pts/\d+", lines[0]), lines
    assert "stdin-is-a-tty" in lines, lines
    assert os.waitstatus_to_exitcode(status) == 5, out


def test_exec_console_socket_without_tty_fails(running, tmp_path):
    c = running()
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        fails(c.exec("true", flags=("--console-socket", path)), "--console-socket", "tty")
    finally:
        srv.close()


def test_exec_detached_tty_without_console_socket_fails(running):
    c = running()
    fails(c.exec("true", flags=("-t", "-d")), "console-socket")
