# hello: apps/hello on real Xen (issue 4). The contract with the appliance
# (console lines, xenstore keys, the granted page) is in docs/real-xen.md,
# section "The hello scenario"; change both together.

# The sleep may be late by this much under emulation, never early.
late_us_max=${HELLO_SLEEP_LATE_US_MAX:-100000}

# --- Run 1: a well-behaved appliance, from boot to `xl shutdown`.
dom=$E2E_DOMAIN
cfg=$(e2e_config)
e2e_create "$cfg" "$dom"
e2e_wait_first_line
id=$E2E_DOMID
xs=/local/domain/$id/data/ringlet-hello

# It read its domid and name from xenstore.
e2e_wait_console 'hello: domid=[0-9]+ name=' 30 > "$E2E_OUT/line"
grep -q "hello: domid=$id name=$dom\b" "$E2E_OUT/line" \
    || e2e_fail "wrong domid or name: $(tr -d '\r' < "$E2E_OUT/line"); want domid=$id name=$dom"

# Its sleep was never early and boundedly late.
e2e_wait_console 'hello: slept [0-9]+ ms, (late|early) by -?[0-9]+ us' 30 > "$E2E_OUT/line"
late=$(sed -n 's/.*hello: slept [0-9]* ms, late by \([0-9]*\) us.*/\1/p' "$E2E_OUT/line")
[ -n "$late" ] || e2e_fail "sleep ended early: $(tr -d '\r' < "$E2E_OUT/line")"
e2e_figure sleep_late_us "$late" us
[ "$late" -le "$late_us_max" ] || e2e_fail "sleep late by $late us (bound $late_us_max us)"

# It wrote a key that dom0 reads back.
greeting=$(e2e_xs_wait "$xs/greeting" 30)
[ "$greeting" = "hello from $dom" ] \
    || e2e_fail "$xs/greeting is '$greeting', want 'hello from $dom'"

# It waits on a watch that dom0 fires, and answers with the same token.
token=poke-$(date +%s%N)
xenstore-write "$xs/poke" "$token"
e2e_wait_console "hello: watch fired poke=$token" 30 > /dev/null
ack=$(e2e_xs_wait "$xs/poke-ack" 30)
[ "$ack" = "$token" ] || e2e_fail "$xs/poke-ack is '$ack', want '$token'"

# It granted dom0 a page whose content dom0 checks.
gref=$(e2e_xs_wait "$xs/gref" 30)
case "$gref" in ''|*[!0-9]*) e2e_fail "$xs/gref is not a number: '$gref'" ;; esac
ringlet-dom0 gntmap "$id" "$gref" > "$E2E_OUT/page" 2> "$E2E_OUT/gntmap.err" \
    || e2e_fail "mapping grant $gref of domain $id: $(cat "$E2E_OUT/gntmap.err")"
i=0
while [ "$i" -lt 164 ]; do
    printf 'ringlet-hello grant page\n'
    i=$((i + 1))
done | head -c 4096 > "$E2E_OUT/page.want"
cmp -s "$E2E_OUT/page" "$E2E_OUT/page.want" \
    || e2e_fail "granted page differs: starts with '$(head -c 32 "$E2E_OUT/page" | tr -c '[:print:]' '.')'"
e2e_log "grant $gref mapped, page checked"

# `xl shutdown` ends it cleanly.
xl shutdown "$dom" > /dev/null 2>&1 || e2e_fail "xl shutdown $dom"
e2e_wait_console 'hello: shutdown requested \(poweroff\)' 30 > /dev/null
e2e_expect_clean_exit "$dom" 30
e2e_destroy "$dom"

# --- Run 2: a panic shows as a crashed domain with its message.
dom=ringlet-e2e-hello-panic
cfg=$(e2e_config NAME=$dom EXTRA=panic)
e2e_create "$cfg" "$dom"
e2e_wait_first_line panic
e2e_wait_console 'ringlet-hello: panic requested on the command line' 30 > /dev/null
e2e_expect_crash "$dom" 30
e2e_destroy "$dom"
