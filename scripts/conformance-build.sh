#!/usr/bin/env bash
# Build the OCI runtime-tools validation suite for `make conformance`, offline.
#
#   bash scripts/conformance-build.sh      -> prints the built source root (last line)
#
# The source is upstream's `git archive` with its vendor/ tree, kept beside the repo in
# ../shared/conformance/runtime-tools-*.tar.gz (CONFORMANCE_TARBALL overrides). It is
# unpacked and built under build/conformance/<sha256 of the tarball, 16 chars>/, so a
# build is reused until the tarball changes; older builds are removed.
# runtimetest runs inside the containers: it is static (no cgo, netgo + osusergo).
#
# Exit status: 0 built (or reused); 2 skipped (the line "skipped: <reason>" says why:
# no tarball, no Go >= 1.21); 1 the build failed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out_root="$repo/build/conformance"

skip() { echo "skipped: $*"; exit 2; }

tarball=${CONFORMANCE_TARBALL:-}
if [[ -z "$tarball" ]]; then
    shopt -s nullglob
    found=("$repo"/../shared/conformance/runtime-tools-*.tar.gz)
    shopt -u nullglob
    ((${#found[@]} > 0)) || skip "no runtime-tools tarball in $(realpath -m "$repo/../shared/conformance")/"
    tarball=${found[-1]}
fi
[[ -f "$tarball" ]] || skip "no such tarball: $tarball"
tarball=$(realpath "$tarball")

# Go: Debian's golang-1.23-go (bookworm-backports) lives outside PATH; `go` on PATH
# also does if it is new enough (go.mod says 1.21).
go_ok() { # $1: a go binary; true if it is >= 1.21
    local v
    v=$("$1" env GOVERSION 2>/dev/null) || return 1     # go1.23.4
    v=${v#go}
    local major=${v%%.*} rest=${v#*.}
    local minor=${rest%%[!0-9]*}
    ((major > 1 || (major == 1 && minor >= 21)))
}
GO=
for cand in ${GO_BIN:-} /usr/lib/go-1.23/bin/go $(command -v go 2>/dev/null || true) /usr/lib/go-1.2[4-9]/bin/go; do
    if [[ -x "$cand" ]] && go_ok "$cand"; then GO=$cand; break; fi
done
[[ -n "$GO" ]] || skip "no Go >= 1.21 (scripts/deps.sh installs golang-1.23-go from bookworm-backports)"

key=$(sha256sum "$tarball" | cut -c1-16)
dest="$out_root/$key"
if [[ -f "$dest/.built" ]]; then
    echo "conformance: reusing the build in ${dest#"$repo"/} (tarball unchanged)" >&2
    echo "$dest/src"
    exit 0
fi

mkdir -p "$out_root"
# Builds of other tarballs are stale. Nothing under build/ is ever mounted (the bundles
# live in the harness's own temp dirs), and --one-file-system makes sure of it.
for old in "$out_root"/*/; do
    [[ "$old" == "$dest/" ]] || rm -rf --one-file-system "$old"
done
rm -rf --one-file-system "$dest"
work=$(mktemp -d "$out_root/.tmp-$key.XXXXXX")
# chmod: Go leaves its caches read-only.
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf --one-file-system "$work"' EXIT

echo "conformance: building $(basename "$tarball") with $("$GO" env GOVERSION) (~1 min)" >&2
mkdir "$work/src"
tar -xzf "$tarball" -C "$work/src"
[[ -f "$work/src/go.mod" ]] || { echo "error: $tarball has no go.mod at its top" >&2; exit 1; }

export GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local GOTELEMETRY=off GO111MODULE=on
export GOCACHE="$work/gocache" GOPATH="$work/gopath"
version=$(cat "$work/src/VERSION" 2>/dev/null || echo unknown)
ldflags="-X main.gitCommit=$(basename "$tarball" .tar.gz | sed 's/^runtime-tools-//') -X main.version=$version"
(
    cd "$work/src"
    CGO_ENABLED=0 "$GO" build -tags "netgo osusergo" -ldflags "$ldflags" -o runtimetest ./cmd/runtimetest
    # One `go build` for every program (parallel compile and link), into a scratch dir,
    # then each moved to validation/<name>/<name>.t, where upstream's Makefile puts it.
    mkdir "$work/bin"
    "$GO" build -ldflags "$ldflags" -o "$work/bin/" ./validation/...
    n=0
    for bin in "$work/bin"/*; do
        name=$(basename "$bin")
        [[ -f "validation/$name/$name.go" ]] || continue
        mv "$bin" "validation/$name/$name.t"
        n=$((n + 1))
    done
    echo "conformance: built runtimetest and $n validation programs" >&2
)
chmod -R u+w "$work"
rm -rf "$work/gocache" "$work/gopath" "$work/bin"
touch "$work/.built"
mv "$work" "$dest"
trap - EXIT
echo "$dest/src"
