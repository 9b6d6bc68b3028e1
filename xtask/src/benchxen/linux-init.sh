#!/bin/sh
# /init of the Linux guests of `cargo xtask bench xen` (busybox sh, PID 1).
# Brings up the network and the site, starts the server, prints one line
# when it serves, and powers off if the server exits.
#
# Kernel command line (xl's `extra`), words this script reads:
#   server=nginx|epoll   which server to run (the initramfs holds one)
#   ip=A.B.C.D/N         the guest's address (as the Ringlet httpd takes it)
#   gw=A.B.C.D           the default gateway
# The site is the ustar image on the first vbd (/dev/xvda), unpacked into a
# tmpfs at /srv, as the Ringlet httpd serves the same image from its vbd.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t devtmpfs devtmpfs /dev
# The initramfs has no /dev/console, so PID 1 started without stdio.
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 tmpfs /run

say() { echo "ringlet-bench-guest: $* uptime=$(cut -d' ' -f1 /proc/uptime)"; }
die() {
    say "FAILED: $*"
    poweroff -f
    sleep 10
}

server= ip= gw=
for word in $(cat /proc/cmdline); do
    case "$word" in
        server=*) server=${word#server=} ;;
        ip=*) ip=${word#ip=} ;;
        gw=*) gw=${word#gw=} ;;
    esac
done
[ -n "$server" ] && [ -n "$ip" ] || die "need server= and ip= on the command line"
say "init (server=$server ip=$ip gw=$gw)"

insmod /lib/modules/xen-netfront.ko || die "insmod xen-netfront"
insmod /lib/modules/xen-blkfront.ko || die "insmod xen-blkfront"
# Both devices appear once their xenbus handshakes finish: bounded waits.
i=0
until [ -e /sys/class/net/eth0 ] && [ -b /dev/xvda ]; do
    i=$((i + 1))
    [ "$i" -le 300 ] || die "no eth0 or /dev/xvda after 30 s"
    sleep 0.1
done

ip link set lo up
ip addr add "$ip" dev eth0 || die "ip addr add $ip"
ip link set eth0 up || die "ip link set eth0 up"
[ -z "$gw" ] || ip route add default via "$gw" || die "ip route add default via $gw"

mount -t tmpfs -o mode=755 tmpfs /srv
tar -xf /dev/xvda -C /srv || die "unpacking the site from /dev/xvda"
say "site: $(ls /srv | wc -l) files, $(du -sk /srv | cut -f1) KiB"

case "$server" in
    nginx)
        mkdir -p /var/lib/nginx /var/log/nginx /run
        /usr/sbin/nginx -c /etc/nginx/nginx.conf &
        ;;
    epoll)
        /bin/epoll-httpd -q -p 80 /srv &
        ;;
    *) die "unknown server $server" ;;
esac
pid=$!
say "serving ($server, pid $pid)"
wait "$pid"
die "$server exited with status $?"
