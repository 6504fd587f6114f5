#!/usr/bin/env bash
# One broker, many clients (tests/bench/broker_scale.c, the public API in
# real processes): 200 and then 1000 clients start, up to 100 checking in
# at a time (the next starts as one is done); every one checks in, none
# gives up, pairs of them connect, and the broker's CPU per check-in does
# not grow with the number of clients (1000 may cost at most 2.5 times what
# 200 cost a check-in: the work is proportional to traffic, not to the
# clients already there).
#
# Not all at once: a storm of 1000 check-ins on a busy 2-core machine
# leaves the last ones unanswered past a client's first-contact timeout
# (5 s), which is the machine, not the code (the storm past the pending
# limit, shed with "busy" answers, is test_flood's). A sanitizer build
# (ASan + UBSan) costs about ten times the CPU per check-in: there 10 at a
# time, and the CPU bound, a property of the optimised build, is reported
# but not checked.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

SCALE=${BROKER_SCALE:-$(dirname "$NATTER")/tests/broker_scale}
[[ -x $SCALE ]] || fail "$SCALE is not an executable (build broker_scale)"

sanitized=0 ramp=(--inflight 100)
# (ldd's whole output first: grep -q would stop reading early, and
# pipefail would count ldd's SIGPIPE as a failure.)
libs=$(ldd "$SCALE" 2>/dev/null || true)
if [[ $libs == *libasan* ]]; then
  sanitized=1 ramp=(--inflight 10)
fi
# run N: one broker_scale run; its figures in $WORK/N.out
run() {
  log "$1 clients, ${ramp[1]} checking in at a time"
  timeout 280 "$SCALE" --clients "$1" --pairs 10 --idle 1 "${ramp[@]}" \
    >"$WORK/$1.out" 2>&1 || fail "broker_scale --clients $1: $(cat "$WORK/$1.out")"
  cat "$WORK/$1.out" >&2
}
# value N NAME: NAME's figure in run N's summary line (the last, starting
# clients=; the introduction rounds' lines above it have pairs= too).
value() { grep '^clients=' "$WORK/$1.out" | tail -n 1 | sed -n "s/.* $2=\([0-9.]*\).*/\1/p"; }

run 200
run 1000
for n in 200 1000; do
  [[ $(value "$n" checked_in) == "$n" && $(value "$n" gave_up) == 0 ]] ||
    fail "$n clients: not all checked in: $(cat "$WORK/$n.out")"
  [[ $(value "$n" pairs) == 10 ]] || fail "$n clients: pairs did not connect"
done
a=$(value 200 broker_cpu_ms_per_checkin)
b=$(value 1000 broker_cpu_ms_per_checkin)
if ((sanitized)); then
  log "passed (sanitizer build, CPU not checked): $a ms per check-in at 200 clients, $b ms at 1000"
  exit 0
fi
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); \
sys.exit(0 if b <= 2.5 * max(a, 0.05) else 1)" "$a" "$b" ||
  fail "broker CPU per check-in grew from $a ms (200 clients) to $b ms (1000)"
log "passed: $a ms per check-in at 200 clients, $b ms at 1000"
