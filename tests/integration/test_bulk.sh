#!/usr/bin/env bash
# Bulk data both ways, byte for byte: 100 MiB from alice to a sink on bob's
# side (which replies with its SHA-256), and 100 MiB from a server on bob's
# side to alice. Then the broker must report that it carried almost none of
# it (under 1% of the 200 MiB): the data went peer to peer.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BULK_BYTES=$((100 * 1024 * 1024))

sink_port=$(free_port)
start_sink_server sink "$sink_port"

# bob's side sends a 100 MiB file to whoever connects, then closes.
head -c "$BULK_BYTES" /dev/urandom >"$WORK/down.bin"
down_sum=$(sha256_of "$WORK/down.bin")
file_port=$(free_port)
start fileserver socat -u "OPEN:$WORK/down.bin,rdonly" \
  "TCP-LISTEN:$file_port,bind=127.0.0.1,reuseaddr"
wait_tcp_listen "$file_port"

start_broker broker
start_client bob -listen -allow-peer alice
p_up=$(free_port)
p_down=$(free_port)
start_client alice "$p_up:bob:$sink_port" "$p_down:bob:$file_port"

# alice -> bob: tcpcheck sends random bytes, half-closes and compares the
# sink's SHA-256 reply with its own.
expect_exit_zero -t 150 "$TCPCHECK" send "$p_up" --bytes 100M --timeout 120
assert_output_contains "^bytes=$BULK_BYTES seconds="
log "alice -> bob: $OUTPUT"

# bob -> alice: read until the server's close arrives as EOF.
start_ms=$(_now_ms)
timeout 150 socat -u -b 65536 "TCP:127.0.0.1:$p_down" \
  "CREATE:$WORK/got.bin" ||
  fail "reading the file through 127.0.0.1:$p_down failed (status $?)"
log "bob -> alice: $BULK_BYTES bytes in $(($(_now_ms) - start_ms)) ms"
got_size=$(stat -c %s "$WORK/got.bin")
((got_size == BULK_BYTES)) ||
  fail "bob -> alice: received $got_size of $BULK_BYTES bytes"
[[ $(sha256_of "$WORK/got.bin") == "$down_sum" ]] ||
  fail "bob -> alice: the file arrived with the right size but other bytes"
wait_exit fileserver 10
[[ ${EXIT_STATUS[fileserver]} == 0 ]] ||
  fail "the file server (socat) exited with status ${EXIT_STATUS[fileserver]}"
rm -f "$WORK/down.bin" "$WORK/got.bin"

# The broker carried only control messages.
stop_expect_clean broker
traffic_re='natter: broker traffic: received ([0-9]+) bytes, sent ([0-9]+) bytes'
line=$(grep -E -m1 -- "$traffic_re" "$WORK/broker.log") ||
  fail "the broker did not log its traffic on SIGTERM"
[[ $line =~ $traffic_re ]] || fail "cannot parse: $line"
broker_bytes=$((BASH_REMATCH[1] + BASH_REMATCH[2]))
tunnel_bytes=$((2 * BULK_BYTES))
log "$line"
((broker_bytes * 100 < tunnel_bytes)) ||
  fail "the broker moved $broker_bytes bytes, not under 1% of the $tunnel_bytes tunnel bytes"

# Without their broker, the clients still exit 0 on SIGTERM.
stop_expect_clean alice
stop_expect_clean bob
