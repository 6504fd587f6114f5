#!/usr/bin/env bash
# Introductions across brokers (doc/design.md, "Introductions across
# brokers"): three brokers on one PostgreSQL database (pg.sh), bob
# listening at broker 2:
#   - alice at broker 1: her forward to bob carries data (SHA-256 checked
#     by the sink), both brokers log their half of the introduction;
#   - alice's -check bob at broker 3 says "direct works" (the report
#     crosses back), as it does at broker 2;
#   - mallory, whom bob's -allow-peer excludes, hears at broker 3 what she
#     hears at broker 2: refused (exit 7), nothing about bob;
#   - a name checked in nowhere (and bob once he left): "unknown" (6), and
#     dave at broker 2 without -listen: "does not listen" (5), as on one
#     broker;
#   - notes that break the rules (not hex; an admission for no request)
#     are dropped and logged, and broker 1 serves on;
#   - the added latency: -check timings at bob's broker and across
#     brokers, several rounds, and the brokers' own measure;
#   - bob killed and restarted at broker 2: alice hears "bob restarted"
#     from broker 1, and her next connection reaches the new bob;
#   - bob stopped while alice sends: her refresh request crosses to broker
#     2 and back (both punch again), and the bytes arrive once bob resumes;
#   - the bound on requests per requester waiting for another broker, hit
#     while the database holds the lookups, logged; served again after.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=pg.sh
. "$(dirname "$0")/pg.sh"

pg_init

field() { sed -n "s/^$2 \(.*\)$/\1/p" "$WORK/$1.log"; }

pg_brokers b1 b2 b3
B1=127.0.0.1:${BPORT[b1]}
B2=127.0.0.1:${BPORT[b2]}
B3=127.0.0.1:${BPORT[b3]}

sink_port=$(free_port)
start_sink_server sink "$sink_port"

BROKER=$B2
start_client bob -listen -allow-peer alice
# Presence reaches the database with broker 2's next heartbeat (2 s).
wait_sql "SELECT count(*) FROM presence WHERE name = 'bob'" 1

# ---- alice at broker 1 -> bob at broker 2 ------------------------------------

BROKER=$B1
fwd=$(free_port)
start_client alice "$fwd:bob:$sink_port"
expect_exit_zero -t 60 "$TCPCHECK" send "$fwd" --bytes 1M --timeout 40
assert_output_contains '^bytes=1048576 seconds='
wait_log alice 'natter: connected to bob'
assert_log_contains b1 'introducing alice to bob at broker [0-9a-f]{16} \(across brokers: [0-9.]+ ms\)'
# Broker 2 does not relay (no -relay): said, the relay is in test_xrelay.
assert_log_contains b1 "across brokers: [0-9.]+ ms\\); no relay: bob's broker offered none"
assert_log_contains b2 'introducing alice \(at broker [0-9a-f]{16}\) to bob'
assert_log_lacks b1 'note dropped'
assert_log_lacks b2 'note dropped'

# check AS BROKER PEER [ARG...]: natter -check as AS at BROKER.
check() {
  run_capture 40 "$NATTER" -name "$1" -broker "$2" -identity "$WORK/$1.key" \
    -check "${@:3}"
}

# ---- -check across brokers ---------------------------------------------------

check alice "$B3" bob
((STATUS == 0)) || fail "-check bob at broker 3 exited $STATUS; output: $OUTPUT"
assert_output_contains '^outcome +connected +connected$'
assert_output_contains '^verdict: direct works$'
wait_log b3 'bob \(at broker [0-9a-f]{16}\) reports on the check by alice'
assert_log_contains b2 'bob reports on the check by alice \(at broker [0-9a-f]{16}\)'

# ---- refusals: the same answer as on one broker ------------------------------

check mallory "$B2" bob
((STATUS == 7)) || fail "mallory's -check bob at bob's broker exited $STATUS (want 7); output: $OUTPUT"
local_refusal=$(grep -E '^(outcome|verdict)' <<<"$OUTPUT")
check mallory "$B3" bob
((STATUS == 7)) || fail "mallory's -check bob at broker 3 exited $STATUS (want 7); output: $OUTPUT"
[[ $(grep -E '^(outcome|verdict)' <<<"$OUTPUT") == "$local_refusal" ]] ||
  fail "mallory heard across brokers: $OUTPUT; on one broker: $local_refusal"
assert_output_contains "^verdict: bob refuses us: its -allow-peer rules do not admit mallory$"
bob_fp=$(grep -oE -m1 'bob: key [0-9a-f]{64}' "$WORK/bob.log") || fail "bob did not log its key"
[[ $OUTPUT != *"${bob_fp:9:16}"* ]] || fail "mallory learnt bob's key: $OUTPUT"
assert_log_lacks b3 'introducing mallory'
assert_log_lacks b2 'introducing mallory'

# ---- unknown names -----------------------------------------------------------

check alice "$B1" carol
((STATUS == 6)) || fail "-check carol exited $STATUS (want 6); output: $OUTPUT"
assert_output_contains '^verdict: carol is unknown: no client of that name is checked in at the broker$'

# A client at broker 2 that does not listen: 5, as on one broker.
BROKER=$B2
start_client dave "$(free_port):bob:$sink_port"
wait_sql "SELECT count(*) FROM presence WHERE name = 'dave'" 1
check alice "$B3" dave
((STATUS == 5)) || fail "-check dave at broker 3 exited $STATUS (want 5); output: $OUTPUT"
assert_output_contains '^verdict: dave does not listen: it is checked in without -listen$'
stop_expect_clean dave

# ---- notes that break the rules: dropped, logged, nothing else ---------------

b1_id=$(grep -oE -m1 'natter: broker id [0-9a-f]{48} ' "$WORK/b1.log") ||
  fail "broker 1 did not log its id"
chan="natter_${b1_id:18:48}"
pg_sql "SELECT pg_notify('$chan', 'not hex at all')" >/dev/null
wait_log b1 "brokers' bus: note dropped: malformed"
# A well-formed admission for a request broker 1 never made (the seed of
# the fuzz target), and one claiming to come from broker 1 itself.
# (Such lines are gated to one a second: sent again until one shows.)
note=$(cut -c2- "$(dirname "$0")/../fuzz/corpus/xnote/admitted")
for _ in $(seq 40); do
  pg_sql "SELECT pg_notify('$chan', '$note')" >/dev/null
  grep -q "note dropped: an admission for no request of ours" "$WORK/b1.log" && break
  sleep 0.25
done
assert_log_contains b1 "brokers' bus: note dropped: an admission for no request of ours"
running b1 || fail "broker 1 died of a note"
check alice "$B1" bob
((STATUS == 0)) || fail "-check bob at broker 1 after the bad notes exited $STATUS; output: $OUTPUT"

# ---- latency: at bob's broker vs across brokers ------------------------------

log "load before the rounds: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in 1 2 3 4 5; do
  line="round $round:"
  for where in B2 B3; do
    t0=$(_now_ms)
    check alice "${!where}" bob
    ((STATUS == 0)) || fail "round $round, -check at $where exited $STATUS; output: $OUTPUT"
    line+=" $where $(($(_now_ms) - t0)) ms"
  done
  log "$line (-check wall time; B2: bob's broker, B3: across brokers)"
done
log "broker 3's introductions across brokers (ConnectRequest to Introduction): $(grep -oE 'across brokers: [0-9.]+ ms' "$WORK/b3.log" | cut -d' ' -f3 | tr '\n' ' ')ms"
# checkin_to_intro LOG: ms from each check session's check-in to its
# introduction in a broker's log (the same span at either broker).
checkin_to_intro() {
  awk '{ split(substr($1, 12, 12), t, ":"); ms = (t[1] * 3600 + t[2] * 60 + t[3]) * 1000 }
       / alice checked in from .* for a check / { t0 = ms }
       / introducing alice to bob / && t0 { printf "%d ", ms - t0; t0 = 0 }' "$1"
}
log "check-in to introduction, ms: at bob's broker: $(checkin_to_intro "$WORK/b2.log"); across brokers: $(checkin_to_intro "$WORK/b3.log")"
log "load after the rounds: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- bounds: lookups held by the database -----------------------------------

# A transaction holds the presence table for 10 s: broker 1's lookups wait
# (its bus drops them after 5 s and reconnects). trudy asks for bob every
# 100 ms meanwhile: 4 of her requests wait at once, the rest are refused
# at once, logged.
FLOOD=${NATTER_FLOOD:-$(dirname "$NATTER")/natter-flood}
if [[ -x $FLOOD ]]; then
  start locker "$PG_BIN/psql" -X -q "$PG_URI" -c \
    "BEGIN; LOCK TABLE presence IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT"
  wait_sql "SELECT count(*) FROM pg_locks WHERE relation = 'presence'::regclass AND mode = 'AccessExclusiveLock' AND granted" 1
  start trudy "$FLOOD" ask "$B1" 127.0.0.7 trudy bob 1 100 8 connect
  wait_log b1 'not asking other brokers for bob on behalf of trudy: too many requests across brokers await an answer' 20
  wait_exit trudy 30
  ((EXIT_STATUS[trudy] == 0)) || fail "natter-flood failed: $(cat "$WORK/trudy.log")"
  [[ $(field trudy introductions) == 0 ]] || fail "trudy was introduced: $(cat "$WORK/trudy.log")"
  wait_exit locker 30
  # Heartbeats failed meanwhile too: a broker may have taken broker 2 for
  # dead (and bob's presence with it) until broker 2's next heartbeat.
  wait_sql "SELECT count(*) FROM brokers WHERE heartbeat >= extract(epoch FROM now())::bigint - 2" 3
  wait_sql "SELECT count(*) FROM presence WHERE name = 'bob'" 1
  # Served again once the database is.
  check alice "$B3" bob
  ((STATUS == 0)) || fail "-check bob at broker 3 after the lock exited $STATUS; output: $OUTPUT"
  expect_exit_zero -t 60 "$TCPCHECK" send "$fwd" --bytes 100K --timeout 40
else
  log "natter-flood not built: the bounds are not tested"
fi

# ---- bob restarts: alice, at another broker, hears of it ---------------------

kill -KILL "$(pid bob)"
_reap bob
BROKER=$B2
start_client bob -listen -allow-peer alice
wait_log alice 'bob restarted' 15
assert_log_contains b1 'telling alice that bob \(at broker [0-9a-f]{16}\) restarted'
expect_exit_zero -t 60 "$TCPCHECK" send "$fwd" --bytes 100K --timeout 40

# ---- a silent connection: punching again across brokers ----------------------

# bob stopped while alice sends: her connection goes silent with data
# outstanding, she asks broker 1 for a refresh, which asks broker 2; both
# hear the other's current addresses. bob resumes and the bytes arrive.
kill -STOP "$(pid bob)"
start sender "$TCPCHECK" send "$fwd" --bytes 200K --timeout 50
wait_log b1 'introducing alice to bob again \(alice hears nothing; at another broker\)' 30
wait_log b2 'introducing alice \(at broker [0-9a-f]{16}\) to bob again' 10
wait_log b1 'introducing bob \(at broker [0-9a-f]{16}\) to alice again' 10
kill -CONT "$(pid bob)"
wait_exit sender 60
((EXIT_STATUS[sender] == 0)) || fail "the send through a refreshed pair failed: $(cat "$WORK/sender.log")"

# ---- bob leaves: unknown everywhere ------------------------------------------

stop_expect_clean bob
wait_sql "SELECT count(*) FROM presence WHERE name = 'bob'" 0
check alice "$B3" bob
((STATUS == 6)) || fail "-check bob after bob left exited $STATUS (want 6); output: $OUTPUT"
assert_output_contains '^verdict: bob is unknown: no client of that name is checked in at the broker$'
echo "PASS: $TEST_NAME"
