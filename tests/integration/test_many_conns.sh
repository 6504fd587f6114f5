#!/usr/bin/env bash
# Thousands of forwarded connections through one forward, over one peer
# connection, with the shell's usual soft descriptor limit (1024): natter
# raises its own soft limit to the hard one.
#   - both natters run with soft limit 1024 and raise it to the hard limit
#   - 2000 connections (500 in a sanitizer build) held open at once through
#     one forward all echo (bob's -max-streams 2048, 512 sanitized)
#   - the memory per open connection on both sides (RSS with them open
#     against idle) is logged and stays under 100 KiB (plain build)
#   - beyond bob's streams and alice's queue (1024): 48 more connections get
#     the last streams, 1024 wait, and the 20 after those are closed at once
#     (alice logs the queue's bound, once, not per connection); once the
#     2000 close, the 1024 waiting ones get streams and echo (sanitized:
#     as many as bob's 512 streams allow)
#   - a natter out of descriptors (hard limit 64) says so in its log, with
#     its limit, instead of failing silently, and serves again once
#     connections close
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < 8192)); then
  echo "the hard descriptor limit is $hard, below 8192: skipped" >&2
  exit 77
fi
# What a login shell usually has; natter must raise it itself. tcpcheck
# raises its own as well.
ulimit -Sn 1024

n=2000 streams=2048
if [[ $(ldd "$NATTER" 2>/dev/null) == *libasan* ]]; then
  n=500 streams=512 # ASan: several times the memory and CPU per connection
fi
extra=$((streams - n)) queue=1024 beyond=20

# rss_kib NAME: the resident set of NAME's process, in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$(pid "$1")/status"; }
# soft_fds NAME: NAME's soft descriptor limit.
soft_fds() { awk '/^Max open files/ { print $4 }' "/proc/$(pid "$1")/limits"; }

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker
start_client bob -listen -allow-peer alice -max-streams "$streams"
port=$(free_port)
start_client alice "$port:bob:$echo_port"

log "natter raised its soft descriptor limit to the hard one ($hard)"
want=$hard
[[ $want == unlimited ]] && want=1048576
for name in alice bob; do
  [[ $(soft_fds "$name") == "$want" ]] ||
    fail "$name's soft descriptor limit is $(soft_fds "$name"), want $want"
done

expect_exit_zero "$TCPCHECK" echo-check "$port" --conns 2 --bytes 64K
idle_alice=$(rss_kib alice) idle_bob=$(rss_kib bob)

log "$n connections held open at once, all echo"
start held "$TCPCHECK" hold "$port" --conns "$n" --timeout 120
wait_log held "^echoed=$n closed=0 lost=0\$" 60
wait_established_to "$echo_port" "$n"
open_alice=$(rss_kib alice) open_bob=$(rss_kib bob)
per_alice=$(((open_alice - idle_alice) * 1024 / n))
per_bob=$(((open_bob - idle_bob) * 1024 / n))
log "memory per open connection: alice $per_alice bytes, bob $per_bob bytes" \
  "(RSS $idle_alice -> $open_alice KiB and $idle_bob -> $open_bob KiB)"
if [[ $n == 2000 ]]; then
  ((per_alice < 100 * 1024 && per_bob < 100 * 1024)) ||
    fail "more than 100 KiB per open connection"
fi

log "$extra get the last streams, $queue wait, $beyond more are closed"
start more "$TCPCHECK" hold "$port" --conns $((extra + queue + beyond)) \
  --timeout 120
wait_log more "^echoed=$extra closed=$beyond lost=0\$" 60
wait_log alice "bob: $queue connections already wait for the peer; closing new ones"
n_lines=$(grep -c 'connections already wait for the peer' "$WORK/alice.log")
# a line a second at most: not one per closed connection
((n_lines < 5)) || fail "alice logged the full queue $n_lines times for $beyond connections"
wait_log alice "bob: all $streams streams it allows are open"
(($(established_to "$echo_port") == streams)) ||
  fail "$(established_to "$echo_port") connections reach the echo server, want $streams"

# as many as bob's streams allow: all of them in a plain build
served=$((extra + queue))
((served <= streams)) || served=$streams
log "the $n close; waiting ones get streams and echo ($served open in all)"
stop_expect_clean held
wait_log more "^echoed=$served closed=$beyond lost=0\$" 30
stop_expect_clean more
wait_established_to "$echo_port" 0

log "out of descriptors: said in the log, and served again after"
start_client dave -listen -allow-peer eve
eport=$(free_port)
# start_client with a hard limit of 64: prlimit execs natter (same PID).
start eve prlimit --nofile=64:64 "$NATTER" -name eve -broker "$BROKER" \
  -identity "$WORK/eve.key" "$eport:dave:$echo_port"
wait_log eve "natter: forwarding 127\.0\.0\.1:$eport -> "
start many "$TCPCHECK" hold "$eport" --conns 100 --timeout 60
wait_log eve "local port $eport: cannot accept: out of file descriptors \(.*this process may open 64\)" 30
stop many
expect_exit_zero "$TCPCHECK" echo-check "$eport" --conns 4 --bytes 1K
stop_expect_clean eve
stop_expect_clean alice
stop_expect_clean bob
log "passed: $n held at once; per connection alice $per_alice B, bob $per_bob B"
