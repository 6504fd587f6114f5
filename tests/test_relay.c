/* The broker's relay (src/broker/relay.c) on loopback, in process: datagrams a
 * client sends one by one and as GSO trains (which the relay reads as GRO
 * trains), several hundred in flight, reach the other side intact, in
 * order, each behind the receiver's token; the relay's rules hold for
 * every datagram of a batch: a wrong source IP or an unknown token is
 * dropped and never answered, the rate and total caps count each
 * datagram, and a channel past its total sends CLOSED to both sides. */
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
#include "test.h"
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
  memset(&msg, 0, sizeof(msg));
  memset(&ctrl, 0, sizeof(ctrl));
  msg.msg_name = &to;
  msg.msg_namelen = sizeof(to);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl.buf;
  msg.msg_controllen = sizeof(ctrl.buf);
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  uint16_t s = (uint16_t)seg;
  memcpy(CMSG_DATA(cm), &s, sizeof(s));
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

static int both_bound(void *arg) {
  relay_pair *rp = arg;
  return rp->a.binds == 1 && rp->b.binds == 1;
}

/* A relay with |rate| and |total|, a channel between two clients on
 * 127.0.0.1, both bound. */
static int pair_open(relay_pair *rp, uint64_t rate, uint64_t total) {
  nt_relay_config cfg;
  char err[256];
  struct sockaddr_in ip = sin_of("127.0.0.1", 0);
  uint8_t bind_pkt[NT_RELAY_HDR_LEN];

  memset(rp, 0, sizeof(*rp));
  memset(&cfg, 0, sizeof(cfg));
  struct sockaddr_in any = sin_of("127.0.0.1", 0);
  memcpy(&cfg.bind.ss, &any, sizeof(any));
  cfg.bind.len = sizeof(any);
  cfg.rate = rate;
  cfg.total = total;
  cfg.log = &quiet;
  rp->base = event_base_new();
  if (nt_relay_new(&rp->relay, rp->base, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "nt_relay_new: %s\n", err);
    CHECK(!"relay opens");
    return -1;
  }
  rp->port = nt_relay_port(rp->relay);
  peer_open(&rp->a, rp->base, "127.0.0.1");
  peer_open(&rp->b, rp->base, "127.0.0.1");
  CHECK(nt_relay_open(rp->relay, "alice", (struct sockaddr *)&ip, "bob",
                      (struct sockaddr *)&ip, rp->a.token, rp->b.token) == 0);
  nt_relay_hdr_encode(bind_pkt, NT_RELAY_BIND, rp->a.token);
  send_raw(rp->a.fd, bind_pkt, sizeof(bind_pkt), rp->port);
  nt_relay_hdr_encode(bind_pkt, NT_RELAY_BIND, rp->b.token);
  send_raw(rp->b.fd, bind_pkt, sizeof(bind_pkt), rp->port);
  CHECK(run_until(rp->base, both_bound, rp, 5000));
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

int main(void) {
  static const nt_test_case cases[] = {
      {"batches", test_batches},
      {"total_in_a_batch", test_total_in_a_batch},
      {"rate_in_a_batch", test_rate_in_a_batch},
      {"tamper_hook", test_tamper_hook},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
