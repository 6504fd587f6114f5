/* UDP forwards, the opener's side (udp.h): a local UDP socket, one flow
 * per source address:port, each opened with a stream to the peer, and
 * the peer's datagrams sent back to the source they belong to. */
#include <errno.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/udp_internal.h"

struct nt_udp_forward {
  nt_udp *u;
  int fd;
  struct event *read_ev;
  char peer[NT_NAME_MAX + 1];
  char host[NT_HOST_MAX + 1]; /* "" : the peer's loopback */
  uint16_t port, local_port;
  natter_forward_stats *stats;
  nt_udp_forward_callbacks cbs;
  void *user_data;
  nt_udp_counts counts;
  struct udp_flow_list flows; /* fwd_link */
};

static const nt_stream_callbacks no_callbacks = {NULL, NULL, NULL};

static void report(udp_flow *f, natter_event_type type, int error, int quiet,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report(udp_flow *f, natter_event_type type, int error, int quiet,
                   const char *fmt, ...) {
  nt_udp_forward *fw = f->fwd;
  char msg[700], line[900], src[NT_ADDR_STRLEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  int v6 = strchr(fw->host, ':') != NULL;
  snprintf(line, sizeof(line), "UDP %s -> %s:%s%.80s%s%s%u: %s",
           nt_addr_str((struct sockaddr *)&f->src, src), fw->peer,
           v6 ? "[" : "", fw->host, v6 ? "]" : "", fw->host[0] ? ":" : "",
           fw->port, msg);
  fw->cbs.event(type, error, quiet, line, fw->user_data);
}

/* The flow cannot be opened: its source is held (datagrams dropped) for
 * NT_UDP_REFUSED_HOLD_S, so a refusal is not asked again per datagram. */
static void hold(udp_flow *f) {
  if (f->stream) {
    nt_stream_set_callbacks(f->stream, &no_callbacks, NULL);
    nt_stream_reset(f->stream, NT_OPEN_OK);
    f->stream = NULL;
  }
  f->state = F_REFUSED; /* the failure was counted with its event */
  for (size_t i = 0; i < f->npending; i++) {
    free(f->pending[i].data);
    f->fwd->counts.dropped_full++;
  }
  f->npending = 0;
  f->pending_bytes = 0;
  nt_udp_flow_arm(f, NT_UDP_REFUSED_HOLD_S);
}

static void send_one(udp_flow *f, const uint8_t *data, size_t len) {
  if (nt_udp_flow_send(f, data, len, &f->fwd->counts) == 0 &&
      f->fwd->stats) {
    f->fwd->stats->bytes_sent += len;
  }
}

static void opener_open(udp_flow *f) {
  f->state = F_OPEN;
  f->last_ns = nt_monotonic_ns();
  nt_wire_reader_reset(&f->reader);
  report(f, NATTER_EVENT_FORWARD_OPENED, 0, 0, "open");
  for (size_t i = 0; i < f->npending; i++) {
    send_one(f, f->pending[i].data, f->pending[i].len);
    free(f->pending[i].data);
  }
  f->npending = 0;
  f->pending_bytes = 0;
  nt_udp_flow_arm(f, f->u->env.idle_timeout_s);
}

static void opener_stream_recv(nt_stream *s, const uint8_t *data, size_t len,
                               int fin, void *ud) {
  udp_flow *f = ud;
  while (len > 0 && f->state == F_WAIT_RESULT) {
    size_t used, bodylen;
    const uint8_t *body;
    int rv =
        nt_wire_reader_feed(&f->reader, data, len, &used, &body, &bodylen);
    if (rv < 0) {
      report(f, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_PROTOCOL, 0,
             "protocol error from %s: bad answer framing", f->peer);
      hold(f);
      return;
    }
    nt_stream_consume(s, used);
    data += used;
    len -= used;
    if (rv == 1) {
      char why[NT_OPEN_MAX_MESSAGE + 1];
      int err;
      if (nt_open_result_decode(body, bodylen, &err, why, sizeof(why)) != 0) {
        report(f, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_PROTOCOL, 0,
               "protocol error from %s: malformed answer", f->peer);
        hold(f);
        return;
      }
      if (err != 0) {
        report(f, NATTER_EVENT_FORWARD_FAILED, err, 0, "%s",
               why[0] ? why : natter_strerror(err));
        hold(f);
        return;
      }
      opener_open(f);
    }
  }
  if (f->stream) {
    nt_stream_consume(s, len); /* nothing else travels on it */
  }
  if (fin && f->state == F_OPEN) {
    report(f, NATTER_EVENT_FORWARD_CLOSED, 0, 0, "ended by the peer");
    nt_udp_flow_end(f);
  } else if (fin && f->state == F_WAIT_RESULT) {
    report(f, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_CLOSED, 0,
           "the peer ended the stream before answering");
    hold(f);
  }
}

static void opener_stream_closed(nt_stream *s, int reset, uint64_t code,
                                 void *ud) {
  udp_flow *f = ud;
  (void)s;
  (void)reset;
  (void)code;
  f->stream = NULL;
  if (f->state == F_WAIT_RESULT) {
    report(f, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_CLOSED, 0,
           "the peer closed the stream");
    hold(f);
    return;
  }
  if (f->state == F_OPEN) {
    report(f, NATTER_EVENT_FORWARD_CLOSED, 0, 0, "ended by the peer");
  }
  nt_udp_flow_end(f);
}

void nt_udp_forward_flow_idle(udp_flow *f) {
  report(f, NATTER_EVENT_FORWARD_CLOSED, 0, 0, "idle for %u s",
         f->u->env.idle_timeout_s);
}

static const nt_stream_callbacks opener_callbacks = {
    opener_stream_recv, NULL, opener_stream_closed};

static int waiter_ready(nt_peer_waiter *w, nt_conn *conn) {
  udp_flow *f = (udp_flow *)((char *)w - offsetof(udp_flow, waiter));
  uint8_t buf[NT_STREAM_HEADER_MAX];
  nt_stream *s;
  int rv = nt_conn_open_stream(conn, &s);
  if (rv == NT_STREAMS_BLOCKED) {
    return rv;
  }
  if (rv != 0) {
    report(f, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_CLOSED, 0,
           "the connection to the peer cannot open streams");
    hold(f);
    return 0;
  }
  nt_udp_flow_set_stream(f, s);
  nt_stream_set_callbacks(s, &opener_callbacks, f);
  f->state = F_WAIT_RESULT;
  size_t n = nt_open_request_encode_udp(buf, f->fwd->host, f->fwd->port);
  if (n == 0 || nt_stream_write(s, buf, n) != 0) {
    report(f, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_INVALID, 0,
           "cannot send the flow's header");
    hold(f);
  }
  return 0;
}

static void waiter_failed(nt_peer_waiter *w, int error, const char *why) {
  udp_flow *f = (udp_flow *)((char *)w - offsetof(udp_flow, waiter));
  report(f, NATTER_EVENT_FORWARD_FAILED, error, 1, "%s", why);
  hold(f);
}

void nt_udp_forward_flow_gone(udp_flow *f) {
  nt_peer_waiter_cancel(&f->waiter);
  if (f->fwd) {
    LIST_REMOVE(f, fwd_link);
    if (f->fwd->stats && f->fwd->stats->active > 0) {
      f->fwd->stats->active--;
    }
  }
}

void nt_udp_forward_deliver(udp_flow *f, const uint8_t *data, size_t len) {
  nt_udp_forward *fw = f->fwd;
  if (sendto(fw->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&f->src,
             f->srclen) < 0) {
    fw->counts.dropped_full++;
    return;
  }
  fw->counts.received++;
  if (fw->stats) {
    fw->stats->bytes_received += len;
  }
}

/* A new source: a new flow, if the per-peer limit allows. */
static udp_flow *new_flow(nt_udp_forward *fw, const struct sockaddr_storage *src,
                          socklen_t srclen) {
  nt_udp *u = fw->u;
  size_t n = nt_udp_flows_of(u, fw->peer, 1);
  if (u->env.max_flows_per_peer && n >= u->env.max_flows_per_peer) {
    unsigned held;
    fw->counts.flows_refused++;
    fw->counts.dropped_full++;
    if (nt_log_gate_pass(&u->limit_gate, nt_monotonic_ns(), &held)) {
      char a[NT_ADDR_STRLEN];
      nt_warn(u->env.log,
              "dropped a datagram from %s to UDP port %u: %zu flows to %s "
              "are open already, the limit per peer (-max-udp-flows)%s",
              nt_addr_str((const struct sockaddr *)src, a), fw->local_port,
              n, fw->peer, held ? " (more drops not logged)" : "");
    }
    return NULL;
  }
  udp_flow *f = nt_udp_flow_alloc(u, 1, fw->peer);
  if (!f) {
    return NULL;
  }
  f->fwd = fw;
  memcpy(&f->src, src, srclen);
  f->srclen = srclen;
  f->waiter.ready = waiter_ready;
  f->waiter.failed = waiter_failed;
  f->state = F_WAIT_PEER;
  LIST_INSERT_HEAD(&fw->flows, f, fwd_link);
  /* Bounds the wait for the peer and its answer too. */
  nt_udp_flow_arm(f, u->env.idle_timeout_s);
  if (fw->stats) {
    fw->stats->connections++;
    fw->stats->active++;
  }
  return f;
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
  nt_udp_forward *fw = arg;
  uint8_t *buf = fw->u->rxbuf;
  (void)what;
  for (int i = 0; i < NT_UDP_READ_BATCH; i++) {
    struct sockaddr_storage src;
    socklen_t srclen = sizeof(src);
    ssize_t n = recvfrom(fd, buf, NT_DGRAM_MAX_PAYLOAD, MSG_DONTWAIT,
                         (struct sockaddr *)&src, &srclen);
    if (n < 0) {
      return;
    }
    udp_flow *f;
    LIST_FOREACH(f, &fw->flows, fwd_link) {
      if (nt_addr_equal((struct sockaddr *)&f->src, (struct sockaddr *)&src)) {
        break;
      }
    }
    int fresh = 0;
    if (!f) {
      if (!(f = new_flow(fw, &src, srclen))) {
        continue;
      }
      fresh = 1;
    }
    if (f->state == F_OPEN) {
      f->last_ns = nt_monotonic_ns();
      send_one(f, buf, (size_t)n);
    } else if (f->state != F_REFUSED && f->npending < NT_UDP_PENDING_MAX &&
               f->pending_bytes + (size_t)n <= NT_UDP_PENDING_BYTES &&
               (f->pending[f->npending].data = malloc((size_t)n + 1))) {
      memcpy(f->pending[f->npending].data, buf, (size_t)n);
      f->pending[f->npending++].len = (size_t)n;
      f->pending_bytes += (size_t)n;
    } else {
      fw->counts.dropped_full++;
    }
    if (fresh) {
      nt_peer *peer = nt_peers_get(fw->u->env.peers, fw->peer);
      if (!peer) {
        nt_udp_flow_end(f);
        continue;
      }
      /* May answer (ready or failed) before it returns. */
      nt_peer_submit(peer, &f->waiter);
    }
  }
}

int nt_udp_forward_new(nt_udp_forward **pf, nt_udp *u, const nt_addr *where,
                       const char *peer, const char *host, uint16_t port,
                       natter_forward_stats *stats,
                       const nt_udp_forward_callbacks *callbacks,
                       void *user_data, char *err, size_t errlen) {
  nt_udp_forward *fw = calloc(1, sizeof(*fw));
  char a[NT_ADDR_STRLEN];
  if (!fw) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  fw->u = u;
  snprintf(fw->peer, sizeof(fw->peer), "%s", peer);
  snprintf(fw->host, sizeof(fw->host), "%s", host ? host : "");
  fw->port = port;
  fw->stats = stats;
  fw->cbs = *callbacks;
  fw->user_data = user_data;
  LIST_INIT(&fw->flows);
  fw->fd = socket(where->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  0);
  if (fw->fd < 0 ||
      bind(fw->fd, (const struct sockaddr *)&where->ss, where->len) != 0) {
    int e = errno;
    snprintf(err, errlen, "cannot bind UDP %s: %s%s",
             nt_addr_str((const struct sockaddr *)&where->ss, a), strerror(e),
             e == EADDRINUSE ? " (port already in use: pick another local "
                               "port or stop what uses it)"
                             : "");
    if (fw->fd >= 0) {
      close(fw->fd);
    }
    free(fw);
    return e == EADDRINUSE ? NATTER_ERR_ADDR_IN_USE : NATTER_ERR_SOCKET;
  }
  nt_udp_socket_buffers(fw->fd);
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof(ss);
  if (getsockname(fw->fd, (struct sockaddr *)&ss, &sslen) == 0) {
    fw->local_port = ntohs(ss.ss_family == AF_INET6
                               ? ((struct sockaddr_in6 *)&ss)->sin6_port
                               : ((struct sockaddr_in *)&ss)->sin_port);
  }
  fw->read_ev =
      event_new(u->env.base, fw->fd, EV_READ | EV_PERSIST, read_cb, fw);
  if (!fw->read_ev) {
    close(fw->fd);
    free(fw);
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  event_add(fw->read_ev, NULL);
  *pf = fw;
  return 0;
}

void nt_udp_forward_counts(const nt_udp_forward *f, nt_udp_counts *out) {
  *out = f->counts;
}

void nt_udp_forward_free(nt_udp_forward *fw) {
  if (!fw) {
    return;
  }
  while (!LIST_EMPTY(&fw->flows)) {
    nt_udp_flow_end(LIST_FIRST(&fw->flows));
  }
  nt_info(fw->u->env.log,
          "UDP port %u -> %s: %llu datagrams sent, %llu received, %llu "
          "dropped as too big, %llu dropped otherwise",
          fw->local_port, fw->peer, (unsigned long long)fw->counts.sent,
          (unsigned long long)fw->counts.received,
          (unsigned long long)fw->counts.dropped_too_big,
          (unsigned long long)fw->counts.dropped_full);
  event_free(fw->read_ev);
  close(fw->fd);
  free(fw);
}
