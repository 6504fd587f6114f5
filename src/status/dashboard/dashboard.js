/* natter dashboard: polls dashboard.json and draws it. Every string from
 * the JSON reaches the page through textContent or setAttribute, never
 * as markup: a name is data, whatever it holds. Charts are SVG built
 * here, one element per data point (data-t, data-v) so tests can count
 * them. No library, nothing from elsewhere (the page's
 * Content-Security-Policy allows this script and the style sheet only). */
"use strict";

(function () {
  var POLL_MS = 5000;
  var SVG = "http://www.w3.org/2000/svg";

  /* An element with attributes and children (nodes or text). */
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function svg(tag, attrs, children) {
    var e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      e.setAttribute(k, String(attrs[k]));
    });
  }

  function append(e, children) {
    if (children === undefined || children === null) return;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    });
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
  }

  function str(v) {
    return typeof v === "string" ? v : v === undefined || v === null ? "" : String(v);
  }

  function num(v) {
    var n = Number(v);
    return isFinite(n) ? n : 0;
  }

  function bytes(v) {
    var units = ["B", "kB", "MB", "GB", "TB"], n = num(v), u = 0;
    while (n >= 1000 && u < units.length - 1) { n /= 1000; u++; }
    return (u ? n.toFixed(1) : n.toFixed(0)) + " " + units[u];
  }

  function rate(v) { return bytes(v) + "/s"; }

  function duration(s) {
    s = Math.floor(num(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + ("0" + (s % 60)).slice(-2) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + ("0" + Math.floor(s / 60 % 60)).slice(-2) + "m";
    return Math.floor(s / 86400) + "d" + Math.floor(s / 3600 % 24) + "h";
  }

  function card(label, value) {
    return el("div", { "class": "card" }, [
      el("div", { "class": "label" }, label),
      el("div", { "class": "value" }, value)
    ]);
  }

  /* A table: columns [{h: heading, f: row -> text, cls: class, attrs}]. */
  function table(title, id, rows, columns) {
    var box = el("section", { id: id });
    box.appendChild(el("h2", null, title + " (" + rows.length + ")"));
    if (!rows.length) {
      box.appendChild(el("p", { "class": "empty" }, "none"));
      return box;
    }
    var head = el("tr", null, columns.map(function (c) { return el("th", null, c.h); }));
    var body = rows.map(function (r) {
      return el("tr", null, columns.map(function (c) {
        var attrs = c.attrs ? c.attrs(r) : {};
        if (c.cls) attrs["class"] = (attrs["class"] ? attrs["class"] + " " : "") + c.cls;
        return el("td", attrs, c.f(r));
      }));
    });
    box.appendChild(el("div", { "class": "table-wrap" },
      el("table", null, [el("thead", null, head), el("tbody", null, body)])));
    return box;
  }

  /* Points [t, v] to an SVG chart; series [{name, cls, points}]. */
  function chart(id, title, series, fmt) {
    var W = 300, H = 100, PAD = 12;
    var all = [];
    series.forEach(function (s) { all = all.concat(s.points); });
    var t0 = Infinity, t1 = -Infinity, vmax = 0;
    all.forEach(function (p) {
      t0 = Math.min(t0, p[0]); t1 = Math.max(t1, p[0]); vmax = Math.max(vmax, p[1]);
    });
    if (!all.length) { t0 = 0; t1 = 1; }
    if (t1 <= t0) t0 = t1 - 1; /* one point: at "now", on the right */
    if (vmax <= 0) vmax = 1;
    function x(t) { return (PAD + (t - t0) / (t1 - t0) * (W - 2 * PAD)).toFixed(1); }
    function y(v) { return (H - PAD - v / vmax * (H - 2 * PAD)).toFixed(1); }
    var g = svg("svg", {
      "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img",
      "data-chart": id, "data-points": all.length, "aria-label": title
    });
    g.appendChild(svg("line", { "class": "axis", x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD }));
    g.appendChild(svg("text", { x: PAD, y: 9 }, "max " + fmt(vmax)));
    g.appendChild(svg("text", { x: W - PAD, y: H - 1, "text-anchor": "end" }, "now"));
    series.forEach(function (s) {
      if (s.points.length > 1) {
        g.appendChild(svg("polyline", {
          "class": s.cls,
          points: s.points.map(function (p) { return x(p[0]) + "," + y(p[1]); }).join(" ")
        }));
      }
      s.points.forEach(function (p) {
        g.appendChild(svg("circle", {
          "class": "pt " + s.cls, r: 1.6, cx: x(p[0]), cy: y(p[1]),
          "data-series": s.name, "data-t": p[0], "data-v": p[1]
        }));
      });
    });
    var caption = el("figcaption", null, title + " ");
    series.forEach(function (s) {
      var last = s.points.length ? s.points[s.points.length - 1][1] : 0;
      caption.appendChild(el("span", { "class": "key-" + s.name }, s.name + " " + fmt(last) + " "));
    });
    return el("figure", null, [caption, g]);
  }

  /* The history's totals as per-second rates between neighbours. */
  function rates(history, field) {
    var out = [];
    for (var i = 1; i < history.length; i++) {
      var dt = (num(history[i][0]) - num(history[i - 1][0])) / 1000;
      var dv = num(history[i][field]) - num(history[i - 1][field]);
      if (dt > 0 && dv >= 0) out.push([num(history[i][0]), dv / dt]);
    }
    return out;
  }

  function levels(history, field) {
    return history.map(function (p) { return [num(p[0]), num(p[field])]; });
  }

  function peerPath(p) {
    var path = str(p.path);
    if (!path) return "-";
    if (path === "direct" && p.predicted === true) return "predicted";
    /* The relay reached over TCP (UDP blocked on this side's network). */
    if (path === "relay" && p.over_tcp === true) return "relay over TCP";
    return path;
  }

  function drawCharts(doc, countName) {
    var h = Array.isArray(doc.history) ? doc.history.filter(Array.isArray) : [];
    var box = document.getElementById("charts");
    clear(box);
    box.appendChild(chart("throughput", "Throughput, last hour", [
      { name: "in", cls: "s-in", points: rates(h, 1) },
      { name: "out", cls: "s-out", points: rates(h, 2) }
    ], rate));
    box.appendChild(chart("count", countName + ", last hour", [
      { name: "count", cls: "s-count", points: levels(h, 4) }
    ], function (v) { return String(Math.round(v)); }));
    box.appendChild(chart("relay", "Relayed, last hour", [
      { name: "relay", cls: "s-relay", points: rates(h, 3) }
    ], rate));
  }

  function drawBroker(doc) {
    var s = doc.status || {}, r = doc.relay || {};
    var clients = Array.isArray(s.client_list) ? s.client_list : [];
    /* Relay spending by key (the 16 hex digits the rows show). */
    var caps = doc.relay_caps || {}, use = Object.create(null);
    (Array.isArray(doc.relay_use) ? doc.relay_use : []).forEach(function (u) {
      if (u && typeof u === "object") use[str(u.fingerprint)] = u;
    });
    function relayUsed(c) {
      var u = use[str(c.fingerprint)] || {};
      return bytes(u.used) + " / " + (num(caps.total) ? bytes(caps.total) : "no cap");
    }
    function relayChannels(c) {
      var u = use[str(c.fingerprint)] || {};
      return num(u.channels) + " / " + num(caps.channels_per_key);
    }
    var summary = document.getElementById("summary");
    clear(summary);
    append(summary, [
      card("clients", num(s.clients)),
      card("connections", num(s.connections)),
      card("check-ins", num(s.check_ins)),
      card("introductions", num(s.introductions)),
      card("relay channels", r.enabled === true ? num(r.channels) : "off"),
      card("relayed", bytes(s.relayed_bytes)),
      card("received", bytes(s.bytes_received)),
      card("sent", bytes(s.bytes_sent)),
      card("dropped datagrams", num(s.packets_dropped)),
      card("registry", str((doc.registry || {}).backend) + ", " +
        num((doc.registry || {}).queued) + " queued"),
      el("div", { "class": "card", id: "registry-names", "data-names": str((doc.registry || {}).names) }, [
        el("div", { "class": "label" }, "names bound"),
        el("div", { "class": "value" }, typeof (doc.registry || {}).names === "number" ? num(doc.registry.names) : "counting")
      ])
    ]);
    drawCharts(doc, "Clients");
    var tables = document.getElementById("tables");
    clear(tables);
    tables.appendChild(table("Checked-in clients", "clients", clients, [
      { h: "name", f: function (c) { return str(c.name); }, attrs: function (c) { return { "data-name": str(c.name) }; } },
      { h: "key", f: function (c) { return str(c.fingerprint); }, cls: "mono" },
      { h: "address", f: function (c) { return str(c.address); }, cls: "mono" },
      { h: "NAT", f: function (c) { return str(c.nat_mapping); } },
      { h: "listening", f: function (c) { return c.listening === true ? "yes" : "no"; } },
      { h: "since (UTC)", f: function (c) { return str(c.connected_since).replace("T", " ").replace(/\.\d+Z$/, ""); } },
      { h: "received", f: function (c) { return bytes(c.bytes_received); }, cls: "num" },
      { h: "sent", f: function (c) { return bytes(c.bytes_sent); }, cls: "num" },
      { h: "relayed (window)", f: relayUsed, cls: "num" },
      { h: "relay channels", f: relayChannels, cls: "num" }
    ]));
    var limits = {
      broker_full: "connections: broker full",
      pending_full: "connections: too many not checked in",
      per_source: "connections: too many from one address",
      new_names: "new names an hour",
      checks: "checks under way",
      peer_rules: "introductions: the listener's peer rules",
      relay_channels: "relay channels (per key, address or broker)",
      relay_rate: "relay datagrams over the rate"
    };
    /* The last introductions, newest first, and the path of each pair
     * as far as the broker can know it. */
    var ilog = doc.introduction_log && typeof doc.introduction_log === "object" ? doc.introduction_log : {};
    var intros = (Array.isArray(ilog.entries) ? ilog.entries : []).filter(function (e) {
      return e && typeof e === "object";
    });
    function pairPath(e) { return str(e.path) || "-"; }
    tables.appendChild(table("Introductions, the last " + num(ilog.capacity), "introductions", intros, [
      { h: "time (UTC)", f: function (e) { return num(e.unix_ms) ? new Date(num(e.unix_ms)).toISOString().replace("T", " ").replace(/\.\d+Z$/, "") : "-"; } },
      { h: "requester", f: function (e) { return str(e.requester) + (e.check === true ? " (check)" : ""); }, attrs: function (e) { return { "data-requester": str(e.requester) }; } },
      { h: "listener", f: function (e) { return str(e.listener); }, attrs: function (e) { return { "data-listener": str(e.listener) }; } },
      { h: "outcome", f: function (e) { return str(e.outcome); }, attrs: function (e) { return { "data-outcome": str(e.outcome) }; } },
      { h: "relay channel", f: function (e) { return str(e.relay) + (num(e.relayed_bytes) ? ", " + bytes(e.relayed_bytes) : ""); }, attrs: function (e) { return { "data-relay": str(e.relay) }; } },
      { h: "path", f: pairPath, attrs: function (e) { return { "data-path": pairPath(e) }; } }
    ]));
    tables.appendChild(el("p", { "class": "footnote", id: "path-note" },
      "The broker does not see the peers' own traffic: \"relayed\" is a pair whose relay " +
      "channel carried bytes, \"predicted\" a pair whose NAT types leave only port " +
      "prediction, \"direct or predicted\" any other. Each client's dashboard shows its exact path."));
    var refusals = doc.refusals && typeof doc.refusals === "object" ? doc.refusals : {};
    tables.appendChild(table("Refusals by limit", "refusals", Object.keys(refusals), [
      { h: "limit", f: function (k) { return limits[k] || k; }, attrs: function (k) { return { "data-limit": k }; } },
      { h: "refused", f: function (k) { return num(refusals[k]); }, cls: "num" }
    ]));
  }

  function drawClient(doc) {
    var s = doc.status || {};
    var peers = Array.isArray(s.peers) ? s.peers : [];
    var forwards = Array.isArray(s.forwards) ? s.forwards : [];
    var summary = document.getElementById("summary");
    clear(summary);
    append(summary, [
      card("checked in", s.checked_in === true ? "yes" : "no"),
      card("public address", str(s.public_address) || "unknown"),
      card("NAT mapping", str(s.nat_mapping)),
      card("UDP port", num(s.local_port)),
      card("peers up", num(s.peers_connected)),
      card("hole punching", num(s.punch_successes) + " ok, " + num(s.punch_failures) + " failed"),
      card("streams", num(s.streams)),
      card("received", bytes(s.bytes_received)),
      card("sent", bytes(s.bytes_sent))
    ]);
    drawCharts(doc, "Peers");
    var tables = document.getElementById("tables");
    clear(tables);
    tables.appendChild(table("Peers", "peers", peers, [
      { h: "name", f: function (p) { return str(p.name); }, attrs: function (p) { return { "data-name": str(p.name) }; } },
      { h: "key", f: function (p) { return str(p.fingerprint); }, cls: "mono" },
      { h: "state", f: function (p) { return str(p.state); } },
      { h: "path", f: peerPath, attrs: function (p) { return { "data-path": peerPath(p), "class": "path-" + peerPath(p).replace(/[^A-Za-z0-9]+/g, "-") }; } },
      { h: "address", f: function (p) { return str(p.address) || "-"; }, cls: "mono" },
      { h: "NAT", f: function (p) { return str(p.nat_mapping); } },
      { h: "RTT", f: function (p) { return str(p.path) ? (num(p.rtt_us) / 1000).toFixed(1) + " ms" : "-"; }, cls: "num" },
      { h: "PTOs (loss)", f: function (p) { return num(p.pto_count); }, cls: "num" },
      { h: "sent", f: function (p) { return bytes(p.bytes_sent); }, cls: "num" },
      { h: "received", f: function (p) { return bytes(p.bytes_received); }, cls: "num" },
      { h: "streams", f: function (p) { return num(p.streams); }, cls: "num" }
    ]));
    tables.appendChild(table("Forwards", "forwards", forwards, [
      { h: "local port", f: function (f) { return num(f.local_port) || "stdio"; }, cls: "num" },
      { h: "target", f: function (f) { return str(f.target); }, attrs: function (f) { return { "data-target": str(f.target) }; } },
      { h: "connections", f: function (f) { return num(f.connections); }, cls: "num" },
      { h: "active", f: function (f) { return num(f.active); }, cls: "num" },
      { h: "failed", f: function (f) { return num(f.failures); }, cls: "num" },
      { h: "sent", f: function (f) { return bytes(f.bytes_sent); }, cls: "num" },
      { h: "received", f: function (f) { return bytes(f.bytes_received); }, cls: "num" }
    ]));
  }

  function draw(doc) {
    var s = doc.status || {};
    var role = doc.role === "broker" ? "broker" : "client";
    document.title = "natter " + role;
    document.getElementById("title").textContent = "natter " + role;
    document.getElementById("subtitle").textContent =
      "version " + str(s.version) + ", up " + duration(s.uptime_s) + ", key " + str(s.fingerprint);
    document.body.setAttribute("data-role", role);
    if (role === "broker") drawBroker(doc); else drawClient(doc);
  }

  function setState(text, error) {
    var e = document.getElementById("state");
    e.textContent = text;
    e.className = error ? "state error" : "state";
  }

  function poll() {
    fetch("dashboard.json", { cache: "no-store", credentials: "omit" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (doc) {
        if (!doc || typeof doc !== "object") throw new Error("not a JSON object");
        draw(doc);
        document.body.setAttribute("data-updates",
          num(document.body.getAttribute("data-updates")) + 1);
        setState("updated " + new Date().toLocaleTimeString() + ", every " + POLL_MS / 1000 + " s", false);
      })
      .catch(function (e) {
        setState("cannot read dashboard.json: " + str(e && e.message), true);
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  poll();
})();
