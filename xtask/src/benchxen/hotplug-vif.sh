#!/bin/sh
# The vif hotplug script of every `cargo xtask bench xen` guest (xl's
# `script=`): puts the backend interface on the bridge and says so. It does
# what Debian's vif-bridge does for this setup and nothing more; that one
# (bash, locks, a dozen helper processes) takes seconds under emulation and
# would hide the guests' own boot times in `xl create`. The same for every
# guest, so the comparison stays fair. libxl runs it with the action as $1
# and `vif` (the interface) and XENBUS_PATH in the environment.
set -u
case "$1" in
online | add)
    bridge=$(xenstore-read "$XENBUS_PATH/bridge") || exit 1
    ip link set dev "$vif" master "$bridge" up || exit 1
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
offline | remove)
    ip link set dev "$vif" down 2> /dev/null
    exit 0
    ;;
esac
