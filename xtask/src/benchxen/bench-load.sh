# bench-load: the load runs of `cargo xtask bench xen`. Every guest is up
# at once, each with its own address, and the runs are interleaved: for
# each file and mode, one run per guest (the order rotating), so that a
# change in the host's speed during the run (other work on the machine)
# hits every guest alike. Only one guest is under load at a time; the
# others sit idle. Sourced after bench-lib.sh. $E2E_DIR/guests.list has one
# "KIND IP MAC" line per guest.

BENCH_GUESTS=$(awk '{ print $1 }' "$E2E_DIR/guests.list")
trap 'for a in $(awk "{ print \$2 }" "$E2E_DIR/guests.list"); do
    ip neigh del "$a" dev "$E2E_BRIDGE" 2>/dev/null || true
done' EXIT

# bench_select KIND: makes KIND the current guest (its address and domid).
bench_select() {
    set -- $(awk -v k="$1" '$1 == k { print $1, $2, $3 }' "$E2E_DIR/guests.list")
    bench_guest "$1" "$2" "$3"
    eval "BENCH_DOMID=\${BENCH_DOMID_$1:-}"
}

# bench_up KIND: creates KIND's domain and waits for its first 200;
# returns 1 with the reason in $E2E_OUT/up.err (a guest that does not come
# up is left out of the runs, not the end of them).
bench_up() {
    local dom=$E2E_DOMAIN-$1 cfg
    if [ ! -f "$E2E_ROOT/scenarios/bench-$1/app.elf" ]; then
        echo "its image was not staged (see bench-$1)" > "$E2E_OUT/up.err"
        return 1
    fi
    cfg=$(bench_config "$BENCH_MEMORY_MB" "$dom")
    if ! xl create "$cfg" > "$E2E_OUT/xl-create.$dom.log" 2>&1; then
        echo "xl create: $(grep -i -m 1 error "$E2E_OUT/xl-create.$dom.log")" > "$E2E_OUT/up.err"
        return 1
    fi
    BENCH_DOMID=$(xl domid "$dom" 2>/dev/null) || {
        echo "gone right after xl create" > "$E2E_OUT/up.err"
        return 1
    }
    "$BENCH_TOOL" wait200 "$BENCH_IP" 80 /hello.txt $(($BENCH_BOOT_TIMEOUT_S * 1000)) \
        > /dev/null 2> "$E2E_OUT/up.err" || return 1
    bench_verify || { cp "$E2E_OUT/verify.err" "$E2E_OUT/up.err"; return 1; }
}

# --- Up, one after the other, each checked once.
up=
for kind in $BENCH_GUESTS; do
    bench_select "$kind"
    if ! bench_up "$kind"; then
        e2e_log "$kind left out of the load runs: $(cat "$E2E_OUT/up.err")"
        e2e_destroy "$E2E_DOMAIN-$kind"
        continue
    fi
    up="$up $kind"
    eval "BENCH_DOMID_$kind=$BENCH_DOMID"
    bench_heads
    # Warm-up (not reported): caches, the guest's allocators, netback.
    wrk -t1 -c16 -d1s -s "$BENCH_LUA" "$BENCH_URL/$BENCH_SMALLEST" -- warmup 1 \
        > /dev/null 2>&1 || true
    e2e_log "$kind is up as domain $BENCH_DOMID at $BENCH_IP"
done

[ -n "$up" ] || e2e_fail "no guest came up"
BENCH_GUESTS=$up

# bench_drop KIND WHY: leaves a guest that stopped answering out of the
# remaining runs (the others go on; the scenario fails at the end).
bench_drop() {
    local vif
    vif=$(dmesg | grep "vif$BENCH_DOMID\.0" | tail -n 1 | sed 's/^\[[ 0-9.]*\] //')
    e2e_log "$1 left out of the remaining runs: $2;" \
        "state $(e2e_state "$E2E_DOMAIN-$1"); dom0's last word on its vif: ${vif:-none}"
    echo "$1: $2 (state $(e2e_state "$E2E_DOMAIN-$1"); ${vif:-no vif message})" >> "$E2E_OUT/dropped"
    bench_figure load_dropped 1 ok
    BENCH_GUESTS=$(echo $BENCH_GUESTS | tr ' ' '\n' | grep -v -x "$1" | tr '\n' ' ')
}

# --- The runs, interleaved. Mode by mode, the one with the most
# connections last: a guest that breaks under it still has figures for the
# rest.
BENCH_RUN_MODES=$(echo $BENCH_MODES | tr ' ' '\n' | grep -v -x ka64 | tr '\n' ' ')
case " $BENCH_MODES " in *" ka64 "*) BENCH_RUN_MODES="$BENCH_RUN_MODES ka64" ;; esac
# bench_ab_all: the ab cross-check (4 KiB, ka16 and close16) on every guest,
# once, before the ka64 runs.
bench_ab_all() {
    local entry kind abmode
    [ "$BENCH_AB" = 1 ] && [ -z "${BENCH_AB_DONE:-}" ] || return 0
    BENCH_AB_DONE=1
    for entry in $BENCH_FILES; do
        [ "${entry#*:}" = 4k ] || continue
        for abmode in ka16 close16; do
            for kind in $BENCH_GUESTS; do
                bench_select "$kind"
                bench_ab "${entry%%:*}" 4k "$abmode"
            done
        done
    done
}

run=0
for mode in $BENCH_RUN_MODES; do
    [ "$mode" != ka64 ] || bench_ab_all
    for entry in $BENCH_FILES; do
        n=$(echo $BENCH_GUESTS | wc -w)
        [ "$n" -gt 0 ] || break
        # Rotate: run k starts with guest k mod n.
        order=$(echo $BENCH_GUESTS | awk -v r=$((run % n)) '{
            for (i = 0; i < NF; i++) printf "%s ", $(((i + r) % NF) + 1) }')
        for kind in $order; do
            bench_select "$kind"
            bench_wrk "${entry%%:*}" "${entry#*:}" "$mode" \
                || bench_drop "$kind" "$(cat "$E2E_OUT/wrk.err")"
        done
        run=$((run + 1))
    done
done
bench_ab_all

# --- Every guest still serves the site and still runs.
for kind in $BENCH_GUESTS; do
    bench_select "$kind"
    bench_verify || e2e_fail "$kind after the load runs: $(cat "$E2E_OUT/verify.err")"
    case "$(e2e_state "$E2E_DOMAIN-$kind")" in
        gone|???s*) e2e_fail "$kind stopped during the load runs (state $(e2e_state "$E2E_DOMAIN-$kind"))" ;;
    esac
    e2e_destroy "$E2E_DOMAIN-$kind"
done
[ ! -s "$E2E_OUT/dropped" ] || e2e_fail "$(tr '\n' ' ' < "$E2E_OUT/dropped")"
