#!/usr/bin/env bash
# natter throughput through real NATs: the NAT lab (tests/nat/lab.sh), alice
# and bob each behind a cone NAT, MTU 1500 links. iperf3 from alice to a
# server on bob,
#   raw     as raw TCP through both NATs: bob's router port-forwards
#           203.0.113.2:5201 to bob's iperf3 (DNAT),
#   natter  through alice's forward -> bob (hole-punched QUIC through the
#           same two NATs) -> bob's iperf3 on his loopback,
#   nebula  through a Nebula overlay (Debian package nebula; skipped with a
#           note when it is not installed, or NEBULA=0): a lighthouse in the
#           "internet" namespace, alice and bob hole-punched through the same
#           NATs, iperf3 to bob's overlay address (certificates made by
#           nebula-cert in the temporary directory at run time),
# ROUNDS interleaved rounds of SECS seconds each, medians and every round,
# with natter's and Nebula's CPU seconds per GB (alice, bob). Then the same with random loss of every
# packet (TCP and UDP alike) at each router, in both directions: LOSSES
# (default 0.001 0.01 0.03). natter is compared with raw TCP under the same
# loss (natter/x), round by round: a round is flagged below 0.4x raw TCP
# without loss and below 1.0x at 1% loss. The QUIC connection and the
# routers stay up across rows.
#
# Both hosts share this machine's CPUs, and where the scheduler puts the
# four busy processes (iperf3 client, alice's end, bob's end, iperf3
# server) decides a whole run: on 2 CPUs natter made 3.3-4.0 Gbit/s with
# each host's pair on its own CPU, 2.4 with both tunnel ends on one, 1.8-
# 2.3 crossed, and an unpinned run lands in one of these at random and
# stays there. So by default each host gets its own CPU, as two machines
# would: alice's side (iperf3 client, natter alice, Nebula alice) on CPU
# 0, bob's side (iperf3 server, natter bob, Nebula bob) on CPU 1, raw TCP
# alike. PIN=0 leaves placement to the scheduler.
#
# Usage (root): tests/bench/lab_bench.sh
#   ROUNDS=3 SECS=4 LOSSES="0.001 0.01 0.03"  QUICK=1: SECS=2
#   (ROUNDS at least 3)
#   NATTER=build/natter  NEBULA=0: no Nebula rows  PIN=0: no CPU pinning
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
if [[ $PIN == 1 ]]; then
  BENCH_CLIENT+=(taskset -c 0)
  note "pinning: alice's side (iperf3 client, natter alice, Nebula alice) on CPU 0, bob's side on CPU 1 (PIN=0: none)"
fi
bench_pin 0 "$(pid alice)"
bench_pin 1 "$(pid bob)" "$(pid iperf)"
# The first transfer sets up the tunnel (hole punching) outside the
# measurement; it must be direct.
"${BENCH_CLIENT[@]}" iperf3 -c 127.0.0.1 -p 8001 -n 8M >/dev/null 2>&1 ||
  fail "natter: the first transfer failed"
conn=$(grep -m1 'connected to bob' "$WORK/alice.log") || fail "alice did not connect to bob"
[[ $conn == *"at $rb_ip:"*"(direct"* ]] || fail "alice's connection is not direct to $rb_ip: $conn"
nat_cpu="alice:$(pid alice) bob:$(pid bob)"

# Nebula, the same two hosts behind the same NATs. Its tun MTU is the
# largest that fits the 1500-byte links (1500 - 20 IP - 8 UDP - 16 header
# - 16 AEAD tag), so neither tunnel carries smaller packets than it must.
NEB_NET=198.19.0
NEB_MTU=1440
neb_cpu=""
nebula_up() {
  local d=$WORK/nebula n ip i
  mkdir -p "$d" && chmod 700 "$d"
  nebula-cert ca -name natter-lab -out-crt "$d/ca.crt" -out-key "$d/ca.key" ||
    return 1
  for n in lighthouse:1 alice:2 bob:3; do
    nebula-cert sign -ca-crt "$d/ca.crt" -ca-key "$d/ca.key" -name "${n%:*}" \
      -ip "$NEB_NET.${n#*:}/24" -out-crt "$d/${n%:*}.crt" \
      -out-key "$d/${n%:*}.key" || return 1
  done
  for n in lighthouse alice bob; do
    {
      printf 'pki:\n  ca: %s\n  cert: %s\n  key: %s\n' "$d/ca.crt" "$d/$n.crt" "$d/$n.key"
      printf 'static_host_map:\n  "%s.1": ["%s:4242"]\n' "$NEB_NET" "$LAB_OTHER_IP"
      if [[ $n == lighthouse ]]; then
        printf 'lighthouse:\n  am_lighthouse: true\n'
        printf 'tun:\n  disabled: true\n'
      else
        printf 'lighthouse:\n  am_lighthouse: false\n  interval: 60\n  hosts: ["%s.1"]\n' "$NEB_NET"
        printf 'tun:\n  dev: nebula1\n  mtu: %s\n' "$NEB_MTU"
      fi
      # The lighthouse's own address: "internet" has several, and a reply
      # from another one would not match the NATs' mappings.
      if [[ $n == lighthouse ]]; then
        printf 'listen:\n  host: %s\n  port: 4242\n' "$LAB_OTHER_IP"
      else
        printf 'listen:\n  host: 0.0.0.0\n  port: 4242\n'
      fi
      printf 'punchy:\n  punch: true\n  respond: true\n'
      printf 'logging:\n  level: %s\n' "${NEBULA_LOG:-info}"
      printf 'firewall:\n  outbound:\n    - port: any\n      proto: any\n      host: any\n'
      printf '  inbound:\n    - port: any\n      proto: any\n      host: any\n'
    } >"$d/$n.yml"
  done
  lab_start nebula-lh inet nebula -config "$d/lighthouse.yml"
  lab_start nebula-bob bob nebula -config "$d/bob.yml"
  lab_start nebula-alice alice nebula -config "$d/alice.yml"
  # Until alice reaches bob's overlay address (the lighthouse introduces
  # them; both punch): a TCP connect to a closed port there is refused
  # once the tunnel carries packets.
  local out=""
  for ((i = 0; i < 50; i++)); do
    out=$(lab_x alice timeout 1 bash -c "exec 3<>/dev/tcp/$NEB_NET.3/9" 2>&1) && break
    [[ $out == *refused* ]] && break
    sleep 0.2
  done
  ((i < 50)) || {
    note "nebula: alice cannot reach bob's overlay address $NEB_NET.3"
    return 1
  }
  "${BENCH_CLIENT[@]}" iperf3 -c "$NEB_NET.3" -p 7101 -n 8M >/dev/null 2>&1 || {
    note "nebula: the first transfer failed"
    return 1
  }
  neb_cpu="alice:$(pid nebula-alice) bob:$(pid nebula-bob)"
  bench_pin 0 "$(pid nebula-alice)"
  bench_pin 1 "$(pid nebula-bob)"
}
NEB=""
if [[ ${NEBULA:-1} == 0 ]]; then
  note "nebula: NEBULA=0, no Nebula rows"
elif ! command -v nebula >/dev/null || ! command -v nebula-cert >/dev/null; then
  note "nebula: not installed (Debian package nebula), no Nebula rows"
elif nebula_up; then
  NEB=nebula
else
  note "nebula: could not be set up (logs: $WORK/nebula-*.log), no Nebula rows"
fi

# rows TAG: ROUNDS interleaved rounds of raw, natter (and nebula).
rows() {
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    BENCH_HOST=$rb_ip bench_run "$1" raw 5201 "t:$SECS" 1 ""
    BENCH_HOST=127.0.0.1 bench_run "$1" natter 8001 "t:$SECS" 1 "$nat_cpu"
    [[ -z $NEB ]] ||
      BENCH_HOST=$NEB_NET.3 bench_run "$1" nebula 7101 "t:$SECS" 1 "$neb_cpu"
  done
}

TAGS=(loss0)
note "no loss: $ROUNDS rounds of raw TCP, natter${NEB:+ and Nebula}, $SECS s each"
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
  REF=raw bench_table "$t" "$title" raw natter $NEB
  case $t in
  loss0) bench_rounds "$t" raw 0.4 ;;
  loss0.01) bench_rounds "$t" raw 1.0 ;;
  *) bench_rounds "$t" raw - ;;
  esac
  [[ -z $NEB ]] || bench_rounds "$t" nebula -
done
if ((BENCH_FLAGGED > 0)); then
  printf '\nREGRESSION: %s round(s) below their bound (above)\n' "$BENCH_FLAGGED" >&2
  exit 3
fi
