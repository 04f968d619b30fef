#!/usr/bin/env bash
# Build BUNDLE/rootfs from the host's static busybox (package busybox-static).
# Nothing is downloaded.  Usage: scripts/mkbundle.sh BUNDLE_DIR
#
# Result: rootfs/bin/busybox plus one symlink per applet in rootfs/bin (and at
# the path `busybox --list-full` gives, e.g. usr/bin/env, when that differs),
# the usual top-level dirs, a minimal /etc/passwd and /etc/group, /tmp 1777.
# The rootfs is built in a temporary directory and renamed into place, so an
# interrupted run never leaves a half-built rootfs behind.  If BUNDLE/rootfs
# already exists it is left alone (use FORCE=1 to rebuild it).
set -euo pipefail

BUSYBOX=${BUSYBOX:-/bin/busybox}

if (($# != 1)); then
    echo "usage: $0 BUNDLE_DIR" >&2
    exit 2
fi
bundle=$1
rootfs=$bundle/rootfs

if [[ -d "$rootfs" && "${FORCE:-0}" != 1 ]]; then
    echo "mkbundle: $rootfs already exists (FORCE=1 to rebuild)"
    exit 0
fi

if [[ ! -x "$BUSYBOX" ]]; then
    echo "mkbundle: $BUSYBOX not found; install busybox-static (make deps)" >&2
    exit 1
fi
if ! applets=$("$BUSYBOX" --list 2>/dev/null) || [[ -z "$applets" ]]; then
    echo "mkbundle: $BUSYBOX does not look like busybox" >&2
    exit 1
fi
# A dynamically linked busybox would not run inside the bundle.
if command -v ldd >/dev/null && ldd "$BUSYBOX" >/dev/null 2>&1; then
    echo "mkbundle: $BUSYBOX is dynamically linked; need busybox-static" >&2
    exit 1
fi

mkdir -p "$bundle"
tmp=$(mktemp -d "$bundle/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
mkdir -p bin sbin usr/bin usr/sbin dev proc sys tmp etc root run var/tmp var/log home
chmod 1777 tmp var/tmp
chmod 700 root
install -m 0755 "$BUSYBOX" bin/busybox

# One symlink per applet in /bin, pointing at the binary next to it.
n=0
while IFS= read -r applet; do
    [[ -z "$applet" || "$applet" == busybox ]] && continue
    ln -sfn busybox "bin/$applet"
    n=$((n + 1))
done < <("$BUSYBOX" --list)

# Also at the path busybox suggests (sbin/ifconfig, usr/bin/env, ...), so
# scripts using absolute paths such as #!/usr/bin/env work.
while IFS= read -r path; do
    case $path in
        bin/*|"") continue ;;
        */*) ;;
        *) continue ;;            # e.g. "linuxrc" at the top level: skip
    esac
    [[ -e "$path" || -L "$path" ]] && continue
    mkdir -p "$(dirname "$path")"
    ln -s /bin/busybox "$path"
done < <("$BUSYBOX" --list-full 2>/dev/null || true)

cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > etc/group <<'GROUP'
root:x:0:
tty:x:5:
nogroup:x:65534:
GROUP
echo "ocirun-demo" > etc/hostname
: > etc/resolv.conf
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > etc/hosts
chmod 0644 etc/passwd etc/group etc/hostname etc/resolv.conf etc/hosts
chmod 0755 .
cd - >/dev/null

rm -rf "$rootfs"
mv "$tmp" "$rootfs"
trap - EXIT
echo "mkbundle: built $rootfs ($n busybox applets)"
