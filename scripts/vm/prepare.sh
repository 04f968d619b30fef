#!/usr/bin/env bash
# scripts/vm/prepare.sh: get what scripts/vm/run.sh boots, once; later calls only check.
#
#   * qemu-system-x86 (+ kmod, cpio for the initramfs) from Debian's packages, if missing;
#   * Debian's stock kernel: the linux-image-amd64 package is only *downloaded* and unpacked
#     with dpkg-deb into the cache (nothing is installed in /boot, the host's kernel is not
#     touched), its modules indexed with depmod;
#   * a small initramfs: static busybox, the modules needed to reach the host over virtio
#     (9p, virtio-serial, virtio-blk, overlayfs) and scripts/vm/init.sh as /init.
#
# Cache: $OCIRUN_VM_DIR (default /var/tmp/ocirun-vm). Exit 0 when ready; exit 3 with one line
# "why" on stdout when this machine can't have the VM (no apt, no package, no qemu binary):
# the caller turns that into a skip.
set -uo pipefail
DIR=${OCIRUN_VM_DIR:-/var/tmp/ocirun-vm}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DEBIAN_FRONTEND=noninteractive
cant() { echo "$*"; exit 3; }

mkdir -p "$DIR" || cant "cannot create $DIR"
exec 9>"$DIR/.lock" && flock 9  # two runs at once share the cache safely

apt_updated=0
apt_update() {
    [ $apt_updated = 1 ] && return 0
    apt_updated=1
    apt-get -o DPkg::Lock::Timeout=300 update -qq </dev/null >/dev/null 2>&1
}

# --- host packages -------------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v depmod >/dev/null || missing+=(kmod)
command -v cpio >/dev/null || missing+=(cpio)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || cant "missing ${missing[*]} and not root to install them"
    command -v apt-get >/dev/null || cant "missing ${missing[*]} and no apt-get"
    echo "vm: installing ${missing[*]}" >&2
    apt_update
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" \
        </dev/null >/dev/null 2>&1 || cant "apt-get install ${missing[*]} failed"
fi
command -v qemu-system-x86_64 >/dev/null || cant "no qemu-system-x86_64"
[ -e /usr/share/qemu/qboot.rom ] || [ -e /usr/share/seabios/bios.bin ] \
    || cant "no firmware for qemu (qboot.rom / seabios)"
ldd /bin/busybox >/dev/null 2>&1 && cant "/bin/busybox is not static (busybox-static needed)"

# --- kernel --------------------------------------------------------------------------------
if [ ! -s "$DIR/kernel/release" ]; then
    command -v apt-get >/dev/null || cant "no apt-get to fetch a kernel package"
    rm -rf "$DIR/kernel" "$DIR/dl" && mkdir -p "$DIR/dl" || exit 1
    fetch() { (cd "$DIR/dl" && apt-get download "$1" </dev/null >/dev/null 2>&1); }
    fetch linux-image-amd64 || { apt_update; fetch linux-image-amd64; } \
        || cant "apt-get download linux-image-amd64 failed (no package lists / registry?)"
    # the meta package names the real image package in its Depends
    real=$(dpkg-deb -f "$DIR"/dl/linux-image-amd64_*.deb Depends \
           | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
    [ -n "$real" ] || cant "linux-image-amd64 names no kernel image package"
    fetch "$real" || cant "apt-get download $real failed"
    echo "vm: unpacking $real" >&2
    mkdir -p "$DIR/kernel.tmp"
    dpkg-deb -x "$DIR"/dl/"$real"_*.deb "$DIR/kernel.tmp" || cant "dpkg-deb -x $real failed"
    rel=$(ls "$DIR/kernel.tmp/lib/modules" | head -1)
    depmod -b "$DIR/kernel.tmp" "$rel" || cant "depmod failed"
    # keep only what is used: the image and the modules tree (System.map, config: dropped)
    mkdir -p "$DIR/kernel"
    mv "$DIR/kernel.tmp/boot/vmlinuz-$rel" "$DIR/kernel/vmlinuz"
    mv "$DIR/kernel.tmp/lib/modules" "$DIR/kernel/modules"
    rm -rf "$DIR/kernel.tmp" "$DIR/dl"
    echo "$rel" > "$DIR/kernel/release"
fi
rel=$(cat "$DIR/kernel/release")
mods=$DIR/kernel/modules/$rel

# --- initramfs -----------------------------------------------------------------------------
if [ ! -s "$DIR/initrd.img" ] || [ "$HERE/init.sh" -nt "$DIR/initrd.img" ] \
        || [ "$HERE/prepare.sh" -nt "$DIR/initrd.img" ]; then
    T=$(mktemp -d) || exit 1
    mkdir -p "$T"/{bin,dev,proc,sys,newroot,lib/ko}
    cp /bin/busybox "$T/bin/busybox"
    declare -A have=()
    take() {  # $1: a module path relative to $mods; its dependencies go first
        local m=$1 dep
        [ -n "${have[$m]:-}" ] && return 0
        have[$m]=1
        for dep in $(sed -n "s|^$m: *||p" "$mods/modules.dep"); do take "$dep"; done
        local ko=${m##*/}
        case "$ko" in  # busybox insmod takes plain .ko files
            *.ko.xz) xz -dc "$mods/$m" > "$T/lib/ko/${ko%.xz}"; ko=${ko%.xz};;
            *.ko.zst) zstd -qdc "$mods/$m" > "$T/lib/ko/${ko%.zst}"; ko=${ko%.zst};;
            *) cp "$mods/$m" "$T/lib/ko/";;
        esac
        echo "$ko" >> "$T/lib/ko/load-order"
    }
    for name in virtio_pci virtio_console virtio_blk 9pnet_virtio 9p overlay; do
        path=$(grep -E "(^|/)$name\.ko(\.[a-z]+)?:" "$mods/modules.dep" | cut -d: -f1 | head -1)
        [ -n "$path" ] && take "$path"  # else built in
    done
    cp "$HERE/init.sh" "$T/init" && chmod 755 "$T/init"
    (cd "$T" && find . | cpio -o -H newc --quiet | gzip -1) > "$DIR/initrd.img.tmp" \
        && mv "$DIR/initrd.img.tmp" "$DIR/initrd.img"
    rm -rf "$T"
fi
echo "vm: ready in $DIR (kernel $rel)" >&2
