#!/usr/bin/env bash
# One broker, many clients (tests/bench/broker_scale.c, the public API in
# real processes): 200 and then 1000 clients start at once; every one
# checks in (a storm past the pending limit is shed with "busy" answers
# that the clients retry, none gives up), pairs of them connect, and the
# broker's CPU per check-in does not grow with the number of clients
# (1000 may cost at most 2.5 times what 200 cost a check-in: the work is
# proportional to traffic, not to the clients already there).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

SCALE=${BROKER_SCALE:-$(dirname "$NATTER")/tests/broker_scale}
[[ -x $SCALE ]] || fail "$SCALE is not an executable (build broker_scale)"

# run N: one broker_scale run; its figures in $WORK/N.out
run() {
  log "$1 clients"
  timeout 280 "$SCALE" --clients "$1" --pairs 10 --idle 1 \
    >"$WORK/$1.out" 2>&1 || fail "broker_scale --clients $1: $(cat "$WORK/$1.out")"
  cat "$WORK/$1.out" >&2
}
value() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$WORK/$1.out"; }

run 200
run 1000
for n in 200 1000; do
  [[ $(value "$n" checked_in) == "$n" && $(value "$n" gave_up) == 0 ]] ||
    fail "$n clients: not all checked in: $(cat "$WORK/$n.out")"
  [[ $(value "$n" pairs) == 10 ]] || fail "$n clients: pairs did not connect"
done
a=$(value 200 broker_cpu_ms_per_checkin)
b=$(value 1000 broker_cpu_ms_per_checkin)
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); \
sys.exit(0 if b <= 2.5 * max(a, 0.05) else 1)" "$a" "$b" ||
  fail "broker CPU per check-in grew from $a ms (200 clients) to $b ms (1000)"
log "passed: $a ms per check-in at 200 clients, $b ms at 1000"
