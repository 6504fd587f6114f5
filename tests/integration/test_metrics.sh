#!/usr/bin/env bash
# Prometheus metrics (-metrics): a broker and two clients serve them on
# loopback; after a forwarded transfer every line of each scrape parses as
# the exposition format (promparse.py) and the numbers say what happened:
# two check-ins, one introduction, one direct peer connection, the bytes of
# the forward. A non-loopback address and a taken port are refused at
# start; paths other than /metrics get 404.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

PROMPARSE=$(dirname "$0")/promparse.py

# scrape NAME PORT: fetch /metrics, check every line, keep the samples in
# $WORK/NAME.prom.
scrape() {
  local name=$1 port=$2
  curl -sS --max-time 10 -o "$WORK/$name.metrics" -D "$WORK/$name.headers" \
    "http://127.0.0.1:$port/metrics" || fail "curl of $name's metrics failed"
  grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/$name.headers" ||
    fail "$name's metrics: wrong Content-Type: $(cat "$WORK/$name.headers")"
  python3 "$PROMPARSE" <"$WORK/$name.metrics" >"$WORK/$name.prom" ||
    fail "$name's metrics do not parse: $(cat "$WORK/$name.metrics")"
}

# sample NAME 'metric{labels}': print the value of one sample.
sample() {
  local v
  v=$(awk -v k="$2" '$1 == k { print $2 }' "$WORK/$1.prom")
  [[ -n $v ]] || fail "$1's metrics have no sample $2: $(cat "$WORK/$1.prom")"
  echo "$v"
}

expect_sample() {
  local got
  got=$(sample "$1" "$2")
  [[ $got == "$3" ]] || fail "$1: $2 is $got, want $3"
}

expect_at_least() {
  local got
  got=$(sample "$1" "$2")
  awk -v g="$got" -v w="$3" 'BEGIN { exit !(g + 0 >= w + 0) }' ||
    fail "$1: $2 is $got, want at least $3"
}

m_broker=$(free_port)
m_bob=$(free_port)
m_alice=$(free_port)
echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -metrics "127.0.0.1:$m_broker"
start_client bob -listen -allow-peer alice -metrics "127.0.0.1:$m_bob"
fwd=$(free_port)
start_client alice -metrics "127.0.0.1:$m_alice" "$fwd:bob:$echo_port"

expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 100K
assert_output_contains '^2 ok$'

scrape broker "$m_broker"
expect_sample broker 'natter_broker_clients{}' 2
expect_sample broker 'natter_broker_check_ins_total{}' 2
expect_sample broker 'natter_broker_introductions_total{}' 1
expect_sample broker 'natter_broker_relayed_bytes_total{}' 0
expect_at_least broker 'natter_broker_udp_bytes_total{direction="received"}' 1000

scrape alice "$m_alice"
expect_sample alice 'natter_client_checked_in{}' 1
expect_sample alice 'natter_client_peers_connected{}' 1
expect_sample alice 'natter_client_peer_connections_total{path="direct"}' 1
expect_sample alice 'natter_client_peer_connected{peer="bob",state="connected"}' 1
expect_sample alice 'natter_client_forward_connections_total{local_port="'"$fwd"'",target="bob:'"$echo_port"'"}' 2
expect_sample alice 'natter_client_forward_bytes_total{direction="sent",local_port="'"$fwd"'",target="bob:'"$echo_port"'"}' 204800
expect_sample alice 'natter_client_forward_bytes_total{direction="received",local_port="'"$fwd"'",target="bob:'"$echo_port"'"}' 204800
expect_at_least alice 'natter_client_peer_bytes_total{direction="sent",peer="bob"}' 204800
expect_sample alice 'natter_client_errors_total{code="punch"}' 0
# On loopback both sides measure an endpoint-independent mapping (or none
# yet): the one success is under some mapping pair, and none failed.
total=$(awk -F' ' '/^natter_client_punch_total\{.*result="success"/ { s += $2 } END { print s + 0 }' "$WORK/alice.prom")
[[ $total == 1 ]] || fail "alice: punch successes add up to $total, want 1"

scrape bob "$m_bob"
expect_sample bob 'natter_client_peers_connected{}' 1
expect_sample bob 'natter_client_streams_opened_total{}' 0

# Only /metrics is served.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
  "http://127.0.0.1:$m_broker/status") || fail "curl /status failed"
[[ $code == 404 ]] || fail "GET /status on the metrics port: $code, want 404"

# Metrics stay on loopback, and a taken port is an error at start.
expect_exit_nonzero "$NATTER" -server "127.0.0.1:$(free_port)" -identity "" \
  -metrics "0.0.0.0:$(free_port)"
assert_output_contains 'not a loopback address'
expect_exit_nonzero "$NATTER" -server "127.0.0.1:$(free_port)" -identity "" \
  -metrics "127.0.0.1:$m_broker"
assert_output_contains "cannot listen for metrics on 127\.0\.0\.1:$m_broker"

log "ok"
