/* Test builds only (natter-hostile): the broker's relay (relay.h) as a man
 * in the middle. It stands in for broker/relay.c in natter-hostile, so that
 * `natter-hostile -server ADDR -relay` is a broker whose relay, instead of
 * forwarding the peers' QUIC packets, terminates QUIC itself with the
 * broker's own identity key (NATTER_MITM_IDENTITY names its key file): it
 * holds both channel tokens, so it answers the dialling peer's relayed
 * Initial as if it were the other peer, and dials the other peer through
 * its side of the channel as if it were the first. The peers pin the key
 * the broker vouched for in the introduction (the real peer's), so both
 * handshakes must fail and no byte of a forwarded connection may reach it;
 * tests/nat (lab.sh mitm) checks that. With NATTER_MITM_TARGET=PORT it
 * also asks the peer it dialled for 127.0.0.1:PORT once its own side of
 * that handshake is done, and it accepts every stream the other opens,
 * so that the forwarded bytes would follow if that side let them.
 *
 * Shape: the relay socket unwraps each side's datagrams and hands the
 * QUIC payload to an ordinary endpoint (endpoint.h) through a per-side
 * proxy socket on 127.0.0.1, whose address is that side's "remote
 * address" for the endpoint; what the endpoint sends to a proxy goes back
 * out on the relay socket, framed with that side's token. Everything it
 * sees is logged as "relay (man in the middle): ..." and summed up when
 * the broker stops. */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "quic/endpoint.h"
#include "natter.h"
#include "broker/relay.h"
#include "codec/spec.h"
#include "codec/stream_header.h"
#include "trust/tls.h"

#define MITM_BUFSIZE 65536

typedef struct mitm_channel mitm_channel;

typedef struct mitm_side {
  nt_relay *r;
  mitm_channel *ch;
  int idx;
  char name[NT_NAME_MAX + 1];
  uint8_t token[NT_RELAY_TOKEN_LEN];
  nt_addr addr;  /* where its packets come from; len 0 until bound */
  int proxy_fd;  /* its stand-in address towards the endpoint */
  nt_addr proxy; /* that socket's address */
  struct event *proxy_ev;
  int dialled;   /* it sent an Initial: we answer as its peer */
  int dialling;  /* we dialled it as its peer */
  nt_conn *conn; /* our QUIC connection with it */
} mitm_side;

struct mitm_channel {
  mitm_side side[2];
  TAILQ_ENTRY(mitm_channel) link;
};

struct nt_relay {
  struct event_base *base;
  nt_relay_config cfg;
  int fd;
  uint16_t port;
  struct event *read_ev;
  nt_identity *identity; /* the broker's own key */
  char fp_hex[NT_FINGERPRINT_LEN * 2 + 1];
  nt_endpoint *ep;
  nt_addr ep_addr;
  uint16_t target_port; /* NATTER_MITM_TARGET; 0: open no stream */
  TAILQ_HEAD(, mitm_channel) channels;
  size_t nchannels;
  nt_relay_stats st;
  unsigned handshakes; /* QUIC handshakes we took part in */
  unsigned completed;  /* ... that completed on our side */
  uint64_t stolen;     /* stream bytes a peer sent us */
  uint8_t buf[MITM_BUFSIZE];
};

static mitm_side *side_by_token(nt_relay *r, const uint8_t *token) {
  mitm_channel *ch;
  TAILQ_FOREACH(ch, &r->channels, link) {
    for (int i = 0; i < 2; i++) {
      if (memcmp(ch->side[i].token, token, NT_RELAY_TOKEN_LEN) == 0) {
        return &ch->side[i];
      }
    }
  }
  return NULL;
}

static mitm_side *side_by_proxy(nt_relay *r, const struct sockaddr *from) {
  mitm_channel *ch;
  TAILQ_FOREACH(ch, &r->channels, link) {
    for (int i = 0; i < 2; i++) {
      if (nt_addr_equal((struct sockaddr *)&ch->side[i].proxy.ss, from)) {
        return &ch->side[i];
      }
    }
  }
  return NULL;
}

static mitm_side *other_side(mitm_side *s) {
  return &s->ch->side[1 - s->idx];
}

/* ---- the impostor's QUIC connections ---- */

static void stolen_recv(nt_stream *st, const uint8_t *data, size_t len, int fin,
                        void *ud) {
  mitm_side *s = ud;
  (void)data;
  (void)fin;
  if (len) {
    s->r->stolen += len;
    nt_warn(s->r->cfg.log,
            "relay (man in the middle): %s sent %zu bytes of a stream to us "
            "(%llu in all)",
            s->name, len, (unsigned long long)s->r->stolen);
    nt_stream_consume(st, len);
  }
}

static void stolen_closed(nt_stream *st, int reset, uint64_t code, void *ud) {
  (void)st;
  (void)reset;
  (void)code;
  (void)ud;
}

static const nt_stream_callbacks stolen_callbacks = {stolen_recv, NULL,
                                                     stolen_closed};

static void mitm_established(nt_conn *conn, void *ud) {
  mitm_side *s = ud;
  nt_relay *r = s->r;
  r->completed++;
  nt_warn(r->cfg.log,
          "relay (man in the middle): QUIC handshake with %s completed on "
          "our side, posing as %s with the broker's key %s",
          s->name, other_side(s)->name, r->fp_hex);
  if (s->dialling && r->target_port) {
    nt_stream *st;
    uint8_t hdr[NT_STREAM_HEADER_MAX];
    size_t n = nt_open_request_encode(hdr, "127.0.0.1", r->target_port, NULL);
    if (n && nt_conn_open_stream(conn, &st) == 0) {
      nt_stream_set_callbacks(st, &stolen_callbacks, s);
      nt_stream_write(st, hdr, n);
      nt_warn(r->cfg.log,
              "relay (man in the middle): asked %s for 127.0.0.1:%u as %s",
              s->name, (unsigned)r->target_port, other_side(s)->name);
    }
  }
}

static void mitm_closed(nt_conn *conn, nt_close_reason reason,
                        uint64_t app_code, const char *message, void *ud) {
  mitm_side *s = ud;
  (void)app_code;
  if (s->conn == conn) {
    s->conn = NULL;
  }
  nt_warn(s->r->cfg.log,
          "relay (man in the middle): our connection with %s (posing as %s) "
          "ended: %s%s%s",
          s->name, other_side(s)->name,
          reason == NT_CLOSE_PEER                ? "closed by the peer"
          : reason == NT_CLOSE_HANDSHAKE_TIMEOUT ? "handshake timeout"
          : reason == NT_CLOSE_TLS               ? "TLS failure"
          : reason == NT_CLOSE_IDLE              ? "idle"
          : reason == NT_CLOSE_LOCAL             ? "closed by us"
                                                 : "error",
          message && message[0] ? ": " : "", message ? message : "");
}

/* A stream from the peer that dialled us: say yes at once, as a listener
 * that connected the target would, so that its forwarded bytes follow. */
static void mitm_stream_opened(nt_conn *conn, nt_stream *st, void *ud) {
  uint8_t res[NT_STREAM_HEADER_MAX];
  size_t n = nt_open_result_encode(res, NT_OPEN_OK, "");
  (void)conn;
  nt_stream_set_callbacks(st, &stolen_callbacks, ud);
  if (n) {
    nt_stream_write(st, res, n);
  }
}

static const nt_conn_callbacks mitm_conn_callbacks = {
    mitm_established, mitm_closed, mitm_stream_opened, NULL, NULL, NULL, NULL};

/* An Initial from a side's proxy: that side dialled; answer as its peer,
 * accepting whatever key it shows. */
static int mitm_accept(nt_endpoint *ep, const struct sockaddr *from,
                       nt_accept_params *params, void *ud) {
  nt_relay *r = ud;
  mitm_side *s = side_by_proxy(r, from);
  (void)ep;
  if (!s) {
    return 0;
  }
  r->handshakes++;
  nt_warn(r->cfg.log,
          "relay (man in the middle): answering %s's relayed Initial as %s, "
          "with the broker's key %s",
          s->name, other_side(s)->name, r->fp_hex);
  params->expected_fp = NULL;
  params->callbacks = &mitm_conn_callbacks;
  params->user_data = s;
  return 1;
}

static void mitm_datagram(nt_endpoint *ep, const uint8_t *data, size_t len,
                          const struct sockaddr *from, socklen_t fromlen,
                          int sock, void *ud) {
  (void)ep;
  (void)sock;
  (void)data;
  (void)len;
  (void)from;
  (void)fromlen;
  (void)ud;
}

static const nt_endpoint_callbacks mitm_ep_callbacks = {
    mitm_accept, mitm_datagram, NULL, NULL, NULL};

/* Once one side has dialled and the other has told us where it is, dial
 * the other as the first. */
static void maybe_dial(mitm_side *s) {
  nt_relay *r = s->r;
  mitm_side *o = other_side(s);
  if (!o->dialled || s->dialled || s->dialling || !s->addr.len) {
    return;
  }
  s->dialling = 1;
  r->handshakes++;
  nt_warn(r->cfg.log,
          "relay (man in the middle): dialling %s through its relay channel "
          "as %s, with the broker's key %s",
          s->name, o->name, r->fp_hex);
  if (nt_endpoint_connect(r->ep, (struct sockaddr *)&s->proxy.ss, s->proxy.len,
                          NULL, &mitm_conn_callbacks, s, &s->conn) != 0) {
    s->conn = NULL;
    nt_warn(r->cfg.log, "relay (man in the middle): cannot dial %s", s->name);
  }
}

/* ---- datagrams ---- */

static void send_relay(nt_relay *r, const uint8_t *data, size_t len,
                       const nt_addr *to) {
  ssize_t n = sendto(r->fd, data, len, MSG_DONTWAIT,
                     (const struct sockaddr *)&to->ss, to->len);
  if (n > 0) {
    r->st.tx += (uint64_t)n;
  }
}

static void relay_read_cb(evutil_socket_t fd, short what, void *arg) {
  nt_relay *r = arg;
  (void)what;
  for (;;) {
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(fd, r->buf, sizeof(r->buf), MSG_DONTWAIT,
                         (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
      return;
    }
    r->st.rx += (uint64_t)n;
    const uint8_t *token;
    int type = nt_relay_hdr_decode(r->buf, (size_t)n, &token);
    mitm_side *s = type ? side_by_token(r, token) : NULL;
    if (!s || fromlen > sizeof(s->addr.ss)) {
      r->st.dropped++;
      continue;
    }
    memcpy(&s->addr.ss, &from, fromlen);
    s->addr.len = fromlen;
    if (type == NT_RELAY_BIND) {
      send_relay(r, r->buf, NT_RELAY_HDR_LEN, &s->addr);
      maybe_dial(s);
      continue;
    }
    if (type != NT_RELAY_DATA) {
      continue;
    }
    if (!s->dialled && !s->dialling) {
      s->dialled = 1;
      maybe_dial(other_side(s));
    }
    /* To our own endpoint, from this side's stand-in address. */
    sendto(s->proxy_fd, r->buf + NT_RELAY_HDR_LEN, (size_t)n - NT_RELAY_HDR_LEN,
           MSG_DONTWAIT, (struct sockaddr *)&r->ep_addr.ss, r->ep_addr.len);
  }
}

/* What our endpoint sends to a side's stand-in goes to that side through
 * the relay socket, framed with its token. */
static void proxy_read_cb(evutil_socket_t fd, short what, void *arg) {
  mitm_side *s = arg;
  nt_relay *r = s->r;
  (void)what;
  for (;;) {
    ssize_t n = recv(fd, r->buf + NT_RELAY_HDR_LEN,
                     sizeof(r->buf) - NT_RELAY_HDR_LEN, MSG_DONTWAIT);
    if (n < 0) {
      return;
    }
    if (!s->addr.len) {
      continue;
    }
    nt_relay_hdr_encode(r->buf, NT_RELAY_DATA, s->token);
    send_relay(r, r->buf, (size_t)n + NT_RELAY_HDR_LEN, &s->addr);
  }
}

static int open_proxy(nt_relay *r, mitm_side *s) {
  struct sockaddr_in in;
  memset(&in, 0, sizeof(in));
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->proxy_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->proxy_fd < 0 ||
      bind(s->proxy_fd, (struct sockaddr *)&in, sizeof(in)) != 0) {
    return -1;
  }
  s->proxy.len = sizeof(s->proxy.ss);
  getsockname(s->proxy_fd, (struct sockaddr *)&s->proxy.ss, &s->proxy.len);
  s->proxy_ev =
      event_new(r->base, s->proxy_fd, EV_READ | EV_PERSIST, proxy_read_cb, s);
  return s->proxy_ev && event_add(s->proxy_ev, NULL) == 0 ? 0 : -1;
}

static void channel_free(nt_relay *r, mitm_channel *ch) {
  for (int i = 0; i < 2; i++) {
    mitm_side *s = &ch->side[i];
    if (s->proxy_ev) {
      event_free(s->proxy_ev);
    }
    if (s->proxy_fd >= 0) {
      close(s->proxy_fd);
    }
  }
  TAILQ_REMOVE(&r->channels, ch, link);
  r->nchannels--;
  free(ch);
}

/* ---- relay.h ---- */

int nt_relay_open(nt_relay *r, const nt_relay_party *requester,
                  const nt_relay_party *peer, uint8_t *token_a,
                  uint8_t *token_b) {
  const char *names[2] = {requester->name, peer->name};
  if (r->nchannels >= NT_RELAY_MAX_CHANNELS) {
    return NATTER_ERR_INVALID;
  }
  mitm_channel *ch = calloc(1, sizeof(*ch));
  if (!ch) {
    return NATTER_ERR_NOMEM;
  }
  TAILQ_INSERT_TAIL(&r->channels, ch, link);
  r->nchannels++;
  for (int i = 0; i < 2; i++) {
    mitm_side *s = &ch->side[i];
    s->r = r;
    s->ch = ch;
    s->idx = i;
    s->proxy_fd = -1;
    snprintf(s->name, sizeof(s->name), "%s", names[i]);
    if (nt_random_bytes(s->token, NT_RELAY_TOKEN_LEN) != 0 ||
        open_proxy(r, s) != 0) {
      channel_free(r, ch);
      return NATTER_ERR_SOCKET;
    }
  }
  memcpy(token_a, ch->side[0].token, NT_RELAY_TOKEN_LEN);
  memcpy(token_b, ch->side[1].token, NT_RELAY_TOKEN_LEN);
  nt_warn(r->cfg.log,
          "relay (man in the middle): channel for %s and %s: both tokens are "
          "ours",
          names[0], names[1]);
  return 0;
}

/* The man in the middle keeps its channels until the broker stops: the
 * lab's case needs nothing else. */
void nt_relay_close_session(nt_relay *r, const void *session) {
  (void)r;
  (void)session;
}

void nt_relay_move_session(nt_relay *r, const void *from, const void *to,
                           const struct sockaddr *ip) {
  (void)r;
  (void)from;
  (void)to;
  (void)ip;
}

int nt_relay_new(nt_relay **prelay, struct event_base *base,
                 const nt_relay_config *cfg, char *err, size_t errlen) {
  const char *key = getenv("NATTER_MITM_IDENTITY");
  const char *target = getenv("NATTER_MITM_TARGET");
  nt_relay *r;

  *prelay = NULL;
  if (!key || !key[0]) {
    snprintf(err, errlen,
             "natter-hostile's relay is a man in the middle: set "
             "NATTER_MITM_IDENTITY to the broker's key file");
    return NATTER_ERR_INVALID;
  }
  r = calloc(1, sizeof(*r));
  if (!r) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  r->base = base;
  r->cfg = *cfg;
  r->fd = -1;
  r->target_port = target ? (uint16_t)strtoul(target, NULL, 10) : 0;
  TAILQ_INIT(&r->channels);
  if (nt_identity_load_or_create(&r->identity, key, err, errlen) != 0) {
    nt_relay_free(r);
    return NATTER_ERR_INVALID;
  }
  nt_fingerprint_hex(nt_identity_fingerprint(r->identity), r->fp_hex);

  r->fd = socket(cfg->bind.ss.ss_family,
                 SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->fd < 0 ||
      bind(r->fd, (const struct sockaddr *)&cfg->bind.ss, cfg->bind.len) != 0) {
    snprintf(err, errlen, "cannot open the relay port: %s", strerror(errno));
    nt_relay_free(r);
    return NATTER_ERR_ADDR_IN_USE;
  }
  nt_addr local;
  local.len = sizeof(local.ss);
  getsockname(r->fd, (struct sockaddr *)&local.ss, &local.len);
  r->port = nt_addr_port((struct sockaddr *)&local.ss);
  r->read_ev = event_new(base, r->fd, EV_READ | EV_PERSIST, relay_read_cb, r);
  if (!r->read_ev || event_add(r->read_ev, NULL) != 0) {
    snprintf(err, errlen, "cannot register the relay with the event loop");
    nt_relay_free(r);
    return NATTER_ERR_SOCKET;
  }

  nt_endpoint_config ec;
  memset(&ec, 0, sizeof(ec));
  struct sockaddr_in *in = (struct sockaddr_in *)&ec.bind.ss;
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ec.bind.len = sizeof(*in);
  ec.identity = r->identity;
  ec.callbacks = &mitm_ep_callbacks;
  ec.user_data = r;
  ec.log = r->cfg.log;
  ec.handshake_timeout_ms = 10000;
  ec.idle_timeout_ms = 30000;
  ec.small_packets = 1; /* its packets go out through the relay */
  int rv = nt_endpoint_new(&r->ep, base, &ec, err, errlen);
  if (rv != 0) {
    nt_relay_free(r);
    return rv;
  }
  r->ep_addr = ec.bind;
  nt_addr_set_port((struct sockaddr *)&r->ep_addr.ss, nt_endpoint_port(r->ep));
  nt_warn(cfg->log,
          "relay (man in the middle): this relay terminates the peers' QUIC "
          "itself with the broker's key %s (natter-hostile, tests only)",
          r->fp_hex);
  *prelay = r;
  return 0;
}

void nt_relay_free(nt_relay *r) {
  if (!r) {
    return;
  }
  if (r->ep) {
    nt_warn(r->cfg.log,
            "relay (man in the middle): summary: %u handshakes attempted, %u "
            "completed on our side, %llu bytes of the peers' streams "
            "reached us",
            r->handshakes, r->completed, (unsigned long long)r->stolen);
    nt_endpoint_free(r->ep);
  }
  mitm_channel *ch;
  while ((ch = TAILQ_FIRST(&r->channels)) != NULL) {
    channel_free(r, ch);
  }
  if (r->read_ev) {
    event_free(r->read_ev);
  }
  if (r->fd >= 0) {
    close(r->fd);
  }
  nt_identity_free(r->identity);
  free(r);
}

uint16_t nt_relay_port(const nt_relay *r) {
  return r ? r->port : 0;
}

const nt_addr *nt_relay_bind_addr(const nt_relay *r) {
  return &r->cfg.bind;
}

void nt_relay_get_stats(const nt_relay *r, nt_relay_stats *st) {
  memset(st, 0, sizeof(*st));
  if (r) {
    *st = r->st;
    st->channels = r->nchannels;
  }
}

/* No budgets here: nothing spent, no caps (the dashboard's column). */
int nt_relay_key_usage(const nt_relay *r, const uint8_t *fp, uint64_t now,
                       uint64_t *used, unsigned *channels, uint64_t *rate,
                       uint64_t *total) {
  (void)r;
  (void)fp;
  (void)now;
  *used = *rate = *total = 0;
  *channels = 0;
  return 0;
}

int nt_relay_channel_use(const nt_relay *r, const uint8_t *token,
                         uint64_t *relayed) {
  (void)r;
  (void)token;
  *relayed = 0;
  return 0;
}

/* The TCP fallback (relay.h): this relay takes no TCP connections. */
int nt_relay_tcp_add(nt_relay *r, struct nt_tcp_link *link) {
  (void)r;
  (void)link;
  return -1;
}

void nt_relay_tcp_remove(nt_relay *r, struct nt_tcp_link *link) {
  (void)r;
  (void)link;
}

void nt_relay_tcp_input(nt_relay *r, struct nt_tcp_link *link, uint8_t *data,
                        size_t len) {
  (void)r;
  (void)link;
  (void)data;
  (void)len;
}
