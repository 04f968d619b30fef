"""ocirun/rootless.py's decisions, without a user: the state root (runc's rule), which
mappings newuidmap would take, what /etc/subuid grants, and rootless cgroup choices."""

from __future__ import annotations

import pytest

from ocirun import rootless
from ocirun.cgroups.rootless import asks_limits


@pytest.fixture
def as_uid(monkeypatch):
    def set_(uid: int, in_userns: bool = False, **env):
        monkeypatch.setattr(rootless.os, "geteuid", lambda: uid)
        monkeypatch.setattr(rootless, "_in_userns", in_userns)
        for k in ("XDG_RUNTIME_DIR", "USER"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)

    return set_


@pytest.mark.parametrize(
    "uid,userns,env,want",
    [
        (1000, False, {"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/ocirun"),
        (1000, False, {"XDG_RUNTIME_DIR": "/run/user/1000/"}, "/run/user/1000/ocirun"),
        (1000, False, {}, "/run/ocirun"),  # runc too: /run/runc, which the user can't write
        (0, False, {"XDG_RUNTIME_DIR": "/run/user/0"}, "/run/ocirun"),
        (0, True, {"XDG_RUNTIME_DIR": "/run/user/1000", "USER": "me"}, "/run/user/1000/ocirun"),
        (0, True, {"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/ocirun"),
        (0, True, {"XDG_RUNTIME_DIR": "/run/user/0", "USER": "root"}, "/run/ocirun"),
    ],
)
def test_default_root_is_runcs_rule(as_uid, uid, userns, env, want):
    as_uid(uid, userns, **env)
    assert rootless.default_root() == want


@pytest.mark.parametrize(
    "flag,uid,userns,systemd,want",
    [
        ("true", 0, False, False, True),
        ("false", 1000, False, False, False),
        ("TRUE", 0, False, False, True),
        ("0", 1000, False, False, False),
        (None, 1000, False, False, True),
        ("auto", 0, False, False, False),
        ("auto", 0, True, False, True),
        ("", 0, True, True, False),
    ],
)
def test_rootless_cgroups(as_uid, flag, uid, userns, systemd, want):
    as_uid(uid, userns)
    assert rootless.rootless_cgroups(flag, systemd) is want


def test_subid_ranges_by_name_or_uid(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("other:100000:65536\nme:200000:65536\n1000:300000:10\nbad line\nme:x:1\n")
    assert rootless.subid_ranges(str(f), "me", 1000) == [(200000, 65536), (300000, 10)]
    assert rootless.subid_ranges(str(tmp_path / "none"), "me", 1000) == []


@pytest.mark.parametrize(
    "m,ok",
    [
        ({"hostID": 1000, "size": 1}, True),  # the caller's own id
        ({"hostID": 1000, "size": 2}, False),
        ({"hostID": 200000, "size": 65536}, True),
        ({"hostID": 200001, "size": 65536}, False),  # past the end of the range
        ({"hostID": 265535, "size": 1}, True),
        ({"hostID": 199999, "size": 2}, False),
        ({"hostID": 300000, "size": 10}, True),
    ],
)
def test_granted_as_newuidmap_decides(m, ok):
    assert rootless._granted(m, 1000, [(200000, 65536), (300000, 10)]) is ok


def test_root_writes_maps_directly(as_uid):
    as_uid(0)  # no helper, no setgroups change, nothing checked
    problems: list = []
    maps = rootless.plan_idmaps(
        {"uidMappings": [{"containerID": 0, "hostID": 5, "size": 9}]}, problems
    )
    assert (maps.uid_tool, maps.gid_tool, maps.deny_setgroups, problems) == ("", "", False, [])


@pytest.mark.parametrize(
    "res,want",
    [
        ({}, False),
        (None, False),
        ({"devices": [{"allow": False, "access": "rwm"}]}, False),
        ({"memory": {}}, False),
        ({"cpu": {"shares": None}}, False),
        ({"memory": {"limit": 1}}, True),
        ({"pids": {"limit": 0}}, True),
        ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, True),
    ],
)
def test_asks_limits(res, want):
    assert asks_limits(res) is want


def test_can_join_needs_the_common_ancestor_writable(monkeypatch):
    """cgroup2's rule: the target's cgroup.procs and that of the nearest cgroup holding
    the caller too must be writable; v1 asks the target only."""
    from ocirun.cgroups import rootless as rcg

    writable: set = set()
    asked: list = []

    def access(path, mode, effective_ids=False):
        asked.append(path)
        return path in writable

    monkeypatch.setattr(rcg.os, "access", access)
    paths = {"dirs": {"": "/cg/a/b/target"}, "roots": {"": "/cg"}}
    writable.update({"/cg/a/b/target/cgroup.procs", "/cg/a/cgroup.procs"})
    assert rcg.can_join(paths, "0::/a/mine\n")
    assert not rcg.can_join(paths, "0::/elsewhere\n")  # the root's is not writable
    assert asked[-1] == "/cg/cgroup.procs"
    assert rcg.can_join(paths, "0::/a/b/target/sub\n")  # below the target: it is the common one
    v1 = {"dirs": {"memory": "/cg/memory/x"}, "roots": {"memory": "/cg/memory"}}
    writable.add("/cg/memory/x/cgroup.procs")
    assert rcg.can_join(v1, "4:memory:/elsewhere\n")


def test_user_systemd_bus_and_slice(monkeypatch):
    from ocirun.cgroups import CgroupError
    from ocirun.cgroups.systemd import user_bus_addresses
    from ocirun.cgroups.units import parse_cgroups_path

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/x/bus")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7/")
    assert user_bus_addresses() == ["unix:path=/x/bus"]
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    assert user_bus_addresses() == ["unix:path=/run/user/7/bus"]
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    with pytest.raises(CgroupError, match="systemd user manager"):
        user_bus_addresses()
    assert parse_cgroups_path("", "c", "user.slice") == ("user.slice", "runc", "c")
    assert parse_cgroups_path(":p:n", "c", "user.slice") == ("user.slice", "p", "n")
    assert parse_cgroups_path("", "c") == ("system.slice", "runc", "c")
