"""Behaviours engines and images rely on where ocirun once differed from runc: each test
names the runc behaviour it checks (see docs/compat.md for the deliberate differences)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from clitools import call, fails, ok
from testenv import ROOTFS


@pytest.fixture
def rootfs_copy(tmp_path):
    dest = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(ROOTFS), str(dest)], check=True)
    return dest


def on_copy(rootfs, *mounts, **linux):
    def mutate(cfg):
        cfg["root"]["path"] = str(rootfs)
        cfg["mounts"].extend(mounts)
        cfg["linux"].update(linux)

    return mutate


def tmpfs(dest: str) -> dict:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}


# --- mount destinations -------------------------------------------------------------------


def test_mount_on_dangling_symlink_creates_its_target_inside_the_root(rt, make_bundle, rootfs_copy):
    """runc follows a destination that is a symlink to a missing path (inside the rootfs)
    and creates the target: absolute links from the container's /, relative ones from the
    link's directory, `..` clamped at the root, chains of links."""
    (rootfs_copy / "abs").symlink_to("/made/by/runtime")
    (rootfs_copy / "etc" / "rel").symlink_to("../../../escape-attempt")
    (rootfs_copy / "hop1").symlink_to("hop2")
    (rootfs_copy / "hop2").symlink_to("/hop-target")
    script = 'for d in /made/by/runtime /escape-attempt /hop-target; do stat -fc "$d %T" $d; done'
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=["sh", "-c", script],
            mutate=on_copy(rootfs_copy, tmpfs("/abs"), tmpfs("/etc/rel"), tmpfs("/hop1")),
        ),
        "dangling",
    ).stdout
    assert out.splitlines() == [
        "/made/by/runtime tmpfs",
        "/escape-attempt tmpfs",
        "/hop-target tmpfs",
    ]
    assert (rootfs_copy / "made" / "by" / "runtime").is_dir()
    assert (rootfs_copy / "escape-attempt").is_dir()
    assert not Path("/escape-attempt").exists()


def test_mount_on_symlink_loop_is_a_clean_error(rt, make_bundle, rootfs_copy):
    (rootfs_copy / "loop1").symlink_to("loop2")
    (rootfs_copy / "loop2").symlink_to("loop1")
    r = call(
        rt,
        "run",
        "--bundle",
        make_bundle(args=["true"], mutate=on_copy(rootfs_copy, tmpfs("/loop1"))),
        "loop",
    )
    fails(r, "/loop")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.cli("state", "loop").returncode != 0


# --- devices ------------------------------------------------------------------------------


def test_device_path_with_trailing_slash(rt, make_bundle):
    def mutate(cfg):
        cfg["linux"]["devices"] = [
            {"path": "/dev/fuse/", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600}
        ]

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["stat", "-c", "%n %t:%T %a", "/dev/fuse"], mutate=mutate),
        "devslash",
    ).stdout
    assert out.split() == ["/dev/fuse", "a:e5", "600"]


def test_fifo_device_with_a_device_number(rt, make_bundle):
    """runtime-tools' linux_devices gives its fifo major 8, minor 666: a fifo has none."""

    def mutate(cfg):
        cfg["linux"]["devices"] = [
            {"path": "/dev/test3", "type": "p", "major": 8, "minor": 666, "fileMode": 0o660}
        ]

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["stat", "-c", "%n %F %a", "/dev/test3"], mutate=mutate),
        "fifo",
    ).stdout
    assert out.strip() == "/dev/test3 fifo 660"


def test_devices_already_in_the_rootfs(rt, make_bundle, rootfs_copy):
    """A rootfs whose /dev already holds the nodes the config lists (no /dev tmpfs): they
    are made again, with the config's modes (runc replaces them too)."""
    dev = rootfs_copy / "dev"
    subprocess.run(["mknod", "-m", "600", str(dev / "null"), "c", "1", "3"], check=True)
    subprocess.run(["mknod", "-m", "600", str(dev / "fuse"), "c", "10", "229"], check=True)
    (dev / "zero").write_text("a file where a device should be")

    def mutate(cfg):
        cfg["root"]["path"] = str(rootfs_copy)
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev"]
        cfg["linux"]["devices"] = [
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
        ]

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=["stat", "-c", "%n %t:%T %a %F", "/dev/null", "/dev/fuse", "/dev/zero"],
            mutate=mutate,
        ),
        "devexist",
    ).stdout
    assert out.splitlines() == [
        "/dev/null 1:3 666 character special file",
        "/dev/fuse a:e5 666 character special file",
        "/dev/zero 1:5 666 character special file",
    ]


# --- kernel settings ----------------------------------------------------------------------


def test_hostname_sysctl_contradicting_hostname_is_refused(rt, make_bundle):
    def mutate(cfg):
        cfg["hostname"] = "one"
        cfg["linux"]["sysctl"] = {"kernel.hostname": "two"}

    r = call(rt, "run", "--bundle", make_bundle(args=["true"], mutate=mutate), "hostsysctl")
    fails(r, "/linux/sysctl/kernel.hostname", "contradicts /hostname")
    assert rt.cli("state", "hostsysctl").returncode != 0


def test_hostname_sysctl_is_refused_even_alone(rt, make_bundle):
    """runc 1.1 and crun refuse linux.sysctl kernel.hostname whatever its value (crun's
    test_start.py uts-sysctl checks it): /hostname is the field that sets it."""

    def mutate(cfg):
        cfg.pop("hostname", None)
        cfg["linux"]["sysctl"] = {"kernel.hostname": "from-sysctl"}

    r = call(rt, "run", "--bundle", make_bundle(args=["hostname"], mutate=mutate), "hostsysctl")
    fails(r, "/linux/sysctl/kernel.hostname", "conflicts with /hostname")
    assert rt.cli("state", "hostsysctl").returncode != 0


# --- user namespaces ----------------------------------------------------------------------


def test_bind_mounts_in_a_user_namespace(rt, make_bundle, tmp_path):
    """ro, rw and flagged binds of a host directory into a container with its own user
    namespace (the mount flags the kernel locks are kept on the remount)."""
    src = tmp_path / "src"
    src.mkdir()
    src.chmod(0o777)
    (src / "f").write_text("hi\n")

    def mutate(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["mounts"] += [
            {"destination": "/root", "type": "bind", "source": str(src), "options": ["bind", "ro"]},
            {
                "destination": "/home",
                "type": "none",
                "source": str(src),
                "options": ["rbind", "nosuid", "noexec", "nodev", "rw"],
            },
        ]

    script = (
        "cat /root/f; touch /root/no 2>/dev/null || echo ro-refused; touch /home/yes; "
        "grep -E ' /root | /home ' /proc/self/mountinfo"
    )
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "userns-bind"
    ).stdout.splitlines()
    assert out[:2] == ["hi", "ro-refused"]
    opts = {line.split()[4]: set(line.split()[5].split(",")) for line in out[2:]}
    assert "ro" in opts["/root"]
    assert {"rw", "nosuid", "nodev", "noexec"} <= opts["/home"]
    assert (src / "yes").stat().st_uid == 100000  # written as the mapped root


def test_bind_in_a_user_namespace_is_a_slave_of_a_shared_source(rt, make_bundle, tmp_path):
    """The runtime's copy of the source (open_tree) would be a peer of a shared host mount:
    it is made a slave, as the container's copy of the host's mounts is (rslave root)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "ocirun-userns", str(shared)], check=True
    )
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)

        def mutate(cfg):
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            cfg["mounts"].append(
                {
                    "destination": "/root",
                    "type": "bind",
                    "source": str(shared),
                    "options": ["rbind"],
                }
            )

        out = rt.ok(
            "run",
            "--bundle",
            make_bundle(args=["grep", " /root ", "/proc/self/mountinfo"], mutate=mutate),
            "userns-prop",
        ).stdout
        tags = out.split(" - ")[0].split()[6:]
        assert any(t.startswith("master:") for t in tags), out
        assert not any(t.startswith("shared:") for t in tags), out
    finally:
        subprocess.run(["umount", "-l", str(shared)])


def test_warnings_go_to_stderr_without_log(rt, make_bundle, tmp_path):
    """runc's logrus writes warnings to stderr unless --log names a file; so does ocirun,
    in logrus's text format, one line per warning, and the run goes on."""

    def mutate(cfg):
        caps = cfg["process"]["capabilities"]
        caps["inheritable"] = ["CAP_KILL"]
        caps["permitted"] = sorted(set(caps["permitted"]) | {"CAP_KILL", "CAP_CHOWN"})
        caps["bounding"] = sorted(set(caps["bounding"]) | {"CAP_KILL", "CAP_CHOWN"})
        caps["ambient"] = ["CAP_KILL", "CAP_CHOWN", "CAP_NOT_A_CAP"]

    bundle = make_bundle(args=["grep", "CapAmb", "/proc/self/status"], mutate=mutate)
    r = ok(call(rt, "run", "--bundle", bundle, "warn1"))
    assert r.stdout.split() == ["CapAmb:", "0000000000000020"]  # CAP_KILL only
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith('time="') and ' level=warning msg="ignoring unknown or ' in lines[0]
    assert lines[0].endswith('unavailable capabilities: [CAP_NOT_A_CAP]"'), lines[0]
    assert lines[1].endswith(
        ''' level=warning msg="can't raise ambient capability CAP_CHOWN: operation not permitted"'''
    ), lines[1]
    log = tmp_path / "log.json"
    r = ok(call(rt, "run", "--bundle", bundle, "warn2", global_args=("--log", str(log))))
    assert r.stderr == ""  # with --log, warnings go only there
    assert "can't raise ambient capability CAP_CHOWN" in log.read_text()
