/* One QUIC connection: ngtcp2 state, its TLS session, its timer, the write
 * loop, and the streams on it. */
#include "quic_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natter.h"

static void schedule_write(nt_conn *conn);
static void schedule_free(nt_conn *conn, nt_close_reason reason);

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
      nt_random_bytes(token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0) {
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

static int handshake_completed_cb(ngtcp2_conn *qc, void *user_data) {
  nt_conn *conn = user_data;
  (void)qc;
  if (nt_tls_session_peer_fingerprint(conn->tls, conn->peer_fp) != 0) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  conn->established = 1;
  if (conn->cbs.established) {
    conn->cbs.established(conn, conn->user_data);
  }
  return 0;
}

static int stream_open_cb(ngtcp2_conn *qc, int64_t stream_id,
                          void *user_data) {
  nt_conn *conn = user_data;
  (void)qc;
  if (!ngtcp2_is_bidi_stream(stream_id)) {
    /* We never use unidirectional streams: refuse to read one. */
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

/* Every packet leaves through here: to the relay framed with our channel
 * token, elsewhere as it is. */
static void conn_send(nt_conn *conn, const uint8_t *buf, size_t len,
                      size_t segsize) {
  nt_endpoint *ep = conn->ep;
  if (conn->relay_on && ep->relay.len &&
      nt_addr_equal((struct sockaddr *)&conn->remote.ss,
                    (struct sockaddr *)&ep->relay.ss)) {
    nt_endpoint_send_relayed(ep, conn->relay_token, buf, len, segsize);
    return;
  }
  nt_endpoint_send_packets(ep, buf, len, segsize,
                           (struct sockaddr *)&conn->remote.ss,
                           conn->remote.len);
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

static void write_streams(nt_conn *conn) {
  nt_endpoint *ep = conn->ep;
  uint8_t *buf = ep->txbuf;
  size_t buflen = 0, segsize = 0;
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  ngtcp2_tstamp ts = nt_timestamp();
  size_t pktmax = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn->qc);
  /* ngtcp2 pads handshake datagrams to the whole buffer: keep those at
   * the usual size (what an unauthenticated sender can make us send). */
  if (!ngtcp2_conn_get_handshake_completed(conn->qc) &&
      pktmax > NT_MAX_UDP_PAYLOAD) {
    pktmax = NT_MAX_UDP_PAYLOAD;
  }
  size_t max_pkts = ngtcp2_conn_get_send_quantum(conn->qc) / pktmax;

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
  for (size_t npkts = 0; npkts < max_pkts;) {
    nt_stream *s = TAILQ_FIRST(&conn->pending);
    ngtcp2_vec vec[16];
    size_t nvec = 0;
    int64_t stream_id = -1;
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    ngtcp2_ssize datalen = -1;

    if (s) {
      stream_id = s->id;
      nvec = nt_sendbuf_unsent_iov(&s->sb, (struct iovec *)vec, 16);
      if (s->fin_queued && nt_sendbuf_unsent(&s->sb) == 0) {
        flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      }
    }
    ngtcp2_ssize n =
        ngtcp2_conn_writev_stream(conn->qc, &ps.path, &pi, buf + buflen, pktmax,
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
        conn_send(conn, buf, buflen, segsize);
        fail_conn(conn, (int)n);
        return;
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
    /* GSO sends equal-sized segments; a larger packet, or one after a
     * short one, starts a new batch. */
    if (segsize == 0) {
      segsize = (size_t)n;
    } else if ((size_t)n > segsize || buflen % segsize != 0) {
      conn_send(conn, buf, buflen, segsize);
      memmove(buf, buf + buflen, (size_t)n);
      buflen = 0;
      segsize = (size_t)n;
    }
    buflen += (size_t)n;
    conn->tx_bytes += (size_t)n;
    npkts++;
    if ((size_t)n < segsize) {
      conn_send(conn, buf, buflen, segsize);
      buflen = 0;
      segsize = 0;
    }
  }
  conn_send(conn, buf, buflen, segsize);
  ngtcp2_conn_update_pkt_tx_time(conn->qc, ts);
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
  write_streams(conn);
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

/* ---- lifetime ---- */

static void release(nt_conn *conn) {
  nt_endpoint *ep = conn->ep;

  while (!LIST_EMPTY(&conn->streams)) {
    /* The connection is gone: every stream on it ends as reset. */
    stream_finish(LIST_FIRST(&conn->streams), 1, 0);
  }
  nt_endpoint_forget_conn(ep, conn);
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

int nt_conn_new(nt_conn **pconn, nt_endpoint *ep, int is_server,
                const struct sockaddr *remote, socklen_t remotelen,
                const ngtcp2_pkt_hd *initial_hd, const ngtcp2_cid *odcid,
                const uint8_t *expected_fp, const nt_conn_callbacks *cbs,
                void *user_data) {
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
  conn->cbs = *cbs;
  conn->user_data = user_data;
  memcpy(&conn->remote.ss, remote, remotelen);
  conn->remote.len = remotelen;
  conn->conn_ref.get_conn = get_conn;
  conn->conn_ref.user_data = conn;
  ngtcp2_connection_close_error_default(&conn->last_error);
  LIST_INIT(&conn->streams);
  TAILQ_INIT(&conn->pending);
  nt_endpoint_add_conn(ep, conn);

  conn->timer = event_new(ep->base, -1, 0, timer_cb, conn);
  conn->write_ev = event_new(ep->base, -1, 0, write_cb, conn);
  conn->free_ev = event_new(ep->base, -1, 0, free_cb, conn);
  conn->streams_ev = event_new(ep->base, -1, 0, streams_cb, conn);
  if (!conn->timer || !conn->write_ev || !conn->free_ev ||
      !conn->streams_ev) {
    goto fail;
  }
  if (nt_tls_session_new(&conn->tls, ep->cfg.identity, is_server, expected_fp,
                         &conn->conn_ref) != 0) {
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
  if (ep->relay.len &&
      nt_addr_equal(remote, (struct sockaddr *)&ep->relay.ss)) {
    /* Relayed: every packet grows by the relay header on the way. */
    conn->relay_on = 1;
    memcpy(conn->relay_token, ep->new_relay_token, NT_RELAY_TOKEN_LEN);
    settings.max_tx_udp_payload_size = NT_MAX_UDP_PAYLOAD - NT_RELAY_HDR_LEN;
  } else if (nt_addr_is_loopback(remote)) {
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
  params.initial_max_streams_bidi = 256;
  params.initial_max_streams_uni = 0;
  params.max_idle_timeout = ep->cfg.idle_timeout_ms * NGTCP2_MILLISECONDS;
  params.active_connection_id_limit = 4;

  scid.datalen = NT_SCID_LEN;
  if (nt_random_bytes(scid.data, scid.datalen) != 0) {
    goto fail;
  }
  const nt_addr *local = conn->relay_on ? &ep->relay_local : &ep->local;
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
    if (nt_random_bytes(params.stateless_reset_token,
                        sizeof(params.stateless_reset_token)) != 0) {
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
  release(conn);
  return err;
}

void nt_conn_recv(nt_conn *conn, const uint8_t *data, size_t len,
                  const struct sockaddr *from, socklen_t fromlen) {
  ngtcp2_pkt_info pi = {0};
  nt_endpoint *ep = conn->ep;

  if (conn->closing) {
    return;
  }
  conn->rx_bytes += len;
  /* Relayed packets arrive on the relayed path's stand-in local address
   * (ep->relay_local). */
  const nt_addr *local =
      conn->relay_on && ep->relay.len &&
              nt_addr_equal(from, (struct sockaddr *)&ep->relay.ss)
          ? &ep->relay_local
          : &ep->local;
  ngtcp2_path path = {
      {(struct sockaddr *)&local->ss, local->len},
      {(struct sockaddr *)from, fromlen},
      NULL,
  };
  int rv = ngtcp2_conn_read_pkt(conn->qc, &path, &pi, data, len,
                                nt_timestamp());
  if (rv == 0) {
    /* The peer may have moved (NAT rebinding): answer where it is now. */
    const ngtcp2_path *cur = ngtcp2_conn_get_path(conn->qc);
    if (cur->remote.addrlen <= sizeof(conn->remote.ss)) {
      memcpy(&conn->remote.ss, cur->remote.addr, cur->remote.addrlen);
      conn->remote.len = cur->remote.addrlen;
    }
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

int nt_conn_is_relayed(const nt_conn *conn) {
  return conn->relay_on && conn->ep->relay.len &&
         nt_addr_equal((const struct sockaddr *)&conn->remote.ss,
                       (const struct sockaddr *)&conn->ep->relay.ss);
}

int nt_conn_migrate(nt_conn *conn, const struct sockaddr *to, socklen_t tolen) {
  nt_endpoint *ep = conn->ep;
  if (conn->is_server || conn->closing || !conn->established ||
      tolen > sizeof(conn->remote.ss)) {
    return -1;
  }
  nt_addr old = conn->remote;
  memcpy(&conn->remote.ss, to, tolen);
  conn->remote.len = tolen;
  ngtcp2_path path = {
      {(struct sockaddr *)&ep->local.ss, ep->local.len},
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

const uint8_t *nt_conn_peer_fingerprint(const nt_conn *conn) {
  return conn->established ? conn->peer_fp : NULL;
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
  nt_stream *s = stream_new(conn, id);
  if (!s) {
    ngtcp2_conn_shutdown_stream(conn->qc, id, 1);
    return -1;
  }
  *pstream = s;
  return 0;
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
