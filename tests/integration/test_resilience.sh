#!/usr/bin/env bash
# Resilience on loopback, real processes (the NAT lab covers address
# changes). Checked:
#   - SIGHUP reloads the config file: a new allow-peer rule admits carol,
#     an unchanged forward keeps its open (interactive) connection, a
#     removed forward stops listening, an added one works; a setting read
#     at start only (max-streams) is logged as changed, not applied; a
#     broken file is
#     refused with FILE:LINE and the old configuration stays in force; the
#     process never exits on SIGHUP; a broker survives SIGHUP too
#   - bob SIGKILLed and restarted within a second: alice hears of it from
#     the broker (not at the idle timeout), says why her connection to bob
#     closed, and a new local connection reaches the new bob within 5 s
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ECHO_PORT=$(free_port)
start_echo_server echo "$ECHO_PORT"
start_broker broker
P_A=$(free_port)
P_B=$(free_port)
P_C=$(free_port)
P_CAROL=$(free_port)

cat >"$WORK/bob.conf" <<EOF
name = bob
broker = $BROKER
identity = $WORK/bob.key
listen = yes
allow-peer = alice
EOF
cat >"$WORK/alice.conf" <<EOF
name = alice
broker = $BROKER
identity = $WORK/alice.key
forward = $P_A:bob:$ECHO_PORT
forward = $P_B:bob:$ECHO_PORT
EOF
start bob "$NATTER" -config "$WORK/bob.conf"
wait_log bob "natter: checked in at broker"
start alice "$NATTER" -config "$WORK/alice.conf"
wait_log alice "natter: forwarding 127\.0\.0\.1:$P_B -> "

# An interactive connection through forward A, held open across reloads.
coproc HELD { socat - "TCP:127.0.0.1:$P_A"; }
held_echo() {
  local line
  printf '%s\n' "$1" >&"${HELD[1]}"
  read -r -t 10 line <&"${HELD[0]}" || fail "held connection: no echo of '$1'"
  [[ $line == "$1" ]] || fail "held connection: sent '$1', got '$line'"
}
held_echo "before any reload"

# carol is not admitted yet.
start_client carol -timeout 3 "$P_CAROL:bob:$ECHO_PORT"
got=$(printf 'x\n' | timeout 20 socat -t 10 - "TCP:127.0.0.1:$P_CAROL" 2>&1) || true
[[ $got != x ]] || fail "carol got through before bob's rules admitted her"
wait_log bob "refused carol"

# ---- SIGHUP with changed rules and forwards ----
echo "allow-peer = carol" >>"$WORK/bob.conf"
echo "max-streams = 8" >>"$WORK/bob.conf"
kill -HUP "$(pid bob)"
wait_log bob "reloaded .*bob\.conf"
wait_log bob 'reload: "max-streams" changed; it takes effect at the next start'
sed -i "/^forward = $P_B:/d" "$WORK/alice.conf"
echo "forward = $P_C:bob:$ECHO_PORT" >>"$WORK/alice.conf"
kill -HUP "$(pid alice)"
wait_log alice "reloaded .*alice\.conf: 1 forwards kept, 1 added, 1 removed"
running bob || fail "bob exited on SIGHUP"
running alice || fail "alice exited on SIGHUP"
held_echo "after the reload"
expect_exit_zero "$TCPCHECK" echo-check "$P_CAROL" --conns 2 --bytes 100K
expect_exit_zero "$TCPCHECK" echo-check "$P_C" --conns 2 --bytes 100K
if timeout 5 socat -u /dev/null "TCP:127.0.0.1:$P_B" 2>/dev/null; then
  fail "the removed forward on port $P_B still accepts connections"
fi

# ---- a broken file keeps the old configuration ----
echo "allow-peer = not a valid rule !!" >>"$WORK/bob.conf"
kill -HUP "$(pid bob)"
wait_log bob "reload refused: .*bob\.conf:8: .*old configuration stays"
running bob || fail "bob exited on a broken file"
expect_exit_zero "$TCPCHECK" echo-check "$P_CAROL" --conns 1 --bytes 10K
held_echo "after a refused reload"

# A broker keeps running on SIGHUP.
kill -HUP "$(pid broker)"
wait_log broker "SIGHUP"
running broker || fail "the broker exited on SIGHUP"

# ---- bob restarts ----
kill "$HELD_PID" 2>/dev/null; wait "$HELD_PID" 2>/dev/null || true
stop carol
sed -i '$d' "$WORK/bob.conf" # the broken line
kill -KILL "$(pid bob)"
_reap bob
t0=$(_now_ms)
start bob "$NATTER" -config "$WORK/bob.conf"
wait_log bob "natter: checked in at broker"
wait_log alice "bob restarted" 5
t_notice=$(($(_now_ms) - t0))
# The next local connection reaches the new bob.
expect_exit_zero timeout 10 "$TCPCHECK" echo-check "$P_A" --conns 1 --bytes 100K
t_new=$(($(_now_ms) - t0))
((t_new < 5000)) || fail "a new connection took $t_new ms to reach the restarted bob (want < 5 s)"
log "restart: alice told after $t_notice ms, new connection through after $t_new ms"
echo "PASS: $TEST_NAME"
