/* One forwarded connection <-> one bidirectional QUIC stream: the byte
 * pump with backpressure both ways, FIN and reset mapping, remote-command
 * frames (cmdframe.h), and the tunnel's life from the header exchange
 * (stream_header.h; the listener reaches its target through target.h) to
 * its deferred free. A tunnel knows its stream, its local fds and its
 * environment; it reports to its owner through nt_tunnel_callbacks. */
#ifndef NT_TUNNEL_H
#define NT_TUNNEL_H

#include <stdint.h>
#include <sys/queue.h>

#include "quic/endpoint.h"
#include "base/log.h"
#include "natter.h"
#include "client/peer.h"
#include "client/target.h"

typedef struct nt_tunnel nt_tunnel;
TAILQ_HEAD(nt_tunnel_list, nt_tunnel);

typedef struct nt_tunnel_env {
  struct event_base *base;
  const nt_log *log;
  const char *self_name;
  int listen;                 /* serve StreamOpen; else "not listening" */
  nt_target_env target;       /* how a listener reaches targets */
  /* Remote commands running at once: in all and per peer; 0: no limit.
   * A StreamOpen beyond them is refused (DENIED) and logged. */
  uint32_t max_commands, max_commands_per_peer;
  struct nt_tunnel_list *all; /* every live tunnel, kept by the tunnels */
  struct nt_udp *udp;         /* takes the streams that open UDP flows */
} nt_tunnel_env;

/* What an opener's tunnel tells its owner. */
typedef struct nt_tunnel_callbacks {
  /* NATTER_EVENT_FORWARD_OPENED, _CLOSED (|exit_status| of a command, else
   * -1) or _FAILED (|error|; |quiet|: the cause was reported already). */
  void (*event)(nt_tunnel *t, natter_event_type type, int error, int quiet,
                int exit_status, const char *message, void *user_data);
  /* The tunnel is about to be freed. */
  void (*gone)(nt_tunnel *t, void *user_data);
  /* May be NULL. The listener's answer, its StreamOpenResult code
   * (nt_open_code, or one newer than this version), just before the
   * OPENED or FAILED event it brings. */
  void (*answer)(nt_tunnel *t, int code, void *user_data);
} nt_tunnel_callbacks;

/* What an opener carries, and to where. Strings are copied. */
typedef struct nt_tunnel_target {
  const char *peer;
  const char *host;   /* "" : the peer's loopback */
  uint16_t port;      /* unless argv */
  char *const *argv;  /* remote command, or NULL; must outlive the tunnel */
  int err_fd;         /* where a command's stderr goes, or -1 */
  uint16_t local_port; /* for messages; 0: stdin/stdout */
  natter_forward_stats *stats; /* bytes are counted here; may be NULL */
  const nt_tunnel_callbacks *callbacks;
  void *user_data;
} nt_tunnel_target;

/* A local connection to carry to |target|: reads |in_fd|, writes |out_fd|
 * (equal for a socket) and owns both from here on, even on failure (NULL).
 * It waits, as nt_tunnel_waiter(), for its peer connection. |env| must
 * outlive the tunnel. */
nt_tunnel *nt_tunnel_new_outgoing(const nt_tunnel_env *env,
                                  const nt_tunnel_target *target, int in_fd,
                                  int out_fd);
nt_peer_waiter *nt_tunnel_waiter(nt_tunnel *t);

/* |peer| opened |stream|: serve its StreamOpen. */
void nt_tunnel_accept_stream(const nt_tunnel_env *env, const char *peer,
                             nt_stream *stream);

/* Aborts every tunnel whose owner is |user_data|, with no more callbacks
 * to it (the owner is going away). */
void nt_tunnel_detach_owner(struct nt_tunnel_list *all, void *user_data);
size_t nt_tunnel_count_for_peer(const struct nt_tunnel_list *all,
                                const char *peer);
/* Frees every tunnel at once (the owner of the list is going away). */
void nt_tunnel_free_all(struct nt_tunnel_list *all);

#endif
