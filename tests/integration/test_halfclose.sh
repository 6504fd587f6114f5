#!/usr/bin/env bash
# Half-close through the tunnel, both ways (TCP FIN <-> QUIC stream FIN):
#  1. the client sends, shuts down its write side (SHUT_WR) and still reads
#     the whole reply, which the server sends only after that EOF, even
#     when the reply comes a second later;
#  2. the server writes and closes first: the client, which never closed
#     its write side, gets every byte and then EOF;
#  3. the server shuts down its write side first and keeps reading: the
#     client gets EOF, then sends more, and the server still receives it.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
sink_port=$(free_port)
late_port=$(free_port)  # replies after EOF, after a pause
first_port=$(free_port) # writes a file and closes at once
rev_port=$(free_port)   # half-closes first, then reads
start_echo_server echo "$echo_port"
start_sink_server sink "$sink_port"

head -c 1000003 /dev/urandom >"$WORK/up.bin"
head -c $((4 * 1024 * 1024 + 7)) /dev/urandom >"$WORK/down.bin"

start_broker broker
start_client bob -listen -allow-peer alice
p_echo=$(free_port)
p_sink=$(free_port)
p_late=$(free_port)
p_first=$(free_port)
p_rev=$(free_port)
start_client alice "$p_echo:bob:$echo_port" "$p_sink:bob:$sink_port" \
  "$p_late:bob:$late_port" "$p_first:bob:$first_port" "$p_rev:bob:$rev_port"

# ---- 1. client half-closes first --------------------------------------

# tcpcheck: send, SHUT_WR, verify the echo (which ends after the EOF) ...
expect_exit_zero -t 90 "$TCPCHECK" echo-check "$p_echo" --conns 10 \
  --bytes 1M --timeout 60
assert_output_contains '^10 ok$'
# ... and the sink, whose only reply (a SHA-256) is sent after the EOF.
expect_exit_zero -t 90 "$TCPCHECK" send "$p_sink" --bytes 10M --timeout 60

# socat, raw: a reply computed from the whole input, sent a second after EOF.
start late_server socat -t 30 \
  "TCP-LISTEN:$late_port,bind=127.0.0.1,reuseaddr" \
  "SYSTEM:sha256sum; sleep 1; echo bye"
wait_tcp_listen "$late_port"
reply=$(timeout 30 socat -t 20 - "TCP:127.0.0.1:$p_late" <"$WORK/up.bin") ||
  fail "socat through 127.0.0.1:$p_late failed (status $?)"
want="$(sha256_of "$WORK/up.bin")  -"$'\n'"bye"
[[ $reply == "$want" ]] ||
  fail "reply after half-close: got '$reply', want '$want'"
wait_exit late_server 10

# ---- 2. server writes, then closes first --------------------------------

start first_server socat -u "OPEN:$WORK/down.bin,rdonly" \
  "TCP-LISTEN:$first_port,bind=127.0.0.1,reuseaddr"
wait_tcp_listen "$first_port"
# bash's /dev/tcp: the client never shuts down its write side; cat returns
# only on EOF (or the deadline).
exec 3<>"/dev/tcp/127.0.0.1/$p_first"
timeout 30 cat <&3 >"$WORK/first.bin" ||
  fail "no EOF within 30 s after the server closed (status $?); got $(stat -c %s "$WORK/first.bin") bytes"
exec 3>&-
[[ $(stat -c %s "$WORK/first.bin") == $(stat -c %s "$WORK/down.bin") ]] ||
  fail "server-closes-first: got $(stat -c %s "$WORK/first.bin") of $(stat -c %s "$WORK/down.bin") bytes before EOF"
[[ $(sha256_of "$WORK/first.bin") == "$(sha256_of "$WORK/down.bin")" ]] ||
  fail "server-closes-first: the bytes before EOF differ from the file"
wait_exit first_server 10

# ---- 3. server half-closes first, then keeps reading ---------------------

# socat's dual address: what it reads from greeting.txt goes to the client
# and ends in a FIN (the file's EOF); what the client sends goes to rev.got
# until the client's FIN. -t 30: keep the second direction open that long.
echo greeting >"$WORK/greeting.txt"
start rev_server socat -t 30 \
  "TCP-LISTEN:$rev_port,bind=127.0.0.1,reuseaddr" \
  "OPEN:$WORK/greeting.txt,rdonly!!CREATE:$WORK/rev.got"
wait_tcp_listen "$rev_port"
exec 3<>"/dev/tcp/127.0.0.1/$p_rev"
greeting=$(timeout 30 cat <&3) ||
  fail "no EOF from the half-closing server within 30 s (status $?)"
[[ $greeting == greeting ]] || fail "got '$greeting' before EOF, want 'greeting'"
# After the EOF, the other direction is still open.
printf 'late data after the peer FIN\n' >&3 ||
  fail "writing after the server's FIN failed"
exec 3>&-
wait_exit rev_server 30
[[ $(cat "$WORK/rev.got") == 'late data after the peer FIN' ]] ||
  fail "the server received '$(cat "$WORK/rev.got")' after its FIN, want 'late data after the peer FIN'"

for name in alice bob; do
  assert_log_lacks "$name" 'error|refused|denied|failed|reset'
done
stop_expect_clean alice
stop_expect_clean bob
stop_expect_clean broker
stop_expect_clean echo
assert_log_contains echo 'served 10 connections, 0 still open'
