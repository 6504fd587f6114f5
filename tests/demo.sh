#!/usr/bin/env bash
# The natter demo: a broker, bob (who accepts forwards) and alice (who
# forwards a local port to a service on bob's machine), all on loopback.
# Sends a few messages and a 10 MB random file through the tunnel, checks
# every byte by SHA-256 and says in plain words what happens at each step.
#
# Usage: tests/demo.sh   (NATTER defaults to build/natter; ./dev demo builds
# it first). Exits 0 if everything arrived intact. Everything it starts is
# stopped by PID on exit; its files live in a temporary directory.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export NATTER=${NATTER:-$REPO/build/natter}
# shellcheck source-path=SCRIPTDIR source=integration/lib.sh
. "$REPO/tests/integration/lib.sh"

step=0
say() {
  step=$((step + 1))
  printf '\n[%d] %s\n' "$step" "$*"
}
detail() { printf '    %s\n' "$@"; }

cat <<EOF
natter demo: forward a TCP port from "alice" to a service on "bob".
In real life alice, bob and the broker are three machines, alice and bob
both behind NAT; here all three run on this machine over loopback.
Working directory: $WORK
EOF

echo_port=$(free_port)
say "Starting bob's service: an echo server on 127.0.0.1:$echo_port."
detail "It sends back every byte it receives. Only bob's machine can reach it."
start_echo_server echo "$echo_port"

say "Starting the broker, which introduces peers to each other."
start_broker broker
detail "The broker listens on UDP $BROKER and has its own key" \
  "($WORK/broker.key). It never carries the forwarded data."

say "Starting bob with -listen, so peers may reach ports on bob's loopback."
start_client bob -listen -allow-peer alice
detail "bob created his key ($WORK/bob.key) and checked in at the broker:"
detail "$(grep -m1 'checked in at broker' "$WORK/bob.log")"

local_port=$(free_port)
say "Starting alice with the forward $local_port:bob:$echo_port."
detail "alice listens on 127.0.0.1:$local_port; each connection there is" \
  "carried to bob, who connects it to 127.0.0.1:$echo_port on his side."
start_client alice "$local_port:bob:$echo_port"
detail "$(grep -m1 'natter: forwarding' "$WORK/alice.log")"

say "Sending a few messages through the tunnel."
for msg in "hello bob" "this line went alice -> bob -> echo -> bob -> alice" \
  "bye"; do
  reply=$(printf '%s\n' "$msg" |
    timeout 20 socat -t 10 - "TCP:127.0.0.1:$local_port") ||
    fail "no reply to \"$msg\" through 127.0.0.1:$local_port"
  [[ $reply == "$msg" ]] || fail "sent \"$msg\" but got back \"$reply\""
  detail "sent \"$msg\", got it back"
done
wait_log alice "natter: connected to bob" 10
detail "alice reached bob directly: $(grep -m1 'connected to bob' "$WORK/alice.log")"

say "Sending a 10 MB random file through the tunnel and back."
head -c 10M /dev/urandom >"$WORK/file.bin"
sent_sum=$(sha256_of "$WORK/file.bin")
start_ms=$(_now_ms)
timeout 60 socat -t 30 -b 65536 "OPEN:$WORK/file.bin,rdonly!!CREATE:$WORK/echoed.bin" \
  "TCP:127.0.0.1:$local_port" ||
  fail "socat could not send the file through 127.0.0.1:$local_port"
elapsed_ms=$(($(_now_ms) - start_ms))
got_sum=$(sha256_of "$WORK/echoed.bin")
detail "sent     sha256 $sent_sum" "received sha256 $got_sum"
[[ $sent_sum == "$got_sum" ]] ||
  fail "the echoed file differs ($(stat -c %s "$WORK/echoed.bin") of 10485760 bytes came back)"
detail "identical: 10 MB there and 10 MB back in ${elapsed_ms} ms."

say "Opening 20 connections at once, 1 MB each way on each."
"$TCPCHECK" echo-check "$local_port" --conns 20 --bytes 1M --timeout 60 \
  >"$WORK/check.out" 2>&1 || {
  cat "$WORK/check.out" >&2
  fail "concurrent connections through the tunnel failed"
}
detail "all 20 echoed byte for byte, each on its own QUIC stream."

say "Stopping alice, bob and the broker."
stop alice
stop bob
stop_expect_clean broker
traffic=$(grep -m1 'natter: broker traffic' "$WORK/broker.log") ||
  fail "the broker did not report its traffic on exit"
detail "$traffic"
received=$(sed -E 's/.*received ([0-9]+) bytes.*/\1/' <<<"$traffic")
if [[ $received =~ ^[0-9]+$ ]] && ((received < 10485760)); then
  detail "That is less than the 10 MB file: the data went peer to peer," \
    "not through the broker."
else
  fail "the broker received $received bytes: the data went through it"
fi

printf '\nDemo passed: every byte arrived intact.\n'
