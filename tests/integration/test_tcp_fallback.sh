#!/usr/bin/env bash
# The TCP fallback (doc/design.md, "TCP fallback"): a client whose UDP to
# the broker gets no answer checks in over TCP within a few seconds and
# its forward works; garbage on the broker's TCP port is closed without
# harm; the per-address limit of TCP connections is logged when hit.
# (UDP blocked for real, the relay over TCP and the move back to UDP are
# in the NAT lab: tests/nat/test_tcp_fallback.sh.)
# With a list of brokers (-broker a,b -broker-tcp PORT): the current
# broker over TCP, and when it dies, the next one of the list over TCP.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
tcp_port=$(free_port)
start_broker broker -relay -tcp-listen "127.0.0.1:$tcp_port" -max-per-address 8
wait_log broker "natter: TCP fallback on 127\.0\.0\.1:$tcp_port"
start_client bob -listen -allow-peer alice

# alice's -broker names a UDP port where nothing answers: as if UDP to
# the broker were blocked. Its host and -broker-tcp lead to the broker.
dead_udp=$(free_port)
fwd=$(free_port)
start alice "$NATTER" -name alice -broker "127.0.0.1:$dead_udp" \
  -broker-tcp "$tcp_port" -identity "$WORK/alice.key" "$fwd:bob:$echo_port"
wait_log alice "natter: no answer from the broker's UDP port in 3 s: reaching the broker over TCP at 127\.0\.0\.1:$tcp_port" 20
wait_log alice "natter: checked in at broker 127\.0\.0\.1:$dead_udp as alice" 20
wait_log alice "natter: forwarding 127\.0\.0\.1:$fwd -> "
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 4 --bytes 2M
[[ $(ss -Htn state established "( sport = :$tcp_port )" | wc -l) -ge 1 ]] ||
  fail "no TCP connection to the broker's fallback port"
# Its status page says so.
alice_udp=$(grep -m1 -o 'UDP port [0-9]*' "$WORK/alice.log")
expect_exit_zero "$NATTER" -status -name alice -identity "$WORK/alice.key" \
  -port "${alice_udp##* }"
assert_output_contains '^checked in over TCP \(UDP to the broker gets no answer\)'
# So does the broker's, to its own key: alice's TCP address.
expect_exit_zero "$NATTER" -status "$BROKER" -identity "$WORK/broker.key"
assert_output_contains '^alice +[0-9a-f]{16}  127\.0\.0\.1:[0-9]+/tcp '
assert_output_contains '^bob +[0-9a-f]{16}  127\.0\.0\.1:[0-9]+ '

# Not natter: closed, and the broker serves on.
exec {junk}<>"/dev/tcp/127.0.0.1/$tcp_port"
printf 'GET / HTTP/1.0\r\n\r\n' >&"$junk"
rc=0
read -r -t 10 -u "$junk" _ || rc=$?
((rc == 1)) || fail "junk on the TCP port was not closed (read status $rc)"
exec {junk}>&-

# Twice -max-per-address (16) TCP connections per address: a 17th (alice
# holds one or two) is refused, logged.
fds=()
for ((i = 0; i < 17; i++)); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$tcp_port"
  fds+=("$fd")
done
wait_log broker "refused a TCP fallback connection from 127\.0\.0\.1:[0-9]*: too many TCP connections from this address \(limit 16\)"
for fd in "${fds[@]}"; do exec {fd}>&-; done

expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 256K

# The broker restarts (same key, same ports): alice's TCP connection ends,
# and she checks in again over TCP at once, not after an idle timeout.
stop_expect_clean broker
start broker "$NATTER" -server "$BROKER" -identity "$WORK/broker.key" -relay \
  -tcp-listen "127.0.0.1:$tcp_port" -max-per-address 8
wait_log alice "TCP connection to the broker at 127\.0\.0\.1:$tcp_port ended" 10
deadline=$((SECONDS + 20))
until (($(grep -c 'natter: checked in at broker' "$WORK/alice.log") >= 2)); do
  ((SECONDS < deadline)) || fail "alice did not check in again within 20 s of the broker's restart"
  sleep 0.1
done
(($(grep -c "reaching the broker over TCP" "$WORK/alice.log") >= 2)) ||
  fail "alice checked in again, but not over TCP"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 256K
stop_expect_clean alice
stop_expect_clean bob
stop_expect_clean broker

# ---- a list of brokers ---------------------------------------------------------

# Two brokers of one network (one key) on 127.0.0.2 and 127.0.0.3, each
# with the TCP fallback on the same port of its own address. carol's list
# names UDP ports where nothing answers: she reaches the first over TCP;
# when it dies, the second, over TCP too. dave (UDP) moves along with
# her, so that they meet at the broker they share.
netkey=$WORK/network.key
lp=$(free_port)
ltcp=$(free_port)
start n1 "$NATTER" -server "127.0.0.2:$lp" -identity "$netkey" \
  -tcp-listen "127.0.0.2:$ltcp" -registry memory:
wait_log n1 "natter: TCP fallback on 127\.0\.0\.2:$ltcp"
start n2 "$NATTER" -server "127.0.0.3:$lp" -identity "$netkey" \
  -tcp-listen "127.0.0.3:$ltcp" -registry memory:
wait_log n2 "natter: TCP fallback on 127\.0\.0\.3:$ltcp"
start dave "$NATTER" -name dave -broker "127.0.0.2:$lp,127.0.0.3:$lp" \
  -identity "$WORK/dave.key" -listen -allow-peer carol
wait_log dave "natter: checked in at broker 127\.0\.0\.2:$lp as dave" 20
dead1=$(free_port)
dead2=$(free_port)
cfwd=$(free_port)
start carol "$NATTER" -name carol -broker "127.0.0.2:$dead1,127.0.0.3:$dead2" \
  -broker-tcp "$ltcp" -identity "$WORK/carol.key" "$cfwd:dave:$echo_port"
wait_log carol "natter: no answer from the broker's UDP port in 3 s: reaching the broker over TCP at 127\.0\.0\.2:$ltcp" 20
wait_log carol "natter: checked in at broker 127\.0\.0\.2:$dead1 as carol" 20
expect_exit_zero "$TCPCHECK" echo-check "$cfwd" --conns 2 --bytes 256K
kill -9 "$(pid n1)"
_reap n1
wait_log carol "lost the broker 127\.0\.0\.2:$dead1 \([a-z ]+\); trying broker 127\.0\.0\.3:$dead2 next" 20
wait_log carol "natter: no answer from the broker's UDP port in 3 s: reaching the broker over TCP at 127\.0\.0\.3:$ltcp" 20
wait_log carol "natter: checked in at broker 127\.0\.0\.3:$dead2 as carol" 20
wait_log dave "natter: checked in at broker 127\.0\.0\.3:$lp as dave" 20
[[ $(ss -Htn state established "( dst = 127.0.0.3 and dport = :$ltcp )" | wc -l) -ge 1 ]] ||
  fail "carol holds no TCP connection to the second broker"
expect_exit_zero -t 60 "$TCPCHECK" echo-check "$cfwd" --conns 2 --bytes 256K
stop_expect_clean carol
stop_expect_clean dave
stop_expect_clean n2
