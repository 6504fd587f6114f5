/* HTTP/3 (nghttp3) over natter's QUIC connections, for status pages: the
 * server side that a broker's or a client's endpoint hands "h3"
 * connections to, and the client side of natter -status. Only GET of
 * small documents: no request bodies, no server push, no dynamic QPACK
 * table. No nghttp3 type leaves this file. */
#ifndef NT_H3_H
#define NT_H3_H

#include <stddef.h>
#include <stdint.h>

#include "quic/endpoint.h"
#include "base/log.h"
#include "status/status.h"

struct evbuffer;

/* Status readers at once, per server. A reader's key is known only once
 * its handshake is done, so connections are counted twice: while in
 * their handshake, and once established by who they are. The server's
 * own key and -admin keys (nt_h3_server_set_privileged) have slots of
 * their own that no one else can take. A connection past a limit is
 * refused or closed with a reason that names it, logged once a second. */
/* Established readers with another key or none. */
#define NT_H3_MAX_CONNS 16
/* ... of those from one source address (IPv6: its /64); also the
 * handshakes from one source at once. */
#define NT_H3_MAX_PER_ADDRESS 4
/* Readers with the server's own key or an -admin key, beside the others. */
#define NT_H3_MAX_PRIVILEGED 4
/* Connections still in their handshake (key not known yet). */
#define NT_H3_MAX_HANDSHAKES 32
#define NT_H3_MAX_BODY (16 * 1024 * 1024) /* a response the client takes */

typedef struct nt_h3_server nt_h3_server;

/* Writes the response body for GET |path| into |body| and returns the
 * HTTP status. |accept| is the request's accept header ("" if none);
 * |peer_fp| the caller's key fingerprint, NULL when it came without a
 * certificate. *content_type must be set to a static string. */
typedef int (*nt_h3_render_fn)(struct evbuffer *body, const char *path,
                               const char *accept, const uint8_t *peer_fp,
                               const char **content_type, void *user_data);

int nt_h3_server_new(nt_h3_server **pserver, const nt_log *log,
                     nt_h3_render_fn render, void *user_data);
/* Frees the server's per-connection state. Call after the endpoint is
 * freed (which closes the connections without callbacks). */
void nt_h3_server_free(nt_h3_server *server);
/* Keys whose readers get the NT_H3_MAX_PRIVILEGED slots: |own_fp| (the
 * server's identity, copied) and |admins| (borrowed: it must outlive the
 * server; NULL: none). Without this call no reader is privileged. */
void nt_h3_server_set_privileged(nt_h3_server *server, const uint8_t *own_fp,
                                 const nt_admins *admins);
/* nt_endpoint_config.accept_h3 for the owner to forward to, for a
 * connection from |from| (NULL: unknown, counted with no source): returns
 * 1 with |params| filled, or 0 past NT_H3_MAX_HANDSHAKES or
 * NT_H3_MAX_PER_ADDRESS handshakes (logged). The rest of the limits
 * apply once the handshake is done. */
int nt_h3_server_accept_from(nt_h3_server *server, const struct sockaddr *from,
                             nt_accept_params *params);
/* nt_h3_server_accept_from with no source. */
int nt_h3_server_accept(nt_h3_server *server, nt_accept_params *params);

/* ---- client ---- */

typedef struct nt_h3_fetch nt_h3_fetch;

/* The fetch ended: |error| 0 and the HTTP |status| with |body|, or a
 * NATTER_ERR_* with a one-line reason in |body|. Called once. */
typedef void (*nt_h3_done_fn)(int error, int status, const char *body,
                              size_t len, void *user_data);

/* GET https://authority|path| over a new HTTP/3 connection from |ep| to
 * |to|, with accept: |accept|. Returns 0 (|done| follows from the loop) or
 * a NATTER_ERR_*. */
int nt_h3_fetch_start(nt_h3_fetch **pfetch, nt_endpoint *ep,
                      const struct sockaddr *to, socklen_t tolen,
                      const char *path, const char *accept, nt_h3_done_fn done,
                      void *user_data);
/* Frees the fetch; call after the endpoint is freed (or the connection
 * closed), as for nt_h3_server_free. */
void nt_h3_fetch_free(nt_h3_fetch *fetch);

#endif
