"""checkpoint / restore with CRIU (issue 18): real containers dumped and restored by CRIU 4.2,
built from ../shared/criu by scripts/criu-build.sh (reused while the tarball is unchanged).

The containers count in a shell loop with stdout on a pipe, as engines give it: the count
going on from exactly where the dump stopped it shows the memory came back; the restored
init being pid 1 of its namespace with the same command line shows the tree did. Where the
same scenario runs under runc 1.1.5 (with `--criu` pointing at the same CRIU), it runs
beside ocirun.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
import uuid

import pytest

from testenv import OCIRUN, REPO

from clitools import fails

COUNT = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"


@pytest.fixture(scope="module")
def criu() -> str:
    """CRIU's path; skipped, with the reason, only where it cannot be built or `criu check`
    fails on this kernel."""
    if os.geteuid() != 0:
        pytest.skip("checkpoint/restore needs root")
    r = subprocess.run(["bash", str(REPO / "scripts" / "criu-build.sh")], capture_output=True,
                       text=True, timeout=900)
    last = (r.stdout.strip().splitlines() or [""])[-1]
    if r.returncode != 0:
        pytest.skip(f"CRIU not built: {last or r.stderr.strip()[-300:]}")
    path = os.path.join(last, "criu")
    check = subprocess.run([path, "check"], capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        pytest.skip(f"`criu check` fails on this kernel: {check.stderr.strip()[-300:]}")
    return path


class Pipe:
    """The read end of a container's stdout; the numbers it printed so far."""

    def __init__(self):
        self.r, self.w = os.pipe()
        self.buf = b""
        self.seen: list[int] = []  # every number read so far

    def close_writer(self):
        if self.w >= 0:
            os.close(self.w)
            self.w = -1

    def numbers(self, want: int = 1, timeout: float = 10) -> list[int]:
        """At least `want` more lines (or whatever came before EOF), as ints."""
        deadline = time.monotonic() + timeout
        lines: list[int] = []
        while len(lines) < want and time.monotonic() < deadline:
            if not select.select([self.r], [], [], max(0, deadline - time.monotonic()))[0]:
                break
            chunk = os.read(self.r, 4096)
            if not chunk:
                break
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            lines += [int(x) for x in done if x.strip().isdigit()]
        self.seen += lines
        return lines

    def drain(self, timeout: float = 10) -> list[int]:
        """Everything up to EOF (every writer gone)."""
        return self.numbers(want=10**9, timeout=timeout)

    def close(self):
        self.close_writer()
        os.close(self.r)


class Ctl:
    """ocirun or runc, with CRIU, against a private root."""

    def __init__(self, exe: list[str], root: str, criu: str):
        self.exe, self.root, self.criu = exe, root, criu

    def __call__(self, *args, stdout=None, stderr=None, timeout=60, cwd=None):
        with open(os.devnull, "rb") as null:
            return subprocess.run([*self.exe, "--root", self.root, "--criu", self.criu, *args],
                                  stdin=null, stdout=stdout or subprocess.PIPE,
                                  stderr=stderr or subprocess.PIPE, timeout=timeout,
                                  cwd=cwd, text=True)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, f"{args} failed ({r.returncode}): {r.stderr}"
        return r

    def start(self, cid: str, bundle: str, pipe: Pipe, *extra: str):
        """run -d (ocirun, runc) or restore -d: the container's stdout and stderr on the pipe."""
        args = extra or ("run",)
        r = self(*args, "-d", "-b", bundle, cid, stdout=pipe.w, stderr=pipe.w)
        assert r.returncode == 0, f"{args} {cid} failed ({r.returncode}): see its output"

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)

    def cleanup(self, cid: str):
        self("delete", "--force", cid)


@pytest.fixture(params=["ocirun", "runc"])
def ctl(request, rt, criu):
    """The runtime under test; runc beside ocirun where it is installed."""
    if request.param == "ocirun":
        yield Ctl([OCIRUN], rt.root, criu)
        return
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    c = Ctl(["runc"], f"/run/ocirun-test-runc/{uuid.uuid4().hex[:12]}", criu)
    yield c
    shutil.rmtree(c.root, ignore_errors=True)


def _cgroup_dirs(cid: str) -> list[str]:
    out = []
    for top, dirs, _files in os.walk("/sys/fs/cgroup"):
        out += [os.path.join(top, d) for d in dirs if d == cid]
        dirs[:] = [d for d in dirs if d != cid and top.count("/") < 6]
    return out


def _criu_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if ".criu-root-" in line.split()[4]]


def _nothing_left(ctl: Ctl, *cids: str) -> None:
    for cid in cids:
        assert _cgroup_dirs(cid) == [], f"cgroups of {cid} left behind"
    assert _criu_mounts() == []


def _init_view(pid: int) -> tuple[str, str]:
    """(the init's pid in its own namespace, its command line)."""
    with open(f"/proc/{pid}/status") as f:
        nspid = next(line.split()[-1] for line in f if line.startswith("NSpid:"))
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return nspid, f.read().decode()


def _gone(ctl: Ctl, cid: str) -> None:
    """After a checkpoint without --leave-running: destroyed, as runc does."""
    r = ctl("state", cid)
    assert r.returncode != 0 and "does not exist" in r.stderr, r


def test_checkpoint_restore_continues_the_count(ctl, make_bundle, tmp_path):
    bundle = make_bundle(["sh", "-c", COUNT])
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    first, second = Pipe(), Pipe()
    try:
        ctl.start(cid, bundle, first)
        first.close_writer()
        assert first.numbers(5)[:3] == [1, 2, 3]
        before = _init_view(ctl.state(cid)["pid"])
        images = str(tmp_path / "img")
        ctl.ok("checkpoint", "--image-path", images, cid)
        _gone(ctl, cid)
        first.drain()  # to EOF: the dumped tree is gone
        last = first.seen[-1]
        ctl.start(cid, bundle, second, "restore", "--image-path", images)
        second.close_writer()
        st = ctl.state(cid)
        assert st["status"] == "running"
        # The count goes on from exactly where it stopped: the shell's memory came back.
        assert second.numbers(3)[:3] == [last + 1, last + 2, last + 3]
        assert _init_view(st["pid"]) == before == ("1", f"sh\0-c\0{COUNT}\0")
        assert st["pid"] in json.loads(ctl.ok("ps", "--format", "json", cid).stdout)
        ctl.ok("kill", cid, "KILL")
        deadline = time.monotonic() + 10
        while ctl.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        ctl.ok("delete", cid)
        _nothing_left(ctl, cid)
    finally:
        ctl.cleanup(cid)
        first.close()
        second.close()


def test_leave_running_then_restore_under_a_new_id(ctl, make_bundle, tmp_path):
    bundle = make_bundle(["sh", "-c", COUNT])
    cid, copy = f"ck-{uuid.uuid4().hex[:8]}", f"ck-{uuid.uuid4().hex[:8]}"
    first, second = Pipe(), Pipe()
    try:
        ctl.start(cid, bundle, first)
        first.close_writer()
        first.numbers(3)
        images = str(tmp_path / "img")
        ctl.ok("checkpoint", "--leave-running", "--image-path", images, cid)
        assert ctl.state(cid)["status"] == "running"
        assert len(first.numbers(3)) == 3  # still counting
        # The same image restored beside it, under another id: its own pid namespace.
        ctl.start(copy, bundle, second, "restore", "--image-path", images)
        second.close_writer()
        assert len(second.numbers(3)) == 3
        a, b = ctl.state(cid), ctl.state(copy)
        assert a["status"] == b["status"] == "running" and a["pid"] != b["pid"]
        assert _init_view(b["pid"])[0] == "1"
        # the copy lives in cgroups of its own: none is left under the old id
        ctl.ok("delete", "--force", cid)
        assert _cgroup_dirs(cid) == []
        assert b["pid"] in json.loads(ctl.ok("ps", "--format", "json", copy).stdout)
        ctl.ok("delete", "--force", copy)
        _nothing_left(ctl, cid, copy)
    finally:
        ctl.cleanup(cid)
        ctl.cleanup(copy)
        first.close()
        second.close()


def test_checkpoint_of_a_paused_container(ctl, make_bundle, tmp_path):
    bundle = make_bundle(["sh", "-c", COUNT])
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    first, second = Pipe(), Pipe()
    try:
        ctl.start(cid, bundle, first)
        first.close_writer()
        first.numbers(3)
        ctl.ok("pause", cid)
        assert ctl.state(cid)["status"] == "paused"
        paused_at = first.drain(timeout=0.5)
        images = str(tmp_path / "img")
        ctl.ok("checkpoint", "--image-path", images, cid)
        _gone(ctl, cid)
        rest = first.drain()
        assert rest == [], f"a paused container counted on: {rest} after {paused_at}"
        ctl.start(cid, bundle, second, "restore", "--image-path", images)
        second.close_writer()
        st = ctl.state(cid)
        got = second.numbers(2)
        assert len(got) == 2, f"restored container ({st['status']}) does not count"
        assert st["status"] == "running"
        ctl.ok("delete", "--force", cid)
        _nothing_left(ctl, cid)
    finally:
        ctl.cleanup(cid)
        first.close()
        second.close()


def test_tmpfs_and_bind_mount(ctl, make_bundle, tmp_path):
    """The tmpfs's contents come back from the image; the bind is an external mount, mapped
    on restore to the bind source of the restoring bundle (runc's ext-mount-map)."""
    src1, src2 = tmp_path / "vol1", tmp_path / "vol2"
    src1.mkdir()
    src2.mkdir()
    (src1 / "which").write_text("one\n")
    (src2 / "which").write_text("two\n")

    def mounts(source):
        def mutate(cfg):
            cfg["mounts"] += [
                {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "size=1m"]},
                {"destination": "/home", "type": "bind", "source": str(source),
                 "options": ["rbind", "rw"]}]
        return mutate

    script = ("echo secret > /run/t; "
              "while true; do cat /run/t /home/which | tr '\\n' ' '; echo; sleep 0.1; done")
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    first, second = Pipe(), Pipe()
    try:
        ctl.start(cid, make_bundle(["sh", "-c", script], mounts(src1)), first)
        first.close_writer()
        assert _line(first) == "secret one"
        images = str(tmp_path / "img")
        ctl.ok("checkpoint", "--image-path", images, cid)
        first.drain()
        ctl.start(cid, make_bundle(["sh", "-c", script], mounts(src2)), second,
                  "restore", "--image-path", images)
        second.close_writer()
        assert _line(second) == "secret two"
        ctl.ok("delete", "--force", cid)
        _nothing_left(ctl, cid)
    finally:
        ctl.cleanup(cid)
        first.close()
        second.close()


def _line(pipe: Pipe, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while b"\n" not in pipe.buf and time.monotonic() < deadline:
        if select.select([pipe.r], [], [], 0.5)[0]:
            chunk = os.read(pipe.r, 4096)
            if not chunk:
                break
            pipe.buf += chunk
    line, _, pipe.buf = pipe.buf.partition(b"\n")
    return line.decode().strip()


TCP = ("nc -l -p 2000 & "  # stays listening
       # nc quits at EOF on its stdin: the server gets one that never ends
       "sleep 100000 | nc -l -p 1234 > /dev/shm/got & sleep 0.3; "
       "(i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done) | nc 127.0.0.1 1234 & "
       "while true; do tail -n1 /dev/shm/got; sleep 0.1; done")


def test_tcp_established_in_a_private_netns(ctl, make_bundle, tmp_path):
    """Connected TCP sockets (client and server both inside the container's own network
    namespace) and a listening one: refused without --tcp-established, the container left
    running; dumped and restored with it, the connection carries on."""
    bundle = make_bundle(["sh", "-c", TCP])
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    first, second = Pipe(), Pipe()
    try:
        ctl.start(cid, bundle, first)
        first.close_writer()
        assert len(first.numbers(3)) == 3
        images = str(tmp_path / "img")
        r = ctl("checkpoint", "--image-path", images, cid)
        assert r.returncode != 0
        assert ctl.state(cid)["status"] == "running"
        if ctl.exe == [OCIRUN]:
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert "dump.log" in r.stderr and "TCP" in r.stderr, r.stderr
        shutil.rmtree(images)
        ctl.ok("checkpoint", "--tcp-established", "--image-path", images, cid)
        first.drain()
        dumped = first.seen
        if ctl.exe != [OCIRUN]:
            r = ctl("restore", "-d", "--tcp-established", "--image-path", images, "-b", bundle,
                    cid, stdout=second.w, stderr=second.w)
            log = open(os.path.join(images, "restore.log")).read()
            if r.returncode != 0 and "Network is unreachable" in log:
                pytest.skip("runc 1.1.5 cannot restore it: CRIU: Can't connect inet socket "
                            "back: Network is unreachable (its netns' loopback stays down)")
            assert r.returncode == 0, log[-2000:]
        else:
            ctl.start(cid, bundle, second, "restore", "--tcp-established", "--image-path",
                      images)
        second.close_writer()
        after = second.numbers(5)
        # the client's count arrives through the restored connection, going on
        assert len(after) == 5 and after[0] >= dumped[-1] and after[-1] > after[0], (dumped,
                                                                                      after)
        if ctl.exe == [OCIRUN]:
            table = ctl.ok("exec", cid, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
            socks = {(row.split()[1].rsplit(":", 1)[1], row.split()[3])
                     for row in table.splitlines() if ":" in row.split()[0]}
            assert ("07D0", "0A") in socks, table  # port 2000 listening
            assert ("04D2", "01") in socks, table  # port 1234 established
        ctl.ok("delete", "--force", cid)
        _nothing_left(ctl, cid)
    finally:
        ctl.cleanup(cid)
        first.close()
        second.close()


# ------------------------------------------------------------------ bad inputs, ocirun only


def _one_line(r, *needles):
    fails(r, *needles)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bad_inputs_are_one_line_and_leave_nothing(rt, criu, make_bundle, tmp_path):
    o = Ctl([OCIRUN], rt.root, criu)
    bundle = make_bundle(["sh", "-c", COUNT])
    _one_line(o("checkpoint", "--image-path", str(tmp_path / "i"), "nosuch"),
              'container "nosuch" does not exist')
    _one_line(o("restore", "-d", "--image-path", str(tmp_path / "missing"), "-b", bundle, "r1"),
              "image path", "missing")
    (tmp_path / "empty").mkdir()
    _one_line(o("restore", "-d", "--image-path", str(tmp_path / "empty"), "-b", bundle, "r1"),
              "holds no checkpoint")
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    pipe = Pipe()
    try:
        o.start(cid, bundle, pipe)
        pipe.close_writer()
        pipe.numbers(2)
        # CRIU missing: one line, the container untouched.
        r = subprocess.run([OCIRUN, "--root", rt.root, "--criu", str(tmp_path / "no-criu"),
                            "checkpoint", "--image-path", str(tmp_path / "x"), cid],
                           capture_output=True, text=True, timeout=30)
        _one_line(r, "CRIU not found", "no-criu")
        assert o.state(cid)["status"] == "running"
        if not _mem_track(criu):  # this host: no soft-dirty tracking, so no pre-dump
            _one_line(o("checkpoint", "--pre-dump", "--image-path", str(tmp_path / "p"), cid),
                      "--pre-dump", "soft-dirty")
            assert o.state(cid)["status"] == "running"
        images = tmp_path / "img"
        o.ok("checkpoint", "--image-path", str(images), cid)
        pipe.drain()
        # A corrupt image: CRIU's error, naming its log, and nothing of the restore left.
        pstree = images / "pstree.img"
        pstree.write_bytes(pstree.read_bytes()[:6] + b"\xff" * 40)
        r = o("restore", "-d", "--image-path", str(images), "-b", bundle, cid)
        _one_line(r, "CRIU restore failed", str(images / "restore.log"))
        assert not os.path.exists(os.path.join(rt.root, cid))
        assert os.listdir(rt.root) == []
        _nothing_left(o, cid)
        # CRIU missing for restore
        r = subprocess.run([OCIRUN, "--root", rt.root, "--criu", "/nonexistent/criu",
                            "restore", "-d", "--image-path", str(images), "-b", bundle, cid],
                           capture_output=True, text=True, timeout=30)
        _one_line(r, "CRIU not found")
        assert os.listdir(rt.root) == []
    finally:
        o.cleanup(cid)
        pipe.close()


def _mem_track(criu: str) -> bool:
    r = subprocess.run([criu, "check", "--feature", "mem_dirty_track"], capture_output=True,
                       text=True, timeout=60)
    return r.returncode == 0


def test_features_and_version_say_whether_criu_is_usable(rt, criu):
    v = subprocess.run([OCIRUN, "--criu", criu, "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and f"criu: 4.2 ({criu})" in v.stdout, v
    v = subprocess.run([OCIRUN, "--criu", "/nonexistent/criu", "--version"],
                       capture_output=True, text=True)
    assert "criu: unavailable: CRIU not found (--criu /nonexistent/criu)" in v.stdout, v
    f = json.loads(subprocess.run([OCIRUN, "--criu", criu, "features"], capture_output=True,
                                  text=True).stdout)["annotations"]
    key = "org.opencontainers.runtime-spec.features.ocirun."
    assert f[key + "checkpoint.enabled"] == "true" and f[key + "criu"].startswith("4.2")
    f = json.loads(subprocess.run([OCIRUN, "--criu", "/nonexistent/criu", "features"],
                                  capture_output=True, text=True).stdout)["annotations"]
    assert f[key + "checkpoint.enabled"] == "false"


def test_terminal_container_gets_a_new_pty_on_the_console_socket(rt, criu, make_bundle,
                                                                   tmp_path):
    """A process.terminal container: CRIU restores the pty's slave side and sends a new
    master (orphan-pts-master), which restore passes on to --console-socket as create does."""
    from test_terminal import ConsoleServer

    o = Ctl([OCIRUN], rt.root, criu)

    def tty(cfg):
        cfg["process"]["terminal"] = True
        cfg["process"]["args"] = ["sh", "-c", COUNT]

    bundle = make_bundle(mutate=tty)
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    masters = []
    try:
        srv = ConsoleServer(tmp_path / "c1.sock")
        o.ok("create", "--console-socket", srv.path, "-b", bundle, cid)
        _data, fds, _rest = srv.receive()
        masters += fds
        o.ok("start", cid)
        first = _pty_numbers(fds[0], 3)
        assert first[:3] == [1, 2, 3], first
        images = str(tmp_path / "img")
        o.ok("checkpoint", "--image-path", images, cid)
        srv2 = ConsoleServer(tmp_path / "c2.sock")
        o.ok("restore", "-d", "--console-socket", srv2.path, "--image-path", images,
             "-b", bundle, cid)
        data, fds2, _rest = srv2.receive()
        masters += fds2
        assert len(fds2) == 1
        after = _pty_numbers(fds2[0], 3)
        assert len(after) == 3 and after[0] > first[-1], (first, after)
        o.ok("delete", "--force", cid)
        _nothing_left(o, cid)
    finally:
        o.cleanup(cid)
        for fd in masters:
            os.close(fd)


def _pty_numbers(master: int, want: int, timeout: float = 10) -> list[int]:
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        if not select.select([master], [], [], 0.2)[0]:
            continue
        try:
            buf += os.read(master, 4096)
        except OSError:
            break
        *lines, buf = buf.split(b"\n")
        out += [int(x) for x in lines if x.strip().isdigit()]
    return out


def test_foreground_restore_waits_and_returns_the_exit_code(ctl, make_bundle, tmp_path):
    """restore without --detach waits for the restored init as `run` does, gives its exit
    code and deletes the container; --pid-file names the restored init."""
    script = "i=0; while [ $i -lt 25 ]; do i=$((i+1)); echo $i; sleep 0.1; done; exit 7"
    bundle = make_bundle(["sh", "-c", script])
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    first, second = Pipe(), Pipe()
    try:
        ctl.start(cid, bundle, first)
        first.close_writer()
        first.numbers(3)
        images = str(tmp_path / "img")
        ctl.ok("checkpoint", "--image-path", images, cid)
        first.drain()
        last = first.seen[-1]
        assert last < 25
        pid_file = tmp_path / "pid"
        r = ctl("restore", "--pid-file", str(pid_file), "--image-path", images, "-b", bundle,
                cid, stdout=second.w, stderr=second.w)
        second.close_writer()
        assert r.returncode == 7
        assert second.drain() == list(range(last + 1, 26))
        assert int(pid_file.read_text()) > 0
        _gone(ctl, cid)
        _nothing_left(ctl, cid)
    finally:
        ctl.cleanup(cid)
        first.close()
        second.close()


def test_network_namespace_joined_by_path(ctl, make_bundle, tmp_path):
    """An engine's network namespace (joined by path, as podman and CNI give it) is left
    to the engine: dumped as external, and the restored tree joins the one the new config
    names (runc's extRootNetNS)."""
    ns = f"ck-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    first, second = Pipe(), Pipe()
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", "10.99.7.1/32", "dev", "lo"],
                       check=True)

        def joined(cfg):
            cfg["linux"]["namespaces"] = [
                n if n["type"] != "network" else {"type": "network",
                                                  "path": f"/run/netns/{ns}"}
                for n in cfg["linux"]["namespaces"]]

        script = "while true; do ip -o addr show lo | grep -c 10.99.7.1; sleep 0.1; done"
        bundle = make_bundle(["sh", "-c", script], joined)
        ctl.start(cid, bundle, first)
        first.close_writer()
        assert _line(first) == "1"  # the engine's address
        images = str(tmp_path / "img")
        ctl.ok("checkpoint", "--image-path", images, cid)
        first.drain()
        ctl.start(cid, bundle, second, "restore", "--image-path", images)
        second.close_writer()
        assert _line(second) == "1"
        pid = ctl.state(cid)["pid"]
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
        ctl.ok("delete", "--force", cid)
        _nothing_left(ctl, cid)
    finally:
        ctl.cleanup(cid)
        first.close()
        second.close()
        subprocess.run(["ip", "netns", "delete", ns])


def test_restore_runs_prestart_and_create_runtime_hooks(rt, criu, make_bundle, tmp_path):
    """As runc: once CRIU has made the namespaces (its setup-namespaces notification), with
    the state of the container being restored on stdin."""
    o = Ctl([OCIRUN], rt.root, criu)
    out = tmp_path / "hooks"
    out.mkdir()

    def hooks(cfg):
        cfg["hooks"] = {kind: [{"path": "/bin/sh",
                                "args": ["sh", "-c", f"cat > {out}/{kind}"]}]
                        for kind in ("prestart", "createRuntime")}

    cid = f"ck-{uuid.uuid4().hex[:8]}"
    plain = make_bundle(["sh", "-c", COUNT])
    first, second = Pipe(), Pipe()
    try:
        o.start(cid, plain, first)
        first.close_writer()
        first.numbers(2)
        images = str(tmp_path / "img")
        o.ok("checkpoint", "--image-path", images, cid)
        o.start(cid, make_bundle(["sh", "-c", COUNT], hooks), second, "restore",
                "--image-path", images)
        second.close_writer()
        for kind in ("prestart", "createRuntime"):
            st = json.loads((out / kind).read_text())
            assert st["id"] == cid and st["pid"] > 0 and st["status"] == "created", st
        assert len(second.numbers(2)) == 2
        o.ok("delete", "--force", cid)
    finally:
        o.cleanup(cid)
        first.close()
        second.close()
