#!/usr/bin/env bash
# One address cannot fill the broker's name registry: names not bound yet
# cost their source address (and their key) one of -new-names-per-hour,
# saved up to a burst; a hog with a fresh key per name (natter-hog, from
# 127.0.0.2) binds only its budget and is refused with a message that
# names the limit, logged at most once a second. Names already bound are
# never refused: alice, whose address has spent its budget too, checks
# in again. The honest pair's check and forward work throughout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HOG=${NATTER_HOG:-$(dirname "$NATTER")/natter-hog}
[[ -x $HOG ]] || fail "$HOG is not an executable (build natter_hog)"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
# A budget of 3 new names an hour (burst 3) per address and per key.
start_broker broker -registry "$WORK/registry.db" -new-names-per-hour 3
start_client bob -listen -allow-peer alice
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K

# The hog: 20 new names, one after the other, each under its own key.
run_capture 90 "$HOG" names "$BROKER" 127.0.0.2 20 squat
((STATUS == 0)) || fail "natter-hog exited $STATUS: $OUTPUT"
assert_output_contains '^bound 3$'
assert_output_contains '^refused 17: too many new names from this address or key \(limit 3 an hour\)'
assert_log_contains broker 'refused the new name "squat-4" from 127\.0\.0\.2:[0-9]+: its address or key used up its new names \(3 an hour'
# Logged at most once a second, not once per refusal.
(($(grep -c 'refused the new name' "$WORK/broker.log") < 17)) ||
  fail "every refusal was logged: $(grep -c 'refused the new name' "$WORK/broker.log") lines"

# Another address has its own budget.
run_capture 60 "$HOG" names "$BROKER" 127.0.0.3 2 other
assert_output_contains '^bound 2$'

# The honest pair is unaffected: a check and the forward.
run_capture 40 "$NATTER" -name alice -broker "$BROKER" \
  -identity "$WORK/alice.key" -check bob
((STATUS == 0)) || fail "alice's check of bob exited $STATUS: $OUTPUT"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 50K

# 127.0.0.1 spends the rest of its budget (alice and bob took 2): carol
# binds, dave is refused ...
start_client carol -listen -allow-peer alice
start dave "$NATTER" -name dave -broker "$BROKER" -identity "$WORK/dave.key" \
  -listen -allow-peer alice
wait_exit dave 30
assert_log_contains dave 'too many new names from this address or key'
# ... but a name already bound is never refused: alice checks in again,
# from the spent address, after a restart.
stop alice
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K
log "ok"
