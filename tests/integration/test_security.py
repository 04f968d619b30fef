"""Security properties of real containers: capability sets, device nodes, fd hygiene, and
known container-escape techniques, each attempted and shown to fail:

- CVE-2024-21626: process.cwd through a leaked fd (/proc/self/fd/N) to a host directory;
- symlinks in the image that point out of it (a mount destination must stay inside);
- CVE-2025-31133 class: a /dev/null that is not the null device used to mask paths, and
  device creation that follows an image's symlink to a host file;
- CVE-2016-9962 class: the init (the runtime's memory) must not be inspectable from inside
  (non-dumpable) while it waits for `start`;
- nothing of the runtime's environment reaches the container.

A static probe (tests/probe/probe.c, compiled per session) lists fds exactly (a shell's glob
would show its own directory fd) and makes raw syscalls; it is bound read-only at /home.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from clitools import call, fails, ok
from testenv import REPO, ROOTFS

from ocirun.tables import CAPS

PROBE_DIR = "/home"
PROBE = f"{PROBE_DIR}/probe"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def probe_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe")
    subprocess.run(["sh", str(REPO / "tests/probe/build.sh"), str(out)], check=True)
    return out


@pytest.fixture
def rootfs_copy(tmp_path) -> Path:
    dest = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(ROOTFS), str(dest)], check=True)
    return dest


def ids(rt) -> list[str]:
    return ok(call(rt, "list", "-q")).stdout.split()


def with_probe(probe_dir: Path, *more):
    def mutate(cfg):
        cfg["mounts"].append(
            {
                "destination": PROBE_DIR,
                "type": "bind",
                "source": str(probe_dir),
                "options": ["rbind", "ro"],
            }
        )
        for fn in more:
            fn(cfg)

    return mutate


def mask(names) -> int:
    return sum(1 << CAPS[n] for n in set(names))


def caps_of(status: str) -> dict[str, int]:
    out = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            out[key] = int(value.strip(), 16)
    assert len(out) == 5, status
    return out


def fd_lines(text: str) -> dict[int, str]:
    return {
        int(n): target
        for n, _, target in (line.partition(" -> ") for line in text.splitlines() if " -> " in line)
    }


# --------------------------------------------------------------------------- capabilities


@pytest.mark.parametrize("nnp", [True, False])
def test_capability_sets_as_root(rt, make_bundle, nnp):
    """Bounding/inheritable/ambient exactly as configured, upper word included (CAP_BPF 39,
    CAP_CHECKPOINT_RESTORE 40). For uid 0 the kernel's execve rule makes permitted =
    effective = bounding | inheritable, capped by the permitted set we configured when
    no_new_privs is set; the configured effective set is not visible after execve."""
    bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ]
    prm = bnd[:-1]
    inh = ["CAP_KILL", "CAP_BPF"]
    amb = ["CAP_KILL"]

    def mutate(cfg):
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["process"]["capabilities"] = {
            "bounding": bnd,
            "permitted": prm,
            "effective": bnd[:3],
            "inheritable": inh,
            "ambient": amb,
        }

    r = ok(
        call(
            rt,
            "run",
            "--bundle",
            make_bundle(args=["cat", "/proc/self/status"], mutate=mutate),
            "caps",
        )
    )
    caps = caps_of(r.stdout)
    got = {k: hex(v) for k, v in caps.items()}
    assert caps["CapBnd"] == mask(bnd), got
    assert caps["CapInh"] == mask(inh), got
    assert caps["CapAmb"] == mask(amb), got
    want = mask(prm) if nnp else mask(bnd) | mask(inh)
    assert caps["CapPrm"] == want, got
    assert caps["CapEff"] == want, got


def test_no_capabilities_at_all(rt, make_bundle):
    def mutate(cfg):
        cfg["process"]["capabilities"] = {}

    r = call(
        rt,
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "cat /proc/self/status; chown 1:1 /dev/shm"], mutate=mutate),
        "caps",
    )
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.stderr
    assert caps_of(r.stdout) == dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), 0)


def test_ambient_capabilities_for_non_root(rt, make_bundle):
    """uid 1000 keeps exactly its ambient set across execve, and can use it (chown)."""
    sets = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_BPF"]

    def mutate(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        cfg["process"]["capabilities"] = {
            k: sets for k in ("bounding", "permitted", "effective", "inheritable", "ambient")
        }

    script = (
        "cat /proc/self/status; touch /dev/shm/f; chown 0:0 /dev/shm/f && "
        "stat -c owner=%u:%g /dev/shm/f"
    )
    r = ok(
        call(rt, "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "caps")
    )
    caps = caps_of(r.stdout)
    want = mask(sets)
    assert caps == {
        "CapInh": want,
        "CapPrm": want,
        "CapEff": want,
        "CapBnd": want,
        "CapAmb": want,
    }, {k: hex(v) for k, v in caps.items()}
    assert r.stdout.splitlines()[-1] == "owner=0:0", r.stdout


def test_non_root_without_ambient_cannot_chown(rt, make_bundle):
    def mutate(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        cfg["process"]["capabilities"] = {
            k: ["CAP_CHOWN"] for k in ("bounding", "permitted", "effective")
        }

    r = call(
        rt,
        "run",
        "--bundle",
        make_bundle(
            args=[
                "sh",
                "-c",
                "grep CapEff /proc/self/status; touch /dev/shm/f; chown 0:0 /dev/shm/f",
            ],
            mutate=mutate,
        ),
        "caps",
    )
    assert r.returncode == 1
    assert r.stdout.split() == ["CapEff:", "0000000000000000"]
    assert "Operation not permitted" in r.stderr, r.stderr


def test_unknown_capability_is_left_out_with_a_warning(rt, make_bundle, tmp_path):
    """runtime-spec config.md and runc: a capability that can't be granted is not an error."""

    def mutate(cfg):
        cfg["process"]["capabilities"]["effective"].append("CAP_TEST")

    log = tmp_path / "log"
    ok(
        call(
            rt,
            "--log",
            str(log),
            "run",
            "--bundle",
            make_bundle(args=["true"], mutate=mutate),
            "caps",
        )
    )
    assert "ignoring unknown or unavailable capabilities: [CAP_TEST]" in log.read_text()
    assert ids(rt) == []


# --------------------------------------------------------------------------- devices


def test_configured_devices(rt, make_bundle, probe_dir):
    devices = [
        {
            "path": "/dev/mychar",
            "type": "c",
            "major": 1,
            "minor": 5,
            "fileMode": 0o640,
            "uid": 1000,
            "gid": 1001,
        },
        {
            "path": "/dev/myblk",
            "type": "b",
            "major": 7,
            "minor": 3,
            "fileMode": 0o600,
            "uid": 0,
            "gid": 6,
        },
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o620, "uid": 1002, "gid": 1003},
        {
            "path": "/dev/sub/dir/nested",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o666,
            "uid": 0,
            "gid": 0,
        },
    ]

    def add(cfg):
        cfg["linux"]["devices"] = devices

    script = (
        "; ".join(f"{PROBE} stat {d['path']}" for d in devices)
        + "; head -c 4 /dev/mychar | od -An -tx1"
    )
    r = ok(
        call(
            rt,
            "run",
            "--bundle",
            make_bundle(args=["sh", "-c", script], mutate=with_probe(probe_dir, add)),
            "dev",
        )
    )
    assert r.stdout.splitlines() == [
        "type=c mode=0640 uid=1000 gid=1001 rdev=1:5",
        "type=b mode=0600 uid=0 gid=6 rdev=7:3",
        "type=p mode=0620 uid=1002 gid=1003 rdev=0:0",
        "type=c mode=0666 uid=0 gid=0 rdev=1:3",
        " 00 00 00 00",
    ], r.stdout


# --------------------------------------------------------------------------- fd hygiene


def leaky_fds(tmp_path: Path, stack) -> dict[int, int]:
    """fds 3..10 of a careless caller: host directories, files, both ends of a pipe."""
    srcs = []
    for path in ("/", "/etc", str(tmp_path)):
        srcs.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
    srcs.append(os.open("/etc/hostname", os.O_RDONLY))
    (tmp_path / "w").write_text("")
    srcs.append(os.open(tmp_path / "w", os.O_WRONLY))
    r, w = os.pipe()
    srcs += [r, w, os.open("/dev/null", os.O_RDWR)]
    stack.extend(srcs)
    return {3 + i: fd for i, fd in enumerate(srcs)}


@pytest.fixture
def fd_stack():
    fds: list[int] = []
    yield fds
    for fd in fds:
        os.close(fd)


def test_leaked_fds_do_not_reach_run(rt, make_bundle, probe_dir, tmp_path, fd_stack):
    leaks = leaky_fds(tmp_path, fd_stack)
    assert sorted(leaks) == list(range(3, 11))
    r = ok(
        call(
            rt,
            "run",
            "--bundle",
            make_bundle(args=[PROBE, "fds"], mutate=with_probe(probe_dir)),
            "fd",
            fds=leaks,
        )
    )
    assert sorted(fd_lines(r.stdout)) == [0, 1, 2], r.stdout


def test_leaked_fds_do_not_reach_create_start(rt, make_bundle, probe_dir, tmp_path, fd_stack):
    leaks = leaky_fds(tmp_path, fd_stack)
    out = tmp_path / "out"
    out.mkdir()

    def to_file(cfg):
        cfg["mounts"].append(
            {"destination": "/run", "type": "bind", "source": str(out), "options": ["rbind", "rw"]}
        )

    bundle = make_bundle(
        args=["sh", "-c", f"{PROBE} fds > /run/fds"], mutate=with_probe(probe_dir, to_file)
    )
    ok(call(rt, "create", "--bundle", bundle, "fd", fds=leaks))
    try:
        ok(call(rt, "start", "fd", fds=leaks))
        deadline = time.monotonic() + 10
        while not (out / "fds").exists() or not (out / "fds").read_text():
            assert time.monotonic() < deadline, "the container never wrote its fds"
            time.sleep(0.05)
        time.sleep(0.1)
        assert sorted(fd_lines((out / "fds").read_text())) == [0, 1, 2]
    finally:
        ok(call(rt, "delete", "--force", "fd"))


def test_preserve_fds_passes_exactly_those(rt, make_bundle, probe_dir, tmp_path, fd_stack):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    fd_stack.extend([r1, r2])
    os.write(w1, b"first pipe\n")
    os.write(w2, b"second pipe\n")
    os.close(w1)
    os.close(w2)
    extra = os.open("/etc/hostname", os.O_RDONLY)
    fd_stack.append(extra)
    script = f"{PROBE} fds; {PROBE} read 3; {PROBE} read 4"
    r = ok(
        call(
            rt,
            "run",
            "--preserve-fds",
            "2",
            "--bundle",
            make_bundle(args=["sh", "-c", script], mutate=with_probe(probe_dir)),
            "fd",
            fds={3: r1, 4: r2, 5: extra},
        )
    )
    lines = r.stdout.splitlines()
    fds = fd_lines(r.stdout)
    assert sorted(fds) == [0, 1, 2, 3, 4], r.stdout
    assert fds[3].startswith("pipe:") and fds[4].startswith("pipe:")
    assert lines[-2:] == ["first pipe", "second pipe"], r.stdout


def test_listen_fds_socket_activation(rt, make_bundle, probe_dir, tmp_path, fd_stack):
    """LISTEN_FDS=1 (LISTEN_PID unset) for the runtime: fd 3 goes on, and the process gets
    LISTEN_FDS=1 LISTEN_PID=1 (it is pid 1); LISTEN_* of process.env are replaced."""
    r3, w3 = os.pipe()
    fd_stack.append(r3)
    os.write(w3, b"activated\n")
    os.close(w3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")}
    env["LISTEN_FDS"] = "1"

    def stale(cfg):
        cfg["process"]["env"] += ["LISTEN_FDS=7", "LISTEN_PID=99"]

    script = f"env | grep ^LISTEN_ | sort; exec {PROBE} fds"
    r = ok(
        call(
            rt,
            "run",
            "--bundle",
            make_bundle(args=["sh", "-c", script], mutate=with_probe(probe_dir, stale)),
            "fd",
            env=env,
            fds={3: r3, 4: r3},
        )
    )
    lines = r.stdout.splitlines()
    assert lines[:2] == ["LISTEN_FDS=1", "LISTEN_PID=1"], r.stdout
    fds = fd_lines(r.stdout)
    assert sorted(fds) == [0, 1, 2, 3], r.stdout
    assert fds[3].startswith("pipe:")


def test_listen_fds_for_another_pid_is_ignored(rt, make_bundle, probe_dir, fd_stack):
    r3, w3 = os.pipe()
    fd_stack.extend([r3, w3])
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID="1")  # not the runtime's pid
    r = ok(
        call(
            rt,
            "run",
            "--bundle",
            make_bundle(
                args=["sh", "-c", f"env | grep -c ^LISTEN_; exec {PROBE} fds"],
                mutate=with_probe(probe_dir),
            ),
            "fd",
            env=env,
            fds={3: r3},
        )
    )
    assert r.stdout.splitlines()[0] == "0", r.stdout
    assert sorted(fd_lines(r.stdout)) == [0, 1, 2], r.stdout


# --------------------------------------------------------------------------- escapes


def test_cwd_through_leaked_fd_cve_2024_21626(rt, make_bundle, tmp_path, fd_stack):
    """process.cwd = /proc/self/fd/N while the caller leaks host directories at fds 3..8:
    create must fail (or at least the process must not be in the host's tree)."""
    host_marker = tmp_path / "host-marker"
    host_marker.write_text("host side\n")
    leaks = {}
    for i, path in enumerate(["/", "/etc", str(tmp_path), "/", "/proc", "/run"]):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fd_stack.append(fd)
        leaks[3 + i] = fd
    rootfs_hostname = (ROOTFS / "etc/hostname").read_text()
    script = "pwd; cat ../../../etc/hostname; ls; cat host-marker 2>/dev/null; true"
    for n in range(3, 13):
        bundle = make_bundle(
            args=["sh", "-c", script],
            mutate=lambda c, n=n: c["process"].update(cwd=f"/proc/self/fd/{n}"),
        )
        r = call(rt, "run", "--bundle", bundle, f"cwd{n}", fds=leaks)
        assert "Traceback" not in r.stderr, r.stderr
        assert "host side" not in r.stdout, (n, r.stdout)
        if r.returncode == 0:
            lines = r.stdout.splitlines()
            assert lines[1] == rootfs_hostname.strip(), (n, r.stdout)
        else:
            assert f"/proc/self/fd/{n}" in r.stderr, (n, r.stderr)
        assert ids(rt) == []


def test_cwd_through_leaked_fd_fails_create(rt, make_bundle, tmp_path, fd_stack):
    """The strict form: every such create is refused, with the path in the message."""
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    fd_stack.append(fd)
    leaks = {n: fd for n in range(3, 9)}
    for n in range(3, 9):
        bundle = make_bundle(
            args=["pwd"], mutate=lambda c, n=n: c["process"].update(cwd=f"/proc/self/fd/{n}")
        )
        fails(call(rt, "create", "--bundle", bundle, f"cwd{n}", fds=leaks), f"/proc/self/fd/{n}")
    assert ids(rt) == []


def test_image_symlink_to_root_keeps_mount_inside(rt, make_bundle, rootfs_copy, tmp_path):
    """/mnt -> / in the image; a bind to /mnt/pwned lands in the rootfs, not at host /pwned."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("bound\n")
    mnt = rootfs_copy / "mnt"
    if mnt.is_dir() and not mnt.is_symlink():
        mnt.rmdir()
    elif mnt.exists() or mnt.is_symlink():
        mnt.unlink()
    mnt.symlink_to("/")
    assert not Path("/pwned").exists()

    def mutate(cfg):
        cfg["root"] = {"path": str(rootfs_copy), "readonly": False}
        cfg["mounts"].append(
            {
                "destination": "/mnt/pwned",
                "type": "bind",
                "source": str(src),
                "options": ["rbind", "ro"],
            }
        )

    try:
        r = ok(
            call(
                rt,
                "run",
                "--bundle",
                make_bundle(args=["cat", "/pwned/marker"], mutate=mutate),
                "sym",
            )
        )
        assert r.stdout == "bound\n"
        assert not Path("/pwned").exists()
        assert (rootfs_copy / "pwned").is_dir()
    finally:
        if Path("/pwned").is_dir() and not os.path.ismount("/pwned"):
            os.rmdir("/pwned")


def test_image_symlink_to_etc_keeps_tmpfs_inside(rt, make_bundle, rootfs_copy):
    (rootfs_copy / "etc2").symlink_to("/etc")
    assert not Path("/etc/x").exists()

    def mutate(cfg):
        cfg["root"] = {"path": str(rootfs_copy), "readonly": False}
        cfg["mounts"].append(
            {"destination": "/etc2/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
        )

    try:
        r = ok(
            call(
                rt,
                "run",
                "--bundle",
                make_bundle(
                    args=["sh", "-c", "grep ' /etc/x ' /proc/self/mounts | cut -d' ' -f3"],
                    mutate=mutate,
                ),
                "sym",
            )
        )
        assert r.stdout == "tmpfs\n"
        assert not Path("/etc/x").exists()
        assert (rootfs_copy / "etc" / "x").is_dir()
    finally:
        if Path("/etc/x").is_dir() and not os.path.ismount("/etc/x"):
            os.rmdir("/etc/x")


def _dev_bind_config(devdir: Path):
    def mutate(cfg):
        cfg["mounts"] = [
            m
            for m in cfg["mounts"]
            if m["destination"] not in ("/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")
        ]
        cfg["mounts"].append(
            {
                "destination": "/dev",
                "type": "bind",
                "source": str(devdir),
                "options": ["rbind", "rw"],
            }
        )
        cfg["linux"]["maskedPaths"] = ["/proc/keys", "/proc/timer_list"]

    return mutate


@pytest.mark.parametrize("fake", ["regular file", "symlink"])
def test_fake_dev_null_is_never_used_to_mask_cve_2025_31133(rt, make_bundle, tmp_path, fake):
    """/dev bound from a host dir whose `null` is a regular file, or a symlink to a file
    (/etc/hostname exists in the image too): masking /proc/keys must refuse it."""
    assert Path("/proc/keys").exists()  # a masked path that exists here (kcore does not)
    devdir = tmp_path / "dev"
    devdir.mkdir()
    null = devdir / "null"
    if fake == "regular file":
        null.write_text("fake null\n")
        null.chmod(0o600)
    else:
        null.symlink_to("/etc/hostname")
    before = os.lstat(null)
    r = call(
        rt,
        "run",
        "--bundle",
        make_bundle(args=["cat", "/proc/keys"], mutate=_dev_bind_config(devdir)),
        "mask",
    )
    fails(r, "/dev/null", "not the null device")
    assert r.stdout == ""
    after = os.lstat(null)
    assert (after.st_mode, after.st_size, after.st_mtime_ns) == (
        before.st_mode,
        before.st_size,
        before.st_mtime_ns,
    )
    assert ids(rt) == []


def test_image_dev_null_symlink_never_touches_host_file(rt, make_bundle, rootfs_copy, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    secret.chmod(0o600)
    (rootfs_copy / "dev" / "null").symlink_to(str(secret))

    def mutate(cfg):
        cfg["root"] = {"path": str(rootfs_copy), "readonly": False}
        cfg["mounts"] = [
            m
            for m in cfg["mounts"]
            if m["destination"] not in ("/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")
        ]
        cfg["linux"]["maskedPaths"] = ["/proc/keys"]

    r = call(rt, "run", "--bundle", make_bundle(args=["true"], mutate=mutate), "devnull")
    assert "Traceback" not in r.stderr
    st = os.stat(secret)
    assert oct(st.st_mode & 0o7777) == oct(0o600), "the host file's mode was changed"
    assert secret.read_text() == "host secret\n"
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_bind_onto_dev_null_never_chmods_host_file(rt, make_bundle, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    secret.chmod(0o600)

    def mutate(cfg):
        cfg["mounts"].append(
            {
                "destination": "/dev/null",
                "type": "bind",
                "source": str(secret),
                "options": ["bind", "rw"],
            }
        )
        cfg["linux"]["maskedPaths"] = ["/proc/keys"]

    r = call(rt, "run", "--bundle", make_bundle(args=["true"], mutate=mutate), "devnull")
    assert "Traceback" not in r.stderr
    assert oct(os.stat(secret).st_mode & 0o7777) == oct(0o600)


def test_created_init_is_not_inspectable_from_inside(rt, make_bundle, tmp_path):
    """While the init waits for `start` it is still the runtime (a fork of Python holding
    the runtime's memory and environment): a process exec'd into the container, as root
    without CAP_SYS_PTRACE, must not reach /proc/1/exe, environ, mem, cwd or root."""
    ok(
        call(
            rt,
            "create",
            "--bundle",
            make_bundle(args=["sleep", "30"]),
            "dump",
            env=dict(os.environ, FOO_LEAK="runtime-secret"),
        )
    )
    try:
        init = rt.state("dump")["pid"]
        assert rt.state("dump")["status"] == "created"
        assert os.readlink(f"/proc/{init}/exe") != "/bin/sleep"  # still the runtime
        checks = (
            "readlink /proc/1/exe; echo exe=$?; cat /proc/1/exe > /dev/null; "
            "echo exe_read=$?; cat /proc/1/environ > /dev/null; echo environ=$?; "
            "head -c1 /proc/1/mem > /dev/null; echo mem=$?; ls /proc/1/root/ > /dev/null; "
            "echo root=$?; ls /proc/1/cwd/ > /dev/null; echo cwd=$?; "
            "grep -c FOO_LEAK /proc/1/environ; true"
        )
        e = call(rt, "exec", "dump", "sh", "-c", checks)
        assert e.returncode == 0, e.stderr
        lines = e.stdout.splitlines()
        assert lines[:6] == ["exe=1", "exe_read=1", "environ=1", "mem=1", "root=1", "cwd=1"], (
            e.stdout,
            e.stderr,
        )
        assert "runtime-secret" not in e.stdout
        assert "Permission denied" in e.stderr, e.stderr
    finally:
        ok(call(rt, "delete", "--force", "dump"))


def test_runtime_environment_does_not_leak(rt, make_bundle):
    env = dict(os.environ, FOO_LEAK="1", LD_PRELOAD="", PYTHONPATH="/leak")
    r = ok(call(rt, "run", "--bundle", make_bundle(args=["env"]), "env", env=env))
    names = [line.split("=", 1)[0] for line in r.stdout.splitlines()]
    # HOME: none in process.env, so the container's passwd gives it (runc's rule)
    assert sorted(names) == ["HOME", "PATH", "TERM"], r.stdout


@pytest.mark.parametrize("how", ["run", "exec"])
def test_proc_self_exe_does_not_reach_the_runtime_binary(
    rt, make_bundle, rootfs_copy, probe_dir, how
):
    """An image ships its own ELF interpreter (the probe's loader) and runs /proc/self/exe:
    whatever that is, it must not be a file of the host that the loader can open."""
    loader = probe_dir / "loader"
    if not loader.exists():
        pytest.skip("the loader probe is x86_64 only")
    (rootfs_copy / "lib64").mkdir()
    subprocess.run(["cp", str(loader), str(rootfs_copy / "lib64/ld-linux-x86-64.so.2")], check=True)

    def mutate(cfg):
        cfg["root"] = {"path": str(rootfs_copy), "readonly": True}

    if how == "run":
        r = call(rt, "run", "--bundle", make_bundle(args=["/proc/self/exe"], mutate=mutate), "exe")
    else:
        ok(
            call(
                rt,
                "run",
                "--detach",
                "--bundle",
                make_bundle(args=["sleep", "30"], mutate=mutate),
                "exe",
            )
        )
        try:
            r = call(rt, "exec", "exe", "/proc/self/exe")
        finally:
            ok(call(rt, "delete", "--force", "exe"))
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    target = next((x[4:] for x in lines if x.startswith("exe=")), "")
    opened = "open=ok" in lines
    assert not (opened and target.startswith("/") and os.path.isfile(target)), (
        f"the container opened the host file {target} through /proc/self/exe"
    )
