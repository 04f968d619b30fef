"""JSON null in configs read as runc's Go decoder reads it (ocirun/gonull.py): a null
member of a struct is the member absent, a null map element is its zero value, a null
array element is refused by validation, naming its path. The live comparison with runc is
tests/integration/test_null_configs.py."""

from __future__ import annotations

import copy
import json
import sys

import pytest

from ocirun import defaults, gonull, spec
from ocirun.errors import ConfigError


@pytest.fixture
def config() -> dict:
    return defaults.default_config()


# (where, value) pairs put as null members into the default config; each must read as the
# member being absent.
STRUCT_MEMBERS = [
    ("process", "env"),
    ("process", "rlimits"),
    ("process", "user", "additionalGids"),
    ("process", "capabilities", "ambient"),
    ("process", "oomScoreAdj"),
    ("root", "readonly"),
    ("linux", "uidMappings"),
    ("linux", "maskedPaths"),
    ("linux", "sysctl"),
    ("linux", "resources", "devices"),
    ("linux", "seccomp"),
    ("annotations",),
    ("hooks",),
    ("hostname",),
]


def _at(c: dict, path: tuple):
    for k in path[:-1]:
        c = c.setdefault(k, {}) if isinstance(c, dict) else c[k]
    return c


@pytest.mark.parametrize("path", STRUCT_MEMBERS, ids=".".join)
def test_null_member_is_absent(config, path):
    want = copy.deepcopy(config)
    _at(want, path).pop(path[-1], None)
    _at(config, path)[path[-1]] = None
    assert gonull.normalize(config) is True
    assert config == want
    assert spec.validate(config) == []


def test_nested_members_in_arrays_of_structs(config):
    config["mounts"][0]["options"] = None
    config["hooks"] = {"prestart": None, "poststop": [{"path": "/bin/true", "timeout": None}]}
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": None,
        "syscalls": [
            {
                "names": ["mkdir"],
                "action": "SCMP_ACT_ERRNO",
                "args": None,
                "errnoRet": None,
            },
            {
                "names": ["chmod"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ", "valueTwo": None}],
            },
        ],
    }
    assert gonull.normalize(config)
    assert "options" not in config["mounts"][0]
    assert config["hooks"] == {"poststop": [{"path": "/bin/true"}]}
    seccomp = config["linux"]["seccomp"]
    assert "architectures" not in seccomp
    assert seccomp["syscalls"][0] == {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
    assert seccomp["syscalls"][1]["args"] == [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]
    assert spec.validate(config) == []


def test_map_elements_get_their_zero_value(config):
    """Go keeps a map's key with the element's zero value (runc: annotation "", sysctl "")."""
    config["annotations"] = {"a": None, "b": "x"}
    linux = config["linux"]
    linux["sysctl"] = {"net.ipv4.ip_forward": None}
    linux["resources"]["unified"] = {"memory.high": None}
    linux["resources"]["rdma"] = {"mlx": None, "hfi": {"hcaHandles": 2, "hcaObjects": None}}
    linux["netDevices"] = {"eth0": None, "eth1": {"name": None}}
    linux["timeOffsets"] = {"monotonic": None}
    assert gonull.normalize(config)
    assert config["annotations"] == {"a": "", "b": "x"}
    assert linux["sysctl"] == {"net.ipv4.ip_forward": ""}
    assert linux["resources"]["unified"] == {"memory.high": ""}
    assert linux["resources"]["rdma"] == {"mlx": {}, "hfi": {"hcaHandles": 2}}
    assert linux["netDevices"] == {"eth0": {}, "eth1": {}}
    assert linux["timeOffsets"] == {"monotonic": {}}
    linux["resources"]["rdma"]["mlx"]["hcaHandles"] = 1  # each zero value is its own object
    assert linux["netDevices"]["eth0"] == {}


def test_a_map_name_elsewhere_is_a_struct_member(config):
    config["process"]["sysctl"] = {"x": None}  # unknown member, not linux.sysctl
    config["linux"]["annotations"] = {"y": None}
    gonull.normalize(config)
    assert config["process"]["sysctl"] == {} and config["linux"]["annotations"] == {}


def test_array_elements_stay_and_are_refused_naming_the_path(config):
    config["process"]["args"] = ["sh", None]
    config["mounts"].append(None)
    config["process"]["user"]["additionalGids"] = [None]
    before = copy.deepcopy(config)
    assert gonull.normalize(config) is False
    assert config == before
    assert sorted(spec.validate(config)) == [
        f"/mounts/{len(config['mounts']) - 1}: null is not of type 'object'",
        "/process/args/1: null is not of type 'string'",
        "/process/user/additionalGids/0: null is not of type 'integer'",
    ]


def test_required_member_null_is_reported_missing(config):
    """The spec's meaning of absence wins where it REQUIRES the member (root.path)."""
    config["root"]["path"] = None
    gonull.normalize(config)
    assert spec.validate(config) == ["/root: 'path' is a required property"]


def test_nothing_to_do(config):
    before = copy.deepcopy(config)
    assert gonull.normalize(config) is False
    assert config == before


def test_parts_of_a_config():
    proc = {"args": ["sh"], "cwd": "/", "env": None, "capabilities": {"ambient": None}}
    assert gonull.normalize(proc, ("process",))
    assert proc == {"args": ["sh"], "cwd": "/", "capabilities": {}}
    res = {"memory": None, "pids": {"limit": None}, "unified": {"memory.max": None}}
    assert gonull.normalize(res, ("linux", "resources"))
    assert res == {"pids": {}, "unified": {"memory.max": ""}}


# --------------------------------------------------------------------------- spec.py


def _bundle(tmp_path, text: str) -> str:
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "rootfs").mkdir()
    (b / "config.json").write_text(text)
    return str(b)


def test_load_bundle_normalizes_and_raw_follows(tmp_path, config):
    config["process"]["env"] = None
    config["linux"]["seccomp"] = None
    path, raw, parsed = spec.load_bundle(_bundle(tmp_path, json.dumps(config, indent=1)))
    assert "env" not in parsed["process"] and "seccomp" not in parsed["linux"]
    assert json.loads(raw) == parsed  # what the state saves is what was validated
    assert b"null" not in raw


def test_load_bundle_without_null_members_keeps_the_bytes(tmp_path, config):
    config["mounts"].append(
        {"destination": "/x/null", "type": "bind", "source": "/dev/null", "options": ["bind"]}
    )
    text = json.dumps(config, indent=3)
    _, raw, parsed = spec.load_bundle(_bundle(tmp_path, text))
    assert raw == text.encode() and parsed == config


def test_cache_hit_gives_the_normalized_config(tmp_path, config, monkeypatch):
    config["annotations"] = {"a": None}
    config["process"]["rlimits"] = None
    bundle = _bundle(tmp_path, json.dumps(config))
    cache = str(tmp_path / "cache")
    first = spec.load_bundle_cached(bundle, cache)

    def boom(_config):
        raise AssertionError("validated again")

    monkeypatch.setattr(spec, "validate", boom)
    second = spec.load_bundle_cached(bundle, cache)
    assert first == second
    assert second[2]["annotations"] == {"a": ""} and "rlimits" not in second[2]["process"]


def test_load_bundle_refuses_null_element_in_one_line(tmp_path, config):
    config["linux"]["maskedPaths"].append(None)
    n = len(config["linux"]["maskedPaths"]) - 1
    with pytest.raises(ConfigError) as e:
        spec.load_bundle(_bundle(tmp_path, json.dumps(config)))
    assert str(e.value) == f"config.json: /linux/maskedPaths/{n}: null is not of type 'string'"


def test_read_json_object_normalizes_as_the_part_named(tmp_path, monkeypatch):
    import io

    f = tmp_path / "p.json"
    f.write_text('{"args": ["sh"], "cwd": "/", "env": null, "user": {"uid": null}}')
    assert spec.read_json_object(str(f), "a process", at=("process",)) == {
        "args": ["sh"],
        "cwd": "/",
        "user": {},
    }
    body = b'{"unified": {"pids.max": null}, "cpu": null}'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
    got = spec.read_json_object("-", "resources", at=("linux", "resources"), dash_is_stdin=True)
    assert got == {"unified": {"pids.max": ""}}


def test_null_capabilities_object_is_absent(config):
    """As runc: no capabilities at create (every set empty), the container's for an exec
    process file (tests/integration/test_null_configs.py runs both)."""
    config["process"]["capabilities"] = None
    assert gonull.normalize(config) is True
    assert "capabilities" not in config["process"] and spec.validate(config) == []
    proc = {"args": ["sh"], "cwd": "/", "capabilities": None, "env": None}
    assert gonull.normalize(proc, ("process",))
    assert proc == {"args": ["sh"], "cwd": "/"}
    config["process"]["capabilities"] = {"ambient": None}  # a set's null is the set empty
    gonull.normalize(config)
    assert config["process"]["capabilities"] == {}
