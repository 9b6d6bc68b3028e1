# bench-<kind>: one guest of `cargo xtask bench xen` on its own (the other
# guests are not running): measured boots, the site checked, the network's
# round trip, then the smallest memory that serves the site. The load runs
# are in bench-load.sh, with all guests up and the runs interleaved.
# Sourced after bench-lib.sh; BENCH_KIND comes from bench.env.

bench_guest "$BENCH_KIND" 10.0.0.2 00:16:3e:00:00:02
trap 'ip neigh del "$BENCH_IP" dev "$E2E_BRIDGE" 2>/dev/null || true' EXIT

# bench_parallel N: N requests for the smallest file at once, each on its
# own connection (the load runs open at most 64); 0 when all are 200.
bench_parallel() {
    local i=0 ok
    : > "$E2E_OUT/parallel.cfg"
    while [ "$i" -lt "$1" ]; do
        printf 'url = "%s"\noutput = "/dev/null"\n' "$BENCH_URL/$BENCH_SMALLEST" \
            >> "$E2E_OUT/parallel.cfg"
        i=$((i + 1))
    done
    ok=$(curl -s --parallel --parallel-immediate --parallel-max "$1" \
        --max-time "$BENCH_BOOT_TIMEOUT_S" -w '%{http_code}\n' -K "$E2E_OUT/parallel.cfg" \
        2> /dev/null | grep -c '^200$' || true)
    echo "$ok of $1 answered 200" > "$E2E_OUT/parallel.err"
    [ "$ok" -eq "$1" ]
}

# bench_try_memory MEMORY_MB: 0 when a guest with that much memory boots,
# serves the whole site, answers 64 requests at once on 64 connections
# (the most the load runs open), and serves the whole site again. (64
# connections on the 1 MiB file would take minutes under emulation.)
bench_try_memory() {
    local mem=$1 dom=$E2E_DOMAIN-m$1 cfg waited=0 served= why=
    cfg=$(bench_config "$mem" "$dom")
    if ! xl create "$cfg" > "$E2E_OUT/xl-create.$dom.log" 2>&1; then
        why="xl create failed: $(grep -i -m 2 -e error -e fail "$E2E_OUT/xl-create.$dom.log" \
            | grep -v -i destr | head -n 1)"
    else
        while [ "$waited" -lt "$BENCH_TRY_TIMEOUT_S" ]; do
            if "$BENCH_TOOL" wait200 "$BENCH_IP" 80 /hello.txt 2000 > /dev/null 2>&1; then
                served=1
                break
            fi
            waited=$((waited + 2))
            case "$(e2e_state "$dom")" in gone|???s*) break ;; esac
        done
        if [ -z "$served" ]; then
            why="no 200 after ${waited} s (state $(e2e_state "$dom"))"
        elif ! bench_verify; then
            why=$(cat "$E2E_OUT/verify.err")
        elif ! bench_parallel 64; then
            why="64 requests at once: $(cat "$E2E_OUT/parallel.err")"
        elif ! bench_verify; then
            why="after 64 at once: $(cat "$E2E_OUT/verify.err")"
        fi
    fi
    if [ -n "$why" ] && [ -f "$E2E_CONSOLE_DIR/guest-$dom.log" ]; then
        tail -n 5 "$E2E_CONSOLE_DIR/guest-$dom.log" | tr -d '\r' | sed "s/^/  $dom| /"
    fi
    e2e_destroy "$dom"
    if [ -z "$why" ]; then
        e2e_log "memory $mem MB: serves the site"
        bench_figure "bisect.m$mem" 1 ok
        return 0
    fi
    e2e_log "memory $mem MB: $why"
    bench_figure "bisect.m$mem" 0 ok
    return 1
}

# --- 1. Measured boots; the first one also checks the site and the network.
i=1
while [ "$i" -le "$BENCH_BOOTS" ]; do
    bench_boot "$BENCH_MEMORY_MB" "$E2E_DOMAIN" "boot$i"
    if [ "$i" -eq 1 ]; then
        BENCH_FIRST_BOOT_MS=$BENCH_BOOT_MS
        if [ "$BENCH_KIND" != ringlet ]; then
            line=$(e2e_wait_console 'ringlet-bench-guest: serving' 30)
            uptime=$(echo "$line" | sed -n 's/.*uptime=\([0-9.]*\).*/\1/p')
            [ -z "$uptime" ] || bench_figure boot1.guest_uptime_serving_s "$uptime" s
        fi
        bench_verify || e2e_fail "$(cat "$E2E_OUT/verify.err")"
        e2e_log "the site checks out: $BENCH_FILES"
        # The network's round trip, dom0 to the guest and back (under
        # emulation each packet costs milliseconds, which bounds the rest).
        rtt=$(ping -c 10 -i 0.2 -q "$BENCH_IP" 2>/dev/null \
            | awk -F/ '/^rtt|^round-trip/ { print $5 }')
        [ -z "$rtt" ] || bench_figure ping_avg_ms "$rtt" ms
    fi
    e2e_destroy "$E2E_DOMAIN"
    i=$((i + 1))
done

# --- 2. The smallest memory that serves the site: a search between a size
# known to fail (lo; 0 MB at first) and one known to work (hi): hi/4 until
# a failure, then geometric means, BENCH_BISECT_STEPS boots at most. A step
# fails when no 200 comes within twice the first boot (plus 10 s) after xl
# create returns: a guest short of memory may hang rather than crash (a
# crash ends the wait at once).
BENCH_TRY_TIMEOUT_S=$((BENCH_FIRST_BOOT_MS * 2 / 1000 + 10))
lo=0
hi=$BENCH_MEMORY_MB
steps=0
while [ $((hi - lo)) -gt 1 ] && [ "$steps" -lt "$BENCH_BISECT_STEPS" ]; do
    if [ "$lo" -eq 0 ]; then
        mid=$((hi / 4))
        [ "$mid" -ge 1 ] || mid=1
    else
        mid=$(awk -v a="$lo" -v b="$hi" 'BEGIN {
            m = int(sqrt(a * b) + 0.5); if (m <= a) m = a + 1; if (m >= b) m = b - 1; print m }')
    fi
    if bench_try_memory "$mid"; then
        hi=$mid
    else
        lo=$mid
    fi
    steps=$((steps + 1))
done
bench_figure min_memory_mb "$hi" MB
bench_figure max_failed_memory_mb "$lo" MB
e2e_log "smallest memory that serves the site: $hi MB (fails at $lo MB; $steps boots)"
