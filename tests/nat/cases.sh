# shellcheck shell=bash
# Runs a list of NAT-lab cases, each `lab.sh ARGS` in a fresh lab with its
# own namespace prefix; sourced by test_nat.sh and test_portmap.sh, which
# set, before they source it:
#   CASES         "NAME|ARGS of lab.sh" per case
#   CASE_TIMEOUT  seconds a case may take
#   RUN_NAME      the summary's title and the temporary directory's name
# and then call `nat_run_cases "$@"` (the command line's case numbers, or
# none for all). Needs root (network namespaces): exits 77 (ctest:
# skipped) where they are refused. Each case prints PASS or FAIL with its
# timings; a failed case prints its natter -v logs; the last line is
# "N passed, N failed", and the exit status says whether all passed.

: "${NATTER:?set NATTER to the natter binary (ctest does this)}"
NATTER=$(realpath "$NATTER")
export NATTER
LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lab.sh

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
  echo "SKIP: python3 (the lab's tools) not found"
  exit 77
}
# Namespaces of lab runs that died without cleaning up (e.g. SIGKILLed).
bash "$LAB" cleanup

current_pid=""
nat_on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $current_pid ]] && kill -0 "$current_pid" 2>/dev/null; then
    kill -TERM "$current_pid" 2>/dev/null
    wait "$current_pid" 2>/dev/null
  fi
  # Whatever a killed case left behind (its trap normally removes it all).
  bash "$LAB" cleanup --prefix "ntlab-$$-" >/dev/null 2>&1 || true
  [[ -n ${WORK:-} ]] && rm -rf "$WORK"
  exit "$rc"
}
trap nat_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d "${TMPDIR:-/tmp}/natter-$RUN_NAME.XXXXXX")
# Run a snapshot of the binaries, so that a rebuild during the run (a few
# minutes) cannot swap them under a case.
TCPCHECK=${TCPCHECK:-$(dirname "$NATTER")/tests/tools/tcpcheck}
NATTER_HOSTILE=${NATTER_HOSTILE:-$(dirname "$NATTER")/natter-hostile}
mkdir -p "$WORK/bin"
if ! cp "$NATTER" "$WORK/bin/natter" || ! cp "$TCPCHECK" "$WORK/bin/tcpcheck"; then
  echo "FAIL: cannot copy $NATTER and $TCPCHECK"
  exit 1
fi
export NATTER=$WORK/bin/natter TCPCHECK=$WORK/bin/tcpcheck
# The man-in-the-middle relay case runs natter-hostile as the broker.
if [[ -x $NATTER_HOSTILE ]] && cp "$NATTER_HOSTILE" "$WORK/bin/natter-hostile"; then
  export NATTER_HOSTILE=$WORK/bin/natter-hostile
fi

# nat_selected N [WANT...]: true if case N is among the WANTs.
nat_selected() {
  local n=$1 want
  shift
  for want in "$@"; do [[ $want == "$n" ]] && return 0; done
  return 1
}

nat_run_cases() {
  local passed=0 failed=0 n=0 t_all=$SECONDS entry name out prefix t0 rc
  local secs leftover result line ns
  local -a args summary=()
  for entry in "${CASES[@]}"; do
    n=$((n + 1))
    name=${entry%%|*}
    read -r -a args <<<"${entry#*|}"
    if (($# > 0)) && ! nat_selected "$n" "$@"; then
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
    secs=$((SECONDS - t0))
    leftover=$(ip netns list | awk '{print $1}' | grep "^$prefix" | tr '\n' ' ')
    if [[ -n $leftover ]]; then
      ((rc)) || rc=1
      echo "case $n left namespaces behind: $leftover" >>"$out"
      for ns in $leftover; do ip netns del "$ns"; done
    fi
    if [[ ${args[0]} == check ]]; then
      result=$(grep -E '^r[ab] \(' "$out" | tr '\n' ' ')
    else
      result=$(sed -n 's/^RESULT: [^:]*: //p' "$out" | tail -n1)
    fi
    if ((rc == 0)); then
      passed=$((passed + 1))
      line="PASS: $name (${secs} s): $result"
      # A clean failure where a direct connection was possible is worth a note.
      [[ ${args[*]} == *"--expect either"* && $result == "clean failure"* ]] &&
        line+=" [NOTE: no direct connection]"
    else
      failed=$((failed + 1))
      ((rc == 124)) && result="timed out after $CASE_TIMEOUT s"
      line="FAIL: $name (${secs} s, exit $rc): ${result:-$(grep -m1 -E 'FAIL|error' "$out")}"
      echo "----- output of case $n -----"
      cat "$out"
      echo "----- end of case $n -----"
    fi
    echo "$line"
    summary+=("$line")
  done

  echo
  echo "$RUN_NAME summary ($((SECONDS - t_all)) s):"
  printf '  %s\n' "${summary[@]}"
  left=$(ip netns list | awk '{print $1}' | grep "^ntlab-$$-" | tr '\n' ' ')
  [[ -z $left ]] || echo "note: namespaces of this run present after it: $left"
  echo "$passed passed, $failed failed"
  ((failed == 0))
}
