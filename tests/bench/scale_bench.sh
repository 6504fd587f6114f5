#!/usr/bin/env bash
# The broker at scale (issue 15): tests/bench/broker_scale.c at 1k, 5k and
# 10k clients starting at once (clients in processes of at most 4000, the
# broker in its own), then one table. QUICK=1 runs 1k and 2k only.
#
# Usage: tests/bench/scale_bench.sh   (./dev bench builds it first)
#   SCALE=build/tests/broker_scale  the program
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCALE=${SCALE:-$REPO/build/tests/broker_scale}
[[ -x $SCALE ]] || {
  echo "scale_bench: $SCALE is not built (./dev build)" >&2
  exit 1
}
sizes=(1000 5000 10000)
[[ -n ${QUICK:-} ]] && sizes=(1000 2000)

rows=()
rc=0
for n in "${sizes[@]}"; do
  echo "scale_bench: $n clients ..." >&2
  # Idle over two keepalive periods (20 s each), so every client PINGs.
  out=$(timeout 600 "$SCALE" --clients "$n" --pairs 50 --idle 40) || rc=1
  printf '  %s\n' "${out//$'\n'/$'\n'  }" >&2
  rows+=("$(tail -1 <<<"$out")") # the summary line (broker_scale.c)
done

val() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<"$1"; }
printf '\n==== broker at scale (one broker process; clients on loopback) ====\n'
printf '%8s %9s %7s %10s %12s %12s %14s %9s\n' clients "checked" "gave up" \
  "check-in s" "CPU ms/chk" "KiB/client" "idle %/1000" "pairs/s"
for r in "${rows[@]}"; do
  printf '%8s %9s %7s %10s %12s %12s %14s %9s\n' "$(val " $r" clients)" \
    "$(val "$r" checked_in)" "$(val "$r" gave_up)" "$(val "$r" checkin_s)" \
    "$(val "$r" broker_cpu_ms_per_checkin)" "$(val "$r" broker_kib_per_client)" \
    "$(val "$r" idle_cpu_pct_per_1000)" "$(val "$r" pairs_per_s)"
done
exit "$rc"
