#!/usr/bin/env bash
# Forwarding through the tunnel: one client with several SPECs on one command
# line, in each of the SPEC forms (PORT, 127.0.0.1:PORT, localhost:PORT), and
# a client that both listens (-listen) and forwards, reached by another client
# and forwarding on to a third (a chain alice -> carol -> bob).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# send_line PORT MSG: send one line to 127.0.0.1:PORT, half-close, and check
# that the same line comes back.
send_line() {
  local port=$1 msg=$2 reply
  reply=$(printf '%s\n' "$msg" |
    timeout 20 socat -t 10 - "TCP:127.0.0.1:$port") ||
    fail "no reply to \"$msg\" through 127.0.0.1:$port"
  [[ $reply == "$msg" ]] ||
    fail "through 127.0.0.1:$port: sent \"$msg\", got back \"$reply\""
}

# check_echo PORT: a few lines, then 8 concurrent connections of 256 KiB
# each, checked byte for byte.
check_echo() {
  local port=$1 what=$2
  send_line "$port" "hello via $what"
  send_line "$port" "second line via $what, port $port"
  expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 8 --bytes 256K \
    --timeout 60
  assert_output_contains '^8 ok$'
}

echo_a=$(free_port)
echo_b=$(free_port)
echo_c=$(free_port)
start_echo_server echo_a "$echo_a" # bob's services ...
start_echo_server echo_b "$echo_b"
start_echo_server echo_c "$echo_c" # ... and carol's

start_broker broker
start_client bob -listen -allow-peer alice -allow-peer carol

# carol listens too and forwards a port of her own to bob.
p_carol_bob=$(free_port)
start_client carol -listen -allow-peer alice "$p_carol_bob:bob:$echo_b"

# alice: three SPECs to bob in the three forms, one to carol's own service
# and one to carol's forward (so carol serves a stream and opens one).
p1=$(free_port)
p2=$(free_port)
p3=$(free_port)
p4=$(free_port)
p5=$(free_port)
start_client alice "$p1:bob:$echo_a" "$p2:bob:127.0.0.1:$echo_b" \
  "$p3:bob:localhost:$echo_a" "$p4:carol:$echo_c" \
  "$p5:carol:$p_carol_bob"
assert_log_contains alice "natter: forwarding 127\.0\.0\.1:$p1 -> bob:$echo_a\$"
assert_log_contains alice \
  "natter: forwarding 127\.0\.0\.1:$p2 -> bob:127\.0\.0\.1:$echo_b\$"
assert_log_contains alice \
  "natter: forwarding 127\.0\.0\.1:$p3 -> bob:localhost:$echo_a\$"

check_echo "$p1" "alice -> bob:$echo_a"
check_echo "$p2" "alice -> bob:127.0.0.1:$echo_b"
check_echo "$p3" "alice -> bob:localhost:$echo_a"
wait_log alice "natter: connected to bob .*key verified" 10

# The listener and forwarder in one process, both ways.
check_echo "$p_carol_bob" "carol -> bob:$echo_b"
check_echo "$p4" "alice -> carol:$echo_c"
check_echo "$p5" "alice -> carol -> bob:$echo_b"
wait_log alice "natter: connected to carol .*key verified" 10
wait_log carol "natter: connected to bob .*key verified" 10
wait_log carol "natter: connected to alice .*key verified" 10

# One QUIC connection per peer pair, reused by every forward to that peer.
n=$(grep -c "natter: connected to bob" "$WORK/alice.log")
((n == 1)) || fail "alice connected to bob $n times; want one connection"

# Nobody logged a per-connection failure.
for name in alice bob carol broker; do
  assert_log_lacks "$name" 'error|refused|denied|failed|unknown'
done

# SIGINT (Ctrl-C) and SIGTERM: every natter process exits 0 within 5 s,
# with its tunnels open, and the broker reports its traffic either way.
stop_expect_clean alice INT
stop_expect_clean carol TERM
stop_expect_clean bob INT
stop_expect_clean broker INT
assert_log_contains broker 'natter: broker traffic: received [0-9]+ bytes'
