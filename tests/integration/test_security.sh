#!/usr/bin/env bash
# Who may do what (issue 10), as an attacker would try it on loopback:
#   - a name survives a graceful broker restart and a crash (SIGKILL): an
#     impostor with another key is refused while bob is away;
#   - -list shows the bindings, -release frees a name, and an unused name
#     expires (-name-expiry) while a name in use does not;
#   - a closed broker: missing or wrong token and unlisted keys get "not
#     authorized by the broker", the same words whether the name is bound
#     or not; a listener without peer rules is fine there;
#   - a listener admits the peers its -allow-peer rules name and refuses a
#     stranger (logging what to add); on an open broker -listen without a
#     peer rule refuses to start and names both ways out;
#   - trust on first use: a broker that later shows another key stops the
#     client with both fingerprints;
#   - remote commands are capped per peer and in total;
#   - honest transfers (checked bytes, SHA-256) work throughout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
head -c 262144 /dev/urandom >"$WORK/random.bin"
want_sum=$(sha256_of "$WORK/random.bin")

# transfer NAME PEER [ARG...]: 256 KiB through PEER's echo server over a
# stdin/stdout session as client NAME; the bytes must come back unchanged.
transfer() {
  local name=$1 peer=$2
  shift 2
  timeout --kill-after=5 30 "$NATTER" -name "$name" -broker "$BROKER" \
    -identity "$WORK/$name.key" -q "$@" ":$peer:$echo_port" \
    <"$WORK/random.bin" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
    fail "transfer as $name to $peer failed: $(cat "$WORK/$name.err")"
  [[ $(sha256_of "$WORK/$name.out") == "$want_sum" ]] ||
    fail "transfer as $name to $peer: SHA-256 differs ($(stat -c %s "$WORK/$name.out") bytes)"
}

# broker_on NAME PORT [ARG...]: a broker on 127.0.0.1:PORT with key
# $WORK/NAME.key (restartable on the same address).
broker_on() {
  local name=$1 port=$2
  shift 2
  BROKER=127.0.0.1:$port
  start "$name" "$NATTER" -server "$BROKER" -identity "$WORK/$name.key" "$@"
  wait_log "$name" "natter: broker listening on 127\.0\.0\.1:$port"
}

# impostor_refused NAME: another key claiming NAME is refused as taken.
impostor_refused() {
  expect_exit_nonzero -t 20 "$NATTER" -name "$1" -broker "$BROKER" \
    -identity "$WORK/impostor.key" -listen -allow-peer '*'
  assert_output_contains "\"?$1\"? is taken"
}

# ---- names survive restarts and crashes ------------------------------------

reg=$WORK/state/registry.db
port=$(free_port)
broker_on broker "$port" -registry "$reg"
assert_log_contains broker "name registry: .*registry\.db"
start_client bob -listen -allow-peer alice
transfer alice bob
stop_expect_clean bob

stop_expect_clean broker # graceful
broker_on broker "$port" -registry "$reg"
impostor_refused bob
start_client bob -listen -allow-peer alice
transfer alice bob

stop broker KILL # crash, with bob checked in
stop_expect_clean bob
broker_on broker "$port" -registry "$reg"
impostor_refused bob
start_client bob -listen -allow-peer alice
transfer alice bob

# -list shows who holds which name; -release frees one.
expect_exit_zero -t 10 "$NATTER" -registry "$reg" -list
bob_fp=$(grep -oE -m1 'bob: key [0-9a-f]{64}' "$WORK/bob.log") ||
  fail "bob did not log its key"
bob_fp=${bob_fp##* }
assert_output_contains "^bob +$bob_fp "
assert_output_contains "^alice +[0-9a-f]{64} "
alice_fp=$(grep -E '^alice ' <<<"$OUTPUT" | grep -oE '[0-9a-f]{64}')
start_client carol -listen -allow-peer alice
stop_expect_clean carol
expect_exit_zero -t 10 "$NATTER" -registry "$reg" -release carol
assert_output_contains 'released "carol"'
start impostor_carol "$NATTER" -name carol -broker "$BROKER" \
  -identity "$WORK/impostor.key" -listen -allow-peer alice
wait_log impostor_carol 'checked in at broker'
stop_expect_clean impostor_carol
expect_exit_nonzero -t 10 "$NATTER" -registry "$reg" -release nobody
assert_output_contains '"nobody" is not bound'
expect_exit_nonzero -t 10 "$NATTER" -registry "$WORK/none.db" -list
assert_output_contains 'none\.db: no such file'

# A corrupt registry stops the broker instead of starting empty.
printf 'this is not a database, and it is long enough to have a header %0100d' 0 \
  >"$WORK/corrupt.db"
expect_exit_nonzero -t 10 "$NATTER" -server "127.0.0.1:$(free_port)" \
  -identity "$WORK/broker.key" -registry "$WORK/corrupt.db"
assert_output_contains 'corrupt\.db'
stop_expect_clean bob
stop_expect_clean broker

# ---- unused names expire; names in use do not -------------------------------

broker_on expiring "$(free_port)" -registry "$WORK/expiring.db" \
  -name-expiry 2s
assert_log_contains expiring 'unused names expire after 2 s'
start_client temp -listen -allow-peer alice
stop_expect_clean temp
start_client stay -listen -allow-peer alice
wait_log expiring 'released 1 name unused for 2 s' 20
expect_exit_zero -t 10 "$NATTER" -registry "$WORK/expiring.db" -list
assert_output_contains '^stay '
grep -q '^temp ' <<<"$OUTPUT" && fail "temp did not expire: $OUTPUT"
# A name in use outlives several expiry periods: time must pass here.
sleep 5
expect_exit_zero -t 10 "$NATTER" -registry "$WORK/expiring.db" -list
assert_output_contains '^stay '
# temp is free again: another key gets it.
start temp2 "$NATTER" -name temp -broker "$BROKER" \
  -identity "$WORK/impostor.key" -listen -allow-peer alice
wait_log temp2 'checked in at broker'
stop_expect_clean temp2
stop_expect_clean stay
stop_expect_clean expiring

# ---- closed brokers: a token ------------------------------------------------

token=0123456789abcdef-natter-test-token
(umask 077 && printf '%s\n' "$token" >"$WORK/token")
(umask 077 && printf '%s\n' "wrong-$token" >"$WORK/wrong-token")
broker_on closed "$(free_port)" -registry "$WORK/closed.db" \
  -token-file "$WORK/token"
assert_log_contains closed 'closed broker: clients need the token'
# bob needs no peer rule here: every peer had to present the token.
start_client bob -listen -token-file "$WORK/token"
for args in "" "-token-file $WORK/wrong-token"; do
  for name in bob nobody-yet; do
    # shellcheck disable=SC2086 # $args is two words or none
    expect_exit_nonzero -t 20 "$NATTER" -name "$name" -broker "$BROKER" \
      -identity "$WORK/mallory.key" $args ":carol:$echo_port"
    assert_output_contains 'not authorized by the broker'
    grep -q 'taken' <<<"$OUTPUT" && fail "a refused client learnt that $name is taken: $OUTPUT"
  done
done
assert_log_contains closed 'refused a client .*: no token'
assert_log_contains closed 'refused a client .*: wrong token'
transfer alice bob -token-file "$WORK/token"
# The token from the environment works as well.
NATTER_TOKEN=$token transfer dave bob
stop_expect_clean bob
stop_expect_clean closed

# ---- closed brokers: admitted keys -------------------------------------------

[[ -n $alice_fp ]] || fail "cannot find alice's fingerprint"
printf '# admitted keys\n%s bob\n%s alice\n' "$bob_fp" "$alice_fp" \
  >"$WORK/admitted"
broker_on admitting "$(free_port)" -registry "$WORK/admitting.db" \
  -admitted-keys "$WORK/admitted"
start_client bob -listen
transfer alice bob
for name in mallory bob; do
  expect_exit_nonzero -t 20 "$NATTER" -name "$name" -broker "$BROKER" \
    -identity "$WORK/mallory.key" ":carol:$echo_port"
  assert_output_contains 'not authorized by the broker'
done
assert_log_contains admitting 'refused a client .*: key not admitted'
# A listed key under another name is refused too.
expect_exit_nonzero -t 20 "$NATTER" -name notalice -broker "$BROKER" \
  -identity "$WORK/alice.key" ":bob:$echo_port"
assert_output_contains 'not authorized by the broker'
stop_expect_clean bob
stop_expect_clean admitting

# ---- peer rules on an open broker -------------------------------------------

broker_on open "$(free_port)" -registry "$WORK/open.db"
assert_log_contains open 'open broker: any client may check in'
# -listen without a peer rule refuses to start, naming both ways out.
expect_exit_nonzero -t 20 "$NATTER" -name carl -broker "$BROKER" \
  -identity "$WORK/carl.key" -listen
assert_output_contains 'is open'
assert_output_contains '-allow-peer NAME'
assert_output_contains "-allow-peer '\\*'"
start_client bob -listen -allow-peer alice -allow-peer "@$bob_fp"
transfer alice bob
# A stranger is refused: bob says whom and what to add; eve gets nothing.
expect_exit_nonzero -t 20 "$NATTER" -name eve -broker "$BROKER" \
  -identity "$WORK/eve.key" -timeout 2 ":bob:$echo_port" </dev/null
wait_log bob 'refused eve \(key [0-9a-f]{64}\): not admitted .* add -allow-peer eve' 5
# A refusal rule before '*' keeps one peer out and lets others in.
stop_expect_clean bob
start_client bob -listen -allow-peer '!eve' -allow-peer '*'
transfer alice bob
expect_exit_nonzero -t 20 "$NATTER" -name eve -broker "$BROKER" \
  -identity "$WORK/eve.key" -timeout 2 ":bob:$echo_port" </dev/null
wait_log bob 'refused eve' 5

# ---- remote commands are capped per peer and in total -------------------------

stop_expect_clean bob
start_client bob -listen -allow-peer alice -allow-peer dave \
  -allow-command cat -max-commands 3 -max-commands-per-peer 2
cat_a=$(free_port)
cat_d=$(free_port)
start_client alice "$cat_a:bob:" cat
wait_log alice "forwarding 127\.0\.0\.1:$cat_a -> bob: cat"
start_client dave "$cat_d:bob:" cat
wait_log dave "forwarding 127\.0\.0\.1:$cat_d -> bob: cat"
# hold PORT: a connection that stays open (its fd kept by this shell).
declare -a held=()
hold() {
  local fd
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" || fail "cannot connect to port $1"
  held+=("$fd")
}
runs() { grep -c 'runs "cat"' "$WORK/bob.log" || true; }
wait_runs() {
  local want=$1 deadline=$(($(_now_ms) + 10000))
  until (($(runs) >= want)); do
    (($(_now_ms) < deadline)) || fail "bob ran cat $(runs) times, want $want"
    sleep 0.05
  done
}
hold "$cat_a"
hold "$cat_a"
wait_runs 2
hold "$cat_a"
wait_log bob 'refused a command for alice: it runs 2 already, the limit per peer' 10
hold "$cat_d"
wait_runs 3
hold "$cat_d"
wait_log bob 'refused a command for dave: 3 commands run already, the limit' 10
(($(runs) == 3)) || fail "bob ran cat $(runs) times, want 3"
ended() { grep -c "'s command (pid [0-9]*) ended" "$WORK/bob.log" || true; }
for fd in "${held[@]}"; do exec {fd}>&-; done
# Once they have ended (a loaded machine takes its time), commands run
# again.
deadline=$(($(_now_ms) + 20000))
until (($(ended) >= 3)); do
  (($(_now_ms) < deadline)) || fail "bob saw $(ended) of its 3 cats end"
  sleep 0.05
done
reply=$(printf 'again\n' | timeout 20 socat -t 10 - "TCP:127.0.0.1:$cat_a") ||
  fail "no reply from cat after the caps were released"
[[ $reply == again ]] || fail "cat after the caps: got '$reply'"
stop_expect_clean alice
stop_expect_clean dave
stop_expect_clean bob

# ---- trust on first use ---------------------------------------------------------

tofu_port=$(free_port)
broker_on tofu_broker "$tofu_port" -registry "$WORK/tofu.db"
start_client tofu -listen -allow-peer alice
wait_log tofu 'first contact with broker .*: remembered its key'
tofu_fp=$(grep -oE -m1 'key [0-9a-f]{64}' "$WORK/tofu_broker.log")
tofu_fp=${tofu_fp#key }
grep -q "^127.0.0.1:$tofu_port $tofu_fp\$" "$HOME/.config/natter/known_brokers" ||
  fail "known_brokers lacks the broker: $(cat "$HOME/.config/natter/known_brokers")"
stop_expect_clean tofu
stop_expect_clean tofu_broker
# The same address, another key: the client stops and shows both.
start tofu_broker "$NATTER" -server "127.0.0.1:$tofu_port" \
  -identity "$WORK/other-broker.key" -registry "$WORK/tofu.db"
wait_log tofu_broker "broker listening on 127\.0\.0\.1:$tofu_port"
other_fp=$(grep -oE -m1 'key [0-9a-f]{64}' "$WORK/tofu_broker.log")
other_fp=${other_fp#key }
expect_exit_nonzero -t 20 "$NATTER" -name tofu -broker "127.0.0.1:$tofu_port" \
  -identity "$WORK/tofu.key" -listen -allow-peer alice
assert_output_contains "$tofu_fp"
assert_output_contains "$other_fp"
assert_output_contains 'known_brokers'
# -broker-key still pins explicitly, whatever the file says.
BROKER=127.0.0.1:$tofu_port
start_client tofu -listen -allow-peer alice -broker-key "$other_fp"
stop_expect_clean tofu
stop_expect_clean tofu_broker
log "all passed"
