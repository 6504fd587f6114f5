#!/usr/bin/env bash
# HTTP/3 /status, fetched by an HTTP/3 client nobody here wrote: gtlsclient
# (Debian's ngtcp2-client, ngtcp2 + GnuTLS), on the broker's and a client's
# own UDP port, which keep serving natter beside it. The JSON is checked
# with a real parser:
# - broker, anonymous: aggregate counts only, no client rows;
# - broker, a key listed with -admin: every client's row (name, key
#   prefix, NAT mapping, times, bytes);
# - client, its own key: peers and forwards; anonymous or another key: 403.
# Skipped (77) when gtlsclient or openssl is not installed.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v gtlsclient >/dev/null || {
  log "SKIP: gtlsclient not installed (apt-get install ngtcp2-client)"
  exit 77
}
command -v openssl >/dev/null || {
  log "SKIP: openssl not installed"
  exit 77
}

# cert_for KEY: a self-signed certificate for KEY (gtlsclient --cert wants
# one; natter only looks at the key in it).
cert_for() {
  openssl req -new -x509 -key "$1" -subj /CN=natter-test -days 1 \
    -out "$1.crt" 2>"$WORK/openssl.err" ||
    fail "openssl req: $(cat "$WORK/openssl.err")"
}

# fingerprint KEY: what natter calls the key (SHA-256 of the public key's
# DER SubjectPublicKeyInfo).
fingerprint() {
  openssl pkey -in "$1" -pubout -outform DER | sha256sum | cut -d' ' -f1
}

# fetch NAME PORT [KEY]: GET /status with gtlsclient, body in
# $WORK/NAME.status.
fetch() {
  local name=$1 port=$2 key=${3:-} dir=$WORK/dl.$1
  local args=(-q --exit-on-all-streams-close "--download=$dir")
  mkdir -p "$dir"
  [[ -n $key ]] && args+=("--key=$key" "--cert=$key.crt")
  run_capture 20 gtlsclient "${args[@]}" 127.0.0.1 "$port" \
    "https://127.0.0.1:$port/status"
  ((STATUS == 0)) || fail "gtlsclient $name: status $STATUS: $OUTPUT"
  [[ -s $dir/status ]] || fail "gtlsclient $name: no body; output: $OUTPUT"
  cp "$dir/status" "$WORK/$name.status"
}

# check NAME PYTHON: run PYTHON with d = the parsed JSON of NAME.
check() {
  python3 -c "import json, sys
d = json.load(open(sys.argv[1]))
$2" "$WORK/$1.status" || fail "$1: check failed; body: $(cat "$WORK/$1.status")"
}

openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/admin.pem" \
  2>/dev/null || fail "openssl ecparam failed"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/stranger.pem" \
  2>/dev/null || fail "openssl ecparam failed"
cert_for "$WORK/admin.pem"
cert_for "$WORK/stranger.pem"

echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -admin "$(fingerprint "$WORK/admin.pem")"
start_client bob -listen -allow-peer alice
fwd=$(free_port)
start_client alice "$fwd:bob:$echo_port"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes 10K

# Broker, anonymous: counts only.
fetch broker_anon "$BROKER_PORT"
check broker_anon '
assert d["role"] == "broker" and d["detailed"] is False, d
assert d["clients"] == 2 and d["introductions"] == 1, d
assert "client_list" not in d and "fingerprint" not in d, d
assert float(d["uptime_s"]) > 0 and d["version"], d'

# Broker, admin key: every client.
fetch broker_admin "$BROKER_PORT" "$WORK/admin.pem"
bob_fp=$(grep -o 'key [0-9a-f]\{64\}' "$WORK/bob.log" | head -n1 | cut -d' ' -f2)
[[ -n $bob_fp ]] || fail "bob's fingerprint is not in its log"
check broker_admin '
assert d["detailed"] is True, d
rows = {c["name"]: c for c in d["client_list"]}
assert sorted(rows) == ["alice", "bob"], rows
bob = rows["bob"]
assert bob["fingerprint"] == "'"${bob_fp:0:16}"'", bob
assert bob["listening"] is True and rows["alice"]["listening"] is False
assert bob["nat_mapping"] in ("endpoint-independent", "unknown"), bob
assert bob["address"].startswith("127.0.0.1:"), bob
assert bob["connected_since"].endswith("Z") and bob["last_seen"].endswith("Z")
assert bob["bytes_received"] > 0 and bob["bytes_sent"] > 0, bob'

# A key that is not listed reads what anyone reads.
fetch broker_stranger "$BROKER_PORT" "$WORK/stranger.pem"
check broker_stranger 'assert d["detailed"] is False and "client_list" not in d, d'

# Client alice: her own key (her identity file) reads her page.
alice_port=$(grep -o 'UDP port [0-9]*' "$WORK/alice.log" | head -n1 | cut -d' ' -f3)
[[ -n $alice_port ]] || fail "alice's UDP port is not in its log"
cert_for "$WORK/alice.key"
fetch alice_own "$alice_port" "$WORK/alice.key"
check alice_own '
assert d["role"] == "client" and d["detailed"] is True, d
assert d["checked_in"] is True and d["peers_connected"] == 1, d
p = d["peers"][0]
assert p["name"] == "bob" and p["state"] == "connected" and p["path"] == "direct", p
assert p["fingerprint"] == "'"${bob_fp:0:16}"'", p
assert p["rtt_us"] > 0 and p["bytes_sent"] > 10240, p
# bob is on this host: 64 KiB datagrams, no path MTU discovery.
assert p["max_udp_payload"] == 65507, p
assert p["candidates"] and p["probe_rounds"] >= 1, p
f = d["forwards"][0]
assert f["local_port"] == '"$fwd"' and f["connections"] == 1, f
assert f["bytes_sent"] == 10240 and f["bytes_received"] == 10240, f'

# Anonymous and foreign keys get 403 (gtlsclient saves the body anyway).
fetch alice_anon "$alice_port"
check alice_anon 'assert d == {"error": "forbidden"}, d'
fetch alice_stranger "$alice_port" "$WORK/stranger.pem"
check alice_stranger 'assert d == {"error": "forbidden"}, d'

# natter itself is unharmed: the forward still works after all that.
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 10K
assert_output_contains '^2 ok$'
log "ok"
