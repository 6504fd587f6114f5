#!/usr/bin/env bash
# Hostile clients of a broker (natter-flood, tests/hostile) while an honest
# pair transfers. Every limit of doc/operations.md, "Limits" that a client
# can hit:
#   - 100 idle connections from one address: 32 held (the per-address
#     limit), the rest refused with a message that names the limit, and
#     the broker logs it
#   - 544 connections from 17 addresses that never check in: 512 held
#     (the pending limit), the rest told the broker is busy; past 200 new
#     connections a second (-retry-above 20 here) the broker validates
#     addresses with QUIC Retry
#   - a connection that never checks in is closed after 10 s
#   - control messages: 1000 requests in a burst (rate limit), an
#     oversized length prefix, garbage inside valid framing
#   - candidate aiming: a client reports loopback addresses as its LAN
#     candidates and asks for bob; bob sends nothing to them, and asking
#     again and again does not make bob probe more than every 2 s
# After each flood an honest echo transfer through alice -> bob is intact
# (and one runs beside the first floods), and a new honest client checks
# in during a flood.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

FLOOD=${NATTER_FLOOD:-$(dirname "$NATTER")/natter-flood}
[[ -x $FLOOD ]] || fail "$FLOOD is not an executable (build natter_flood)"

# flood TAG ARG...: run natter-flood with a deadline; output in $WORK/TAG.out
flood() {
  local tag=$1
  shift
  timeout 60 "$FLOOD" "$@" >"$WORK/$tag.out" 2>&1 ||
    fail "natter-flood $* failed: $(cat "$WORK/$tag.out")"
}
field() { sed -n "s/^$2 \([0-9]*\).*/\1/p" "$WORK/$1.out"; }
expect_line() {
  grep -Eq -- "$2" "$WORK/$1.out" ||
    fail "$1: no line matches /$2/: $(cat "$WORK/$1.out")"
}

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -retry-above 20
start_client bob -listen -allow-peer "*"
port=$(free_port)
start_client alice "$port:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 2 --bytes 1M
start honest "$TCPCHECK" echo-check "$port" --conns 3 --bytes 200M \
  --timeout 240
honest_check() {
  expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 2 --bytes 4M
}

log "idle connections from one address"
flood idle idle "$BROKER" 127.0.0.2 100 3
[[ $(field idle established) == 32 && $(field idle refused) == 68 ]] ||
  fail "want 32 held and 68 refused: $(cat "$WORK/idle.out")"
expect_line idle 'refused 68: too many connections from 127\.0\.0\.2 \(limit 32 per address\)'
wait_log broker 'refused a connection from 127\.0\.0\.2:[0-9]+: too many connections'

honest_check
log "a new honest client checks in during a flood"
start flooder "$FLOOD" idle "$BROKER" 127.0.0.3 32 8
start_client carol -listen -allow-peer alice
stop carol

honest_check
log "connections that never check in, from 17 addresses"
for i in $(seq 10 26); do
  start "pending$i" "$FLOOD" idle "$BROKER" "127.0.0.$i" 32 4
done
held=0 refused=0
for i in $(seq 10 26); do
  wait_exit "pending$i" 30
  ((EXIT_STATUS[pending$i] == 0)) || fail "pending$i failed"
  cp "$WORK/pending$i.log" "$WORK/pending$i.out"
  held=$((held + $(field "pending$i" established)))
  refused=$((refused + $(field "pending$i" refused)))
done
wait_exit flooder 30
# The 32 of 127.0.0.3 may still count as pending: 512 in all.
((held + 32 >= 512 && held <= 512 && refused >= 32)) ||
  fail "pending limit: $held held, $refused refused (want at most 512 held)"
grep -hq 'broker is busy (512 connections not checked in yet, its limit)' \
  "$WORK"/pending*.out || fail "no refusal named the pending limit"
# 544 handshakes within a few seconds: past 20 a second (-retry-above),
# addresses are validated with QUIC Retry first (and the held connections
# got through).
assert_log_contains broker 'more than 20 new connections a second: validating client addresses with QUIC Retry' 

honest_check
log "a connection that never checks in"
flood silent idle "$BROKER" 127.0.0.4 1 12
expect_line silent 'closed 1: no check-in within 10 s'

honest_check
log "control messages"
flood burst control "$BROKER" 127.0.0.5 flood
expect_line burst 'closed 1: too many control messages \(limit 20 per second\)'
flood oversized control "$BROKER" 127.0.0.5 oversized
expect_line oversized 'closed 1: bad message framing'
flood malformed control "$BROKER" 127.0.0.5 malformed
expect_line malformed 'closed 1: malformed control message'

honest_check
log "candidate aiming"
aim1=$(free_port)
aim2=$(free_port)
start sink1 socat -u "UDP-RECV:$aim1,bind=127.0.0.1" "OPEN:$WORK/aim1.bin,creat,append"
start sink2 socat -u "UDP-RECV:$aim2,bind=127.0.0.1" "OPEN:$WORK/aim2.bin,creat,append"
wait_udp_bound() {
  local p=$1 deadline=$(($(_now_ms) + 10000))
  until ss -Hluna "sport = :$p" | grep -q .; do
    (($(_now_ms) < deadline)) || fail "nothing bound UDP $p"
    sleep 0.05
  done
}
wait_udp_bound "$aim1"
wait_udp_bound "$aim2"
flood aim aim "$BROKER" 127.0.0.6 mallory bob "127.0.0.1:$aim1" "127.0.0.1:$aim2"
wait_log bob 'mallory: introduced'
assert_log_contains bob 'mallory: behind another public address; its 2 LAN addresses are not probed|mallory: introduced .* probing 127\.0\.0\.6:[0-9]+$'
for f in aim1 aim2; do
  [[ ! -s $WORK/$f.bin ]] || fail "bob sent $(stat -c %s "$WORK/$f.bin") bytes to an aimed candidate"
done

wait_exit honest 240
((EXIT_STATUS[honest] == 0)) ||
  fail "the honest transfer beside the floods failed: $(cat "$WORK/honest.log")"
expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 4 --bytes 2M
assert_log_lacks broker 'AddressSanitizer|runtime error'
stop_expect_clean alice
stop_expect_clean bob
stop_expect_clean broker
log "passed"
