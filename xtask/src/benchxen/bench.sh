# bench: one guest of `cargo xtask bench xen` (xtask/src/benchxen/), run as
# an e2e scenario in dom0 (sh -e, with xtask/src/e2e/dom0/lib.sh). The same
# script measures the Ringlet httpd, nginx and epoll-httpd guests; what
# differs comes from $E2E_DIR/bench.env, written by the host:
#
#   BENCH_KIND            ringlet | nginx | epoll
#   BENCH_EXTRA           the guest's command line (its address is BENCH_IP)
#   BENCH_IP BENCH_PORT BENCH_MAC
#   BENCH_MEMORY_MB       memory of the measured boots and load runs
#   BENCH_FILES           "name:key ..." (the site; site-<name> are copies)
#   BENCH_MODES           "ka1 ka16 ka64 pipe16 close16"
#   BENCH_DURATION_S      seconds per load run
#   BENCH_BOOTS           measured boots (the first one also takes the load)
#   BENCH_AB              1: cross-check two runs with ab
#   BENCH_BISECT_STEPS    bound on the memory bisection's boots
#   BENCH_BOOT_TIMEOUT_S  bound on xl create -> first 200 at full memory
#   BENCH_LOAD_CHECK_S    seconds of load each bisection step must serve
#
# Everything is reported as RINGLET-FIGURE lines: wrk's come from bench.lua
# (<scenario>.<file>.<mode>.requests, ...), the rest from e2e_figure.
# Modes: kaN = N keep-alive connections; pipeN = 16 connections, each with
# N requests in flight; closeN = N connections, `Connection: close`.

. "$E2E_DIR/bench.env"
# e2e_create's wait for the first console line: a Linux guest's xl create
# alone took 52 s on a loaded machine.
E2E_FIRST_WRITE_TIMEOUT_MS=$(($BENCH_BOOT_TIMEOUT_S * 1000))
tool=$E2E_DIR/bench-dom0
lua=$E2E_DIR/bench.lua
url=http://$BENCH_IP:$BENCH_PORT

# dom0 knows the guest's MAC: no ARP in any measurement, and the first SYN
# of the boot poll goes out at once.
ip neigh replace "$BENCH_IP" lladdr "$BENCH_MAC" dev "$E2E_BRIDGE" nud permanent
trap 'ip neigh del "$BENCH_IP" dev "$E2E_BRIDGE" 2>/dev/null || true' EXIT

# bench_config MEMORY_MB DOMAIN: renders the xl config, prints its path.
bench_config() {
    e2e_config NAME="$2" MEMORY="$1" MAC="$BENCH_MAC" EXTRA="$BENCH_EXTRA"
}

# bench_verify: fetches every file once and compares it with the site;
# returns 1 with the reason in $E2E_OUT/verify.err.
bench_verify() {
    local entry name
    for entry in $BENCH_FILES; do
        name=${entry%%:*}
        if ! curl -s -f --max-time 30 -o "$E2E_OUT/got" "$url/$name"; then
            echo "GET /$name failed" > "$E2E_OUT/verify.err"
            return 1
        fi
        if ! cmp -s "$E2E_OUT/got" "$E2E_DIR/site-$name"; then
            echo "GET /$name: $(wc -c < "$E2E_OUT/got") bytes that differ from the site" \
                > "$E2E_OUT/verify.err"
            return 1
        fi
    done
}

# bench_cputime: "GUEST_NS DOM0_NS", Xen's CPU time of the guest and dom0.
bench_cputime() {
    "$tool" cputime "$BENCH_DOMID" 0 | awk '{ printf "%s ", $2 } END { print "" }'
}

# bench_boot MEMORY_MB DOMAIN LABEL: creates the domain, waits for its
# first 200 (polling only after xl create returned), reports
# LABEL.xl_create_ms, LABEL.create_to_first_line_ms,
# LABEL.create_to_first_200_ms; sets BENCH_DOMID and BENCH_BOOT_MS.
bench_boot() {
    local out first
    e2e_create "$(bench_config "$1" "$2")" "$2"
    BENCH_DOMID=$E2E_DOMID
    out=$("$tool" wait200 "$BENCH_IP" "$BENCH_PORT" /hello.txt $(($BENCH_BOOT_TIMEOUT_S * 1000)) \
        2> "$E2E_OUT/wait200.err") \
        || e2e_fail "$2 (${1} MB): $(cat "$E2E_OUT/wait200.err")"
    first=${out%% *}
    BENCH_BOOT_MS=$(( (first - E2E_CREATE_START) / 1000000 ))
    e2e_wait_first_line "$3"
    e2e_figure "$3.create_to_first_200_ms" "$(e2e_ms_between "$E2E_CREATE_START" "$first")" ms
    e2e_log "$3: xl create -> first 200 in $(e2e_ms_between "$E2E_CREATE_START" "$first") ms" \
        "(xl create returned after $(e2e_ms_between "$E2E_CREATE_START" "$E2E_CREATE_END") ms)"
}

# bench_wrk NAME KEY MODE: one load run with wrk, with the CPU time Xen
# accounted to the guest and to dom0 during it.
bench_wrk() {
    local name=$1 key=$2 mode=$3 conns depth=1 header= label before after
    case "$mode" in
        ka*) conns=${mode#ka} ;;
        pipe*) conns=16 depth=${mode#pipe} ;;
        close*) conns=${mode#close} header="Connection: close" ;;
        *) e2e_fail "unknown mode $mode" ;;
    esac
    label=$E2E_NAME.$key.$mode
    before=$(bench_cputime)
    if [ -n "$header" ]; then
        wrk -t1 -c"$conns" -d"${BENCH_DURATION_S}s" --timeout 10s -H "$header" -s "$lua" \
            "$url/$name" -- "$label" "$depth" > "$E2E_OUT/wrk.out" 2>&1 || true
    else
        wrk -t1 -c"$conns" -d"${BENCH_DURATION_S}s" --timeout 10s -s "$lua" \
            "$url/$name" -- "$label" "$depth" > "$E2E_OUT/wrk.out" 2>&1 || true
    fi
    after=$(bench_cputime)
    if ! grep -q "^RINGLET-FIGURE $label.requests " "$E2E_OUT/wrk.out"; then
        sed 's/^/  wrk| /' "$E2E_OUT/wrk.out" | tail -n 20
        e2e_fail "wrk $key $mode gave no result"
    fi
    grep "^RINGLET-FIGURE $label\." "$E2E_OUT/wrk.out"
    set -- $before $after
    e2e_figure "$key.$mode.guest_cpu_ns" $(($3 - $1)) ns
    e2e_figure "$key.$mode.dom0_cpu_ns" $(($4 - $2)) ns
    e2e_log "$key $mode: $(awk '/^Requests\/sec/ { print $2 }' "$E2E_OUT/wrk.out") req/s," \
        "guest cpu $((($3 - $1) / 1000000)) ms, dom0 cpu $((($4 - $2) / 1000000)) ms"
}

# bench_ab NAME KEY MODE: the cross-check, ab on one keep-alive (kaN) or
# churn (closeN) run.
bench_ab() {
    local name=$1 key=$2 mode=$3 conns keep=
    case "$mode" in
        ka*) conns=${mode#ka} keep=-k ;;
        close*) conns=${mode#close} ;;
        *) e2e_fail "ab cannot run mode $mode" ;;
    esac
    timeout $((BENCH_DURATION_S + 30)) ab -q $keep -r -s 10 -c "$conns" -t "$BENCH_DURATION_S" \
        -n 100000000 "$url/$name" > "$E2E_OUT/ab.out" 2>&1 || true
    awk -v label="$E2E_NAME.$key.ab-$mode" '
        /^Complete requests:/ { printf "RINGLET-FIGURE %s.requests %s req\n", label, $3 }
        /^Failed requests:/ { printf "RINGLET-FIGURE %s.failed %s req\n", label, $3 }
        /^Non-2xx responses:/ { printf "RINGLET-FIGURE %s.non2xx %s req\n", label, $3 }
        /^Requests per second:/ { printf "RINGLET-FIGURE %s.rps %s req/s\n", label, $4 }
    ' "$E2E_OUT/ab.out"
    grep -q '^Requests per second:' "$E2E_OUT/ab.out" \
        || e2e_log "ab $key $mode gave no result: $(tail -n 1 "$E2E_OUT/ab.out")"
}

# bench_try_memory MEMORY_MB: 0 when a guest with that much memory boots
# and serves the whole site, before and after BENCH_LOAD_CHECK_S seconds of
# 64 keep-alive connections (the most the load runs open) on the smallest
# file without an error. (64 connections on the 1 MiB file would take
# minutes under emulation.)
bench_try_memory() {
    local mem=$1 dom=$E2E_DOMAIN-m$1 cfg waited=0 served= errors requests why=
    cfg=$(bench_config "$mem" "$dom")
    if ! xl create "$cfg" > "$E2E_OUT/xl-create.$dom.log" 2>&1; then
        why="xl create failed: $(tail -n 1 "$E2E_OUT/xl-create.$dom.log")"
    else
        while [ "$waited" -lt "$BENCH_TRY_TIMEOUT_S" ]; do
            if "$tool" wait200 "$BENCH_IP" "$BENCH_PORT" /hello.txt 2000 > /dev/null 2>&1; then
                served=1
                break
            fi
            waited=$((waited + 2))
            case "$(e2e_state "$dom")" in gone|???s*) break ;; esac
        done
        if [ -z "$served" ]; then
            why="no 200 within ${BENCH_TRY_TIMEOUT_S} s (state $(e2e_state "$dom"))"
        elif ! bench_verify; then
            why=$(cat "$E2E_OUT/verify.err")
        else
            wrk -t1 -c64 -d"${BENCH_LOAD_CHECK_S}s" --timeout 10s -s "$lua" "$url/$BENCH_SMALLEST" \
                -- check 1 > "$E2E_OUT/wrk-check.out" 2>&1 || true
            errors=$(awk '$2 == "check.errors" { print $3 }' "$E2E_OUT/wrk-check.out")
            requests=$(awk '$2 == "check.requests" { print $3 }' "$E2E_OUT/wrk-check.out")
            if [ -z "$requests" ] || [ "$requests" -eq 0 ] || [ "${errors:-1}" -ne 0 ]; then
                why="64 connections on /$BENCH_SMALLEST: ${requests:-no} answers, ${errors:-unknown} errors"
            elif ! bench_verify; then
                why="after the load: $(cat "$E2E_OUT/verify.err")"
            fi
        fi
    fi
    e2e_destroy "$dom"
    if [ -z "$why" ]; then
        e2e_log "memory $mem MB: serves the site"
        e2e_figure "bisect.m$mem" 1 ok
        return 0
    fi
    e2e_log "memory $mem MB: $why"
    e2e_figure "bisect.m$mem" 0 ok
    return 1
}

BENCH_SMALLEST=${BENCH_FILES%%:*}

# --- 1. The measured boot, then the content check and the load runs.
bench_boot "$BENCH_MEMORY_MB" "$E2E_DOMAIN" boot1
BENCH_FIRST_BOOT_MS=$BENCH_BOOT_MS
if [ "$BENCH_KIND" != ringlet ]; then
    line=$(e2e_wait_console 'ringlet-bench-guest: serving' 30)
    uptime=$(echo "$line" | sed -n 's/.*uptime=\([0-9.]*\).*/\1/p')
    [ -z "$uptime" ] || e2e_figure boot1.guest_uptime_serving_s "$uptime" s
fi
bench_verify || e2e_fail "$(cat "$E2E_OUT/verify.err")"
e2e_log "the site checks out: $BENCH_FILES"
# Each answer's head, keep-alive and close: the host counts answers from
# the bytes wrk read (partial ones included) with them, which gives a rate
# even when a run is too short for many whole 1 MiB answers.
for entry in $BENCH_FILES; do
    e2e_figure "${entry#*:}.head_bytes" \
        "$(curl -s -o /dev/null -w '%{size_header}' "$url/${entry%%:*}")" bytes
    e2e_figure "${entry#*:}.head_close_bytes" \
        "$(curl -s -o /dev/null -H 'Connection: close' -w '%{size_header}' "$url/${entry%%:*}")" bytes
done

# The network's round trip, dom0 to the guest and back (under emulation
# each packet costs milliseconds, which bounds everything below).
rtt=$(ping -c 10 -i 0.2 -q "$BENCH_IP" 2>/dev/null | awk -F/ '/^rtt|^round-trip/ { print $5 }')
[ -z "$rtt" ] || e2e_figure ping_avg_ms "$rtt" ms

# Warm-up (not reported): caches, the guest's allocators, netback.
wrk -t1 -c16 -d1s -s "$lua" "$url/$BENCH_SMALLEST" -- warmup 1 > /dev/null 2>&1 || true

for entry in $BENCH_FILES; do
    for mode in $BENCH_MODES; do
        bench_wrk "${entry%%:*}" "${entry#*:}" "$mode"
    done
done
if [ "$BENCH_AB" = 1 ]; then
    for entry in $BENCH_FILES; do
        case "${entry#*:}" in 4k)
            bench_ab "${entry%%:*}" 4k ka16
            bench_ab "${entry%%:*}" 4k close16
            ;;
        esac
    done
fi
bench_verify || e2e_fail "after the load runs: $(cat "$E2E_OUT/verify.err")"
case "$(e2e_state "$E2E_DOMAIN")" in
    gone|???s*) e2e_fail "the guest stopped during the load runs (state $(e2e_state "$E2E_DOMAIN"))" ;;
esac
e2e_destroy "$E2E_DOMAIN"

# --- 2. More measured boots.
i=2
while [ "$i" -le "$BENCH_BOOTS" ]; do
    bench_boot "$BENCH_MEMORY_MB" "$E2E_DOMAIN" "boot$i"
    e2e_destroy "$E2E_DOMAIN"
    i=$((i + 1))
done

# --- 3. The smallest memory that serves the site: a search between a size
# known to fail (lo; 0 MB at first) and one known to work (hi): hi/4 until
# a failure, then geometric means, BENCH_BISECT_STEPS boots at most.
# A step fails when no 200 comes within twice the first boot (plus 10 s)
# after xl create returns: a guest short of memory may hang rather than
# crash (a crash ends the wait at once).
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
e2e_figure min_memory_mb "$hi" MB
e2e_figure max_failed_memory_mb "$lo" MB
e2e_log "smallest memory that serves the site: $hi MB (fails at $lo MB; $steps boots)"
