"""linux.netDevices, the planner's part (no root): which devices move under which names, and
the config-level refusals, each naming its JSON path. The moving itself is tested with real
devices in tests/integration/test_netdevices.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ocirun.errors import ConfigError
from ocirun.plan import HostFacts, build
from ocirun.plan_netdevices import NetDevice, name_problem, plan_devices


def config(net_devices: dict, namespaces=("pid", "network", "mount")) -> dict:
    return {
        "ociVersion": "1.3.0",
        "process": {"args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "linux": {
            "namespaces": [ns if isinstance(ns, dict) else {"type": ns} for ns in namespaces],
            "netDevices": net_devices,
        },
    }


def plan_of(cfg: dict):
    return build(cfg, "/bundle", None, HostFacts(is_dir=lambda p: True))


def problems_of(cfg: dict) -> list[str]:
    with pytest.raises(ConfigError) as e:
        plan_of(cfg)
    return e.value.problems


def test_devices_in_config_order_renamed_or_keeping_their_name():
    p = plan_of(
        config(
            {
                "veth1": {"name": "eth0"},
                "veth2": {},
                "veth3": {"name": ""},
                "veth4": {"name": "net%d"},
            }
        )
    )
    assert p.ns.net_devices == (
        NetDevice("veth1", "eth0"),
        NetDevice("veth2", "veth2"),
        NetDevice("veth3", "veth3"),
        NetDevice("veth4", "net%d"),
    )
    assert p.ns.netdev_sync is True
    assert [d.template for d in p.ns.net_devices] == [False, False, False, True]


def test_without_net_devices_the_init_does_not_stop_for_them():
    for devices in (None, {}):
        cfg = config({})
        if devices is None:
            del cfg["linux"]["netDevices"]
        p = plan_of(cfg)
        assert p.ns.net_devices == () and p.ns.netdev_sync is False


@pytest.mark.parametrize(
    "namespaces,why",
    [
        (("pid", "mount"), "shares the runtime's"),
        (("pid", "mount", {"type": "network", "path": "/run/netns/x"}), "joins an existing one"),
    ],
)
def test_a_new_network_namespace_is_required(namespaces, why):
    problems = problems_of(config({"eth1": {}}, namespaces=namespaces))
    assert len(problems) == 1
    assert (
        "/linux/netDevices: moving network devices needs a new network namespace" in problems[0]
        and why in problems[0]
    )


@pytest.mark.parametrize(
    "devices,path,words",
    [
        ({"eth1": {"name": "lo"}}, "/linux/netDevices/eth1/name", "two network devices named 'lo'"),
        (
            {"eth1": {"name": "x"}, "eth2": {"name": "x"}},
            "/linux/netDevices/eth2/name",
            "the other is /linux/netDevices/eth1",
        ),
        ({"x": {}, "eth2": {"name": "x"}}, "/linux/netDevices/eth2/name", "named 'x'"),
        ({"eth1": {"name": "x"}, "x": {}}, "/linux/netDevices/x:", "named 'x'"),
        ({"lo": {}}, "/linux/netDevices/lo", "loopback"),
    ],
)
def test_collisions_inside_the_container_are_refused(devices, path, words):
    problems = problems_of(config(devices))
    assert len(problems) == 1, problems
    assert path in problems[0] and words in problems[0], problems[0]


def test_templates_may_share_a_name_the_kernel_numbers_them():
    p = plan_of(config({"a": {"name": "eth%d"}, "b": {"name": "eth%d"}, "c": {"name": "lo%d"}}))
    assert [d.name for d in p.ns.net_devices] == ["eth%d", "eth%d", "lo%d"]


@pytest.mark.parametrize(
    "devices,path",
    [
        ({"a" * 16: {}}, "/linux/netDevices/" + "a" * 16),
        ({"eth1": {"name": "b" * 16}}, "/linux/netDevices/eth1/name"),
        ({"eth1": {"name": "a/b"}}, "/linux/netDevices/eth1/name"),
        ({"eth1": {"name": "a b"}}, "/linux/netDevices/eth1/name"),
        ({"eth1": {"name": "a:1"}}, "/linux/netDevices/eth1/name"),
        ({"eth1": {"name": ".."}}, "/linux/netDevices/eth1/name"),
        ({"eth1": {"name": "eth%s"}}, "/linux/netDevices/eth1/name"),
        ({"eth1": {"name": "e%d%d"}}, "/linux/netDevices/eth1/name"),
        ({"eth%d": {}}, "/linux/netDevices/eth%d"),
        ({"a/b": {}}, "/linux/netDevices/a~1b"),
        ({"": {}}, "/linux/netDevices/"),
    ],
)
def test_invalid_names_are_refused(devices, path):
    problems = problems_of(config(devices))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"config.json: {path}: "), problems[0]


def test_every_problem_is_reported_at_once():
    problems = problems_of(
        config({"eth1": {"name": "lo"}, "a b": {}, "eth2": {}}, namespaces=("pid", "mount"))
    )
    assert len(problems) == 3, problems


def test_name_rules():
    assert name_problem("eth0", template_ok=False) is None
    assert name_problem("a" * 15, template_ok=False) is None
    assert name_problem("a" * 16, template_ok=False)
    assert name_problem("é" * 8, template_ok=False)  # 16 bytes: the kernel counts bytes
    assert name_problem("eth%d", template_ok=True) is None
    assert name_problem("eth%d", template_ok=False)
    assert name_problem("x\t", template_ok=False)


def test_plan_devices_alone():
    problems: list[str] = []
    devices = plan_devices({"eth1": {"name": "c0"}}, {"network"}, set(), problems)
    assert devices == [NetDevice("eth1", "c0")] and problems == []


def test_planning_net_devices_does_not_import_pyroute2():
    """pyroute2 (~100 ms) is for the moving; the planner needs none of it."""
    code = (
        "import sys; from ocirun.plan import HostFacts, build; "
        "build({'process': {'args': ['sh']}, 'root': {'path': 'r'}, 'linux': "
        "{'namespaces': [{'type': 'network'}, {'type': 'mount'}], "
        "'netDevices': {'eth1': {}}}}, '/b', None, HostFacts(is_dir=lambda p: True)); "
        "print('pyroute2' in sys.modules, 'ocirun.netdevices' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
