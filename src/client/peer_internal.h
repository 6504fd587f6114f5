/* The peer table's own state, shared by its three files: peer.c (the
 * table, each peer's lifecycle, its connection, the status views),
 * peer_queue.c (local connections waiting for a peer, and asking the
 * broker for it) and peer_path.c (the I/O path finding asks for:
 * introductions, probes, prediction sockets, the relay, the one timer).
 * Nothing outside src/client/peer*.c includes this. */
#ifndef NT_PEER_INTERNAL_H
#define NT_PEER_INTERNAL_H

#include <event2/event.h>
#include <stdint.h>
#include <sys/queue.h>

#include "base/budget.h"
#include "client/path.h"
#include "client/peer.h"
#include "client/refusals.h"

typedef enum nt_peer_state {
  NT_PEER_IDLE = 0,    /* no connection, nothing in progress */
  NT_PEER_INTRODUCING, /* asked the broker, waiting for the introduction */
  NT_PEER_PUNCHING,    /* probing candidates */
  NT_PEER_CONNECTING,  /* QUIC handshake under way */
  NT_PEER_CONNECTED
} nt_peer_state;

TAILQ_HEAD(nt_waiter_queue, nt_peer_waiter);

struct nt_peer {
  nt_peers *table;
  char name[NT_NAME_MAX + 1];
  nt_peer_state state;
  int initiator; /* we asked for this meeting and open the QUIC connection */
  uint32_t request_id;
  uint8_t key[NT_FINGERPRINT_LEN];
  nt_addr observed; /* peer's public address as the broker saw it */
  int mapping;      /* nt_nat_mapping the peer reported */
  nt_addr mapped;   /* peer as the broker's mapping port saw it */
  nt_addr portmap;  /* its gateway's mapping we probe; len 0: none */
  int portmap_method; /* nt_portmap_method */
  /* Punching, prediction, the relay fallback, direct attempts while
   * relayed and re-punching: the decisions (path.h). */
  nt_path path;
  /* The one timer: the meeting's deadline, the path's schedules
   * (nt_path_due) and the oldest waiter's wait for a stream. */
  struct event *timer;
  uint64_t deadline_ns;
  nt_conn *conn;
  uint64_t intro_ns; /* when the peer's last introduction was acted on */
  struct nt_waiter_queue waiting; /* local connections waiting for conn */
  size_t nwaiting;
  /* "all streams open" and "queue full": a line a second each at most */
  nt_log_gate streams_logged, queue_logged;
  TAILQ_ENTRY(nt_peer) link;
  /* The broker's relay channel for this meeting (relay.h). */
  nt_addr relay; /* len 0: none offered for this meeting */
  uint8_t relay_token[NT_RELAY_TOKEN_LEN];
  int relay_closed; /* the relay ended the channel: NT_RELAY_CLOSED_* */
  /* A connectivity check the peer asked for (natter -check): this entry
   * is kept apart from the peer's own (nt_peers_find skips it), carries
   * no streams, and reports once when its side is done. */
  int check;
  int check_reported;
  uint64_t connected_ns; /* when the connection came up; 0: not yet */
};

/* Port prediction's budget hits, each logged at most every
 * NT_PEERS_BUDGET_LOG_NS so that the log cannot be flooded either. */
enum {
  NT_PEERS_LOG_PREDICT_COOLING = 0,
  NT_PEERS_LOG_PREDICT_IP_BUSY,
  NT_PEERS_LOG_PREDICT_BUSY,
  NT_PEERS_LOG_PREDICT_RATE,
  NT_PEERS_LOG_PREDICT_SOCKETS,
  NT_PEERS_LOG_OBSERVED,
  NT_PEERS_LOG_RELAYS, /* NT_ENDPOINT_RELAYS relays, each with a connection */
  NT_PEERS_LOG_KINDS
};
#define NT_PEERS_BUDGET_LOG_NS (10 * 1000000000ull)
/* A probe that came before its introduction: the peer heard of the
 * meeting first (the broker introduces both at once, but one may be
 * quicker to act). The last NT_PEERS_EARLY_PROBES, for
 * NT_PEERS_EARLY_PROBE_NS, are handled when the introduction with their
 * nonce arrives; the rest are forgotten. */
#define NT_PEERS_EARLY_PROBES 8
#define NT_PEERS_EARLY_PROBE_NS (2 * 1000000000ull)

typedef struct nt_early_probe {
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  struct sockaddr_storage from;
  socklen_t fromlen; /* 0: free */
  uint64_t at_ns;
} nt_early_probe;

struct nt_peers {
  nt_peers_env env;
  TAILQ_HEAD(, nt_peer) list;
  nt_log_gate budget_logged[NT_PEERS_LOG_KINDS]; /* NT_PEERS_BUDGET_LOG_NS */
  nt_refusals refusals; /* requesters the peer rules refused */
  nt_early_probe early[NT_PEERS_EARLY_PROBES];
  size_t early_next; /* the oldest, replaced next */
};

/* 1 when budget hit |kind| may be logged at |now_ns| (and notes it). */
int nt_peers_budget_log_due(nt_peers *peers, int kind, uint64_t now_ns);

#define ENV(p) (&(p)->table->env)
#define LOG(p) (ENV(p)->log)

/* ---- peer.c: the table, lifecycle, the connection ---- */

/* The callbacks of every peer connection; user_data is the nt_peer. */
extern const nt_conn_callbacks nt_peer_conn_callbacks;

/* The entry for a check that |name| asked for (NT_PEER_MAX_CHECKS at
 * most); NULL when all are busy. */
nt_peer *nt_peer_check_entry(nt_peers *peers, const char *name);
/* Ends whatever was in progress; local connections still waiting are
 * failed with |why| (NULL keeps them waiting). */
void nt_peer_reset(nt_peer *p, int error, const char *why);
/* Reports NATTER_EVENT_PEER_FAILED and resets, failing the waiters. */
void nt_peer_fail(nt_peer *p, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A check's side is done: tells the broker, once per meeting. */
void nt_peer_check_report(nt_peer *p, int outcome);
/* Whether this listener's peer rules let |name| with |key| in; a refusal
 * is counted, and logged within refusals.h's bounds. */
int nt_peer_admitted(nt_peers *peers, const char *name, const uint8_t *key,
                     int log_refusal);

/* ---- peer_queue.c: local connections waiting for the peer ---- */

/* Takes the oldest waiter off the queue; NULL when none waits. */
nt_peer_waiter *nt_peer_dequeue(nt_peer *p);
/* Hands the connection to waiters in order, while streams are free. */
void nt_peer_start_waiting(nt_peer *p);
/* The connection's streams_available callback. */
void nt_peer_streams_available(nt_conn *conn, void *ud);
/* Fails the waiters that waited longer than NT_PEER_STREAM_WAIT_S. */
void nt_peer_expire_stream_waiters(nt_peer *p, uint64_t now);

/* ---- peer_path.c: the timer, and what path finding asks for ---- */

/* Arms the one timer for |at_ns|, or earlier when the live path's next
 * step is due first. */
void nt_peer_arm_timer(nt_peer *p, uint64_t at_ns);
/* The one timer's callback (arg: the nt_peer): does what is due. */
void nt_peer_timer_cb(evutil_socket_t fd, short what, void *arg);
/* The connection's silent and moved callbacks (a re-punch). */
void nt_peer_conn_silent(nt_conn *conn, uint64_t silent_ms, void *ud);
void nt_peer_conn_moved(nt_conn *conn, void *ud);

#endif
