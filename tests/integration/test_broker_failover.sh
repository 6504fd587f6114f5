#!/usr/bin/env bash
# Several brokers of one network (-broker B1,B2,...; doc/design.md,
# "Several brokers"), on one PostgreSQL database (pg.sh) and one identity
# key file:
#   - bob (listener, trust on first use) and alice (forward, -broker-key)
#     check in at the first broker of the list; bob's known_brokers
#     remembers the key for the list as given;
#   - a broker with another key (the list's second) is refused with both
#     fingerprints and skipped;
#   - kill -9 of the broker both use: both check in at the next usable one
#     within 5 s (log timestamps), the forwarded transfer in flight ends
#     with the right SHA-256, the peer connection is not made again, and a
#     new connection through alice's forward works;
#   - a new client skips a broker that does not answer, and is introduced
#     to bob at the broker bob moved to;
#   - every broker down: one round through the list, then backoff; a
#     broker that comes back is found;
#   - a name with two addresses (an /etc/hosts of the client's own) is two
#     brokers, remembered in known_brokers by the name.
# The list is ordered (B1, rogue, B2, B3) so that both clients land on B2:
# introductions across brokers are not this test's subject.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=pg.sh
. "$(dirname "$0")/pg.sh"
command -v socat >/dev/null || {
  log "SKIP: socat not installed"
  exit 77
}

pg_init

# broker NAME PORT KEYFILE: a broker on 127.0.0.1:PORT on the database.
broker() {
  start "$1" "$NATTER" -server "127.0.0.1:$2" -identity "$3" \
    -registry "$PG_URI"
}

p1=$(free_port)
p2=$(free_port)
p3=$(free_port)
p0=$(free_port)
netkey=$WORK/network.key
# The first creates the network's key file; the others copy it, as an
# operator does (doc/operations.md, "Several brokers of one network").
broker b1 "$p1" "$netkey"
wait_log b1 "natter: broker listening on 127\.0\.0\.1:$p1"
broker b2 "$p2" "$netkey"
broker b3 "$p3" "$netkey"
broker rogue "$p0" "$WORK/rogue.key"
wait_log b2 "natter: broker listening on 127\.0\.0\.1:$p2"
wait_log b3 "natter: broker listening on 127\.0\.0\.1:$p3"
wait_log rogue "natter: broker listening on 127\.0\.0\.1:$p0"
fp=$(grep -oE -m1 'key [0-9a-f]{64}' "$WORK/b1.log") || fail "b1 logged no key"
fp=${fp#key }
rogue_fp=$(grep -oE -m1 'key [0-9a-f]{64}' "$WORK/rogue.log") || fail "rogue logged no key"
rogue_fp=${rogue_fp#key }
grep -q "key $fp" "$WORK/b2.log" || fail "b2 does not have the network's key"
[[ $fp != "$rogue_fp" ]] || fail "the rogue broker has the network's key"

LIST="127.0.0.1:$p1, 127.0.0.1:$p0,127.0.0.1:$p2,127.0.0.1:$p3"
NORM="127.0.0.1:$p1,127.0.0.1:$p0,127.0.0.1:$p2,127.0.0.1:$p3"

sink_port=$(free_port)
start_sink_server sink "$sink_port"
BROKER=$LIST
start_client bob -listen -allow-peer alice -allow-peer carol
fwd=$(free_port)
start_client alice -broker-key "$fp" "$fwd:bob:$sink_port"
assert_log_contains bob "checked in at broker 127\.0\.0\.1:$p1 as bob"
assert_log_contains alice "checked in at broker 127\.0\.0\.1:$p1 as alice"
assert_log_contains bob "first contact with the brokers $NORM .*remembered their key $fp"
grep -qxF "$NORM $fp" "$HOME/.config/natter/known_brokers" ||
  fail "known_brokers lacks the list: $(cat "$HOME/.config/natter/known_brokers")"

# A transfer that is in flight when the broker dies: half of it before,
# the rest after the move.
head -c 8M /dev/urandom >"$WORK/data"
want=$(sha256sum "$WORK/data" | cut -d' ' -f1)
start xfer bash -c "{ head -c 4M '$WORK/data'; while [[ ! -e '$WORK/go' ]]; do sleep 0.05; done;
  tail -c +4194305 '$WORK/data'; } | socat -t 60 -T 60 - TCP:127.0.0.1:$fwd >'$WORK/reply'"
wait_tcp_busy "$sink_port" 1 20
wait_log alice "natter: connected to bob" 20

kill -9 "$(pid b1)"
killed_ms=$(_now_ms)
_reap b1
wait_log bob "checked in at broker 127\.0\.0\.1:$p2 as bob" 20
wait_log alice "checked in at broker 127\.0\.0\.1:$p2 as alice" 20

# When each checked in again, from its log's timestamp.
checked_in_ms() {
  local line ts
  line=$(grep -E "checked in at broker 127\.0\.0\.1:$p2 as $1" "$WORK/$1.log" | head -1)
  ts=${line%% *}
  [[ $ts =~ ^[0-9]{4}-.*Z$ ]] || fail "$1's log lines have no timestamp: $line"
  date -d "$ts" +%s%3N
}
for who in bob alice; do
  t=$(checked_in_ms "$who")
  moved=$((t - killed_ms))
  log "$who checked in at the next broker $moved ms after the kill"
  ((moved <= 5000)) || fail "$who took $moved ms (> 5000) to check in at another broker"
done
assert_log_contains bob "lost the broker 127\.0\.0\.1:$p1 \(no answer\); trying broker 127\.0\.0\.1:$p0 next"
# bob's status page names the broker in use.
bob_udp=$(grep -oE -m1 'UDP port [0-9]+' "$WORK/bob.log") || fail "bob logged no UDP port"
expect_exit_zero -t 20 "$NATTER" -status -name bob -port "${bob_udp#UDP port }" \
  -identity "$WORK/bob.key"
assert_output_contains "^checked in, public address .*, broker 127\.0\.0\.1:$p2\$"
for who in bob alice; do
  assert_log_contains "$who" "broker 127\.0\.0\.1:$p0 presents key $rogue_fp, but the key of this network \($NORM\) is $fp"
  assert_log_contains "$who" "broker 127\.0\.0\.1:$p0 skipped: trying broker 127\.0\.0\.1:$p2 next"
done
assert_log_contains bob "remembered in .*known_brokers:"
assert_log_contains alice "pinned by -broker-key"

# The transfer in flight ends whole.
touch "$WORK/go"
deadline=$(($(_now_ms) + 60000))
while running xfer; do
  (($(_now_ms) < deadline)) || fail "the transfer in flight did not end in 60 s"
  sleep 0.1
done
_reap xfer
((EXIT_STATUS[xfer] == 0)) || fail "socat exited with ${EXIT_STATUS[xfer]}"
got=$(tr -d '\n' <"$WORK/reply")
[[ $got == "$want" ]] || fail "the transfer in flight arrived with sha256 '$got', want $want"

# The peer connection was never made again, and a new connection through
# the forward works after the move.
n=$(grep -c "natter: connected to bob" "$WORK/alice.log") || true
((n == 1)) || fail "alice connected to bob $n times (the move must not touch it)"
expect_exit_zero -t 30 "$TCPCHECK" send "$fwd" --bytes 1M
assert_output_contains '^bytes=1048576 '

# A new client checks in at the first broker that answers (the dead b1
# is given up after the 5 s handshake timeout), and is introduced to bob
# at the broker bob moved to.
cfwd=$(free_port)
start carol "$NATTER" -name carol -broker "127.0.0.1:$p1,127.0.0.1:$p2" \
  -identity "$WORK/carol.key" -broker-key "$fp" "$cfwd:bob:$sink_port"
wait_log carol "checked in at broker 127\.0\.0\.1:$p2 as carol" 30
assert_log_contains carol "broker 127\.0\.0\.1:$p1 could not be used \(did not answer\); trying broker 127\.0\.0\.1:$p2 next"
expect_exit_zero -t 30 "$TCPCHECK" send "$cfwd" --bytes 256K
wait_log carol "natter: connected to bob" 20
stop_expect_clean carol

# Every broker down: bob goes round the list once, then backs off; a
# broker that comes back is found.
kill -9 "$(pid b2)" "$(pid b3)"
_reap b2
_reap b3
wait_log bob "lost the broker 127\.0\.0\.1:$p2 \(no answer\)" 20
wait_log bob "all 4 brokers tried: retrying in [0-9]+ s, at 127\.0\.0\.1:$p2" 60
broker b3 "$p3" "$netkey"
wait_log b3 "natter: broker listening on 127\.0\.0\.1:$p3"
wait_log bob "checked in at broker 127\.0\.0\.1:$p3 as bob" 60

# A name with several addresses is several brokers: erin resolves
# brokers.natter.test to 127.0.0.2 and 127.0.0.3 (an /etc/hosts of its own,
# in a mount namespace), checks in at the first, and moves to the second.
pn=$(free_port)
start b4 "$NATTER" -server "127.0.0.2:$pn" -identity "$netkey" -registry "$PG_URI"
start b5 "$NATTER" -server "127.0.0.3:$pn" -identity "$netkey" -registry "$PG_URI"
wait_log b4 "natter: broker listening on 127\.0\.0\.2:$pn"
wait_log b5 "natter: broker listening on 127\.0\.0\.3:$pn"
printf '127.0.0.1 localhost\n127.0.0.2 brokers.natter.test\n127.0.0.3 brokers.natter.test\n' >"$WORK/hosts"
# shellcheck disable=SC2016 # expanded by the inner sh
start erin unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' \
  sh "$WORK/hosts" "$NATTER" -name erin -broker "brokers.natter.test:$pn" \
  -identity "$WORK/erin.key" -listen -allow-peer alice
wait_log erin "checked in at broker 127\.0\.0\.2:$pn as erin" 20
grep -qxF "brokers.natter.test:$pn $fp" "$HOME/.config/natter/known_brokers" ||
  fail "known_brokers lacks the name: $(cat "$HOME/.config/natter/known_brokers")"
kill -9 "$(pid b4)"
_reap b4
wait_log erin "checked in at broker 127\.0\.0\.3:$pn as erin" 20
stop_expect_clean erin

# A list longer than the limit is refused at start, saying so.
many=$(printf '127.0.0.1:%d,' $(seq 20001 20017))
expect_exit_nonzero -t 20 "$NATTER" -name dave -broker "${many%,}" \
  -identity "$WORK/dave.key" "$(free_port):bob:$sink_port"
assert_output_contains 'more than 16 broker addresses'

stop_expect_clean alice
stop_expect_clean bob
log "ok"
