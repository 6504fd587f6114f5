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

# echo_conns: connections established to the echo server (bob's side).
echo_conns() { ss -Htn state established "sport = :$echo_port" | wc -l; }
wait_echo_conns() {
  local want=$1 deadline=$(($(_now_ms) + 20000))
  until (($(echo_conns) == want)); do
    (($(_now_ms) < deadline)) ||
      fail "want $want connections at the echo server, have $(echo_conns)"
    sleep 0.05
  done
}

log "256 idle connections take every stream"
held=()
for ((i = 0; i < 256; i++)); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$port"
  held+=("$fd")
done
wait_echo_conns 256

log "128 more wait"
waiting=()
for ((i = 0; i < 128; i++)); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$port"
  waiting+=("$fd")
done
wait_log alice 'bob: all 256 streams it allows are open \(its max-streams\); new connections wait \(at most 128, 30 s\)'

log "one more is refused: the queue holds 128"
exec {extra}<>"/dev/tcp/127.0.0.1/$port"
wait_log alice 'bob: 128 connections already wait for the peer; dropping one'
timeout 10 cat <&"$extra" >/dev/null 2>&1 || true
exec {extra}>&-
(($(echo_conns) == 256)) || fail "a waiting connection got a stream early"

log "the idle ones close; the waiting ones get streams"
for fd in "${held[@]}"; do
  exec {fd}>&-
done
wait_echo_conns 128
for fd in "${waiting[@]:0:4}"; do
  printf 'ping' >&"$fd"
  reply=""
  read -r -t 10 -N 4 reply <&"$fd" || true
  [[ $reply == ping ]] || fail "a connection that waited for a stream got '$reply' back"
done
for fd in "${waiting[@]}"; do
  exec {fd}>&-
done
wait_echo_conns 0

log "384 connections at once"
expect_exit_zero -t 120 "$TCPCHECK" echo-check "$port" --conns 384 \
  --bytes 256K --timeout 100
assert_log_lacks alice 'too many streams'
expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 8 --bytes 1M
stop_expect_clean alice
stop_expect_clean bob
log "passed"
