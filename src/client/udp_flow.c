/* UDP flows (udp.h): the table of every flow, their life (stream, idle
 * timer), the datagrams from the peer, and the listener's side: its rules,
 * its flow limit and one connected socket per flow to the target. */
#include "client/udp_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "codec/dgram.h"

#define LOG(u) ((u)->env.log)

static const nt_stream_callbacks no_callbacks = {NULL, NULL, NULL};

nt_udp *nt_udp_new(const nt_udp_env *env) {
  nt_udp *u = calloc(1, sizeof(*u));
  if (!u) {
    return NULL;
  }
  u->env = *env;
  LIST_INIT(&u->flows);
  u->limit_gate.interval_ns = 10ull * 1000000000;
  u->big_gate.interval_ns = 60ull * 1000000000;
  return u;
}

void nt_udp_free(nt_udp *u) {
  if (!u) {
    return;
  }
  while (!LIST_EMPTY(&u->flows)) {
    nt_udp_flow_end(LIST_FIRST(&u->flows));
  }
  free(u);
}

void nt_udp_get_counts(const nt_udp *u, nt_udp_counts *out) {
  *out = u->counts;
}

size_t nt_udp_flows_of(const nt_udp *u, const char *peer, int opener) {
  const udp_flow *f;
  size_t n = 0;
  LIST_FOREACH(f, &u->flows, link) {
    n += f->opener == opener && strcmp(f->peer, peer) == 0;
  }
  return n;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg);

void nt_udp_socket_buffers(int fd) {
  int size = NT_UDP_RCVBUF;
  /* Best effort: a smaller buffer only means drops sooner. */
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

udp_flow *nt_udp_flow_alloc(nt_udp *u, int opener, const char *peer) {
  udp_flow *f = calloc(1, sizeof(*f));
  if (!f) {
    return NULL;
  }
  f->u = u;
  f->opener = opener;
  f->fd = -1;
  f->id = -1;
  snprintf(f->peer, sizeof(f->peer), "%s", peer);
  f->timer = event_new(u->env.base, -1, 0, timer_cb, f);
  if (!f->timer) {
    free(f);
    return NULL;
  }
  f->last_ns = nt_monotonic_ns();
  LIST_INSERT_HEAD(&u->flows, f, link);
  return f;
}

void nt_udp_flow_end(udp_flow *f) {
  if (f->opener) {
    nt_udp_forward_flow_gone(f);
  }
  LIST_REMOVE(f, link);
  if (f->stream) {
    nt_stream_set_callbacks(f->stream, &no_callbacks, NULL);
    nt_stream_reset(f->stream, NT_OPEN_OK);
  }
  if (f->dns_req) {
    evdns_getaddrinfo_cancel(f->dns_req);
  }
  if (f->read_ev) {
    event_free(f->read_ev);
  }
  if (f->fd >= 0) {
    close(f->fd);
  }
  event_free(f->timer);
  nt_wire_reader_reset(&f->reader);
  for (size_t i = 0; i < f->npending; i++) {
    free(f->pending[i].data);
  }
  free(f);
}

void nt_udp_flow_set_stream(udp_flow *f, nt_stream *stream) {
  f->stream = stream;
  f->conn = nt_stream_conn(stream);
  f->id = nt_stream_id(stream);
  f->hdrlen = nt_dgram_header(f->hdr, (uint64_t)f->id);
}

void nt_udp_flow_arm(udp_flow *f, uint32_t s) {
  struct timeval tv = {(time_t)s, 0};
  event_add(f->timer, &tv);
}

/* Idle: no datagram either way for the timeout ends the flow; a refused
 * opener flow's hold is over. */
static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  udp_flow *f = arg;
  (void)fd;
  (void)what;
  uint32_t idle = f->u->env.idle_timeout_s;
  uint64_t now = nt_monotonic_ns(), limit = (uint64_t)idle * 1000000000;
  if (f->state == F_OPEN && now - f->last_ns < limit) {
    uint64_t left = limit - (now - f->last_ns);
    struct timeval tv = {(time_t)(left / 1000000000),
                         (suseconds_t)(left % 1000000000 / 1000)};
    event_add(f->timer, &tv);
    return;
  }
  nt_debug(LOG(f->u), "UDP flow %lld with %s ended (%s)", (long long)f->id,
           f->peer, f->state == F_OPEN ? "idle" : "timed out or hold over");
  if (f->opener && f->state == F_OPEN) {
    nt_udp_forward_flow_idle(f);
  }
  nt_udp_flow_end(f);
}

int nt_udp_flow_send(udp_flow *f, const uint8_t *data, size_t len,
                     nt_udp_counts *counts) {
  if (f->state != F_OPEN || !f->stream) {
    counts->dropped_full++;
    return -1;
  }
  int rv = nt_conn_send_datagram(f->conn, f->hdr, f->hdrlen, data, len);
  if (rv == 0) {
    counts->sent++;
    f->last_ns = nt_monotonic_ns();
    return 0;
  }
  if (rv == NT_DGRAM_TOO_BIG) {
    unsigned held;
    counts->dropped_too_big++;
    if (nt_log_gate_pass(&f->u->big_gate, nt_monotonic_ns(), &held)) {
      nt_warn(LOG(f->u),
              "dropped a UDP datagram of %zu bytes for %s: the path carries "
              "at most %zu (datagrams are never split)%s",
              len, f->peer,
              nt_conn_datagram_max(f->conn) > f->hdrlen
                  ? nt_conn_datagram_max(f->conn) - f->hdrlen
                  : 0,
              held ? "; more like it are counted, not logged" : "");
    }
  } else {
    counts->dropped_full++;
  }
  return -1;
}

/* ---- datagrams from the peer ---- */

void nt_udp_on_datagram(nt_udp *u, nt_conn *conn, const uint8_t *data,
                        size_t len) {
  uint64_t id;
  const uint8_t *payload;
  size_t plen;
  udp_flow *f;
  if (nt_dgram_decode(data, len, &id, &payload, &plen) != 0) {
    u->counts.dropped_full++;
    return;
  }
  LIST_FOREACH(f, &u->flows, link) {
    if (f->conn == conn && f->stream && (uint64_t)f->id == id) {
      break;
    }
  }
  if (!f || f->state != F_OPEN) {
    /* No such flow on this connection (ended, or never opened): a
     * datagram cannot open one, nor reach another peer's. */
    u->counts.dropped_full++;
    return;
  }
  f->last_ns = nt_monotonic_ns();
  if (f->opener) {
    nt_udp_forward_deliver(f, payload, plen);
    return;
  }
  u->counts.received++;
  /* The connected socket sends only to the target the rules allowed. */
  if (send(f->fd, payload, plen, MSG_DONTWAIT) < 0) {
    u->counts.dropped_full++;
  }
}

/* ---- listener ---- */

static void listener_stream_recv(nt_stream *s, const uint8_t *data,
                                 size_t len, int fin, void *ud) {
  udp_flow *f = ud;
  (void)data;
  nt_stream_consume(s, len); /* nothing else travels on a flow's stream */
  if (fin) {
    nt_udp_flow_end(f);
  }
}

static void listener_stream_closed(nt_stream *s, int reset, uint64_t code,
                                   void *ud) {
  udp_flow *f = ud;
  (void)s;
  (void)reset;
  (void)code;
  f->stream = NULL;
  nt_udp_flow_end(f);
}

static const nt_stream_callbacks listener_callbacks = {
    listener_stream_recv, NULL, listener_stream_closed};

static void answer(udp_flow *f, nt_open_code code, const char *msg) {
  uint8_t buf[NT_STREAM_HEADER_MAX];
  size_t n = nt_open_result_encode(buf, code, msg);
  if (n == 0 || nt_stream_write(f->stream, buf, n) != 0) {
    nt_debug(LOG(f->u), "cannot answer %s's UDP flow (closed)", f->peer);
  }
}

static void refuse(udp_flow *f, nt_open_code code, const char *msg) {
  unsigned held;
  /* A peer may open flows as fast as it likes: its answers say why, the
   * log says it once a second. */
  if (nt_log_gate_pass(&f->u->refuse_gate, nt_monotonic_ns(), &held)) {
    nt_info(LOG(f->u), "refused a UDP flow from %s: %s%s", f->peer, msg,
            held ? " (and more refusals in the last second, not logged)"
                 : "");
  }
  answer(f, code, msg);
  nt_stream_shutdown_write(f->stream);
  f->state = F_REFUSED; /* the opener resets the stream: then it goes */
  nt_udp_flow_arm(f, NT_UDP_REFUSED_HOLD_S);
}

/* The target answered: one datagram back to the opener. */
static void target_read_cb(evutil_socket_t fd, short what, void *arg) {
  udp_flow *f = arg;
  uint8_t *buf = f->u->rxbuf;
  (void)what;
  for (int i = 0; i < NT_UDP_READ_BATCH; i++) {
    ssize_t n = recv(fd, buf, NT_DGRAM_MAX_PAYLOAD, MSG_DONTWAIT);
    if (n < 0) {
      /* ECONNREFUSED: an ICMP port unreachable; the flow stays, as a UDP
       * socket would. */
      return;
    }
    nt_udp_flow_send(f, buf, (size_t)n, &f->u->counts);
  }
}

static void target_connect(udp_flow *f, const struct sockaddr *sa,
                           socklen_t salen) {
  char msg[300];
  f->fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (f->fd < 0 || connect(f->fd, sa, salen) != 0) {
    snprintf(msg, sizeof(msg), "cannot reach UDP %.80s:%u on %s: %s",
             f->host, f->port, f->u->env.self_name, strerror(errno));
    refuse(f, NT_OPEN_UNREACHABLE, msg);
    return;
  }
  nt_udp_socket_buffers(f->fd);
  f->read_ev = event_new(f->u->env.base, f->fd, EV_READ | EV_PERSIST,
                         target_read_cb, f);
  if (!f->read_ev) {
    refuse(f, NT_OPEN_INTERNAL, "out of memory");
    return;
  }
  event_add(f->read_ev, NULL);
  f->state = F_OPEN;
  f->last_ns = nt_monotonic_ns();
  nt_udp_flow_arm(f, f->u->env.idle_timeout_s);
  answer(f, NT_OPEN_OK, "");
  nt_debug(LOG(f->u), "UDP flow %lld: %s -> %s:%u", (long long)f->id,
           f->peer, f->host, f->port);
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg) {
  udp_flow *f = arg;
  f->dns_req = NULL;
  if (result == EVUTIL_EAI_CANCEL) {
    return;
  }
  if (result != 0 || !res) {
    char msg[300];
    if (res) {
      evutil_freeaddrinfo(res);
    }
    snprintf(msg, sizeof(msg), "cannot resolve %.80s on %s: %s", f->host,
             f->u->env.self_name, evutil_gai_strerror(result));
    refuse(f, NT_OPEN_UNREACHABLE, msg);
    return;
  }
  struct sockaddr_storage ss;
  socklen_t len = (socklen_t)res->ai_addrlen;
  memcpy(&ss, res->ai_addr, len);
  evutil_freeaddrinfo(res);
  target_connect(f, (struct sockaddr *)&ss, len);
}

void nt_udp_accept(nt_udp *u, const char *peer, const uint8_t *key,
                   nt_stream *stream, const nt_open_request *req) {
  char msg[800], target[100];
  udp_flow *f = nt_udp_flow_alloc(u, 0, peer);
  if (!f) {
    nt_stream_reset(stream, NT_OPEN_INTERNAL);
    return;
  }
  nt_udp_flow_set_stream(f, stream);
  nt_stream_set_callbacks(stream, &listener_callbacks, f);
  snprintf(f->host, sizeof(f->host), "%s",
           req->host[0] ? req->host : "127.0.0.1");
  f->port = req->port;
  int v6 = strchr(f->host, ':') != NULL;
  snprintf(target, sizeof(target), "%s%.60s%s:%u", v6 ? "[" : "", f->host,
           v6 ? "]" : "", f->port);

  nt_access_peer ap = {peer, key};
  if (!nt_access_target_allowed(u->env.allow_udp, &ap, f->host, f->port)) {
    if (nt_access_has_target_rules(u->env.allow_udp)) {
      snprintf(msg, sizeof(msg),
               "%s's -allow-udp rules do not include UDP %s for %s; add "
               "-allow-udp %s (or -allow-udp %s=%s) there to permit it",
               u->env.self_name, target, peer, target, peer, target);
    msg[NT_OPEN_MAX_MESSAGE] = '\0'; /* what a result carries */
    } else {
      snprintf(msg, sizeof(msg),
               "%s allows no UDP targets (not even its loopback) unless "
               "-allow-udp names them; to reach UDP %s, start %s with "
               "-allow-udp %s",
               u->env.self_name, target, u->env.self_name, target);
      msg[NT_OPEN_MAX_MESSAGE] = '\0';
    }
    refuse(f, NT_OPEN_DENIED, msg);
    return;
  }
  size_t n = nt_udp_flows_of(u, peer, 0) - 1; /* not counting this one */
  if (u->env.max_flows_per_peer && n >= u->env.max_flows_per_peer) {
    unsigned held;
    u->counts.flows_refused++;
    if (nt_log_gate_pass(&u->limit_gate, nt_monotonic_ns(), &held)) {
      nt_warn(LOG(u),
              "refused a UDP flow from %s: it has %zu open already, the "
              "limit per peer (-max-udp-flows)%s",
              peer, n, held ? " (more refusals not logged)" : "");
    }
    snprintf(msg, sizeof(msg),
             "%s has %zu UDP flows open for %s already, its limit per peer "
             "(-max-udp-flows); one ends after %u s without datagrams",
             u->env.self_name, n, peer,
             u->env.idle_timeout_s);
    answer(f, NT_OPEN_DENIED, msg);
    nt_stream_shutdown_write(f->stream);
    f->state = F_REFUSED;
    nt_udp_flow_arm(f, NT_UDP_REFUSED_HOLD_S);
    return;
  }

  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  struct sockaddr_in *in = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  if (strcasecmp(f->host, "localhost") == 0 ||
      inet_pton(AF_INET, f->host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    if (strcasecmp(f->host, "localhost") == 0) {
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    in->sin_port = htons(f->port);
    target_connect(f, (struct sockaddr *)in, sizeof(*in));
    return;
  }
  if (inet_pton(AF_INET6, f->host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(f->port);
    target_connect(f, (struct sockaddr *)in6, sizeof(*in6));
    return;
  }
  struct evutil_addrinfo hints;
  char portstr[8];
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  snprintf(portstr, sizeof(portstr), "%u", f->port);
  f->state = F_RESOLVING;
  struct evdns_getaddrinfo_request *r =
      evdns_getaddrinfo(u->env.dns, f->host, portstr, &hints, dns_cb, f);
  if (r) {
    f->dns_req = r; /* NULL: answered already, and |f| may be gone */
  }
}
