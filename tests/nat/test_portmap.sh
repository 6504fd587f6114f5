#!/usr/bin/env bash
# Port mapping in the NAT lab (ctest nat.portmap; issue 26): both NATs
# symmetric, so without a mapping only the relay connects them. Each case
# is `lab.sh portmap` (tests/nat/fake_gateway.py answers PCP and NAT-PMP on
# both routers) and natter -check alice -> bob:
#
#   gateway              broker     expect
#   honest (PCP)         -relay     direct to bob's mapping, not relayed;
#                                   both mappings named; deleted on exit
#   NAT-PMP only         no relay   direct, "(NAT-PMP)"
#   PCP, 60 s granted    no relay   direct; renewed within 45 s
#   lies (203.0.113.99)  -relay     needs relay; bob says why it offers
#                                   nothing
#   garbage              no relay   needs relay; nothing offered
#   none                 no relay   needs relay
#   PCP, -no-portmap     -relay     needs relay; the gateways hear nothing
#   none, then PCP       no relay   bob gives up, asks again when it
#   (broker restarted)              checks in again: direct
#
# Usage: NATTER=build/natter bash tests/nat/test_portmap.sh [CASE-NUMBER...]
# Needs root (network namespaces); exits 77 (ctest: skipped) without.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
: "${NATTER:?set NATTER to the natter binary (ctest does this)}"
NATTER=$(realpath "$NATTER")

if ((EUID != 0)); then
  echo "SKIP: the NAT lab needs root to create network namespaces"
  exit 77
fi
probe="ntlab-$$-probe"
if ! ip netns add "$probe" 2>/dev/null; then
  echo "SKIP: 'ip netns add' is not permitted here; the NAT lab cannot run"
  exit 77
fi
ip netns del "$probe"
command -v python3 >/dev/null || {
  echo "SKIP: python3 (the lab's gateway) not found"
  exit 77
}
bash "$LAB" cleanup

CASES=(
  "PCP gateways, symmetric/symmetric: direct to the mapping, not relayed|portmap symmetric symmetric --gateway honest --relay on --expect port-mapped"
  "NAT-PMP-only gateways, symmetric/symmetric: direct|portmap symmetric symmetric --gateway pmp-only --expect port-mapped"
  "gateways granting 60 s: direct, and renewed within 45 s|portmap symmetric symmetric --gateway short --expect port-mapped"
  "lying gateways (another external address): nothing changes, relayed|portmap symmetric symmetric --gateway lie --relay on --expect needs-relay"
  "gateways answering garbage: nothing changes|portmap symmetric symmetric --gateway garbage --expect needs-relay"
  "no gateway: nothing changes|portmap symmetric symmetric --gateway none --expect needs-relay"
  "-no-portmap: the gateways are not asked, relayed|portmap symmetric symmetric --gateway honest --no-portmap yes --relay on --expect needs-relay"
  "a gateway that comes up later: asked again at the next check-in, then direct|portmap symmetric symmetric --gateway late --expect port-mapped"
)
CASE_TIMEOUT=90

current_pid=""
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $current_pid ]] && kill -0 "$current_pid" 2>/dev/null; then
    kill -TERM "$current_pid" 2>/dev/null
    wait "$current_pid" 2>/dev/null
  fi
  bash "$LAB" cleanup --prefix "ntlab-$$-" >/dev/null 2>&1 || true
  [[ -n ${WORK:-} ]] && rm -rf "$WORK"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d "${TMPDIR:-/tmp}/natter-portmap.XXXXXX")
# A snapshot of the binaries: a rebuild during the run cannot swap them
# (lib.sh wants tcpcheck too).
TCPCHECK=${TCPCHECK:-$(dirname "$NATTER")/tests/tools/tcpcheck}
mkdir -p "$WORK/bin"
if ! cp "$NATTER" "$WORK/bin/natter" || ! cp "$TCPCHECK" "$WORK/bin/tcpcheck"; then
  echo "FAIL: cannot copy $NATTER and $TCPCHECK"
  exit 1
fi
export NATTER=$WORK/bin/natter TCPCHECK=$WORK/bin/tcpcheck

passed=0 failed=0 n=0
t_all=$SECONDS
for entry in "${CASES[@]}"; do
  n=$((n + 1))
  name=${entry%%|*}
  read -r -a args <<<"${entry#*|}"
  if (($# > 0)) && [[ " $* " != *" $n "* ]]; then
    continue
  fi
  out=$WORK/case$n.out
  prefix="ntlab-$$-c$n-"
  echo "---- case $n: $name (lab.sh ${args[*]})"
  t0=$SECONDS
  LAB_PREFIX=$prefix timeout --kill-after=10 "$CASE_TIMEOUT" bash "$LAB" "${args[@]}" >"$out" 2>&1 &
  current_pid=$!
  rc=0
  wait "$current_pid" || rc=$?
  current_pid=""
  leftover=$(ip netns list | awk '{print $1}' | grep "^$prefix" | tr '\n' ' ')
  if [[ -n $leftover ]]; then
    ((rc)) || rc=1
    echo "case $n left namespaces behind: $leftover" >>"$out"
    for ns in $leftover; do ip netns del "$ns"; done
  fi
  result=$(sed -n 's/^RESULT: [^:]*: //p' "$out" | tail -n1)
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "PASS: $name ($((SECONDS - t0)) s): $result"
  else
    failed=$((failed + 1))
    ((rc == 124)) && result="timed out after $CASE_TIMEOUT s"
    echo "----- output of case $n -----"
    cat "$out"
    echo "----- end of case $n -----"
    echo "FAIL: $name ($((SECONDS - t0)) s, exit $rc): ${result:-$(grep -m1 -E 'FAIL|error' "$out")}"
  fi
done
echo "port mapping lab: $((SECONDS - t_all)) s; $passed passed, $failed failed"
((failed == 0))
