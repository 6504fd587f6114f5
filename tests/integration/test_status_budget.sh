#!/usr/bin/env bash
# Status readers cannot lock the operator out of the broker's HTTP/3
# status page: one address holds at most 4 readers (natter-hog from
# 127.0.0.2 is closed past that, with the reason), readers from four
# addresses fill the 16 ordinary slots (another reader is then closed
# with a reason), and the broker's own key and an -admin key still get
# in on slots of their own. Refusals are logged at most once a second.
# The honest pair's check and forward work throughout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HOG=${NATTER_HOG:-$(dirname "$NATTER")/natter-hog}
[[ -x $HOG ]] || fail "$HOG is not an executable (build natter_hog)"
command -v openssl >/dev/null || {
  log "SKIP: openssl not installed"
  exit 77
}
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/admin.key" \
  2>/dev/null || fail "openssl ecparam failed"
admin_fp=$(openssl pkey -in "$WORK/admin.key" -pubout -outform DER |
  sha256sum | cut -d' ' -f1)

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -registry memory: -admin "$admin_fp"
start_client bob -listen -allow-peer alice
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K

# One address, 6 readers: 4 stay, the rest are closed with the reason.
start hog2 "$HOG" status "$BROKER" 127.0.0.2 6 60
wait_log hog2 '^established 6$' 30
wait_log broker 'refused an HTTP/3 status reader from 127\.0\.0\.2:[0-9]+: 4 status readers from this address are connected already' 30
# Three more addresses take the other 12 ordinary slots.
for a in 3 4 5; do
  start "hog$a" "$HOG" status "$BROKER" "127.0.0.$a" 4 60
done
for a in 3 4 5; do
  wait_log "hog$a" '^established 4$' 30
done

# Another reader is turned away, with the reason, once all 16 are held
# (the hogs' last handshakes may still be finishing at the broker:
# ask again, within a deadline).
deadline=$(($(_now_ms) + 30000))
while :; do
  run_capture 20 "$NATTER" -status "$BROKER" -identity "$WORK/stranger.key"
  ((STATUS != 0)) && break
  (($(_now_ms) < deadline)) || fail "a 17th status reader was let in: $OUTPUT"
  sleep 0.2
done
assert_output_contains '16 status readers are connected already'

# The broker's own key and the -admin key are never locked out.
expect_exit_zero "$NATTER" -status "$BROKER" -identity "$WORK/broker.key"
grep -q '^alice ' <<<"$OUTPUT" || fail "the broker's own key saw no client rows: $OUTPUT"
expect_exit_zero "$NATTER" -status "$BROKER" -identity "$WORK/admin.key"
grep -q '^alice ' <<<"$OUTPUT" || fail "the -admin key saw no client rows: $OUTPUT"

# The honest pair is unaffected.
run_capture 40 "$NATTER" -name alice -broker "$BROKER" \
  -identity "$WORK/alice.key" -check bob
((STATUS == 0)) || fail "alice's check of bob exited $STATUS: $OUTPUT"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 50K

for a in 2 3 4 5; do
  running "hog$a" || fail "hog$a ended early: $(cat "$WORK/hog$a.log")"
  stop "hog$a"
done
# Logged at most once a second, not once per refusal.
(($(grep -c 'refused an HTTP/3 status reader' "$WORK/broker.log") <= 4)) ||
  fail "refusals flooded the log: $(grep 'refused an HTTP/3' "$WORK/broker.log")"
log "ok"
