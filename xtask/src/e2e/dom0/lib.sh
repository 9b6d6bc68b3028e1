# The scenario API of the real-Xen suite: shell functions every dom0 check
# script (xtask/src/e2e/scenarios/*.sh) is run with. POSIX sh (dash).
#
# Set by the runner before a check script runs:
#   E2E_ROOT     the staged tree (/e2e inside QEMU; target/e2e/<run>/root with xl)
#   E2E_NAME     the scenario's name
#   E2E_DIR      the scenario's files: guest.cfg, app.elf, ...
#   E2E_OUT      a scratch directory for this scenario
#   E2E_DOMAIN   the default domain name, ringlet-e2e-<scenario>
#   E2E_BRIDGE   the bridge guests' vifs join (its address: E2E_BRIDGE_ADDR)
#   E2E_CONSOLE_DIR  where xenconsoled logs guest consoles (guest-NAME.log)
#
# A check script fails with e2e_fail (or any non-zero exit); it passes by
# returning. Every wait is bounded.

# Prints a progress line (the host echoes lines starting with "e2e: ").
e2e_log() {
    echo "e2e: [$E2E_NAME] $*"
}

# Fails the scenario with a one-line reason.
e2e_fail() {
    [ -s "$E2E_OUT/fail" ] || echo "$*" > "$E2E_OUT/fail"
    e2e_log "FAILED: $*"
    exit 1
}

# Prints a figure for the host: e2e_figure NAME VALUE UNIT.
e2e_figure() {
    echo "RINGLET-FIGURE $E2E_NAME.$1 $2 $3"
}

# Wall clock in nanoseconds.
e2e_now_ns() {
    date +%s%N
}

# Milliseconds between two e2e_now_ns values, with three decimals.
e2e_ms_between() {
    echo "$1 $2" | awk '{ printf "%.3f", ($2 - $1) / 1000000 }'
}

# Renders the scenario's xl config template to a file and prints its path.
#   e2e_config [TEMPLATE] [KEY=VALUE ...]
# TEMPLATE defaults to $E2E_DIR/guest.cfg. Placeholders @NAME@, @KERNEL@,
# @BRIDGE@, @DIR@ and @EXTRA@ have defaults; KEY=VALUE sets @KEY@. Every
# placeholder must be filled.
e2e_config() {
    local template=$E2E_DIR/guest.cfg name kernel extra rendered kv key value cfg
    case "${1:-}" in
        *=*|"") ;;
        *) template=$1; shift ;;
    esac
    name=$E2E_DOMAIN kernel=$E2E_DIR/app.elf extra=
    rendered=$E2E_OUT/rendered.$$
    sed -e "s|@BRIDGE@|$E2E_BRIDGE|g" -e "s|@DIR@|$E2E_DIR|g" "$template" > "$rendered"
    for kv in "$@"; do
        key=${kv%%=*}
        value=${kv#*=}
        case "$key" in
            NAME) name=$value ;;
            KERNEL) kernel=$value ;;
            EXTRA) extra=$value ;;
            *) sed -i "s|@$key@|$value|g" "$rendered" ;;
        esac
    done
    sed -i -e "s|@NAME@|$name|g" -e "s|@KERNEL@|$kernel|g" -e "s|@EXTRA@|$extra|g" "$rendered"
    if grep -q '@[A-Z_]*@' "$rendered"; then
        e2e_fail "config $template: unfilled placeholder $(grep -o '@[A-Z_]*@' "$rendered" | head -n 1)"
    fi
    cfg=$E2E_OUT/$name.cfg
    mv "$rendered" "$cfg"
    echo "$cfg"
}

# Creates a domain and measures it without polling during the create:
#   e2e_create CONFIG DOMAIN
# Sets E2E_DOMID and E2E_CONSOLE (the console log). A helper blocked in
# inotify (no CPU while it waits) notes when the console log is first
# written; e2e_wait_first_line turns that into a figure. It waits at most
# E2E_FIRST_WRITE_TIMEOUT_MS (default 60000) from before xl create: Linux
# guests on a loaded machine need more.
e2e_create() {
    local cfg=$1 dom=$2
    E2E_CONSOLE=$E2E_CONSOLE_DIR/guest-$dom.log
    E2E_FIRST_WRITE=$E2E_OUT/first-write.$dom
    rm -f "$E2E_CONSOLE" "$E2E_FIRST_WRITE"
    ringlet-dom0 first-write "$E2E_CONSOLE_DIR" "guest-$dom.log" "${E2E_FIRST_WRITE_TIMEOUT_MS:-60000}" \
        > "$E2E_FIRST_WRITE" 2>"$E2E_FIRST_WRITE.err" &
    E2E_FIRST_WRITE_PID=$!
    E2E_CREATE_START=$(e2e_now_ns)
    if ! xl create "$cfg" > "$E2E_OUT/xl-create.$dom.log" 2>&1; then
        kill "$E2E_FIRST_WRITE_PID" 2>/dev/null || true
        sed 's/^/  | /' "$E2E_OUT/xl-create.$dom.log"
        e2e_fail "xl create $dom: $(tail -n 1 "$E2E_OUT/xl-create.$dom.log")"
    fi
    E2E_CREATE_END=$(e2e_now_ns)
    E2E_DOMID=$(xl domid "$dom" 2>/dev/null) \
        || e2e_fail "domain $dom was gone right after xl create (it crashed or rebooted at once; see xl dmesg)"
    e2e_log "created $dom as domain $E2E_DOMID in $(e2e_ms_between "$E2E_CREATE_START" "$E2E_CREATE_END") ms"
}

# Waits until the guest's console log has its first line, then prints the
# figures xl_create_ms and create_to_first_line_ms (with a LABEL prefix if
# given): e2e_wait_first_line [LABEL]
e2e_wait_first_line() {
    local label=${1:+$1.} first
    if ! wait "$E2E_FIRST_WRITE_PID"; then
        e2e_fail "no console output from domain $E2E_DOMID: $(tail -n 1 "$E2E_FIRST_WRITE.err")"
    fi
    first=$(tail -n 1 "$E2E_FIRST_WRITE")
    e2e_figure "${label}xl_create_ms" "$(e2e_ms_between "$E2E_CREATE_START" "$E2E_CREATE_END")" ms
    e2e_figure "${label}create_to_first_line_ms" "$(e2e_ms_between "$E2E_CREATE_START" "$first")" ms
}

# Waits until a line of the console log matches an extended regex:
#   e2e_wait_console REGEX [TIMEOUT_S]   (default 30 s)
# Prints the first matching line.
e2e_wait_console() {
    e2e__wait "${2:-30}" e2e__console_has "$1" \
        || e2e_fail "console of domain $E2E_DOMID: no line matching '$1' within ${2:-30} s"
    grep -E -m 1 -e "$1" "$E2E_CONSOLE"
}
e2e__console_has() {
    [ -f "$E2E_CONSOLE" ] && grep -E -q -e "$1" "$E2E_CONSOLE"
}

# Waits until Xen's log (xl dmesg) has a line matching an extended regex:
#   e2e_wait_dmesg REGEX [TIMEOUT_S]
e2e_wait_dmesg() {
    e2e__wait "${2:-30}" e2e__dmesg_has "$1" \
        || e2e_fail "xl dmesg: no line matching '$1' within ${2:-30} s"
    xl dmesg | grep -E -m 1 -e "$1"
}
e2e__dmesg_has() {
    xl dmesg | grep -E -q -e "$1"
}

# Waits until a xenstore node exists and prints its value:
#   e2e_xs_wait PATH [TIMEOUT_S]
e2e_xs_wait() {
    e2e__wait "${2:-30}" e2e__xs_exists "$1" \
        || e2e_fail "xenstore: $1 did not appear within ${2:-30} s"
    xenstore-read "$1"
}
e2e__xs_exists() {
    xenstore-exists "$1" 2>/dev/null
}

# Prints a domain's state flags from xl list (e.g. "-b----", "---s--",
# "---sc-"), or "gone".
e2e_state() {
    xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }' | grep . || echo gone
}

# Waits until a domain has shut down (flag s) or is gone, and prints its
# final state: e2e_wait_shutdown DOMAIN [TIMEOUT_S]
e2e_wait_shutdown() {
    e2e__wait "${2:-30}" e2e__is_down "$1" \
        || e2e_fail "domain $1 still running after ${2:-30} s (state $(e2e_state "$1"))"
    e2e_state "$1"
}
e2e__is_down() {
    case "$(e2e_state "$1")" in
        gone|???s*) return 0 ;;
        *) return 1 ;;
    esac
}

# Fails unless a domain shut down cleanly (state s without c).
e2e_expect_clean_exit() {
    local state
    state=$(e2e_wait_shutdown "$1" "${2:-30}")
    case "$state" in
        ???s-*) e2e_log "domain $1 shut down cleanly ($state)" ;;
        *) e2e_fail "domain $1 did not shut down cleanly (state $state)" ;;
    esac
}

# Fails unless a domain crashed (state s and c; needs on_crash = "preserve").
e2e_expect_crash() {
    local state
    state=$(e2e_wait_shutdown "$1" "${2:-30}")
    case "$state" in
        ???sc*) e2e_log "domain $1 crashed as expected ($state)" ;;
        *) e2e_fail "domain $1 did not crash (state $state)" ;;
    esac
}

# Destroys a domain if it still exists.
e2e_destroy() {
    xl destroy "$1" >/dev/null 2>&1 || true
}

# Polls a condition every 0.1 s for at most TIMEOUT_S seconds:
#   e2e__wait TIMEOUT_S COMMAND [ARGS...]
# Used only after xl create has returned (polling competes with the
# toolstack for dom0's one vCPU).
e2e__wait() {
    local limit=$(( $1 * 10 )) n
    shift
    n=0
    until "$@"; do
        n=$((n + 1))
        [ "$n" -le "$limit" ] || return 1
        sleep 0.1
    done
}
