# shellcheck shell=bash
# A PostgreSQL server of the test's own, for the tests of the registry in
# PostgreSQL. Source it after lib.sh:
#
#   # shellcheck source-path=SCRIPTDIR source=lib.sh
#   . "$(dirname "$0")/lib.sh"
#   # shellcheck source-path=SCRIPTDIR source=pg.sh
#   . "$(dirname "$0")/pg.sh"
#   pg_init       # initdb, start, create the database; sets PG_URI
#   pg_stop       # pg_ctl stop -m fast (the database goes away)
#   pg_start      # and comes back, same port and data
#   pg_sql 'SELECT ...'   # psql as the superuser natter, rows unaligned
#
# The server runs as the unprivileged system user postgres (initdb refuses
# root) from a temporary directory of its own, listening on 127.0.0.1 at a
# free port and on a Unix socket inside that directory only; it is stopped
# and the directory removed when the test exits. Skips (77) when not root
# or when the PostgreSQL 15 server binaries are missing (./dev installs
# the postgresql package).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

if ((EUID != 0)); then
  log "SKIP: a PostgreSQL server of its own needs root (to run it as postgres)"
  exit 77
fi
for _pg_tool in initdb pg_ctl psql; do
  [[ -x $PG_BIN/$_pg_tool ]] || {
    log "SKIP: $PG_BIN/$_pg_tool not installed (the postgresql package)"
    exit 77
  }
done
id postgres >/dev/null 2>&1 || {
  log "SKIP: no postgres system user (the postgresql package)"
  exit 77
}

PG_DIR=""
PG_PORT=""
PG_URI=""

_pg_as() { runuser -u postgres -- "$@"; }

# pg_stop [MODE=fast]: stop the server (its clients see their connection
# end); a no-op when it is not running.
pg_stop() {
  local mode=${1:-fast}
  [[ -n $PG_DIR && -f $PG_DIR/data/postmaster.pid ]] || return 0
  _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m "$mode" -w -t 30 stop \
    >>"$PG_DIR/pg_ctl.log" 2>&1 || fail "pg_ctl stop failed: $(tail -5 "$PG_DIR/pg_ctl.log")"
}

# pg_start: start the server (again) on PG_PORT and wait until it accepts
# connections. PG_FSYNC=on for a server that syncs (off: tests and benches
# need no durability); PG_OPTS, more "-c name=value" settings.
pg_start() {
  _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DIR -c fsync=${PG_FSYNC:-off} ${PG_OPTS:-}" \
    start >>"$PG_DIR/pg_ctl.log" 2>&1 ||
    fail "pg_ctl start failed: $(tail -20 "$PG_DIR/server.log" 2>/dev/null)"
}

# pg_sql SQL: run SQL on the test's database; prints rows as a|b.
pg_sql() {
  "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$PG_URI" -c "$1"
}

# wait_sql SQL WANT [TIMEOUT_S=20]: poll until SQL prints WANT.
wait_sql() {
  local deadline=$(($(date +%s) + ${3:-20})) got
  while :; do
    got=$(pg_sql "$1")
    [[ $got == "$2" ]] && return 0
    (($(date +%s) < deadline)) || fail "$1: got '$got', want '$2'"
    sleep 0.2
  done
}

# pg_brokers NAME... [-- ARG...]: a broker per NAME on a free loopback port,
# with a key of its own ($WORK/NAME.key), the test's registry and ARGs;
# returns once each listens and has joined the brokers' bus. Sets
# BPORT[NAME].
declare -A BPORT
pg_brokers() {
  local names=() b
  while (($#)) && [[ $1 != -- ]]; do
    names+=("$1")
    shift
  done
  (($#)) && shift
  for b in "${names[@]}"; do
    BPORT[$b]=$(free_port)
    start "$b" "$NATTER" -server "127.0.0.1:${BPORT[$b]}" \
      -identity "$WORK/$b.key" -registry "$PG_URI" "$@"
  done
  for b in "${names[@]}"; do
    wait_log "$b" "natter: broker listening on 127\.0\.0\.1:${BPORT[$b]}"
    wait_log "$b" "brokers' bus: listening on natter_[0-9a-f]{48}"
  done
}

# pg_init: a fresh cluster with the superuser natter (trust on loopback:
# the server is the test's own) and the database natter. Sets PG_URI.
pg_init() {
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/natter-pg.XXXXXX")
  chown postgres: "$PG_DIR"
  chmod 700 "$PG_DIR"
  PG_PORT=$(free_port)
  _pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U natter \
    >"$PG_DIR/initdb.log" 2>&1 || fail "initdb failed: $(tail -20 "$PG_DIR/initdb.log")"
  pg_start
  PG_URI="postgresql://natter@127.0.0.1:$PG_PORT/natter"
  "$PG_BIN/psql" -X -q "postgresql://natter@127.0.0.1:$PG_PORT/postgres" \
    -c 'CREATE DATABASE natter' >/dev/null || fail "cannot create the database"
}

# On exit: natter's processes, then the server, then lib.sh's cleanup
# (which sees the test's exit status).
_pg_cleanup() {
  local rc=$?
  set +e
  _cleanup_pg_server
  (exit "$rc")
  _cleanup
}

_cleanup_pg_server() {
  if [[ -n $PG_DIR && -d $PG_DIR ]]; then
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
      stop "${STARTED[i]}"
    done
    if [[ -f $PG_DIR/data/postmaster.pid ]]; then
      _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop \
        >/dev/null 2>&1 || true
    fi
    if [[ -n ${KEEP_WORK:-} ]]; then
      echo "$TEST_NAME: the PostgreSQL server's directory kept in $PG_DIR" >&2
    else
      rm -rf "$PG_DIR"
    fi
  fi
}
trap _pg_cleanup EXIT
