#!/usr/bin/env bash
# scripts/vm/run.sh [--systemd] 'COMMAND': run COMMAND (a bash script) as root in a throwaway
# QEMU VM booted with cgroup v2 only, print its output, exit with its exit code.
#
# The guest runs Debian's stock kernel (prepare.sh) under TCG (no KVM needed) with
# cgroup_no_v1=all; its root is this host's / shared read-only over 9p under a tmpfs overlay,
# and this checkout is shared read-write at the same path, so .venv and bundles/ are used as
# built on the host. /dev/vda is a sparse scratch disk (for io.max). The working directory is
# $PWD when inside the checkout, else the checkout.
#   --systemd   systemd is pid 1 and COMMAND runs as a oneshot service (Delegate=yes);
#               without it, cgroup2 is mounted at /sys/fs/cgroup and COMMAND runs right away.
# env: OCIRUN_VM_DIR (prepare.sh's cache), VM_MEM (MiB, 2048), VM_CPUS (nproc), VM_CPU (max),
#      VM_TIMEOUT (s, 900), VM_LOG (keep the guest console here), VM_SCRATCH_MB (256),
#      VM_KDEBUG (kernel args instead of "quiet loglevel=3"; "ocirun.debug=1" traces /init).
# Exit: COMMAND's code; 124 on timeout; 125 when qemu could not start at all; 255 when no
# code came back (console tail printed).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd -P)
DIR=${OCIRUN_VM_DIR:-/var/tmp/ocirun-vm}
MODE=plain
if [ "${1:-}" = --systemd ]; then MODE=systemd; shift; fi
[ $# -ge 1 ] || { echo "usage: $0 [--systemd] 'COMMAND'" >&2; exit 2; }
[ -s "$DIR/kernel/release" ] && [ -s "$DIR/initrd.img" ] \
    || { echo "run.sh: no VM in $DIR: run scripts/vm/prepare.sh first" >&2; exit 2; }

CTL=$(mktemp -d /tmp/ocirun-vm.XXXXXX) || exit 1
LOG=${VM_LOG:-$CTL/console.log}
QPID=
cleanup() { [ -n "$QPID" ] && kill "$QPID" 2>/dev/null; rm -rf "$CTL"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
printf '%s\n' "$*" > "$CTL/cmd"
echo "$REPO" > "$CTL/repo"
case "$(pwd -P)" in "$REPO"|"$REPO"/*) pwd -P > "$CTL/cwd";; *) echo "$REPO" > "$CTL/cwd";; esac
truncate -s "${VM_SCRATCH_MB:-256}M" "$CTL/scratch.img"

KARGS="console=ttyS0 ${VM_KDEBUG:-quiet loglevel=3} panic=-1 rdinit=/init ocirun.mode=$MODE"
KARGS+=" cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 mitigations=off"
KARGS+=" tsc=reliable no_timer_check"
[ "$MODE" = systemd ] && KARGS+=" systemd.show_status=0 systemd.log_level=warning"
BIOS=()
[ -e /usr/share/qemu/qboot.rom ] && BIOS=(-bios /usr/share/qemu/qboot.rom)
share() {  # tag path extra-options
    echo "-virtfs" "local,path=$2,mount_tag=$1,multidevs=remap,$3"
}
# The guest's output port writes into a fifo that cat copies to our stdout as it comes (a
# stdio chardev would see stdin's EOF as "host closed" and block the guest's writes).
mkfifo "$CTL/out"
cat "$CTL/out" &
CAT=$!
T0=$SECONDS
timeout -k 10 "${VM_TIMEOUT:-900}" qemu-system-x86_64 \
    -accel tcg,thread=multi,tb-size=512 -cpu "${VM_CPU:-max}" -M q35 \
    -m "${VM_MEM:-2048}" -smp "${VM_CPUS:-$(nproc)}" "${BIOS[@]}" \
    -nodefaults -no-user-config -display none -no-reboot -net none \
    -kernel "$DIR/kernel/vmlinuz" -initrd "$DIR/initrd.img" -append "$KARGS" \
    $(share hostroot / security_model=none,readonly=on) \
    $(share repo "$REPO" security_model=passthrough) \
    $(share ctl "$CTL" security_model=none) \
    $(share kmods "$DIR/kernel/modules" security_model=none,readonly=on) \
    -drive "file=$CTL/scratch.img,format=raw,if=virtio,cache=unsafe" \
    -chardev "file,id=con,path=$LOG" -serial chardev:con \
    -chardev "file,id=out,path=$CTL/out" -device virtio-serial-pci \
    -device virtserialport,chardev=out,name=ocirun.out \
    </dev/null &
QPID=$!
wait "$QPID"
qrc=$?
QPID=
# qemu gone before it opened the fifo: open it once for writing so cat sees EOF
exec 3<>"$CTL/out"; exec 3>&-
wait "$CAT"
if [ -s "$CTL/rc" ]; then
    exit "$(cat "$CTL/rc")"
fi
if [ $qrc != 0 ] && [ $qrc != 124 ] && [ $((SECONDS - T0)) -le 3 ]; then
    echo "run.sh: qemu-system-x86_64 could not start (exit $qrc)" >&2; exit 125
elif [ $qrc = 124 ]; then
    echo "run.sh: the VM timed out after ${VM_TIMEOUT:-900}s; console tail:" >&2; rc=124
else
    echo "run.sh: no exit code came back (qemu exit $qrc); console tail:" >&2; rc=255
fi
tail -n 40 "$LOG" >&2
exit $rc
