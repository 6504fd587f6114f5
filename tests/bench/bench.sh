#!/usr/bin/env bash
# natter benchmark on loopback. Throughput is measured with iperf3 (one
# stream of BYTES, default 2G; its sink does not hash, so direct TCP is not
# capped by the measuring tool) through
#   direct  iperf3 straight to the server,
#   socat   TCP-LISTEN -> TCP, -b 131072,
#   ssh     ssh -L (aes128-gcm@openssh.com) to a private sshd started here,
#   natter  broker + bob -listen + alice forwarding a port to bob,
# in ROUNDS interleaved rounds (direct, socat, ssh, natter, direct, ...),
# reported as medians and round by round: natter against ssh -L in the
# same round, flagged when natter moved less than 0.9x ssh's Gbit/s or
# spent more CPU per GB than ssh + sshd (a slow mode that some runs fall
# into shows as flagged rounds, where a median or a best run hides it). For every round the CPU time (utime + stime, from
# /proc) of the forwarding processes is read: natter's alice and bob, ssh
# and the sshd processes of its session, socat (with its reaped children);
# reported as CPU seconds per GB (10^9 bytes) moved, with natter's ratio to
# ssh. Then:
#   busy     the same rounds (ssh and natter, direct for scale) beside a CPU
#            hog pinned to CPU 0 (a shell busy loop started and stopped
#            here),
#   -P 8     8 parallel streams through ssh and natter: the sum and the
#            slowest/fastest stream (fairness),
#   latency  small (64-byte) echo round trips on one connection while a bulk
#            iperf3 stream runs through the same ssh / natter connection; the
#            time from connect() to the first echo on a fresh forwarded
#            connection (natter: over the warm peer connection),
#   integrity  SHA-256 checked streams through natter (tcpcheck send to a
#            hashing sink), 100 concurrent echo connections (peak RSS
#            against the 64 MiB bound), and the broker's bytes per tunnel
#            byte.
# Peak RSS (VmHWM) of alice and bob covers the throughput rounds.
#
# Quiet rounds run with each side pinned to its own CPU (PIN=0: not; see
# "Quiet rounds" below).
#
# Usage: tests/bench/bench.sh   (./dev bench builds natter first)
#   QUICK=1     a quick check: BYTES=256M ROUNDS=3 BUSY_ROUNDS=1, short
#               latency and integrity phases (about a minute)
#   BYTES=2G ROUNDS=5 BUSY_ROUNDS=3 PAR_BYTES=2G   (ROUNDS at least 3)
#   SKIP="busy par latency integrity"  leave phases out
# The NAT lab (namespaces, loss rows) is tests/bench/lab_bench.sh (root).
# Exit status: 1 when natter corrupted or lost data or could not be set
# up; else 3 when a quiet round was flagged (run it on a quiet machine);
# else 0. A baseline that cannot run is n/a.
# Everything it starts is stopped by PID on exit; files live in a temporary
# directory (tests/integration/lib.sh). It is not part of ctest.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export NATTER=${NATTER:-$REPO/build/natter}
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$REPO/tests/integration/lib.sh"
# shellcheck source-path=SCRIPTDIR source=measure.sh
. "$REPO/tests/bench/measure.sh"

if [[ -n ${QUICK:-} ]]; then
  : "${BYTES:=256M}" "${ROUNDS:=3}" "${BUSY_ROUNDS:=1}" "${PAR_BYTES:=256M}"
  : "${LAT_COUNT:=300}" "${INTEGRITY_BYTES:=64M}" "${CONN_BYTES:=256K}"
fi
BYTES=${BYTES:-2G}
ROUNDS=${ROUNDS:-5}
BUSY_ROUNDS=${BUSY_ROUNDS:-3}
PAR_BYTES=${PAR_BYTES:-2G}
LAT_COUNT=${LAT_COUNT:-1000}
INTEGRITY_BYTES=${INTEGRITY_BYTES:-512M}
CONNS=${CONNS:-100}
CONN_BYTES=${CONN_BYTES:-1M}
SKIP=${SKIP:-}
RSS_BOUND_MIB=64
for v in ROUNDS BUSY_ROUNDS LAT_COUNT CONNS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || fail "$v must be a positive integer"
done
((ROUNDS >= 3)) || fail "ROUNDS must be at least 3: one round cannot show a mode that only some runs fall into"
NBYTES=$(bench_bytes "$BYTES")
skipped() { [[ " $SKIP " == *" $1 "* ]]; }
command -v iperf3 >/dev/null || fail "iperf3 is not installed (./dev deps)"
command -v jq >/dev/null || fail "jq is not installed"

cat <<EOF
natter benchmark on loopback: iperf3, one stream of $BYTES per run, $ROUNDS
interleaved rounds, medians and every round. $(nproc) CPUs, kernel $(uname -r),
load average at start $(cut -d' ' -f1-3 /proc/loadavg) (other jobs on the
machine add noise: the CPU per GB columns are the steadier figure).
$("$NATTER" --version 2>&1 | head -1), $(ssh -V 2>&1), $(iperf3 --version | head -1)
EOF

# ---- servers and the four paths ----------------------------------------

sink_port=$(free_port)
start iperf iperf3 -s -B 127.0.0.1 -p "$sink_port"
wait_tcp_listen "$sink_port"
echo_port=$(free_port)
start_echo_server echo "$echo_port"

declare -A PORT=([direct]=$sink_port)
declare -A CPU_OF=() # path -> "label:pid label:pid"

if command -v socat >/dev/null; then
  PORT[socat]=$(free_port)
  start socat socat -b 131072 \
    "TCP-LISTEN:${PORT[socat]},bind=127.0.0.1,reuseaddr,fork" \
    "TCP:127.0.0.1:$sink_port"
  wait_tcp_listen "${PORT[socat]}"
  CPU_OF[socat]="socat:$(pid socat)"
fi

ssh_note=""
# errexit is off in the handler: under set -e, `(exit $rc)` with a non-zero
# rc (a flagged round exits 3) would end the handler before _cleanup, and
# every server of the run would be left running.
trap 'rc=$?; set +e; bench_ssh_cleanup; (exit $rc); _cleanup' EXIT
if bench_ssh_setup "$sink_port" "$echo_port"; then
  PORT[ssh]=$SSH_FWD_PORT
  CPU_OF[ssh]="ssh:$(pid sshfwd) sshd:$(pid sshd)"
else
  note "ssh -L skipped: $SSH_NOTE"
  ssh_note=$SSH_NOTE
fi

start_broker broker
start_client bob -listen -allow-peer alice
PORT[natter]=$(free_port)
nat_echo_port=$(free_port)
start_client alice "${PORT[natter]}:bob:$sink_port" "$nat_echo_port:bob:$echo_port"
iperf3 -c 127.0.0.1 -p "${PORT[natter]}" -n 16M >/dev/null 2>&1 ||
  fail "a warm-up transfer through natter failed"
wait_log alice "natter: connected to bob" 10
CPU_OF[natter]="alice:$(pid alice) bob:$(pid bob)"
bench_reset_hwm "$(pid alice)"
bench_reset_hwm "$(pid bob)"

PATHS=(direct)
for p in socat ssh natter; do [[ -n ${PORT[$p]:-} ]] && PATHS+=("$p"); done

# ---- quiet rounds ----------------------------------------------------------

# run_rounds TAG N PATH...: N interleaved rounds over the PATHs; results in
# the R_* tables under TAG (see measure.sh: bench_run).
run_rounds() {
  local tag=$1 n=$2 r p
  shift 2
  for ((r = 1; r <= n; r++)); do
    for p in "$@"; do
      bench_run "$tag" "$p" "${PORT[$p]}" "$NBYTES" 1 "${CPU_OF[$p]:-}"
    done
  done
}

# Quiet rounds with each side on its own CPU, as two machines would be:
# the client's side (iperf3 client, ssh, natter alice) on CPU 0, the
# server's (iperf3 server, socat, sshd's session, natter bob and the
# broker) on CPU 1. Left to the scheduler, the placement of these
# processes on 2 CPUs decides a whole run (in the NAT lab 1.8-4.0 Gbit/s
# for one binary; see NOTES.md). PIN=0: no pinning. The other phases run
# unpinned.
pin_sides() {
  local side0=$1 side1=$2 p
  for p in alice sshfwd; do
    [[ -n ${PIDS[$p]:-} ]] && bench_pin "$side0" "$(pid "$p")"
  done
  for p in iperf echo socat sshd bob broker; do
    [[ -n ${PIDS[$p]:-} ]] && bench_pin "$side1" "$(pid "$p")"
  done
}
if [[ $PIN == 1 ]]; then
  pin_sides 0 1
  BENCH_CLIENT=(taskset -c 0)
  note "quiet machine: $ROUNDS rounds of ${PATHS[*]}, the client's side on CPU 0, the server's on CPU 1 (PIN=0: unpinned)"
else
  note "quiet machine: $ROUNDS rounds of ${PATHS[*]}"
fi
run_rounds quiet "$ROUNDS" "${PATHS[@]}"
if [[ $PIN == 1 ]]; then
  pin_sides all all
  BENCH_CLIENT=()
fi
alice_hwm=$(bench_status_kib "$(pid alice)" VmHWM)
bob_hwm=$(bench_status_kib "$(pid bob)" VmHWM)

# ---- busy machine -----------------------------------------------------------

BUSY_PATHS=()
if ! skipped busy; then
  for p in direct ssh natter; do [[ -n ${PORT[$p]:-} ]] && BUSY_PATHS+=("$p"); done
  start hog taskset -c 0 bash -c 'while :; do :; done'
  note "busy machine (a CPU hog on CPU 0): $BUSY_ROUNDS rounds of ${BUSY_PATHS[*]}"
  run_rounds busy "$BUSY_ROUNDS" "${BUSY_PATHS[@]}"
  stop hog
fi

# ---- 8 parallel streams -----------------------------------------------------

PAR_PATHS=()
if ! skipped par; then
  for p in direct ssh natter; do [[ -n ${PORT[$p]:-} ]] && PAR_PATHS+=("$p"); done
  note "8 parallel streams of $PAR_BYTES in all: ${PAR_PATHS[*]}"
  for p in "${PAR_PATHS[@]}"; do
    bench_run par "$p" "${PORT[$p]}" "$(bench_bytes "$PAR_BYTES")" 8 "${CPU_OF[$p]:-}"
  done
fi

# ---- latency under a bulk transfer ------------------------------------------

declare -A LAT=()
if ! skipped latency; then
  note "latency: $LAT_COUNT 64-byte echo round trips beside a bulk stream"
  LAT[direct]=$(bench_latency "$echo_port" "$sink_port" "$LAT_COUNT")
  [[ -n ${PORT[ssh]:-} ]] &&
    LAT[ssh]=$(bench_latency "$SSH_ECHO_PORT" "${PORT[ssh]}" "$LAT_COUNT")
  LAT[natter]=$(bench_latency "$nat_echo_port" "${PORT[natter]}" "$LAT_COUNT")
  LAT[natter_idle]=$(bench_latency "$nat_echo_port" "" "$LAT_COUNT")
fi

# ---- integrity, concurrency, broker traffic ----------------------------------

natter_failed=()
integrity="skipped" cc_verdict="skipped" alice2_hwm=0 bob2_hwm=0
if ! skipped integrity; then
  sha_port=$(free_port)
  start_sink_server sha "$sha_port"
  nat_sha_port=$(free_port)
  cc_port=$(free_port)
  start_client bob2 -listen -allow-peer alice2
  start_client alice2 "$nat_sha_port:bob2:$sha_port" "$cc_port:bob2:$echo_port"
  ib=$(bench_bytes "$INTEGRITY_BYTES")
  out=$(timeout 300 "$TCPCHECK" send "$nat_sha_port" --bytes "$ib" --timeout 280 2>&1) ||
    natter_failed+=("sha256 stream: $out")
  integrity="${INTEGRITY_BYTES} stream: $(sed -n 's/.*gbps=\([0-9.]*\).*/sha256 ok, \1 Gbit\/s with hashing/p' <<<"$out")"
  if cc_out=$(timeout 300 "$TCPCHECK" echo-check "$cc_port" --conns "$CONNS" \
    --bytes "$CONN_BYTES" --timeout 280 2>&1); then
    cc_verdict="all $CONNS verified"
  else
    cc_verdict="FAILED"
    natter_failed+=("echo-check: $cc_out")
  fi
    alice2_hwm=$(bench_status_kib "$(pid alice2)" VmHWM)
    bob2_hwm=$(bench_status_kib "$(pid bob2)" VmHWM)
fi

# ---- the table -----------------------------------------------------------------

echo
printf '==== natter bench: loopback, iperf3, %s per stream; medians of the rounds ====\n' "$BYTES"
bench_table quiet "quiet machine ($ROUNDS rounds$([[ $PIN == 1 ]] && echo ", each side on its own CPU"))" "${PATHS[@]}"
[[ -n ${PORT[ssh]:-} ]] && bench_rounds quiet ssh 0.9 1.0
quiet_flagged=$BENCH_FLAGGED
if ((${#BUSY_PATHS[@]})); then
  bench_table busy "busy machine: CPU hog on CPU 0 ($BUSY_ROUNDS rounds)" "${BUSY_PATHS[@]}"
  [[ -n ${PORT[ssh]:-} ]] && bench_rounds busy ssh 0.9 1.0
fi
((${#PAR_PATHS[@]})) &&
  bench_table par "8 parallel streams, $PAR_BYTES in all (1 run)" "${PAR_PATHS[@]}"
[[ -n $ssh_note ]] && echo "ssh -L: n/a ($ssh_note)"
printf '\nnatter peak RSS over the rounds: alice %s MiB, bob %s MiB\n' \
  "$(bench_mib "$alice_hwm")" "$(bench_mib "$bob_hwm")"
if ! skipped latency; then
  printf '\n64-byte echo round trips, microseconds (first = connect() to the first echo):\n'
  printf '  %-34s %s\n' "direct, beside a direct bulk stream" "${LAT[direct]}"
  [[ -n ${LAT[ssh]:-} ]] && printf '  %-34s %s\n' "ssh -L, beside bulk on the same ssh" "${LAT[ssh]}"
  printf '  %-34s %s\n' "natter, beside bulk on the same QUIC" "${LAT[natter]}"
  printf '  %-34s %s\n' "natter, idle connection" "${LAT[natter_idle]}"
fi
if ! skipped integrity; then
  within() { (($1 <= RSS_BOUND_MIB * 1024)) && echo ok || echo OVER; }
  printf '\nintegrity: %s\n' "$integrity"
  printf '%s echo connections x %s each way: %s; peak RSS alice %s MiB (%s), bob %s MiB (%s), bound %s MiB\n' \
    "$CONNS" "$CONN_BYTES" "$cc_verdict" "$(bench_mib "$alice2_hwm")" "$(within "$alice2_hwm")" \
    "$(bench_mib "$bob2_hwm")" "$(within "$bob2_hwm")" "$RSS_BOUND_MIB"
  stop alice2
  stop bob2
  stop alice
  stop bob
  stop broker
  traffic=$(grep -m1 'natter: broker traffic' "$WORK/broker.log" || true)
  if [[ $traffic =~ received\ ([0-9]+)\ bytes,\ sent\ ([0-9]+)\ bytes ]]; then
    printf 'broker traffic: received %s, sent %s bytes over the whole run\n' \
      "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  fi
fi
if ((${#natter_failed[@]})); then
  printf '\nFAIL: natter lost or corrupted data:\n' >&2
  printf '  %s\n' "${natter_failed[@]}" >&2
  show_logs
  exit 1
fi
if ((quiet_flagged > 0)); then
  printf '\nREGRESSION: %s quiet round(s) of natter below 0.9x ssh -L or above its CPU per GB (above); on a quiet machine that is a slow path in natter\n' \
    "$quiet_flagged" >&2
  exit 3
fi
