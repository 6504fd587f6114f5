#!/usr/bin/env bash
# Probes a hostile client cannot aim, and port prediction's budgets
# (doc/design.md, "Security model"; doc/operations.md, "Limits"), with
# natter-spoof (tests/hostile/natter_spoof.c) as mallory:
#
# 1. Spoofed path. mallory sends 10 copies of her broker connection's
#    packets, her ConnectRequest for bob among them, from another host's
#    address (the victim, which never answers), and claims a symmetric
#    NAT so that bob would probe 2500 of the victim's ports. The broker
#    must introduce her at the address it validated, not the victim's:
#    bob sends the victim no datagram at all (at most 3 are allowed, a
#    few), though he is introduced to mallory.
# 2. Many names. Four mallories, each on its own loopback address and
#    claiming a symmetric NAT, ask for bob every 2.1 s for 12 s. Each
#    may cost bob one prediction (NT_PREDICT_BUDGET probes) and the
#    punch probes of its meetings, not a new prediction every 2 s.
# 3. Many names, one host, a symmetric listener. bob2 reaches the broker
#    through natter-spoof -proxy, so its NAT looks symmetric and it
#    opens 256 prediction sockets per meeting. Four names from one
#    address, claiming a cone NAT, ask for bob2 every 2.1 s: at most two
#    of them predict at once (512 sockets of 1024), so the pool is never
#    empty for another peer (before, two names held all 512 and the
#    others got `no socket is left for port prediction`), and alice2's
#    forward to bob2 works.
# During all of it, alice's forward to bob and her -check of bob keep
# working.
#
# The datagrams are counted on a raw socket (root); without root the
# test is skipped (77).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

SPOOF=${NATTER_SPOOF:-$(dirname "$NATTER")/natter-spoof}
[[ -x $SPOOF ]] || fail "$SPOOF is not an executable (build natter_spoof)"
if [[ $(id -u) != 0 ]]; then
  log "skipped: counting datagrams needs a raw socket (root)"
  exit 77
fi

# A loopback address of this run's own, 127.X.Y.Z with X >= 100, so that
# another test's addresses (127.0.0.N) are never counted.
loopback_ip() {
  echo "127.$((100 + RANDOM % 100)).$((RANDOM % 250)).$((2 + RANDOM % 250))"
}

# field NAME FILE: the number after NAME on natter-spoof's output
# ("counted N ports M", "victim_received K").
field() {
  awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$2"
}

# wait_udp_bound PORT: wait until a UDP socket is bound to PORT.
wait_udp_bound() {
  local deadline=$(($(_now_ms) + 10000))
  until ss -Huan "sport = :$1" | grep -q .; do
    (($(_now_ms) < deadline)) || fail "nothing bound UDP port $1"
    sleep 0.05
  done
}

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker
start_client bob -listen -allow-peer '*' -v
# bob probes a symmetric peer's ports only once it knows its own mapping.
wait_log bob 'NAT mapping: endpoint-independent'
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"

# honest_traffic TAG: alice's forward and her -check of bob work.
honest_traffic() {
  expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 100K
  run_capture 30 "$NATTER" -name alice -broker "$BROKER" \
    -identity "$WORK/alice.key" -check bob
  ((STATUS == 0)) || fail "$1: alice's -check bob exited $STATUS: $OUTPUT"
}

log "1. mallory's ConnectRequest from a spoofed source"
victim=$(loopback_ip)
mallory_ip=$(loopback_ip)
start mallory "$SPOOF" -victim "$victim" -spoof 10 "$BROKER" "$mallory_ip" \
  mallory bob 8
wait_log bob 'mallory: introduced' 20
honest_traffic "during the spoofed path"
wait_exit mallory 30
counted=$(field counted "$WORK/mallory.log")
[[ $counted =~ ^[0-9]+$ ]] ||
  fail "natter-spoof counted nothing: $(cat "$WORK/mallory.log")"
log "bob sent the victim $counted datagrams" \
  "($(field victim_received "$WORK/mallory.log") from the broker reached it)"
((counted <= 3)) ||
  fail "bob sent $counted datagrams to $victim, which never answered" \
    "(at most 3)"
assert_log_lacks bob "ports of ${victim//./\\.}"
assert_log_lacks bob "probe -> ${victim//./\\.}:"

log "2. four names ask for bob every 2.1 s"
flooders=()
for i in 1 2 3 4; do
  start "m$i" "$SPOOF" -every 2100 "$BROKER" "$(loopback_ip)" "m$i" bob 12
  flooders+=("m$i")
done
for i in 1 2 3 4; do
  wait_log bob "m$i: introduced" 20
done
honest_traffic "during the flood of names"
total=0
for name in "${flooders[@]}"; do
  wait_exit "$name" 40
  n=$(field counted "$WORK/$name.log")
  [[ $n =~ ^[0-9]+$ ]] || fail "$name counted nothing: $(cat "$WORK/$name.log")"
  log "$name: bob sent it $n datagrams ($(field ports "$WORK/$name.log") ports)"
  total=$((total + n))
done
# Per name: one prediction (2500 probes) and the punch probes of at most
# seven meetings in 12 s (each a few quick probes, then one a second).
limit=$((4 * (2500 + 7 * 25)))
log "bob sent the four names $total datagrams in all (at most $limit)"
((total <= limit)) ||
  fail "bob sent $total datagrams to four names in 12 s (at most $limit)"
assert_log_contains bob 'no port prediction this time'
honest_traffic "after the flood of names"

# bob2 needs descriptors for two meetings' sockets and an honest peer's
# beside the 768 natter keeps for everything else.
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < 768 + 3 * 256 + 64)); then
  log "part 3 skipped: ulimit -Hn is $hard, too few for 3 x 256 sockets"
  log "ok"
  exit 0
fi
log "3. four names from one host ask a symmetric bob2 every 2.1 s"
broker=$BROKER
proxy_port=$(free_port)
start proxy "$SPOOF" -proxy "$proxy_port" "$BROKER" "$(loopback_ip)" 120
wait_udp_bound "$proxy_port"
BROKER=127.0.0.1:$proxy_port
start_client bob2 -listen -allow-peer '*' -v
BROKER=$broker
wait_log bob2 "this host's NAT is symmetric"
flood_ip=$(loopback_ip)
for i in 5 6 7 8; do
  start "m$i" "$SPOOF" -every 2100 -mapping cone "$BROKER" "$flood_ip" \
    "m$i" bob2 12
done
for i in 5 6 7 8; do
  wait_log bob2 "m$i: introduced" 20
done
fwd2=$(free_port)
start_client alice2 "$fwd2:bob2:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd2" --conns 2 --bytes 100K
# bob2's descriptors while the names ask: two meetings' sockets at most.
most=0
for i in 5 6 7 8; do
  deadline=$(($(_now_ms) + 40000))
  while running "m$i"; do
    n=$(find "/proc/$(pid bob2)/fd" -mindepth 1 -maxdepth 1 | wc -l)
    ((n > most)) && most=$n
    (($(_now_ms) < deadline)) || fail "m$i still running after 40 s"
    sleep 0.1
  done
  wait_exit "m$i" 5
done
log "bob2 held at most $most descriptors (at most 2 x 256 sockets for one host)"
((most <= 2 * 256 + 64)) ||
  fail "bob2 held $most descriptors for four names of one host"
# No peer after them finds the pool empty.
assert_log_lacks bob2 'no socket is left'
assert_log_contains bob2 'peers at [0-9.:]+ predict already'
expect_exit_zero "$TCPCHECK" echo-check "$fwd2" --conns 2 --bytes 100K
log "ok"
