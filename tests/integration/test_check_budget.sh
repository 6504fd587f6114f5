#!/usr/bin/env bash
# One requester cannot block natter -check for everyone: 16 check
# sessions from one address (natter-hog, 127.0.0.2), each with a key of
# its own, ask for 4 checks each of a listener that admits anyone, and ask
# again every second as slots free up. The broker holds at most 8 checks
# per source address (4 per key) in a table of 1024, so the hog is
# refused past its share (logged, at most once a second) while alice's
# check of bob and her forward keep working. One key in several sessions
# holds 4 checks in all.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HOG=${NATTER_HOG:-$(dirname "$NATTER")/natter-hog}
[[ -x $HOG ]] || fail "$HOG is not an executable (build natter_hog)"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -registry memory: -new-names-per-hour 0
start_client bob -listen -allow-peer alice
# The hog's target: a listener that admits anyone (it could be the hog's
# own).
start_client mallory -listen -allow-peer '*'
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K

start hog "$HOG" checks "$BROKER" 127.0.0.2 16 mallory 4 45
wait_log broker 'refused a check by chk-127\.0\.0\.2-[0-9]+ from 127\.0\.0\.2:[0-9]+: its address has 8 checks under way' 30

# alice checks bob, twice, while the hog keeps asking.
for round in 1 2; do
  run_capture 40 "$NATTER" -name alice -broker "$BROKER" \
    -identity "$WORK/alice.key" -check bob
  ((STATUS == 0)) || fail "alice's check of bob (round $round) exited $STATUS: $OUTPUT"
  assert_output_contains '^verdict: direct works$'
  expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 50K
done
running hog || fail "the hog ended before alice's checks were done"
assert_log_lacks broker 'refused a check by alice'
stop hog

# One key in several sessions (from 127.0.0.3) holds 4 checks, not 4 per
# session: 3 sessions asking for 2 each get 4.
run_capture 30 "$HOG" checks-one-key "$BROKER" 127.0.0.3 3 mallory 2 5
((STATUS == 0)) || fail "natter-hog checks-one-key exited $STATUS: $OUTPUT"
assert_output_contains '^granted 4$'
assert_output_contains '^refused [1-9][0-9]*: the broker runs too many checks at once'
log "ok"
