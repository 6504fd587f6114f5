/* One forwarded TCP connection <-> one bidirectional QUIC stream.
 *
 * The opener sends StreamOpen and waits for StreamOpenResult before it
 * reads from its TCP socket; the listener checks its rules, connects, and
 * answers. Then bytes flow both ways with backpressure: TCP is read only
 * while the stream has send room, and stream bytes are consumed (flow
 * control credit returned to the peer) only once written to TCP. FIN maps
 * to FIN, reset to reset. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_internal.h"
#include "wire_msg.h"

#define TUNNEL_CONNECT_TIMEOUT_S 10
#define TUNNEL_READ_MAX (256 * 1024)

typedef enum tunnel_state {
  T_WAIT_PEER,   /* opener: local connection waits for the peer */
  T_WAIT_RESULT, /* opener: StreamOpen sent */
  T_WAIT_OPEN,   /* listener: waiting for StreamOpen */
  T_RESOLVING,   /* listener: looking up the target */
  T_CONNECTING,  /* listener: TCP connect in progress */
  T_OPEN,        /* bytes flow */
  T_DONE         /* stream gone; freed from the loop */
} tunnel_state;

struct nt_tunnel {
  natter_client *client;
  tunnel_state state;
  int opener;
  int fd;
  nt_stream *stream;
  struct event *read_ev, *write_ev, *timer, *free_ev;
  struct evbuffer *to_tcp;   /* stream bytes the TCP socket did not take */
  nt_wire_reader *reader;    /* only until the header exchange is done */
  struct evdns_getaddrinfo_request *dns_req;
  int tcp_read_done;         /* EOF or error from TCP */
  int stream_fin;            /* FIN from the peer seen */
  int tcp_write_shut;
  char peer[NT_NAME_MAX + 1];
  char host[NT_HOST_MAX + 1];
  uint16_t port;
  uint16_t local_port;
  nt_tunnel *next_waiting;
  nt_tunnel *next, *prev;
};

static void tunnel_stream_recv(nt_stream *s, const uint8_t *data, size_t len,
                               int fin, void *ud);
static void tunnel_stream_room(nt_stream *s, void *ud);
static void tunnel_stream_closed(nt_stream *s, int reset, uint64_t code,
                                 void *ud);

static void connect_done(nt_tunnel *t, int soerr);

static const nt_stream_callbacks tunnel_stream_callbacks = {
    tunnel_stream_recv, tunnel_stream_room, tunnel_stream_closed};

nt_tunnel *nt_tunnel_next_waiting(nt_tunnel *t) {
  return t->next_waiting;
}

void nt_tunnel_set_next_waiting(nt_tunnel *t, nt_tunnel *next) {
  t->next_waiting = next;
}

static void release(nt_tunnel *t) {
  natter_client *c = t->client;
  if (t->prev) {
    t->prev->next = t->next;
  } else {
    c->tunnels = t->next;
  }
  if (t->next) {
    t->next->prev = t->prev;
  }
  if (t->dns_req) {
    evdns_getaddrinfo_cancel(t->dns_req);
  }
  if (t->read_ev) {
    event_free(t->read_ev);
  }
  if (t->write_ev) {
    event_free(t->write_ev);
  }
  if (t->timer) {
    event_free(t->timer);
  }
  if (t->free_ev) {
    event_free(t->free_ev);
  }
  if (t->to_tcp) {
    evbuffer_free(t->to_tcp);
  }
  if (t->fd >= 0) {
    close(t->fd);
  }
  free(t->reader);
  free(t);
}

static void free_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  release(arg);
}

/* Ends the tunnel: a reset when |abort|, so the TCP peer sees RST rather
 * than a clean end it might mistake for complete data. The tunnel is
 * freed from the loop, never from inside a callback of its own. */
static void tunnel_end(nt_tunnel *t, int abort) {
  if (t->state == T_DONE) {
    return;
  }
  t->state = T_DONE;
  if (t->stream) {
    nt_stream_set_callbacks(t->stream, &(nt_stream_callbacks){0}, NULL);
    if (abort) {
      nt_stream_reset(t->stream, NATTER__CODE__INTERNAL);
    }
    t->stream = NULL;
  }
  if (t->fd >= 0 && abort) {
    struct linger lg = {1, 0};
    setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  if (t->read_ev) {
    event_del(t->read_ev);
  }
  if (t->write_ev) {
    event_del(t->write_ev);
  }
  event_del(t->timer);
  event_active(t->free_ev, EV_TIMEOUT, 0);
}

static void describe(const nt_tunnel *t, char *out, size_t outlen) {
  if (strchr(t->host, ':')) {
    snprintf(out, outlen, "%s:[%s]:%u", t->peer, t->host, t->port);
  } else if (t->host[0]) {
    snprintf(out, outlen, "%s:%s:%u", t->peer, t->host, t->port);
  } else {
    snprintf(out, outlen, "%s:%u", t->peer, t->port);
  }
}

/* The stream and TCP are both finished in both directions. */
static void maybe_done(nt_tunnel *t) {
  if (t->tcp_read_done && t->tcp_write_shut) {
    /* Wait for the stream to close (our FIN acknowledged) before freeing:
     * the QUIC side still holds our bytes until then. */
    event_del(t->read_ev);
  }
}

/* ---- TCP -> stream ---- */

static void tcp_read_cb(evutil_socket_t fd, short what, void *arg) {
  nt_tunnel *t = arg;
  (void)what;
  if (t->state != T_OPEN || !t->stream) {
    return;
  }
  size_t room = nt_stream_send_room(t->stream);
  if (room == 0) {
    event_del(t->read_ev); /* tunnel_stream_room re-enables */
    return;
  }
  if (room > TUNNEL_READ_MAX) {
    room = TUNNEL_READ_MAX;
  }
  ssize_t n = nt_stream_read_fd(t->stream, fd, room);
  if (n > 0) {
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return;
  }
  event_del(t->read_ev);
  t->tcp_read_done = 1;
  if (n == 0) {
    nt_stream_shutdown_write(t->stream); /* half-close travels as FIN */
    maybe_done(t);
  } else {
    tunnel_end(t, 1);
  }
}

static void tunnel_stream_room(nt_stream *s, void *ud) {
  nt_tunnel *t = ud;
  (void)s;
  if (t->state == T_OPEN && !t->tcp_read_done) {
    event_add(t->read_ev, NULL);
  }
}

/* ---- stream -> TCP ---- */

static void shut_tcp_write_if_drained(nt_tunnel *t) {
  if (t->stream_fin && !t->tcp_write_shut &&
      evbuffer_get_length(t->to_tcp) == 0) {
    shutdown(t->fd, SHUT_WR);
    t->tcp_write_shut = 1;
    maybe_done(t);
  }
}

static void tcp_write_cb(evutil_socket_t fd, short what, void *arg) {
  nt_tunnel *t = arg;
  (void)what;
  if (t->state == T_CONNECTING) {
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    connect_done(t, soerr);
    return;
  }
  int n = evbuffer_write(t->to_tcp, fd);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      return;
    }
    tunnel_end(t, 1);
    return;
  }
  if (t->stream) {
    nt_stream_consume(t->stream, (size_t)n);
  }
  if (evbuffer_get_length(t->to_tcp) == 0) {
    event_del(t->write_ev);
    shut_tcp_write_if_drained(t);
  }
}

/* Hands raw stream bytes to TCP: straight to the socket when nothing is
 * queued, else behind what is. Bytes are consumed (credit returned) only
 * once the socket took them. */
static void deliver(nt_tunnel *t, const uint8_t *data, size_t len) {
  if (len == 0) {
    return;
  }
  if (evbuffer_get_length(t->to_tcp) == 0) {
    ssize_t n = send(t->fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      tunnel_end(t, 1);
      return;
    }
    if (n > 0) {
      nt_stream_consume(t->stream, (size_t)n);
      data += n;
      len -= (size_t)n;
    }
  }
  if (len > 0) {
    evbuffer_add(t->to_tcp, data, len);
    event_add(t->write_ev, NULL);
  }
}

/* ---- header exchange ---- */

static void send_result(nt_tunnel *t, Natter__Code code, const char *msg) {
  Natter__StreamOpenResult res = NATTER__STREAM_OPEN_RESULT__INIT;
  res.code = code;
  res.message = (char *)msg;
  nt_wire_write_msg(t->stream, &res.base);
}

static void refuse(nt_tunnel *t, Natter__Code code, const char *msg) {
  char what[NT_NAME_MAX + NT_HOST_MAX + 16];
  describe(t, what, sizeof(what));
  nt_info(&t->client->log, "refused %s for %s: %s",
          strchr(what, ':') + 1, t->peer, msg);
  send_result(t, code, msg);
  nt_stream_shutdown_write(t->stream);
  /* Whatever else arrives is discarded; the stream closes once the opener
   * resets it. */
  t->state = T_WAIT_OPEN;
  t->tcp_read_done = 1;
  free(t->reader);
  t->reader = NULL;
}

static void start_relay(nt_tunnel *t) {
  t->state = T_OPEN;
  free(t->reader);
  t->reader = NULL;
  event_del(t->timer);
  event_del(t->write_ev);
  event_add(t->read_ev, NULL);
  /* Bytes (and a FIN) that came while the target was being connected. */
  if (evbuffer_get_length(t->to_tcp) > 0) {
    event_add(t->write_ev, NULL);
  } else {
    shut_tcp_write_if_drained(t);
  }
}

static void connect_done(nt_tunnel *t, int soerr) {
  char msg[300];
  if (soerr == 0) {
    int one = 1;
    setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    send_result(t, NATTER__CODE__OK, "");
    start_relay(t);
    return;
  }
  event_free(t->read_ev);
  event_free(t->write_ev);
  t->read_ev = t->write_ev = NULL;
  close(t->fd);
  t->fd = -1;
  snprintf(msg, sizeof(msg), "%s to %.80s:%u on %s", strerror(soerr), t->host,
           t->port, t->client->name);
  refuse(t,
         soerr == ECONNREFUSED ? NATTER__CODE__REFUSED
         : soerr == ETIMEDOUT  ? NATTER__CODE__TIMEOUT
                               : NATTER__CODE__UNREACHABLE,
         msg);
}

static void connect_to(nt_tunnel *t, const struct sockaddr *sa,
                       socklen_t salen) {
  struct timeval tv = {TUNNEL_CONNECT_TIMEOUT_S, 0};
  int allowed = nt_addr_is_loopback(sa) ||
                nt_client_target_allowed(t->client, t->host, t->port);
  if (!allowed) {
    char msg[512];
    snprintf(msg, sizeof(msg),
             "%s allows only its own loopback by default; to reach %.80s:%u, "
             "start %s with -allow %.80s:%u",
             t->client->name, t->host, t->port, t->client->name, t->host,
             t->port);
    refuse(t, NATTER__CODE__DENIED, msg);
    return;
  }
  t->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 0);
  if (t->fd < 0) {
    char msg[200];
    snprintf(msg, sizeof(msg), "cannot create a socket on %s: %s",
             t->client->name, strerror(errno));
    refuse(t, NATTER__CODE__INTERNAL, msg);
    return;
  }
  t->read_ev = event_new(t->client->base, t->fd, EV_READ | EV_PERSIST,
                         tcp_read_cb, t);
  t->write_ev = event_new(t->client->base, t->fd, EV_WRITE | EV_PERSIST,
                          tcp_write_cb, t);
  if (!t->read_ev || !t->write_ev) {
    refuse(t, NATTER__CODE__INTERNAL, "out of memory");
    return;
  }
  t->state = T_CONNECTING;
  if (connect(t->fd, sa, salen) == 0) {
    connect_done(t, 0);
    return;
  }
  if (errno != EINPROGRESS) {
    connect_done(t, errno);
    return;
  }
  event_add(t->write_ev, NULL);
  event_add(t->timer, &tv);
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg) {
  nt_tunnel *t = arg;
  t->dns_req = NULL;
  if (result == EVUTIL_EAI_CANCEL) {
    return;
  }
  if (result != 0 || !res) {
    char msg[300];
    snprintf(msg, sizeof(msg), "cannot resolve %.80s on %s: %s", t->host,
             t->client->name, evutil_gai_strerror(result));
    if (res) {
      evutil_freeaddrinfo(res);
    }
    refuse(t, NATTER__CODE__UNREACHABLE, msg);
    return;
  }
  connect_to(t, res->ai_addr, (socklen_t)res->ai_addrlen);
  evutil_freeaddrinfo(res);
}

static void handle_stream_open(nt_tunnel *t, const uint8_t *body,
                               size_t len) {
  Natter__StreamOpen *open = natter__stream_open__unpack(NULL, len, body);
  if (!open || open->port == 0 || open->port > 65535 ||
      !nt_wire_string_ok(open->host, NT_HOST_MAX)) {
    if (open) {
      natter__stream_open__free_unpacked(open, NULL);
    }
    nt_stream_reset(t->stream, NATTER__CODE__BAD_REQUEST);
    tunnel_end(t, 1);
    return;
  }
  if (open->n_argv > 0) {
    natter__stream_open__free_unpacked(open, NULL);
    refuse(t, NATTER__CODE__DENIED,
           "remote commands are not allowed on this peer");
    return;
  }
  snprintf(t->host, sizeof(t->host), "%s",
           open->host[0] ? open->host : "127.0.0.1");
  t->port = (uint16_t)open->port;
  natter__stream_open__free_unpacked(open, NULL);

  if (!t->client->listen) {
    refuse(t, NATTER__CODE__PEER_NOT_LISTENING, "not listening");
    return;
  }
  /* Numeric addresses and localhost need no resolver. */
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  struct sockaddr_in *in = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  if (strcasecmp(t->host, "localhost") == 0 ||
      inet_pton(AF_INET, t->host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    if (strcasecmp(t->host, "localhost") == 0) {
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    in->sin_port = htons(t->port);
    connect_to(t, (struct sockaddr *)in, sizeof(*in));
    return;
  }
  if (inet_pton(AF_INET6, t->host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(t->port);
    connect_to(t, (struct sockaddr *)in6, sizeof(*in6));
    return;
  }
  struct evutil_addrinfo hints;
  char portstr[8];
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(portstr, sizeof(portstr), "%u", t->port);
  t->state = T_RESOLVING;
  t->dns_req = evdns_getaddrinfo(t->client->dns, t->host, portstr, &hints,
                                 dns_cb, t);
}

static void handle_open_result(nt_tunnel *t, const uint8_t *body,
                               size_t len) {
  Natter__StreamOpenResult *res =
      natter__stream_open_result__unpack(NULL, len, body);
  char what[NT_NAME_MAX + NT_HOST_MAX + 16];

  describe(t, what, sizeof(what));
  if (!res) {
    nt_client_emit(t->client, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_PROTOCOL,
                   t->peer, "%s: malformed answer from the peer", what);
    tunnel_end(t, 1);
    return;
  }
  if (res->code != NATTER__CODE__OK) {
    int err = res->code == NATTER__CODE__REFUSED       ? NATTER_ERR_REFUSED
              : res->code == NATTER__CODE__DENIED      ? NATTER_ERR_DENIED
              : res->code == NATTER__CODE__UNREACHABLE ? NATTER_ERR_UNREACHABLE
              : res->code == NATTER__CODE__TIMEOUT     ? NATTER_ERR_TIMEOUT
                                                       : NATTER_ERR_PROTOCOL;
    const char *why = nt_wire_string_ok(res->message, 500) && res->message[0]
                          ? res->message
                          : natter_strerror(err);
    nt_client_emit(t->client, NATTER_EVENT_FORWARD_FAILED, err, t->peer,
                   "local port %u -> %s: %s%s", t->local_port, what,
                   err == NATTER_ERR_REFUSED ? "connection refused: " : "",
                   why);
    natter__stream_open_result__free_unpacked(res, NULL);
    tunnel_end(t, 1);
    return;
  }
  natter__stream_open_result__free_unpacked(res, NULL);
  nt_debug(&t->client->log, "local port %u -> %s: open", t->local_port, what);
  start_relay(t);
}

static void tunnel_stream_recv(nt_stream *s, const uint8_t *data, size_t len,
                               int fin, void *ud) {
  nt_tunnel *t = ud;

  while (len > 0 && t->reader &&
         (t->state == T_WAIT_OPEN || t->state == T_WAIT_RESULT)) {
    size_t used, bodylen;
    const uint8_t *body;
    int rv = nt_wire_reader_feed(t->reader, data, len, &used, &body,
                                 &bodylen);
    if (rv < 0) {
      nt_warn(&t->client->log, "%s: bad stream header; reset", t->peer);
      tunnel_end(t, 1);
      return;
    }
    nt_stream_consume(s, used);
    data += used;
    len -= used;
    if (rv == 1) {
      if (t->opener) {
        handle_open_result(t, body, bodylen);
      } else {
        handle_stream_open(t, body, bodylen);
      }
    }
  }
  if (t->state == T_DONE) {
    return;
  }
  if (t->state == T_OPEN && t->fd >= 0) {
    deliver(t, data, len);
  } else if (len > 0) {
    if (t->state == T_WAIT_OPEN && t->tcp_read_done) {
      nt_stream_consume(s, len); /* refused: discard */
    } else {
      /* Bytes before the target is connected wait, bounded by the stream's
       * flow-control window. */
      evbuffer_add(t->to_tcp, data, len);
    }
  }
  if (fin) {
    t->stream_fin = 1;
    if (t->state == T_OPEN) {
      shut_tcp_write_if_drained(t);
    } else if (t->state == T_WAIT_RESULT || t->state == T_WAIT_OPEN) {
      if (t->opener || !t->tcp_read_done) {
        tunnel_end(t, 1); /* ended before the exchange finished */
      }
    }
  }
}

static void tunnel_stream_closed(nt_stream *s, int reset, uint64_t code,
                                 void *ud) {
  nt_tunnel *t = ud;
  (void)s;
  (void)code;
  t->stream = NULL;
  if (t->state == T_DONE) {
    return;
  }
  /* A reset, or a close before we finished with TCP, aborts the TCP side;
   * otherwise both directions completed. */
  int clean = !reset && t->tcp_read_done && t->tcp_write_shut;
  if (t->opener && t->state == T_WAIT_RESULT) {
    char what[NT_NAME_MAX + NT_HOST_MAX + 16];
    describe(t, what, sizeof(what));
    nt_client_emit(t->client, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_CLOSED,
                   t->peer, "local port %u -> %s: the peer closed the stream",
                   t->local_port, what);
  }
  tunnel_end(t, !clean);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  nt_tunnel *t = arg;
  (void)fd;
  (void)what;
  if (t->state == T_CONNECTING) {
    connect_done(t, ETIMEDOUT);
  }
}

/* ---- creation ---- */

static nt_tunnel *tunnel_alloc(natter_client *c) {
  nt_tunnel *t = calloc(1, sizeof(*t));
  if (!t) {
    return NULL;
  }
  t->client = c;
  t->fd = -1;
  t->timer = event_new(c->base, -1, 0, timer_cb, t);
  t->free_ev = event_new(c->base, -1, 0, free_cb, t);
  t->to_tcp = evbuffer_new();
  t->reader = calloc(1, sizeof(*t->reader));
  t->next = c->tunnels;
  if (c->tunnels) {
    c->tunnels->prev = t;
  }
  c->tunnels = t;
  if (!t->timer || !t->free_ev || !t->to_tcp || !t->reader) {
    release(t);
    return NULL;
  }
  return t;
}

nt_tunnel *nt_tunnel_new_outgoing(natter_client *c, int fd,
                                  const nt_spec *spec) {
  nt_tunnel *t = tunnel_alloc(c);
  if (!t) {
    close(fd);
    return NULL;
  }
  t->opener = 1;
  t->fd = fd;
  t->state = T_WAIT_PEER;
  snprintf(t->peer, sizeof(t->peer), "%s", spec->peer);
  snprintf(t->host, sizeof(t->host), "%s", spec->host);
  t->port = spec->port;
  t->local_port = spec->local_port;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  t->read_ev = event_new(c->base, fd, EV_READ | EV_PERSIST, tcp_read_cb, t);
  t->write_ev = event_new(c->base, fd, EV_WRITE | EV_PERSIST, tcp_write_cb, t);
  if (!t->read_ev || !t->write_ev) {
    release(t);
    return NULL;
  }
  return t;
}

void nt_tunnel_start(nt_tunnel *t, nt_conn *conn) {
  Natter__StreamOpen open = NATTER__STREAM_OPEN__INIT;
  char what[NT_NAME_MAX + NT_HOST_MAX + 16];

  if (nt_conn_open_stream(conn, &t->stream) != 0) {
    describe(t, what, sizeof(what));
    nt_client_emit(t->client, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_CLOSED,
                   t->peer,
                   "local port %u -> %s: too many streams open to the peer",
                   t->local_port, what);
    t->stream = NULL;
    tunnel_end(t, 1);
    return;
  }
  nt_stream_set_callbacks(t->stream, &tunnel_stream_callbacks, t);
  open.host = t->host;
  open.port = t->port;
  t->state = T_WAIT_RESULT;
  nt_wire_write_msg(t->stream, &open.base);
}

void nt_tunnel_fail(nt_tunnel *t, const char *why) {
  char what[NT_NAME_MAX + NT_HOST_MAX + 16];
  describe(t, what, sizeof(what));
  nt_debug(&t->client->log, "local port %u -> %s: closed (%s)", t->local_port,
           what, why);
  tunnel_end(t, 1);
}

void nt_tunnel_accept_stream(natter_client *c, nt_peer *peer,
                             nt_stream *stream) {
  nt_tunnel *t = tunnel_alloc(c);
  if (!t) {
    nt_stream_reset(stream, NATTER__CODE__INTERNAL);
    return;
  }
  t->stream = stream;
  t->state = T_WAIT_OPEN;
  snprintf(t->peer, sizeof(t->peer), "%s", peer->name);
  nt_stream_set_callbacks(stream, &tunnel_stream_callbacks, t);
}

void nt_tunnel_free_all(natter_client *c) {
  while (c->tunnels) {
    nt_tunnel *t = c->tunnels;
    if (t->stream) {
      nt_stream_set_callbacks(t->stream, &(nt_stream_callbacks){0}, NULL);
    }
    release(t);
  }
}
