#!/usr/bin/env bash
# A -broker given by DNS name is resolved again when a round through the
# list fails (src/client/broker_resolve.c), through a resolver the test
# controls: a dnsmasq of its own with a private hosts file, in a network
# and mount namespace of the test's own (a private resolv.conf; the
# host's files stay as they are). erin's list is two names:
# brokers.natter.test (127.0.0.2, where broker 1 runs) and
# spare.natter.test (127.0.0.4, where nothing answers).
#   - broker 1 dies and brokers.natter.test moves to 127.0.0.3 (broker 2,
#     the same network key): erin goes round the list, resolves the names
#     again, logs the change and checks in at broker 2;
#   - spare.natter.test now has 17 addresses: past the 16 a list may have,
#     the list stays as it was, logged; erin comes back to broker 2;
#   - spare.natter.test no longer resolves: the list stays, logged.
# shellcheck disable=SC2317 # functions run by traps
if [[ -z ${RESOLVE_TEST_INNER:-} ]]; then
  if ((EUID != 0)); then
    echo "test_broker_resolve: needs root (namespaces); skipped" >&2
    exit 77
  fi
  for tool in unshare mount dnsmasq ip ss; do
    command -v "$tool" >/dev/null || {
      echo "test_broker_resolve: $tool is missing; skipped" >&2
      exit 77
    }
  done
  unshare -n -m --propagation private true 2>/dev/null || {
    echo "test_broker_resolve: cannot create namespaces here; skipped" >&2
    exit 77
  }
  RESOLVE_TEST_INNER=1 exec unshare -n -m --propagation private bash "$0"
fi

# ---- inside: a network namespace and private mounts of our own ----
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

ip link set lo up
echo "nameserver 127.0.0.1" >"$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf || {
  log "SKIP: cannot bind-mount a resolv.conf of its own"
  exit 77
}
printf '127.0.0.1 localhost\n' >"$WORK/hosts"
mount --bind "$WORK/hosts" /etc/hosts
# hosts A B: the names' addresses in the resolver's hosts file, re-read.
dnshosts() {
  : >"$WORK/dnshosts"
  local a
  for a in $1; do echo "$a brokers.natter.test" >>"$WORK/dnshosts"; done
  for a in $2; do echo "$a spare.natter.test" >>"$WORK/dnshosts"; done
  if [[ -n ${PIDS[dns]:-} ]]; then
    kill -HUP "$(pid dns)"
  fi
}
dnshosts 127.0.0.2 127.0.0.4
start dns dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts \
  --addn-hosts="$WORK/dnshosts" --listen-address=127.0.0.1 --bind-interfaces \
  --port=53 --pid-file="$WORK/dns.pid" --user=root --group=root \
  --local=/natter.test/
deadline=$(($(_now_ms) + 10000))
until ss -Hlun | grep -q '127\.0\.0\.1:53 '; do
  (($(_now_ms) < deadline)) || fail "dnsmasq does not listen"
  sleep 0.05
done

port=$(free_port)
netkey=$WORK/network.key
start b1 "$NATTER" -server "127.0.0.2:$port" -identity "$netkey" -registry memory:
wait_log b1 "natter: broker listening on 127\.0\.0\.2:$port"
start b2 "$NATTER" -server "127.0.0.3:$port" -identity "$netkey" -registry memory:
wait_log b2 "natter: broker listening on 127\.0\.0\.3:$port"

list="brokers.natter.test:$port,spare.natter.test:$port"
start erin "$NATTER" -name erin -broker "$list" -identity "$WORK/erin.key" \
  -listen -allow-peer alice
wait_log erin "checked in at broker 127\.0\.0\.2:$port as erin" 20

# ---- the broker moves ----------------------------------------------------------

dnshosts 127.0.0.3 127.0.0.4
kill -9 "$(pid b1)"
_reap b1
wait_log erin "brokers $list resolved again: now 127\.0\.0\.3:$port, 127\.0\.0\.4:$port \(was 127\.0\.0\.2:$port, 127\.0\.0\.4:$port\)" 40
wait_log erin "checked in at broker 127\.0\.0\.3:$port as erin" 20

# checked_in_b2 N: until erin has checked in at broker 2 N times.
checked_in_b2() {
  local deadline=$(($(date +%s) + 40))
  until (($(grep -c "checked in at broker 127\.0\.0\.3:$port as erin" "$WORK/erin.log") >= $1)); do
    (($(date +%s) < deadline)) || fail "erin did not come back to broker 2"
    sleep 0.2
  done
}

# ---- more addresses than a list may have ---------------------------------------

dnshosts 127.0.0.3 "$(seq -f '127.0.1.%g' 1 17)"
kill -STOP "$(pid b2)"
wait_log erin "brokers $list resolve to more than 16 addresses now: the list stays as it was" 40
kill -CONT "$(pid b2)"
checked_in_b2 2

# ---- a name that no longer resolves --------------------------------------------

dnshosts 127.0.0.3 ""
kill -STOP "$(pid b2)"
wait_log erin "cannot resolve broker spare\.natter\.test again: .*; the list stays as it was" 40
kill -CONT "$(pid b2)"
checked_in_b2 3
stop_expect_clean erin
stop_expect_clean b2
echo "PASS: $TEST_NAME"
