#!/usr/bin/env bash
# UDP forwarding (udp:LOCALPORT:PEER[:HOST]:PORT) over QUIC DATAGRAM
# frames, with real UDP programs. Checked:
#   - a DNS query with kdig through natter to a real dnsmasq on bob's side
#     gets dnsmasq's answer (198.18.0.7 for example.test)
#   - a socat UDP echo at a fixed rate (500 datagrams at 250/s): on
#     loopback at most 1% lost, none duplicated, at most 1% reordered
#   - 50 sources at once are 50 flows, each answered with its own replies
#     (by a one-socket echo server: socat's fork per source would race and
#     leave children behind)
#   - a datagram larger than the path carries (65500 bytes: more than a
#     loopback packet holds with QUIC's overhead) is dropped, logged and
#     counted, never split; the next small one still goes through
#   - a target bob's -allow-udp does not list is refused: a clear line on
#     both sides, and the target gets no datagram; a listener with no
#     -allow-udp refuses even its own loopback, until an allow-udp line
#     in its config file and a SIGHUP let the next flow through
#   - the per-peer flow limit (-max-udp-flows 3 on carol): the 4th source
#     is refused and carol logs the limit; once carol's flows end idle
#     (-udp-idle-timeout 2), three new sources are served again
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

for tool in kdig dnsmasq socat python3; do
  command -v "$tool" >/dev/null || {
    log "SKIP: $tool is not installed"
    exit 77
  }
done
PROBE=$(dirname "$0")/udp_probe.py

# wait_udp_bound PORT: until a UDP socket is bound to 127.0.0.1:PORT.
wait_udp_bound() {
  local deadline=$(($(_now_ms) + 10000))
  until ss -Huan "sport = :$1" | grep -q .; do
    (($(_now_ms) < deadline)) || fail "nothing bound UDP port $1 after 10 s"
    sleep 0.05
  done
}

dns_port=$(free_port)
echo_port=$(free_port)
sink_port=$(free_port)
start dnsmasq dnsmasq --no-daemon --keep-in-foreground --port="$dns_port" \
  --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
  --address=/example.test/198.18.0.7 --pid-file= --log-queries \
  --log-facility=-
# One peer, no fork: socat's fork per source leaves children behind, and
# datagrams that reach the parent while it forks are lost or fork again.
# Its PIPE may echo two datagrams as one: the probe reads every record.
start echo socat -T 120 UDP4-LISTEN:"$echo_port",bind=127.0.0.1 PIPE
echo2_port=$(free_port)
start echo2 python3 "$PROBE" "$echo2_port" --serve
# The refused target: anything arriving here lands in sink.out.
start sink socat -u UDP4-RECV:"$sink_port",bind=127.0.0.1 \
  OPEN:"$WORK/sink.out",creat,append
wait_udp_bound "$dns_port"
wait_udp_bound "$echo_port"
wait_udp_bound "$sink_port"
wait_log echo2 '^ready$'

start_broker broker
start_client bob -listen -allow-peer alice \
  -allow-udp "127.0.0.1:$dns_port" -allow-udp "alice=127.0.0.1:$echo_port" \
  -allow-udp "127.0.0.1:$echo2_port"
start_client carol -v -listen -allow-peer alice -max-udp-flows 3 \
  -udp-idle-timeout 2 \
  -allow-udp "127.0.0.1:$echo2_port"
echo "# allow-udp lines are added here" >"$WORK/dave.conf"
start_client dave -config "$WORK/dave.conf" -listen -allow-peer alice

p_dns=$(free_port)
p_echo=$(free_port)
p_sink=$(free_port)
p_carol=$(free_port)
p_dave=$(free_port)
p_echo2=$(free_port)
metrics_port=$(free_port)
start_client alice -metrics "127.0.0.1:$metrics_port" \
  "udp:$p_dns:bob:$dns_port" "udp:$p_echo:bob:$echo_port" \
  "udp:$p_sink:bob:127.0.0.1:$sink_port" "udp:$p_carol:carol:$echo2_port" \
  "udp:$p_dave:dave:$echo2_port" "udp:$p_echo2:bob:$echo2_port"
for p in "$p_dns" "$p_echo" "$p_sink" "$p_carol" "$p_dave" "$p_echo2"; do
  wait_log alice "natter: forwarding UDP 127\.0\.0\.1:$p -> udp:"
done

# ---- DNS through natter ----
log "kdig example.test through natter to dnsmasq"
out=$(kdig @127.0.0.1 -p "$p_dns" +notcp +retry=5 +timeout=3 +short \
  example.test A 2>&1) || fail "kdig failed: $out"
[[ $out == 198.18.0.7 ]] || fail "kdig answered '$out', want 198.18.0.7"
wait_log dnsmasq 'query\[A\] example\.test from 127\.0\.0\.1' 5

# ---- rate, loss and reordering ----
log "socat echo: 500 datagrams at 250/s"
res=$(python3 "$PROBE" "$p_echo" --warmup --count 500 --rate 250 --size 300)
log "echo: $res"
read -r _ sent _ received _ lost _ reordered _ duplicated _ _ <<<"$res"
((sent == 500)) || fail "probe sent $sent"
((lost <= 5)) || fail "$lost of 500 datagrams lost on loopback: $res"
((reordered <= 5)) || fail "$reordered of 500 reordered: $res"
((duplicated == 0)) || fail "$duplicated duplicated: $res"
# The forward counts them: 501 sent with the warm-up (socat may echo two
# as one, so fewer may come back; the one-socket echo below is exact).
metric() {
  curl -sS --max-time 10 "http://127.0.0.1:$metrics_port/metrics" |
    grep -F "natter_client_forward_datagrams_total{local_port=\"$1\"" |
    grep -F "direction=\"$2\"" | awk '{ print $2 }'
}
got=$(metric "$p_echo" sent)
((got == 501)) || fail "natter_client_forward_datagrams_total sent is '$got', want 501"
got=$(metric "$p_echo" received)
((got > 0 && got <= 501)) || fail "natter_client_forward_datagrams_total received is '$got'"

# ---- many flows ----
log "50 sources at once"
res=$(python3 "$PROBE" "$p_echo2" --flows 50 --count 4 --rate 400 --size 100 \
  --wait 10)
log "50 flows: $res"
read -r _ sent _ received _ lost _ _ _ _ _ answered <<<"$res"
((answered == 50)) || fail "only $answered of 50 flows got replies: $res"
((lost <= 4)) || fail "$lost of $sent lost: $res"
got=$(metric "$p_echo2" sent)
((got == 200)) || fail "datagrams sent by the 50 flows: '$got', want 200"
got=$(metric "$p_echo2" received)
((got == 200 - lost)) || fail "datagrams received by the 50 flows: '$got', want $((200 - lost))"
got=$(metric "$p_echo2" dropped)
((got <= lost)) || fail "datagrams dropped by the 50 flows: '$got', more than the $lost lost"

# ---- too big for the path ----
log "a 65500-byte datagram"
res=$(python3 "$PROBE" "$p_echo2" --count 1 --size 65500 --wait 2)
read -r _ _ _ received _ <<<"$res"
((received == 0)) || fail "a 65500-byte datagram came back: $res"
wait_log alice "dropped a UDP datagram of 65500 bytes for bob: the path carries at most [0-9]+" 5
got=$(curl -sS --max-time 10 "http://127.0.0.1:$metrics_port/metrics" |
  grep -F "natter_client_forward_datagrams_total{local_port=\"$p_echo2\"" |
  grep -F 'direction="dropped"' | awk '{ print $2 }')
((got >= 1)) || fail "the dropped datagram is not counted: '$got'"
res=$(python3 "$PROBE" "$p_echo2" --count 1 --size 1000 --wait 5)
read -r _ _ _ received _ <<<"$res"
((received == 1)) || fail "a 1000-byte datagram after the big one: $res"

# ---- refused targets ----
log "a target outside bob's -allow-udp"
echo refused-datagram | socat -u - UDP4-SENDTO:127.0.0.1:"$p_sink"
wait_log alice "-allow-udp rules do not include UDP 127\.0\.0\.1:$sink_port for alice" 10
wait_log bob "refused a UDP flow from alice: .*-allow-udp rules do not include" 5
log "dave has no -allow-udp at all"
echo to-dave | socat -u - UDP4-SENDTO:127.0.0.1:"$p_dave"
wait_log alice "dave allows no UDP targets \(not even its loopback\)" 10
wait_log dave "refused a UDP flow from alice" 5
echo "allow-udp = 127.0.0.1:$echo2_port" >>"$WORK/dave.conf"
kill -HUP "$(pid dave)"
wait_log dave "reloaded .*dave\.conf" 10
res=$(python3 "$PROBE" "$p_dave" --count 3 --rate 20 --wait 5)
log "dave after the reload: $res"
read -r _ _ _ _ _ _ _ _ _ _ _ answered <<<"$res"
((answered == 1)) || fail "dave's new rule did not let a new flow through: $res"

# ---- the flow limit ----
log "carol: at most 3 flows for alice"
res=$(python3 "$PROBE" "$p_carol" --flows 4 --count 3 --rate 40 --wait 4)
log "carol: $res"
read -r _ _ _ _ _ _ _ _ _ _ _ answered <<<"$res"
((answered == 3)) || fail "$answered of 4 flows answered by carol, want 3: $res"
wait_log carol "refused a UDP flow from alice: it has 3 open already, the limit per peer \(-max-udp-flows\)" 5
wait_log alice "carol has 3 UDP flows open for alice already" 5
log "carol's flows end when idle; new ones are served again"
deadline=$(($(_now_ms) + 20000))
until (($(grep -c 'UDP flow .* with alice ended (idle)' "$WORK/carol.log") >= 3)); do
  (($(_now_ms) < deadline)) || fail "carol's 3 flows did not end idle within 20 s"
  sleep 0.1
done
res=$(python3 "$PROBE" "$p_carol" --flows 3 --count 3 --rate 40 --wait 5)
log "carol again: $res"
read -r _ _ _ _ _ _ _ _ _ _ _ answered <<<"$res"
((answered == 3)) || fail "$answered of 3 new flows answered by carol: $res"

# The refused target never saw a byte (checked last: the refusals had
# every chance to leak by now).
[[ ! -s $WORK/sink.out ]] || fail "the refused target received: $(head -c 200 "$WORK/sink.out")"
stop_expect_clean alice
assert_log_contains alice "UDP port $p_echo -> bob: [0-9]+ datagrams sent"
log "ok"
