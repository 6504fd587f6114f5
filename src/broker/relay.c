/* The broker's relay (relay.h): channels of opaque datagrams between two
 * introduced clients, bounded per key and per source address by channel
 * counts, a byte rate and a total (relay_budget.h). */
#include "broker/relay.h"
#include "broker/relay_budget.h"

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
#include "base/budget.h"
#include "base/hashmap.h"
#include "natter.h"
#include "codec/spec.h"
#include "trust/tls.h"
#include "quic/tcp_path.h"
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

/* The limits that are logged, each at most once a second (the lines
 * left out are counted in the next one). */
enum {
  LOG_FULL,
  LOG_KEY_CHANNELS,
  LOG_ADDRESS_CHANNELS,
  LOG_RATE,
  LOG_TOTAL,
  LOG_KINDS
};

typedef struct relay_channel relay_channel;

typedef struct relay_side {
  relay_channel *ch;
  int idx; /* 0 or 1 */
  uint8_t token[NT_RELAY_TOKEN_LEN];
  nt_addr ip;   /* its broker connection's address: binding must come
                   from this IP */
  nt_addr addr; /* where its packets come from; len 0 until bound */
  nt_addr dst;  /* our address they arrive at, where packets to it leave
                   from (udpsock.h); len 0: unknown */
  char name[NT_NAME_MAX + 1];
  const void *session;                    /* its client's broker session */
  nt_relay_account *key_acct, *addr_acct; /* what it sends is charged to
                                             both */
  uint64_t last_ns; /* when it last sent (or the opening) */
} relay_side;

/* Side 0 asked for the channel: its key and address pay for it. */
struct relay_channel {
  relay_side side[2];
  int closed; /* a budget ran out: answer CLOSED, forward nothing */
  uint64_t relayed; /* bytes forwarded, both ways (the dashboard) */
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
  nt_hashmap tokens; /* token -> relay_side */
  nt_relay_budget budget;
  TAILQ_HEAD(, relay_channel) channels;
  size_t nchannels;
  nt_log_gate logged[LOG_KINDS]; /* a line a second per limit */
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
  /* TCP fallback connections to the relay (tcp_path.h) by the key of
   * their pseudo address: what goes there goes over TCP. */
  nt_hashmap tcp;
};

/* Whether a limit of |kind| may be logged now; *suppressed: the lines
 * left out since the last one. */
static int log_due(nt_relay *r, int kind, uint64_t now, unsigned *suppressed) {
  return nt_log_gate_pass(&r->logged[kind], now, suppressed);
}

/* " (and N more like it)" for a line after |n| left out. */
static const char *more(unsigned n, char *buf, size_t len) {
  if (!n) {
    return "";
  }
  snprintf(buf, len, " (and %u more like it)", n);
  return buf;
}

static void channel_free(nt_relay *r, relay_channel *ch) {
  uint64_t now = nt_monotonic_ns();
  ch->side[0].key_acct->channels--;
  ch->side[0].addr_acct->channels--;
  for (int i = 0; i < 2; i++) {
    relay_side *s = &ch->side[i];
    nt_hashmap_remove(&r->tokens, s->token, NT_RELAY_TOKEN_LEN);
    nt_relay_account_release(&r->budget, s->key_acct, now);
    nt_relay_account_release(&r->budget, s->addr_acct, now);
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

  if (nt_hashmap_count(&r->tcp)) {
    /* Datagrams for a TCP fallback connection go there (a copy each);
     * the rest keep their order for the socket. */
    size_t kept = 0;
    for (size_t i = 0; i < r->nout; i++) {
      uint8_t key[NT_TCP_LINK_KEY_LEN];
      nt_tcp_link *link =
          nt_tcp_link_key_of((const struct sockaddr *)&r->out[i].to.ss,
                             key) == 0
              ? nt_hashmap_get(&r->tcp, key, sizeof(key))
              : NULL;
      if (!link) {
        r->out[kept] = r->out[i];
        if (r->out[kept].data == r->out[i].signal) {
          r->out[kept].data = r->out[kept].signal;
        }
        kept++;
      } else if (nt_tcp_link_send(link, r->out[i].data, r->out[i].len, 0) ==
                 0) {
        r->st.tx += r->out[i].len;
      }
    }
    r->nout = kept;
  }
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

/* Logs that |a| is over its rate or used up its total (|what|). */
static void log_spent(nt_relay *r, int what, const nt_relay_account *a,
                      const relay_side *s, const relay_side *other,
                      uint64_t now) {
  char buf[48];
  unsigned n;
  const char *per = a->id[0] == NT_RELAY_BY_KEY ? "key" : "address";
  if (what == NT_RELAY_SPEND_RATE) {
    if (log_due(r, LOG_RATE, now, &n)) {
      nt_warn(r->cfg.log,
              "relay: %s (%s) is over its rate (%llu bytes/s per %s, "
              "-relay-rate); dropping what it sends%s",
              a->label, s->name, (unsigned long long)r->cfg.rate, per,
              more(n, buf, sizeof(buf)));
    }
    return;
  }
  if (log_due(r, LOG_TOTAL, now, &n)) {
    nt_warn(r->cfg.log,
            "relay: %s (%s) used up its %llu relayed bytes per %s this hour "
            "(-relay-total); closing the relayed path between %s and %s%s",
            a->label, s->name, (unsigned long long)r->cfg.total, per, s->name,
            other->name, more(n, buf, sizeof(buf)));
  }
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
  s->last_ns = now;
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
  /* The sender pays, by key and by address: what one side sends never
   * spends the other's budget. */
  size_t payload = len - NT_RELAY_HDR_LEN;
  nt_relay_account *payers[2] = {s->key_acct, s->addr_acct}, *over;
  int spent = nt_relay_spend(&r->budget, payers, 2, payload, now, &over);
  if (spent != NT_RELAY_SPEND_OK) {
    log_spent(r, spent, over, s, other, now);
  }
  if (spent == NT_RELAY_SPEND_TOTAL) {
    ch->closed = 1;
    send_closed(r, s, NT_RELAY_CLOSED_TOTAL);
    send_closed(r, other, NT_RELAY_CLOSED_TOTAL);
    return;
  }
  if (spent == NT_RELAY_SPEND_RATE) {
    r->st.dropped_rate++;
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
  ch->relayed += payload;
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
    uint64_t last = ch->side[0].last_ns < ch->side[1].last_ns
                        ? ch->side[0].last_ns
                        : ch->side[1].last_ns;
    if (now - last >= (uint64_t)NT_RELAY_IDLE_S * 1000000000ull) {
      channel_free(r, ch);
    }
  }
  nt_relay_budget_expire(&r->budget, now);
}

/* Why a requester with these accounts may not have another channel now
 * (a log line's words in |buf|, and the limit's kind), or NULL. */
static const char *open_refusal(const nt_relay *r, const nt_relay_account *key,
                                const nt_relay_account *addr, char *buf,
                                size_t len, int *kind) {
  if (r->nchannels >= NT_RELAY_MAX_CHANNELS) {
    *kind = LOG_FULL;
    snprintf(buf, len, "the relay is full (limit %u channels)",
             NT_RELAY_MAX_CHANNELS);
  } else if (key->channels >= NT_RELAY_MAX_PER_KEY) {
    *kind = LOG_KEY_CHANNELS;
    snprintf(buf, len, "too many channels for %s (limit %u per key)",
             key->label, NT_RELAY_MAX_PER_KEY);
  } else if (addr->channels >= NT_RELAY_MAX_PER_ADDRESS) {
    *kind = LOG_ADDRESS_CHANNELS;
    snprintf(buf, len, "too many channels from %s (limit %u per address)",
             addr->label, NT_RELAY_MAX_PER_ADDRESS);
  } else {
    return NULL;
  }
  return buf;
}

static void side_init(nt_relay *r, relay_channel *ch, int idx,
                      const nt_relay_party *p, uint64_t now) {
  relay_side *s = &ch->side[idx];
  s->ch = ch;
  s->idx = idx;
  s->session = p->session;
  s->last_ns = now;
  snprintf(s->name, sizeof(s->name), "%s", p->name);
  s->ip.len = p->ip->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in);
  memcpy(&s->ip.ss, p->ip, s->ip.len);
  s->key_acct = nt_relay_account_of_key(&r->budget, p->key, now);
  s->addr_acct = nt_relay_account_of_address(&r->budget, p->ip, now);
}

int nt_relay_open(nt_relay *r, const nt_relay_party *requester,
                  const nt_relay_party *peer, uint8_t *token_requester,
                  uint8_t *token_peer) {
  uint64_t now = nt_monotonic_ns();
  relay_channel *ch = calloc(1, sizeof(*ch));
  char why[160], buf[48];
  int kind = 0, rv = 0;
  unsigned n;

  if (!ch) {
    return NATTER_ERR_NOMEM;
  }
  side_init(r, ch, 0, requester, now);
  side_init(r, ch, 1, peer, now);
  for (int i = 0; i < 2 && rv == 0; i++) {
    relay_side *s = &ch->side[i];
    if (!s->key_acct || !s->addr_acct ||
        nt_random_bytes(s->token, NT_RELAY_TOKEN_LEN)) {
      rv = NATTER_ERR_NOMEM;
    }
  }
  if (rv == 0 && open_refusal(r, ch->side[0].key_acct, ch->side[0].addr_acct,
                              why, sizeof(why), &kind)) {
    r->st.refused++;
    if (log_due(r, kind, now, &n)) {
      nt_warn(r->cfg.log, "relay: no channel for %s and %s: %s%s",
              requester->name, peer->name, why, more(n, buf, sizeof(buf)));
    }
    rv = NATTER_ERR_INVALID;
  }
  int put = 0;
  for (; rv == 0 && put < 2; put++) {
    if (nt_hashmap_put(&r->tokens, ch->side[put].token, NT_RELAY_TOKEN_LEN,
                       &ch->side[put]) != 0) {
      rv = NATTER_ERR_NOMEM;
      break;
    }
  }
  if (rv != 0) {
    for (int i = 0; i < 2; i++) {
      if (i < put) {
        nt_hashmap_remove(&r->tokens, ch->side[i].token, NT_RELAY_TOKEN_LEN);
      }
      nt_relay_account_release(&r->budget, ch->side[i].key_acct, now);
      nt_relay_account_release(&r->budget, ch->side[i].addr_acct, now);
    }
    free(ch);
    return rv;
  }
  ch->side[0].key_acct->channels++;
  ch->side[0].addr_acct->channels++;
  TAILQ_INSERT_TAIL(&r->channels, ch, link);
  r->nchannels++;
  memcpy(token_requester, ch->side[0].token, NT_RELAY_TOKEN_LEN);
  memcpy(token_peer, ch->side[1].token, NT_RELAY_TOKEN_LEN);
  return 0;
}

void nt_relay_close_session(nt_relay *r, const void *session) {
  relay_channel *ch, *next;
  if (!r || !session) {
    return;
  }
  /* At most NT_RELAY_MAX_CHANNELS to look through, once per client that
   * leaves. */
  for (ch = TAILQ_FIRST(&r->channels); ch; ch = next) {
    next = TAILQ_NEXT(ch, link);
    if (ch->side[0].session == session || ch->side[1].session == session) {
      /* Each side may still be sending on it: say it ended. */
      for (int i = 0; i < 2; i++) {
        send_closed(r, &ch->side[i], NT_RELAY_CLOSED_LEFT);
      }
      relay_send_queued(r);
      channel_free(r, ch);
    }
  }
}

void nt_relay_move_session(nt_relay *r, const void *from, const void *to,
                           const struct sockaddr *ip) {
  relay_channel *ch;
  uint64_t now = nt_monotonic_ns();
  if (!r || !from) {
    return;
  }
  TAILQ_FOREACH(ch, &r->channels, link) {
    for (int i = 0; i < 2; i++) {
      relay_side *s = &ch->side[i];
      if (s->session != from) {
        continue;
      }
      s->session = to;
      if (nt_addr_same_host(ip, (const struct sockaddr *)&s->ip.ss)) {
        continue;
      }
      /* Its packets come from the new address now, and its address's
       * budget pays from now on (a channel it asked for moves along, even
       * past the new address's limit: it exists already). */
      nt_relay_account *addr = nt_relay_account_of_address(&r->budget, ip, now);
      if (!addr) {
        continue; /* out of memory: the old address stays */
      }
      if (i == 0) {
        s->addr_acct->channels--;
        addr->channels++;
      }
      nt_relay_account_release(&r->budget, s->addr_acct, now);
      s->addr_acct = addr;
      s->ip.len = ip->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
      memcpy(&s->ip.ss, ip, s->ip.len);
    }
  }
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
  nt_hashmap_init(&r->tcp, seed);
  nt_relay_budget_init(&r->budget, cfg->rate, cfg->total,
                       (uint64_t)NT_RELAY_WINDOW_S * 1000000000ull,
                       seed + NT_HASHMAP_SEED_LEN);
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
  nt_addr_set_port((struct sockaddr *)&r->cfg.bind.ss, r->port);
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
  nt_relay_budget_clear(&r->budget); /* accounts kept for their totals */
  nt_hashmap_clear(&r->tokens);
  nt_hashmap_clear(&r->tcp); /* the links are the TCP listener's */
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

int nt_relay_channel_use(const nt_relay *r, const uint8_t *token,
                         uint64_t *relayed) {
  const relay_side *s =
      r ? nt_hashmap_get(&r->tokens, token, NT_RELAY_TOKEN_LEN) : NULL;
  *relayed = s ? s->ch->relayed : 0;
  return s != NULL;
}

int nt_relay_key_usage(const nt_relay *r, const uint8_t *fp, uint64_t now,
                       uint64_t *used, unsigned *channels, uint64_t *rate,
                       uint64_t *total) {
  uint8_t id[1 + NT_FINGERPRINT_LEN];
  *used = 0;
  *channels = 0;
  *rate = r ? r->cfg.rate : 0;
  *total = r ? r->cfg.total : 0;
  if (!r || !fp) {
    return 0;
  }
  id[0] = NT_RELAY_BY_KEY;
  memcpy(id + 1, fp, NT_FINGERPRINT_LEN);
  const nt_relay_account *a =
      nt_hashmap_get(&r->budget.accounts, id, sizeof(id));
  if (a) {
    *channels = a->channels;
    /* A window that is over counts afresh at the next byte. */
    if (a->window_ns && now - a->window_ns < r->budget.window_ns) {
      *used = a->used;
    }
  }
  return 0;
}

/* ---- TCP fallback connections (relay.h) ---- */

int nt_relay_tcp_add(nt_relay *r, nt_tcp_link *link) {
  return nt_hashmap_put(&r->tcp, nt_tcp_link_key(link), NT_TCP_LINK_KEY_LEN,
                        link);
}

void nt_relay_tcp_remove(nt_relay *r, nt_tcp_link *link) {
  const uint8_t *key = nt_tcp_link_key(link);
  if (r && nt_hashmap_get(&r->tcp, key, NT_TCP_LINK_KEY_LEN) == link) {
    nt_hashmap_remove(&r->tcp, key, NT_TCP_LINK_KEY_LEN);
  }
}

void nt_relay_tcp_input(nt_relay *r, nt_tcp_link *link, uint8_t *data,
                        size_t len) {
  const nt_addr *from = nt_tcp_link_pseudo(link);
  nt_addr none = {0};
  /* Sent at once: |data| is the link's buffer, valid during this call. */
  nt_relay_input(r, data, len, (const struct sockaddr *)&from->ss, from->len,
                 &none, nt_monotonic_ns());
}
