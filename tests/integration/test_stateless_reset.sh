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
#   - the limit: 400 short-header packets of unknown connections to the
#     broker in a burst get at most 100 resets a second, each shorter than
#     its 60-byte trigger (48 bytes at most), and the broker says so; a
#     packet of 34 bytes gets none (so that two endpoints cannot loop)
#   - the clients' metrics (-metrics) count them: the new bob's sent,
#     alice's received, and of the same burst to alice's socket, sent and
#     dropped by the limit
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO_PORT=$(free_port)
start_echo_server echo "$ECHO_PORT"
start_broker broker
P_A=$(free_port)
P_BOB=$(free_port)
P_AQ=$(free_port)
M_A=$(free_port)
M_BOB=$(free_port)

# resets NAME PORT RESULT: natter_client_stateless_resets_total{result=RESULT}
# of the client whose -metrics is on PORT.
resets() {
  curl -sS --max-time 10 "http://127.0.0.1:$2/metrics" >"$WORK/$1.metrics" ||
    fail "curl of $1's metrics failed"
  sed -n "s/^natter_client_stateless_resets_total{result=\"$3\"} \([0-9]*\)\$/\1/p" \
    "$WORK/$1.metrics"
}

start_client bob -listen -allow-peer alice -port "$P_BOB"
start_client alice -port "$P_AQ" -metrics "127.0.0.1:$M_A" "$P_A:bob:$ECHO_PORT"
[[ $(resets alice "$M_A" received) == 0 ]] ||
  fail "alice counts a received stateless reset before any: $(cat "$WORK/alice.metrics")"

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
  -listen -allow-peer alice -port "$P_BOB" -metrics "127.0.0.1:$M_BOB"
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
n=$(resets alice "$M_A" received)
((n >= 1)) || fail "alice's metrics count no received stateless reset: $(cat "$WORK/alice.metrics")"
n=$(resets bob "$M_BOB" sent)
((n >= 1)) || fail "the new bob's metrics count no stateless reset sent: $(cat "$WORK/bob.metrics")"
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
# ---- the limit ----
cat >"$WORK/flood.py" <<'EOF'
import os, socket, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))
s.settimeout(0.5)
# A short packet gets nothing.
s.send(b"\x40" + os.urandom(33))
try:
    print("answered a 34-byte packet: %d bytes" % len(s.recv(2048)))
    sys.exit(1)
except socket.timeout:
    pass
t0 = time.monotonic()
for i in range(400):
    s.send(b"\x40" + os.urandom(59))
sent_s = time.monotonic() - t0
n, bad = 0, 0
while True:
    try:
        r = s.recv(2048)
    except socket.timeout:
        break
    n += 1
    if len(r) > 48 or len(r) < 22 or r[0] & 0x80:
        bad += 1
allowed = 100 * (int(sent_s) + 2)
print("resets=%d sent_in=%.3f s allowed=%d bad=%d" % (n, sent_s, allowed, bad))
sys.exit(0 if 1 <= n <= allowed and bad == 0 else 1)
EOF
out=$(python3 "$WORK/flood.py" "$BROKER_PORT" 2>&1) || fail "stateless reset limit: $out"
wait_log broker "stateless resets: more than 100 a second asked for" 5
# The same at a client's socket, counted in its metrics.
sent0=$(resets alice "$M_A" sent)
out_a=$(python3 "$WORK/flood.py" "$P_AQ" 2>&1) || fail "stateless reset limit at alice: $out_a"
wait_log alice "stateless resets: more than 100 a second asked for" 5
sent1=$(resets alice "$M_A" sent)
dropped=$(resets alice "$M_A" dropped)
((sent1 > sent0 && sent1 - sent0 <= 400 && dropped >= 1 && sent1 - sent0 + dropped >= 400)) ||
  fail "alice's stateless reset metrics after 400 packets: sent $sent0 -> $sent1, dropped $dropped ($out_a)"
log "alice's metrics: stateless resets sent $sent0 -> $sent1, dropped $dropped, received $(resets alice "$M_A" received)"
log "a burst of 400 packets of unknown connections to the broker: $out"
log "alice noticed the restarted bob's stateless reset after $t_notice ms (restart included)"
echo "PASS: $TEST_NAME"
