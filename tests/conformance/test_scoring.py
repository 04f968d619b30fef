"""The conformance harness's scoring (scripts/conformance.py), on output shaped like what
the runtime-tools validation programs print (taken from real runs). No root, no runtime."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "conformance.py"
spec = importlib.util.spec_from_file_location("ocirun_conformance_harness", SCRIPT)
harness = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = harness
spec.loader.exec_module(harness)
score = harness.score

HOOK_FAILURE = """TAP version 13
  ---
  {
    "error": "if any poststart hook fails, the runtime MUST log a warning\\nRefer to: https://x"
  }
  ...
1..0
"""

# create: the `ok` of a rightly refused create carries the error as its diagnostic
REFUSED_CREATE_OK = """TAP version 13
ok 1 - create MUST generate an error if the ID is not provided
  ---
  {
    "error": "exit status 2",
    "stderr": "Error: Missing argument 'cid'.\\n"
  }
  ...
ok 2 - create MUST create a new container
1..2
"""

# state: descriptions run on over a "Refer to:" line before the diagnostic block
STATE_CONTINUED = """TAP version 13
ok 1 - state MUST generate an error if it is not provided the ID of a container
Refer to: https://github.com/opencontainers/runtime-spec/blob/v1.3.0/runtime.md#query-state
  ---
  {
    "error": "exit status 1",
    "reference": "https://github.com/opencontainers/runtime-spec/blob/v1.3.0/runtime.md#query-state"
  }
  ...
1..1
"""

# state: a specerror after passing tests, in a block of its own
STATE_FREE_ERROR = STATE_CONTINUED.replace(
    "1..1\n",
    """  ---
  {
    "error": "the format MUST adhere to the default pattern",
    "reference": "https://x"
  }
  ...
1..1
""",
)

NOT_OK = """TAP version 13
ok 1 - set ipc namespace by path
not ok 2 - set mnt namespace by path
  ---
  {
    "actual": "err == exit status 1",
    "expected": "err == nil"
  }
  ...
ok 3 - set net namespace by path
  ---
  {
    "error": "not this one"
  }
  ...
1..3
"""

# RuntimeInsideValidate(t != nil) puts the inner TAP in a block *before* its test line
INNER_NOT_OK_QUOTED = """TAP version 13
  ---
  {
    "stderr": "",
    "stdout": "TAP version 13\\nnot ok 1 - inner\\n1..1\\n"
  }
  ...
not ok 1 - check root propagation: shared
1..1
"""


def test_hook_error_block_under_empty_plan_fails():
    ok, reason = score("poststart_fail", 0, HOOK_FAILURE, "")
    assert not ok and reason.startswith("error: if any poststart hook fails")


def test_error_attached_to_an_ok_line_is_a_diagnostic():
    assert score("create", 0, REFUSED_CREATE_OK, "") == (True, "")


def test_description_continuation_keeps_the_block_attached():
    assert score("state", 0, STATE_CONTINUED, "")[0]


def test_free_standing_error_after_passing_tests_fails():
    ok, reason = score("state", 0, STATE_FREE_ERROR, "")
    assert not ok and "default pattern" in reason


def test_not_ok_reports_the_first_failing_line():
    ok, reason = score("linux_ns_path", 0, NOT_OK, "")
    assert not ok and reason.startswith("not ok 2 - set mnt namespace by path")
    assert "not this one" not in reason


def test_not_ok_with_its_diagnostic_line():
    out = "TAP version 13\nnot ok 3 - pids limit is set correctly\n# expect: 1, actual: 2\n1..3\n"
    ok, reason = score("linux_cgroups_pids", 0, out, "")
    assert not ok and reason == "not ok 3 - pids limit is set correctly (expect: 1, actual: 2)"


def test_not_ok_inside_a_quoted_inner_tap_does_not_count_but_the_outer_line_does():
    ok, reason = score("linux_rootfs_propagation", 0, INNER_NOT_OK_QUOTED, "")
    assert not ok and reason == "not ok 1 - check root propagation: shared (not ok 1 - inner)"
    passing = INNER_NOT_OK_QUOTED.replace("not ok 1 - check", "ok 1 - check")
    assert score("linux_rootfs_propagation", 0, passing, "")[0]


def test_fatal_exit_fails_with_the_error():
    err = "failed to create the container\nmknod /dev/test3: the node was replaced\nexit status 1\n"
    ok, reason = score("linux_devices", 1, "", err)
    assert not ok and "mknod /dev/test3: the node was replaced" in reason


def test_no_plan_fails():
    assert not score("default", 0, "TAP version 13\nok 1 - x\n", "")[0]


def test_timeout_fails():
    assert score("delete", None, "", "") == (False, "timed out")


def test_skips_are_counted():
    out = "TAP version 13\nok 1 - a\nok 2 # SKIP not set\nok 3 # SKIP not set\n1..3\n"
    assert score("default", 0, out, "") == (True, "2 skipped")


@pytest.mark.parametrize("name", sorted(harness.REFUSAL_PROGRAMS))
def test_refusal_programs(name):
    refused = "failed to create the container\nunknown rlimit 'RLIMIT_TEST'\n"
    ok, reason = score(name, 0, "", refused)
    assert ok and "RLIMIT_TEST" in reason
    # exit 0 and silent, but not because the runtime refused (e.g. the bundle was not made)
    assert not score(name, 0, "", "")[0]
    # the runtime ran the bad config: the program prints the inner TAP and exits 1
    accepted = score(name, 1, "TAP version 13\nok 1 - x\n1..1\n", "MUST cause an error\n")
    assert accepted == (False, "accepted the bad config: MUST cause an error")


def test_known_failures_file(tmp_path):
    f = tmp_path / "known.txt"
    f.write_text("# comment\n\nlinux_devices  mknod of a fifo fails\nlinux_ns_path   no rootfs\n")
    assert harness.load_known(f) == {
        "linux_devices": "mknod of a fifo fails",
        "linux_ns_path": "no rootfs",
    }


def _report(results, known, capsys):
    names = sorted({n for n, _ in results})
    rc = harness.report(
        names, ["ocirun", "runc"], results, known, [], [], 1.0, Path("known_failures.txt")
    )
    return rc, capsys.readouterr().out


def test_verdict_new_failure_known_failure_and_stale_entry(capsys):
    new = {("a", "ocirun"): (False, "boom"), ("a", "runc"): (True, "")}
    rc, out = _report(new, {}, capsys)
    assert rc == 1 and "NEW FAILURE" in out
    rc, out = _report(new, {"a": "boom"}, capsys)
    assert rc == 0 and "known: boom" in out
    fixed = {("a", "ocirun"): (True, ""), ("a", "runc"): (True, "")}
    rc, out = _report(fixed, {"a": "boom"}, capsys)
    assert rc == 1 and "NOW PASSES" in out
    both = {("a", "ocirun"): (False, "x"), ("a", "runc"): (False, "y")}
    assert _report(both, {}, capsys)[0] == 0


def test_without_runc_nothing_counts_as_a_new_failure(capsys):
    names = ["a"]
    rc = harness.report(
        names,
        ["ocirun"],
        {("a", "ocirun"): (False, "boom")},
        {},
        [],
        [],
        1.0,
        Path("known_failures.txt"),
    )
    out = capsys.readouterr().out
    assert rc == 0 and "runc was not run" in out and "NEW FAILURE" not in out
