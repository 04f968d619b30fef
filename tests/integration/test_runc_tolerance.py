"""runc's tolerance: configs runc accepts run under ocirun, and what runc refuses ocirun
refuses, side by side with a live runc on the same mutated `runc spec` config. Every
deliberate difference is listed in DIFFERENT with its reason (and in docs/compat.md)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from clitools import call, not_warnings
from testenv import ROOTFS

RUNC = shutil.which("runc")
pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def _runc_spec() -> dict:
    cfg = {"ociVersion": "1.0.2-dev"}
    if RUNC:
        d = Path("/tmp") / f"ocirun-tolerance-{uuid.uuid4().hex[:8]}"
        d.mkdir()
        try:
            subprocess.run([RUNC, "spec"], cwd=d, check=True)
            cfg = json.loads((d / "config.json").read_text())
        finally:
            shutil.rmtree(d)
    cfg["process"].update(terminal=False, args=["true"])
    cfg["root"] = {"path": str(ROOTFS), "readonly": True}
    return cfg


BASE = _runc_spec() if RUNC else {"process": {}, "mounts": [], "linux": {"namespaces": []}}


def S(path, value):
    def f(c):
        *ks, last = path
        d = c
        for k in ks:
            d = d[k]
        d[last] = value

    return f


def D(path):
    def f(c):
        *ks, last = path
        d = c
        for k in ks:
            d = d[k]
        del d[last]

    return f


MUTATIONS = {
    "unknown-top": S(["foo"], 1),
    "unknown-process": S(["process", "foo"], "x"),
    "unknown-linux": S(["linux", "foo"], {}),
    "ociVersion-1.0.0": S(["ociVersion"], "1.0.0"),
    "ociVersion-1.0.0-rc1": S(["ociVersion"], "1.0.0-rc1"),
    "ociVersion-0.5": S(["ociVersion"], "0.5.0"),
    "ociVersion-1.4.0": S(["ociVersion"], "1.4.0"),
    "ociVersion-2.0": S(["ociVersion"], "2.0.0"),
    "no-root": D(["root"]),
    "no-process-cwd": D(["process", "cwd"]),
    "cwd-relative": S(["process", "cwd"], "tmp"),
    "no-user": D(["process", "user"]),
    "no-env": D(["process", "env"]),
    "env-no-equals": S(["process", "env"], ["PATH=/bin", "FOO"]),
    "rlimit-unknown": S(["process", "rlimits"], [{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}]),
    "rlimit-soft-gt-hard": S(
        ["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}]
    ),
    "rlimit-dup": S(
        ["process", "rlimits"],
        [
            {"type": "RLIMIT_NOFILE", "hard": 10, "soft": 10},
            {"type": "RLIMIT_NOFILE", "hard": 20, "soft": 20},
        ],
    ),
    "mount-no-type": S(
        ["mounts"],
        BASE["mounts"] + [{"destination": "/mnt", "source": "/tmp", "options": ["bind"]}],
    ),
    "mount-unknown-opt": S(
        ["mounts"],
        BASE["mounts"]
        + [{"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["foo=bar"]}],
    ),
    "mount-rel-dest": S(
        ["mounts"], BASE["mounts"] + [{"destination": "mnt", "type": "tmpfs", "source": "tmpfs"}]
    ),
    "mount-no-source-tmpfs": S(
        ["mounts"], BASE["mounts"] + [{"destination": "/mnt", "type": "tmpfs"}]
    ),
    "mount-bind-missing-src": S(
        ["mounts"],
        BASE["mounts"]
        + [{"destination": "/mnt", "type": "bind", "source": "/nonexistent", "options": ["bind"]}],
    ),
    "mount-dup-dest": S(
        ["mounts"],
        BASE["mounts"]
        + [
            {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs"},
        ],
    ),
    "mount-opt-rro": S(
        ["mounts"],
        BASE["mounts"]
        + [{"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "rro"]}],
    ),
    "mount-opt-idmap": S(
        ["mounts"],
        BASE["mounts"]
        + [
            {"destination": "/mnt", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}
        ],
    ),
    "ns-dup": S(["linux", "namespaces"], BASE["linux"]["namespaces"] + [{"type": "pid"}]),
    "ns-unknown": S(["linux", "namespaces"], BASE["linux"]["namespaces"] + [{"type": "foo"}]),
    "ns-time": S(["linux", "namespaces"], BASE["linux"]["namespaces"] + [{"type": "time"}]),
    "uid-mappings-no-userns": S(
        ["linux", "uidMappings"], [{"containerID": 0, "hostID": 1000, "size": 1}]
    ),
    "userns-no-mappings": S(
        ["linux", "namespaces"], BASE["linux"]["namespaces"] + [{"type": "user"}]
    ),
    "hostname-no-uts": lambda c: (
        S(["hostname"], "x")(c),
        S(["linux", "namespaces"], [n for n in c["linux"]["namespaces"] if n["type"] != "uts"])(c),
    ),
    "empty-hostname": S(["hostname"], ""),
    "device-no-type": S(["linux", "devices"], [{"path": "/dev/fuse", "major": 10, "minor": 229}]),
    "device-bad-type": S(
        ["linux", "devices"], [{"path": "/dev/fuse", "type": "x", "major": 10, "minor": 229}]
    ),
    "device-relative": S(
        ["linux", "devices"], [{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}]
    ),
    "device-outside-dev": S(
        ["linux", "devices"], [{"path": "/fuse", "type": "c", "major": 10, "minor": 229}]
    ),
    "resources-empty": S(["linux", "resources"], {}),
    "resources-devices-allow-all": S(
        ["linux", "resources", "devices"], [{"allow": True, "access": "rwm"}]
    ),
    "resources-memory-neg": S(["linux", "resources", "memory"], {"limit": -1}),
    "resources-memory-small": S(["linux", "resources", "memory"], {"limit": 4096}),
    "resources-cpu-shares0": S(["linux", "resources", "cpu"], {"shares": 0}),
    "resources-pids-0": S(["linux", "resources", "pids"], {"limit": 0}),
    "resources-pids-neg": S(["linux", "resources", "pids"], {"limit": -1}),
    "resources-swappiness-neg": S(["linux", "resources", "memory"], {"swappiness": -1}),
    "resources-unified-v1": S(["linux", "resources", "unified"], {"memory.max": "100M"}),
    "cgroupsPath-rel": S(["linux", "cgroupsPath"], "foo/bar"),
    "cgroupsPath-abs": S(["linux", "cgroupsPath"], "/foo/bar"),
    "cgroupsPath-systemd-style": S(["linux", "cgroupsPath"], "system.slice:ocirun:foo"),
    "sysctl-unknown": S(["linux", "sysctl"], {"net.ipv4.foo_bar": "1"}),
    "sysctl-host": S(["linux", "sysctl"], {"vm.swappiness": "1"}),
    "seccomp-empty": S(["linux", "seccomp"], {}),
    "seccomp-default-allow": S(["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW"}),
    "seccomp-unknown-syscall": S(
        ["linux", "seccomp"],
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["foo_bar_baz"], "action": "SCMP_ACT_ERRNO"}],
        },
    ),
    "seccomp-unknown-arch": S(
        ["linux", "seccomp"],
        {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_FOO"]},
    ),
    "seccomp-unknown-action": S(["linux", "seccomp"], {"defaultAction": "SCMP_ACT_FOO"}),
    "apparmor": S(["process", "apparmorProfile"], "foo"),
    "selinux": S(["process", "selinuxLabel"], "system_u:system_r:container_t:s0"),
    "mountLabel": S(["linux", "mountLabel"], "system_u:object_r:container_file_t:s0"),
    "oom-1001": S(["process", "oomScoreAdj"], 1001),
    "oom-neg": S(["process", "oomScoreAdj"], -1000),
    "args-empty-str": S(["process", "args"], [""]),
    "noNewPrivileges-false": S(["process", "noNewPrivileges"], False),
    "rootfsPropagation-bad": S(["linux", "rootfsPropagation"], "foo"),
    "maskedPaths-relative": S(["linux", "maskedPaths"], ["proc/kcore"]),
    "readonlyPaths-missing": S(["linux", "readonlyPaths"], ["/nonexistent"]),
    "annotations-nonstring": S(["annotations"], {"a": 1}),
    "hooks-empty": S(["hooks"], {}),
    "hooks-relative-path": S(["hooks"], {"prestart": [{"path": "true"}]}),
    "hooks-unknown-kind": S(["hooks"], {"foo": [{"path": "/bin/true"}]}),
    "personality": S(["process", "personality"], {"domain": "LINUX32"}),
    "intelRdt": S(["linux", "intelRdt"], {"closID": "x"}),
    "capabilities-empty": S(["process", "capabilities"], {}),
    "cap-lowercase": S(["process", "capabilities", "bounding"], ["cap_chown"]),
    "console-size": S(["process", "consoleSize"], {"height": 10, "width": 10}),
    "user-username": S(["process", "user", "username"], "root"),
    "umask-big": S(["process", "user", "umask"], 1000),
    "windows": S(["windows"], {"layerFolders": ["x"]}),
    "solaris": S(["solaris"], {}),
    "vm": S(["vm"], {"kernel": {"path": "/x"}}),
    "domainname": S(["domainname"], "example.org"),
    "timeOffsets-no-timens": S(["linux", "timeOffsets"], {"monotonic": {"secs": 1}}),
    "resources-blockio-weight": S(["linux", "resources", "blockIO"], {"weight": 500}),
    "resources-hugepage": S(
        ["linux", "resources", "hugepageLimits"], [{"pageSize": "2MB", "limit": 1048576}]
    ),
    "resources-network": S(["linux", "resources", "network"], {"classID": 1}),
    "resources-rdma": S(["linux", "resources", "rdma"], {"mlx": {"hcaHandles": 1}}),
    "devices-cgroup-major-only": S(
        ["linux", "resources", "devices"],
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "access": "rwm"},
        ],
    ),
}


# mutation -> why ocirun's verdict differs from runc 1.1.5's (docs/compat.md)
DIFFERENT = {
    "ociVersion-0.5": "ocirun refuses runtime-spec versions other than 1.x (runc reads any)",
    "ociVersion-2.0": "ocirun refuses runtime-spec versions other than 1.x (runc reads any)",
    "no-env": "without PATH ocirun searches the default PATH (runc: not found)",
    "mount-opt-idmap": "idmap without mappings and without a user namespace is refused: "
    "runc 1.1 does not know idmap and passes it to mount(2) as data",
    "ns-time": "time namespaces are supported (runc 1.1 does not know them)",
    "seccomp-empty": "a seccomp object without defaultAction is refused: ignoring it would "
    "run the container without the filter it asked for",
    "apparmor": "on a host without AppArmor the profile is ignored with a warning",
    "selinux": "on a host without SELinux the label is ignored with a warning",
    "mountLabel": "on a host without SELinux the mount label is ignored with a warning",
    "intelRdt": "Intel RDT is not managed by ocirun: refused rather than ignored",
    "resources-network": "without a net_cls hierarchy classID is ignored with a warning",
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_same_verdict_as_runc(rt, tmp_path, name):
    cfg = copy.deepcopy(BASE)
    MUTATIONS[name](cfg)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    if cfg.get("root", {}).get("path") == str(ROOTFS):
        # a private copy: some configs make paths in the rootfs (a device outside /dev)
        subprocess.run(["cp", "-a", str(ROOTFS), str(bundle / "rootfs")], check=True)
        cfg["root"]["path"] = "rootfs"
    (bundle / "config.json").write_text(json.dumps(cfg))
    runc_root = tmp_path / "runc-root"
    # runc leaves the parents of an absolute cgroupsPath it made ("/foo" of "/foo/bar")
    parents = [h / "foo" for h in Path("/sys/fs/cgroup").iterdir() if not (h / "foo").exists()]
    try:
        theirs = subprocess.run(
            [RUNC, "--root", str(runc_root), "run", "-b", str(bundle), "tol"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run([RUNC, "--root", str(runc_root), "delete", "-f", "tol"], capture_output=True)
        for d in parents:
            if d.is_dir() and not any(x.is_dir() for x in d.iterdir()):
                d.rmdir()
    ours = call(rt, "run", "-b", str(bundle), "tol")
    rt.cli("delete", "--force", "tol")
    assert "Traceback" not in ours.stderr, ours.stderr
    if ours.returncode != 0:
        assert len(not_warnings(ours.stderr.strip())) == 1, ours.stderr
    same = (ours.returncode == 0) == (theirs.returncode == 0)
    if name in DIFFERENT:
        assert not same, f"now the same as runc: drop {name!r} from DIFFERENT"
    else:
        assert same, (
            f"runc rc {theirs.returncode}: {theirs.stderr.strip()[-300:]}\n"
            f"ocirun rc {ours.returncode}: {ours.stderr.strip()}"
        )
