# storage: apps/blkcheck on real Xen (issue 6), blkfront against Linux's
# blkback. The contract with the appliance (console lines, the pattern) is
# in docs/storage.md, section "On real Xen"; change both together.
#
# 1. The guest hashes every file of image.tar (xvda, read-only) and prints
#    `blkcheck: sha256 <hex> <path>`; dom0 extracts the same archive with
#    its own tar and compares sha256sum of every regular file.
# 2. The guest writes a pattern over [offset, offset+bytes) of scratch.img
#    (xvdb), flushes, reads back and compares; after the domain is gone
#    dom0 checks every byte of the file (storage-pattern, the same formula).

seed=$(( $(date +%s) % 1000000 + 1 ))
offset=1048576
bytes=8388608
scratch_bytes=10485760
fill=90  # 0x5a, what the host filled scratch.img with (storage.rs)

dom=$E2E_DOMAIN
cfg=$(e2e_config EXTRA="seed=$seed offset=$offset bytes=$bytes")
e2e_create "$cfg" "$dom"
e2e_wait_first_line

# The guest's verdict, or why it crashed.
line=$(e2e_wait_console 'blkcheck: done|main failed|panic' 90)
end=$(e2e_now_ns)
case "$line" in
    *'blkcheck: done'*) ;;
    *) e2e_fail "guest: $(echo "$line" | tr -d '\r')" ;;
esac
e2e_figure create_to_done_ms "$(e2e_ms_between "$E2E_CREATE_START" "$end")" ms
e2e_expect_clean_exit "$dom" 30
tr -d '\r' < "$E2E_CONSOLE" > "$E2E_OUT/console"
start=$(e2e_now_ns)
e2e_destroy "$dom"
e2e_figure destroy_ms "$(e2e_ms_between "$start" "$(e2e_now_ns)")" ms

# The guest's figures.
summary=$(grep -m 1 'blkcheck: files ' "$E2E_OUT/console") \
    || e2e_fail "no 'blkcheck: files' line"
scratch=$(grep -m 1 'blkcheck: scratch ' "$E2E_OUT/console") \
    || e2e_fail "no 'blkcheck: scratch' line"
probe=$(grep -m 1 'blkcheck: depth 1: ' "$E2E_OUT/console") \
    || e2e_fail "no 'blkcheck: depth 1' line"
e2e_log "${summary#*blkcheck: }"
e2e_log "${scratch#*blkcheck: }"
e2e_log "${probe#*blkcheck: }"
field() {
    echo "$1" | sed -n "s|.*$2.*|\\1|p"
}
files=$(field "$summary" 'files \([0-9]*\) ')
e2e_figure files "$files" files
e2e_figure bytes_hashed "$(field "$summary" 'bytes \([0-9]*\) ')" bytes
e2e_figure hash_ms "$(field "$summary" ' in \([0-9]*\) ms')" ms
e2e_figure hash_mib_s "$(field "$summary" '; \([0-9.]*\) MiB/s hashed')" MiB/s
e2e_figure write_mib_s "$(field "$scratch" 'write [0-9]* ms (\([0-9.]*\) MiB/s)')" MiB/s
e2e_figure flush_ms "$(field "$scratch" 'flush \([0-9]*\) ms')" ms
e2e_figure read_mib_s "$(field "$scratch" 'read [0-9]* ms (\([0-9.]*\) MiB/s)')" MiB/s
e2e_figure max_in_flight "$(field "$scratch" 'max in flight \([0-9]*\)')" requests
e2e_figure depth1_read_us "$(field "$probe" ', \([0-9]*\) us each')" us
echo "$scratch" | grep -q "offset $offset bytes $bytes seed $seed:" \
    || e2e_fail "the guest wrote another range: ${scratch#*blkcheck: }"

# 1. Every file's SHA-256, the guest's against dom0's.
sed -n 's/^.*blkcheck: sha256 \([0-9a-f]\{64\}\) \(.*\)$/\1  \2/p' "$E2E_OUT/console" \
    | sort > "$E2E_OUT/guest.sums"
mkdir -p "$E2E_OUT/tree"
tar -xf "$E2E_DIR/image.tar" -C "$E2E_OUT/tree" \
    || e2e_fail "dom0's tar cannot extract image.tar"
(cd "$E2E_OUT/tree" && find . -type f -print0 | xargs -0 -r sha256sum) \
    | sed 's|^\([0-9a-f]*\)  \./|\1  |' | sort > "$E2E_OUT/dom0.sums"
want=$(wc -l < "$E2E_OUT/dom0.sums")
got=$(wc -l < "$E2E_OUT/guest.sums")
[ "$want" -gt 0 ] || e2e_fail "dom0 found no file in image.tar"
[ "$files" = "$want" ] || e2e_fail "the guest hashed $files files, dom0 extracted $want"
if ! cmp -s "$E2E_OUT/guest.sums" "$E2E_OUT/dom0.sums"; then
    diff "$E2E_OUT/dom0.sums" "$E2E_OUT/guest.sums" | sed 's/^/  | /' | head -n 20
    e2e_fail "sha256 lines differ from dom0's ($got printed, $want files): $(diff "$E2E_OUT/dom0.sums" "$E2E_OUT/guest.sums" | grep -m 1 '^[<>]')"
fi
e2e_log "sha256 of all $want files match dom0's"

# 2. The scratch disk's bytes, now that the guest is gone.
out=$("$E2E_DIR/storage-pattern" check "$E2E_DIR/scratch.img" "$seed" "$offset" "$bytes" \
    "$scratch_bytes" "$fill" 2>&1) \
    || e2e_fail "scratch.img after the guest: $out"
e2e_log "scratch.img: $bytes bytes of pattern at $offset, the rest untouched"
