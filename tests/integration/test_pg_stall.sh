#!/usr/bin/env bash
# A stalled database (issue 24): two brokers on one PostgreSQL database
# (pg.sh), bob at broker 2, alice at broker 1 forwarding to him. The
# server (its postmaster and every backend, by PID) is stopped with
# SIGSTOP for 8 s, longer than a broker may stay silent (6 s), then
# resumed. Every broker's heartbeat was held up alike, so none may take
# another for dead: from the moment the server resumes, both brokers'
# rows and bob's presence stay in the tables (polled), each broker logs
# that its heartbeats were held up, and a new introduction across the
# brokers (alice's -check bob at broker 1) works again.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=pg.sh
. "$(dirname "$0")/pg.sh"

pg_init

pg_brokers b1 b2 -- -v
B1=127.0.0.1:${BPORT[b1]}
B2=127.0.0.1:${BPORT[b2]}

echo_port=$(free_port)
start_echo_server echo "$echo_port"
BROKER=$B2
start_client bob -listen -allow-peer alice
# Presence reaches the database with broker 2's next heartbeat (2 s).
wait_sql "SELECT count(*) FROM presence WHERE name = 'bob'" 1
BROKER=$B1
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K

# Both brokers judge others again once their heartbeats have gone through
# for 6 s (the stall must find them judging, or it would prove nothing).
for b in b1 b2; do
  wait_log "$b" 'registry: heartbeats steady again' 30
done

# ---- the stall ------------------------------------------------------------------

pm=$(head -1 "$PG_DIR/data/postmaster.pid")
[[ $pm =~ ^[0-9]+$ ]] || fail "no postmaster PID in $PG_DIR/data/postmaster.pid"
pids=("$pm")
mapfile -t -O 1 pids < <(ps -o pid= --ppid "$pm" | tr -d ' ')
log "stopping the server: ${#pids[@]} processes"
kill -STOP "${pids[@]}"
# (The server's processes are resumed at exit whatever happens: pg.sh's
# cleanup must be able to stop them.)
_stall_cleanup() {
  local rc=$?
  kill -CONT "${pids[@]}" 2>/dev/null || true
  return "$rc" # the test's status, for _pg_cleanup
}
trap '_stall_cleanup; _pg_cleanup' EXIT
sleep 8 # the stall itself, not a wait for something
kill -CONT "${pids[@]}"
log "server resumed"

# From now on, for 8 s: both brokers alive in the table, bob present.
deadline=$(($(date +%s) + 8))
polls=0
while (($(date +%s) < deadline)); do
  got=$(pg_sql "SELECT (SELECT count(*) FROM brokers) || ' ' ||
    (SELECT count(*) FROM presence WHERE name = 'bob')")
  [[ $got == "2 1" ]] ||
    fail "after the stall: brokers and bob's presence: $got (want 2 1): $(pg_sql 'SELECT * FROM brokers')"
  polls=$((polls + 1))
  sleep 0.2
done
log "$polls polls: no broker taken for dead, bob present throughout"
for b in b1 b2; do
  assert_log_contains "$b" "registry: this broker's heartbeats were held up: no other broker is taken for dead until they have gone through for 6 s"
done

# A new introduction across the brokers (the bus reconnects by itself).
deadline=$(($(date +%s) + 40))
while :; do
  run_capture 40 "$NATTER" -name alice -broker "$B1" -identity "$WORK/alice.key" \
    -check bob
  ((STATUS == 0)) && break
  (($(date +%s) < deadline)) || fail "-check bob across brokers after the stall exited $STATUS; output: $OUTPUT"
  sleep 1
done
assert_output_contains '^verdict: direct works$'
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K
# And a broker that does stop beating is still taken for dead.
stop_expect_clean bob
kill -STOP "$(pid b2)"
wait_sql "SELECT count(*) FROM brokers" 1 30
kill -CONT "$(pid b2)"
wait_sql "SELECT count(*) FROM brokers" 2 30
for p in alice b1 b2; do
  stop_expect_clean "$p"
done
echo "PASS: $TEST_NAME"
