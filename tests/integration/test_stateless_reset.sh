#!/usr/bin/env bash
# QUIC stateless reset (RFC 9000 §10.3) on loopback, real processes: bob
# (-listen, a fixed -port) is SIGKILLed while alice holds an interactive
# connection to him, and restarted with the same identity on the same port
# while the broker is stopped (SIGSTOP), so that nothing but the new bob's
# answer to alice's packets can tell her. Checked:
#   - alice logs within 3 s that bob answered with a stateless reset and
#     closes the held connection (her idle timeout is far longer), without
#     any word from the broker
#   - the new bob logs no error for the packets of the connection it never
#     had
#   - once the broker runs again, a new local connection reaches the new bob
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO_PORT=$(free_port)
start_echo_server echo "$ECHO_PORT"
start_broker broker
P_A=$(free_port)
P_BOB=$(free_port)

start_client bob -listen -allow-peer alice -port "$P_BOB"
start_client alice "$P_A:bob:$ECHO_PORT"

coproc HELD { socat - "TCP:127.0.0.1:$P_A"; }
line=""
printf 'before\n' >&"${HELD[1]}"
read -r -t 20 line <&"${HELD[0]}" || fail "held connection: no first echo"
[[ $line == before ]] || fail "held connection: sent 'before', got '$line'"
wait_log alice "connected to bob"

# The broker cannot tell alice anything while it is stopped.
kill -STOP "$(pid broker)"
kill -KILL "$(pid bob)"
_reap bob
t0=$(_now_ms)
start bob "$NATTER" -name bob -broker "$BROKER" -identity "$WORK/bob.key" \
  -listen -allow-peer alice -port "$P_BOB"
# Alice sends within a second while a stream is open (the active
# keepalive); the new bob answers that packet with a stateless reset.
noticed=""
while (($(_now_ms) - t0 < 10000)); do
  if grep -Eq "connection to bob closed \(the peer lost the connection: it answered with a stateless reset" "$WORK/alice.log"; then
    noticed=$(($(_now_ms) - t0))
    break
  fi
  sleep 0.05
done
kill -CONT "$(pid broker)"
[[ -n $noticed ]] || fail "alice did not notice the restarted bob's stateless reset within 10 s"
t_notice=$noticed
((t_notice < 3000)) || fail "alice noticed the restart after $t_notice ms (want < 3 s)"
assert_log_lacks alice "bob restarted"
# The held connection is closed, not left hanging.
got=""
read -r -t 10 got <&"${HELD[0]}" && fail "held connection: still open after the reset ('$got')"

# Once bob is checked in again, the next local connection reaches him.
wait_log bob "natter: checked in at broker" 20
expect_exit_zero timeout 20 "$TCPCHECK" echo-check "$P_A" --conns 1 --bytes 100K
(($(grep -c "connected to bob" "$WORK/alice.log") == 2)) ||
  fail "alice did not connect to the new bob"
running alice || fail "alice exited"
log "alice noticed the restarted bob's stateless reset after $t_notice ms (restart included)"
echo "PASS: $TEST_NAME"
