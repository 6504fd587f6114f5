#!/usr/bin/env bash
# The test tool itself: tcpcheck's servers and checkers against each other,
# and proof that its checks catch a wrong echo and a wrong hash; hold counts
# echoed and closed connections.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
sink_port=$(free_port)
start_echo_server echo "$echo_port"
start_sink_server sink "$sink_port"

expect_exit_zero "$TCPCHECK" echo-check "$echo_port" --conns 50 --bytes 256K
assert_output_contains '^50 ok$'
expect_exit_zero "$TCPCHECK" echo-check "$echo_port" --conns 1 --bytes 0
expect_exit_zero "$TCPCHECK" send "$sink_port" --bytes 10M
assert_output_contains '^bytes=10485760 seconds=[0-9.]+ gbps=[0-9.]+$'

# The sink's hash agrees with sha256sum.
head -c 1000003 /dev/urandom >"$WORK/data"
reply=$(timeout 20 socat -t 10 - "TCP:127.0.0.1:$sink_port" <"$WORK/data")
[[ $reply == "$(sha256_of "$WORK/data")" ]] ||
  fail "sink-server replied $reply, sha256sum says $(sha256_of "$WORK/data")"

# Half-close: the echo arrives in full after the client's FIN.
reply=$(printf 'one\ntwo\n' | timeout 20 socat -t 10 - "TCP:127.0.0.1:$echo_port")
[[ $reply == $'one\ntwo' ]] || fail "echo of two lines came back as '$reply'"

# The checks fail when they should, within their deadline.
expect_exit_nonzero "$TCPCHECK" echo-check "$sink_port" --conns 2 --bytes 1K
assert_output_contains 'conn [01]: '
expect_exit_nonzero "$TCPCHECK" send "$echo_port" --bytes 1K
assert_output_contains 'reply does not match'
closed_port=$(free_port)
expect_exit_nonzero "$TCPCHECK" echo-check "$closed_port" --conns 1 --bytes 1
assert_output_contains 'Connection refused'
expect_exit_nonzero -t 10 "$TCPCHECK" send "$closed_port" --bytes 1

# hold: connections that echo and stay open; refused ones count as closed,
# a sink (never echoes) leaves them neither; SIGTERM ends it with 0.
start hold "$TCPCHECK" hold "$echo_port" --conns 30 --timeout 60
wait_log hold '^echoed=30 closed=0 lost=0$'
wait_established_to "$echo_port" 30
stop_expect_clean hold
start hold_refused "$TCPCHECK" hold "$closed_port" --conns 3 --timeout 60
wait_log hold_refused '^echoed=0 closed=3 lost=0$'
stop_expect_clean hold_refused
start hold_sink "$TCPCHECK" hold "$sink_port" --conns 3 --timeout 60
wait_established_to "$sink_port" 3
assert_log_lacks hold_sink 'echoed=[1-9]|closed=[1-9]'
stop_expect_clean hold_sink

# Servers exit 0 on SIGTERM.
stop_expect_clean echo
stop_expect_clean sink
