/* Status as text (status_render.h): Prometheus metrics, the JSON document
 * of the HTTP/3 status page and the tables of natter -status, each read
 * from a snapshot the role filled from its public getters. */
#include "status/status_render.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "status/metrics.h"

const char *natter_nat_mapping_name(int mapping) {
  switch (mapping) {
  case NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT:
    return "endpoint-independent";
  case NATTER_NAT_MAPPING_SYMMETRIC:
    return "symmetric";
  default:
    return "unknown";
  }
}

/* ---- Prometheus ---- */

static void counter(struct evbuffer *out, const char *name, const char *help,
                    uint64_t value) {
  nt_prom_header(out, name, "counter", help);
  nt_prom_sample(out, name, NULL, 0, value);
}

static void gauge(struct evbuffer *out, const char *name, const char *help,
                  uint64_t value) {
  nt_prom_header(out, name, "gauge", help);
  nt_prom_sample(out, name, NULL, 0, value);
}

static void traffic(struct evbuffer *out, const char *name, const char *help,
                    uint64_t rx, uint64_t tx) {
  const char *lrx[] = {"direction", "received"};
  const char *ltx[] = {"direction", "sent"};
  nt_prom_header(out, name, "counter", help);
  nt_prom_sample(out, name, lrx, 1, rx);
  nt_prom_sample(out, name, ltx, 1, tx);
}

void nt_render_broker_metrics(struct evbuffer *out,
                              const nt_broker_snapshot *s) {
  const natter_broker_status *st = &s->status;

  nt_prom_header(out, "natter_broker_uptime_seconds", "gauge",
                 "Seconds since the broker started.");
  nt_prom_sample_double(out, "natter_broker_uptime_seconds", NULL, 0,
                        (double)st->uptime_ms / 1000.0);
  gauge(out, "natter_broker_connections",
        "QUIC connections from clients now, checked in or not.",
        st->connections);
  gauge(out, "natter_broker_clients", "Clients checked in now.", st->clients);
  nt_prom_header(out, "natter_broker_clients_by_mapping", "gauge",
                 "Clients checked in now, by the NAT mapping they reported.");
  for (int m = 0; m < 3; m++) {
    const char *l[] = {"mapping", natter_nat_mapping_name(m)};
    nt_prom_sample(out, "natter_broker_clients_by_mapping", l, 1,
                   st->clients_by_mapping[m]);
  }
  counter(out, "natter_broker_check_ins_total", "Check-ins accepted.",
          st->check_ins);
  counter(out, "natter_broker_introductions_total", "Peer introductions made.",
          st->introductions);
  counter(out, "natter_broker_relayed_bytes_total",
          "Bytes relayed between peers.", st->relayed_bytes);
  gauge(out, "natter_broker_relay_channels", "Relay channels open now.",
        s->relay_channels);
  traffic(out, "natter_broker_udp_bytes_total",
          "UDP payload bytes on the broker's sockets.", st->bytes_received,
          st->bytes_sent);
  counter(out, "natter_broker_dropped_packets_total",
          "Datagrams no connection took.", st->packets_dropped);
  counter(out, "natter_broker_status_requests_total",
          "Metrics scrapes and status pages served.", st->status_requests);
}

typedef struct metric_walk {
  struct evbuffer *out;
  int pass;
} metric_walk;

static void peer_metrics(const natter_peer_info *p, metric_walk *w) {
  const char *l[] = {"peer", p->name, "direction", "received"};
  switch (w->pass) {
  case 0:
    nt_prom_sample(w->out, "natter_client_peer_bytes_total", l, 2,
                   p->bytes_received);
    l[3] = "sent";
    nt_prom_sample(w->out, "natter_client_peer_bytes_total", l, 2,
                   p->bytes_sent);
    break;
  case 1:
    if (p->path[0]) {
      nt_prom_sample_double(w->out, "natter_client_peer_rtt_seconds", l, 1,
                            (double)p->rtt_us / 1e6);
    }
    break;
  case 2:
    nt_prom_sample(w->out, "natter_client_peer_streams", l, 1, p->streams);
    break;
  default: {
    const char *lc[] = {"peer", p->name, "state", p->state};
    nt_prom_sample(w->out, "natter_client_peer_connected", lc, 2,
                   p->path[0] ? 1 : 0);
    break;
  }
  }
}

static void forward_metrics(const natter_forward_info *f, metric_walk *w) {
  char port[8];
  snprintf(port, sizeof(port), "%u", f->local_port);
  const char *l[] = {"local_port", port,        "target",
                     f->target,    "direction", "sent"};
  switch (w->pass) {
  case 0:
    nt_prom_sample(w->out, "natter_client_forward_bytes_total", l, 3,
                   f->stats.bytes_sent);
    l[5] = "received";
    nt_prom_sample(w->out, "natter_client_forward_bytes_total", l, 3,
                   f->stats.bytes_received);
    break;
  case 1:
    nt_prom_sample(w->out, "natter_client_forward_connections_total", l, 2,
                   f->stats.connections);
    break;
  case 2:
    nt_prom_sample(w->out, "natter_client_forward_failures_total", l, 2,
                   f->stats.failures);
    break;
  case 3:
    nt_prom_sample(w->out, "natter_client_forward_active", l, 2,
                   f->stats.active);
    break;
  default:
    nt_prom_sample(w->out, "natter_client_forward_datagrams_total", l, 3,
                   f->stats.datagrams_sent);
    l[5] = "received";
    nt_prom_sample(w->out, "natter_client_forward_datagrams_total", l, 3,
                   f->stats.datagrams_received);
    l[5] = "dropped";
    nt_prom_sample(w->out, "natter_client_forward_datagrams_total", l, 3,
                   f->stats.datagrams_dropped);
    break;
  }
}

void nt_render_client_metrics(struct evbuffer *out,
                              const nt_client_snapshot *s) {
  const natter_client_status *st = &s->status;
  metric_walk w = {out, 0};

  nt_prom_header(out, "natter_client_uptime_seconds", "gauge",
                 "Seconds since the client started.");
  nt_prom_sample_double(out, "natter_client_uptime_seconds", NULL, 0,
                        (double)st->uptime_ms / 1000.0);
  gauge(out, "natter_client_checked_in", "1 while checked in at the broker.",
        (uint64_t)st->checked_in);
  nt_prom_header(out, "natter_client_nat_mapping", "gauge",
                 "This host's NAT mapping (1 on the measured one).");
  for (int m = 0; m < 3; m++) {
    const char *l[] = {"mapping", natter_nat_mapping_name(m)};
    nt_prom_sample(out, "natter_client_nat_mapping", l, 1,
                   st->mapping == m ? 1 : 0);
  }
  counter(out, "natter_client_check_ins_total",
          "Check-ins the broker accepted.", st->check_ins);
  gauge(out, "natter_client_peers_connected", "Peer connections up now.",
        st->peers_connected);
  nt_prom_header(out, "natter_client_peer_connections_total", "counter",
                 "Peer connections made, by path.");
  {
    const char *l[] = {"path", "direct"};
    nt_prom_sample(out, "natter_client_peer_connections_total", l, 1,
                   st->peer_connections);
    l[1] = "relayed";
    nt_prom_sample(out, "natter_client_peer_connections_total", l, 1, 0);
  }
  nt_prom_header(out, "natter_client_punch_total", "counter",
                 "Hole punching outcomes, by our and the peer's NAT "
                 "mapping.");
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++) {
      for (int r = 0; r < 2; r++) {
        const char *l[] = {"local_mapping", natter_nat_mapping_name(i),
                           "peer_mapping",  natter_nat_mapping_name(j),
                           "result",        r ? "failure" : "success"};
        nt_prom_sample(out, "natter_client_punch_total", l, 3,
                       st->punch_by_mapping[i][j][r]);
      }
    }
  }
  gauge(out, "natter_client_streams",
        "Forwarded connections open now, both directions.", st->streams);
  counter(out, "natter_client_streams_opened_total",
          "Outgoing forwarded connections opened.", st->streams_opened);
  counter(out, "natter_client_peers_refused_total",
          "Requesters this listener's peer rules refused.", st->peers_refused);
  traffic(out, "natter_client_udp_bytes_total",
          "UDP payload bytes on the client's socket.", st->bytes_received,
          st->bytes_sent);
  nt_prom_header(out, "natter_client_errors_total", "counter",
                 "Failures reported as events, by error code.");
  for (int e = 1; e < 32; e++) {
    if (strcmp(natter_error_name(-e), "unknown") != 0) {
      const char *l[] = {"code", natter_error_name(-e)};
      nt_prom_sample(out, "natter_client_errors_total", l, 1, st->errors[e]);
    }
  }
  counter(out, "natter_client_status_requests_total",
          "Metrics scrapes and status pages served.", st->status_requests);
  nt_prom_header(out, "natter_client_stateless_resets_total", "counter",
                 "QUIC stateless resets: sent (to packets of connections "
                 "unknown here), received (a peer lost our connection), "
                 "dropped (not sent: over 100 a second).");
  {
    const char *l[] = {"result", "sent"};
    nt_prom_sample(out, "natter_client_stateless_resets_total", l, 1,
                   s->resets_sent);
    l[1] = "received";
    nt_prom_sample(out, "natter_client_stateless_resets_total", l, 1,
                   s->resets_received);
    l[1] = "dropped";
    nt_prom_sample(out, "natter_client_stateless_resets_total", l, 1,
                   s->resets_dropped);
  }

  /* Per peer and per forward: one family at a time, as the format wants
   * every sample of a metric together under its header. */
  static const char *const peer_families[][3] = {
      {"natter_client_peer_bytes_total", "counter",
       "UDP payload bytes on the connection to a peer."},
      {"natter_client_peer_rtt_seconds", "gauge",
       "Smoothed round-trip time to a connected peer."},
      {"natter_client_peer_streams", "gauge",
       "Forwarded connections open now with a peer."},
      {"natter_client_peer_connected", "gauge",
       "1 while the connection to a peer is up."}};
  for (w.pass = 0; w.pass < 4; w.pass++) {
    nt_prom_header(out, peer_families[w.pass][0], peer_families[w.pass][1],
                   peer_families[w.pass][2]);
    for (size_t i = 0; i < s->npeers; i++) {
      peer_metrics(&s->peers[i], &w);
    }
  }
  static const char *const forward_families[][3] = {
      {"natter_client_forward_bytes_total", "counter",
       "Bytes carried by a forward."},
      {"natter_client_forward_connections_total", "counter",
       "Connections a forward started."},
      {"natter_client_forward_failures_total", "counter",
       "Connections of a forward that failed."},
      {"natter_client_forward_active", "gauge",
       "Connections of a forward open now."},
      {"natter_client_forward_datagrams_total", "counter",
       "Datagrams of a UDP forward: sent, received, dropped."}};
  for (w.pass = 0; w.pass < 5; w.pass++) {
    nt_prom_header(out, forward_families[w.pass][0],
                   forward_families[w.pass][1], forward_families[w.pass][2]);
    for (size_t i = 0; i < s->nforwards; i++) {
      forward_metrics(&s->forwards[i], &w);
    }
  }
}

/* ---- JSON ---- */

/* A JSON string. Everything but printable ASCII is written as \u00XX:
 * what we print is ASCII (names, addresses, hex), and this keeps the
 * document valid whatever a string holds. */
static void json_str(struct evbuffer *out, const char *s) {
  evbuffer_add(out, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      evbuffer_add_printf(out, "\\%c", *p);
    } else if (*p < 0x20 || *p >= 0x7f) {
      evbuffer_add_printf(out, "\\u%04x", *p);
    } else {
      evbuffer_add(out, p, 1);
    }
  }
  evbuffer_add(out, "\"", 1);
}

static void json_key(struct evbuffer *out, int *first, const char *key) {
  evbuffer_add_printf(out, "%s\"%s\":", *first ? "" : ",", key);
  *first = 0;
}

static void json_kv_str(struct evbuffer *out, int *first, const char *key,
                        const char *value) {
  json_key(out, first, key);
  json_str(out, value);
}

static void json_kv_u64(struct evbuffer *out, int *first, const char *key,
                        uint64_t value) {
  json_key(out, first, key);
  evbuffer_add_printf(out, "%llu", (unsigned long long)value);
}

static void json_kv_bool(struct evbuffer *out, int *first, const char *key,
                         int value) {
  json_key(out, first, key);
  evbuffer_add_printf(out, "%s", value ? "true" : "false");
}

/* RFC 3339 UTC with milliseconds; "" for 0 (never). */
static void json_kv_time(struct evbuffer *out, int *first, const char *key,
                         uint64_t unix_ms) {
  char buf[40] = "";
  if (unix_ms) {
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03uZ", (unsigned)(unix_ms % 1000));
  }
  json_kv_str(out, first, key, buf);
}

static void json_kv_seconds(struct evbuffer *out, int *first, const char *key,
                            uint64_t ms) {
  json_key(out, first, key);
  evbuffer_add_printf(out, "%llu.%03u", (unsigned long long)(ms / 1000),
                      (unsigned)(ms % 1000));
}

static void fingerprint_prefix(char *out, const char *hex) {
  snprintf(out, 17, "%s", hex);
}

typedef struct json_walk {
  struct evbuffer *out;
  int first;
} json_walk;

static void broker_client_json(const natter_broker_client_info *ci,
                               json_walk *w) {
  char fp[17];
  int first = 1;
  evbuffer_add_printf(w->out, "%s{", w->first ? "" : ",");
  w->first = 0;
  fingerprint_prefix(fp, ci->fingerprint);
  json_kv_str(w->out, &first, "name", ci->name);
  json_kv_str(w->out, &first, "fingerprint", fp);
  json_kv_str(w->out, &first, "address", ci->address);
  json_kv_str(w->out, &first, "nat_mapping",
              natter_nat_mapping_name(ci->mapping));
  json_kv_bool(w->out, &first, "listening", ci->listening);
  json_kv_bool(w->out, &first, "over_tcp", ci->over_tcp);
  json_kv_time(w->out, &first, "connected_since", ci->connected_unix_ms);
  json_kv_time(w->out, &first, "last_seen", ci->last_seen_unix_ms);
  json_kv_u64(w->out, &first, "bytes_received", ci->bytes_received);
  json_kv_u64(w->out, &first, "bytes_sent", ci->bytes_sent);
  evbuffer_add(w->out, "}", 1);
}

void nt_render_broker_json(struct evbuffer *out, const nt_broker_snapshot *s,
                           int detailed) {
  const natter_broker_status *st = &s->status;
  int first = 1;
  evbuffer_add(out, "{", 1);
  json_kv_str(out, &first, "role", "broker");
  json_kv_str(out, &first, "version", natter_version());
  json_kv_seconds(out, &first, "uptime_s", st->uptime_ms);
  json_kv_bool(out, &first, "detailed", detailed);
  json_kv_u64(out, &first, "clients", st->clients);
  json_kv_u64(out, &first, "connections", st->connections);
  json_kv_u64(out, &first, "check_ins", st->check_ins);
  json_kv_u64(out, &first, "introductions", st->introductions);
  json_kv_u64(out, &first, "relayed_bytes", st->relayed_bytes);
  if (detailed) {
    json_kv_str(out, &first, "fingerprint", s->fingerprint);
    json_kv_u64(out, &first, "bytes_received", st->bytes_received);
    json_kv_u64(out, &first, "bytes_sent", st->bytes_sent);
    json_kv_u64(out, &first, "packets_dropped", st->packets_dropped);
    json_key(out, &first, "clients_by_mapping");
    int f2 = 1;
    evbuffer_add(out, "{", 1);
    for (int m = 0; m < 3; m++) {
      json_kv_u64(out, &f2, natter_nat_mapping_name(m),
                  st->clients_by_mapping[m]);
    }
    evbuffer_add(out, "}", 1);
    json_key(out, &first, "client_list");
    json_walk w = {out, 1};
    evbuffer_add(out, "[", 1);
    for (size_t i = 0; i < s->nclients; i++) {
      broker_client_json(&s->clients[i], &w);
    }
    evbuffer_add(out, "]", 1);
  }
  evbuffer_add(out, "}\n", 2);
}

static void peer_json(const natter_peer_info *p, json_walk *w) {
  char fp[17];
  int first = 1;
  evbuffer_add_printf(w->out, "%s{", w->first ? "" : ",");
  w->first = 0;
  fingerprint_prefix(fp, p->fingerprint);
  json_kv_str(w->out, &first, "name", p->name);
  json_kv_str(w->out, &first, "fingerprint", fp);
  json_kv_str(w->out, &first, "state", p->state);
  json_kv_str(w->out, &first, "path", p->path);
  json_kv_bool(w->out, &first, "predicted", p->predicted);
  json_kv_bool(w->out, &first, "over_tcp", p->over_tcp);
  json_kv_str(w->out, &first, "address", p->address);
  json_kv_str(w->out, &first, "nat_mapping",
              natter_nat_mapping_name(p->mapping));
  json_kv_bool(w->out, &first, "initiator", p->initiator);
  json_kv_u64(w->out, &first, "rtt_us", p->rtt_us);
  json_kv_u64(w->out, &first, "pto_count", p->pto_count);
  json_kv_u64(w->out, &first, "cwnd", p->cwnd);
  json_kv_u64(w->out, &first, "max_udp_payload", p->max_udp_payload);
  json_kv_u64(w->out, &first, "bytes_sent", p->bytes_sent);
  json_kv_u64(w->out, &first, "bytes_received", p->bytes_received);
  json_kv_u64(w->out, &first, "streams", p->streams);
  json_key(w->out, &first, "candidates");
  evbuffer_add(w->out, "[", 1);
  for (size_t i = 0; i < p->ncandidates; i++) {
    if (i) {
      evbuffer_add(w->out, ",", 1);
    }
    json_str(w->out, p->candidates[i]);
  }
  evbuffer_add(w->out, "]", 1);
  json_kv_u64(w->out, &first, "probe_rounds", p->probe_rounds);
  json_kv_u64(w->out, &first, "probes_received", p->probes_received);
  json_kv_u64(w->out, &first, "replies_received", p->replies_received);
  json_kv_str(w->out, &first, "probes_from", p->probes_from);
  evbuffer_add(w->out, "}", 1);
}

static void forward_json(const natter_forward_info *f, json_walk *w) {
  int first = 1;
  evbuffer_add_printf(w->out, "%s{", w->first ? "" : ",");
  w->first = 0;
  json_kv_u64(w->out, &first, "local_port", f->local_port);
  json_kv_str(w->out, &first, "peer", f->peer);
  json_kv_str(w->out, &first, "target", f->target);
  json_kv_u64(w->out, &first, "connections", f->stats.connections);
  json_kv_u64(w->out, &first, "active", f->stats.active);
  json_kv_u64(w->out, &first, "failures", f->stats.failures);
  json_kv_u64(w->out, &first, "bytes_sent", f->stats.bytes_sent);
  json_kv_u64(w->out, &first, "bytes_received", f->stats.bytes_received);
  /* A UDP forward's (0 for TCP). */
  json_kv_u64(w->out, &first, "datagrams_sent", f->stats.datagrams_sent);
  json_kv_u64(w->out, &first, "datagrams_received",
              f->stats.datagrams_received);
  json_kv_u64(w->out, &first, "datagrams_dropped", f->stats.datagrams_dropped);
  evbuffer_add(w->out, "}", 1);
}

void nt_render_client_json(struct evbuffer *out, const nt_client_snapshot *s,
                           int detailed) {
  const natter_client_status *st = &s->status;
  int first = 1;
  evbuffer_add(out, "{", 1);
  json_kv_str(out, &first, "role", "client");
  json_kv_str(out, &first, "version", natter_version());
  json_kv_seconds(out, &first, "uptime_s", st->uptime_ms);
  json_kv_bool(out, &first, "detailed", detailed);
  if (detailed) {
    json_kv_str(out, &first, "fingerprint", s->fingerprint);
    json_kv_bool(out, &first, "checked_in", st->checked_in);
    json_kv_str(out, &first, "broker", s->broker);
    json_kv_bool(out, &first, "broker_over_tcp", s->broker_over_tcp);
    json_kv_str(out, &first, "public_address", st->public_address);
    json_kv_str(out, &first, "nat_mapping",
                natter_nat_mapping_name(st->mapping));
    json_kv_str(out, &first, "portmap", st->portmap);
    json_kv_u64(out, &first, "local_port", st->local_port);
    json_kv_u64(out, &first, "check_ins", st->check_ins);
    json_kv_u64(out, &first, "peers_connected", st->peers_connected);
    json_kv_u64(out, &first, "peer_connections", st->peer_connections);
    json_kv_u64(out, &first, "punch_successes", st->punch_successes);
    json_kv_u64(out, &first, "punch_failures", st->punch_failures);
    json_kv_u64(out, &first, "streams", st->streams);
    json_kv_u64(out, &first, "streams_opened", st->streams_opened);
    json_kv_u64(out, &first, "bytes_received", st->bytes_received);
    json_kv_u64(out, &first, "bytes_sent", st->bytes_sent);
    json_key(out, &first, "peers");
    json_walk w = {out, 1};
    evbuffer_add(out, "[", 1);
    for (size_t i = 0; i < s->npeers; i++) {
      peer_json(&s->peers[i], &w);
    }
    evbuffer_add(out, "]", 1);
    json_key(out, &first, "forwards");
    w.first = 1;
    evbuffer_add(out, "[", 1);
    for (size_t i = 0; i < s->nforwards; i++) {
      forward_json(&s->forwards[i], &w);
    }
    evbuffer_add(out, "]", 1);
  }
  evbuffer_add(out, "}\n", 2);
}

/* ---- readable tables (natter -status) ---- */

static void duration(char *out, size_t len, uint64_t ms) {
  uint64_t s = ms / 1000;
  if (s < 60) {
    snprintf(out, len, "%llus", (unsigned long long)s);
  } else if (s < 3600) {
    snprintf(out, len, "%llum%02llus", (unsigned long long)(s / 60),
             (unsigned long long)(s % 60));
  } else {
    snprintf(out, len, "%lluh%02llum", (unsigned long long)(s / 3600),
             (unsigned long long)(s / 60 % 60));
  }
}

static void bytes(char *out, size_t len, uint64_t n) {
  static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = (double)n;
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    u++;
  }
  snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

typedef struct text_walk {
  struct evbuffer *out;
  uint64_t now_ms;
} text_walk;

static void broker_client_row(const natter_broker_client_info *ci,
                              text_walk *w) {
  char since[40], seen[24], in[16], outb[16], tcp_address[80];
  snprintf(tcp_address, sizeof(tcp_address), "%s/tcp", ci->address);
  natter_log_timestamp(since, sizeof(since), ci->connected_unix_ms);
  duration(seen, sizeof(seen),
           w->now_ms > ci->last_seen_unix_ms ? w->now_ms - ci->last_seen_unix_ms
                                             : 0);
  bytes(in, sizeof(in), ci->bytes_received);
  bytes(outb, sizeof(outb), ci->bytes_sent);
  evbuffer_add_printf(w->out,
                      "%-16s %.16s  %-22s %-20s %-6s %-24s %6s ago %10s "
                      "%10s\n",
                      ci->name, ci->fingerprint,
                      ci->over_tcp ? tcp_address : ci->address,
                      natter_nat_mapping_name(ci->mapping),
                      ci->listening ? "yes" : "no", since, seen, in, outb);
}

void nt_render_broker_text(struct evbuffer *out, const nt_broker_snapshot *s,
                           int detailed) {
  const natter_broker_status *st = &s->status;
  char up[24], in[16], outb[16], rel[16];
  duration(up, sizeof(up), st->uptime_ms);
  bytes(in, sizeof(in), st->bytes_received);
  bytes(outb, sizeof(outb), st->bytes_sent);
  bytes(rel, sizeof(rel), st->relayed_bytes);
  evbuffer_add_printf(out, "natter broker %s, up %s\n", natter_version(), up);
  evbuffer_add_printf(out,
                      "clients %llu (connections %llu), check-ins %llu, "
                      "introductions %llu, relayed %s\n",
                      (unsigned long long)st->clients,
                      (unsigned long long)st->connections,
                      (unsigned long long)st->check_ins,
                      (unsigned long long)st->introductions, rel);
  if (!detailed) {
    evbuffer_add_printf(out, "(per-client rows are for -admin keys only)\n");
    return;
  }
  evbuffer_add_printf(
      out,
      "key %s\nUDP received %s, sent %s; NAT mappings: "
      "endpoint-independent %llu, symmetric %llu, unknown %llu\n\n",
      s->fingerprint, in, outb, (unsigned long long)st->clients_by_mapping[1],
      (unsigned long long)st->clients_by_mapping[2],
      (unsigned long long)st->clients_by_mapping[0]);
  evbuffer_add_printf(out,
                      "%-16s %-16s  %-22s %-20s %-6s %-24s %10s %10s "
                      "%10s\n",
                      "NAME", "KEY", "ADDRESS", "NAT", "LISTEN",
                      "CHECKED IN (UTC)", "LAST SEEN", "RECEIVED", "SENT");
  text_walk w = {out, s->now_unix_ms};
  for (size_t i = 0; i < s->nclients; i++) {
    broker_client_row(&s->clients[i], &w);
  }
}

static void client_peer_row(const natter_peer_info *p, text_walk *w) {
  char rtt[24] = "-", in[16], outb[16], probes[64];
  if (p->path[0]) {
    snprintf(rtt, sizeof(rtt), "%.1f ms", (double)p->rtt_us / 1000.0);
  }
  bytes(in, sizeof(in), p->bytes_received);
  bytes(outb, sizeof(outb), p->bytes_sent);
  snprintf(probes, sizeof(probes), "%u/%u/%u", p->probe_rounds,
           p->probes_received, p->replies_received);
  evbuffer_add_printf(w->out,
                      "%-16s %-11s %-7s %-22s %-20s %9s %4llu %10s %10s "
                      "%7llu %-9s",
                      p->name, p->state,
                      p->over_tcp ? "relay/tcp" : p->path[0] ? p->path : "-",
                      p->address[0] ? p->address : "-",
                      natter_nat_mapping_name(p->mapping), rtt,
                      (unsigned long long)p->pto_count, outb, in,
                      (unsigned long long)p->streams, probes);
  for (size_t i = 0; i < p->ncandidates; i++) {
    evbuffer_add_printf(w->out, "%s%s", i ? "," : " ", p->candidates[i]);
  }
  evbuffer_add_printf(w->out, "\n");
}

static void client_forward_row(const natter_forward_info *f, text_walk *w) {
  char port[16], in[16], outb[16];
  snprintf(port, sizeof(port), f->local_port ? "%u" : "stdio", f->local_port);
  bytes(outb, sizeof(outb), f->stats.bytes_sent);
  bytes(in, sizeof(in), f->stats.bytes_received);
  evbuffer_add_printf(w->out, "%-8s %-30s %6llu %6llu %6llu %10s %10s\n", port,
                      f->target, (unsigned long long)f->stats.connections,
                      (unsigned long long)f->stats.active,
                      (unsigned long long)f->stats.failures, outb, in);
}

void nt_render_client_text(struct evbuffer *out, const nt_client_snapshot *s,
                           int detailed) {
  const natter_client_status *st = &s->status;
  char up[24], in[16], outb[16];
  (void)detailed;
  duration(up, sizeof(up), st->uptime_ms);
  bytes(in, sizeof(in), st->bytes_received);
  bytes(outb, sizeof(outb), st->bytes_sent);
  evbuffer_add_printf(out, "natter client %s, up %s, key %.16s\n",
                      natter_version(), up, s->fingerprint);
  evbuffer_add_printf(out,
                      "%s, public address %s, NAT %s, UDP port %u%s%s%s%s\n",
                      !st->checked_in     ? "not checked in"
                      : s->broker_over_tcp ? "checked in over TCP (UDP to "
                                             "the broker gets no answer)"
                                           : "checked in",
                      st->public_address[0] ? st->public_address : "unknown",
                      natter_nat_mapping_name(st->mapping), st->local_port,
                      st->portmap[0] ? ", " : "", st->portmap,
                      s->broker[0] ? ", broker " : "", s->broker);
  evbuffer_add_printf(out,
                      "peers connected %llu (made %llu), hole punching "
                      "succeeded %llu, failed %llu; streams %llu (opened "
                      "%llu); UDP received %s, sent %s\n\n",
                      (unsigned long long)st->peers_connected,
                      (unsigned long long)st->peer_connections,
                      (unsigned long long)st->punch_successes,
                      (unsigned long long)st->punch_failures,
                      (unsigned long long)st->streams,
                      (unsigned long long)st->streams_opened, in, outb);
  evbuffer_add_printf(out,
                      "%-16s %-11s %-7s %-22s %-20s %9s %4s %10s %10s %7s "
                      "%-9s %s\n",
                      "PEER", "STATE", "PATH", "ADDRESS", "NAT", "RTT", "PTO",
                      "SENT", "RECEIVED", "STREAMS", "PROBES", "CANDIDATES");
  text_walk w = {out, 0};
  for (size_t i = 0; i < s->npeers; i++) {
    client_peer_row(&s->peers[i], &w);
  }
  evbuffer_add_printf(out, "\n%-8s %-30s %6s %6s %6s %10s %10s\n", "FORWARD",
                      "TARGET", "CONNS", "ACTIVE", "FAILED", "SENT",
                      "RECEIVED");
  for (size_t i = 0; i < s->nforwards; i++) {
    client_forward_row(&s->forwards[i], &w);
  }
}
