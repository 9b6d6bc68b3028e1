#!/bin/sh
# Builds the Linux guests of `cargo xtask bench xen`: Debian 12's kernel and
# two small initramfs, one with nginx and one with epoll-httpd, each with
# busybox and the Xen front-end modules. No chroot and no root needed: the
# packages come from the machine's own apt sources with `apt-get download`
# and are unpacked with dpkg-deb.
#
# Run by xtask (xtask/src/benchxen/linux.rs), never by hand:
#   linux-guest.sh WORKDIR OUTDIR
# with these variables set: EPOLL (the static epoll-httpd), INIT (the
# guest's /init), NGINX_CONF. The caller hashes this file and those inputs
# into the cache key.
#
# Outputs in OUTDIR: vmlinuz, initrd-nginx.gz, initrd-epoll.gz, versions.txt.
set -eu

work=$1
out=$2
log=$work/build.log

step() { echo "xtask: linux guest: $*" >&2; }
fail() {
    echo "xtask: linux guest: FAILED: $*" >&2
    tail -n 25 "$log" >&2 || true
    exit 1
}

rm -rf "$work"
mkdir -p "$work/debs" "$work/x" "$out"
: > "$log"

kernel=$(apt-cache depends linux-image-amd64 2>>"$log" \
    | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
[ -n "$kernel" ] || fail "apt-cache names no kernel for linux-image-amd64 (apt-get update?)"
packages="$kernel nginx busybox-static libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g"
step "apt-get download $packages"
(cd "$work/debs" && apt-get download -qq -o APT::Sandbox::User=root $packages) >> "$log" 2>&1 \
    || fail "apt-get download"
: > "$out/versions.txt.tmp"
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/x" || fail "dpkg-deb -x $deb"
    echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >> "$out/versions.txt.tmp"
done
x=$work/x

set -- "$x"/boot/vmlinuz-*
[ $# -eq 1 ] && [ -f "$1" ] || fail "expected one kernel in $kernel, found: $*"
cp "$1" "$out/vmlinuz.tmp"
kver=${1##*/vmlinuz-}
moddir=$x/lib/modules/$kver

# The base tree both guests share.
base=$work/base
mkdir -p "$base/bin" "$base/lib/modules" "$base/etc" "$base/proc" "$base/sys" "$base/dev" \
    "$base/run" "$base/tmp" "$base/srv"
cp "$x/bin/busybox" "$base/bin/busybox"
for applet in $("$base/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$base/bin/$applet"
done
for m in drivers/net/xen-netfront.ko drivers/block/xen-blkfront.ko; do
    [ -f "$moddir/kernel/$m" ] || fail "no $m in $kernel"
    deps=$(modinfo -F depends "$moddir/kernel/$m")
    [ -z "$deps" ] || fail "$m depends on $deps (only dependency-free modules are loaded)"
    cp "$moddir/kernel/$m" "$base/lib/modules/"
done
cp "$INIT" "$base/init"
chmod 755 "$base/init"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    > "$base/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$base/etc/group"

# nginx, with the shared libraries the loader says it needs.
tree=$work/nginx
cp -a "$base" "$tree"
mkdir -p "$tree/usr/sbin" "$tree/etc/nginx" "$tree/var/lib/nginx" "$tree/var/log/nginx" \
    "$tree/lib64" "$tree/lib/x86_64-linux-gnu"
cp "$x/usr/sbin/nginx" "$tree/usr/sbin/nginx"
cp "$NGINX_CONF" "$tree/etc/nginx/nginx.conf"
cp -L "$x/lib64/ld-linux-x86-64.so.2" "$tree/lib64/"
LD_LIBRARY_PATH=$x/lib/x86_64-linux-gnu:$x/usr/lib/x86_64-linux-gnu \
    "$x/lib64/ld-linux-x86-64.so.2" --list "$x/usr/sbin/nginx" > "$work/nginx.libs" 2>>"$log" \
    || fail "listing nginx's libraries"
awk '$1 !~ /^\// && $2 == "=>" && $3 ~ /^\// { print $1, $3 }' "$work/nginx.libs" | while read -r name path; do
    case "$path" in "$x"/*) ;; *) fail "nginx needs $name from outside the packages: $path" ;; esac
    cp -L "$path" "$tree/lib/x86_64-linux-gnu/$name"
done
grep -q 'not found' "$work/nginx.libs" && fail "nginx needs a library none of the packages has"

# epoll-httpd: one static binary.
tree=$work/epoll
cp -a "$base" "$tree"
cp "$EPOLL" "$tree/bin/epoll-httpd"
chmod 755 "$tree/bin/epoll-httpd"

for name in nginx epoll; do
    (cd "$work/$name" && find . -mindepth 1 | LC_ALL=C sort \
        | cpio -o -H newc -R 0:0 --quiet | gzip -9 -n) > "$out/initrd-$name.gz.tmp" \
        || fail "cpio $name"
done

mv "$out/vmlinuz.tmp" "$out/vmlinuz"
for name in nginx epoll; do
    mv "$out/initrd-$name.gz.tmp" "$out/initrd-$name.gz"
done
echo "kernel_release $kver" >> "$out/versions.txt.tmp"
mv "$out/versions.txt.tmp" "$out/versions.txt"
rm -rf "$work"
step "done: $(wc -c < "$out/vmlinuz") byte kernel, initramfs $(wc -c < "$out/initrd-nginx.gz") (nginx) and $(wc -c < "$out/initrd-epoll.gz") (epoll) bytes"
