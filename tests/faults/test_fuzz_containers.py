"""The bounded real-container round of the fuzzing: mutated configs (fuzzlib.configs, from
the rich busybox config) created, started and deleted for real. Each `create` and `start`
either succeeds or fails on one line; after `delete --force`, nothing is left: no state dir,
cgroup, process, mount. A private copy of the rootfs (mutations make mount targets in it).
200 configs by default, 1000 with OCIRUN_FAULTS=full."""

from __future__ import annotations

import json
import os
import shutil
import time

from faultlib import call, count, leftovers, mounts, one_line, procs_rooted_in, uid
from fuzzlib import FULL, configs
from hypothesis import HealthCheck, given, settings
from testenv import ROOTFS

EXAMPLES = 1000 if FULL else int(os.environ.get("FUZZ_REAL_N", 200))


def test_the_rich_config_runs(rt, tmp_path):
    """The config the mutations start from is valid and runs (else they test little)."""
    from fuzzlib import RICH

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copytree(ROOTFS, bundle / "rootfs", symlinks=True)
    cid = uid("rich")
    cfg = json.loads(json.dumps(RICH))
    cfg["linux"]["cgroupsPath"] = "/" + cid
    (bundle / "config.json").write_text(json.dumps(cfg))
    r = call(rt, "run", "--bundle", str(bundle), cid)
    assert r.returncode == 0, r.stderr
    assert not leftovers(rt, [cid])
    count("containers run")


def test_linux_personality_is_applied_and_process_personality_is_not_read(rt, make_bundle):
    """Found by the fuzzer: the plan read `process.personality` (a string there crashed
    it), which runtime-spec does not have, and ignored `linux.personality`, which it does."""

    def mutate(how):
        def m(c):
            c["process"]["personality"] = "not read"
            if how:
                c["linux"]["personality"] = {"domain": how}

        return m

    for how, machine in (("LINUX32", "i686"), ("LINUX", "x86_64"), (None, "x86_64")):
        r = call(
            rt,
            "run",
            "--bundle",
            make_bundle(args=["uname", "-m"], mutate=mutate(how)),
            uid("pers"),
        )
        assert r.returncode == 0 and r.stdout.strip() == machine, (how, r.stdout, r.stderr)
        count("containers run")


def test_mutated_configs_run_or_fail_on_one_line(rt, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copytree(ROOTFS, bundle / "rootfs", symlinks=True)
    private = str(bundle / "rootfs")
    before = mounts()
    seen = {"ran": 0, "refused": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not FULL,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(cfg=configs())
    def check(cfg):
        cid = uid("fz")
        if isinstance(cfg.get("linux"), dict):
            cfg["linux"]["cgroupsPath"] = "/" + cid  # where leftovers() looks
        if isinstance(cfg.get("root"), dict) and cfg["root"].get("path") == "rootfs":
            cfg["root"]["path"] = private
        (bundle / "config.json").write_text(json.dumps(cfg))
        try:
            r = call(rt, "create", "--bundle", str(bundle), cid, timeout=30)
            if r.returncode:
                one_line(r)
                seen["refused"] += 1
            else:
                r = call(rt, "start", cid, timeout=30)
                if r.returncode:
                    one_line(r)
                deadline = time.monotonic() + 5
                while (
                    call(rt, "state", cid).stdout.count('"stopped"') == 0
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.02)
                seen["ran"] += 1
        finally:
            d = call(rt, "delete", "--force", cid, timeout=30)
        assert d.returncode == 0 and "Traceback" not in d.stderr, d.stderr
        left = leftovers(rt, [cid], before)
        left.pop("processes", None)  # those of the shared rootfs: none run from it here
        procs = procs_rooted_in(private)
        inside = [m for m in mounts() if m.startswith(private)]
        assert not left and not procs and not inside, (left, procs, inside)

    check()
    count("containers run (fuzzed configs)", seen["ran"])
    count("fuzzed configs refused on one line", seen["refused"])
    count("fuzz crashes", 0)
    assert seen["ran"] >= EXAMPLES // 20, seen  # the round must reach real containers
