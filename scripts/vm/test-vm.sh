#!/usr/bin/env bash
# scripts/vm/test-vm.sh: `make test-vm`. Runs tests/vm inside a cgroup-v2-only VM with the
# host's .venv and bundles/ (nothing is built in the VM):
#   1. plain boot: bash as pid 1, cgroup2 at /sys/fs/cgroup -> pytest tests/vm
#   2. systemd boot (when the host image has systemd): pytest tests/vm/test_systemd.py
# Prints each run's exit code and pytest summary line; fails when either fails. Where no VM
# can run here (no qemu and no way to install it, no kernel package), prints
# "test-vm: skipped: <reason>" and exits 0.
# env: VM_PYTEST_ARGS (extra pytest arguments, both runs), VM_TIMEOUT (per boot; 600 / 300),
#      OCIRUN_VM_SYSTEMD=0 (skip the systemd boot), OCIRUN_TEST_VM=0 (skip it all), and
#      run.sh's VM_* variables.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd -P)
cd "$REPO"
T0=$SECONDS
skip() { echo "test-vm: skipped: $*"; exit 0; }

[ "${OCIRUN_TEST_VM:-1}" = 0 ] && skip "OCIRUN_TEST_VM=0"
[ "$(uname -m)" = x86_64 ] || skip "the VM is x86_64-only (host is $(uname -m))"
[ "$(id -u)" = 0 ] || skip "needs root (apt-get, qemu's 9p passthrough)"
[ -x .venv/bin/python ] || { echo "test-vm: no .venv (make build first)" >&2; exit 2; }
why=$(bash "$HERE/prepare.sh")
case $? in
    0) ;;
    3) skip "$why";;
    *) echo "test-vm: prepare.sh failed: $why" >&2; exit 2;;
esac
# The guest sees the host's / read-only: the venv's interpreter must be a path from there.
py=$(readlink -f .venv/bin/python)
case "$py" in
    "$REPO"/*) ;;
    *) [ -x "$py" ] || { echo "test-vm: .venv/bin/python -> $py is missing" >&2; exit 2; };;
esac

OUT=$(mktemp /tmp/ocirun-test-vm.XXXXXX)
trap 'rm -f "$OUT"' EXIT
summary() { grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped|deselected)|no tests ran' "$OUT" \
            | tail -n 1 | sed 's/^=* *//; s/ *=*$//'; }
pytest_cmd() {  # $1: env assignments, rest: pytest arguments
    local envs=$1; shift
    printf 'export OCIRUN_IN_VM=1 %s PYTHONDONTWRITEBYTECODE=1\n' "$envs"
    printf 'echo "vm: $(uname -r), pid 1: $(cat /proc/1/comm), $(stat -fc %%T /sys/fs/cgroup)"\n'
    # A test still running after 90 s dumps every thread's stack: a hang names its place
    # before the boot's timeout kills the VM.
    printf 'exec .venv/bin/python -m pytest -q -p no:cacheprovider -o faulthandler_timeout=90 %s %s\n' \
        "$*" "${VM_PYTEST_ARGS:-}"
}

echo "test-vm: boot 1/2: cgroup v2, bash as pid 1: pytest tests/vm"
t=$SECONDS
VM_TIMEOUT=${VM_TIMEOUT:-600} bash "$HERE/run.sh" "$(pytest_cmd "" tests/vm)" 2>&1 | tee "$OUT"
rc1=${PIPESTATUS[0]}
[ $rc1 = 125 ] && skip "qemu-system-x86_64 cannot start on this machine (see above)"
s1=$(summary)
echo "test-vm: boot 1: exit $rc1 in $((SECONDS - t))s: ${s1:-no pytest summary}"
[ $rc1 = 5 ] && echo "test-vm: boot 1: pytest collected no tests" >&2

rc2=0
if [ "${OCIRUN_VM_SYSTEMD:-1}" = 0 ]; then
    echo "test-vm: boot 2/2: skipped: OCIRUN_VM_SYSTEMD=0"
elif [ ! -x /lib/systemd/systemd ] || ! command -v dbus-daemon >/dev/null; then
    echo "test-vm: boot 2/2: skipped: no systemd (and dbus) on this host image to boot"
else
    echo "test-vm: boot 2/2: cgroup v2, systemd as pid 1: pytest tests/vm/test_systemd.py tests/vm/test_rootless_v2.py"
    t=$SECONDS
    VM_TIMEOUT=${VM_TIMEOUT:-300} bash "$HERE/run.sh" --systemd \
        "$(pytest_cmd OCIRUN_VM_SYSTEMD=1 tests/vm/test_systemd.py tests/vm/test_rootless_v2.py)" 2>&1 | tee "$OUT"
    rc2=${PIPESTATUS[0]}
    s2=$(summary)
    echo "test-vm: boot 2: exit $rc2 in $((SECONDS - t))s: ${s2:-no pytest summary}"
fi
echo "test-vm: done in $((SECONDS - T0))s"
[ $rc1 = 0 ] && [ $rc2 = 0 ]
