/* natter-relay-flood: hostile clients of a broker's relay, for the relay
 * budget tests (tests/integration/test_relay_budgets.sh). Built on the
 * library's internals in test builds only; never installed. Every client
 * it runs checks in under a fresh name, from the address BIND, with a key
 * of its own (unless told otherwise), over a connection of its own.
 *
 *   natter-relay-flood channels BROKER BIND PAIRS REQUESTS SECONDS [one-key]
 *       PAIRS pairs of clients; the first of each pair listens, the
 *       second asks for it REQUESTS times. With one-key all the askers
 *       share one key. Prints "offered N" and "without M" (introductions
 *       with and without a relay channel) once every request is answered,
 *       then holds its connections until SECONDS have passed or SIGTERM.
 *   natter-relay-flood garbage BROKER BIND PAIRS SECONDS
 *       PAIRS pairs; each asker asks once; both sides bind their channel
 *       at the relay, then the askers send garbage through it (1200-byte
 *       datagrams, 10 every 10 ms each: 1.2 MB/s) for SECONDS.
 *   natter-relay-flood peer BROKER BIND NAME PEER SECONDS INTERVAL_MS
 *       one client, NAME, asks for PEER (another program, which must
 *       admit it), binds its side of the channel and sends a 1200-byte
 *       garbage datagram every INTERVAL_MS (0: as garbage does) for
 *       SECONDS, or until the relay closes the channel.
 *
 * garbage and peer print "sent BYTES", "received BYTES" and "closed N"
 * (CLOSED signals from the relay, with the last reason) when they end.
 * Every line is flushed as printed. Every run ends by itself: a deadline
 * bounds it. On SIGTERM it prints what it has and closes its connections
 * (the broker hears CONNECTION_CLOSE). */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_client.h"
#include "codec/relay_wire.h"

#define MAX_PAIRS 16 /* 32 connections: the broker's limit per address */
#define GARBAGE_LEN 1200
#define BURST 10   /* datagrams per tick and sender ... */
#define TICK_MS 10 /* ... every tick */
#define BIND_EVERY_MS 200

typedef struct tool tool;

typedef struct member {
  tool *t;
  nt_identity *id; /* owned unless shared (one-key) */
  int owns_id;
  nt_endpoint *ep;
  nt_conn *conn;
  nt_hclient bc;
  char name[NT_NAME_MAX + 1];
  const char *peer; /* whom it asks for; NULL: it listens */
  int listener;
  struct member *partner;
  int checked_in;
  int asked;         /* started its requests */
  unsigned sent;     /* its requests sent */
  unsigned answered; /* its requests answered */
  int fd;            /* its socket towards the relay */
  struct event *relay_ev;
  nt_addr relay;
  uint8_t token[NT_RELAY_TOKEN_LEN];
  int have_token, bound;
  int sends; /* sends garbage (once bound) */
} member;

struct tool {
  struct event_base *base;
  nt_log log;
  nt_addr broker, bind;
  const char *mode;
  unsigned pairs, requests, interval_ms;
  int one_key;
  member m[2 * MAX_PAIRS];
  size_t nm;
  unsigned offered, without, failed;
  uint64_t sent, received;
  unsigned closed, closed_reason;
  int printed;
  struct event *tick, *done, *sigterm;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

/* Requests a broker lets one requester have awaiting an answer at once
 * (its admission queries, doc/operations.md "Limits"): more would be
 * refused before they reach the relay. */
#define FLOOD_IN_FLIGHT 4

/* Sends |m|'s next requests, keeping at most FLOOD_IN_FLIGHT unanswered. */
static void ask(member *m) {
  while (m->sent < m->t->requests && m->sent - m->answered < FLOOD_IN_FLIGHT) {
    nt_control msg = {.type = NT_CONTROL_CONNECT_REQUEST};
    msg.u.connect_request.request_id = ++m->sent;
    snprintf(msg.u.connect_request.peer, sizeof(msg.u.connect_request.peer),
             "%s", m->peer);
    nt_hclient_send(&m->bc, &msg);
  }
}

static void send_bind(member *m) {
  uint8_t pkt[NT_RELAY_HDR_LEN];
  nt_relay_hdr_encode(pkt, NT_RELAY_BIND, m->token);
  sendto(m->fd, pkt, sizeof(pkt), MSG_DONTWAIT,
         (const struct sockaddr *)&m->relay.ss, m->relay.len);
}

static void maybe_report_channels(tool *t) {
  if (t->printed || strcmp(t->mode, "channels") != 0) {
    return;
  }
  unsigned want = t->pairs * t->requests;
  if (t->offered + t->without + t->failed >= want) {
    t->printed = 1;
    say("offered %u\nwithout %u\nfailed %u\n", t->offered, t->without,
        t->failed);
  }
}

static void on_introduction(member *m, const nt_introduction *in) {
  tool *t = m->t;
  if (in->request_id) { /* the asker's copy */
    m->answered++;
    if (in->relay_port) {
      t->offered++;
    } else {
      t->without++;
    }
    maybe_report_channels(t);
    ask(m);
  }
  if (!in->relay_port || m->have_token) {
    return; /* one channel per client is all the byte modes use */
  }
  memcpy(m->token, in->relay_token, NT_RELAY_TOKEN_LEN);
  m->have_token = 1;
  m->relay = t->broker;
  nt_addr_set_port((struct sockaddr *)&m->relay.ss, in->relay_port);
  if (strcmp(t->mode, "channels") != 0) {
    send_bind(m);
  }
}

static int on_msg(const nt_control *msg, void *ud) {
  member *m = ud;
  tool *t = m->t;
  if (!msg) {
    say("natter-relay-flood: %s: malformed control message\n", m->name);
    return 0;
  }
  switch (msg->type) {
  case NT_CONTROL_CHECK_IN_RESULT:
    if (msg->u.check_in_result.code != NT_CODE_OK) {
      say("natter-relay-flood: %s: check-in refused: %s\n", m->name,
          msg->u.check_in_result.message);
      t->failed += m->peer ? t->requests : 0;
      maybe_report_channels(t);
      break;
    }
    m->checked_in = 1;
    /* An asker asks once its partner listens (the peer mode's PEER is
     * someone else's: it listens already). */
    for (size_t i = 0; i < t->nm; i++) {
      member *a = &t->m[i];
      if (a->peer && a->checked_in && !a->asked &&
          (!a->partner || a->partner->checked_in)) {
        a->asked = 1;
        a->sends = strcmp(t->mode, "channels") != 0;
        ask(a);
      }
    }
    break;
  case NT_CONTROL_INTRODUCTION:
    on_introduction(m, &msg->u.introduction);
    break;
  case NT_CONTROL_CONNECT_RESULT:
    say("natter-relay-flood: %s: %s\n", m->name, msg->u.connect_result.message);
    m->answered++;
    t->failed++;
    maybe_report_channels(t);
    ask(m);
    break;
  default:
    break;
  }
  return 0;
}

static void on_established(nt_conn *conn, void *ud) {
  member *m = ud;
  nt_hclient_check_in in = {.name = m->name, .listen = m->listener};
  if (nt_hclient_start(&m->bc, conn, &in) != 0) {
    say("natter-relay-flood: %s: no control stream\n", m->name);
  }
}

static void on_closed(nt_conn *conn, nt_close_reason reason, uint64_t code,
                      const char *message, void *ud) {
  member *m = ud;
  (void)conn;
  (void)reason;
  (void)code;
  m->conn = NULL;
  nt_hclient_closed(&m->bc);
  say("natter-relay-flood: %s: the broker closed the connection (%s)\n",
      m->name, message[0] ? message : "no reason");
}

static const nt_conn_callbacks conn_callbacks = {
    on_established, on_closed, NULL, NULL, NULL, NULL, NULL};

static void relay_readable(evutil_socket_t fd, short what, void *arg) {
  member *m = arg;
  uint8_t buf[2048];
  (void)what;
  for (int i = 0; i < 256; i++) {
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      return;
    }
    const uint8_t *token;
    int type = nt_relay_hdr_decode(buf, (size_t)n, &token);
    if (type == NT_RELAY_BIND) {
      m->bound = 1;
    } else if (type == NT_RELAY_CLOSED) {
      m->t->closed++;
      m->t->closed_reason = n > NT_RELAY_HDR_LEN ? buf[NT_RELAY_HDR_LEN] : 0;
    } else if (type == NT_RELAY_DATA) {
      m->t->received += (uint64_t)n - NT_RELAY_HDR_LEN;
    }
  }
}

static void finish(tool *t) {
  if (strcmp(t->mode, "channels") == 0) {
    maybe_report_channels(t);
  } else {
    say("sent %llu\nreceived %llu\nclosed %u (reason %u)\n",
        (unsigned long long)t->sent, (unsigned long long)t->received, t->closed,
        t->closed_reason);
  }
  event_base_loopbreak(t->base);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  tool *t = arg;
  static uint8_t pkt[NT_RELAY_HDR_LEN + GARBAGE_LEN];
  static unsigned ticks;
  (void)fd;
  (void)what;
  ticks++;
  for (size_t i = 0; i < t->nm; i++) {
    member *m = &t->m[i];
    if (!m->have_token || strcmp(t->mode, "channels") == 0) {
      continue;
    }
    if (!m->bound) {
      if (ticks % (BIND_EVERY_MS / TICK_MS) == 0) {
        send_bind(m);
      }
      continue;
    }
    /* Garbage only once both sides are bound (peer mode: once we are;
     * the peer binds when its punching fails). */
    if (m->sends != 1 || (m->partner && !m->partner->bound) ||
        (t->closed && strcmp(t->mode, "peer") == 0)) {
      continue;
    }
    unsigned burst = BURST, every = t->interval_ms / TICK_MS;
    if (t->interval_ms) {
      burst = ticks % (every ? every : 1) == 0;
    }
    nt_relay_hdr_encode(pkt, NT_RELAY_DATA, m->token);
    for (unsigned k = 0; k < burst; k++) {
      memset(pkt + NT_RELAY_HDR_LEN, (int)(ticks + k), GARBAGE_LEN);
      if (sendto(m->fd, pkt, sizeof(pkt), MSG_DONTWAIT,
                 (const struct sockaddr *)&m->relay.ss,
                 m->relay.len) == (ssize_t)sizeof(pkt)) {
        t->sent += GARBAGE_LEN;
      }
    }
  }
}

static void done_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  finish(arg);
}

static int usage(void) {
  fprintf(stderr,
          "usage: natter-relay-flood channels BROKER BIND PAIRS REQUESTS "
          "SECONDS [one-key]\n"
          "       natter-relay-flood garbage BROKER BIND PAIRS SECONDS\n"
          "       natter-relay-flood peer BROKER BIND NAME PEER SECONDS "
          "INTERVAL_MS\n");
  return 2;
}

static int member_start(tool *t, member *m, nt_identity *shared, char *err,
                        size_t errlen) {
  m->t = t;
  m->fd = -1;
  /* A broker that asks a listener before it introduces anyone to it:
   * ours admit everyone. */
  nt_hclient_init(&m->bc, on_msg, m, NT_HCLIENT_ADMIT_ALL);
  if (shared) {
    m->id = shared;
  } else {
    if (nt_identity_new_ephemeral(&m->id, err, errlen) != 0) {
      return -1;
    }
    m->owns_id = 1;
  }
  if (nt_hclient_endpoint(&m->ep, t->base, &t->bind, m->id, &t->log, 10000, err,
                          errlen) != 0) {
    return -1;
  }
  m->fd = socket(t->bind.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (m->fd < 0 ||
      bind(m->fd, (const struct sockaddr *)&t->bind.ss, t->bind.len) != 0) {
    snprintf(err, errlen, "cannot bind a UDP socket: %s", strerror(errno));
    return -1;
  }
  m->relay_ev =
      event_new(t->base, m->fd, EV_READ | EV_PERSIST, relay_readable, m);
  event_add(m->relay_ev, NULL);
  return nt_endpoint_connect(m->ep, (const struct sockaddr *)&t->broker.ss,
                             t->broker.len, NULL, &conn_callbacks, m, &m->conn);
}

static void member_free(member *m) {
  nt_hclient_reset(&m->bc);
  nt_endpoint_free(m->ep); /* sends CONNECTION_CLOSE */
  if (m->relay_ev) {
    event_free(m->relay_ev);
  }
  if (m->fd >= 0) {
    close(m->fd);
  }
  if (m->owns_id) {
    nt_identity_free(m->id);
  }
}

int main(int argc, char **argv) {
  static tool t;
  char err[300];
  unsigned seconds = 0;
  uint8_t rnd[4];

  if (argc < 6) {
    return usage();
  }
  t.mode = argv[1];
  t.log.level = NATTER_LOG_ERROR;
  if (nt_hclient_parse_args("natter-relay-flood", argv[2], argv[3], &t.broker,
                            &t.bind) != 0) {
    return 2;
  }
  if (strcmp(t.mode, "channels") == 0 && (argc == 7 || argc == 8)) {
    t.pairs = (unsigned)atoi(argv[4]);
    t.requests = (unsigned)atoi(argv[5]);
    seconds = (unsigned)atoi(argv[6]);
    t.one_key = argc == 8 && strcmp(argv[7], "one-key") == 0;
    if (argc == 8 && !t.one_key) {
      return usage();
    }
  } else if (strcmp(t.mode, "garbage") == 0 && argc == 6) {
    t.pairs = (unsigned)atoi(argv[4]);
    t.requests = 1;
    seconds = (unsigned)atoi(argv[5]);
  } else if (strcmp(t.mode, "peer") == 0 && argc == 8) {
    t.requests = 1;
    seconds = (unsigned)atoi(argv[6]);
    t.interval_ms = (unsigned)atoi(argv[7]);
  } else {
    return usage();
  }
  if ((strcmp(t.mode, "peer") != 0 && (t.pairs == 0 || t.pairs > MAX_PAIRS)) ||
      t.requests == 0 || t.requests > 30 || seconds == 0 || seconds > 300) {
    return usage();
  }
  signal(SIGPIPE, SIG_IGN);
  t.base = event_base_new();
  nt_identity *shared = NULL;
  if (!t.base || nt_random_bytes(rnd, sizeof(rnd)) != 0 ||
      (t.one_key && nt_identity_new_ephemeral(&shared, err, sizeof(err)))) {
    fprintf(stderr, "natter-relay-flood: cannot start\n");
    return 1;
  }
  if (strcmp(t.mode, "peer") == 0) {
    member *m = &t.m[t.nm++];
    snprintf(m->name, sizeof(m->name), "%s", argv[4]);
    m->peer = argv[5];
  } else {
    for (unsigned i = 0; i < t.pairs; i++) {
      member *l = &t.m[t.nm++], *a = &t.m[t.nm++];
      snprintf(l->name, sizeof(l->name), "rf%02x%02x%02x%02x-l%u", rnd[0],
               rnd[1], rnd[2], rnd[3], i);
      snprintf(a->name, sizeof(a->name), "rf%02x%02x%02x%02x-a%u", rnd[0],
               rnd[1], rnd[2], rnd[3], i);
      l->listener = 1;
      l->partner = a;
      a->partner = l;
      a->peer = l->name;
    }
  }
  for (size_t i = 0; i < t.nm; i++) {
    member *m = &t.m[i];
    if (member_start(&t, m, m->peer ? shared : NULL, err, sizeof(err)) != 0) {
      fprintf(stderr, "natter-relay-flood: %s: %s\n", m->name, err);
      return 1;
    }
  }
  struct timeval tick = {0, TICK_MS * 1000}, end = {(time_t)seconds, 0};
  t.tick = event_new(t.base, -1, EV_PERSIST, tick_cb, &t);
  t.done = evtimer_new(t.base, done_cb, &t);
  t.sigterm = evsignal_new(t.base, SIGTERM, done_cb, &t);
  event_add(t.tick, &tick);
  event_add(t.done, &end);
  event_add(t.sigterm, NULL);
  event_base_dispatch(t.base);

  for (size_t i = 0; i < t.nm; i++) {
    member_free(&t.m[i]);
  }
  nt_identity_free(shared);
  event_free(t.tick);
  event_free(t.done);
  event_free(t.sigterm);
  event_base_free(t.base);
  return 0;
}
