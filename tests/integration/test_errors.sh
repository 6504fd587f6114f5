#!/usr/bin/env bash
# Every error a user can meet: a one-line message on stderr that names the
# cause, and the right behaviour. Start-up errors exit non-zero (usage
# errors exit 2); a per-connection error closes that local connection, is
# logged, and the client keeps serving its other forwards.
#
#   start-up:  broker unreachable, name taken, broker key mismatch (and a
#              matching -broker-key works), local port in use, bad specs,
#              missing -name / -broker
#   per-conn:  peer unknown, peer not listening, target refused on the
#              peer, target denied by the peer's rules, a peer that does
#              not answer the broker (stopped: never introduced)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# expect_closed PORT WHAT: connect to 127.0.0.1:PORT without ever sending
# or half-closing; natter must close the connection (EOF or reset) within
# 20 s without sending any data.
expect_closed() {
  local port=$1 what=$2 status=0 got
  exec 3<>"/dev/tcp/127.0.0.1/$port" ||
    fail "$what: cannot connect to 127.0.0.1:$port"
  got=$(timeout 20 cat <&3 2>/dev/null) || status=$?
  exec 3>&-
  ((status != 124)) ||
    fail "$what: natter did not close the connection to 127.0.0.1:$port within 20 s"
  [[ -z $got ]] || fail "$what: got data '$got' on 127.0.0.1:$port"
}

# assert_error_line REGEX: exactly one line of the last command's output
# matches REGEX, and it is a natter log line.
assert_error_line() {
  local n
  n=$(grep -cE -- "$1" <<<"$OUTPUT") || true
  ((n == 1)) || fail "want one line matching /$1/, got $n; output: $OUTPUT"
  grep -E -- "$1" <<<"$OUTPUT" | grep -Eq "^${LOG_TS}natter: " ||
    fail "the error line does not start with 'natter: '; output: $OUTPUT"
}

# re_escape STRING: STRING as an extended regex that matches it literally.
# shellcheck disable=SC2016 # a sed script, not a shell expansion
re_escape() { sed 's/[][\.*^$(){}?+|/]/\\&/g' <<<"$1"; }

# check_echo PORT: one line through 127.0.0.1:PORT comes back unchanged.
check_echo() {
  local port=$1 msg="still working via $1" reply
  reply=$(printf '%s\n' "$msg" |
    timeout 20 socat -t 10 - "TCP:127.0.0.1:$port") ||
    fail "no reply through 127.0.0.1:$port"
  [[ $reply == "$msg" ]] ||
    fail "through 127.0.0.1:$port: sent '$msg', got back '$reply'"
}

echo_port=$(free_port)
closed_port=$(free_port) # nothing listens there, on bob's side either
start_echo_server echo "$echo_port"
start_broker broker
broker_fp=$(grep -oE -m1 'key [0-9a-f]{64}' "$WORK/broker.log") ||
  fail "the broker did not log 'key <64 hex digits>' at start"
broker_fp=${broker_fp#key }

start_client bob -listen -allow-peer alice -allow-peer dave -allow-peer pinned
p_dave=$(free_port) # dave forwards but does not -listen
start_client dave "$p_dave:bob:$echo_port"
start_client erin -listen -allow-peer alice # will be frozen: never answers

# ---- erin is stopped before alice reaches out: the broker asks erin
# whether it admits alice, and hears nothing -----------------------------
kill -STOP "$(pid erin)"
p_unknown=$(free_port)
p_notlisten=$(free_port)
p_refused=$(free_port)
p_denied=$(free_port)
p_good=$(free_port)
p_punch=$(free_port)
start_client alice "$p_unknown:nobody:22" "$p_notlisten:dave:22" \
  "$p_refused:bob:$closed_port" "$p_denied:bob:192.0.2.1:22" \
  "$p_good:bob:$echo_port" "$p_punch:erin:$echo_port"
# The connection to erin's forward waits in the background (default
# -timeout: 10 s) while the other checks run.
# shellcheck disable=SC2016 # $1 expands in the child shell
start punch_conn bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 99
  timeout 40 cat <&3; echo "status $?"' _ "$p_punch"
punch_start_ms=$(_now_ms)

# ---- start-up errors ---------------------------------------------------

# Broker unreachable: a UDP port with nothing on it.
nobody_port=$(free_port)
t0=$(_now_ms)
expect_exit_nonzero -t 9 "$NATTER" -name lonely -broker "127.0.0.1:$nobody_port" \
  -identity "$WORK/lonely.key" "$(free_port):bob:22"
log "broker unreachable: exit $STATUS after $(($(_now_ms) - t0)) ms"
assert_error_line "cannot reach broker 127\.0\.0\.1:$nobody_port"

# Name taken: bob's name with another key.
expect_exit_nonzero -t 20 "$NATTER" -name bob -broker "$BROKER" \
  -identity "$WORK/bob-impostor.key" -listen
assert_error_line '"?bob"? is taken'
running bob || fail "bob exited when an impostor claimed his name"

# Broker key pinning: a wrong fingerprint is refused ...
wrong_fp=$(printf '%064d' 0)
[[ $wrong_fp != "$broker_fp" ]] || fail "the broker's key is all zeros?"
expect_exit_nonzero -t 20 "$NATTER" -name pinned -broker "$BROKER" \
  -identity "$WORK/pinned.key" -broker-key "$wrong_fp" "$(free_port):bob:22"
assert_error_line 'broker.*[Kk]ey'
assert_output_contains "$BROKER"
# ... a malformed one too ...
expect_exit_nonzero -t 20 "$NATTER" -name pinned -broker "$BROKER" \
  -identity "$WORK/pinned.key" -broker-key abc123 "$(free_port):bob:22"
assert_error_line 'broker.*[Kk]ey'
# ... and the right one works, end to end.
p_pinned=$(free_port)
start_client pinned -broker-key "$broker_fp" "$p_pinned:bob:$echo_port"
check_echo "$p_pinned"
stop_expect_clean pinned

# Local port in use: the echo server holds $echo_port.
expect_exit_nonzero -t 20 "$NATTER" -name busy -broker "$BROKER" \
  -identity "$WORK/busy.key" "$echo_port:bob:22"
assert_error_line "already in use"
assert_output_contains "$echo_port"

# Malformed specs: non-zero (1 or 2), "bad spec" with the spec quoted.
for spec in 8022:bob x:bob:22 0:bob:22 8022:bob:70000 8022::22 \
  70000:bob:22 "8022:bob:[::1:22" 8022:b@d:22 8022:bob:host:0; do
  expect_exit_nonzero -t 20 "$NATTER" -name specs -broker "$BROKER" \
    -identity "$WORK/specs.key" "$spec"
  ((STATUS == 1 || STATUS == 2)) ||
    fail "bad spec '$spec': exit status $STATUS, want 1 or 2; output: $OUTPUT"
  assert_error_line "bad spec \"$(re_escape "$spec")\""
done

# Usage errors: exit 2.
expect_exit_nonzero -t 10 "$NATTER" -broker "$BROKER" \
  -identity "$WORK/x.key" -listen
((STATUS == 2)) || fail "missing -name: exit $STATUS, want 2; output: $OUTPUT"
assert_error_line 'missing -name'
expect_exit_nonzero -t 10 "$NATTER" -name x -identity "$WORK/x.key" -listen
((STATUS == 2)) || fail "missing -broker: exit $STATUS, want 2; output: $OUTPUT"
assert_error_line 'missing -broker'

# ---- per-connection errors: logged, the connection closed, alice lives --

expect_closed "$p_unknown" "peer unknown"
wait_log alice '"?nobody"? is unknown' 10
expect_closed "$p_unknown" "peer unknown, second try" # no cached hang

expect_closed "$p_notlisten" "peer not listening"
wait_log alice '"?dave"? is not listening' 10

check_echo "$p_good" # connects alice to bob

expect_closed "$p_refused" "target refused"
wait_log alice "$p_refused -> bob:$closed_port: .*refused" 10
running alice || fail "alice exited after a refused target"
check_echo "$p_good" # the same process, the same peer connection

expect_closed "$p_denied" "target denied"
wait_log alice "$p_denied -> bob:192\.0\.2\.1:22: .*allows only" 10
wait_log bob "allows only.*192\.0\.2\.1:22|192\.0\.2\.1:22.*allows only" 10
check_echo "$p_good"

# Frozen erin never answers the broker's question: the broker gives up
# after 5 s and alice says why, well within the -timeout (10 s), and
# within 15 s of the first connection to its forward.
left_s=$((15 - ($(_now_ms) - punch_start_ms) / 1000))
((left_s > 0)) || left_s=1
wait_log alice 'the broker cannot introduce us to erin: erin did not answer whether it admits you' "$left_s"
wait_exit punch_conn 20
assert_log_lacks punch_conn 'status 124' # closed, not timed out
[[ $(grep -v '^status' "$WORK/punch_conn.log" | grep -cv 'reset by peer') == 0 ]] ||
  fail "the connection to erin's forward got data: $(cat "$WORK/punch_conn.log")"
kill -CONT "$(pid erin)"
check_echo "$p_good"

# -port fixes a client's UDP port (for a router's port forward); a port
# already taken is a start-up error that names it.
udp_port=$(free_port)
start_client frank -listen -allow-peer alice -port "$udp_port"
wait_log frank "UDP port $udp_port\$"
udp_socks=$(ss -Hlun "sport = :$udp_port")
[[ -n $udp_socks ]] || fail "frank does not hold UDP port $udp_port"
expect_exit_nonzero -t 20 "$NATTER" -name gina -broker "$BROKER" \
  -identity "$WORK/gina.key" -listen -port "$udp_port"
assert_output_contains "cannot bind UDP .*:$udp_port.*in use"
expect_exit_nonzero -t 5 "$NATTER" -name gina -broker "$BROKER" -port 0 -listen
((STATUS == 2)) || fail "-port 0: exit $STATUS, want 2 (usage)"

# A broker asked to relay whose relay port (its port + 2) is taken fails to
# start, names the port, and frees what it had opened (the mapping-check
# port's event, once leaked on this path). frank holds $udp_port.
base=$((udp_port - 2))
if [[ -z $(ss -Hlun "sport = :$base") ]]; then
  expect_exit_nonzero -t 20 "$NATTER" -server "127.0.0.1:$base" -relay \
    -identity "$WORK/relaybroker.key"
  assert_output_contains "cannot open the relay port 127\.0\.0\.1:$udp_port: .*in use"
  ((STATUS == 1)) || fail "a broker with its relay port taken: exit $STATUS, want 1 (output: $OUTPUT)"
  ! grep -q Sanitizer <<<"$OUTPUT" || fail "a broker with its relay port taken: $OUTPUT"
else
  log "UDP port $base is taken by another program: the relay-port case is skipped"
fi

# Every per-connection error left alice running; all of them exit 0.
running alice || fail "alice exited after per-connection errors"
for name in alice dave erin frank bob broker; do
  stop_expect_clean "$name"
done
