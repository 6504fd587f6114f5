#!/usr/bin/env bash
# The relay across brokers (doc/design.md, "Introductions across
# brokers"): two brokers with -relay on one PostgreSQL database (pg.sh),
# bob listening at broker 2. Every client here runs with
# NATTER_TEST_NO_PUNCH=1 (it ignores every punch probe and reply), so no
# pair finds a direct path and each meets through a relay, on one host:
#   - alice at broker 1: her forward to bob is relayed by bob's broker
#     (broker 2), 2 MiB with its SHA-256 checked by the sink; broker 2's
#     relay counters grow by at least that, broker 1's stay at 0; her
#     -check of bob says it went through broker 2's relay;
#   - time to the first byte through a fresh relayed connection, across
#     brokers (alice) and on one broker (carol at broker 2), and the
#     throughput of each, with the machine's load;
#   - dave at broker 1, a client from before relay addresses
#     (NATTER_TEST_NO_RELAY_ADDRESS=1): broker 1 does not ask for a relay
#     and says why, broker 2 opens no channel, and no byte goes through.
# That the relay refuses binds from an address other than the one in the
# note is tested in test_relay.c (unit.relay), by address.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=pg.sh
. "$(dirname "$0")/pg.sh"

pg_init
export NATTER_TEST_NO_PUNCH=1

declare -A BPORT MPORT
for b in b1 b2; do
  BPORT[$b]=$(free_port)
  MPORT[$b]=$(free_port)
  start "$b" "$NATTER" -server "127.0.0.1:${BPORT[$b]}" -relay -relay-rate 0 \
    -metrics "127.0.0.1:${MPORT[$b]}" -identity "$WORK/$b.key" \
    -registry "$PG_URI"
done
for b in b1 b2; do
  wait_log "$b" "natter: broker listening on 127\.0\.0\.1:${BPORT[$b]}"
  wait_log "$b" "brokers' bus: listening on natter_[0-9a-f]{48}"
done
B1=127.0.0.1:${BPORT[b1]}
B2=127.0.0.1:${BPORT[b2]}

# metric BROKER NAME: the value of NAME on BROKER's /metrics.
metric() {
  curl -sS --max-time 10 "http://127.0.0.1:${MPORT[$1]}/metrics" \
    >"$WORK/metrics.txt" || fail "cannot read $1's metrics"
  awk -v k="$2" '$1 == k { print $2 }' "$WORK/metrics.txt"
}

sink_port=$(free_port)
start_sink_server sink "$sink_port"
echo_port=$(free_port)
start_echo_server echo "$echo_port"

BROKER=$B2
start_client bob -listen -allow-peer alice -allow-peer carol -allow-peer dave
# Presence reaches the database with broker 2's next heartbeat (2 s).
wait_sql "SELECT count(*) FROM presence WHERE name = 'bob'" 1

# ---- alice at broker 1, relayed by broker 2 ----------------------------------

BROKER=$B1
afwd=$(free_port)
aecho=$(free_port)
start_client alice "$afwd:bob:$sink_port" "$aecho:bob:$echo_port"
log "load before the first bytes: $(cut -d' ' -f1-3 /proc/loadavg)"
run_capture 60 "$TCPCHECK" latency "$aecho" --conns 20 --bytes 100 --timeout 40
((STATUS == 0)) || fail "alice's latency run exited $STATUS: $OUTPUT"
x_first=$(grep -oE 'first_us=[0-9]+' <<<"$OUTPUT")
x_rtt=$(grep -oE 'p50_us=[0-9]+' <<<"$OUTPUT")
wait_log alice "natter: connected to bob via relay at 127\.0\.0\.1:$((BPORT[b2] + 2)) "
assert_log_contains b1 "introducing alice to bob at broker [0-9a-f]{16} \(across brokers: [0-9.]+ ms\); relay at 127\.0\.0\.1:$((BPORT[b2] + 2))$"
assert_log_contains b2 "relay channel open for alice \(at broker [0-9a-f]{16}, from 127\.0\.0\.1:[0-9]+\) and bob on 127\.0\.0\.1:$((BPORT[b2] + 2))$"

before=$(metric b2 natter_broker_relayed_bytes_total)
expect_exit_zero -t 60 "$TCPCHECK" send "$afwd" --bytes 2M --timeout 40
assert_output_contains '^bytes=2097152 seconds='
after=$(metric b2 natter_broker_relayed_bytes_total)
((after - before >= 2097152)) ||
  fail "broker 2 relayed $((after - before)) bytes of alice's 2 MiB"
(($(metric b2 natter_broker_relay_channels) >= 1)) ||
  fail "broker 2 has no relay channel open"
[[ $(metric b1 natter_broker_relayed_bytes_total) == 0 ]] ||
  fail "broker 1 relayed bytes: $(metric b1 natter_broker_relayed_bytes_total)"
[[ $(metric b1 natter_broker_relay_channels) == 0 ]] ||
  fail "broker 1 has relay channels open"
assert_log_lacks alice 'path now direct'
assert_log_lacks b1 'note dropped'
assert_log_lacks b2 'note dropped'

# ---- alice's -check of bob across brokers: relayed as well ------------------

run_capture 40 "$NATTER" -name alice -broker "$B1" -identity "$WORK/alice.key" -check bob
# Exit 4: no probe arrives either way (NATTER_TEST_NO_PUNCH), which reads
# as UDP blocked between the two; the relay carries the check.
((STATUS == 4)) || fail "-check bob at broker 1 exited $STATUS (want 4); output: $OUTPUT"
assert_output_contains "^path: through the broker's relay at 127\.0\.0\.1:$((BPORT[b2] + 2)),"
assert_output_contains "connected through the broker's relay$"

# ---- the same on one broker: carol at broker 2 --------------------------------

BROKER=$B2
cecho=$(free_port)
cfwd=$(free_port)
start_client carol "$cecho:bob:$echo_port" "$cfwd:bob:$sink_port"
run_capture 60 "$TCPCHECK" latency "$cecho" --conns 20 --bytes 100 --timeout 40
((STATUS == 0)) || fail "carol's latency run exited $STATUS: $OUTPUT"
l_first=$(grep -oE 'first_us=[0-9]+' <<<"$OUTPUT")
l_rtt=$(grep -oE 'p50_us=[0-9]+' <<<"$OUTPUT")
wait_log carol "natter: connected to bob via relay at 127\.0\.0\.1:$((BPORT[b2] + 2)) "
log "first byte through a fresh relayed connection: across brokers $x_first ($x_rtt), on one broker $l_first ($l_rtt)"

# throughput LABEL PORT: a 32 MiB send through the relay.
throughput() {
  expect_exit_zero -t 90 "$TCPCHECK" send "$2" --bytes 32M --timeout 80
  log "relayed $1: $(grep -oE 'bytes=.*' <<<"$OUTPUT")"
}
throughput "across brokers (alice at broker 1)" "$afwd"
throughput "on one broker (carol at broker 2)" "$cfwd"
log "load after the transfers: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ $(metric b1 natter_broker_relayed_bytes_total) == 0 ]] ||
  fail "broker 1 relayed bytes: $(metric b1 natter_broker_relayed_bytes_total)"

# ---- a client from before relay addresses: no relay across brokers -----------

BROKER=$B1
dfwd=$(free_port)
NATTER_TEST_NO_RELAY_ADDRESS=1 start_client dave "$dfwd:bob:$sink_port"
channels=$(metric b2 natter_broker_relay_channels)
start dsend "$TCPCHECK" send "$dfwd" --bytes 1K --timeout 4
wait_log b1 "introducing dave to bob at broker [0-9a-f]{16} \(across brokers: [0-9.]+ ms\); no relay across brokers for dave: its natter is too old to be given another broker's relay \(upgrade it\)"
wait_log b2 "no relay channel for dave \(at broker [0-9a-f]{16}\) and bob: its broker did not ask for one"
wait_exit dsend 30
((EXIT_STATUS[dsend] != 0)) || fail "dave's bytes reached bob without a relay or a direct path"
[[ $(metric b2 natter_broker_relay_channels) == "$channels" ]] ||
  fail "broker 2 opened a relay channel for dave"
assert_log_lacks dave 'via relay'

echo "PASS: $TEST_NAME"
