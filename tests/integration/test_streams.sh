#!/usr/bin/env bash
# More local connections than the peer allows streams at once (here 256,
# bob's -max-streams): the rest wait in the peer's queue for a free stream
# instead of being reset (the queue's bound, 1024, is test_many_conns's).
#   - 256 idle connections hold every stream; 128 more wait (alice logs
#     once that connections wait, naming the queue's bound)
#   - once the idle ones close, the waiting ones get streams and echo
#   - 384 concurrent echo connections through one forward: all verified
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker
start_client bob -listen -allow-peer alice -max-streams 256
port=$(free_port)
start_client alice "$port:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 2 --bytes 64K

log "256 idle connections take every stream"
held=()
open_conns "$port" 256 held
wait_established_to "$echo_port" 256

log "128 more wait"
waiting=()
open_conns "$port" 128 waiting
wait_log alice 'bob: all 256 streams it allows are open \(its max-streams\); new connections wait \(at most 1024, 30 s\)'
sleep 1
(($(established_to "$echo_port") == 256)) ||
  fail "a waiting connection got a stream early"

log "the idle ones close; the waiting ones get streams"
close_conns held
wait_established_to "$echo_port" 128
for fd in "${waiting[@]:0:4}"; do
  expect_ping_echoed "$fd"
done
close_conns waiting
wait_established_to "$echo_port" 0

log "384 connections at once"
expect_exit_zero -t 120 "$TCPCHECK" echo-check "$port" --conns 384 \
  --bytes 256K --timeout 100
assert_log_lacks alice 'too many streams'
expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 8 --bytes 1M
stop_expect_clean alice
stop_expect_clean bob
log "passed"
