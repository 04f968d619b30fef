"""Namespaces of a real container: which ones are new, which are the host's, which are joined.

Each test runs the installed `ocirun` on a bundle made from bundles/busybox and compares what the
container prints (ns inodes, pids, interfaces, names, clocks, id maps) with the host's values
read in this test process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from clitools import call, ok
from testenv import ROOTFS

from ocirun.tables import NS_PROC_NAMES


def host_ns(name: str) -> str:
    return os.readlink(f"/proc/self/ns/{name}")


def drop_ns(cfg: dict, *types: str) -> None:
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] not in types]


def ns_lines(out: str) -> dict[str, str]:
    """Parse `name=<readlink>` lines printed by the container."""
    found = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[a-z_]+:\[\d+\]", value):
            found[key] = value
    return found


def print_ns_script(*names: str) -> str:
    return "; ".join(f"echo {n}=$(readlink /proc/self/ns/{n})" for n in names)


# --- new vs host namespaces -------------------------------------------------------------

# Namespaces the base config creates; mount is special (a rootfs needs one) and is below.
TOGGLED = ["pid", "network", "ipc", "uts", "cgroup"]


@pytest.mark.parametrize("ns_type", TOGGLED)
def test_configured_namespace_is_new(rt, make_bundle, ns_type):
    name = NS_PROC_NAMES[ns_type]
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", print_ns_script(name)]),
        f"ns-new-{ns_type}",
    ).stdout
    inside = ns_lines(out)[name]
    assert inside.startswith(f"{name}:[")
    assert inside != host_ns(name)


@pytest.mark.parametrize("ns_type", TOGGLED)
def test_unconfigured_namespace_is_the_hosts(rt, make_bundle, ns_type):
    name = NS_PROC_NAMES[ns_type]

    def mutate(cfg):
        drop_ns(cfg, ns_type)
        if ns_type == "uts":
            cfg.pop("hostname", None)  # a hostname needs a uts namespace of its own

    # The other namespaces stay new: check they still differ, so the comparison is not vacuous.
    others = [NS_PROC_NAMES[t] for t in TOGGLED if t != ns_type]
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", print_ns_script(name, *others)], mutate=mutate),
        f"ns-host-{ns_type}",
    ).stdout
    seen = ns_lines(out)
    assert seen[name] == host_ns(name)
    for other in others:
        assert seen[other] != host_ns(other), other


def test_cgroup_namespace_root_is_the_containers_cgroup(rt, make_bundle):
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["cat", "/proc/self/cgroup"]), "ns-cgroup-root"
    ).stdout
    lines = out.splitlines()
    assert lines
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        assert path == "/", line


def test_mount_namespace_is_new(rt, make_bundle):
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", print_ns_script("mnt")]), "ns-new-mnt"
    ).stdout
    assert ns_lines(out)["mnt"] != host_ns("mnt")


def _mounts_under(path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


@pytest.fixture
def host_ns_rootfs(tmp_path):
    """A private rootfs copy for containers without a mount namespace: their mounts are in
    the host's namespace, where other processes walking the shared rootfs would meet them."""
    dest = tmp_path / "rootfs"
    subprocess.run(["cp", "-ax", str(ROOTFS), str(dest)], check=True)
    yield dest
    left = _mounts_under(dest)
    for m in reversed(left):
        subprocess.run(["umount", "-l", m])
    assert not left, f"mounts left behind on the host: {left}"


def test_no_namespaces_at_all_shares_the_runtimes(rt, make_bundle, host_ns_rootfs):
    """As runc (and the runtime-tools program linux_ns_itype): a config with no namespaces
    runs in the runtime's; its mounts are made in the runtime's mount namespace (under the
    rootfs, which the init chroots into) and go when the container is deleted."""
    names = ["mnt", "pid", "net", "ipc", "uts", "cgroup"]

    def mutate(cfg):
        cfg["root"]["path"] = str(host_ns_rootfs)
        cfg["linux"]["namespaces"] = []
        cfg.pop("hostname", None)

    bundle = make_bundle(
        args=[
            "sh",
            "-c",
            print_ns_script(*names) + "; ls /proc/self/fd; "
            "readlink /proc/1/exe || echo pid-1-hidden; sleep 30",
        ],
        mutate=mutate,
    )
    assert _mounts_under(host_ns_rootfs) == []
    ok(call(rt, "create", "--bundle", bundle, "ns-none"))
    try:
        pid = rt.state("ns-none")["pid"]
        assert os.readlink(f"/proc/{pid}/root") == str(host_ns_rootfs)
        mounted = _mounts_under(host_ns_rootfs)
        assert str(host_ns_rootfs / "proc") in mounted, mounted
        assert str(host_ns_rootfs / "dev") in mounted, mounted
        for name in names:
            assert os.readlink(f"/proc/{pid}/ns/{name}") == host_ns(name), name
    finally:
        rt.ok("delete", "--force", "ns-none")
    assert _mounts_under(host_ns_rootfs) == []


def test_no_mount_namespace_run(rt, make_bundle, host_ns_rootfs):
    def mutate(cfg):
        cfg["root"]["path"] = str(host_ns_rootfs)
        drop_ns(cfg, "mount")

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", print_ns_script("mnt", "pid") + "; ls /"], mutate=mutate),
        "ns-no-mnt",
    ).stdout
    seen = ns_lines(out)
    assert seen["mnt"] == host_ns("mnt") and seen["pid"] != host_ns("pid")
    assert "bin" in out.split() and "work" not in out.split()  # the container's root
    assert _mounts_under(host_ns_rootfs) == []


def test_no_mount_namespace_failed_create_leaves_no_mount(rt, make_bundle, host_ns_rootfs):
    def mutate(cfg):
        cfg["root"]["path"] = str(host_ns_rootfs)
        drop_ns(cfg, "mount")
        # an existing destination: the shared rootfs must not change
        cfg["mounts"].append({"destination": "/tmp", "type": "nosuchfs", "source": "none"})

    r = call(rt, "create", "--bundle", make_bundle(args=["true"], mutate=mutate), "ns-no-mnt")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "nosuchfs" in r.stderr or "/tmp" in r.stderr, r.stderr
    assert _mounts_under(host_ns_rootfs) == []
    assert rt.cli("state", "ns-no-mnt").returncode != 0


def test_hostname_without_uts_namespace_is_refused(rt, make_bundle):
    r = rt.cli(
        "run",
        "--bundle",
        make_bundle(args=["true"], mutate=lambda c: drop_ns(c, "uts")),
        "ns-no-uts",
    )
    assert r.returncode != 0
    assert "/hostname" in r.stderr and "uts" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert rt.cli("state", "ns-no-uts").returncode != 0


def test_no_user_or_time_namespace_by_default(rt, make_bundle):
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", print_ns_script("user", "time")]),
        "ns-default-user",
    ).stdout
    seen = ns_lines(out)
    assert seen["user"] == host_ns("user")
    assert seen["time"] == host_ns("time")


# --- pid --------------------------------------------------------------------------------


def test_pid_namespace_init_is_pid_1(rt, make_bundle):
    script = "echo pid=$$; sleep 5 & echo bg=$!; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; ps -o pid,comm; kill $!"  # noqa: E501
    out = rt.ok("run", "--bundle", make_bundle(args=["sh", "-c", script]), "pid-one").stdout
    lines = out.splitlines()
    assert lines[0] == "pid=1"
    bg = int(lines[1].removeprefix("bg="))
    # /proc lists only the container's processes: sh (1), the background sleep, and the
    # ls/grep/sort/tr pipeline (all small numbers in a fresh pid namespace).
    pids = [int(p) for p in lines[2].split()]
    assert 1 in pids and bg in pids
    assert max(pids) < 20, pids
    assert len(pids) < 10, pids
    ps_pids = [int(line.split()[0]) for line in lines[4:] if line.split()]
    assert 1 in ps_pids and bg in ps_pids
    assert max(ps_pids) < 20
    # The host has many more processes, with larger pids.
    host_pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    assert len(host_pids) > len(pids)


def test_without_pid_namespace_sees_host_pids(rt, make_bundle):
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=["sh", "-c", "echo $$; test -d /proc/1 && echo has1"],
            mutate=lambda c: drop_ns(c, "pid"),
        ),
        "pid-host",
    ).stdout
    lines = out.splitlines()
    pid = int(lines[0])
    assert pid != 1
    assert lines[1] == "has1"  # the host's init is visible


# --- network ----------------------------------------------------------------------------


def test_network_namespace_has_only_lo_up(rt, make_bundle):
    script = "ls /sys/class/net; echo flags=$(cat /sys/class/net/lo/flags); ip link show"
    out = rt.ok("run", "--bundle", make_bundle(args=["sh", "-c", script]), "net-lo").stdout
    lines = out.splitlines()
    flags_line = next(i for i, line in enumerate(lines) if line.startswith("flags="))
    assert lines[:flags_line] == ["lo"]
    flags = int(lines[flags_line].removeprefix("flags="), 16)
    assert flags & 0x1, "IFF_UP not set on lo"
    assert flags & 0x8, "lo is not IFF_LOOPBACK"
    links = [line for line in lines[flags_line + 1 :] if re.match(r"^\d+: ", line)]
    assert len(links) == 1
    assert re.match(r"^1: lo: <[^>]*\bUP\b", links[0]), links[0]


def test_without_network_namespace_sees_host_interfaces(rt, make_bundle):
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "ls /sys/class/net"], mutate=lambda c: drop_ns(c, "network")),
        "net-host",
    ).stdout
    assert sorted(out.split()) == sorted(os.listdir("/sys/class/net"))


# --- uts --------------------------------------------------------------------------------


def test_hostname_and_domainname(rt, make_bundle):
    host_before = (os.uname().nodename, open("/proc/sys/kernel/domainname").read().strip())

    def mutate(cfg):
        cfg["hostname"] = "ocirun-ns-test"
        cfg["domainname"] = "ns.example.test"

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"], mutate=mutate),
        "uts-names",
    ).stdout
    assert out.splitlines() == ["ocirun-ns-test", "ns.example.test"]
    host_after = (os.uname().nodename, open("/proc/sys/kernel/domainname").read().strip())
    assert host_after == host_before
    assert host_before[0] != "ocirun-ns-test"


def test_without_uts_namespace_hostname_is_the_hosts(rt, make_bundle):
    def mutate(cfg):
        drop_ns(cfg, "uts")
        cfg.pop("hostname", None)

    out = rt.ok("run", "--bundle", make_bundle(args=["hostname"], mutate=mutate), "uts-host").stdout
    assert out.strip() == os.uname().nodename


# --- time -------------------------------------------------------------------------------

MONO_OFFSET = 86400 * 1000
BOOT_OFFSET = 86400 * 2000


def test_time_namespace_offsets(rt, make_bundle):
    def mutate(cfg):
        cfg["linux"]["namespaces"].append({"type": "time"})
        cfg["linux"]["timeOffsets"] = {
            "monotonic": {"secs": MONO_OFFSET, "nanosecs": 0},
            "boottime": {"secs": BOOT_OFFSET, "nanosecs": 0},
        }

    script = "cat /proc/uptime; cat /proc/self/timens_offsets; echo time=$(readlink /proc/self/ns/time); echo pid=$$"  # noqa: E501
    bundle = make_bundle(args=["sh", "-c", script], mutate=mutate)
    before = float(open("/proc/uptime").read().split()[0])
    out = rt.ok("run", "--bundle", bundle, "time-offsets").stdout
    after = float(open("/proc/uptime").read().split()[0])
    lines = out.splitlines()
    uptime = float(lines[0].split()[0])
    # /proc/uptime follows CLOCK_BOOTTIME: the host's, shifted by the boottime offset.
    assert before - 1 <= uptime - BOOT_OFFSET <= after + 1, (before, uptime, after)
    offsets = {f[0]: (int(f[1]), int(f[2])) for f in (line.split() for line in lines[1:3])}
    assert offsets == {"monotonic": (MONO_OFFSET, 0), "boottime": (BOOT_OFFSET, 0)}
    ns = ns_lines(out)
    assert ns["time"] != host_ns("time")
    assert "pid=1" in lines  # the extra fork still makes the process the pid namespace's init


# --- user -------------------------------------------------------------------------------


def userns(cfg: dict) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    # The base config works unchanged here: the network and cgroup namespaces are created
    # together with (so owned by) the user namespace, so sysfs and the cgroup mounts are
    # allowed; devices are bind-mounted from the host instead of mknod.


@pytest.fixture
def userns_dir():
    """A host dir that host uid 100000 can reach (pytest's tmp dirs are 0700 root), holding a
    private rootfs copy (we create a mount point in it) and a world-writable data dir."""
    d = tempfile.mkdtemp(prefix="ocirun-userns-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        subprocess.run(["cp", "-a", str(ROOTFS), os.path.join(d, "rootfs")], check=True)
        os.mkdir(os.path.join(d, "data"))
        os.chmod(os.path.join(d, "data"), 0o777)
        # Container root (host uid 100000) may not create dirs in the root-owned rootfs:
        # the mount point must exist already.
        os.mkdir(os.path.join(d, "rootfs", "data"))
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_user_namespace(rt, make_bundle, userns_dir):
    data = os.path.join(userns_dir, "data")

    def mutate(cfg):
        userns(cfg)
        cfg["root"]["path"] = os.path.join(userns_dir, "rootfs")
        cfg["mounts"].append(
            {"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}
        )

    script = (
        "id -u; id -g; cat /proc/self/uid_map; cat /proc/self/gid_map; "
        "echo user=$(readlink /proc/self/ns/user); "
        "echo hi > /dev/null && echo devnull-ok; "
        "stat -c '%t:%T %F' /dev/null; "
        "grep -c ' /dev/null ' /proc/self/mountinfo; "
        "touch /data/made-inside && echo touch-ok"
    )
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "userns"
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "0" and lines[1] == "0"
    assert lines[2].split() == ["0", "100000", "65536"]
    assert lines[3].split() == ["0", "100000", "65536"]
    assert ns_lines(out)["user"] != host_ns("user")
    assert lines[5] == "devnull-ok"
    assert lines[6] == "1:3 character special file"
    assert lines[7] == "1", "/dev/null should be a bind mount of the host's node in a userns"
    assert lines[8] == "touch-ok"
    # Root in the container is host uid/gid 100000.
    st = os.stat(os.path.join(data, "made-inside"))
    assert (st.st_uid, st.st_gid) == (100000, 100000)


# --- joining namespaces by path ---------------------------------------------------------


def start_sleeper(rt, make_bundle, cid: str) -> int:
    # Redirect the init's stdio: `run --detach` must not hold our capture pipes open.
    rt.ok(
        "run",
        "--detach",
        "--bundle",
        make_bundle(args=["sh", "-c", "exec sleep 30 </dev/null >/dev/null 2>&1"]),
        cid,
    )
    st = rt.state(cid)
    assert st["status"] == "running"
    return st["pid"]


def test_join_network_and_ipc_namespaces(rt, make_bundle):
    pid_a = start_sleeper(rt, make_bundle, "join-a")
    try:
        a_net = os.readlink(f"/proc/{pid_a}/ns/net")
        a_ipc = os.readlink(f"/proc/{pid_a}/ns/ipc")
        assert a_net != host_ns("net") and a_ipc != host_ns("ipc")

        def mutate(cfg):
            drop_ns(cfg, "network", "ipc")
            cfg["linux"]["namespaces"] += [
                {"type": "network", "path": f"/proc/{pid_a}/ns/net"},
                {"type": "ipc", "path": f"/proc/{pid_a}/ns/ipc"},
            ]

        out = rt.ok(
            "run",
            "--bundle",
            make_bundle(args=["sh", "-c", print_ns_script("net", "ipc", "uts")], mutate=mutate),
            "join-b",
        ).stdout
        seen = ns_lines(out)
        assert seen["net"] == a_net
        assert seen["ipc"] == a_ipc
        # Not joined: still a new one, neither A's nor the host's.
        assert seen["uts"] not in (os.readlink(f"/proc/{pid_a}/ns/uts"), host_ns("uts"))
    finally:
        rt.ok("delete", "--force", "join-a")
    assert rt.cli("state", "join-a").returncode != 0


def test_join_pid_namespace(rt, make_bundle):
    pid_a = start_sleeper(rt, make_bundle, "joinpid-a")
    try:
        a_pidns = os.readlink(f"/proc/{pid_a}/ns/pid")

        def mutate(cfg):
            drop_ns(cfg, "pid")
            cfg["linux"]["namespaces"].append({"type": "pid", "path": f"/proc/{pid_a}/ns/pid"})

        script = "echo pid=$$; echo pidns=$(readlink /proc/self/ns/pid); ps -o pid,args"
        out = rt.ok(
            "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "joinpid-b"
        ).stdout
        lines = out.splitlines()
        assert ns_lines(out)["pidns"] == a_pidns
        own = int(lines[0].removeprefix("pid="))
        assert own != 1
        procs = {
            int(line.split(None, 1)[0]): line.split(None, 1)[1]
            for line in lines[2:]
            if line.strip() and line.split()[0].isdigit()
        }
        assert procs.get(1) == "sleep 30", procs  # A's init, seen from B
        assert own in procs
    finally:
        rt.ok("delete", "--force", "joinpid-a")


def test_join_mount_namespace_sets_up_the_rootfs_in_it(rt, make_bundle):
    """As runc (runtime-tools' linux_ns_path): a mount namespace joined by path gets the
    container's mounts and root, like a new one."""
    holder = subprocess.Popen(
        ["unshare", "--mount", "--fork", "sleep", "60"], start_new_session=True
    )
    try:
        path = None
        for _ in range(100):  # the forked sleep is unshare's child, in the new namespace
            for child in Path(f"/proc/{holder.pid}/task/{holder.pid}/children").read_text().split():
                if os.readlink(f"/proc/{child}/ns/mnt") != host_ns("mnt"):
                    path = f"/proc/{child}/ns/mnt"
            if path:
                break
            time.sleep(0.05)
        assert path, "unshare never made its namespace"
        target = os.readlink(path)

        def mutate(cfg):
            drop_ns(cfg, "mount")
            cfg["linux"]["namespaces"].append({"type": "mount", "path": path})

        out = rt.ok(
            "run",
            "--bundle",
            make_bundle(
                args=["sh", "-c", print_ns_script("mnt") + "; cat /etc/hostname; ls /"],
                mutate=mutate,
            ),
            "joinmnt",
        ).stdout
        assert ns_lines(out)["mnt"] == target
        assert (ROOTFS / "etc" / "hostname").read_text().strip() in out.splitlines()
        assert "bin" in out.split() and "work" not in out.split()
    finally:
        os.killpg(holder.pid, 9)
        holder.wait()


def test_join_missing_namespace_path(rt, make_bundle, tmp_path):
    missing = str(tmp_path / "no-such-process" / "ns" / "net")

    def mutate(cfg):
        drop_ns(cfg, "network")
        cfg["linux"]["namespaces"].append({"type": "network", "path": missing})

    r = rt.cli("run", "--bundle", make_bundle(args=["true"], mutate=mutate), "join-missing")
    assert r.returncode != 0
    assert missing in r.stderr, r.stderr
    assert "No such file or directory" in r.stderr
    assert "Traceback" not in r.stderr
    assert rt.cli("state", "join-missing").returncode != 0
    assert not os.path.exists(os.path.join(rt.root, "join-missing"))


@pytest.mark.parametrize("path", ["/proc/self/ns/ipc", "/etc/hostname"])
def test_join_path_that_is_not_a_network_namespace(rt, make_bundle, path):
    # An ipc namespace file, or no namespace file at all: setns(CLONE_NEWNET) refuses it.
    def mutate(cfg):
        drop_ns(cfg, "network")
        cfg["linux"]["namespaces"].append({"type": "network", "path": path})

    cid = "join-wrong-" + path.strip("/").replace("/", "-")
    r = rt.cli("run", "--bundle", make_bundle(args=["true"], mutate=mutate), cid)
    assert r.returncode != 0
    assert "network" in r.stderr or path in r.stderr, r.stderr
    assert "Invalid argument" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert rt.cli("state", cid).returncode != 0
