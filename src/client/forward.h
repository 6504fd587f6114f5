/* Forwards: a listening TCP port, or one fd session (stdin/stdout), whose
 * connections are carried to a target (or a command) on a peer. Each local
 * connection becomes a tunnel queued on its peer; the forward counts them
 * and reports their events upward through nt_forward_callbacks. */
#ifndef NT_FORWARD_H
#define NT_FORWARD_H

#include <stddef.h>
#include <sys/queue.h>

#include "base/log.h"
#include "natter.h"
#include "client/peer.h"
#include "client/tunnel.h"

typedef struct natter_forward nt_forward;
TAILQ_HEAD(nt_forward_list, natter_forward);

typedef struct nt_forward_callbacks {
  /* One connection of |f| opened, closed or failed (see natter_event). */
  void (*event)(nt_forward *f, natter_event_type type, int error, int quiet,
                const char *peer, int exit_status, const char *message,
                void *user_data);
} nt_forward_callbacks;

typedef struct nt_forward_env {
  struct event_base *base;
  const nt_log *log;
  const char *self_name;
  nt_peers *peers;
  const nt_tunnel_env *tunnels;
  struct nt_forward_list *all; /* every forward of the client */
  const nt_forward_callbacks *callbacks;
  void *user_data;
  struct nt_udp *udp; /* the client's UDP flows (udp.h) */
} nt_forward_env;

/* Checks |cfg|, binds its port or starts its fd session, and adds it to
 * env->all. Returns 0 or a NATTER_ERR_* with a one-line reason in |err|.
 * |env| must outlive the forward. */
int nt_forward_add(const nt_forward_env *env,
                   const natter_forward_config *cfg, nt_forward **pforward,
                   char *err, size_t errlen);
/* Frees every forward (their tunnels must be gone already). */
void nt_forward_free_all(struct nt_forward_list *all);

/* Iteration for status pages: the forward after |prev| (NULL: the
 * first), or NULL. */
nt_forward *nt_forward_next(const struct nt_forward_list *all,
                            const nt_forward *prev);
/* Fills |info| for |f|; its target string is written to |target|. */
void nt_forward_describe(const nt_forward *f, natter_forward_info *info,
                         char *target, size_t targetlen);

#endif
