#!/usr/bin/env bash
# The registry in PostgreSQL (-registry postgresql://...), on a server the
# test starts (pg.sh):
#   - two brokers on one database: a name bound at one is refused to
#     another key at the other; the schema is at version 1;
#   - -list and -release work on the database;
#   - unused names expire (-name-expiry);
#   - presence: a checked-in client's row names its broker, and goes when
#     the client leaves or its broker dies (no heartbeat for 6 s);
#   - the database stops: a broker keeps serving the clients it knows (one
#     checks in again), a new name is refused with "the name registry is
#     unavailable, try again"; it comes back: the broker reconnects, the
#     new name binds and the last-seen times kept meanwhile are written;
#   - a statement blocked by another transaction fails after 4 s, one
#     that gets no answer drops the connection after 5 s (limits).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=pg.sh
. "$(dirname "$0")/pg.sh"

pg_init

# The registry's contract on the backend, two registries on one database
# (tests/test_registry.c, the pg cases), on a database of their own.
pg_sql 'CREATE DATABASE natter_unit' >/dev/null
expect_exit_zero -t 60 "$(dirname "$NATTER")/tests/test_registry" pg \
  "postgresql://natter@127.0.0.1:$PG_PORT/natter_unit"
assert_output_contains '^4 passed, 0 failed$'
log "$(grep -E '^  [0-9]+ |^  one flush' <<<"$OUTPUT")"

# A schema newer than this natter knows is not touched, and said so.
pg_sql 'CREATE DATABASE natter_newer' >/dev/null
"$PG_BIN/psql" -X -q "postgresql://natter@127.0.0.1:$PG_PORT/natter_newer" \
  -c 'CREATE TABLE schema_version (version integer NOT NULL);
      INSERT INTO schema_version VALUES (2)' >/dev/null
expect_exit_nonzero -t 20 "$NATTER" \
  -registry "postgresql://natter@127.0.0.1:$PG_PORT/natter_newer" -list
assert_output_contains 'schema is version 2, this natter knows 1: upgrade natter'

# broker_on NAME PORT [ARG...]: a broker on 127.0.0.1:PORT with the
# database as its registry; sets BROKER.
broker_on() {
  local name=$1 port=$2
  shift 2
  BROKER=127.0.0.1:$port
  start "$name" "$NATTER" -server "$BROKER" -identity "$WORK/$name.key" \
    -registry "$PG_URI" "$@"
  wait_log "$name" "natter: broker listening on 127\.0\.0\.1:$port"
}

# ---- two brokers, one database ----------------------------------------------

echo_port=$(free_port)
start_echo_server echo "$echo_port"
b1_port=$(free_port)
b2_port=$(free_port)
# Both at once: the schema is created once, under its advisory lock.
BROKER=127.0.0.1:$b1_port
start b1 "$NATTER" -server "$BROKER" -identity "$WORK/b1.key" -registry "$PG_URI"
broker_on b2 "$b2_port"
wait_log b1 "natter: broker listening on 127\.0\.0\.1:$b1_port"
assert_log_contains b1 "name registry: PostgreSQL database natter on 127\.0\.0\.1:$PG_PORT as natter"
B1=127.0.0.1:$b1_port
B2=127.0.0.1:$b2_port

BROKER=$B1
start_client bob -listen -allow-peer alice
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K

[[ $(pg_sql 'SELECT version FROM schema_version') == 1 ]] ||
  fail "schema version: $(pg_sql 'SELECT * FROM schema_version')"
[[ $(pg_sql "SELECT count(*) FROM names WHERE name IN ('alice', 'bob')") == 2 ]] ||
  fail "alice and bob are not in the database: $(pg_sql 'SELECT name FROM names')"

# Another key claiming bob at the other broker.
expect_exit_nonzero -t 20 "$NATTER" -name bob -broker "$B2" \
  -identity "$WORK/impostor.key" -listen -allow-peer '*'
assert_output_contains '"?bob"? is taken'
assert_log_contains b2 'refused "bob": name bound to key'
# bob's own key is welcome there too.
BROKER=$B2
start_client bob2 -name bob -identity "$WORK/bob.key" -listen -allow-peer alice
stop_expect_clean bob2
BROKER=$B1

# ---- -list and -release on the database -------------------------------------

expect_exit_zero -t 20 "$NATTER" -registry "$PG_URI" -list
bob_fp=$(grep -oE -m1 'bob: key [0-9a-f]{64}' "$WORK/bob.log") ||
  fail "bob did not log its key"
assert_output_contains "^bob +${bob_fp##* } "
assert_output_contains '^alice +[0-9a-f]{64} '
start carol "$NATTER" -name carol -broker "$B2" -identity "$WORK/carol.key" \
  -listen -allow-peer alice
wait_log carol 'checked in at broker'
stop_expect_clean carol
expect_exit_zero -t 20 "$NATTER" -registry "$PG_URI" -release carol
assert_output_contains 'released "carol"'
# Free at either broker: another key takes it at broker 1.
start carol2 "$NATTER" -name carol -broker "$B1" \
  -identity "$WORK/impostor.key" -listen -allow-peer alice
wait_log carol2 'checked in at broker'
stop_expect_clean carol2
expect_exit_nonzero -t 20 "$NATTER" -registry "$PG_URI" -release nobody
assert_output_contains '"nobody" is not bound'

# ---- the limit of 100,000 names holds across brokers ------------------------

pg_sql "INSERT INTO names SELECT 'filler' || g, decode(repeat('ee', 32), 'hex'), 1, 1
  FROM generate_series(1, 100000 - (SELECT count(*) FROM names)) AS g"
expect_exit_nonzero -t 30 "$NATTER" -name kim -broker "$B2" \
  -identity "$WORK/kim.key" -listen -allow-peer alice
assert_output_contains 'broker is full \(its name registry\)'
assert_log_contains b2 'registry: cannot bind "kim": registry is full'
pg_sql "DELETE FROM names WHERE name LIKE 'filler%'"

# ---- expiry --------------------------------------------------------------------

# A name last seen in 1970, and one in use.
pg_sql "INSERT INTO names VALUES ('stale', decode(repeat('ab', 32), 'hex'), 1, 1)"
broker_on b3 "$(free_port)" -name-expiry 1h
wait_log b3 'released 1 name unused for 3600 s' 20
[[ $(pg_sql "SELECT count(*) FROM names WHERE name = 'stale'") == 0 ]] ||
  fail "stale did not expire"
[[ $(pg_sql "SELECT count(*) FROM names WHERE name = 'bob'") == 1 ]] ||
  fail "bob expired"
stop_expect_clean b3

# ---- a database that stops answering -----------------------------------------

# The server process of one broker's connection (of the test's own server)
# stopped: its next statement (the heartbeat) gets no answer; after 5 s the
# broker drops the connection and reconnects.
broker_on b4 "$(free_port)" -registry "$PG_URI?application_name=natter_b4"
wait_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'natter_b4'" 1
b4_backend=$(pg_sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'natter_b4'")
kill -STOP "$b4_backend"
wait_log b4 'registry: lost PostgreSQL database natter .*a statement took too long' 20
kill -CONT "$b4_backend"
wait_log b4 'registry: PostgreSQL database natter .* is back' 20
start_client lou -listen -allow-peer alice
stop_expect_clean lou
# A broker stopping while its database does not answer waits for its last
# statements 2 s, not forever.
wait_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'natter_b4'" 1
b4_backend=$(pg_sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'natter_b4'")
kill -STOP "$b4_backend"
t0=$(date +%s)
stop_expect_clean b4
kill -CONT "$b4_backend"
(($(date +%s) - t0 <= 5)) || fail "b4 took $(($(date +%s) - t0)) s to stop"
BROKER=$B1

# ---- presence: which broker each client is at, which brokers live -----------

# A broker's id is its own, new each run (not its key, which the brokers
# of one network share: test_shared_key), and logged.
b1_id=$(grep -oE -m1 'natter: broker id [0-9a-f]{48} ' "$WORK/b1.log") ||
  fail "b1 did not log its id"
b1_id=${b1_id:18:48}
b2_id=$(grep -oE -m1 'natter: broker id [0-9a-f]{48} ' "$WORK/b2.log") ||
  fail "b2 did not log its id"
b2_id=${b2_id:18:48}
wait_sql "SELECT broker_id FROM presence WHERE name = 'bob'" "$b1_id"
wait_sql "SELECT count(*) FROM brokers WHERE broker_id IN ('$b1_id', '$b2_id')" 2
# A client that leaves is gone; one at a broker that dies goes with it.
start gina "$NATTER" -name gina -broker "$B2" -identity "$WORK/gina.key" \
  -listen -allow-peer alice
wait_log gina 'checked in at broker'
wait_sql "SELECT broker_id FROM presence WHERE name = 'gina'" "$b2_id"
stop_expect_clean gina
wait_sql "SELECT count(*) FROM presence WHERE name = 'gina'" 0
start frank "$NATTER" -name frank -broker "$B2" -identity "$WORK/frank.key" \
  -listen -allow-peer alice
wait_log frank 'checked in at broker'
wait_sql "SELECT broker_id FROM presence WHERE name = 'frank'" "$b2_id"
stop b2 KILL
wait_sql "SELECT count(*) FROM presence WHERE name = 'frank'" 0
wait_sql "SELECT count(*) FROM brokers WHERE broker_id = '$b2_id'" 0
stop frank

# ---- the database goes away and comes back ----------------------------------

pg_stop fast
# Broker 1 notices at once (its idle connection ends) and says so once.
wait_log b1 'registry: lost PostgreSQL database natter on 127\.0\.0\.1' 20
# Every last-seen time stored so far is older than this (whole seconds).
sleep 1
down_at=$(date +%s)
# bob checks in again: a name this broker knows is served from memory.
stop_expect_clean bob
start_client bob -listen -allow-peer alice
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K
# A new name is refused with the reason.
expect_exit_nonzero -t 20 "$NATTER" -name dave -broker "$B1" \
  -identity "$WORK/dave.key" -listen -allow-peer alice
assert_output_contains 'the name registry is unavailable, try again'
assert_log_contains b1 'registry: cannot bind "dave": the name registry is unavailable'
[[ $(grep -c 'registry: lost PostgreSQL' "$WORK/b1.log") == 1 ]] ||
  fail "the loss was logged more than once: $(grep 'registry:' "$WORK/b1.log")"

pg_start
wait_log b1 'registry: PostgreSQL database natter .* is back' 40
# A flush writes only last-seen times older than an hour (registry_pg.c,
# PG_TOUCH_GRAIN_S): bob's row is made that old, so that his check-in
# while the database was away must reach it.
pg_sql "UPDATE names SET last_seen = 1 WHERE name = 'bob'" >/dev/null
start_client dave -listen -allow-peer alice
[[ $(pg_sql "SELECT count(*) FROM names WHERE name = 'dave'") == 1 ]] ||
  fail "dave is not in the database"
# A statement that waits for a row another transaction holds (here an
# uncommitted insert of ivan) is given up after 4 s: ivan is refused with
# the reason logged; the broker stays connected and serves the others.
start locker "$PG_BIN/psql" -X -q "$PG_URI" -c "BEGIN;
  INSERT INTO names VALUES ('ivan', decode(repeat('cd', 32), 'hex'), 1, 1);
  SELECT 'locked';
  SELECT pg_sleep(30);"
wait_sql "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" 1
expect_exit_nonzero -t 30 "$NATTER" -name ivan -broker "$B1" \
  -identity "$WORK/ivan.key" -listen -allow-peer alice
assert_output_contains 'broker registry unavailable'
assert_log_contains b1 'registry: cannot bind "ivan": .*canceling statement due to statement timeout'
stop locker
assert_log_lacks b1 'registry: lost PostgreSQL database .*took too long'
# bob's check-in while the database was away reaches it with the next
# flush (every 15 s), and a row an hour old is written.
deadline=$(($(date +%s) + 40))
until (($(pg_sql "SELECT last_seen FROM names WHERE name = 'bob'") >= down_at)); do
  (($(date +%s) < deadline)) ||
    fail "bob's last-seen time was lost: $(pg_sql "SELECT * FROM names WHERE name = 'bob'")"
  sleep 0.5
done
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K
wait_sql "SELECT broker_id FROM presence WHERE name = 'dave'" "$b1_id"
for c in dave alice bob; do
  stop_expect_clean "$c"
done
# A broker that stops writes what it kept and takes its presence along.
stop_expect_clean b1
[[ $(pg_sql "SELECT count(*) FROM brokers WHERE broker_id = '$b1_id'") == 0 ]] ||
  fail "b1 left its heartbeat row"
log "ok"
