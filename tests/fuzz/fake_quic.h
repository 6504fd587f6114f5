/* A stand-in for natter's QUIC connections and streams (src/quic), for
 * fuzz targets that drive code above QUIC (the broker's client sessions,
 * HTTP/3) with arbitrary stream bytes and events, without handshakes or
 * sockets. The target is linked with -Wl,--wrap for each nt_conn_* /
 * nt_stream_* function that code calls (FAKE_QUIC_WRAPPED in
 * CMakeLists.txt): on a fake connection or stream the wrapper answers,
 * on a real one it calls the real function, so the rest of the library
 * (a broker's own endpoint, say) works as ever.
 *
 * What QUIC does later from its loop (a reset stream's or a closed
 * connection's callbacks) the fake does in fake_quic_settle(). */
#ifndef FAKE_QUIC_H
#define FAKE_QUIC_H

#include <stddef.h>
#include <stdint.h>

#include "quic/endpoint.h"

typedef struct fake_conn fake_conn;

/* A connection as the server (|server| 1: the peer opens streams 0, 4, ...
 * and 2, 6, ...) or the client side sees it, from |remote|, presenting
 * |fp| (NULL: no certificate). Its events go to |cbs| with |ud|. */
fake_conn *fake_conn_new(int server, const struct sockaddr *remote,
                         const uint8_t *fp, const nt_conn_callbacks *cbs,
                         void *ud);
nt_conn *fake_conn_handle(fake_conn *fc);
void fake_conn_set_callbacks(fake_conn *fc, const nt_conn_callbacks *cbs,
                             void *ud);
/* Peer events. Return 0, or -1 when the connection or stream is gone. */
int fake_conn_established(fake_conn *fc);
/* The peer opens its next stream (|uni|: unidirectional); *id is set. */
int fake_conn_peer_open(fake_conn *fc, int uni, int64_t *id);
/* Bytes (and FIN) on stream |id|, as QUIC hands them up. */
int fake_conn_peer_send(fake_conn *fc, int64_t id, const uint8_t *data,
                        size_t len, int fin);
int fake_conn_peer_reset(fake_conn *fc, int64_t id, uint64_t code);
/* The peer's address changes to |remote| and the new path is validated
 * (nt_conn_validated_addr follows; the moved callback runs). */
int fake_conn_peer_move(fake_conn *fc, const struct sockaddr *remote);
/* Packets come from |remote| (nt_conn_remote_addr), never validated
 * there: a rebinding not yet confirmed, or a copy sent by someone else. */
int fake_conn_peer_spoof(fake_conn *fc, const struct sockaddr *remote);
/* The peer closes (CONNECTION_CLOSE with |code|): callbacks run now. */
void fake_conn_peer_close(fake_conn *fc, uint64_t code);
/* Streams of |fc| (in opening order), for picking one from fuzz bytes;
 * -1 past the end. */
int64_t fake_conn_stream_at(fake_conn *fc, size_t i);
size_t fake_conn_nstreams(fake_conn *fc);
int fake_conn_closed(const fake_conn *fc); /* closed by our side */
/* What our side wrote on stream |id| so far (kept up to a bound), or
 * NULL. */
const uint8_t *fake_conn_written(fake_conn *fc, int64_t id, size_t *len);

/* Runs what QUIC would run from its loop: streams our side reset get
 * their closed callback, connections our side closed close (their
 * streams first). Frees what is gone. */
void fake_quic_settle(void);
/* Closes every fake connection (the peer leaves) and settles. */
void fake_quic_close_all(void);
/* 1 while |fc| exists (not yet closed and settled). */
int fake_quic_alive(const fake_conn *fc);
/* How many fake connections are open. */
size_t fake_quic_nconns(void);

/* nt_endpoint_connect_h3 with a NULL endpoint makes a fake client
 * connection (no real caller passes NULL); this is the latest made. */
fake_conn *fake_quic_last_connect(void);

#endif
