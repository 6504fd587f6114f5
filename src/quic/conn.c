/* One QUIC connection: ngtcp2 state, its TLS session, its timer, the write
 * loop, and the streams on it. */
#include "quic/quic_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natter.h"

static void schedule_write(nt_conn *conn);
static void schedule_free(nt_conn *conn, nt_close_reason reason);
static int recv_datagram_cb(ngtcp2_conn *qc, uint32_t flags,
                            const uint8_t *data, size_t datalen,
                            void *user_data);

/* ---- stream bookkeeping ---- */

static void pending_add(nt_conn *conn, nt_stream *s) {
  if (s->in_pending || s->blocked || s->closed) {
    return;
  }
  s->in_pending = 1;
  TAILQ_INSERT_TAIL(&conn->pending, s, pending_link);
}

static void pending_remove(nt_conn *conn, nt_stream *s) {
  if (!s->in_pending) {
    return;
  }
  TAILQ_REMOVE(&conn->pending, s, pending_link);
  s->in_pending = 0;
}

/* Sends the streams round robin, a packet's worth at a time: a bulk
 * transfer must not hold back a small request on another stream. */
static void pending_rotate(nt_conn *conn, nt_stream *s) {
  if (s->in_pending && TAILQ_NEXT(s, pending_link) != NULL) {
    TAILQ_REMOVE(&conn->pending, s, pending_link);
    TAILQ_INSERT_TAIL(&conn->pending, s, pending_link);
  }
}

static nt_stream *stream_new(nt_conn *conn, int64_t id) {
  nt_stream *s = calloc(1, sizeof(*s));
  if (!s) {
    return NULL;
  }
  s->conn = conn;
  s->id = id;
  nt_sendbuf_init(&s->sb, &conn->ep->pool);
  LIST_INSERT_HEAD(&conn->streams, s, conn_link);
  ngtcp2_conn_set_stream_user_data(conn->qc, id, s);
  return s;
}

/* Unlinks and frees |s| after telling its owner. */
static void stream_finish(nt_stream *s, int reset, uint64_t app_code) {
  nt_conn *conn = s->conn;

  s->closed = 1;
  pending_remove(conn, s);
  LIST_REMOVE(s, conn_link);
  conn->send_held -= nt_sendbuf_held(&s->sb);
  if (s->cbs.closed) {
    s->cbs.closed(s, reset, app_code, s->user_data);
  }
  nt_sendbuf_free(&s->sb);
  free(s);
}

/* ---- ngtcp2 callbacks ---- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  nt_conn *conn = ref->user_data;
  return conn->qc;
}

static void rand_cb(uint8_t *dest, size_t destlen,
                    const ngtcp2_rand_ctx *rand_ctx) {
  (void)rand_ctx;
  nt_random_bytes(dest, destlen);
}

static int get_new_connection_id_cb(ngtcp2_conn *qc, ngtcp2_cid *cid,
                                    uint8_t *token, size_t cidlen,
                                    void *user_data) {
  nt_conn *conn = user_data;
  (void)qc;
  if (nt_random_bytes(cid->data, cidlen) != 0 ||
      nt_endpoint_reset_token(conn->ep, token, cid->data, cidlen) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  cid->datalen = cidlen;
  if (nt_endpoint_add_cid(conn->ep, cid->data, cid->datalen, conn) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int remove_connection_id_cb(ngtcp2_conn *qc, const ngtcp2_cid *cid,
                                   void *user_data) {
  nt_conn *conn = user_data;
  (void)qc;
  nt_endpoint_remove_cid(conn->ep, cid->data, cid->datalen);
  return 0;
}

static void set_addr(nt_addr *out, const ngtcp2_addr *a);

/* A path was validated (or failed to be). A client that asked to move
 * (conn_follow) has moved now; a server that saw the client rebind has
 * confirmed the new address. Either way the owner learns after the read. */
static int path_validation_cb(ngtcp2_conn *qc, uint32_t flags,
                              const ngtcp2_path *path,
                              ngtcp2_path_validation_result res,
                              void *user_data) {
  ((nt_conn *)user_data)->rx_mark++;
  nt_conn *conn = user_data;
  (void)qc;
  (void)flags;
  if (conn->migrating && nt_addr_equal((struct sockaddr *)&conn->mig_remote.ss,
                                       path->remote.addr)) {
    conn->migrating = 0;
  }
  if (res == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS &&
      nt_addr_equal(ngtcp2_conn_get_path(qc)->remote.addr, path->remote.addr)) {
    conn->moved = 1;
    set_addr(&conn->validated, &path->remote);
  }
  return 0;
}

/* The peer answered with a stateless reset (RFC 9000 §10.3): it no longer
 * knows the connection (it restarted, or dropped it). ngtcp2 then drains;
 * the owner learns why instead of waiting for the idle timeout. */
static int recv_stateless_reset_cb(ngtcp2_conn *qc,
                                   const ngtcp2_pkt_stateless_reset *sr,
                                   void *user_data) {
  nt_conn *conn = user_data;
  (void)qc;
  (void)sr;
  conn->got_reset = 1;
  conn->ep->resets_received++;
  return 0;
}

static void watch_start(nt_conn *conn);

static int handshake_completed_cb(ngtcp2_conn *qc, void *user_data) {
  nt_conn *conn = user_data;
  (void)qc;
  if (nt_tls_session_peer_fingerprint(conn->tls, conn->peer_fp) != 0) {
    if (!(conn->is_h3 && conn->is_server)) {
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    conn->anonymous = 1; /* a status reader without a certificate */
  }
  conn->established = 1;
  /* The handshake proved the peer receives at this address (RFC 9000
   * §8.1). */
  set_addr(&conn->validated, &ngtcp2_conn_get_path(qc)->remote);
  watch_start(conn);
  if (conn->cbs.established) {
    conn->cbs.established(conn, conn->user_data);
  }
  return 0;
}

static int stream_open_cb(ngtcp2_conn *qc, int64_t stream_id,
                          void *user_data) {
  ((nt_conn *)user_data)->rx_mark++;
  nt_conn *conn = user_data;
  (void)qc;
  if (!ngtcp2_is_bidi_stream(stream_id) && !conn->is_h3) {
    /* Only HTTP/3 uses unidirectional streams: refuse to read one. */
    ngtcp2_conn_shutdown_stream_read(conn->qc, stream_id, 1);
    return 0;
  }
  nt_stream *s = stream_new(conn, stream_id);
  if (!s) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  if (conn->cbs.stream_opened) {
    conn->cbs.stream_opened(conn, s, conn->user_data);
  } else {
    nt_stream_reset(s, 1);
  }
  return 0;
}

static int recv_stream_data_cb(ngtcp2_conn *qc, uint32_t flags,
                               int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen,
                               void *user_data, void *stream_user_data) {
  ((nt_conn *)user_data)->rx_mark++;
  nt_stream *s = stream_user_data;
  (void)qc;
  (void)offset;
  (void)user_data;
  if (!s) {
    /* A unidirectional stream we refused: give the credit back. */
    ngtcp2_conn_extend_max_offset(qc, datalen);
    return 0;
  }
  (void)stream_id;
  if (s->cbs.recv) {
    s->cbs.recv(s, data, datalen, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0,
                s->user_data);
  } else {
    nt_stream_consume(s, datalen);
  }
  return 0;
}

static int acked_stream_data_offset_cb(ngtcp2_conn *qc, int64_t stream_id,
                                       uint64_t offset, uint64_t datalen,
                                       void *user_data,
                                       void *stream_user_data) {
  ((nt_conn *)user_data)->rx_mark++;
  nt_conn *conn = user_data;
  nt_stream *s = stream_user_data;
  (void)qc;
  (void)stream_id;
  if (!s) {
    return 0;
  }
  uint64_t before = nt_sendbuf_held(&s->sb);
  nt_sendbuf_ack(&s->sb, offset + datalen);
  conn->send_held -= before - nt_sendbuf_held(&s->sb);
  conn->want_send_room = 1;
  return 0;
}

static int stream_close_cb(ngtcp2_conn *qc, uint32_t flags, int64_t stream_id,
                           uint64_t app_error_code, void *user_data,
                           void *stream_user_data) {
  ((nt_conn *)user_data)->rx_mark++;
  nt_conn *conn = user_data;
  nt_stream *s = stream_user_data;
  (void)qc;
  (void)stream_id;
  if (ngtcp2_is_bidi_stream(stream_id) &&
      !ngtcp2_conn_is_local_stream(conn->qc, stream_id)) {
    /* Let the peer open another in its place. */
    ngtcp2_conn_extend_max_streams_bidi(conn->qc, 1);
  }
  if (!s) {
    return 0;
  }
  int reset = (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) &&
              app_error_code != 0;
  stream_finish(s, reset, app_error_code);
  return 0;
}

/* RESET_STREAM or STOP_SENDING from the peer: a forwarded connection
 * aborted on one side aborts on the other, so shut both directions. */
static int stream_reset_cb(ngtcp2_conn *qc, int64_t stream_id,
                           uint64_t final_size, uint64_t app_error_code,
                           void *user_data, void *stream_user_data) {
  (void)final_size;
  (void)user_data;
  (void)stream_user_data;
  ngtcp2_conn_shutdown_stream(qc, stream_id, app_error_code ? app_error_code
                                                            : 1);
  return 0;
}

static int stream_stop_sending_cb(ngtcp2_conn *qc, int64_t stream_id,
                                  uint64_t app_error_code, void *user_data,
                                  void *stream_user_data) {
  return stream_reset_cb(qc, stream_id, 0, app_error_code, user_data,
                         stream_user_data);
}

static int extend_max_stream_data_cb(ngtcp2_conn *qc, int64_t stream_id,
                                     uint64_t max_data, void *user_data,
                                     void *stream_user_data) {
  ((nt_conn *)user_data)->rx_mark++;
  nt_conn *conn = user_data;
  nt_stream *s = stream_user_data;
  (void)qc;
  (void)stream_id;
  (void)max_data;
  if (s && s->blocked) {
    s->blocked = 0;
    if (nt_sendbuf_unsent(&s->sb) > 0 || (s->fin_queued && !s->fin_sent)) {
      pending_add(conn, s);
    }
  }
  return 0;
}

/* NATTER_QUIC_TRACE=1 in the environment prints ngtcp2's own trace: for
 * debugging the transport, never on by default. */
static void quic_trace(void *user_data, const char *fmt, ...) {
  va_list ap;
  (void)user_data;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* The peer sent MAX_STREAMS. Owners open streams from the loop, not from
 * inside ngtcp2's packet processing. */
static int extend_max_local_streams_bidi_cb(ngtcp2_conn *qc,
                                            uint64_t max_streams,
                                            void *user_data) {
  ((nt_conn *)user_data)->rx_mark++;
  nt_conn *conn = user_data;
  (void)qc;
  (void)max_streams;
  if (conn->cbs.streams_available) {
    event_active(conn->streams_ev, EV_TIMEOUT, 0);
  }
  return 0;
}

static void streams_cb(evutil_socket_t fd, short what, void *arg) {
  nt_conn *conn = arg;
  (void)fd;
  (void)what;
  if (!conn->closing && conn->cbs.streams_available) {
    conn->cbs.streams_available(conn, conn->user_data);
  }
}

static void fill_callbacks(ngtcp2_callbacks *cb, int is_server) {
  memset(cb, 0, sizeof(*cb));
  if (is_server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->rand = rand_cb;
  cb->get_new_connection_id = get_new_connection_id_cb;
  cb->remove_connection_id = remove_connection_id_cb;
  cb->handshake_completed = handshake_completed_cb;
  cb->stream_open = stream_open_cb;
  cb->recv_stream_data = recv_stream_data_cb;
  cb->acked_stream_data_offset = acked_stream_data_offset_cb;
  cb->stream_close = stream_close_cb;
  cb->stream_reset = stream_reset_cb;
  cb->stream_stop_sending = stream_stop_sending_cb;
  cb->extend_max_stream_data = extend_max_stream_data_cb;
  cb->extend_max_local_streams_bidi = extend_max_local_streams_bidi_cb;
  cb->path_validation = path_validation_cb;
  cb->recv_stateless_reset = recv_stateless_reset_cb;
  cb->recv_datagram = recv_datagram_cb;
}

/* ---- timer and write loop ---- */

static void arm_timer(nt_conn *conn) {
  ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn->qc);
  ngtcp2_tstamp now = nt_timestamp();
  uint64_t delta = expiry > now ? expiry - now : 0;
  struct timeval tv;

  if (expiry == UINT64_MAX) {
    event_del(conn->timer);
    return;
  }
  tv.tv_sec = (time_t)(delta / NGTCP2_SECONDS);
  tv.tv_usec = (suseconds_t)((delta % NGTCP2_SECONDS) / 1000);
  event_add(conn->timer, &tv);
}

static nt_close_reason reason_from_liberr(nt_conn *conn, int liberr) {
  switch (liberr) {
  case NGTCP2_ERR_IDLE_CLOSE:
    return NT_CLOSE_IDLE;
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    return NT_CLOSE_HANDSHAKE_TIMEOUT;
  case NGTCP2_ERR_CRYPTO:
  case NGTCP2_ERR_CALLBACK_FAILURE:
    if (!conn->established) {
      return nt_tls_session_key_mismatch(conn->tls) ? NT_CLOSE_KEY_MISMATCH
                                                    : NT_CLOSE_TLS;
    }
    return NT_CLOSE_ERROR;
  default:
    return NT_CLOSE_ERROR;
  }
}

/* The address of the socket this connection runs on. */
static const nt_addr *conn_local(const nt_conn *conn) {
  return conn->aux ? &conn->aux->local : &conn->ep->local;
}

int nt_conn_socket(const nt_conn *conn) {
  return conn->aux ? conn->aux->id : 0;
}

/* Every packet leaves through here: to the relay framed with our channel
 * token, elsewhere as it is. */
/* Sends packets to |to|: through the relay, framed with the channel's
 * token, when |to| is the relay; straight there otherwise. */
static void conn_send_to(nt_conn *conn, const nt_addr *to, const uint8_t *buf,
                         size_t len, size_t segsize) {
  nt_endpoint *ep = conn->ep;
  if (conn->relay_on &&
      nt_addr_equal((const struct sockaddr *)&to->ss,
                    (const struct sockaddr *)&conn->relay_addr.ss)) {
    nt_endpoint_send_relayed(ep, &conn->relay_addr, conn->relay_token, buf,
                             len, segsize);
    return;
  }
  nt_endpoint_send_packets(ep, conn->aux ? conn->aux->fd : ep->fd, buf, len,
                           segsize, (const struct sockaddr *)&to->ss,
                           &conn->src);
}

static void conn_send(nt_conn *conn, const uint8_t *buf, size_t len,
                      size_t segsize) {
  conn_send_to(conn, &conn->remote, buf, len, segsize);
}

/* Sends CONNECTION_CLOSE carrying last_error, once. */
static void send_connection_close(nt_conn *conn) {
  uint8_t buf[NT_MAX_UDP_PAYLOAD];
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;

  if (ngtcp2_conn_is_in_closing_period(conn->qc) ||
      ngtcp2_conn_is_in_draining_period(conn->qc)) {
    return;
  }
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
      conn->qc, &ps.path, &pi, buf, sizeof(buf), &conn->last_error,
      nt_timestamp());
  if (n > 0) {
    conn_send(conn, buf, (size_t)n, (size_t)n);
  }
}

static void fail_conn(nt_conn *conn, int liberr) {
  nt_close_reason reason = reason_from_liberr(conn, liberr);
  if (liberr == NGTCP2_ERR_CRYPTO) {
    ngtcp2_connection_close_error_set_transport_error_tls_alert(
        &conn->last_error, ngtcp2_conn_get_tls_alert(conn->qc), NULL, 0);
  } else if (conn->last_error.error_code == 0) {
    ngtcp2_connection_close_error_set_transport_error_liberr(
        &conn->last_error, liberr, NULL, 0);
  }
  if (reason != NT_CLOSE_IDLE && reason != NT_CLOSE_HANDSHAKE_TIMEOUT) {
    send_connection_close(conn);
  }
  schedule_free(conn, reason);
}

static void set_addr(nt_addr *out, const ngtcp2_addr *a) {
  if (a->addrlen > 0 && a->addrlen <= sizeof(out->ss)) {
    memcpy(&out->ss, a->addr, a->addrlen);
    out->len = a->addrlen;
  }
}

static int path_is(const nt_addr *a, const ngtcp2_addr *b) {
  return b->addrlen == 0 ||
         nt_addr_equal((const struct sockaddr *)&a->ss, b->addr);
}

/* ---- datagrams ---- */

/* Packets written without a queued datagram before it is dropped. A
 * packet may miss it because it did not fit beside other frames (it gets
 * the next packet) or because the congestion window allowed only an ACK;
 * one that fits in no packet at all (nt_conn_send_datagram checks the
 * size first, so only if the path shrank) must not block the queue. */
#define NT_DGRAM_MAX_TRIES 16
/* How long a datagram may wait for the congestion window: late ones are
 * worthless to whoever waits for them, and the queue must not grow a
 * standing delay. */
#define NT_DGRAM_MAX_AGE_NS (100ull * 1000000)

static void dgram_pop(nt_conn *conn, int dropped) {
  nt_dgram *d = STAILQ_FIRST(&conn->dgrams);
  STAILQ_REMOVE_HEAD(&conn->dgrams, link);
  conn->ndgrams--;
  conn->dgram_bytes -= d->len;
  conn->dgrams_dropped += dropped != 0;
  free(d);
}

size_t nt_conn_datagram_max(nt_conn *conn) {
  if (!nt_conn_is_established(conn)) {
    return 0;
  }
  const ngtcp2_transport_params *rp =
      ngtcp2_conn_get_remote_transport_params(conn->qc);
  if (!rp || rp->max_datagram_frame_size <= 1 + 4) {
    return 0;
  }
  size_t pkt = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn->qc);
  if (pkt > NT_TXBUF_SIZE) {
    pkt = NT_TXBUF_SIZE;
  }
  size_t max = pkt > NT_DGRAM_PKT_OVERHEAD ? pkt - NT_DGRAM_PKT_OVERHEAD : 0;
  /* The peer's limit counts the frame's type and length too. */
  if (rp->max_datagram_frame_size - (1 + 4) < max) {
    max = (size_t)(rp->max_datagram_frame_size - (1 + 4));
  }
  return max;
}

int nt_conn_send_datagram(nt_conn *conn, const uint8_t *hdr, size_t hdrlen,
                          const uint8_t *data, size_t len) {
  size_t max = nt_conn_datagram_max(conn);
  if (max == 0) {
    return -1;
  }
  if (hdrlen + len > max) {
    return NT_DGRAM_TOO_BIG;
  }
  if (conn->ndgrams >= NT_DGRAM_QUEUE_MAX ||
      conn->dgram_bytes + hdrlen + len > NT_DGRAM_QUEUE_BYTES) {
    return NT_DGRAM_FULL;
  }
  nt_dgram *d = malloc(sizeof(*d) + hdrlen + len);
  if (!d) {
    return NT_DGRAM_FULL;
  }
  d->len = hdrlen + len;
  d->tries = 0;
  d->queued_ns = nt_monotonic_ns();
  if (hdrlen) {
    memcpy(d->data, hdr, hdrlen);
  }
  if (len) {
    memcpy(d->data + hdrlen, data, len);
  }
  STAILQ_INSERT_TAIL(&conn->dgrams, d, link);
  conn->ndgrams++;
  conn->dgram_bytes += d->len;
  schedule_write(conn);
  return 0;
}

uint64_t nt_conn_datagrams_dropped(const nt_conn *conn) {
  return conn->dgrams_dropped;
}

static int recv_datagram_cb(ngtcp2_conn *qc, uint32_t flags,
                            const uint8_t *data, size_t datalen,
                            void *user_data) {
  nt_conn *conn = user_data;
  (void)qc;
  conn->rx_mark++;
  /* 0-RTT is never enabled; a datagram before the handshake ends would
   * come from a peer not yet authenticated. */
  if ((flags & NGTCP2_DATAGRAM_FLAG_EARLY) || !conn->established) {
    return 0;
  }
  if (conn->cbs.datagram) {
    conn->cbs.datagram(conn, data, datalen, conn->user_data);
  }
  return 0;
}

/* ---- the write loop ---- */

/* Adds the packet of |n| bytes ngtcp2 just wrote at buf + *buflen to the
 * batch, sending the batch first when the packet cannot join it. */
static void packet_out(nt_conn *conn, const ngtcp2_path_storage *ps,
                       nt_addr *to, uint8_t *buf, size_t *buflen,
                       size_t *segsize, size_t n) {
  /* Each packet goes where ngtcp2 says: during path validation some
   * go to the new address and some to the old one. */
  int same_path = *buflen == 0 || path_is(to, &ps->path.remote);
  /* GSO sends equal-sized segments; a larger packet, one after a
   * short one, or one for another address starts a new batch. */
  if (*segsize == 0) {
    *segsize = n;
  } else if (n > *segsize || *buflen % *segsize != 0 || !same_path) {
    conn_send_to(conn, to, buf, *buflen, *segsize);
    memmove(buf, buf + *buflen, n);
    *buflen = 0;
    *segsize = n;
  }
  if (*buflen == 0) {
    set_addr(to, &ps->path.remote);
  }
  *buflen += n;
  conn->tx_bytes += n;
  if (n < *segsize) {
    conn_send_to(conn, to, buf, *buflen, *segsize);
    *buflen = 0;
    *segsize = 0;
  }
}

/* Said once per size: whether PMTUD works on a path is what one asks
 * first when a LAN or tunnel is slow. */
static void path_payload_grew(nt_conn *conn, size_t size) {
  int first = conn->path_payload == 0;
  conn->path_payload = size;
  if (first || !conn->ep->cfg.log ||
      !ngtcp2_conn_get_handshake_completed(conn->qc)) {
    return;
  }
  char a[NT_ADDR_STRLEN];
  nt_debug(conn->ep->cfg.log,
           "QUIC to %s: path MTU discovery: now %zu-byte UDP payloads",
           nt_addr_str((const struct sockaddr *)&conn->remote.ss, a), size);
}

/* Writes one GSO batch (at most the send quantum). Returns 1 when it
 * stopped at that limit, so more may go at once; 0 when the congestion
 * window, pacing or the data ran out (or the connection failed). */
static int write_streams(nt_conn *conn) {
  nt_endpoint *ep = conn->ep;
  uint8_t *buf = ep->txbuf;
  size_t buflen = 0, segsize = 0;
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  ngtcp2_tstamp ts = nt_timestamp();
  size_t pktmax = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn->qc);
  /* Each write gets room for the largest packet this connection may
   * send, not the path's current size: ngtcp2 sizes ordinary packets to
   * the path itself, and writes a PMTUD probe (larger than the path's
   * size) only when the room takes it. With room for one path-sized
   * packet no probe ever went out and every connection stayed at 1200
   * bytes. A probe ends the GSO batch it lands in (packet_out). */
  size_t room_max = ngtcp2_conn_get_max_tx_udp_payload_size(conn->qc);
  /* ngtcp2 pads handshake datagrams to the whole buffer: keep those at
   * the usual size (what an unauthenticated sender can make us send). */
  if (!ngtcp2_conn_get_handshake_completed(conn->qc)) {
    if (pktmax > NT_MAX_UDP_PAYLOAD) {
      pktmax = NT_MAX_UDP_PAYLOAD;
    }
    room_max = pktmax;
  }
  if (room_max < pktmax) {
    room_max = pktmax;
  }
  if (room_max > NT_TXBUF_SIZE) {
    room_max = NT_TXBUF_SIZE;
  }
  size_t max_pkts = ngtcp2_conn_get_send_quantum(conn->qc) / pktmax;
  if (pktmax > conn->path_payload) {
    path_payload_grew(conn, pktmax);
  }
  nt_addr to = conn->remote; /* the current batch's destination */

  if (pktmax > NT_TXBUF_SIZE) {
    pktmax = NT_TXBUF_SIZE;
  }
  if (max_pkts > NT_TXBUF_SIZE / pktmax) {
    max_pkts = NT_TXBUF_SIZE / pktmax;
  }
  if (max_pkts > NT_GSO_MAX_SEGMENTS) {
    max_pkts = NT_GSO_MAX_SEGMENTS;
  }
  if (max_pkts == 0) {
    max_pkts = 1;
  }
  ngtcp2_path_storage_zero(&ps);
  /* Datagrams that waited too long for the congestion window go. */
  uint64_t now_ns = nt_monotonic_ns();
  while (STAILQ_FIRST(&conn->dgrams) &&
         now_ns - STAILQ_FIRST(&conn->dgrams)->queued_ns > NT_DGRAM_MAX_AGE_NS) {
    dgram_pop(conn, 1);
  }
  size_t npkts = 0;
  for (; npkts < max_pkts;) {
    size_t room = NT_TXBUF_SIZE - buflen;
    if (room > room_max) {
      room = room_max;
    }
    if (room < pktmax) {
      break; /* the batch fills the buffer */
    }
    /* Datagrams first: they are small, late ones are worthless, and
     * their queue is bounded; streams fill what room is left. */
    nt_dgram *d = ngtcp2_conn_get_handshake_completed(conn->qc)
                      ? STAILQ_FIRST(&conn->dgrams)
                      : NULL;
    nt_stream *s = d ? NULL : TAILQ_FIRST(&conn->pending);
    ngtcp2_vec vec[16];
    size_t nvec = 0;
    int64_t stream_id = -1;
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    ngtcp2_ssize datalen = -1;

    if (d) {
      int accepted = 0;
      ngtcp2_vec dv = {d->data, d->len};
      ngtcp2_ssize n = ngtcp2_conn_writev_datagram(
          conn->qc, &ps.path, &pi, buf + buflen, room, &accepted,
          NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &dv, 1, ts);
      if (accepted) {
        dgram_pop(conn, 0);
      } else if (n == NGTCP2_ERR_INVALID_ARGUMENT ||
                 (n > 0 && ++d->tries >= NT_DGRAM_MAX_TRIES)) {
        dgram_pop(conn, 1); /* never fits, or the peer's limit shrank */
      }
      if (n == NGTCP2_ERR_WRITE_MORE || n == NGTCP2_ERR_INVALID_ARGUMENT) {
        continue;
      }
      if (n == NGTCP2_ERR_INVALID_STATE) {
        while (STAILQ_FIRST(&conn->dgrams)) {
          dgram_pop(conn, 1); /* the peer takes no datagrams */
        }
        continue;
      }
      if (n < 0) {
        conn_send_to(conn, &to, buf, buflen, segsize);
        fail_conn(conn, (int)n);
        return 0;
      }
      if (n == 0) {
        break;
      }
      packet_out(conn, &ps, &to, buf, &buflen, &segsize, (size_t)n);
      npkts++;
      continue;
    }
    if (s) {
      stream_id = s->id;
      nvec = nt_sendbuf_unsent_iov_upto(&s->sb, (struct iovec *)vec, 16,
                                        pktmax);
      if (s->fin_queued && nt_sendbuf_unsent(&s->sb) == 0) {
        flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      }
    }
    ngtcp2_ssize n =
        ngtcp2_conn_writev_stream(conn->qc, &ps.path, &pi, buf + buflen, room,
                                  &datalen, flags, stream_id, vec, nvec, ts);
    if (n < 0) {
      switch (n) {
      case NGTCP2_ERR_WRITE_MORE:
        nt_sendbuf_mark_sent(&s->sb, (size_t)datalen);
        if (nt_sendbuf_unsent(&s->sb) == 0) {
          if (flags & NGTCP2_WRITE_STREAM_FLAG_FIN) {
            s->fin_sent = 1;
          }
          if (!s->fin_queued || s->fin_sent) {
            pending_remove(conn, s);
          }
        }
        pending_rotate(conn, s);
        continue;
      case NGTCP2_ERR_STREAM_DATA_BLOCKED:
        s->blocked = 1;
        pending_remove(conn, s);
        continue;
      case NGTCP2_ERR_STREAM_SHUT_WR:
      case NGTCP2_ERR_STREAM_NOT_FOUND:
        pending_remove(conn, s);
        continue;
      default:
        conn_send_to(conn, &to, buf, buflen, segsize);
        fail_conn(conn, (int)n);
        return 0;
      }
    }
    if (s && datalen >= 0) {
      nt_sendbuf_mark_sent(&s->sb, (size_t)datalen);
      if (nt_sendbuf_unsent(&s->sb) == 0) {
        if (flags & NGTCP2_WRITE_STREAM_FLAG_FIN) {
          s->fin_sent = 1;
        }
        if (!s->fin_queued || s->fin_sent) {
          pending_remove(conn, s);
        }
      }
      pending_rotate(conn, s);
    }
    if (n == 0) {
      break; /* congestion window full or nothing to say */
    }
    packet_out(conn, &ps, &to, buf, &buflen, &segsize, (size_t)n);
    npkts++;
  }
  conn_send_to(conn, &to, buf, buflen, segsize);
  ngtcp2_conn_update_pkt_tx_time(conn->qc, ts);
  return npkts >= max_pkts;
}

static void notify_send_room(nt_conn *conn) {
  if (!conn->want_send_room) {
    return;
  }
  conn->want_send_room = 0;
  /* Streams may close from inside send_room: remember the next first. */
  for (nt_stream *s = LIST_FIRST(&conn->streams), *next; s; s = next) {
    next = LIST_NEXT(s, conn_link);
    if (s->cbs.send_room && nt_stream_send_room(s) > 0) {
      s->cbs.send_room(s, s->user_data);
    }
  }
}

void nt_conn_flush(nt_conn *conn) {
  if (conn->closing) {
    return;
  }
  if (conn->close_pending) {
    send_connection_close(conn);
    schedule_free(conn, NT_CLOSE_LOCAL);
    return;
  }
  notify_send_room(conn);
  if (conn->closing) {
    return;
  }
  /* Up to NT_WRITE_BATCHES GSO batches per wake-up, while the congestion
   * window and pacing allow (ngtcp2 lets a batch go up to 1 ms ahead of
   * its pacing time): fewer loop turns per byte on both sides. Only on
   * a clean path: within NT_WRITE_BATCHES_QUIET_NS of the last loss
   * recovery, one batch (at 1% loss the bursts cost throughput). */
  int batches = NT_WRITE_BATCHES;
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(conn->qc, &cs);
  uint64_t now = nt_timestamp();
  if (cs.congestion_recovery_start_ts != UINT64_MAX &&
      now - cs.congestion_recovery_start_ts < NT_WRITE_BATCHES_QUIET_NS) {
    batches = 1;
  }
  for (int i = 0; i < batches && !conn->closing; i++) {
    if (!write_streams(conn)) {
      break;
    }
  }
  if (!conn->closing) {
    arm_timer(conn);
  }
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nt_conn_flush(arg);
}

static void schedule_write(nt_conn *conn) {
  if (!conn->closing) {
    event_active(conn->write_ev, EV_WRITE, 0);
  }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  nt_conn *conn = arg;
  (void)fd;
  (void)what;
  int rv = ngtcp2_conn_handle_expiry(conn->qc, nt_timestamp());
  if (rv != 0) {
    fail_conn(conn, rv);
    return;
  }
  nt_conn_flush(conn);
}

/* ---- paths: keepalive and the silence watch ---- */

/* Whether the peer owes us something: streams are open (a forward may
 * be waiting for bytes) or packets are in flight. */
static int conn_active(nt_conn *conn) {
  ngtcp2_conn_stat st;
  ngtcp2_conn_get_conn_stat(conn->qc, &st);
  return !LIST_EMPTY(&conn->streams) || st.bytes_in_flight > 0;
}

static void watch_cb(evutil_socket_t fd, short what, void *arg) {
  nt_conn *conn = arg;
  uint64_t now = nt_timestamp();
  ngtcp2_conn_stat st;
  (void)fd;
  (void)what;

  if (conn->closing || conn->close_pending) {
    return;
  }
  ngtcp2_conn_get_conn_stat(conn->qc, &st);
  int active = conn_active(conn);
  /* Data arriving: a rebinding must show within a few hundred ms, so a
   * side that only receives PINGs soon after the flow stops (ngtcp2 sends
   * a keepalive only when nothing else went out or came in). */
  if (conn->rx_bytes - conn->watch_rx_bytes >= NT_FLOW_BYTES) {
    conn->flow_ns = now;
  }
  conn->watch_rx_bytes = conn->rx_bytes;
  int mode = !active ? 0
             : conn->flow_ns && now - conn->flow_ns < 2 * NGTCP2_SECONDS
                 ? 2
                 : 1;
  if (mode != conn->fast_keepalive && conn->ep->cfg.keepalive_ms) {
    conn->fast_keepalive = mode;
    ngtcp2_conn_set_keep_alive_timeout(
        conn->qc,
        (mode == 2   ? NT_FLOW_KEEPALIVE_MS
         : mode == 1 ? NT_ACTIVE_KEEPALIVE_MS
                     : conn->ep->cfg.keepalive_ms) *
            NGTCP2_MILLISECONDS);
    arm_timer(conn);
  }
  /* Since when we wait for an acknowledgement (to a watch tick). */
  if (st.bytes_in_flight == 0) {
    conn->inflight_since_ns = 0;
  } else if (!conn->inflight_since_ns) {
    conn->inflight_since_ns = now;
  }
  /* Since when the peer owes us something: an idle stretch before is
   * no silence (nothing was asked), however long. */
  if (!active) {
    conn->active_since_ns = 0;
  } else if (!conn->active_since_ns) {
    conn->active_since_ns = now;
  }
  if (!active || !conn->cbs.silent) {
    return;
  }
  uint64_t pto = ngtcp2_conn_get_pto(conn->qc);
  uint64_t since = conn->last_rx_ns > conn->active_since_ns
                       ? conn->last_rx_ns
                       : conn->active_since_ns;
  uint64_t limit;
  if (conn->inflight_since_ns) {
    /* Packets are owed an acknowledgement, and nothing came back for a
     * few round trips (two probe timeouts, at least NT_QUICK_SILENCE_MS):
     * the path likely broke; ask at once rather than after loss
     * recovery's backed-off probes (seconds). */
    /* While data arrives, the last packet is the reference (our PING
     * followed it within NT_FLOW_KEEPALIVE_MS); otherwise the time we
     * began to wait, since the last packet may be a keepalive long ago. */
    if (mode != 2 && conn->inflight_since_ns > since) {
      since = conn->inflight_since_ns;
    }
    limit = 2 * pto > NT_QUICK_SILENCE_MS * NGTCP2_MILLISECONDS
                ? 2 * pto
                : NT_QUICK_SILENCE_MS * NGTCP2_MILLISECONDS;
  } else {
    /* Only streams open: the peer's keepalive (1 s) is the sign of life.
     * Longer than a keepalive round on a healthy path. */
    limit = 1500 * NGTCP2_MILLISECONDS + 3 * pto;
  }
  if (now - since < limit ||
      now - conn->silent_noted_ns < NT_SILENT_REPEAT_MS * NGTCP2_MILLISECONDS) {
    return;
  }
  conn->silent_noted_ns = now;
  conn->cbs.silent(conn, (now - since) / NGTCP2_MILLISECONDS,
                   conn->user_data);
}

static void watch_start(nt_conn *conn) {
  struct timeval tv = {0, NT_WATCH_INTERVAL_MS * 1000};
  conn->last_rx_ns = conn->last_cur_rx_ns = nt_timestamp();
  if (conn->watch_ev) {
    event_add(conn->watch_ev, &tv);
  }
}

void nt_conn_set_keepalive(nt_conn *conn, uint64_t ms) {
  ngtcp2_conn_set_keep_alive_timeout(conn->qc, ms * NGTCP2_MILLISECONDS);
  arm_timer(conn);
}

uint64_t nt_conn_silent_ms(const nt_conn *conn) {
  return (nt_timestamp() - conn->last_rx_ns) / NGTCP2_MILLISECONDS;
}

void nt_conn_kick(nt_conn *conn) {
  ngtcp2_conn_stat st;
  if (conn->closing || conn->close_pending || !conn->established) {
    return;
  }
  ngtcp2_conn_get_conn_stat(conn->qc, &st);
  uint64_t now = nt_timestamp();
  /* Run loss recovery's timer now: its probe goes out at once instead of
   * after the exponential backoff that a dead path built up. */
  if (st.loss_detection_timer != UINT64_MAX && st.loss_detection_timer > now &&
      st.loss_detection_timer - now < 5 * NGTCP2_SECONDS) {
    int rv = ngtcp2_conn_handle_expiry(conn->qc, st.loss_detection_timer);
    if (rv != 0) {
      fail_conn(conn, rv);
      return;
    }
  }
  schedule_write(conn);
}

/* ---- lifetime ---- */

static void release(nt_conn *conn) {
  nt_endpoint *ep = conn->ep;

  while (!LIST_EMPTY(&conn->streams)) {
    /* The connection is gone: every stream on it ends as reset. */
    stream_finish(LIST_FIRST(&conn->streams), 1, 0);
  }
  nt_endpoint_forget_conn(ep, conn);
  while (STAILQ_FIRST(&conn->dgrams)) {
    dgram_pop(conn, 0);
  }
  if (conn->timer) {
    event_free(conn->timer);
  }
  if (conn->write_ev) {
    event_free(conn->write_ev);
  }
  if (conn->free_ev) {
    event_free(conn->free_ev);
  }
  if (conn->streams_ev) {
    event_free(conn->streams_ev);
  }
  if (conn->watch_ev) {
    event_free(conn->watch_ev);
  }
  if (conn->qc) {
    ngtcp2_conn_del(conn->qc);
  }
  nt_tls_session_free(conn->tls);
  free(conn);
}

static void free_cb(evutil_socket_t fd, short what, void *arg) {
  nt_conn *conn = arg;
  (void)fd;
  (void)what;
  nt_conn_callbacks cbs = conn->cbs;
  void *ud = conn->user_data;
  nt_close_reason reason = conn->close_reason;
  uint64_t code = conn->close_app_code;
  char message[sizeof(conn->close_message)];

  memcpy(message, conn->close_message, sizeof(message));
  /* Streams learn first, so owners see their tunnels end before the
   * connection that carried them. */
  while (!LIST_EMPTY(&conn->streams)) {
    stream_finish(LIST_FIRST(&conn->streams), 1, 0);
  }
  if (cbs.closed) {
    cbs.closed(conn, reason, code, message, ud);
  }
  release(conn);
}

static void schedule_free(nt_conn *conn, nt_close_reason reason) {
  if (conn->closing) {
    return;
  }
  conn->closing = 1;
  conn->close_reason = reason;
  event_del(conn->timer);
  if (conn->watch_ev) {
    event_del(conn->watch_ev);
  }
  event_active(conn->free_ev, EV_TIMEOUT, 0);
}

void nt_conn_destroy(nt_conn *conn) {
  if (!conn->closing) {
    if (!conn->close_pending) {
      ngtcp2_connection_close_error_set_application_error(
          &conn->last_error, 0, (const uint8_t *)"shutting down", 13);
    }
    send_connection_close(conn);
  }
  conn->cbs.closed = NULL;
  while (!LIST_EMPTY(&conn->streams)) {
    nt_stream *s = LIST_FIRST(&conn->streams);
    s->cbs.closed = NULL; /* owners are being torn down too */
    stream_finish(s, 1, 0);
  }
  release(conn);
}

void nt_conn_close(nt_conn *conn, uint64_t app_code, const char *reason) {
  if (conn->closing || conn->close_pending) {
    return;
  }
  /* Callers are often inside an ngtcp2 callback (a message handler runs
   * under ngtcp2_conn_read_pkt), where writing a packet is forbidden: the
   * CONNECTION_CLOSE goes out from the loop. ngtcp2 keeps a pointer to the
   * reason, so it lives in the connection. */
  snprintf(conn->close_reason_text, sizeof(conn->close_reason_text), "%s",
           reason ? reason : "");
  ngtcp2_connection_close_error_set_application_error(
      &conn->last_error, app_code, (const uint8_t *)conn->close_reason_text,
      strlen(conn->close_reason_text));
  conn->close_pending = 1;
  event_active(conn->write_ev, EV_WRITE, 0);
}

/* HTTP/3 needs three unidirectional streams each way (control, QPACK
 * encoder and decoder, RFC 9114 §6.2); natter's protocol needs none. */
#define H3_MAX_STREAMS_UNI 3
#define H3_STREAM_DATA_UNI (64 * 1024)

enum { TLS_NATTER, TLS_ROUTED, TLS_H3_CLIENT };

/* nt_tls_alpn_fn of a routed server connection: the owner for the chosen
 * protocol takes it, or the handshake fails. */
static int route_by_alpn(void *ud, int is_h3) {
  nt_conn *conn = ud;
  nt_accept_params params;
  if (!nt_endpoint_route(conn->ep, conn, is_h3, &params)) {
    return -1;
  }
  conn->cbs = *params.callbacks;
  conn->user_data = params.user_data;
  if (conn->cbs.silent && !conn->watch_ev) {
    /* The owner is known only now: its silence watch starts here. */
    conn->watch_ev =
        event_new(conn->ep->base, -1, EV_PERSIST, watch_cb, conn);
    if (!conn->watch_ev) {
      return -1;
    }
  }
  nt_tls_session_expect(conn->tls, params.expected_fp);
  if (is_h3) {
    /* Before the handshake keys exist, so the EncryptedExtensions carry
     * these (ngtcp2_conn_set_local_transport_params). */
    ngtcp2_transport_params tp =
        *ngtcp2_conn_get_local_transport_params(conn->qc);
    tp.initial_max_streams_uni = H3_MAX_STREAMS_UNI;
    tp.initial_max_stream_data_uni = H3_STREAM_DATA_UNI;
    if (ngtcp2_conn_set_local_transport_params(conn->qc, &tp) != 0) {
      return -1;
    }
    conn->is_h3 = 1;
  }
  return 0;
}

static int conn_create(nt_conn **pconn, nt_endpoint *ep, int is_server,
                       const struct sockaddr *remote, socklen_t remotelen,
                       const ngtcp2_pkt_hd *initial_hd,
                       const ngtcp2_cid *odcid, const uint8_t *expected_fp,
                       const nt_conn_callbacks *cbs, void *user_data,
                       int tls_kind);

int nt_conn_new(nt_conn **pconn, nt_endpoint *ep, int is_server,
                const struct sockaddr *remote, socklen_t remotelen,
                const ngtcp2_pkt_hd *initial_hd, const ngtcp2_cid *odcid,
                const uint8_t *expected_fp, const nt_conn_callbacks *cbs,
                void *user_data) {
  return conn_create(pconn, ep, is_server, remote, remotelen, initial_hd,
                     odcid, expected_fp, cbs, user_data,
                     cbs ? TLS_NATTER : TLS_ROUTED);
}

int nt_conn_new_h3_client(nt_conn **pconn, nt_endpoint *ep,
                          const struct sockaddr *remote, socklen_t remotelen,
                          const uint8_t *expected_fp,
                          const nt_conn_callbacks *cbs, void *user_data) {
  return conn_create(pconn, ep, 0, remote, remotelen, NULL, NULL, expected_fp,
                     cbs, user_data, TLS_H3_CLIENT);
}

static int conn_create(nt_conn **pconn, nt_endpoint *ep, int is_server,
                       const struct sockaddr *remote, socklen_t remotelen,
                       const ngtcp2_pkt_hd *initial_hd,
                       const ngtcp2_cid *odcid, const uint8_t *expected_fp,
                       const nt_conn_callbacks *cbs, void *user_data,
                       int tls_kind) {
  nt_conn *conn = calloc(1, sizeof(*conn));
  ngtcp2_callbacks callbacks;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid scid, dcid;
  int rv, err = NATTER_ERR_NOMEM;

  if (!conn) {
    return NATTER_ERR_NOMEM;
  }
  conn->ep = ep;
  conn->is_server = is_server;
  conn->aux = ep->new_aux;
  if (cbs) {
    conn->cbs = *cbs;
  }
  conn->is_h3 = tls_kind == TLS_H3_CLIENT;
  conn->user_data = user_data;
  memcpy(&conn->remote.ss, remote, remotelen);
  conn->remote.len = remotelen;
  conn->validated = conn->remote;
  conn->conn_ref.get_conn = get_conn;
  conn->conn_ref.user_data = conn;
  ngtcp2_connection_close_error_default(&conn->last_error);
  LIST_INIT(&conn->streams);
  TAILQ_INIT(&conn->pending);
  STAILQ_INIT(&conn->dgrams);
  nt_endpoint_add_conn(ep, conn);

  conn->timer = event_new(ep->base, -1, 0, timer_cb, conn);
  conn->write_ev = event_new(ep->base, -1, 0, write_cb, conn);
  conn->free_ev = event_new(ep->base, -1, 0, free_cb, conn);
  conn->streams_ev = event_new(ep->base, -1, 0, streams_cb, conn);
  if (!conn->timer || !conn->write_ev || !conn->free_ev ||
      !conn->streams_ev) {
    goto fail;
  }
  if (cbs && cbs->silent) {
    conn->watch_ev = event_new(ep->base, -1, EV_PERSIST, watch_cb, conn);
    if (!conn->watch_ev) {
      goto fail;
    }
  }
  rv = tls_kind == TLS_ROUTED
           ? nt_tls_session_new_routed(&conn->tls, ep->cfg.identity,
                                       &conn->conn_ref, route_by_alpn, conn)
       : tls_kind == TLS_H3_CLIENT
           ? nt_tls_session_new_h3_client(&conn->tls, ep->cfg.identity,
                                          expected_fp, &conn->conn_ref)
           : nt_tls_session_new(&conn->tls, ep->cfg.identity, is_server,
                                expected_fp, &conn->conn_ref);
  if (rv != 0) {
    err = NATTER_ERR_TLS;
    goto fail;
  }

  fill_callbacks(&callbacks, is_server);
  ngtcp2_settings_default(&settings);
  settings.initial_ts = nt_timestamp();
  /* BBR paces at the measured bottleneck rate and does not read random
   * loss as congestion: in the NAT lab at 1% loss per router it moved
   * ~10x what CUBIC did (and more than the kernel's TCP), and it keeps the
   * queue short, so small requests beside a bulk stream wait less. BBR2
   * (in ngtcp2 0.12) backs off on loss like CUBIC. */
  settings.cc_algo = NGTCP2_CC_ALGO_BBR;
  if (getenv("NATTER_QUIC_TRACE")) {
    settings.log_printf = quic_trace;
  }
  settings.handshake_timeout = ep->cfg.handshake_timeout_ms * NGTCP2_MILLISECONDS;
  settings.max_tx_udp_payload_size = NT_MAX_UDP_PAYLOAD;
  if (nt_endpoint_is_relay(ep, remote) &&
      remotelen <= sizeof(conn->relay_addr.ss)) {
    /* Relayed: every packet grows by the relay header on the way. */
    conn->relay_on = 1;
    memcpy(&conn->relay_addr.ss, remote, remotelen);
    conn->relay_addr.len = remotelen;
    memcpy(conn->relay_token, ep->new_relay_token, NT_RELAY_TOKEN_LEN);
    settings.max_tx_udp_payload_size = NT_MAX_UDP_PAYLOAD - NT_RELAY_HDR_LEN;
  } else if (!ep->cfg.small_packets && nt_addr_is_own(remote)) {
    /* On this host (loopback, or one of its own addresses that a LAN
     * candidate named): no link MTU on the way. */
    settings.max_tx_udp_payload_size = NT_LOOPBACK_UDP_PAYLOAD;
    settings.no_tx_udp_payload_size_shaping = 1;
    settings.no_pmtud = 1;
  }
  /* Receive windows grow automatically up to these; they also bound what
   * a slow TCP reader can make us buffer. */
  settings.max_window = 16 * 1024 * 1024;
  settings.max_stream_window = 4 * 1024 * 1024;

  ngtcp2_transport_params_default(&params);
  params.initial_max_data = 4 * 1024 * 1024;
  params.initial_max_stream_data_bidi_local = 1024 * 1024;
  params.initial_max_stream_data_bidi_remote = 1024 * 1024;
  params.initial_max_streams_bidi =
      ep->cfg.max_streams_bidi ? ep->cfg.max_streams_bidi : 256;
  params.initial_max_streams_uni = 0;
  if (tls_kind == TLS_H3_CLIENT) {
    params.initial_max_streams_uni = H3_MAX_STREAMS_UNI;
    params.initial_max_stream_data_uni = H3_STREAM_DATA_UNI;
  }
  params.max_idle_timeout = ep->cfg.idle_timeout_ms * NGTCP2_MILLISECONDS;
  if (ep->cfg.small_packets) {
    params.max_udp_payload_size = NT_MAX_UDP_PAYLOAD;
  }
  params.active_connection_id_limit = 4;
  /* DATAGRAM frames (RFC 9221) carry forwarded UDP: a frame as large as
   * a UDP payload and its header may be (codec/dgram.h). */
  params.max_datagram_frame_size = 1 + 4 + 8 + 65507;

  scid.datalen = NT_SCID_LEN;
  if (nt_random_bytes(scid.data, scid.datalen) != 0) {
    goto fail;
  }
  const nt_addr *local = conn->relay_on ? &ep->relay_local : conn_local(conn);
  ngtcp2_path path = {
      {(struct sockaddr *)&local->ss, local->len},
      {(struct sockaddr *)&conn->remote.ss, conn->remote.len},
      NULL,
  };
  if (is_server) {
    params.original_dcid = initial_hd->dcid;
    if (odcid) {
      /* After a Retry (RFC 9000 §7.3): the DCID of the client's first
       * Initial, and the one our Retry gave it. */
      params.original_dcid = *odcid;
      params.retry_scid = initial_hd->dcid;
      params.retry_scid_present = 1;
    }
    params.stateless_reset_token_present = 1;
    if (nt_endpoint_reset_token(ep, params.stateless_reset_token, scid.data,
                                scid.datalen) != 0) {
      goto fail;
    }
    rv = ngtcp2_conn_server_new(&conn->qc, &initial_hd->scid, &scid, &path,
                                initial_hd->version, &callbacks, &settings,
                                &params, NULL, conn);
    if (rv == 0) {
      err = nt_endpoint_add_cid(ep, initial_hd->dcid.data,
                                initial_hd->dcid.datalen, conn);
      if (err != 0) {
        goto fail;
      }
    }
  } else {
    dcid.datalen = NT_SCID_LEN;
    if (nt_random_bytes(dcid.data, dcid.datalen) != 0) {
      goto fail;
    }
    rv = ngtcp2_conn_client_new(&conn->qc, &dcid, &scid, &path,
                                NGTCP2_PROTO_VER_V1, &callbacks, &settings,
                                &params, NULL, conn);
  }
  if (rv != 0) {
    err = rv == NGTCP2_ERR_NOMEM ? NATTER_ERR_NOMEM : NATTER_ERR_INVALID;
    goto fail;
  }
  err = nt_endpoint_add_cid(ep, scid.data, scid.datalen, conn);
  if (err != 0) {
    goto fail;
  }
  ngtcp2_conn_set_tls_native_handle(conn->qc,
                                    nt_tls_session_native_handle(conn->tls));
  if (ep->cfg.keepalive_ms) {
    ngtcp2_conn_set_keep_alive_timeout(
        conn->qc, ep->cfg.keepalive_ms * NGTCP2_MILLISECONDS);
  }
  *pconn = conn;
  return 0;
fail:
  conn->cbs.closed = NULL;
  conn->aux = NULL; /* not taken over: the caller's still */
  release(conn);
  return err;
}

/* What an authenticated packet changes: the callbacks it fires (counted
 * in rx_mark), what it acknowledged, the timers it set (an ACK to send). */
typedef struct rx_snapshot {
  uint64_t mark, in_flight, latest_rtt, expiry;
} rx_snapshot;

static void snapshot(nt_conn *conn, rx_snapshot *out) {
  ngtcp2_conn_stat st;
  ngtcp2_conn_get_conn_stat(conn->qc, &st);
  out->mark = conn->rx_mark;
  out->in_flight = st.bytes_in_flight;
  out->latest_rtt = st.latest_rtt;
  out->expiry = ngtcp2_conn_get_expiry(conn->qc);
}

/* The address ngtcp2 sends to now. */
static void sync_remote(nt_conn *conn) {
  set_addr(&conn->remote, &ngtcp2_conn_get_path(conn->qc)->remote);
}

/* natter owns the socket, so the local half of an ngtcp2 path is only a
 * label: generation 0 is the socket's address, each client migration
 * gets a new one (ngtcp2 only lets a client migrate to another local
 * address, RFC 9000 §9), which lets the dialling side follow a listener
 * whose public address changed. */
static void local_tag(const nt_conn *conn, uint32_t gen, nt_addr *out) {
  *out = *conn_local(conn);
  if (out->ss.ss_family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    sin->sin_addr.s_addr ^= htonl(gen);
  } else if (out->ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    uint32_t w;
    memcpy(&w, &sin6->sin6_addr.s6_addr[12], 4);
    w ^= htonl(gen);
    memcpy(&sin6->sin6_addr.s6_addr[12], &w, 4);
  }
}

/* An authenticated packet from |from|, not where the connection is: the
 * server moved (its NAT rebound, or it roamed). Validate the new path and
 * move there (RFC 9000 §9.3 in reverse; WireGuard roams both ways). A
 * straggler from an old path must not pull us back: the current path
 * must have been quiet for a round trip first. */
static void conn_follow(nt_conn *conn, const struct sockaddr *from,
                        socklen_t fromlen, uint64_t now) {
  ngtcp2_conn_stat st;
  char a[NT_ADDR_STRLEN];

  ngtcp2_conn_get_conn_stat(conn->qc, &st);
  uint64_t quiet = st.smoothed_rtt > 100 * NGTCP2_MILLISECONDS
                       ? st.smoothed_rtt
                       : 100 * NGTCP2_MILLISECONDS;
  if (now - conn->last_cur_rx_ns < quiet ||
      fromlen > sizeof(conn->mig_remote.ss)) {
    return;
  }
  conn->path_gen++;
  local_tag(conn, conn->path_gen, &conn->mig_local);
  memcpy(&conn->mig_remote.ss, from, fromlen);
  conn->mig_remote.len = fromlen;
  ngtcp2_path path = {
      {(struct sockaddr *)&conn->mig_local.ss, conn->mig_local.len},
      {(struct sockaddr *)&conn->mig_remote.ss, conn->mig_remote.len},
      NULL,
  };
  /* Move at once and validate meanwhile (ngtcp2 falls back to the old
   * path if validation fails): the packet that brought us here was
   * authenticated and new, and the old path has gone quiet. Sending on
   * the old path until validation ends would add a few backed-off probe
   * timeouts to the stall (seconds, issue 26). */
  int rv = ngtcp2_conn_initiate_immediate_migration(conn->qc, &path, now);
  if (rv != 0) {
    nt_debug(conn->ep->cfg.log, "peer at %s: cannot validate that path (%s)",
             nt_addr_str(from, a), ngtcp2_strerror(rv));
    return;
  }
  conn->migrating = 1;
  conn->resend_now = 1;
  nt_debug(conn->ep->cfg.log, "peer now answers from %s: moved there, validating it",
           nt_addr_str(from, a));
}

void nt_conn_recv(nt_conn *conn, const uint8_t *data, size_t len,
                  const struct sockaddr *from, socklen_t fromlen,
                  const nt_addr *dst) {
  ngtcp2_pkt_info pi = {0};
  uint64_t now = nt_timestamp();
  nt_endpoint *ep = conn->ep;

  if (conn->closing) {
    return;
  }
  conn->rx_bytes += len;
  const ngtcp2_path *cur = ngtcp2_conn_get_path(conn->qc);
  ngtcp2_path path = {cur->local, {(struct sockaddr *)from, fromlen}, NULL};
  /* Relayed packets arrive on the relayed path's stand-in local address
   * (ep->relay_local). */
  int from_relay =
      conn->relay_on &&
      nt_addr_equal(from, (const struct sockaddr *)&conn->relay_addr.ss);
  if (from_relay) {
    path.local.addr = (struct sockaddr *)&ep->relay_local.ss;
    path.local.addrlen = ep->relay_local.len;
  }
  int from_cur = nt_addr_equal(cur->remote.addr, from);
  int hint = 0;
  if (!from_relay && !from_cur && conn->migrating &&
      nt_addr_equal((struct sockaddr *)&conn->mig_remote.ss, from)) {
    path.local.addr = (struct sockaddr *)&conn->mig_local.ss;
    path.local.addrlen = conn->mig_local.len;
  } else if (!from_relay && !from_cur && !conn->is_server &&
             ngtcp2_conn_get_handshake_completed(conn->qc)) {
    /* ngtcp2 drops a client's packets from unknown paths: read it as if
     * it came the usual way, and follow it only if it proves genuine. */
    path.remote = cur->remote;
    hint = 1;
  }
  rx_snapshot before, after;
  snapshot(conn, &before);
  int rv = ngtcp2_conn_read_pkt(conn->qc, &path, &pi, data, len, now);
  if (rv == 0) {
    snapshot(conn, &after);
    /* A packet that fails AEAD (or repeats one) changes nothing in ngtcp2;
     * one that passes leaves a trace in what it delivered or acked. */
    int genuine = memcmp(&before, &after, sizeof(before)) != 0;
    /* Answer from the address the client sends to: set by the packet
     * that made the connection, moved only by authenticated ones (anyone
     * can send a copy of a packet to another of our addresses). */
    if (conn->is_server && dst && dst->len && !from_relay &&
        (!conn->src.len || genuine)) {
      conn->src = *dst;
    }
    if (genuine) {
      conn->last_rx_ns = now;
      if (from_cur) {
        conn->last_cur_rx_ns = now;
      }
      if (hint) {
        conn_follow(conn, from, fromlen, now);
      }
    }
    /* The peer may have moved (NAT rebinding): answer where it is now. */
    sync_remote(conn);
    if (conn->resend_now) {
      /* What was lost on the dead path goes out on the new one now, not
       * at the probe timer the outage backed off. */
      conn->resend_now = 0;
      nt_conn_kick(conn);
    }
    if (conn->moved) {
      conn->moved = 0;
      conn->last_cur_rx_ns = now;
      if (conn->cbs.moved) {
        conn->cbs.moved(conn, conn->user_data);
      }
    }
    return;
  }
  if (rv == NGTCP2_ERR_DRAINING && conn->got_reset) {
    snprintf(conn->close_message, sizeof(conn->close_message), "%s",
             "the peer lost the connection: it answered with a stateless "
             "reset (it restarted or dropped it)");
    schedule_free(conn, NT_CLOSE_PEER);
    return;
  }
  if (rv == NGTCP2_ERR_DRAINING) {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_conn_get_connection_close_error(conn->qc, &ccerr);
    conn->close_app_code = ccerr.error_code;
    size_t n = ccerr.reasonlen < sizeof(conn->close_message) - 1
                   ? ccerr.reasonlen
                   : sizeof(conn->close_message) - 1;
    /* The reason is the peer's text: keep printable ASCII only. */
    for (size_t i = 0; i < n; i++) {
      uint8_t c = ccerr.reason[i];
      conn->close_message[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    conn->close_message[n] = '\0';
    schedule_free(conn, !conn->established &&
                                ccerr.type ==
                                    NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT &&
                                ccerr.error_code == NGTCP2_CONNECTION_REFUSED
                            ? NT_CLOSE_REFUSED
                            : NT_CLOSE_PEER);
    return;
  }
  if (rv == NGTCP2_ERR_DROP_CONN) {
    schedule_free(conn, NT_CLOSE_ERROR);
    return;
  }
  fail_conn(conn, rv);
}

void nt_conn_set_user_data(nt_conn *conn, void *user_data) {
  conn->user_data = user_data;
}

const struct sockaddr *nt_conn_remote_addr(const nt_conn *conn) {
  return (const struct sockaddr *)&conn->remote.ss;
}

const struct sockaddr *nt_conn_validated_addr(const nt_conn *conn) {
  return (const struct sockaddr *)&conn->validated.ss;
}

const nt_addr *nt_conn_local_addr(const nt_conn *conn) {
  return &conn->src;
}

int nt_conn_is_relayed(const nt_conn *conn) {
  return conn->relay_on &&
         nt_addr_equal((const struct sockaddr *)&conn->remote.ss,
                       (const struct sockaddr *)&conn->relay_addr.ss);
}

int nt_conn_migrate(nt_conn *conn, const struct sockaddr *to, socklen_t tolen) {
  if (conn->is_server || conn->closing || !conn->established ||
      tolen > sizeof(conn->remote.ss)) {
    return -1;
  }
  nt_addr old = conn->remote;
  memcpy(&conn->remote.ss, to, tolen);
  conn->remote.len = tolen;
  const nt_addr *local = conn_local(conn);
  ngtcp2_path path = {
      {(struct sockaddr *)&local->ss, local->len},
      {(struct sockaddr *)&conn->remote.ss, conn->remote.len},
      NULL,
  };
  /* The peer validates the new path; packets lost meanwhile are resent
   * on it, so streams see nothing. */
  if (ngtcp2_conn_initiate_immediate_migration(conn->qc, &path,
                                               nt_timestamp()) != 0) {
    conn->remote = old;
    return -1;
  }
  schedule_write(conn);
  return 0;
}

int nt_conn_migrate_on(nt_conn *conn, int sock, const void *owner,
                       const struct sockaddr *to, socklen_t tolen) {
  nt_endpoint *ep = conn->ep;
  nt_aux_sock *aux = nt_endpoint_aux_free_sock(ep, sock, owner);
  if (!aux || conn->closing || conn->close_pending || !conn->established ||
      tolen > sizeof(conn->remote.ss)) {
    return -1;
  }
  if (conn->is_server) {
    /* A server cannot migrate (RFC 9000 §9): it only sends from the new
     * socket, whose mapping the peer reached; the peer's client sees
     * genuine packets from a new address and follows (conn_follow). The
     * local half of ngtcp2's path is only a label and stays. */
    nt_aux_sock *old = conn->aux;
    nt_endpoint_aux_take(aux, conn);
    conn->aux = aux;
    if (old) {
      nt_endpoint_aux_release(ep, old);
    }
    nt_conn_kick(conn);
    return 0;
  }
  nt_addr remote;
  memcpy(&remote.ss, to, tolen);
  remote.len = tolen;
  /* Another socket is another local address: ngtcp2 0.12 lets a client
   * migrate there (RFC 9000 §9). Immediate: the old path is dead (its
   * NAT changed its ports), so nothing is gained by waiting for the
   * validation before sending on the new one; ngtcp2 validates it
   * meanwhile. */
  ngtcp2_path path = {
      {(struct sockaddr *)&aux->local.ss, aux->local.len},
      {(struct sockaddr *)&remote.ss, remote.len},
      NULL,
  };
  int rv =
      ngtcp2_conn_initiate_immediate_migration(conn->qc, &path, nt_timestamp());
  if (rv != 0) {
    nt_debug(ep->cfg.log, "cannot move the connection to another socket (%s)",
             ngtcp2_strerror(rv));
    return -1;
  }
  nt_aux_sock *old = conn->aux;
  nt_endpoint_aux_take(aux, conn);
  conn->aux = aux;
  conn->remote = remote;
  conn->migrating = 0;
  conn->path_gen = 0;
  conn->last_cur_rx_ns = nt_timestamp();
  if (old) {
    nt_endpoint_aux_release(ep, old); /* its mapping is gone */
  }
  /* What was lost on the dead path goes out on the new one now. */
  nt_conn_kick(conn);
  return 0;
}

const uint8_t *nt_conn_peer_fingerprint(const nt_conn *conn) {
  return conn->established && !conn->anonymous ? conn->peer_fp : NULL;
}

uint64_t nt_conn_peer_max_streams(const nt_conn *conn) {
  const ngtcp2_transport_params *params =
      conn->qc ? ngtcp2_conn_get_remote_transport_params(conn->qc) : NULL;
  return params ? params->initial_max_streams_bidi : 0;
}

void nt_conn_get_stats(const nt_conn *conn, uint64_t *rtt_us, uint64_t *tx,
                       uint64_t *rx) {
  ngtcp2_conn_stat st;
  ngtcp2_conn_get_conn_stat(conn->qc, &st);
  *rtt_us = st.smoothed_rtt / NGTCP2_MICROSECONDS;
  *tx = conn->tx_bytes;
  *rx = conn->rx_bytes;
}

int nt_conn_is_established(const nt_conn *conn) {
  return conn->established && !conn->closing && !conn->close_pending;
}

/* ---- stream API ---- */

/* A stream ngtcp2 just opened as |id|: ours to track, or shut again. */
static int adopt_stream(nt_conn *conn, int64_t id, nt_stream **pstream) {
  nt_stream *s = stream_new(conn, id);
  if (!s) {
    ngtcp2_conn_shutdown_stream(conn->qc, id, 1);
    return -1;
  }
  *pstream = s;
  return 0;
}

int nt_conn_open_stream(nt_conn *conn, nt_stream **pstream) {
  int64_t id;
  if (!nt_conn_is_established(conn)) {
    return -1;
  }
  int rv = ngtcp2_conn_open_bidi_stream(conn->qc, &id, NULL);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
    return NT_STREAMS_BLOCKED;
  }
  if (rv != 0) {
    return -1;
  }
  return adopt_stream(conn, id, pstream);
}

void nt_stream_set_callbacks(nt_stream *stream,
                             const nt_stream_callbacks *callbacks,
                             void *user_data) {
  stream->cbs = *callbacks;
  stream->user_data = user_data;
}

nt_conn *nt_stream_conn(const nt_stream *stream) {
  return stream->conn;
}

struct nt_chunk_pool *nt_stream_chunk_pool(const nt_stream *stream) {
  return &stream->conn->ep->pool;
}

int64_t nt_stream_id(const nt_stream *stream) {
  return stream->id;
}

size_t nt_stream_send_room(const nt_stream *stream) {
  uint64_t held = nt_sendbuf_held(&stream->sb);
  uint64_t conn_held = stream->conn->send_held;
  if (held >= NT_STREAM_SEND_WINDOW || conn_held >= NT_CONN_SEND_WINDOW) {
    return 0;
  }
  uint64_t a = NT_STREAM_SEND_WINDOW - held;
  uint64_t b = NT_CONN_SEND_WINDOW - conn_held;
  return (size_t)(a < b ? a : b);
}

int nt_stream_write(nt_stream *stream, const uint8_t *data, size_t len) {
  if (stream->fin_queued || stream->closed) {
    return -1;
  }
  if (nt_sendbuf_append(&stream->sb, data, len) != 0) {
    return -1;
  }
  stream->conn->send_held += len;
  pending_add(stream->conn, stream);
  schedule_write(stream->conn);
  return 0;
}

ssize_t nt_stream_read_fd(nt_stream *stream, int fd, size_t max) {
  if (stream->fin_queued || stream->closed) {
    errno = EPIPE;
    return -1;
  }
  /* With 64 KiB packets (loopback) a read of a whole chunk is a few
   * bytes more than one packet carries: each read went out as a full
   * packet and a ~50-byte one, two sends, two wake-ups of the peer and
   * two ACKs for every 64 KiB. A read of what one packet carries leaves
   * no such tail. On paths of ordinary packets a read fills dozens of
   * them; the tail costs nothing there. */
  size_t pkt = ngtcp2_conn_get_path_max_tx_udp_payload_size(stream->conn->qc);
  if (pkt >= NT_CHUNK_SIZE / 2 && max > pkt - NT_PKT_ROOM_MARGIN) {
    max = pkt - NT_PKT_ROOM_MARGIN;
  }
  ssize_t n = nt_sendbuf_read_fd(&stream->sb, fd, max);
  if (n > 0) {
    stream->conn->send_held += (uint64_t)n;
    pending_add(stream->conn, stream);
    schedule_write(stream->conn);
  }
  return n;
}

void nt_stream_shutdown_write(nt_stream *stream) {
  if (stream->fin_queued || stream->closed) {
    return;
  }
  stream->fin_queued = 1;
  pending_add(stream->conn, stream);
  schedule_write(stream->conn);
}

void nt_stream_reset(nt_stream *stream, uint64_t app_code) {
  if (stream->closed) {
    return;
  }
  pending_remove(stream->conn, stream);
  ngtcp2_conn_shutdown_stream(stream->conn->qc, stream->id,
                              app_code ? app_code : 1);
  schedule_write(stream->conn);
}

void nt_stream_consume(nt_stream *stream, size_t n) {
  if (n == 0) {
    return;
  }
  /* A closed stream's bytes still count against the connection's window:
   * give that credit back, or aborted streams starve the connection. */
  if (!stream->closed) {
    ngtcp2_conn_extend_max_stream_offset(stream->conn->qc, stream->id, n);
  }
  ngtcp2_conn_extend_max_offset(stream->conn->qc, n);
  schedule_write(stream->conn);
}

/* ---- status (what status pages and metrics read) ---- */

uint64_t nt_conn_last_rx_ns(const nt_conn *conn) {
  return conn->last_rx_ns;
}

void nt_conn_get_path_stats(const nt_conn *conn, nt_conn_path_stats *out) {
  ngtcp2_conn_stat st;
  ngtcp2_conn_get_conn_stat(conn->qc, &st);
  out->rtt_us = st.smoothed_rtt / NGTCP2_MICROSECONDS;
  out->pto_count = st.pto_count;
  out->cwnd = st.cwnd;
  out->bytes_sent = conn->tx_bytes;
  out->bytes_received = conn->rx_bytes;
  out->max_udp_payload = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn->qc);
}

int nt_conn_open_uni_stream(nt_conn *conn, nt_stream **pstream) {
  int64_t id;
  if (!nt_conn_is_established(conn) ||
      ngtcp2_conn_open_uni_stream(conn->qc, &id, NULL) != 0) {
    return -1;
  }
  return adopt_stream(conn, id, pstream);
}
