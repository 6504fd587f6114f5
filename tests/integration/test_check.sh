#!/usr/bin/env bash
# natter -check PEER: a diagnostic session that checks the way to a peer
# and prints both sides' view with a verdict, exiting 0 for "direct works"
# and with a distinct status for each failure (natter(1)). Here on
# loopback: direct works (both sides reported, -json parsed), while a
# client runs under the same name and key and keeps its connection and
# its forward (the broker must not take the check for a restart); an
# unknown peer (6), a peer that does not listen (5), a peer whose rules
# refuse us (7), and -check mixed with -listen (usage, 2).
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker
start_client bob -listen -allow-peer alice
fwd=$(free_port)
# The daemon that runs as alice: a forward to bob, connected before the
# check, used again after it.
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K
wait_log alice "natter: connected to bob"

check() {
  run_capture 40 "$NATTER" -name "$1" -broker "$BROKER" \
    -identity "$WORK/$1.key" -check "${@:2}"
}

# Direct works: the table, both columns filled from both sides.
check alice bob
((STATUS == 0)) || fail "-check bob exited $STATUS; output: $OUTPUT"
assert_output_contains '^natter check: alice -> bob, broker 127\.0\.0\.1:'
assert_output_contains '^NAT mapping +endpoint-independent +endpoint-independent$'
# (This host's other addresses are candidates too, IPv6 ones included:
# any may win.)
hostaddr='([0-9.]+|\[[0-9a-f:.]+\]):[0-9]+'
assert_output_contains "^probes arrived +[1-9][0-9]* \\(from $hostaddr\\) +[1-9][0-9]* \\(from $hostaddr\\)\$"
assert_output_contains '^outcome +connected +connected$'
assert_output_contains "^path: direct to $hostaddr, connected [0-9]+ ms after the introduction, RTT [0-9.]+ ms"
assert_output_contains '^verdict: direct works$'
assert_log_contains bob 'check by alice: connected; reporting to the broker'

# -json: one object with stable keys.
check alice bob -json
((STATUS == 0)) || fail "-check bob -json exited $STATUS; output: $OUTPUT"
python3 -c 'import json, sys
d = json.loads(sys.argv[1])
assert d["verdict"] == "direct" and d["exit_code"] == 0, d
assert d["verdict_text"] == "direct works" and d["connected"] and d["path"] == "direct", d
assert d["error"] == "ok" and d["connect_ms"] >= 0 and d["rtt_ms"] > 0, d
for side, name in (("self", "alice"), ("peer", "bob")):
    s = d[side]
    assert s["name"] == name and s["reported"] and s["outcome"] == "connected", s
    assert s["mapping"] == "endpoint-independent", s
    assert s["public_address"].startswith("127.0.0.1:"), s
    assert s["candidates"] and s["probe_rounds"] >= 1 and s["probes_received"] >= 1, s
    assert s["probes_from"] and s["probes_from"].rsplit(":", 1)[0] in [c.rsplit(":", 1)[0] for c in d["peer" if side == "self" else "self"]["candidates"]], s
assert d["self"]["candidates"][0] == d["peer"]["public_address"], d
assert d["peer"]["candidates"][0] == d["self"]["public_address"], d' \
  "$OUTPUT" || fail "-json output: $OUTPUT"

# The daemon running as alice never noticed: no restart notice, the same
# connection, and its forward still works.
assert_log_lacks broker 'telling .* restarted'
assert_log_lacks alice 'restarted|connection to bob closed|lost the broker'
assert_log_lacks bob 'natter: connection to alice closed'
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 20K
[[ $(grep -c 'natter: connected to bob' "$WORK/alice.log") == 1 ]] ||
  fail "alice's daemon connected to bob more than once: $(grep 'connected to bob' "$WORK/alice.log")"

# Unknown peer: 6.
check alice nobody
((STATUS == 6)) || fail "-check nobody exited $STATUS (want 6); output: $OUTPUT"
assert_output_contains '^verdict: nobody is unknown: no client of that name is checked in at the broker$'

# A peer that does not listen: 5.
start_client dave "$(free_port):bob:$echo_port"
check alice dave -json
((STATUS == 5)) || fail "-check dave exited $STATUS (want 5); output: $OUTPUT"
python3 -c 'import json, sys
d = json.loads(sys.argv[1].splitlines()[-1])
assert d["verdict"] == "not-listening" and d["exit_code"] == 5, d
assert d["verdict_text"] == "dave does not listen: it is checked in without -listen", d' \
  "$OUTPUT" || fail "-check dave -json: $OUTPUT"

# A peer whose rules do not admit us: 7, as soon as it says so.
t0=$(_now_ms)
check carol bob
((STATUS == 7)) || fail "-check bob as carol exited $STATUS (want 7); output: $OUTPUT"
assert_output_contains '^outcome +- +refused$'
assert_output_contains '^verdict: bob refuses us: its -allow-peer rules do not admit carol$'
(($(_now_ms) - t0 < 8000)) || fail "the refusal took $(($(_now_ms) - t0)) ms"

# A check is a check only.
run_capture 10 "$NATTER" -name alice -broker "$BROKER" -check bob -listen
((STATUS == 2)) || fail "-check with -listen exited $STATUS (want 2): $OUTPUT"
assert_output_contains '-check runs a check only'
log "ok"
