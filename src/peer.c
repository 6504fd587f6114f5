/* Peers: from "connect me to bob" to one authenticated QUIC connection.
 * The broker's introduction gives each side the other's key, addresses and
 * a shared nonce; both probe every candidate; the initiator connects to the
 * first candidate that answers; the other side accepts a QUIC Initial only
 * from where the peer's probes came from, and only with the vouched key. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "wire_msg.h"

static void peer_conn_established(nt_conn *conn, void *ud);
static void peer_conn_closed(nt_conn *conn, nt_close_reason reason,
                             uint64_t app_code, const char *message,
                             void *ud);
static void peer_stream_opened(nt_conn *conn, nt_stream *s, void *ud);

static const nt_conn_callbacks peer_conn_callbacks = {
    peer_conn_established, peer_conn_closed, peer_stream_opened};

nt_peer *nt_peer_find(natter_client *c, const char *name) {
  for (nt_peer *p = c->peers; p; p = p->next) {
    if (strcmp(p->name, name) == 0) {
      return p;
    }
  }
  return NULL;
}

static void peer_timer_cb(evutil_socket_t fd, short what, void *arg);

nt_peer *nt_peer_get(natter_client *c, const char *name) {
  nt_peer *p = nt_peer_find(c, name);
  if (p) {
    return p;
  }
  p = calloc(1, sizeof(*p));
  if (!p) {
    return NULL;
  }
  p->timer = event_new(c->base, -1, 0, peer_timer_cb, p);
  if (!p->timer) {
    free(p);
    return NULL;
  }
  p->client = c;
  snprintf(p->name, sizeof(p->name), "%s", name);
  p->next = c->peers;
  c->peers = p;
  return p;
}

static void arm_peer_timer(nt_peer *p, uint64_t at_ns) {
  uint64_t now = nt_monotonic_ns();
  uint64_t d = at_ns > now ? at_ns - now : 0;
  struct timeval tv = {(time_t)(d / 1000000000ull),
                       (suseconds_t)((d % 1000000000ull) / 1000)};
  event_add(p->timer, &tv);
}

/* Ends whatever was in progress; local connections still waiting are
 * closed with |why| (NULL keeps them waiting). */
static void peer_reset(nt_peer *p, int error, const char *why) {
  event_del(p->timer);
  p->state = NT_PEER_IDLE;
  p->have_probe_from = 0;
  if (why) {
    while (p->waiting) {
      nt_tunnel *t = p->waiting;
      p->waiting = nt_tunnel_next_waiting(t);
      nt_tunnel_set_next_waiting(t, NULL);
      p->nwaiting--;
      nt_tunnel_fail(t, error, why);
    }
  }
}

void nt_peer_unqueue(natter_client *c, nt_tunnel *t) {
  for (nt_peer *p = c->peers; p; p = p->next) {
    nt_tunnel *prev = NULL;
    for (nt_tunnel *cur = p->waiting; cur;
         prev = cur, cur = nt_tunnel_next_waiting(cur)) {
      if (cur != t) {
        continue;
      }
      if (prev) {
        nt_tunnel_set_next_waiting(prev, nt_tunnel_next_waiting(t));
      } else {
        p->waiting = nt_tunnel_next_waiting(t);
      }
      nt_tunnel_set_next_waiting(t, NULL);
      p->nwaiting--;
      return;
    }
  }
}

static void peer_fail(nt_peer *p, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void peer_fail(nt_peer *p, int error, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  nt_client_emit(p->client, NATTER_EVENT_PEER_FAILED, error, p->name, "%s",
                 msg);
  peer_reset(p, error, msg);
}

static void start_waiting(nt_peer *p) {
  while (p->waiting) {
    nt_tunnel *t = p->waiting;
    p->waiting = nt_tunnel_next_waiting(t);
    nt_tunnel_set_next_waiting(t, NULL);
    p->nwaiting--;
    nt_tunnel_start(t, p->conn);
  }
}

void nt_peer_submit(nt_peer *p, nt_tunnel *t) {
  if (p->state == NT_PEER_CONNECTED && p->conn) {
    nt_tunnel_start(t, p->conn);
    return;
  }
  if (p->nwaiting >= NT_PEER_MAX_WAITING) {
    nt_warn(&p->client->log,
            "%s: %u connections already wait for the peer; dropping one",
            p->name, NT_PEER_MAX_WAITING);
    nt_tunnel_fail(t, NATTER_ERR_NOMEM,
                   "too many connections waiting for the peer");
    return;
  }
  nt_tunnel_set_next_waiting(t, p->waiting);
  p->waiting = t;
  p->nwaiting++;
  if (p->state != NT_PEER_IDLE) {
    return; /* already on its way */
  }
  p->initiator = 1;
  p->state = NT_PEER_INTRODUCING;
  p->deadline_ns = nt_monotonic_ns() +
                   (uint64_t)p->client->connect_timeout_ms * 1000000ull;
  arm_peer_timer(p, p->deadline_ns);
  if (nt_client_request_peer(p->client, p) != 0) {
    nt_debug(&p->client->log, "%s: waiting for the broker session before "
                             "asking for the peer",
            p->name);
  }
}

void nt_peer_broker_ready(natter_client *c) {
  for (nt_peer *p = c->peers; p; p = p->next) {
    if (p->state == NT_PEER_INTRODUCING && p->initiator) {
      nt_client_request_peer(c, p);
    }
  }
}

/* Bounds: matched by request_id to a peer we asked for, else dropped; the
 * broker's message is shown only as printable ASCII of at most 150 bytes. */
void nt_peer_on_connect_result(natter_client *c, uint32_t request_id,
                               int code, const char *message) {
  nt_peer *p;
  for (p = c->peers; p; p = p->next) {
    if (p->request_id == request_id && p->state == NT_PEER_INTRODUCING) {
      break;
    }
  }
  if (!p) {
    return;
  }
  switch (code) {
  case NATTER__CODE__PEER_UNKNOWN:
    peer_fail(p, NATTER_ERR_PEER_UNKNOWN,
              "peer \"%s\" is unknown at the broker: check the name, and "
              "that %s runs natter with this broker",
              p->name, p->name);
    break;
  case NATTER__CODE__PEER_NOT_LISTENING:
    peer_fail(p, NATTER_ERR_PEER_NOT_LISTENING,
              "peer \"%s\" is not listening: start it with -listen", p->name);
    break;
  default:
    peer_fail(p, NATTER_ERR_BROKER, "broker refused to connect us to %s: %s",
              p->name,
              nt_wire_string_ok(message, 150) ? message : "no reason");
    break;
  }
}

static void punch_send(const uint8_t *pkt, size_t len, const nt_addr *to,
                       void *ud) {
  nt_peer *p = ud;
  char addr[NT_ADDR_STRLEN];
  nt_debug(&p->client->log, "%s: probe -> %s", p->name,
           nt_addr_str((const struct sockaddr *)&to->ss, addr));
  nt_endpoint_sendto(p->client->ep, pkt, len, (const struct sockaddr *)&to->ss,
                     to->len);
}

static void describe_candidates(const nt_peer *p, char *out, size_t outlen) {
  char addr[NT_ADDR_STRLEN];
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < p->punch.ncandidates && used < outlen; i++) {
    int n = snprintf(out + used, outlen - used, "%s%s", i ? ", " : "",
                     nt_addr_str((const struct sockaddr *)&p->punch
                                     .candidates[i]
                                     .ss,
                                 addr));
    if (n < 0) {
      break;
    }
    used += (size_t)n;
  }
}

/* One line that says what was tried, what came back, what each NAT does,
 * and what to do about it. */
static void report_punch_failure(nt_peer *p) {
  natter_client *c = p->client;
  char cands[400], us[NT_ADDR_STRLEN], them[NT_ADDR_STRLEN];
  char seen[NT_ADDR_STRLEN + 80] = "", advice[300];
  int we_symmetric = c->mapping == NATTER__NAT_MAPPING__MAPPING_PER_DESTINATION;
  int they_symmetric =
      p->mapping == NATTER__NAT_MAPPING__MAPPING_PER_DESTINATION;

  describe_candidates(p, cands, sizeof(cands));
  nt_addr_str((struct sockaddr *)&c->observed.ss, us);
  nt_addr_str((struct sockaddr *)&p->observed.ss, them);
  if (p->have_probe_from &&
      !nt_addr_equal((struct sockaddr *)&p->probe_from.ss,
                     (struct sockaddr *)&p->observed.ss)) {
    char from[NT_ADDR_STRLEN];
    snprintf(seen, sizeof(seen), " (its probes came from %s)",
             nt_addr_str((struct sockaddr *)&p->probe_from.ss, from));
    they_symmetric = 1;
  }
  if (we_symmetric || they_symmetric) {
    snprintf(advice, sizeof(advice),
             "a symmetric NAT (on %s) defeats hole punching unless the other "
             "side has a public address or a forwarded UDP port: run one side "
             "where it has one, or forward a UDP port to it and pass -port",
             we_symmetric && they_symmetric ? "both sides"
             : we_symmetric                 ? c->name
                                            : p->name);
  } else if (p->punch.probes_seen) {
    snprintf(advice, sizeof(advice),
             "%s's probes reach us but ours never reached %s: something on "
             "its side drops incoming UDP (a firewall, or NAT filtering)",
             p->name, p->name);
  } else {
    snprintf(advice, sizeof(advice),
             "no UDP got through either way: check that both sides may send "
             "UDP out, and run both with -v to see each probe");
  }
  peer_fail(p, NATTER_ERR_PUNCH,
            "hole punching to %s failed after %u s: tried %s; %s. The broker "
            "saw %s at %s (NAT %s) and %s at %s%s (NAT %s). %s",
            p->name, c->connect_timeout_ms / 1000, cands,
            p->punch.probes_seen
                ? "probes from the peer arrived but none of ours was answered"
                : "no probe from the peer arrived and none was answered",
            c->name, us, nt_mapping_name(c->mapping), p->name, them, seen,
            nt_mapping_name(p->mapping), advice);
}

static void peer_timer_cb(evutil_socket_t fd, short what, void *arg) {
  nt_peer *p = arg;
  natter_client *c = p->client;
  uint64_t now = nt_monotonic_ns();
  (void)fd;
  (void)what;

  if (p->state == NT_PEER_PUNCHING) {
    int expired = nt_punch_on_expiry(&p->punch, now, punch_send, p);
    if (!expired && now < p->deadline_ns) {
      uint64_t next = nt_punch_next_expiry(&p->punch);
      arm_peer_timer(p, next < p->deadline_ns ? next : p->deadline_ns);
      return;
    }
    if (!p->initiator) {
      /* The initiator reports failures; we just stop probing. */
      nt_debug(&c->log, "%s: no connection came; stopped probing", p->name);
      peer_reset(p, 0, NULL);
      return;
    }
    report_punch_failure(p);
    return;
  }
  if (p->state == NT_PEER_INTRODUCING && now >= p->deadline_ns) {
    peer_fail(p, NATTER_ERR_TIMEOUT,
              "no introduction to %s from the broker in %u s: is the broker "
              "reachable?",
              p->name, c->connect_timeout_ms / 1000);
    return;
  }
  if (p->state == NT_PEER_CONNECTING && now >= p->deadline_ns) {
    if (p->conn) {
      nt_conn_close(p->conn, 0, "handshake took too long");
    }
    return;
  }
  if (p->state != NT_PEER_IDLE && p->state != NT_PEER_CONNECTED) {
    arm_peer_timer(p, p->deadline_ns);
  }
}

static int has_candidate(const nt_addr *cands, size_t n,
                         const struct sockaddr *a) {
  for (size_t i = 0; i < n; i++) {
    if (nt_addr_equal((const struct sockaddr *)&cands[i].ss, a)) {
      return 1;
    }
  }
  return 0;
}

/* Bounds: the peer's name is a valid name (spec.c), its key exactly
 * NT_FINGERPRINT_LEN bytes, the nonce NT_PUNCH_NONCE_LEN, at most
 * NT_MAX_LOCAL_ADDRS local addresses, each of the endpoint's family with a
 * valid length and a non-zero port; an unknown NAT mapping reads
 * "unknown". Stale or unasked-for introductions are dropped. */
void nt_peer_on_introduction(natter_client *c, const void *msg) {
  const Natter__Introduction *in = msg;
  nt_addr cands[NT_PUNCH_MAX_CANDIDATES];
  size_t n = 0;
  nt_peer *p;

  if (!nt_name_valid(in->peer) || in->peer_key.len != NT_FINGERPRINT_LEN ||
      in->nonce.len != NT_PUNCH_NONCE_LEN ||
      in->n_local_addrs > NT_MAX_LOCAL_ADDRS) {
    nt_warn(&c->log, "malformed introduction from the broker; ignored");
    return;
  }
  if (in->request_id) {
    p = nt_peer_find(c, in->peer);
    if (!p || p->request_id != in->request_id ||
        p->state != NT_PEER_INTRODUCING) {
      return; /* stale */
    }
  } else {
    if (!c->listen) {
      return; /* the broker should not have sent it */
    }
    p = nt_peer_get(c, in->peer);
    if (!p) {
      return;
    }
    /* Both sides asked for each other at once: two meetings, and each side
     * would wait for the other to connect. The smaller name keeps the
     * initiator's role; the other yields to it. */
    if (p->initiator && p->state != NT_PEER_IDLE &&
        p->state != NT_PEER_CONNECTED && strcmp(c->name, p->name) < 0) {
      return;
    }
    if (p->conn) {
      /* The peer asks again, so it lost the old connection. */
      nt_conn *old = p->conn;
      p->conn = NULL;
      nt_conn_set_user_data(old, NULL);
      nt_conn_close(old, 0, "superseded by a new connection");
    }
    p->initiator = 0;
    p->deadline_ns = nt_monotonic_ns() +
                     (uint64_t)c->connect_timeout_ms * 1000000ull;
  }
  memcpy(p->key, in->peer_key.data, NT_FINGERPRINT_LEN);
  memset(&p->observed, 0, sizeof(p->observed));
  p->mapping = in->peer_mapping;
  if (nt_wire_addr_to_sockaddr(&p->mapped, in->peer_mapped) != 0) {
    memset(&p->mapped, 0, sizeof(p->mapped));
  }
  if (nt_wire_addr_to_sockaddr(&p->observed, in->observed) == 0 &&
      p->observed.ss.ss_family == nt_endpoint_family(c->ep)) {
    cands[n++] = p->observed;
  }
  for (size_t i = 0; i < in->n_local_addrs && n < NT_PUNCH_MAX_CANDIDATES;
       i++) {
    nt_addr a;
    if (nt_wire_addr_to_sockaddr(&a, in->local_addrs[i]) == 0 &&
        a.ss.ss_family == nt_endpoint_family(c->ep) &&
        !has_candidate(cands, n, (struct sockaddr *)&a.ss)) {
      cands[n++] = a; /* a public LAN address repeats the observed one */
    }
  }
  char hex[NT_FINGERPRINT_HEX_LEN + 1], desc[400];
  nt_fingerprint_hex(p->key, hex);
  p->state = NT_PEER_PUNCHING;
  p->have_probe_from = 0;
  nt_punch_init(&p->punch, in->nonce.data, cands, n, nt_monotonic_ns(),
                (uint64_t)c->connect_timeout_ms * 1000000ull);
  describe_candidates(p, desc, sizeof(desc));
  nt_info(&c->log, "%s: introduced (key %.16s...), probing %s", p->name, hex,
          n ? desc : "(no usable candidate)");
  peer_timer_cb(-1, 0, p);
}

static nt_peer *peer_by_nonce(natter_client *c, const uint8_t *nonce) {
  for (nt_peer *p = c->peers; p; p = p->next) {
    if ((p->state == NT_PEER_PUNCHING || p->state == NT_PEER_CONNECTING) &&
        memcmp(p->punch.nonce, nonce, NT_PUNCH_NONCE_LEN) == 0) {
      return p;
    }
  }
  return NULL;
}

void nt_peer_on_datagram(natter_client *c, const uint8_t *data, size_t len,
                         const struct sockaddr *from, socklen_t fromlen) {
  uint8_t nonce[NT_PUNCH_NONCE_LEN], reply[NT_PUNCH_PACKET_LEN];
  char addr[NT_ADDR_STRLEN];
  int type = nt_punch_decode(data, len, nonce);
  nt_peer *p = type ? peer_by_nonce(c, nonce) : NULL;

  if (!p || fromlen > sizeof(p->probe_from.ss)) {
    return;
  }
  if (type == NT_PUNCH_PROBE) {
    p->punch.probes_seen++;
    nt_debug(&c->log, "%s: probe <- %s, answering", p->name,
             nt_addr_str(from, addr));
    nt_punch_encode(reply, NT_PUNCH_REPLY, nonce);
    nt_endpoint_sendto(c->ep, reply, sizeof(reply), from, fromlen);
    if (!p->have_probe_from) {
      memcpy(&p->probe_from.ss, from, fromlen);
      p->probe_from.len = fromlen;
      p->have_probe_from = 1;
    }
    /* A peer-reflexive candidate (RFC 8445 §7.3.1.3): the peer's NAT
     * gave it a port the broker never saw (symmetric mapping). Its probe
     * opened that mapping toward us, so probe it back at once. */
    if (p->state == NT_PEER_PUNCHING &&
        !has_candidate(p->punch.candidates, p->punch.ncandidates, from) &&
        p->punch.ncandidates < NT_PUNCH_MAX_CANDIDATES) {
      nt_addr *a = &p->punch.candidates[p->punch.ncandidates++];
      memcpy(&a->ss, from, fromlen);
      a->len = fromlen;
      nt_info(&c->log, "%s: new candidate %s (seen in its probe)", p->name,
              nt_addr_str(from, addr));
      nt_punch_encode(reply, NT_PUNCH_PROBE, nonce);
      nt_endpoint_sendto(c->ep, reply, sizeof(reply), from, fromlen);
    }
    return;
  }
  /* A reply: this candidate works both ways. */
  p->punch.replies_seen++;
  if (!p->initiator || p->state != NT_PEER_PUNCHING) {
    return;
  }
  nt_info(&c->log, "%s: %s answered; connecting", p->name,
          nt_addr_str(from, addr));
  p->state = NT_PEER_CONNECTING;
  if (nt_endpoint_connect(c->ep, from, fromlen, p->key, &peer_conn_callbacks,
                          p, &p->conn) != 0) {
    p->conn = NULL;
    peer_fail(p, NATTER_ERR_SOCKET, "cannot start a connection to %s",
              p->name);
  }
}

int nt_peer_accept(natter_client *c, const struct sockaddr *from,
                   nt_accept_params *params) {
  for (nt_peer *p = c->peers; p; p = p->next) {
    if (p->initiator || p->state != NT_PEER_PUNCHING || !p->have_probe_from ||
        !nt_addr_equal((struct sockaddr *)&p->probe_from.ss, from)) {
      continue;
    }
    p->state = NT_PEER_CONNECTING;
    params->expected_fp = p->key;
    params->callbacks = &peer_conn_callbacks;
    params->user_data = p;
    return 1;
  }
  return 0;
}

static void peer_conn_established(nt_conn *conn, void *ud) {
  nt_peer *p = ud;
  char addr[NT_ADDR_STRLEN];
  if (!p) {
    return;
  }
  p->conn = conn;
  p->state = NT_PEER_CONNECTED;
  event_del(p->timer);
  nt_client_emit(p->client, NATTER_EVENT_PEER_CONNECTED, 0, p->name,
                 "connected to %s at %s (direct, key verified)", p->name,
                 nt_addr_str(nt_conn_remote_addr(conn), addr));
  start_waiting(p);
}

static void peer_conn_closed(nt_conn *conn, nt_close_reason reason,
                             uint64_t app_code, const char *message,
                             void *ud) {
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
    peer_reset(p, 0, NULL);
    nt_client_emit(p->client, NATTER_EVENT_PEER_DISCONNECTED, 0, p->name,
                   "connection to %s closed (%s)", p->name,
                   reason == NT_CLOSE_IDLE ? "peer stopped answering"
                   : message && message[0] ? message
                                           : "closed");
    return;
  }
  if (reason == NT_CLOSE_KEY_MISMATCH) {
    peer_fail(p, NATTER_ERR_KEY_MISMATCH,
              "%s presented a key other than the one the broker vouched for: "
              "connection refused (someone else may answer at that address)",
              p->name);
  } else if (p->initiator) {
    peer_fail(p, NATTER_ERR_TLS, "QUIC handshake with %s failed (%s)",
              p->name,
              reason == NT_CLOSE_HANDSHAKE_TIMEOUT ? "no answer"
              : message && message[0]              ? message
                                                   : "TLS error");
  } else {
    peer_reset(p, 0, NULL);
    nt_warn(&p->client->log, "%s: incoming connection failed%s", p->name,
            reason == NT_CLOSE_KEY_MISMATCH ? " (key mismatch)" : "");
  }
}

static void peer_stream_opened(nt_conn *conn, nt_stream *s, void *ud) {
  nt_peer *p = ud;
  (void)conn;
  if (!p) {
    nt_stream_reset(s, NATTER__CODE__INTERNAL);
    return;
  }
  nt_tunnel_accept_stream(p->client, p, s);
}

void nt_peer_free_all(natter_client *c) {
  while (c->peers) {
    nt_peer *p = c->peers;
    c->peers = p->next;
    if (p->conn) {
      nt_conn_set_user_data(p->conn, NULL);
    }
    event_free(p->timer);
    free(p);
  }
}
