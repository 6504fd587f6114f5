# shellcheck shell=bash
# Measurement helpers shared by bench.sh (loopback) and lab_bench.sh (the
# NAT lab): iperf3 runs with the CPU time of the forwarding processes, the
# medians table, latency probes, and a private sshd for the ssh -L rows.
# Sourced after tests/integration/lib.sh (start, stop, pid, free_port).
# Results live in associative arrays keyed "TAG,PATH" (TAG: a group of
# rows such as quiet or busy; PATH: direct, socat, ssh, natter, raw, ...).

declare -A R_GBPS=()  # TAG,PATH -> Gbit/s of each run, space separated
declare -A R_CPU=()   # TAG,PATH,LABEL -> CPU s per GB of each run
declare -A R_LABELS=() # TAG,PATH -> the CPU labels, space separated
declare -A R_FAIR=()  # TAG,PATH -> slowest/fastest stream of each run
BENCH_CLK_TCK=$(getconf CLK_TCK)
# Run prefix for the iperf3 client (the lab runs it in alice's namespace).
BENCH_CLIENT=()
BENCH_HOST=127.0.0.1

note() { printf '%s\n' "$*" >&2; }

# Each side of a path on its own CPU, as on two machines (bench.sh and
# lab_bench.sh say why). PIN=0 turns it off; so does a one-CPU machine.
PIN=${PIN:-1}
if [[ $PIN == 1 ]] && (($(nproc) < 2)); then
  note "pinning: one CPU only, left to the scheduler"
  PIN=0
fi

# bench_pin CPU PID...: each PID, its threads and its descendants on CPU
# ("all": every CPU again). Nothing when PIN is not 1. A PID that is gone
# fails the run; a descendant that exited meanwhile does not.
bench_pin() {
  local cpu=$1 p
  shift
  [[ $PIN == 1 ]] || return 0
  [[ $cpu == all ]] && cpu=0-$(($(nproc) - 1))
  for p in "$@"; do
    taskset -acp "$cpu" "$p" >/dev/null || fail "taskset -acp $cpu $p failed"
    _bench_pin_children "$cpu" "$p"
  done
}
_bench_pin_children() {
  local c
  for c in $(pgrep -P "$2"); do
    taskset -acp "$1" "$c" >/dev/null 2>&1 && _bench_pin_children "$1" "$c"
  done
}

# bench_bytes SIZE: SIZE with an optional K/M/G suffix (powers of 1024).
bench_bytes() {
  local v=$1 mult=1
  [[ $v =~ ^([0-9]+)([KkMmGg]?)$ ]] || fail "bad size '$v' (want N, NK, NM or NG)"
  case ${BASH_REMATCH[2]} in
  K | k) mult=1024 ;;
  M | m) mult=$((1024 * 1024)) ;;
  G | g) mult=$((1024 * 1024 * 1024)) ;;
  esac
  echo $((BASH_REMATCH[1] * mult))
}

# bench_tree_ticks PID: utime+stime of PID and every live descendant, plus
# the time of the children they reaped (cutime+cstime), in clock ticks.
bench_tree_ticks() {
  local root=$1 pids p total=0 f stat
  pids=$(ps -e -o pid=,ppid= | awk -v r="$root" '
    { parent[$1] = $2; n++; id[n] = $1 }
    END {
      for (i = 1; i <= n; i++) {
        p = id[i]
        while (p != "" && p != 0 && p != 1) {
          if (p == r) { print id[i]; break }
          p = parent[p]
        }
      }
    }')
  for p in $pids; do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -ra f <<<"${stat##*) }"
    # After "pid (comm) ": f[11..14] are utime, stime, cutime, cstime.
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$total"
}

bench_status_kib() {
  awk -v k="$2:" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' \
    "/proc/$1/status" 2>/dev/null || echo 0
}
# Resets VmHWM to the current RSS (Linux >= 4.0; we own the process).
bench_reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
bench_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# bench_run TAG PATH PORT BYTES STREAMS "LABEL:PID ...": one iperf3 client
# run of BYTES (or t:SECONDS) over STREAMS parallel connections to
# BENCH_HOST:PORT, with the CPU time of each LABEL's process tree over the
# run (per GB that arrived).
bench_run() {
  local tag=$1 path=$2 port=$3 bytes=$4 streams=$5 spec=$6 item out rc=0
  local -a labels=() pids=() before=() after=()
  for item in $spec; do
    labels+=("${item%%:*}")
    pids+=("${item#*:}")
  done
  for item in "${pids[@]}"; do before+=("$(bench_tree_ticks "$item")"); done
  local -a amount=(-n "$bytes")
  [[ $bytes == t:* ]] && amount=(-t "${bytes#t:}")
  out=$(timeout 300 "${BENCH_CLIENT[@]}" iperf3 -c "$BENCH_HOST" -p "$port" \
    "${amount[@]}" -P "$streams" -J 2>&1) || rc=$?
  for item in "${pids[@]}"; do after+=("$(bench_tree_ticks "$item")"); done
  local key="$tag,$path" got bps fair i
  got=$(jq -r '.end.sum_received.bytes // empty' <<<"$out" 2>/dev/null) || got=""
  bps=$(jq -r '.end.sum_received.bits_per_second // empty' <<<"$out" 2>/dev/null) || bps=""
  if ((rc != 0)) || [[ -z $got || -z $bps ]]; then
    note "  $tag $path: FAILED (status $rc): $(jq -r '.error // empty' <<<"$out" 2>/dev/null | head -1)"
    R_GBPS[$key]+="fail "
    # Keep the CPU columns aligned with the runs (bench_rounds).
    R_LABELS[$key]="${labels[*]}"
    for item in "${labels[@]}"; do R_CPU[$key,$item]+="n/a "; done
    return 0
  fi
  local g
  g=$(awk -v b="$bps" 'BEGIN { printf "%.2f", b / 1e9 }')
  R_GBPS[$key]+="$g "
  R_LABELS[$key]="${labels[*]}"
  local cpus=""
  for ((i = 0; i < ${#pids[@]}; i++)); do
    local c
    c=$(awk -v t=$((after[i] - before[i])) -v h="$BENCH_CLK_TCK" -v b="$got" \
      'BEGIN { printf "%.3f", t / h / (b / 1e9) }')
    R_CPU[$key,${labels[i]}]+="$c "
    cpus+=" ${labels[i]} $c"
  done
  if ((streams > 1)); then
    fair=$(jq -r '[.end.streams[].receiver.bits_per_second] | (min / max * 100 | floor)' <<<"$out")
    R_FAIR[$key]+="$fair "
  fi
  note "  $tag $path: $g Gbit/s${cpus:+, CPU s/GB:$cpus}${fair:+, slowest stream $fair% of the fastest}"
}

# bench_median "V V V": the median of numbers ("fail" entries ignored), or
# n/a when there are none.
bench_median() {
  tr ' ' '\n' <<<"$1" | grep -E '^[0-9.]+$' | sort -g | awk '
    { v[++n] = $1 }
    END {
      if (!n) { print "n/a"; exit }
      m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      printf "%.2f\n", m
    }'
}

# bench_cpu_total TAG PATH: the median over runs of the summed CPU s/GB.
bench_cpu_total() {
  local key="$1,$2" l sums="" i n
  local -a cols=()
  for l in ${R_LABELS[$key]:-}; do cols+=("${R_CPU[$key,$l]}"); done
  ((${#cols[@]})) || {
    echo n/a
    return
  }
  read -ra first <<<"${cols[0]}"
  n=${#first[@]}
  for ((i = 0; i < n; i++)); do
    local s=0 c
    for c in "${cols[@]}"; do
      read -ra vals <<<"$c"
      [[ ${vals[i]:-} =~ ^[0-9.]+$ ]] || s=n/a # a failed run
      [[ $s == n/a ]] && break
      s=$(awk -v a="$s" -v b="${vals[i]}" 'BEGIN { print a + b }')
    done
    sums+="$s "
  done
  bench_median "$sums"
}

bench_ratio() {
  [[ $1 == n/a || $2 == n/a ]] && {
    echo n/a
    return
  }
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

# bench_table TAG TITLE PATH...: the rows of TAG. REF (default ssh) is the
# path natter is compared with; in the lab it is raw.
bench_table() {
  local tag=$1 title=$2 ref=${REF:-ssh} p key cpu parts l nat_g
  shift 2
  nat_g=$(bench_median "${R_GBPS[$tag,natter]:-}")
  printf '\n%s\n' "$title"
  printf '  %-8s %7s %9s  %-38s %s\n' path Gbit/s "natter/x" \
    "CPU s per GB moved (median)" "runs, Gbit/s"
  for p in "$@"; do
    key="$tag,$p"
    local g
    g=$(bench_median "${R_GBPS[$key]:-}")
    parts=""
    for l in ${R_LABELS[$key]:-}; do
      parts+="${parts:+ + }$l $(bench_median "${R_CPU[$key,$l]}")"
    done
    cpu=""
    if [[ -n $parts ]]; then
      cpu="$parts"
      [[ ${R_LABELS[$key]} == *" "* ]] && cpu+=" = $(bench_cpu_total "$tag" "$p")"
    fi
    [[ -n ${R_FAIR[$key]:-} ]] && cpu+="${cpu:+; }slowest stream $(bench_median "${R_FAIR[$key]}" | cut -d. -f1)% of fastest"
    printf '  %-8s %7s %9s  %-38s %s\n' "$p" "$g" "$(bench_ratio "$nat_g" "$g")" \
      "${cpu:--}" "${R_GBPS[$key]:-}"
  done
  if [[ -n ${R_LABELS[$tag,natter]:-} && -n ${R_LABELS[$tag,$ref]:-} ]]; then
    printf '  natter CPU per GB / %s CPU per GB: %s\n' "$ref" \
      "$(bench_ratio "$(bench_cpu_total "$tag" natter)" "$(bench_cpu_total "$tag" "$ref")")"
  fi
}

# bench_run_cpu TAG PATH I: the summed CPU s/GB of run I (1-based) of PATH
# over its labels, or n/a.
bench_run_cpu() {
  local key="$1,$2" l s=0 v
  local -a vals
  [[ -n ${R_LABELS[$key]:-} ]] || {
    echo n/a
    return
  }
  for l in ${R_LABELS[$key]}; do
    read -ra vals <<<"${R_CPU[$key,$l]}"
    v=${vals[$(($3 - 1))]:-}
    [[ $v =~ ^[0-9.]+$ ]] || {
      echo n/a
      return
    }
    s=$(awk -v a="$s" -v b="$v" 'BEGIN { print a + b }')
  done
  echo "$s"
}

# bench_rounds TAG REF MIN_RATIO [MAX_CPU_RATIO]: natter against REF round
# by round (MIN_RATIO - : shown, never flagged) (rounds are interleaved, so round I of each ran under the same
# conditions): Gbit/s and summed CPU s/GB of both, and their ratios. A
# round where natter moved less than MIN_RATIO times REF, or (when given)
# spent more than MAX_CPU_RATIO times REF's CPU per GB, is flagged; a
# failed natter run is flagged too. Every round is shown, not only the
# median: a slow mode that half the runs fall into hides behind a median.
# Adds the flagged rounds to BENCH_FLAGGED.
BENCH_FLAGGED=0
bench_rounds() {
  local tag=$1 ref=$2 min=$3 maxcpu=${4:-} i g r gr c rc cr why
  local -a nat refs
  read -ra nat <<<"${R_GBPS[$tag,natter]:-}"
  read -ra refs <<<"${R_GBPS[$tag,$ref]:-}"
  ((${#nat[@]})) || return 0
  if [[ $min == - ]]; then
    printf '  per round, natter against %s (no bound for this row):\n' "$ref"
  else
    printf '  per round, natter against %s (flagged: below %sx its Gbit/s%s):\n' \
      "$ref" "$min" "${maxcpu:+, or above ${maxcpu}x its CPU per GB}"
  fi
  printf '    %-5s %8s %8s %6s  %9s %9s %6s\n' round natter "$ref" ratio \
    "CPU natter" "CPU $ref" ratio
  local n=${#nat[@]} ok=0 rounds=0
  for ((i = 0; i < n; i++)); do
    g=${nat[i]} r=${refs[i]:-n/a}
    gr=n/a cr=n/a why=""
    [[ $g =~ ^[0-9.]+$ && $r =~ ^[0-9.]+$ ]] && gr=$(bench_ratio "$g" "$r")
    c=$(bench_run_cpu "$tag" natter $((i + 1)))
    rc=$(bench_run_cpu "$tag" "$ref" $((i + 1)))
    [[ $c != n/a && $rc != n/a ]] && cr=$(bench_ratio "$c" "$rc")
    if [[ $g == fail ]]; then
      why="natter run failed"
    elif [[ $min != - && $gr != n/a ]] && awk -v a="$gr" -v m="$min" 'BEGIN { exit !(a < m) }'; then
      why="throughput"
    fi
    if [[ -n $maxcpu && $cr != n/a ]] &&
      awk -v a="$cr" -v m="$maxcpu" 'BEGIN { exit !(a > m) }'; then
      why+="${why:+, }CPU per GB"
    fi
    rounds=$((rounds + 1))
    if [[ -n $why ]]; then
      BENCH_FLAGGED=$((BENCH_FLAGGED + 1))
    else
      ok=$((ok + 1))
    fi
    printf '    %-5s %8s %8s %6s  %9s %9s %6s  %s\n' $((i + 1)) "$g" "$r" \
      "$gr" "$c" "$rc" "$cr" "${why:+FLAGGED ($why)}"
  done
  printf '    %d of %d rounds within the bounds\n' "$ok" "$rounds"
}

# bench_latency ECHO_PORT BULK_PORT COUNT: prints "first F p50 M p99 P max
# X" (microseconds) for COUNT 64-byte round trips to 127.0.0.1:ECHO_PORT,
# while an iperf3 stream runs to BULK_PORT (none if empty).
bench_latency() {
  local echo_port=$1 bulk_port=$2 count=$3 bulk_pid="" out deadline
  if [[ -n $bulk_port ]]; then
    iperf3 -c 127.0.0.1 -p "$bulk_port" -t 60 -i 0.1 --forceflush \
      >"$WORK/bulk.log" 2>&1 &
    bulk_pid=$!
    # Wait until the bulk stream moves data (its first interval report).
    deadline=$(($(_now_ms) + 10000))
    until grep -q 'bits/sec' "$WORK/bulk.log" 2>/dev/null; do
      (($(_now_ms) < deadline)) || break
      sleep 0.05
    done
  fi
  out=$("$TCPCHECK" latency "$echo_port" --conns "$count" --bytes 64 \
    --timeout 50 2>&1) || out="failed: $out"
  if [[ -n $bulk_pid ]]; then
    kill "$bulk_pid" 2>/dev/null
    wait "$bulk_pid" 2>/dev/null
  fi
  sed -E 's/_us=/ /g' <<<"$out"
}

# ---- a private sshd and ssh -L -------------------------------------------

SSHD=$(command -v sshd || echo /usr/sbin/sshd)
BENCH_PRIVSEP=""
bench_ssh_cleanup() {
  [[ -n $BENCH_PRIVSEP ]] && rmdir "$BENCH_PRIVSEP" 2>/dev/null
  BENCH_PRIVSEP=""
  return 0
}

# shellcheck disable=SC2034 # SSH_* are for the caller
# bench_ssh_setup SINK_PORT ECHO_PORT: sshd on a free port and ssh -L
# forwarding SSH_FWD_PORT -> SINK_PORT and SSH_ECHO_PORT -> ECHO_PORT, both
# over one ssh connection. Returns 1 with SSH_NOTE set if it cannot.
bench_ssh_setup() {
  local d=$WORK/ssh user ssh_port
  user=$(id -un)
  [[ -x $SSHD ]] || {
    SSH_NOTE="sshd not installed"
    return 1
  }
  command -v ssh >/dev/null || {
    SSH_NOTE="ssh not installed"
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
  if ((EUID == 0)) && [[ ! -d /run/sshd ]]; then
    mkdir -m 755 /run/sshd && BENCH_PRIVSEP=/run/sshd
  fi
  if ! "$SSHD" -t -f "$d/sshd_config" >"$d/sshd-t.out" 2>&1; then
    SSH_NOTE="sshd -t: $(head -1 "$d/sshd-t.out")"
    return 1
  fi
  start sshd "$SSHD" -D -e -f "$d/sshd_config"
  wait_tcp_listen "$ssh_port"
  SSH_FWD_PORT=$(free_port)
  SSH_ECHO_PORT=$(free_port)
  start sshfwd ssh -F /dev/null -N -T -p "$ssh_port" -i "$d/id_ed25519" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ExitOnForwardFailure=yes \
    -o LogLevel=ERROR -c aes128-gcm@openssh.com \
    -L "127.0.0.1:$SSH_FWD_PORT:127.0.0.1:$1" \
    -L "127.0.0.1:$SSH_ECHO_PORT:127.0.0.1:$2" "$user@127.0.0.1"
  wait_tcp_listen "$SSH_FWD_PORT" 15
  wait_tcp_listen "$SSH_ECHO_PORT" 15
}
