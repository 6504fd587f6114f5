#!/usr/bin/env bash
# SOCKS5 forwards (socks:PORT:PEER, like ssh -D): alice runs a SOCKS server
# whose clients reach bob's "LAN", a network namespace with addresses of
# 198.18.0.0/15 and 2001:db8:1::/64 behind a veth, where an HTTP server
# runs; bob allows 198.18.1.0/24, [2001:db8:1::/64]:8080 and
# 198.51.100.0/24:80 (where it has no route) only. Names
# resolve on bob's side, through a dnsmasq of the test (a private
# resolv.conf bind-mounted in a mount namespace: the host's files stay as
# they are). Checked: files fetched by curl --socks5-hostname by IPv4, IPv6
# and name (sha256), and the reply codes of a refused target (0x05), a
# name that does not resolve (0x04), an address bob has no route to
# (0x03) and one without a host (0x04), targets outside the rules by address
# and by what a name resolves to (0x02), BIND (0x07); the password of a
# forward bound beyond loopback; the waiting-clients limit and the
# handshake timeout; a clean stop with clients connected.
#
# Needs root (namespaces): skipped (77) otherwise. The outer run makes the
# namespaces and runs itself again inside, where lib.sh does the rest.
set -euo pipefail

if [[ -z ${SOCKS_TEST_INNER:-} ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "test_socks: needs root (network namespaces); skipped" >&2
    exit 77
  fi
  for tool in ip unshare mount dnsmasq curl python3 sha256sum; do
    command -v "$tool" >/dev/null || {
      echo "test_socks: $tool is missing; skipped" >&2
      exit 77
    }
  done
  main=natter-socks-$$-m
  lan=natter-socks-$$-l
  # shellcheck disable=SC2317 # run by the EXIT trap
  cleanup_ns() {
    local ns pid
    for ns in "$main" "$lan"; do
      # Whatever an interrupted inner run left in our namespaces (lib.sh
      # stops its processes itself otherwise), by PID.
      for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill "$pid" 2>/dev/null || true
      done
      ip netns del "$ns" 2>/dev/null || true
    done
  }
  trap cleanup_ns EXIT
  ip netns add "$main"
  ip netns add "$lan"
  ip -n "$main" link set lo up
  ip -n "$lan" link set lo up
  ip link add "sm$$" netns "$main" type veth peer name "sl$$" netns "$lan"
  ip -n "$main" addr add 198.18.1.1/24 dev "sm$$"
  ip -n "$main" addr add 198.18.2.1/24 dev "sm$$"
  ip -n "$main" addr add 2001:db8:1::1/64 dev "sm$$" nodad
  ip -n "$lan" addr add 198.18.1.10/24 dev "sl$$"
  ip -n "$lan" addr add 198.18.2.10/24 dev "sl$$"
  ip -n "$lan" addr add 2001:db8:1::10/64 dev "sl$$" nodad
  ip -n "$main" link set "sm$$" up
  ip -n "$lan" link set "sl$$" up
  rc=0
  SOCKS_TEST_INNER=1 SOCKS_LAN_NS=$lan ip netns exec "$main" \
    unshare -m --propagation private bash "$0" || rc=$?
  exit "$rc"
fi

# ---- inside: namespace "main" (broker, alice, bob), private mounts ----
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
SOCKS_PY=$(dirname "$0")/socks_client.py
lan=$SOCKS_LAN_NS

# bob resolves through this test's dnsmasq only.
echo "nameserver 127.0.0.1" >"$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf || {
  echo "test_socks: cannot bind-mount a resolv.conf of its own; skipped" >&2
  exit 77
}
start dns dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts \
  --listen-address=127.0.0.1 --bind-interfaces --port=53 --local=/lan.test/ \
  --pid-file="$WORK/dns.pid" --user=root --group=root \
  --address=/web.lan.test/198.18.1.10 --address=/other.lan.test/198.18.2.10 \
  --address=/invalid/
deadline=$(($(_now_ms) + 10000))
until ss -Hlun 'sport = :53' | grep -q .; do
  (($(_now_ms) < deadline)) || fail "dnsmasq does not listen"
  sleep 0.05
done

mkdir -p "$WORK/www"
head -c 300000 /dev/urandom >"$WORK/www/file"
want=$(sha256sum <"$WORK/www/file" | cut -d' ' -f1)
start www ip netns exec "$lan" python3 -m http.server 8080 --bind :: \
  --directory "$WORK/www"
deadline=$(($(_now_ms) + 10000))
until ip netns exec "$lan" ss -Htln 'sport = :8080' | grep -q .; do
  (($(_now_ms) < deadline)) || fail "the LAN's HTTP server does not listen"
  sleep 0.05
done

start_broker
start_client bob -listen -allow-peer alice -allow 198.18.1.0/24 \
  -allow '[2001:db8:1::/64]:8080' -allow 198.51.100.0/24:80
port=$(free_port)
start_client alice "socks:$port:bob"
wait_log alice "natter: forwarding 127\.0\.0\.1:$port -> bob \(SOCKS"

# fetch URL: the file through the SOCKS forward, checked by its sha256.
fetch() {
  local got
  got=$(curl -sS --max-time 60 --socks5-hostname "127.0.0.1:$port" "$1" |
    sha256sum | cut -d' ' -f1) || fail "curl $1 failed"
  [[ $got == "$want" ]] || fail "$1: sha256 $got, expected $want"
}
fetch http://198.18.1.10:8080/file
fetch 'http://[2001:db8:1::10]:8080/file'
fetch http://web.lan.test:8080/file # resolved by bob, inside the range

# reply HOST PORT EXPECTED [ARG...]: the SOCKS reply code for HOST:PORT.
reply() {
  local host=$1 tport=$2 expected=$3
  shift 3
  run_capture 60 python3 "$SOCKS_PY" "$port" "$host" "$tport" "$@"
  [[ $STATUS == 0 && $OUTPUT == "$expected" ]] ||
    fail "SOCKS $host:$tport $*: got \"$OUTPUT\" (status $STATUS), expected $expected"
}
reply 198.18.1.10 8081 05       # nothing listens: connection refused
reply 198.51.100.1 80 03        # no route from bob: network unreachable
reply 198.18.1.99 80 04         # no such host on the LAN: host unreachable
reply nosuchname.invalid 80 04  # name not found
reply 198.18.2.10 8080 02       # outside the rules
reply other.lan.test 8080 02    # a name resolving outside the range
reply 2001:db8:1::10 8081 02    # the IPv6 rule has one port only
reply 198.18.1.10 8080 07 --cmd 2 # BIND
reply 198.18.1.10 8080 07 --cmd 3 # UDP ASSOCIATE
reply 198.18.1.10 8080 00
assert_log_contains bob "name not found: nosuchname\.invalid does not resolve"
assert_log_contains bob "do not include other\.lan\.test:8080 \(resolved to 198\.18\.2\.10\)"
assert_log_contains bob "network unreachable: bob has no route to 198\.51\.100\.1"
assert_log_contains alice "nosuchname\.invalid:80 via bob failed: reply 0x04 \(name not found\)"
assert_log_contains alice "198\.18\.1\.10:8081 via bob failed: reply 0x05 \(connection refused\)"
# curl says why too.
run_capture 60 curl -sS --max-time 30 --socks5-hostname "127.0.0.1:$port" \
  http://198.18.2.10:8080/file
((STATUS != 0)) || fail "curl reached a target outside bob's rules"

# Beyond loopback, a password is required: no start without one, nor with
# a file others may read.
run_capture 30 "$NATTER" -name carol -broker "$BROKER" \
  -identity "$WORK/carol.key" "socks:198.18.1.1:$(free_port):bob"
((STATUS != 0)) || fail "a SOCKS forward on 198.18.1.1 started without a password"
[[ $OUTPUT == *"must require a password"* ]] || fail "unexpected: $OUTPUT"
printf 'sam:s3cret pass\n' >"$WORK/socks.auth"
chmod 644 "$WORK/socks.auth"
run_capture 30 "$NATTER" -name carol -broker "$BROKER" \
  -identity "$WORK/carol.key" -socks-auth "$WORK/socks.auth" \
  "socks:0.0.0.0:$(free_port):bob"
((STATUS != 0)) || fail "a credentials file of mode 644 was accepted"
[[ $OUTPUT == *"chmod 600"* ]] || fail "unexpected: $OUTPUT"
chmod 600 "$WORK/socks.auth"
port2=$(free_port)
start carol "$NATTER" -name carol -broker "$BROKER" \
  -identity "$WORK/carol.key" -socks-auth "$WORK/socks.auth" \
  "socks:0.0.0.0:$port2:bob"
wait_log carol "natter: forwarding 0\.0\.0\.0:$port2 -> bob \(SOCKS"
port_saved=$port
port=$port2
reply 198.18.1.10 8080 no-method # no password offered
reply 198.18.1.10 8080 auth-failed --user sam --password wrong
reply 198.18.1.10 8080 auth-failed --user bob --password 's3cret pass'
# carol is not among bob's peers: refused, as a rule says (0x02).
reply 198.18.1.10 8080 02 --user sam --password 's3cret pass'
port=$port_saved

# Limits: 256 clients may wait at once, the next is closed at once; a
# handshake not done in 10 s is closed.
run_capture 120 python3 "$SOCKS_PY" "$port" --idle 256
[[ $OUTPUT == $'closed\nidle-closed' ]] ||
  fail "waiting-clients limit / handshake timeout: got \"$OUTPUT\""
wait_log alice "clients are in their handshake or wait for bob's answer, the limit"
wait_log alice "did not finish its handshake within 10 s" 30
# And it still works afterwards.
fetch http://198.18.1.10:8080/file

# Stopping with a client in its handshake and one tunnel open is clean
# (under ASan too: nothing leaks, nothing is used after it is freed).
start holder python3 "$SOCKS_PY" "$port" 198.18.1.10 8080 --hold 1
wait_log holder '^00$' 30
exec {idle_fd}<>"/dev/tcp/127.0.0.1/$port"
stop_expect_clean alice
exec {idle_fd}>&-
stop_expect_clean bob
log "ok"
