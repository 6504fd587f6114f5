#!/usr/bin/env bash
# The configuration file (-config FILE; cli/config.h has the format), end to
# end with real processes. Checked:
#   - a broker from a file (server, identity, log-level)
#   - bob's and alice's files set every client key (name, broker, identity,
#     broker-key, timeout, log-level, listen, allow, allow-command, forward:
#     port forwards and command forwards, a quoted value, a broker-key with
#     ':' between pairs); both run with `-config FILE` and no other flag, and
#     each key has its effect: forwards both ways, the commands run with the
#     arguments the file gives, key files where the file says (mode 0600),
#     debug lines only from the client set to debug, the allow rule opens
#     exactly its target (when this machine has a non-loopback address to
#     point it at), the timeout bounds hole punching
#   - flags override the file (-name, -timeout) and add to its forwards
#   - a wrong broker-key in a file is refused
#   - an explicit -config that does not exist: non-zero, the path named
#   - without -config natter runs although /etc/natter/natter.conf does not
#     exist, and does not create it
#   - errors in a file: "natter: FILE:LINE: ..." with the right line, exit 2
#     (unknown key, duplicate key, bad boolean, bad forward spec,
#     unterminated quote in a value and in a forward's command, bad allow
#     and allow-command rules)
#   - a bad -allow / -allow-command flag: 'natter: -allow "RULE": reason',
#     exit 2, no key created; bare and bracketed IPv6 rules are accepted
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# send_line PORT MSG WANT: send MSG and a newline to 127.0.0.1:PORT,
# half-close; the reply must be WANT (default: MSG).
send_line() {
  local port=$1 msg=$2 want=${3-$2} reply
  reply=$(printf '%s\n' "$msg" |
    timeout 20 socat -t 10 - "TCP:127.0.0.1:$port") ||
    fail "no reply to '$msg' through 127.0.0.1:$port"
  [[ $reply == "$want" ]] ||
    fail "through 127.0.0.1:$port: sent '$msg', want back '$want', got '$reply'"
}

# expect_closed PORT WHAT: natter closes a connection to 127.0.0.1:PORT
# without sending anything.
expect_closed() {
  local got status=0
  got=$(timeout 20 socat -t 10 - "TCP:127.0.0.1:$1" </dev/null 2>&1) || status=$?
  ((status != 124)) || fail "$2: 127.0.0.1:$1 was not closed within 20 s"
  [[ -z $got || $got == *"reset by peer"* ]] || fail "$2: got '$got' on 127.0.0.1:$1"
}

# ---- a broker from a file ------------------------------------------------

mkdir -m 700 "$WORK/keys"
BROKER_PORT=$(free_port)
BROKER=127.0.0.1:$BROKER_PORT
cat >"$WORK/broker.conf" <<EOF
# the broker needs only server; identity and log-level are optional
server = 127.0.0.1:$BROKER_PORT
identity = $WORK/keys/broker.key
log-level = info
EOF
start broker "$NATTER" -config "$WORK/broker.conf"
wait_log broker "natter: broker listening on 127\.0\.0\.1:$BROKER_PORT"
fp=$(grep -oE -m1 'key [0-9a-f]{64}' "$WORK/broker.log") ||
  fail "the broker did not log 'key <64 hex digits>'"
fp=${fp#key }
fp_colons=$(sed -E 's/(..)/\1:/g; s/:$//' <<<"$fp") # 3f:1c:0a:...

# ---- services ----------------------------------------------------------------

echo_bob=$(free_port) # on bob's loopback
echo_alice=$(free_port) # on alice's loopback
start_echo_server echo_bob "$echo_bob"
start_echo_server echo_alice "$echo_alice"
# A non-loopback address of this machine, for bob's allow rule: peers reach
# only bob's loopback unless a rule allows more. (Connections to it stay on
# this machine.)
ext_ip=$(ip -4 -o addr show scope global 2>/dev/null |
  awk '{ sub(/\/.*/, "", $4); print $4; exit }') || ext_ip=""
if [[ -n $ext_ip ]]; then
  echo_ext=$(free_port)
  start echo_ext "$TCPCHECK" echo-server "$echo_ext" --bind "$ext_ip"
  wait_log echo_ext '^ready$'
else
  log "SKIPPED the allow-rule checks: this machine has no global IPv4 address"
fi

# ---- bob's and alice's files: every key -------------------------------------

p_a_echo=$(free_port) # alice -> bob's echo
p_a_cmd=$(free_port)  # alice -> a command on bob
p_a_ext=$(free_port)  # alice -> bob -> ext_ip:echo_ext (allowed)
p_a_deny=$(free_port) # alice -> bob -> ext_ip:other port (not allowed)
p_b_echo=$(free_port) # bob -> alice's echo
p_b_cmd=$(free_port)  # bob -> cat on alice

cat >"$WORK/bob.conf" <<EOF
# bob: every key a client has
name = bob
broker = $BROKER
identity = $WORK/keys/bob.key
broker-key = $fp
timeout = 7
log-level = DEBUG
listen = yes
allow = ${ext_ip:-192.0.2.1}:${echo_ext:-9}
allow-command = cat
allow-command = sh -c *
allow-peer = alice
forward = $p_b_echo:alice:$echo_alice
forward = $p_b_cmd:alice: cat
EOF

{
  printf '%s\r\n' '# alice: every key a client has; CRLF line ends' \
    '  name   =   alice  ' \
    "broker=$BROKER" \
    "identity = \"$WORK/keys/alice.key\"" \
    "broker-key = $fp_colons" \
    'timeout = 2' \
    'log-level = info' \
    '' \
    'listen = on' \
    'allow = 127.0.0.1:*' \
    'allow-command = cat' \
    'allow-peer = bob' \
    'allow-peer = bob2' \
    "forward = $p_a_echo:bob:$echo_bob" \
    "forward = $p_a_cmd:bob: sh -c 'echo \"[\$0][\$1]\"; exec cat' 'arg zero' \"arg \\\"one\\\"\""
  if [[ -n $ext_ip ]]; then
    printf '%s\r\n' "forward = $p_a_ext:bob:$ext_ip:$echo_ext" \
      "forward = $p_a_deny:bob:$ext_ip:$echo_alice"
  fi
} >"$WORK/alice.conf"

start bob "$NATTER" -config "$WORK/bob.conf"
wait_log bob 'natter: checked in at broker .* as bob .*listening'
start alice "$NATTER" -config "$WORK/alice.conf"
wait_log alice 'natter: checked in at broker .* as alice .*listening'
for p in "$p_a_echo" "$p_a_cmd" ${ext_ip:+"$p_a_ext" "$p_a_deny"}; do
  wait_log alice "natter: forwarding 127\.0\.0\.1:$p -> bob:"
done
wait_log bob "natter: forwarding 127\.0\.0\.1:$p_b_echo -> alice:$echo_alice\$"
wait_log bob "natter: forwarding 127\.0\.0\.1:$p_b_cmd -> alice: cat\$"

# Forwards both ways; each side listens, runs what its file allows, with
# the arguments the file gives.
send_line "$p_a_echo" "alice to bob's echo"
send_line "$p_a_cmd" "alice to sh on bob" \
  "[arg zero][arg \"one\"]"$'\n'"alice to sh on bob"
send_line "$p_b_echo" "bob to alice's echo"
send_line "$p_b_cmd" "bob to cat on alice"
wait_log alice 'connected to bob .*key verified'
wait_log bob 'runs "sh"'
wait_log alice 'runs "cat"'

# bob's allow rule: exactly ext_ip:echo_ext, nothing else there.
if [[ -n $ext_ip ]]; then
  send_line "$p_a_ext" "alice to $ext_ip:$echo_ext via bob's allow rule"
  expect_closed "$p_a_deny" "a target bob's rule does not allow"
  wait_log bob "-allow rules do not include $ext_ip:$echo_alice" 10
fi

# Key files where the files say, mode 0600; none in the default place.
for k in broker bob alice; do
  [[ -f $WORK/keys/$k.key ]] || fail "no key file $WORK/keys/$k.key"
  [[ $(stat -c %a "$WORK/keys/$k.key") == 600 ]] ||
    fail "$WORK/keys/$k.key has mode $(stat -c %a "$WORK/keys/$k.key"), want 600"
done
[[ ! -e $HOME/.config/natter ]] ||
  fail "a key went to the default place: $(ls -R "$HOME/.config/natter")"

# log-level: bob (debug) logs debug lines, alice (info) does not.
assert_log_contains bob 'NAT mapping|probe (->|<-)'
assert_log_lacks alice 'NAT mapping|probe (->|<-)'

# A wrong broker-key in a file is refused.
sed "s/^broker-key = .*/broker-key = $(printf '%064d' 0)/; s/^name = bob/name = mallory/;
  /^forward/d; s|bob\.key|mallory.key|" "$WORK/bob.conf" >"$WORK/wrong-key.conf"
expect_exit_nonzero -t 20 "$NATTER" -config "$WORK/wrong-key.conf"
assert_output_contains 'broker.*[Kk]ey'

# ---- flags override the file -------------------------------------------------

# -name wins over the file's name (same file, same key, another name).
stop_expect_clean bob
start bob2 "$NATTER" -config "$WORK/bob.conf" -name bob2
wait_log bob2 'natter: checked in at broker .* as bob2 '
wait_log broker 'bob2 checked in'
assert_log_lacks bob2 ' as bob '
send_line "$p_b_echo" "bob2 to alice's echo, forwards from bob's file"

# The file's timeout bounds the wait for a frozen peer (erin, which never
# answers the broker's admission question), and -timeout on the command
# line wins over it. A spec on the command line
# adds to the file's forwards.
stop_expect_clean alice
start_client erin -listen -allow-peer alice
kill -STOP "$(pid erin)"
for t in file:2 flag:1; do
  want=${t#*:}
  args=()
  [[ $t == flag:* ]] && args=(-timeout "$want")
  t0=$(_now_ms)
  expect_exit_nonzero -t 20 "$NATTER" -config "$WORK/alice.conf" "${args[@]}" \
    :erin:22
  ms=$(($(_now_ms) - t0))
  assert_output_contains "no introduction to erin from the broker in $want s: erin did not answer"
  ((ms < (want + 4) * 1000)) ||
    fail "timeout from the $t: natter took $ms ms to give up on erin"
done
kill -CONT "$(pid erin)"
stop_expect_clean erin

# ---- -config errors ------------------------------------------------------------

missing=$WORK/no-such-dir/natter.conf
expect_exit_nonzero -t 10 "$NATTER" -config "$missing"
assert_output_contains "${missing//./\\.}"

# Without -config, the default /etc/natter/natter.conf is optional.
if [[ -e /etc/natter/natter.conf ]]; then
  log "SKIPPED the no-default-file check: /etc/natter/natter.conf exists here"
else
  etc_before=$(ls -d /etc/natter 2>/dev/null || true)
  start_client nofile -listen -allow-peer alice
  stop_expect_clean nofile
  [[ ! -e /etc/natter/natter.conf ]] || fail "natter created /etc/natter/natter.conf"
  [[ $(ls -d /etc/natter 2>/dev/null || true) == "$etc_before" ]] ||
    fail "natter created /etc/natter"
fi

# bad_file LINE REGEX TEXT: a file whose line LINE is wrong: natter exits 2
# with "natter: FILE:LINE: " and a reason matching REGEX.
n_bad=0
bad_file() {
  local line=$1 regex=$2 f
  n_bad=$((n_bad + 1))
  f=$WORK/bad$n_bad.conf
  printf '%s' "$3" >"$f"
  expect_exit_nonzero -t 10 "$NATTER" -config "$f"
  ((STATUS == 2)) || fail "$f: exit status $STATUS, want 2; output: $OUTPUT"
  grep -Eq -- "^natter: ${f//./\\.}:$line: .*($regex)" <<<"$OUTPUT" ||
    fail "$f: want 'natter: $f:$line: ' and /$regex/; output: $OUTPUT"
}
base="# a client
name = carol
broker = $BROKER
"
bad_file 4 'unknown' "${base}colour = blue
"
bad_file 6 'duplicate' "${base}listen = yes

name = dave
"
bad_file 5 'listen|yes|bool' "${base}
listen = maybe
"
bad_file 4 'spec|forward' "${base}forward = 8022:bob
listen = yes
"
bad_file 3 'quote|unterminated' "name = carol
# the next line never closes its quote
broker = \"$BROKER
listen = yes
"
bad_file 5 'quote|unterminated' "${base}listen = yes
forward = $(free_port):bob: sh -c 'echo hi
"
# Allow rules follow the library's grammar (src/trust/access.h) in a file
# and on the command line alike: a bad one stops natter at start, exit 2,
# before any key file exists; a bare IPv6 address is one host.
bad_file 5 'bad allow rule "x:y:z": not an IPv6 address' "${base}listen = yes
allow = x:y:z
"
bad_file 4 'bad allow rule "host:022": the port is not a number' "${base}allow = host:022
listen = yes
"
bad_file 5 "bad allow-command \"rsync\*\": '\\*' stands alone" "${base}listen = yes
allow-command = rsync*
"
# bad_flag REGEX ARG...: natter with these flags exits 2 with one line
# "natter: ..." matching REGEX, and creates no key.
bad_flag() {
  local regex=$1
  shift
  expect_exit_nonzero -t 10 "$NATTER" -name carol -broker "$BROKER" \
    -identity "$WORK/carol-flags.key" -listen "$@"
  ((STATUS == 2)) || fail "$*: exit status $STATUS, want 2; output: $OUTPUT"
  grep -Eq -- "^natter: $regex" <<<"$OUTPUT" ||
    fail "$*: want /^natter: $regex/; output: $OUTPUT"
  [[ $(wc -l <<<"$OUTPUT") == 1 ]] || fail "$*: more than one line: $OUTPUT"
  [[ ! -e $WORK/carol-flags.key ]] || fail "$*: a key file was created"
}
bad_flag '-allow "x:y:z": not an IPv6 address' -allow x:y:z
bad_flag '-allow "host:0": the port is not a number 1\.\.65535 or \*' \
  -allow 127.0.0.1:22 -allow host:0
bad_flag '-allow "a b": the host may hold only' -allow 'a b'
bad_flag '-allow "\[::1": an IPv6 address needs both brackets' -allow '[::1'
bad_flag '-allow "": the rule is empty' -allow ''
bad_flag '-allow-command "": the program is empty' -allow-command ''
bad_flag '-allow-command "cat\*": .\*. stands alone' -allow-command 'cat*'
# A good rule on the command line does not excuse a bad one in the file.
printf '%s\n' 'allow = [::1' >"$WORK/badrule.conf"
expect_exit_nonzero -t 10 "$NATTER" -config "$WORK/badrule.conf" -name carol \
  -broker "$BROKER" -listen -allow '[::1]'
((STATUS == 2)) || fail "bad rule in a file: exit $STATUS, want 2: $OUTPUT"
assert_output_contains "^natter: .*badrule\.conf:1: bad allow rule"
# Bare and bracketed IPv6 rules, from a file and from flags, start a client.
printf '%s\n' 'allow = ::1' 'allow = [::1]:*' 'allow-command = /bin/cat' \
  >"$WORK/v6rules.conf"
start_client v6rules -config "$WORK/v6rules.conf" -listen -allow-peer alice \
  -allow ::1 \
  -allow '[2001:db8::17]:443' -allow '::ffff:192.0.2.1'
stop_expect_clean v6rules
# (known_brokers is the clients that did start remembering the broker.)
[[ -z $(find "$HOME/.config" -type f ! -name known_brokers 2>/dev/null) ]] ||
  fail "a bad file still created something: $(ls -R "$HOME/.config")"

stop_expect_clean bob2
stop_expect_clean broker
