/* The SOCKS5 side of a "socks:" forward (like ssh -D): each accepted local
 * connection goes through the handshake (codec/socks.h), then becomes an
 * ordinary tunnel to the target it named, on the forward's peer, which
 * decides by its -allow rules and resolves names itself. The client's
 * reply is sent only once the peer's StreamOpenResult is known: success
 * then, or the reply code that says why not.
 *
 * Limits: a handshake must finish within NT_SOCKS_HANDSHAKE_TIMEOUT_S;
 * at most NT_SOCKS_MAX_WAITING clients per forward may be in their
 * handshake or waiting for the peer's answer at once (more are closed at
 * once); both are logged when hit. */
#ifndef NT_SOCKS_FORWARD_H
#define NT_SOCKS_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "client/peer.h"
#include "client/tunnel.h"
#include "natter.h"

#define NT_SOCKS_HANDSHAKE_TIMEOUT_S 10
#define NT_SOCKS_MAX_WAITING 256
#define NT_SOCKS_AUTH_FILE_MAX 4096 /* bytes of a credentials file */

typedef struct nt_socks_server nt_socks_server;

typedef struct nt_socks_server_env {
  struct event_base *base;
  const nt_log *log;
  nt_peers *peers;
  const nt_tunnel_env *tunnels;
  const char *peer;            /* copied */
  uint16_t local_port;         /* for messages */
  natter_forward_stats *stats; /* the forward's; outlives the server */
  /* The forward's own callbacks, called for each tunnel after the
   * server's (events, and "gone" for its counts). */
  const nt_tunnel_callbacks *callbacks;
  void *user_data;
} nt_socks_server_env;

/* Makes the SOCKS side of a forward. |auth_file| (may be NULL) names a
 * USER:PASSWORD file (checked: a regular file, not readable or writable
 * by group or others); without it, only a forward bound to loopback
 * (|loopback|) may run. Returns 0, or NATTER_ERR_INVALID / _NOMEM with a
 * one-line reason in |err|. */
int nt_socks_server_new(nt_socks_server **pserver,
                        const nt_socks_server_env *env, const char *auth_file,
                        int loopback, char *err, size_t errlen);

/* A client connected on |fd| (now the server's). */
void nt_socks_server_accept(nt_socks_server *s, int fd);

/* Closes every client, aborting their tunnels without further callbacks.
 * NULL is a no-op. */
void nt_socks_server_free(nt_socks_server *s);

#endif
