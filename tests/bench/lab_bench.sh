#!/usr/bin/env bash
# natter throughput through real NATs: the NAT lab (tests/nat/lab.sh) with
# alice and bob each behind a cone NAT, no loss. One TCP stream of BYTES
# (default 512M) to a tcpcheck sink-server on bob, sent by alice
#   (a) as raw TCP through both NATs: bob's router port-forwards
#       203.0.113.2:5201 to bob (DNAT), alice connects to that address;
#   (b) through natter: alice's forward 127.0.0.1:8001 -> bob:7001, a
#       hole-punched QUIC connection through the same two NATs;
# best of RUNS (default 3) each, in Gbit/s, and natter's ratio to raw TCP.
# The sink checks every byte by SHA-256 (which also bounds the raw rate, a
# few Gbit/s on a small machine: a bound the natter rate shares).
#
# Usage (root): tests/bench/lab_bench.sh
#   BYTES=512M RUNS=3   stream size (K, M, G = powers of 1024), runs each
#   NATTER=build/natter
# Exit status: 0 unless a transfer failed or corrupted data; the numbers
# never fail it. Everything is torn down on exit (namespaces, processes).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export NATTER=${NATTER:-$REPO/build/natter}
# shellcheck source-path=SCRIPTDIR source=../nat/lab.sh
. "$REPO/tests/nat/lab.sh"
lab_require_root
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$REPO/tests/integration/lib.sh"
_lab_install_traps
# shellcheck disable=SC2034 # lib.sh's log prefix
TEST_NAME=lab_bench

BYTES=${BYTES:-512M}
RUNS=${RUNS:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || fail "RUNS must be a positive integer"
NBYTES=$(_lab_bytes "$BYTES")
SEND_TIMEOUT=$((60 + NBYTES / 20000000))

note() { printf '%s\n' "$*" >&2; }

lab_up --alice cone --bob cone
bob_ip=${LAB_HOST[bob]}
rb_ip=${LAB_WAN_IP[rb]}
lab_add_port_forward rb 5201 "$bob_ip" 7101

# bob: one sink on his LAN address (for the port forward), one on loopback
# (for natter).
lab_start sink_raw bob "$TCPCHECK" sink-server 7101 --bind "$bob_ip"
wait_log sink_raw '^ready$'
lab_start sink bob "$TCPCHECK" sink-server 7001
wait_log sink '^ready$'

broker=$LAB_BROKER_IP:$LAB_BROKER_PORT
lab_start broker inet "$NATTER" -server "$broker" -identity "$WORK/broker.key" -q
lab_start bob bob "$NATTER" -name bob -broker "$broker" -identity "$WORK/bob.key" -listen -allow-peer alice
wait_log bob 'natter: checked in at broker' 15
lab_start alice alice "$NATTER" -name alice -broker "$broker" -identity "$WORK/alice.key" 8001:bob:7001
wait_log alice 'forwarding 127\.0\.0\.1:8001 -> ' 15

# send_gbps LABEL PORT HOST: one tcpcheck send; prints its Gbit/s.
send_gbps() {
  local label=$1 port=$2 host=$3 out gbps
  out=$(lab_x alice "$TCPCHECK" send "$port" --host "$host" --bytes "$NBYTES" \
    --timeout "$SEND_TIMEOUT" 2>&1) || fail "$label: the transfer failed: $out"
  gbps=$(sed -n 's/.*gbps=\([0-9.]*\).*/\1/p' <<<"$out")
  [[ -n $gbps ]] || fail "$label: no gbps in tcpcheck's output: $out"
  echo "$gbps"
}

# A first, small transfer sets up the tunnel (hole punching) outside the
# measurement; it must be direct.
lab_x alice "$TCPCHECK" send 8001 --bytes 1M --timeout 30 >/dev/null ||
  fail "natter: the first transfer failed"
conn=$(grep -m1 'connected to bob' "$WORK/alice.log") || fail "alice did not connect to bob"
[[ $conn == *"at $rb_ip:"*"(direct"* ]] || fail "alice's connection is not direct to $rb_ip: $conn"

best_raw=0 best_natter=0
for ((i = 1; i <= RUNS; i++)); do
  raw=$(send_gbps "raw TCP" 5201 "$rb_ip")
  nat=$(send_gbps natter 8001 127.0.0.1)
  note "run $i/$RUNS: raw TCP $raw Gbit/s, natter $nat Gbit/s"
  best_raw=$(awk -v a="$best_raw" -v b="$raw" 'BEGIN { print (b > a ? b : a) }')
  best_natter=$(awk -v a="$best_natter" -v b="$nat" 'BEGIN { print (b > a ? b : a) }')
done

ratio=$(awk -v n="$best_natter" -v r="$best_raw" 'BEGIN { printf "%.3f", (r > 0 ? n / r : 0) }')
echo "NAT lab throughput, cone/cone, no loss, $BYTES per run, best of $RUNS (sha256 checked):"
printf '  %-44s %8.3f Gbit/s\n' "raw TCP via bob's port forward ($rb_ip:5201)" "$best_raw"
printf '  %-44s %8.3f Gbit/s\n' "natter (QUIC to $(sed -E 's/.* at ([0-9.:]+).*/\1/' <<<"$conn"))" "$best_natter"
echo "  natter / raw TCP: $ratio"
