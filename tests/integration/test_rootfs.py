"""The container's filesystem: root, mounts, /dev, masked and read-only paths, sysctls, pivot.

Most checks read /proc/self/mountinfo inside the container. Tests that create anything in the
rootfs (mount points, files) use a private copy of bundles/busybox/rootfs: the shared one must
stay untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testenv import ROOTFS

# --- helpers ----------------------------------------------------------------------------


def parse_mountinfo(text: str) -> dict[str, dict]:
    """mount point -> fields of its (topmost) line in a mountinfo text."""
    mounts: dict[str, dict] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 10 or "-" not in f:
            continue
        sep = f.index("-", 6)
        mounts[f[4]] = {
            "root": f[3],
            "opts": set(f[5].split(",")),
            "tags": f[6:sep],
            "fstype": f[sep + 1],
            "source": f[sep + 2],
            "super": set(f[sep + 3].split(",")),
        }
    return mounts


def host_mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def tag(entry: dict, kind: str) -> list[str]:
    return [t for t in entry["tags"] if t.startswith(kind + ":")]


@pytest.fixture
def rootfs_copy(tmp_path):
    """A private copy of the busybox rootfs; afterwards no host mount may be left on it."""
    dest = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(ROOTFS), str(dest)], check=True)
    yield dest
    left = host_mounts_under(str(tmp_path))
    for m in sorted(left, reverse=True):
        subprocess.run(["umount", "-l", m])
    assert not left, f"mounts left behind on the host: {left}"


@pytest.fixture
def shared_mount(tmp_path):
    """A host tmpfs with shared propagation (this host's mounts are all private otherwise)."""
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "ocirun-test-shared", str(d)], check=True
    )
    try:
        subprocess.run(["mount", "--make-shared", str(d)], check=True)
        yield d
    finally:
        subprocess.run(["umount", "-R", "-l", str(d)])


def with_root(path, readonly: bool | None = None):
    def mutate(cfg):
        cfg["root"]["path"] = str(path)
        if readonly is not None:
            cfg["root"]["readonly"] = readonly

    return mutate


def chain(*fns):
    def mutate(cfg):
        for fn in fns:
            fn(cfg)

    return mutate


def add_mounts(*mounts: dict):
    def mutate(cfg):
        cfg["mounts"].extend(mounts)

    return mutate


MOUNTINFO = "cat /proc/self/mountinfo"


# --- root -------------------------------------------------------------------------------


def test_readonly_root(rt, make_bundle):
    script = "exec 2>&1; touch /x; echo rc=$?; echo tmp > /tmp/y; echo rc=$?; " + MOUNTINFO
    out = rt.ok("run", "--bundle", make_bundle(args=["sh", "-c", script]), "ro-root").stdout
    lines = out.splitlines()
    assert "Read-only file system" in lines[0]
    assert lines[1] == "rc=1"
    assert "Read-only file system" in lines[2]
    assert lines[3] == "rc=1"
    root = parse_mountinfo(out)["/"]
    assert "ro" in root["opts"]
    assert root["root"] == str(ROOTFS)
    assert not (ROOTFS / "x").exists()


def test_writable_root(rt, make_bundle, rootfs_copy):
    script = "echo written-inside > /written && echo ok; " + MOUNTINFO
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", script], mutate=with_root(rootfs_copy, False)),
        "rw-root",
    ).stdout
    assert out.splitlines()[0] == "ok"
    assert "rw" in parse_mountinfo(out)["/"]["opts"]
    assert (rootfs_copy / "written").read_text() == "written-inside\n"


# --- the config's mounts ------------------------------------------------------------------


def host_cgroup_v1() -> list[str]:
    names = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[0] == "cgroup" and pre.split()[4].startswith("/sys/fs/cgroup/"):
                names.append(os.path.basename(pre.split()[4]))
    return names


def test_config_mounts_types_and_flags(rt, make_bundle):
    out = rt.ok("run", "--bundle", make_bundle(args=["sh", "-c", MOUNTINFO]), "mnt-types").stdout
    m = parse_mountinfo(out)
    assert m["/proc"]["fstype"] == "proc"

    assert m["/dev"]["fstype"] == "tmpfs"
    assert "nosuid" in m["/dev"]["opts"]
    assert {"mode=755", "size=65536k"} <= m["/dev"]["super"]

    assert m["/dev/pts"]["fstype"] == "devpts"
    assert {"nosuid", "noexec"} <= m["/dev/pts"]["opts"]
    assert {"ptmxmode=666", "mode=620", "gid=5"} <= m["/dev/pts"]["super"]

    assert m["/dev/shm"]["fstype"] == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= m["/dev/shm"]["opts"]
    assert "size=65536k" in m["/dev/shm"]["super"]

    assert m["/dev/mqueue"]["fstype"] == "mqueue"
    assert {"nosuid", "nodev", "noexec"} <= m["/dev/mqueue"]["opts"]

    assert m["/sys"]["fstype"] == "sysfs"
    assert {"ro", "nosuid", "nodev", "noexec"} <= m["/sys"]["opts"]

    cg = m["/sys/fs/cgroup"]
    v1 = host_cgroup_v1()
    if v1:
        # v1 (or hybrid): a tmpfs, read-only once filled, with one cgroup mount per hierarchy.
        assert cg["fstype"] == "tmpfs"
        assert "ro" in cg["opts"]
        for name in v1:
            sub = m[f"/sys/fs/cgroup/{name}"]
            assert sub["fstype"] == "cgroup", name
            assert {"ro", "nosuid", "nodev", "noexec"} <= sub["opts"], name
    else:
        assert cg["fstype"] == "cgroup2"
        assert "ro" in cg["opts"]


def test_cgroup_mount_is_read_only(rt, make_bundle):
    v1 = host_cgroup_v1()
    name = f"ocirun-ro-probe-{os.getpid()}"
    target = f"/sys/fs/cgroup/{v1[0]}/{name}" if v1 else f"/sys/fs/cgroup/{name}"
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", f"mkdir {target} 2>&1; echo rc=$?"]),
        "cg-ro",
    ).stdout
    assert "Read-only file system" in out
    assert out.splitlines()[-1] == "rc=1"
    assert not os.path.exists(target)


# --- bind mounts ------------------------------------------------------------------------


def test_bind_rw_and_ro(rt, make_bundle, rootfs_copy, tmp_path):
    rw_dir, ro_dir = tmp_path / "rw", tmp_path / "ro"
    rw_dir.mkdir()
    ro_dir.mkdir()
    (ro_dir / "existing").write_text("from-host\n")
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/mnt-rw",
                "type": "bind",
                "source": str(rw_dir),
                "options": ["bind", "rw"],
            },
            {
                "destination": "/mnt-ro",
                "type": "bind",
                "source": str(ro_dir),
                "options": ["bind", "ro"],
            },
        ),
    )
    script = (
        "exec 2>&1; echo from-container > /mnt-rw/new && echo rw-ok; "
        "cat /mnt-ro/existing; echo x > /mnt-ro/new; echo rc=$?; " + MOUNTINFO
    )
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "bind-rw-ro"
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "rw-ok"
    assert lines[1] == "from-host"
    assert "Read-only file system" in lines[2]
    assert lines[3] == "rc=1"
    assert (rw_dir / "new").read_text() == "from-container\n"
    assert not (ro_dir / "new").exists()
    m = parse_mountinfo(out)
    assert m["/mnt-rw"]["root"] == str(rw_dir) and "rw" in m["/mnt-rw"]["opts"]
    assert m["/mnt-ro"]["root"] == str(ro_dir) and "ro" in m["/mnt-ro"]["opts"]
    # The mount points were made in the private rootfs, as directories.
    assert (rootfs_copy / "mnt-rw").is_dir() and (rootfs_copy / "mnt-ro").is_dir()


def test_file_bind_mount(rt, make_bundle, rootfs_copy, tmp_path):
    src = tmp_path / "hostfile"
    src.write_text("file-content\n")
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/etc/bound-file",
                "type": "bind",
                "source": str(src),
                "options": ["bind", "ro"],
            },
        ),
    )
    script = "cat /etc/bound-file; test -f /etc/bound-file && echo is-file; " + MOUNTINFO
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "bind-file"
    ).stdout
    lines = out.splitlines()
    assert lines[:2] == ["file-content", "is-file"]
    entry = parse_mountinfo(out)["/etc/bound-file"]
    assert entry["root"] == str(src) and "ro" in entry["opts"]
    target = rootfs_copy / "etc" / "bound-file"
    assert target.is_file() and not target.is_symlink()
    assert target.read_text() == ""  # the empty placeholder, not the host's file


@pytest.fixture
def dir_with_submount(tmp_path):
    d = tmp_path / "rbind-src"
    (d / "sub").mkdir(parents=True)
    (d / "top").write_text("top\n")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "ocirun-sub", str(d / "sub")], check=True
    )
    try:
        (d / "sub" / "inner").write_text("inner\n")
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d / "sub")])


@pytest.mark.parametrize("option,sub_visible", [("rbind", True), ("bind", False)])
def test_rbind_takes_submounts(
    rt, make_bundle, rootfs_copy, dir_with_submount, option, sub_visible
):
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/r",
                "type": "bind",
                "source": str(dir_with_submount),
                "options": [option],
            },
        ),
    )
    script = "cat /r/top; cat /r/sub/inner 2>/dev/null || echo no-inner; " + MOUNTINFO
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), f"bind-{option}"
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "top"
    m = parse_mountinfo(out)
    if sub_visible:
        assert lines[1] == "inner"
        assert m["/r/sub"]["fstype"] == "tmpfs"
    else:
        assert lines[1] == "no-inner"
        assert "/r/sub" not in m


def test_bind_relative_source_and_flags(rt, make_bundle, rootfs_copy):
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/rel",
                "type": "bind",
                "source": "reldata",
                "options": ["bind", "nosuid", "nodev", "noexec"],
            },
        ),
    )
    bundle = Path(make_bundle(args=["sh", "-c", "cat /rel/marker; " + MOUNTINFO], mutate=mutate))
    (bundle / "reldata").mkdir()
    (bundle / "reldata" / "marker").write_text("relative-source\n")
    out = rt.ok("run", "--bundle", str(bundle), "bind-rel").stdout
    assert out.splitlines()[0] == "relative-source"
    entry = parse_mountinfo(out)["/rel"]
    assert entry["root"] == str(bundle / "reldata")
    assert {"nosuid", "nodev", "noexec", "rw"} <= entry["opts"]


def test_bind_noexec_is_enforced(rt, make_bundle, rootfs_copy, tmp_path):
    exe = tmp_path / "bin"
    exe.mkdir()
    subprocess.run(["cp", str(ROOTFS / "bin" / "busybox"), str(exe / "busybox")], check=True)
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/x",
                "type": "bind",
                "source": str(exe),
                "options": ["bind", "noexec"],
            },
        ),
    )
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "/x/busybox true 2>&1; echo rc=$?"], mutate=mutate),
        "bind-noexec",
    ).stdout
    assert "Permission denied" in out
    assert out.splitlines()[-1] == "rc=126"


# --- tmpfs and relative destinations ---------------------------------------------------


def test_tmpfs_without_mode_takes_the_mode_of_an_existing_target(rt, make_bundle, rootfs_copy):
    """runc (>= 1.1.10): a tmpfs without mode= over a directory that exists gets that
    directory's mode, setuid/setgid/sticky bits included (a tmpfs over /tmp keeps 1777);
    mode= still wins, and a target made for the tmpfs keeps tmpfs's own default (1777)."""
    (rootfs_copy / "kept").mkdir(mode=0o700)
    os.chmod(rootfs_copy / "kept", 0o7751)
    (rootfs_copy / "given").mkdir(mode=0o700)
    assert not (rootfs_copy / "new").exists()
    mounts = [
        {"destination": d, "type": "tmpfs", "source": "tmpfs", "options": opts}
        for d, opts in (("/kept", ["nosuid"]), ("/given", ["mode=0410"]), ("/new", []))
    ]
    bundle = make_bundle(
        args=["stat", "-c", "%a %n", "/kept", "/given", "/new"],
        mutate=chain(with_root(rootfs_copy), add_mounts(*mounts)),
    )
    out = rt.ok("run", "--bundle", bundle, "tmpfs-mode").stdout
    assert out.splitlines() == ["7751 /kept", "410 /given", "1777 /new"], out


def test_tmpfs_with_options_at_new_destination(rt, make_bundle, rootfs_copy):
    assert not (rootfs_copy / "data").exists()
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/data",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["size=1m", "mode=700", "nodev"],
            },
            # runtime-spec 1.2: a relative destination is relative to the container's /.
            {"destination": "reldest", "type": "tmpfs", "source": "tmpfs", "options": ["size=2m"]},
        ),
    )
    script = (
        "stat -c '%a %F' /data; echo in-tmpfs > /data/f && cat /data/f; "
        "df -k /reldest | tail -1; " + MOUNTINFO
    )
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "tmpfs-opts"
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "700 directory"
    assert lines[1] == "in-tmpfs"
    assert lines[2].split()[1] == "2048"  # total 1K-blocks of a size=2m tmpfs
    m = parse_mountinfo(out)
    assert m["/data"]["fstype"] == "tmpfs"
    assert {"size=1024k", "mode=700"} <= m["/data"]["super"]
    assert "nodev" in m["/data"]["opts"]
    assert m["/reldest"]["fstype"] == "tmpfs"
    assert "size=2048k" in m["/reldest"]["super"]
    assert (rootfs_copy / "data").is_dir() and (rootfs_copy / "reldest").is_dir()
    assert not (rootfs_copy / "data" / "f").exists()  # written to the tmpfs, not the rootfs


def test_mount_over_the_root_replaces_it(rt, make_bundle, rootfs_copy):
    """A mount at / covers the rootfs, and the mounts after it are made in it, as runc does
    (crun's mount-bind-to-rootfs): they used to land in the covered directory, so /dev
    was missing from the new root."""
    (rootfs_copy / "marker").write_text("from the bind\n")

    def first(cfg):
        bind_root = {"destination": "/", "type": "bind", "source": str(rootfs_copy)}
        cfg["mounts"].insert(0, dict(bind_root, options=["rbind"]))

    script = "cat /marker; test -c /dev/null && test -e /proc/self/status && echo mounts-there"
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=first), "over-root"
    ).stdout
    assert out.splitlines() == ["from the bind", "mounts-there"]


def test_tmpfs_over_the_root_with_tmpcopyup(rt, make_bundle):
    """crun's mount-tmpfs-to-rootfs: a tmpcopyup tmpfs at / holds a copy of the rootfs
    (the copy used to go onto the rootfs itself: "mkdir etc: File exists")."""

    def first(cfg):
        tmpfs_root = {"destination": "/", "type": "tmpfs", "source": "tmpfs"}
        cfg["mounts"].insert(0, dict(tmpfs_root, options=["tmpcopyup"]))

    script = "stat -f -c %T /; test -c /dev/null && ls /bin/sh"
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=first), "tmpfs-root"
    ).stdout
    assert out.splitlines() == ["tmpfs", "/bin/sh"]


# --- propagation ------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["rshared", "rslave", "rprivate", None])
def test_bind_propagation(rt, make_bundle, rootfs_copy, shared_mount, option):
    opts = ["rbind"] + ([option] if option else [])
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {"destination": "/p", "type": "bind", "source": str(shared_mount), "options": opts},
        ),
    )
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", MOUNTINFO], mutate=mutate),
        f"prop-{option}",
    ).stdout
    entry = parse_mountinfo(out)["/p"]
    # The container starts from an rslave copy of the host's mounts: the bound shared tmpfs
    # is a slave of the host's peer group, unless the option changes it.
    if option == "rshared":
        assert tag(entry, "shared"), entry["tags"]
    elif option in ("rslave", None):
        assert tag(entry, "master") and not tag(entry, "shared"), entry["tags"]
    else:
        assert entry["tags"] == [], entry["tags"]


def test_bind_rslave_receives_host_mounts(rt, make_bundle, rootfs_copy, shared_mount):
    """rslave: a mount made on the host after start shows up in the container."""
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/p",
                "type": "bind",
                "source": str(shared_mount),
                "options": ["rbind", "rslave"],
            },
        ),
    )
    (shared_mount / "later").mkdir()
    script = "while ! grep -q ' /p/later ' /proc/self/mountinfo; do sleep 0.1; done; echo seen"
    bundle = make_bundle(args=["sh", "-c", f'timeout 10 sh -c "{script}"'], mutate=mutate)
    proc = subprocess.Popen(
        [rt_cli_path(), "--root", rt.root, "run", "--bundle", bundle, "prop-recv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_running(rt, "prop-recv")
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "later", str(shared_mount / "later")],
            check=True,
        )
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.strip() == "seen"


def test_rshared_root_and_volume_propagate_both_ways(rt, make_bundle, rootfs_copy, shared_mount):
    """Kubernetes' Bidirectional mount propagation (rootfsPropagation rshared and an rshared
    bind volume, as CSI drivers use): the volume stays in the host's peer group, so a mount
    made inside the container appears on the host (runc gives the same)."""
    (shared_mount / "inner").mkdir()
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/vol",
                "type": "bind",
                "source": str(shared_mount),
                "options": ["rbind", "rshared"],
            }
        ),
    )

    def caps(cfg):
        mutate(cfg)
        cfg["linux"]["rootfsPropagation"] = "rshared"
        cfg["process"]["capabilities"] = {
            s: ["CAP_SYS_ADMIN"] for s in ("bounding", "effective", "permitted")
        }

    host_tags = parse_mountinfo(open("/proc/self/mountinfo").read())
    host_peer = tag(host_tags[str(shared_mount)], "shared")
    script = f"mount -t tmpfs -o size=1m from-container /vol/inner && {MOUNTINFO}"
    try:
        out = rt.ok(
            "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=caps), "bidirectional"
        ).stdout
        assert tag(parse_mountinfo(out)["/vol"], "shared") == host_peer
        assert str(shared_mount / "inner") in host_mounts_under(str(shared_mount))
    finally:
        subprocess.run(["umount", "-l", str(shared_mount / "inner")])
    assert host_mounts_under(str(rootfs_copy)) == []


def rt_cli_path() -> str:
    return str(Path(sys.executable).parent / "ocirun")


def _wait_running(rt, cid: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = rt.cli("state", cid)
        if r.returncode == 0 and '"running"' in r.stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"container {cid} never ran")


def test_rootfs_propagation_shared(rt, make_bundle):
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=["sh", "-c", MOUNTINFO],
            mutate=lambda c: c["linux"].__setitem__("rootfsPropagation", "shared"),
        ),
        "rootprop-shared",
    ).stdout
    assert tag(parse_mountinfo(out)["/"], "shared")


@pytest.mark.parametrize(
    "prop,expect",
    [
        ("rslave", "master"),
        # Non-recursive: only the old / changes; the mount holding the rootfs must still stop
        # sharing (runc: rootfsParentMountPrivate) or pivot_root fails with EINVAL and every
        # container mount propagates to the host. Only "not shared" is required of the new /.
        ("slave", "any"),
        ("rprivate", None),
        ("private", "any"),
        (None, "master"),  # the default is rslave, as runc's
    ],
)
def test_rootfs_propagation_under_shared_host_mount(rt, make_bundle, shared_mount, prop, expect):
    """The rootfs lives inside a shared host mount (as on any systemd host, where / is shared):
    the container's / must be a slave of it or private, and nothing may propagate back."""
    rootfs = shared_mount / "rootfs"
    subprocess.run(["cp", "-a", str(ROOTFS), str(rootfs)], check=True)
    before = host_mounts_under(str(shared_mount))

    def mutate(cfg):
        cfg["root"]["path"] = str(rootfs)
        if prop:
            cfg["linux"]["rootfsPropagation"] = prop

    r = rt.cli(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", MOUNTINFO], mutate=mutate),
        f"rootprop-{prop}",
    )
    leaked = [m for m in host_mounts_under(str(shared_mount)) if m not in before]
    assert r.returncode == 0 and not leaked, (
        f"rc {r.returncode}: {r.stderr.strip()}; container mounts propagated to the host: "
        f"{len(leaked)} {leaked[:3]}"
    )
    root = parse_mountinfo(r.stdout)["/"]
    assert not tag(root, "shared"), root["tags"]
    if expect is None:
        assert root["tags"] == [], root["tags"]
    elif expect != "any":
        assert tag(root, expect), root["tags"]


# --- /dev -------------------------------------------------------------------------------

DEFAULT_DEVICES = {  # path -> (hex major:minor as busybox stat %t:%T prints it)
    "/dev/null": "1:3",
    "/dev/zero": "1:5",
    "/dev/full": "1:7",
    "/dev/random": "1:8",
    "/dev/urandom": "1:9",
    "/dev/tty": "5:0",
}


def test_default_devices_and_links(rt, make_bundle):
    devs = " ".join(DEFAULT_DEVICES)
    script = (
        f"stat -c '%n %t:%T %a %F %u:%g' {devs}; "
        "for l in fd stdin stdout stderr ptmx; do echo $l=$(readlink /dev/$l); done; "
        "head -c 4 /dev/zero | od -An -tx1; (echo x > /dev/full) 2>&1; echo full-rc=$?; "
        + MOUNTINFO
    )
    out = rt.ok("run", "--bundle", make_bundle(args=["sh", "-c", script]), "dev-default").stdout
    lines = out.splitlines()
    stats = {line.split()[0]: line.split(None, 1)[1] for line in lines[: len(DEFAULT_DEVICES)]}
    for path, majmin in DEFAULT_DEVICES.items():
        assert stats[path] == f"{majmin} 666 character special file 0:0", path
    links = dict(
        line.split("=", 1)
        for line in lines
        if "=" in line
        and "/" in line
        and line.split("=")[0] in ("fd", "stdin", "stdout", "stderr", "ptmx")
    )
    assert links == {
        "fd": "/proc/self/fd",
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
        "stderr": "/proc/self/fd/2",
        "ptmx": "pts/ptmx",
    }
    assert "00 00 00 00" in out
    assert "No space left on device" in out and "full-rc=1" in lines
    m = parse_mountinfo(out)
    assert m["/dev/pts"]["fstype"] == "devpts"
    assert m["/dev/shm"]["fstype"] == "tmpfs"


def test_configured_device(rt, make_bundle):
    def mutate(cfg):
        cfg["linux"]["devices"] = [
            {
                "path": "/dev/fuse",
                "type": "c",
                "major": 10,
                "minor": 229,
                "fileMode": 0o640,
                "uid": 0,
                "gid": 0,
            },
            # Replaces the default /dev/tty (666) with this mode.
            {
                "path": "/dev/tty",
                "type": "c",
                "major": 5,
                "minor": 0,
                "fileMode": 0o620,
                "uid": 0,
                "gid": 5,
            },
            # In a directory that does not exist yet in /dev.
            {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o666},
            {
                "path": "/dev/loop-test",
                "type": "b",
                "major": 7,
                "minor": 0,
                "fileMode": 0o660,
                "uid": 1,
                "gid": 6,
            },
            {"path": "/dev/fifo-test", "type": "p", "fileMode": 0o600},
        ]

    paths = [
        "/dev/fuse",
        "/dev/tty",
        "/dev/null",
        "/dev/net/tun",
        "/dev/loop-test",
        "/dev/fifo-test",
    ]
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["stat", "-c", "%n %t:%T %a %F %u:%g", *paths], mutate=mutate),
        "dev-fuse",
    ).stdout
    assert out.splitlines() == [
        "/dev/fuse a:e5 640 character special file 0:0",
        "/dev/tty 5:0 620 character special file 0:5",
        "/dev/null 1:3 666 character special file 0:0",
        "/dev/net/tun a:c8 666 character special file 0:0",
        "/dev/loop-test 7:0 660 block special file 1:6",
        "/dev/fifo-test 0:0 600 fifo 0:0",
    ]


# --- masked and read-only paths ---------------------------------------------------------


def test_masked_paths(rt, make_bundle):
    host_timer_list = open("/proc/timer_list").read()
    assert host_timer_list  # precondition: there is something to hide
    assert os.listdir("/sys/firmware")
    script = (
        "echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c); "
        "echo timer_list=$(cat /proc/timer_list | wc -c); "
        "echo keys=$(cat /proc/keys | wc -c); "
        "echo firmware=$(ls -A /sys/firmware | wc -l); "
        "touch /sys/firmware/x 2>&1; " + MOUNTINFO
    )

    def mutate(cfg):  # paths that do not exist are skipped, not created, and not an error
        cfg["linux"]["maskedPaths"].append("/proc/ocirun-no-such-path")
        cfg["linux"]["readonlyPaths"].append("/proc/ocirun-no-such-path-either")

    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "masked"
    ).stdout
    lines = out.splitlines()
    assert lines[:4] == ["kcore=0", "timer_list=0", "keys=0", "firmware=0"]
    assert "Read-only file system" in lines[4]
    m = parse_mountinfo(out)
    assert m["/sys/firmware"]["fstype"] == "tmpfs" and "ro" in m["/sys/firmware"]["opts"]
    # Masked files are the null device bound over them.
    assert m["/proc/timer_list"]["root"] == "/null"
    if os.path.exists("/proc/kcore"):
        assert m["/proc/kcore"]["root"] == "/null"
    # A masked path that does not exist (here /proc/scsi, usually) is skipped, not created.
    if not os.path.exists("/proc/scsi"):
        assert "/proc/scsi" not in m


def test_readonly_paths(rt, make_bundle, rootfs_copy, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "locked").write_text("before\n")
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/data",
                "type": "bind",
                "source": str(data),
                "options": ["rbind", "rw"],
            },
        ),
        lambda c: c["linux"]["readonlyPaths"].append("/data/locked"),
    )
    script = (
        "exec 2>&1; echo 1 > /proc/sys/kernel/ns_last_pid; echo rc=$?; "
        "echo after > /data/locked; echo rc=$?; "
        "echo free > /data/free && echo free-ok; "
        "if [ -e /proc/sysrq-trigger ]; then echo h > /proc/sysrq-trigger; "
        "echo sysrq-rc=$?; fi; " + MOUNTINFO
    )
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "readonly"
    ).stdout
    lines = out.splitlines()
    assert "Read-only file system" in lines[0] and lines[1] == "rc=1"
    assert "Read-only file system" in lines[2] and lines[3] == "rc=1"
    assert lines[4] == "free-ok"
    assert (data / "locked").read_text() == "before\n"
    assert (data / "free").read_text() == "free\n"
    m = parse_mountinfo(out)
    assert "ro" in m["/proc/sys"]["opts"]
    assert "ro" in m["/data/locked"]["opts"]
    assert "rw" in m["/data"]["opts"]
    if os.path.exists("/proc/sysrq-trigger"):
        assert "sysrq-rc=1" in lines
        assert "ro" in m["/proc/sysrq-trigger"]["opts"]


# --- sysctl -----------------------------------------------------------------------------


def test_sysctl_in_new_network_namespace(rt, make_bundle):
    path = "/proc/sys/net/ipv4/ip_forward"
    before = open(path).read().strip()
    want = "0" if before == "1" else "1"
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=["cat", path],
            mutate=lambda c: c["linux"].__setitem__("sysctl", {"net.ipv4.ip_forward": want}),
        ),
        "sysctl",
    ).stdout
    assert out.strip() == want
    assert open(path).read().strip() == before


@pytest.mark.parametrize(
    "name,drop",
    [
        pytest.param("net.ipv4.ip_forward", "network"),
        pytest.param("vm.swappiness", None),
    ],
)
def test_sysctl_outside_container_namespace_is_refused(rt, make_bundle, name, drop):
    path = "/proc/sys/" + name.replace(".", "/")
    before = open(path).read().strip()
    want = str(int(before) + 1) if before != "1" else "0"

    def mutate(cfg):
        if drop:
            cfg["linux"]["namespaces"] = [
                n for n in cfg["linux"]["namespaces"] if n["type"] != drop
            ]
        cfg["linux"]["sysctl"] = {name: want}

    try:
        r = rt.cli("run", "--bundle", make_bundle(args=["cat", path], mutate=mutate), "sysctl-host")
        after = open(path).read().strip()
    finally:
        with open(path, "w") as f:  # undo what a buggy runtime did to the host
            f.write(before)
    assert after == before, f"the host's {name} changed: {before} -> {after}"
    assert r.returncode != 0
    assert name in r.stderr
    assert "Traceback" not in r.stderr


# --- no pivot ---------------------------------------------------------------------------


def test_no_pivot(rt, make_bundle):
    host_hostname_file = open("/etc/hostname").read() if os.path.exists("/etc/hostname") else None
    image_hostname_file = (ROOTFS / "etc" / "hostname").read_text()
    assert host_hostname_file != image_hostname_file
    script = "cat /etc/hostname; test -x /bin/busybox && echo busybox; " + MOUNTINFO
    out = rt.ok(
        "run", "--no-pivot", "--bundle", make_bundle(args=["sh", "-c", script]), "no-pivot"
    ).stdout
    assert out.startswith(image_hostname_file)
    assert "busybox" in out.splitlines()
    m = parse_mountinfo(out)
    assert m["/"]["root"] == str(ROOTFS)
    assert "ro" in m["/"]["opts"]
    assert m["/proc"]["fstype"] == "proc"


def test_no_pivot_leaves_no_bare_procfs_to_mount_from(rt, make_bundle):
    """--no-pivot only chroots: the runtime's whole /proc and /sys would stay in the
    container's mount namespace, and while one is there unmasked the kernel lets a user
    namespace inside mount a fresh procfs, unmasked (runc's msMoveRoot detaches them; its
    bats 'runc run --no-pivot must not expose bare /proc')."""
    script = "unshare -mrpf sh -c 'mount -t proc none /proc && echo mounted'; echo rc=$?"

    def caps(cfg):
        for name in ("bounding", "permitted", "effective"):
            cfg["process"]["capabilities"][name] += ["CAP_SETFCAP", "CAP_SYS_ADMIN"]

    bundle = make_bundle(args=["sh", "-c", script], mutate=caps)
    r = rt.cli("run", "--no-pivot", "--bundle", bundle, "no-pivot-proc")
    assert r.returncode == 0, r.stderr
    assert "mounted" not in r.stdout, r.stdout
    assert r.stdout.splitlines()[-1] != "rc=0", r.stdout
    assert "ermission denied" in r.stdout + r.stderr, (r.stdout, r.stderr)


# --- symlinks in the image must not lead out of it ---------------------------------------


def test_symlink_to_root_cannot_escape(rt, make_bundle, rootfs_copy, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("bound\n")
    assert not os.path.lexists("/escape")
    link = rootfs_copy / "mnt"
    if link.is_dir() and not link.is_symlink():
        link.rmdir()
    elif os.path.lexists(link):
        link.unlink()
    link.symlink_to("/")
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {"destination": "/mnt/escape", "type": "bind", "source": str(src), "options": ["bind"]},
        ),
    )
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "cat /escape/marker; " + MOUNTINFO], mutate=mutate),
        "escape-root",
    ).stdout
    assert out.splitlines()[0] == "bound"
    assert parse_mountinfo(out)["/escape"]["root"] == str(src)
    assert not os.path.lexists("/escape")
    assert (rootfs_copy / "escape").is_dir()


def test_symlink_to_etc_cannot_escape(rt, make_bundle, rootfs_copy):
    assert not os.path.lexists("/etc/ocirun-test")
    (rootfs_copy / "hostetc").symlink_to("/etc")
    mutate = chain(
        with_root(rootfs_copy),
        add_mounts(
            {
                "destination": "/hostetc/ocirun-test",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["size=1m"],
            },
        ),
    )
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=["sh", "-c", "echo x > /etc/ocirun-test/f && echo ok; " + MOUNTINFO], mutate=mutate
        ),
        "escape-etc",
    ).stdout
    assert out.splitlines()[0] == "ok"
    assert parse_mountinfo(out)["/etc/ocirun-test"]["fstype"] == "tmpfs"
    assert not os.path.lexists("/etc/ocirun-test")
    assert (rootfs_copy / "etc" / "ocirun-test").is_dir()


def test_tmpcopyup_copies_files_links_and_directories(rt, make_bundle):
    """A tmpfs with tmpcopyup starts with what the image had there (csrc/copyup.c)."""

    def mutate(cfg):
        cfg["mounts"].append(
            {"destination": "/bin", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}
        )
        cfg["mounts"].append(
            {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}
        )

    script = (
        "grep -c '^root:' /etc/passwd; readlink /bin/sh; "
        "stat -c '%a %u' /etc/passwd; grep ' /bin ' /proc/self/mountinfo | grep -c tmpfs"
    )
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "copyup"
    ).stdout.split()
    mode = oct(os.stat(ROOTFS / "etc" / "passwd").st_mode & 0o777)[2:]
    assert out == ["1", "busybox", mode, "0", "1"], out


def test_host_proc_bound_at_proc_in_the_host_pid_namespace(rt, make_bundle):
    """As runc: without a pid namespace of its own (where a new procfs may not be mounted
    when rootless, e.g. podman --pid=host), the host's /proc may be bound at /proc: the
    root of a procfs is one. The container then sees the host's processes."""
    from ocirun.hostfacts import is_proc_root

    assert is_proc_root("/proc") and not is_proc_root("/proc/self") and not is_proc_root("/")

    def mutate(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
        for m in cfg["mounts"]:
            if m["type"] == "proc":
                m.update(type="none", source="/proc", options=["rbind", "nosuid", "noexec"])

    bundle = make_bundle(
        args=["sh", "-c", "test -d /proc/$PPID && cat /proc/1/comm"], mutate=mutate
    )
    out = rt.ok("run", "--bundle", bundle, "hostproc").stdout
    assert out.strip() == Path("/proc/1/comm").read_text().strip()


def test_read_only_dev_is_filled_first(rt, make_bundle):
    """A tmpfs /dev with `ro`: runc mounts it writable, makes the devices, links and
    /dev/pts, then remounts it read-only (runc's bats 'runc run [ro /dev mount]'); made
    read-only at once, nothing could be made in it."""

    def ro_dev(cfg):
        for m in cfg["mounts"]:
            if m["destination"] == "/dev":
                m["options"].append("ro")

    script = (
        "grep '^tmpfs /dev ' /proc/mounts; test -c /dev/null && test -L /dev/fd && "
        "grep -q ' /dev/pts devpts ' /proc/mounts && echo filled; touch /dev/x; echo rc=$?"
    )
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=ro_dev), "ro-dev"
    ).stdout
    lines = out.splitlines()
    assert lines[0].split()[3].startswith("ro,"), out
    assert "filled" in lines and lines[-1] == "rc=1", out


@pytest.mark.parametrize("dest", ["/proc", "/sys"])
def test_proc_and_sys_refuse_a_symlinked_target(rt, make_bundle, rootfs_copy, dest):
    """An image whose /proc or /sys is a symlink: refused in one line, as runc refuses it
    (CVE-2023-28642: the procfs would land elsewhere, out of reach of LSM rules on /proc),
    never followed; nothing is left behind."""
    target = rootfs_copy / dest.lstrip("/")
    target.rmdir()
    (rootfs_copy / "elsewhere").mkdir()
    target.symlink_to("/elsewhere")
    bundle = make_bundle(args=["true"], mutate=with_root(rootfs_copy))
    r = rt.cli("run", "--bundle", bundle, "symlinked")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    fstype = "proc" if dest == "/proc" else "sysfs"
    assert f'filesystem "{fstype}" must be mounted on ordinary directory' in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.ok("list", "-q").stdout.split() == []
    assert not any((rootfs_copy / "elsewhere").iterdir())
