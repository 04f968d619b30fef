#!/bin/sh
# build.sh OUTDIR: compile the static probe into OUTDIR/probe and, on x86_64, the minimal
# ELF interpreter into OUTDIR/loader (never committed).
set -eu
out="${1:?usage: build.sh OUTDIR}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$out"
gcc -static -O2 -Wall -Wextra -o "$out/probe" "$here/probe.c"
if [ "$(uname -m)" = x86_64 ]; then
    gcc -static -nostdlib -O2 -fno-builtin -Wall -Wextra -fno-stack-protector -DPROBE_LOADER \
        -o "$out/loader" "$here/probe.c"
fi
