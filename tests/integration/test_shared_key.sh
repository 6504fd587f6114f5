#!/usr/bin/env bash
# Several brokers of one network (doc/operations.md): three brokers with
# ONE identity file on one PostgreSQL database (pg.sh). Each has an id of
# its own in presence, in brokers and on the bus (a new one each run),
# while the clients pin the one key:
#   - the three log the same key and three different ids;
#   - every client's presence row names its own broker, and stays so
#     through several heartbeats;
#   - alice at broker 1 (pinning the key) reaches bob at broker 2: data
#     checked by SHA-256 at the sink; -check bob from broker 3 works;
#   - broker 3 killed (-9): only its rows go; broker 3 started again with
#     the same key has a new id, and carol checks in there again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=pg.sh
. "$(dirname "$0")/pg.sh"

pg_init

declare -A BPORT BID
# broker_up NAME: NAME on its port with the network's key; sets BID[NAME].
broker_up() {
  local id
  start "$1" "$NATTER" -server "127.0.0.1:${BPORT[$1]}" \
    -identity "$WORK/network.key" -registry "$PG_URI"
  wait_log "$1" "natter: broker listening on 127\.0\.0\.1:${BPORT[$1]}"
  # The bus channel is natter_ + the whole id.
  wait_log "$1" "brokers' bus: listening on natter_[0-9a-f]{48}$"
  id=$(grep -oE -m1 "brokers' bus: listening on natter_[0-9a-f]{48}$" "$WORK/$1.log")
  BID[$1]=${id##*natter_}
}
for b in b1 b2 b3; do
  BPORT[$b]=$(free_port)
  # One after the other: the first creates the key file.
  broker_up "$b"
done
B1=127.0.0.1:${BPORT[b1]}
B2=127.0.0.1:${BPORT[b2]}
B3=127.0.0.1:${BPORT[b3]}

key=$(grep -oE -m1 'broker listening on .* key [0-9a-f]{64}' "$WORK/b1.log")
key=${key##* }
for b in b2 b3; do
  assert_log_contains "$b" "broker listening on .* key $key"
done

# ---- clients at each broker: presence names their own broker ---------------

sink_port=$(free_port)
start_sink_server sink "$sink_port"
BROKER=$B2
start_client bob -broker-key "$key" -listen -allow-peer alice
BROKER=$B3
start_client carol -broker-key "$key" -listen -allow-peer alice
BROKER=$B1
fwd=$(free_port)
start_client alice -broker-key "$key" "$fwd:bob:$sink_port"

presence() {
  pg_sql "SELECT string_agg(name || '@' || broker_id, ' ' ORDER BY name)
          FROM presence"
}
want="alice@${BID[b1]} bob@${BID[b2]} carol@${BID[b3]}"
wait_sql "SELECT string_agg(name || '@' || broker_id, ' ' ORDER BY name) FROM presence" "$want"
# Through five heartbeats (2 s each): no broker takes another's rows.
deadline=$(($(date +%s) + 10))
while (($(date +%s) < deadline)); do
  got=$(presence)
  [[ $got == "$want" ]] || fail "presence changed: '$got', want '$want'"
  [[ $(pg_sql "SELECT count(*) FROM brokers") == 3 ]] ||
    fail "brokers: $(pg_sql "SELECT * FROM brokers")"
  sleep 0.5
done

# ---- across brokers of one key ----------------------------------------------

# check AS BROKER PEER: natter -check as AS at BROKER, pinning the key.
check() {
  run_capture 40 "$NATTER" -name "$1" -broker "$2" -broker-key "$key" \
    -identity "$WORK/$1.key" -check "${@:3}"
}
check alice "$B3" bob
((STATUS == 0)) || fail "-check bob at broker 3 exited $STATUS; output: $OUTPUT"
assert_output_contains '^verdict: direct works$'
assert_log_contains b3 'bob \(at broker [0-9a-f]{16}\) reports on the check by alice'

expect_exit_zero -t 60 "$TCPCHECK" send "$fwd" --bytes 1M --timeout 40
assert_output_contains '^bytes=1048576 seconds='
wait_log alice 'natter: connected to bob'
assert_log_contains b1 'introducing alice to bob at broker [0-9a-f]{16}'
assert_log_contains b2 'introducing alice \(at broker [0-9a-f]{16}\) to bob'
for b in b1 b2 b3; do
  assert_log_lacks "$b" 'note dropped'
done

# Three ids, none the key, each logged.
[[ ${BID[b1]} != "${BID[b2]}" && ${BID[b2]} != "${BID[b3]}" &&
  ${BID[b1]} != "${BID[b3]}" ]] || fail "brokers share an id: ${BID[*]}"
for b in b1 b2 b3; do
  [[ ${BID[$b]} != "${key:0:48}" ]] || fail "$b's id is the key"
  assert_log_contains "$b" "natter: broker id ${BID[$b]} "
done

# ---- broker 3 dies: only its rows go ----------------------------------------

old_b3=${BID[b3]}
stop b3 KILL
wait_sql "SELECT count(*) FROM brokers WHERE broker_id = '$old_b3'" 0 30
wait_sql "SELECT string_agg(name || '@' || broker_id, ' ' ORDER BY name) FROM presence" \
  "alice@${BID[b1]} bob@${BID[b2]}"
[[ $(pg_sql "SELECT count(*) FROM brokers WHERE broker_id IN ('${BID[b1]}', '${BID[b2]}')") == 2 &&
  $(pg_sql "SELECT count(*) FROM brokers") == 2 ]] ||
  fail "brokers after broker 3 died: $(pg_sql "SELECT * FROM brokers")"
expect_exit_zero -t 60 "$TCPCHECK" send "$fwd" --bytes 100K --timeout 40

# Started again with the same key: a new id; carol checks in there again.
broker_up b3
[[ ${BID[b3]} != "$old_b3" ]] || fail "broker 3 restarted with its old id"
wait_sql "SELECT broker_id FROM presence WHERE name = 'carol'" "${BID[b3]}" 40
check alice "$B2" carol
((STATUS == 0)) || fail "-check carol at broker 2 exited $STATUS; output: $OUTPUT"
assert_output_contains '^verdict: direct works$'
echo "PASS: $TEST_NAME"
