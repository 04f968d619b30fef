#!/usr/bin/env bash
# Build CRIU for checkpoint/restore, offline, from the source snapshot beside the repo.
#
#   bash scripts/criu-build.sh      -> prints the directory holding `criu` (last line)
#
# Debian 12's criu 3.17 fails `criu check` on newer kernels (6.18: "vdso: Unexpected rt
# vDSO area bounds"); 4.2 handles them. The source is upstream's `git archive` in
# ../shared/criu/criu-*.tar.gz (CRIU_TARBALL overrides). It is unpacked and built under
# build/criu/<sha256 of the tarball, 16 chars>/, so a build is reused until the tarball
# changes; older builds are removed. build/criu/bin is a symlink to the current build's
# bin/ (holding `criu`), for PATH. Nothing is installed system-wide.
#
# Exit status: 0 built (or reused); 2 skipped (the line "skipped: <reason>" says why: no
# tarball, a build dependency missing); 1 the build failed (the last lines of its log say
# why).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out_root="$repo/build/criu"

skip() { echo "skipped: $*"; exit 2; }

tarball=${CRIU_TARBALL:-}
if [[ -z "$tarball" ]]; then
    shopt -s nullglob
    found=("$repo"/../shared/criu/criu-*.tar.gz)
    shopt -u nullglob
    ((${#found[@]} > 0)) || skip "no CRIU tarball in $(realpath -m "$repo/../shared/criu")/"
    tarball=${found[-1]}
fi
[[ -f "$tarball" ]] || skip "no such tarball: $tarball"
tarball=$(realpath "$tarball")

key=$(sha256sum "$tarball" | cut -c1-16)
dest="$out_root/$key"
if [[ -x "$dest/bin/criu" ]] && "$dest/bin/criu" --version >/dev/null 2>&1; then
    ln -sfn "$key/bin" "$out_root/bin"
    echo "criu: reusing the build in ${dest#"$repo"/} (tarball unchanged)" >&2
    echo "$dest/bin"
    exit 0
fi

missing=()
for tool in make gcc pkg-config protoc protoc-c libnet-config; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
for lib in libprotobuf-c libnl-3.0 libcap; do
    pkg-config --exists "$lib" 2>/dev/null || missing+=("$lib")
done
((${#missing[@]} == 0)) || skip "missing build dependencies: ${missing[*]} (bash scripts/deps.sh installs them)"

mkdir -p "$out_root"
# Builds of other tarballs are stale.
for old in "$out_root"/*/; do
    old=${old%/}
    # bin is the symlink to the current build's bin/, not a build
    [[ "$old" == "$dest" || -L "$old" ]] || rm -rf --one-file-system "$old"
done
rm -rf --one-file-system "$dest"
work=$(mktemp -d "$out_root/.tmp-$key.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT

echo "criu: building $(basename "$tarball") (~1 min on 2 cores)" >&2
mkdir "$work/src"
tar -xzf "$tarball" -C "$work/src"
# `git archive --prefix=criu-4.2/` puts everything under one directory.
shopt -s nullglob dotglob
top=("$work"/src/*)
shopt -u nullglob dotglob
if ((${#top[@]} == 1)) && [[ -d "${top[0]}" ]]; then
    mv "${top[0]}" "$work/tree" && rmdir "$work/src" && mv "$work/tree" "$work/src"
fi
[[ -f "$work/src/Makefile" && -d "$work/src/criu" ]] || {
    echo "error: $tarball is not a CRIU source tree" >&2; exit 1; }
log="$out_root/build.log"
# Only the binary: no docs (asciidoc), no plugins, no libcriu. The notes about amdgpu and
# nftables support being off are harmless: neither is used.
if ! make -C "$work/src" -j"$(nproc)" criu >"$log" 2>&1; then
    echo "error: building CRIU failed (log: $log):" >&2
    grep -E 'error|Error' "$log" | tail -n 5 >&2 || tail -n 5 "$log" >&2
    exit 1
fi
mkdir -p "$work/bin"
install -m 0755 "$work/src/criu/criu" "$work/bin/criu"
"$work/bin/criu" --version >/dev/null
rm -rf "$work/src"
mv "$work" "$dest"
trap - EXIT
ln -sfn "$key/bin" "$out_root/bin"
echo "criu: built $("$dest/bin/criu" --version | head -n1) in ${dest#"$repo"/}" >&2
echo "$dest/bin"
