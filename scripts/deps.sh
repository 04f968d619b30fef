#!/usr/bin/env bash
# Install the Debian 12 packages ocirun needs to build, test and demo.
# Idempotent: only packages that are not already installed are installed, and
# `apt-get update` runs (once) only when something has to be installed.
# Must run as root; never reads stdin (safe under CI=true).
set -euo pipefail

PACKAGES=(
    build-essential     # gcc, make, libc6-dev: compiles the C shim
    pkg-config
    python3
    python3-dev         # Python.h for the cffi extension
    python3-venv
    libseccomp-dev
    busybox-static      # source of the demo/test bundle rootfs
    iproute2
    runc                # reference runtime (comparison, tests)
    crun
    hyperfine           # benchmarks
    strace
    containerd          # engine tests (tests/engines): containerd + ctr + runc v2 shim
    podman              # engine tests: podman 4.3 (pulls in conmon, containers-common)
    conmon
)

is_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [[ "$status" == "install ok installed" ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

if ((EUID != 0)); then
    echo "deps: missing packages: ${missing[*]} (re-run as root to install them)" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq </dev/null >/dev/null
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
