#!/usr/bin/env bash
# natter throughput through real NATs: the NAT lab (tests/nat/lab.sh), alice
# and bob each behind a cone NAT, MTU 1500 links. iperf3 from alice to a
# server on bob,
#   raw     as raw TCP through both NATs: bob's router port-forwards
#           203.0.113.2:5201 to bob's iperf3 (DNAT),
#   natter  through alice's forward -> bob (hole-punched QUIC through the
#           same two NATs) -> bob's iperf3 on his loopback,
# ROUNDS interleaved rounds of SECS seconds each, medians and every round,
# with natter's CPU seconds per GB (alice, bob). Then the same with random loss of every
# packet (TCP and UDP alike) at each router, in both directions: LOSSES
# (default 0.001 0.01 0.03). natter is compared with raw TCP under the same
# loss (natter/x), round by round: a round is flagged below 0.4x raw TCP
# without loss and below 1.0x at 1% loss. The QUIC connection and the
# routers stay up across rows.
#
# Usage (root): tests/bench/lab_bench.sh
#   ROUNDS=3 SECS=4 LOSSES="0.001 0.01 0.03"  QUICK=1: SECS=2
#   (ROUNDS at least 3)
#   NATTER=build/natter
# Exit status: 1 when the lab or natter could not be set up, else 3 when a
# round was flagged, else 0 (integrity is checked by tests/nat and
# bench.sh). Everything
# is torn down on exit (namespaces, processes).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export NATTER=${NATTER:-$REPO/build/natter}
# shellcheck source-path=SCRIPTDIR source=../nat/lab.sh
. "$REPO/tests/nat/lab.sh"
lab_require_root
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$REPO/tests/integration/lib.sh"
_lab_install_traps
# shellcheck source-path=SCRIPTDIR source=measure.sh
. "$REPO/tests/bench/measure.sh"
# shellcheck disable=SC2034 # lib.sh's log prefix
TEST_NAME=lab_bench

if [[ -n ${QUICK:-} ]]; then
  : "${SECS:=2}"
fi
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
LOSSES=${LOSSES:-0.001 0.01 0.03}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] && ((ROUNDS >= 3)) ||
  fail "ROUNDS must be an integer of at least 3"
[[ $SECS =~ ^[1-9][0-9]*$ ]] || fail "SECS must be a positive integer"
command -v iperf3 >/dev/null || fail "iperf3 is not installed"

lab_up --alice cone --bob cone
bob_ip=${LAB_HOST[bob]}
rb_ip=${LAB_WAN_IP[rb]}
lab_add_port_forward rb 5201 "$bob_ip" 7101
lab_start iperf bob iperf3 -s -p 7101
lab_wait_bound bob tcp 7101

broker=$LAB_BROKER_IP:$LAB_BROKER_PORT
lab_start broker inet "$NATTER" -server "$broker" -identity "$WORK/broker.key" -q
lab_start bob bob "$NATTER" -name bob -broker "$broker" -identity "$WORK/bob.key" -listen -allow-peer alice
wait_log bob 'natter: checked in at broker' 15
lab_start alice alice "$NATTER" -name alice -broker "$broker" -identity "$WORK/alice.key" 8001:bob:7101
wait_log alice 'forwarding 127\.0\.0\.1:8001 -> ' 15

BENCH_CLIENT=(ip netns exec "${LAB_NS[alice]}")
# The first transfer sets up the tunnel (hole punching) outside the
# measurement; it must be direct.
"${BENCH_CLIENT[@]}" iperf3 -c 127.0.0.1 -p 8001 -n 8M >/dev/null 2>&1 ||
  fail "natter: the first transfer failed"
conn=$(grep -m1 'connected to bob' "$WORK/alice.log") || fail "alice did not connect to bob"
[[ $conn == *"at $rb_ip:"*"(direct"* ]] || fail "alice's connection is not direct to $rb_ip: $conn"
nat_cpu="alice:$(pid alice) bob:$(pid bob)"

# rows TAG: ROUNDS interleaved rounds of raw and natter.
rows() {
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    BENCH_HOST=$rb_ip bench_run "$1" raw 5201 "t:$SECS" 1 ""
    BENCH_HOST=127.0.0.1 bench_run "$1" natter 8001 "t:$SECS" 1 "$nat_cpu"
  done
}

TAGS=(loss0)
note "no loss: $ROUNDS rounds of raw TCP and natter, $SECS s each"
rows loss0
for p in $LOSSES; do
  lab_set_loss ra "$p"
  lab_set_loss rb "$p"
  note "loss $p at each router: $ROUNDS rounds"
  rows "loss$p"
  TAGS+=("loss$p")
done
lab_set_loss ra 0
lab_set_loss rb 0

echo
echo "==== NAT lab (cone/cone, MTU 1500): iperf3 $SECS s per run, medians of $ROUNDS rounds ===="
for t in "${TAGS[@]}"; do
  if [[ $t == loss0 ]]; then
    title="no loss"
  else
    title="loss ${t#loss} of every packet at each router, each direction (TCP and UDP)"
  fi
  REF=raw bench_table "$t" "$title" raw natter
  case $t in
  loss0) bench_rounds "$t" raw 0.4 ;;
  loss0.01) bench_rounds "$t" raw 1.0 ;;
  *) bench_rounds "$t" raw - ;;
  esac
done
if ((BENCH_FLAGGED > 0)); then
  printf '\nREGRESSION: %s round(s) below their bound (above)\n' "$BENCH_FLAGGED" >&2
  exit 3
fi
