/* The client's status: the counters its events feed, the public getters
 * behind metrics, status pages and embedders, and the Prometheus and
 * HTTP/3 endpoints that serve them. The pages are rendered by status/
 * from a snapshot filled here (status/snapshot.h). */
#include "client/client_status.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "base/structs.h"
#include "client/client_internal.h"
#include "codec/mapping.h"
#include "codec/portmap.h"
#include "status/dashboard.h"
#include "status/h3.h"
#include "status/metrics.h"
#include "status/snapshot.h"
#include "client/tcp_fallback.h"
#include "status/status_render.h"

void nt_client_count_event(natter_client *c, natter_event_type type, int error,
                           const char *peer) {
  int ours = nt_mapping_to_public(c->self.mapping), theirs = 0;
  if (peer && c->peers) {
    theirs =
        nt_mapping_to_public(nt_peer_mapping(nt_peers_find(c->peers, peer)));
  }
  switch (type) {
  case NATTER_EVENT_CHECKED_IN:
    c->check_ins++;
    break;
  case NATTER_EVENT_PEER_CONNECTED:
    c->peer_connections++;
    c->punch_by_mapping[ours][theirs][0]++;
    break;
  case NATTER_EVENT_PEER_FAILED:
    if (error == NATTER_ERR_PUNCH) {
      c->punch_by_mapping[ours][theirs][1]++;
    }
    break;
  case NATTER_EVENT_FORWARD_OPENED:
    c->streams_opened++;
    break;
  default:
    break;
  }
  if (error < 0 && -error < 32) {
    c->errors[-error]++;
  }
}

/* ---- the getters ---- */

typedef struct peer_count {
  uint64_t connected, streams;
  const natter_client *c;
} peer_count;

static void count_peer(const nt_peer_view *v, void *ud) {
  peer_count *pc = ud;
  if (v->check) {
    return; /* a peer's check is not a peer connection of ours */
  }
  if (v->conn) {
    pc->connected++;
  }
  pc->streams += nt_tunnel_count_for_peer(&pc->c->tunnels, v->name);
}

int natter_client_get_status_versioned(const natter_client *c,
                                       int status_version,
                                       natter_client_status *out) {
  natter_client_status full, *st = &full;
  size_t len = nt_client_status_len(status_version);
  if (!out || !len) {
    return NATTER_ERR_INVALID;
  }
  memset(st, 0, sizeof(*st));
  if (!c) {
    memcpy(out, st, len);
    return NATTER_ERR_INVALID;
  }
  st->uptime_ms = (nt_monotonic_ns() - c->started_ns) / 1000000;
  st->checked_in = c->checked_in ? 1 : 0;
  st->mapping = nt_mapping_to_public(c->self.mapping);
  natter_client_public_address(c, st->public_address,
                               sizeof(st->public_address));
  st->local_port = nt_endpoint_port(c->ep);
  st->check_ins = c->check_ins;
  peer_count pc = {0, 0, c};
  if (c->peers) {
    nt_peers_each(c->peers, count_peer, &pc);
  }
  st->peers_connected = pc.connected;
  st->peer_connections = c->peer_connections;
  memcpy(st->punch_by_mapping, c->punch_by_mapping,
         sizeof(st->punch_by_mapping));
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++) {
      st->punch_successes += c->punch_by_mapping[i][j][0];
      st->punch_failures += c->punch_by_mapping[i][j][1];
    }
  }
  st->streams = pc.streams;
  st->streams_opened = c->streams_opened;
  nt_endpoint_traffic(c->ep, &st->bytes_received, &st->bytes_sent);
  memcpy(st->errors, c->errors, sizeof(st->errors));
  st->status_requests = c->status_requests;
  st->peers_refused = nt_peers_refused_total(c->peers);
  if (c->self.portmap.len) {
    char a[NT_ADDR_STRLEN];
    snprintf(st->portmap, sizeof(st->portmap), "port-mapped (%s) at %s",
             nt_portmap_method_name(c->self.portmap_method),
             nt_addr_str((const struct sockaddr *)&c->self.portmap.ss, a));
  }
  memcpy(out, st, len);
  return 0;
}

typedef struct peer_walk {
  const natter_client *c;
  natter_peer_fn fn;
  void *user_data;
} peer_walk;

static void show_peer(const nt_peer_view *v, void *ud) {
  peer_walk *w = ud;
  char hex[NT_FINGERPRINT_HEX_LEN + 1] = "", addr[NT_ADDR_STRLEN] = "";
  char from[NT_ADDR_STRLEN] = "";
  char cands[NT_PUNCH_MAX_CANDIDATES][NT_ADDR_STRLEN];
  const char *pcands[NT_PUNCH_MAX_CANDIDATES];
  natter_peer_info info;

  if (v->check) {
    return; /* a peer's check, not one of our peers */
  }
  memset(&info, 0, sizeof(info));
  if (v->key) {
    nt_fingerprint_hex(v->key, hex);
  }
  info.name = v->name;
  info.fingerprint = hex;
  info.state = v->state;
  info.path = !v->conn ? "" : nt_conn_is_relayed(v->conn) ? "relay" : "direct";
  info.over_tcp = v->conn && nt_conn_over_tcp(v->conn);
  info.predicted = v->predicted;
  info.address = addr;
  info.mapping = nt_mapping_to_public(v->mapping);
  info.initiator = v->initiator;
  if (v->conn) {
    nt_conn_path_stats ps;
    nt_conn_get_path_stats(v->conn, &ps);
    nt_addr_str(nt_conn_remote_addr(v->conn), addr);
    info.rtt_us = ps.rtt_us;
    info.pto_count = ps.pto_count;
    info.cwnd = ps.cwnd;
    info.bytes_sent = ps.bytes_sent;
    info.bytes_received = ps.bytes_received;
    info.max_udp_payload = ps.max_udp_payload;
  }
  info.streams = nt_tunnel_count_for_peer(&w->c->tunnels, v->name);
  for (size_t i = 0; i < v->punch->ncandidates; i++) {
    pcands[i] = nt_addr_str(
        (const struct sockaddr *)&v->punch->candidates[i].ss, cands[i]);
  }
  info.ncandidates = v->punch->ncandidates;
  info.candidates = pcands;
  info.probe_rounds = v->punch->rounds;
  info.probes_received = v->punch->probes_seen;
  info.replies_received = v->punch->replies_seen;
  if (v->probe_from) {
    nt_addr_str((const struct sockaddr *)&v->probe_from->ss, from);
  }
  info.probes_from = from;
  w->fn(&info, w->user_data);
}

int natter_client_foreach_peer(const natter_client *c, natter_peer_fn fn,
                               void *user_data) {
  if (!c || !fn) {
    return NATTER_ERR_INVALID;
  }
  peer_walk w = {c, fn, user_data};
  if (c->peers) {
    nt_peers_each(c->peers, show_peer, &w);
  }
  return 0;
}

int natter_client_foreach_forward(const natter_client *c, natter_forward_fn fn,
                                  void *user_data) {
  char target[NT_NAME_MAX + 100];
  if (!c || !fn) {
    return NATTER_ERR_INVALID;
  }
  for (const nt_forward *f = nt_forward_next(&c->forwards, NULL); f;
       f = nt_forward_next(&c->forwards, f)) {
    natter_forward_info info;
    nt_forward_describe(f, &info, target, sizeof(target));
    fn(&info, user_data);
  }
  return 0;
}

int natter_client_add_admin(natter_client *c, const char *fingerprint) {
  return c ? nt_admins_add(&c->admins, fingerprint) : NATTER_ERR_INVALID;
}

/* ---- metrics ---- */

static void keep_peer(const natter_peer_info *row, void *ud) {
  (void)nt_client_snapshot_add_peer(ud, row); /* out of memory: left out */
}

static void keep_forward(const natter_forward_info *row, void *ud) {
  (void)nt_client_snapshot_add_forward(ud, row);
}

/* What the renderers read: the public getters' view, copied, so a page
 * shows what an embedder reads. The caller clears |s|. */
static void take_snapshot(const natter_client *c, nt_client_snapshot *s) {
  nt_client_snapshot_init(s);
  s->fingerprint = natter_client_fingerprint(c);
  natter_client_get_status(c, &s->status);
  if (c->checked_in) {
    _Static_assert(sizeof(s->broker) >= NT_ADDR_STRLEN, "an address fits");
    nt_addr_str((const struct sockaddr *)&c->broker_addr.ss, s->broker);
  }
  s->broker_over_tcp = nt_tcp_fallback_active(c);
  if (c->ep) {
    nt_endpoint_reset_stats(c->ep, &s->resets_sent, &s->resets_received,
                            &s->resets_dropped);
  }
  natter_client_foreach_peer(c, keep_peer, s);
  natter_client_foreach_forward(c, keep_forward, s);
}

static void client_render_metrics(struct evbuffer *out, void *ud) {
  natter_client *c = ud;
  nt_client_snapshot snap;
  c->status_requests++;
  take_snapshot(c, &snap);
  nt_render_client_metrics(out, &snap);
  nt_client_snapshot_clear(&snap);
}

/* ---- dashboard ---- */

static void sum_relayed(const natter_peer_info *row, void *ud) {
  if (strcmp(row->path, "relay") == 0) {
    *(uint64_t *)ud += row->bytes_sent + row->bytes_received;
  }
}

static void client_sample(nt_history_point *p, void *ud) {
  natter_client *c = ud;
  natter_client_status st;
  natter_client_get_status(c, &st);
  p->bytes_received = st.bytes_received;
  p->bytes_sent = st.bytes_sent;
  p->count = st.peers_connected;
  natter_client_foreach_peer(c, sum_relayed, &p->relayed_bytes);
}

static void client_dashboard_json(struct evbuffer *out, void *ud) {
  natter_client *c = ud;
  nt_client_snapshot snap;
  c->status_requests++;
  take_snapshot(c, &snap);
  evbuffer_add_printf(out, "\"status\":");
  nt_render_client_json(out, &snap, 1);
  nt_client_snapshot_clear(&snap);
}

int natter_client_metrics_listen(natter_client *c, const char *addr) {
  char err[300];
  if (!c || !addr || c->metrics) {
    return NATTER_ERR_INVALID;
  }
  int rv = nt_metrics_new(&c->metrics, c->base, addr, client_render_metrics, c,
                          err, sizeof(err));
  if (rv != 0) {
    nt_error(&c->log, "%s", err);
    return rv;
  }
  nt_info(&c->log, "Prometheus metrics on %s (TCP port %u, GET /metrics)", addr,
          nt_metrics_port(c->metrics));
  if (nt_dashboard_attach(c->metrics, c->base, "client", client_sample,
                          client_dashboard_json, c) == 0) {
    /* Said once: what this port now shows, and to whom. */
    nt_info(&c->log,
            "dashboard on TCP port %u (GET /, loopback only: this client's "
            "peers, addresses, forwards and traffic, for anyone on this host)",
            nt_metrics_port(c->metrics));
  } else {
    nt_warn(&c->log, "no dashboard: out of memory");
  }
  return 0;
}

uint16_t natter_client_metrics_port(const natter_client *c) {
  return c ? nt_metrics_port(c->metrics) : 0;
}

/* ---- HTTP/3 status page ---- */

/* GET /status for this client's own key (natter -status run with the
 * same identity) and -admin keys only: a client's peers, addresses and
 * forwards are its operator's business. Others get 403. */
static int client_render_status(struct evbuffer *body, const char *path,
                                const char *accept, const uint8_t *peer_fp,
                                const char **content_type, void *ud) {
  natter_client *c = ud;
  size_t plen = strcspn(path, "?");
  int text = strstr(accept, "text/plain") != NULL;
  c->status_requests++;
  *content_type = text ? "text/plain; charset=utf-8" : "application/json";
  if (plen != 7 || strncmp(path, "/status", 7) != 0) {
    evbuffer_add_printf(body, text ? "not found: try /status\n"
                                   : "{\"error\":\"not found\"}\n");
    return 404;
  }
  if (!peer_fp || (memcmp(peer_fp, nt_identity_fingerprint(c->identity),
                          NT_FINGERPRINT_LEN) != 0 &&
                   !nt_admins_contains(&c->admins, peer_fp))) {
    evbuffer_add_printf(body,
                        text ? "forbidden: only this client's own key or an "
                               "-admin key may read its status\n"
                             : "{\"error\":\"forbidden\"}\n");
    return 403;
  }
  nt_client_snapshot snap;
  take_snapshot(c, &snap);
  if (text) {
    nt_render_client_text(body, &snap, 1);
  } else {
    nt_render_client_json(body, &snap, 1);
  }
  nt_client_snapshot_clear(&snap);
  return 200;
}

int nt_client_accept_h3(nt_endpoint *ep, const struct sockaddr *from,
                        nt_accept_params *params, void *ud) {
  natter_client *c = ud;
  (void)ep;
  return c->h3 ? nt_h3_server_accept_from(c->h3, from, params) : 0;
}

void nt_client_start_status_page(natter_client *c) {
  if (nt_h3_server_new(&c->h3, &c->log, client_render_status, c) != 0) {
    nt_warn(&c->log, "no HTTP/3 status page: out of memory");
    return;
  }
  /* The only keys this page answers: they always find a slot. */
  nt_h3_server_set_privileged(c->h3, nt_identity_fingerprint(c->identity),
                              &c->admins);
}
