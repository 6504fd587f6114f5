#!/usr/bin/env bash
# natter's relayed path against its direct path, in the NAT lab
# (tests/nat/lab.sh), in two parts:
#
# 1. Throughput and CPU. One lab, alice and carol side by side behind the
#    same cone NAT (ra), bob behind another (rb), a broker with -relay
#    -relay-rate 0 -relay-total 0 (no caps). ra drops UDP between carol and
#    rb, so alice reaches bob directly (hole-punched) and carol only
#    through the broker's relay; both forward to the same iperf3 server on
#    bob's loopback. ROUNDS interleaved rounds of SECS seconds each of
#      raw      raw TCP to the same iperf3 through both NATs (rb forwards
#               a TCP port to it): what the sink takes, so that the sink is
#               not what limits the natter rows
#      direct   iperf3 through alice's forward
#      relayed  iperf3 through carol's forward
#    up (alice/carol -> bob) and down (iperf3 -R). Medians, relayed/direct,
#    and the CPU seconds per GB moved (utime + stime from /proc, before and
#    after each run, over the bytes iperf3's receiver counted) of the
#    forwarding client, bob and the broker.
#
# 2. Time to first byte: from starting alice (the forwarding process) to
#    the first byte echoed back through her forward: check-in,
#    introduction, hole punching (and the fallback to the relay), the QUIC
#    handshake and the first stream's round trip. A probe in alice's
#    namespace, started before alice, connects to her forward as soon as
#    it listens, sends one byte and waits for its echo. TTFB_RUNS runs per
#    case (a fresh alice each time, same lab, broker and bob), medians; the
#    path is what alice logs ("connected to bob at ... (direct" or "via
#    relay"). TTFB_CASES is a space-separated list of ALICE_NAT,BOB_NAT or
#    ALICE_NAT,BOB_NAT,blocked (UDP between the NATs dropped); NAT is
#    none, cone or symmetric.
#
# Usage (root): tests/bench/lab_relay_bench.sh [--quick] [--throughput-only |
#   --ttfb-only]
#   ROUNDS=3 SECS=4 TTFB_RUNS=7
#   TTFB_CASES="cone,cone symmetric,symmetric cone,cone,blocked symmetric,cone"
#   QUICK=1 (or --quick): ROUNDS=1 SECS=2 TTFB_RUNS=5
#   NATTER=build/natter
# Exit status: 0 unless the lab or natter could not be set up; the numbers
# never fail it. Everything is torn down on exit (namespaces, processes).

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
TEST_NAME=lab_relay_bench

do_tput=1 do_ttfb=1
for arg in "$@"; do
  case $arg in
  --quick) QUICK=1 ;;
  --throughput-only) do_ttfb=0 ;;
  --ttfb-only) do_tput=0 ;;
  *) fail "unknown argument $arg (see the header of $0)" ;;
  esac
done
if [[ -n ${QUICK:-} ]]; then
  : "${ROUNDS:=1}" "${SECS:=2}" "${TTFB_RUNS:=5}"
fi
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
TTFB_RUNS=${TTFB_RUNS:-7}
TTFB_CASES=${TTFB_CASES:-"cone,cone symmetric,symmetric cone,cone,blocked symmetric,cone"}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || fail "ROUNDS must be a positive integer"
[[ $SECS =~ ^[1-9][0-9]*$ ]] || fail "SECS must be a positive integer"
[[ $TTFB_RUNS =~ ^[1-9][0-9]*$ ]] || fail "TTFB_RUNS must be a positive integer"
command -v iperf3 >/dev/null || fail "iperf3 is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"

BROKER=$LAB_BROKER_IP:$LAB_BROKER_PORT
RELAY_ARGS=(-relay -relay-rate 0 -relay-total 0)

# start_broker: a broker that relays without caps, in the current lab.
start_broker() {
  lab_start broker inet "$NATTER" -server "$BROKER" -identity "$WORK/broker.key" \
    "${RELAY_ARGS[@]}"
  wait_log broker "broker listening on"
}

# conn_line NAME PEER: NAME's first "connected to PEER" line, or "".
conn_line() { grep -m1 "connected to $2" "$WORK/$1.log" 2>/dev/null || true; }

# ---- 1. throughput and CPU -------------------------------------------------

# udp_drops NODE: UDP datagrams NODE's kernel dropped for a full receive
# buffer (RcvbufErrors in /proc/net/snmp, per namespace).
udp_drops() {
  lab_x "$1" cat /proc/net/snmp | awk '
    $1 == "Udp:" && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
    $1 == "Udp:" && h { print $col["RcvbufErrors"]; exit }'
}

# tput_table DIR TITLE: the rows of one direction.
tput_table() {
  local tag=$1 title=$2 p key g d_g l parts cpu
  d_g=$(bench_median "${R_GBPS[$tag,direct]:-}")
  printf '\n%s\n' "$title"
  printf '  %-8s %7s %8s  %-52s %s\n' path Gbit/s "/direct" \
    "CPU s per GB moved (median): client + bob + broker" "runs, Gbit/s"
  for p in raw direct relayed; do
    key="$tag,$p"
    g=$(bench_median "${R_GBPS[$key]:-}")
    parts=""
    for l in ${R_LABELS[$key]:-}; do
      parts+="${parts:+ + }$l $(bench_median "${R_CPU[$key,$l]}")"
    done
    cpu="-"
    [[ -n $parts ]] && cpu="$parts = $(bench_cpu_total "$tag" "$p")"
    printf '  %-8s %7s %8s  %-52s %s\n' "$p" "$g" "$(bench_ratio "$g" "$d_g")" \
      "$cpu" "${R_GBPS[$key]:-}"
  done
}

throughput() {
  lab_up --alice cone --bob cone
  local bob_ip=${LAB_HOST[bob]} rb_ip=${LAB_WAN_IP[rb]} carol_ip=${LAB_HOST[alice2]}
  # carol <-> bob's public address: no UDP (the relay is elsewhere).
  lab_x ra iptables -I FORWARD -p udp -s "$carol_ip" -d "$rb_ip" -j DROP
  lab_x ra iptables -I FORWARD -p udp -s "$rb_ip" -d "$carol_ip" -j DROP
  lab_add_port_forward rb 5201 "$bob_ip" 7101
  lab_start iperf bob iperf3 -s -p 7101
  lab_wait_bound bob tcp 7101

  # shellcheck disable=SC2119
  start_broker
  lab_start bob bob "$NATTER" -name bob -broker "$BROKER" -identity "$WORK/bob.key" \
    -listen -allow-peer alice -allow-peer carol
  wait_log bob 'natter: checked in at broker' 15
  lab_start alice alice "$NATTER" -name alice -broker "$BROKER" -identity "$WORK/alice.key" 8001:bob:7101
  lab_start carol alice2 "$NATTER" -name carol -broker "$BROKER" -identity "$WORK/carol.key" 8001:bob:7101
  wait_log alice 'forwarding 127\.0\.0\.1:8001 -> ' 15
  wait_log carol 'forwarding 127\.0\.0\.1:8001 -> ' 15

  # First transfers set the tunnels up outside the measurement.
  local who line
  for who in alice:alice carol:alice2; do
    lab_x "${who#*:}" iperf3 -c 127.0.0.1 -p 8001 -n 8M >/dev/null 2>&1 ||
      fail "${who%%:*}: the first transfer failed"
  done
  line=$(conn_line alice bob)
  [[ $line == *"at $rb_ip:"*"(direct"* ]] || fail "alice is not direct to $rb_ip: ${line:-no connection}"
  line=$(conn_line carol bob)
  [[ $line == *"via relay"* ]] || fail "carol is not relayed: ${line:-no connection}"

  local direct_cpu relayed_cpu
  direct_cpu="alice:$(pid alice) bob:$(pid bob) broker:$(pid broker)"
  relayed_cpu="carol:$(pid carol) bob:$(pid bob) broker:$(pid broker)"
  local r dir rev node
  local -A drops0=()
  for node in inet bob alice alice2; do drops0[$node]=$(udp_drops "$node"); done
  local -a ns_alice=(ip netns exec "${LAB_NS[alice]}")
  local -a ns_carol=(ip netns exec "${LAB_NS[alice2]}")
  for dir in up down; do
    rev=()
    # iperf3 -R: bob's iperf3 sends. A wrapper appends it to the command.
    [[ $dir == down ]] && rev=(bash -c 'exec "$@" -R' _)
    note "$dir: $ROUNDS rounds of raw TCP, direct and relayed, $SECS s each"
    for ((r = 1; r <= ROUNDS; r++)); do
      BENCH_CLIENT=("${ns_alice[@]}" "${rev[@]}")
      BENCH_HOST=$rb_ip bench_run "$dir" raw 5201 "t:$SECS" 1 ""
      BENCH_HOST=127.0.0.1 bench_run "$dir" direct 8001 "t:$SECS" 1 "$direct_cpu"
      BENCH_CLIENT=("${ns_carol[@]}" "${rev[@]}")
      BENCH_HOST=127.0.0.1 bench_run "$dir" relayed 8001 "t:$SECS" 1 "$relayed_cpu"
    done
  done
  if grep -q 'path now direct' "$WORK/carol.log" ||
    (($(grep -c 'connected to bob' "$WORK/carol.log") != 1)); then
    note "warning: carol's path changed during the runs"
  fi

  echo
  echo "==== relayed vs direct (NAT lab, cone/cone, MTU 1500; relayed: UDP between carol and rb dropped, broker -relay -relay-rate 0 -relay-total 0) ===="
  echo "iperf3 $SECS s per run, medians of $ROUNDS interleaved rounds; client = alice (direct) or carol (relayed)"
  tput_table up "up: client -> bob"
  tput_table down "down: bob -> client (iperf3 -R)"
  printf '\nUDP datagrams dropped for a full receive buffer over the runs: broker %s, bob %s, alice %s, carol %s\n' \
    $(($(udp_drops inet) - drops0[inet])) $(($(udp_drops bob) - drops0[bob])) \
    $(($(udp_drops alice) - drops0[alice])) $(($(udp_drops alice2) - drops0[alice2]))
  stop carol
  stop alice
  stop bob
  stop broker
  stop iperf
  lab_down
}

# ---- 2. time to first byte ------------------------------------------------

# The probe: prints "ready", then retries connecting to 127.0.0.1:PORT
# every 2 ms until DEADLINE (epoch seconds), sends one byte, and prints the
# epoch time at which its echo arrived, or "fail: WHY". alice starts once
# it is ready, so that its own start-up is not counted.
TTFB_PROBE='
import socket, sys, time
port, deadline = int(sys.argv[1]), float(sys.argv[2])
print("ready", flush=True)
while True:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        break
    except OSError:
        s.close()
        if time.time() > deadline:
            print("fail: the forward never listened"); sys.exit(1)
        time.sleep(0.002)
s.settimeout(max(0.1, deadline - time.time()))
try:
    s.sendall(b"x")
    got = s.recv(1)
except OSError as e:
    print("fail: %s" % e); sys.exit(1)
if got != b"x":
    print("fail: the connection closed without an echo"); sys.exit(1)
print("%.6f" % time.time())
'

declare -A T_MS=() T_PATH=() T_CONN=()

# ttfb_case ALICE_NAT BOB_NAT [blocked]: TTFB_RUNS runs in one lab.
ttfb_case() {
  local a=$1 b=$2 blocked=${3:-} key="$1,$2${3:+,$3}" i n0 t0 t1 out line path
  lab_up --alice "$a" --bob "$b"
  [[ $blocked == blocked ]] && lab_block_udp
  [[ -z $blocked || $blocked == blocked ]] || fail "TTFB case $key: the third field may only be 'blocked'"
  lab_start echo bob "$TCPCHECK" echo-server 7000
  wait_log echo '^ready$'
  # shellcheck disable=SC2119
  start_broker
  lab_start bob bob "$NATTER" -name bob -broker "$BROKER" -identity "$WORK/bob.key" \
    -listen -allow-peer alice
  wait_log bob 'natter: checked in at broker' 15
  for ((i = 1; i <= TTFB_RUNS; i++)); do
    lab_start probe alice python3 -c "$TTFB_PROBE" 8000 \
      "$(awk -v t="$EPOCHREALTIME" 'BEGIN { printf "%.3f", t + 30 }')"
    wait_log probe '^ready$' 10
    t0=$EPOCHREALTIME
    lab_start alice alice "$NATTER" -name alice -broker "$BROKER" -identity "$WORK/alice.key" ${TTFB_VERBOSE:+-v} 8000:bob:7000
    wait_exit probe 35
    out=$(sed 1d "$WORK/probe.log")
    line=$(conn_line alice bob)
    if [[ $line == *"via relay"* ]]; then
      path=relayed
    elif [[ $line == *"(direct"* ]]; then
      path=direct
    else
      path=none
    fi
    if [[ $out =~ ^[0-9]+\.[0-9]+$ ]]; then
      t1=$(awk -v a="$t0" -v b="$out" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
      T_MS[$key]+="$t1 "
      note "  $key run $i: first byte after $t1 ms, $path${line:+ (${line##*natter: })}"
    else
      T_MS[$key]+="fail "
      note "  $key run $i: $out; $path${line:+ (${line##*natter: })}"
    fi
    T_PATH[$key]+="$path "
    [[ $line =~ \(([0-9]+)\ ms ]] && T_CONN[$key]+="${BASH_REMATCH[1]} "
    [[ $line =~ ,\ ([0-9]+)\ ms\) ]] && T_CONN[$key]+="${BASH_REMATCH[1]} "
    # bob must have let go of this alice before the next one checks in
    # under the same name (it does when she closes; bounded wait).
    n0=$(grep -c 'connection to alice closed' "$WORK/bob.log") || true
    stop alice
    local deadline=$(($(_lab_now_ms) + 5000))
    while (($(grep -c 'connection to alice closed' "$WORK/bob.log") <= n0)) &&
      (($(_lab_now_ms) < deadline)); do
      sleep 0.02
    done
  done
  stop bob
  stop broker
  stop echo
  lab_down
}

ttfb() {
  local c
  local -a f
  for c in $TTFB_CASES; do
    IFS=, read -ra f <<<"$c"
    ((${#f[@]} >= 2)) || fail "TTFB case '$c': want ALICE_NAT,BOB_NAT[,blocked]"
    note "time to first byte: ${f[0]}/${f[1]}${f[2]:+, UDP between the NATs blocked}: $TTFB_RUNS runs"
    ttfb_case "${f[@]}"
  done
  echo
  echo "==== time to first byte (NAT lab, broker -relay without caps): from starting alice to the first byte echoed through her forward, median of $TTFB_RUNS runs ===="
  printf '  %-34s %-18s %9s %12s  %s\n' case path "first byte" "connected" "runs, ms"
  local key paths uniq title
  for c in $TTFB_CASES; do
    key=$c
    IFS=, read -ra f <<<"$c"
    title="${f[0]}/${f[1]}"
    [[ ${f[2]:-} == blocked ]] && title+=", UDP blocked"
    paths=${T_PATH[$key]:-}
    uniq=$(tr ' ' '\n' <<<"$paths" | grep . | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')
    printf '  %-34s %-18s %9s %12s  %s\n' "$title" "$uniq" \
      "$(bench_median "${T_MS[$key]:-}" | sed 's/\.00$//') ms" \
      "$(bench_median "${T_CONN[$key]:-}" | sed 's/\.00$//') ms" "${T_MS[$key]:-}"
  done
  echo "  (connected: alice's own figure in 'connected to bob', from the introduction to the handshake)"
}

((do_tput)) && throughput
((do_ttfb)) && ttfb
exit 0
