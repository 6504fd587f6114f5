#!/usr/bin/env bash
# Brokers at scale on one PostgreSQL registry (issue 24): B brokers (3) on
# loopback sharing -registry postgresql://..., N clients each (9000), all
# driven by tests/bench/broker_scale.c (--brokers, --registry, --hook), on
# a PostgreSQL server of the bench's own (tests/integration/pg.sh: a temp
# directory, removed at the end). Prints as it goes, then one table:
#
#   - check-in time of all clients, and p50/p99 of one client's;
#   - each broker's CPU seconds and RSS per client (/proc);
#   - the database: connections (pg_stat_activity), transactions per
#     check-in (pg_stat_database xact_commit), rows written, the CPU of
#     the postgres processes (/proc), and at rest (every client checked
#     in, the presence heartbeats and last-seen flushes only) transactions
#     and rows per second;
#   - introductions: a burst of K pairs on one broker and K across two
#     (pairs per second), then M pairs one at a time each way (p50/p99 of
#     one introduction, hole punching and QUIC handshake included): the
#     difference is what crossing brokers adds.
#
# The server runs with fsync off (a bench, not a store; pg.sh), and once
# more with fsync on when FSYNC_TOO=1 (the default without QUICK).
# Everything runs in a network namespace of its own (created here, removed
# at the end) whose ephemeral port range is widened: 27,000 clients need
# 27,000 UDP ports, and the host's range (32768-60999) is shared.
#
# Usage: tests/bench/pg_scale_bench.sh   (as root; ./dev bench builds it)
#   QUICK=1        1000 clients per broker, short idle, fsync off only
#   PER=9000 BROKERS=3 PROCS=3 (client processes per broker) IDLE=40
#   PAIRS=100 SERIAL=40 INFLIGHT=100 (clients checking in at once, per
#   process) FSYNC_TOO=1 (PG_FSYNC=on: only the run with fsync on)
#   SCALE=build/tests/broker_scale NATTER=build/natter
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SELF=$REPO/tests/bench/pg_scale_bench.sh

# ---- the hook: one snapshot of the database's counters -----------------
# pg_scale_bench.sh --snap PHASE >> $PGSCALE_SNAPS (run by broker_scale)
if [[ ${1:-} == --snap ]]; then
  set +e # a snapshot says what it can; a missing figure shows as blank
  # A backend publishes its counters at most once a second (PostgreSQL
  # 15's statistics): let the last second's arrive.
  sleep 1.2
  pm=$(head -1 "$PG_DIR/data/postmaster.pid")
  ticks=0
  for st in /proc/[0-9]*/stat; do
    { read -r line <"$st"; } 2>/dev/null || continue
    rest=${line##*) }
    read -r -a f <<<"$rest"
    pid=${st#/proc/}
    pid=${pid%/stat}
    # f[1] is the parent; f[11], f[12] user and system ticks.
    if [[ $pid == "$pm" || ${f[1]} == "$pm" ]]; then
      ticks=$((ticks + f[11] + f[12]))
    fi
  done
  row=$("$PG_BIN/psql" -X -q -A -t -F ' ' "$PG_URI" -c "
    SELECT xact_commit, xact_rollback, tup_inserted, tup_updated,
           tup_deleted,
           (SELECT count(*) FROM pg_stat_activity
             WHERE datname = 'natter' AND pid <> pg_backend_pid()),
           (SELECT count(*) FROM presence), (SELECT count(*) FROM names)
      FROM pg_stat_database WHERE datname = 'natter'")
  # Statements since the last snapshot (each the brokers send is a
  # transaction of its own): counted at once, unlike xact_commit, which
  # an idle backend may publish 10 s late.
  calls=$("$PG_BIN/psql" -X -q -A -t "$PG_URI" -c "
    SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
     WHERE query NOT LIKE '%pg_stat%'")
  echo "$2 ${EPOCHREALTIME} $row $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.2f", t / hz }') $calls" >>"$PGSCALE_SNAPS"
  # What ran since the last snapshot, by statement (pg_stat_statements).
  {
    echo "== $2"
    "$PG_BIN/psql" -X -q -A -t -F ' ' "$PG_URI" -c "
      SELECT calls, rows, round(total_exec_time::numeric, 1) AS ms,
             left(regexp_replace(query, '\s+', ' ', 'g'), 70)
        FROM pg_stat_statements
       WHERE query NOT LIKE '%pg_stat%' AND calls > 0
       ORDER BY total_exec_time DESC LIMIT 8" -c \
      "SELECT pg_stat_statements_reset()" | grep -v '^$'
  } >>"$PGSCALE_SNAPS.statements" 2>&1
  exit 0
fi

if ((EUID != 0)); then
  echo "pg_scale_bench: needs root (a network namespace, PostgreSQL as the" \
    "postgres user); skipped" >&2
  exit 0
fi
SCALE=${SCALE:-$REPO/build/tests/broker_scale}
export NATTER=${NATTER:-$REPO/build/natter}
[[ -x $SCALE && -x $NATTER ]] || {
  echo "pg_scale_bench: $SCALE or $NATTER is not built (./dev build)" >&2
  exit 1
}

# ---- a network namespace of our own ------------------------------------
if [[ -z ${PGSCALE_IN_NS:-} ]]; then
  ns=natter-pgscale-$$
  # The temporary directories (lib.sh's, pg.sh's) under one of our own,
  # which the postgres user may enter.
  TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/pgscale.XXXXXX")
  chmod 755 "$TMPDIR"
  export TMPDIR
  ip netns add "$ns"
  trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$TMPDIR"' EXIT
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
  rc=0
  PGSCALE_IN_NS=1 ip netns exec "$ns" bash "$SELF" "$@" || rc=$?
  exit "$rc"
fi

# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$REPO/tests/integration/lib.sh"
# shellcheck source-path=SCRIPTDIR source=../integration/pg.sh
. "$REPO/tests/integration/pg.sh"
TEST_NAME=pg_scale_bench

if [[ -n ${QUICK:-} ]]; then
  PER=${PER:-1000} IDLE=${IDLE:-10} PAIRS=${PAIRS:-20} SERIAL=${SERIAL:-10}
  FSYNC_TOO=${FSYNC_TOO:-0} PROCS=${PROCS:-1}
fi
PER=${PER:-9000} BROKERS=${BROKERS:-3} PROCS=${PROCS:-3} IDLE=${IDLE:-40}
PAIRS=${PAIRS:-100} SERIAL=${SERIAL:-40} INFLIGHT=${INFLIGHT:-100}
FSYNC_TOO=${FSYNC_TOO:-1}

export PGSCALE_SNAPS=$WORK/snaps PG_BIN
# The statements' counts and times, by statement.
PG_OPTS="-c shared_preload_libraries=pg_stat_statements"
pg_init
export PG_DIR PG_URI
pg_sql 'CREATE EXTENSION pg_stat_statements' >/dev/null

# snap PHASE FIELD: one figure of the snapshot taken at PHASE.
#   fields: 1 phase, 2 time, 3 commits, 4 rollbacks, 5 inserted, 6 updated,
#   7 deleted, 8 connections, 9 presence rows, 10 names rows, 11 DB CPU s,
#   12 statements run since the snapshot before
snap() { awk -v p="$1" -v f="$2" '$1 == p { print $f }' "$PGSCALE_SNAPS"; }
d() { awk -v a="$(snap "$1" "$3")" -v b="$(snap "$2" "$3")" 'BEGIN { print b - a }'; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { printf f, b ? a / b : 0 }'; }

rc=0
run() { # run FSYNC
  local fsync=$1 out total
  : >"$PGSCALE_SNAPS"
  : >"$PGSCALE_SNAPS.statements"
  total=$((PER * BROKERS))
  log "fsync=$fsync: $BROKERS brokers x $PER clients ($PROCS client processes" \
    "per broker), load $(cut -d' ' -f1-3 /proc/loadavg)"
  out=$WORK/scale.$fsync
  timeout -k 10 900 "$SCALE" --brokers "$BROKERS" --registry "$PG_URI" \
    --clients "$PER" --procs "$PROCS" --inflight "$INFLIGHT" --idle "$IDLE" \
    --pairs "$PAIRS" --serial "$SERIAL" --hook "bash $SELF --snap" |
    tee "$out" | sed 's/^/  /' >&2 || rc=1
  local xc_ci rows_ci secs_idle xc_idle
  xc_ci=$(snap checkedin 12)
  rows_ci=$(($(d pre checkedin 5) + $(d pre checkedin 6) + $(d pre checkedin 7)))
  secs_idle=$(d checkedin idle 2)
  xc_idle=$(snap idle 12)
  printf '\n==== %s brokers x %s clients on one PostgreSQL (fsync %s; load %s) ====\n' \
    "$BROKERS" "$PER" "$fsync" "$(cut -d' ' -f1-3 /proc/loadavg)"
  sed -n 's/^clients=.* checkin_s=\([0-9.]*\) .*/all check-ins:                 \1 s/p' "$out"
  sed -n 's/^checkin_p50_ms=\([0-9.]*\) checkin_p99_ms=\([0-9.]*\).*/one check-in:                  p50 \1 ms, p99 \2 ms/p' "$out"
  sed -n 's/^clients=.* checked_in=\([0-9]*\) gave_up=\([0-9]*\).*/checked in, gave up:          \1, \2/p' "$out"
  awk '/^broker=/ { split($0, a, /[ =]/); printf "broker %s: CPU %s s for its check-ins, %s s idle %d s, RSS %d KiB, %s KiB/client\n", a[2], a[6], a[8], '"$IDLE"', a[10], a[12] }' "$out"
  echo "DB connections (all brokers):  $(snap checkedin 8)"
  echo "DB transactions per check-in:  $(div "$xc_ci" "$total") ($xc_ci for $total)"
  echo "DB rows written per check-in:  $(div "$rows_ci" "$total") (inserted $(d pre checkedin 5), updated $(d pre checkedin 6), deleted $(d pre checkedin 7))"
  echo "DB CPU for the check-ins:      $(d pre checkedin 11) s ($(awk -v c="$(d pre checkedin 11)" -v n="$total" 'BEGIN { printf "%.3f", c * 1000 / n }') ms per check-in)"
  echo "rows: presence $(snap checkedin 9), names $(snap checkedin 10)"
  echo "at rest ($secs_idle s, $total clients): $(div "$xc_idle" "$secs_idle") transactions/s," \
    "$(div "$(($(d checkedin idle 5) + $(d checkedin idle 6) + $(d checkedin idle 7)))" "$secs_idle" '%.0f') rows/s," \
    "DB CPU $(div "$(d checkedin idle 11)" "$secs_idle" '%.3f') s/s"
  if [[ -n $(snap cross 2) ]]; then
    echo "DB for the cross burst:        $(snap cross 12) transactions for $PAIRS introductions," \
      "DB CPU $(d same cross 11) s"
  fi
  # calls rows ms statement, for the check-ins, at rest, the cross burst
  local phase
  for phase in checkedin idle cross; do
    echo "statements up to '$phase': calls rows ms statement"
    awk -v p="== $phase" '/^== / { on = ($0 == p); next } on { print "  " $0 }' \
      "$PGSCALE_SNAPS.statements"
  done
  awk '/^intro=/ { split($0, a, /[ =]/); printf "introductions %-5s %-6s: %s/%s connected, %s/s, p50 %s ms, p99 %s ms\n", a[2], a[4], a[8], a[6], a[10], a[12], a[14] }' "$out"
  local s50 c50 s99 c99
  s50=$(sed -n 's/^intro=same mode=serial .* p50_ms=\([0-9.]*\).*/\1/p' "$out")
  c50=$(sed -n 's/^intro=cross mode=serial .* p50_ms=\([0-9.]*\).*/\1/p' "$out")
  s99=$(sed -n 's/^intro=same mode=serial .* p99_ms=\([0-9.]*\).*/\1/p' "$out")
  c99=$(sed -n 's/^intro=cross mode=serial .* p99_ms=\([0-9.]*\).*/\1/p' "$out")
  if [[ -n $s50 && -n $c50 ]]; then
    echo "added by crossing brokers:     p50 $(awk -v a="$c50" -v b="$s50" 'BEGIN { printf "%.2f", a - b }') ms," \
      "p99 $(awk -v a="$c99" -v b="$s99" 'BEGIN { printf "%.2f", a - b }') ms"
  fi
}

if [[ ${PG_FSYNC:-off} == on ]]; then
  run on # PG_FSYNC=on: that run only
  FSYNC_TOO=0
else
  run off
fi
if [[ $FSYNC_TOO == 1 ]]; then
  pg_stop fast
  PG_FSYNC=on pg_start
  pg_sql 'DROP SCHEMA public CASCADE; CREATE SCHEMA public' >/dev/null 2>&1
  pg_sql 'CREATE EXTENSION pg_stat_statements' >/dev/null
  run on
fi
exit "$rc"
