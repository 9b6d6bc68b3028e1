# demo: the dom0 side of `cargo xtask demo` (xtask/src/e2e/demo.rs), run by
# the suite's runner as a scenario named "demo" (so a failure gets the same
# diagnostics). Starts the httpd appliance with the demo site, forwards a
# port to it, says when it serves, and on the host's word stops it with
# `xl shutdown`.
#
# $E2E_DIR/demo.env (written by demo.rs) sets:
#   DEMO_NIC      the NIC module to load for QEMU's user network (empty with xl)
#   DEMO_LISTEN   where ringlet-forward listens (0.0.0.0:8080 in QEMU's dom0,
#                 127.0.0.1:<port> on a Xen host)
#   DEMO_CONTROL  where the host's commands come from, one per line: dom0's
#                 console /dev/hvc0 (QEMU's stdin) or a FIFO on a Xen host.
#                 `stop` stops the demo.
#   DEMO_EXTRA    the appliance's command line
#   DEMO_PROBE    the path fetched to see that it serves
#   DEMO_URL      the URL the host prints
#
# Lines for the host: `RINGLET-DEMO-SERVING <url>` once the appliance answers
# through the forward, `RINGLET-DEMO-GUEST <line>` for each line of its
# console, `RINGLET-DEMO-STOPPED <state>` after the shutdown.
. "$E2E_DIR/demo.env"

ip=10.0.0.2
mac=00:16:3e:00:00:02   # httpd.cfg
dom=$E2E_DOMAIN
out=$E2E_OUT
listen_port=${DEMO_LISTEN##*:}

# The known MAC as a static neighbour: the first SYNs go out without
# waiting for ARP.
ip neigh replace "$ip" lladdr "$mac" dev "$E2E_BRIDGE" nud permanent
pids=
stop_helpers() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    ip neigh del "$ip" dev "$E2E_BRIDGE" 2>/dev/null || true
}
trap stop_helpers EXIT

if [ -n "$DEMO_NIC" ]; then
    # QEMU's user network: dom0 is 10.0.2.15, and QEMU delivers the host's
    # 127.0.0.1:<port> to dom0's :8080.
    modprobe "$DEMO_NIC" || e2e_fail "modprobe $DEMO_NIC"
    i=0
    until [ -e /sys/class/net/eth0 ]; do
        i=$((i + 1))
        [ "$i" -le 100 ] || e2e_fail "no eth0 10 s after modprobe $DEMO_NIC"
        sleep 0.1
    done
    ip addr add 10.0.2.15/24 dev eth0 || e2e_fail "ip addr add 10.0.2.15/24 dev eth0"
    ip link set eth0 up || e2e_fail "ip link set eth0 up"
    e2e_log "eth0 ($DEMO_NIC) up as 10.0.2.15 on QEMU's user network"
fi

cfg=$(e2e_config EXTRA="$DEMO_EXTRA")
e2e_create "$cfg" "$dom"

# The appliance's console, line by line, for the host to show.
tail -n +1 -F --pid=$$ "$E2E_CONSOLE" 2>/dev/null \
    | sed -u -e 's/\r$//' -e 's/^/RINGLET-DEMO-GUEST /' &
pids="$pids $!"

# Serving: a 200 for the probe, polled every 0.1 s, at most 90 s.
deadline=$(( $(date +%s) + 90 ))
while :; do
    code=$(curl -s --connect-timeout 0.5 --max-time 5 -o /dev/null -w '%{http_code}' \
        "http://$ip$DEMO_PROBE" || true)
    [ "$code" = 200 ] && break
    [ "$(date +%s)" -lt "$deadline" ] \
        || e2e_fail "no 200 for GET http://$ip$DEMO_PROBE within 90 s of xl create (last status $code)"
    case "$(e2e_state "$dom")" in
        ???s*|gone) e2e_fail "the appliance stopped before serving (state $(e2e_state "$dom"))" ;;
    esac
    sleep 0.1
done
first=$(e2e_now_ns)
e2e_figure create_to_first_200_ms "$(e2e_ms_between "$E2E_CREATE_START" "$first")" ms

ringlet-forward -q "$DEMO_LISTEN" "$ip:80" > "$out/forward.log" 2>&1 &
fwd=$!
pids="$pids $fwd"
i=0
until grep -q 'listening on' "$out/forward.log"; do
    i=$((i + 1))
    kill -0 "$fwd" 2>/dev/null || e2e_fail "ringlet-forward: $(tail -n 1 "$out/forward.log")"
    [ "$i" -le 50 ] || e2e_fail "ringlet-forward not listening after 5 s"
    sleep 0.1
done
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$listen_port$DEMO_PROBE" || true)
[ "$code" = 200 ] || e2e_fail "GET through the forward (127.0.0.1:$listen_port$DEMO_PROBE): status $code"
e2e_log "$(cat "$out/forward.log")"
echo "RINGLET-DEMO-SERVING $DEMO_URL"

# Commands and events, one per line, into one FIFO: the host's lines (a
# relay reading DEMO_CONTROL) and `guest-down` if the domain stops by
# itself (polled every 5 s).
mkfifo "$out/events"
(
    while :; do
        if read -r line < "$DEMO_CONTROL"; then
            echo "$line"
        else
            sleep 1
        fi
    done
) > "$out/events" &
pids="$pids $!"
(
    while sleep 5; do
        case "$(e2e_state "$dom")" in
            ???s*|gone) echo guest-down; break ;;
        esac
    done
) > "$out/events" &
pids="$pids $!"

while read -r event; do
    case "$event" in
        stop) break ;;
        guest-down)
            tail -n 20 "$E2E_CONSOLE" | sed 's/^/  | /'
            e2e_fail "the appliance stopped by itself (state $(e2e_state "$dom"))"
            ;;
        *) e2e_log "ignored command: $event" ;;
    esac
done < "$out/events"

e2e_log "stopping: xl shutdown $dom"
kill "$fwd" 2>/dev/null || true
t0=$(e2e_now_ns)
xl shutdown "$dom" > "$out/xl-shutdown" 2>&1 || e2e_fail "xl shutdown: $(tail -n 1 "$out/xl-shutdown")"
e2e_expect_clean_exit "$dom" 30
t1=$(e2e_now_ns)
e2e_figure shutdown_ms "$(e2e_ms_between "$t0" "$t1")" ms
# The console's last lines (the tail above may not have sent them yet).
sleep 1
echo "RINGLET-DEMO-STOPPED $(e2e_state "$dom")"
