#!/usr/bin/env bash
# Garbage on the UDP ports: thousands of datagrams of random bytes (sizes
# 1 to 1500), near-miss punch packets and fake QUIC
# Initial/short-header packets, sent at once to the broker and to both
# clients while a transfer runs through the tunnel. Afterwards no process
# has crashed, the running transfer verified byte for byte, the existing
# tunnel still works, and a fresh client checks in and forwards correctly.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# The sender, run as its own process per target: bash's /dev/udp connects
# a UDP socket, and each `cat`/`head` writes one datagram. A write error
# (ICMP port unreachable: the target's socket is gone) fails it.
cat >"$WORK/send_garbage.sh" <<'EOF'
set -euo pipefail
port=$1 dir=$2
exec 4>"/dev/udp/127.0.0.1/$port"
n=0
dgram() { cat "$dir/dgram" >&4; n=$((n + 1)); }
rnd() { head -c "$1" /dev/urandom; }
# 1. Random bytes: three datagrams of each size 1..100, then of every
#    third size up to 1500 (dd writes each block as one datagram).
head -c $((3 * 1500)) /dev/urandom >"$dir/pool"
for ((size = 1; size <= 1500; size += (size < 100 ? 1 : 3))); do
  dd if="$dir/pool" bs="$size" count=3 status=none >&4
  n=$((n + 3))
done
# 2. Punch-shaped: magic 00 'NTP', version 0..2, type 0..3, random nonce;
#    the right length (22) and one off either way.
for ((i = 0; i < 100; i++)); do
  printf -v hdr '\\x00NTP\\x%02x\\x%02x' $((RANDOM % 3)) $((RANDOM % 4))
  { printf "$hdr"; rnd $((15 + RANDOM % 3)); } >"$dir/dgram"
  dgram
done
# 3. QUIC long header, version 1 (Initial, 0-RTT, Handshake, Retry types),
#    random DCID/SCID lengths (some over the limit of 20), a length field
#    close to the real one, random payload, 1200..1500 bytes.
for ((i = 0; i < 150; i++)); do
  total=$((1200 + RANDOM % 301))
  dcid=$((RANDOM % 24)) scid=$((RANDOM % 24))
  rest=$((total - 7 - dcid - scid - 3))
  len=$((rest + RANDOM % 9 - 4))
  ((len >= 0)) || len=0
  printf -v h1 '\\x%02x\\x00\\x00\\x00\\x01\\x%02x' $((0xc0 | RANDOM % 64)) "$dcid"
  printf -v h2 '\\x%02x' "$scid"
  printf -v h3 '\\x00\\x%02x\\x%02x' $((0x40 | (len >> 8) % 64)) $((len % 256))
  { printf "$h1"; rnd "$dcid"; printf "$h2"; rnd "$scid"; printf "$h3"; rnd "$rest"; } >"$dir/dgram"
  dgram
done
# 4. Other versions (0: version negotiation; unknown), short headers.
for ((i = 0; i < 50; i++)); do
  printf -v h '\\x%02x\\x00\\x00\\x00\\x%02x' $((0x80 | RANDOM % 128)) $((RANDOM % 3 * 0x7f))
  { printf "$h"; rnd $((RANDOM % 1400 + 30)); } >"$dir/dgram"
  dgram
  printf -v h '\\x%02x' $((0x40 | RANDOM % 64))
  { printf "$h"; rnd $((RANDOM % 1400 + 33)); } >"$dir/dgram"
  dgram
done
echo "sent $n datagrams to port $port"
EOF

# udp_port NAME: the client's UDP port from its first log line.
udp_port() {
  local line
  line=$(grep -E -m1 'UDP port [0-9]+' "$WORK/$1.log") ||
    fail "$1 did not log its UDP port"
  [[ $line =~ UDP\ port\ ([0-9]+) ]] || fail "cannot parse: $line"
  echo "${BASH_REMATCH[1]}"
}

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker
start_client bob -listen -allow-peer alice -allow-peer carol
p_alice=$(free_port)
start_client alice "$p_alice:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$p_alice" --conns 2 --bytes 64K
wait_log alice 'natter: connected to bob' 10
bob_udp=$(udp_port bob)
alice_udp=$(udp_port alice)

# A transfer through the tunnel while the garbage arrives.
start transfer "$TCPCHECK" echo-check "$p_alice" --conns 4 --bytes 32M \
  --timeout 150
for target in broker:"$BROKER_PORT" bob:"$bob_udp" alice:"$alice_udp"; do
  mkdir -p "$WORK/g_${target%%:*}"
  start "garbage_${target%%:*}" bash "$WORK/send_garbage.sh" "${target#*:}" \
    "$WORK/g_${target%%:*}"
done
for name in garbage_broker garbage_bob garbage_alice; do
  wait_exit "$name" 120
  [[ ${EXIT_STATUS[$name]} == 0 ]] ||
    fail "$name failed (status ${EXIT_STATUS[$name]}): $(tail -n 3 "$WORK/$name.log")"
  assert_log_contains "$name" '^sent 2048 datagrams'
done
for name in broker bob alice; do
  running "$name" || fail "$name died from the garbage"
done
wait_exit transfer 160
[[ ${EXIT_STATUS[transfer]} == 0 ]] ||
  fail "the transfer during the garbage failed: $(tail -n 5 "$WORK/transfer.log")"
assert_log_contains transfer '^4 ok$'

# The existing tunnel still works ...
expect_exit_zero "$TCPCHECK" echo-check "$p_alice" --conns 10 --bytes 256K
assert_output_contains '^10 ok$'
# ... and a fresh client checks in, is introduced, punches and forwards.
p_carol=$(free_port)
start_client carol "$p_carol:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$p_carol" --conns 10 --bytes 256K
assert_output_contains '^10 ok$'
wait_log carol 'natter: connected to bob .*key verified' 10
reply=$(printf 'after the garbage\n' |
  timeout 20 socat -t 10 - "TCP:127.0.0.1:$p_carol") ||
  fail "no reply through carol's forward"
[[ $reply == 'after the garbage' ]] || fail "carol's forward echoed '$reply'"

# Nobody crashed: every natter process exits 0 on SIGTERM.
for name in carol alice bob broker; do
  stop_expect_clean "$name"
done

# The broker did not answer the garbage (no amplification): it sent about
# what three check-ins and two introductions take (~15 KB), far below the
# ~1.4 MB of garbage it received.
traffic_re='natter: broker traffic: received ([0-9]+) bytes, sent ([0-9]+) bytes'
line=$(grep -E -m1 -- "$traffic_re" "$WORK/broker.log") ||
  fail "the broker did not log its traffic on SIGTERM"
[[ $line =~ $traffic_re ]] || fail "cannot parse: $line"
log "$line"
((BASH_REMATCH[2] < 64 * 1024)) ||
  fail "the broker sent ${BASH_REMATCH[2]} bytes while receiving garbage: it answers garbage"
