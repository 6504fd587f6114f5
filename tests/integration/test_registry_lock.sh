#!/usr/bin/env bash
# Another process holding the registry's write lock (an operator's
# -release, a backup, here a Python sqlite3 connection in BEGIN
# IMMEDIATE) never stalls the broker's loop: its connected clients keep
# their forward and the status page answers, a new name's check-in waits
# (retried from a timer, not in a 200 ms busy wait per bind) and is bound
# as soon as the lock goes. A lock held past 5 s fails the bind with a
# reason that names the lock.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || {
  log "SKIP: python3 not installed"
  exit 77
}

# lock TAG: hold the write lock of $WORK/registry.db until $WORK/TAG.go
# exists (at most 60 s); logs "locked" once it holds it.
lock() {
  start "$1" python3 -c 'import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
end = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < end:
    time.sleep(0.02)
db.execute("COMMIT")
print("released", flush=True)' "$WORK/registry.db" "$WORK/$1.go"
  wait_log "$1" '^locked$'
}

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -registry "$WORK/registry.db"
start_client bob -listen -allow-peer alice
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K

lock locker
start carol "$NATTER" -name carol -broker "$BROKER" \
  -identity "$WORK/carol.key" -listen -allow-peer alice
# The broker keeps serving while carol's bind waits for the lock.
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 4 --bytes 100K
expect_exit_zero "$NATTER" -status "$BROKER" -identity "$WORK/broker.key"
grep -q '^alice ' <<<"$OUTPUT" || fail "no status rows while locked: $OUTPUT"
assert_log_lacks carol 'checked in'
running carol || fail "carol gave up while the lock was held: $(cat "$WORK/carol.log")"
# The lock goes: carol is bound and checked in.
touch "$WORK/locker.go"
wait_log locker '^released$'
wait_log carol 'natter: checked in at broker'
assert_log_lacks broker 'registry: cannot bind'

# A lock held past 5 s: the bind fails with the reason, and the client is
# told the registry is unavailable.
lock locker2
start dave "$NATTER" -name dave -broker "$BROKER" \
  -identity "$WORK/dave.key" -listen -allow-peer alice
wait_exit dave 30
assert_log_contains dave 'broker registry unavailable'
assert_log_contains broker 'registry: cannot bind "dave": .*another process holds the registry.s lock'
touch "$WORK/locker2.go"
wait_log locker2 '^released$'
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K
log "ok"
