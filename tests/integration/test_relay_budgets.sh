#!/usr/bin/env bash
# The broker's relay under attack by hostile clients (natter-relay-flood,
# tests/hostile) from other loopback addresses, while an honest pair, alice
# -> bob on 127.0.0.1, keeps working: each attack stays within the relay's
# budgets per key and per source address (doc/design.md, "Relay
# budgets"), and during every one alice's forward works and her -check
# still gets a relay channel.
#   - the relay filled: 16 pairs of fresh names from each of 4 addresses,
#     each asker asking for its partner 16 times (1024 channels, the whole
#     relay, when channels were counted per name): 32 channels per
#     address, the rest refused and logged; when the hostile clients
#     leave, their channels are gone at once (not 60 s later)
#   - one key under many names: 16 channels at most
#   - garbage through 8 pairs of fresh names on one address: together
#     they get that address's -relay-rate, not 8 times it
#   - mallory sends garbage to bob (who admits anyone) through its
#     channel until its -relay-total is used up: that spends mallory's
#     allowance, not bob's, so carol's channel to bob still carries her
#     bytes afterwards
# The broker's /metrics show the relayed bytes and the channels open.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RFLOOD=${NATTER_RELAY_FLOOD:-$(dirname "$NATTER")/natter-relay-flood}
[[ -x $RFLOOD ]] ||
  fail "$RFLOOD is not an executable (build natter_relay_flood)"

RATE=200000
TOTAL=2000000

metrics_port=$(free_port)
# metric NAME: the value of the broker's sample NAME (no labels).
metric() {
  curl -sS --max-time 10 "http://127.0.0.1:$metrics_port/metrics" \
    >"$WORK/metrics.txt" || fail "cannot read the broker's metrics"
  awk -v k="$1" '$1 == k { print $2 }' "$WORK/metrics.txt"
}
# field TOOL NAME: the number after NAME in the tool's output.
field() { sed -n "s/^$2 \([0-9]*\).*/\1/p" "$WORK/$1.log"; }

# This test makes many names from one address; a broker that budgets new
# names per address is told not to here (that budget has its own test).
name_budget=()
help=$("$NATTER" -h 2>&1 || true)
if [[ $help == *-new-names-per-hour* ]]; then
  name_budget=(-new-names-per-hour 0)
fi

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -relay -relay-rate "$RATE" -relay-total "$TOTAL" \
  -metrics "127.0.0.1:$metrics_port" "${name_budget[@]}"
start_client bob -listen -allow-peer '*'
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"

# alice's forward works, and her check of bob is offered a relay channel.
honest() {
  expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 1M
  run_capture 60 "$NATTER" -name alice -broker "$BROKER" \
    -identity "$WORK/alice.key" -check bob -json
  ((STATUS == 0)) || fail "alice's -check bob exited $STATUS: $OUTPUT"
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
assert d["relay_offered"], "no relay channel offered"' "$OUTPUT" ||
    fail "alice's check got no relay channel: $OUTPUT"
}
honest
baseline=$(metric natter_broker_relay_channels)

log "the relay filled from 4 addresses"
for i in 2 3 4 5; do
  start "fill$i" "$RFLOOD" channels "$BROKER" "127.0.0.$i" 16 16 200
done
for i in 2 3 4 5; do
  wait_log "fill$i" '^failed [0-9]+$' 120
  [[ $(field "fill$i" offered) == 32 && $(field "fill$i" without) == 224 &&
    $(field "fill$i" failed) == 0 ]] ||
    fail "127.0.0.$i: want 32 channels offered, 224 without:" \
      "$(cat "$WORK/fill$i.log")"
done
NAMES='rf[0-9a-f]+-a[0-9]+ and rf[0-9a-f]+-l[0-9]+'
assert_log_contains broker "relay: no channel for $NAMES: too many channels \
from 127\\.0\\.0\\.[2-5] \\(limit 32 per address\\)"
assert_log_lacks broker 'the relay is full'
open=$(metric natter_broker_relay_channels)
((open >= 128 && open <= 128 + baseline)) ||
  fail "$open relay channels open, want 128 of the hostile clients" \
    "(+ at most $baseline)"
honest
for i in 2 3 4 5; do
  stop "fill$i"
done
# Their channels go with their sessions; an idle channel would stay 60 s.
deadline=$(($(_now_ms) + 20000))
until (($(metric natter_broker_relay_channels) <= baseline)); do
  (($(_now_ms) < deadline)) ||
    fail "$(metric natter_broker_relay_channels) relay channels still open" \
      "20 s after the hostile clients left (want at most $baseline)"
  sleep 0.2
done

log "one key under many names"
start onekey "$RFLOOD" channels "$BROKER" 127.0.0.6 2 10 200 one-key
wait_log onekey '^failed [0-9]+$' 60
[[ $(field onekey offered) == 16 && $(field onekey without) == 4 ]] ||
  fail "one key: want 16 channels offered, 4 without: $(cat "$WORK/onekey.log")"
assert_log_contains broker \
  'too many channels for key [0-9a-f]{16}\.\.\. \(limit 16 per key\)'
stop onekey

log "garbage through 8 pairs on one address"
before=$(metric natter_broker_relayed_bytes_total)
t0=$(_now_ms)
start garbage "$RFLOOD" garbage "$BROKER" 127.0.0.7 8 3
honest
wait_exit garbage 60
t1=$(_now_ms)
relayed=$(($(metric natter_broker_relayed_bytes_total) - before))
sent=$(field garbage sent)
# A token bucket passes at most RATE bytes a second plus one second of
# burst, however long the flood took to start.
limit=$((RATE * (t1 - t0 + 1000) / 1000))
((relayed > 0 && relayed <= limit)) ||
  fail "8 pairs from 127.0.0.7 got $relayed bytes relayed in" \
    "$((t1 - t0)) ms (limit $limit: one address's -relay-rate)"
((sent > relayed)) ||
  fail "the flood sent $sent bytes, no more than were relayed ($relayed)"
assert_log_contains broker "relay: 127\\.0\\.0\\.7 \\(rf[0-9a-f]+-a[0-9]+\\) \
is over its rate \\(200000 bytes/s per address, -relay-rate\\)"
log "garbage: $sent bytes sent, $relayed relayed in $((t1 - t0)) ms"

log "mallory's garbage to bob spends mallory's allowance only"
start mallory "$RFLOOD" peer "$BROKER" 127.0.0.8 mallory bob 120 0
wait_log broker "relay: (key [0-9a-f]{16}\\.\\.\\.|127\\.0\\.0\\.8) \
\\(mallory\\) used up its 2000000 relayed bytes" 90
CAP='the broker.s relay closed our channel: a relay byte cap'
wait_log bob "mallory: $CAP was reached" 20
stop mallory
honest
after_mallory=$(metric natter_broker_relayed_bytes_total)
start carol "$RFLOOD" peer "$BROKER" 127.0.0.9 carol bob 120 100
wait_log bob \
  'carol: no direct path after [0-9]+ ms; trying the broker.s relay' 30
deadline=$(($(_now_ms) + 30000))
relayed_since() {
  echo $(($(metric natter_broker_relayed_bytes_total) - after_mallory))
}
until (($(relayed_since) >= 12000)); do
  (($(_now_ms) < deadline)) ||
    fail "carol's bytes to bob were not relayed within 30 s of bob" \
      "trying the relay ($(relayed_since) bytes)"
  sleep 0.2
done
stop carol
[[ $(sed -n 's/^closed \([0-9]*\).*/\1/p' "$WORK/carol.log") == 0 ]] ||
  fail "the relay closed carol's channel to bob: $(cat "$WORK/carol.log")"
assert_log_lacks bob "carol: $CAP"

honest
for name in broker alice bob fill2 fill3 fill4 fill5 onekey garbage mallory \
  carol; do
  assert_log_lacks "$name" 'AddressSanitizer|LeakSanitizer|runtime error'
done
stop_expect_clean alice
stop_expect_clean bob
stop_expect_clean broker
log "passed"
