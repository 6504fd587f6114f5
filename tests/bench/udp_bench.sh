#!/usr/bin/env bash
# UDP forwarding benchmark on loopback: iperf3 -u at rising rates, direct
# and through natter (broker + bob -listen -allow-udp + alice with a TCP
# forward for iperf3's control connection and a udp: forward on the same
# local port for its data), each rate for SECONDS; prints the loss and
# jitter iperf3's receiver measured, and the lowest rate at which the loss
# through natter exceeds 1% (UDP is not congestion controlled: past what
# the path carries, datagrams are dropped, in natter's queue or in the
# sockets). Datagrams are LEN bytes (default 1200).
#
# Usage: NATTER=build/natter tests/bench/udp_bench.sh
#   RATES="10M 50M 100M 200M 400M 800M"  SECONDS_PER_RATE=3  LEN=1200
# Exit status: 0, or 1 when it could not be set up.
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$(dirname "$0")/../integration/lib.sh"

RATES=${RATES:-10M 50M 100M 200M 400M 800M}
SECS=${SECONDS_PER_RATE:-3}
LEN=${LEN:-1200}
command -v iperf3 >/dev/null || fail "iperf3 is not installed"

srv_port=$(free_port)
start iperf3 iperf3 -s -p "$srv_port" -B 127.0.0.1
wait_tcp_listen "$srv_port"
start_broker broker
start_client bob -listen -allow-peer alice -allow-udp "127.0.0.1:$srv_port"
fwd=$(free_port)
start_client alice "$fwd:bob:$srv_port" "udp:$fwd:bob:$srv_port"
wait_log alice "natter: forwarding UDP 127\.0\.0\.1:$fwd -> "

# run PORT RATE: one iperf3 -u run; prints "LOSS% JITTER_MS MBIT/S".
run() {
  iperf3 -c 127.0.0.1 -p "$1" -u -b "$2" -l "$LEN" -t "$SECS" -J 2>/dev/null |
    python3 -c 'import json, sys
d = json.load(sys.stdin)
s = d["end"]["sum"]
print("%.2f %.3f %.1f" % (s["lost_percent"], s["jitter_ms"],
                          s["bits_per_second"] * (100 - s["lost_percent"]) / 100 / 1e6))' ||
    echo "- - -"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s  %-26s  %-26s\n' rate "direct loss% jitter Mbit/s" \
  "natter loss% jitter Mbit/s"
knee=""
for rate in $RATES; do
  d=$(run "$srv_port" "$rate")
  n=$(run "$fwd" "$rate")
  printf '%-6s  %-26s  %-26s\n' "$rate" "$d" "$n"
  loss=${n%% *}
  if [[ -z $knee && $loss != - ]] &&
    python3 -c "import sys; sys.exit(0 if float('$loss') > 1 else 1)"; then
    knee=$rate
  fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "natter's loss first exceeds 1% at: ${knee:-none of the rates tried}"
