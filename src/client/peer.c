/* Peers (peer.h): the table of peers, each one's lifecycle (reset,
 * failure, events, a check's report), its one QUIC connection and the
 * read-only views for status. Local connections waiting for a peer are
 * peer_queue.c's; the I/O that path finding (path.h) asks for, and the
 * one timer per peer, are peer_path.c's. */
#include "client/peer.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/peer_internal.h"
#include "codec/mapping.h"
#include "codec/stream_header.h"

/* ---- the table ---- */

int nt_peers_new(nt_peers **ppeers, const nt_peers_env *env) {
  nt_peers *peers = calloc(1, sizeof(*peers));
  *ppeers = NULL;
  if (!peers) {
    return NATTER_ERR_NOMEM;
  }
  peers->env = *env;
  TAILQ_INIT(&peers->list);
  for (size_t i = 0; i < NT_PEERS_LOG_KINDS; i++) {
    peers->budget_logged[i].interval_ns = NT_PEERS_BUDGET_LOG_NS;
  }
  *ppeers = peers;
  return 0;
}

void nt_peers_free(nt_peers *peers) {
  nt_peer *p;
  if (!peers) {
    return;
  }
  while ((p = TAILQ_FIRST(&peers->list))) {
    TAILQ_REMOVE(&peers->list, p, link);
    /* Waiters belong to their owners, who are gone or going: unhook. */
    nt_peer_waiter *w;
    while ((w = TAILQ_FIRST(&p->waiting))) {
      TAILQ_REMOVE(&p->waiting, w, link);
      w->peer = NULL;
    }
    if (p->conn) {
      nt_conn_set_user_data(p->conn, NULL);
    }
    nt_endpoint_aux_close(peers->env.ep, p, 0);
    event_free(p->timer);
    free(p);
  }
  free(peers);
}

nt_peer *nt_peers_find(nt_peers *peers, const char *name) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (!p->check && strcmp(p->name, name) == 0) {
      return p;
    }
  }
  return NULL;
}

static nt_peer *peer_alloc(nt_peers *peers, const char *name) {
  nt_peer *p = calloc(1, sizeof(*p));
  if (!p) {
    return NULL;
  }
  p->timer = event_new(peers->env.base, -1, 0, nt_peer_timer_cb, p);
  if (!p->timer) {
    free(p);
    return NULL;
  }
  p->table = peers;
  snprintf(p->name, sizeof(p->name), "%s", name);
  TAILQ_INIT(&p->waiting);
  TAILQ_INSERT_HEAD(&peers->list, p, link);
  return p;
}

nt_peer *nt_peers_get(nt_peers *peers, const char *name) {
  nt_peer *p = nt_peers_find(peers, name);
  return p ? p : peer_alloc(peers, name);
}

/* The entry for a check that |name| asked for: its last one, else a new
 * one while fewer than NT_PEER_MAX_CHECKS exist, else the oldest idle
 * one (the list is newest first). NULL when all are busy. */
nt_peer *nt_peer_check_entry(nt_peers *peers, const char *name) {
  nt_peer *p, *idle = NULL;
  size_t n = 0;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (!p->check) {
      continue;
    }
    if (strcmp(p->name, name) == 0) {
      return p;
    }
    n++;
    if (p->state == NT_PEER_IDLE) {
      idle = p;
    }
  }
  if (n < NT_PEER_MAX_CHECKS) {
    p = peer_alloc(peers, name);
    if (p) {
      p->check = 1;
    }
    return p;
  }
  if (idle) {
    snprintf(idle->name, sizeof(idle->name), "%s", name);
    nt_path_forget(&idle->path);
    idle->intro_ns = 0; /* another peer's pace is not this one's */
  }
  return idle;
}

nt_conn *nt_peer_conn(const nt_peer *p) {
  return p && p->state == NT_PEER_CONNECTED ? p->conn : NULL;
}

/* ---- lifecycle ---- */

/* Ends whatever was in progress; local connections still waiting are
 * failed with |why| (NULL keeps them waiting). */
void nt_peer_reset(nt_peer *p, int error, const char *why) {
  event_del(p->timer);
  nt_endpoint_aux_close(ENV(p)->ep, p, 0);
  nt_path_reset(&p->path);
  p->state = NT_PEER_IDLE;
  if (why) {
    nt_peer_waiter *w;
    while ((w = nt_peer_dequeue(p))) {
      w->failed(w, error, why);
    }
  }
}

static void emit(nt_peer *p, natter_event_type type, int error, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

static void emit(nt_peer *p, natter_event_type type, int error, const char *fmt,
                 ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (p->check) {
    /* A peer's check is no connection of ours: no event, no counts. */
    nt_info(LOG(p), "check by %s: %s", p->name, msg);
    return;
  }
  ENV(p)->callbacks->event(type, error, p->name, msg, ENV(p)->user_data);
}

/* Our side of a check the peer asked for is done: tell the broker what
 * we saw, once per meeting. */
void nt_peer_check_report(nt_peer *p, int outcome) {
  const nt_peers_env *env = ENV(p);
  nt_check_side side;
  if (!p->check || p->check_reported || !env->callbacks->check_report) {
    return;
  }
  p->check_reported = 1;
  memset(&side, 0, sizeof(side));
  const nt_path *pa = &p->path;
  memcpy(side.nonce, pa->punch.nonce, sizeof(side.nonce));
  side.outcome = outcome;
  side.relayed = p->conn && nt_conn_is_relayed(p->conn);
  side.mapping = env->self->mapping;
  side.nprobed = pa->ngiven;
  memcpy(side.probed, pa->punch.candidates,
         pa->ngiven * sizeof(side.probed[0]));
  side.probe_rounds = pa->punch.rounds;
  side.probes_received = pa->punch.probes_seen;
  side.replies_received = pa->punch.replies_seen;
  if (pa->have_probe_from) {
    side.probes_from = pa->probe_from;
  }
  side.elapsed_ms = (uint32_t)((nt_monotonic_ns() - pa->meet_ns) / 1000000ull);
  nt_info(env->log, "check by %s: %s; reporting to the broker", p->name,
          outcome == NT_CHECK_CONNECTED ? "connected" : "no connection came");
  env->callbacks->check_report(&side, env->user_data);
}

void nt_peer_fail(nt_peer *p, int error, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  emit(p, NATTER_EVENT_PEER_FAILED, error, "%s", msg);
  nt_peer_reset(p, error, msg);
}

/* ---- admission ---- */

/* Whether this listener's peer rules let |name| with |key| in. A refusal
 * is counted and logged with the rule that would admit it, within
 * refusals.h's bounds: a requester that asks again and again, or many at
 * once, cannot flood the log. */
int nt_peer_admitted(nt_peers *peers, const char *name, const uint8_t *key,
                     int log_refusal) {
  const nt_peers_env *env = &peers->env;
  nt_access_peer who = {name, key};
  char hex[NT_FINGERPRINT_HEX_LEN + 1], more[160] = "";
  uint64_t same = 0, others = 0;

  if (nt_access_peer_admitted(env->access, &who,
                              env->self && env->self->broker_closed)) {
    return 1;
  }
  if (!log_refusal || !nt_refusals_note(&peers->refusals, name, key,
                                        nt_monotonic_ns(), &same, &others)) {
    return 0;
  }
  if (same || others) {
    snprintf(more, sizeof(more),
             " [not logged since: %llu refusals of %s, %llu of other "
             "peers; at most one line per peer a minute]",
             (unsigned long long)same, name, (unsigned long long)others);
  }
  nt_fingerprint_hex(key, hex);
  nt_warn(env->log,
          "refused %s (key %s): not admitted by this listener's peer "
          "rules; to let it in, add -allow-peer %s (or -allow-peer "
          "%s@%s to pin its key too)%s",
          name, hex, name, name, hex, more);
  return 0;
}

int nt_peers_admit(nt_peers *peers, const char *name, const uint8_t *key) {
  return nt_peer_admitted(peers, name, key, 1);
}

uint64_t nt_peers_refused_total(const nt_peers *peers) {
  return peers ? peers->refusals.total : 0;
}

/* ---- the connection ---- */

static void peer_conn_established(nt_conn *conn, void *ud) {
  nt_peer *p = ud;
  char addr[NT_ADDR_STRLEN];
  if (!p) {
    return;
  }
  p->conn = conn;
  p->state = NT_PEER_CONNECTED;
  event_del(p->timer);
  /* The connection runs on one socket; any other extra one goes. */
  nt_endpoint_aux_close(ENV(p)->ep, p, 0);
  uint64_t now = nt_monotonic_ns();
  p->connected_ns = now;
  unsigned long long ms = (now - p->path.meet_ns) / 1000000ull;
  nt_path_on_established(&p->path, now, nt_conn_is_relayed(conn),
                         nt_conn_socket(conn) != 0);
  if (!nt_conn_is_relayed(conn)) {
    const struct sockaddr *ra = nt_conn_remote_addr(conn);
    nt_addr remote = {.len = ra->sa_family == AF_INET6
                                 ? sizeof(struct sockaddr_in6)
                                 : sizeof(struct sockaddr_in)};
    memcpy(&remote.ss, ra, remote.len);
    nt_path_on_remote(&p->path, &remote);
  }
  if (nt_conn_is_relayed(conn)) {
    emit(p, NATTER_EVENT_PEER_CONNECTED, 0,
         "connected to %s via relay at %s (%llu ms; end-to-end encrypted, "
         "key verified; direct paths are still tried)",
         p->name, nt_addr_str(nt_conn_remote_addr(conn), addr), ms);
    nt_peer_arm_timer(p, nt_path_live_next(&p->path));
  } else {
    emit(p, NATTER_EVENT_PEER_CONNECTED, 0,
         "connected to %s at %s (direct%s, key verified, %llu ms)", p->name,
         nt_addr_str(nt_conn_remote_addr(conn), addr),
         p->path.predicted ? " via port prediction" : "", ms);
  }
  nt_peer_check_report(p, NT_CHECK_CONNECTED);
  nt_peer_start_waiting(p);
}

static void peer_conn_closed(nt_conn *conn, nt_close_reason reason,
                             uint64_t app_code, const char *message, void *ud) {
  nt_peer *p = ud;
  (void)app_code;
  if (!p) {
    return; /* superseded or failed before it began */
  }
  int was_connected = p->state == NT_PEER_CONNECTED;
  if (p->conn == conn) {
    p->conn = NULL;
  }
  if (was_connected) {
    /* Connections still waiting for a free stream cannot wait for this
     * one any more. */
    nt_peer_reset(p, NATTER_ERR_CLOSED,
                  TAILQ_EMPTY(&p->waiting)
                      ? NULL
                      : "the connection to the peer closed while this one "
                        "waited for a free stream");
    emit(p, NATTER_EVENT_PEER_DISCONNECTED, 0, "connection to %s closed (%s)",
         p->name,
         p->relay_closed == NT_RELAY_CLOSED_TOTAL
             ? "the broker's relay cap was reached: its -relay-total bytes "
               "per key or address in an hour are used up"
         : p->relay_closed         ? "the broker's relay closed the channel"
         : reason == NT_CLOSE_IDLE ? "peer stopped answering"
         : message && message[0]   ? message
                                   : "closed");
    return;
  }
  if (reason == NT_CLOSE_KEY_MISMATCH) {
    /* Through the relay, the broker itself (or someone on the way to it)
     * is the one posing as the peer. */
    nt_peer_fail(
        p, NATTER_ERR_KEY_MISMATCH,
        "%s presented a key other than the one the broker vouched for: "
        "connection refused (%s)",
        p->name,
        nt_conn_is_relayed(conn)
            ? "through the broker's relay: the relay, or someone on "
              "the path to it, posed as the peer"
            : "someone else may answer at that address");
  } else if (p->initiator && p->path.relay_started) {
    nt_peer_fail(p, NATTER_ERR_PUNCH,
                 "hole punching to %s failed and the broker's relay did not "
                 "connect us either (%s): the peer may refuse relayed "
                 "connections, or UDP to the broker's relay port is blocked",
                 p->name,
                 p->relay_closed                        ? "the relay closed it"
                 : reason == NT_CLOSE_HANDSHAKE_TIMEOUT ? "no answer"
                 : message && message[0]                ? message
                                                        : "TLS error");
  } else if (p->initiator) {
    nt_peer_fail(p, NATTER_ERR_TLS, "QUIC handshake with %s failed (%s)",
                 p->name,
                 reason == NT_CLOSE_HANDSHAKE_TIMEOUT ? "no answer"
                 : message && message[0]              ? message
                                                      : "TLS error");
  } else {
    nt_peer_check_report(p, NT_CHECK_FAILED);
    nt_peer_reset(p, 0, NULL);
    nt_warn(LOG(p), "%s: incoming connection failed%s", p->name,
            reason == NT_CLOSE_KEY_MISMATCH ? " (key mismatch)" : "");
  }
}

static void peer_stream_opened(nt_conn *conn, nt_stream *s, void *ud) {
  nt_peer *p = ud;
  (void)conn;
  if (!p) {
    nt_stream_reset(s, NT_OPEN_INTERNAL);
    return;
  }
  if (p->check) {
    nt_stream_reset(s, NT_OPEN_DENIED); /* a check carries nothing */
    return;
  }
  /* A peer we connected to may open streams back; a listener serves them
   * only for peers its rules admit (the key is the one TLS verified). */
  if (ENV(p)->listen &&
      !nt_peer_admitted(p->table, p->name, nt_conn_peer_fingerprint(conn), 1)) {
    nt_stream_reset(s, NT_OPEN_DENIED);
    return;
  }
  ENV(p)->callbacks->stream(p->name, s, ENV(p)->user_data);
}

static void peer_conn_datagram(nt_conn *conn, const uint8_t *data, size_t len,
                               void *ud) {
  nt_peer *p = ud;
  /* A check carries nothing; flows exist only on connections whose
   * streams were admitted, and a datagram names one of them or is
   * dropped (udp.h). */
  if (p && !p->check && ENV(p)->callbacks->datagram) {
    ENV(p)->callbacks->datagram(conn, data, len, ENV(p)->user_data);
  }
}

const nt_conn_callbacks nt_peer_conn_callbacks = {
    peer_conn_established,     peer_conn_closed,    peer_stream_opened,
    nt_peer_streams_available, nt_peer_conn_silent, nt_peer_conn_moved,
    peer_conn_datagram};

void nt_peers_on_restart(nt_peers *peers, const char *name,
                         const uint8_t *key) {
  nt_peer *p = nt_peers_find(peers, name);
  nt_conn *conn = nt_peer_conn(p);
  if (!conn || !nt_conn_peer_fingerprint(conn) ||
      memcmp(nt_conn_peer_fingerprint(conn), key, NT_FINGERPRINT_LEN) != 0) {
    return;
  }
  /* As when a connection is superseded: let go of it first, so that a
   * local connection arriving now starts a new meeting. */
  p->conn = NULL; /* nt_peer_reset ends the re-punch too */
  nt_conn_set_user_data(conn, NULL);
  nt_peer_reset(p, NATTER_ERR_CLOSED,
                TAILQ_EMPTY(&p->waiting) ? NULL
                                         : "the peer restarted while this "
                                           "connection waited for a stream");
  nt_conn_close(conn, 0, "you restarted; this connection is stale");
  emit(p, NATTER_EVENT_PEER_DISCONNECTED, 0,
       "connection to %s closed (%s restarted: the broker saw a new "
       "session; its open forwarded connections are lost, new ones reach "
       "the new process)",
       p->name, p->name);
}

/* ---- status (read-only views for status pages and metrics) ---- */

static const char *state_name(nt_peer_state state) {
  switch (state) {
  case NT_PEER_INTRODUCING:
    return "introducing";
  case NT_PEER_PUNCHING:
    return "punching";
  case NT_PEER_CONNECTING:
    return "connecting";
  case NT_PEER_CONNECTED:
    return "connected";
  default:
    return "idle";
  }
}

void nt_peers_each(const nt_peers *peers, nt_peer_view_fn fn, void *ud) {
  const nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    nt_peer_view v;
    memset(&v, 0, sizeof(v));
    v.name = p->name;
    v.state = state_name(p->state);
    v.initiator = p->initiator;
    const nt_path *pa = &p->path;
    v.key = p->state != NT_PEER_IDLE || pa->punch.ncandidates ? p->key : NULL;
    v.mapping = p->mapping;
    v.conn = nt_peer_conn(p);
    v.punch = &pa->punch;
    v.probe_from = pa->have_probe_from ? &pa->probe_from : NULL;
    v.predicted = v.conn && pa->predicted;
    v.check = p->check;
    v.ngiven = pa->ngiven <= pa->punch.ncandidates ? pa->ngiven : 0;
    v.observed = &p->observed;
    v.relay_offered = p->relay.len != 0;
    v.portmap = &p->portmap;
    v.portmap_method = p->portmap_method;
    v.connect_ms = p->connected_ns && p->connected_ns > pa->meet_ns
                       ? (p->connected_ns - pa->meet_ns) / 1000000ull
                       : 0;
    fn(&v, ud);
  }
}

int nt_peer_mapping(const nt_peer *p) {
  return p ? p->mapping : NT_MAPPING_UNKNOWN;
}
