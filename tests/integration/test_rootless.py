"""Rootless: real containers run by a non-root user with subordinate ids, by ocirun and by
runc 1.1.5 side by side on the same bundle (a config from `ocirun spec --rootless` made as
that user, over a private rootfs the user owns).

What each test checks is what the process inside sees, what is left on the host (state
dir, processes) and, where the runtimes must agree, that runc says the same.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
import rootlesslib
from testenv import OCIRUN

RUNC = shutil.which("runc") or "/usr/sbin/runc"
RUNTIMES = {"ocirun": OCIRUN, "runc": RUNC}

_why = rootlesslib.why_not()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"rootless tests: {_why}")


@pytest.fixture(scope="module")
def user():
    with rootlesslib.rootless_user() as u:
        yield u


@pytest.fixture(params=["ocirun", "runc"])
def runtime(request):
    if not os.access(RUNTIMES[request.param], os.X_OK):
        pytest.skip(f"{RUNTIMES[request.param]} not installed")
    return request.param


_seq = [0]


def cid(name: str) -> str:
    _seq[0] += 1
    return f"rl-{name}-{os.getpid()}-{_seq[0]}"


def bundle(user, name: str, args: list[str], edit=None) -> Path:
    """A bundle dir owned by `user`: `ocirun spec --rootless` as that user, run over the
    user's rootfs copy, `args` as the process, `edit(config)` applied last."""
    d = user.base / "bundles" / name
    d.mkdir(parents=True)
    user.chown_tree(d.parent)
    r = user.run(OCIRUN, "spec", "--rootless", "--bundle", str(d))
    assert r.returncode == 0, r.stderr
    cfg = json.loads((d / "config.json").read_text())
    cfg["root"]["path"] = str(user.rootfs)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    if edit:
        edit(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    user.chown_tree(d)
    return d


def rt(user, runtime: str, *args: str, cwd=None, timeout: float = 60):
    return user.run(RUNTIMES[runtime], *args, cwd=cwd, timeout=timeout)


def state_root(user, runtime: str) -> Path:
    return user.run_dir / runtime


def one_line_error(r) -> str:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def nothing_left(user, runtime: str) -> None:
    root = state_root(user, runtime)
    left = os.listdir(root) if root.exists() else []
    assert not left, f"{runtime} left state behind: {left}"
    for _ in range(100):  # a killed init is reaped by the host's init, soon after
        if not user.pids():
            break
        time.sleep(0.05)
    assert not user.pids(), f"processes of {user.name} left: {user.pids()}"


# ----------------------------------------------------------------------------- basics

SHOW = (
    "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; "
    "stat -c '%n %u %t:%T' /dev/null /dev/zero; cat /proc/self/cgroup | grep -c :/$; "
    "grep -c ' /sys/fs/cgroup/' /proc/self/mountinfo"
)


def test_run_as_user_same_as_runc(user):
    """The spec --rootless config runs under both; the process sees the same: root mapped
    to the caller alone, setgroups denied, host device nodes bound (mknod is refused in a
    user namespace), every cgroup the caller's, the cgroup hierarchies bound read-only."""
    out = {}
    b = bundle(user, "basic", ["sh", "-c", SHOW])
    for runtime in RUNTIMES:
        r = rt(user, runtime, "run", cid("basic"), cwd=b)
        assert r.returncode == 0, f"{runtime}: {r.stderr}"
        out[runtime] = r.stdout
        nothing_left(user, runtime)
    lines = out["ocirun"].splitlines()
    assert lines[0] == "uid=0(root) gid=0(root) groups=0(root)", out["ocirun"]
    assert lines[1].split() == ["0", str(user.uid), "1"]
    assert lines[2].split() == ["0", str(user.gid), "1"]
    assert lines[3] == "deny"
    assert lines[4] == "/dev/null 65534 1:3"  # the host's node, owned by unmapped root
    assert out["ocirun"] == out["runc"]


def test_state_dir_under_xdg_runtime_dir(user, runtime):
    b = bundle(user, f"xdg-{runtime}", ["sleep", "100"])
    c = cid("xdg")
    r = rt(user, runtime, "create", c, cwd=b)
    assert r.returncode == 0, r.stderr
    try:
        root = state_root(user, runtime)
        st = os.stat(root)
        assert st.st_uid == user.uid
        assert stat.S_IMODE(st.st_mode) == 0o1700, oct(st.st_mode)  # sticky, as runc's
        assert (root / c).is_dir()
        r = rt(user, runtime, "list", "-q")
        assert r.stdout.split() == [c], r.stdout + r.stderr
    finally:
        rt(user, runtime, "delete", "--force", c)
    nothing_left(user, runtime)


def test_lifecycle_as_user(user, runtime):
    """create, start, state, exec, kill, delete: all as the user, nothing left."""
    b = bundle(user, f"life-{runtime}", ["sleep", "100"])
    c = cid("life")
    assert rt(user, runtime, "create", c, cwd=b).returncode == 0
    try:
        st = json.loads(rt(user, runtime, "state", c).stdout)
        assert st["status"] == "created"
        assert os.stat(f"/proc/{st['pid']}").st_uid == user.uid
        assert rt(user, runtime, "start", c).returncode == 0
        assert json.loads(rt(user, runtime, "state", c).stdout)["status"] == "running"
        r = rt(
            user, runtime, "exec", c, "sh", "-c", "id -u; cat /proc/self/uid_map; ps -o pid,args"
        )
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "0" and lines[1].split() == ["0", str(user.uid), "1"], r.stdout
        assert "1 sleep 100" in " ".join(r.stdout.split()), r.stdout
        assert rt(user, runtime, "kill", c, "KILL").returncode == 0
        for _ in range(100):
            if json.loads(rt(user, runtime, "state", c).stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        assert json.loads(rt(user, runtime, "state", c).stdout)["status"] == "stopped"
        r = rt(user, runtime, "delete", c)
        assert r.returncode == 0, r.stderr
    finally:
        rt(user, runtime, "delete", "--force", c)
    nothing_left(user, runtime)


def test_cache_is_the_users(user):
    """Validated configs and compiled seccomp filters are cached under $XDG_CACHE_HOME."""
    b = bundle(user, "cache", ["true"])
    r = rt(user, "ocirun", "run", cid("cache"), cwd=b)
    assert r.returncode == 0, r.stderr
    entries = list((user.cache / "ocirun" / "config").iterdir())
    assert entries and all(e.stat().st_uid == user.uid for e in entries)


# ----------------------------------------------------------------------------- id maps


def _multi(cfg):
    ids = [
        {"containerID": 0, "hostID": None, "size": 1},
        {"containerID": 1, "hostID": rootlesslib.SUB_START, "size": rootlesslib.SUB_COUNT},
    ]
    cfg["linux"]["uidMappings"] = [
        dict(ids[0], hostID=cfg["linux"]["uidMappings"][0]["hostID"]),
        ids[1],
    ]
    cfg["linux"]["gidMappings"] = [
        dict(ids[0], hostID=cfg["linux"]["gidMappings"][0]["hostID"]),
        ids[1],
    ]
    cfg["process"]["capabilities"] = {
        k: ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETUID", "CAP_SETGID"]
        for k in ("bounding", "effective", "permitted")
    }
    cfg["root"]["readonly"] = False


def test_multi_range_mapping_through_newuidmap(user, runtime):
    """More than the caller's own id: newuidmap/newgidmap write the maps (after checking
    /etc/subuid); container uid 1 is the first subordinate id on the host."""
    b = bundle(
        user,
        f"multi-{runtime}",
        [
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f && chown 1:2 /tmp/f && "
            "su -s /bin/sh nobody -c true 2>/dev/null; echo ok",
        ],
        _multi,
    )
    f = user.rootfs / "tmp" / "f"
    r = rt(user, runtime, "run", cid("multi"), cwd=b)
    try:
        assert r.returncode == 0, f"{runtime}: {r.stderr}"
        lines = [line.split() for line in r.stdout.splitlines()]
        sub = [str(rootlesslib.SUB_START), str(rootlesslib.SUB_COUNT)]
        assert lines[0] == ["0", str(user.uid), "1"] and lines[1] == ["1", *sub], r.stdout
        assert lines[2] == ["0", str(user.gid), "1"] and lines[3] == ["1", *sub], r.stdout
        st = f.stat()
        assert (st.st_uid, st.st_gid) == (rootlesslib.SUB_START, rootlesslib.SUB_START + 1)
    finally:
        f.unlink(missing_ok=True)
    nothing_left(user, runtime)


def test_range_not_in_subuid_is_one_line_error(user):
    """A range /etc/subuid does not grant: ocirun says so in one line before anything is
    made (runc fails too, after newuidmap refused it)."""

    def edit(cfg):
        _multi(cfg)
        cfg["linux"]["uidMappings"][1]["hostID"] = rootlesslib.SUB_START + rootlesslib.SUB_COUNT

    b = bundle(user, "badsub", ["true"], edit)
    line = one_line_error(rt(user, "ocirun", "run", cid("badsub"), cwd=b))
    first = rootlesslib.SUB_START + rootlesslib.SUB_COUNT
    assert (
        f"/linux/uidMappings/1: host ids {first}-{first + rootlesslib.SUB_COUNT - 1} are not "
        f"granted to user {user.name} in /etc/subuid" in line
    ), line
    nothing_left(user, "ocirun")
    r = rt(user, "runc", "run", cid("badsub"), cwd=b)
    assert r.returncode != 0 and "not allowed" in r.stderr, r.stderr
    nothing_left(user, "runc")


def test_user_namespace_required(user, runtime):
    def edit(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "user"]
        del cfg["linux"]["uidMappings"], cfg["linux"]["gidMappings"]

    b = bundle(user, f"nouserns-{runtime}", ["true"], edit)
    r = rt(user, runtime, "run", cid("nouserns"), cwd=b)
    assert r.returncode != 0
    assert "rootless container requires user namespaces" in r.stderr, r.stderr
    if runtime == "ocirun":
        one_line_error(r)
    nothing_left(user, runtime)


def test_additional_gids_refused_where_setgroups_is_denied(user, runtime):
    """Only the caller's gid mapped: setgroups is denied, so additional groups can't be
    set (runc's words); exec -g is refused the same way."""

    def edit(cfg):
        cfg["process"]["user"]["additionalGids"] = [0]

    b = bundle(user, f"gids-{runtime}", ["true"], edit)
    r = rt(user, runtime, "run", cid("gids"), cwd=b)
    assert "cannot set any additional groups in a rootless container" in r.stderr, r.stderr
    assert r.returncode != 0
    nothing_left(user, runtime)
    b = bundle(user, f"gids2-{runtime}", ["sleep", "100"])
    c = cid("gids")
    assert rt(user, runtime, "run", "-d", c, cwd=b).returncode == 0
    try:
        r = rt(user, runtime, "exec", "-g", "5", c, "true")
        assert r.returncode != 0
        assert "cannot set any additional groups in a rootless container" in r.stderr, r.stderr
    finally:
        rt(user, runtime, "delete", "--force", c)
    nothing_left(user, runtime)


# ----------------------------------------------------------------------------- cgroups


def _res(**res):
    def edit(cfg):
        cfg["linux"]["resources"] = res

    return edit


@pytest.mark.parametrize(
    "case,edit,expect",
    [
        ("none", None, None),
        ("devices", _res(devices=[{"allow": False, "access": "rwm"}]), None),
        (
            "memory",
            _res(memory={"limit": 100 << 20}),
            "cannot set memory limit: container could not join or create cgroup",
        ),
        (
            "pids",
            _res(pids={"limit": 100}),
            "cannot set pids limit: container could not join or create cgroup",
        ),
        (
            "path",
            lambda cfg: cfg["linux"].update(cgroupsPath="/ocirun-rl-test"),
            "mkdir /sys/fs/cgroup/",
        ),
    ],
)
def test_cgroups_the_user_cannot_write(user, runtime, case, edit, expect):
    """As runc's rootless cgroup manager: without cgroupsPath, hierarchies the caller
    can't write are skipped (the container stays in the caller's cgroups) and device
    rules are best effort; a limit that needs one fails; an explicit cgroupsPath fails."""
    mine = {
        line.split(":", 2)[1]: line.split(":", 2)[2]
        for line in Path("/proc/self/cgroup").read_text().splitlines()
    }
    b = bundle(user, f"cg-{case}-{runtime}", ["cat", "/proc/self/cgroup"], edit)
    r = rt(user, runtime, "run", cid(f"cg-{case}"), cwd=b)
    if expect is None:
        assert r.returncode == 0, r.stderr
        for line in r.stdout.splitlines():
            _, ctl, path = line.split(":", 2)
            if ctl in mine:  # setpriv keeps our cgroups: the container is in them too
                assert path == mine[ctl], (line, mine[ctl])
    else:
        assert r.returncode != 0
        assert expect in r.stderr, r.stderr
        if runtime == "ocirun":
            one_line_error(r)
    nothing_left(user, runtime)


def test_rootless_false_makes_cgroup_errors_errors(user, runtime):
    b = bundle(user, f"rlfalse-{runtime}", ["true"])
    r = user.run(RUNTIMES[runtime], "--rootless=false", "run", cid("rlfalse"), cwd=b)
    assert r.returncode != 0
    assert "mkdir /sys/fs/cgroup/" in r.stderr and "permission denied" in r.stderr, r.stderr
    nothing_left(user, runtime)


def test_without_cgroups_ps_and_pause_fail_and_kill_all_reaches_the_init(user):
    b = bundle(user, "nocg", ["sleep", "100"])
    c = cid("nocg")
    assert rt(user, "ocirun", "run", "-d", c, cwd=b).returncode == 0
    try:
        for cmd in (["ps", c], ["pause", c]):
            line = one_line_error(rt(user, "ocirun", *cmd))
            assert "has no cgroups" in line, line
        assert rt(user, "ocirun", "kill", "--all", c, "KILL").returncode == 0
        for _ in range(100):
            if json.loads(rt(user, "ocirun", "state", c).stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        assert json.loads(rt(user, "ocirun", "state", c).stdout)["status"] == "stopped"
    finally:
        rt(user, "ocirun", "delete", "--force", c)
    nothing_left(user, "ocirun")


# ----------------------------------------------------------------------------- network


def test_network_namespace_has_loopback_up(user, runtime):
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "network"})
        for k in ("bounding", "effective", "permitted"):  # busybox ping: a raw socket
            cfg["process"]["capabilities"][k].append("CAP_NET_RAW")

    b = bundle(
        user,
        f"net-{runtime}",
        [
            "sh",
            "-c",
            "ip -o link | cut -d: -f2; ip -o link show lo; "
            "ping -c1 -W2 127.0.0.1 >/dev/null && echo pong",
        ],
        edit,
    )
    r = rt(user, runtime, "run", cid("net"), cwd=b)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].strip() == "lo" and lines[1].startswith("1: lo:"), r.stdout  # lo alone
    assert lines[2] == "pong", r.stdout
    assert "UP" in lines[1].split("<")[1].split(">")[0].split(","), r.stdout
    nothing_left(user, runtime)


def test_host_network_when_shared(user):
    """spec --rootless has no network namespace: the host's interfaces are seen."""
    b = bundle(user, "hostnet", ["sh", "-c", "ip -o link | cut -d: -f2"])
    r = rt(user, "ocirun", "run", cid("hostnet"), cwd=b)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(os.listdir("/sys/class/net"))
    assert len(r.stdout.split()) > 1


def test_spec_rootless_as_user_matches_runc(user):
    specs = {}
    for runtime in RUNTIMES:
        d = user.base / "bundles" / f"spec-{runtime}"
        d.mkdir(parents=True)
        user.chown_tree(d)
        r = user.run(RUNTIMES[runtime], "spec", "--rootless", cwd=d)
        assert r.returncode == 0, r.stderr
        specs[runtime] = json.loads((d / "config.json").read_text())
    ours, theirs = specs["ocirun"], specs["runc"]
    assert ours["linux"]["uidMappings"] == [{"containerID": 0, "hostID": user.uid, "size": 1}]
    assert ours["linux"]["gidMappings"] == [{"containerID": 0, "hostID": user.gid, "size": 1}]
    for key in ("uidMappings", "gidMappings", "namespaces"):
        assert ours["linux"][key] == theirs["linux"][key], key
    assert ours["mounts"] == theirs["mounts"]


def test_without_xdg_runtime_dir_the_error_says_what_to_do(user):
    b = bundle(user, "noxdg", ["true"])
    env = user.env()
    del env["XDG_RUNTIME_DIR"]
    r = user.run(OCIRUN, "run", cid("noxdg"), cwd=b, env=env)
    line = one_line_error(r)
    assert "/run/ocirun" in line and "give --root, or set XDG_RUNTIME_DIR" in line, line
    assert "denied" in line, line


def test_unmapped_mount_ids_refused(user, runtime):
    """runc spec's devpts has gid=5, which a rootless container does not map: refused
    before anything runs (runc: the same check, its words)."""

    def edit(cfg):
        for m in cfg["mounts"]:
            if m["type"] == "devpts":
                m["options"].append("gid=5")

    b = bundle(user, f"gid5-{runtime}", ["true"], edit)
    r = rt(user, runtime, "run", cid("gid5"), cwd=b)
    assert r.returncode != 0
    if runtime == "ocirun":
        line = one_line_error(r)
        assert "cannot specify gid=5: gid 5 is not mapped" in line, line
    else:
        assert "cannot specify gid= mount options for unmapped gid" in r.stderr, r.stderr
    nothing_left(user, runtime)


def test_sysfs_needs_a_network_namespace(user, runtime):
    """A fresh sysfs in a user namespace needs a network namespace it owns: without one
    both runtimes fail (spec --rootless binds /sys instead); with one it mounts."""

    def edit(cfg, netns):
        for m in cfg["mounts"]:
            if m["destination"] == "/sys":
                m.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev"])
        if netns:
            cfg["linux"]["namespaces"].append({"type": "network"})

    for netns in (False, True):
        b = bundle(
            user,
            f"sysfs-{netns}-{runtime}",
            ["sh", "-c", "grep ' /sys ' /proc/self/mountinfo"],
            lambda cfg, netns=netns: edit(cfg, netns),
        )
        r = rt(user, runtime, "run", cid("sysfs"), cwd=b)
        if netns:
            assert r.returncode == 0, r.stderr
            assert " - sysfs " in r.stdout, r.stdout
        else:
            assert r.returncode != 0 and "operation not permitted" in r.stderr.lower(), r.stderr
        nothing_left(user, runtime)


def test_features_as_the_user(user):
    """features is the same for any caller, and says the user's systemd manager works."""
    r = rt(user, "ocirun", "features")
    assert r.returncode == 0, r.stderr
    cg = json.loads(r.stdout)["linux"]["cgroup"]
    assert cg["systemd"] is True and cg["systemdUser"] is True and cg["v1"] and cg["v2"]


def test_idmapped_mounts_refused_recursive_attributes_work(user):
    """mount_setattr(MOUNT_ATTR_IDMAP) on the host's mounts needs root: refused in one
    line; recursive attributes (rro) need nothing more than a bind and work."""
    src = user.base / "vol"
    src.mkdir()
    (src / "f").write_text("x\n")
    user.chown_tree(src)

    def mount(options):
        def edit(cfg):
            cfg["mounts"].append(
                {"destination": "/vol", "type": "bind", "source": str(src), "options": options}
            )

        return edit

    b = bundle(user, "idmap", ["true"], mount(["bind", "idmap"]))
    line = one_line_error(rt(user, "ocirun", "run", cid("idmap"), cwd=b))
    assert "idmapped mounts need ocirun to run as root" in line, line
    b = bundle(
        user,
        "rro",
        ["sh", "-c", "cat /vol/f; touch /vol/g || echo refused"],
        mount(["rbind", "rro"]),
    )
    r = rt(user, "ocirun", "run", cid("rro"), cwd=b)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["x", "refused"], r.stdout + r.stderr
    assert not (src / "g").exists()
    nothing_left(user, "ocirun")
