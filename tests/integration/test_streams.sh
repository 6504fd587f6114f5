#!/usr/bin/env bash
# More local connections than the peer allows streams at once (256): the
# rest wait in the peer's queue for a free stream instead of being reset.
#   - 256 idle connections hold every stream; 128 more wait (alice logs
#     once that connections wait); one more is refused with a message
#     that names the queue's bound (128), and natter keeps serving
#   - once the idle ones close, the waiting ones get streams and echo
#   - 384 concurrent echo connections through one forward: all verified
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker
start_client bob -listen -allow-peer alice
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
wait_log alice 'bob: all 256 streams it allows are open \(its max-streams\); new connections wait \(at most 128, 30 s\)'

log "one more is refused: the queue holds 128"
exec {extra}<>"/dev/tcp/127.0.0.1/$port"
wait_log alice 'bob: 128 connections already wait for the peer; dropping one'
timeout 10 cat <&"$extra" >/dev/null 2>&1 || true
exec {extra}>&-
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
