#!/usr/bin/env bash
# The TCP fallback in the NAT lab (doc/design.md, "TCP fallback"): alice's
# network passes no UDP at all (her router drops every UDP datagram from
# her LAN), bob's is an ordinary cone NAT, the broker runs -relay and
# -tcp-listen on 443.
#
#   1. alice checks in over TCP (after the 3 s without a UDP answer),
#      reaches bob through the relay, itself reached over TCP, and a
#      download completes (sha256 compared); its throughput and the
#      broker's CPU time per relayed GB are reported, with the load.
#   2. UDP is unblocked while a slow download runs: alice leaves TCP (her
#      UDP probe is answered), the same connection to bob moves to a
#      direct path ("path now direct"), and the download completes
#      (sha256) on the same TCP connection.
#
# Usage: NATTER=build/natter bash tests/nat/test_tcp_fallback.sh
# Needs root (network namespaces); exits 77 (ctest: skipped) without.
# LAB_TCP_BYTES (default 64M) is the size of the relayed download.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${NATTER:?set NATTER to the natter binary (ctest does this)}"
NATTER=$(realpath "$NATTER")
export NATTER
# shellcheck source-path=SCRIPTDIR source=lab.sh
. "$HERE/lab.sh"
lab_require_root
# shellcheck source-path=SCRIPTDIR source=../integration/lib.sh
. "$LAB_REPO/tests/integration/lib.sh"
_lab_install_traps
TEST_NAME=test_tcp_fallback

bytes=${LAB_TCP_BYTES:-64M}
nbytes=$(_lab_bytes "$bytes")
slow_bytes=$((48 * 1048576)) # half at 2 MB/s (~12 s), the rest once moved
src=$WORK/source.bin
slow_src=$WORK/slow.bin
head -c "$nbytes" /dev/urandom >"$src"
head -c "$slow_bytes" /dev/urandom >"$slow_src"

lab_up --alice cone --bob cone
broker=$LAB_BROKER_IP:$LAB_BROKER_PORT
block=(FORWARD -p udp -s "${LAB_HOST[alice]}" -j DROP)
lab_x ra iptables -I "${block[@]}"

# bob's services, on bob's loopback only: a file to download, and the
# slow one.
lab_start source bob socat -U TCP-LISTEN:7002,bind=127.0.0.1,reuseaddr,fork "OPEN:$src,rdonly"
lab_start slow bob socat -U TCP-LISTEN:7003,bind=127.0.0.1,reuseaddr,fork "OPEN:$slow_src,rdonly"
lab_wait_bound bob tcp 7002
lab_wait_bound bob tcp 7003

lab_start broker inet "$NATTER" -server "$broker" -identity "$WORK/broker.key" -v \
  -relay -relay-rate 0 -tcp-listen "$LAB_BROKER_IP:443"
wait_log broker "TCP fallback on ${LAB_BROKER_IP//./\\.}:443"
lab_start bob bob "$NATTER" -name bob -broker "$broker" -identity "$WORK/bob.key" \
  -listen -allow-peer alice -v
wait_log bob 'natter: checked in at broker' 15

t0=$(_lab_now_ms)
lab_start alice alice "$NATTER" -name alice -broker "$broker" -identity "$WORK/alice.key" \
  -v 8002:bob:7002 8003:bob:7003
wait_log alice "reaching the broker over TCP at ${LAB_BROKER_IP//./\\.}:443" 20
wait_log alice 'natter: checked in at broker' 20
t_checkin=$(($(_lab_now_ms) - t0))
wait_log alice 'forwarding 127\.0\.0\.1:8003 -> ' 5

# 1. Relayed over TCP. The first download meets bob (3 s of punching
# first), the second one is timed.
_lab_fg "$WORK/download.out" lab_x alice timeout 200 socat -u TCP:127.0.0.1:8002 "CREATE:$WORK/received.bin" ||
  fail "the first download over the relay failed: $(cat "$WORK/download.out")"
[[ $(sha256_of "$src") == $(sha256_of "$WORK/received.bin") ]] ||
  fail "the first relayed download arrived altered (sha256)"
rm -f "$WORK/received.bin"
broker_pid=$(pid broker)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
c0=$(cpu_ticks "$broker_pid")
t1=$(_lab_now_ms)
_lab_fg "$WORK/download.out" lab_x alice timeout 200 socat -u TCP:127.0.0.1:8002 "CREATE:$WORK/received.bin" ||
  fail "the download over the relay failed: $(cat "$WORK/download.out")"
t2=$(_lab_now_ms)
c1=$(cpu_ticks "$broker_pid")
grep -q 'connected to bob via relay' "$WORK/alice.log" ||
  fail "alice did not reach bob through the relay: $(grep -m1 'connected to bob' "$WORK/alice.log" || echo 'no connection')"
grep -q "the broker's relay is reached over TCP too" "$WORK/alice.log" ||
  fail "alice did not reach the relay over TCP"
[[ $(sha256_of "$src") == $(sha256_of "$WORK/received.bin") ]] ||
  fail "the relayed download arrived altered (sha256)"
rm -f "$WORK/received.bin"
ms=$((t2 - t1))
hz=$(getconf CLK_TCK)
mbps=$(awk -v b="$nbytes" -v ms="$ms" 'BEGIN { printf "%.0f", b * 8 / ms / 1000 }')
cpu_gb=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v b="$nbytes" 'BEGIN { printf "%.2f", t / hz / (b / 1e9) }')
# natter -check names the mechanism.
check_rc=0
_lab_fg "$WORK/check.out" lab_x alice "$NATTER" -check bob -name alice -broker "$broker" \
  -identity "$WORK/alice.key" || check_rc=$?
grep -q '^path: relayed over TCP (UDP to the broker got no answer) through the broker.s relay at' "$WORK/check.out" ||
  fail "natter -check (exit $check_rc) did not say relayed over TCP: $(cat "$WORK/check.out")"
log "checked in over TCP after $t_checkin ms; relayed over TCP: $bytes in $ms ms ($mbps Mbit/s), broker CPU $cpu_gb s per GB (load average before: $load_before; $(nproc) CPUs)"

# 2. UDP comes back while a slow download runs. The reader takes half
# the file at 2 MB/s, then stops reading (flow control holds bob) until
# the test has seen the move ($go exists), then reads the rest: the
# download cannot end before the move, however slow the machine.
go=$WORK/slow.go
lab_x alice python3 - "$slow_bytes" "$go" >"$WORK/slow.out" 2>&1 <<'PY' &
import hashlib, os, socket, sys, time
want, go, got, h = int(sys.argv[1]), sys.argv[2], 0, hashlib.sha256()
s = socket.create_connection(("127.0.0.1", 8003), timeout=120)
start = time.monotonic()
while got < want:
    if got >= want // 2 and not os.path.exists(go):
        waited = time.monotonic()
        while not os.path.exists(go):
            if time.monotonic() - waited > 120:
                sys.exit("no move seen in 120 s")
            time.sleep(0.1)
    data = s.recv(65536)
    if not data:
        break
    got += len(data)
    h.update(data)
    ahead = got / 2e6 - (time.monotonic() - start)  # 2 MB/s
    if ahead > 0 and not os.path.exists(go):
        time.sleep(ahead)
print(got, h.hexdigest())
PY
slow_pid=$!
_lab_poll_log alice 'local port 8003 -> bob:7003: open' 10000 ||
  fail "the slow download did not start"
sleep 1
lab_x ra iptables -D "${block[@]}"
t3=$(_lab_now_ms)
_lab_poll_log alice 'UDP to the broker works again' 25000 ||
  fail "alice did not go back to UDP within 25 s of the unblock"
t4=$(_lab_now_ms)
_lab_poll_log alice 'path now direct' 40000 ||
  fail "alice's connection to bob did not move to a direct path within 40 s of the unblock"
t5=$(_lab_now_ms)
# A silence reported since the slow download opened is no longer than
# the time since it opened: the idle stretch before it (no stream, so
# nothing owed) is no silence.
gap=$(awk '
  function secs(ts) { split(substr(ts, 12, 12), t, ":"); return t[1] * 3600 + t[2] * 60 + t[3] }
  /local port 8003 -> bob:7003: open/ { open = secs($1) }
  open && match($0, /no answer for [0-9.]+ s with data outstanding/) {
    split(substr($0, RSTART + 14), w, " ")
    d = secs($1) - open
    if (d < 0) d += 86400 # past midnight
    if (w[1] > d + 0.5) { print $0; exit }
  }' "$WORK/alice.log")
[[ -z $gap ]] || fail "a silence was counted across the idle stretch before the stream: $gap"
# It cannot have ended (it waits for $go): if it did, the connection
# broke.
kill -0 "$slow_pid" 2>/dev/null ||
  fail "the slow download ended before the move (its connection broke): $(cat "$WORK/slow.out")"
touch "$go"
slow_rc=0
wait "$slow_pid" || slow_rc=$?
((slow_rc == 0)) || fail "the slow download failed: $(cat "$WORK/slow.out")"
read -r got sum <"$WORK/slow.out"
((got == slow_bytes)) || fail "the slow download got $got of $slow_bytes bytes"
[[ $sum == $(sha256_of "$slow_src") ]] || fail "the slow download arrived altered (sha256)"
(($(grep -c 'connected to bob' "$WORK/alice.log") == 1)) ||
  fail "alice reconnected to bob instead of moving the connection"
log "UDP back: alice left TCP $((t4 - t3)) ms after the unblock, $(grep -m1 -o 'path now direct.*' "$WORK/alice.log") $((t5 - t3)) ms after it, during a $((slow_bytes / 1048576))M download (sha256 ok, same connection)"

stop alice
stop bob
stop broker
for who in alice bob broker; do
  [[ ${EXIT_STATUS[$who]} == 0 ]] || fail "$who exited with status ${EXIT_STATUS[$who]} on SIGTERM"
done
log "PASS"
