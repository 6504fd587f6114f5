#!/usr/bin/env bash
# Aborted downloads must not starve the peer connection. A client reads a
# little from an endless stream and closes with unread data (the kernel
# sends RST); whatever natter had queued for it is dropped, and its share
# of the QUIC connection's flow-control window must come back. Before
# that was so, three or four such aborts left the connection with no
# credit and every later forward to the peer hung.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

zero_port=$(free_port)
echo_port=$(free_port)
start zeros socat "TCP-LISTEN:$zero_port,bind=127.0.0.1,reuseaddr,fork" \
  OPEN:/dev/zero
wait_tcp_listen "$zero_port"
start_echo_server echo "$echo_port"

start_broker broker
start_client bob -listen -allow-peer alice
p_zero=$(free_port)
p_echo=$(free_port)
start_client alice "$p_zero:bob:$zero_port" "$p_echo:bob:$echo_port"

for round in $(seq 1 12); do
  # Read 64 KiB, wait until natter's buffers towards us are full (its
  # socket has bytes the kernel cannot send: we stopped reading), then
  # close with all that unread.
  exec 3<>"/dev/tcp/127.0.0.1/$p_zero" || fail "round $round: connect failed"
  got=$(timeout 10 head -c 65536 <&3 | wc -c)
  [[ $got == 65536 ]] || fail "round $round: read $got bytes, want 65536"
  wait_tcp_backlog "$p_zero"
  exec 3<&-
done
log "12 aborted downloads done"

# The same peer connection must still carry data both ways.
expect_exit_zero -t 60 "$TCPCHECK" echo-check "$p_echo" --conns 4 \
  --bytes 4M --timeout 30
assert_output_contains '^4 ok$'
assert_log_contains alice 'connected to bob'

stop_expect_clean alice
stop_expect_clean bob
stop_expect_clean broker
log "passed"
