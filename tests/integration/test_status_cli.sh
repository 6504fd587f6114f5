#!/usr/bin/env bash
# natter -status: natter's own HTTP/3 client reads the status pages, with
# this machine's key: the readable table by default, the raw JSON with
# -json. A broker's own key and -admin keys see client rows, a throw-away
# key does not; a client answers its own key (found from -name) and
# refuses others with HTTP 403 (exit 1); a port where nothing serves is a
# clear error, not a hang.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker
start_client bob -listen -allow-peer alice
fwd=$(free_port)
alice_udp=$(free_port)
# alice's key in the default place (NAME.key under XDG_CONFIG_HOME), so
# that -status -name alice finds it as natter would.
start "alice" "$NATTER" -name alice -broker "$BROKER" -port "$alice_udp" \
  "$fwd:bob:$echo_port"
wait_log alice "natter: forwarding 127\.0\.0\.1:$fwd -> "
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K

# Broker with its own key: the table with both clients.
expect_exit_zero "$NATTER" -status "$BROKER" -identity "$WORK/broker.key"
assert_output_contains '^natter broker [0-9.]+, up '
assert_output_contains '^clients 2 \(connections 2\), check-ins 2, introductions 1'
assert_output_contains '^NAME +KEY +ADDRESS'
assert_output_contains '^alice +[0-9a-f]{16} +127\.0\.0\.1:'"$alice_udp"' '
assert_output_contains '^bob +[0-9a-f]{16} +127\.0\.0\.1:[0-9]+ .* yes '

# Anyone else: the counts only.
expect_exit_zero "$NATTER" -status "$BROKER"
assert_output_contains 'per-client rows are for -admin keys only'
grep -q '^alice ' <<<"$OUTPUT" && fail "anonymous -status shows client rows: $OUTPUT"

# -json: the same numbers as JSON.
expect_exit_zero "$NATTER" -status "$BROKER" -json
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
assert d["role"] == "broker" and d["clients"] == 2 and not d["detailed"], d' \
  "$OUTPUT" || fail "-json output: $OUTPUT"

# alice's own page, found from -name and -port as on her machine.
expect_exit_zero "$NATTER" -status -name alice -port "$alice_udp"
assert_output_contains '^checked in, public address 127\.0\.0\.1:'"$alice_udp"
# bob's address is whichever of his candidates answered first: loopback,
# or another address of this host when that one won the race.
assert_output_contains '^bob +connected +direct +[][0-9a-f.:]+:[0-9]+ '
assert_output_contains "^$fwd +bob:$echo_port +1 "
expect_exit_zero "$NATTER" -status "127.0.0.1:$alice_udp" -name alice -json
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
assert d["peers"][0]["name"] == "bob" and d["forwards"][0]["bytes_sent"] == 20480, d' \
  "$OUTPUT" || fail "alice -json: $OUTPUT"

# Someone else's key: 403, exit 1.
expect_exit_nonzero "$NATTER" -status "127.0.0.1:$alice_udp"
assert_output_contains "status from 127\.0\.0\.1:$alice_udp: HTTP 403: forbidden"

# Nothing there: an error within the handshake timeout.
expect_exit_nonzero -t 20 "$NATTER" -status "127.0.0.1:$(free_port)"
assert_output_contains 'no status from 127\.0\.0\.1:[0-9]+: no answer'
log "ok"
