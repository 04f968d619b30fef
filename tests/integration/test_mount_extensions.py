"""runtime-spec 1.2 mount extensions: recursive mount attributes (rro, rnosuid, ...) through
mount_setattr(AT_RECURSIVE), and idmapped mounts (idmap, ridmap, per-mount uidMappings and
gidMappings) through a detached copy of the source (open_tree) given a user namespace's
mapping, as runc >= 1.2 and crun do them."""

from __future__ import annotations

import os
import subprocess

import pytest

USERNS = {
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}


@pytest.fixture
def tree(tmp_path):
    """A directory owned by host root (mode 755) holding a file and a tmpfs sub-mount."""
    top = tmp_path / "tree"
    (top / "sub").mkdir(parents=True)
    (top / "f").write_text("top\n")
    top.chmod(0o755)
    tmp_path.chmod(0o755)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "ocirun-sub", str(top / "sub")], check=True
    )
    (top / "sub" / "g").write_text("sub\n")
    try:
        yield top
    finally:
        subprocess.run(["umount", "-l", str(top / "sub")])


def bind(dest, src, *opts, **extra):
    return dict(
        {"destination": dest, "type": "bind", "source": str(src), "options": list(opts)}, **extra
    )


def run(rt, make_bundle, cid, script, *mounts, userns=False):
    def mutate(cfg):
        cfg["mounts"].extend(mounts)
        if userns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"].update(USERNS)

    return rt.cli("run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), cid)


def test_rro_is_read_only_at_every_level(rt, make_bundle, tree):
    script = (
        "for f in /root/f2 /root/sub/g2 /home/f2 /home/sub/g2; do "
        "touch $f 2>/dev/null && echo $f writable || echo $f read-only; done"
    )
    r = run(
        rt,
        make_bundle,
        "rro",
        script,
        bind("/root", tree, "rbind", "rro"),
        bind("/home", tree, "rbind", "ro"),
    )
    assert r.returncode == 0, r.stderr
    # plain ro leaves the sub-mount writable; rro does not
    assert r.stdout.split("\n")[:4] == [
        "/root/f2 read-only",
        "/root/sub/g2 read-only",
        "/home/f2 read-only",
        "/home/sub/g2 writable",
    ]
    (tree / "sub" / "g2").unlink()


def test_recursive_nosuid_nodev_noexec(rt, make_bundle, tree):
    script = "grep -E ' /root(/sub)? ' /proc/self/mountinfo"
    r = run(
        rt,
        make_bundle,
        "rflags",
        script,
        bind("/root", tree, "rbind", "rnosuid", "rnodev", "rnoexec"),
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2, lines
    for line in lines:
        assert {"nosuid", "nodev", "noexec"} <= set(line.split()[5].split(",")), line


def test_idmap_shows_host_root_files_as_root_and_writes_as_host_root(rt, make_bundle, tree):
    """The container's root is host uid 100000; through an idmapped mount (the container's
    mapping) a host-root file is root's inside, and what the container writes is host
    root's on disk."""
    script = "stat -c '%u:%g' /root/f; echo new > /root/made; stat -c '%u' /root/made"
    r = run(rt, make_bundle, "idmap", script, bind("/root", tree, "rbind", "idmap"), userns=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0:0", "0"]
    st = os.stat(tree / "made")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_without_idmap_the_same_file_is_nobodys(rt, make_bundle, tree):
    r = run(
        rt,
        make_bundle,
        "noidmap",
        "stat -c '%u' /root/f",
        bind("/root", tree, "rbind"),
        userns=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["65534"]  # host root is unmapped in the container


def test_per_mount_mappings(rt, make_bundle, tree):
    """Mappings of the mount's own, other than the container's: the file system's uid 0 is
    host uid 101000 on this mount, which the container (0 -> 100000) sees as 1000."""
    own = {
        "uidMappings": [{"containerID": 0, "hostID": 101000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 102000, "size": 1}],
    }
    r = run(
        rt,
        make_bundle,
        "ownmap",
        "stat -c '%u:%g' /root/f",
        bind("/root", tree, "rbind", "idmap", **own),
        userns=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000:2000"]


def test_idmap_is_not_recursive_ridmap_is(rt, make_bundle, tree):
    script = "stat -c '%u' /root/f /root/sub/g"
    r = run(rt, make_bundle, "idmapr", script, bind("/root", tree, "rbind", "idmap"), userns=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "65534"]  # the tmpfs sub-mount is not idmapped
    r = run(rt, make_bundle, "ridmap", script, bind("/root", tree, "rbind", "ridmap"), userns=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0"]


def test_idmap_of_a_filesystem_that_cannot_be_idmapped(rt, make_bundle):
    r = run(
        rt,
        make_bundle,
        "idmapproc",
        "true",
        bind("/root", "/proc/sys", "rbind", "idmap"),
        userns=True,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "idmapped mount of /proc/sys" in r.stderr, r.stderr
    assert rt.cli("state", "idmapproc").returncode != 0


def test_features_report_the_extensions(rt):
    """containerd and CRI-O gate idmapped volumes on mountExtensions.idmap and read-only
    volumes' rro on mountOptions: both are reported (this kernel has mount_setattr)."""
    import json

    f = json.loads(rt.ok("features").stdout)
    assert f["linux"]["mountExtensions"]["idmap"]["enabled"] is True
    assert {"rro", "rnosuid", "rnodev", "rnoexec", "rnoatime", "idmap", "ridmap"} <= set(
        f["mountOptions"]
    )
