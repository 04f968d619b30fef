"""criu_rpc's pure parts: which line of CRIU's log an error quotes, how a failure reads."""

from ocirun import criu_rpc

LOG = """\
(00.015871) Warn  (criu/kerndat.c:1642): CRIU was built without libnftables support
(00.048229) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted
(00.162987) Error (criu/files-reg.c:1790): Can't lookup mount=24 for fd=0 path=/dev/null
(00.162996) Error (criu/cr-dump.c:1698): Dump files (pid: 26578) failed with -1
(00.248741) Error (criu/cr-dump.c:2128): Dumping FAILED.
"""


def test_last_error_skips_the_harmless_and_the_summary(tmp_path):
    log = tmp_path / "dump.log"
    log.write_text(LOG)
    assert criu_rpc.last_error(str(log)) == (
        "Error (criu/files-reg.c:1790): Can't lookup mount=24 for fd=0 path=/dev/null"
    )


def test_last_error_without_a_log_or_an_error(tmp_path):
    assert criu_rpc.last_error(str(tmp_path / "none.log")) is None
    only_harmless = tmp_path / "x.log"
    only_harmless.write_text(LOG.splitlines()[1] + "\n")
    assert criu_rpc.last_error(str(only_harmless)) is None


def test_failure_is_one_line_naming_the_log(tmp_path):
    log = tmp_path / "restore.log"
    log.write_text(LOG)
    msg = criu_rpc.failure("CRIU restore failed", str(log), "x").message
    assert "\n" not in msg
    assert msg.startswith("CRIU restore failed: x (log ") and str(log) in msg
    assert msg.endswith("path=/dev/null)")


def test_find_names_what_is_missing(tmp_path):
    err = None
    try:
        criu_rpc.find(str(tmp_path / "criu"))
    except criu_rpc.CriuError as e:
        err = e.message
    assert err and f"--criu {tmp_path / 'criu'}" in err


def test_a_helper_exit_status_is_not_the_error(tmp_path):
    log = tmp_path / "dump.log"
    log.write_text(
        "(00.5) Error (criu/util.c:657): exited, status=1\n"
        "(00.7) Error (criu/net.c:3332): net: Locking network failed: iptables-restore "
        "returned -1.\n"
        "(00.9) Error (criu/util.c:657): exited, status=1\n"
    )
    assert "Locking network failed" in criu_rpc.last_error(str(log))
