#!/usr/bin/env bash
# -max-streams N: a listener lets one peer have at most N forwarded
# connections open at once (here N = 3, from the config file's
# max-streams); the peer's further connections wait for a free stream.
#   - 3 idle connections reach bob's echo server; 2 more stay waiting and
#     alice logs that they wait; none of them reaches the echo server
#   - once the idle ones close, the waiting ones get streams and echo
#   - many connections through the forward at once all get through, 3 at
#     a time
#   - a bad N is refused at start: flag and file, exit 2
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

log "a bad N is refused at start"
run_capture 10 "$NATTER" -name bob -broker 127.0.0.1:9 -listen -max-streams 0
((STATUS == 2)) || fail "-max-streams 0: exit $STATUS, want 2: $OUTPUT"
assert_output_contains 'bad -max-streams "0": expected a number 1\.\.4096'
printf 'max-streams = 4097\n' >"$WORK/bad.conf"
run_capture 10 "$NATTER" -config "$WORK/bad.conf" -name bob \
  -broker 127.0.0.1:9 -listen
((STATUS == 2)) || fail "max-streams = 4097: exit $STATUS, want 2: $OUTPUT"
assert_output_contains 'bad\.conf:1: bad max-streams "4097"'

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker
printf 'max-streams = 3\n' >"$WORK/bob.conf"
start_client bob -config "$WORK/bob.conf" -listen -allow-peer alice
port=$(free_port)
start_client alice "$port:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 2 --bytes 64K

log "3 idle connections take every stream bob allows"
held=()
open_conns "$port" 3 held
wait_established_to "$echo_port" 3

log "2 more wait"
waiting=()
open_conns "$port" 2 waiting
wait_log alice 'bob: all 3 streams it allows are open \(its max-streams\); new connections wait'
sleep 1
n=$(established_to "$echo_port")
((n == 3)) || fail "bob let alice have $n connections open, max-streams is 3"

log "the idle ones close; the waiting ones get streams"
close_conns held
for fd in "${waiting[@]}"; do
  expect_ping_echoed "$fd"
done
n=$(established_to "$echo_port")
((n == 2)) || fail "want the 2 waiting connections, have $n"
close_conns waiting
wait_established_to "$echo_port" 0

log "20 connections at once, 3 at a time"
expect_exit_zero -t 60 "$TCPCHECK" echo-check "$port" --conns 20 \
  --bytes 64K --timeout 50
assert_log_lacks alice 'too many streams'
stop_expect_clean alice
stop_expect_clean bob
log "passed"
