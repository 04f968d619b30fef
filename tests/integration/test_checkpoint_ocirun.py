"""checkpoint / restore, what only ocirun is asked here: bad inputs (one line, nothing left
behind), `features`/`--version` saying whether CRIU is usable, a terminal container's new
pty on --console-socket, and the hooks restore runs. CRIU from criutools' `criu` fixture."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
import uuid

from clitools import fails
from criutools import COUNT, Ctl, Pipe, criu, make_bundle, nothing_left  # noqa: F401
from testenv import OCIRUN


def _oneline(r, *needles):
    fails(r, *needles)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bad_inputs_are_one_line_and_leave_nothing(rt, criu, make_bundle, tmp_path):
    o = Ctl([OCIRUN], rt.root, criu)
    bundle = make_bundle(["sh", "-c", COUNT])
    _oneline(
        o("checkpoint", "--image-path", str(tmp_path / "i"), "nosuch"),
        'container "nosuch" does not exist',
    )
    _oneline(
        o("restore", "-d", "--image-path", str(tmp_path / "missing"), "-b", bundle, "r1"),
        "image path",
        "missing",
    )
    (tmp_path / "empty").mkdir()
    _oneline(
        o("restore", "-d", "--image-path", str(tmp_path / "empty"), "-b", bundle, "r1"),
        "holds no checkpoint",
    )
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    pipe = Pipe()
    try:
        o.start(cid, bundle, pipe)
        pipe.close_writer()
        pipe.numbers(2)
        # CRIU missing: one line, the container untouched.
        r = subprocess.run(
            [
                OCIRUN,
                "--root",
                rt.root,
                "--criu",
                str(tmp_path / "no-criu"),
                "checkpoint",
                "--image-path",
                str(tmp_path / "x"),
                cid,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        _oneline(r, "CRIU not found", "no-criu")
        assert o.state(cid)["status"] == "running"
        if not _mem_track(criu):  # this host: no soft-dirty tracking, so no pre-dump
            _oneline(
                o("checkpoint", "--pre-dump", "--image-path", str(tmp_path / "p"), cid),
                "--pre-dump",
                "soft-dirty",
            )
            assert o.state(cid)["status"] == "running"
        images = tmp_path / "img"
        o.ok("checkpoint", "--image-path", str(images), cid)
        pipe.drain()
        # A corrupt image: CRIU's error, naming its log, and nothing of the restore left.
        pstree = images / "pstree.img"
        pstree.write_bytes(pstree.read_bytes()[:6] + b"\xff" * 40)
        r = o("restore", "-d", "--image-path", str(images), "-b", bundle, cid)
        _oneline(r, "CRIU restore failed", str(images / "restore.log"))
        assert not os.path.exists(os.path.join(rt.root, cid))
        assert os.listdir(rt.root) == []
        nothing_left(o, cid)
        # CRIU missing for restore
        r = subprocess.run(
            [
                OCIRUN,
                "--root",
                rt.root,
                "--criu",
                "/nonexistent/criu",
                "restore",
                "-d",
                "--image-path",
                str(images),
                "-b",
                bundle,
                cid,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        _oneline(r, "CRIU not found")
        assert os.listdir(rt.root) == []
    finally:
        o.cleanup(cid)
        pipe.close()


def _mem_track(criu: str) -> bool:
    r = subprocess.run(
        [criu, "check", "--feature", "mem_dirty_track"], capture_output=True, text=True, timeout=60
    )
    return r.returncode == 0


def test_features_and_version_say_whether_criu_is_usable(rt, criu):
    v = subprocess.run([OCIRUN, "--criu", criu, "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and f"criu: 4.2 ({criu})" in v.stdout, v
    v = subprocess.run(
        [OCIRUN, "--criu", "/nonexistent/criu", "--version"], capture_output=True, text=True
    )
    assert "criu: unavailable: CRIU not found (--criu /nonexistent/criu)" in v.stdout, v
    f = json.loads(
        subprocess.run([OCIRUN, "--criu", criu, "features"], capture_output=True, text=True).stdout
    )["annotations"]
    key = "org.opencontainers.runtime-spec.features.ocirun."
    assert f[key + "checkpoint.enabled"] == "true" and f[key + "criu"].startswith("4.2")
    f = json.loads(
        subprocess.run(
            [OCIRUN, "--criu", "/nonexistent/criu", "features"], capture_output=True, text=True
        ).stdout
    )["annotations"]
    assert f[key + "checkpoint.enabled"] == "false"


def test_terminal_container_gets_a_new_pty_on_the_console_socket(rt, criu, make_bundle, tmp_path):
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
        o.ok(
            "restore",
            "-d",
            "--console-socket",
            srv2.path,
            "--image-path",
            images,
            "-b",
            bundle,
            cid,
        )
        data, fds2, _rest = srv2.receive()
        masters += fds2
        assert len(fds2) == 1
        after = _pty_numbers(fds2[0], 3)
        assert len(after) >= 3 and after[0] > first[-1], (first, after)
        o.ok("delete", "--force", cid)
        nothing_left(o, cid)
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


def test_restore_runs_prestart_and_create_runtime_hooks(rt, criu, make_bundle, tmp_path):
    """As runc: once CRIU has made the namespaces (its setup-namespaces notification), with
    the state of the container being restored on stdin."""
    o = Ctl([OCIRUN], rt.root, criu)
    out = tmp_path / "hooks"
    out.mkdir()

    def hooks(cfg):
        cfg["hooks"] = {
            kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{kind}"]}]
            for kind in ("prestart", "createRuntime")
        }

    cid = f"ck-{uuid.uuid4().hex[:8]}"
    plain = make_bundle(["sh", "-c", COUNT])
    first, second = Pipe(), Pipe()
    try:
        o.start(cid, plain, first)
        first.close_writer()
        first.numbers(2)
        images = str(tmp_path / "img")
        o.ok("checkpoint", "--image-path", images, cid)
        o.start(
            cid, make_bundle(["sh", "-c", COUNT], hooks), second, "restore", "--image-path", images
        )
        second.close_writer()
        for kind in ("prestart", "createRuntime"):
            st = json.loads((out / kind).read_text())
            assert st["id"] == cid and st["pid"] > 0 and st["status"] == "created", st
        assert len(second.numbers(2)) >= 2
        o.ok("delete", "--force", cid)
    finally:
        o.cleanup(cid)
        first.close()
        second.close()


def test_criu_flags_pass_through_and_bad_values_are_refused(rt, criu, make_bundle, tmp_path):
    o = Ctl([OCIRUN], rt.root, criu)
    cid = f"ck-{uuid.uuid4().hex[:8]}"
    bundle = make_bundle(["sh", "-c", COUNT])
    first, second = Pipe(), Pipe()
    flags = ("--file-locks", "--ext-unix-sk", "--manage-cgroups-mode", "full")
    try:
        o.start(cid, bundle, first)
        first.close_writer()
        first.numbers(2)
        for bad, why in (
            (("--manage-cgroups-mode", "bogus"), "invalid --manage-cgroups-mode"),
            (("--empty-ns", "ipc"), "only network"),
        ):
            r = o("checkpoint", *bad, "--image-path", str(tmp_path / "x"), cid)
            fails(r, why)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert o.state(cid)["status"] == "running"
        images, work = str(tmp_path / "img"), tmp_path / "work"
        o.ok(
            "checkpoint",
            *flags,
            "--auto-dedup",
            "--work-path",
            str(work),
            "--image-path",
            images,
            cid,
        )
        assert (work / "dump.log").exists()
        o.start(cid, bundle, second, "restore", *flags, "--image-path", images)
        second.close_writer()
        assert len(second.numbers(2)) >= 2
        o.ok("delete", "--force", cid)
        nothing_left(o, cid)
    finally:
        o.cleanup(cid)
        first.close()
        second.close()
