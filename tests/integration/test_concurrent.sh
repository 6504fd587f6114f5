#!/usr/bin/env bash
# Many forwarded connections at once over one QUIC connection: 100
# concurrent connections of 256 KiB each way, then 100 small ones, then 100
# that send nothing at all; every byte checked. Also checks the process stays
# up and the echo server saw every connection.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker
start_client bob -listen -allow-peer alice
port=$(free_port)
start_client alice "$port:bob:$echo_port"

# 100 x 256 KiB: more than the initial flow-control window of most streams
# in flight at once, so backpressure and stream limits both matter.
expect_exit_zero -t 150 "$TCPCHECK" echo-check "$port" --conns 100 \
  --bytes 262144 --timeout 120
assert_output_contains '^100 ok$'

# 100 x 100 bytes: short streams opened and closed in a burst.
expect_exit_zero -t 90 "$TCPCHECK" echo-check "$port" --conns 100 \
  --bytes 100 --timeout 60
assert_output_contains '^100 ok$'

# 100 x 0 bytes: connect, half-close at once, expect EOF back.
expect_exit_zero -t 90 "$TCPCHECK" echo-check "$port" --conns 100 \
  --bytes 0 --timeout 60
assert_output_contains '^100 ok$'

# All of it over one peer connection.
n=$(grep -c "natter: connected to bob" "$WORK/alice.log")
((n == 1)) || fail "alice connected to bob $n times; want one connection"
for name in alice bob; do
  assert_log_lacks "$name" 'error|refused|denied|failed|reset'
done

# bob closed every TCP connection he opened to the echo server (within 10 s),
# and the echo server saw all 300.
deadline=$(($(_now_ms) + 10000))
while ss -Htn state connected exclude time-wait "( sport = :$echo_port or dport = :$echo_port )" | grep -q .; do
  (($(_now_ms) < deadline)) ||
    fail "TCP connections to the echo server still open 10 s after the checks: $(ss -Htn state connected exclude time-wait "( sport = :$echo_port or dport = :$echo_port )")"
  sleep 0.1
done
stop_expect_clean echo
assert_log_contains echo 'served 300 connections, 0 still open'

# SIGTERM to bob while 20 connections are busy: bob exits 0 within 5 s,
# and alice closes (or resets) every local connection soon after; nothing
# hangs until the checker's own 120 s deadline.
start_echo_server echo2 "$echo_port"
start busy "$TCPCHECK" echo-check "$port" --conns 20 --bytes 1G --timeout 120
# Busy: all 20 connections reached the echo server through bob and carry
# data (1 GiB each takes far longer than the rest of the test).
wait_tcp_busy "$echo_port" 20 30
running busy || fail "the busy transfer ended early: $(cat "$WORK/busy.log")"
stop_expect_clean bob
wait_exit busy 20
[[ ${EXIT_STATUS[busy]} != 0 ]] ||
  fail "20 x 1 GiB echoed in full although bob stopped mid-way"
assert_log_lacks busy 'timed out'
running alice || fail "alice exited when her peer bob stopped"

stop_expect_clean alice
stop_expect_clean broker
