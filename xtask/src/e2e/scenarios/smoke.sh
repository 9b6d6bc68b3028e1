# smoke: the harness proves itself with the smallest PVH guest
# (xtask/fixtures/smoke-guest.S): it writes one line to port 0xe9 and one to
# the PV console, then powers off.
cfg=$(e2e_config)
e2e_create "$cfg" "$E2E_DOMAIN"
e2e_wait_first_line
e2e_wait_console 'ringlet-smoke: hello on the PV console' 10 > /dev/null
e2e_wait_dmesg "\(d$E2E_DOMID\) ringlet-smoke: hello on port 0xe9" 10 > /dev/null
e2e_expect_clean_exit "$E2E_DOMAIN" 10
