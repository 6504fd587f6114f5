#include "quic/quic_internal.h"

_Static_assert(NT_RETRY_SCID_LEN == NT_SCID_LEN,
               "a Retry's connection ID is one the endpoint can route");

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "natter.h"
#include "quic/tcp_path.h"
#include "quic/udpsock.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

uint64_t nt_timestamp(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NGTCP2_SECONDS + (uint64_t)ts.tv_nsec;
}

uint64_t nt_monotonic_ns(void) {
  return nt_timestamp();
}

static void aux_adopt(nt_aux_sock *aux, nt_conn *conn);
static void flush_dirty(nt_endpoint *ep);

static nt_conn *find_conn(nt_endpoint *ep, const uint8_t *cid, size_t cidlen) {
  nt_cid_entry *e = ep->last_cid;
  if (e && e->cidlen == cidlen && memcmp(e->cid, cid, cidlen) == 0) {
    return e->conn;
  }
  e = nt_hashmap_get(&ep->cids, cid, cidlen);
  if (e) {
    ep->last_cid = e;
  }
  return e ? e->conn : NULL;
}

int nt_endpoint_add_cid(nt_endpoint *ep, const uint8_t *cid, size_t cidlen,
                        nt_conn *conn) {
  if (cidlen > NGTCP2_MAX_CIDLEN) {
    return NATTER_ERR_INVALID;
  }
  if (find_conn(ep, cid, cidlen)) {
    return 0;
  }
  nt_cid_entry *e = calloc(1, sizeof(*e));
  if (!e) {
    return NATTER_ERR_NOMEM;
  }
  memcpy(e->cid, cid, cidlen);
  e->cidlen = cidlen;
  e->conn = conn;
  int rv = nt_hashmap_put(&ep->cids, e->cid, e->cidlen, e);
  if (rv != 0) {
    free(e);
    return rv;
  }
  LIST_INSERT_HEAD(&conn->cids, e, conn_link);
  return 0;
}

void nt_endpoint_remove_cid(nt_endpoint *ep, const uint8_t *cid,
                            size_t cidlen) {
  nt_cid_entry *e = nt_hashmap_remove(&ep->cids, cid, cidlen);
  if (e) {
    ep->last_cid = NULL;
    LIST_REMOVE(e, conn_link);
    free(e);
  }
}

void nt_endpoint_add_conn(nt_endpoint *ep, nt_conn *conn) {
  LIST_INIT(&conn->cids);
  LIST_INSERT_HEAD(&ep->conns, conn, ep_link);
  if (!conn->is_server) {
    ep->nclient_conns++;
  }
}

void nt_endpoint_forget_conn(nt_endpoint *ep, nt_conn *conn) {
  nt_cid_entry *e;
  ep->last_cid = NULL;
  while ((e = LIST_FIRST(&conn->cids)) != NULL) {
    nt_hashmap_remove(&ep->cids, e->cid, e->cidlen);
    LIST_REMOVE(e, conn_link);
    free(e);
  }
  if (conn->dirty) {
    TAILQ_REMOVE(&ep->dirty, conn, dirty_link);
    conn->dirty = 0;
  }
  if (conn->aux) {
    nt_endpoint_aux_release(ep, conn->aux);
    conn->aux = NULL;
  }
  LIST_REMOVE(conn, ep_link);
  if (!conn->is_server) {
    ep->nclient_conns--;
  }
}

/* Remembers that |conn| has something to answer after this read batch. */
static void mark_dirty(nt_endpoint *ep, nt_conn *conn) {
  if (!conn->dirty) {
    conn->dirty = 1;
    TAILQ_INSERT_TAIL(&ep->dirty, conn, dirty_link);
  }
}

/* Sends from |src| when given (the address the peer's datagram arrived
 * at), else from the address the kernel picks. */
static int send_one(nt_endpoint *ep, int fd, const uint8_t *buf, size_t len,
                    size_t segsize, const struct sockaddr *to,
                    const nt_addr *src) {
  if (nt_hashmap_count(&ep->tcp)) {
    /* A TCP path stands for this address (the TCP fallback). */
    uint8_t key[NT_TCP_LINK_KEY_LEN];
    nt_tcp_link *link = nt_tcp_link_key_of(to, key) == 0
                            ? nt_hashmap_get(&ep->tcp, key, sizeof(key))
                            : NULL;
    if (link) {
      if (nt_tcp_link_send(link, buf, len, segsize) != 0) {
        return -ENOBUFS;
      }
      ep->tx_bytes += len;
      return 0;
    }
  }
  int rv = nt_udp_send(fd, ep->family, ep->v6only, buf, len, segsize, to, src);
  if (rv == 0) {
    ep->tx_bytes += len;
  }
  return rv;
}

void nt_endpoint_send_packets(nt_endpoint *ep, int fd, const uint8_t *buf,
                              size_t len, size_t segsize,
                              const struct sockaddr *to, const nt_addr *src) {
  if (len == 0) {
    return;
  }
  if (len > segsize && ep->gso_ok) {
    int rv = send_one(ep, fd, buf, len, segsize, to, src);
    if (rv == 0 || rv == -EAGAIN || rv == -ENOBUFS) {
      /* A full socket buffer drops the batch: QUIC loss recovery resends. */
      return;
    }
    if (rv == -EIO || rv == -EINVAL || rv == -EOPNOTSUPP) {
      ep->gso_ok = 0; /* no GSO here (device or kernel): go one by one */
    } else {
      return;
    }
  }
  for (size_t off = 0; off < len; off += segsize) {
    size_t n = len - off < segsize ? len - off : segsize;
    if (send_one(ep, fd, buf + off, n, 0, to, src) == -EAGAIN) {
      return;
    }
  }
}

void nt_endpoint_send_relayed(nt_endpoint *ep, const nt_addr *relay,
                              const uint8_t *token, const uint8_t *buf,
                              size_t len, size_t segsize) {
  /* Each packet gets the header in front; the framed copies go out as
   * one GSO batch of the larger size where they fit. */
  size_t out = 0, oseg = segsize + NT_RELAY_HDR_LEN;
  for (size_t off = 0; off < len; off += segsize) {
    size_t n = len - off < segsize ? len - off : segsize;
    if (out + NT_RELAY_HDR_LEN + n > sizeof(ep->relaybuf)) {
      nt_endpoint_send_packets(ep, ep->fd, ep->relaybuf, out, oseg,
                               (const struct sockaddr *)&relay->ss, NULL);
      out = 0;
    }
    nt_relay_hdr_encode(ep->relaybuf + out, NT_RELAY_DATA, token);
    memcpy(ep->relaybuf + out + NT_RELAY_HDR_LEN, buf + off, n);
    out += NT_RELAY_HDR_LEN + n;
  }
  nt_endpoint_send_packets(ep, ep->fd, ep->relaybuf, out, oseg,
                           (const struct sockaddr *)&relay->ss, NULL);
}

int nt_endpoint_is_relay(const nt_endpoint *ep, const struct sockaddr *sa) {
  for (size_t i = 0; i < ep->nrelays; i++) {
    if (nt_addr_equal(sa, (const struct sockaddr *)&ep->relays[i].ss)) {
      return 1;
    }
  }
  return 0;
}

/* Whether a connection of |ep| runs through |relay|. */
static int relay_in_use(nt_endpoint *ep, const nt_addr *relay) {
  nt_conn *conn;
  LIST_FOREACH(conn, &ep->conns, ep_link) {
    if (conn->relay_on &&
        nt_addr_equal((const struct sockaddr *)&conn->relay_addr.ss,
                      (const struct sockaddr *)&relay->ss)) {
      return 1;
    }
  }
  return 0;
}

int nt_endpoint_set_relay(nt_endpoint *ep, const nt_addr *relay) {
  if (!relay->len) {
    ep->nrelays = ep->relay_next = 0;
    return 0;
  }
  if (nt_endpoint_is_relay(ep, (const struct sockaddr *)&relay->ss)) {
    return 0;
  }
  if (ep->nrelays < NT_ENDPOINT_RELAYS) {
    ep->relays[ep->nrelays++] = *relay;
  } else {
    /* The oldest that no connection runs through gives way. */
    size_t i = 0;
    for (; i < NT_ENDPOINT_RELAYS; i++) {
      size_t k = (ep->relay_next + i) % NT_ENDPOINT_RELAYS;
      if (!relay_in_use(ep, &ep->relays[k])) {
        ep->relays[k] = *relay;
        ep->relay_next = (k + 1) % NT_ENDPOINT_RELAYS;
        break;
      }
    }
    if (i == NT_ENDPOINT_RELAYS) {
      return NATTER_ERR_NOMEM;
    }
  }
  ep->relay_local = ep->local;
  uint16_t port = nt_endpoint_port(ep);
  nt_addr_set_port((struct sockaddr *)&ep->relay_local.ss,
                   (uint16_t)(port ^ 0x8000));
  return 0;
}

void nt_endpoint_set_raw_source(nt_endpoint *ep, const nt_addr *from) {
  ep->raw_source = *from;
}

int nt_endpoint_relay_bind(nt_endpoint *ep, const nt_addr *relay,
                           const uint8_t *token) {
  uint8_t pkt[NT_RELAY_HDR_LEN];
  if (!relay->len ||
      !nt_endpoint_is_relay(ep, (const struct sockaddr *)&relay->ss)) {
    return NATTER_ERR_INVALID;
  }
  nt_relay_hdr_encode(pkt, NT_RELAY_BIND, token);
  return nt_endpoint_sendto(ep, pkt, sizeof(pkt),
                            (const struct sockaddr *)&relay->ss, relay->len);
}

/* The source for a raw datagram to |to|: while the owner handles a
 * datagram (callbacks->datagram), what goes back to its sender leaves
 * from the address it arrived at. */
static const nt_addr *reply_source(const nt_endpoint *ep,
                                   const struct sockaddr *to) {
  return ep->reply_to && nt_addr_equal(to, ep->reply_to) ? ep->reply_src : NULL;
}

int nt_endpoint_sendto(nt_endpoint *ep, const uint8_t *data, size_t len,
                       const struct sockaddr *to, socklen_t tolen) {
  (void)tolen;
  return send_one(ep, ep->fd, data, len, 0, to, reply_source(ep, to)) == 0
             ? 0
             : NATTER_ERR_SOCKET;
}

/* A stateless CONNECTION_CLOSE (CONNECTION_REFUSED, RFC 9000 §20.1) in
 * an Initial, with |reason|: no connection state is kept. It is far
 * smaller than the 1200-byte Initial that caused it (RFC 9000 §8.1: no
 * amplification). */
static void refuse_initial(nt_endpoint *ep, int fd, const ngtcp2_pkt_hd *hd,
                           const char *reason, const struct sockaddr *to,
                           const nt_addr *src) {
  uint8_t buf[512];
  size_t reasonlen = strnlen(reason, 200);
  ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(
      buf, sizeof(buf), hd->version, &hd->scid, &hd->dcid,
      NGTCP2_CONNECTION_REFUSED, (const uint8_t *)reason, reasonlen);
  if (n > 0) {
    send_one(ep, fd, buf, (size_t)n, 0, to, src);
  }
}

int nt_endpoint_reset_token(const nt_endpoint *ep, uint8_t *token,
                            const uint8_t *cid, size_t cidlen) {
  ngtcp2_cid c;
  if (cidlen > NGTCP2_MAX_CIDLEN) {
    return -1;
  }
  ngtcp2_cid_init(&c, cid, cidlen);
  return ngtcp2_crypto_generate_stateless_reset_token(
      token, ep->reset_secret, sizeof(ep->reset_secret), &c);
}

/* A stateless reset carries no connection ID of ours (its first bytes
 * are random): it is recognised by its last 16 bytes, the token the peer
 * announced for the connection ID we send to, and it comes from the
 * peer's address. Only our client connections can be reset this way: a
 * server's peer announces tokens only for the extra IDs it issues, never
 * for the one a server sends to. Returns the connection or NULL. */
static nt_conn *find_reset_conn(nt_endpoint *ep, const uint8_t *data,
                                size_t len, const struct sockaddr *from) {
  ngtcp2_cid_token tokens[8];
  nt_conn *conn;
  if (ep->nclient_conns == 0 || (data[0] & 0x80) ||
      len < 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN +
                NGTCP2_STATELESS_RESET_TOKENLEN) {
    return NULL;
  }
  const uint8_t *tail = data + len - NGTCP2_STATELESS_RESET_TOKENLEN;
  LIST_FOREACH(conn, &ep->conns, ep_link) {
    if (conn->is_server || conn->closing || !conn->qc ||
        !nt_addr_equal((const struct sockaddr *)&conn->remote.ss, from) ||
        ngtcp2_conn_get_num_active_dcid(conn->qc) >
            sizeof(tokens) / sizeof(tokens[0])) {
      continue;
    }
    size_t n = ngtcp2_conn_get_active_dcid(conn->qc, tokens);
    for (size_t i = 0; i < n; i++) {
      if (tokens[i].token_present &&
          memcmp(tokens[i].token, tail, NGTCP2_STATELESS_RESET_TOKENLEN) ==
              0) {
        return conn;
      }
    }
  }
  return NULL;
}

/* A short-header packet of a connection we do not know: answer with a
 * stateless reset (RFC 9000 §10.3), so that a peer whose connection we
 * lost (this process restarted, or dropped it) learns at once rather than
 * by its idle timeout. Never an amplifier: each reset is shorter than the
 * packet that triggered it (so two endpoints cannot loop: each answer is
 * shorter, down to below NT_MIN_QUIC_DATAGRAM, which nobody answers) and
 * at most NT_RESET_MAX_PER_S go out a second. */
static void send_stateless_reset(nt_endpoint *ep, int fd, const uint8_t *data,
                                 size_t len, const ngtcp2_version_cid *vc,
                                 const struct sockaddr *to,
                                 const nt_addr *src) {
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
  uint8_t rand[NT_RESET_MAX_LEN];
  uint8_t buf[NT_RESET_MAX_LEN];
  /* The reset must itself look like QUIC to the peer (not a punch
   * packet), and be shorter than what triggered it. */
  if ((data[0] & 0x80) || len <= NT_MIN_QUIC_DATAGRAM) {
    return;
  }
  size_t outlen = len - 1 < NT_RESET_MAX_LEN ? len - 1 : NT_RESET_MAX_LEN;
  uint64_t now = nt_timestamp();
  if (now - ep->reset_window_ns >= NGTCP2_SECONDS) {
    ep->reset_window_ns = now;
    ep->reset_in_window = 0;
  }
  if (ep->reset_in_window >= NT_RESET_MAX_PER_S) {
    unsigned held;
    ep->resets_over_budget++;
    if (ep->cfg.log && nt_log_gate_pass(&ep->reset_gate, now, &held)) {
      nt_warn(ep->cfg.log,
                  "stateless resets: more than %d a second asked for "
                  "(packets of unknown connections): the rest get no "
                  "answer (%u more since the last line)",
                  NT_RESET_MAX_PER_S, held);
    }
    return;
  }
  if (nt_endpoint_reset_token(ep, token, vc->dcid, vc->dcidlen) != 0) {
    return;
  }
  size_t randlen = outlen - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
  if (nt_random_bytes(rand, randlen) != 0) {
    return;
  }
  ngtcp2_ssize n =
      ngtcp2_pkt_write_stateless_reset(buf, outlen, token, rand, randlen);
  if (n > 0) {
    ep->reset_in_window++;
    ep->resets_sent++;
    if (ep->cfg.log) {
      char a[NT_ADDR_STRLEN];
      nt_debug(ep->cfg.log,
               "a packet of a connection unknown here from %s: answered "
               "with a stateless reset",
               nt_addr_str(to, a));
    }
    send_one(ep, fd, buf, (size_t)n, 0, to, src);
  }
}

/* A datagram from the broker's relay: a signal for the owner, or a QUIC
 * packet of a relayed connection (its own, or a new one it accepts). */
static void handle_relayed(nt_endpoint *ep, uint8_t *data, size_t len,
                           const struct sockaddr *from, socklen_t fromlen) {
  const uint8_t *token;
  int type = nt_relay_hdr_decode(data, len, &token);
  if (type != NT_RELAY_DATA) {
    if (type && ep->cfg.callbacks->relay_signal) {
      int reason = type == NT_RELAY_CLOSED && len > NT_RELAY_HDR_LEN
                       ? data[NT_RELAY_HDR_LEN]
                       : 0;
      ep->cfg.callbacks->relay_signal(ep, type, token, reason,
                                      ep->cfg.user_data);
    } else {
      ep->dropped++;
    }
    return;
  }
  uint8_t *pkt = data + NT_RELAY_HDR_LEN;
  size_t pktlen = len - NT_RELAY_HDR_LEN;
  ngtcp2_version_cid vc;
  if (pktlen < NT_MIN_QUIC_DATAGRAM ||
      ngtcp2_pkt_decode_version_cid(&vc, pkt, pktlen, NT_SCID_LEN) != 0) {
    ep->dropped++;
    return;
  }
  nt_conn *conn = find_conn(ep, vc.dcid, vc.dcidlen);
  if (conn) {
    /* Only on its own channel: another token is another peer. */
    if (!conn->relay_on ||
        memcmp(conn->relay_token, token, NT_RELAY_TOKEN_LEN) != 0) {
      ep->dropped++;
      return;
    }
    nt_conn_recv(conn, pkt, pktlen, from, fromlen, NULL);
    mark_dirty(ep, conn);
    return;
  }
  ngtcp2_pkt_hd hd;
  nt_accept_params params = {0};
  if (ngtcp2_accept(&hd, pkt, pktlen) != 0 ||
      !ep->cfg.callbacks->accept_relayed ||
      !ep->cfg.callbacks->accept_relayed(ep, token, &params,
                                         ep->cfg.user_data)) {
    ep->dropped++;
    return;
  }
  memcpy(ep->new_relay_token, token, NT_RELAY_TOKEN_LEN);
  if (nt_conn_new(&conn, ep, 1, from, fromlen, &hd, NULL, params.expected_fp,
                  params.callbacks, params.user_data) != 0) {
    if (params.callbacks->closed) {
      params.callbacks->closed(NULL, NT_CLOSE_ERROR, 0, "", params.user_data);
    }
    ep->dropped++;
    return;
  }
  nt_conn_recv(conn, pkt, pktlen, from, fromlen, NULL);
  mark_dirty(ep, conn);
}

/* |dst|: the local address the datagram was sent to (len 0: unknown). */
static void handle_datagram(nt_endpoint *ep, nt_aux_sock *aux, uint8_t *data,
                            size_t len, const struct sockaddr *from,
                            socklen_t fromlen, const nt_addr *dst) {
  ngtcp2_version_cid vc;
  nt_conn *conn;
  int fd = aux ? aux->fd : ep->fd;

  ep->rx_bytes += len;
  if (len == 0) {
    return;
  }
  if (!aux && nt_endpoint_is_relay(ep, from)) {
    /* A relay has a port of its own: nothing else comes from there. */
    handle_relayed(ep, data, len, from, fromlen);
    return;
  }
  if (len < NT_MIN_QUIC_DATAGRAM ||
      (!aux && ep->raw_source.len &&
       nt_addr_equal(from, (struct sockaddr *)&ep->raw_source.ss))) {
    /* Too short to be QUIC for us (the fixed bit cannot tell: ngtcp2 0.12
     * always offers grease_quic_bit, RFC 9287): a punch packet. */
    if (ep->cfg.callbacks->datagram) {
      if (!aux) {
        ep->reply_to = from;
        ep->reply_src = dst;
      }
      ep->cfg.callbacks->datagram(ep, data, len, from, fromlen,
                                  aux ? aux->id : 0, ep->cfg.user_data);
      ep->reply_to = NULL;
      ep->reply_src = NULL;
    }
    return;
  }
  int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, NT_SCID_LEN);
  if (rv != 0) {
    ep->dropped++;
    return;
  }
  conn = find_conn(ep, vc.dcid, vc.dcidlen);
  if (!conn) {
    conn = find_reset_conn(ep, data, len, from);
  }
  if (conn) {
    nt_conn_recv(conn, data, len, from, fromlen, dst);
    mark_dirty(ep, conn);
    return;
  }
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, data, len) != 0 || (aux && aux->conn)) {
    /* An extra socket carries one connection at most. */
    ep->dropped++;
    if (vc.version == 0) {
      send_stateless_reset(ep, fd, data, len, &vc, from, dst);
    }
    return;
  }
  ngtcp2_cid odcid;
  uint8_t answer[256];
  size_t answerlen;
  nt_retry_verdict v =
      nt_retry_check(&ep->retry, ep->cfg.log, &hd, from, fromlen,
                     nt_timestamp(), &odcid, answer, sizeof(answer),
                     &answerlen);
  if (v == NT_RETRY_ANSWERED) {
    if (answerlen) {
      send_one(ep, fd, answer, answerlen, 0, from, dst);
    }
    return;
  }
  /* The owner's limits before any state: a refused Initial costs one
   * small stateless answer, whatever protocol it wants. */
  const char *refusal = NULL;
  if (ep->cfg.callbacks->admit &&
      !ep->cfg.callbacks->admit(ep, from, &refusal, ep->cfg.user_data)) {
    ep->dropped++;
    if (refusal) {
      refuse_initial(ep, fd, &hd, refusal, from, dst);
    }
    return;
  }
  if (ep->cfg.accept_h3) {
    /* HTTP/3 beside natter: who takes the connection depends on the ALPN
     * of the ClientHello inside this Initial, so the owner is asked once
     * TLS has read it (nt_endpoint_route). */
    ep->new_aux = aux;
    int rv2 =
        nt_conn_new(&conn, ep, 1, from, fromlen, &hd,
                    v == NT_RETRY_VALIDATED ? &odcid : NULL, NULL, NULL, NULL);
    ep->new_aux = NULL;
    if (rv2 != 0) {
      ep->dropped++;
      return;
    }
    aux_adopt(aux, conn);
    nt_conn_recv(conn, data, len, from, fromlen, dst);
    mark_dirty(ep, conn);
    return;
  }
  nt_accept_params params = {0};
  if (!ep->cfg.callbacks->accept ||
      !ep->cfg.callbacks->accept(ep, from, &params, ep->cfg.user_data)) {
    ep->dropped++;
    if (params.refuse_reason) {
      refuse_initial(ep, fd, &hd, params.refuse_reason, from, dst);
    }
    return;
  }
  ep->new_aux = aux;
  rv = nt_conn_new(&conn, ep, 1, from, fromlen, &hd,
                   v == NT_RETRY_VALIDATED ? &odcid : NULL, params.expected_fp,
                   params.callbacks, params.user_data);
  ep->new_aux = NULL;
  if (rv != 0) {
    /* The owner already set up state for this connection: let it go. */
    if (params.callbacks->closed) {
      params.callbacks->closed(NULL, NT_CLOSE_ERROR, 0, "", params.user_data);
    }
    ep->dropped++;
    return;
  }
  aux_adopt(aux, conn);
  nt_conn_recv(conn, data, len, from, fromlen, dst);
  mark_dirty(ep, conn);
}

typedef struct read_ctx {
  nt_endpoint *ep;
  nt_aux_sock *aux;
} read_ctx;

static void read_one(uint8_t *data, size_t len, const struct sockaddr *from,
                     socklen_t fromlen, const nt_addr *dst, void *ud) {
  read_ctx *rc = ud;
  handle_datagram(rc->ep, rc->aux, data, len, from, fromlen, dst);
}

/* Reads what |fd| (the endpoint's socket, or |aux|) has. */
static void read_socket(nt_endpoint *ep, nt_aux_sock *aux, int fd) {
  read_ctx rc = {ep, aux};
  size_t packets = 0;
  int full = 1;
  /* Bounded per wake-up (GRO makes one slot up to ~45 packets), so
   * timers, ACKs and the TCP side get their turn. */
  for (int round = 0; round < 8 && packets < 1024 && full; round++) {
    if (aux && aux->dead) {
      break; /* its owner closed it meanwhile */
    }
    packets += nt_udp_recv_batch(fd, ep->rxbuf, read_one, &rc, &full);
  }
  flush_dirty(ep);
}

/* Answers everything a batch made due (ACKs, stream data) at once, on the
 * connections it touched. A flush runs owner callbacks that may close
 * connections; a closed one is only freed from the loop, and leaves this
 * list when it is, so take the head afresh each time. */
static void flush_dirty(nt_endpoint *ep) {
  nt_conn *c;
  while ((c = TAILQ_FIRST(&ep->dirty)) != NULL) {
    TAILQ_REMOVE(&ep->dirty, c, dirty_link);
    c->dirty = 0;
    nt_conn_flush(c);
  }
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  read_socket(arg, NULL, fd);
}

/* ---- extra sockets (port prediction) ---- */

static void aux_read_cb(evutil_socket_t fd, short what, void *arg) {
  nt_aux_sock *aux = arg;
  (void)what;
  read_socket(aux->ep, aux, fd);
}

/* Frees the extra sockets marked dead: from the loop, never under a read
 * of the socket itself. */
static void aux_reap_cb(evutil_socket_t fd, short what, void *arg) {
  nt_endpoint *ep = arg;
  nt_aux_sock *a, *next;
  (void)fd;
  (void)what;
  for (a = LIST_FIRST(&ep->aux); a; a = next) {
    next = LIST_NEXT(a, link);
    if (a->dead) {
      LIST_REMOVE(a, link);
      ep->naux--;
      event_free(a->ev);
      close(a->fd);
      free(a);
    }
  }
}

static void aux_kill(nt_aux_sock *a) {
  if (a->dead) {
    return;
  }
  a->dead = 1;
  a->owner = NULL;
  a->conn = NULL;
  event_del(a->ev);
  event_active(a->ep->reap_ev, EV_TIMEOUT, 0);
}

static void aux_adopt(nt_aux_sock *aux, nt_conn *conn) {
  if (aux) {
    aux->conn = conn;
    aux->owner = NULL;
  }
}

void nt_endpoint_aux_release(nt_endpoint *ep, nt_aux_sock *aux) {
  (void)ep;
  aux_kill(aux);
}

unsigned nt_endpoint_aux_open(nt_endpoint *ep, void *owner, unsigned n) {
  nt_addr any = ep->local;
  unsigned opened = 0;
  struct rlimit rl;
  nt_addr_set_port((struct sockaddr *)&any.ss, 0);
  /* Prediction must never starve the forwarded TCP connections of
   * descriptors: NT_ENDPOINT_FD_RESERVE of the limit stay theirs. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    rlim_t room = rl.rlim_cur > NT_ENDPOINT_FD_RESERVE + ep->naux
                      ? rl.rlim_cur - NT_ENDPOINT_FD_RESERVE - ep->naux
                      : 0;
    if (n > room) {
      n = (unsigned)room;
    }
  }
  while (opened < n && ep->naux < NT_ENDPOINT_MAX_AUX) {
    nt_aux_sock *a = calloc(1, sizeof(*a));
    if (!a) {
      break;
    }
    a->fd = socket(ep->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
      free(a);
      break; /* out of descriptors: fewer sockets, fewer chances */
    }
    /* As the endpoint's own socket: send_one maps addresses for it. */
    int v6only = ep->v6only;
    if (ep->family == AF_INET6) {
      setsockopt(a->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    a->local.len = sizeof(a->local.ss);
    if (bind(a->fd, (struct sockaddr *)&any.ss, any.len) != 0 ||
        getsockname(a->fd, (struct sockaddr *)&a->local.ss, &a->local.len) !=
            0) {
      close(a->fd);
      free(a);
      break;
    }
    a->ev = event_new(ep->base, a->fd, EV_READ | EV_PERSIST, aux_read_cb, a);
    if (!a->ev || event_add(a->ev, NULL) != 0) {
      if (a->ev) {
        event_free(a->ev);
      }
      close(a->fd);
      free(a);
      break;
    }
    a->ep = ep;
    a->owner = owner;
    if (ep->aux_next_id <= 0 || ep->aux_next_id == INT_MAX) {
      ep->aux_next_id = 1;
    }
    a->id = ep->aux_next_id++;
    LIST_INSERT_HEAD(&ep->aux, a, link);
    ep->naux++;
    opened++;
  }
  return opened;
}

static nt_aux_sock *aux_find(nt_endpoint *ep, int id) {
  nt_aux_sock *a;
  LIST_FOREACH(a, &ep->aux, link) {
    if (a->id == id && !a->dead) {
      return a;
    }
  }
  return NULL;
}

nt_aux_sock *nt_endpoint_aux_free_sock(nt_endpoint *ep, int id,
                                       const void *owner) {
  nt_aux_sock *a = id > 0 ? aux_find(ep, id) : NULL;
  return a && !a->conn && a->owner == owner ? a : NULL;
}

void nt_endpoint_aux_take(nt_aux_sock *aux, nt_conn *conn) {
  aux_adopt(aux, conn);
}

void nt_endpoint_aux_send_all(nt_endpoint *ep, void *owner, const uint8_t *data,
                              size_t len, const struct sockaddr *to,
                              socklen_t tolen) {
  nt_aux_sock *a;
  (void)tolen;
  LIST_FOREACH(a, &ep->aux, link) {
    if (a->owner == owner && !a->dead && !a->conn) {
      send_one(ep, a->fd, data, len, 0, to, NULL);
    }
  }
}

unsigned nt_endpoint_aux_count(const nt_endpoint *ep, const void *owner) {
  const nt_aux_sock *a;
  unsigned n = 0;
  LIST_FOREACH(a, &ep->aux, link) {
    n += a->owner == owner && !a->dead && !a->conn;
  }
  return n;
}

void nt_endpoint_aux_close(nt_endpoint *ep, void *owner, int keep) {
  nt_aux_sock *a;
  LIST_FOREACH(a, &ep->aux, link) {
    if (a->owner == owner && !a->conn && a->id != keep) {
      aux_kill(a);
    }
  }
}

int nt_endpoint_send_on(nt_endpoint *ep, int sock, const uint8_t *data,
                        size_t len, const struct sockaddr *to,
                        socklen_t tolen) {
  nt_aux_sock *a = NULL;
  if (sock && !(a = aux_find(ep, sock))) {
    return NATTER_ERR_SOCKET;
  }
  (void)tolen;
  return send_one(ep, a ? a->fd : ep->fd, data, len, 0, to,
                  a ? NULL : reply_source(ep, to)) == 0
             ? 0
             : NATTER_ERR_SOCKET;
}

int nt_endpoint_new(nt_endpoint **pep, struct event_base *base,
                    const nt_endpoint_config *cfg, char *err, size_t errlen) {
  nt_endpoint *ep = calloc(1, sizeof(*ep));
  char addrstr[NT_ADDR_STRLEN];
  uint8_t seed[NT_HASHMAP_SEED_LEN] = {0};
  int rv = NATTER_ERR_SOCKET;

  if (!ep) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  ep->base = base;
  ep->cfg = *cfg;
  ep->fd = -1;
  LIST_INIT(&ep->conns);
  LIST_INIT(&ep->aux);
  TAILQ_INIT(&ep->dirty);
  nt_chunk_pool_init(&ep->pool, 256);
  if (nt_random_bytes(seed, sizeof(seed)) != 0) {
    snprintf(err, errlen, "cannot get random bytes for the endpoint");
    nt_hashmap_init(&ep->cids, seed); /* so that free finds it empty */
    nt_hashmap_init(&ep->tcp, seed);
    rv = NATTER_ERR_INVALID;
    goto fail;
  }
  nt_hashmap_init(&ep->cids, seed);
  nt_hashmap_init(&ep->tcp, seed);
  if (cfg->identity) {
    memcpy(ep->reset_secret, nt_identity_reset_secret(cfg->identity),
           sizeof(ep->reset_secret));
  } else if (nt_random_bytes(ep->reset_secret, sizeof(ep->reset_secret)) !=
             0) {
    snprintf(err, errlen, "cannot get random bytes for the endpoint");
    rv = NATTER_ERR_INVALID;
    goto fail;
  }
  if (nt_retry_init(&ep->retry, cfg->retry_above_per_s) != 0) {
    snprintf(err, errlen, "cannot get random bytes for the endpoint");
    rv = NATTER_ERR_INVALID;
    goto fail;
  }
  ep->rxbuf = malloc((size_t)NT_UDP_RECV_BATCH * NT_UDP_RECV_BUFSIZE);
  if (!ep->rxbuf) {
    snprintf(err, errlen, "out of memory");
    rv = NATTER_ERR_NOMEM;
    goto fail;
  }
  ep->fd = nt_udp_open(&cfg->bind, cfg->dual_stack, &ep->family, &ep->v6only);
  if (ep->fd < 0) {
    int e = -ep->fd;
    ep->fd = -1;
    if (cfg->dual_stack) {
      snprintf(addrstr, sizeof(addrstr), ":%u (IPv4 and IPv6)",
               nt_addr_port((struct sockaddr *)&cfg->bind.ss));
    } else {
      nt_addr_str((struct sockaddr *)&cfg->bind.ss, addrstr);
    }
    snprintf(err, errlen, "cannot bind UDP %s: %s%s", addrstr, strerror(e),
             e == EADDRINUSE ? " (another process uses that port; pick "
                               "another or stop it)"
                             : "");
    if (e == EADDRINUSE) {
      rv = NATTER_ERR_ADDR_IN_USE;
    }
    goto fail;
  }
  int one = 1, bufsize = 4 * 1024 * 1024;
  /* Large socket buffers absorb bursts; the kernel caps them at rmem_max. */
  /* A broker's check-in storm arrives all at once: a larger receive
   * buffer where we may have one (SO_RCVBUFFORCE needs CAP_NET_ADMIN;
   * otherwise net.core.rmem_max caps SO_RCVBUF). */
  int rcvbuf = cfg->rcvbuf_bytes > bufsize ? cfg->rcvbuf_bytes : bufsize;
  if (setsockopt(ep->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
                 sizeof(rcvbuf)) != 0) {
    setsockopt(ep->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  setsockopt(ep->fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
  int seg = NT_MAX_UDP_PAYLOAD;
  ep->gso_ok =
      setsockopt(ep->fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg)) == 0;
  if (ep->gso_ok) {
    seg = 0; /* per-send cmsg decides; keep the socket default off */
    setsockopt(ep->fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg));
  }
  /* Receive coalesced datagrams (split again in read_cb): fewer, larger
   * reads, and on loopback the sender's GSO batch is never segmented. */
  setsockopt(ep->fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
  ep->local.len = sizeof(ep->local.ss);
  getsockname(ep->fd, (struct sockaddr *)&ep->local.ss, &ep->local.len);
  ep->read_ev = event_new(base, ep->fd, EV_READ | EV_PERSIST, read_cb, ep);
  ep->reap_ev = event_new(base, -1, 0, aux_reap_cb, ep);
  if (!ep->read_ev || !ep->reap_ev || event_add(ep->read_ev, NULL) != 0) {
    snprintf(err, errlen, "cannot register UDP socket with the event loop");
    goto fail;
  }
  *pep = ep;
  return 0;
fail:
  nt_endpoint_free(ep);
  return rv;
}

void nt_endpoint_free(nt_endpoint *ep) {
  if (!ep) {
    return;
  }
  /* Each connection takes its IDs with it, which empties the table. */
  while (!LIST_EMPTY(&ep->conns)) {
    nt_conn_destroy(LIST_FIRST(&ep->conns));
  }
  nt_hashmap_clear(&ep->cids);
  nt_hashmap_clear(&ep->tcp); /* the links are their owners' */
  nt_aux_sock *a;
  LIST_FOREACH(a, &ep->aux, link) {
    a->dead = 1;
  }
  if (ep->reap_ev) {
    aux_reap_cb(-1, 0, ep);
    event_free(ep->reap_ev);
  }
  if (ep->read_ev) {
    event_free(ep->read_ev);
  }
  if (ep->fd >= 0) {
    close(ep->fd);
  }
  nt_chunk_pool_clear(&ep->pool);
  free(ep->rxbuf);
  free(ep);
}

uint16_t nt_endpoint_port(const nt_endpoint *ep) {
  return nt_addr_port((const struct sockaddr *)&ep->local.ss);
}

int nt_endpoint_family(const nt_endpoint *ep) {
  return ep->family;
}

int nt_endpoint_reaches(const nt_endpoint *ep, int family) {
  return nt_udp_reaches(ep->family, ep->v6only, family);
}

int nt_endpoint_connect(nt_endpoint *ep, const struct sockaddr *to,
                        socklen_t tolen, const uint8_t *expected_fp,
                        const nt_conn_callbacks *callbacks, void *user_data,
                        nt_conn **pconn) {
  return nt_endpoint_connect_on(ep, 0, to, tolen, expected_fp, callbacks,
                                user_data, pconn);
}

int nt_endpoint_connect_on(nt_endpoint *ep, int sock, const struct sockaddr *to,
                           socklen_t tolen, const uint8_t *expected_fp,
                           const nt_conn_callbacks *callbacks, void *user_data,
                           nt_conn **pconn) {
  nt_conn *conn;
  nt_aux_sock *aux = NULL;
  if (sock && (!(aux = aux_find(ep, sock)) || aux->conn)) {
    return NATTER_ERR_INVALID;
  }
  ep->new_aux = aux;
  int rv = nt_conn_new(&conn, ep, 0, to, tolen, NULL, NULL, expected_fp,
                       callbacks, user_data);
  ep->new_aux = NULL;
  if (rv != 0) {
    return rv;
  }
  aux_adopt(aux, conn);
  nt_conn_flush(conn);
  *pconn = conn;
  return 0;
}

int nt_endpoint_connect_relayed(nt_endpoint *ep, const nt_addr *relay,
                                const uint8_t *token,
                                const uint8_t *expected_fp,
                                const nt_conn_callbacks *callbacks,
                                void *user_data, nt_conn **pconn) {
  if (!relay->len ||
      !nt_endpoint_is_relay(ep, (const struct sockaddr *)&relay->ss)) {
    return NATTER_ERR_INVALID;
  }
  memcpy(ep->new_relay_token, token, NT_RELAY_TOKEN_LEN);
  return nt_endpoint_connect(ep, (const struct sockaddr *)&relay->ss,
                             relay->len, expected_fp, callbacks, user_data,
                             pconn);
}

void nt_endpoint_reset_stats(const nt_endpoint *ep, uint64_t *sent,
                             uint64_t *received, uint64_t *dropped) {
  *sent = ep->resets_sent;
  *received = ep->resets_received;
  *dropped = ep->resets_over_budget;
}

void nt_endpoint_traffic(const nt_endpoint *ep, uint64_t *rx, uint64_t *tx) {
  *rx = ep->rx_bytes;
  *tx = ep->tx_bytes;
}

uint64_t nt_endpoint_dropped(const nt_endpoint *ep) {
  return ep->dropped;
}

int nt_endpoint_route(nt_endpoint *ep, nt_conn *conn, int is_h3,
                      nt_accept_params *params) {
  const struct sockaddr *from = (const struct sockaddr *)&conn->remote.ss;
  int (*accept)(nt_endpoint *, const struct sockaddr *, nt_accept_params *,
                void *) = is_h3 ? ep->cfg.accept_h3 : ep->cfg.callbacks->accept;
  memset(params, 0, sizeof(*params));
  if (!accept || !accept(ep, from, params, ep->cfg.user_data)) {
    ep->dropped++;
    return 0;
  }
  return 1;
}

int nt_endpoint_connect_h3(nt_endpoint *ep, const struct sockaddr *to,
                           socklen_t tolen, const uint8_t *expected_fp,
                           const nt_conn_callbacks *callbacks, void *user_data,
                           nt_conn **pconn) {
  nt_conn *conn;
  int rv = nt_conn_new_h3_client(&conn, ep, to, tolen, expected_fp, callbacks,
                                 user_data);
  if (rv != 0) {
    return rv;
  }
  nt_conn_flush(conn);
  *pconn = conn;
  return 0;
}

/* ---- TCP paths (the TCP fallback) ---- */

int nt_endpoint_tcp_add(nt_endpoint *ep, nt_tcp_link *link) {
  return nt_hashmap_put(&ep->tcp, nt_tcp_link_key(link), NT_TCP_LINK_KEY_LEN,
                        link);
}

void nt_endpoint_tcp_remove(nt_endpoint *ep, nt_tcp_link *link) {
  const uint8_t *key = nt_tcp_link_key(link);
  if (nt_hashmap_get(&ep->tcp, key, NT_TCP_LINK_KEY_LEN) == link) {
    nt_hashmap_remove(&ep->tcp, key, NT_TCP_LINK_KEY_LEN);
  }
}

int nt_endpoint_tcp_has(const nt_endpoint *ep, const struct sockaddr *addr) {
  uint8_t key[NT_TCP_LINK_KEY_LEN];
  return nt_hashmap_count(&ep->tcp) && nt_tcp_link_key_of(addr, key) == 0 &&
         nt_hashmap_get(&ep->tcp, key, sizeof(key)) != NULL;
}

void nt_endpoint_tcp_input(nt_endpoint *ep, nt_tcp_link *link, uint8_t *data,
                           size_t len) {
  const nt_addr *from = nt_tcp_link_pseudo(link);
  handle_datagram(ep, NULL, data, len, (const struct sockaddr *)&from->ss,
                  from->len, NULL);
}

void nt_endpoint_tcp_flush(nt_endpoint *ep) {
  flush_dirty(ep);
}

int nt_conn_over_tcp(const nt_conn *conn) {
  return nt_endpoint_tcp_has(conn->ep,
                             (const struct sockaddr *)&conn->remote.ss);
}
