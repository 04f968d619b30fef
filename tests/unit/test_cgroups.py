"""ocirun.cgroups against a fake cgroupfs in tmp_path (no root): which file gets which value,
the v2 conversions, path rules, cleanup, and the state round trip."""

from __future__ import annotations

import errno
import json
import os

import pytest

from ocirun.cgroups import (
    CgroupError,
    common,
    devices,
    from_state,
    layout,
    open_manager,
)
from ocirun.cgroups.v2 import blkio_to_io_weight, shares_to_weight, swap_to_v2

V1_KNOBS = {
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": "", "cgroup.procs": ""},
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_burst_us": "0",
        "cpu.idle": "0",
        "cpu.rt_period_us": "1000000",
        "cpu.rt_runtime_us": "0",
        "cpu.stat": "nr_periods 4\nnr_throttled 1\nthrottled_time 500\n",
        "cgroup.procs": "",
    },
    "cpuacct": {
        "cpuacct.usage": "3000",
        "cpuacct.usage_percpu": "1000 2000 ",
        "cpuacct.usage_all": "cpu user system\n0 700 300\n1 1500 500\n",
        "cpuacct.stat": "user 2\nsystem 1\n",
        "cgroup.procs": "",
    },
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.soft_limit_in_bytes": "9223372036854771712",
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        "memory.use_hierarchy": "1",
        "memory.usage_in_bytes": "4096",
        "memory.max_usage_in_bytes": "8192",
        "memory.failcnt": "0",
        "memory.stat": "cache 10\nrss 20\n",
        "cgroup.procs": "",
    },
    "devices": {
        "devices.allow": "",
        "devices.deny": "",
        "devices.list": "a *:* rwm",
        "cgroup.procs": "",
    },
    "freezer": {"freezer.state": "THAWED", "freezer.self_freezing": "0", "cgroup.procs": ""},
    "blkio": {
        "blkio.bfq.weight": "100",
        "blkio.bfq.weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
        "cgroup.procs": "",
    },
    "pids": {"pids.max": "max", "pids.current": "2", "cgroup.procs": ""},
    "hugetlb": {
        "hugetlb.2MB.limit_in_bytes": "0",
        "hugetlb.2MB.rsvd.limit_in_bytes": "0",
        "cgroup.procs": "",
    },
    "net_cls": {"net_cls.classid": "0", "cgroup.procs": ""},
    "net_prio": {"net_prio.ifpriomap": "", "cgroup.procs": ""},
    "rdma": {"rdma.max": "", "cgroup.procs": ""},
    "systemd": {"cgroup.procs": ""},
    "unified": {
        "cgroup.procs": "",
        "cgroup.events": "populated 0\nfrozen 0\n",
        "cgroup.kill": "",
        "cgroup.controllers": "",
        "cgroup.subtree_control": "",
    },
}
V1_ROOT_VALUES = {"cpuset": {"cpuset.cpus": "0-3", "cpuset.mems": "0"}}

V2_KNOBS = {
    "cgroup.procs": "",
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.kill": "",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "cpu.max.burst": "0",
    "cpu.idle": "0",
    "cpu.stat": "usage_usec 5\nuser_usec 3\n"
    "system_usec 2\nnr_periods 7\nnr_throttled 0\nthrottled_usec 0\n",
    "cpuset.cpus": "",
    "cpuset.mems": "",
    "memory.max": "max",
    "memory.low": "0",
    "memory.swap.max": "max",
    "memory.swap.current": "0",
    "memory.current": "4096",
    "memory.peak": "8192",
    "memory.events": "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
    "memory.stat": "file 11\nanon 22\n",
    "io.weight": "default 100",
    "io.max": "",
    "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
    "pids.max": "max",
    "pids.current": "1",
    "hugetlb.2MB.max": "max",
    "hugetlb.2MB.rsvd.max": "max",
    "rdma.max": "",
    "misc.max": "",
}


class FakeFS(common.FS):
    """A directory tree playing cgroupfs: mkdir makes the hierarchy's knobs, rmdir refuses
    while sub-cgroups exist, writes are logged, `fail` makes a knob reject a write."""

    def __init__(self, knobs_for):
        self.knobs_for = knobs_for  # path -> {file: content}
        self.log: list[tuple[str, str]] = []
        self.fail: dict[str, int] = {}

    def mkdir(self, path):
        os.mkdir(path)
        for name, content in self.knobs_for(path).items():
            with open(os.path.join(path, name), "w") as f:
                f.write(content)

    def rmdir(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "gone", path)
        if any(e.is_dir() for e in os.scandir(path)):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        for e in os.scandir(path):
            os.unlink(e.path)
        os.rmdir(path)

    def write(self, path, data):
        err = self.fail.get(os.path.basename(path))
        if err:
            raise OSError(err, os.strerror(err), path)
        super().write(path, data)
        self.log.append((path, data))
        base = os.path.basename(path)
        if base == "cgroup.freeze":  # the kernel reports the outcome in cgroup.events
            ev = os.path.join(os.path.dirname(path), "cgroup.events")
            with open(ev, "w") as f:
                f.write(f"populated 0\nfrozen {data.strip()}\n")

    def attach_device_filter(self, path, rules):
        self.log.append((os.path.join(path, "<bpf>"), str(len(rules))))
        return 0

    def writes(self, name):
        return [d for p, d in self.log if os.path.basename(p) == name]


def _make(path, knobs):
    os.makedirs(path, exist_ok=True)
    for name, content in knobs.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(content)


@pytest.fixture
def v1(tmp_path):
    """A hybrid host: v1 hierarchies + controller-less cgroup2 at root/unified."""
    root = str(tmp_path / "cg")
    lines = []
    for i, h in enumerate(V1_KNOBS):
        mp = f"{root}/{h}"
        _make(mp, {**V1_KNOBS[h], **V1_ROOT_VALUES.get(h, {})})
        if h == "unified":
            lines.append(f"{40 + i} 1 0:{40 + i} / {mp} rw,relatime - cgroup2 cgroup2 rw")
        else:
            opt = "name=systemd" if h == "systemd" else h
            lines.append(f"{40 + i} 1 0:{40 + i} / {mp} rw,relatime - cgroup cgroup rw,{opt}")
    mountinfo = "\n".join(["22 1 0:21 / /proc rw - proc proc rw"] + lines) + "\n"

    def knobs_for(path):
        rel = os.path.relpath(path, root)
        return V1_KNOBS[rel.split("/")[0]]

    fs = FakeFS(knobs_for)

    def opener(linux, cid="c1", **kw):
        kw.setdefault("self_cgroup", "3:memory:/mine\n2:cpu:/\n1:name=systemd:/\n0::/\n")
        return open_manager(linux, cid, root=root, mountinfo=mountinfo, fs=fs, **kw)

    opener.root, opener.fs, opener.mountinfo = root, fs, mountinfo
    return opener


@pytest.fixture
def v2(tmp_path):
    root = str(tmp_path / "cg2")
    _make(root, V2_KNOBS)
    mountinfo = f"30 1 0:30 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    fs = FakeFS(lambda path: V2_KNOBS)

    def opener(linux, cid="c1", **kw):
        kw.setdefault("self_cgroup", "0::/user.slice/session-1.scope\n")
        return open_manager(linux, cid, root=root, mountinfo=mountinfo, fs=fs, **kw)

    opener.root, opener.fs, opener.mountinfo = root, fs, mountinfo
    return opener


def read(path):
    with open(path) as f:
        return f.read()


# ------------------------------------------------------------------ modes and paths


def test_layout_mode(v1, v2):
    assert layout.layout(v1.root, v1.mountinfo).mode == "hybrid"
    assert layout.layout(v2.root, v2.mountinfo).mode == "v2"
    only_v1 = "\n".join(ln for ln in v1.mountinfo.splitlines() if "cgroup2" not in ln)
    assert layout.layout(v1.root, only_v1).mode == "v1"
    with pytest.raises(CgroupError):
        layout.layout(v1.root, "22 1 0:21 / /proc rw - proc proc rw\n")


def test_a_hierarchy_hidden_by_a_later_mount_is_not_used(v1):
    """A tmpfs over the cgroup2 mount (as benchmarks hide it from crun): what is at the
    path decides, not the path; the host is then plain v1."""
    unified = next(ln for ln in v1.mountinfo.splitlines() if "cgroup2" in ln)
    dev, mountpoint = unified.split()[2], unified.split()[4]
    text = v1.mountinfo + f"99 30 0:99 / {mountpoint} rw - tmpfs none rw\n"
    lay = layout.parse_mountinfo(text, v1.root, lambda mp, d: d != dev)
    assert lay.mode == "v1" and lay.unified is None and "memory" in lay.v1
    assert layout.parse_mountinfo(text, v1.root).mode == "hybrid"  # by path alone


def test_is_mounted_at_compares_the_superblock(tmp_path):
    with open("/proc/self/mountinfo") as f:
        proc = next(ln.split() for ln in f if ln.split()[4] == "/proc")
    assert layout.is_mounted_at("/proc", proc[2])
    assert not layout.is_mounted_at("/proc", "0:999999")
    assert not layout.is_mounted_at(str(tmp_path / "missing"), proc[2])


def test_absolute_path_below_every_hierarchy(v1):
    m = v1({"cgroupsPath": "/a/b"})
    assert m.dirs["memory"] == f"{v1.root}/memory/a/b"
    assert m.dirs["name=systemd"] == f"{v1.root}/systemd/a/b"
    assert m.dirs[""] == f"{v1.root}/unified/a/b"  # hybrid: the cgroup2 tree too
    assert set(m.dirs) == {
        "cpuset",
        "cpu",
        "cpuacct",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "pids",
        "hugetlb",
        "net_cls",
        "net_prio",
        "rdma",
        "name=systemd",
        "",
    }


def test_relative_path_is_under_own_cgroup(v1):
    m = v1({"cgroupsPath": "x/y"})
    assert m.dirs["memory"] == f"{v1.root}/memory/mine/x/y"
    assert m.dirs["cpu"] == f"{v1.root}/cpu/x/y"


def test_absent_path_is_id_under_own_cgroup(v1):
    m = v1({}, cid="ctr")
    assert m.dirs["memory"] == f"{v1.root}/memory/mine/ctr"


def test_placement_hybrid_tasks_files_and_the_cgroup2_dir(v1):
    """The child moves itself into each v1 hierarchy (its `tasks` file, once per directory
    even where controllers share one) and is cloned into the cgroup2 tree."""
    m = v1({"cgroupsPath": "/a"})
    tasks, into = m.placement()
    assert into == f"{v1.root}/unified/a"
    assert len(tasks) == len(set(tasks)) == len(set(d for k, d in m.dirs.items() if k))
    assert f"{v1.root}/memory/a/tasks" in tasks
    assert f"{v1.root}/systemd/a/tasks" in tasks
    assert all(t.endswith("/tasks") for t in tasks)


def test_placement_v2_is_clone_into_only(v2):
    m = v2({"cgroupsPath": "/a"})
    assert m.placement() == ([], f"{v2.root}/a")


def test_placement_v1_only_has_no_cgroup2_dir(v1):
    only_v1 = "\n".join(ln for ln in v1.mountinfo.splitlines() if "cgroup2" not in ln)
    m = open_manager(
        {"cgroupsPath": "/a"},
        "c1",
        root=v1.root,
        mountinfo=only_v1 + "\n",
        fs=v1.fs,
        self_cgroup="0::/\n",
    )
    tasks, into = m.placement()
    assert into is None and f"{v1.root}/cpu/a/tasks" in tasks


def test_placement_is_kept_across_state(v1):
    m = v1({"cgroupsPath": "/a"})
    assert from_state(json.loads(json.dumps(m.paths))).placement() == m.placement()


@pytest.mark.parametrize(
    "given,inner", [("/a/../b//c/", "/b/c"), ("../../x", "x"), ("a/./b", "a/b"), ("//a", "/a")]
)
def test_paths_are_cleaned(given, inner):
    assert layout.inner_path({"cgroupsPath": given}, "id", False) == inner


def test_v2_relative_path_is_under_parent_of_own_cgroup(v2):
    m = v2({"cgroupsPath": "x"})
    assert m.dirs == {"": f"{v2.root}/user.slice/x"}
    assert v2({"cgroupsPath": "/k/x"}).dirs == {"": f"{v2.root}/k/x"}


@pytest.mark.parametrize(
    "path,cid,want",
    [
        ("", "abc", "/system.slice/runc-abc.scope"),
        ("system.slice:docker:abc", "x", "/system.slice/docker-abc.scope"),
        (
            "kubepods-besteffort.slice:cri:1",
            "x",
            "/kubepods.slice/kubepods-besteffort.slice/cri-1.scope",
        ),
        (":p:n", "x", "/system.slice/p-n.scope"),
        ("a.slice:p:my-b.slice", "x", "/my.slice/my-b.slice"),
    ],
)
def test_systemd_paths(path, cid, want):
    assert layout.inner_path({"cgroupsPath": path}, cid, True) == want


def test_systemd_driver_names_the_scope(v2):
    m = v2({"cgroupsPath": "system.slice:docker:abc"}, systemd=True)
    assert m.paths["unit"] == "docker-abc.scope"


def test_systemd_path_format_error():
    with pytest.raises(CgroupError, match="slice:prefix:name"):
        layout.inner_path({"cgroupsPath": "/a/b"}, "x", True)


def test_mount_root_is_honoured(tmp_path):
    # A hierarchy mounted from /outer (as in a container without cgroupns).
    root = str(tmp_path)
    mi = (
        f"40 1 0:40 /outer {root}/memory rw - cgroup cgroup rw,memory\n"
        f"41 1 0:41 / {root}/devices rw - cgroup cgroup rw,devices\n"
    )
    m = open_manager(
        {"cgroupsPath": "c"},
        "x",
        root=root,
        mountinfo=mi,
        self_cgroup="5:memory:/outer/inner\n4:devices:/\n",
    )
    assert m.dirs["memory"] == f"{root}/memory/inner/c"


def test_no_devices_hierarchy_is_refused(tmp_path):
    mi = f"40 1 0:40 / {tmp_path}/memory rw - cgroup cgroup rw,memory\n"
    with pytest.raises(CgroupError, match="devices"):
        open_manager({"cgroupsPath": "/c"}, "x", root=str(tmp_path), mountinfo=mi)


# ------------------------------------------------------------------ v1 resources

V1_CASES = [
    ({"memory": {"limit": 67108864}}, "memory", "memory.limit_in_bytes", "67108864"),
    (
        {"memory": {"limit": 67108864, "swap": 134217728}},
        "memory",
        "memory.memsw.limit_in_bytes",
        "134217728",
    ),
    ({"memory": {"limit": -1}}, "memory", "memory.memsw.limit_in_bytes", "-1"),
    ({"memory": {"reservation": 1000}}, "memory", "memory.soft_limit_in_bytes", "1000"),
    ({"memory": {"swappiness": 10}}, "memory", "memory.swappiness", "10"),
    ({"memory": {"disableOOMKiller": True}}, "memory", "memory.oom_control", "1"),
    ({"memory": {"useHierarchy": True}}, "memory", "memory.use_hierarchy", "1"),
    ({"cpu": {"shares": 1024}}, "cpu", "cpu.shares", "1024"),
    ({"cpu": {"quota": 50000, "period": 200000}}, "cpu", "cpu.cfs_quota_us", "50000"),
    ({"cpu": {"quota": 50000, "period": 200000}}, "cpu", "cpu.cfs_period_us", "200000"),
    ({"cpu": {"quota": 50000, "burst": 1000}}, "cpu", "cpu.cfs_burst_us", "1000"),
    ({"cpu": {"idle": 1}}, "cpu", "cpu.idle", "1"),
    ({"cpu": {"realtimeRuntime": 950, "realtimePeriod": 1000}}, "cpu", "cpu.rt_runtime_us", "950"),
    ({"cpu": {"realtimePeriod": 1000}}, "cpu", "cpu.rt_period_us", "1000"),
    ({"cpu": {"cpus": "1-2", "mems": "0"}}, "cpuset", "cpuset.cpus", "1-2"),
    ({"cpu": {"mems": "0"}}, "cpuset", "cpuset.mems", "0"),
    ({"pids": {"limit": 20}}, "pids", "pids.max", "20"),
    ({"pids": {"limit": 0}}, "pids", "pids.max", "0"),
    ({"pids": {"limit": -1}}, "pids", "pids.max", "max"),
    ({"blockIO": {"weight": 300}}, "blkio", "blkio.bfq.weight", "300"),
    (
        {"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 200}]}},
        "blkio",
        "blkio.bfq.weight_device",
        "8:0 200",
    ),
    (
        {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}]}},
        "blkio",
        "blkio.throttle.read_bps_device",
        "8:0 600",
    ),
    (
        {"blockIO": {"throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 700}]}},
        "blkio",
        "blkio.throttle.write_bps_device",
        "8:0 700",
    ),
    (
        {"blockIO": {"throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 80}]}},
        "blkio",
        "blkio.throttle.read_iops_device",
        "8:0 80",
    ),
    (
        {"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 90}]}},
        "blkio",
        "blkio.throttle.write_iops_device",
        "8:0 90",
    ),
    (
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]},
        "hugetlb",
        "hugetlb.2MB.limit_in_bytes",
        "4194304",
    ),
    (
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]},
        "hugetlb",
        "hugetlb.2MB.rsvd.limit_in_bytes",
        "4194304",
    ),
    ({"network": {"classID": 1048577}}, "net_cls", "net_cls.classid", "1048577"),
    (
        {"network": {"priorities": [{"name": "eth0", "priority": 5}]}},
        "net_prio",
        "net_prio.ifpriomap",
        "eth0 5",
    ),
    (
        {"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}},
        "rdma",
        "rdma.max",
        "mlx5_1 hca_handle=3 hca_object=10000",
    ),
]


@pytest.mark.parametrize("resources,sub,name,want", V1_CASES)
def test_v1_resource_lands_in_its_file(v1, resources, sub, name, want):
    m = v1({"cgroupsPath": "/t", "resources": resources})
    assert m.create() == []
    assert read(os.path.join(m.dirs[sub], name)) == want


def test_v1_new_cpuset_inherits_cpus_and_mems(v1):
    m = v1({"cgroupsPath": "/a/b"})
    m.create()
    assert read(f"{v1.root}/cpuset/a/cpuset.cpus") == "0-3"
    assert read(f"{v1.root}/cpuset/a/b/cpuset.mems") == "0"


def test_v1_devices_deny_all_then_rules_in_order(v1):
    m = v1(
        {
            "cgroupsPath": "/t",
            "devices": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}],
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                    {"allow": False, "type": "b", "major": 8, "access": "m"},
                ]
            },
        }
    )
    m.create()
    seq = [(os.path.basename(p), d) for p, d in v1.fs.log if "/devices/" in p]
    assert seq[:4] == [
        ("devices.deny", "a"),
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 10:229 rw"),
        ("devices.deny", "b 8:* m"),
    ]
    allowed = [d for n, d in seq[4:]]
    assert allowed[:2] == ["c *:* m", "b *:* m"]
    assert "c 1:3 rwm" not in allowed  # /dev/null is in linux.devices: its default is dropped
    assert "c 136:* rwm" in allowed and "c 5:2 rwm" in allowed and "c 10:200 rwm" in allowed


def test_device_rules_for_bpf(v1):
    rules = v1({"resources": {"devices": [{"allow": True, "access": "rwm"}]}}).device_rules()
    assert rules[0] == {"allow": False, "type": "a", "major": -1, "minor": -1, "access": "rwm"}
    assert rules[1] == {"allow": True, "type": "a", "major": -1, "minor": -1, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules
    assert len(rules) == 2 + 11
    with pytest.raises(CgroupError, match="device access at 0"):
        devices.device_rules({"resources": {"devices": [{"allow": True}]}})
    with pytest.raises(CgroupError, match="invalid cgroup device type"):
        devices.device_rules(
            {"resources": {"devices": [{"allow": True, "type": "x", "access": "r"}]}}
        )


def test_v1_swap_written_before_a_lower_limit_when_raising(v1):
    # memory+swap must stay >= memory at every step: growing both writes memsw first.
    m = v1({"cgroupsPath": "/t", "resources": {"memory": {"limit": 100 << 20, "swap": 200 << 20}}})
    m.create()
    mem = [os.path.basename(p) for p, _ in v1.fs.log if "/memory/" in p]
    assert mem.index("memory.limit_in_bytes") < mem.index("memory.memsw.limit_in_bytes")
    v1.fs.log.clear()
    m.update({"memory": {"limit": 300 << 20, "swap": 400 << 20}})
    mem = [os.path.basename(p) for p, _ in v1.fs.log]
    assert mem == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_kernel_memory_is_a_warning(v1):
    m = v1(
        {"cgroupsPath": "/t", "resources": {"memory": {"kernel": 1 << 20, "kernelTCP": 1 << 20}}}
    )
    assert m.create() == [common.KERNEL_MEMORY_WARNING]


def test_v1_unified_is_an_error(v1):
    with pytest.raises(CgroupError, match="linux.resources.unified requires cgroup v2"):
        v1({"cgroupsPath": "/t", "resources": {"unified": {"memory.high": "1"}}})
    m = v1({"cgroupsPath": "/t"})
    m.create()
    with pytest.raises(CgroupError, match="requires cgroup v2"):
        m.update({"unified": {"memory.high": "1"}})


def test_v1_network_without_controller_warns(v1, tmp_path):
    mi = "\n".join(
        ln for ln in v1.mountinfo.splitlines() if not ln.endswith((",net_cls", ",net_prio"))
    )
    m = open_manager(
        {"cgroupsPath": "/t", "resources": {"network": {"classID": 1}}},
        "c",
        root=v1.root,
        mountinfo=mi,
        fs=v1.fs,
    )
    assert "net_cls" in m.create()[0]


def test_v1_hugetlb_without_controller_fails_and_leaves_nothing(v1):
    mi = "\n".join(ln for ln in v1.mountinfo.splitlines() if not ln.endswith(",hugetlb"))
    m = open_manager(
        {"cgroupsPath": "/t/u", "resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}},
        "c",
        root=v1.root,
        mountinfo=mi,
        fs=v1.fs,
    )
    with pytest.raises(CgroupError, match="cannot set hugetlb limit"):
        m.create()
    assert not os.path.exists(f"{v1.root}/memory/t")


def test_rejected_value_names_file_and_value_and_leaves_nothing(v1):
    v1.fs.fail["memory.limit_in_bytes"] = errno.EINVAL
    m = v1({"cgroupsPath": "/x/y", "resources": {"memory": {"limit": 12}}})
    with pytest.raises(CgroupError) as ei:
        m.create()
    path = f"{v1.root}/memory/x/y/memory.limit_in_bytes"
    assert str(ei.value) == f'failed to write "12": write {path}: invalid argument'
    assert (ei.value.path, ei.value.value, ei.value.errno) == (path, "12", errno.EINVAL)
    assert not any(os.path.exists(f"{v1.root}/{h}/x") for h in V1_KNOBS)
    assert m.created == []


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_a_failed_create_removes_sub_cgroups_made_meanwhile(v1, v2, mode):
    """v1 and v2 undo a failed create alike: what it made goes, with any sub-cgroup made
    inside it in the meantime (here: just before the rejected limit)."""
    opener = v1 if mode == "v1" else v2
    knob = "memory.limit_in_bytes" if mode == "v1" else "memory.max"
    write = opener.fs.write

    def make_sub_then_fail(path, data):
        if os.path.basename(path) == knob:
            opener.fs.mkdir(os.path.join(os.path.dirname(path), "sub"))
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        write(path, data)

    opener.fs.write = make_sub_then_fail
    m = opener({"cgroupsPath": "/x/y", "resources": {"memory": {"limit": 12}}})
    with pytest.raises(CgroupError, match="invalid argument"):
        m.create()
    top = f"{opener.root}/memory/x" if mode == "v1" else f"{opener.root}/x"
    assert not os.path.exists(top) and m.created == []


def test_missing_knob_is_an_error_naming_it(v1):
    m = v1(
        {"cgroupsPath": "/t", "resources": {"hugepageLimits": [{"pageSize": "64KB", "limit": 1}]}}
    )
    with pytest.raises(CgroupError, match="hugetlb.64KB.limit_in_bytes"):
        m.create()


def test_v1_cpu_shares_read_back(v1):
    class Clamp(FakeFS):
        def write(self, path, data):
            if path.endswith("cpu.shares"):
                data = str(max(2, int(data)))
            super().write(path, data)

    fs = Clamp(v1.fs.knobs_for)
    m = open_manager(
        {"cgroupsPath": "/t", "resources": {"cpu": {"shares": 1}}},
        "c",
        root=v1.root,
        mountinfo=v1.mountinfo,
        fs=fs,
    )
    with pytest.raises(CgroupError, match="minimum allowed cpu-shares is 2"):
        m.create()


def test_swappiness_range(v1):
    with pytest.raises(CgroupError, match="swappiness range is 0-100"):
        v1({"cgroupsPath": "/t", "resources": {"memory": {"swappiness": 101}}}).create()


def test_check_before_update(v1):
    m = v1({"cgroupsPath": "/t"})
    m.create()
    with pytest.raises(CgroupError, match="rejecting memory limit 4096 below current usage"):
        m.update({"memory": {"limit": 4096, "checkBeforeUpdate": True}})
    m.update({"memory": {"limit": 8192, "checkBeforeUpdate": True}})


# ------------------------------------------------------------------ v2 resources

V2_CASES = [
    ({"memory": {"limit": 67108864}}, "memory.max", "67108864"),
    ({"memory": {"limit": -1}}, "memory.max", "max"),
    ({"memory": {"limit": -1}}, "memory.swap.max", "max"),
    ({"memory": {"limit": 100, "swap": 300}}, "memory.swap.max", "200"),
    ({"memory": {"limit": 100, "swap": 100}}, "memory.swap.max", "0"),
    ({"memory": {"reservation": 50}}, "memory.low", "50"),
    ({"cpu": {"shares": 1024}}, "cpu.weight", "100"),
    ({"cpu": {"shares": 2}}, "cpu.weight", "1"),
    ({"cpu": {"quota": 50000, "period": 200000}}, "cpu.max", "50000 200000"),
    ({"cpu": {"quota": -1}}, "cpu.max", "max"),
    ({"cpu": {"period": 50000}}, "cpu.max", "max 50000"),
    ({"cpu": {"burst": 1000, "quota": 5000}}, "cpu.max.burst", "1000"),
    ({"cpu": {"idle": 1}}, "cpu.idle", "1"),
    ({"cpu": {"cpus": "0-1", "mems": "0"}}, "cpuset.cpus", "0-1"),
    ({"cpu": {"cpus": "0-1", "mems": "0"}}, "cpuset.mems", "0"),
    ({"pids": {"limit": 20}}, "pids.max", "20"),
    ({"pids": {"limit": 0}}, "pids.max", "0"),
    ({"pids": {"limit": -1}}, "pids.max", "max"),
    ({"blockIO": {"weight": 1000}}, "io.weight", "10000"),
    (
        {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}]}},
        "io.max",
        "8:0 rbps=600",
    ),
    (
        {"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 9}]}},
        "io.max",
        "8:0 wiops=9",
    ),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}, "hugetlb.2MB.max", "2097152"),
    (
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]},
        "hugetlb.2MB.rsvd.max",
        "2097152",
    ),
    ({"rdma": {"mlx4_0": {"hcaHandles": 2}}}, "rdma.max", "mlx4_0 hca_handle=2"),
    ({"unified": {"memory.low": "123456"}}, "memory.low", "123456"),
]


@pytest.mark.parametrize("resources,name,want", V2_CASES)
def test_v2_resource_lands_in_its_file(v2, resources, name, want):
    m = v2({"cgroupsPath": "/t", "resources": resources})
    m.create()
    assert read(os.path.join(m.dirs[""], name)) == want


def test_v2_unified_written_verbatim_line_by_line(v2):
    m = v2(
        {
            "cgroupsPath": "/t",
            "resources": {
                "memory": {"limit": 1000},
                "unified": {"memory.max": "2000", "io.max": "8:0 rbps=1\n8:16 wbps=2"},
            },
        }
    )
    m.create()
    assert read(m.dirs[""] + "/memory.max") == "2000"  # unified goes last, so it wins
    assert v2.fs.writes("io.max") == ["8:0 rbps=1", "8:16 wbps=2"]
    with pytest.raises(CgroupError, match="no slashes"):
        m.update({"unified": {"../cgroup.procs": "1"}})
    with pytest.raises(CgroupError, match='controller "nope" not available'):
        m.update({"unified": {"nope.max": "1"}})


def test_v2_enables_controllers_in_ancestors_only(v2):
    m = v2({"cgroupsPath": "/a/b/c"})
    m.create()
    want = "+cpuset +cpu +io +memory +hugetlb +pids +rdma"
    for level in (v2.root, f"{v2.root}/a", f"{v2.root}/a/b"):
        assert read(level + "/cgroup.subtree_control") == want
    assert read(f"{v2.root}/a/b/c/cgroup.subtree_control") == ""


def test_v2_period_update_keeps_quota(v2):
    m = v2({"cgroupsPath": "/t", "resources": {"cpu": {"quota": 20000, "period": 100000}}})
    m.create()
    m.update({"cpu": {"period": 50000}})
    assert read(m.dirs[""] + "/cpu.max") == "20000 50000"


def test_v2_ignored_settings_warn(v2):
    m = v2(
        {
            "cgroupsPath": "/t",
            "resources": {
                "memory": {"swappiness": 10, "kernel": 1},
                "network": {"classID": 1},
                "blockIO": {"leafWeight": 10},
            },
        }
    )
    w = m.create()
    assert common.KERNEL_MEMORY_WARNING in w
    assert any("swappiness" in x for x in w) and any("network" in x for x in w)
    assert any("leafWeight" in x for x in w)


def test_v2_realtime_is_an_error(v2):
    with pytest.raises(CgroupError, match="realtime"):
        v2({"cgroupsPath": "/t", "resources": {"cpu": {"realtimeRuntime": 1}}}).create()
    assert not os.path.exists(f"{v2.root}/t")


@pytest.mark.parametrize(
    "shares,weight",
    [
        (0, 0),
        (1, 1),
        (2, 1),
        (3, 2),
        (10, 4),
        (100, 17),
        (512, 59),
        (1024, 100),
        (2048, 174),
        (4096, 303),
        (262143, 10000),
        (262144, 10000),
        (300000, 10000),
    ],
)
def test_shares_to_weight(shares, weight):
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize("weight,io", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_to_io_weight(weight, io):
    assert blkio_to_io_weight(weight) == io


@pytest.mark.parametrize(
    "swap,limit,want",
    [
        (0, 0, 0),
        (-1, 0, -1),
        (-1, -1, -1),
        (0, -1, -1),
        (-1, 1000, -1),
        (1000, 1000, 0),
        (500, 200, 300),
        (500, -1, 500),
    ],
)
def test_swap_to_v2(swap, limit, want):
    assert swap_to_v2(swap, limit) == want


@pytest.mark.parametrize("swap,limit", [(300, 400), (300, 0), (-2, 0)])
def test_swap_to_v2_errors(swap, limit):
    with pytest.raises(CgroupError):
        swap_to_v2(swap, limit)


# ------------------------------------------------------------------ processes, freezer


def test_add_writes_every_hierarchy(v1):
    m = v1({"cgroupsPath": "/t"})
    m.create()
    m.add(4242)
    assert sorted(p for p, d in v1.fs.log if d == "4242") == sorted(
        os.path.join(d, "cgroup.procs") for d in m.dirs.values()
    )


def test_pids_is_recursive(v1):
    m = v1({"cgroupsPath": "/t"})
    m.create()
    d = m.dirs["devices"]
    with open(d + "/cgroup.procs", "w") as f:
        f.write("10\n11\n")
    v1.fs.mkdir(d + "/sub")
    with open(d + "/sub/cgroup.procs", "w") as f:
        f.write("12\n")
    assert sorted(m.pids()) == [10, 11, 12]


def test_v1_freeze_thaw(v1):
    m = v1({"cgroupsPath": "/t"})
    m.create()
    assert m.state() == "THAWED"
    with open(m.dirs["freezer"] + "/freezer.self_freezing", "w") as f:
        f.write("1\n")
    m.freeze()
    assert read(m.dirs["freezer"] + "/freezer.state") == "FROZEN"
    assert m.state() == "FROZEN"
    m.thaw()
    assert read(m.dirs["freezer"] + "/freezer.state") == "THAWED"


def test_v2_freeze_thaw_and_kill(v2):
    m = v2({"cgroupsPath": "/t"})
    m.create()
    m.freeze()
    assert m.state() == "FROZEN"
    m.thaw()
    assert m.state() == "THAWED"
    m.kill_all(9)
    assert v2.fs.writes("cgroup.kill") == ["1"]


def test_frozen_now_sees_a_frozen_ancestor_where_state_does_not(v1, v2):
    """state() answers for pause/resume (frozen by us); frozen_now() for a create about
    to put its init there, which a frozen parent would hold just the same."""
    m = v1({"cgroupsPath": "/t"})
    m.create()
    assert not m.frozen_now()
    for text in ("FREEZING\n", "FROZEN\n"):
        with open(m.dirs["freezer"] + "/freezer.state", "w") as f:
            f.write(text)  # self_freezing stays 0: the parent froze it
        assert m.frozen_now()
    assert m.state() == "THAWED"  # FROZEN, but not by itself
    m2 = v2({"cgroupsPath": "/t"})
    m2.create()
    assert not m2.frozen_now()
    with open(m2.dirs[""] + "/cgroup.events", "w") as f:
        f.write("populated 0\nfrozen 1\n")
    assert m2.frozen_now()
    m2.dirs.pop("")  # skipped: a rootless create that may not write the cgroup
    assert not m2.frozen_now()


def test_hybrid_sigkill_uses_cgroup_kill(v1):
    m = v1({"cgroupsPath": "/t"})
    m.create()
    m.kill_all(9)
    assert v1.fs.writes("cgroup.kill") == ["1"]
    # and freezes around signalling whatever the v1 hierarchies still list
    assert v1.fs.writes("freezer.state")[0] == "FROZEN"


# ------------------------------------------------------------------ cleanup and state


def test_destroy_removes_only_what_create_made(v1):
    for h in ("memory", "cpu"):
        v1.fs.mkdir(f"{v1.root}/{h}/pre")  # existed before: must stay
    m = v1({"cgroupsPath": "/pre/new/leaf"})
    m.create()
    assert f"{v1.root}/memory/pre" not in m.created
    assert f"{v1.root}/devices/pre" in m.created
    v1.fs.mkdir(m.dirs["memory"] + "/inner")  # made inside the container: goes too
    m.destroy()
    for h in ("memory", "cpu"):
        assert os.path.isdir(f"{v1.root}/{h}/pre")
        assert not os.path.exists(f"{v1.root}/{h}/pre/new")
    assert not os.path.exists(f"{v1.root}/devices/pre")
    m.destroy()  # idempotent


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_planned_paths_undo_a_create_that_died(v1, v2, mode):
    """What create writes down before any mkdir names exactly what create() then makes, so a
    manager reopened from it removes it all (a create SIGKILLed before its state.json)."""
    opener = v1 if mode == "v1" else v2
    if mode == "v1":
        opener.fs.mkdir(f"{opener.root}/memory/pre")  # existed before: not in the plan
    m = opener({"cgroupsPath": "/pre/new/leaf"})
    planned = json.loads(json.dumps(m.planned_paths()))
    m.create()
    assert planned["created"] == m.created
    from_state(planned, fs=opener.fs).destroy()
    for d in m.created:
        assert not os.path.exists(d), d
    if mode == "v1":
        assert os.path.isdir(f"{opener.root}/memory/pre")


def test_destroy_keeps_a_created_parent_shared_with_another(v1):
    a = v1({"cgroupsPath": "/shared/a"})
    a.create()
    b = v1({"cgroupsPath": "/shared/b"})
    b.create()
    a.destroy()
    assert os.path.isdir(f"{v1.root}/memory/shared/b")
    b.destroy()
    assert os.path.isdir(f"{v1.root}/memory/shared")  # b did not make it; a has gone


def test_destroy_reports_what_it_could_not_remove(v1):
    m = v1({"cgroupsPath": "/t"})
    m.create()

    def busy(path):
        raise OSError(errno.EBUSY, "busy", path)

    v1.fs.rmdir = busy
    with pytest.raises(CgroupError, match="failed to remove cgroup paths"):
        m.destroy()


def test_paths_round_trip_through_state(v1, v2):
    for opener in (v1, v2):
        m = opener({"cgroupsPath": "/rt/x", "resources": {"pids": {"limit": 5}}})
        m.create()
        again = from_state(json.loads(json.dumps(m.paths)), fs=opener.fs)
        assert type(again) is type(m)
        assert again.paths == m.paths and again.mode == m.mode
        again.update({"pids": {"limit": 7}})
        assert read(os.path.join(m.dirs["pids" if "pids" in m.dirs else ""], "pids.max")) == "7"
        again.destroy()
        assert not os.path.exists(os.path.join(opener.root, "memory" if opener is v1 else "", "rt"))
    with pytest.raises(CgroupError):
        from_state({})


# ------------------------------------------------------------------ reading


def test_v1_stats_shape(v1):
    m = v1({"cgroupsPath": "/t"})
    m.create()
    s = m.stats()
    assert set(s) == {
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    }
    assert s["cpu"]["usage"]["total"] == 3000
    assert s["cpu"]["usage"]["percpu"] == [1000, 2000]
    assert s["cpu"]["usage"]["percpu_kernel"] == [300, 500]
    assert s["cpu"]["usage"]["user"] == 2 * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert s["cpu"]["throttling"] == {"periods": 4, "throttledPeriods": 1, "throttledTime": 500}
    assert s["memory"]["usage"] == {
        "limit": 9223372036854771712,
        "usage": 4096,
        "max": 8192,
        "failcnt": 0,
    }
    assert s["memory"]["raw"] == {"cache": 10, "rss": 20} and s["memory"]["cache"] == 10
    assert s["pids"] == {"current": 2}
    assert s["cpuset"]["cpus"] == [0, 1, 2, 3]
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 10},
        {"major": 8, "op": "Write", "value": 20},
    ]
    assert m.oom_count() == 3


def test_v2_stats_shape(v2):
    m = v2({"cgroupsPath": "/t", "resources": {"memory": {"limit": 1 << 20}}})
    m.create()
    s = m.stats()
    assert s["cpu"]["usage"] == {"total": 5000, "kernel": 2000, "user": 3000}
    assert s["memory"]["usage"] == {"limit": 1 << 20, "usage": 4096, "max": 8192, "failcnt": 2}
    assert s["memory"]["swap"]["usage"] == 4096  # memory+swap, as v1 reports it
    assert s["memory"]["cache"] == 11
    assert s["pids"] == {"current": 1}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "op": "Read", "value": 100},
        {"major": 8, "op": "Write", "value": 200},
    ]
    assert m.oom_count() == 1


def test_parse_self_cgroup_and_lists():
    got = layout.parse_self_cgroup("12:cpu,cpuacct:/a\n1:name=systemd:/s\n0::/u\n")
    assert got == {"cpu": "/a", "cpuacct": "/a", "name=systemd": "/s", "": "/u"}
    from ocirun.cgroups.stats import parse_list

    assert parse_list("0-2,5\n") == [0, 1, 2, 5]
    assert layout.expand_slice("-.slice") == "/"
    with pytest.raises(CgroupError):
        layout.expand_slice("a--b.slice")
