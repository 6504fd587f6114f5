#!/usr/bin/env bash
# Roaming stalls in the NAT lab: RUNS runs (default 10) of each case of
# `tests/nat/lab.sh roam ALICE_NAT BOB_NAT EVENT SIZE`, one after the
# other, each a fresh lab. Each run is a transfer of SIZE alice -> bob
# (sha256 checked) with an interactive echo beside it; mid-transfer the
# EVENT changes an address under the connection, and the run passes only
# when both complete on the same QUIC connection. Prints, per case, the
# longest echo stall of every run in run order (ms) and the range of the
# 1-minute load average at the runs' starts; a failed run prints FAIL.
#
# Usage (root): tests/bench/roam_bench.sh [CASE...]
#   CASE is ALICE_NAT,BOB_NAT,EVENT (default: the two predicted paths,
#   symmetric,cone,rebind-a and cone,symmetric,rebind-b)
#   RUNS=10 SIZE=400M NATTER=build/natter
#   ROAM_MAX_STALL_MS (lab.sh's bound; default here 5000, so that a slow
#   run is measured rather than failed)
# Exit status: 0 when every run passed.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lab=$here/../nat/lab.sh
runs=${RUNS:-10}
size=${SIZE:-400M}
export ROAM_MAX_STALL_MS=${ROAM_MAX_STALL_MS:-5000}
(($# > 0)) || set -- symmetric,cone,rebind-a cone,symmetric,rebind-b
[[ $(id -u) == 0 ]] || { echo "roam_bench: needs root (network namespaces)" >&2; exit 77; }

rc=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for c in "$@"; do
  IFS=, read -r an bn ev <<<"$c"
  stalls=() lo="" hi=""
  for ((i = 1; i <= runs; i++)); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    if [[ -z $lo ]] || awk -v a="$load" -v b="$lo" 'BEGIN { exit !(a < b) }'; then lo=$load; fi
    if [[ -z $hi ]] || awk -v a="$load" -v b="$hi" 'BEGIN { exit !(a > b) }'; then hi=$load; fi
    if timeout --kill-after=10 200 bash "$lab" roam "$an" "$bn" "$ev" "$size" >"$out" 2>&1; then
      s=$(sed -n 's/.*longest stall \([0-9]*\) ms.*/\1/p' "$out" | tail -n1)
      stalls+=("${s:-?}")
    else
      stalls+=(FAIL)
      rc=1
      grep -m1 -E '^FAIL' "$out" >&2
    fi
    echo "$c run $i: ${stalls[-1]} (load $load)" >&2
  done
  echo "$an/$bn $ev: ${stalls[*]} (load $lo-$hi)"
done
exit "$rc"
