#!/bin/sh
# Runs the real-Xen suite's scenarios in dom0, one after the other, each with
# its own timeout, and prints one result line per scenario:
#   RINGLET-E2E <scenario> ok
#   RINGLET-E2E <scenario> FAILED <reason>
# then RINGLET-E2E-DONE <passed> <failed>. Exit status 0 when all passed.
#
# The same script runs inside QEMU (called by /init) and on a Xen host
# (called by `cargo xtask e2e` with E2E_ROOT set). It reads
# $E2E_ROOT/run.env and $E2E_ROOT/scenarios.list ("name timeout_s" lines).
E2E_ROOT=${E2E_ROOT:-/e2e}
export E2E_ROOT
. "$E2E_ROOT/run.env"
export E2E_BRIDGE E2E_BRIDGE_ADDR E2E_CONSOLE_DIR E2E_WORK E2E_XEN
export PATH="$E2E_ROOT/bin:$PATH"

passed=0
failed=0

# Everything that may explain a failure, indented under the result.
diagnostics() {
    name=$1
    dom=ringlet-e2e-$name
    {
        echo "--- xl list"
        xl list
        for log in "$E2E_CONSOLE_DIR"/guest-ringlet-e2e-"$name".log "$E2E_CONSOLE_DIR"/guest-ringlet-e2e-"$name"-*.log; do
            [ -f "$log" ] || continue
            echo "--- $log (last 40 lines)"
            tail -n 40 "$log"
        done
        echo "--- xl dmesg (last 30 lines)"
        xl dmesg | tail -n 30
        echo "--- dmesg (last 20 lines)"
        dmesg | tail -n 20
    } 2>&1 | sed 's/^/  | /'
}

# Copies the scenario's guest consoles into this run's log (not echoed by
# the host; kept in serial.log or console.log), last 200 lines of each.
keep_consoles() {
    for log in "$E2E_CONSOLE_DIR"/guest-ringlet-e2e-"$1".log "$E2E_CONSOLE_DIR"/guest-ringlet-e2e-"$1"-*.log; do
        [ -f "$log" ] || continue
        tail -n 200 "$log" | tr -d '\r' | sed "s|^|guest-console ${log##*/}: |"
    done
}

# Destroys what a scenario left behind: every domain named ringlet-e2e-*.
cleanup() {
    xl list 2>/dev/null | awk 'NR > 1 && $1 ~ /^ringlet-e2e-/ { print $1 }' |
        while read -r dom; do
            xl destroy "$dom" >/dev/null 2>&1 || true
        done
}

cleanup
while read -r name timeout_s; do
    case "$name" in ''|'#'*) continue ;; esac
    out=$E2E_WORK/$name
    rm -rf "$out"
    mkdir -p "$out"
    echo "e2e: [$name] start (timeout ${timeout_s} s)"
    start=$(date +%s%N)
    E2E_NAME=$name E2E_DIR=$E2E_ROOT/scenarios/$name E2E_OUT=$out \
        E2E_DOMAIN=ringlet-e2e-$name \
        timeout -k 5 "$timeout_s" sh -ec '. "$E2E_ROOT/lib.sh"; . "$E2E_DIR/check.sh"' \
        < /dev/null
    status=$?
    end=$(date +%s%N)
    echo "RINGLET-FIGURE $name.scenario_ms $(( (end - start) / 1000000 )) ms"
    if [ "$status" -eq 0 ]; then
        reason=
    elif [ -s "$out/fail" ]; then
        reason=$(head -n 1 "$out/fail")
    elif [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        reason="timed out after ${timeout_s} s"
    else
        reason="check script exited with status $status"
    fi
    keep_consoles "$name"
    if [ -z "$reason" ]; then
        passed=$((passed + 1))
        cleanup
        echo "RINGLET-E2E $name ok"
    else
        failed=$((failed + 1))
        diagnostics "$name"
        cleanup
        echo "RINGLET-E2E $name FAILED $reason"
    fi
done < "$E2E_ROOT/scenarios.list"

echo "RINGLET-E2E-DONE $passed $failed"
[ "$failed" -eq 0 ]
