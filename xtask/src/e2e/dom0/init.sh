#!/bin/sh
# dom0's /init for the real-Xen suite inside QEMU (no systemd: far too slow
# under emulation). Brings up the Xen toolstack, runs the scenarios with
# /e2e/runner.sh, and reports to QEMU through isa-debug-exit (port 0xf4):
# byte 0 = all passed, 1 = some failed, 2 = watchdog, 3 = dom0 setup failed.
# Lines for the host start with RINGLET- (see xtask/src/e2e/report.rs).
export HOME=/root LANG=C LC_ALL=C
. /e2e/run.env
export PATH=/e2e/bin:/usr/lib/xen-$E2E_XEN/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
# Xen's hotplug scripts (locking.sh) loop forever without these.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

# Ends the QEMU run with status (v << 1) | 1.
qemu_exit() {
    printf "\\$(printf '%03o' "$1")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    # Still here: no isa-debug-exit device. Power off instead.
    echo o > /proc/sysrq-trigger
    sleep 10
}

# A step's dom0 uptime, for the serial log (the host does not echo these).
step() {
    echo "dom0-init: $* at $(cut -d' ' -f1 /proc/uptime)"
}

setup_failed() {
    echo "RINGLET-DOM0-FAILED $*"
    qemu_exit 3
}

# The watchdog bounds the whole run, whatever hangs.
(
    sleep "$E2E_WATCHDOG_S"
    echo "RINGLET-E2E-WATCHDOG after ${E2E_WATCHDOG_S}s"
    qemu_exit 2
) &

echo "RINGLET-DOM0-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-netback xen-blkback bridge loop; do
    modprobe "$m" || setup_failed "modprobe $m"
done
mount -t xenfs xenfs /proc/xen || setup_failed "mount xenfs"
step "modules loaded"

mkdir -p /run/xenstored /var/run/xen /var/log/xen/console /var/lib/xen
XENSTORED_ROOTDIR=/run/xenstored xenstored || setup_failed "xenstored"
i=0
until xenstore-read -s / >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -le 300 ] || setup_failed "xenstored did not answer within 30 s"
    sleep 0.1
done
step "xenstored up"
xen-init-dom0 >/dev/null || setup_failed "xen-init-dom0"
step "xen-init-dom0 done"
xenconsoled --log=guest --log-dir=/var/log/xen/console || setup_failed "xenconsoled"

ip link set lo up
ip link add "$E2E_BRIDGE" type bridge stp_state 0 forward_delay 0 || setup_failed "bridge"
ip addr add "$E2E_BRIDGE_ADDR" dev "$E2E_BRIDGE"
ip link set "$E2E_BRIDGE" up
step "bridge up"
step "memory: $(free -m | awk 'NR == 2 { print $2 " MB, " $7 " MB available" }')"

# Kernel messages stay in dmesg (the runner dumps them on a failure) instead
# of interleaving with the result lines on the console.
echo 4 > /proc/sys/kernel/printk

xl info > /run/xl-info.txt 2>&1 || setup_failed "xl info: $(tail -n 1 /run/xl-info.txt)"
echo "RINGLET-DOM0-READY uptime=$(cut -d' ' -f1 /proc/uptime)" \
    "xen=$(awk -F': *' '$1 ~ /^xen_version/ { print $2 }' /run/xl-info.txt)" \
    "virt_caps=$(awk -F': *' '$1 ~ /^virt_caps/ { gsub(/ /, ",", $2); print $2 }' /run/xl-info.txt)"

sh /e2e/runner.sh
status=$?
[ "$status" -eq 0 ] || status=1
qemu_exit "$status"
