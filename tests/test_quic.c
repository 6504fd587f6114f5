/* The QUIC layer in process: two endpoints on 127.0.0.1 (port 0) in one
 * event loop, each with its own ephemeral identity. Handshake and key
 * pinning both ways, stream echo with real backpressure, bounded
 * buffering, resets, close reasons, the handshake timeout, raw datagrams
 * next to QUIC, many concurrent streams, endpoint free, idle timeout and
 * keepalive. Loopback only; every wait has a deadline and its outcome is
 * CHECKed. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "quic/endpoint.h"
#include "trust/tls.h"
/* Looked inside in a few places only: the backpressure test waits until
 * the sender's bytes are all acknowledged, the raw-datagram test reads the
 * endpoint's drop counter and the connection IDs a connection answers to,
 * and the opt-in known-bug test swaps the server's endpoint callbacks. */
#include "quic/quic_internal.h"
#include "test.h"
#include "test_loop.h"

#define DEADLINE_MS 10000
#define MIB (1024 * 1024)
#define MAX_STREAMS 64
/* What ngtcp2 is configured with in conn.c: the receive window a stream
 * starts with, and the most it may grow to. */
#define STREAM_RX_WINDOW_INITIAL (1 * MIB)
#define STREAM_RX_WINDOW_MAX (4 * MIB)

/* ---- loop helpers ---- */


static int never(void *arg) {
  (void)arg;
  return 0;
}

/* Runs |base| for |ms|, whatever happens. */
static void run_for(struct event_base *base, int ms) {
  run_until(base, never, NULL, ms);
}

static uint64_t now_ms(void) {
  return nt_monotonic_ns() / 1000000u;
}

/* The byte at |off| of the stream seeded |seed|: position-dependent, so a
 * lost, repeated or reordered byte shows anywhere. */
static uint8_t pat(uint32_t seed, uint64_t off) {
  uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 40);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  return (uint8_t)(x >> 56);
}

/* ---- fixture: two endpoints, a client and a server connection ---- */

struct fixture;

typedef struct side {
  struct fixture *fx;
  nt_conn *conn;
  int established;
  int closed;
  nt_close_reason reason;
  uint64_t app_code;
  char message[300];
  uint64_t t_established, t_closed; /* ms */
  uint8_t peer_fp[NT_FINGERPRINT_LEN];
  int have_peer_fp;
  int is_established_in_cb; /* nt_conn_is_established inside established */
  int streams_open_at_close; /* our streams not yet closed at closed() */
  int unexpected_streams;    /* peer-opened streams on the client side */
  /* QUIC DATAGRAM frames received (RFC 9221) */
  int qdgrams;
  size_t qdgram_bytes, qdgram_bad;
} side;

typedef enum srv_mode {
  SRV_ECHO, /* echo everything back, consuming only what was queued */
  SRV_SINK  /* check and consume (unless holding), FIN back on FIN */
} srv_mode;

typedef struct strm {
  struct fixture *fx;
  nt_stream *s;
  int64_t id;
  uint32_t seed;
  /* client: what to send */
  uint64_t total, written;
  int auto_fin, fin_sent, stop_writing;
  uint64_t room_zero;   /* times the writer found no room */
  /* both: what arrived, checked against the pattern */
  uint64_t received, bad, first_bad;
  int fin_rcvd, data_after_fin;
  /* server */
  srv_mode mode;
  uint8_t *pend; /* received, not yet echoed (and so not consumed) */
  size_t off, len, cap, max_pend;
  uint64_t echoed, unconsumed;
  uint64_t credited; /* unconsumed bytes handed back from closed() */
  /* end */
  int closed, reset;
  uint64_t code;
} strm;

typedef struct fixture {
  struct event_base *base;
  nt_identity *id_cli, *id_srv;
  nt_endpoint *ep_cli, *ep_srv;
  struct sockaddr_in addr_cli, addr_srv;
  side cli, srv;
  const uint8_t *srv_expect; /* accept: params->expected_fp */
  int accepts;
  srv_mode mode; /* for server streams opened from now on */
  int hold;      /* SRV_SINK streams do not consume while set */
  int credit_on_close; /* server streams consume what is left in closed() */
  strm cs[MAX_STREAMS];
  int ncs;
  strm ss[MAX_STREAMS];
  int nss, extra_srv_streams;
  /* raw datagrams, per receiving endpoint */
  int dgrams_cli, dgrams_srv;
  uint8_t dgram[128];
  size_t dgram_len;
  struct sockaddr_storage dgram_from;
  socklen_t dgram_fromlen;
  int dgram_sock;           /* the socket the last datagram came in on */
  uint16_t dgram_ports[16]; /* source ports of the server's datagrams */
} fixture;

static void set_addr(struct sockaddr_in *sin, uint16_t port) {
  memset(sin, 0, sizeof(*sin));
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin->sin_port = htons(port);
}

/* ---- connection callbacks (user_data: the side) ---- */

static void on_established(nt_conn *conn, void *ud) {
  side *sd = ud;
  sd->established++;
  sd->conn = conn;
  sd->t_established = now_ms();
  sd->is_established_in_cb = nt_conn_is_established(conn);
  const uint8_t *fp = nt_conn_peer_fingerprint(conn);
  if (fp) {
    memcpy(sd->peer_fp, fp, NT_FINGERPRINT_LEN);
    sd->have_peer_fp = 1;
  }
}

static int side_open_streams(const side *sd) {
  const fixture *fx = sd->fx;
  const strm *arr = sd == &fx->cli ? fx->cs : fx->ss;
  int n = sd == &fx->cli ? fx->ncs : fx->nss, open = 0;
  for (int i = 0; i < n; i++) {
    open += arr[i].s != NULL && !arr[i].closed;
  }
  return open;
}

static void on_closed(nt_conn *conn, nt_close_reason reason,
                      uint64_t app_code, const char *message, void *ud) {
  side *sd = ud;
  (void)conn;
  sd->closed++;
  sd->reason = reason;
  sd->app_code = app_code;
  snprintf(sd->message, sizeof(sd->message), "%s", message ? message : "");
  sd->t_closed = now_ms();
  sd->streams_open_at_close = side_open_streams(sd);
  sd->conn = NULL;
}

static void srv_stream_opened(nt_conn *conn, nt_stream *s, void *ud);
static void cli_stream_opened(nt_conn *conn, nt_stream *s, void *ud) {
  side *sd = ud;
  (void)conn;
  sd->unexpected_streams++;
  nt_stream_reset(s, 99);
}

/* A DATAGRAM frame: "D" then bytes equal to its length's low byte. */
static void on_qdgram(nt_conn *conn, const uint8_t *data, size_t len,
                      void *ud) {
  side *sd = ud;
  (void)conn;
  sd->qdgrams++;
  sd->qdgram_bytes += len;
  if (len < 1 || data[0] != 'D') {
    sd->qdgram_bad++;
    return;
  }
  for (size_t i = 1; i < len; i++) {
    sd->qdgram_bad += data[i] != (uint8_t)len;
  }
}

static const nt_conn_callbacks cli_conn_cbs = {
    on_established, on_closed, cli_stream_opened, NULL, NULL, NULL, on_qdgram};
static const nt_conn_callbacks srv_conn_cbs = {
    on_established, on_closed, srv_stream_opened, NULL, NULL, NULL, on_qdgram};

/* ---- stream callbacks (user_data: the strm) ---- */

static void check_bytes(strm *t, const uint8_t *data, size_t len, int fin) {
  if (t->fin_rcvd && (len > 0 || fin)) {
    t->data_after_fin++;
  }
  for (size_t i = 0; i < len; i++) {
    if (data[i] != pat(t->seed, t->received + i)) {
      if (t->bad == 0) {
        t->first_bad = t->received + i;
      }
      t->bad++;
    }
  }
  t->received += len;
  if (fin) {
    t->fin_rcvd++;
  }
}

static void on_stream_closed(nt_stream *s, int reset, uint64_t app_code,
                             void *ud) {
  strm *t = ud;
  (void)s;
  t->closed++;
  t->reset = reset;
  t->code = app_code;
  t->s = NULL;
}

/* Client: writes the pattern while there is room, then FIN. */
static void cli_pump(strm *t) {
  uint8_t buf[16384];
  while (t->s && !t->stop_writing && t->written < t->total) {
    size_t room = nt_stream_send_room(t->s);
    if (room == 0) {
      t->room_zero++;
      return; /* send_room() brings us back */
    }
    size_t n = sizeof(buf);
    if (n > room) {
      n = room;
    }
    if (n > t->total - t->written) {
      n = (size_t)(t->total - t->written);
    }
    for (size_t i = 0; i < n; i++) {
      buf[i] = pat(t->seed, t->written + i);
    }
    if (nt_stream_write(t->s, buf, n) != 0) {
      t->stop_writing = 1;
      return;
    }
    t->written += n;
  }
  if (t->s && t->auto_fin && !t->fin_sent && t->written == t->total) {
    nt_stream_shutdown_write(t->s);
    t->fin_sent = 1;
  }
}

static void cli_recv(nt_stream *s, const uint8_t *data, size_t len, int fin,
                     void *ud) {
  check_bytes(ud, data, len, fin);
  nt_stream_consume(s, len);
}

static void cli_room(nt_stream *s, void *ud) {
  (void)s;
  cli_pump(ud);
}

static const nt_stream_callbacks cli_stream_cbs = {cli_recv, cli_room,
                                                   on_stream_closed};

/* Server echo: queue what fits in the send room, consume exactly that; the
 * rest waits here unconsumed, so the client stays throttled. */
static void echo_pump(strm *t) {
  if (!t->s) {
    return;
  }
  if (t->len > 0) {
    size_t room = nt_stream_send_room(t->s);
    size_t n = t->len < room ? t->len : room;
    if (n > 0) {
      if (nt_stream_write(t->s, t->pend + t->off, n) != 0) {
        return;
      }
      nt_stream_consume(t->s, n);
      t->off += n;
      t->len -= n;
      t->echoed += n;
    }
  }
  if (t->len == 0 && t->fin_rcvd && !t->fin_sent) {
    nt_stream_shutdown_write(t->s);
    t->fin_sent = 1;
  }
}

static void pend_append(strm *t, const uint8_t *data, size_t len) {
  if (len == 0) {
    return; /* a bare FIN may come with data == NULL */
  }
  if (t->off > 0 && t->off + t->len + len > t->cap) {
    memmove(t->pend, t->pend + t->off, t->len);
    t->off = 0;
  }
  if (t->len + len > t->cap) {
    size_t cap = t->cap ? t->cap : 65536;
    while (cap < t->len + len) {
      cap *= 2;
    }
    uint8_t *p = realloc(t->pend, cap);
    if (!p) {
      abort();
    }
    t->pend = p;
    t->cap = cap;
  }
  memcpy(t->pend + t->off + t->len, data, len);
  t->len += len;
  if (t->len > t->max_pend) {
    t->max_pend = t->len;
  }
}

static void srv_recv(nt_stream *s, const uint8_t *data, size_t len, int fin,
                     void *ud) {
  strm *t = ud;
  check_bytes(t, data, len, fin);
  if (t->mode == SRV_ECHO) {
    pend_append(t, data, len);
    echo_pump(t);
    return;
  }
  t->unconsumed += len;
  if (t->unconsumed > t->max_pend) {
    t->max_pend = (size_t)t->unconsumed;
  }
  if (!t->fx->hold) {
    nt_stream_consume(s, (size_t)t->unconsumed);
    t->unconsumed = 0;
  }
  if (fin && !t->fin_sent) {
    nt_stream_shutdown_write(s);
    t->fin_sent = 1;
  }
}

static void srv_room(nt_stream *s, void *ud) {
  strm *t = ud;
  (void)s;
  if (t->mode == SRV_ECHO) {
    echo_pump(t);
  }
}

/* A server stream's end: with credit_on_close, the bytes it will never
 * read are consumed from closed(), which still returns their
 * connection-level credit (the stream's own window is gone). */
static void srv_stream_closed(nt_stream *s, int reset, uint64_t app_code,
                              void *ud) {
  strm *t = ud;
  if (t->fx->credit_on_close && t->unconsumed > 0) {
    nt_stream_consume(s, (size_t)t->unconsumed);
    t->credited += t->unconsumed;
    t->unconsumed = 0;
  }
  on_stream_closed(s, reset, app_code, ud);
}

static const nt_stream_callbacks srv_stream_cbs = {srv_recv, srv_room,
                                                   srv_stream_closed};

static void srv_stream_opened(nt_conn *conn, nt_stream *s, void *ud) {
  side *sd = ud;
  fixture *fx = sd->fx;
  (void)conn;
  if (fx->nss >= MAX_STREAMS) {
    fx->extra_srv_streams++;
    nt_stream_reset(s, 98);
    return;
  }
  strm *t = &fx->ss[fx->nss++];
  memset(t, 0, sizeof(*t));
  t->fx = fx;
  t->s = s;
  t->id = nt_stream_id(s);
  t->seed = (uint32_t)t->id;
  t->mode = fx->mode;
  nt_stream_set_callbacks(s, &srv_stream_cbs, t);
}

/* Opens a client stream sending |total| bytes (FIN after them when
 * |fin|); NULL when the connection refuses. */
static strm *cli_open(fixture *fx, uint64_t total, int fin) {
  nt_stream *s;
  if (fx->ncs >= MAX_STREAMS || !fx->cli.conn ||
      nt_conn_open_stream(fx->cli.conn, &s) != 0) {
    return NULL;
  }
  strm *t = &fx->cs[fx->ncs++];
  memset(t, 0, sizeof(*t));
  t->fx = fx;
  t->s = s;
  t->id = nt_stream_id(s);
  t->seed = (uint32_t)t->id;
  t->total = total;
  t->auto_fin = fin;
  nt_stream_set_callbacks(s, &cli_stream_cbs, t);
  cli_pump(t);
  return t;
}

/* The server stream with the same ID as client stream |t|, or NULL. */
static strm *srv_peer(fixture *fx, const strm *t) {
  for (int i = 0; i < fx->nss; i++) {
    if (fx->ss[i].id == t->id) {
      return &fx->ss[i];
    }
  }
  return NULL;
}

/* ---- endpoint callbacks (user_data: the fixture) ---- */

static int on_accept(nt_endpoint *ep, const struct sockaddr *from,
                     nt_accept_params *params, void *ud) {
  fixture *fx = ud;
  (void)from;
  if (ep != fx->ep_srv) {
    return 0; /* the client endpoint takes no connections */
  }
  fx->accepts++;
  params->expected_fp = fx->srv_expect;
  params->callbacks = &srv_conn_cbs;
  params->user_data = &fx->srv;
  return 1;
}

static void on_datagram(nt_endpoint *ep, const uint8_t *data, size_t len,
                        const struct sockaddr *from, socklen_t fromlen,
                        int sock, void *ud) {
  fixture *fx = ud;
  fx->dgram_sock = sock;
  if (ep == fx->ep_srv) {
    if (fx->dgrams_srv < 16 && from->sa_family == AF_INET) {
      fx->dgram_ports[fx->dgrams_srv] =
          ntohs(((const struct sockaddr_in *)from)->sin_port);
    }
    fx->dgrams_srv++;
  } else {
    fx->dgrams_cli++;
  }
  fx->dgram_len = len < sizeof(fx->dgram) ? len : sizeof(fx->dgram);
  memcpy(fx->dgram, data, fx->dgram_len);
  memset(&fx->dgram_from, 0, sizeof(fx->dgram_from));
  memcpy(&fx->dgram_from, from,
         fromlen < sizeof(fx->dgram_from) ? fromlen : sizeof(fx->dgram_from));
  fx->dgram_fromlen = fromlen;
}

static const nt_endpoint_callbacks ep_cbs = {on_accept, on_datagram, NULL,
                                              NULL, NULL};
static const nt_log quiet_log = {NULL, NATTER_LOG_ERROR, NULL};

/* Two endpoints with these timeouts (ms); keepalive on the client only. */
static int fixture_init_cfg(fixture *fx, uint64_t handshake_timeout_ms,
                            uint64_t idle_timeout_ms, uint64_t keepalive_ms) {
  char err[256];
  nt_endpoint_config cfg;

  memset(fx, 0, sizeof(*fx));
  fx->cli.fx = fx;
  fx->srv.fx = fx;
  fx->base = event_base_new();
  if (!fx->base) {
    return -1;
  }
  if (nt_identity_new_ephemeral(&fx->id_cli, err, sizeof(err)) != 0 ||
      nt_identity_new_ephemeral(&fx->id_srv, err, sizeof(err)) != 0) {
    fprintf(stderr, "identity: %s\n", err);
    return -1;
  }
  memset(&cfg, 0, sizeof(cfg));
  set_addr((struct sockaddr_in *)&cfg.bind.ss, 0);
  cfg.bind.len = sizeof(struct sockaddr_in);
  cfg.callbacks = &ep_cbs;
  cfg.user_data = fx;
  cfg.log = &quiet_log;
  cfg.handshake_timeout_ms = handshake_timeout_ms;
  cfg.idle_timeout_ms = idle_timeout_ms;
  cfg.keepalive_ms = keepalive_ms;
  cfg.identity = fx->id_cli;
  if (nt_endpoint_new(&fx->ep_cli, fx->base, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "endpoint: %s\n", err);
    return -1;
  }
  cfg.keepalive_ms = 0;
  cfg.identity = fx->id_srv;
  if (nt_endpoint_new(&fx->ep_srv, fx->base, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "endpoint: %s\n", err);
    return -1;
  }
  set_addr(&fx->addr_cli, nt_endpoint_port(fx->ep_cli));
  set_addr(&fx->addr_srv, nt_endpoint_port(fx->ep_srv));
  fx->mode = SRV_ECHO;
  return 0;
}

static int fixture_init(fixture *fx, uint64_t handshake_timeout_ms) {
  return fixture_init_cfg(fx, handshake_timeout_ms, 30000, 0);
}

static void fixture_free(fixture *fx) {
  /* Invariants of every test: one connection accepted at most, closed()
   * at most once per side, no stream opened toward the client. */
  CHECK(fx->accepts <= 1);
  CHECK(fx->cli.closed <= 1 && fx->srv.closed <= 1);
  CHECK(fx->cli.unexpected_streams == 0);
  nt_endpoint_free(fx->ep_cli);
  nt_endpoint_free(fx->ep_srv);
  for (int i = 0; i < MAX_STREAMS; i++) {
    free(fx->cs[i].pend);
    free(fx->ss[i].pend);
  }
  nt_identity_free(fx->id_cli);
  nt_identity_free(fx->id_srv);
  if (fx->base) {
    event_base_free(fx->base);
  }
}

static int connect_to_server(fixture *fx, const uint8_t *expect) {
  return nt_endpoint_connect(fx->ep_cli, (struct sockaddr *)&fx->addr_srv,
                             sizeof(fx->addr_srv), expect, &cli_conn_cbs,
                             &fx->cli, &fx->cli.conn);
}

static int both_established(void *arg) {
  fixture *fx = arg;
  return fx->cli.established && fx->srv.established;
}

static int both_closed(void *arg) {
  fixture *fx = arg;
  return fx->cli.closed && fx->srv.closed;
}

static int cli_closed(void *arg) {
  return ((fixture *)arg)->cli.closed > 0;
}

/* Sets up a fixture with a connection pinned to the right keys both ways;
 * 0 when both sides report established within the deadline. */
static int establish(fixture *fx) {
  if (fixture_init(fx, 5000) != 0) {
    return -1;
  }
  fx->srv_expect = nt_identity_fingerprint(fx->id_cli);
  if (connect_to_server(fx, nt_identity_fingerprint(fx->id_srv)) != 0) {
    return -1;
  }
  return run_until(fx->base, both_established, fx, DEADLINE_MS) ? 0 : -1;
}

/* Every client stream and its server twin closed. */
static int all_streams_closed(void *arg) {
  fixture *fx = arg;
  if (fx->nss < fx->ncs) {
    return 0;
  }
  for (int i = 0; i < fx->ncs; i++) {
    if (!fx->cs[i].closed) {
      return 0;
    }
  }
  for (int i = 0; i < fx->nss; i++) {
    if (!fx->ss[i].closed) {
      return 0;
    }
  }
  return 1;
}

/* Checks a finished echo of client stream |t| end to end. */
static void check_echoed(fixture *fx, const strm *t) {
  const strm *p = srv_peer(fx, t);
  CHECK(t->written == t->total);
  CHECK(t->fin_sent);
  CHECK(t->received == t->total);
  CHECK(t->bad == 0);
  CHECK(t->fin_rcvd == 1);
  CHECK(t->data_after_fin == 0);
  CHECK(t->closed == 1);
  CHECK(t->reset == 0);
  CHECK(p != NULL);
  if (!p) {
    return;
  }
  CHECK(p->received == t->total);
  CHECK(p->bad == 0);
  CHECK(p->echoed == t->total);
  CHECK(p->fin_rcvd == 1);
  CHECK(p->fin_sent);
  CHECK(p->closed == 1);
  CHECK(p->reset == 0);
  if (t->bad || p->bad) {
    fprintf(stderr, "stream %lld: first bad byte at %llu (client) %llu "
            "(server)\n", (long long)t->id, (unsigned long long)t->first_bad,
            (unsigned long long)p->first_bad);
  }
}

/* ---- 1. handshake ---- */

static int srv_qdgrams_10(void *arg) {
  return ((fixture *)arg)->srv.qdgrams >= 10;
}

static int cli_qdgram(void *arg) {
  return ((fixture *)arg)->cli.qdgrams >= 1;
}

static int queue_drained(void *arg) {
  fixture *fx = arg;
  return fx->srv.qdgrams + (int)nt_conn_datagrams_dropped(fx->cli.conn) >=
         10 + NT_DGRAM_QUEUE_MAX;
}

/* QUIC DATAGRAM frames: whole, both ways; one larger than a packet is
 * refused at once; the queue is bounded. */
static void test_quic_datagrams(void) {
  fixture fx;
  static uint8_t buf[70000];
  CHECK(establish(&fx) == 0);
  if (!fx.cli.conn || !fx.srv.conn) {
    fixture_free(&fx);
    return;
  }
  size_t max = nt_conn_datagram_max(fx.cli.conn);
  CHECK(max > 1400); /* loopback: far more than one Ethernet packet */
  CHECK(max < 65507);
  const uint8_t d = 'D';
  for (size_t i = 0; i < 10; i++) {
    size_t len = 1000 + i;
    memset(buf, (uint8_t)len, len);
    CHECK(nt_conn_send_datagram(fx.cli.conn, &d, 1, buf, len - 1) == 0);
  }
  CHECK(run_until(fx.base, srv_qdgrams_10, &fx, DEADLINE_MS));
  CHECK(fx.srv.qdgram_bad == 0);
  memset(buf, 7, 7);
  CHECK(nt_conn_send_datagram(fx.srv.conn, &d, 1, buf, 6) == 0);
  CHECK(run_until(fx.base, cli_qdgram, &fx, DEADLINE_MS));
  CHECK(fx.cli.qdgram_bad == 0 && fx.cli.qdgram_bytes == 7);
  /* Larger than a packet: refused, never split. */
  CHECK(nt_conn_send_datagram(fx.cli.conn, &d, 1, buf, max) ==
        NT_DGRAM_TOO_BIG);
  CHECK(nt_conn_send_datagram(fx.cli.conn, NULL, 0, buf, max) == 0);
  /* Without the loop, the queue fills (the max-size one holds a slot)
   * and refuses the rest. */
  memset(buf, 9, 9);
  int full = 0;
  for (int i = 0; i < NT_DGRAM_QUEUE_MAX + 1; i++) {
    full += nt_conn_send_datagram(fx.cli.conn, &d, 1, buf, 8) ==
            NT_DGRAM_FULL;
  }
  CHECK(full == 2);
  /* Every queued one is delivered or counted as dropped. */
  CHECK(run_until(fx.base, queue_drained, &fx, DEADLINE_MS));
  CHECK(fx.srv.qdgram_bad <= 1); /* the max-size one has no 'D' */
  fixture_free(&fx);
}

static void test_handshake(void) {
  fixture fx;
  CHECK(fixture_init(&fx, 5000) == 0);
  if (!fx.ep_srv) {
    fixture_free(&fx);
    return;
  }
  const uint8_t *fp_cli = nt_identity_fingerprint(fx.id_cli);
  const uint8_t *fp_srv = nt_identity_fingerprint(fx.id_srv);
  CHECK(memcmp(fp_cli, fp_srv, NT_FINGERPRINT_LEN) != 0);
  fx.srv_expect = fp_cli;
  CHECK(connect_to_server(&fx, fp_srv) == 0);
  CHECK(fx.cli.conn != NULL);
  if (!fx.cli.conn) {
    fixture_free(&fx);
    return;
  }
  CHECK(nt_conn_peer_fingerprint(fx.cli.conn) == NULL);
  CHECK(!nt_conn_is_established(fx.cli.conn));

  CHECK(run_until(fx.base, both_established, &fx, DEADLINE_MS));
  CHECK(fx.cli.established == 1);
  CHECK(fx.srv.established == 1);
  CHECK(fx.accepts == 1);
  CHECK(fx.cli.is_established_in_cb);
  CHECK(fx.srv.is_established_in_cb);
  CHECK(fx.cli.have_peer_fp &&
        memcmp(fx.cli.peer_fp, fp_srv, NT_FINGERPRINT_LEN) == 0);
  CHECK(fx.srv.have_peer_fp &&
        memcmp(fx.srv.peer_fp, fp_cli, NT_FINGERPRINT_LEN) == 0);
  if (fx.cli.conn && fx.srv.conn) {
    const uint8_t *a = nt_conn_peer_fingerprint(fx.cli.conn);
    const uint8_t *b = nt_conn_peer_fingerprint(fx.srv.conn);
    CHECK(a && memcmp(a, fp_srv, NT_FINGERPRINT_LEN) == 0);
    CHECK(b && memcmp(b, fp_cli, NT_FINGERPRINT_LEN) == 0);
    CHECK(nt_addr_port(nt_conn_remote_addr(fx.cli.conn)) ==
          nt_endpoint_port(fx.ep_srv));
    CHECK(nt_addr_port(nt_conn_remote_addr(fx.srv.conn)) ==
          nt_endpoint_port(fx.ep_cli));
    /* The handshake validated each side's address (what a broker
     * introduces a client at; test_probe_budget spoofs it). */
    CHECK(nt_addr_equal(nt_conn_validated_addr(fx.cli.conn),
                        nt_conn_remote_addr(fx.cli.conn)));
    CHECK(nt_addr_equal(nt_conn_validated_addr(fx.srv.conn),
                        nt_conn_remote_addr(fx.srv.conn)));
  }
  /* And it stays up. */
  run_for(fx.base, 300);
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
  CHECK(fx.cli.conn && nt_conn_is_established(fx.cli.conn));
  CHECK(fx.srv.conn && nt_conn_is_established(fx.srv.conn));
  fixture_free(&fx);
}

/* NULL expected keys: any key goes, and each side reads the other's after
 * the handshake. */
static void test_handshake_any_key(void) {
  fixture fx;
  CHECK(fixture_init(&fx, 5000) == 0);
  if (!fx.ep_srv) {
    fixture_free(&fx);
    return;
  }
  fx.srv_expect = NULL;
  CHECK(connect_to_server(&fx, NULL) == 0);
  CHECK(run_until(fx.base, both_established, &fx, DEADLINE_MS));
  CHECK(fx.cli.have_peer_fp &&
        memcmp(fx.cli.peer_fp, nt_identity_fingerprint(fx.id_srv),
               NT_FINGERPRINT_LEN) == 0);
  CHECK(fx.srv.have_peer_fp &&
        memcmp(fx.srv.peer_fp, nt_identity_fingerprint(fx.id_cli),
               NT_FINGERPRINT_LEN) == 0);
  fixture_free(&fx);
}

/* ---- 2. key mismatch ---- */

static void test_key_mismatch_client(void) {
  fixture fx;
  uint8_t wrong[NT_FINGERPRINT_LEN];
  CHECK(fixture_init(&fx, 5000) == 0);
  if (!fx.ep_srv) {
    fixture_free(&fx);
    return;
  }
  /* The server's key but one bit off. */
  memcpy(wrong, nt_identity_fingerprint(fx.id_srv), sizeof(wrong));
  wrong[NT_FINGERPRINT_LEN - 1] ^= 0x01;
  fx.srv_expect = nt_identity_fingerprint(fx.id_cli);
  uint64_t t0 = now_ms();
  CHECK(connect_to_server(&fx, wrong) == 0);
  CHECK(run_until(fx.base, both_closed, &fx, DEADLINE_MS));
  CHECK(fx.cli.closed == 1);
  CHECK(fx.cli.reason == NT_CLOSE_KEY_MISMATCH);
  CHECK(fx.cli.established == 0);
  CHECK(fx.srv.established == 0);
  CHECK(fx.srv.closed == 1);
  /* The server learns from the client's CONNECTION_CLOSE, not from its own
   * handshake timeout (5 s). */
  CHECK(fx.srv.reason == NT_CLOSE_PEER);
  CHECK(fx.cli.closed && fx.cli.t_closed - t0 < 3000);
  CHECK(fx.srv.closed && fx.srv.t_closed - t0 < 3000);
  /* Nothing more happens afterwards (closed exactly once). */
  run_for(fx.base, 200);
  CHECK(fx.cli.closed == 1 && fx.srv.closed == 1);
  fixture_free(&fx);
}

static void test_key_mismatch_server(void) {
  fixture fx;
  uint8_t wrong[NT_FINGERPRINT_LEN];
  CHECK(fixture_init(&fx, 5000) == 0);
  if (!fx.ep_srv) {
    fixture_free(&fx);
    return;
  }
  memcpy(wrong, nt_identity_fingerprint(fx.id_cli), sizeof(wrong));
  wrong[0] ^= 0x80;
  fx.srv_expect = wrong;
  uint64_t t0 = now_ms();
  CHECK(connect_to_server(&fx, nt_identity_fingerprint(fx.id_srv)) == 0);
  CHECK(run_until(fx.base, both_closed, &fx, DEADLINE_MS));
  CHECK(fx.accepts == 1);
  CHECK(fx.srv.closed == 1);
  CHECK(fx.srv.reason == NT_CLOSE_KEY_MISMATCH);
  CHECK(fx.srv.established == 0);
  /* The client may have finished its half of the handshake (it sends its
   * certificate last), but the server's refusal closes it promptly: well
   * before the 5 s handshake timeout or the 30 s idle timeout. */
  CHECK(fx.cli.closed == 1);
  CHECK(fx.cli.reason != NT_CLOSE_HANDSHAKE_TIMEOUT &&
        fx.cli.reason != NT_CLOSE_IDLE);
  CHECK(fx.cli.closed && fx.cli.t_closed - t0 < 3000);
  if (fx.cli.established) {
    CHECK(fx.cli.t_closed - fx.cli.t_established < 1000);
  }
  if (getenv("NT_TEST_VERBOSE")) {
    fprintf(stderr, "  server-side mismatch: client established=%d "
            "reason=%d code=0x%llx msg=\"%s\"\n", fx.cli.established,
            (int)fx.cli.reason, (unsigned long long)fx.cli.app_code,
            fx.cli.message);
  }
  fixture_free(&fx);
}

/* ---- 3. stream echo with backpressure ---- */

static int first_stream_done(void *arg) {
  return all_streams_closed(arg);
}

static void test_stream_echo(void) {
  fixture fx;
  CHECK(establish(&fx) == 0);
  strm *t = fx.cli.conn ? cli_open(&fx, 5 * MIB, 1) : NULL;
  CHECK(t != NULL);
  if (t) {
    CHECK(run_until(fx.base, first_stream_done, &fx, 20000));
    CHECK(fx.nss == 1);
    check_echoed(&fx, t);
    /* The client had to wait for room: the echo really pushed back. */
    CHECK(t->room_zero > 0);
    /* Flow control bounds what the echo holds unconsumed. */
    CHECK(fx.nss == 1 && fx.ss[0].max_pend > 0 &&
          fx.ss[0].max_pend <= STREAM_RX_WINDOW_MAX);
  }
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
  fixture_free(&fx);
}

/* ---- 4. backpressure bound ---- */

/* The server's window is full, the sender has no room, and everything it
 * sent has been acknowledged (so no ack in flight can free room). */
static int window_full(void *arg) {
  fixture *fx = arg;
  const strm *t = &fx->cs[0];
  return fx->nss == 1 && fx->ss[0].received >= STREAM_RX_WINDOW_INITIAL &&
         t->s && nt_stream_send_room(t->s) == 0 &&
         t->s->sb.acked == t->s->sb.sent;
}

typedef struct sampler {
  const strm *t;
  size_t max_room;
  int samples, gone;
} sampler;

static void sample_room(evutil_socket_t fd, short what, void *arg) {
  sampler *sp = arg;
  (void)fd;
  (void)what;
  if (!sp->t->s) {
    sp->gone++;
    return;
  }
  size_t room = nt_stream_send_room(sp->t->s);
  if (room > sp->max_room) {
    sp->max_room = room;
  }
  sp->samples++;
}

static void test_backpressure_bound(void) {
  fixture fx;
  const uint64_t total = 4 * MIB;
  CHECK(establish(&fx) == 0);
  fx.mode = SRV_SINK;
  fx.hold = 1;
  strm *t = fx.cli.conn ? cli_open(&fx, total, 1) : NULL;
  CHECK(t != NULL);
  if (!t) {
    fixture_free(&fx);
    return;
  }
  CHECK(run_until(fx.base, window_full, &fx, DEADLINE_MS));
  CHECK(fx.nss == 1);
  if (fx.nss != 1) {
    fixture_free(&fx);
    return;
  }
  strm *p = &fx.ss[0];
  uint64_t written = t->written, received = p->received;

  /* A second of loop time with the server not consuming: no room opens. */
  sampler sp = {t, 0, 0, 0};
  struct event *ev = event_new(fx.base, -1, EV_PERSIST, sample_room, &sp);
  struct timeval every = {0, 10000};
  event_add(ev, &every);
  run_for(fx.base, 1000);
  event_free(ev);
  CHECK(sp.samples >= 20);
  CHECK(sp.gone == 0);
  CHECK(sp.max_room == 0);
  CHECK(t->s && nt_stream_send_room(t->s) == 0);
  CHECK(t->written == written);
  CHECK(p->received == received);
  if (getenv("NT_TEST_VERBOSE")) {
    fprintf(stderr, "  blocked: written %llu -> %llu, received %llu -> %llu\n",
            (unsigned long long)written, (unsigned long long)t->written,
            (unsigned long long)received, (unsigned long long)p->received);
  }
  /* Bounded: the peer holds at most its stream window unconsumed, and the
   * sender at most its send window queued on top. */
  CHECK(p->received <= STREAM_RX_WINDOW_INITIAL);
  CHECK(p->unconsumed == p->received);
  CHECK(t->written <= STREAM_RX_WINDOW_INITIAL + NT_STREAM_SEND_WINDOW);
  CHECK(t->written < total);
  CHECK(p->fin_rcvd == 0);

  /* Now the server consumes everything and the transfer completes. */
  fx.hold = 0;
  if (p->s) {
    nt_stream_consume(p->s, (size_t)p->unconsumed);
    p->unconsumed = 0;
  }
  CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));
  CHECK(t->written == total);
  CHECK(p->received == total);
  CHECK(p->bad == 0);
  CHECK(p->fin_rcvd == 1);
  CHECK(t->fin_rcvd == 1);
  CHECK(t->received == 0);
  CHECK(t->closed == 1 && t->reset == 0);
  CHECK(p->closed == 1 && p->reset == 0);
  fixture_free(&fx);
}

/* ---- 5. reset ---- */

static int srv_got_some(void *arg) {
  fixture *fx = arg;
  return fx->nss == 1 && fx->ss[0].received >= 256 * 1024;
}

static void test_reset(void) {
  fixture fx;
  const uint64_t total = 256ull * MIB; /* far more than will go */
  CHECK(establish(&fx) == 0);
  fx.mode = SRV_SINK;
  strm *t = fx.cli.conn ? cli_open(&fx, total, 0) : NULL;
  CHECK(t != NULL);
  if (!t) {
    fixture_free(&fx);
    return;
  }
  CHECK(run_until(fx.base, srv_got_some, &fx, DEADLINE_MS));
  CHECK(t->s != NULL);
  if (t->s) {
    t->stop_writing = 1;
    nt_stream_reset(t->s, 7);
  }
  CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));
  CHECK(fx.nss == 1);
  if (fx.nss == 1) {
    strm *p = &fx.ss[0];
    CHECK(p->closed == 1);
    CHECK(p->reset == 1);
    CHECK(p->code == 7);
    CHECK(p->fin_rcvd == 0);
    CHECK(p->received < total);
    CHECK(p->bad == 0);
  }
  CHECK(t->closed == 1);
  CHECK(t->reset == 1);
  CHECK(t->fin_rcvd == 0);

  /* The connection outlives the stream: a new one echoes fine. */
  fx.mode = SRV_ECHO;
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
  strm *t2 = cli_open(&fx, 100000, 1);
  CHECK(t2 != NULL);
  if (t2) {
    CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));
    check_echoed(&fx, t2);
  }
  fixture_free(&fx);
}

/* Aborted streams must not starve the connection: each round fills a
 * stream's window (1 MiB) without consuming, the client resets it, and
 * the server hands the bytes back from closed(). Six rounds are more than
 * the connection's 4 MiB window, and a full stream still goes through. */
static int last_srv_window_full(void *arg) {
  fixture *fx = arg;
  return fx->nss == fx->ncs && fx->nss > 0 &&
         fx->ss[fx->nss - 1].received >= STREAM_RX_WINDOW_INITIAL;
}

static void test_reset_returns_credit(void) {
  fixture fx;
  int rounds = 0;
  CHECK(establish(&fx) == 0);
  fx.mode = SRV_SINK;
  fx.hold = 1;
  fx.credit_on_close = 1;
  for (int r = 0; r < 6 && fx.cli.conn; r++) {
    strm *t = cli_open(&fx, 2 * MIB, 0);
    CHECK(t != NULL);
    if (!t) {
      break;
    }
    int full = run_until(fx.base, last_srv_window_full, &fx, DEADLINE_MS);
    CHECK(full);
    if (!full) {
      fprintf(stderr, "  round %d: stalled\n", r + 1);
      break;
    }
    t->stop_writing = 1;
    if (t->s) {
      nt_stream_reset(t->s, 5);
    }
    CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));
    const strm *p = srv_peer(&fx, t);
    CHECK(p && p->closed == 1 && p->reset == 1 && p->bad == 0);
    CHECK(p && p->credited == p->received && p->unconsumed == 0);
    rounds++;
  }
  CHECK(rounds == 6);
  fx.hold = 0;
  fx.mode = SRV_ECHO;
  strm *t = fx.cli.conn ? cli_open(&fx, 2 * MIB, 1) : NULL;
  CHECK(t != NULL);
  if (t) {
    CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));
    check_echoed(&fx, t);
  }
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
  fixture_free(&fx);
}

/* ---- 6. close with a reason ---- */

static int srv_stream_has_data(void *arg) {
  fixture *fx = arg;
  return fx->nss == 1 && fx->ss[0].received > 0;
}

static void test_close_reason(void) {
  /* Client closes, with a stream open on it. */
  {
    fixture fx;
    const char *why = "maintenance: back in 5 minutes";
    CHECK(establish(&fx) == 0);
    fx.mode = SRV_SINK;
    strm *t = fx.cli.conn ? cli_open(&fx, 1000, 0) : NULL;
    CHECK(t != NULL);
    CHECK(run_until(fx.base, srv_stream_has_data, &fx, DEADLINE_MS));
    if (fx.cli.conn) {
      nt_conn_close(fx.cli.conn, 42, why);
      CHECK(fx.cli.closed == 0); /* closed() comes from the loop */
      nt_conn_close(fx.cli.conn, 43, "twice");
    }
    CHECK(run_until(fx.base, both_closed, &fx, DEADLINE_MS));
    CHECK(fx.srv.closed == 1);
    CHECK(fx.srv.reason == NT_CLOSE_PEER);
    CHECK(fx.srv.app_code == 42);
    CHECK(strcmp(fx.srv.message, why) == 0);
    CHECK(fx.cli.closed == 1);
    CHECK(fx.cli.reason == NT_CLOSE_LOCAL);
    /* Streams end (as reset) before their connection. */
    CHECK(t && t->closed == 1 && t->reset == 1);
    CHECK(fx.nss == 1 && fx.ss[0].closed == 1 && fx.ss[0].reset == 1);
    CHECK(fx.cli.streams_open_at_close == 0);
    CHECK(fx.srv.streams_open_at_close == 0);
    run_for(fx.base, 100);
    CHECK(fx.cli.closed == 1 && fx.srv.closed == 1);
    fixture_free(&fx);
  }
  /* Server closes; the reason reaches the client as printable text. */
  {
    fixture fx;
    CHECK(establish(&fx) == 0);
    if (fx.srv.conn) {
      nt_conn_close(fx.srv.conn, 7, "bye\tnow");
    }
    CHECK(run_until(fx.base, both_closed, &fx, DEADLINE_MS));
    CHECK(fx.cli.reason == NT_CLOSE_PEER);
    CHECK(fx.cli.app_code == 7);
    CHECK(strcmp(fx.cli.message, "bye?now") == 0);
    CHECK(fx.srv.reason == NT_CLOSE_LOCAL);
    fixture_free(&fx);
  }
}

/* ---- 7. handshake timeout ---- */

static void test_handshake_timeout(void) {
  fixture fx;
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  CHECK(fixture_init(&fx, 1000) == 0);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  set_addr(&sin, 0);
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
  if (fd < 0 || !fx.ep_cli) {
    if (fd >= 0) {
      close(fd);
    }
    fixture_free(&fx);
    return;
  }
  uint64_t t0 = now_ms();
  CHECK(nt_endpoint_connect(fx.ep_cli, (struct sockaddr *)&sin, sizeof(sin),
                            NULL, &cli_conn_cbs, &fx.cli, &fx.cli.conn) == 0);
  CHECK(run_until(fx.base, cli_closed, &fx, DEADLINE_MS));
  uint64_t elapsed = fx.cli.t_closed - t0;
  CHECK(fx.cli.closed == 1);
  CHECK(fx.cli.reason == NT_CLOSE_HANDSHAKE_TIMEOUT);
  CHECK(fx.cli.established == 0);
  CHECK(elapsed >= 950);
  CHECK(elapsed <= 1000 + 500);
  if (elapsed < 950 || elapsed > 1500) {
    fprintf(stderr, "  handshake timeout after %llu ms\n",
            (unsigned long long)elapsed);
  }
  /* It did try: the silent socket holds padded Initials. */
  uint8_t buf[2048];
  ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  CHECK(n >= 1200);
  CHECK(n > 0 && (buf[0] & 0x80) != 0); /* long header */
  close(fd);
  fixture_free(&fx);
}

/* ---- 8. raw datagrams next to QUIC ---- */

static int srv_dgrams_reach(void *arg) {
  /* arg: {fixture, count} */
  void **a = arg;
  return ((fixture *)a[0])->dgrams_srv >= *(int *)a[1];
}

/* The probes sent after the targeted garbage, one to each endpoint. */
static int markers_back(void *arg) {
  fixture *fx = arg;
  return fx->dgrams_srv >= 3 && fx->dgrams_cli >= 1;
}

static int dropped_reach(void *arg) {
  void **a = arg;
  return ((fixture *)a[0])->ep_srv->dropped >= *(uint64_t *)a[1];
}

static void test_raw_datagrams(void) {
  fixture fx;
  CHECK(establish(&fx) == 0);
  if (!fx.cli.conn || !fx.srv.conn) {
    fixture_free(&fx);
    return;
  }
  int want;
  void *arg[2] = {&fx, &want};

  /* A 22-byte probe reaches the owner, from the sending endpoint. */
  uint8_t probe[22];
  for (size_t i = 0; i < sizeof(probe); i++) {
    probe[i] = (uint8_t)(0xC3 + 7 * i);
  }
  CHECK(nt_endpoint_sendto(fx.ep_cli, probe, sizeof(probe),
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) == 0);
  want = 1;
  CHECK(run_until(fx.base, srv_dgrams_reach, arg, DEADLINE_MS));
  CHECK(fx.dgrams_srv == 1);
  CHECK(fx.dgrams_cli == 0);
  CHECK(fx.dgram_len == sizeof(probe) &&
        memcmp(fx.dgram, probe, sizeof(probe)) == 0);
  const struct sockaddr_in *from = (const struct sockaddr_in *)&fx.dgram_from;
  CHECK(fx.dgram_fromlen == sizeof(struct sockaddr_in));
  CHECK(from->sin_family == AF_INET);
  CHECK(from->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
  CHECK(ntohs(from->sin_port) == nt_endpoint_port(fx.ep_cli));

  /* The boundary: 33 bytes is still a probe. */
  uint8_t b33[33];
  memset(b33, 0x5a, sizeof(b33));
  CHECK(nt_endpoint_sendto(fx.ep_cli, b33, sizeof(b33),
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) == 0);
  want = 2;
  CHECK(run_until(fx.base, srv_dgrams_reach, arg, DEADLINE_MS));
  CHECK(fx.dgrams_srv == 2 && fx.dgram_len == 33);

  /* 40 bytes of garbage, long-header and short-header shaped, are QUIC to
   * the endpoint: dropped, never offered as datagrams or connections. */
  uint8_t junk_long[40], junk_short[40];
  for (size_t i = 0; i < sizeof(junk_long); i++) {
    junk_long[i] = (uint8_t)(0xA5 ^ (i * 29));
    junk_short[i] = (uint8_t)(0x3C + i * 13);
  }
  junk_long[0] = 0xC0 | 0x0B;
  junk_short[0] = 0x40 | 0x0B;
  uint64_t dropped0 = fx.ep_srv->dropped;
  CHECK(nt_endpoint_sendto(fx.ep_cli, junk_long, sizeof(junk_long),
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) == 0);
  CHECK(nt_endpoint_sendto(fx.ep_cli, junk_short, sizeof(junk_short),
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) == 0);
  uint64_t want_dropped = dropped0 + 2;
  void *darg[2] = {&fx, &want_dropped};
  CHECK(run_until(fx.base, dropped_reach, darg, DEADLINE_MS));
  CHECK(fx.ep_srv->dropped == dropped0 + 2);
  CHECK(fx.dgrams_srv == 2);
  CHECK(fx.accepts == 1);

  /* Garbage addressed to the live connections' own IDs, from a stranger:
   * each connection must discard it (it does not decrypt). A probe sent
   * after it on the same socket marks that it has been read. */
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  CHECK(fd >= 0);
  ngtcp2_cid scids[8];
  size_t nsrv = ngtcp2_conn_get_num_scid(fx.srv.conn->qc);
  size_t ncli = ngtcp2_conn_get_num_scid(fx.cli.conn->qc);
  CHECK(nsrv > 0 && nsrv <= 8 && ncli > 0 && ncli <= 8);
  if (fd >= 0 && nsrv > 0 && nsrv <= 8 && ncli > 0 && ncli <= 8) {
    for (int which = 0; which < 2; which++) {
      nt_conn *c = which ? fx.cli.conn : fx.srv.conn;
      struct sockaddr_in *to = which ? &fx.addr_cli : &fx.addr_srv;
      size_t nc = ngtcp2_conn_get_scid(c->qc, scids);
      for (size_t k = 0; k < nc; k++) {
        uint8_t pkt[40];
        memcpy(pkt, junk_short, sizeof(pkt));
        memcpy(pkt + 1, scids[k].data, scids[k].datalen);
        CHECK(sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)to,
                     sizeof(*to)) == (ssize_t)sizeof(pkt));
      }
      CHECK(sendto(fd, probe, sizeof(probe), 0, (struct sockaddr *)to,
                   sizeof(*to)) == (ssize_t)sizeof(probe));
    }
    CHECK(run_until(fx.base, markers_back, &fx, DEADLINE_MS));
  }
  CHECK(fx.dgrams_cli == 1);
  CHECK(fx.dgrams_srv == 3);
  if (fd >= 0) {
    close(fd);
  }
  CHECK(fx.accepts == 1);

  /* The connection is undisturbed: still up, and it carries data. */
  run_for(fx.base, 200);
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
  CHECK(fx.cli.conn && nt_conn_is_established(fx.cli.conn));
  CHECK(fx.srv.conn && nt_conn_is_established(fx.srv.conn));
  strm *t = fx.cli.conn ? cli_open(&fx, 64 * 1024, 1) : NULL;
  CHECK(t != NULL);
  if (t) {
    CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));
    check_echoed(&fx, t);
  }
  fixture_free(&fx);
}

/* ---- 9. many streams ---- */

/* Client streams open at once until one is refused for the peer's stream
 * limit; retries (running the loop) until |deadline_ms| when refused. */
static int open_round(fixture *fx, int n, uint64_t bytes, int deadline_ms) {
  uint64_t end = now_ms() + (uint64_t)deadline_ms;
  int opened = 0;
  while (opened < n && fx->cli.conn) {
    if (cli_open(fx, bytes, 1)) {
      opened++;
    } else if (now_ms() < end) {
      run_for(fx->base, 20); /* MAX_STREAMS may still be on its way */
    } else {
      break;
    }
  }
  return opened;
}

static void reset_streams(fixture *fx) {
  for (int i = 0; i < MAX_STREAMS; i++) {
    free(fx->cs[i].pend);
    free(fx->ss[i].pend);
  }
  memset(fx->cs, 0, sizeof(fx->cs));
  memset(fx->ss, 0, sizeof(fx->ss));
  fx->ncs = fx->nss = 0;
}

static void test_many_streams(void) {
  fixture fx;
  const int nstreams = 50;
  CHECK(establish(&fx) == 0);
  CHECK(open_round(&fx, nstreams, 64 * 1024, 0) == nstreams);
  /* All of them open at once. */
  CHECK(side_open_streams(&fx.cli) == nstreams);
  CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));
  CHECK(fx.nss == nstreams);
  CHECK(fx.extra_srv_streams == 0);
  int ok = 0;
  for (int i = 0; i < fx.ncs; i++) {
    int before = nt_test_failures;
    check_echoed(&fx, &fx.cs[i]);
    ok += nt_test_failures == before;
  }
  CHECK(ok == nstreams);
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);

  /* Five more rounds: 300 streams over the connection's life, more than
   * the 256 the server allows at first, so closed streams must give the
   * client new stream credit. */
  int rounds_ok = 0;
  for (int round = 0; round < 5; round++) {
    reset_streams(&fx);
    int opened = open_round(&fx, nstreams, 4096, 3000);
    CHECK(opened == nstreams);
    CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));
    int good = 0;
    for (int i = 0; i < fx.ncs; i++) {
      const strm *t = &fx.cs[i];
      const strm *p = srv_peer(&fx, t);
      good += t->received == t->total && t->bad == 0 && t->closed == 1 &&
              t->reset == 0 && p && p->received == t->total && p->bad == 0;
    }
    CHECK(good == nstreams);
    rounds_ok += opened == nstreams && good == nstreams;
    if (opened != nstreams) {
      fprintf(stderr, "  round %d: opened %d of %d streams\n", round + 2,
              opened, nstreams);
      break;
    }
  }
  CHECK(rounds_ok == 5);
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
  fixture_free(&fx);
}

/* ---- extras: endpoint free, idle timeout and keepalive ---- */

static int srv_closed(void *arg) {
  return ((fixture *)arg)->srv.closed > 0;
}

/* Freeing an endpoint closes its connections toward the peer (which hears
 * why) without calling back into the owner that is going away. */
static void test_endpoint_free_notifies_peer(void) {
  fixture fx;
  CHECK(establish(&fx) == 0);
  strm *t = fx.cli.conn ? cli_open(&fx, 1000, 0) : NULL;
  CHECK(t != NULL);
  CHECK(run_until(fx.base, srv_stream_has_data, &fx, DEADLINE_MS));
  nt_endpoint_free(fx.ep_cli);
  fx.ep_cli = NULL;
  CHECK(run_until(fx.base, srv_closed, &fx, DEADLINE_MS));
  CHECK(fx.srv.closed == 1);
  CHECK(fx.srv.reason == NT_CLOSE_PEER);
  CHECK(strcmp(fx.srv.message, "shutting down") == 0);
  CHECK(fx.nss == 1 && fx.ss[0].closed == 1 && fx.ss[0].reset == 1);
  /* No callbacks on the freed side. */
  CHECK(fx.cli.closed == 0);
  CHECK(t && t->closed == 0);
  fixture_free(&fx);
}

static void test_idle_timeout_keepalive(void) {
  /* No traffic and no keepalive: both sides time out after ~1 s. */
  {
    fixture fx;
    CHECK(fixture_init_cfg(&fx, 5000, 1000, 0) == 0);
    fx.srv_expect = NULL;
    CHECK(fx.ep_cli && connect_to_server(&fx, NULL) == 0);
    CHECK(run_until(fx.base, both_established, &fx, DEADLINE_MS));
    uint64_t t0 = now_ms();
    CHECK(run_until(fx.base, both_closed, &fx, DEADLINE_MS));
    CHECK(fx.cli.reason == NT_CLOSE_IDLE);
    CHECK(fx.srv.reason == NT_CLOSE_IDLE);
    CHECK(fx.cli.closed && fx.cli.t_closed - t0 >= 700 &&
          fx.cli.t_closed - t0 <= 2000);
    fixture_free(&fx);
  }
  /* A client keepalive of 300 ms keeps both sides up past it. */
  {
    fixture fx;
    CHECK(fixture_init_cfg(&fx, 5000, 1000, 300) == 0);
    fx.srv_expect = NULL;
    CHECK(fx.ep_cli && connect_to_server(&fx, NULL) == 0);
    CHECK(run_until(fx.base, both_established, &fx, DEADLINE_MS));
    run_for(fx.base, 2500);
    CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
    fixture_free(&fx);
  }
}

/* ---- closing from inside a callback ---- */

/* nt_conn_close() from inside the server's established() callback, i.e.
 * inside ngtcp2_conn_read_pkt, where writing a packet is forbidden (ngtcp2
 * 0.12.1 asserts): the close must be deferred to the loop. Run in a child
 * so a regression's abort cannot take the runner down. */
static void close_in_established(nt_conn *conn, void *ud) {
  on_established(conn, ud);
  nt_conn_close(conn, 8, "refused in established");
}

static const nt_conn_callbacks srv_close_in_established_cbs = {
    close_in_established, on_closed, srv_stream_opened, NULL, NULL, NULL, NULL};

static int accept_close_in_established(nt_endpoint *ep,
                                       const struct sockaddr *from,
                                       nt_accept_params *params, void *ud) {
  fixture *fx = ud;
  (void)ep;
  (void)from;
  fx->accepts++;
  params->expected_fp = NULL;
  params->callbacks = &srv_close_in_established_cbs;
  params->user_data = &fx->srv;
  return 1;
}

static const nt_endpoint_callbacks close_in_established_ep_cbs = {
    accept_close_in_established, on_datagram, NULL, NULL, NULL};

static void test_close_in_established(void) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    fixture fx;
    int ok = 0;
    if (fixture_init(&fx, 5000) == 0) {
      fx.ep_srv->cfg.callbacks = &close_in_established_ep_cbs;
      if (connect_to_server(&fx, NULL) == 0 &&
          run_until(fx.base, both_closed, &fx, DEADLINE_MS)) {
        ok = fx.srv.reason == NT_CLOSE_LOCAL &&
             fx.cli.reason == NT_CLOSE_PEER && fx.cli.app_code == 8;
      }
    }
    fixture_free(&fx);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "  child died of signal %d\n", WTERMSIG(status));
  }
}

/* ---- extra sockets (port prediction) ---- */

static int cli_dgrams_reach(void *arg) {
  void **a = arg;
  return ((fixture *)a[0])->dgrams_cli >= *(int *)a[1];
}

/* Extra sockets send from ports of their own, hand what they receive up
 * with their id, carry a connection that takes one over (and keeps it when
 * the rest close), and are bounded. */
/* The endpoint's relays (the broker's and other brokers'): up to
 * NT_ENDPOINT_RELAYS; past it the oldest that no connection runs through
 * gives way, and a connection keeps its own relay. */
static void test_relay_list(void) {
  fixture fx;
  nt_addr relay[NT_ENDPOINT_RELAYS * 2 + 1];
  uint8_t token[NT_RELAY_TOKEN_LEN] = {7};

  CHECK(fixture_init(&fx, 5000) == 0);
  if (!fx.ep_srv) {
    fixture_free(&fx);
    return;
  }
  for (size_t i = 0; i < sizeof(relay) / sizeof(relay[0]); i++) {
    set_addr((struct sockaddr_in *)&relay[i].ss, (uint16_t)(40001 + i));
    relay[i].len = sizeof(struct sockaddr_in);
  }
  CHECK(nt_endpoint_relay_bind(fx.ep_cli, &relay[0], token) ==
        NATTER_ERR_INVALID);
  for (size_t i = 0; i < NT_ENDPOINT_RELAYS; i++) {
    CHECK(nt_endpoint_set_relay(fx.ep_cli, &relay[i]) == 0);
  }
  CHECK(nt_endpoint_set_relay(fx.ep_cli, &relay[3]) == 0); /* known */
  /* A connection through relay 1. */
  CHECK(nt_endpoint_connect_relayed(fx.ep_cli, &relay[1], token,
                                    nt_identity_fingerprint(fx.id_srv),
                                    &cli_conn_cbs, &fx.cli,
                                    &fx.cli.conn) == 0);
  CHECK(fx.cli.conn && nt_conn_is_relayed(fx.cli.conn));
  /* Nine more: 0 gives way first; 1 never, it has a connection. */
  CHECK(nt_endpoint_set_relay(fx.ep_cli, &relay[NT_ENDPOINT_RELAYS]) == 0);
  CHECK(!nt_endpoint_is_relay(fx.ep_cli, (struct sockaddr *)&relay[0].ss));
  for (size_t i = NT_ENDPOINT_RELAYS + 1; i < NT_ENDPOINT_RELAYS * 2 + 1;
       i++) {
    CHECK(nt_endpoint_set_relay(fx.ep_cli, &relay[i]) == 0);
  }
  CHECK(nt_endpoint_is_relay(fx.ep_cli, (struct sockaddr *)&relay[1].ss));
  CHECK(nt_endpoint_is_relay(fx.ep_cli,
                             (struct sockaddr *)&relay[NT_ENDPOINT_RELAYS * 2].ss));
  CHECK(nt_endpoint_relay_bind(fx.ep_cli, &relay[1], token) == 0);
  CHECK(nt_conn_is_relayed(fx.cli.conn));
  fixture_free(&fx);
}

static void test_aux_sockets(void) {
  fixture fx;
  int owner, want;
  void *arg[2] = {&fx, &want};
  uint8_t probe[22] = {0, 'N', 'T', 'P'};

  CHECK(fixture_init(&fx, 5000) == 0);
  if (!fx.ep_srv) {
    fixture_free(&fx);
    return;
  }
  CHECK(nt_endpoint_aux_open(fx.ep_cli, &owner, 3) == 3);
  CHECK(nt_endpoint_aux_count(fx.ep_cli, &owner) == 3);
  CHECK(nt_endpoint_aux_count(fx.ep_cli, &fx) == 0);
  nt_endpoint_aux_send_all(fx.ep_cli, &owner, probe, sizeof(probe),
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv));
  want = 3;
  CHECK(run_until(fx.base, srv_dgrams_reach, arg, DEADLINE_MS));
  CHECK(fx.dgrams_srv == 3);
  uint16_t main_port = nt_endpoint_port(fx.ep_cli);
  for (int i = 0; i < 3; i++) {
    CHECK(fx.dgram_ports[i] != 0 && fx.dgram_ports[i] != main_port);
    for (int j = 0; j < i; j++) {
      CHECK(fx.dgram_ports[i] != fx.dgram_ports[j]);
    }
  }

  /* An answer to one of them comes up with that socket's id. */
  struct sockaddr_in aux_addr = fx.addr_cli;
  aux_addr.sin_port = htons(fx.dgram_ports[1]);
  CHECK(nt_endpoint_sendto(fx.ep_srv, probe, sizeof(probe),
                           (struct sockaddr *)&aux_addr,
                           sizeof(aux_addr)) == 0);
  want = 1;
  CHECK(run_until(fx.base, cli_dgrams_reach, arg, DEADLINE_MS));
  int sock = fx.dgram_sock;
  CHECK(sock > 0);

  /* A connection from it: the server sees that port; the socket is the
   * connection's now and survives closing the owner's others. */
  fx.srv_expect = nt_identity_fingerprint(fx.id_cli);
  CHECK(nt_endpoint_connect_on(fx.ep_cli, sock,
                               (struct sockaddr *)&fx.addr_srv,
                               sizeof(fx.addr_srv),
                               nt_identity_fingerprint(fx.id_srv),
                               &cli_conn_cbs, &fx.cli, &fx.cli.conn) == 0);
  CHECK(run_until(fx.base, both_established, &fx, DEADLINE_MS));
  if (fx.cli.conn && fx.srv.conn) {
    CHECK(nt_conn_socket(fx.cli.conn) == sock);
    CHECK(nt_addr_port(nt_conn_remote_addr(fx.srv.conn)) ==
          fx.dgram_ports[1]);
  }
  CHECK(nt_endpoint_aux_count(fx.ep_cli, &owner) == 2);
  /* A socket with a connection takes no second one. */
  nt_conn *again = NULL;
  CHECK(nt_endpoint_connect_on(fx.ep_cli, sock,
                               (struct sockaddr *)&fx.addr_srv,
                               sizeof(fx.addr_srv), NULL, &cli_conn_cbs,
                               &fx.cli, &again) != 0);
  nt_endpoint_aux_close(fx.ep_cli, &owner, 0);
  CHECK(nt_endpoint_aux_count(fx.ep_cli, &owner) == 0);
  CHECK(nt_endpoint_send_on(fx.ep_cli, 9999, probe, sizeof(probe),
                            (struct sockaddr *)&fx.addr_srv,
                            sizeof(fx.addr_srv)) != 0);
  run_for(fx.base, 200);
  CHECK(fx.cli.conn && nt_conn_is_established(fx.cli.conn));
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
  CHECK(cli_open(&fx, 64 * 1024, 1) != NULL);
  CHECK(run_until(fx.base, all_streams_closed, &fx, DEADLINE_MS));

  /* The cap: never more than NT_ENDPOINT_MAX_AUX at once. */
  unsigned n = nt_endpoint_aux_open(fx.ep_srv, &owner, 2 * NT_ENDPOINT_MAX_AUX);
  CHECK(n <= NT_ENDPOINT_MAX_AUX);
  CHECK(nt_endpoint_aux_open(fx.ep_srv, &owner, 1) <=
        (n < NT_ENDPOINT_MAX_AUX ? 1u : 0u));
  fixture_free(&fx); /* frees the open ones too (ASan: no leak) */
}

/* Client stream |arg| has had some of its echo back. */
static int cli_echo_started(void *arg) {
  return ((const strm *)arg)->received > 0;
}

/* The client sends to another port of the server than its socket's. */
static int cli_followed(void *arg) {
  fixture *fx = arg;
  return fx->cli.conn && nt_addr_port(nt_conn_remote_addr(fx->cli.conn)) !=
                             ntohs(fx->addr_srv.sin_port);
}

/* nt_conn_migrate_on: a live connection moves to another socket (a new
 * port prediction's) with a stream in full flight, the bytes intact;
 * the client migrates (the server sees the new port), the server only
 * sends from there (the client follows). Only the owner's free sockets
 * are taken. */
static void test_migrate_on(void) {
  fixture fx;
  int owner, other;
  CHECK(establish(&fx) == 0);
  if (!fx.cli.conn || !fx.srv.conn) {
    fixture_free(&fx);
    return;
  }
  /* A fresh endpoint numbers its extra sockets from 1. */
  CHECK(nt_endpoint_aux_open(fx.ep_cli, &owner, 2) == 2);
  CHECK(nt_endpoint_aux_open(fx.ep_cli, &other, 1) == 1);
  strm *t = cli_open(&fx, 8 * MIB, 1);
  CHECK(t != NULL);
  /* Mid-stream: the first bytes are back, most are still to go. */
  CHECK(t && run_until(fx.base, cli_echo_started, t, DEADLINE_MS));
  CHECK(nt_conn_migrate_on(fx.cli.conn, 3, &owner,
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) != 0); /* another's */
  CHECK(nt_conn_migrate_on(fx.cli.conn, 9, &owner,
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) != 0); /* none */
  CHECK(nt_conn_socket(fx.cli.conn) == 0);
  CHECK(nt_conn_migrate_on(fx.cli.conn, 1, &owner,
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) == 0);
  CHECK(nt_conn_socket(fx.cli.conn) == 1);
  CHECK(nt_endpoint_aux_count(fx.ep_cli, &owner) == 1);
  CHECK(run_until(fx.base, all_streams_closed, &fx, 20000));
  if (t) {
    check_echoed(&fx, t);
  }
  /* Again, to the other: the first socket goes with the move. */
  CHECK(nt_conn_migrate_on(fx.cli.conn, 2, &owner,
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) == 0);
  CHECK(nt_conn_migrate_on(fx.cli.conn, 1, &owner,
                           (struct sockaddr *)&fx.addr_srv,
                           sizeof(fx.addr_srv)) != 0);
  CHECK(nt_endpoint_aux_count(fx.ep_cli, &owner) == 0);
  t = cli_open(&fx, 1 * MIB, 1);
  CHECK(run_until(fx.base, all_streams_closed, &fx, 20000));
  if (t) {
    check_echoed(&fx, t);
  }
  /* Every packet of that stream came from the new socket: the server
   * answers there. */
  uint16_t srv_seen =
      fx.srv.conn ? nt_addr_port(nt_conn_remote_addr(fx.srv.conn)) : 0;
  CHECK(srv_seen != 0 && srv_seen != nt_endpoint_port(fx.ep_cli));
  /* The server moves: it sends from its new socket, and the client
   * follows the genuine packets from there. */
  CHECK(nt_endpoint_aux_open(fx.ep_srv, &owner, 1) == 1);
  CHECK(nt_conn_migrate_on(fx.srv.conn, 1, &owner,
                           (struct sockaddr *)&fx.addr_cli,
                           sizeof(fx.addr_cli)) == 0);
  CHECK(nt_conn_socket(fx.srv.conn) == 1);
  /* Nothing from the old address for longer than a round trip: the first
   * genuine packet from the new one moves the client there. */
  run_for(fx.base, 200);
  t = cli_open(&fx, 2 * MIB, 1);
  CHECK(run_until(fx.base, all_streams_closed, &fx, 20000));
  if (t) {
    check_echoed(&fx, t);
  }
  CHECK(cli_followed(&fx));
  CHECK(fx.cli.closed == 0 && fx.srv.closed == 0);
  fixture_free(&fx);
}

static const nt_test_case cases[] = {
    {"handshake", test_handshake},
    {"migrate_on", test_migrate_on},
    {"quic_datagrams", test_quic_datagrams},
    {"handshake_any_key", test_handshake_any_key},
    {"key_mismatch_client", test_key_mismatch_client},
    {"key_mismatch_server", test_key_mismatch_server},
    {"stream_echo_5mb", test_stream_echo},
    {"backpressure_bound", test_backpressure_bound},
    {"reset", test_reset},
    {"reset_returns_credit", test_reset_returns_credit},
    {"close_reason", test_close_reason},
    {"handshake_timeout", test_handshake_timeout},
    {"raw_datagrams", test_raw_datagrams},
    {"many_streams", test_many_streams},
    {"endpoint_free_notifies_peer", test_endpoint_free_notifies_peer},
    {"idle_timeout_keepalive", test_idle_timeout_keepalive},
    {"close_in_established", test_close_in_established},
    {"aux_sockets", test_aux_sockets},
    {"relay_list", test_relay_list},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
