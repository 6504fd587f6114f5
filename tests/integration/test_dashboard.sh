#!/usr/bin/env bash
# The HTML dashboard on the metrics port (-metrics): a broker and two
# clients, one forward carrying data; curl checks the headers (a strict
# Content-Security-Policy, nosniff, no caching), the Host check (a
# rebound name gets 421) and /dashboard.json; headless Chromium loads the
# page of the broker and of a client and the DOM must show the names, the
# path of the pair, the forward and charts with data points, and on the
# broker's the introductions (alice's to bob, eve's refused by bob's
# rules, eve's for nobody) with the pair's relay channel and path, and
# the registry's count of names; a screenshot
# of each is saved in $WORK. Then the page's own files, served by a small
# Python server, are fed a JSON whose strings are markup: no element may
# come of them, and the text must appear literally. The script itself
# must never write markup (innerHTML and the like). Skips (77) without
# chromium, after the checks that need none.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

DASH_SRC=$(realpath "$(dirname "$0")/../../src/status/dashboard")
CSP="default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

# ---- the script never writes markup -----------------------------------
if grep -nE 'innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function' \
  "$DASH_SRC/dashboard.js"; then
  fail "dashboard.js writes markup or evaluates strings (above)"
fi
grep -qiE '<script>|<style>| on[a-z]+=' "$DASH_SRC/index.html" &&
  fail "index.html has inline script, style or an event handler"

m_broker=$(free_port)
m_bob=$(free_port)
m_alice=$(free_port)
echo_port=$(free_port)
start_echo_server echo "$echo_port"
start_broker broker -relay -relay-total 50000000 -metrics "127.0.0.1:$m_broker"
wait_log broker "dashboard on TCP port $m_broker \(GET /, loopback only"
start_client bob -listen -allow-peer alice -metrics "127.0.0.1:$m_bob"
fwd=$(free_port)
start_client alice -metrics "127.0.0.1:$m_alice" "$fwd:bob:$echo_port"
wait_log alice "dashboard on TCP port $m_alice"
expect_exit_zero "$TCPCHECK" echo-check "$fwd" --conns 2 --bytes 100K
assert_output_contains '^2 ok$'
# eve is no peer of bob's: her request is refused (a refusal to count).
efwd=$(free_port)
nfwd=$(free_port)
start_client eve "$efwd:bob:$echo_port" "$nfwd:nobody:$echo_port"
expect_exit_nonzero "$TCPCHECK" echo-check "$efwd" --conns 1 --bytes 1K
wait_log broker "bob's peer rules do not admit eve"
# ... and nobody is no client at all.
expect_exit_nonzero "$TCPCHECK" echo-check "$nfwd" --conns 1 --bytes 1K

# ---- headers, with curl -------------------------------------------------
# headers PORT PATH TYPE: GET it, check the status line and the headers.
headers() {
  local port=$1 path=$2 type=$3 h=$WORK/headers
  curl -sS --max-time 10 -o "$WORK/body" -D "$h" \
    "http://127.0.0.1:$port$path" || fail "curl $path failed"
  head -1 "$h" | grep -q ' 200' || fail "GET $path: $(head -1 "$h")"
  grep -qiF "content-security-policy: $CSP" "$h" ||
    fail "GET $path: no or another CSP: $(cat "$h")"
  grep -qi '^x-content-type-options: nosniff' "$h" || fail "GET $path: no nosniff"
  grep -qi '^cache-control: no-store' "$h" || fail "GET $path: cacheable"
  grep -qi "^content-type: $type" "$h" ||
    fail "GET $path: want Content-Type $type: $(cat "$h")"
}
for port in "$m_broker" "$m_alice"; do
  headers "$port" / 'text/html'
  headers "$port" /dashboard.js 'text/javascript'
  headers "$port" /dashboard.css 'text/css'
  headers "$port" /dashboard.json 'application/json'
done
# The served files are the files in the tree.
headers "$m_bob" /dashboard.js 'text/javascript'
cmp -s "$WORK/body" "$DASH_SRC/dashboard.js" || fail "/dashboard.js differs from the tree's"
# A page of another site whose name was rebound to 127.0.0.1.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
  -H 'Host: evil.example:80' "http://127.0.0.1:$m_broker/dashboard.json")
[[ $code == 421 ]] || fail "dashboard.json for Host evil.example: $code, want 421"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
  -H "Host: localhost:$m_broker" "http://127.0.0.1:$m_broker/dashboard.json")
[[ $code == 200 ]] || fail "dashboard.json for Host localhost: $code, want 200"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
  "http://127.0.0.1:$m_broker/dashboard.nope")
[[ $code == 404 ]] || fail "GET /dashboard.nope: $code, want 404"

# The JSON: the pair, its path, the forward's bytes, the history.
curl -sS --max-time 10 -o "$WORK/alice.json" "http://127.0.0.1:$m_alice/dashboard.json"
curl -sS --max-time 10 -o "$WORK/broker.json" "http://127.0.0.1:$m_broker/dashboard.json"
python3 - "$WORK/alice.json" "$WORK/broker.json" <<'PY' || fail "dashboard.json: see above"
import json, sys
a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
assert a["role"] == "client" and b["role"] == "broker", (a["role"], b["role"])
peers = a["status"]["peers"]
assert [p["name"] for p in peers] == ["bob"], peers
assert peers[0]["path"] == "direct", peers[0]
fw = a["status"]["forwards"]
assert len(fw) == 1 and fw[0]["connections"] == 2 and fw[0]["bytes_sent"] >= 200000, fw
assert len(a["history"]) >= 2 and a["history"][-1][4] == 1, a["history"]
assert sorted(c["name"] for c in b["status"]["client_list"]) == ["alice", "bob", "eve"], b
assert b["history"][-1][4] == 3, b["history"]
assert b["registry"]["backend"] == "sqlite", b["registry"]
# The count the registry keeps: alice, bob and eve bound their names.
assert b["registry"]["names"] >= 3, b["registry"]
assert b["refusals"]["peer_rules"] >= 1 and b["refusals"]["broker_full"] == 0, b["refusals"]
assert b["relay"]["enabled"] is True and b["relay"]["refused"] == 0, b["relay"]
assert b["relay_caps"]["channels_per_key"] > 0 and b["relay_caps"]["total"] == 50000000, b["relay_caps"]
fps = sorted(c["fingerprint"] for c in b["status"]["client_list"])
assert sorted(u["fingerprint"] for u in b["relay_use"]) == fps, b["relay_use"]
# The introductions, newest first: alice's to bob (a relay channel for
# the pair, which carried nothing: alice's path is direct), eve's refused.
il = b["introduction_log"]
assert il["capacity"] == 64 and len(il["entries"]) >= 2, il
ab = [e for e in il["entries"] if (e["requester"], e["listener"]) == ("alice", "bob")]
assert ab and all(e["outcome"] == "introduced" for e in ab), il
assert ab[-1]["relay"] == "open" and ab[-1]["path"] == "direct or predicted", ab
eb = [e for e in il["entries"] if (e["requester"], e["listener"]) == ("eve", "bob")]
assert eb and all(e["outcome"] == "refused" and e["path"] == "" and
                  e["relay"] == "none" for e in eb), il
assert any((e["requester"], e["listener"], e["outcome"]) ==
           ("eve", "nobody", "unknown") for e in il["entries"]), il
ts = [e["unix_ms"] for e in il["entries"]]
assert ts == sorted(ts, reverse=True), ts
PY

command -v chromium >/dev/null || {
  log "chromium is not installed: the browser part is skipped"
  exit 77
}

# ---- in a browser -----------------------------------------------------
# browse URL OUT: the DOM after the page ran, then a screenshot OUT.png.
browse() {
  local url=$1 out=$2
  local opts=(--headless=new --no-sandbox --disable-gpu --no-first-run
    --disable-extensions --disable-sync --user-data-dir="$WORK/chromium"
    --virtual-time-budget=8000)
  timeout -k 5 90 chromium "${opts[@]}" --dump-dom "$url" \
    >"$WORK/$out.html" 2>>"$WORK/chromium.log" ||
    fail "chromium --dump-dom $url failed: $(tail -5 "$WORK/chromium.log")"
  timeout -k 5 90 chromium "${opts[@]}" --window-size=1100,900 \
    --screenshot="$WORK/$out.png" "$url" >>"$WORK/chromium.log" 2>&1 ||
    fail "chromium --screenshot $url failed: $(tail -5 "$WORK/chromium.log")"
  [[ -s $WORK/$out.png ]] || fail "no screenshot of $url"
}

# dom_has OUT REGEX WHAT
dom_has() {
  grep -Eq -- "$2" "$WORK/$1.html" || fail "$1's page: no $3 in the DOM: $(head -c 3000 "$WORK/$1.html")"
}

# points OUT CHART: the data points drawn in chart CHART.
points() {
  grep -Eo "data-chart=\"$2\"[^>]*data-points=\"[0-9]+\"" "$WORK/$1.html" |
    grep -Eo '[0-9]+"$' | tr -d '"'
}

browse "http://127.0.0.1:$m_broker/" broker
dom_has broker '<body[^>]*data-role="broker"' 'broker role'
dom_has broker 'data-updates="[1-9]' 'update from dashboard.json'
dom_has broker '<td data-name="alice"' 'row of alice'
dom_has broker '<td data-name="bob"' 'row of bob'
dom_has broker '<td data-limit="peer_rules">[^<]*</td><td[^>]*>[1-9]' 'refusal by peer rules'
dom_has broker '<td data-requester="alice">alice</td><td data-listener="bob">bob</td><td data-outcome="introduced">introduced</td><td data-relay="open">open</td><td data-path="direct or predicted">' 'introduction of alice to bob, its relay channel and path'
dom_has broker '<td data-requester="eve">eve</td><td data-listener="bob">bob</td><td data-outcome="refused">refused</td><td data-relay="none">none</td><td data-path="-">' "eve's refused request"
dom_has broker '<td data-requester="eve">eve</td><td data-listener="nobody">nobody</td><td data-outcome="unknown">' "eve's request for nobody"
dom_has broker '<p class="footnote" id="path-note">The broker does not see' 'footnote on the path'
n=$(grep -Eo 'id="registry-names" data-names="[0-9]+"><div class="label">names bound</div><div class="value">[0-9]+<' "$WORK/broker.html" |
  grep -Eo '[0-9]+<$' | tr -d '<')
((${n:-0} >= 3)) || fail "broker's page: ${n:-no} names bound, want 3 or more"
n=$(points broker count)
((${n:-0} >= 2)) || fail "broker's clients chart has ${n:-no} points, want 2 or more"

browse "http://127.0.0.1:$m_alice/" alice
dom_has alice '<body[^>]*data-role="client"' 'client role'
dom_has alice '<td data-name="bob"' 'row of peer bob'
dom_has alice 'data-path="direct"' 'direct path of the pair'
dom_has alice "data-target=\"[^\"]*$echo_port\"" 'forward to the echo server'
n=$(points alice count)
((${n:-0} >= 2)) || fail "alice's peers chart has ${n:-no} points, want 2 or more"
# The throughput chart: at least one rate, and the forward's bytes in it.
n=$(grep -Eo '<circle [^>]*data-series="out"[^>]*data-v="[0-9.e+]+"' "$WORK/alice.html" |
  sed -E 's/.*data-v="([^"]+)"/\1/' | awk '$1 > 0' | wc -l)
((n >= 1)) || fail "alice's throughput chart has no point above 0"

# ---- a hostile JSON through the same page -----------------------------
# The tree's files and a JSON whose strings are markup, served with the
# same policy by a test-only Python server.
mkdir -p "$WORK/hostile"
cp "$DASH_SRC"/index.html "$DASH_SRC"/dashboard.css "$DASH_SRC"/dashboard.js "$WORK/hostile/"
cat >"$WORK/hostile/dashboard.json" <<'JSON'
{"role":"client<img src=x onerror=\"document.title='pwned'\">",
 "status":{"version":"<img src=x onerror=\"document.title='pwned'\">",
  "uptime_s":"<b>1</b>","fingerprint":"<script>document.title='pwned'</script>",
  "checked_in":true,"public_address":"<img src=x onerror=\"document.title='pwned'\">",
  "nat_mapping":"<svg onload=\"document.title='pwned'\">",
  "peers":[{"name":"<img src=x onerror=\"document.title='pwned'\">",
    "fingerprint":"\"><img src=x>","state":"<i>up</i>",
    "path":"\" onmouseover=\"document.title='pwned'","predicted":"yes",
    "address":"<a href=javascript:alert(1)>x</a>","rtt_us":"<b>",
    "bytes_sent":{"x":1},"bytes_received":null}],
  "forwards":[{"local_port":"<b>","target":"<iframe src=//example.invalid>",
    "connections":1}]},
 "history":[[1,"<b>",2,3,4],"<img src=x>",[2,5,6,7,8]]}
JSON
cat >"$WORK/serve.py" <<PY
import http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Content-Security-Policy", "$CSP")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()
    def log_message(self, *a):
        pass
H.extensions_map[".js"] = "text/javascript"
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])),
    lambda *a: H(*a, directory=sys.argv[2])).serve_forever()
PY
h_port=$(free_port)
start hostile python3 "$WORK/serve.py" "$h_port" "$WORK/hostile"
wait_tcp_listen "$h_port"
browse "http://127.0.0.1:$h_port/" hostile
dom_has hostile 'data-updates="[1-9]' 'update from the hostile JSON'
# Parsed: only the elements the page itself makes, no event handler
# attribute anywhere, and the strings as text.
cat >"$WORK/parse.py" <<'PY'
import html.parser, sys
OURS = {"html", "head", "meta", "title", "link", "script", "body", "header",
        "h1", "h2", "p", "main", "section", "div", "table", "thead", "tbody",
        "tr", "th", "td", "figure", "figcaption", "span", "svg", "line",
        "text", "polyline", "circle", "noscript"}
bad, text = [], []
class P(html.parser.HTMLParser):
    def handle_starttag(self, tag, attrs):
        if tag not in OURS:
            bad.append(tag)
        for k, v in attrs:
            if k.startswith("on") or (k in ("href", "src") and tag != "link"
                                      and tag != "script"):
                bad.append(f"{tag} {k}={v}")
        if tag == "script" and dict(attrs).get("src") != "dashboard.js":
            bad.append("script " + str(attrs))
    def handle_data(self, data):
        text.append(data)
P().feed(open(sys.argv[1]).read())
text = "".join(text)
assert not bad, bad
for want in ["<img src=x onerror=\"document.title='pwned'\">",
             "<iframe src=//example.invalid>", "<svg onload="]:
    assert want in text, f"{want!r} is not in the page's text"
# The title (the first text) is the page's own: argv[2].
assert "pwned" not in text.split(sys.argv[2])[0], "title"
PY
python3 "$WORK/parse.py" "$WORK/hostile.html" "natter client" || fail "the hostile JSON made markup: see above"
dom_has hostile '<title>natter client</title>' 'untouched title'
# The broker's page, its introductions and registry included, the same.
mkdir -p "$WORK/hostile-broker"
cp "$WORK"/hostile/index.html "$WORK"/hostile/dashboard.css "$WORK"/hostile/dashboard.js "$WORK/hostile-broker/"
cat >"$WORK/hostile-broker/dashboard.json" <<'JSON'
{"role":"broker","status":{"version":"1","client_list":[]},
 "introduction_log":{"capacity":"<b>",
  "entries":[{"unix_ms":"<i>","requester":"<img src=x onerror=\"document.title='pwned'\">",
   "listener":"<iframe src=//example.invalid>","outcome":"<svg onload=\"document.title='pwned'\">",
   "check":"<b>","relay":"<b>r</b>","relayed_bytes":{"x":1},
   "path":"\" onmouseover=\"document.title='pwned'"},"<img src=x>",null]},
 "registry":{"backend":"<b>","names":"<img src=x>"}}
JSON
hb_port=$(free_port)
start hostile-broker python3 "$WORK/serve.py" "$hb_port" "$WORK/hostile-broker"
wait_tcp_listen "$hb_port"
browse "http://127.0.0.1:$hb_port/" hostile-broker
dom_has hostile-broker 'data-updates="[1-9]' 'update from the hostile JSON'
dom_has hostile-broker '<td data-path="[^"]*onmouseover' 'hostile path as an attribute value'
python3 "$WORK/parse.py" "$WORK/hostile-broker.html" "natter broker" ||
  fail "the hostile broker JSON made markup: see above"
# ---- every kind of path a client's page names -------------------------
mkdir -p "$WORK/paths"
cp "$DASH_SRC"/index.html "$DASH_SRC"/dashboard.css "$DASH_SRC"/dashboard.js "$WORK/paths/"
cat >"$WORK/paths/dashboard.json" <<'JSON'
{"role":"client","status":{"version":"0.1.0","uptime_s":1,"checked_in":true,
  "peers":[{"name":"d","state":"connected","path":"direct","predicted":false},
   {"name":"p","state":"connected","path":"direct","predicted":true},
   {"name":"r","state":"connected","path":"relay","over_tcp":false},
   {"name":"t","state":"connected","path":"relay","over_tcp":true}],
  "forwards":[]},"history":[]}
JSON
p_port=$(free_port)
start paths python3 "$WORK/serve.py" "$p_port" "$WORK/paths"
wait_tcp_listen "$p_port"
browse "http://127.0.0.1:$p_port/" paths
dom_has paths 'data-updates="[1-9]' 'update from the JSON of every path'
for want in 'd:direct:direct' 'p:predicted:predicted' 'r:relay:relay' 't:relay over TCP:relay-over-TCP'; do
  IFS=: read -r name path cls <<<"$want"
  dom_has paths "<td data-name=\"$name\">$name</td><td[^>]*>[^<]*</td><td[^>]*>[^<]*</td><td data-path=\"$path\" class=\"path-$cls\">$path</td>" "path '$path' of peer $name"
done
log "screenshots: $WORK/broker.png $WORK/alice.png $WORK/hostile.png"
# DASHBOARD_SHOTS=DIR keeps them, and one more of alice after 40 s of
# traffic, with a few points in each chart (doc/dashboard.png).
if [[ -n ${DASHBOARD_SHOTS:-} ]]; then
  cp "$WORK"/broker.png "$WORK"/alice.png "$WORK"/hostile.png "$DASHBOARD_SHOTS/"
  for ((i = 0; i < 40; i++)); do
    "$TCPCHECK" echo-check "$fwd" --conns 1 --bytes $(((i % 7 + 1) * 300))K >/dev/null
    sleep 1
  done
  timeout -k 5 90 chromium --headless=new --no-sandbox --disable-gpu \
    --no-first-run --user-data-dir="$WORK/chromium" --virtual-time-budget=8000 \
    --window-size=1000,760 --screenshot="$DASHBOARD_SHOTS/alice-later.png" \
    "http://127.0.0.1:$m_alice/" >>"$WORK/chromium.log" 2>&1
fi

# The dashboards stop with their processes, cleanly (ASan: no leak).
stop_expect_clean alice
stop_expect_clean bob
stop_expect_clean eve
stop_expect_clean broker
