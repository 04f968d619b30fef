"""The systemd cgroup driver (ocirun/cgroups/systemd.py, units.py, sdbus.py, bus.py, dbus.py)
without systemd: runc's cgroupsPath rules and unit naming, the unit properties built from
linux.resources (with their D-Bus types), the D-Bus wire format, and the manager's whole
life against a fake systemd served on a unix socket in tmp_path (peer to peer, and through
a real dbus-daemon when one is installed, which also checks our messages against libdbus
and sd-bus's busctl)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from ocirun.cgroups import CgroupError, dbus, devices, sdbus, units
from ocirun.cgroups import bus as buslib
from ocirun.cgroups import systemd as sd
from ocirun.cgroups.common import FS
from ocirun.cgroups.v2 import blkio_to_io_weight, shares_to_weight

MiB = 1 << 20
INF = 2**64 - 1


# ================================================================ names and paths


@pytest.mark.parametrize(
    "path,cid,parts,unit,cgroup",
    [
        (
            "",
            "abc",
            ("system.slice", "runc", "abc"),
            "runc-abc.scope",
            "/system.slice/runc-abc.scope",
        ),
        (
            None,
            "abc",
            ("system.slice", "runc", "abc"),
            "runc-abc.scope",
            "/system.slice/runc-abc.scope",
        ),
        (
            "system.slice:docker:abc",
            "x",
            ("system.slice", "docker", "abc"),
            "docker-abc.scope",
            "/system.slice/docker-abc.scope",
        ),
        (
            "kubepods-besteffort.slice:cri-containerd:1f2e",
            "x",
            ("kubepods-besteffort.slice", "cri-containerd", "1f2e"),
            "cri-containerd-1f2e.scope",
            "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-1f2e.scope",
        ),
        (":p:n", "x", ("system.slice", "p", "n"), "p-n.scope", "/system.slice/p-n.scope"),
        (
            "machine.slice::n",
            "x",
            ("machine.slice", "", "n"),
            "-n.scope",
            "/machine.slice/-n.scope",
        ),
        ("-.slice:p:n", "x", ("-.slice", "p", "n"), "p-n.scope", "/p-n.scope"),
        # a name that is a slice makes that slice; its path comes from its own name
        (
            "a.slice:p:my-b.slice",
            "x",
            ("a.slice", "p", "my-b.slice"),
            "my-b.slice",
            "/my.slice/my-b.slice",
        ),
    ],
)
def test_cgroups_path_to_unit(path, cid, parts, unit, cgroup):
    assert units.parse_cgroups_path(path, cid) == parts
    assert units.unit_name(parts[1], parts[2]) == unit
    assert units.unit_cgroup(parts[0], unit) == cgroup


@pytest.mark.parametrize(
    "path,match",
    [
        ("/a/b", "slice:prefix:name"),
        ("a:b", "slice:prefix:name"),
        ("a:b:c:d", "slice:prefix:name"),
        ("s.slice:p:", "name part is empty"),
    ],
)
def test_cgroups_path_format_errors(path, match):
    with pytest.raises(CgroupError, match=match):
        units.parse_cgroups_path(path, "x")


@pytest.mark.parametrize(
    "slice_", ["bad", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice", ".slice"]
)
def test_invalid_slice_names(slice_):
    with pytest.raises(CgroupError, match="invalid slice name"):
        units.unit_cgroup(slice_, "p-n.scope")


def test_open_manager_refuses_a_bad_path_before_anything(v2host):
    with pytest.raises(CgroupError, match="slice:prefix:name"):
        v2host.open({"cgroupsPath": "/plain/path"})


@pytest.mark.parametrize(
    "unit,path",
    [
        ("runc-abc.scope", "/org/freedesktop/systemd1/unit/runc_2dabc_2escope"),
        ("dbus.service", "/org/freedesktop/systemd1/unit/dbus_2eservice"),
        ("1a_b.slice", "/org/freedesktop/systemd1/unit/_31a_5fb_2eslice"),
        ("", "/org/freedesktop/systemd1/unit/_"),
    ],
)
def test_unit_object_path(unit, path):
    assert units.unit_object_path(unit) == path


@pytest.mark.parametrize(
    "text,version",
    [
        ("252.38-1~deb12u1", 252),
        ("v245.4-1.fc32", 245),
        ('"v245-1.fc32"', 245),
        ("255", 255),
        ("", -1),
        ("abc", -1),
    ],
)
def test_parse_version(text, version):
    assert units.parse_version(text) == version


# ================================================================ properties


@pytest.mark.parametrize(
    "text,bits",
    [
        ("0", b"\x01"),
        ("0-3", b"\x0f"),
        ("1,3", b"\x0a"),
        ("0,8", b"\x01\x01"),
        ("9", b"\x00\x02"),
        ("0-2,7-9", b"\x87\x03"),
        (" 0 - 1 ", b"\x03"),
    ],
)
def test_range_to_bits(text, bits):
    assert units.range_to_bits(text) == bits


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "1-"])
def test_range_to_bits_errors(text):
    with pytest.raises(CgroupError, match="invalid cpuset"):
        units.range_to_bits(text)


@pytest.mark.parametrize(
    "quota,period,version,want",
    [
        (
            50000,
            100000,
            252,
            [("CPUQuotaPeriodUSec", ("t", 100000)), ("CPUQuotaPerSecUSec", ("t", 500000))],
        ),
        (50000, None, 252, [("CPUQuotaPerSecUSec", ("t", 500000))]),  # default period 100 ms
        (
            12345,
            100000,
            252,
            [
                ("CPUQuotaPeriodUSec", ("t", 100000)),  # rounded up to 1 %
                ("CPUQuotaPerSecUSec", ("t", 130000)),
            ],
        ),
        (20000, 50000, 241, [("CPUQuotaPerSecUSec", ("t", 400000))]),  # no period before v242
        (-1, None, 252, [("CPUQuotaPerSecUSec", ("t", INF))]),
        (
            None,
            20000,
            252,
            [("CPUQuotaPeriodUSec", ("t", 20000)), ("CPUQuotaPerSecUSec", ("t", INF))],
        ),
        (None, None, 252, []),
    ],
)
def test_cpu_quota(quota, period, version, want):
    assert units.cpu_quota_properties(quota, period, version) == want


FULL = {
    "memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB},
    "cpu": {"shares": 512, "quota": 25000, "period": 50000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 30},
    "blockIO": {"weight": 500},
}


def test_v2_resource_properties_with_dbus_types():
    assert units.resource_properties(FULL, mode="v2", version=252) == [
        ("MemoryMax", ("t", 67108864)),
        ("MemoryLow", ("t", 32 * MiB)),
        ("MemorySwapMax", ("t", 32 * MiB)),  # OCI swap is memory+swap
        ("CPUWeight", ("t", shares_to_weight(512))),
        ("CPUQuotaPeriodUSec", ("t", 50000)),
        ("CPUQuotaPerSecUSec", ("t", 500000)),
        ("TasksMax", ("t", 30)),
        ("IOWeight", ("t", blkio_to_io_weight(500))),
        ("AllowedCPUs", ("ay", b"\x03")),
        ("AllowedMemoryNodes", ("ay", b"\x01")),
    ]


def test_v1_resource_properties():
    assert units.resource_properties(FULL, mode="hybrid", version=252) == [
        ("MemoryLimit", ("t", 64 * MiB)),
        ("CPUShares", ("t", 512)),
        ("CPUQuotaPeriodUSec", ("t", 50000)),
        ("CPUQuotaPerSecUSec", ("t", 500000)),
        ("TasksMax", ("t", 30)),
        ("BlockIOWeight", ("t", 500)),
    ]


@pytest.mark.parametrize(
    "res,want",
    [
        ({"memory": {"limit": -1}}, [("MemoryMax", ("t", INF)), ("MemorySwapMax", ("t", INF))]),
        (
            {"memory": {"limit": 64 * MiB, "swap": 64 * MiB}},
            [("MemoryMax", ("t", 64 * MiB)), ("MemorySwapMax", ("t", 0))],
        ),  # no swap at all
        (
            {"memory": {"limit": 64 * MiB, "swap": -1}},
            [("MemoryMax", ("t", 64 * MiB)), ("MemorySwapMax", ("t", INF))],
        ),
        ({"pids": {"limit": -1}}, [("TasksMax", ("t", INF))]),
        ({"pids": {"limit": 0}}, []),
        ({"cpu": {"idle": 1, "shares": 100}}, [("CPUWeight", ("t", 0))]),  # idle wins (v252+)
        (
            {
                "unified": {
                    "memory.high": "max",
                    "memory.min": "4096",
                    "pids.max": "9",
                    "cpu.max": "max 20000",
                    "cpu.weight": "7",
                    "io.weight": "50",
                }
            },
            [
                ("CPUQuotaPeriodUSec", ("t", 20000)),
                ("CPUQuotaPerSecUSec", ("t", INF)),
                ("CPUWeight", ("t", 7)),
                ("MemoryHigh", ("t", INF)),
                ("MemoryMin", ("t", 4096)),
                ("TasksMax", ("t", 9)),
            ],
        ),
    ],
)
def test_v2_resource_property_cases(res, want):
    assert units.resource_properties(res, mode="v2", version=252) == want


def test_cpuset_needs_systemd_244():
    res = {"cpu": {"cpus": "0", "mems": "0"}, "unified": {"cpuset.cpus": "1"}}
    assert units.resource_properties(res, mode="v2", version=243) == []
    assert units.resource_properties(res, mode="v2", version=244) == [
        ("AllowedCPUs", ("ay", b"\x01")),
        ("AllowedMemoryNodes", ("ay", b"\x01")),
        ("AllowedCPUs", ("ay", b"\x02")),
    ]


@pytest.mark.parametrize(
    "res,match",
    [
        ({"unified": {"memory.max": "lots"}}, 'unified resource "memory.max" value invalid'),
        ({"unified": {"cpu.max": "1 2 3"}}, 'unified resource "cpu.max" value invalid'),
        ({"memory": {"limit": -5}}, "invalid memory value"),
        ({"memory": {"limit": 64 * MiB, "swap": 32 * MiB}}, "memory\\+swap limit should be"),
    ],
)
def test_resource_property_errors(res, match):
    with pytest.raises(CgroupError, match=match):
        units.resource_properties(res, mode="v2", version=252)


def _rules(resources_devices=None, linux_devices=None):
    return devices.device_rules(
        {"resources": {"devices": resources_devices or []}, "devices": linux_devices or []}
    )


def test_default_device_rules_as_systemd_allow_list():
    props, warnings = units.device_properties(_rules([{"allow": False, "access": "rwm"}]), 252)
    assert warnings == []
    assert props == [
        ("DevicePolicy", ("s", "strict")),
        ("DeviceAllow", ("a(ss)", [])),  # empties the list first (SetUnitProperties appends)
        (
            "DeviceAllow",
            (
                "a(ss)",
                [
                    ("char-*", "m"),
                    ("block-*", "m"),
                    ("/dev/char/1:3", "rwm"),
                    ("/dev/char/1:8", "rwm"),
                    ("/dev/char/1:7", "rwm"),
                    ("/dev/char/5:0", "rwm"),
                    ("/dev/char/1:5", "rwm"),
                    ("/dev/char/1:9", "rwm"),
                    ("char-136", "rwm"),
                    ("/dev/char/5:2", "rwm"),
                    ("/dev/char/10:200", "rwm"),
                ],
            ),
        ),
    ]


def test_device_allow_list_merges_and_covers_what_ours_allows():
    rules = _rules(
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
            {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "w"},
            {"allow": False, "type": "b", "major": 8, "minor": 0, "access": "w"},
            {"allow": True, "type": "a", "major": 4, "minor": 1, "access": "r"},
            {"allow": True, "type": "c", "minor": 3, "access": "r"},
        ]
    )
    (_, _, (_, (_, entries))), _ = units.device_properties(rules, 252)
    got = dict(entries)
    assert got["/dev/block/8:0"] == "rw"  # a deny after allows only narrows ours
    assert got["/dev/char/4:1"] == "r" and got["/dev/block/4:1"] == "r"  # type a: both
    assert got["char-*"] == "rm"  # "*:3" can't be said: the type's glob covers it


def test_allow_all_devices_is_policy_auto():
    props, warnings = units.device_properties(_rules([{"allow": True, "access": "rwm"}]), 252)
    assert props == [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    assert warnings == []
    props, warnings = units.device_properties(
        _rules(
            [
                {"allow": True, "access": "rwm"},
                {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
            ]
        ),
        252,
    )
    assert props[0] == ("DevicePolicy", ("s", "auto"))
    assert "deny" in warnings[0]


def test_old_systemd_names_a_major_by_its_group():
    proc = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n"
    rules = [
        {"allow": False, "type": "a", "major": -1, "minor": -1, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rw"},
        {"allow": True, "type": "b", "major": 8, "minor": -1, "access": "r"},
        {"allow": True, "type": "c", "major": 99, "minor": -1, "access": "r"},
    ]
    (_, _, (_, (_, entries))), _ = units.device_properties(rules, 239, proc_devices=proc)
    assert entries == [("char-pts", "rw"), ("block-sd", "r"), ("char-*", "r")]


def test_scope_unit_properties():
    props, _ = units.unit_properties(
        unit="runc-c1.scope",
        slice_="system.slice",
        description="ocirun container c1",
        pid=4242,
        mode="v2",
        version=252,
        resources={"memory": {"limit": 64 * MiB}},
        device_rules=None,
    )
    assert props == [
        ("Description", ("s", "ocirun container c1")),
        ("Slice", ("s", "system.slice")),
        ("Delegate", ("b", True)),
        ("PIDs", ("au", [4242])),
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        ("IOAccounting", ("b", True)),
        ("TasksAccounting", ("b", True)),
        ("DefaultDependencies", ("b", False)),
        ("MemoryMax", ("t", 67108864)),
    ]


def test_slice_unit_properties_and_v1_accounting():
    props, _ = units.unit_properties(
        unit="my-b.slice",
        slice_="a.slice",
        description="d",
        pid=1,
        mode="v1",
        version=252,
        resources={"unified": {"memory.oom.group": "1"}},
        device_rules=None,
    )
    names = [n for n, _ in props]
    assert ("Wants", ("as", ["a.slice"])) in props
    assert "PIDs" not in names and "Delegate" not in names and "Slice" not in names
    assert "BlockIOAccounting" in names and "IOAccounting" not in names
    for version, last in (
        (252, ("DefaultDependencies", ("b", False))),  # scopes: v253+
        (253, ("OOMPolicy", ("s", "kill"))),
    ):
        props, _ = units.unit_properties(
            unit="x.scope",
            slice_="s.slice",
            description="d",
            pid=1,
            mode="v2",
            version=version,
            resources={"unified": {"memory.oom.group": "1"}},
            device_rules=None,
        )
        assert props[-1] == last


# ================================================================ the wire format


def test_marshal_known_bytes():
    assert dbus.marshal("s", ["ab"]) == b"\x02\0\0\0ab\0"
    assert dbus.marshal("yu", [7, 1]) == b"\x07\0\0\0\x01\0\0\0"
    assert dbus.marshal("b", [True]) == b"\x01\0\0\0"
    # array of struct(s, variant t): length excludes the padding to the first struct
    assert dbus.marshal("a(sv)", [[("x", ("t", 1))]]) == (
        b"\x18\0\0\0"
        + b"\0" * 4  # length 24, pad to 8
        + b"\x01\0\0\0x\0"
        + b"\x01t\0"
        + b"\0" * 7  # "x", signature "t", pad to 8
        + b"\x01\0\0\0\0\0\0\0"
    )
    assert dbus.marshal("ay", [b"\x03\x01"]) == b"\x02\0\0\0\x03\x01"
    assert dbus.marshal("at", [[]]) == b"\0\0\0\0\0\0\0\0"  # empty: still padded to 8


def test_start_transient_unit_body_round_trip():
    props, _ = units.unit_properties(
        unit="runc-c1.scope",
        slice_="system.slice",
        description="ocirun container c1",
        pid=77,
        mode="v2",
        version=252,
        resources=FULL,
        device_rules=_rules([{"allow": False, "access": "rwm"}]),
    )
    sig = "ssa(sv)a(sa(sv))"
    body = dbus.marshal(sig, ["runc-c1.scope", "replace", props, []])
    name, mode, got, aux = dbus.unmarshal(sig, body)
    assert (name, mode, aux) == ("runc-c1.scope", "replace", [])
    assert [(n, v) for n, v in got] == props


def test_message_round_trip_and_length():
    m = dbus.Message(
        dbus.METHOD_CALL,
        9,
        {
            1: "/org/freedesktop/systemd1",
            2: sdbus.SD_MANAGER,
            3: "StopUnit",
            6: "org.freedesktop.systemd1",
            8: "ss",
        },
        ("x.scope", "replace"),
    )
    data = m.encode()
    assert dbus.message_length(data[:16]) == len(data)
    back = dbus.decode(data)
    assert (back.type, back.serial, back.member, back.signature, back.body) == (
        1,
        9,
        "StopUnit",
        "ss",
        ("x.scope", "replace"),
    )


def test_big_endian_messages_decode():
    body = b"\0\0\0\x03abc\0"
    fields = (7).to_bytes(4, "big") + b"\x08\x01g\0\x01s\0" + b"\0"  # a(yv): SIGNATURE s
    head = b"B\x02\0\x01" + len(body).to_bytes(4, "big") + (5).to_bytes(4, "big")
    data = head + fields + body
    assert dbus.message_length(data[:16]) == len(data)
    m = dbus.decode(data)
    assert (m.type, m.serial, m.body) == (2, 5, ("abc",))


@pytest.mark.parametrize("bad", [b"\x05\0\0\0ab", b"\x02\0\0\0abX"])
def test_malformed_strings_are_refused(bad):
    with pytest.raises(ValueError):
        dbus.unmarshal("s", bad)


@pytest.mark.parametrize(
    "address,path",
    [
        ("unix:path=/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket"),
        ("tcp:host=x;unix:path=/a%20b,guid=1", "/a b"),
        ("unix:abstract=/tmp/dbus-x", "\0/tmp/dbus-x"),
    ],
)
def test_parse_address(address, path):
    assert buslib.parse_address(address)[0] == path


def test_module_is_cheap_to_import():
    code = (
        "import sys, ocirun.cgroups.systemd; "
        "print(sorted(m for m in ('socket', 'typing', 'enum', 'selectors', 'jeepney') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# ================================================================ a fake systemd


class FakeFS(FS):
    """cgroupfs in tmp_path: a new directory gets cgroup v2 knobs."""

    KNOBS = {
        "cgroup.procs": "",
        "cgroup.controllers": "cpu memory pids io cpuset",
        "cgroup.subtree_control": "",
        "cgroup.events": "populated 0\nfrozen 0\n",
        "cgroup.freeze": "0",
        "cgroup.kill": "",
        "memory.max": "max",
        "memory.low": "0",
        "memory.swap.max": "max",
        "memory.current": "4096",
        "pids.max": "max",
        "pids.current": "1",
        "cpu.weight": "100",
        "cpu.max": "max 100000",
        "memory.events": "oom_kill 0\n",
    }

    def __init__(self):
        self.log: list[tuple[str, str]] = []

    def mkdir(self, path):
        os.mkdir(path)
        for name, content in self.KNOBS.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(content)

    def rmdir(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "gone", path)
        if any(e.is_dir() for e in os.scandir(path)):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        shutil.rmtree(path)

    def write(self, path, data):
        super().write(path, data)
        self.log.append((path, data))
        if os.path.basename(path) == "cgroup.freeze":
            with open(os.path.join(os.path.dirname(path), "cgroup.events"), "w") as f:
                f.write(f"populated 0\nfrozen {data.strip()}\n")

    def attach_device_filter(self, d, rules):
        self.log.append((os.path.join(d, "<bpf>"), str(len(rules))))


def _reply(to, sig="", body=()):
    return dbus.Message(dbus.METHOD_RETURN, 0, {5: to.serial, 6: to.sender, 8: sig or None}, body)


def _error(to, name, text):
    return dbus.Message(dbus.ERROR, 0, {4: name, 5: to.serial, 6: to.sender, 8: "s"}, (text,))


class FakeSystemd:
    """The part of org.freedesktop.systemd1 the driver uses. A started scope's cgroup is
    made in `cgroot` (with `fs`) and its PIDs written there; a stop removes it."""

    def __init__(self, cgroot: str, fs: FakeFS, *, version: str = "252.38-1~deb12u1"):
        self.cgroot, self.fs, self.version = cgroot, fs, version
        self.units: dict[str, dict] = {}
        self.calls: list[tuple[str, tuple]] = []
        self.signals = True  # send JobRemoved (else the driver must poll)
        self.job_result = "done"
        self.start_errors: list[str] = []
        self.jobs = 0
        self.lock = threading.Lock()

    def members(self) -> list[str]:
        return [m for m, _ in self.calls if m not in ("Hello", "AddMatch", "Get")]

    def _job(self, unit: str, result: str) -> tuple[str, list]:
        self.jobs += 1
        job = f"/org/freedesktop/systemd1/job/{self.jobs}"
        out = []
        if self.signals:
            out.append(
                dbus.Message(
                    dbus.SIGNAL,
                    0,
                    {1: units.SD_PATH, 2: sdbus.SD_MANAGER, 3: "JobRemoved", 8: "uoss"},
                    (self.jobs, job, unit, result),
                )
            )
        return job, out

    def handle(self, msg: dbus.Message) -> list[dbus.Message]:
        with self.lock:
            return self._handle(msg)

    def _handle(self, msg):
        m, a = msg.member, msg.body
        self.calls.append((m, a))
        if m == "Hello":
            return [_reply(msg, "s", (":1.99",))]
        if m == "AddMatch":
            return [_reply(msg)]
        if m == "Get":
            return self._get(msg, msg.path, *a)
        if m == "StartTransientUnit":
            name, _mode, props, _aux = a
            if self.start_errors:
                err = self.start_errors.pop(0)
                return [_error(msg, err, f"Unit {name} was already loaded or has a fragment file.")]
            props = dict(props)
            cgroup = units.unit_cgroup(props.get("Slice", ("s", "-.slice"))[1], name)
            if self.job_result == "done":
                path = self.cgroot
                for part in cgroup.strip("/").split("/"):
                    path = os.path.join(path, part)
                    if not os.path.isdir(path):
                        self.fs.mkdir(path)
                for pid in props.get("PIDs", ("au", []))[1]:
                    with open(os.path.join(path, "cgroup.procs"), "w") as f:
                        f.write(str(pid))
            self.units[name] = {
                "state": "active" if self.job_result == "done" else "failed",
                "cgroup": cgroup,
                "props": props,
            }
            job, signals = self._job(name, self.job_result)
            return [_reply(msg, "o", (job,))] + signals
        if m == "StopUnit":
            u = self.units.get(a[0])
            if u is None:
                return [
                    _error(msg, "org.freedesktop.systemd1.NoSuchUnit", f"Unit {a[0]} not loaded.")
                ]
            shutil.rmtree(self.cgroot + u["cgroup"], ignore_errors=True)
            del self.units[a[0]]
            job, signals = self._job(a[0], "done")
            return [_reply(msg, "o", (job,))] + signals
        if m == "ResetFailedUnit":
            u = self.units.get(a[0])
            if u is None:
                return [
                    _error(msg, "org.freedesktop.systemd1.NoSuchUnit", f"Unit {a[0]} not loaded.")
                ]
            if u["state"] == "failed":
                del self.units[a[0]]
            return [_reply(msg)]
        if m == "SetUnitProperties":
            if a[0] not in self.units:
                return [_error(msg, "org.freedesktop.systemd1.NoSuchUnit", "no")]
            self.units[a[0]]["props"].update(dict(a[2]))
            return [_reply(msg)]
        return [_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", f"no {m}")]

    def _get(self, msg, path, iface, prop):
        if path == units.SD_PATH and prop == "Version":
            return [_reply(msg, "v", (("s", self.version),))]
        if "/job/" in path:  # every job is over as soon as it is made
            return [
                _error(msg, "org.freedesktop.DBus.Error.UnknownObject", f"Unknown object '{path}'.")
            ]
        for name, u in self.units.items():
            if units.unit_object_path(name) == path:
                if prop == "ActiveState":
                    return [_reply(msg, "v", (("s", u["state"]),))]
                if prop == "ControlGroup":
                    return [_reply(msg, "v", (("s", u["cgroup"]),))]
        if prop == "Demo":  # for busctl: a variant holding what the driver sends
            return [
                _reply(
                    msg,
                    "v",
                    (
                        (
                            "a(sv)",
                            [
                                ("MemoryMax", ("t", 64 * MiB)),
                                ("AllowedCPUs", ("ay", b"\x03")),
                                ("Delegate", ("b", True)),
                            ],
                        ),
                    ),
                )
            ]
        return [
            _error(msg, "org.freedesktop.DBus.Error.UnknownObject", f"Unknown object '{path}'.")
        ]


def _adopt(sock) -> buslib.Connection:
    """A server-side Connection around an accepted socket (after the auth lines)."""
    c = buslib.Connection.__new__(buslib.Connection)
    c.sock, c.buf, c.timeout, c.serial, c.signals = sock, bytearray(), 5.0, 0, []
    c.keep, c.unique_name, c.where = (lambda m: False), "", "peer"
    return c


def _serve(conn: buslib.Connection, fake: FakeSystemd, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            msg = conn.receive(0.05)
            if msg is None or msg.type != dbus.METHOD_CALL:
                continue
            for out in fake.handle(msg):
                out.serial = conn.next_serial()
                conn.send(out)
    except OSError:
        pass


class PeerServer:
    """systemd's private socket, played: auth EXTERNAL, then the fake answers."""

    def __init__(self, path: str, fake: FakeSystemd):
        import socket

        self.path, self.fake = path, fake
        self.stop = threading.Event()
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(path)
        self.lsock.listen(8)
        self.lsock.settimeout(0.05)
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()
        self.auth_lines: list[bytes] = []
        self.first_chunks: list[bytes] = []

    def _accept(self):
        while not self.stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._conn, args=(s,), daemon=True)
            self.threads.append(t)
            t.start()

    def _conn(self, s):
        s.settimeout(5)
        buf, answered = b"", False
        try:
            while b"BEGIN\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return
                if not buf:
                    self.first_chunks.append(chunk)
                buf += chunk
                if buf.startswith(b"\0AUTH") and b"\r\n" in buf and not answered:
                    self.auth_lines.append(buf.split(b"\r\n")[0])
                    s.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
                    answered = True
        except OSError:
            return
        conn = _adopt(s)
        conn.buf += buf.split(b"BEGIN\r\n", 1)[1]  # what came right behind BEGIN
        _serve(conn, self.fake, self.stop)

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(2)
        self.lsock.close()


class Host:
    """A fake cgroup v2 host and a fake systemd to drive it."""

    def __init__(self, tmp_path):
        self.root = str(tmp_path / "cg")
        self.fs = FakeFS()
        self.fs.mkdir(self.root)
        self.mountinfo = f"30 1 0:30 / {self.root} rw - cgroup2 cgroup2 rw,nsdelegate\n"
        self.fake = FakeSystemd(self.root, self.fs)
        self.address = f"unix:path={tmp_path}/private"
        self.server: PeerServer | None = None

    def serve(self):
        self.server = PeerServer(self.address.split("=", 1)[1], self.fake)
        return self

    def open(self, linux, cid="c1", **kw):
        kw.setdefault("addresses", [self.address])
        return sd.open_manager(
            linux, cid, root=self.root, mountinfo=self.mountinfo, fs=self.fs, **kw
        )

    def reopen(self, paths):
        return sd.from_state(paths, fs=self.fs)

    def close(self):
        if self.server:
            self.server.close()


@pytest.fixture
def v2host(tmp_path):
    h = Host(tmp_path)
    yield h
    h.close()


@pytest.fixture
def served(v2host):
    return v2host.serve()


def _read(path):
    with open(path) as f:
        return f.read()


LINUX = {
    "cgroupsPath": "system.slice:runc:c1",
    "resources": {
        "memory": {"limit": 64 * MiB},
        "pids": {"limit": 30},
        "devices": [{"allow": False, "access": "rwm"}],
    },
}


def _life(h: Host):
    """create, add, state round trip, update, destroy (twice): the whole life."""
    m = h.open(LINUX)
    assert m.create() == []
    assert h.fake.members() == []  # nothing started before the pid is known
    assert m.placement() is None  # systemd moves the init: it starts the unit with its pid
    m.add(4242)
    unit = h.fake.units["runc-c1.scope"]
    props = unit["props"]
    assert props["PIDs"] == ("au", [4242]) and props["Delegate"] == ("b", True)
    assert props["Slice"] == ("s", "system.slice")
    assert props["MemoryMax"] == ("t", 64 * MiB) and props["TasksMax"] == ("t", 30)
    assert props["DevicePolicy"] == ("s", "strict")
    d = f"{h.root}/system.slice/runc-c1.scope"
    assert m.dirs == {"": d}
    # what systemd can't express and what it can: cgroupfs has it all, from us
    assert _read(f"{d}/memory.max") == str(64 * MiB) and _read(f"{d}/pids.max") == "30"
    assert (f"{d}/<bpf>", str(len(devices.device_rules(LINUX)))) in h.fs.log
    assert _read(f"{d}/cgroup.procs") == "4242"
    paths = m.paths
    assert paths["driver"] == "systemd" and paths["unit"] == "runc-c1.scope"
    assert paths["bus"] == h.address and paths["dirs"] == {"": d} and paths["created"] == []

    again = h.reopen(paths)
    assert again.pids() == [4242]
    assert again.placement() == ([], d)  # exec: cloned into the unit's cgroup
    again.freeze()
    assert again.state() == "FROZEN"
    again.thaw()
    assert again.update({"memory": {"limit": 128 * MiB}}) == []
    assert h.fake.units["runc-c1.scope"]["props"]["MemoryMax"] == ("t", 128 * MiB)
    assert _read(f"{d}/memory.max") == str(128 * MiB)
    set_calls = [a for c, a in h.fake.calls if c == "SetUnitProperties"]
    assert set_calls == [("runc-c1.scope", True, [("MemoryMax", ("t", 128 * MiB))])]
    again.add(999)  # an exec'd process joins through cgroupfs, no new unit
    assert _read(f"{d}/cgroup.procs") == "999"
    assert h.fake.members().count("StartTransientUnit") == 1

    again.destroy()
    assert "runc-c1.scope" not in h.fake.units
    assert not os.path.exists(d) and os.path.isdir(f"{h.root}/system.slice")
    h.reopen(paths).destroy()  # idempotent: NoSuchUnit is fine
    assert h.fake.members()[-4:] == ["StopUnit", "ResetFailedUnit", "StopUnit", "ResetFailedUnit"]


def test_whole_life_over_the_private_socket(served):
    _life(served)
    # a connection per operation, closed after it: create+add, update, destroy, destroy
    auth = b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode()
    assert served.server.auth_lines == [auth] * 4
    # BEGIN goes with AUTH, before the OK (systemd 252 would leave a message that comes
    # in the same read as BEGIN unanswered)
    assert served.server.first_chunks == [auth + b"\r\nBEGIN\r\n"] * 4


def test_job_end_is_polled_when_no_signal_comes(served):
    served.fake.signals = False
    t = time.monotonic()
    _life(served)
    assert time.monotonic() - t < 5
    gets = [a for c, a in served.fake.calls if c == "Get"]
    assert ("org.freedesktop.systemd1.Job", "State") in gets


def test_failed_start_job(served):
    served.fake.job_result = "failed"
    m = served.open(LINUX)
    m.create()
    with pytest.raises(
        CgroupError, match="error creating systemd unit `runc-c1.scope`: got `failed`"
    ):
        m.add(1)
    assert served.fake.members() == ["StartTransientUnit", "ResetFailedUnit"]
    assert "runc-c1.scope" not in served.fake.units


def test_a_leftover_unit_is_reset_and_the_start_retried(served):
    served.fake.start_errors = ["org.freedesktop.systemd1.UnitExists"]
    m = served.open(LINUX)
    m.create()
    m.add(5)
    assert served.fake.members() == ["StartTransientUnit", "ResetFailedUnit", "StartTransientUnit"]


def test_a_unit_that_keeps_existing_is_an_error(served):
    served.fake.start_errors = ["org.freedesktop.systemd1.UnitExists"] * 2
    m = served.open(LINUX)
    m.create()
    with pytest.raises(
        CgroupError,
        match="systemd unit runc-c1.scope: start: Unit runc-c1.scope was already loaded",
    ):
        m.add(5)
    m.destroy()  # never started: nothing of ours to stop (the name is someone else's)
    assert "StopUnit" not in served.fake.members()


def test_slice_unit_takes_the_pid_through_cgroupfs(served):
    m = served.open({"cgroupsPath": "system.slice:p:ctr-x.slice"})
    m.create()
    m.add(77)
    props = served.fake.units["ctr-x.slice"]["props"]
    assert "PIDs" not in props and props["Wants"] == ("as", ["system.slice"])
    d = f"{served.root}/ctr.slice/ctr-x.slice"
    assert m.dirs == {"": d} and _read(f"{d}/cgroup.procs") == "77"
    m.destroy()
    assert not os.path.exists(d)


def test_destroy_removes_what_systemd_left(served):
    m = served.open(LINUX)
    m.create()
    m.add(3)
    d = m.dirs[""]
    served.fs.mkdir(f"{d}/inner")  # a sub-cgroup the container made (delegated)
    del served.fake.units["runc-c1.scope"]  # systemd forgot the unit, left the dirs
    m.destroy()
    assert not os.path.exists(d)


def test_unreachable_bus_is_one_clean_line(v2host, tmp_path):
    m = v2host.open(LINUX, addresses=[f"unix:path={tmp_path}/none"])
    with pytest.raises(CgroupError) as e:
        m.create()
    assert str(e.value) == (
        f"--systemd-cgroup: cannot reach systemd over D-Bus "
        f"({tmp_path}/none): no such file or directory"
    )


def test_default_bus_comes_from_the_environment(v2host, tmp_path, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/sysbus")
    m = v2host.open(LINUX, addresses=None)
    with pytest.raises(
        CgroupError,
        match=r"^--systemd-cgroup: cannot reach systemd over "
        rf"D-Bus \({tmp_path}/sysbus\): no such file or directory$",
    ):
        m.create()


def test_bus_without_systemd_on_it(v2host, tmp_path):
    """A socket that answers but isn't systemd (here: refuses auth) is unreachable too."""
    import socket

    path = str(tmp_path / "mute")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)

    def refuse():
        s, _ = ls.accept()
        s.recv(4096)
        s.sendall(b"REJECTED EXTERNAL\r\n")
        s.close()

    t = threading.Thread(target=refuse, daemon=True)
    t.start()
    m = v2host.open(LINUX, addresses=[f"unix:path={path}"])
    with pytest.raises(
        CgroupError,
        match=r"cannot reach systemd over D-Bus \(.*mute\): "
        "D-Bus authentication refused: REJECTED EXTERNAL",
    ):
        m.create()
    t.join(2)
    ls.close()


def test_hybrid_host_paths_and_properties(tmp_path):
    root = str(tmp_path / "cg")
    lines, n = [], 20
    for h, opts in (
        ("cpuset", "cpuset"),
        ("memory", "memory"),
        ("devices", "devices"),
        ("systemd", "name=systemd"),
    ):
        n += 1
        lines.append(f"{n} 1 0:{n} / {root}/{h} rw - cgroup cgroup rw,{opts}")
    lines.append(f"40 1 0:40 / {root}/unified rw - cgroup2 cgroup2 rw")
    m = sd.open_manager(
        {"cgroupsPath": "machine.slice:lxc:a", "resources": {"memory": {"limit": 64 * MiB}}},
        "x",
        root=root,
        mountinfo="\n".join(lines) + "\n",
        addresses=[],
    )
    assert m.mode == "hybrid"
    assert m.dirs == {
        "cpuset": f"{root}/cpuset/machine.slice/lxc-a.scope",
        "memory": f"{root}/memory/machine.slice/lxc-a.scope",
        "devices": f"{root}/devices/machine.slice/lxc-a.scope",
        "name=systemd": f"{root}/systemd/machine.slice/lxc-a.scope",
        "": f"{root}/unified/machine.slice/lxc-a.scope",
    }
    props, _ = units.unit_properties(
        unit=m.unit,
        slice_=m.slice,
        description="d",
        pid=1,
        mode=m.mode,
        version=252,
        resources={"memory": {"limit": 64 * MiB}},
        device_rules=None,
    )
    assert ("MemoryLimit", ("t", 64 * MiB)) in props


# ================================================================ through a real dbus-daemon

DBUS_DAEMON = shutil.which("dbus-daemon")
BUSCTL = shutil.which("busctl")

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/> <allow send_type="signal"/>
    <allow send_type="method_return"/> <allow send_type="error"/>
    <allow receive_type="method_call"/> <allow receive_type="signal"/>
    <allow receive_type="method_return"/> <allow receive_type="error"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def bus(tmp_path, v2host):
    """A private dbus-daemon with the fake systemd on it as org.freedesktop.systemd1."""
    if not DBUS_DAEMON:
        pytest.skip("dbus-daemon is not installed")
    path = str(tmp_path / "bus")
    conf = tmp_path / "bus.conf"
    conf.write_text(BUS_CONF.format(path=path))
    p = subprocess.Popen(
        [DBUS_DAEMON, f"--config-file={conf}", "--nofork", "--nopidfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    try:
        address = f"unix:path={path}"
        # The socket file appears (bind) a moment before the daemon listens.
        for attempt in range(200):
            try:
                service = buslib.Connection(address)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if attempt == 199:
                    raise
                time.sleep(0.01)
        (got,) = service.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            sdbus.SD_DEST,
            4,
        )
        assert got == 1  # primary owner
        t = threading.Thread(target=_serve, args=(service, v2host.fake, stop), daemon=True)
        t.start()
        v2host.address = address
        yield v2host
    finally:
        stop.set()
        p.terminate()
        p.wait(5)


def test_whole_life_through_dbus_daemon(bus):
    """libdbus checks every message we send; JobRemoved reaches us by our AddMatch."""
    _life(bus)
    assert (
        "AddMatch",
        (
            "type='signal',sender='org.freedesktop.systemd1',"
            "path='/org/freedesktop/systemd1',"
            "interface='org.freedesktop.systemd1.Manager',"
            "member='JobRemoved'",
        ),
    ) not in bus.fake.calls  # went to the daemon
    polls = [a for c, a in bus.fake.calls if c == "Get" and a[1] == "State"]
    assert polls == []  # the signals arrived: no polling


@pytest.mark.skipif(not BUSCTL, reason="busctl is not installed")
def test_busctl_and_we_agree_on_the_wire(bus):
    """sd-bus (busctl) marshals StartTransientUnit: we read it; we marshal a variant
    holding the property types we send: busctl reads it."""
    address = bus.address
    r = subprocess.run(
        [
            BUSCTL,
            f"--address={address}",
            "call",
            sdbus.SD_DEST,
            units.SD_PATH,
            sdbus.SD_MANAGER,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            "busctl-1.scope",
            "replace",
            "4",
            "Description",
            "s",
            "from busctl",
            "PIDs",
            "au",
            "1",
            "4242",
            "MemoryMax",
            "t",
            str(64 * MiB),
            "AllowedCPUs",
            "ay",
            "1",
            "3",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'o "/org/freedesktop/systemd1/job/1"'
    props = bus.fake.units["busctl-1.scope"]["props"]
    assert props == {
        "Description": ("s", "from busctl"),
        "PIDs": ("au", [4242]),
        "MemoryMax": ("t", 64 * MiB),
        "AllowedCPUs": ("ay", b"\x03"),
    }
    r = subprocess.run(
        [
            BUSCTL,
            f"--address={address}",
            "call",
            sdbus.SD_DEST,
            units.unit_object_path("busctl-1.scope"),
            sdbus.PROPERTIES,
            "Get",
            "ss",
            "org.freedesktop.systemd1.Unit",
            "Demo",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "v",
        "a(sv)",
        "3",
        '"MemoryMax"',
        "t",
        str(64 * MiB),
        '"AllowedCPUs"',
        "ay",
        "1",
        "3",
        '"Delegate"',
        "b",
        "true",
    ]


def test_update_devices_tells_systemd_and_replaces_our_program(served):
    m = served.open(LINUX)
    m.create()
    m.add(8)
    again = served.reopen(m.paths)
    again.update(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "rw"},
            ]
        }
    )
    ((unit, runtime, props),) = [a for c, a in served.fake.calls if c == "SetUnitProperties"]
    assert (unit, runtime) == ("runc-c1.scope", True)
    assert props[:2] == [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    assert ("/dev/block/7:0", "rw") in props[2][1][1]
    bpf = [v for p, v in served.fs.log if p.endswith("<bpf>")]
    assert len(bpf) == 2  # create's program, then update's
    again.destroy()
