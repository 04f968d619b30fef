#!/bin/busybox sh
# scripts/vm/init.sh: /init of the test VM's initramfs (busybox; see prepare.sh, run.sh).
#
# Builds the guest's root from what the host shares over virtio-9p:
#   hostroot  the host's / (read-only) under a tmpfs overlay: every write is thrown away
#   repo      the checkout, read-write, at the same path as on the host (so .venv works)
#   ctl       run.sh's control dir: cmd (the script to run), cwd, repo, rc (written here)
#   kmods     the guest kernel's modules -> /lib/modules
# then switches to it and runs ctl/cmd with bash, either straight away with cgroup2 mounted at
# /sys/fs/cgroup (ocirun.mode=plain) or as a oneshot service under systemd as pid 1
# (ocirun.mode=systemd). The command's output goes to the virtio port "ocirun.out"; its exit
# code to ctl/rc; then the VM powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
MODE=plain
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        ocirun.mode=*) MODE=${arg#ocirun.mode=};;
        ocirun.debug=1) set -x;;
    esac
done
while read -r ko; do insmod "/lib/ko/$ko" || echo "vm-init: insmod $ko failed"; done \
    < /lib/ko/load-order
give_up() {
    echo "vm-init: $*"
    dmesg | tail -n 15
    [ -d /newroot/run/ocirun-vm/ctl ] && echo 254 > /newroot/run/ocirun-vm/ctl/rc
    sync; poweroff -f
}
p9() { mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$3" "$1" "$2"; }

mkdir -p /lower /rw
p9 hostroot /lower cache=loose,ro || give_up "cannot mount the host root (9p)"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || give_up "cannot mount the overlay root"
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
# The host may itself be a container image: without its markers, systemd boots as on metal.
rm -f /newroot/.dockerenv /newroot/run/.containerenv
CTL=/newroot/run/ocirun-vm/ctl
mkdir -p "$CTL"
p9 ctl "$CTL" cache=none || give_up "cannot mount the control share"
p9 kmods /newroot/lib/modules cache=loose,ro 2>/dev/null
REPO=$(cat "$CTL/repo")
mkdir -p "/newroot$REPO"
p9 repo "/newroot$REPO" "${REPO_CACHE:-cache=loose},access=client" || give_up "cannot mount the checkout at $REPO"

# the virtio-serial port the host reads the command's output from
OUT=
for try in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    for port in /sys/class/virtio-ports/*; do
        [ "$(cat "$port/name" 2>/dev/null)" = ocirun.out ] && OUT=/dev/${port##*/}
    done
    [ -n "$OUT" ] && break
    sleep 0.1
done
[ -n "$OUT" ] || OUT=/dev/console

cp /bin/busybox /newroot/run/ocirun-vm/busybox
cat > /newroot/run/ocirun-vm/exec.sh <<EOS
#!/bin/bash
# Runs the host's command; its exit code goes back through ctl/rc, then power off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
cd "\$(cat /run/ocirun-vm/ctl/cwd)" 2>/dev/null || cd /
bash /run/ocirun-vm/ctl/cmd </dev/null >$OUT 2>&1
echo \$? > /run/ocirun-vm/ctl/rc
sync
/run/ocirun-vm/busybox poweroff -f
EOS
chmod 755 /newroot/run/ocirun-vm/exec.sh

mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev

if [ "$MODE" = systemd ]; then
    U=/newroot/run/systemd/system
    mkdir -p "$U"
    cat > "$U/ocirun-vm.target" <<'EOS'
[Unit]
Description=ocirun VM test run
Requires=basic.target dbus.socket ocirun-vm.service
After=basic.target
AllowIsolate=yes
JobTimeoutSec=300
JobTimeoutAction=poweroff-force
EOS
    cat > "$U/ocirun-vm.service" <<'EOS'
[Unit]
Description=ocirun VM test command
After=basic.target dbus.socket
[Service]
Type=oneshot
Delegate=yes
StandardInput=null
ExecStart=/run/ocirun-vm/exec.sh
EOS
    exec switch_root /newroot /lib/systemd/systemd --unit=ocirun-vm.target
fi

exec switch_root /newroot /bin/bash -c '
    mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
    mkdir -p /dev/pts /dev/shm /dev/mqueue
    mount -t devpts -o newinstance,gid=5,mode=620,ptmxmode=666 devpts /dev/pts
    mount -t tmpfs -o mode=1777 tmpfs /dev/shm
    mount -t mqueue mqueue /dev/mqueue 2>/dev/null
    mount -t bpf bpf /sys/fs/bpf 2>/dev/null
    ln -sfn /proc/self/fd /dev/fd
    ln -sfn /proc/self/fd/0 /dev/stdin; ln -sfn /proc/self/fd/1 /dev/stdout
    ln -sfn /proc/self/fd/2 /dev/stderr
    hostname ocirun-vm
    /run/ocirun-vm/busybox ip link set lo up
    exec /run/ocirun-vm/exec.sh'
