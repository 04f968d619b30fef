"""crun's spellings that crun's own test suite (tests/*.py, which drives any runtime named
by $OCI_RUNTIME) passes on every container it makes: the global `--cgroup-manager` and
create/run's `--config`. Without them not one of that suite's containers starts."""

from __future__ import annotations

import json
import os
import shutil

from clitools import call, fails, ok


def test_cgroup_manager_cgroupfs_runs(rt, make_bundle):
    r = call(
        rt,
        "run",
        "--bundle",
        make_bundle(args=["echo", "hi"]),
        "cm",
        global_args=("--cgroup-manager", "cgroupfs"),
    )
    assert ok(r).stdout == "hi\n"


def test_cgroup_manager_other_values_are_refused(rt, make_bundle):
    r = call(
        rt,
        "run",
        "--bundle",
        make_bundle(args=["true"]),
        "cm",
        global_args=("--cgroup-manager", "disabled"),
    )
    fails(r, "invalid --cgroup-manager value 'disabled': use cgroupfs or systemd")
    assert rt.cli("state", "cm").returncode != 0


def test_config_names_the_config_file_in_the_bundle(rt, make_bundle):
    """crun reads --config relative to the bundle; root.path stays relative to the bundle."""
    bundle = make_bundle(args=["echo", "from-other"])
    os.mkdir(os.path.join(bundle, "config"))
    shutil.move(os.path.join(bundle, "config.json"), os.path.join(bundle, "config", "c.json"))
    r = call(rt, "run", "--config", "config/c.json", "--bundle", bundle, "cf")
    assert ok(r).stdout == "from-other\n"


def test_config_with_create_and_a_missing_file(rt, make_bundle):
    bundle = make_bundle(args=["echo", "created"])
    fails(
        call(rt, "create", "--config", "nope.json", "--bundle", bundle, "cf"),
        "JSON specification file nope.json not found in bundle",
    )
    assert rt.cli("state", "cf").returncode != 0
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(bundle, "other.json"), "w") as f:
        json.dump(cfg, f)
    ok(call(rt, "create", "--config=other.json", "--bundle", bundle, "cf"))
    assert rt.state("cf")["status"] == "created"
    ok(rt.cli("delete", "--force", "cf"))
