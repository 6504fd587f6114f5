/* The broker's status: the public getters behind metrics, status pages
 * and embedders, and the Prometheus and HTTP/3 endpoints that serve them.
 * The pages are rendered by status/ from a snapshot filled here
 * (status/snapshot.h). */
#include "broker/broker_status.h"
#include "codec/mapping.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "base/structs.h"
#include "broker/broker_internal.h"
#include "status/dashboard.h"
#include "status/snapshot.h"
#include "status/status_render.h"

/* ---- the getters ---- */

int natter_broker_get_status_versioned(const natter_broker *b,
                                       int status_version,
                                       natter_broker_status *out) {
  natter_broker_status full, *st = &full;
  size_t len = nt_broker_status_len(status_version);
  if (!out || !len) {
    return NATTER_ERR_INVALID;
  }
  memset(st, 0, sizeof(*st));
  if (!b) {
    memcpy(out, st, len);
    return NATTER_ERR_INVALID;
  }
  st->uptime_ms = (nt_monotonic_ns() - b->started_ns) / 1000000;
  st->connections = b->nclients;
  st->clients = nt_hashmap_count(&b->checked_in);
  const bclient *c;
  TAILQ_FOREACH(c, &b->clients, link) {
    if (c->checked_in) {
      st->clients_by_mapping[nt_mapping_to_public(c->mapping)]++;
    }
  }
  st->check_ins = b->check_ins;
  st->introductions = b->introductions;
  nt_relay_stats rs;
  nt_relay_get_stats(b->relay, &rs);
  st->relayed_bytes = rs.relayed;
  nt_endpoint_traffic(b->ep, &st->bytes_received, &st->bytes_sent);
  st->bytes_received += b->map_rx;
  st->bytes_sent += b->map_tx;
  st->packets_dropped = nt_endpoint_dropped(b->ep);
  st->status_requests = b->status_requests;
  memcpy(out, st, len);
  return 0;
}

int natter_broker_foreach_client(const natter_broker *b,
                                 natter_broker_client_fn fn, void *user_data) {
  char hex[NT_FINGERPRINT_HEX_LEN + 1], addr[NT_ADDR_STRLEN];
  if (!b || !fn) {
    return NATTER_ERR_INVALID;
  }
  const bclient *c;
  TAILQ_FOREACH(c, &b->clients, link) {
    if (!c->checked_in || !nt_conn_peer_fingerprint(c->conn)) {
      continue;
    }
    natter_broker_client_info info;
    nt_conn_path_stats ps;
    memset(&info, 0, sizeof(info));
    nt_fingerprint_hex(nt_conn_peer_fingerprint(c->conn), hex);
    nt_conn_get_path_stats(c->conn, &ps);
    info.name = c->name;
    info.fingerprint = hex;
    info.address = nt_addr_str(nt_conn_remote_addr(c->conn), addr);
    info.mapping = nt_mapping_to_public(c->mapping);
    info.listening = c->listen;
    info.over_tcp = nt_endpoint_tcp_has(b->ep, nt_conn_remote_addr(c->conn));
    info.connected_unix_ms = c->checked_in_unix_ms;
    info.last_seen_unix_ms =
        nt_unix_ms_of_monotonic(nt_conn_last_rx_ns(c->conn));
    info.bytes_received = ps.bytes_received;
    info.bytes_sent = ps.bytes_sent;
    fn(&info, user_data);
  }
  return 0;
}

int natter_broker_add_admin(natter_broker *b, const char *fingerprint) {
  return b ? nt_admins_add(&b->admins, fingerprint) : NATTER_ERR_INVALID;
}

/* ---- metrics ---- */

static void keep_client(const natter_broker_client_info *row, void *ud) {
  (void)nt_broker_snapshot_add_client(ud, row); /* out of memory: left out */
}

/* What the renderers read: the public getters' view, copied, so a page
 * shows what an embedder reads. The client rows only |with_rows|: an
 * anonymous page does not show them, and anyone may ask for it. The
 * caller clears |s|. */
static void take_snapshot(const natter_broker *b, int with_rows,
                          nt_broker_snapshot *s) {
  nt_broker_snapshot_init(s);
  s->fingerprint = natter_broker_fingerprint(b);
  natter_broker_get_status(b, &s->status);
  natter_broker_stats stats;
  natter_broker_get_stats(b, &stats);
  s->relay_channels = stats.relay_channels;
  s->now_unix_ms = nt_unix_ms();
  if (with_rows) {
    natter_broker_foreach_client(b, keep_client, s);
  }
}

static void broker_render_metrics(struct evbuffer *out, void *ud) {
  natter_broker *b = ud;
  nt_broker_snapshot snap;
  b->status_requests++;
  take_snapshot(b, 0, &snap);
  nt_render_broker_metrics(out, &snap);
  nt_broker_snapshot_clear(&snap);
}

/* ---- dashboard ---- */

static void broker_sample(nt_history_point *p, void *ud) {
  natter_broker *b = ud;
  natter_broker_status st;
  natter_broker_get_status(b, &st);
  p->bytes_received = st.bytes_received;
  p->bytes_sent = st.bytes_sent;
  p->relayed_bytes = st.relayed_bytes;
  p->count = st.clients;
}

/* Each checked-in client's spending at the relay, by the 16 hex digits
 * of its key (as in the client rows), against the caps. */
static void relay_use_json(const natter_broker *b, struct evbuffer *out) {
  char hex[NT_FINGERPRINT_HEX_LEN + 1];
  uint64_t used, rate, total, now = nt_monotonic_ns();
  unsigned channels;
  const bclient *c;
  int first = 1;
  nt_relay_key_usage(b->relay, NULL, now, &used, &channels, &rate, &total);
  evbuffer_add_printf(out,
                      ",\"relay_caps\":{\"rate\":%llu,\"total\":%llu,"
                      "\"window_s\":%d,\"channels_per_key\":%d},"
                      "\"relay_use\":[",
                      (unsigned long long)rate, (unsigned long long)total,
                      NT_RELAY_WINDOW_S, NT_RELAY_MAX_PER_KEY);
  TAILQ_FOREACH(c, &b->clients, link) {
    const uint8_t *fp = nt_conn_peer_fingerprint(c->conn);
    if (!c->checked_in || !fp) {
      continue;
    }
    nt_relay_key_usage(b->relay, fp, now, &used, &channels, &rate, &total);
    nt_fingerprint_hex(fp, hex);
    evbuffer_add_printf(out,
                        "%s{\"fingerprint\":\"%.16s\",\"used\":%llu,"
                        "\"channels\":%u}",
                        first ? "" : ",", hex, (unsigned long long)used,
                        channels);
    first = 0;
  }
  evbuffer_add(out, "]", 1);
}

/* ---- introductions ---- */

void nt_broker_note_intro(natter_broker *b, const bclient *requester,
                          const char *requester_name, const bclient *listener,
                          const char *listener_name, int outcome, int check,
                          const uint8_t *relay_token) {
  nt_intro_entry e;
  memset(&e, 0, sizeof(e));
  e.unix_ms = nt_unix_ms();
  /* Names are checked ([A-Za-z0-9._-]) before they get here; one that
   * is not is shown as "?" rather than written into the JSON. */
  snprintf(e.requester, sizeof(e.requester), "%s",
           nt_name_valid(requester_name) ? requester_name : "?");
  snprintf(e.listener, sizeof(e.listener), "%s",
           nt_name_valid(listener_name) ? listener_name : "?");
  e.outcome = (uint8_t)outcome;
  e.check = check != 0;
  e.predict = requester && listener &&
              nt_intro_needs_prediction(requester->mapping, listener->mapping);
  if (relay_token) {
    e.relay = 1;
    memcpy(e.relay_token, relay_token, NT_RELAY_TOKEN_LEN);
  }
  nt_intro_log_add(&b->intro_log, &e);
}

/* The ring, newest first. The path is what the broker can know: a pair
 * whose relay channel forwarded bytes is "relayed"; an introduced pair
 * otherwise is "direct or predicted" (the broker does not see their
 * traffic: the clients' dashboards show the path), or "predicted" when
 * their NAT types leave nothing else. Entries are updated here: a
 * channel seen forwarding stays "relayed" once it is gone. */
static void introductions_json(natter_broker *b, struct evbuffer *out) {
  evbuffer_add_printf(out,
                      ",\"introduction_log\":{\"capacity\":%d,"
                      "\"entries\":[",
                      NT_INTRO_LOG_ENTRIES);
  for (size_t i = 0; i < nt_intro_log_count(&b->intro_log); i++) {
    nt_intro_entry *e = (nt_intro_entry *)nt_intro_log_at(&b->intro_log, i);
    const char *relay = "none", *path = "";
    uint64_t relayed = 0;
    if (e->relay) {
      int open = nt_relay_channel_use(b->relay, e->relay_token, &relayed);
      if (relayed) {
        e->relay_used = 1;
      }
      relay = e->relay_used ? "used" : open ? "open" : "closed";
    }
    if (e->outcome == NT_INTRO_INTRODUCED) {
      path = e->relay_used ? "relayed"
             : e->predict  ? "predicted"
                           : "direct or predicted";
    }
    evbuffer_add_printf(
        out,
        "%s{\"unix_ms\":%llu,\"requester\":\"%s\",\"listener\":\"%s\","
        "\"outcome\":\"%s\",\"check\":%s,\"relay\":\"%s\","
        "\"relayed_bytes\":%llu,\"path\":\"%s\"}",
        i ? "," : "", (unsigned long long)e->unix_ms, e->requester, e->listener,
        nt_intro_outcome_name(e->outcome), e->check ? "true" : "false", relay,
        (unsigned long long)relayed, path);
  }
  evbuffer_add(out, "]}", 2);
}

/* The status page an admin reads, and the relay's own counters. */
static void broker_dashboard_json(struct evbuffer *out, void *ud) {
  natter_broker *b = ud;
  nt_broker_snapshot snap;
  nt_relay_stats rs;
  b->status_requests++;
  take_snapshot(b, 1, &snap);
  evbuffer_add_printf(out, "\"status\":");
  nt_render_broker_json(out, &snap, 1);
  nt_broker_snapshot_clear(&snap);
  nt_relay_get_stats(b->relay, &rs);
  evbuffer_add_printf(out,
                      ",\"relay\":{\"enabled\":%s,\"channels\":%llu,"
                      "\"relayed_bytes\":%llu,\"bytes_received\":%llu,"
                      "\"bytes_sent\":%llu,\"refused\":%llu,"
                      "\"dropped_rate\":%llu,\"dropped\":%llu}",
                      b->relay ? "true" : "false",
                      (unsigned long long)rs.channels,
                      (unsigned long long)rs.relayed,
                      (unsigned long long)rs.rx, (unsigned long long)rs.tx,
                      (unsigned long long)rs.refused,
                      (unsigned long long)rs.dropped_rate,
                      (unsigned long long)rs.dropped);
  relay_use_json(b, out);
  introductions_json(b, out);
  evbuffer_add_printf(
      out,
      ",\"refusals\":{\"broker_full\":%llu,\"pending_full\":%llu,"
      "\"per_source\":%llu,\"new_names\":%llu,\"checks\":%llu,"
      "\"peer_rules\":%llu,\"relay_channels\":%llu,"
      "\"relay_rate\":%llu}",
      (unsigned long long)b->refused_connections[0],
      (unsigned long long)b->refused_connections[1],
      (unsigned long long)b->refused_connections[2],
      (unsigned long long)b->refused_new_names,
      (unsigned long long)b->refused_checks,
      (unsigned long long)b->refused_introductions,
      (unsigned long long)rs.refused, (unsigned long long)rs.dropped_rate);
  /* The registry as far as the loop knows it without asking the backend
   * on every poll: its size is a count the registry keeps
   * (nt_registry_names; null until the first count came). */
  size_t names = 0;
  int names_known = b->registry && nt_registry_names(b->registry, &names) == 0;
  evbuffer_add_printf(out,
                      ",\"registry\":{\"backend\":\"%s\",\"queued\":%zu,"
                      "\"touches_unwritten\":%zu,\"names\":",
                      b->registry ? nt_registry_backend(b->registry) : "none",
                      b->registry ? nt_registry_outstanding(b->registry) : 0,
                      b->registry ? nt_registry_pending(b->registry) : 0);
  if (names_known) {
    evbuffer_add_printf(out, "%zu}", names);
  } else {
    evbuffer_add_printf(out, "null}");
  }
}

int natter_broker_metrics_listen(natter_broker *b, const char *addr) {
  char err[300];
  if (!b || !addr || b->metrics) {
    return NATTER_ERR_INVALID;
  }
  int rv = nt_metrics_new(&b->metrics, b->base, addr, broker_render_metrics, b,
                          err, sizeof(err));
  if (rv != 0) {
    nt_error(&b->log, "%s", err);
    return rv;
  }
  nt_info(&b->log, "Prometheus metrics on %s (TCP port %u, GET /metrics)", addr,
          nt_metrics_port(b->metrics));
  if (nt_dashboard_attach(b->metrics, b->base, "broker", broker_sample,
                          broker_dashboard_json, b) == 0) {
    /* Said once: what this port now shows, and to whom. */
    nt_info(&b->log,
            "dashboard on TCP port %u (GET /, loopback only: every checked-in "
            "client's name, key, address and traffic, for anyone on this "
            "host)",
            nt_metrics_port(b->metrics));
  } else {
    nt_warn(&b->log, "no dashboard: out of memory");
  }
  return 0;
}

uint16_t natter_broker_metrics_port(const natter_broker *b) {
  return b ? nt_metrics_port(b->metrics) : 0;
}

/* ---- HTTP/3 status page ---- */

/* GET /status: anyone gets the aggregate counts (a broker is public, and
 * so are how many use it); a caller whose certificate key is an -admin
 * key also gets every client's row. JSON, or the table natter -status
 * prints when the request accepts text/plain. */
static int broker_render_status(struct evbuffer *body, const char *path,
                                const char *accept, const uint8_t *peer_fp,
                                const char **content_type, void *ud) {
  natter_broker *b = ud;
  size_t plen = strcspn(path, "?");
  b->status_requests++;
  if (plen != 7 || strncmp(path, "/status", 7) != 0) {
    *content_type = "text/plain; charset=utf-8";
    evbuffer_add_printf(body, "not found: try /status\n");
    return 404;
  }
  /* The broker's own key (natter -status on its machine) and -admin
   * keys see everything. */
  int detailed =
      nt_admins_contains(&b->admins, peer_fp) ||
      (peer_fp && memcmp(peer_fp, nt_identity_fingerprint(b->identity),
                         NT_FINGERPRINT_LEN) == 0);
  nt_broker_snapshot snap;
  take_snapshot(b, detailed, &snap);
  if (strstr(accept, "text/plain")) {
    *content_type = "text/plain; charset=utf-8";
    nt_render_broker_text(body, &snap, detailed);
  } else {
    *content_type = "application/json";
    nt_render_broker_json(body, &snap, detailed);
  }
  nt_broker_snapshot_clear(&snap);
  return 200;
}

int nt_broker_accept_h3(nt_endpoint *ep, const struct sockaddr *from,
                        nt_accept_params *params, void *ud) {
  natter_broker *b = ud;
  (void)ep;
  return b->h3 ? nt_h3_server_accept_from(b->h3, from, params) : 0;
}

void nt_broker_start_status_page(natter_broker *b) {
  if (nt_h3_server_new(&b->h3, &b->log, broker_render_status, b) != 0) {
    nt_warn(&b->log, "no HTTP/3 status page: out of memory");
    return;
  }
  /* The broker's own key (natter -status on its machine) and -admin keys
   * always find a slot. */
  nt_h3_server_set_privileged(b->h3, nt_identity_fingerprint(b->identity),
                              &b->admins);
}
