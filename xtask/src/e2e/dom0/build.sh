#!/bin/sh
# Builds the cached dom0 of the real-Xen suite: a Debian root file system with
# Xen's tools, trimmed into one cpio archive, plus the matching Xen hypervisor
# (uncompressed, for QEMU's multiboot loader) and the dom0 kernel.
#
# Run by `cargo xtask e2e` (xtask/src/e2e/dom0.rs) as root, never by hand:
#   build.sh WORKDIR OUTDIR
# with these variables set: SUITE MIRROR SECURITY (may be empty) XEN
# PACKAGES MODULES. The caller hashes this file and those variables into the
# cache key, so any change here rebuilds the dom0.
#
# Outputs in OUTDIR: xen, vmlinux, dom0.cpio, versions.txt.
set -eu

work=$1
out=$2
root=$work/rootfs
log=$work/build.log

step() { echo "xtask: dom0: $*" >&2; }
fail() {
    echo "xtask: dom0: FAILED: $*" >&2
    echo "xtask: dom0: last lines of $log:" >&2
    tail -n 25 "$log" >&2 || true
    exit 1
}

mkdir -p "$work" "$out"
: > "$log"

step "debootstrap --variant=minbase $SUITE from $MIRROR (log: $log)"
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >> "$log" 2>&1 \
    || fail "debootstrap"

{
    echo "deb $MIRROR $SUITE $SUITE-updates main"
    if [ -n "$SECURITY" ]; then
        echo "deb $SECURITY $SUITE-security main"
    fi
} > "$root/etc/apt/sources.list"
# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
# linux-image's hooks would build a 36 MB initrd that is never used.
chroot "$root" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs \
    >> "$log" 2>&1 || fail "dpkg-divert update-initramfs"
ln -sf /bin/true "$root/usr/sbin/update-initramfs"

step "apt-get install $PACKAGES"
# A private mount namespace: /proc inside the chroot goes away with it, even
# if this script is killed.
unshare --mount --fork sh -euc '
    root=$1 packages=$2 xen=$3
    mount -t proc proc "$root/proc"
    chroot "$root" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$root" \
        apt-get install -y -qq --no-install-recommends $packages
    chroot "$root" sh -c "cd /tmp && apt-get download -qq xen-hypervisor-$xen-amd64"
' sh "$root" "$PACKAGES" "$XEN" >> "$log" 2>&1 || fail "apt-get in the chroot"

step "hypervisor and kernel"
set -- "$root"/tmp/xen-hypervisor-"$XEN"-amd64_*.deb
[ $# -eq 1 ] && [ -f "$1" ] || fail "expected one xen-hypervisor-$XEN-amd64 package, found: $*"
deb=$1
hyp_version=$(dpkg-deb -f "$deb" Version)
utils_version=$(chroot "$root" dpkg-query -W -f='${Version}' "xen-utils-$XEN")
[ "$hyp_version" = "$utils_version" ] \
    || fail "hypervisor $hyp_version does not match xen-utils-$XEN $utils_version"
rm -rf "$work/hypervisor"
dpkg-deb -x "$deb" "$work/hypervisor"
gzip -dc "$work/hypervisor/boot/xen-$XEN-amd64.gz" > "$out/xen.tmp" || fail "gunzip xen"
mv "$out/xen.tmp" "$out/xen"

set -- "$root"/lib/modules/*
[ $# -eq 1 ] && [ -d "$1" ] || fail "expected one kernel in $root/lib/modules, found: $*"
kver=${1##*/}
# Xen would unpack the bzImage's XZ payload itself, which takes 15-20 s
# under emulation: hand it the ELF inside instead (66 MB, copied in a blink).
vmlinuz=$root/boot/vmlinuz-$kver
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
[ -n "$off" ] || fail "no XZ payload in $vmlinuz"
# xz stops with an error at the bzImage's trailer; the ELF is whole by then.
tail -c +$((off + 1)) "$vmlinuz" | xz -dc > "$out/vmlinux" 2>/dev/null || true
[ "$(head -c 4 "$out/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] \
    || fail "no ELF kernel in the XZ payload of $vmlinuz"

step "modules: $MODULES (and what they depend on)"
moddir=$root/lib/modules/$kver
keep=$work/modules.keep
: > "$keep"
for m in $MODULES; do
    modprobe -d "$root" -S "$kver" --show-depends "$m" >> "$keep" 2>> "$log" \
        || fail "modprobe --show-depends $m"
done
mv "$moddir" "$work/modules.all"
mkdir -p "$moddir"
for f in modules.order modules.builtin modules.builtin.modinfo; do
    [ -f "$work/modules.all/$f" ] && cp "$work/modules.all/$f" "$moddir/"
done
awk '$1 == "insmod" { print $2 }' "$keep" | sort -u | while read -r path; do
    rel=${path#"$moddir/"}
    mkdir -p "$moddir/$(dirname "$rel")"
    cp "$work/modules.all/$rel" "$moddir/$rel"
done
depmod -b "$root" "$kver" >> "$log" 2>&1 || fail "depmod"
rm -rf "$work/modules.all"

step "trim"
cd "$root"
rm -rf boot/* tmp/* var/cache/apt/* var/lib/apt/lists/* var/log/* \
    usr/share/doc usr/share/man usr/share/info usr/share/locale usr/share/i18n \
    usr/share/lintian usr/share/bash-completion usr/share/common-licenses \
    usr/share/zoneinfo usr/share/perl5 usr/share/perl usr/share/mime \
    usr/lib/python3* usr/bin/python3* usr/lib/x86_64-linux-gnu/perl* \
    usr/lib/x86_64-linux-gnu/perl-base usr/bin/perl* \
    usr/lib/x86_64-linux-gnu/gconv usr/lib/udev/hwdb.bin usr/lib/udev/hwdb.d \
    usr/lib/firmware lib/firmware usr/lib/klibc var/lib/dpkg/info \
    "usr/lib/xen-$XEN/bin/pygrub" "usr/lib/xen-$XEN/lib/python"*
mkdir -p var/log/xen/console var/lib/xen var/run/xen tmp
chmod 1777 tmp

step "cpio"
find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > "$out/dom0.cpio.tmp" \
    || fail "cpio"
mv "$out/dom0.cpio.tmp" "$out/dom0.cpio"

{
    echo "suite $SUITE"
    echo "mirror $MIRROR"
    echo "xen $hyp_version"
    echo "kernel $kver"
    echo "linux-image $(chroot "$root" dpkg-query -W -f='${Version}' "linux-image-$kver" 2>/dev/null || echo unknown)"
    echo "cpio_bytes $(wc -c < "$out/dom0.cpio")"
} > "$out/versions.txt"
step "done: $(tr '\n' ' ' < "$out/versions.txt")"
