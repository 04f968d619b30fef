"""linux.netDevices with real devices (runtime-spec 1.3 config-linux.md "Network Devices").

The host's real interfaces are never touched: each test makes a private network namespace
(`ip netns add`) with a veth pair in it, and runs ocirun inside that namespace (`nsenter
--net`, which, unlike `ip netns exec`, leaves the mounts alone), so the "host" side is the
test's namespace. This kernel has veth and bridge, no dummy or macvlan.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid

import pytest
from testenv import OCIRUN

VETH_ADDRS = ("10.77.0.1/24", "fd00:77::1/64")  # permanent, global: go along
HOST_SCOPED = "10.77.1.1/32"  # permanent but host scope: stays behind (and comes back)


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert not check or r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r


@pytest.fixture
def netns():
    """A private network namespace holding veth pair va <-> vb, both up; va has two
    permanent global addresses (IPv4, IPv6) and a host-scoped one."""
    name = f"ocirun-nd-{uuid.uuid4().hex[:10]}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        sh("ip", "-n", name, "addr", "add", VETH_ADDRS[0], "dev", "va")
        sh("ip", "-n", name, "addr", "add", VETH_ADDRS[1], "dev", "va", "nodad")
        sh("ip", "-n", name, "addr", "add", HOST_SCOPED, "dev", "va", "scope", "host")
        sh("ip", "-n", name, "link", "set", "va", "up")
        sh("ip", "-n", name, "link", "set", "vb", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def oci(rt, ns: str, *args: str) -> subprocess.CompletedProcess:
    """ocirun inside network namespace `ns`. Output through files: a created container
    keeps them open."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(
            ["nsenter", f"--net=/run/netns/{ns}", OCIRUN, "--root", rt.root, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            timeout=60,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())


def links(netns_args: list[str]) -> dict[str, dict]:
    """`ip -j addr` of a namespace, by name: {"up": bool, "addrs": {addr/len scope}}.
    IPv6 link-local addresses are left out: the kernel makes them itself."""
    out = json.loads(sh(*netns_args, "ip", "-j", "addr").stdout)
    return {
        link["ifname"]: {
            "up": "UP" in link["flags"],
            "addrs": {
                f"{a['local']}/{a['prefixlen']} {a['scope']}"
                for a in link.get("addr_info", [])
                if not (a["family"] == "inet6" and a["scope"] == "link")
            },
        }
        for link in out
    }


def host_side(ns: str) -> dict[str, dict]:
    return links(["nsenter", f"--net=/run/netns/{ns}"])


def inside(pid: int) -> dict[str, dict]:
    return links(["nsenter", f"--net=/proc/{pid}/ns/net"])


def wait_gone(ns: str, names: set[str], timeout: float = 10) -> None:
    """The kernel frees a dead namespace's devices from a workqueue: wait for it."""
    deadline = time.monotonic() + timeout
    while names & set(host_side(ns)):
        assert time.monotonic() < deadline, f"{names & set(host_side(ns))} still in {ns}"
        time.sleep(0.05)


def with_net_devices(devices: dict, **extra):
    def mutate(cfg):
        cfg["linux"]["netDevices"] = devices
        cfg["linux"].update(extra)

    return mutate


# --- moved in ---------------------------------------------------------------------------


def test_moved_in_renamed_with_its_addresses_and_up(rt, make_bundle, netns, tmp_path):
    seen = tmp_path / "prestart"
    # A prestart hook (runtime namespace) already sees the device in the container.
    hook = {
        "path": "/bin/sh",
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "args": [
            "sh",
            "-c",
            f"pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/'); "
            f"nsenter --net=/proc/$pid/ns/net ip -o link show ctr0 > {seen}",
        ],
    }

    def mutate(cfg):
        with_net_devices(
            {"va": {"name": "ctr0"}},
            # written by the init after the move: the device must be there
            sysctl={"net.ipv4.conf.ctr0.forwarding": "1"},
        )(cfg)
        cfg["hooks"] = {"prestart": [hook]}

    bundle = make_bundle(args=["sleep", "30"], mutate=mutate)
    before = host_side(netns)
    r = oci(rt, netns, "create", "--bundle", bundle, "c1")
    assert r.returncode == 0, r.stderr
    try:
        pid = rt.state("c1")["pid"]
        devs = inside(pid)
        assert set(devs) == {"lo", "ctr0"}, devs
        assert devs["ctr0"]["up"]
        assert devs["ctr0"]["addrs"] == {f"{a} global" for a in VETH_ADDRS}
        host = host_side(netns)
        assert "va" not in host and host["vb"] == before["vb"]
        assert "ctr0" in seen.read_text()
        fwd = sh(
            "nsenter", f"--net=/proc/{pid}/ns/net", "cat", "/proc/sys/net/ipv4/conf/ctr0/forwarding"
        ).stdout
        assert fwd.strip() == "1"
    finally:
        rt.ok("delete", "--force", "c1")
    # Never moved back: the veth end dies with the container's namespace, and its peer
    # with it.
    wait_gone(netns, {"va", "vb"})


def test_default_name_and_kernel_templates(rt, make_bundle, netns):
    bundle = make_bundle(
        args=["ip", "-o", "link"], mutate=with_net_devices({"va": {}, "vb": {"name": "n%d"}})
    )
    r = oci(rt, netns, "run", "--bundle", bundle, "c1")
    assert r.returncode == 0, r.stderr
    names = {line.split(":")[1].strip().split("@")[0] for line in r.stdout.splitlines()}
    assert names == {"lo", "va", "n0"}, r.stdout
    wait_gone(netns, {"va", "vb"})


def test_into_a_network_namespace_owned_by_the_containers_user_namespace(rt, make_bundle, netns):
    def mutate(cfg):
        with_net_devices({"va": {"name": "ctr0"}})(cfg)
        cfg["linux"]["namespaces"].append({"type": "user"})
        for key in ("uidMappings", "gidMappings"):
            cfg["linux"][key] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    r = oci(
        rt,
        netns,
        "run",
        "--bundle",
        make_bundle(args=["ip", "-o", "addr", "show", "ctr0"], mutate=mutate),
        "c1",
    )
    assert r.returncode == 0, r.stderr
    for a in VETH_ADDRS:
        assert f" {a} scope global" in r.stdout, r.stdout
    wait_gone(netns, {"va", "vb"})


def test_namespaces_made_by_unshare_and_an_init_forked_after(rt, make_bundle, netns):
    """A time namespace makes the child unshare its namespaces and fork the init: the
    devices go into the namespace of the clone's child, which the init shares."""

    def mutate(cfg):
        with_net_devices({"va": {"name": "ctr0"}})(cfg)
        cfg["linux"]["namespaces"].append({"type": "time"})

    r = oci(
        rt,
        netns,
        "run",
        "--bundle",
        make_bundle(args=["ip", "-o", "addr", "show", "ctr0"], mutate=mutate),
        "c1",
    )
    assert r.returncode == 0, r.stderr
    assert f" {VETH_ADDRS[0]} scope global" in r.stdout, r.stdout
    wait_gone(netns, {"va", "vb"})


def test_create_without_net_devices_does_not_import_pyroute2(rt, make_bundle):
    from test_hot_imports import imports_of

    names = imports_of(rt, "create", "--bundle", make_bundle(args=["true"]), "c1")
    rt.ok("delete", "--force", "c1")
    assert not {"pyroute2", "ocirun.netdevices", "ocirun.plan_netdevices"} & names


# --- refused before anything changes ------------------------------------------------------


@pytest.mark.parametrize(
    "devices,without,needles",
    [
        (
            {"va": {}, "nope": {}},
            None,
            ["/linux/netDevices/nope", "no network device 'nope' in the runtime's network"],
        ),
        (
            {"va": {"name": "lo"}},
            None,
            ["/linux/netDevices/va/name", "two network devices named 'lo'"],
        ),
        ({"va": {"name": "x"}, "vb": {"name": "x"}}, None, ["/linux/netDevices/vb/name"]),
        ({"va": {}}, "no network", ["/linux/netDevices", "needs a new network namespace"]),
        ({"va": {}, "lback": {}}, None, ["/linux/netDevices/lback", "is a loopback device"]),
        ({"lo": {}}, None, ["/linux/netDevices/lo", "a loopback device can't be moved"]),
    ],
)
def test_refused_in_one_line_with_nothing_changed(
    rt, make_bundle, netns, devices, without, needles
):
    if "lback" in devices:  # a loopback by another name: only the host check can tell
        sh("ip", "-n", netns, "link", "set", "lo", "name", "lback")

    def mutate(cfg):
        with_net_devices(devices)(cfg)
        if without:  # the container shares the runtime's network namespace
            cfg["linux"]["namespaces"] = [
                n for n in cfg["linux"]["namespaces"] if n["type"] != "network"
            ]

    bundle = make_bundle(args=["true"], mutate=mutate)
    before = host_side(netns)
    r = oci(rt, netns, "create", "--bundle", bundle, "c1")
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert host_side(netns) == before
    assert rt.cli("state", "c1").returncode != 0


# --- a later failure of create puts the devices back -------------------------------------


def _false_hook(kind: str):
    def mutate(cfg):
        cfg["hooks"] = {kind: [{"path": "/bin/false"}]}

    return mutate


@pytest.mark.parametrize(
    "extra,devices,needle",
    [
        # the runtime's hooks fail while the init waits
        (_false_hook("prestart"), {"va": {"name": "ctr0"}}, "prestart"),
        (_false_hook("createRuntime"), {"va": {"name": "ctr0"}}, "createRuntime"),
        # the init itself dies (its hook fails): the runtime holds the namespace, or the veth
        # would die with it
        (_false_hook("createContainer"), {"va": {"name": "ctr0"}}, "createContainer"),
        # the kernel refuses the second device (a bridge's namespace is immutable)
        (None, {"va": {"name": "ctr0"}, "vb": {}, "brnd": {}}, "brnd"),
    ],
)
def test_failure_after_the_move_leaves_the_host_as_before(
    rt, make_bundle, netns, extra, devices, needle
):
    sh("ip", "-n", netns, "link", "add", "brnd", "type", "bridge")
    sh("ip", "-n", netns, "addr", "add", "10.78.0.1/24", "dev", "vb")
    sh("ip", "-n", netns, "link", "set", "vb", "down")  # down stays down

    def mutate(cfg):
        with_net_devices(devices)(cfg)
        if extra:
            extra(cfg)

    bundle = make_bundle(args=["true"], mutate=mutate)
    before = host_side(netns)
    assert before["va"]["addrs"] == {f"{a} global" for a in VETH_ADDRS} | {f"{HOST_SCOPED} host"}
    r = oci(rt, netns, "create", "--bundle", bundle, "c1")
    assert r.returncode != 0, r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    assert host_side(netns) == before
    assert rt.cli("state", "c1").returncode != 0
