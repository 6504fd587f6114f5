#!/usr/bin/env bash
# A hostile listener: bob runs natter-hostile (tests/hostile), whose
# listener answers hostile-* remote commands with bytes an honest natter
# never sends: a second and third exit frame (the heap overflow of issue
# 8), oversized frames, unknown channels, truncated frames, a stream with
# no exit status, out-of-range and wrong-length exit frames, output after
# the exit, a malformed StreamOpenResult and one whose message tries to
# forge a log line. alice connects to each through its own forward, in one
# process, while an honest 20 MiB echo transfer runs beside them.
# Checked:
#   - alice logs a protocol error that names bob and the violation, resets
#     that one connection, and keeps running (under ASan/UBSan in
#     build-san: no overflow, no UB)
#   - the honest transfer beside it and a new one afterwards are intact
#   - a stdin/stdout session against a hostile command exits non-zero with
#     the error on stderr
#   - log forgery both ways: the forged-message answer and a remote argv of
#     "evil\nnatter: root checked in ...\e[2J" show up escaped in alice's
#     and bob's logs, never as a second line or a raw escape sequence
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HOSTILE=${NATTER_HOSTILE:-$(dirname "$NATTER")/natter-hostile}
[[ -x $HOSTILE ]] || fail "$HOSTILE is not an executable (build natter_hostile)"

# case -> what alice must log about it
declare -A CASES=(
  [double-exit]='data after the exit status'
  [exit-then-stdout]='data after the exit status'
  [oversize]='output frame longer than 16384 bytes'
  [channel]='frame on an unknown channel'
  [truncated]='the stream ended inside a frame'
  [no-exit]='the stream ended without an exit status'
  [bad-status]='exit status out of range'
  [long-exit]='exit frame not 4 bytes long'
  [bad-result]='protocol error from bob: malformed answer'
)
# In this order: the overflow of issue 8 first.
ORDER=(double-exit exit-then-stdout oversize channel truncated no-exit
  bad-status long-exit bad-result)
FORGED=$'evil\nnatter: root checked in from 192.0.2.1\e[2J'

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker
NATTER=$HOSTILE start_client bob -listen -allow-peer alice -allow-peer carol \
  -allow-command '*'

honest_port=$(free_port)
declare -A PORTS=()
{
  echo "forward = $honest_port:bob:$echo_port"
  for c in "${ORDER[@]}" forged-message; do
    PORTS[$c]=$(free_port)
    echo "forward = ${PORTS[$c]}:bob: hostile-$c"
  done
} >"$WORK/alice.conf"
start_client alice -config "$WORK/alice.conf"
wait_log alice "forwarding 127\.0\.0\.1:$honest_port -> "
for c in "${!PORTS[@]}"; do
  wait_log alice "forwarding 127\.0\.0\.1:${PORTS[$c]} -> "
done

expect_exit_zero "$TCPCHECK" echo-check "$honest_port" --conns 2 --bytes 1M
start honest "$TCPCHECK" echo-check "$honest_port" --conns 4 --bytes 20M \
  --timeout 120

# connect PORT: one connection, read until the far end closes or resets it.
connect() {
  timeout 15 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat <&3' _ "$1" \
    >/dev/null 2>&1 || true
}

for c in "${ORDER[@]}"; do
  log "hostile-$c"
  connect "${PORTS[$c]}"
  wait_log alice "local port ${PORTS[$c]} -> bob: \(command\): .*${CASES[$c]}" 15
  running alice || fail "alice died on hostile-$c"
done

log "hostile-forged-message"
connect "${PORTS[forged-message]}"
wait_log alice "local port ${PORTS[forged-message]} -> bob: \(command\): " 15

# The honest transfer beside the attacks, and one after them.
wait_exit honest 150
((EXIT_STATUS[honest] == 0)) ||
  fail "the honest transfer beside the hostile streams failed: $(cat "$WORK/honest.log")"
expect_exit_zero "$TCPCHECK" echo-check "$honest_port" --conns 4 --bytes 2M

# A stdin/stdout session against a hostile command fails with the reason.
run_capture 30 "$NATTER" -name carol -broker "$BROKER" \
  -identity "$WORK/carol.key" :bob: hostile-double-exit
((STATUS != 0 && STATUS != 124)) ||
  fail "session against hostile-double-exit: status $STATUS; output: $OUTPUT"
assert_output_contains "^${LOG_TS}natter: .*protocol error from bob: data after the exit status"

# bob logs a forged argv escaped.
run_capture 30 "$NATTER" -name carol -broker "$BROKER" \
  -identity "$WORK/carol.key" :bob: "$FORGED"
((STATUS != 0 && STATUS != 124)) ||
  fail "session with a forged argv: status $STATUS; output: $OUTPUT"
wait_log bob 'evil\\nnatter: root checked in from 192\.0\.2\.1\\x1b\[2J'

for who in alice bob; do
  assert_log_lacks "$who" "^${LOG_TS}natter: root checked in"
  assert_log_lacks "$who" $'\e'
  assert_log_lacks "$who" 'AddressSanitizer|runtime error'
done
stop_expect_clean alice
stop_expect_clean bob
log "passed"
