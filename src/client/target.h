/* What a listener does for one StreamOpen: decide by its access rules
 * for the peer that asks, then connect to host:port (resolving it first if need
 * be) or start the command. The answer is an nt_open_code and a one-line reason
 * for the opener; the stream itself is the tunnel's business. */
#ifndef NT_TARGET_H
#define NT_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "trust/access.h"
#include "client/child.h"
#include "codec/stream_header.h"

struct event_base;
struct evdns_base;

#define NT_TARGET_CONNECT_TIMEOUT_S 10

typedef struct nt_target_env {
  struct event_base *base;
  struct evdns_base *dns;
  const nt_access *access; /* the listener's rules */
  const char *self_name;   /* this client's name, for messages */
} nt_target_env;

typedef struct nt_target_result {
  nt_open_code code;
  char message[400]; /* why not, for the opener; "" when OK */
  int fd;            /* OK: the connected socket, now the caller's */
} nt_target_result;

typedef struct nt_target nt_target;

/* Called once with the outcome; the nt_target is gone by then. */
typedef void (*nt_target_done_fn)(const nt_target_result *result,
                                  void *user_data);

/* Starts reaching |host| (printable; "" : 127.0.0.1) port |port|: a
 * loopback address always, any other only as the rules allow; at most
 * NT_TARGET_CONNECT_TIMEOUT_S to connect. *ptarget names the attempt
 * until |done| runs, which may be before this returns (a numeric target
 * refused at once): |done| must forget *ptarget. */
void nt_target_connect(nt_target **ptarget, const nt_target_env *env,
                       const nt_access_peer *peer, const char *host,
                       uint16_t port, nt_target_done_fn done, void *user_data);

/* Abandons an attempt; |done| is not called. NULL is a no-op. */
void nt_target_cancel(nt_target *target);

/* Starts the command |argv| (|argc| >= 1) if the rules allow it for
 * |peer|, into *child. Returns NT_OPEN_OK, or a refusal with its reason in
 * |result|. */
nt_open_code nt_target_spawn(const nt_target_env *env,
                             const nt_access_peer *peer, char *const *argv,
                             size_t argc, nt_child *child,
                             nt_target_result *result);

#endif
