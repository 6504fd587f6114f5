/* State shared by the client's parts: client.c (broker session, public
 * API), peer.c (introductions, hole punching, peer connections), forward.c
 * (local listening ports) and tunnel.c (one forwarded connection). */
#ifndef NT_CLIENT_INTERNAL_H
#define NT_CLIENT_INTERNAL_H

#include <event2/event.h>

#include "access.h"
#include "endpoint.h"
#include "natter.h"
#include "punch.h"
#include "spec.h"
#include "wire.h"

typedef struct nt_peer nt_peer;
typedef struct nt_tunnel nt_tunnel;
typedef struct natter_forward nt_forward;

#define NT_MAX_LOCAL_ADDRS 8
#define NT_PEER_MAX_WAITING 128 /* local connections queued per peer */

typedef enum nt_peer_state {
  NT_PEER_IDLE = 0,    /* no connection, nothing in progress */
  NT_PEER_INTRODUCING, /* asked the broker, waiting for the introduction */
  NT_PEER_PUNCHING,    /* probing candidates */
  NT_PEER_CONNECTING,  /* QUIC handshake under way */
  NT_PEER_CONNECTED
} nt_peer_state;

struct nt_peer {
  natter_client *client;
  char name[NT_NAME_MAX + 1];
  nt_peer_state state;
  int initiator; /* we asked for this meeting and open the QUIC connection */
  uint32_t request_id;
  uint8_t key[NT_FINGERPRINT_LEN];
  nt_addr observed; /* peer's public address as the broker saw it */
  int mapping;      /* Natter__NatMapping the peer reported */
  nt_addr mapped;   /* peer as the broker's mapping port saw it */
  nt_punch punch;
  struct event *timer; /* punching schedule and the overall deadline */
  uint64_t deadline_ns;
  nt_addr probe_from;  /* where the peer's probes come from */
  int have_probe_from;
  nt_conn *conn;
  nt_tunnel *waiting;  /* local connections waiting for conn */
  size_t nwaiting;
  nt_peer *next;
};

struct natter_client {
  struct event_base *base;
  nt_log log;
  char *name, *broker_text, *identity_path;
  nt_access *access; /* -allow and -allow-command rules */
  int listen;
  int broker_pinned;
  uint8_t broker_key[NT_FINGERPRINT_LEN];
  uint32_t connect_timeout_ms;
  natter_event_fn on_event;
  void *user_data;
  char fingerprint_hex[NT_FINGERPRINT_HEX_LEN + 1];

  nt_identity *identity;
  nt_endpoint *ep;
  nt_addr broker_addr;
  nt_conn *broker_conn;
  nt_stream *ctl;
  nt_wire_reader *ctl_reader;
  int checked_in, ever_checked_in, fatal;
  nt_addr observed;
  int mapping;            /* Natter__NatMapping found by the check */
  nt_addr mapped;         /* us as the broker's mapping port saw us */
  uint16_t mapping_port;  /* broker's mapping-check port, 0: none */
  uint8_t mapping_nonce[8];
  unsigned mapping_tries;
  struct event *mapping_ev;
  struct event *reconnect_ev;
  unsigned reconnect_delay_s;
  uint32_t next_request_id;
  struct evdns_base *dns;

  nt_peer *peers;
  nt_forward *forwards;
  nt_tunnel *tunnels; /* every live tunnel */
};

/* client.c */
void nt_client_emit(natter_client *c, natter_event_type type, int error,
                    const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* |quiet|: log at debug level only, because the cause was logged already
 * (a peer failure ends every connection waiting for that peer). */
void nt_client_emit_forward(natter_client *c, natter_event_type type,
                            int quiet, int error, const char *peer,
                            nt_forward *forward, int exit_status,
                            const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
/* Sends ConnectRequest for |peer|; returns 0 or -1 (broker not ready). */
int nt_client_request_peer(natter_client *c, nt_peer *peer);
/* "symmetric (a new public port per destination)" etc., for messages. */
const char *nt_mapping_name(int mapping);
int nt_client_target_allowed(natter_client *c, const char *host,
                             uint16_t port);

/* peer.c */
nt_peer *nt_peer_find(natter_client *c, const char *name);
nt_peer *nt_peer_get(natter_client *c, const char *name);
/* Queues |t| until the peer connection is up, starting it if needed. */
void nt_peer_submit(nt_peer *peer, nt_tunnel *t);
/* Takes |t| off whatever peer queue holds it. */
void nt_peer_unqueue(natter_client *c, nt_tunnel *t);
void nt_peer_on_introduction(natter_client *c, const void *intro);
void nt_peer_on_connect_result(natter_client *c, uint32_t request_id,
                               int code, const char *message);
void nt_peer_on_datagram(natter_client *c, const uint8_t *data, size_t len,
                         const struct sockaddr *from, socklen_t fromlen);
int nt_peer_accept(natter_client *c, const struct sockaddr *from,
                   nt_accept_params *params);
/* The broker session came (back) up: retry what waits for it. */
void nt_peer_broker_ready(natter_client *c);
void nt_peer_free_all(natter_client *c);

/* A forward: a listening TCP port or one fd session, and the target. */
struct natter_forward {
  natter_client *client;
  char peer[NT_NAME_MAX + 1];
  char host[NT_HOST_MAX + 1]; /* "" : the peer's loopback */
  uint16_t port;
  uint16_t local_port;
  char **argv; /* remote command, NULL-terminated, or NULL */
  int err_fd;
  struct evconnlistener *listener; /* NULL for an fd session */
  natter_forward_stats stats;
  natter_forward *next, *prev;
};

/* tunnel.c */
/* A local connection to carry to |f|'s target: reads |in_fd|, writes
 * |out_fd| (equal for a socket); owns both from here on. */
nt_tunnel *nt_tunnel_new_outgoing(natter_client *c, nt_forward *f, int in_fd,
                                  int out_fd);
/* The peer connection is up: open the stream. */
void nt_tunnel_start(nt_tunnel *t, nt_conn *conn);
/* The peer connection could not be made: close the local side. */
void nt_tunnel_fail(nt_tunnel *t, int error, const char *why);
/* The peer opened |stream|: serve its StreamOpen. */
void nt_tunnel_accept_stream(natter_client *c, nt_peer *peer,
                             nt_stream *stream);
/* Aborts every tunnel of |f| and forgets |f|. */
void nt_tunnel_detach_forward(natter_client *c, nt_forward *f);
void nt_tunnel_free_all(natter_client *c);
nt_tunnel *nt_tunnel_next_waiting(nt_tunnel *t);
void nt_tunnel_set_next_waiting(nt_tunnel *t, nt_tunnel *next);
const char *nt_tunnel_peer(const nt_tunnel *t);
size_t nt_tunnel_count_for_peer(natter_client *c, const char *peer);

/* forward.c */
int nt_forward_add(natter_client *c, const natter_forward_config *cfg,
                   nt_forward **pforward, char *err, size_t errlen);
void nt_forward_free_all(natter_client *c);

#endif
