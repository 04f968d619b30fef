"""Unit tests for ocirun.plan.build: config dict -> Plan, with no root and no I/O."""

from __future__ import annotations

import builtins
import copy
import os

import pytest

from ocirun import plan as planmod
from ocirun.errors import ConfigError
from ocirun.plan import MNT_DIR, MNT_FILE, CgroupLayout, HostFacts, Options, build
from ocirun.tables import (
    CAPS,
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MOUNT_FLAGS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    RLIMITS,
)

S_IFCHR, S_IFBLK, S_IFIFO = 0o020000, 0o060000, 0o010000
BUNDLE = "/bundle"
V1 = CgroupLayout(v1=[("cpu", "cpu"), ("memory", "memory"), ("systemd", "name=systemd")])
V2 = CgroupLayout(unified=True)

ALL_BUT_TIME = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
}

DEFAULT_DEV = {
    "/dev/null": (1, 3),
    "/dev/zero": (1, 5),
    "/dev/full": (1, 7),
    "/dev/tty": (5, 0),
    "/dev/random": (1, 8),
    "/dev/urandom": (1, 9),
}


def config(namespaces=("pid", "network", "ipc", "uts", "mount"), **top) -> dict:
    cfg = {
        "ociVersion": "1.3.0",
        "process": {
            "args": ["sh"],
            "cwd": "/",
            "env": ["PATH=/bin", "A=1"],
            "user": {"uid": 0, "gid": 0},
        },
        "root": {"path": "rootfs"},
        "mounts": [],
        "linux": {
            "namespaces": [ns if isinstance(ns, dict) else {"type": ns} for ns in namespaces]
        },
    }
    cfg.update(top)
    return cfg


def with_userns(cfg: dict) -> dict:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": 200000, "size": 1000},
        {"containerID": 1000, "hostID": 300000, "size": 1},
    ]
    return cfg


def plan_of(cfg: dict, *, dirs=(), cgroups=V1, opts=None) -> planmod.Plan:
    """build() with an is_dir that knows only `dirs` (everything else is a file)."""
    return build(cfg, BUNDLE, opts, HostFacts(is_dir=lambda p: p in dirs, cgroups=cgroups))


def one_mount(m: dict, **kw) -> planmod.Mount:
    cfg = config()
    cfg["mounts"] = [m]
    mounts = plan_of(cfg, **kw).rootfs.mounts
    assert len(mounts) == 1
    return mounts[0]


# --- purity -----------------------------------------------------------------------------


def test_build_does_no_io(monkeypatch):
    cfg = with_userns(config(namespaces=("pid", "network", "ipc", "uts", "mount", "cgroup")))
    cfg["mounts"] = [
        {"destination": "/b", "type": "bind", "source": "/host/dir", "options": ["rbind", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
    ]
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]

    def forbidden(*a, **k):
        raise AssertionError(f"I/O during build: {a}")

    for name in ("stat", "lstat", "listdir", "open", "access", "readlink", "scandir"):
        monkeypatch.setattr(os, name, forbidden)
    for name in ("isdir", "exists", "isfile", "lexists", "islink"):
        monkeypatch.setattr(os.path, name, forbidden)
    monkeypatch.setattr(builtins, "open", forbidden)
    seen = []
    p = build(
        cfg, BUNDLE, None, HostFacts(is_dir=lambda path: seen.append(path) or True, cgroups=V1)
    )
    assert seen == ["/host/dir"]  # asked only about the bind source
    assert p.rootfs.mounts[0].kind == MNT_DIR


# --- namespaces -------------------------------------------------------------------------


def test_all_new_namespaces_are_created_by_clone():
    cfg = with_userns(config(namespaces=[t for t in ALL_BUT_TIME if t != "user"]))
    p = plan_of(cfg)
    want = 0
    for flag in ALL_BUT_TIME.values():
        want |= flag
    assert p.ns.clone_flags == want
    assert p.ns.unshare_flags == 0
    assert p.ns.joins == ()
    assert p.ns.fork_after is False
    assert p.ns.userns_sync is True
    assert p.ns.loopback_up is True
    assert p.ns.timens_offsets is None


def test_no_network_namespace_no_loopback():
    p = plan_of(config(namespaces=("pid", "mount")))
    assert p.ns.clone_flags == CLONE_NEWPID | CLONE_NEWNS
    assert p.ns.loopback_up is False
    assert p.ns.userns_sync is False and p.ns.uid_map == "" and p.ns.gid_map == ""


def test_joined_namespace_switches_to_setns_and_unshare():
    cfg = config(namespaces=["pid", "ipc", "mount", {"type": "network", "path": "/proc/42/ns/net"}])
    p = plan_of(cfg)
    assert p.ns.clone_flags == 0
    assert p.ns.joins == (("/proc/42/ns/net", CLONE_NEWNET),)
    assert p.ns.unshare_flags == CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNS
    assert p.ns.fork_after is True  # a new pid namespace via unshare holds only our children
    assert p.ns.loopback_up is False  # a joined network namespace is left alone


def test_joined_user_namespace_goes_first():
    cfg = config(
        namespaces=[
            {"type": "network", "path": "/proc/42/ns/net"},
            {"type": "ipc", "path": "/proc/42/ns/ipc"},
            {"type": "user", "path": "/proc/42/ns/user"},
            {"type": "uts", "path": "/proc/42/ns/uts"},
            "mount",
        ]
    )
    p = plan_of(cfg)
    assert p.ns.joins[0] == ("/proc/42/ns/user", CLONE_NEWUSER)
    # The rest keep their config order.
    assert p.ns.joins[1:] == (
        ("/proc/42/ns/net", CLONE_NEWNET),
        ("/proc/42/ns/ipc", CLONE_NEWIPC),
        ("/proc/42/ns/uts", CLONE_NEWUTS),
    )
    assert p.ns.unshare_flags == CLONE_NEWNS
    assert p.ns.fork_after is False  # no pid or time namespace, new or joined
    assert p.ns.userns_sync is False  # the joined user namespace has its maps


def test_joined_pid_namespace_needs_fork():
    cfg = config(namespaces=["mount", {"type": "pid", "path": "/proc/42/ns/pid"}])
    p = plan_of(cfg)
    assert p.ns.clone_flags == 0
    assert p.ns.joins == (("/proc/42/ns/pid", CLONE_NEWPID),)
    assert p.ns.unshare_flags == CLONE_NEWNS
    assert p.ns.fork_after is True


def test_joined_mount_namespace_gets_the_container_mounts():
    cfg = config(namespaces=["pid", {"type": "mount", "path": "/proc/42/ns/mnt"}])
    cfg["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    p = plan_of(cfg)
    assert p.rootfs.setup_rootfs is True
    assert [m.target for m in p.rootfs.mounts] == ["/proc"]


def test_time_namespace_forks_and_writes_offsets():
    cfg = config(namespaces=("pid", "mount", "time"))
    cfg["linux"]["timeOffsets"] = {
        "monotonic": {"secs": 86400, "nanosecs": 5},
        "boottime": {"secs": -7},
    }
    p = plan_of(cfg)
    assert p.ns.clone_flags == 0
    assert p.ns.joins == ()
    assert p.ns.unshare_flags == CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWTIME
    assert p.ns.fork_after is True
    assert p.ns.timens_offsets == "boottime -7 0\nmonotonic 86400 5\n"


def test_time_namespace_without_offsets():
    p = plan_of(config(namespaces=("mount", "time")))
    assert p.ns.unshare_flags == CLONE_NEWNS | CLONE_NEWTIME
    assert p.ns.fork_after is True  # a new time namespace applies to children only
    assert p.ns.timens_offsets is None


def test_user_namespace_maps():
    p = plan_of(with_userns(config()))
    assert p.ns.userns_sync is True
    assert p.ns.clone_flags & CLONE_NEWUSER
    assert p.ns.uid_map == "0 100000 65536\n"
    assert p.ns.gid_map == "0 200000 1000\n1000 300000 1\n"


def test_user_namespace_with_join_is_unshared():
    cfg = with_userns(config(namespaces=["mount", {"type": "network", "path": "/x/net"}]))
    p = plan_of(cfg)
    assert p.ns.clone_flags == 0
    assert p.ns.unshare_flags == CLONE_NEWNS | CLONE_NEWUSER
    assert p.ns.userns_sync is True
    assert p.ns.uid_map == "0 100000 65536\n"


def test_without_mount_namespace_mounts_in_the_runtimes_and_chroots():
    cfg = config(namespaces=("pid", "network"))
    cfg["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    p = plan_of(cfg)
    assert p.rootfs.setup_rootfs and p.rootfs.host_mount_ns
    assert [m.target for m in p.rootfs.mounts] == ["/proc"]  # made in the runtime's namespace
    # the propagation of the runtime's own mounts is left alone
    assert p.rootfs.root_propagation == p.rootfs.root_propagation_end == 0
    assert p.rootfs.rootfs_parent_unshared is False
    with_ns = plan_of(config())
    assert not with_ns.rootfs.host_mount_ns and with_ns.rootfs.root_propagation != 0


def test_joined_mount_namespace_gets_the_rootfs_set_up_in_it():
    """As runc: the mounts and pivot_root happen in the joined namespace."""
    p = plan_of(config(namespaces=("pid", {"type": "mount", "path": "/x/mnt"})))
    assert p.rootfs.setup_rootfs and not p.rootfs.host_mount_ns
    assert p.rootfs.root_propagation == MS_SLAVE | MS_REC


# --- hostname / domainname / sysctl -----------------------------------------------------


@pytest.mark.parametrize("key", ["hostname", "domainname"])
def test_uts_sysctl_contradicting_the_name_is_an_error(key):
    cfg = config()
    cfg[key] = "one"
    cfg["linux"]["sysctl"] = {f"kernel.{key}": "two"}
    with pytest.raises(ConfigError) as e:
        plan_of(cfg)
    assert f"/linux/sysctl/kernel.{key}: 'two' contradicts /{key} 'one'" in str(e.value)
    cfg["linux"]["sysctl"] = {f"kernel.{key}": "one"}
    if key == "hostname":  # runc and crun refuse kernel.hostname, agreeing or alone
        for _ in range(2):
            with pytest.raises(ConfigError) as e:
                plan_of(cfg)
            assert "/linux/sysctl/kernel.hostname: not allowed: it conflicts" in str(e.value)
            cfg.pop(key, None)
        return
    assert plan_of(cfg).kernel.sysctls == ((f"/proc/sys/kernel/{key}", "one"),)  # agreeing
    del cfg[key]  # the sysctl alone sets it
    assert plan_of(cfg).kernel.sysctls == ((f"/proc/sys/kernel/{key}", "one"),)


@pytest.mark.parametrize("key", ["hostname", "domainname"])
def test_name_without_uts_namespace_is_an_error(key):
    """Refused once, by the validator (its verdict is cached); the planner never sets a
    name (not even an empty one) without a uts namespace of the container's."""
    from ocirun import validate

    cfg = config(namespaces=("pid", "mount"), **{key: "box"})
    problems = validate.validate(dict(cfg, ociVersion="1.3.0"))
    assert any(p.startswith(f"/{key}:") and "uts" in p for p in problems), problems
    assert getattr(plan_of(config(namespaces=("pid", "mount"), **{key: ""})).kernel, key) is None


def test_names_with_new_or_joined_uts():
    p = plan_of(config(hostname="h", domainname="d.example"))
    assert (p.kernel.hostname, p.kernel.domainname) == ("h", "d.example")
    joined = config(namespaces=["mount", {"type": "uts", "path": "/proc/1/ns/uts"}], hostname="j")
    assert plan_of(joined).kernel.hostname == "j"
    assert plan_of(config()).kernel.hostname is None


def test_sysctls_become_proc_sys_paths():
    cfg = config()
    cfg["linux"]["sysctl"] = {
        "net.ipv4.ip_forward": "1",
        "kernel.msgmax": 8192,
        "net/ipv4/conf/lo/forwarding": "0",
    }
    p = plan_of(cfg)
    assert sorted(p.kernel.sysctls) == [
        ("/proc/sys/kernel/msgmax", "8192"),
        ("/proc/sys/net/ipv4/conf/lo/forwarding", "0"),
        ("/proc/sys/net/ipv4/ip_forward", "1"),
    ]


@pytest.mark.parametrize(
    "name,path",
    [
        ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
        ("net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward"),
        pytest.param(
            "net/ipv4/conf/eth0.100/forwarding", "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
        ),
        pytest.param(
            "net.ipv4.conf.eth0/100.forwarding", "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
        ),
    ],
)
def test_sysctl_name_forms(name, path):
    cfg = config()
    cfg["linux"]["sysctl"] = {name: "1"}
    assert plan_of(cfg).kernel.sysctls == ((path, "1"),)


# --- process ----------------------------------------------------------------------------


def test_process_fields():
    cfg = config()
    cfg["process"].update(
        args=["/bin/app", "-x"],
        env=["A=1", "PATH=/usr/bin:/bin", "B=2"],
        cwd="/srv",
        user={"uid": 1000, "gid": 100, "additionalGids": [5, 6], "umask": 23},
        noNewPrivileges=True,
        oomScoreAdj=-500,
        rlimits=[
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
            {"type": "RLIMIT_NPROC", "soft": 10, "hard": 20},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615},
        ],
    )
    p = plan_of(cfg)
    assert p.process.argv == ("/bin/app", "-x")
    assert p.process.envp == ("A=1", "PATH=/usr/bin:/bin", "B=2")
    assert p.process.path_env == "/usr/bin:/bin"
    assert p.process.cwd == "/srv"
    assert (p.process.uid, p.process.gid, p.process.groups) == (1000, 100, (5, 6))
    assert p.process.umask == 23 == 0o027
    assert p.security.no_new_privs is True
    assert p.kernel.oom_score_adj == "-500"
    assert p.process.rlimits == ((7, 512, 1024), (6, 10, 20), (4, 0, 2**64 - 1))
    assert RLIMITS["RLIMIT_NOFILE"] == 7 and RLIMITS["RLIMIT_NPROC"] == 6


def test_process_defaults():
    cfg = config()
    cfg["process"] = {"args": ["sh"]}
    p = plan_of(cfg)
    assert p.process.umask == 0o022
    assert p.process.cwd == "/"
    # no PATH in process.env: argv[0] is looked up in the default one (the init has none)
    assert (
        p.process.envp == ()
        and p.process.path_env == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
    assert (p.process.uid, p.process.gid, p.process.groups) == (0, 0, ())
    assert p.process.rlimits == ()
    assert p.security.no_new_privs is False
    assert p.kernel.oom_score_adj is None
    # no capabilities object: every set empty, as runc (not the runtime's own, root's, set)
    assert p.security.caps == dict.fromkeys(
        ("bounding", "effective", "permitted", "inheritable", "ambient"), 0
    )


def test_umask_zero_is_kept():
    cfg = config()
    cfg["process"]["user"]["umask"] = 0
    assert plan_of(cfg).process.umask == 0


def test_capability_masks():
    cfg = config()
    cfg["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"],
        "effective": ["CAP_CHOWN", "CAP_CHOWN"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    p = plan_of(cfg)
    assert p.security.caps == {
        "bounding": (1 << 0) | (1 << 5) | (1 << 10) | (1 << 40),
        "effective": 1,
        "permitted": 1 | (1 << 5),
        "inheritable": 0,
        "ambient": 0,  # neither permitted nor inheritable: the kernel would refuse it
    }
    assert p.warnings == (
        "can't raise ambient capability CAP_NET_BIND_SERVICE: operation not permitted",
    )


def test_ambient_capabilities_in_permitted_and_inheritable_are_raised():
    cfg = config()
    both = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    cfg["process"]["capabilities"] = {
        "bounding": both,
        "permitted": both,
        "inheritable": ["CAP_KILL"],
        "ambient": both,
    }
    p = plan_of(cfg)
    assert p.security.caps["ambient"] == 1 << 5
    assert p.warnings == (
        "can't raise ambient capability CAP_NET_BIND_SERVICE: operation not permitted",
    )


def test_unknown_and_unavailable_capabilities_are_warnings():
    cfg = config()
    cfg["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_FUTURE"],
        "effective": ["CAP_SYS_RESOURCE", "CAP_FUTURE"],
        "permitted": ["CAP_CHOWN", "CAP_SYS_RESOURCE"],
    }
    host = planmod.ALL_CAPS & ~(1 << CAPS["CAP_SYS_RESOURCE"])
    p = build(cfg, BUNDLE, None, HostFacts(is_dir=lambda _: False, cgroups=V1, cap_bounding=host))
    assert (
        p.security.caps["bounding"] == p.security.caps["permitted"] == 1
        and p.security.caps["effective"] == 0
    )
    assert p.warnings == (
        "ignoring unknown or unavailable capabilities: [CAP_FUTURE]",
        "ignoring capabilities outside the runtime's bounding set: CAP_SYS_RESOURCE",
    )


def test_default_capability_mask():
    from ocirun.defaults import DEFAULT_CAPS

    cfg = config()
    cfg["process"]["capabilities"] = {
        s: list(DEFAULT_CAPS) for s in ("bounding", "effective", "permitted")
    }
    p = plan_of(cfg)
    assert (
        p.security.caps["bounding"]
        == p.security.caps["effective"]
        == p.security.caps["permitted"]
        == 0xA80425FB
    )
    assert sum(1 << CAPS[c] for c in DEFAULT_CAPS) == 0xA80425FB


def test_empty_capabilities_object_drops_everything():
    cfg = config()
    cfg["process"]["capabilities"] = {}
    p = plan_of(cfg)
    assert set(p.security.caps.values()) == {0}


def test_options_pass_through():
    p = plan_of(config(), opts=Options(no_pivot=True, no_new_keyring=True, preserve_fds=3))
    assert (
        p.rootfs.no_pivot is True
        and p.security.new_keyring is False
        and p.process.preserve_fds == 3
    )
    p = plan_of(config())
    assert (
        p.rootfs.no_pivot is False
        and p.security.new_keyring is True
        and p.process.preserve_fds == 0
    )


# --- rootfs -----------------------------------------------------------------------------


def test_rootfs_path_and_readonly():
    p = plan_of(config())
    assert p.rootfs.setup_rootfs is True
    assert p.rootfs.path == "/bundle/rootfs"
    assert p.rootfs.rootfs_readonly is False
    cfg = config(root={"path": "/abs/../abs/rootfs/", "readonly": True})
    p = plan_of(cfg)
    assert p.rootfs.path == "/abs/rootfs"
    assert p.rootfs.rootfs_readonly is True
    assert plan_of(config(root={"path": "sub/../img"})).rootfs.path == "/bundle/img"


@pytest.mark.parametrize(
    "prop,start,end",
    [
        (None, MS_SLAVE | MS_REC, 0),
        ("private", MS_PRIVATE, 0),
        ("rprivate", MS_PRIVATE | MS_REC, 0),
        ("slave", MS_SLAVE, 0),
        ("rslave", MS_SLAVE | MS_REC, 0),
        # As runc: shared from the start, so bind volumes stay in the host's peer groups.
        ("shared", MS_SHARED, MS_SHARED),
        ("rshared", MS_SHARED | MS_REC, MS_SHARED | MS_REC),
    ],
)
def test_rootfs_propagation(prop, start, end):
    cfg = config()
    if prop:
        cfg["linux"]["rootfsPropagation"] = prop
    p = plan_of(cfg)
    assert (p.rootfs.root_propagation, p.rootfs.root_propagation_end) == (start, end)


def test_masked_and_readonly_paths():
    cfg = config()
    cfg["linux"]["maskedPaths"] = ["/proc/kcore", "/sys/firmware"]
    cfg["linux"]["readonlyPaths"] = ["/proc/sys"]
    p = plan_of(cfg)
    assert p.rootfs.masked_paths == ("/proc/kcore", "/sys/firmware")
    assert p.rootfs.readonly_paths == ("/proc/sys",)


# --- mounts -----------------------------------------------------------------------------


def test_ro_bind_is_bind_plus_readonly_remount():
    m = one_mount(
        {"destination": "/data", "type": "bind", "source": "/host/data", "options": ["bind", "ro"]},
        dirs={"/host/data"},
    )
    assert m.flags == MS_BIND
    assert m.remount == MS_RDONLY
    assert (m.source, m.target, m.fstype, m.data) == ("/host/data", "/data", None, None)
    assert m.kind == MNT_DIR
    assert m.propagation == 0


def test_rw_bind_needs_no_remount():
    m = one_mount(
        {
            "destination": "/data",
            "type": "bind",
            "source": "/host/data",
            "options": ["rbind", "rw"],
        },
        dirs={"/host/data"},
    )
    assert m.flags == MS_BIND | MS_REC
    assert m.remount == 0


def test_rbind_with_restrictions():
    m = one_mount(
        {
            "destination": "/data",
            "type": "none",
            "source": "/host/data",
            "options": ["rbind", "nosuid", "nodev", "noexec", "ro", "strictatime"],
        },
        dirs={"/host/data"},
    )
    assert m.flags == MS_BIND | MS_REC
    assert m.remount == MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY | MS_STRICTATIME


def test_later_option_wins():
    m = one_mount(
        {"destination": "/d", "type": "bind", "source": "/s", "options": ["bind", "ro", "rw"]},
        dirs={"/s"},
    )
    assert m.remount == 0


@pytest.mark.parametrize(
    "opt,flags",
    [
        ("rshared", MS_SHARED | MS_REC),
        ("shared", MS_SHARED),
        ("rslave", MS_SLAVE | MS_REC),
        ("slave", MS_SLAVE),
        ("rprivate", MS_PRIVATE | MS_REC),
        ("private", MS_PRIVATE),
    ],
)
def test_bind_propagation(opt, flags):
    m = one_mount(
        {"destination": "/d", "type": "bind", "source": "/s", "options": ["rbind", opt]},
        dirs={"/s"},
    )
    assert m.propagation == flags
    assert m.flags == MS_BIND | MS_REC


def test_tmpfs_options_split_into_flags_and_data():
    m = one_mount(
        {
            "destination": "/d",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=1m", "mode=700", "rw"],
        }
    )
    assert m.fstype == "tmpfs" and m.source == "tmpfs"
    assert m.flags == MS_NOSUID | MS_NODEV
    assert m.data == "size=1m,mode=700"
    assert m.remount == 0


def test_fs_mount_flags_and_data():
    m = one_mount(
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        }
    )
    assert m.flags == MS_NOSUID | MS_NOEXEC
    assert m.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert m.kind == MNT_DIR


def test_mount_without_options_or_source():
    m = one_mount({"destination": "/proc", "type": "proc"})
    assert (m.fstype, m.source, m.flags, m.data) == ("proc", "proc", 0, None)


def test_relative_destination_is_absolute():
    m = one_mount({"destination": "data", "type": "tmpfs", "source": "tmpfs"})
    assert m.target == "/data"
    m = one_mount({"destination": "/a/./b/../c/", "type": "tmpfs", "source": "tmpfs"})
    assert m.target == "/a/c"


def test_relative_bind_source_is_joined_with_bundle():
    seen = []
    cfg = config()
    cfg["mounts"] = [
        {"destination": "/d", "type": "bind", "source": "data/dir", "options": ["bind"]}
    ]
    p = build(
        cfg, BUNDLE, None, HostFacts(is_dir=lambda path: seen.append(path) or True, cgroups=V1)
    )
    assert p.rootfs.mounts[0].source == "/bundle/data/dir"
    assert seen == ["/bundle/data/dir"]


def test_file_bind_source_is_mnt_file():
    m = one_mount(
        {
            "destination": "/etc/resolv.conf",
            "type": "bind",
            "source": "/host/resolv.conf",
            "options": ["bind", "ro"],
        },
        dirs=set(),
    )
    assert m.kind == MNT_FILE
    m = one_mount(
        {
            "destination": "/etc/conf.d",
            "type": "bind",
            "source": "/host/conf.d",
            "options": ["bind", "ro"],
        },
        dirs={"/host/conf.d"},
    )
    assert m.kind == MNT_DIR


def test_bind_without_source_is_an_error():
    cfg = config()
    cfg["mounts"] = [{"destination": "/d", "type": "bind", "options": ["bind"]}]
    with pytest.raises(ConfigError) as e:
        plan_of(cfg)
    assert "/mounts/0/source" in str(e.value)


def test_mount_order_is_kept():
    cfg = config()
    cfg["mounts"] = [
        {"destination": "/a", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/a/b", "type": "bind", "source": "/s", "options": ["bind"]},
        {"destination": "/c", "type": "proc", "source": "proc"},
    ]
    assert [m.target for m in plan_of(cfg, dirs={"/s"}).rootfs.mounts] == ["/a", "/a/b", "/c"]


CGROUP_MOUNT = {
    "destination": "/sys/fs/cgroup",
    "type": "cgroup",
    "source": "cgroup",
    "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
}


def test_cgroup_mount_v1_expansion():
    cfg = config()
    cfg["mounts"] = [copy.deepcopy(CGROUP_MOUNT)]
    mounts = plan_of(cfg, cgroups=V1).rootfs.mounts
    base = MS_NOSUID | MS_NOEXEC | MS_NODEV | MOUNT_FLAGS["relatime"][0]
    assert [(m.target, m.fstype, m.source, m.data) for m in mounts] == [
        ("/sys/fs/cgroup", "tmpfs", "tmpfs", "mode=755"),
        ("/sys/fs/cgroup/cpu", "cgroup", "cgroup", "cpu"),
        ("/sys/fs/cgroup/memory", "cgroup", "cgroup", "memory"),
        ("/sys/fs/cgroup/systemd", "cgroup", "cgroup", "name=systemd"),
        ("/sys/fs/cgroup", None, None, None),
    ]
    assert mounts[0].flags == base  # the tmpfs must stay writable to make the mount points
    for m in mounts[1:4]:
        assert m.flags == base | MS_RDONLY
    assert mounts[4].remount == MS_RDONLY


def test_cgroup_mount_v1_rw_has_no_remount():
    cfg = config()
    cfg["mounts"] = [
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid"],
        }
    ]
    mounts = plan_of(cfg, cgroups=V1).rootfs.mounts
    assert len(mounts) == 1 + len(V1.v1)
    assert all(m.fstype for m in mounts)
    assert all(not m.flags & MS_RDONLY for m in mounts)


def test_cgroup_mount_v2():
    cfg = config()
    cfg["mounts"] = [copy.deepcopy(CGROUP_MOUNT)]
    mounts = plan_of(cfg, cgroups=V2).rootfs.mounts
    assert len(mounts) == 1
    m = mounts[0]
    assert (m.target, m.fstype, m.source) == ("/sys/fs/cgroup", "cgroup2", "cgroup2")
    assert m.flags & MS_RDONLY and m.flags & MS_NOSUID
    assert not m.flags & MS_BIND


# --- devices ----------------------------------------------------------------------------


def devices_of(p) -> dict[str, planmod.Device]:
    return {d.path: d for d in p.rootfs.devices}


def test_default_devices_and_links():
    cfg = config()
    cfg["mounts"] = [
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
    ]
    p = plan_of(cfg)
    devs = devices_of(p)
    assert set(devs) == set(DEFAULT_DEV)
    for path, (major, minor) in DEFAULT_DEV.items():
        d = devs[path]
        assert d.mode == S_IFCHR | 0o666, path
        assert d.dev == os.makedev(major, minor), path
        assert (d.uid, d.gid, d.host_path) == (0, 0, None)
    assert ("/proc/self/fd", "/dev/fd") in p.rootfs.symlinks
    assert ("/proc/self/fd/0", "/dev/stdin") in p.rootfs.symlinks
    assert ("/proc/self/fd/1", "/dev/stdout") in p.rootfs.symlinks
    assert ("/proc/self/fd/2", "/dev/stderr") in p.rootfs.symlinks
    assert ("pts/ptmx", "/dev/ptmx") in p.rootfs.symlinks


def test_no_ptmx_link_without_devpts():
    p = plan_of(config())
    assert not any(link == "/dev/ptmx" for _, link in p.rootfs.symlinks)
    assert len(p.rootfs.symlinks) == 4


def test_configured_device_replaces_default_and_adds():
    cfg = config()
    cfg["linux"]["devices"] = [
        {
            "path": "/dev/null",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o600,
            "uid": 7,
            "gid": 8,
        },
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640},
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
        {"path": "/dev/fifo", "type": "p"},
    ]
    p = plan_of(cfg)
    paths = [d.path for d in p.rootfs.devices]
    assert paths.count("/dev/null") == 1
    devs = devices_of(p)
    assert devs["/dev/null"].mode == S_IFCHR | 0o600
    assert (devs["/dev/null"].uid, devs["/dev/null"].gid) == (7, 8)
    assert devs["/dev/fuse"].mode == S_IFCHR | 0o640
    assert devs["/dev/fuse"].dev == os.makedev(10, 229)
    assert devs["/dev/sda"].mode == S_IFBLK | 0o666  # no fileMode: 0666
    assert devs["/dev/sda"].dev == os.makedev(8, 0)
    assert devs["/dev/fifo"].mode == S_IFIFO | 0o666
    assert set(DEFAULT_DEV) - {"/dev/null"} <= set(devs)


def test_devices_in_user_namespace_are_bound_from_host():
    cfg = with_userns(config())
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    devs = devices_of(plan_of(cfg))
    assert set(devs) == set(DEFAULT_DEV) | {"/dev/fuse"}
    for path, d in devs.items():
        assert d.host_path == path


def test_devices_with_joined_user_namespace_are_bound_too():
    cfg = config(namespaces=["mount", {"type": "user", "path": "/proc/1/ns/user"}])
    assert all(d.host_path == d.path for d in plan_of(cfg).rootfs.devices)


def test_dev_bind_mounted_means_no_default_devices():
    cfg = config()
    cfg["mounts"] = [
        {"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}
    ]
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    p = plan_of(cfg, dirs={"/dev"})
    assert p.rootfs.devices == ()
    assert p.rootfs.symlinks == ()


# --- what ocirun can't do yet is refused, not skipped ---------------------------------------


@pytest.mark.parametrize(
    "mutate,path",
    [
        (lambda c: c["linux"].__setitem__("intelRdt", {"closID": "x"}), "/linux/intelRdt"),
    ],
)
def test_unsupported_features_are_refused(mutate, path):
    cfg = config()
    cfg.setdefault("mounts", []).insert(
        0, {"destination": "/x", "type": "tmpfs", "source": "tmpfs"}
    )
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        plan_of(cfg)
    assert path in str(e.value) and "not supported" in str(e.value)


# --- only a real procfs at /proc -----------------------------------------------------------


@pytest.mark.parametrize(
    "mount,ok",
    [
        ({"destination": "/proc", "type": "proc", "source": "proc"}, True),
        ({"destination": "/proc", "type": "bind", "source": "/tmp", "options": ["rbind"]}, False),
        ({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}, False),
        ({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}, False),
        (
            {
                "destination": "/proc/meminfo",
                "type": "bind",
                "source": "/var/lib/lxcfs/proc/meminfo",
                "options": ["bind"],
            },
            True,
        ),
        (
            {"destination": "/proc/self", "type": "bind", "source": "/tmp", "options": ["bind"]},
            False,
        ),
    ],
)
def test_proc_mounts(mount, ok):
    cfg = config()
    cfg["mounts"] = [mount]
    if ok:
        plan_of(cfg, dirs=("/tmp",))
    else:
        with pytest.raises(ConfigError) as e:
            plan_of(cfg, dirs=("/tmp",))
        assert "/mounts/0/destination" in str(e.value)


def test_cgroup_mount_binds_own_dirs_in_a_userns_or_without_cgroupns():
    dirs = {
        "cpu": "/sys/fs/cgroup/cpu/a",
        "memory": "/sys/fs/cgroup/memory/a",
        "name=systemd": "/sys/fs/cgroup/systemd/a",
    }
    layout = CgroupLayout(
        v1=[("cpu", "cpu"), ("memory", "memory"), ("systemd", "name=systemd")], dirs=dirs
    )
    cgmount = {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    }
    for namespaces, binds in (
        (("pid", "mount", "cgroup"), False),  # cgroupns: fresh mounts
        (("pid", "mount"), True),  # no cgroupns: own dirs bound
    ):
        cfg = config(namespaces=namespaces)
        cfg["mounts"] = [cgmount]
        p = plan_of(cfg, cgroups=layout)
        subs = [m for m in p.rootfs.mounts if m.target.startswith("/sys/fs/cgroup/")]
        assert len(subs) == 3
        if binds:
            assert {m.source for m in subs} == set(dirs.values())
            assert all(m.fstype is None and m.remount & MS_RDONLY for m in subs)
        else:
            assert {m.fstype for m in subs} == {"cgroup"}
    cfg = with_userns(config(namespaces=("pid", "mount", "cgroup")))
    cfg["mounts"] = [cgmount]
    subs = [
        m
        for m in plan_of(cfg, cgroups=layout).rootfs.mounts
        if m.target.startswith("/sys/fs/cgroup/")
    ]
    assert {m.source for m in subs} == set(dirs.values())


def test_tmpcopyup():
    cfg = config()
    cfg["mounts"] = [
        {
            "destination": "/etc",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["size=1m", "tmpcopyup", "nosuid"],
        }
    ]
    (m,) = plan_of(cfg).rootfs.mounts
    assert m.copyup and m.data == "size=1m"


def test_a_waiting_init_dies_on_the_usual_terminating_signals():
    import signal

    p = plan_of(config())
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        assert p.wait_signals >> sig & 1
    assert not p.wait_signals >> signal.SIGCHLD & 1
    assert not p.wait_signals >> signal.SIGKILL & 1  # needs no handler (and can't have one)


@pytest.mark.parametrize(
    "prop,moved",
    [
        (None, MS_SLAVE | MS_REC),
        ("rprivate", MS_PRIVATE | MS_REC),
        ("rshared", MS_SHARED | MS_REC),
    ],
)
def test_binds_in_a_user_namespace_are_detached_copies(prop, moved):
    """In a user namespace, bind sources are copied by the runtime (open_tree) before the
    clone, and the copy gets the propagation the root's copies got."""
    bind = {"destination": "/v", "type": "bind", "source": "/src", "options": ["rbind", "ro"]}
    cfg = with_userns(config())
    cfg["mounts"] = [bind, {"destination": "/t", "type": "tmpfs", "source": "tmpfs"}]
    if prop:
        cfg["linux"]["rootfsPropagation"] = prop
    p = plan_of(cfg, dirs={"/src"})
    v, t = (next(m for m in p.rootfs.mounts if m.target == d) for d in ("/v", "/t"))
    assert v.detached and v.moved_propagation == moved
    assert not t.detached
    cfg = config()
    cfg["mounts"] = [bind]
    assert not plan_of(cfg, dirs={"/src"}).rootfs.mounts[0].detached  # no user namespace


def test_what_runc_tolerates_is_taken_or_ignored_with_a_warning():
    """runc accepts these; so does ocirun, where it weakens nothing: relative device,
    masked and read-only paths (from the container's /), mappings or time offsets without
    the namespace they are for (ignored, with a warning)."""
    cfg = config()
    cfg["linux"]["devices"] = [{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}]
    cfg["linux"]["maskedPaths"] = ["proc/kcore", "//proc/keys"]
    cfg["linux"]["readonlyPaths"] = ["proc/sys/"]
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cfg["linux"]["timeOffsets"] = {"monotonic": {"secs": 1}}
    p = plan_of(cfg)
    assert "/dev/fuse" in [d.path for d in p.rootfs.devices]
    assert p.rootfs.masked_paths == ("/proc/kcore", "/proc/keys")
    assert p.rootfs.readonly_paths == ("/proc/sys",)
    assert p.ns.uid_map == "" and p.ns.timens_offsets is None
    assert p.warnings == (
        "ignoring uidMappings/gidMappings: the container has no user namespace of its own",
        "ignoring timeOffsets: the container has no time namespace of its own",
    )


def _bind(**kw) -> dict:
    return dict({"destination": "/v", "type": "bind", "source": "/src"}, **kw)


@pytest.mark.parametrize(
    "opts,attr_set,attr_clr",
    [
        (["rbind", "rro"], 0x1, 0),
        (["rbind", "rro", "rrw"], 0, 0x1),
        (["rbind", "rnosuid", "rnodev", "rnoexec"], 0x2 | 0x4 | 0x8, 0),
        (["rbind", "rnoatime"], 0x10, 0x70),
        (["rbind", "rnoatime", "rstrictatime"], 0x20, 0x70),
        (["rbind", "ratime"], 0, 0x70),
        (["rbind", "rnosymfollow", "rdiratime"], 0x200000, 0x80),
    ],
)
def test_recursive_mount_attributes(opts, attr_set, attr_clr):
    cfg = config()
    cfg["mounts"] = [_bind(options=opts)]
    m = plan_of(cfg, dirs={"/src"}).rootfs.mounts[0]
    assert (m.attr_set, m.attr_clr) == (attr_set, attr_clr)
    assert m.data is None  # never passed to mount(2) as fs data


def test_idmapped_mounts():
    uid = [{"containerID": 0, "hostID": 5000, "size": 10}]
    gid = [{"containerID": 0, "hostID": 6000, "size": 10}]
    cfg = with_userns(config())
    cfg["mounts"] = [
        _bind(options=["rbind", "idmap"]),
        _bind(destination="/w", options=["rbind", "ridmap"]),
        _bind(destination="/x", options=["bind"], uidMappings=uid, gidMappings=gid),
    ]
    a, b, c = plan_of(cfg, dirs={"/src"}).rootfs.mounts
    # idmap without mappings of its own: the container's
    assert a.idmap == ("0 100000 65536\n", "0 200000 1000\n1000 300000 1\n")
    assert a.detached and not a.idmap_recursive
    assert b.idmap == a.idmap and b.idmap_recursive
    assert c.idmap == ("0 5000 10\n", "0 6000 10\n") and c.detached


@pytest.mark.parametrize(
    "mount,userns,needle",
    [
        (_bind(options=["rbind", "idmap"]), False, "needs the container's user namespace"),
        (
            _bind(options=["bind"], uidMappings=[{"containerID": 0, "hostID": 1, "size": 1}]),
            True,
            "needs both uidMappings and gidMappings",
        ),
        (
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]},
            True,
            "idmapped mounts are for bind mounts",
        ),
    ],
)
def test_idmapped_mount_errors(mount, userns, needle):
    cfg = with_userns(config()) if userns else config()
    cfg["mounts"] = [mount]
    with pytest.raises(ConfigError) as e:
        plan_of(cfg, dirs={"/src"})
    assert "/mounts/0" in str(e.value) and needle in str(e.value)


# --- the route to the sealed trampoline, make_cwd ------------------------------------------


def _seccomp(*rules, default="SCMP_ACT_ALLOW"):
    return {"defaultAction": default, "syscalls": list(rules)}


def test_exec_route_is_execveat_by_default_and_with_profiles_allowing_it():
    from ocirun.plan import EXEC_EXECVEAT

    assert plan_of(config()).security.exec_route == EXEC_EXECVEAT
    for sec in (
        _seccomp(),
        _seccomp(
            {"names": ["execve", "execveat"], "action": "SCMP_ACT_ALLOW"}, default="SCMP_ACT_ERRNO"
        ),
        _seccomp({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}),
    ):
        cfg = config()
        cfg["linux"]["seccomp"] = sec
        p = plan_of(cfg)
        assert p.security.exec_route == EXEC_EXECVEAT, sec
        assert not any("execveat" in w for w in p.warnings)


def test_exec_route_through_procfs_when_the_profile_refuses_execveat():
    from ocirun.plan import EXEC_PROC_FD

    for sec in (
        _seccomp({"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}),
        _seccomp({"names": ["execve"], "action": "SCMP_ACT_ALLOW"}, default="SCMP_ACT_ERRNO"),
        # a condition on an argument: not plainly allowed
        _seccomp(
            {
                "names": ["execveat"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 4, "value": 0, "op": "SCMP_CMP_EQ"}],
            },
            default="SCMP_ACT_ERRNO",
        ),
    ):
        cfg = config()
        cfg["linux"]["seccomp"] = sec
        cfg["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
        p = plan_of(cfg)
        assert p.security.exec_route == EXEC_PROC_FD, sec
        assert any("/proc/self/fd" in n for n in p.notes), p.notes


def test_exec_route_refused_without_procfs():
    cfg = config()
    cfg["linux"]["seccomp"] = _seccomp({"names": ["execveat"], "action": "SCMP_ACT_KILL"})
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/proc"]
    with pytest.raises(ConfigError) as e:
        plan_of(cfg)
    assert any("/linux/seccomp: the profile refuses execveat" in p for p in e.value.problems), (
        e.value.problems
    )


def test_exec_route_of_exec_follows_the_containers_profile():
    from ocirun.plan import EXEC_EXECVEAT, EXEC_PROC_FD, build_exec

    sec = _seccomp({"names": ["execveat"], "action": "SCMP_ACT_ERRNO"})
    proc = {"args": ["sh"], "cwd": "/"}
    mounts = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    assert build_exec(proc, []).security.exec_route == EXEC_EXECVEAT
    assert build_exec(proc, [], seccomp=sec, mounts=mounts).security.exec_route == EXEC_PROC_FD
    with pytest.raises(ConfigError):
        build_exec(proc, [], seccomp=sec, mounts=[])


def test_make_cwd_only_where_the_rootfs_is_set_up():
    from ocirun.plan import build_exec

    assert plan_of(config()).process.make_cwd is True
    assert build_exec({"args": ["sh"], "cwd": "/x"}, []).process.make_cwd is False


def test_reopen_dev_null_only_onto_a_usable_null_device_of_the_containers():
    assert plan_of(config()).rootfs.reopen_dev_null is True  # the default devices include it
    cfg = config()
    cfg["mounts"] = [
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nodev"]}
    ]
    p = plan_of(cfg, dirs={"/dev"})
    assert p.rootfs.reopen_dev_null is False
    assert any("nodev" in n for n in p.notes), p.notes
    from ocirun.plan import build_exec

    assert build_exec({"args": ["sh"], "cwd": "/"}, []).rootfs.reopen_dev_null is False


def test_plan_is_complete_and_frozen():
    """Nothing after build decides: the seccomp filter, trace and the rest come in as
    HostFacts, and the plan refuses changes."""

    class Filter:
        bpf, flags, notify = b"\x06\x00\x00\x00\x00\x00\xff\x7f", 0, False

    cfg = config()
    cfg["process"]["noNewPrivileges"] = True
    p = build(cfg, BUNDLE, None, HostFacts(cgroups=V1, seccomp=Filter(), trace=True))
    assert p.security.seccomp_bpf == Filter.bpf and p.security.seccomp_when == planmod.SECCOMP_LAST
    assert p.trace is True
    with pytest.raises(AttributeError):
        p.trace = False


def test_plan_is_frozen_deeply():
    """Each section, each mount and device refuse changes; lists are tuples, the
    capability masks a dict that refuses changes, for build and build_exec alike."""
    from ocirun.plan import build_exec

    cfg = config()
    cfg["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    cfg["process"]["capabilities"] = {"bounding": ["CAP_CHOWN"]}
    cfg["hooks"] = {"createContainer": [{"path": "/bin/h", "args": ["h", "-x"]}]}
    p = plan_of(cfg)
    for section in (p.ns, p.hooks, p.rootfs, p.kernel, p.process, p.security):
        with pytest.raises(AttributeError):
            setattr(section, section._fields[0], None)
    with pytest.raises(AttributeError):
        p.rootfs.mounts[0].target = "/elsewhere"
    with pytest.raises(AttributeError):
        p.rootfs.devices[0].uid = 5
    assert isinstance(p.rootfs.mounts, tuple) and isinstance(p.process.argv, tuple)
    assert p.hooks.create == (("/bin/h", ("h", "-x"), (), 0),)
    assert isinstance(p.warnings, tuple) and isinstance(p.notes, tuple)
    with pytest.raises(TypeError):
        p.security.caps["bounding"] = 0
    ex = build_exec({"args": ["sh"], "cwd": "/"}, [("/proc/1/ns/pid", CLONE_NEWPID)])
    assert ex.ns.joins == (("/proc/1/ns/pid", CLONE_NEWPID),)
    with pytest.raises(AttributeError):
        ex.process.uid = 1


def _mutable_parts(value, where: str):
    """Where in a frozen plan something can still change in place (lists, plain dicts,
    records not frozen)."""
    from ocirun.frozen import FrozenDict, Section

    if isinstance(value, list) or (isinstance(value, dict) and not isinstance(value, FrozenDict)):
        yield where
    if isinstance(value, Section):
        if not value._frozen:
            yield where
        for name in value._fields:
            yield from _mutable_parts(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _mutable_parts(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _mutable_parts(item, f"{where}[{k!r}]")


def test_freeze_leaves_nothing_mutable(monkeypatch):
    """Every section names each field that can change in place (_lists, _deep): a rich
    config's plan, its rootless id maps and net devices too, has no list or dict left."""
    cfg = with_userns(config())
    cfg["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    cfg["process"]["capabilities"] = {"bounding": ["CAP_CHOWN"], "ambient": ["CAP_KILL"]}
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}]
    cfg["process"]["user"]["additionalGids"] = [5]
    cfg["hooks"] = {
        "createContainer": [{"path": "/bin/h", "args": ["h"], "env": ["A=1"]}],
        "startContainer": [{"path": "/bin/s"}],
    }
    cfg["linux"].update(
        sysctl={"net.ipv4.ip_forward": "1"},
        maskedPaths=["/proc/kcore"],
        readonlyPaths=["/proc/sys"],
        netDevices={"veth1": {"name": "eth0"}},
        devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
    )
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    p = build(cfg, BUNDLE, None, HostFacts(cgroups=V1, euid=1000))
    assert p.ns.idmaps is not None and p.ns.net_devices and p.hooks.create
    assert list(_mutable_parts(p, "plan")) == []
    ex = planmod.build_exec(cfg["process"], [("/proc/1/ns/pid", CLONE_NEWPID)])
    assert list(_mutable_parts(ex, "plan")) == []


def test_exec_check_by_mode_bits_only_where_faccessat2_cannot_be_used():
    from ocirun.plan import CHECK_FACCESSAT2, CHECK_MODE_BITS

    class Filter:
        bpf, flags, notify = b"\x06\x00\x00\x00\x00\x00\xff\x7f", 0, False

    old = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ALLOW"}],
    }
    cfg = config()
    cfg["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    cfg["linux"]["seccomp"] = old
    # loaded last (noNewPrivileges): the check runs before the filter
    cfg["process"]["noNewPrivileges"] = True
    p = build(cfg, BUNDLE, None, HostFacts(cgroups=V1, seccomp=Filter()))
    assert p.security.exec_check == CHECK_FACCESSAT2
    # loaded early (no noNewPrivileges), faccessat2 not allowed: the mode bits, noted
    cfg["process"]["noNewPrivileges"] = False
    p = build(cfg, BUNDLE, None, HostFacts(cgroups=V1, seccomp=Filter()))
    assert p.security.exec_check == CHECK_MODE_BITS
    assert any("faccessat2" in n for n in p.notes), p.notes
    # a kernel before 5.8
    p = build(config(), BUNDLE, None, HostFacts(cgroups=V1, faccessat2=False))
    assert p.security.exec_check == CHECK_MODE_BITS


def test_no_reopen_onto_a_null_device_on_a_nodev_rootfs():
    """Nodes made on the rootfs itself (no /dev mount) are unusable on a nodev mount."""
    p = build(config(), BUNDLE, None, HostFacts(cgroups=V1, is_nodev=lambda path: True))
    assert p.rootfs.reopen_dev_null is False
    assert any("nodev" in n for n in p.notes), p.notes


def test_no_reopen_onto_a_null_device_the_device_cgroup_refuses():
    """linux.devices naming /dev/null drops the default cgroup rule allowing it (as runc)."""
    cfg = config()
    cfg["linux"]["devices"] = [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]
    p = plan_of(cfg)
    assert p.rootfs.reopen_dev_null is False
    assert any("device cgroup" in n for n in p.notes), p.notes
    cfg["linux"]["resources"] = {
        "devices": [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    }
    assert plan_of(cfg).rootfs.reopen_dev_null is True


@pytest.mark.parametrize(
    "source, proc_root, allowed",
    [("/proc", True, True), ("/srv/fakeproc", False, False), ("/proc/self", False, False)],
)
def test_a_bind_at_proc_must_be_the_root_of_a_procfs(source, proc_root, allowed):
    """As runc: /proc takes a new procfs or a bind of a procfs's root (the host's /proc for
    a container in the host's pid namespace), never another directory."""
    cfg = config()
    cfg["mounts"] = [
        {"destination": "/proc", "type": "none", "source": source, "options": ["rbind"]}
    ]
    seen = []

    def is_proc_root(path):
        seen.append(path)
        return proc_root

    host = HostFacts(is_dir=lambda p: True, cgroups=V1, is_proc_root=is_proc_root)
    if allowed:
        assert build(cfg, BUNDLE, None, host).rootfs.mounts[0].source == source
    else:
        with pytest.raises(ConfigError) as e:
            build(cfg, BUNDLE, None, host)
        assert "only a proc filesystem may be mounted at /proc" in str(e.value)
    assert seen == [source]


def test_env_names_given_twice_keep_their_first_place_and_last_value():
    """As runc (os.Setenv for each entry): one entry a name, the last value; an empty HOME
    counts as none, so the init takes the user's from /etc/passwd."""
    cfg = config()
    cfg["process"]["env"] = ["ONE=two", "PATH=/bin", "ONE=", "HOME=/x", "TWO=2", "HOME="]
    p = plan_of(cfg)
    assert p.process.envp == ("ONE=", "PATH=/bin", "TWO=2")
    assert p.process.home_from_passwd
    cfg["process"]["env"] = ["HOME=", "HOME=/override", "A=1", "A=2"]
    p = plan_of(cfg)
    assert p.process.envp == ("HOME=/override", "A=2")
    assert not p.process.home_from_passwd


def test_no_pivot_hides_the_runtimes_whole_procfs_and_sysfs_outside_the_rootfs():
    """--no-pivot: the runtime's whole /proc and /sys (not those under the rootfs) are to be
    detached before the move; asked of the host only then."""
    asked = []

    def mounts():
        asked.append(1)
        return ("/proc", "/sys", f"{BUNDLE}/rootfs/proc", "/run/x/proc")

    host = HostFacts(is_dir=lambda p: True, cgroups=V1, proc_sys_mounts=mounts)
    p = build(config(), BUNDLE, Options(no_pivot=True), host)
    assert p.rootfs.hide_before_move == ("/proc", "/sys", "/run/x/proc")
    asked.clear()
    assert build(config(), BUNDLE, None, host).rootfs.hide_before_move == ()
    assert asked == []


def test_a_read_only_dev_is_mounted_writable_then_remounted():
    """As runc: a read-only tmpfs /dev is filled first, remounted read-only after."""
    dev = {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}
    cfg = config()
    cfg["mounts"] = [dict(dev)]
    assert not plan_of(cfg).rootfs.dev_readonly
    cfg["mounts"] = [dict(dev, options=["nosuid", "ro"])]
    p = plan_of(cfg)
    mount = next(m for m in p.rootfs.mounts if m.target == "/dev")
    assert not mount.flags & MS_RDONLY and mount.flags & MS_NOSUID
    assert p.rootfs.dev_readonly
