# Helpers shared by the install and example tests (sourced, not run).

say() { printf '==> %s\n' "$*" >&2; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

# tcp_port_free PORT: nothing on this host uses TCP PORT (as a local or
# remote port: being conservative only costs a retry).
tcp_port_free() {
  local hex
  hex=$(printf ':%04X ' "$1")
  ! grep -qi -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pick_port_pair: prints a PORT such that PORT and PORT+1 look free.
pick_port_pair() {
  local p i
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + (RANDOM * 2) % 40000))
    if tcp_port_free "$p" && tcp_port_free $((p + 1)); then
      echo "$p"
      return 0
    fi
  done
  fail "no free TCP port pair found"
}

# run_logged LOG COMMAND...: runs COMMAND with its output in LOG; prints
# LOG when COMMAND fails. Returns COMMAND's status.
run_logged() {
  local log=$1 rc=0
  shift
  "$@" >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    printf -- '--- output of %s (status %d):\n' "$*" "$rc" >&2
    cat "$log" >&2
    printf -- '---\n' >&2
  fi
  return "$rc"
}

# run_echo ECHO_BINARY [ENV=VALUE...]: runs the echo example on free ports
# (its echo servers take any free port), retrying when a forward port was
# taken in between (exit status 3).
run_echo() {
  local bin=$1 base rc try log
  shift
  log=$(mktemp)
  for try in 1 2 3; do
    base=$(pick_port_pair)
    rc=0
    run_logged "$log" env "$@" timeout 30 "$bin" 0 "$base" || rc=$?
    [[ $rc -ne 3 ]] && break
    say "forward ports $base-$((base + 1)) taken meanwhile; again"
  done
  [[ $rc -ne 0 ]] || tail -n 1 "$log" >&2
  rm -f "$log"
  [[ $rc -eq 0 ]] || fail "$bin exited with status $rc"
}

# run_check SIMPLE_BINARY [ENV=VALUE...]: runs simple_c/simple_cpp --check
# with a free local port.
run_check() {
  local bin=$1 rc=0 log
  shift
  log=$(mktemp)
  run_logged "$log" env "$@" timeout 30 "$bin" --check "$(pick_port_pair)" ||
    rc=$?
  [[ $rc -ne 0 ]] || grep '^simple_' "$log" | tail -n 1 >&2 || true
  rm -f "$log"
  [[ $rc -eq 0 ]] || fail "$bin --check exited with status $rc"
}
