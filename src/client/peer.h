/* Peers: from "connect me to bob" to one authenticated QUIC connection.
 *
 * The broker's introduction gives each side the other's key, addresses and
 * a shared nonce; both probe every candidate; the initiator connects to the
 * first candidate that answers; the other side accepts a QUIC Initial only
 * from where the peer's probes came from, and only with the vouched key.
 * One connection per peer, reused by every forward to it.
 *
 * Local connections that need a peer wait in the peer's own queue, as
 * nt_peer_waiter entries embedded by whoever waits; the peer calls them
 * back when its connection is up or has failed. The peer table reports
 * upward (ask the broker, tell the user, hand over incoming streams)
 * through nt_peer_callbacks and knows nothing of the client. */
#ifndef NT_PEER_H
#define NT_PEER_H

#include <stdint.h>
#include <sys/queue.h>

#include "trust/access.h"
#include "quic/endpoint.h"
#include "base/log.h"
#include "natter.h"
#include "client/punch.h"
#include "codec/control.h" /* nt_introduction, nt_check_side */
#include "codec/relay_wire.h"
#include "codec/spec.h"

/* Local connections queued per peer: as many as the streams a peer allows
 * by default (max-streams 1024), so that a burst twice that size is
 * served in two rounds; each holds a descriptor and its tunnel while it
 * waits. Beyond it, new connections are closed at once (logged, at most a
 * line a second). */
#define NT_PEER_MAX_WAITING 1024
/* How long a local connection waits for a free stream when the peer's
 * limit (its max-streams, 1024 by default) is reached, before it is
 * closed. */
#define NT_PEER_STREAM_WAIT_S 30

typedef struct nt_peer nt_peer;
typedef struct nt_peers nt_peers;
typedef struct nt_peer_waiter nt_peer_waiter;

/* One local connection waiting for its peer connection. The waiter owns
 * the struct; the peer owns the queue it is on. */
struct nt_peer_waiter {
  TAILQ_ENTRY(nt_peer_waiter) link;
  nt_peer *peer; /* the peer whose queue holds it; NULL when not queued */
  uint64_t queued_ns; /* when it joined the queue */
  /* The connection is up: open the stream on |conn|. Returns 0, or
   * NT_STREAMS_BLOCKED to stay first in the queue until the peer allows
   * more streams. */
  int (*ready)(nt_peer_waiter *w, nt_conn *conn);
  /* It could not be made; |why| says why (already reported as a peer
   * failure). */
  void (*failed)(nt_peer_waiter *w, int error, const char *why);
};

/* This client as the broker sees it, for failure messages. */
typedef struct nt_self_view {
  nt_addr observed;  /* public address; len 0 when unknown */
  nt_addr local[NT_MAX_LOCAL_ADDRS]; /* our candidates as offered */
  size_t nlocal;
  int mapping;       /* nt_nat_mapping */
  int broker_closed; /* the broker admits only token/listed keys */
  nt_addr broker;    /* the broker, as we reach it: what it may say it saw
                        of a peer follows (nt_path_observed_usable) */
  nt_addr portmap;   /* our gateway's mapping of our port, offered only
                        on the IP address of |observed|; len 0: none */
  int portmap_method; /* nt_portmap_method */
} nt_self_view;

typedef struct nt_peer_callbacks {
  /* Ask the broker to introduce us to |name|. Returns the request's id
   * (nonzero), or 0 while the broker session is down (nt_peers_broker_ready
   * retries). */
  uint32_t (*request)(const char *name, void *user_data);
  /* NATTER_EVENT_PEER_CONNECTED, _DISCONNECTED or _FAILED for the user. */
  void (*event)(natter_event_type type, int error, const char *peer,
                const char *message, void *user_data);
  /* |peer| opened |stream|; the callee sets its callbacks or resets it. */
  void (*stream)(const char *peer, nt_stream *stream, void *user_data);
  /* Ask the broker to introduce us to |name| again for the connection we
   * have (ConnectRequest.refresh). Returns nonzero when it was sent. */
  int (*refresh)(const char *name, void *user_data);
  /* Our side of a connectivity check the peer asked for is done: send
   * |side| to the broker (CheckReport). May be NULL. */
  void (*check_report)(const nt_check_side *side, void *user_data);
  /* A QUIC DATAGRAM frame on |conn|, the connection to an admitted peer
   * (UDP flows, udp.h). May be NULL. */
  void (*datagram)(nt_conn *conn, const uint8_t *data, size_t len,
                   void *user_data);
} nt_peer_callbacks;

typedef struct nt_peers_env {
  struct event_base *base;
  const nt_log *log;
  nt_endpoint *ep;
  const char *self_name;
  int listen;                  /* accept introductions the peer asked for */
  const nt_access *access;     /* which peers a listener admits: an
                                  introduction or a stream from any other
                                  is refused */
  uint32_t connect_timeout_ms; /* introduction + punching + handshake */
  const nt_self_view *self;    /* kept current by the owner */
  const nt_peer_callbacks *callbacks;
  void *user_data;
  int no_relay; /* never use the broker's relay */
  /* Tests only (NATTER_TEST_NO_PUNCH=1): every punch probe and reply
   * that arrives is ignored, so no direct path is ever found and a pair
   * of such clients meets through the relay, on one host. */
  int test_no_punch;
} nt_peers_env;

/* The peer table. |env| is copied; what it points to must outlive it. */
int nt_peers_new(nt_peers **ppeers, const nt_peers_env *env);
/* Frees every peer; their connections are left to the endpoint. */
void nt_peers_free(nt_peers *peers);

nt_peer *nt_peers_find(nt_peers *peers, const char *name);
/* Finds or creates |name|'s entry; NULL when out of memory. */
nt_peer *nt_peers_get(nt_peers *peers, const char *name);

/* Queues |w| until the peer connection is up (and has a stream free),
 * starting it if needed; calls w->ready at once when it is up already, or
 * w->failed when the queue is full. A waiter that waits for a stream
 * longer than NT_PEER_STREAM_WAIT_S fails. */
void nt_peer_submit(nt_peer *peer, nt_peer_waiter *w);
/* Takes |w| off its peer's queue, if it is on one. */
void nt_peer_waiter_cancel(nt_peer_waiter *w);

/* The broker session came (back) up: ask for what waits for it. */
void nt_peers_broker_ready(nt_peers *peers);
void nt_peers_on_introduction(nt_peers *peers, const nt_introduction *in);
/* The broker asks whether |name| with |key| may meet us (an
 * AdmissionQuery): 1 when the listener's peer rules admit it; a refusal
 * is counted and logged within refusals.h's bounds. */
int nt_peers_admit(nt_peers *peers, const char *name, const uint8_t *key);
/* Every requester the peer rules refused so far. */
uint64_t nt_peers_refused_total(const nt_peers *peers);
/* The broker could not serve request |request_id|: |error| is a
 * NATTER_ERR_*, |message| the broker's (printable) reason or "". */
void nt_peers_on_connect_result(nt_peers *peers, uint32_t request_id,
                                int error, const char *message);
/* Sends the introduction requests that request() could not send yet
 * (the callback returned 0). */
void nt_peers_request_waiting(nt_peers *peers);
/* Our NAT mapping (env->self->mapping) is known now: punching already
 * under way adjusts its relay delay and port prediction. */
void nt_peers_on_self_mapping(nt_peers *peers);
/* UDP works again after the TCP fallback (tcp_fallback.c): each relayed
 * connection asks the broker for a refresh now, so that both sides punch
 * again (to our UDP address) and the connection moves direct, instead of
 * waiting for an upgrade round. */
void nt_peers_on_udp_back(nt_peers *peers);
/* A non-QUIC datagram on the endpoint (hole-punching probes). */
void nt_peers_on_datagram(nt_peers *peers, const uint8_t *data, size_t len,
                          const struct sockaddr *from, socklen_t fromlen,
                          int sock);
/* 1 when a connection from |from| would be a peer we are punching to
 * (nt_peers_accept would take it); changes nothing. */
int nt_peers_expecting(nt_peers *peers, const struct sockaddr *from);
/* An Initial from an unknown address: 1 and |params| filled when it is
 * the peer we are punching to. */
int nt_peers_accept(nt_peers *peers, const struct sockaddr *from,
                    nt_accept_params *params);

/* The broker says |name| (with |key|) restarted: its old connection is
 * dead. Closes ours at once, so that the next local connection meets the
 * new process instead of hanging on the old one. */
void nt_peers_on_restart(nt_peers *peers, const char *name, const uint8_t *key);

/* A QUIC Initial through the broker's relay on channel |token|: 1 and
 * |params| filled when it is the channel of a peer we are meeting. */
int nt_peers_accept_relayed(nt_peers *peers, const uint8_t *token,
                            nt_accept_params *params);
/* The relay echoed our bind or closed channel |token| (relay_wire.h). */
void nt_peers_on_relay_signal(nt_peers *peers, int type, const uint8_t *token,
                              int reason);

/* The live connection to |peer|, or NULL. */
nt_conn *nt_peer_conn(const nt_peer *peer);

/* A read-only view of one peer for status pages; valid during the
 * callback. */
typedef struct nt_peer_view {
  const char *name;
  const char *state; /* "idle", "introducing", "punching", ... */
  int initiator;
  const uint8_t *key;        /* vouched key, NULL before any introduction */
  int mapping;               /* nt_nat_mapping the peer reported */
  nt_conn *conn;             /* live connection or NULL */
  const nt_punch *punch;     /* the last punching: candidates, counts */
  const nt_addr *probe_from; /* where its probes came from, or NULL */
  int predicted;             /* the path was found by port prediction */
  /* For a connectivity check (natter -check): */
  int check;               /* an entry serving a check the peer asked */
  size_t ngiven;           /* punch->candidates[0..ngiven) came from the
                              broker; later ones from the peer's probes */
  const nt_addr *observed; /* its public address as the broker saw it */
  int relay_offered;       /* the broker offered a relay channel */
  uint64_t connect_ms;     /* introduction -> connection; 0: none */
  const nt_addr *portmap;  /* its gateway's mapping we probed; len 0: none */
  int portmap_method;      /* nt_portmap_method */
} nt_peer_view;
typedef void (*nt_peer_view_fn)(const nt_peer_view *view, void *user_data);
void nt_peers_each(const nt_peers *peers, nt_peer_view_fn fn, void *ud);
/* Connection entries serving checks that peers asked for, at most; the
 * oldest idle one is reused. */
#define NT_PEER_MAX_CHECKS 8

/* The NAT mapping |peer| reported (NT_MAPPING_*). */
int nt_peer_mapping(const nt_peer *peer);

#endif
