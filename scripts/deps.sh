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
    clang-format        # the C style check of make lint (.clang-format)
    containerd          # engine tests (tests/engines): containerd + ctr + runc v2 shim
    podman              # engine tests: podman 4.3 (pulls in conmon, containers-common)
    conmon
    uidmap              # newuidmap/newgidmap: rootless multi-range id maps (tests/*rootless*)
    slirp4netns         # rootless podman (tests/rootless): its user-mode network helper
    # CRIU 4.2, built from ../shared/criu by scripts/criu-build.sh for checkpoint/restore
    # (Debian 12's criu 3.17 fails `criu check` on newer kernels)
    protobuf-c-compiler
    libprotobuf-c-dev
    libprotobuf-dev
    protobuf-compiler
    libnl-3-dev
    libnet1-dev
    libcap-dev
    libbsd-dev
    iptables            # CRIU locks the network of a dump with --tcp-established
)

# From bookworm-backports (Debian 12's own Go, 1.19, is too old for runtime-tools' go.mod):
# builds the OCI runtime-tools validation suite for `make conformance`.
BACKPORTS_PACKAGES=(
    golang-1.23-go
)
BACKPORTS_SOURCE=/etc/apt/sources.list.d/ocirun-bookworm-backports.sources

is_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [[ "$status" == "install ok installed" ]]
}

# Is bookworm-backports among apt's sources (one-line or deb822 format)?
has_backports_source() {
    grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
missing_bp=()
for pkg in "${BACKPORTS_PACKAGES[@]}"; do
    is_installed "$pkg" || missing_bp+=("$pkg")
done

total=$((${#PACKAGES[@]} + ${#BACKPORTS_PACKAGES[@]}))
if ((${#missing[@]} + ${#missing_bp[@]} == 0)); then
    echo "deps: all $total packages already installed"
    exit 0
fi

if ((EUID != 0)); then
    echo "deps: missing packages: ${missing[*]} (re-run as root to install them)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=300)

if ((${#missing_bp[@]} > 0)) && ! has_backports_source; then
    # Same mirror and keyring as Debian 12's default sources; backports are pinned low
    # by their Release file, so nothing else is upgraded from them.
    echo "deps: adding bookworm-backports to apt's sources ($BACKPORTS_SOURCE)"
    cat >"$BACKPORTS_SOURCE" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

echo "deps: installing ${missing[*]}${missing[*]:+ }${missing_bp[*]}"
"${APT[@]}" update -qq </dev/null >/dev/null
if ((${#missing[@]} > 0)); then
    "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
if ((${#missing_bp[@]} > 0)); then
    "${APT[@]}" install -y -qq --no-install-recommends -t bookworm-backports \
        "${missing_bp[@]}" </dev/null >/dev/null
fi
