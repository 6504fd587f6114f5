/* The broker's relay (src/broker/relay.c) on loopback, in process: datagrams a
 * client sends one by one and as GSO trains (which the relay reads as GRO
 * trains), several hundred in flight, reach the other side intact, in
 * order, each behind the receiver's token; the relay's rules hold for
 * every datagram of a batch: a wrong source IP or an unknown token is
 * dropped and never answered, the rate and total caps count each
 * datagram, and a channel past its total sends CLOSED to both sides.
 *
 * The budgets (src/broker/relay_budget.c): channels at once per key, per
 * source address and in all, charged to the requester only; bytes
 * charged to the side that sent them, by key and by address, so a peer's
 * garbage never spends the other's total and fresh keys from one address
 * share its rate; a channel ends with either client's session; totals
 * count within a window and start afresh after it.
 *
 * A requester of another broker (introductions across brokers): no
 * session here, its side binds only from the address its broker
 * validated (mallory, with its token from another address, gets no
 * answer and moves nothing), its key and address pay, and the channel
 * ends with the listener's session or when idle. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/relay.h"
#include "broker/relay_budget.h"
#include "quic/endpoint.h"
#include "test.h"
#include "test_cmsg.h"
#include "test_loop.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define MAX_SEEN 2048

static nt_log quiet = {NULL, NATTER_LOG_ERROR, NULL};

/* One client's socket and what reached it. */
typedef struct peer {
  int fd;
  struct event *ev;
  uint8_t token[NT_RELAY_TOKEN_LEN]; /* its side of the channel */
  size_t got;                        /* datagrams */
  size_t data, binds, closed, other; /* by type */
  uint32_t seq[MAX_SEEN];            /* DATA: sequence numbers, in order */
  size_t len[MAX_SEEN];              /* DATA: datagram lengths */
  size_t bad;     /* DATA with another token or wrong payload bytes */
  size_t flipped; /* DATA whose last byte was flipped (tamper hook) */
  int closed_reason;
} peer;

static struct sockaddr_in sin_of(const char *ip, uint16_t port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

/* Byte |i| of datagram |seq|'s payload after its 4-byte number. */
static uint8_t fill(uint32_t seq, size_t i) {
  return (uint8_t)(seq * 7 + i * 13);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  peer *p = arg;
  uint8_t buf[65536];
  (void)what;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) {
      return;
    }
    p->got++;
    const uint8_t *token;
    int type = nt_relay_hdr_decode(buf, (size_t)n, &token);
    if (type == NT_RELAY_BIND) {
      p->binds++;
    } else if (type == NT_RELAY_CLOSED) {
      p->closed++;
      p->closed_reason = n > NT_RELAY_HDR_LEN ? buf[NT_RELAY_HDR_LEN] : -1;
      if (memcmp(token, p->token, NT_RELAY_TOKEN_LEN) != 0) {
        p->bad++;
      }
    } else if (type == NT_RELAY_DATA) {
      size_t plen = (size_t)n - NT_RELAY_HDR_LEN;
      const uint8_t *pl = buf + NT_RELAY_HDR_LEN;
      uint32_t seq;
      if (plen < 4 || memcmp(token, p->token, NT_RELAY_TOKEN_LEN) != 0) {
        p->bad++;
        continue;
      }
      memcpy(&seq, pl, 4);
      for (size_t i = 4; i < plen; i++) {
        uint8_t want = fill(seq, i);
        if (i == plen - 1 && pl[i] == (uint8_t)(want ^ 0x01)) {
          p->flipped++;
        } else if (pl[i] != want) {
          p->bad++;
          break;
        }
      }
      if (p->data < MAX_SEEN) {
        p->seq[p->data] = seq;
        p->len[p->data] = (size_t)n;
      }
      p->data++;
    } else {
      p->other++;
    }
  }
}

/* Key fingerprints: one byte repeated. */
static const uint8_t *key_of(uint8_t k) {
  static uint8_t keys[256][NT_FINGERPRINT_LEN];
  memset(keys[k], k, NT_FINGERPRINT_LEN);
  return keys[k];
}

/* A party named |name| with key |k| from |ip|, of session |session|. */
static nt_relay_party party(const char *name, uint8_t k,
                            const struct sockaddr_in *ip, const void *session) {
  nt_relay_party p = {name, key_of(k), (const struct sockaddr *)ip, session};
  return p;
}

static int udp_socket(const char *ip) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = sin_of(ip, 0);
  int size = 4 * 1024 * 1024;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    CHECK(!"cannot bind a UDP socket on loopback");
  }
  return fd;
}

static void peer_open(peer *p, struct event_base *base, const char *ip) {
  memset(p, 0, sizeof(*p));
  p->fd = udp_socket(ip);
  p->ev = event_new(base, p->fd, EV_READ | EV_PERSIST, on_readable, p);
  event_add(p->ev, NULL);
}

static void peer_close(peer *p) {
  event_free(p->ev);
  close(p->fd);
}

/* A DATA datagram from |token|: |plen| payload bytes numbered |seq|. */
static size_t make_data(uint8_t *out, const uint8_t *token, uint32_t seq,
                        size_t plen) {
  nt_relay_hdr_encode(out, NT_RELAY_DATA, token);
  memcpy(out + NT_RELAY_HDR_LEN, &seq, 4);
  for (size_t i = 4; i < plen; i++) {
    out[NT_RELAY_HDR_LEN + i] = fill(seq, i);
  }
  return NT_RELAY_HDR_LEN + plen;
}

static void send_raw(int fd, const uint8_t *buf, size_t len, uint16_t port) {
  struct sockaddr_in to = sin_of("127.0.0.1", port);
  CHECK(sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof(to)) ==
        (ssize_t)len);
}

/* Sends |count| DATA datagrams of |plen| payload bytes (numbered from
 * |seq|) as one GSO train, the way a client's endpoint sends a batch;
 * one by one where the kernel has no UDP GSO. */
static void send_train(int fd, const uint8_t *token, uint32_t seq, size_t count,
                       size_t plen, uint16_t port) {
  static uint8_t buf[65507];
  size_t seg = NT_RELAY_HDR_LEN + plen, len = 0;
  for (size_t i = 0; i < count; i++) {
    len += make_data(buf + len, token, seq + (uint32_t)i, plen);
  }
  struct sockaddr_in to = sin_of("127.0.0.1", port);
  struct iovec iov = {buf, len};
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctrl;
  struct msghdr msg;
  uint16_t s = (uint16_t)seg;
  test_msg_init(&msg, &to, sizeof(to), &iov, ctrl.buf, sizeof(ctrl.buf));
  test_cmsg_put(&msg, SOL_UDP, UDP_SEGMENT, &s, sizeof(s));
  if (sendmsg(fd, &msg, 0) == (ssize_t)len) {
    return;
  }
  for (size_t off = 0; off < len; off += seg) {
    send_raw(fd, buf + off, len - off < seg ? len - off : seg, port);
  }
}

typedef struct relay_pair {
  struct event_base *base;
  nt_relay *relay;
  uint16_t port;
  peer a, b;
} relay_pair;

static nt_relay *relay_new(struct event_base *base, uint64_t rate,
                           uint64_t total) {
  nt_relay_config cfg;
  nt_relay *relay = NULL;
  char err[256];
  memset(&cfg, 0, sizeof(cfg));
  struct sockaddr_in any = sin_of("127.0.0.1", 0);
  memcpy(&cfg.bind.ss, &any, sizeof(any));
  cfg.bind.len = sizeof(any);
  cfg.rate = rate;
  cfg.total = total;
  cfg.log = &quiet;
  if (nt_relay_new(&relay, base, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "nt_relay_new: %s\n", err);
    CHECK(!"relay opens");
  }
  return relay;
}

static int bound_pair(void *arg) {
  peer **p = arg;
  return p[0]->binds >= 1 && p[1]->binds >= 1;
}

/* Opens a channel for |a| (asking) and |b| on |relay| and binds both
 * sides from their sockets. Returns what nt_relay_open did. */
static int channel_open(struct event_base *base, nt_relay *relay,
                        const nt_relay_party *pa, peer *a,
                        const nt_relay_party *pb, peer *b) {
  uint8_t bind_pkt[NT_RELAY_HDR_LEN];
  int rv = nt_relay_open(relay, pa, pb, a->token, b->token);
  if (rv != 0) {
    return rv;
  }
  a->binds = b->binds = 0;
  nt_relay_hdr_encode(bind_pkt, NT_RELAY_BIND, a->token);
  send_raw(a->fd, bind_pkt, sizeof(bind_pkt), nt_relay_port(relay));
  nt_relay_hdr_encode(bind_pkt, NT_RELAY_BIND, b->token);
  send_raw(b->fd, bind_pkt, sizeof(bind_pkt), nt_relay_port(relay));
  peer *both[2] = {a, b};
  CHECK(run_until(base, bound_pair, both, 5000));
  return 0;
}

/* A relay with |rate| and |total|, a channel between two clients on
 * 127.0.0.1, both bound. */
static int pair_open(relay_pair *rp, uint64_t rate, uint64_t total) {
  struct sockaddr_in ip = sin_of("127.0.0.1", 0);

  memset(rp, 0, sizeof(*rp));
  rp->base = event_base_new();
  rp->relay = relay_new(rp->base, rate, total);
  if (!rp->relay) {
    event_base_free(rp->base);
    return -1;
  }
  rp->port = nt_relay_port(rp->relay);
  peer_open(&rp->a, rp->base, "127.0.0.1");
  peer_open(&rp->b, rp->base, "127.0.0.1");
  nt_relay_party alice = party("alice", 1, &ip, &rp->a);
  nt_relay_party bob = party("bob", 2, &ip, &rp->b);
  CHECK(channel_open(rp->base, rp->relay, &alice, &rp->a, &bob, &rp->b) == 0);
  return 0;
}

static void pair_close(relay_pair *rp) {
  peer_close(&rp->a);
  peer_close(&rp->b);
  nt_relay_free(rp->relay);
  event_base_free(rp->base);
}

#define TRAINS 12
#define TRAIN_LEN 40
#define TRAIN_PAYLOAD 1406 /* a relayed QUIC packet's size on a 1500 path */
#define SINGLES 120
#define B_TO_A 240 /* 20 a round */

static void pump(struct event_base *base) {
  for (int i = 0; i < 4; i++) {
    event_base_loop(base, EVLOOP_NONBLOCK);
  }
}

typedef struct expect {
  relay_pair *rp;
  size_t to_b, to_a;
} expect;

static int all_arrived(void *arg) {
  expect *e = arg;
  return e->rp->b.data >= e->to_b && e->rp->a.data >= e->to_a;
}

static void test_batches(void) {
  relay_pair rp;
  if (pair_open(&rp, 0, 0) != 0) {
    return;
  }
  peer intruder;
  peer_open(&intruder, rp.base, "127.0.0.2");
  uint8_t pkt[2048];
  uint8_t unknown[NT_RELAY_TOKEN_LEN];
  memset(unknown, 0x5a, sizeof(unknown));
  uint32_t seq = 0;
  size_t sizes_to_b[MAX_SEEN], n_to_b = 0;
  uint64_t payload_bytes = 0;

  /* alice -> bob: GSO trains (full-sized packets, the last of each train
   * shorter), single datagrams of assorted sizes between them, and
   * packets an intruder sends with alice's token from another IP address
   * and with a token nobody holds; bob -> alice at the same time. */
  for (int t = 0; t < TRAINS; t++) {
    send_train(rp.a.fd, rp.a.token, seq, TRAIN_LEN - 1, TRAIN_PAYLOAD, rp.port);
    for (int i = 0; i < TRAIN_LEN - 1; i++) {
      sizes_to_b[n_to_b++] = NT_RELAY_HDR_LEN + TRAIN_PAYLOAD;
      payload_bytes += TRAIN_PAYLOAD;
    }
    seq += TRAIN_LEN - 1;
    size_t plen = 4 + (size_t)t * 97 % 1000;
    send_raw(rp.a.fd, pkt, make_data(pkt, rp.a.token, seq++, plen), rp.port);
    sizes_to_b[n_to_b++] = NT_RELAY_HDR_LEN + plen;
    payload_bytes += plen;
    send_raw(intruder.fd, pkt, make_data(pkt, rp.a.token, 900000, 100),
             rp.port);
    send_raw(intruder.fd, pkt, make_data(pkt, unknown, 900001, 100), rp.port);
    for (int i = 0; i < SINGLES / TRAINS; i++) {
      plen = 4 + (size_t)(seq * 31) % 1400;
      send_raw(rp.a.fd, pkt, make_data(pkt, rp.a.token, seq++, plen), rp.port);
      sizes_to_b[n_to_b++] = NT_RELAY_HDR_LEN + plen;
      payload_bytes += plen;
    }
    for (int i = 0; i < B_TO_A / TRAINS; i++) {
      uint32_t bseq = (uint32_t)(t * (B_TO_A / TRAINS) + i);
      send_raw(rp.b.fd, pkt, make_data(pkt, rp.b.token, bseq, 1200), rp.port);
      payload_bytes += 1200;
    }
    /* Let the relay read what is queued (dozens of datagrams in one
     * batch) before the next round, so that no socket buffer (at the
     * default net.core.rmem_max when not root) overflows. */
    pump(rp.base);
  }
  expect e = {&rp, n_to_b, B_TO_A};
  CHECK(run_until(rp.base, all_arrived, &e, 10000));

  CHECK(rp.b.data == n_to_b);
  CHECK(rp.b.bad == 0 && rp.b.flipped == 0 && rp.b.other == 0);
  CHECK(rp.b.closed == 0);
  for (size_t i = 0; i < n_to_b && i < rp.b.data; i++) {
    if (rp.b.seq[i] != i || rp.b.len[i] != sizes_to_b[i]) {
      fprintf(stderr, "bob's datagram %zu: seq %u, %zu bytes (want %zu)\n", i,
              rp.b.seq[i], rp.b.len[i], sizes_to_b[i]);
      CHECK(!"in order and intact");
      break;
    }
  }
  CHECK(rp.a.data == B_TO_A);
  CHECK(rp.a.bad == 0);
  for (size_t i = 0; i < B_TO_A && i < rp.a.data; i++) {
    CHECK(rp.a.seq[i] == i);
  }
  /* The intruder's datagrams: dropped, unanswered. */
  event_base_loop(rp.base, EVLOOP_NONBLOCK);
  CHECK(intruder.got == 0);
  nt_relay_stats st;
  nt_relay_get_stats(rp.relay, &st);
  CHECK(st.relayed == payload_bytes);
  CHECK(st.dropped == 2 * TRAINS);
  CHECK(st.dropped_rate == 0);
  CHECK(st.tx == st.rx - 2 * TRAINS * (NT_RELAY_HDR_LEN + 100));

  /* alice's side is still where her own packets came from. */
  size_t before = rp.a.data;
  send_raw(rp.b.fd, pkt, make_data(pkt, rp.b.token, B_TO_A, 64), rp.port);
  e.to_a = before + 1;
  CHECK(run_until(rp.base, all_arrived, &e, 5000));
  CHECK(intruder.got == 0);
  peer_close(&intruder);
  pair_close(&rp);
}

static int closed_seen(void *arg) {
  relay_pair *rp = arg;
  return rp->a.closed >= 5 && rp->b.closed >= 1;
}

/* Within one GSO train: the total lets the first five through, the sixth
 * closes the channel (CLOSED to both), the rest get CLOSED back. */
static void test_total_in_a_batch(void) {
  relay_pair rp;
  if (pair_open(&rp, 0, 5000) != 0) {
    return;
  }
  send_train(rp.a.fd, rp.a.token, 0, 10, 1000, rp.port);
  CHECK(run_until(rp.base, closed_seen, &rp, 5000));
  event_base_loop(rp.base, EVLOOP_NONBLOCK);
  CHECK(rp.b.data == 5);
  CHECK(rp.b.bad == 0);
  CHECK(rp.b.closed == 1);
  CHECK(rp.b.closed_reason == NT_RELAY_CLOSED_TOTAL);
  CHECK(rp.a.closed == 5);
  CHECK(rp.a.closed_reason == NT_RELAY_CLOSED_TOTAL);
  CHECK(rp.a.data == 0 && rp.a.bad == 0);
  nt_relay_stats st;
  nt_relay_get_stats(rp.relay, &st);
  CHECK(st.relayed == 5000);
  pair_close(&rp);
}

static int got_three(void *arg) {
  return ((relay_pair *)arg)->b.data >= 3;
}

/* The rate counts every datagram of a train: a 3000-byte bucket passes
 * three 1000-byte packets of ten. */
static void test_rate_in_a_batch(void) {
  relay_pair rp;
  if (pair_open(&rp, 3000, 0) != 0) {
    return;
  }
  send_train(rp.a.fd, rp.a.token, 0, 10, 1000, rp.port);
  CHECK(run_until(rp.base, got_three, &rp, 5000));
  event_base_loop(rp.base, EVLOOP_NONBLOCK);
  CHECK(rp.b.data == 3);
  nt_relay_stats st;
  nt_relay_get_stats(rp.relay, &st);
  CHECK(st.dropped_rate == 7);
  CHECK(st.relayed == 3000);
  pair_close(&rp);
}

static int got_ten(void *arg) {
  return ((relay_pair *)arg)->b.data >= 10;
}

/* NATTER_TEST_RELAY_TAMPER=1 flips the last bit of every relayed
 * packet, trains included (the lab's tamper case relies on it). */
static void test_tamper_hook(void) {
  relay_pair rp;
  setenv("NATTER_TEST_RELAY_TAMPER", "1", 1);
  int rv = pair_open(&rp, 0, 0);
  unsetenv("NATTER_TEST_RELAY_TAMPER");
  if (rv != 0) {
    return;
  }
  send_train(rp.a.fd, rp.a.token, 0, 10, 1000, rp.port);
  CHECK(run_until(rp.base, got_ten, &rp, 5000));
  CHECK(rp.b.data == 10);
  CHECK(rp.b.flipped == 10);
  CHECK(rp.b.bad == 0);
  pair_close(&rp);
}

/* ---- budgets ---- */

/* What each of up to four peers must have received. */
typedef struct wanted {
  peer *p[4];
  size_t data[4], closed[4];
} wanted;

static int have_wanted(void *arg) {
  wanted *w = arg;
  for (int i = 0; i < 4; i++) {
    if (w->p[i] &&
        (w->p[i]->data < w->data[i] || w->p[i]->closed < w->closed[i])) {
      return 0;
    }
  }
  return 1;
}

/* mallory sends past the total at bob: only mallory's channel closes.
 * bob's channel with alice carries on both ways, because what mallory
 * sent was charged to mallory's key and address alone. */
static void test_sender_pays(void) {
  struct event_base *base = event_base_new();
  nt_relay *relay = relay_new(base, 0, 5000);
  if (!relay) {
    return;
  }
  uint16_t port = nt_relay_port(relay);
  peer mallory, bob_m, bob_a, alice;
  peer_open(&mallory, base, "127.0.0.2");
  peer_open(&bob_m, base, "127.0.0.1");
  peer_open(&bob_a, base, "127.0.0.1");
  peer_open(&alice, base, "127.0.0.3");
  struct sockaddr_in ip_m = sin_of("127.0.0.2", 0),
                     ip_b = sin_of("127.0.0.1", 0),
                     ip_a = sin_of("127.0.0.3", 0);
  int sm, sb, sa; /* sessions */
  nt_relay_party pm = party("mallory", 3, &ip_m, &sm),
                 pb = party("bob", 2, &ip_b, &sb),
                 pa = party("alice", 1, &ip_a, &sa);
  CHECK(channel_open(base, relay, &pm, &mallory, &pb, &bob_m) == 0);
  CHECK(channel_open(base, relay, &pa, &alice, &pb, &bob_a) == 0);

  send_train(mallory.fd, mallory.token, 0, 10, 1000, port);
  wanted w1 = {{&mallory, &bob_m, NULL, NULL}, {0, 5}, {5, 1}};
  CHECK(run_until(base, have_wanted, &w1, 5000));
  CHECK(bob_m.data == 5 && bob_m.closed_reason == NT_RELAY_CLOSED_TOTAL);

  /* 4000 bytes each way: under 5000 for each sender. */
  send_train(bob_a.fd, bob_a.token, 0, 4, 1000, port);
  send_train(alice.fd, alice.token, 0, 4, 1000, port);
  wanted w2 = {{&alice, &bob_a, NULL, NULL}, {4, 4}, {0, 0}};
  CHECK(run_until(base, have_wanted, &w2, 5000));
  pump(base);
  CHECK(alice.closed == 0 && bob_a.closed == 0);
  CHECK(alice.bad == 0 && bob_a.bad == 0);
  nt_relay_stats st;
  nt_relay_get_stats(relay, &st);
  CHECK(st.relayed == 5000 + 8000);
  CHECK(st.channels == 2);
  /* Each channel's own bytes (the dashboard's "used"), by either
   * side's token; no channel for a token never handed out. */
  uint64_t used = 1;
  uint8_t nobody[NT_RELAY_TOKEN_LEN] = {0};
  CHECK(nt_relay_channel_use(relay, alice.token, &used) == 1 && used == 8000);
  CHECK(nt_relay_channel_use(relay, bob_a.token, &used) == 1 && used == 8000);
  CHECK(nt_relay_channel_use(relay, mallory.token, &used) == 1 && used == 5000);
  CHECK(nt_relay_channel_use(relay, nobody, &used) == 0 && used == 0);
  CHECK(nt_relay_channel_use(NULL, alice.token, &used) == 0 && used == 0);

  peer_close(&mallory);
  peer_close(&bob_m);
  peer_close(&bob_a);
  peer_close(&alice);
  nt_relay_free(relay);
  event_base_free(base);
}

/* Two senders, each with a channel to a receiver of its own on
 * 127.0.0.1, each sending ten 1000-byte packets in the same read batch
 * through a relay of 3000 bytes a second: returns how many arrived in
 * all. */
static size_t rate_shared(const char *ip1, uint8_t key1, const char *ip2,
                          uint8_t key2) {
  struct event_base *base = event_base_new();
  nt_relay *relay = relay_new(base, 3000, 0);
  if (!relay) {
    return 0;
  }
  peer s1, s2, r1, r2;
  peer_open(&s1, base, ip1);
  peer_open(&s2, base, ip2);
  peer_open(&r1, base, "127.0.0.1");
  peer_open(&r2, base, "127.0.0.1");
  struct sockaddr_in a1 = sin_of(ip1, 0), a2 = sin_of(ip2, 0),
                     ar = sin_of("127.0.0.1", 0);
  int sessions[4];
  nt_relay_party p1 = party("s1", key1, &a1, &sessions[0]),
                 p2 = party("s2", key2, &a2, &sessions[1]),
                 q1 = party("r1", 101, &ar, &sessions[2]),
                 q2 = party("r2", 102, &ar, &sessions[3]);
  CHECK(channel_open(base, relay, &p1, &s1, &q1, &r1) == 0);
  CHECK(channel_open(base, relay, &p2, &s2, &q2, &r2) == 0);
  send_train(s1.fd, s1.token, 0, 10, 1000, nt_relay_port(relay));
  send_train(s2.fd, s2.token, 0, 10, 1000, nt_relay_port(relay));
  /* Both trains are read in one batch (a handful of microseconds: the
   * buckets refill 1000 bytes in 333 ms), then nothing more comes. */
  nt_relay_stats st;
  for (int i = 0; i < 200; i++) {
    pump(base);
    nt_relay_get_stats(relay, &st);
    if (st.dropped_rate + r1.data + r2.data >= 20) {
      break;
    }
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  }
  nt_relay_get_stats(relay, &st);
  CHECK(st.dropped_rate + st.relayed / 1000 == 20);
  size_t got = r1.data + r2.data;
  CHECK(got == st.relayed / 1000);
  peer_close(&s1);
  peer_close(&s2);
  peer_close(&r1);
  peer_close(&r2);
  nt_relay_free(relay);
  event_base_free(base);
  return got;
}

/* The rate belongs to the key and to the address: fresh keys from one
 * address share its bucket, one key from two addresses too; two keys on
 * two addresses have one each. (At most one more packet passes when the
 * machine stalls the relay for a third of a second mid-batch.) */
static void test_rate_per_key_and_address(void) {
  size_t one_address = rate_shared("127.0.0.2", 11, "127.0.0.2", 12);
  CHECK(one_address >= 3 && one_address <= 4);
  size_t one_key = rate_shared("127.0.0.2", 11, "127.0.0.3", 11);
  CHECK(one_key >= 3 && one_key <= 4);
  size_t apart = rate_shared("127.0.0.2", 11, "127.0.0.3", 12);
  CHECK(apart >= 6 && apart <= 8);
}

/* Channels at once: 16 per key and 32 per address, charged to the
 * requester (bob, asked for by all of them, pays nothing); 1024 in all;
 * a session that ends frees its channels at once. */
static void test_channel_caps(void) {
  struct event_base *base = event_base_new();
  nt_relay *relay = relay_new(base, 0, 0);
  if (!relay) {
    return;
  }
  uint8_t ta[NT_RELAY_TOKEN_LEN], tb[NT_RELAY_TOKEN_LEN];
  static int sessions[1100];
  int bob_session;
  struct sockaddr_in ip_b = sin_of("127.0.0.1", 0),
                     ip2 = sin_of("127.0.0.2", 0), ip3 = sin_of("127.0.0.3", 0);
  nt_relay_party bob = party("bob", 99, &ip_b, &bob_session);
  size_t n = 0;

  for (int i = 0; i < NT_RELAY_MAX_PER_KEY; i++) {
    nt_relay_party p = party("k20", 20, &ip2, &sessions[n++]);
    CHECK(nt_relay_open(relay, &p, &bob, ta, tb) == 0);
  }
  nt_relay_party p = party("k20", 20, &ip2, &sessions[n++]);
  CHECK(nt_relay_open(relay, &p, &bob, ta, tb) == NATTER_ERR_INVALID);
  for (int i = 0; i < NT_RELAY_MAX_PER_ADDRESS - NT_RELAY_MAX_PER_KEY; i++) {
    p = party("k21", 21, &ip2, &sessions[n++]);
    CHECK(nt_relay_open(relay, &p, &bob, ta, tb) == 0);
  }
  p = party("k22", 22, &ip2, &sessions[n++]);
  CHECK(nt_relay_open(relay, &p, &bob, ta, tb) == NATTER_ERR_INVALID);
  /* Another address and key: bob's 33rd channel. */
  p = party("k22", 22, &ip3, &sessions[n++]);
  CHECK(nt_relay_open(relay, &p, &bob, ta, tb) == 0);
  nt_relay_stats st;
  nt_relay_get_stats(relay, &st);
  CHECK(st.channels == 33 && st.refused == 2);

  /* Fill the relay from 32 more addresses, 2 keys each. */
  for (int a = 1; st.channels < NT_RELAY_MAX_CHANNELS && a <= 32; a++) {
    char text[32];
    snprintf(text, sizeof(text), "127.0.1.%d", a);
    struct sockaddr_in ip = sin_of(text, 0);
    for (int i = 0;
         i < NT_RELAY_MAX_PER_ADDRESS && st.channels < NT_RELAY_MAX_CHANNELS;
         i++) {
      p = party("filler", (uint8_t)(30 + 2 * a + i / NT_RELAY_MAX_PER_KEY), &ip,
                &sessions[n++]);
      CHECK(nt_relay_open(relay, &p, &bob, ta, tb) == 0);
      nt_relay_get_stats(relay, &st);
    }
  }
  CHECK(st.channels == NT_RELAY_MAX_CHANNELS);
  struct sockaddr_in ip4 = sin_of("127.0.0.4", 0);
  p = party("late", 250, &ip4, &sessions[n++]);
  CHECK(nt_relay_open(relay, &p, &bob, ta, tb) == NATTER_ERR_INVALID);
  /* The first requester leaves: its one channel goes at once. */
  nt_relay_close_session(relay, &sessions[0]);
  nt_relay_get_stats(relay, &st);
  CHECK(st.channels == NT_RELAY_MAX_CHANNELS - 1);
  CHECK(nt_relay_open(relay, &p, &bob, ta, tb) == 0);
  /* bob leaves: every channel goes. */
  nt_relay_close_session(relay, &bob_session);
  nt_relay_get_stats(relay, &st);
  CHECK(st.channels == 0);
  nt_relay_free(relay);
  event_base_free(base);
}

static int got_closed(void *arg) {
  peer **p = arg;
  return p[0]->closed >= 1 && p[1]->closed >= 1;
}

/* A session that ends closes its channels now: both sides hear CLOSED
 * (LEFT), its token is unknown from then on (no answer), other channels
 * carry on. A session carried over by a new one (same client, new
 * connection, new address) keeps its channels, bound to the new
 * address. */
static void test_sessions(void) {
  struct event_base *base = event_base_new();
  nt_relay *relay = relay_new(base, 0, 0);
  if (!relay) {
    return;
  }
  uint16_t port = nt_relay_port(relay);
  peer alice, bob1, carol, bob2, alice_moved;
  peer_open(&alice, base, "127.0.0.2");
  peer_open(&bob1, base, "127.0.0.1");
  peer_open(&carol, base, "127.0.0.3");
  peer_open(&bob2, base, "127.0.0.1");
  peer_open(&alice_moved, base, "127.0.0.4");
  struct sockaddr_in ip_a = sin_of("127.0.0.2", 0),
                     ip_b = sin_of("127.0.0.1", 0),
                     ip_c = sin_of("127.0.0.3", 0),
                     ip_moved = sin_of("127.0.0.4", 0);
  int sa, sa2, sb, sc;
  nt_relay_party pa = party("alice", 1, &ip_a, &sa),
                 pb = party("bob", 2, &ip_b, &sb),
                 pc = party("carol", 3, &ip_c, &sc);
  CHECK(channel_open(base, relay, &pa, &alice, &pb, &bob1) == 0);
  CHECK(channel_open(base, relay, &pc, &carol, &pb, &bob2) == 0);

  /* alice's client comes back on a new connection from 127.0.0.4: her
   * channel moves along; her old address no longer binds it. */
  nt_relay_move_session(relay, &sa, &sa2, (struct sockaddr *)&ip_moved);
  nt_relay_close_session(relay, &sa); /* the old session ends: nothing */
  nt_relay_stats st;
  nt_relay_get_stats(relay, &st);
  CHECK(st.channels == 2);
  uint8_t pkt[2048];
  size_t alice_got = alice.got;
  send_raw(alice.fd, pkt, make_data(pkt, alice.token, 1, 100), port);
  memcpy(alice_moved.token, alice.token, NT_RELAY_TOKEN_LEN);
  send_raw(alice_moved.fd, pkt, make_data(pkt, alice.token, 2, 100), port);
  wanted w = {{&bob1, NULL, NULL, NULL}, {1}, {0}};
  CHECK(run_until(base, have_wanted, &w, 5000));
  pump(base);
  CHECK(bob1.data == 1 && bob1.seq[0] == 2);
  CHECK(alice.got == alice_got);

  /* The new session ends: both sides of its channel hear it. */
  nt_relay_close_session(relay, &sa2);
  peer *both[2] = {&alice_moved, &bob1};
  CHECK(run_until(base, got_closed, both, 5000));
  CHECK(alice_moved.closed_reason == NT_RELAY_CLOSED_LEFT);
  CHECK(bob1.closed_reason == NT_RELAY_CLOSED_LEFT);
  nt_relay_get_stats(relay, &st);
  CHECK(st.channels == 1);
  /* Its token is gone: no answer. */
  size_t before = alice_moved.got;
  send_raw(alice_moved.fd, pkt, make_data(pkt, alice.token, 3, 100), port);
  /* carol and bob carry on. */
  send_raw(carol.fd, pkt, make_data(pkt, carol.token, 4, 100), port);
  wanted w2 = {{&bob2, NULL, NULL, NULL}, {1}, {0}};
  CHECK(run_until(base, have_wanted, &w2, 5000));
  pump(base);
  CHECK(alice_moved.got == before);
  CHECK(bob1.data == 1);
  CHECK(bob2.closed == 0 && carol.closed == 0);

  peer_close(&alice);
  peer_close(&bob1);
  peer_close(&carol);
  peer_close(&bob2);
  peer_close(&alice_moved);
  nt_relay_free(relay);
  event_base_free(base);
}

/* A requester at another broker: a party with no session of ours, known
 * by the key and address its broker put in the note. */
static void test_remote_requester(void) {
  struct event_base *base = event_base_new();
  nt_relay *relay = relay_new(base, 0, 0);
  if (!relay) {
    return;
  }
  uint16_t port = nt_relay_port(relay);
  peer alice, bob, mallory;
  peer_open(&alice, base, "127.0.0.2");
  peer_open(&bob, base, "127.0.0.1");
  peer_open(&mallory, base, "127.0.0.5");
  struct sockaddr_in ip_a = sin_of("127.0.0.2", 0),
                     ip_b = sin_of("127.0.0.1", 0);
  int sb;
  nt_relay_party pa = party("alice", 1, &ip_a, NULL),
                 pb = party("bob", 2, &ip_b, &sb);
  CHECK(nt_relay_open(relay, &pa, &pb, alice.token, bob.token) == 0);
  memcpy(mallory.token, alice.token, NT_RELAY_TOKEN_LEN);

  /* mallory holds alice's token but not her address: no echo, nothing
   * bound, nothing forwarded. */
  uint8_t pkt[2048];
  nt_relay_stats st0, st;
  nt_relay_get_stats(relay, &st0);
  nt_relay_hdr_encode(pkt, NT_RELAY_BIND, mallory.token);
  send_raw(mallory.fd, pkt, NT_RELAY_HDR_LEN, port);
  send_raw(mallory.fd, pkt, make_data(pkt, mallory.token, 1, 100), port);
  /* bob binds; then alice, from the address in the note. */
  nt_relay_hdr_encode(pkt, NT_RELAY_BIND, bob.token);
  send_raw(bob.fd, pkt, NT_RELAY_HDR_LEN, port);
  nt_relay_hdr_encode(pkt, NT_RELAY_BIND, alice.token);
  send_raw(alice.fd, pkt, NT_RELAY_HDR_LEN, port);
  peer *both[2] = {&alice, &bob};
  CHECK(run_until(base, bound_pair, both, 5000));
  send_raw(alice.fd, pkt, make_data(pkt, alice.token, 2, 100), port);
  wanted w = {{&bob, NULL, NULL, NULL}, {1}, {0}};
  CHECK(run_until(base, have_wanted, &w, 5000));
  pump(base);
  CHECK(mallory.got == 0);
  CHECK(bob.data == 1 && bob.seq[0] == 2);
  nt_relay_get_stats(relay, &st);
  CHECK(st.dropped == st0.dropped + 2);
  /* alice's key pays for the channel. */
  uint64_t used, rate, total;
  unsigned channels;
  nt_relay_key_usage(relay, key_of(1), nt_monotonic_ns(), &used, &channels,
                     &rate, &total);
  CHECK(channels == 1 && used == 100);
  nt_relay_key_usage(relay, key_of(2), nt_monotonic_ns(), &used, &channels,
                     &rate, &total);
  CHECK(channels == 0 && used == 0);

  /* No session of ours ends it but the listener's; a NULL one is none. */
  nt_relay_close_session(relay, NULL);
  nt_relay_get_stats(relay, &st);
  CHECK(st.channels == 1);
  nt_relay_close_session(relay, &sb);
  CHECK(run_until(base, got_closed, both, 5000));
  nt_relay_get_stats(relay, &st);
  CHECK(st.channels == 0);

  /* Or it idles out. */
  CHECK(nt_relay_open(relay, &pa, &pb, alice.token, bob.token) == 0);
  nt_relay_sweep(relay,
                 nt_monotonic_ns() + (uint64_t)NT_RELAY_IDLE_S * 1000000000ull);
  nt_relay_get_stats(relay, &st);
  CHECK(st.channels == 0);

  peer_close(&alice);
  peer_close(&bob);
  peer_close(&mallory);
  nt_relay_free(relay);
  event_base_free(base);
}

#define S_NS 1000000000ull

/* The accounts themselves, on a clock of our own: the rate's bucket, the
 * total within its window and afresh after it, totals remembered after
 * the last channel (a bounded number of them), an IPv6 /64 as one
 * address, v4-mapped IPv6 as IPv4. */
static void test_budget_accounts(void) {
  nt_relay_budget b;
  uint8_t seed[NT_HASHMAP_SEED_LEN] = {0};
  nt_relay_account *over;
  uint64_t t = 5 * S_NS;
  nt_relay_budget_init(&b, 1000, 3000, 10 * S_NS, seed);

  nt_relay_account *k = nt_relay_account_of_key(&b, key_of(7), t);
  struct sockaddr_in ip = sin_of("192.0.2.7", 0);
  nt_relay_account *a =
      nt_relay_account_of_address(&b, (struct sockaddr *)&ip, t);
  CHECK(k && a && k != a);
  CHECK(strcmp(a->label, "192.0.2.7") == 0);
  CHECK(strncmp(k->label, "key 0707070707070707", 20) == 0);
  nt_relay_account *both[2] = {k, a};
  CHECK(nt_relay_spend(&b, both, 2, 1000, t, &over) == NT_RELAY_SPEND_OK);
  CHECK(nt_relay_spend(&b, both, 2, 1, t, &over) == NT_RELAY_SPEND_RATE);
  CHECK(over == k);
  CHECK(nt_relay_spend(&b, &a, 1, 1, t, &over) == NT_RELAY_SPEND_RATE);
  CHECK(over == a && a->used == 1000 && k->used == 1000);
  t += S_NS;
  CHECK(nt_relay_spend(&b, both, 2, 1000, t, &over) == NT_RELAY_SPEND_OK);
  t += S_NS;
  CHECK(nt_relay_spend(&b, both, 2, 1000, t, &over) == NT_RELAY_SPEND_OK);
  t += S_NS;
  /* 3000 in this window: the total says no, whatever the rate says. */
  CHECK(nt_relay_spend(&b, both, 2, 1, t, &over) == NT_RELAY_SPEND_TOTAL);
  CHECK(over == k);

  /* No channel left: the totals are remembered, the same accounts come
   * back. */
  nt_relay_account_release(&b, k, t);
  nt_relay_account_release(&b, a, t);
  CHECK(nt_relay_budget_accounts(&b) == 2);
  CHECK(nt_relay_account_of_key(&b, key_of(7), t) == k);
  CHECK(nt_relay_spend(&b, &k, 1, 1, t, &over) == NT_RELAY_SPEND_TOTAL);
  /* 10 s after the first byte: afresh. */
  t = 5 * S_NS + 10 * S_NS;
  CHECK(nt_relay_spend(&b, &k, 1, 1000, t, &over) == NT_RELAY_SPEND_OK);
  CHECK(k->used == 1000);
  nt_relay_account_release(&b, k, t);
  nt_relay_budget_expire(&b, t + 10 * S_NS);
  CHECK(nt_relay_budget_accounts(&b) == 0);

  /* IPv6 by /64; v4-mapped as IPv4. */
  struct sockaddr_in6 s6;
  memset(&s6, 0, sizeof(s6));
  s6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8:1:2::1", &s6.sin6_addr);
  nt_relay_account *v6a =
      nt_relay_account_of_address(&b, (struct sockaddr *)&s6, t);
  inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &s6.sin6_addr);
  nt_relay_account *v6b =
      nt_relay_account_of_address(&b, (struct sockaddr *)&s6, t);
  inet_pton(AF_INET6, "2001:db8:1:3::1", &s6.sin6_addr);
  nt_relay_account *v6c =
      nt_relay_account_of_address(&b, (struct sockaddr *)&s6, t);
  CHECK(v6a && v6a == v6b && v6a != v6c);
  CHECK(strcmp(v6a->label, "2001:db8:1:2::/64") == 0);
  inet_pton(AF_INET6, "::ffff:192.0.2.7", &s6.sin6_addr);
  nt_relay_account *mapped =
      nt_relay_account_of_address(&b, (struct sockaddr *)&s6, t);
  a = nt_relay_account_of_address(&b, (struct sockaddr *)&ip, t);
  CHECK(mapped && mapped == a);
  nt_relay_account_release(&b, v6a, t);
  nt_relay_account_release(&b, v6b, t);
  nt_relay_account_release(&b, v6c, t);
  nt_relay_account_release(&b, mapped, t);
  nt_relay_account_release(&b, a, t);
  /* Nothing used: nothing kept. */
  CHECK(nt_relay_budget_accounts(&b) == 0);

  /* At most NT_RELAY_KEPT_ACCOUNTS totals of addresses remembered (the
   * oldest go), and as many of keys: fresh keys never push out an
   * address's total. */
  struct sockaddr_in first = sin_of("10.0.0.0", 0);
  for (unsigned i = 0; i < NT_RELAY_KEPT_ACCOUNTS + 10; i++) {
    struct sockaddr_in x = sin_of("10.0.0.0", 0);
    x.sin_addr.s_addr = htonl(0x0a000000u + i);
    nt_relay_account *acct =
        nt_relay_account_of_address(&b, (struct sockaddr *)&x, t);
    CHECK(acct != NULL);
    if (!acct) {
      break;
    }
    CHECK(nt_relay_spend(&b, &acct, 1, 1, t, &over) == NT_RELAY_SPEND_OK);
    nt_relay_account_release(&b, acct, t);
  }
  CHECK(nt_relay_budget_accounts(&b) == NT_RELAY_KEPT_ACCOUNTS);
  nt_relay_account *last = nt_relay_account_of_address(
      &b, (struct sockaddr *)&first, t); /* the oldest: forgotten */
  CHECK(last && last->used == 0);
  nt_relay_account_release(&b, last, t);
  struct sockaddr_in newest = sin_of("10.0.0.0", 0);
  newest.sin_addr.s_addr = htonl(0x0a000000u + NT_RELAY_KEPT_ACCOUNTS + 9);
  for (unsigned i = 0; i < NT_RELAY_KEPT_ACCOUNTS + 10; i++) {
    uint8_t fp[NT_FINGERPRINT_LEN] = {0};
    memcpy(fp, &i, sizeof(i));
    nt_relay_account *acct = nt_relay_account_of_key(&b, fp, t);
    CHECK(acct != NULL);
    if (!acct) {
      break;
    }
    CHECK(nt_relay_spend(&b, &acct, 1, 1, t, &over) == NT_RELAY_SPEND_OK);
    nt_relay_account_release(&b, acct, t);
  }
  CHECK(nt_relay_budget_accounts(&b) == 2 * NT_RELAY_KEPT_ACCOUNTS);
  last = nt_relay_account_of_address(&b, (struct sockaddr *)&newest, t);
  CHECK(last && last->used == 1); /* still remembered */
  nt_relay_account_release(&b, last, t);
  nt_relay_budget_clear(&b);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"batches", test_batches},
      {"total_in_a_batch", test_total_in_a_batch},
      {"rate_in_a_batch", test_rate_in_a_batch},
      {"tamper_hook", test_tamper_hook},
      {"sender_pays", test_sender_pays},
      {"rate_per_key_and_address", test_rate_per_key_and_address},
      {"channel_caps", test_channel_caps},
      {"sessions", test_sessions},
      {"budget_accounts", test_budget_accounts},
      {"remote_requester", test_remote_requester},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
