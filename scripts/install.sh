#!/usr/bin/env bash
# Install ocirun as a system command that does not need the checkout:
#
#   bash scripts/install.sh install   [LIBDIR] [BINDIR]  (make install)
#   bash scripts/install.sh uninstall [LIBDIR] [BINDIR]  (make uninstall)
#
# install builds the wheel (build/wheel/), makes a dedicated venv LIBDIR (default
# /usr/local/lib/ocirun) from /usr/bin/python3, installs the wheel and its dependencies into
# it, byte-compiles it and links BINDIR/ocirun (default /usr/local/bin) to LIBDIR/bin/ocirun,
# the wheel's C launcher. A venv already there is replaced. uninstall removes the link (only
# if it points into LIBDIR) and LIBDIR (only if it is a venv holding ocirun).
set -euo pipefail

action=${1:?usage: install.sh install|uninstall [LIBDIR] [BINDIR]}
libdir=${2:-/usr/local/lib/ocirun}
bindir=${3:-/usr/local/bin}
python=${PYTHON:-/usr/bin/python3}
repo=$(cd "$(dirname "$0")/.." && pwd)

ours() { [[ -f "$libdir/pyvenv.cfg" && -x "$libdir/bin/ocirun" ]]; }

case "$action" in
install)
    wheel=$(bash "$repo/scripts/wheel.sh")
    if [[ -e "$libdir" ]]; then
        ours || { echo "install: $libdir exists and is not an ocirun venv; left alone" >&2; exit 1; }
        rm -rf "$libdir"
    fi
    "$python" -m venv "$libdir"
    "$libdir/bin/pip" install -q --disable-pip-version-check "$wheel"
    # engines may pass PYTHONDONTWRITEBYTECODE: compile now, not on every call
    "$libdir/bin/python" -m compileall -q "$libdir/lib" >/dev/null
    mkdir -p "$bindir"
    ln -sfn "$libdir/bin/ocirun" "$bindir/ocirun"
    echo "installed $("$bindir/ocirun" --version | head -n1): $bindir/ocirun -> $libdir/bin/ocirun"
    ;;
uninstall)
    if [[ "$(readlink "$bindir/ocirun" || true)" == "$libdir/bin/ocirun" ]]; then
        rm -f "$bindir/ocirun"
        echo "removed $bindir/ocirun"
    elif [[ -e "$bindir/ocirun" ]]; then
        echo "uninstall: $bindir/ocirun does not point into $libdir; left alone"
    fi
    if ours; then
        rm -rf "$libdir"
        echo "removed $libdir"
    fi
    ;;
*)
    echo "usage: install.sh install|uninstall [LIBDIR] [BINDIR]" >&2
    exit 2
    ;;
esac
