/* The broker's relay (relay.h): channels of opaque datagrams between two
 * introduced clients, bounded per client by a byte rate and a total. */
#include "broker/relay.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "quic/endpoint.h"
#include "base/hashmap.h"
#include "natter.h"
#include "codec/spec.h"
#include "trust/tls.h"
#include "quic/udpsock.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* Reading: nt_udp_recv_batch (udpsock.h); with UDP_GRO one buffer may
 * hold a train of up to 64 same-sized datagrams from one sender (a
 * client's GSO batch), split again there. Per wake-up at most this many
 * reads and datagrams, so that the broker's control traffic on the same
 * loop gets its turn. */
#define RELAY_RECV_ROUNDS 4
#define RELAY_RECV_MAX_PACKETS 1024
/* Sending: what one read batch forwards is queued (at most this many
 * datagrams; a fuller queue is sent early) and sent with one sendmmsg,
 * consecutive datagrams on one route in one UDP_SEGMENT (GSO) message: a
 * GSO message may not exceed 64 segments nor 64 KiB. */
#define RELAY_OUT_MAX 256
#define RELAY_GSO_MAX_SEGMENTS 64
#define RELAY_GSO_MAX_BYTES 65507
#define RELAY_SOCKBUF (4 * 1024 * 1024)
#define RELAY_SWEEP_S 5 /* idle channels are looked for this often */
#define RELAY_LOG_EVERY_NS 1000000000ull /* a limit is logged once a second */

typedef struct relay_account relay_account;
typedef struct relay_channel relay_channel;

/* What one client (by name) may still relay. */
struct relay_account {
  char name[NT_NAME_MAX + 1];
  uint64_t used; /* bytes relayed in all */
  double bucket; /* bytes it may relay now (token bucket) */
  uint64_t bucket_ns;
  unsigned channels;  /* open channels naming it */
  uint64_t logged_ns; /* when its last limit line was logged */
};

typedef struct relay_side {
  relay_channel *ch;
  int idx; /* 0 or 1 */
  uint8_t token[NT_RELAY_TOKEN_LEN];
  nt_addr ip;   /* its broker connection's address: binding must come
                   from this IP */
  nt_addr addr; /* where its packets come from; len 0 until bound */
  nt_addr dst;  /* our address they arrive at, where packets to it leave
                   from (udpsock.h); len 0: unknown */
  relay_account *acct;
} relay_side;

struct relay_channel {
  relay_side side[2];
  uint64_t last_ns;
  int closed; /* a budget ran out: answer CLOSED, forward nothing */
  TAILQ_ENTRY(relay_channel) link;
};

/* One datagram to send, queued while a read batch is handled and sent
 * after it (relay_send_queued). Its bytes stay where they are: in the
 * receive buffers (a forwarded packet, a BIND echo) or in |signal|.
 * Whatever else a send needs per datagram (a source address, say) goes
 * here beside |to|, into same_route and into relay_send_queued's cmsgs. */
typedef struct relay_out {
  const uint8_t *data;
  size_t len;
  nt_addr to; /* as the socket wants it (v4-mapped on a dual-stack one) */
  nt_addr src; /* our address the receiver sends to; len 0: the kernel's */
  uint8_t signal[NT_RELAY_HDR_LEN + 1]; /* a CLOSED signal's bytes */
} relay_out;

struct nt_relay {
  struct event_base *base;
  nt_relay_config cfg;
  int fd;
  int family, v6only; /* the socket's (udpsock.h) */
  uint16_t port;
  struct event *read_ev, *sweep_ev;
  nt_hashmap tokens;   /* token -> relay_side */
  nt_hashmap accounts; /* name -> relay_account */
  TAILQ_HEAD(, relay_channel) channels;
  size_t nchannels;
  uint64_t logged_ns; /* last "too many channels" line */
  nt_relay_stats st;
  /* Tests only (NATTER_TEST_RELAY_TAMPER=N): flip one bit in every Nth
   * relayed packet, to show that the peers reject what the relay
   * alters. 0: never. */
  unsigned long tamper_every;
  uint64_t tampered;
  int gso_ok;     /* UDP_SEGMENT works on this socket */
  uint8_t *rxbuf; /* NT_UDP_RECV_BATCH * NT_UDP_RECV_BUFSIZE */
  relay_out out[RELAY_OUT_MAX];
  size_t nout;
};

static relay_account *account_get(nt_relay *r, const char *name) {
  relay_account *a = nt_hashmap_get(&r->accounts, name, strlen(name));
  if (a) {
    return a;
  }
  a = calloc(1, sizeof(*a));
  if (!a) {
    return NULL;
  }
  snprintf(a->name, sizeof(a->name), "%s", name);
  a->bucket = (double)r->cfg.rate;
  a->bucket_ns = nt_monotonic_ns();
  if (nt_hashmap_put(&r->accounts, a->name, strlen(a->name), a) != 0) {
    free(a);
    return NULL;
  }
  return a;
}

/* An account is kept while a channel names it, and afterwards while it
 * has used bytes (so that closing and reopening channels does not reset
 * the total). */
static void account_release(nt_relay *r, relay_account *a) {
  if (a && --a->channels == 0 && a->used == 0) {
    nt_hashmap_remove(&r->accounts, a->name, strlen(a->name));
    free(a);
  }
}

static void channel_free(nt_relay *r, relay_channel *ch) {
  for (int i = 0; i < 2; i++) {
    nt_hashmap_remove(&r->tokens, ch->side[i].token, NT_RELAY_TOKEN_LEN);
    account_release(r, ch->side[i].acct);
  }
  TAILQ_REMOVE(&r->channels, ch, link);
  r->nchannels--;
  free(ch);
}

/* Two queued datagrams that may share one GSO message: same destination
 * (and the same everything else a message carries for all its segments). */
static int same_route(const relay_out *a, const relay_out *b) {
  return nt_addr_equal((const struct sockaddr *)&a->to.ss,
                       (const struct sockaddr *)&b->to.ss) &&
         a->src.len == b->src.len &&
         (!a->src.len || nt_addr_equal((const struct sockaddr *)&a->src.ss,
                                       (const struct sockaddr *)&b->src.ss));
}

/* Sends everything queued, in order, and empties the queue: every
 * datagram of the relay leaves through here. Runs of datagrams on one
 * route, all of one size but the last (which may be shorter), go as one
 * GSO message; all messages in one sendmmsg. A datagram the kernel
 * refuses is dropped, as a sendto's would be: QUIC resends. */
static void relay_send_queued(nt_relay *r) {
  struct mmsghdr msgs[RELAY_OUT_MAX];
  struct iovec iovs[RELAY_OUT_MAX];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t)) + NT_UDP_PKTINFO_SPACE];
    struct cmsghdr align;
  } ctrl[RELAY_OUT_MAX];
  size_t first[RELAY_OUT_MAX + 1]; /* msgs[k] carries out[first[k]..] */
  int sourced[RELAY_OUT_MAX];      /* msgs[k] names its source address */
  size_t nmsgs = 0;

  for (size_t i = 0; i < r->nout;) {
    const relay_out *o = &r->out[i];
    size_t j = i + 1, bytes = o->len;
    while (r->gso_ok && j < r->nout && j - i < RELAY_GSO_MAX_SEGMENTS &&
           r->out[j - 1].len == o->len && r->out[j].len <= o->len &&
           bytes + r->out[j].len <= RELAY_GSO_MAX_BYTES &&
           same_route(o, &r->out[j])) {
      bytes += r->out[j].len;
      j++;
    }
    struct msghdr *mh = &msgs[nmsgs].msg_hdr;
    memset(&msgs[nmsgs], 0, sizeof(msgs[nmsgs]));
    mh->msg_name = (void *)&o->to.ss;
    mh->msg_namelen = o->to.len;
    mh->msg_iov = &iovs[i];
    mh->msg_iovlen = j - i;
    for (size_t k = i; k < j; k++) {
      iovs[k].iov_base = (void *)r->out[k].data;
      iovs[k].iov_len = r->out[k].len;
    }
    size_t room = 0;
    memset(&ctrl[nmsgs], 0, sizeof(ctrl[nmsgs]));
    if (j - i > 1) {
      struct cmsghdr *cm = (struct cmsghdr *)ctrl[nmsgs].buf;
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = (uint16_t)o->len;
      memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
      room = CMSG_SPACE(sizeof(uint16_t));
    }
    /* From the address the receiver sends to (udpsock.h). */
    size_t src_room =
        o->src.len ? nt_udp_put_source(
                         (struct cmsghdr *)(ctrl[nmsgs].buf + room), r->family,
                         (const struct sockaddr *)&o->to.ss, &o->src)
                   : 0;
    sourced[nmsgs] = src_room != 0;
    room += src_room;
    mh->msg_control = room ? ctrl[nmsgs].buf : NULL;
    mh->msg_controllen = room;
    first[nmsgs++] = i;
    i = j;
  }
  first[nmsgs] = r->nout;
  r->nout = 0;

  for (size_t k = 0; k < nmsgs;) {
    int n = sendmmsg(r->fd, msgs + k, (unsigned)(nmsgs - k), MSG_DONTWAIT);
    if (n > 0) {
      for (size_t m = k; m < k + (size_t)n; m++) {
        r->st.tx += msgs[m].msg_len;
      }
      k += (size_t)n;
      continue;
    }
    int err = n < 0 ? errno : EIO;
    if (err == EINTR) {
      continue;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) {
      return; /* the send buffer is full: the rest would fail as well */
    }
    size_t segs = first[k + 1] - first[k];
    int source_gone = sourced[k] && (err == EINVAL || err == EADDRNOTAVAIL ||
                                     err == ENETUNREACH);
    if ((segs > 1 && (err == EIO || err == EINVAL || err == EOPNOTSUPP)) ||
        source_gone) {
      /* No GSO on this route (EINVAL: a segment above its MTU, say) or at
       * all (EIO, EOPNOTSUPP: the device), or our address the receiver
       * sent to has left the host: this message one by one, and from
       * the address the kernel picks. */
      if (segs > 1 && err != EINVAL && !source_gone) {
        r->gso_ok = 0;
      }
      struct msghdr one = msgs[k].msg_hdr;
      one.msg_control = NULL;
      one.msg_controllen = 0;
      one.msg_iovlen = 1;
      for (size_t m = 0; m < segs; m++) {
        one.msg_iov = msgs[k].msg_hdr.msg_iov + m;
        ssize_t sent = sendmsg(r->fd, &one, MSG_DONTWAIT);
        if (sent > 0) {
          r->st.tx += (uint64_t)sent;
        }
      }
    }
    k++; /* dropped */
  }
}

/* Queues |len| bytes at |data| (which must stay put until the queue is
 * sent) for |to|. Returns the queued datagram, or NULL when the socket
 * cannot reach |to|. */
static relay_out *queue_to(nt_relay *r, const uint8_t *data, size_t len,
                           const relay_side *side) {
  const nt_addr *to = &side->addr;
  if (r->nout == RELAY_OUT_MAX) {
    relay_send_queued(r);
  }
  relay_out *o = &r->out[r->nout];
  o->to.len = nt_addr_for_socket(r->family, r->v6only,
                                 (const struct sockaddr *)&to->ss, &o->to.ss);
  if (!o->to.len) {
    return NULL;
  }
  o->src = side->dst;
  o->data = data;
  o->len = len;
  r->nout++;
  return o;
}

static void send_closed(nt_relay *r, relay_side *s, uint8_t reason) {
  if (!s->addr.len) {
    return;
  }
  relay_out *o = queue_to(r, NULL, NT_RELAY_HDR_LEN + 1, s);
  if (o) {
    nt_relay_hdr_encode(o->signal, NT_RELAY_CLOSED, s->token);
    o->signal[NT_RELAY_HDR_LEN] = reason;
    o->data = o->signal;
  }
}

/* Takes |n| bytes from |a|'s rate and total. Returns 1 when allowed, 0
 * over the rate (drop), -1 once the total is used up (close). */
static int account_take(nt_relay *r, relay_account *a, size_t n, uint64_t now) {
  const nt_relay_config *cfg = &r->cfg;
  if (cfg->total && a->used + n > cfg->total) {
    return -1;
  }
  if (cfg->rate) {
    a->bucket += (double)(now - a->bucket_ns) * (double)cfg->rate / 1e9;
    a->bucket_ns = now;
    /* One second's worth of burst. */
    if (a->bucket > (double)cfg->rate) {
      a->bucket = (double)cfg->rate;
    }
    if (a->bucket < (double)n) {
      r->st.dropped_rate++;
      if (now - a->logged_ns >= RELAY_LOG_EVERY_NS) {
        a->logged_ns = now;
        nt_warn(cfg->log,
                "relay: %s is over its rate (%llu bytes/s, -relay-rate); "
                "dropping its relayed packets",
                a->name, (unsigned long long)cfg->rate);
      }
      return 0;
    }
    a->bucket -= (double)n;
  }
  a->used += n;
  return 1;
}

static void relay_datagram(nt_relay *r, uint8_t *data, size_t len,
                           const struct sockaddr *from, socklen_t fromlen,
                           const nt_addr *dst, uint64_t now) {
  const uint8_t *token;
  int type = nt_relay_hdr_decode(data, len, &token);
  relay_side *s =
      type ? nt_hashmap_get(&r->tokens, token, NT_RELAY_TOKEN_LEN) : NULL;
  if (!s || type == NT_RELAY_CLOSED || fromlen > sizeof(s->addr.ss) ||
      !nt_addr_same_host(from, (struct sockaddr *)&s->ip.ss)) {
    /* Unknown tokens get no answer: nothing here reflects traffic at an
     * address that did not prove it holds a channel. */
    r->st.dropped++;
    return;
  }
  relay_channel *ch = s->ch;
  relay_side *other = &ch->side[1 - s->idx];
  /* The client may have moved (NAT rebinding): its latest packet says
   * where it is. Only it and the broker know its token. */
  memcpy(&s->addr.ss, from, fromlen);
  s->addr.len = fromlen;
  s->dst = *dst;
  ch->last_ns = now;
  if (ch->closed) {
    send_closed(r, s, NT_RELAY_CLOSED_TOTAL);
    return;
  }
  if (type == NT_RELAY_BIND) {
    /* The echo tells the client the relay hears it; as small as the
     * request. */
    queue_to(r, data, NT_RELAY_HDR_LEN, s);
    return;
  }
  if (!other->addr.len) {
    r->st.dropped++; /* the peer has not bound yet: QUIC resends */
    return;
  }
  size_t payload = len - NT_RELAY_HDR_LEN;
  int ok = account_take(r, s->acct, payload, now);
  if (ok == 1) {
    ok = account_take(r, other->acct, payload, now);
  }
  if (ok < 0) {
    relay_account *a =
        s->acct->used + payload > r->cfg.total ? s->acct : other->acct;
    nt_warn(r->cfg.log,
            "relay: %s used up its %llu relayed bytes (-relay-total); "
            "closing the relayed path between %s and %s",
            a->name, (unsigned long long)r->cfg.total, s->acct->name,
            other->acct->name);
    ch->closed = 1;
    send_closed(r, s, NT_RELAY_CLOSED_TOTAL);
    send_closed(r, other, NT_RELAY_CLOSED_TOTAL);
    return;
  }
  if (ok == 0) {
    return;
  }
  /* Same buffer, the receiver's token in place of the sender's. */
  nt_relay_hdr_encode(data, NT_RELAY_DATA, other->token);
  if (r->tamper_every && payload && (r->st.rx / 1200) % r->tamper_every == 0) {
    data[len - 1] ^= 0x01; /* inside the AEAD tag or the ciphertext */
    r->tampered++;
  }
  queue_to(r, data, len, other);
  r->st.relayed += payload;
}

typedef struct read_ctx {
  nt_relay *r;
  uint64_t now;
} read_ctx;

/* |dst|: where the datagram was sent; replies come from it. */
static void read_one(uint8_t *data, size_t len, const struct sockaddr *from,
                     socklen_t fromlen, const nt_addr *dst, void *ud) {
  read_ctx *rc = ud;
  rc->r->st.rx += (uint64_t)len;
  relay_datagram(rc->r, data, len, from, fromlen, dst, rc->now);
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
  read_ctx rc = {arg, 0};
  size_t packets = 0;
  int full = 1;
  (void)what;

  for (int round = 0; round < RELAY_RECV_ROUNDS &&
                      packets < RELAY_RECV_MAX_PACKETS && full;
       round++) {
    rc.now = nt_monotonic_ns();
    packets += nt_udp_recv_batch(fd, rc.r->rxbuf, read_one, &rc, &full);
    /* Before the next read reuses the buffers the queue points into. */
    relay_send_queued(rc.r);
  }
}

void nt_relay_input(nt_relay *r, uint8_t *data, size_t len,
                    const struct sockaddr *from, socklen_t fromlen,
                    const nt_addr *dst, uint64_t now) {
  r->st.rx += (uint64_t)len;
  relay_datagram(r, data, len, from, fromlen, dst, now);
  relay_send_queued(r);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nt_relay_sweep(arg, nt_monotonic_ns());
}

void nt_relay_sweep(nt_relay *r, uint64_t now) {
  relay_channel *ch, *next;
  for (ch = TAILQ_FIRST(&r->channels); ch; ch = next) {
    next = TAILQ_NEXT(ch, link);
    if (now - ch->last_ns >= (uint64_t)NT_RELAY_IDLE_S * 1000000000ull) {
      channel_free(r, ch);
    }
  }
}

int nt_relay_open(nt_relay *r, const char *name_a, const struct sockaddr *ip_a,
                  const char *name_b, const struct sockaddr *ip_b,
                  uint8_t *token_a, uint8_t *token_b) {
  uint64_t now = nt_monotonic_ns();
  relay_account *a = account_get(r, name_a);
  relay_account *b = account_get(r, name_b);
  if (!a || !b) {
    return NATTER_ERR_NOMEM;
  }
  if (r->nchannels >= NT_RELAY_MAX_CHANNELS ||
      a->channels >= NT_RELAY_MAX_PER_CLIENT ||
      b->channels >= NT_RELAY_MAX_PER_CLIENT) {
    if (now - r->logged_ns >= RELAY_LOG_EVERY_NS) {
      r->logged_ns = now;
      nt_warn(r->cfg.log, "relay: no channel for %s and %s: %s (limit %u%s)",
              name_a, name_b,
              r->nchannels >= NT_RELAY_MAX_CHANNELS
                  ? "the relay is full"
                  : "too many channels for one client",
              r->nchannels >= NT_RELAY_MAX_CHANNELS ? NT_RELAY_MAX_CHANNELS
                                                    : NT_RELAY_MAX_PER_CLIENT,
              r->nchannels >= NT_RELAY_MAX_CHANNELS ? "" : " per client");
    }
    /* Accounts with nothing used go again. */
    a->channels++;
    b->channels++;
    account_release(r, a);
    account_release(r, b);
    return NATTER_ERR_INVALID;
  }
  relay_channel *ch = calloc(1, sizeof(*ch));
  if (!ch) {
    return NATTER_ERR_NOMEM;
  }
  const struct sockaddr *ips[2] = {ip_a, ip_b};
  relay_account *accts[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    relay_side *s = &ch->side[i];
    s->ch = ch;
    s->idx = i;
    s->acct = accts[i];
    s->ip.len = ips[i]->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    memcpy(&s->ip.ss, ips[i], s->ip.len);
    if (nt_random_bytes(s->token, NT_RELAY_TOKEN_LEN) != 0 ||
        nt_hashmap_put(&r->tokens, s->token, NT_RELAY_TOKEN_LEN, s) != 0) {
      if (i == 1) {
        nt_hashmap_remove(&r->tokens, ch->side[0].token, NT_RELAY_TOKEN_LEN);
      }
      free(ch);
      a->channels++;
      b->channels++;
      account_release(r, a);
      account_release(r, b);
      return NATTER_ERR_NOMEM;
    }
  }
  a->channels++;
  b->channels++;
  ch->last_ns = now;
  TAILQ_INSERT_TAIL(&r->channels, ch, link);
  r->nchannels++;
  memcpy(token_a, ch->side[0].token, NT_RELAY_TOKEN_LEN);
  memcpy(token_b, ch->side[1].token, NT_RELAY_TOKEN_LEN);
  return 0;
}

int nt_relay_new(nt_relay **prelay, struct event_base *base,
                 const nt_relay_config *cfg, char *err, size_t errlen) {
  nt_relay *r = calloc(1, sizeof(*r));
  uint8_t seed[NT_HASHMAP_SEED_LEN * 2];
  char addr[NT_ADDR_STRLEN];

  *prelay = NULL;
  if (!r) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  r->base = base;
  r->cfg = *cfg;
  r->fd = -1;
  const char *tamper = getenv("NATTER_TEST_RELAY_TAMPER");
  r->tamper_every = tamper ? strtoul(tamper, NULL, 10) : 0;
  TAILQ_INIT(&r->channels);
  if (nt_random_bytes(seed, sizeof(seed)) != 0) {
    free(r);
    snprintf(err, errlen, "cannot get random bytes");
    return NATTER_ERR_INVALID;
  }
  nt_hashmap_init(&r->tokens, seed);
  nt_hashmap_init(&r->accounts, seed + NT_HASHMAP_SEED_LEN);
  r->fd = nt_udp_open(&cfg->bind, cfg->dual_stack, &r->family, &r->v6only);
  if (r->fd < 0) {
    snprintf(err, errlen, "cannot open the relay port %s: %s",
             nt_addr_str((const struct sockaddr *)&cfg->bind.ss, addr),
             strerror(-r->fd));
    r->fd = -1;
    nt_relay_free(r);
    return NATTER_ERR_ADDR_IN_USE;
  }
  r->rxbuf = malloc((size_t)NT_UDP_RECV_BATCH * NT_UDP_RECV_BUFSIZE);
  if (!r->rxbuf) {
    snprintf(err, errlen, "out of memory");
    nt_relay_free(r);
    return NATTER_ERR_NOMEM;
  }
  /* Relayed connections arrive in bursts (a GSO batch each): buffers as
   * large as the endpoint's, past net.core.[rw]mem_max where we may
   * (CAP_NET_ADMIN). */
  int bufsize = RELAY_SOCKBUF, one = 1;
  if (setsockopt(r->fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize,
                 sizeof(bufsize)) != 0) {
    setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
  }
  if (setsockopt(r->fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize,
                 sizeof(bufsize)) != 0) {
    setsockopt(r->fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
  }
  /* GSO only where the kernel has it: an older one would send a whole
   * batch as one datagram. Per-message cmsgs decide; the socket default
   * stays off. */
  int seg = 1200;
  r->gso_ok = setsockopt(r->fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg)) == 0;
  if (r->gso_ok) {
    seg = 0;
    setsockopt(r->fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg));
  }
  setsockopt(r->fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
  nt_addr local;
  local.len = sizeof(local.ss);
  getsockname(r->fd, (struct sockaddr *)&local.ss, &local.len);
  r->port = nt_addr_port((struct sockaddr *)&local.ss);
  r->read_ev = event_new(base, r->fd, EV_READ | EV_PERSIST, read_cb, r);
  r->sweep_ev = event_new(base, -1, EV_PERSIST, sweep_cb, r);
  struct timeval tv = {RELAY_SWEEP_S, 0};
  if (!r->read_ev || !r->sweep_ev || event_add(r->read_ev, NULL) != 0 ||
      event_add(r->sweep_ev, &tv) != 0) {
    snprintf(err, errlen, "cannot register the relay with the event loop");
    nt_relay_free(r);
    return NATTER_ERR_SOCKET;
  }
  *prelay = r;
  return 0;
}

void nt_relay_free(nt_relay *r) {
  if (!r) {
    return;
  }
  if (r->tamper_every) {
    nt_warn(r->cfg.log,
            "relay: tampered with %llu relayed packets "
            "(NATTER_TEST_RELAY_TAMPER)",
            (unsigned long long)r->tampered);
  }
  relay_channel *ch;
  while ((ch = TAILQ_FIRST(&r->channels)) != NULL) {
    channel_free(r, ch);
  }
  /* Accounts that outlived their channels. */
  for (size_t i = 0; i < r->accounts.capacity; i++) {
    if (r->accounts.slots && r->accounts.slots[i].key) {
      free(r->accounts.slots[i].value);
    }
  }
  nt_hashmap_clear(&r->accounts);
  nt_hashmap_clear(&r->tokens);
  if (r->read_ev) {
    event_free(r->read_ev);
  }
  if (r->sweep_ev) {
    event_free(r->sweep_ev);
  }
  if (r->fd >= 0) {
    close(r->fd);
  }
  free(r->rxbuf);
  free(r);
}

uint16_t nt_relay_port(const nt_relay *r) {
  return r ? r->port : 0;
}

void nt_relay_get_stats(const nt_relay *r, nt_relay_stats *st) {
  memset(st, 0, sizeof(*st));
  if (r) {
    *st = r->st;
    st->channels = r->nchannels;
  }
}
