#!/usr/bin/env bash
# IPv4 and IPv6 together, on loopback: a broker on `-server :PORT` (every
# address of both families, one socket per port) is reached by bob over
# IPv4 (127.0.0.1) and by alice over IPv6 ([::1]). The broker sees each at
# its own address, IPv4 as plain IPv4 (never ::ffff:127.0.0.1); alice,
# whose broker connection is IPv6, reaches bob (IPv4 at the broker) on his
# one socket and moves data both ways through the tunnel (sha256).
# Skipped (77) when this host has no IPv6 loopback.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

if ! python3 -c 'import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0))' 2>/dev/null; then
  echo "SKIP: no IPv6 loopback (::1) on this host"
  exit 77
fi

echo_port=$(free_port)
sink_port=$(free_port)
start_echo_server echo "$echo_port"
start_sink_server sink "$sink_port"

BROKER_PORT=$(free_port)
start broker "$NATTER" -server ":$BROKER_PORT" -identity "$WORK/broker.key" -v
wait_log broker "natter: broker listening on \[::\]:$BROKER_PORT \(UDP, IPv4 and IPv6\)"

BROKER=127.0.0.1:$BROKER_PORT
start_client bob -listen -allow-peer alice -v
BROKER="[::1]:$BROKER_PORT"
up=$(free_port)
echo_fwd=$(free_port)
start_client alice -v "$echo_fwd:bob:$echo_port" "$up:bob:$sink_port"

# The broker's view: each at the address it came from, IPv4 unmapped.
assert_log_contains broker 'bob checked in from 127\.0\.0\.1:[0-9]+'
assert_log_contains broker 'alice checked in from \[::1\]:[0-9]+'
assert_log_lacks broker 'ffff'
assert_log_contains alice 'public address \[::1\]:[0-9]+'
assert_log_contains bob 'public address 127\.0\.0\.1:[0-9]+'

expect_exit_zero "$TCPCHECK" echo-check "$echo_fwd" --conns 4 --bytes 1M --timeout 60
assert_output_contains '^4 ok$'
# Across families: alice's broker connection is IPv6, bob's IPv4. Each
# probes the other's observed address and local candidates, so the path is
# whichever answer came first: bob's IPv4 or IPv6 loopback, or another of
# this host's addresses (a LAN candidate), on his one socket either way.
bob_port=$(sed -n 's/.*natter: bob: key [0-9a-f]*, UDP port \([0-9]*\)$/\1/p' "$WORK/bob.log")
[[ -n $bob_port ]] || fail "bob did not log his UDP port"
assert_log_contains alice "connected to bob at ([0-9.]+|\\[[^]]+\\]):$bob_port \\(direct"
expect_exit_zero "$TCPCHECK" send "$up" --bytes 8M --timeout 60
assert_output_contains '^bytes=8388608 '
n=$(grep -c 'natter: connected to bob' "$WORK/alice.log")
((n == 1)) || fail "alice connected to bob $n times; want one connection"
stop_expect_clean alice
stop_expect_clean bob
stop_expect_clean broker
log "ok: a broker on :$BROKER_PORT served 127.0.0.1 and [::1]; alice (IPv6) reached bob (IPv4) directly"
