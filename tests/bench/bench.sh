#!/usr/bin/env bash
# natter benchmark, loopback only: one TCP stream of BYTES (default 1G =
# 1 GiB) sent to a tcpcheck sink-server through
#   (a) nothing (direct TCP),
#   (b) socat (TCP-LISTEN -> TCP),
#   (c) ssh -L (aes128-gcm@openssh.com) to a private sshd started here,
#   (d) natter (broker + bob -listen + alice forwarding a port to bob),
# best of RUNS (default 3) runs each, in Gbit/s, and natter's ratio to each.
# Also natter's peak RSS (VmHWM) and CPU time (utime+stime) during the
# stream; then 100 concurrent echo connections through natter (peak RSS
# against the 64 MiB bound, all verified or not); then the bytes the broker
# saw per tunnel byte.
#
# Usage: tests/bench/bench.sh   (./dev bench builds natter first)
#   BYTES=256M  stream size (tcpcheck suffixes K, M, G = powers of 1024)
#   RUNS=3      runs per throughput measurement (the best is reported)
#   CONNS=100 CONN_BYTES=1M  the concurrency phase
# Exit status: 0 unless natter corrupted or lost data (a sha256 or echo
# mismatch), or natter could not be set up. The numbers never fail it; a
# baseline that cannot run (e.g. no sshd) is reported as n/a.
#
# Everything it starts is stopped by PID on exit and its files live in a
# temporary directory (tests/integration/lib.sh). It is not part of ctest.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export NATTER=${NATTER:-$REPO/build/natter}
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$REPO/tests/integration/lib.sh"

BYTES=${BYTES:-1G}
RUNS=${RUNS:-3}
CONNS=${CONNS:-100}
CONN_BYTES=${CONN_BYTES:-1M}
RSS_BOUND_MIB=64
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || fail "RUNS must be a positive integer"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || fail "CONNS must be a positive integer"

# to_bytes SIZE: SIZE with an optional K/M/G suffix (powers of 1024).
to_bytes() {
  local v=$1 n mult=1
  [[ $v =~ ^([0-9]+)([KkMmGg]?)$ ]] || fail "bad size '$v' (want N, NK, NM or NG)"
  n=${BASH_REMATCH[1]}
  case ${BASH_REMATCH[2]} in
  K | k) mult=1024 ;;
  M | m) mult=$((1024 * 1024)) ;;
  G | g) mult=$((1024 * 1024 * 1024)) ;;
  esac
  echo $((n * mult))
}
NBYTES=$(to_bytes "$BYTES")
NCONN_BYTES=$(to_bytes "$CONN_BYTES")
# Generous deadline per transfer: 60 s plus 1 s per 20 MB (a 1 MB/s floor
# would be pointless; this still bounds every wait).
SEND_TIMEOUT=$((60 + NBYTES / 20000000))
CLK_TCK=$(getconf CLK_TCK)

note() { printf '%s\n' "$*" >&2; }

# wait_listen PORT [TIMEOUT_S=10]: wait until something listens on TCP
# 127.0.0.1:PORT. Returns 1 on timeout (does not fail the script).
wait_listen() {
  local port=$1 timeout=${2:-10} deadline
  deadline=$(($(_now_ms) + timeout * 1000))
  while (($(_now_ms) < deadline)); do
    ss -Htln "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  return 1
}

# cpu_ticks PID: utime+stime of PID in clock ticks (0 if gone).
cpu_ticks() {
  local stat f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
    echo 0
    return
  }
  read -ra f <<<"${stat##*) }"
  # After "pid (comm) ": f[0] is field 3 (state); utime, stime are 14, 15.
  echo $((f[11] + f[12]))
}

# status_kib PID FIELD: a kB field (VmHWM, VmRSS) of /proc/PID/status.
status_kib() {
  awk -v k="$2:" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' \
    "/proc/$1/status" 2>/dev/null || echo 0
}

# Resets VmHWM to the current RSS (Linux >= 4.0; we own the process).
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# best_of NAME PORT: RUNS sends of NBYTES to the sink through 127.0.0.1:PORT.
# Sets BEST (Gbit/s, or "n/a" if no run succeeded), ALL (each run's figure),
# BAD (runs whose sha256 did not match or that failed), and for the best run
# BEST_SECONDS and, if CPU_PIDS is set, BEST_CPU (ticks per PID, in order).
CPU_PIDS=()
best_of() {
  local name=$1 port=$2 i g s out before after p rc
  BEST=n/a ALL="" BAD=0 BEST_SECONDS="" BEST_CPU=()
  for ((i = 1; i <= RUNS; i++)); do
    before=()
    for p in "${CPU_PIDS[@]}"; do before+=("$(cpu_ticks "$p")"); done
    rc=0
    out=$(timeout --kill-after=5 $((SEND_TIMEOUT + 10)) "$TCPCHECK" send \
      "$port" --bytes "$NBYTES" --timeout "$SEND_TIMEOUT" 2>&1) || rc=$?
    after=()
    for p in "${CPU_PIDS[@]}"; do after+=("$(cpu_ticks "$p")"); done
    if ((rc != 0)) || [[ ! $out =~ gbps=([0-9.]+) ]]; then
      note "  $name run $i: FAILED (status $rc): $out"
      BAD=$((BAD + 1))
      ALL+="${ALL:+ }fail"
      continue
    fi
    g=${BASH_REMATCH[1]}
    [[ $out =~ seconds=([0-9.]+) ]] && s=${BASH_REMATCH[1]}
    note "  $name run $i: $g Gbit/s ($s s)"
    ALL+="${ALL:+ }$g"
    if [[ $BEST == n/a ]] || awk -v a="$g" -v b="$BEST" 'BEGIN { exit !(a > b) }'; then
      BEST=$g BEST_SECONDS=$s BEST_CPU=()
      for ((p = 0; p < ${#CPU_PIDS[@]}; p++)); do
        BEST_CPU+=($((after[p] - before[p])))
      done
    fi
  done
}

ratio() { # ratio A B: A/B to 2 decimals, or n/a
  [[ $1 == n/a || $2 == n/a ]] && {
    echo n/a
    return
  }
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

natter_failed=()

cat <<EOF
natter benchmark on loopback: one stream of $NBYTES bytes ($BYTES) per run,
$RUNS runs per path, the best run reported (Gbit/s = bytes*8 / seconds from
connect to the sink's sha256 reply; tcpcheck generates and hashes the data,
the sink hashes it too, identically for every path).
$(nproc) CPUs, kernel $(uname -r), $("$NATTER" --version 2>&1 | head -1)
EOF

# ---- sink and (a) direct TCP ---------------------------------------------

sink_port=$(free_port)
start_sink_server sink "$sink_port"
note "(a) direct TCP to the sink on 127.0.0.1:$sink_port"
best_of direct "$sink_port"
direct_best=$BEST direct_all=$ALL

# ---- (b) socat -------------------------------------------------------------

socat_best=n/a socat_all=""
if command -v socat >/dev/null; then
  socat_port=$(free_port)
  # -b 131072: socat's default 8 KiB copy blocks would understate it.
  start socat socat -b 131072 -t 30 \
    "TCP-LISTEN:$socat_port,bind=127.0.0.1,reuseaddr,fork" \
    "TCP:127.0.0.1:$sink_port"
  if wait_listen "$socat_port"; then
    note "(b) socat -b 131072 TCP-LISTEN:$socat_port -> TCP:127.0.0.1:$sink_port"
    best_of socat "$socat_port"
    socat_best=$BEST socat_all=$ALL
  else
    note "(b) socat did not listen on $socat_port: skipped"
  fi
  stop socat
else
  note "(b) socat not installed: skipped"
fi

# ---- (c) ssh -L --------------------------------------------------------------

ssh_best=n/a ssh_all="" ssh_note=""
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
CREATED_PRIVSEP=""
cleanup_privsep() {
  [[ -n $CREATED_PRIVSEP ]] && rmdir "$CREATED_PRIVSEP" 2>/dev/null
  CREATED_PRIVSEP=""
  return 0
}
# lib.sh's _cleanup stops every process and removes $WORK; run it last.
trap 'rc=$?; cleanup_privsep; (exit $rc); _cleanup' EXIT
setup_ssh() {
  local d=$WORK/ssh user
  user=$(id -un)
  [[ -x $SSHD ]] || {
    ssh_note="sshd not installed"
    return 1
  }
  command -v ssh >/dev/null || {
    ssh_note="ssh not installed"
    return 1
  }
  mkdir -p "$d" && chmod 700 "$d"
  ssh-keygen -q -t ed25519 -N '' -f "$d/host_ed25519" </dev/null || return 1
  ssh-keygen -q -t ed25519 -N '' -f "$d/id_ed25519" </dev/null || return 1
  cp "$d/id_ed25519.pub" "$d/authorized_keys" && chmod 600 "$d/authorized_keys"
  ssh_port=$(free_port)
  cat >"$d/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $d/host_ed25519
AuthorizedKeysFile $d/authorized_keys
PidFile none
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
AllowTcpForwarding yes
Ciphers aes128-gcm@openssh.com
Compression no
UseDNS no
LogLevel ERROR
EOF
  # As root, sshd wants its privilege separation directory.
  if ((EUID == 0)) && [[ ! -d /run/sshd ]]; then
    mkdir -m 755 /run/sshd && CREATED_PRIVSEP=/run/sshd
  fi
  if ! "$SSHD" -t -f "$d/sshd_config" >"$d/sshd-t.out" 2>&1; then
    ssh_note="sshd -t: $(head -1 "$d/sshd-t.out")"
    return 1
  fi
  start sshd "$SSHD" -D -e -f "$d/sshd_config"
  wait_listen "$ssh_port" || {
    ssh_note="sshd did not listen"
    return 1
  }
  ssh_fwd_port=$(free_port)
  start sshfwd ssh -F /dev/null -N -T -p "$ssh_port" -i "$d/id_ed25519" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes \
    -o LogLevel=ERROR -c aes128-gcm@openssh.com \
    -L "127.0.0.1:$ssh_fwd_port:127.0.0.1:$sink_port" "$user@127.0.0.1"
  wait_listen "$ssh_fwd_port" 15 || {
    ssh_note="ssh -L did not come up: $(tail -1 "$WORK/sshfwd.log" 2>/dev/null)"
    return 1
  }
}
if setup_ssh; then
  note "(c) ssh -c aes128-gcm@openssh.com -L $ssh_fwd_port:127.0.0.1:$sink_port via sshd on $ssh_port"
  best_of ssh "$ssh_fwd_port"
  ssh_best=$BEST ssh_all=$ALL
else
  note "(c) ssh -L skipped: $ssh_note"
fi
[[ -n ${PIDS[sshfwd]:-} ]] && stop sshfwd
[[ -n ${PIDS[sshd]:-} ]] && stop sshd
cleanup_privsep

# ---- (d) natter -------------------------------------------------------------

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker
start_client bob -listen -allow-peer alice
nat_port=$(free_port)
start_client alice "$nat_port:bob:$sink_port"
tunnel_bytes=0
# Warm up: brings the QUIC connection up so the runs measure the data path.
warm=$(timeout 40 "$TCPCHECK" send "$nat_port" --bytes 1M --timeout 30 2>&1) ||
  fail "a 1 MiB warm-up transfer through natter failed: $warm"
tunnel_bytes=$((tunnel_bytes + 1048576))
wait_log alice "natter: connected to bob" 10
alice_pid=$(pid alice) bob_pid=$(pid bob)
reset_hwm "$alice_pid"
reset_hwm "$bob_pid"
note "(d) natter: alice 127.0.0.1:$nat_port -> bob -> 127.0.0.1:$sink_port"
CPU_PIDS=("$alice_pid" "$bob_pid")
best_of natter "$nat_port"
CPU_PIDS=()
natter_best=$BEST natter_all=$ALL natter_seconds=$BEST_SECONDS
tunnel_bytes=$((tunnel_bytes + (RUNS - BAD) * NBYTES))
((BAD == 0)) || natter_failed+=("$BAD of $RUNS streams failed the sha256 check")
alice_cpu=n/a bob_cpu=n/a
if [[ $natter_best != n/a ]]; then
  alice_cpu=$(awk -v t="${BEST_CPU[0]}" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }')
  bob_cpu=$(awk -v t="${BEST_CPU[1]}" -v h="$CLK_TCK" 'BEGIN { printf "%.2f", t / h }')
fi
alice_hwm1=$(status_kib "$alice_pid" VmHWM)
bob_hwm1=$(status_kib "$bob_pid" VmHWM)

# ---- concurrency: CONNS echo connections through natter ---------------------

# A fresh pair, so the peak RSS is that of this phase alone (clear_refs may
# be unavailable), on the same broker.
stop alice
stop bob
start_client bob2 -listen -allow-peer alice2
cc_port=$(free_port)
start_client alice2 "$cc_port:bob2:$echo_port"
warm=$(printf 'warm-up\n' | timeout 40 socat -t 10 - "TCP:127.0.0.1:$cc_port" 2>&1) ||
  fail "a warm-up echo through natter failed: $warm"
tunnel_bytes=$((tunnel_bytes + 2 * 8))
wait_log alice2 "natter: connected to bob2" 10
alice2_pid=$(pid alice2) bob2_pid=$(pid bob2)
note "concurrency: $CONNS connections x $NCONN_BYTES bytes each way through natter"
cc_rc=0
cc_start=$(_now_ms)
cc_out=$(timeout --kill-after=5 $((SEND_TIMEOUT + 60)) "$TCPCHECK" echo-check \
  "$cc_port" --conns "$CONNS" --bytes "$NCONN_BYTES" \
  --timeout $((SEND_TIMEOUT + 50)) 2>&1) || cc_rc=$?
cc_ms=$(($(_now_ms) - cc_start))
alice_hwm2=$(status_kib "$alice2_pid" VmHWM)
bob_hwm2=$(status_kib "$bob2_pid" VmHWM)
if ((cc_rc == 0)); then
  cc_verdict="all $CONNS verified"
  tunnel_bytes=$((tunnel_bytes + 2 * CONNS * NCONN_BYTES))
else
  cc_verdict="FAILED: $(tail -1 <<<"$cc_out")"
  natter_failed+=("echo-check: $cc_out")
fi
note "  $cc_verdict in $cc_ms ms"
stop alice2
stop bob2

# ---- broker traffic -------------------------------------------------------------

stop broker
traffic=$(grep -m1 'natter: broker traffic' "$WORK/broker.log" || true)
broker_rx=n/a broker_tx=n/a broker_ratio=n/a
if [[ $traffic =~ received\ ([0-9]+)\ bytes,\ sent\ ([0-9]+)\ bytes ]]; then
  broker_rx=${BASH_REMATCH[1]} broker_tx=${BASH_REMATCH[2]}
  broker_ratio=$(awk -v b=$((broker_rx + broker_tx)) -v t="$tunnel_bytes" \
    'BEGIN { printf "%.2e", b / t }')
fi

# ---- summary ----------------------------------------------------------------------

within() { (($1 <= RSS_BOUND_MIB * 1024)) && echo ok || echo OVER; }
printf '\n==== natter bench summary (%s bytes per stream, best of %s runs) ====\n' \
  "$NBYTES" "$RUNS"
printf '%-24s %10s   %-8s %s\n' "path" "Gbit/s" "natter/x" "all runs (Gbit/s)"
printf '%-24s %10s   %-8s %s\n' "(a) direct TCP" "$direct_best" \
  "$(ratio "$natter_best" "$direct_best")" "$direct_all"
printf '%-24s %10s   %-8s %s\n' "(b) socat" "$socat_best" \
  "$(ratio "$natter_best" "$socat_best")" "$socat_all"
printf '%-24s %10s   %-8s %s\n' "(c) ssh -L aes128-gcm" "$ssh_best" \
  "$(ratio "$natter_best" "$ssh_best")" "${ssh_all:-$ssh_note}"
printf '%-24s %10s   %-8s %s\n' "(d) natter" "$natter_best" "1.00" "$natter_all"
printf '\nnatter, best stream (%s s): CPU time alice %s s, bob %s s;' \
  "${natter_seconds:-n/a}" "$alice_cpu" "$bob_cpu"
printf ' peak RSS alice %s MiB, bob %s MiB\n' "$(mib "$alice_hwm1")" "$(mib "$bob_hwm1")"
printf 'natter, %s concurrent echo connections x %s bytes: %s (%s ms);\n' \
  "$CONNS" "$NCONN_BYTES" "$cc_verdict" "$cc_ms"
printf '  peak RSS alice %s MiB (%s), bob %s MiB (%s); bound %s MiB\n' \
  "$(mib "$alice_hwm2")" "$(within "$alice_hwm2")" \
  "$(mib "$bob_hwm2")" "$(within "$bob_hwm2")" "$RSS_BOUND_MIB"
printf 'broker traffic: received %s, sent %s bytes for %s tunnel bytes: ratio %s\n' \
  "$broker_rx" "$broker_tx" "$tunnel_bytes" "$broker_ratio"

if ((${#natter_failed[@]})); then
  printf '\nFAIL: natter lost or corrupted data:\n' >&2
  printf '  %s\n' "${natter_failed[@]}" >&2
  show_logs
  exit 1
fi
printf '\nnatter integrity: every stream matched its sha256, every echo verified\n'
