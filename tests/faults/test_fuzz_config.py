"""Property: whatever config.json holds, what `create` does before it touches anything (read
+ parse, schema and semantic validation, the cached verdict, the cgroup paths, the plan, the
seccomp filter, the LSM check, and the plan packed into the C shim's structs) either
succeeds or raises one of ocirun's typed errors (OcirunError and subclasses) — never
anything else. Thousands of generated and mutated configs (fuzzlib.py), without root.
OCIRUN_FAULTS=full: ten times as many, not derandomized."""

from __future__ import annotations

import os
import tempfile

from faultlib import count
from fuzzlib import FULL, config_bytes
from hypothesis import HealthCheck, given, settings
from testenv import ROOTFS

from ocirun import _native, cgroups, container, spec
from ocirun import plan as planmod
from ocirun.errors import OcirunError

WITHOUT_ROOT = True  # conftest: runs as any user
EXAMPLES = 30000 if FULL else int(os.environ.get("FUZZ_N", 3000))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not FULL,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def plan_of(bundle: str, cache_dir: str | None):
    """container.create up to its first side effect, in its order."""
    path, raw, config = spec.load_bundle_cached(bundle, cache_dir)
    cg = cgroups.open_manager(config.get("linux"), "fuzz")
    cg.planned_paths()
    layout = container.cgroup_layout()
    layout.dirs = cg.paths.get("dirs") or {}
    host = planmod.HostFacts(
        cgroups=layout,
        cap_bounding=container.cap_bounding(),
        seccomp=container.seccomp_filter((config.get("linux") or {}).get("seccomp")),
    )
    p = planmod.build(config, path, planmod.Options(cgroups=True), host)
    container.check_lsm(config["process"])
    _native._fill(p, _native.SpawnFds(sync=-1), -1, None, False, _native._Arena())
    return p


def outcome(bundle: str, cache_dir: str | None) -> str:
    try:
        plan_of(bundle, cache_dir)
    except OcirunError as e:
        assert isinstance(e.message, str) and e.message.strip(), repr(e)
        return "refused"
    return "planned"


def test_config_path_raises_only_typed_errors(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.symlink(ROOTFS, bundle / "rootfs")
    cache = tempfile.mkdtemp(dir=tmp_path)
    seen = {"planned": 0, "refused": 0}

    @FUZZ
    @given(raw=config_bytes())
    def check(raw: bytes):
        (bundle / "config.json").write_bytes(raw)
        first = outcome(str(bundle), None)
        # a cached verdict never differs from a fresh one (twice: miss, then hit)
        assert outcome(str(bundle), cache) == first == outcome(str(bundle), cache)
        seen[first] += 1

    check()
    count("fuzz cases (config path, no root)", sum(seen.values()))
    count("fuzz cases planned (config path, no root)", seen["planned"])
    count("fuzz crashes", 0)
    # the generator must reach the planner, not only the JSON parser
    assert seen["planned"] >= EXAMPLES // 20 and seen["refused"] >= EXAMPLES // 4, seen


def test_nul_and_unpaired_surrogates_are_refused(tmp_path):
    """Found by the fuzzer: a NUL in a string was cut short where it reached C (args
    ["a\\u0000b"] ran "a"), an unpaired surrogate crashed the packing into C structs
    (UnicodeEncodeError)."""
    import json

    from fuzzlib import RICH

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.symlink(ROOTFS, bundle / "rootfs")
    for where, value, why in (
        ("args", ["a\0b"], "/process/args/0: value contains a NUL"),
        ("args", ["\ud800"], "/process/args/0: value contains an unpaired"),
        ("cwd", "/\udfff", "/process/cwd: value contains an unpaired"),
        ("env", ["A\0=1"], "/process/env/0: value contains a NUL"),
    ):
        cfg = json.loads(json.dumps(RICH))
        cfg["process"][where] = value
        (bundle / "config.json").write_text(json.dumps(cfg))
        try:
            plan_of(str(bundle), None)
        except OcirunError as e:
            assert why in e.message, e.message
        else:
            raise AssertionError(f"accepted {where}={value!r}")
    cfg = json.loads(json.dumps(RICH))
    cfg["annotations"] = {"a\0": "x"}
    (bundle / "config.json").write_text(json.dumps(cfg))
    try:
        plan_of(str(bundle), None)
    except OcirunError as e:
        assert "/annotations: key contains a NUL" in e.message, e.message
    else:
        raise AssertionError("accepted a NUL in a key")


def test_device_numbers_out_of_range_are_refused(tmp_path):
    """Found by the fuzzer: linux.devices[].major -1 or 2**31 passed validation, then
    os.makedev or packing the plan into C structs raised OverflowError (a traceback from
    create). Linux's dev_t has 12 bits of major and 20 of minor."""
    import json

    from fuzzlib import RICH

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.symlink(ROOTFS, bundle / "rootfs")
    for key, value in (
        ("major", -1),
        ("minor", -1),
        ("major", 2**31),
        ("minor", 2**40),
        ("major", 4096),
        ("minor", 1 << 20),
    ):
        cfg = json.loads(json.dumps(RICH))
        cfg["linux"]["devices"][0][key] = value
        (bundle / "config.json").write_text(json.dumps(cfg))
        try:
            plan_of(str(bundle), None)
        except OcirunError as e:
            assert f"/linux/devices/0/{key}: {value} is not a {key} device number" in e.message
        else:
            raise AssertionError(f"accepted {key} {value}")


def test_scheduling_values_out_of_range_are_refused(tmp_path):
    """Found by sweeping odd values through every field: ioPriority.priority or
    scheduler.priority -1 (OverflowError packing the plan), execCPUAffinity "-1" or "\\n"
    (ValueError: the schema's pattern lets them through); a umask over 2**31 overflowed
    too, and is now taken as umask(2) takes it (the low 9 bits, as runc)."""
    import json

    from fuzzlib import RICH

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.symlink(ROOTFS, bundle / "rootfs")

    def plan_with(where, key, value):
        cfg = json.loads(json.dumps(RICH))
        cfg["process"][where][key] = value
        (bundle / "config.json").write_text(json.dumps(cfg))
        return plan_of(str(bundle), None)

    for where, key, value, why in (
        ("ioPriority", "priority", -1, "must be 0 to 7"),
        ("ioPriority", "priority", 8, "must be 0 to 7"),
        ("scheduler", "priority", -1, "must be 0 to 99"),
        ("scheduler", "nice", 20, "must be -20 to 19"),
        ("execCPUAffinity", "initial", "-1", "is not a CPU list"),
        ("execCPUAffinity", "final", "\n", "is not a CPU list"),
        ("execCPUAffinity", "final", "0-99999999", "is not a CPU list"),
        ("execCPUAffinity", "initial", "3-1", "is not a CPU list"),
    ):
        try:
            plan_with(where, key, value)
        except OcirunError as e:
            assert f"/process/{where}/{key}: " in e.message and why in e.message, e.message
        else:
            raise AssertionError(f"accepted {where}.{key} = {value!r}")
    assert plan_with("user", "umask", 2**31 + 0o27).process.umask == 0o27
