# net: apps/netecho on real Xen (issue 5), netfront against Linux's
# xen-netback on dom0's bridge. The contract with the appliance (console
# lines) is in docs/network.md, section "On real Xen"; change both together.
#
# Run 1, static address (ip=<net>.2/24): dom0 pings it, sends 1 MiB of
# random bytes through its TCP echo with nc and compares what comes back,
# holds 50 connections open at once each echoing its own payload, sends
# UDP datagrams through its UDP echo, then `xl shutdown`.
# Run 2, DHCP: udhcpd on the bridge, the appliance started without ip=;
# dom0 reads the leased address from its console, checks it against
# udhcpd's lease for its MAC, pings it and echoes through it.

port=7
bulk_bytes=1048576
conns=50
conn_bytes=1000

case "$E2E_BRIDGE_ADDR" in
    */24) ;;
    *) e2e_fail "the net scenario needs a /24 on the bridge, not $E2E_BRIDGE_ADDR" ;;
esac
dom0_ip=${E2E_BRIDGE_ADDR%/*}
net=${dom0_ip%.*}
guest_ip=$net.2

# A figure's value from "key=value" in a line.
kv() {
    echo "$2" | sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p"
}

# Waits until the guest answers a ping (ARP, the link), bounded: TRIES
# pings of up to 2 s each. Logs the first answer's rtt and which try it was.
wait_ping() {
    local i=1 out
    until out=$(ping -n -c 1 -W 2 "$1" 2>&1); do
        i=$((i + 1))
        [ "$i" -le "$2" ] || e2e_fail "$1 does not answer ping after $2 tries"
    done
    e2e_log "first ping of $1 answered on try $i: $(echo "$out" | grep -o 'time=[0-9.]* ms')"
}

# ping -c N: reports rtt min/avg/max (figures LABEL_rtt_*_ms); fails on loss.
ping_figures() {
    local addr=$1 count=$2 label=$3 out rtt
    out=$(ping -c "$count" -i 0.2 -W 2 "$addr" 2>&1) \
        || e2e_fail "ping -c $count $addr: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
    echo "$out" | grep -q " $count received, 0% packet loss" \
        || e2e_fail "ping -c $count $addr lost packets: $(echo "$out" | grep 'packet loss')"
    rtt=$(echo "$out" | sed -n 's|^rtt min/avg/max/mdev = \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/.*|\1 \2 \3|p')
    [ -n "$rtt" ] || e2e_fail "no rtt line from ping: $(echo "$out" | tail -n 1)"
    set -- $rtt
    e2e_figure "${label}rtt_min_ms" "$1" ms
    e2e_figure "${label}rtt_avg_ms" "$2" ms
    e2e_figure "${label}rtt_max_ms" "$3" ms
    e2e_log "ping $addr: $count of $count, rtt min/avg/max $1/$2/$3 ms"
}

# Sends FILE through the TCP echo at ADDR with nc and compares; figures
# LABEL_ms and LABEL_mib_s (the bytes went both ways at once).
nc_echo() {
    local addr=$1 file=$2 label=$3 bytes start end ms cpu
    bytes=$(wc -c < "$file")
    cpu=$(guest_cpu_s "$dom")
    start=$(e2e_now_ns)
    timeout 60 nc -N "$addr" "$port" < "$file" > "$file.back" 2> "$E2E_OUT/nc.err" \
        || e2e_fail "nc $addr $port with $bytes bytes: status $? $(head -c 200 "$E2E_OUT/nc.err"), $(wc -c < "$file.back") bytes back"
    end=$(e2e_now_ns)
    cmp -s "$file" "$file.back" \
        || e2e_fail "echo of $bytes bytes differs: $(wc -c < "$file.back") bytes back, first difference $(cmp "$file" "$file.back" 2>&1 | head -n 1)"
    [ "$(sha256sum < "$file")" = "$(sha256sum < "$file.back")" ] \
        || e2e_fail "sha256 of the echo differs"
    ms=$(e2e_ms_between "$start" "$end")
    e2e_figure "${label}_guest_cpu_s" "$(echo "$cpu $(guest_cpu_s "$dom")" | awk '{ printf "%.1f", $2 - $1 }')" s
    e2e_figure "${label}_ms" "$ms" ms
    e2e_figure "${label}_mib_s" "$(echo "$bytes $ms" | awk '{ printf "%.2f", $1 / 1048576 / ($2 / 1000) }')" MiB/s
    e2e_log "nc: $bytes bytes echoed byte for byte in $ms ms"
}

# The guest's CPU time so far, in seconds (xl list, 0.1 s resolution).
guest_cpu_s() {
    xl list "$1" | awk 'NR == 2 { print $6 }'
}

# The guest's CPU time over IDLE_S seconds without traffic (figure
# LABEL_idle_cpu_s): an idle appliance sleeps in Xen (no busy polling), so
# it must use well under a third of it.
idle_cpu() {
    local dom=$1 idle_s=$2 label=$3 before used
    before=$(guest_cpu_s "$dom")
    sleep "$idle_s"
    used=$(echo "$before $(guest_cpu_s "$dom")" | awk '{ printf "%.1f", $2 - $1 }')
    e2e_figure "${label}idle_cpu_s" "$used" s
    echo "$used $idle_s" | awk '{ exit !($1 * 3 < $2) }' \
        || e2e_fail "$dom used $used s of CPU in $idle_s s without traffic"
}

# Fails if dom0's kernel logged anything about the guest's vif besides
# "Guest Rx ready" (xen-netback reports protocol errors of a frontend
# there: "Cross page boundary", "Too many slots", "Invalid tx request",
# "Guest Rx stalled", a fatal error that disables the vif...).
netback_quiet() {
    local domid=$1 said
    said=$(dmesg | grep "vif vif-$domid-" | grep -v ': Guest Rx ready$' || true)
    [ -z "$said" ] || e2e_fail "xen-netback on domain $domid's vif: $(echo "$said" | head -n 2 | tr '\n' ' ')"
}

# xl shutdown, the guest's summary, a clean exit.
shut_down() {
    local dom=$1
    netback_quiet "$E2E_DOMID"
    xl shutdown "$dom" > /dev/null 2>&1 || e2e_fail "xl shutdown $dom"
    e2e_wait_console 'netecho: (done|main failed)|panic' 30 > "$E2E_OUT/line"
    grep -q 'netecho: done' "$E2E_OUT/line" \
        || e2e_fail "guest: $(tr -d '\r' < "$E2E_OUT/line")"
    e2e_expect_clean_exit "$dom" 30
    tr -d '\r' < "$E2E_CONSOLE" > "$E2E_OUT/console.$dom"
    e2e_destroy "$dom"
}

# --- Run 1: a static address.
dom=$E2E_DOMAIN
cfg=$(e2e_config EXTRA="ip=$guest_ip/24 gw=$dom0_ip" MAC=00:16:3e:00:00:02)
e2e_create "$cfg" "$dom"
e2e_wait_first_line
e2e_wait_console 'netecho: listening|main failed|panic' 60 > "$E2E_OUT/line"
grep -q 'netecho: listening' "$E2E_OUT/line" \
    || e2e_fail "guest: $(tr -d '\r' < "$E2E_OUT/line")"
up=$(e2e_now_ns)
e2e_figure create_to_listening_ms "$(e2e_ms_between "$E2E_CREATE_START" "$up")" ms
line=$(e2e_wait_console 'netecho: vif0 ' 5 | tr -d '\r')
e2e_log "${line#*netecho: }"
e2e_figure netfront_connect_ms "$(echo "$line" | sed -n 's/.* connected in \([0-9]*\) ms.*/\1/p')" ms
line=$(e2e_wait_console 'netecho: ip ' 5 | tr -d '\r')
echo "$line" | grep -q "netecho: ip $guest_ip/24 gw $dom0_ip (static)" \
    || e2e_fail "guest's address: ${line#*netecho: }; want $guest_ip/24 gw $dom0_ip (static)"

# Ping.
wait_ping "$guest_ip" 10
e2e_figure first_ping_ms "$(e2e_ms_between "$up" "$(e2e_now_ns)")" ms
idle_cpu "$dom" 3 ""
ping_figures "$guest_ip" 5 ""

# 1 MiB of random bytes through the TCP echo.
head -c "$bulk_bytes" /dev/urandom > "$E2E_OUT/bulk"
nc_echo "$guest_ip" "$E2E_OUT/bulk" transfer_1mib

# 50 connections open at once, each echoing its own payload.
out=$("$E2E_DIR/net-echo" conc "$guest_ip" "$port" "$conns" "$conn_bytes" 30000 2>&1) \
    || e2e_fail "$conns connections: $out"
e2e_figure conns50_connect_ms "$(kv connected_ms "$out")" ms
e2e_figure conns50_total_ms "$(kv total_ms "$out")" ms
e2e_log "$conns connections open at once, each echoed $conn_bytes bytes: $out"

# UDP echo.
out=$("$E2E_DIR/net-echo" udp "$guest_ip" "$port" 50 1400 20000 2>&1) || e2e_fail "udp: $out"
e2e_figure udp_rtt_avg_us "$(kv rtt_avg_us "$out")" us
e2e_log "udp: $out"

shut_down "$dom"
console=$E2E_OUT/console.$dom
closed=$(grep -c 'netecho: tcp .* closed: ' "$console" || true)
failed_lines=$(grep -c 'netecho: tcp .* failed: ' "$console" || true)
want=$((conns + 1))
[ "$closed" -eq "$want" ] && [ "$failed_lines" -eq 0 ] \
    || e2e_fail "guest logged $closed closed and $failed_lines failed connections; want $want closed: $(grep -m 1 'netecho: tcp .* failed: ' "$console")"
grep -q "netecho: tcp .* closed: $bulk_bytes bytes" "$console" \
    || e2e_fail "guest logged no connection of $bulk_bytes bytes"
totals=$(grep -m 1 'netecho: totals ' "$console") || e2e_fail "no totals line"
e2e_log "${totals#*netecho: }"
open_max=$(echo "$totals" | sed -n 's/.*(0 failed, \([0-9]*\) open at most).*/\1/p')
[ -n "$open_max" ] && [ "$open_max" -ge "$conns" ] \
    || e2e_fail "the guest never held $conns connections at once: ${totals#*netecho: }"
echo "$totals" | grep -q "udp 50 datagrams" || e2e_fail "guest's udp count: ${totals#*netecho: }"
nf=$(grep -m 1 'netecho: netfront ' "$console") || e2e_fail "no netfront line"
e2e_log "${nf#*netecho: }"
echo "$nf" | grep -q ' 0 errors, 0 malformed), tx .* (0 errors' \
    || e2e_fail "netfront counted errors: ${nf#*netecho: }"
# Transmit checksum offload is on by default: the TCP and UDP frames above
# went with NETTXF_csum_blank, and Linux netback took them.
echo "$nf" | grep -q ' [1-9][0-9]* csum offloaded' \
    || e2e_fail "no frame went with checksum offload: ${nf#*netecho: }"
rate=$(sed -n "s/.*netecho: tcp .* closed: $bulk_bytes bytes in [0-9]* ms (\([0-9.]*\) MiB\/s).*/\1/p" "$console")
e2e_figure guest_transfer_1mib_mib_s "$rate" MiB/s

# --- Run 2: DHCP from udhcpd on the bridge.
dom=$E2E_DOMAIN-dhcp
mac=00:16:3e:00:00:03
leases=$E2E_OUT/udhcpd.leases
cat > "$E2E_OUT/udhcpd.conf" <<EOF
start $net.100
end $net.150
interface $E2E_BRIDGE
lease_file $leases
pidfile $E2E_OUT/udhcpd.pid
max_leases 51
option subnet 255.255.255.0
option router $dom0_ip
option lease 600
EOF
: > "$leases"
# Bounded by timeout; signals go to udhcpd itself (its pidfile), since
# timeout would die of a SIGUSR1 rather than pass it on.
timeout 120 busybox udhcpd -f "$E2E_OUT/udhcpd.conf" > "$E2E_OUT/udhcpd.log" 2>&1 &
udhcpd_timeout=$!
trap 'kill $udhcpd_timeout 2>/dev/null || true' EXIT
udhcpd=$(e2e__wait 10 test -s "$E2E_OUT/udhcpd.pid" && cat "$E2E_OUT/udhcpd.pid") \
    || e2e_fail "udhcpd did not start: $(tail -n 3 "$E2E_OUT/udhcpd.log" | tr '\n' ' ')"
cfg=$(e2e_config NAME="$dom" EXTRA="" MAC=$mac)
e2e_create "$cfg" "$dom"
e2e_wait_first_line dhcp
e2e_wait_console 'netecho: listening|main failed|panic' 90 > "$E2E_OUT/line"
grep -q 'netecho: listening' "$E2E_OUT/line" \
    || e2e_fail "dhcp guest: $(tr -d '\r' < "$E2E_OUT/line")"
line=$(e2e_wait_console 'netecho: ip ' 5 | tr -d '\r')
lease_ip=$(echo "$line" | sed -n "s|.*netecho: ip \\($net\\.[0-9]*\\)/24 gw $dom0_ip (dhcp) after \\([0-9]*\\) ms.*|\\1|p")
[ -n "$lease_ip" ] || e2e_fail "dhcp guest's address: ${line#*netecho: }"
host=${lease_ip##*.}
[ "$host" -ge 100 ] && [ "$host" -le 150 ] || e2e_fail "leased $lease_ip, outside $net.100-150"
e2e_figure dhcp.lease_ms "$(echo "$line" | sed -n 's/.* after \([0-9]*\) ms.*/\1/p')" ms
e2e_log "dhcp: the guest took $lease_ip"
# udhcpd writes its lease file when it gets SIGUSR1.
lease_written() {
    busybox dumpleases -f "$leases" > "$E2E_OUT/leases.txt" 2>&1 \
        && grep -qi "^$mac " "$E2E_OUT/leases.txt"
}
kill -USR1 "$udhcpd"
e2e__wait 10 lease_written \
    || e2e_fail "udhcpd wrote no lease for $mac: $(tr '\n' ' ' < "$E2E_OUT/leases.txt"); udhcpd: $(tail -n 3 "$E2E_OUT/udhcpd.log" | tr '\n' ' ')"
grep -i "^$mac " "$E2E_OUT/leases.txt" | grep -q " $lease_ip " \
    || e2e_fail "udhcpd's lease for $mac is not $lease_ip: $(grep -i "^$mac " "$E2E_OUT/leases.txt")"
e2e_log "udhcpd: $(grep -i "^$mac " "$E2E_OUT/leases.txt")"
wait_ping "$lease_ip" 10
idle_cpu "$dom" 3 dhcp.
ping_figures "$lease_ip" 3 dhcp.
head -c 65536 /dev/urandom > "$E2E_OUT/small"
nc_echo "$lease_ip" "$E2E_OUT/small" dhcp.transfer_64k
shut_down "$dom"
kill "$udhcpd_timeout" 2>/dev/null || true
trap - EXIT
