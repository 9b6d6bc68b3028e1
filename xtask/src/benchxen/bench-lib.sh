# Functions of `cargo xtask bench xen`'s dom0 scripts (bench-guest.sh,
# bench-load.sh), sourced with e2e's lib.sh (xtask/src/e2e/dom0/lib.sh) under
# sh -e. Settings come from $E2E_DIR/bench.env, written by the host
# (xtask/src/benchxen/mod.rs, fn bench_env):
#
#   BENCH_MEMORY_MB       memory of the measured boots and load runs
#   BENCH_FILES           "name:key ..." (the site; site-<name> are copies)
#   BENCH_MODES           "ka1 ka16 ka64 pipe16 close16"
#   BENCH_DURATION_S      seconds per load run
#   BENCH_BOOTS           measured boots per guest
#   BENCH_AB              1: cross-check two runs per guest with ab
#   BENCH_BISECT_STEPS    bound on the memory search's boots
#   BENCH_BOOT_TIMEOUT_S  bound on xl create -> first 200 at full memory
#
# A guest is described by BENCH_KIND (ringlet | nginx | epoll), BENCH_SCENARIO
# (bench-<kind>, which names its figures and holds its files), BENCH_IP,
# BENCH_MAC and BENCH_EXTRA (its command line, with ip= and gw=).
# Figures are RINGLET-FIGURE lines named <BENCH_SCENARIO>.<...>; wrk's come
# from bench.lua. Modes: kaN = N keep-alive connections; pipeN = 16
# connections, each with N requests in flight; closeN = N connections with
# `Connection: close`.

. "$E2E_DIR/bench.env"
# e2e_create's wait for the first console line: a Linux guest's xl create
# alone took 52-75 s on a loaded machine.
E2E_FIRST_WRITE_TIMEOUT_MS=$(($BENCH_BOOT_TIMEOUT_S * 1000))
BENCH_TOOL=$E2E_DIR/bench-dom0
BENCH_LUA=$E2E_DIR/bench.lua
BENCH_SMALLEST=${BENCH_FILES%%:*}

# bench_figure NAME VALUE UNIT: a figure of the current guest.
bench_figure() {
    echo "RINGLET-FIGURE $BENCH_SCENARIO.$1 $2 $3"
}

# bench_guest KIND IP MAC: selects the guest the functions below work on.
bench_guest() {
    BENCH_KIND=$1
    BENCH_SCENARIO=bench-$1
    BENCH_IP=$2
    BENCH_MAC=$3
    BENCH_URL=http://$2:80
    case "$1" in
        # loglevel=warn: no access log on the console (nginx runs with
        # access_log off; the Linux kernel with quiet).
        ringlet) BENCH_EXTRA="ip=$2/24 gw=$BENCH_GW loglevel=warn" ;;
        *) BENCH_EXTRA="server=$1 ip=$2/24 gw=$BENCH_GW" ;;
    esac
    # dom0 knows the guest's MAC: no ARP in any measurement, and the first
    # SYN of the boot poll goes out at once.
    ip neigh replace "$2" lladdr "$3" dev "$E2E_BRIDGE" nud permanent
}
BENCH_GW=${E2E_BRIDGE_ADDR%/*}

# bench_config MEMORY_MB DOMAIN: renders the guest's xl config (the
# template and images of its own scenario), prints the path.
bench_config() {
    (
        E2E_DIR=$E2E_ROOT/scenarios/$BENCH_SCENARIO
        e2e_config "$E2E_DIR/guest.cfg" NAME="$2" MEMORY="$1" MAC="$BENCH_MAC" EXTRA="$BENCH_EXTRA"
    )
}

# bench_verify: fetches every file once and compares it with the site;
# returns 1 with the reason in $E2E_OUT/verify.err.
bench_verify() {
    local entry name
    for entry in $BENCH_FILES; do
        name=${entry%%:*}
        if ! curl -s -f --max-time 60 -o "$E2E_OUT/got" "$BENCH_URL/$name"; then
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

# bench_boot MEMORY_MB DOMAIN LABEL: creates the domain, waits for its
# first 200 (polling only after xl create returned), reports
# LABEL.xl_create_ms, LABEL.create_to_first_line_ms and
# LABEL.create_to_first_200_ms; sets BENCH_DOMID and BENCH_BOOT_MS. With
# LABEL "-", reports nothing.
bench_boot() {
    local out first i
    e2e_create "$(bench_config "$1" "$2")" "$2"
    BENCH_DOMID=$E2E_DOMID
    out=$("$BENCH_TOOL" wait200 "$BENCH_IP" 80 /hello.txt $(($BENCH_BOOT_TIMEOUT_S * 1000)) \
        2> "$E2E_OUT/wait200.err") \
        || e2e_fail "$2 (${1} MB): $(cat "$E2E_OUT/wait200.err")"
    first=${out%% *}
    BENCH_BOOT_MS=$(( (first - E2E_CREATE_START) / 1000000 ))
    # The first console line: a guest that serves may print nothing (the
    # Ringlet httpd at loglevel=warn), so give it 5 s after the first 200.
    i=0
    while [ "$i" -lt 50 ] && kill -0 "$E2E_FIRST_WRITE_PID" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    kill "$E2E_FIRST_WRITE_PID" 2>/dev/null || true
    wait "$E2E_FIRST_WRITE_PID" 2>/dev/null || true
    [ "$3" != - ] || return 0
    bench_figure "$3.xl_create_ms" "$(e2e_ms_between "$E2E_CREATE_START" "$E2E_CREATE_END")" ms
    if [ -s "$E2E_FIRST_WRITE" ]; then
        bench_figure "$3.create_to_first_line_ms" \
            "$(e2e_ms_between "$E2E_CREATE_START" "$(tail -n 1 "$E2E_FIRST_WRITE")")" ms
    fi
    bench_figure "$3.create_to_first_200_ms" "$(e2e_ms_between "$E2E_CREATE_START" "$first")" ms
    e2e_log "$BENCH_KIND $3: xl create -> first 200 in $(e2e_ms_between "$E2E_CREATE_START" "$first") ms" \
        "(xl create returned after $(e2e_ms_between "$E2E_CREATE_START" "$E2E_CREATE_END") ms)"
}

# bench_cputime: "GUEST_NS DOM0_NS", Xen's CPU time of the guest and dom0.
bench_cputime() {
    "$BENCH_TOOL" cputime "$BENCH_DOMID" 0 | awk '{ printf "%s ", $2 } END { print "" }'
}

# bench_heads: each answer's head, keep-alive and close. The host counts
# answers from the bytes wrk read (partial ones included) with them, which
# gives a rate even when a run is too short for many whole 1 MiB answers.
bench_heads() {
    local entry
    for entry in $BENCH_FILES; do
        bench_figure "${entry#*:}.head_bytes" \
            "$(curl -s -o /dev/null -w '%{size_header}' "$BENCH_URL/${entry%%:*}")" bytes
        bench_figure "${entry#*:}.head_close_bytes" \
            "$(curl -s -o /dev/null -H 'Connection: close' -w '%{size_header}' \
                "$BENCH_URL/${entry%%:*}")" bytes
    done
}

# bench_wrk NAME KEY MODE: one load run with wrk, with the CPU time Xen
# accounted to the guest and to dom0 during it. Returns 1 with the reason
# in $E2E_OUT/wrk.err when wrk gave no result (it could not connect).
bench_wrk() {
    local name=$1 key=$2 mode=$3 conns depth=1 header= label before after
    case "$mode" in
        ka*) conns=${mode#ka} ;;
        pipe*) conns=16 depth=${mode#pipe} ;;
        close*) conns=${mode#close} header="Connection: close" ;;
        *) e2e_fail "unknown mode $mode" ;;
    esac
    label=$BENCH_SCENARIO.$key.$mode
    before=$(bench_cputime)
    if [ -n "$header" ]; then
        wrk -t1 -c"$conns" -d"${BENCH_DURATION_S}s" --timeout 10s -H "$header" -s "$BENCH_LUA" \
            "$BENCH_URL/$name" -- "$label" "$depth" > "$E2E_OUT/wrk.out" 2>&1 || true
    else
        wrk -t1 -c"$conns" -d"${BENCH_DURATION_S}s" --timeout 10s -s "$BENCH_LUA" \
            "$BENCH_URL/$name" -- "$label" "$depth" > "$E2E_OUT/wrk.out" 2>&1 || true
    fi
    after=$(bench_cputime)
    if ! grep -q "^RINGLET-FIGURE $label.requests " "$E2E_OUT/wrk.out"; then
        sed 's/^/  wrk| /' "$E2E_OUT/wrk.out" | tail -n 20
        echo "wrk $key $mode gave no result: $(grep -v '^RINGLET' "$E2E_OUT/wrk.out" | tail -n 1)" \
            > "$E2E_OUT/wrk.err"
        return 1
    fi
    grep "^RINGLET-FIGURE $label\." "$E2E_OUT/wrk.out"
    set -- $before $after
    bench_figure "$key.$mode.guest_cpu_ns" $(($3 - $1)) ns
    bench_figure "$key.$mode.dom0_cpu_ns" $(($4 - $2)) ns
    e2e_log "$BENCH_KIND $key $mode:" \
        "$(awk '/^Requests\/sec/ { print $2 }' "$E2E_OUT/wrk.out") req/s (whole answers)," \
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
    # -n after -t: the bound on requests (ab allocates 32 bytes for each).
    timeout $((BENCH_DURATION_S + 30)) ab -q $keep -r -s 10 -c "$conns" -t "$BENCH_DURATION_S" \
        -n 500000 "$BENCH_URL/$name" > "$E2E_OUT/ab.out" 2>&1 || true
    awk -v label="$BENCH_SCENARIO.$key.ab-$mode" '
        /^Complete requests:/ { printf "RINGLET-FIGURE %s.requests %s req\n", label, $3 }
        /^Failed requests:/ { printf "RINGLET-FIGURE %s.failed %s req\n", label, $3 }
        /^Non-2xx responses:/ { printf "RINGLET-FIGURE %s.non2xx %s req\n", label, $3 }
        /^Requests per second:/ { printf "RINGLET-FIGURE %s.rps %s req/s\n", label, $4 }
    ' "$E2E_OUT/ab.out"
    grep -q '^Requests per second:' "$E2E_OUT/ab.out" \
        || e2e_log "ab $BENCH_KIND $key $mode gave no result: $(tail -n 1 "$E2E_OUT/ab.out")"
}
