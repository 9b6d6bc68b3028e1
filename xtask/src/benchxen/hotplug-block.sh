#!/bin/sh
# The vbd hotplug script of every `cargo xtask bench xen` guest (xl's
# `script=`): attaches the image to a loop device and hands its numbers to
# blkback. What Debian's `block` script does for a file, without its
# locking and sharing checks (seconds under emulation, the same for every
# guest; see hotplug-vif.sh). libxl runs it with the action as $1 and
# XENBUS_PATH in the environment.
set -u
case "$1" in
add)
    file=$(xenstore-read "$XENBUS_PATH/params") || exit 1
    ro=
    [ "$(xenstore-read "$XENBUS_PATH/mode")" = r ] && ro=-r
    dev=$(losetup -f --show $ro "$file") || exit 1
    mm=$(stat -L -c '%t:%T' "$dev") || exit 1
    xenstore-write "$XENBUS_PATH/node" "$dev" \
        "$XENBUS_PATH/physical-device" "$mm" \
        "$XENBUS_PATH/physical-device-path" "$dev" \
        "$XENBUS_PATH/hotplug-status" connected
    ;;
remove)
    dev=$(xenstore-read "$XENBUS_PATH/node" 2> /dev/null) && losetup -d "$dev"
    exit 0
    ;;
esac
