"""Unit tests for ocirun.spec (config.json loading + validation), ocirun.tables, ocirun.defaults."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from testenv import REPO

from ocirun import defaults, spec, tables
from ocirun.errors import BundleError, ConfigError


@pytest.fixture
def config() -> dict:
    return defaults.default_config()


def write_bundle(
    root, config: dict | None = None, raw: bytes | None = None, rootfs: bool = True
) -> str:
    bundle = root / "bundle"
    bundle.mkdir()
    if rootfs:
        (bundle / "rootfs").mkdir()
    if raw is None and config is not None:
        raw = json.dumps(config, indent=2).encode()
    if raw is not None:
        (bundle / "config.json").write_bytes(raw)
    return str(bundle)


# --------------------------------------------------------------------------- valid configs


@pytest.mark.parametrize("rootless", [False, True])
def test_default_config_is_valid(rootless):
    assert spec.validate(defaults.default_config(rootless=rootless)) == []


def full_config() -> dict:
    """Every runtime-spec 1.3.0 field ocirun knows, with plausible values."""
    c = defaults.default_config()
    p = c["process"]
    p.update(
        terminal=True,
        consoleSize={"height": 24, "width": 80},
        oomScoreAdj=100,
        apparmorProfile="p",
        selinuxLabel="system_u:system_r:container_t:s0",
        ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 4},
        scheduler={
            "policy": "SCHED_DEADLINE",
            "nice": 0,
            "priority": 0,
            "flags": ["SCHED_FLAG_RECLAIM"],
            "runtime": 1000,
            "deadline": 2000,
            "period": 3000,
        },
        execCPUAffinity={"initial": "0-1", "final": "0-3, 7"},
    )
    p["user"].update(umask=0o022, additionalGids=[5, 6])
    p["capabilities"].update(
        inheritable=["CAP_KILL"], ambient=["CAP_NET_BIND_SERVICE", "CAP_CHECKPOINT_RESTORE"]
    )
    p["rlimits"].append({"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615})
    c["domainname"] = "example.org"
    c["annotations"] = {"org.example.key": "value"}
    c["mounts"].append(
        {
            "destination": "data",
            "type": "none",
            "source": "/srv/data",
            "options": ["rbind", "rprivate", "x-unknown-option=1"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        }
    )
    hook = {"path": "/usr/bin/hook", "args": ["hook", "x"], "env": ["A=b"], "timeout": 5}
    c["hooks"] = {
        phase: [dict(hook)]
        for phase in (
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        )
    }
    lx = c["linux"]
    lx["namespaces"] += [{"type": "user"}, {"type": "time"}]
    lx["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    lx["timeOffsets"] = {"monotonic": {"secs": 172800, "nanosecs": 0}, "boottime": {"secs": -5}}
    lx["devices"] = [
        {
            "path": "/dev/fuse",
            "type": "c",
            "major": 10,
            "minor": 229,
            "fileMode": 438,
            "uid": 0,
            "gid": 0,
        },
        {"path": "/dev/fifo", "type": "p"},
    ]
    lx["netDevices"] = {"eth1": {"name": "ceth1"}, "eth2": {}}
    lx["cgroupsPath"] = "/ocirun/test"
    lx["resources"] = {
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
        ],
        "memory": {
            "limit": 536870912,
            "reservation": -1,
            "swap": -1,
            "kernel": -1,
            "kernelTCP": -1,
            "swappiness": 0,
            "disableOOMKiller": False,
            "useHierarchy": True,
            "checkBeforeUpdate": True,
        },
        "cpu": {
            "shares": 1024,
            "quota": 100000,
            "burst": 10000,
            "period": 100000,
            "realtimeRuntime": 950000,
            "realtimePeriod": 1000000,
            "cpus": "0-3",
            "mems": "0",
            "idle": 1,
        },
        "pids": {"limit": 32771},
        "blockIO": {
            "weight": 10,
            "leafWeight": 10,
            "weightDevice": [
                {"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
                {"major": 8, "minor": 16, "weight": 500},
            ],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
            "throttleWriteBpsDevice": [],
            "throttleReadIOPSDevice": [],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
        },
        "hugepageLimits": [
            {"pageSize": "2MB", "limit": 209715200},
            {"pageSize": "64KB", "limit": 1000000},
        ],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "rxe3": {"hcaObjects": 10000}},
        "unified": {"io.max": "259:0 rbps=2097152", "memory.high": "1G"},
    }
    lx["rootfsPropagation"] = "rslave"
    lx["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_RISCV64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "meta",
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"},
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
            },
            {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    }
    lx["sysctl"] = {"net.ipv4.ip_forward": "1", "net/ipv4/conf/eth0.100/forwarding": "1"}
    lx["mountLabel"] = "system_u:object_r:container_file_t:s0"
    lx["intelRdt"] = {
        "closID": "guaranteed",
        "l3CacheSchema": "L3:0=7f0",
        "memBwSchema": "MB:0=20",
        "schemata": ["L2:0=f;1=f"],
        "enableMonitoring": True,
    }
    lx["personality"] = {"domain": "LINUX32", "flags": []}
    lx["memoryPolicy"] = {
        "mode": "MPOL_INTERLEAVE",
        "nodes": "0-3,7",
        "flags": ["MPOL_F_STATIC_NODES"],
    }
    c["x-vendor-extension"] = {"anything": [1, 2, 3]}
    return c


def test_full_130_config_is_valid():
    assert spec.validate(full_config()) == []


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.3.0", "1.3.0+dev"])
def test_any_1x_oci_version_accepted(config, version):
    config["ociVersion"] = version
    assert spec.validate(config) == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            lambda c: c["mounts"].append(
                {"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"}
            ),
            id="relative-mount-destination",
        ),
        pytest.param(
            lambda c: c["mounts"][1]["options"].append("some-fs-data=1"), id="unknown-mount-option"
        ),
        pytest.param(lambda c: c.update(unknownTopLevel=True), id="unknown-top-level-key"),
        pytest.param(lambda c: c["linux"].update(futureField={"x": 1}), id="unknown-linux-key"),
        pytest.param(lambda c: c.update(annotations=None), id="null-annotations"),
        pytest.param(
            lambda c: c["linux"]["namespaces"].__setitem__(0, {"type": "pid", "path": ""}),
            id="empty-ns-path",
        ),
        pytest.param(
            lambda c: c["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"}),
            id="joined-userns-needs-no-mappings",
        ),
    ],
)
def test_accepted_variants(config, mutate):
    mutate(config)
    assert spec.validate(config) == []


# --------------------------------------------------------------------------- invalid configs


def _parent(c, path: str):
    *parents, last = path.split(".")
    for key in parents:
        c = c[int(key)] if isinstance(c, list) else c[key]
    return c, (int(last) if isinstance(c, list) else last)


def _set(path: str, value):
    def mutate(c):
        node, key = _parent(c, path)
        node[key] = value

    return mutate


def _del(path: str):
    def mutate(c):
        node, key = _parent(c, path)
        del node[key]

    return mutate


def _do(*fns):
    def mutate(c):
        for fn in fns:
            fn(c)

    return mutate


BAD = [
    (
        "ns-wrong-type",
        _set("linux.namespaces.2.type", "foo"),
        "/linux/namespaces/2/type",
        "'foo' is not one of ['pid', 'network', 'mount'",
    ),
    (
        "ns-duplicate",
        lambda c: c["linux"]["namespaces"].append({"type": "pid"}),
        "/linux/namespaces/5/type",
        "duplicate namespace type 'pid'",
    ),
    (
        "ns-relative-path",
        _set("linux.namespaces.1.path", "proc/1/ns/net"),
        "/linux/namespaces/1/path",
        "must be an absolute path",
    ),
    (
        "userns-without-mappings",
        lambda c: c["linux"]["namespaces"].append({"type": "user"}),
        "/linux",
        "a new user namespace requires uid mappings",
    ),
    (
        "userns-empty-gid-mappings",
        _do(
            lambda c: c["linux"]["namespaces"].append({"type": "user"}),
            _set("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
            _set("linux.gidMappings", []),
        ),
        "/linux/gidMappings",
        "a new user namespace requires gid mappings",
    ),
    (
        "timeoffsets-unknown-clock",
        _do(
            lambda c: c["linux"]["namespaces"].append({"type": "time"}),
            _set("linux.timeOffsets", {"realtime": {"secs": 1}}),
        ),
        "/linux/timeOffsets/realtime",
        "unknown clock 'realtime'",
    ),
    (
        "cwd-relative",
        _set("process.cwd", "tmp"),
        "/process/cwd",
        "must be an absolute path, got 'tmp'",
    ),
    ("cwd-missing", _del("process.cwd"), "/process", "'cwd' is a required property"),
    ("args-missing", _del("process.args"), "/process", "'args' is a required property"),
    ("args-empty", _set("process.args", []), "/process/args", "must not be empty"),
    ("args-not-a-list", _set("process.args", "sh"), "/process/args", "'sh' is not of type 'array'"),
    (
        "args-item-not-string",
        _set("process.args", ["sh", 1]),
        "/process/args/1",
        "1 is not of type 'string'",
    ),
    ("oci-version-2", _set("ociVersion", "2.0.0"), "/ociVersion", "unsupported ociVersion '2.0.0'"),
    (
        "oci-version-garbage",
        _set("ociVersion", "latest"),
        "/ociVersion",
        "invalid ociVersion 'latest'",
    ),
    ("oci-version-missing", _del("ociVersion"), "/", "'ociVersion' is a required property"),
    ("process-missing", _del("process"), "/", "'process' is a required property"),
    (
        "rlimit-unknown",
        _set("process.rlimits.0.type", "RLIMIT_FOO"),
        "/process/rlimits/0/type",
        "unknown rlimit 'RLIMIT_FOO'",
    ),
    (
        "rlimit-bad-form",
        _set("process.rlimits.0.type", "nofile"),
        "/process/rlimits/0/type",
        "does not match",
    ),
    (
        "rlimit-soft-gt-hard",
        _set("process.rlimits.0.soft", 2048),
        "/process/rlimits/0",
        "soft limit 2048 is greater than hard limit 1024",
    ),
    (
        "rlimit-duplicate",
        lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}),
        "/process/rlimits/1/type",
        "duplicate rlimit 'RLIMIT_NOFILE'",
    ),
    (
        "rlimit-missing-hard",
        _del("process.rlimits.0.hard"),
        "/process/rlimits/0",
        "'hard' is a required property",
    ),
    (
        "hook-relative-path",
        _set("hooks", {"prestart": [{"path": "bin/hook"}]}),
        "/hooks/prestart/0/path",
        "must be an absolute path",
    ),
    (
        "hook-timeout-zero",
        _set("hooks", {"poststart": [{"path": "/bin/true", "timeout": 0}]}),
        "/hooks/poststart/0/timeout",
        "must be greater than zero, got 0",
    ),
    (
        "hook-missing-path",
        _set("hooks", {"poststop": [{"args": ["x"]}]}),
        "/hooks/poststop/0",
        "'path' is a required property",
    ),
    (
        "device-type-x",
        _set("linux.devices", [{"path": "/dev/x", "type": "x", "major": 1, "minor": 1}]),
        "/linux/devices/0/type",
        "'x' is not one of ['c', 'b', 'u', 'p']",
    ),
    (
        "device-missing-major",
        _set("linux.devices", [{"path": "/dev/x", "type": "c", "minor": 1}]),
        "/linux/devices/0",
        "'major' is required for device type 'c'",
    ),
    (
        "mount-without-destination",
        _del("mounts.1.destination"),
        "/mounts/1",
        "'destination' is a required property",
    ),
    (
        "mount-options-not-strings",
        _set("mounts.1.options", [1]),
        "/mounts/1/options/0",
        "is not of type 'string'",
    ),
    (
        "uid-not-integer",
        _set("process.user.uid", "0"),
        "/process/user/uid",
        "'0' is not of type 'integer'",
    ),
    (
        "uid-negative",
        _set("process.user.uid", -1),
        "/process/user/uid",
        "-1 is less than the minimum of 0",
    ),
    (
        "gid-too-big",
        _set("process.user.gid", 1 << 32),
        "/process/user/gid",
        "is greater than the maximum",
    ),
    (
        "sysctl-dotdot",
        _set("linux.sysctl", {"net/../../../etc/passwd": "x"}),
        "/linux/sysctl/net~1..~1..~1..~1etc~1passwd",
        "invalid sysctl name",
    ),
    (
        "sysctl-empty-component",
        _set("linux.sysctl", {"kernel..shmmax": "1"}),
        "/linux/sysctl/kernel..shmmax",
        "invalid sysctl name",
    ),
    ("hostname-not-string", _set("hostname", 42), "/hostname", "42 is not of type 'string'"),
    (
        "hostname-without-uts",
        _set("linux.namespaces", [{"type": "mount"}]),
        "/hostname",
        "requires a uts namespace",
    ),
    ("root-missing", _del("root"), "/", "'root' is a required property"),
    (
        "root-path-missing",
        _set("root", {"readonly": True}),
        "/root",
        "'path' is a required property",
    ),
    (
        "rootfs-propagation-bad",
        _set("linux.rootfsPropagation", "weird"),
        "/linux/rootfsPropagation",
        "'weird' is not one of",
    ),
    (
        "seccomp-bad-op",
        _set(
            "linux.seccomp",
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["x"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}],
                    }
                ],
            },
        ),
        "/linux/seccomp/syscalls/0/args/0/op",
        "'SCMP_CMP_XX' is not one of",
    ),
    (
        "seccomp-notify-without-listener",
        _set(
            "linux.seccomp",
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOTIFY"}],
            },
        ),
        "/linux/seccomp/listenerPath",
        "required when a rule uses SCMP_ACT_NOTIFY",
    ),
    (
        "seccomp-errnoret-with-allow",
        _set(
            "linux.seccomp",
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}],
            },
        ),
        "/linux/seccomp/syscalls/0/errnoRet",
        "not supported with action 'SCMP_ACT_ALLOW'",
    ),
    (
        "memory-limit-string",
        _set("linux.resources.memory", {"limit": "1G"}),
        "/linux/resources/memory/limit",
        "'1G' is not of type 'integer'",
    ),
    (
        "cgroup-device-access-bad",
        _set("linux.resources.devices.0.access", "rwx"),
        "/linux/resources/devices/0/access",
        "does not match",
    ),
    (
        "rdma-empty-entry",
        _set("linux.resources.rdma", {"mlx5_1": {}}),
        "/linux/resources/rdma/mlx5_1",
        "at least one of 'hcaHandles', 'hcaObjects' is required",
    ),
    (
        "ioprio-bad-class",
        _set("process.ioPriority", {"class": "IOPRIO_CLASS_FAST"}),
        "/process/ioPriority/class",
        "is not one of",
    ),
    (
        "memory-policy-bad-mode",
        _set("linux.memoryPolicy", {"mode": "MPOL_FASTEST"}),
        "/linux/memoryPolicy/mode",
        "'MPOL_FASTEST' is not one of",
    ),
    (
        "intelrdt-schemata-not-list",
        _set("linux.intelRdt", {"schemata": "L3:0=f"}),
        "/linux/intelRdt/schemata",
        "is not of type 'array'",
    ),
]


@pytest.mark.parametrize("name,mutate,path,fragment", BAD, ids=[b[0] for b in BAD])
def test_invalid_config_reports_path_and_reason(config, name, mutate, path, fragment):
    mutate(config)
    problems = spec.validate(config)
    matching = [p for p in problems if p.startswith(path + ": ") and fragment in p]
    assert matching, f"expected '{path}: ...{fragment}...' in {problems}"


def test_all_problems_reported_schema_first_then_sorted(config):
    config["process"]["cwd"] = "relative"  # semantic
    config["linux"]["namespaces"][2]["type"] = "foo"  # schema
    config["process"]["user"]["uid"] = "x"  # schema
    config["hostname"] = 1  # schema
    problems = spec.validate(config)
    assert problems == [
        "/hostname: 1 is not of type 'string'",
        "/linux/namespaces/2/type: 'foo' is not one of "
        "['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time']",
        "/process/user/uid: 'x' is not of type 'integer'",
        "/process/cwd: must be an absolute path, got 'relative'",
    ]


def test_sort_is_numeric_for_array_indices(config):
    config["linux"]["maskedPaths"] = ["/ok"] * 10 + [1]
    config["linux"]["maskedPaths"][2] = 2
    problems = spec.validate(config)
    assert [p.split(":")[0] for p in problems] == ["/linux/maskedPaths/2", "/linux/maskedPaths/10"]


def test_malformed_sections_do_not_crash_semantic_checks(config):
    config["process"] = {"args": "x", "capabilities": [], "rlimits": {}, "cwd": 5}
    config["linux"] = {
        "namespaces": {},
        "devices": "x",
        "sysctl": [],
        "seccomp": [],
        "timeOffsets": 1,
    }
    config["hooks"] = []
    config["mounts"] = [1, None]
    problems = spec.validate(config)
    assert problems and all(p.startswith("/") for p in problems)


# --------------------------------------------------------------------------- load_bundle


def test_load_bundle_ok(tmp_path, config, monkeypatch):
    bundle = write_bundle(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    path, raw, parsed = spec.load_bundle("bundle")
    assert path == bundle and os.path.isabs(path)
    assert raw == (tmp_path / "bundle" / "config.json").read_bytes()
    assert parsed == config


def test_load_bundle_takes_null_members_as_absent(tmp_path, config):
    """As runc (Go's encoding/json): a member whose value is null is not there, at any
    depth; null elements of arrays are left to the validator."""
    config["linux"]["timeOffsets"] = None
    config["linux"]["resources"] = {"devices": None, "pids": {"limit": 5}}
    config["annotations"] = None
    config["process"]["env"].append("X=null")  # the word in a string is left alone
    _, _, parsed = spec.load_bundle(write_bundle(tmp_path, config))
    assert "timeOffsets" not in parsed["linux"] and "annotations" not in parsed
    assert parsed["linux"]["resources"] == {"pids": {"limit": 5}}
    assert parsed["process"]["env"][-1] == "X=null"
    assert spec.validate(parsed) == []


def test_load_bundle_absolute_root_path(tmp_path, config):
    other = tmp_path / "elsewhere"
    other.mkdir()
    config["root"]["path"] = str(other)
    bundle = write_bundle(tmp_path, config, rootfs=False)
    assert spec.load_bundle(bundle)[2]["root"]["path"] == str(other)


def _one_line_error(exc_info, cls, *fragments):
    err = exc_info.value
    assert type(err) is cls
    text = str(err)
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text, text


def test_load_bundle_missing_dir(tmp_path):
    with pytest.raises(BundleError) as ei:
        spec.load_bundle(str(tmp_path / "nope"))
    _one_line_error(ei, BundleError, str(tmp_path / "nope"), "no such directory")


def test_load_bundle_not_a_dir(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError) as ei:
        spec.load_bundle(str(tmp_path / "file"))
    _one_line_error(ei, BundleError, "not a directory")


def test_load_bundle_missing_config(tmp_path):
    bundle = write_bundle(tmp_path)
    with pytest.raises(BundleError) as ei:
        spec.load_bundle(bundle)
    _one_line_error(ei, BundleError, "config.json not found")


def test_load_bundle_not_json_names_line_and_column(tmp_path):
    bundle = write_bundle(tmp_path, raw=b'{\n  "ociVersion": "1.3.0",\n  oops\n}\n')
    with pytest.raises(BundleError) as ei:
        spec.load_bundle(bundle)
    _one_line_error(ei, BundleError, "config.json", "line 3, column 3")


@pytest.mark.parametrize(
    "raw", [b"", b"\xff\xfe\xfa", b'{"a": NaN}'], ids=["empty", "binary", "nan"]
)
def test_load_bundle_other_unparsable(tmp_path, raw):
    bundle = write_bundle(tmp_path, raw=raw)
    with pytest.raises(BundleError) as ei:
        spec.load_bundle(bundle)
    _one_line_error(ei, BundleError, "invalid JSON")


def test_load_bundle_config_is_a_list(tmp_path):
    bundle = write_bundle(tmp_path, raw=b"[1, 2]")
    with pytest.raises(BundleError) as ei:
        spec.load_bundle(bundle)
    _one_line_error(ei, BundleError, "top level must be a JSON object, not an array")


def test_load_bundle_missing_rootfs(tmp_path, config):
    bundle = write_bundle(tmp_path, config, rootfs=False)
    with pytest.raises(BundleError) as ei:
        spec.load_bundle(bundle)
    _one_line_error(ei, BundleError, os.path.join(bundle, "rootfs"), "no such directory")


def test_load_bundle_rootfs_is_a_file(tmp_path, config):
    bundle = write_bundle(tmp_path, config, rootfs=False)
    (tmp_path / "bundle" / "rootfs").write_text("")
    with pytest.raises(BundleError) as ei:
        spec.load_bundle(bundle)
    _one_line_error(ei, BundleError, "not a directory")


def test_load_bundle_invalid_config_raises_config_error(tmp_path, config):
    config["process"]["cwd"] = "rel"
    config["linux"]["namespaces"][0]["type"] = "bogus"
    bundle = write_bundle(tmp_path, config)
    with pytest.raises(ConfigError) as ei:
        spec.load_bundle(bundle)
    assert ei.value.problems == [
        "config.json: /linux/namespaces/0/type: 'bogus' is not one of "
        "['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time']",
        "config.json: /process/cwd: must be an absolute path, got 'rel'",
    ]


# --------------------------------------------------------------------------- cache


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


def _boom(config):
    raise AssertionError("validate() must not be called on a cache hit")


def test_cache_miss_validates_and_writes_marker(tmp_path, config, cache_dir):
    bundle = write_bundle(tmp_path, config)
    spec.load_bundle_cached(bundle, cache_dir)
    entries = os.listdir(cache_dir)
    assert len(entries) == 1 and len(entries[0]) == 64
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) == 0o700


def test_cache_hit_skips_validation(tmp_path, config, cache_dir, monkeypatch):
    bundle = write_bundle(tmp_path, config)
    first = spec.load_bundle_cached(bundle, cache_dir)
    monkeypatch.setattr(spec, "validate", _boom)
    assert spec.load_bundle_cached(bundle, cache_dir) == first


def test_cache_hit_still_checks_rootfs(tmp_path, config, cache_dir, monkeypatch):
    bundle = write_bundle(tmp_path, config)
    spec.load_bundle_cached(bundle, cache_dir)
    os.rmdir(os.path.join(bundle, "rootfs"))
    monkeypatch.setattr(spec, "validate", _boom)
    with pytest.raises(BundleError, match="rootfs"):
        spec.load_bundle_cached(bundle, cache_dir)


def test_cache_changed_config_misses(tmp_path, config, cache_dir, monkeypatch):
    bundle = write_bundle(tmp_path, config)
    spec.load_bundle_cached(bundle, cache_dir)
    config["hostname"] = "other"
    (tmp_path / "bundle" / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(spec, "validate", _boom)
    with pytest.raises(AssertionError, match="must not be called"):
        spec.load_bundle_cached(bundle, cache_dir)


def test_cache_changed_schema_misses(tmp_path, config, cache_dir, monkeypatch):
    schemas = tmp_path / "schemas"
    shutil.copytree(spec.schemas_dir(), schemas)
    monkeypatch.setattr(spec, "_HERE", str(tmp_path))  # the package's place: its schemas/
    bundle = write_bundle(tmp_path, config)
    spec.load_bundle_cached(bundle, cache_dir)
    with open(schemas / "defs.json", "a") as f:
        f.write("\n")
    monkeypatch.setattr(spec, "validate", _boom)
    with pytest.raises(AssertionError, match="must not be called"):
        spec.load_bundle_cached(bundle, cache_dir)


def test_cache_changed_schema_rejects_previously_valid(tmp_path, config, cache_dir, monkeypatch):
    schemas = tmp_path / "schemas"
    shutil.copytree(spec.schemas_dir(), schemas)
    monkeypatch.setattr(spec, "_HERE", str(tmp_path))  # the package's place: its schemas/
    bundle = write_bundle(tmp_path, config)
    spec.load_bundle_cached(bundle, cache_dir)
    top = json.loads((schemas / "config-schema.json").read_text())
    top["required"].append("mustExist")
    (schemas / "config-schema.json").write_text(json.dumps(top))
    with pytest.raises(ConfigError, match="'mustExist' is a required property"):
        spec.load_bundle_cached(bundle, cache_dir)


def test_cache_invalid_config_not_cached(tmp_path, config, cache_dir):
    config["process"]["cwd"] = "rel"
    bundle = write_bundle(tmp_path, config)
    for _ in range(2):
        with pytest.raises(ConfigError):
            spec.load_bundle_cached(bundle, cache_dir)
    assert not os.path.exists(cache_dir) or os.listdir(cache_dir) == []


def test_cache_untrusted_dir_is_ignored(tmp_path, config, cache_dir, monkeypatch):
    bundle = write_bundle(tmp_path, config)
    spec.load_bundle_cached(bundle, cache_dir)
    os.chmod(cache_dir, 0o777)
    monkeypatch.setattr(spec, "validate", _boom)
    with pytest.raises(AssertionError, match="must not be called"):
        spec.load_bundle_cached(bundle, cache_dir)


def _run_python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def test_import_does_not_load_jsonschema():
    assert _run_python("import sys, ocirun.spec; print('jsonschema' in sys.modules)") == "False"


def test_cache_hit_does_not_load_jsonschema(tmp_path, config, cache_dir):
    bundle = write_bundle(tmp_path, config)
    spec.load_bundle_cached(bundle, cache_dir)
    code = (
        f"import sys, ocirun.spec as s; s.load_bundle_cached({bundle!r}, {cache_dir!r}); "
        "print('jsonschema' in sys.modules)"
    )
    assert _run_python(code) == "False"


# --------------------------------------------------------------------------- schema files


def test_schema_files_are_valid_draft4_and_refs_resolve():
    import jsonschema
    from referencing import Registry
    from referencing.jsonschema import DRAFT4

    sdir = spec.schemas_dir()
    docs = {
        n: json.loads(open(os.path.join(sdir, n)).read())
        for n in os.listdir(sdir)
        if n.endswith(".json")
    }
    registry = Registry().with_resources((n, DRAFT4.create_resource(d)) for n, d in docs.items())

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for name, doc in docs.items():
        jsonschema.Draft4Validator.check_schema(doc)
        resolver = registry.resolver(base_uri=name)
        for ref in refs(doc):
            resolver.lookup(ref)  # raises if unresolvable
        assert len(open(os.path.join(sdir, name)).read().splitlines()) < 600


# --------------------------------------------------------------------------- tables & defaults


def test_tables():
    assert len(tables.CAPS) == 41 and sorted(tables.CAPS.values()) == list(range(41))
    assert tables.CAPS["CAP_CHECKPOINT_RESTORE"] == 40 and tables.CAPS["CAP_SYS_ADMIN"] == 21
    assert len(tables.RLIMITS) == 16 and sorted(tables.RLIMITS.values()) == list(range(16))
    assert tables.RLIMITS["RLIMIT_NOFILE"] == 7
    assert set(tables.NAMESPACES) == {
        "pid",
        "network",
        "mount",
        "ipc",
        "uts",
        "user",
        "cgroup",
        "time",
    }
    assert tables.NAMESPACES["user"] == 0x10000000 and tables.NAMESPACES["time"] == 0x80
    for opt in (
        "ro rw nosuid suid nodev dev noexec exec sync async dirsync remount mand nomand atime noatime "  # noqa: E501
        "diratime nodiratime relatime norelatime strictatime nostrictatime bind rbind"
    ).split():
        set_, clear = tables.MOUNT_FLAGS[opt]
        assert isinstance(set_, int) and isinstance(clear, int) and (set_ or clear)
    assert tables.MOUNT_FLAGS["rbind"] == (tables.MS_BIND | tables.MS_REC, 0)
    assert tables.MOUNT_FLAGS["rw"] == (0, tables.MS_RDONLY)
    assert tables.PROPAGATION["rslave"] == tables.MS_SLAVE | tables.MS_REC
    assert len(tables.PROPAGATION) == 8


def test_default_config_shape_and_freshness():
    a = defaults.default_config()
    a["process"]["args"].append("x")
    a["mounts"].clear()
    c = defaults.default_config()
    assert c["ociVersion"] == "1.3.0" and c["process"]["args"] == ["sh"]
    # runc spec's defaults (compared with a live runc in test_spec_runc.py)
    assert c["process"]["terminal"] is True and c["hostname"] == "runc"
    assert c["process"]["capabilities"] == {
        kind: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        for kind in ("bounding", "effective", "permitted", "ambient")
    }
    assert [ns["type"] for ns in c["linux"]["namespaces"]] == [
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
    ]
    assert [m["destination"] for m in c["mounts"]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]


def test_rootless_default_config():
    c = defaults.default_config(rootless=True)
    types = [ns["type"] for ns in c["linux"]["namespaces"]]
    assert "network" not in types and types.count("user") == 1
    assert c["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert c["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    sys_mount = next(m for m in c["mounts"] if m["destination"] == "/sys")
    assert "rbind" in sys_mount["options"] and sys_mount["source"] == "/sys"
    assert not any(
        o.startswith(("uid=", "gid=")) for m in c["mounts"] for o in m.get("options", [])
    )
    assert "resources" not in c["linux"]


def test_read_json_object(tmp_path, monkeypatch):
    """exec --process and update --resources: one message per kind of bad file; "-" is
    standard input only where the flag allows it."""
    import io

    from ocirun.errors import OcirunError

    f = tmp_path / "r.json"
    f.write_bytes(b'\xef\xbb\xbf{"pids": {"limit": 3}}')  # a BOM is skipped
    assert spec.read_json_object(str(f), "resources") == {"pids": {"limit": 3}}
    for text, msg in (
        ("[1]", f"{f}: resources must be a JSON object"),
        ("{", f"{f}: invalid JSON"),
    ):
        f.write_text(text)
        with pytest.raises(OcirunError, match="^" + msg):
            spec.read_json_object(str(f), "resources")
    with pytest.raises(OcirunError, match=f"^read {tmp_path}/none: No such file"):
        spec.read_json_object(str(tmp_path / "none"), "resources")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"a": 1}')))
    with pytest.raises(OcirunError, match="^read -: No such file"):
        spec.read_json_object("-", "a process")
    assert spec.read_json_object("-", "resources", dash_is_stdin=True) == {"a": 1}


@pytest.mark.parametrize(
    "mp, fragment",
    [
        ({"mode": "MPOL_BIND", "nodes": "0-9876543210"}, "invalid memory policy node list"),
        ({"mode": "MPOL_BIND", "nodes": "3-1"}, "invalid memory policy node list"),
        ({"mode": "MPOL_DEFAULT", "nodes": "0-7"}, "mode requires 0 nodes but got 8"),
        ({"mode": "MPOL_LOCAL", "nodes": "1"}, "mode requires 0 nodes but got 1"),
    ],
)
def test_memory_policy_nodes_are_checked_before_anything_is_made(config, mp, fragment):
    """A node past the kernel's last one was planned as a mask of gigabytes (the runtime
    was killed); MPOL_DEFAULT/MPOL_LOCAL with nodes only got EINVAL from the kernel."""
    config["linux"]["memoryPolicy"] = mp
    problems = spec.validate(config)
    assert any("/linux/memoryPolicy/nodes" in p and fragment in p for p in problems), problems
    config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0-3,6"}
    assert spec.validate(config) == []
