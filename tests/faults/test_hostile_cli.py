"""Hostile command lines: unknown flags, bad ids (/ .. NUL, control characters, 1 KB), a
--root on a read-only or a full filesystem, a bundle that is a file, a config.json that is
unreadable, a FIFO, endless (/dev/zero) or huge. Each: one line naming what is wrong, a
non-zero exit, no traceback, nothing left (state dir, cgroup, process)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile

import pytest
from faultlib import call, cgroups_named, leftovers, mounts, ok, one_line, own_cgroup, uid
from testenv import OCIRUN

COMMANDS = [
    ["create", "--bundle", "."],
    ["run", "--bundle", "."],
    ["state"],
    ["start"],
    ["kill"],
    ["delete"],
    ["delete", "--force"],
    ["exec"],
    ["pause"],
    ["ps"],
]


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus", "list"],
        ["list", "--nope"],
        ["create", "--frobnicate", "x"],
        ["delete", "--force=maybe", "x"],
        ["kill"],
        ["nosuchcommand"],
        ["state"],
        ["run", "--preserve-fds", "lots", "x"],
        ["list", "--format", "yaml"],
    ],
)
def test_unknown_flags_and_missing_arguments(rt, argv):
    line = one_line(call(rt, *argv))
    assert not line.startswith("Usage"), line
    assert not os.path.exists(rt.root) or os.listdir(rt.root) == []


@pytest.mark.parametrize(
    "cid", ["a/b", "..", ".", "../x", "a\nb", "a\x01b", "a b", "", "\u00e9t\u00e9", "a" * 256]
)
@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(c))
def test_bad_ids(rt, cmd, cid):
    one_line(call(rt, *cmd, cid), "container id")
    assert not os.path.exists(rt.root) or os.listdir(rt.root) == []


def test_nul_in_an_id_cannot_reach_the_runtime_but_is_refused_by_it():
    """argv can't carry a NUL (execve ends the string there); every command checks ids
    through state.check_id, which refuses it."""
    from ocirun.errors import UsageError
    from ocirun.state import check_id

    with pytest.raises(UsageError, match="invalid container id"):
        check_id("a\0b")
    with pytest.raises(ValueError):
        subprocess.run([OCIRUN, "state", "a\0b"])


def test_an_id_of_1_kb(rt, make_bundle):
    cid = "a" * 1024
    r = call(rt, "run", "--bundle", make_bundle(args=["true"]), cid)
    assert len(one_line(r, "longer than 255 characters")) < 200
    for cmd in COMMANDS[2:]:
        one_line(call(rt, *cmd, cid), "longer than 255 characters")
    assert not os.path.exists(rt.root) or os.listdir(rt.root) == []
    assert cgroups_named(cid[:255]) == []


@contextlib.contextmanager
def small_tmpfs(path, options: str):
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "ocirun-faults", str(path)], check=True)
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_root_on_a_read_only_filesystem(rt, make_bundle, tmp_path):
    before = mounts()
    with small_tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        for root in (ro, os.path.join(ro, "below")):
            cid = uid("ro")
            bundle = make_bundle(args=["true"], mutate=own_cgroup(cid))
            for cmd in (["create", "--bundle", bundle], ["run", "--bundle", bundle]):
                r = call(rt, "--root", root, *cmd, cid)  # the last --root wins
                one_line(r, "Read-only file system")
            ok(call(rt, "--root", root, "list"))
            one_line(call(rt, "--root", root, "state", cid), "does not exist")
            ok(call(rt, "--root", root, "delete", "--force", cid))
            ok(call(rt, "--root", root, "gc"))
            assert not leftovers(rt, [cid], before), leftovers(rt, [cid], before)


def test_root_on_a_full_filesystem(rt, make_bundle, tmp_path):
    before = mounts()
    with small_tmpfs(tmp_path / "full", "size=64k") as full:
        root = os.path.join(full, "root")
        os.mkdir(root)
        fd = os.open(os.path.join(full, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"x" * 4096)
        os.close(fd)
        for _ in range(3):
            cid = uid("full")
            bundle = make_bundle(args=["sleep", "600"], mutate=own_cgroup(cid))
            one_line(
                call(rt, "--root", root, "run", "--detach", "--bundle", bundle, cid),
                "No space left on device",
            )
            assert os.listdir(root) == [], "create left its state dir"
            assert not leftovers(rt, [cid], before)
        os.unlink(os.path.join(full, "filler"))
        cid = uid("full")  # room again: it works, and cleans up
        ok(
            call(
                rt,
                "--root",
                root,
                "run",
                "--bundle",
                make_bundle(args=["true"], mutate=own_cgroup(cid)),
                cid,
            )
        )
        assert os.listdir(root) == [] and not leftovers(rt, [cid], before)


def test_a_bundle_that_is_a_file(rt, tmp_path):
    f = tmp_path / "bundle"
    f.write_text("{}")
    one_line(call(rt, "run", "--bundle", str(f), uid("c")), str(f), "not a directory")
    one_line(call(rt, "run", "--bundle", "/dev/null", uid("c")), "not a directory")
    assert not os.path.exists(rt.root) or os.listdir(rt.root) == []


def _config_kinds(bundle: str):
    cfg = os.path.join(bundle, "config.json")
    text = open(cfg, "rb").read()
    os.unlink(cfg)
    os.mkfifo(cfg)
    yield "not a regular file"  # a FIFO: no writer, no wait
    os.unlink(cfg)
    os.symlink("/dev/zero", cfg)
    yield "not a regular file"  # read for ever before
    os.unlink(cfg)
    os.mkdir(cfg)
    yield "not a regular file"
    os.rmdir(cfg)
    with open(cfg, "wb") as f:
        f.write(b" " * (17 << 20) + text)
    yield "larger than 16 MiB"
    os.unlink(cfg)
    os.symlink(cfg, cfg)
    yield "Too many levels of symbolic links"


def test_an_unusable_config_json(rt, make_bundle):
    bundle = make_bundle(args=["true"])
    for needle in _config_kinds(bundle):
        one_line(call(rt, "run", "--bundle", bundle, uid("c"), timeout=10), "config.json", needle)
    assert not os.path.exists(rt.root) or os.listdir(rt.root) == []


def test_an_unreadable_config_json(rt, make_bundle, tmp_path):
    """Root reads any file: the caller is made an unprivileged user for this one."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    top = tempfile.mkdtemp(prefix="ocirun-faults-")  # one nobody can reach
    os.chmod(top, 0o755)
    bundle = os.path.join(top, "bundle")
    shutil.copytree(make_bundle(args=["true"]), bundle)
    os.chmod(os.path.join(bundle, "config.json"), 0)
    root = os.path.join(top, "user-root")
    r = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            OCIRUN,
            "--root",
            str(root),
            "run",
            "--bundle",
            bundle,
            "c",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, OCIRUN_CACHE_DIR=""),
    )
    try:
        one_line(r, "config.json", "Permission denied")
        assert not os.path.exists(root) or os.listdir(root) == []
    finally:
        shutil.rmtree(top)
