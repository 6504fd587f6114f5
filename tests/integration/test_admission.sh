#!/usr/bin/env bash
# A listener's peer rules decide before anything is spent on a requester
# (issue 22): the broker asks bob (AdmissionQuery) and introduces only
# those bob admits. Each attack of the issue, against bob (-allow-peer
# alice) on a broker with -relay, while alice's forward to bob and her
# `natter -check bob` must keep working throughout:
#   (6) mallory's `natter -check bob -json` exits 7 (refused) and shows
#       none of bob's addresses, its key or its NAT type; the broker never
#       introduces mallory;
#   (1) trudy floods check requests from 3 diagnostic sessions every
#       50 ms: bob never loses the broker (its answers are owed, not
#       counted against it) and logs one refusal;
#   (2) mallet asks for bob 30 times: no introduction, no relay channel,
#       and alice still gets a relay channel for bob;
#   (10) 25 strangers ask every 300 ms for 10 s (over 800 requests): bob
#       logs at most 10 refusal lines, and its metrics count the
#       refusals;
#   and a client of protocol 1 is told to upgrade.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

FLOOD=${NATTER_FLOOD:-$(dirname "$NATTER")/natter-flood}
[[ -x $FLOOD ]] || fail "$FLOOD is not an executable (build natter_flood)"

field() { sed -n "s/^$2 \(.*\)$/\1/p" "$WORK/$1.log"; }

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -relay -new-names-per-hour 0 # 25 strangers from one address
m_bob=$(free_port)
start_client bob -listen -allow-peer alice -metrics "127.0.0.1:$m_bob"
bob_fp=$(grep -o 'key [0-9a-f]\{64\}' "$WORK/bob.log" | head -n1 | cut -d' ' -f2)
[[ -n $bob_fp ]] || fail "bob logged no key"
bob_port=$(grep -oE 'bob checked in from 127\.0\.0\.1:[0-9]+' \
  "$WORK/broker.log" | head -n1)
bob_port=${bob_port##*:}
[[ -n $bob_port ]] || fail "the broker logged no address for bob"
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K
wait_log alice "natter: connected to bob"

# honest: alice's check of bob says "direct works" and her forward moves
# bytes.
honest() {
  run_capture 40 "$NATTER" -name alice -broker "$BROKER" \
    -identity "$WORK/alice.key" -check bob
  ((STATUS == 0)) || fail "alice's -check bob exited $STATUS ($1); output: $OUTPUT"
  expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 100K
}

# refusal_lines NAME_REGEX: how many refusal lines of bob name a match.
refusal_lines() {
  grep -cE "natter: refused $1 \(key " "$WORK/bob.log" || true
}

log "(6) a refused check learns nothing about bob"
run_capture 40 "$NATTER" -name mallory -broker "$BROKER" \
  -identity "$WORK/mallory.key" -check bob -json
((STATUS == 7)) || fail "mallory's -check bob exited $STATUS (want 7); output: $OUTPUT"
python3 -c 'import json, sys
d = json.loads(sys.argv[1].splitlines()[-1])
assert d["verdict"] == "refused" and d["exit_code"] == 7, d
assert d["verdict_text"] == "bob refuses us: its -allow-peer rules do not admit mallory", d
p = d["peer"]
assert p["outcome"] == "refused" and p["public_address"] == "", p
assert p["mapping"] == "unknown" and p["candidates"] == [], p
assert d["self"]["candidates"] == [] and d["address"] == "", d' \
  "$OUTPUT" || fail "mallory's -check -json: $OUTPUT"
# Nowhere in what mallory saw (its log included): bob's port or key (its
# NAT type: the peer's "mapping" above).
[[ $OUTPUT != *":$bob_port"* ]] || fail "mallory learnt bob's port $bob_port: $OUTPUT"
[[ $OUTPUT != *"$bob_fp"* && $OUTPUT != *"${bob_fp:0:16}"* ]] ||
  fail "mallory learnt bob's key: $OUTPUT"
wait_log broker "bob's peer rules do not admit mallory"
assert_log_lacks broker 'introducing mallory to bob'
wait_log bob 'refused mallory \(key [0-9a-f]{64}\): not admitted .* add -allow-peer mallory'
honest "after mallory's check"

log "(1) check requests from 3 sessions every 50 ms do not drop bob"
start trudy "$FLOOD" ask "$BROKER" 127.0.0.7 trudy bob 3 50 12 check
wait_log broker "trudy checked in from .* for a check" 20
for i in 1 2 3; do
  running trudy || break
  honest "during trudy's flood, round $i"
done
wait_exit trudy 40
((EXIT_STATUS[trudy] == 0)) || fail "natter-flood failed: $(cat "$WORK/trudy.log")"
[[ $(field trudy checked-in) == 3 ]] || fail "trudy: $(cat "$WORK/trudy.log")"
(($(field trudy requests) >= 300)) || fail "trudy sent too few requests: $(cat "$WORK/trudy.log")"
[[ $(field trudy introductions) == 0 ]] || fail "trudy was introduced: $(cat "$WORK/trudy.log")"
(($(field trudy denied) >= 300)) || fail "trudy's requests were not refused: $(cat "$WORK/trudy.log")"
[[ $(field trudy last-result) == "bob's peer rules do not admit you" ]] ||
  fail "trudy heard: $(cat "$WORK/trudy.log")"
assert_log_lacks bob 'lost the broker'
assert_log_lacks broker 'dropping client .*too many control messages'
assert_log_contains broker "bob's peer rules do not admit trudy"
(($(refusal_lines trudy) == 1)) ||
  fail "bob logged $(refusal_lines trudy) refusals of trudy, want 1"

log "(2) a stranger's requests take none of bob's relay channels"
start mallet "$FLOOD" ask "$BROKER" 127.0.0.8 mallet bob 1 100 4 connect
wait_exit mallet 40
((EXIT_STATUS[mallet] == 0)) || fail "natter-flood failed: $(cat "$WORK/mallet.log")"
(($(field mallet requests) >= 20)) || fail "mallet: $(cat "$WORK/mallet.log")"
[[ $(field mallet introductions) == 0 && $(field mallet relay-tokens) == 0 ]] ||
  fail "mallet was introduced: $(cat "$WORK/mallet.log")"
assert_log_lacks broker 'introducing mallet to bob|relay: no channel'
honest "after mallet's requests"
last=$(grep -E 'introducing alice to bob' "$WORK/broker.log" | tail -n1)
[[ $last == *"(relay channel open)" ]] ||
  fail "alice got no relay channel for bob: $last"

log "(10) 25 strangers asking for 10 s: bounded log lines, counted"
start strangers "$FLOOD" ask "$BROKER" 127.0.0.9 stranger bob 25 300 10 \
  check-names
wait_log broker "stranger[0-9]+ checked in from .* for a check" 20
honest "during the strangers' flood"
wait_exit strangers 40
((EXIT_STATUS[strangers] == 0)) || fail "natter-flood failed: $(cat "$WORK/strangers.log")"
[[ $(field strangers checked-in) == 25 ]] || fail "strangers: $(cat "$WORK/strangers.log")"
(($(field strangers requests) >= 500)) || fail "strangers: $(cat "$WORK/strangers.log")"
[[ $(field strangers introductions) == 0 ]] || fail "strangers: $(cat "$WORK/strangers.log")"
lines=$(refusal_lines 'stranger[0-9]+')
((lines >= 1 && lines <= 10)) || fail "bob logged $lines refusals of strangers, want 1-10"
curl -sS --max-time 10 "http://127.0.0.1:$m_bob/metrics" >"$WORK/bob.metrics" ||
  fail "cannot read bob's metrics"
refused=$(awk '$1 == "natter_client_peers_refused_total" { print $2 }' \
  "$WORK/bob.metrics")
# Each stranger once at least; mallory, trudy and mallet too.
((${refused:-0} >= 28)) || fail "bob's refusal counter is ${refused:-none}, want 28 or more"
assert_log_lacks bob 'lost the broker'
honest "after the strangers"

log "a client of protocol 1 is told to upgrade"
start old "$FLOOD" ask "$BROKER" 127.0.0.10 oldtimer bob 1 100 2 v1
wait_exit old 30
[[ $(field old last-result) == *"the client speaks 1, the broker 2; upgrade natter on the client"* ]] ||
  fail "a protocol 1 client heard: $(cat "$WORK/old.log")"

assert_log_lacks broker 'AddressSanitizer|runtime error'
stop_expect_clean alice
stop_expect_clean bob
stop_expect_clean broker
log "passed"
