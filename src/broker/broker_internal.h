/* The broker's own state, shared by the facade (broker.c: admission,
 * mapping checks, the registry's upkeep, the public API), the session of
 * each connected client (client_session.c: the control protocol) and the
 * status pages (broker_status.c). Nothing outside src/broker/ includes
 * this. */
#ifndef NT_BROKER_INTERNAL_H
#define NT_BROKER_INTERNAL_H

#include <event2/event.h>
#include <stdint.h>
#include <sys/queue.h>

#include "base/admission.h"
#include "base/budget.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "broker/intro_log.h"
#include "broker/registry.h"
#include "broker/relay.h"
#include "codec/control.h"
#include "codec/wire.h"
#include "natter.h"
#include "quic/endpoint.h"
#include "status/h3.h"
#include "status/metrics.h"
#include "status/status.h"
#include "trust/keylist.h"
#include "trust/tls.h"
#include "trust/token.h"

/* Whom each client was introduced to, newest first, for notices when it
 * moves or restarts and to allow refresh requests only within a pair
 * that met: at most this many names per client (1 KiB), the oldest
 * forgotten first; gone with the client's session (or handed to the
 * session that replaces it). */
#define BROKER_MAX_INTRODUCED 16
/* Connectivity checks (ConnectRequest.check) awaiting the checked peer's
 * report: at most this many at once, a table no one source can fill
 * (client_session.c has the per-requester caps). */
#define BROKER_MAX_CHECKS 1024
/* New names (binds of a name not bound yet) per source address and per
 * key: natter_broker_config.new_names_per_hour, saved up to this burst;
 * the budgets remember at most this many sources and keys each (a budget
 * that is full of spending sources refuses new names, logged). */
#define BROKER_NEW_NAMES_BURST 10
#define BROKER_NEW_NAMES_TRACKED 65536

typedef struct bclient bclient;

/* Asking a listener before an introduction (admission_query.c; the
 * budgets are in doc/operations.md, "Limits"): nothing is spent on a
 * requester -- no relay channel, no check slot, no introduction, none of
 * the listener's addresses -- until the listener's own peer rules admit
 * it. */
#define BROKER_MAX_QUERIES 512         /* awaiting an answer, in all */
#define BROKER_QUERIES_PER_LISTENER 32 /* awaiting one listener's answer */
#define BROKER_QUERIES_PER_REQUESTER 4 /* asked for one requester */
/* Then the requester gets TIMEOUT: an honest listener answers in one
 * round trip, and the requester's own deadline (-timeout, 10 s by
 * default) should hear the reason first. */
#define BROKER_QUERY_TIMEOUT_NS (5 * 1000000000ull)
/* A refusal is remembered for this long (listener session, requester name
 * and key), and the same request refused without asking again: a flood
 * of requests from a stranger costs the listener one answer per 10 s. At
 * most this many are remembered, the oldest forgotten first; a listener
 * whose rules change (a reload) has its refusals forgotten
 * (AdmissionReset). */
#define BROKER_REFUSED_TTL_NS (10 * 1000000000ull)
#define BROKER_REFUSED_CACHE 256
/* This run's broker id (random bytes, written as hex): its name in the
 * shared registry's presence and brokers tables and on the brokers' bus.
 * Not the key: the brokers of one network share their key. The whole id
 * is the bus channel's (NT_BUS_CHANNEL_ID hex digits). */
#define BROKER_ID_LEN 24

/* A query awaiting the listener's answer. */
typedef struct bquery {
  uint32_t query_id; /* 0: the slot is free */
  bclient *listener;
  /* NULL once the requester left: the answer is still owed (it must not
   * count against the listener), but goes nowhere. */
  bclient *requester;
  char name[NT_NAME_MAX + 1]; /* the requester's, for the log */
  uint8_t key[NT_FINGERPRINT_LEN];
  uint32_t request_id; /* the requester's ConnectRequest */
  int check;
  /* A requester at another broker (xintro.c): its bxserve's id; 0 for a
   * local requester. */
  uint32_t remote;
  /* Admitted: introduced from the loop's next turn (intro_ev), when
   * neither side's connection is the one being read, so the requester's
   * Introduction leaves first, as it did before the broker asked. */
  int admitted;
  uint64_t expires_ns;
} bquery;

/* A refusal remembered (BROKER_REFUSED_TTL_NS). */
typedef struct brefused {
  const bclient *listener; /* NULL: free */
  char name[NT_NAME_MAX + 1];
  uint8_t key[NT_FINGERPRINT_LEN];
  uint64_t expires_ns;
} brefused;

enum {
  BROKER_ADMIT_LOG_REFUSED = 0,
  BROKER_ADMIT_LOG_TIMEOUT,
  BROKER_ADMIT_LOG_LIMIT,
  BROKER_ADMIT_LOG_KINDS
};

typedef struct badmission {
  bquery queries[BROKER_MAX_QUERIES];
  brefused refused[BROKER_REFUSED_CACHE];
  size_t refused_next; /* the oldest entry, replaced next */
  uint32_t next_id;
  struct event *timer;    /* the next query's timeout; NULL until needed */
  struct event *intro_ev; /* introduces the admitted; NULL until needed */
  /* At most one log line a second per kind, with a count of the rest. */
  nt_log_gate logged[BROKER_ADMIT_LOG_KINDS];
} badmission;

/* Introductions across brokers that share a PostgreSQL registry
 * (xintro.c, doc/design.md "Introductions across brokers"). Bounded like
 * the admission queries; each limit is logged (doc/operations.md). */
#define BROKER_XASKS 256             /* our requests to other brokers */
#define BROKER_XASKS_PER_REQUESTER 4 /* of one local requester */
#define BROKER_XSERVED 256           /* other brokers' requests to us */
#define BROKER_XSERVED_PER_BROKER 64 /* from one other broker */
#define BROKER_XNOTICES 64           /* notices, refreshes being routed */
/* The asking broker waits this long for the answer: longer than the
 * listener's broker waits for the listener (BROKER_QUERY_TIMEOUT_NS), so
 * that its TIMEOUT comes first. */
#define BROKER_XASK_TIMEOUT_NS (7 * 1000000000ull)

struct nt_bus;
struct nt_bus_req;

/* A local client's request to a listener at another broker. */
typedef struct bxask {
  uint64_t xid;       /* 0: free */
  bclient *requester; /* NULL once it left */
  uint32_t request_id;
  int check;
  int admitted; /* a check admitted: waits for the listener's report */
  uint8_t key[NT_FINGERPRINT_LEN]; /* the requester's, for the check caps */
  char peer[NT_NAME_MAX + 1];
  char broker[NT_REGISTRY_BROKER_ID_MAX + 1]; /* "": looking it up */
  struct nt_bus_req *lookup;
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  uint64_t asked_ns, expires_ns;
  int relay; /* we asked for a relay at the listener's broker */
} bxask;

/* Another broker's request to a local listener. */
typedef struct bxserve {
  uint32_t id; /* 0: free; bquery.remote */
  uint64_t xid;
  char from[NT_REGISTRY_BROKER_ID_MAX + 1];
  bclient *listener;
  nt_introduction requester; /* as its broker saw it */
  int check;
  int relay; /* the requester takes a relay here (BrokerNote.relay) */
  int admitted; /* a check admitted: waits for the listener's report */
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  uint64_t expires_ns;
} bxserve;

/* A restart notice or refresh for a peer at another broker: where is
 * it? */
typedef struct bxnotice {
  struct nt_bus_req *lookup; /* NULL: free */
  natter_broker *broker;
  char to[NT_NAME_MAX + 1];
  nt_introduction about; /* with the nonce for a refresh */
  int refresh;           /* a REFRESH, not a NOTICE */
} bxnotice;

typedef struct bxintro {
  struct nt_bus *bus; /* NULL: one broker alone */
  bxask asks[BROKER_XASKS];
  bxserve served[BROKER_XSERVED];
  bxnotice notices[BROKER_XNOTICES];
  uint64_t next_xid;
  uint32_t next_id;
  struct event *timer;
  nt_log_gate limit_gate, bad_gate;
} bxintro;

/* A check-in waiting for the registry to bind its name (registry.h): what
 * the rest of the check-in needs from the CheckIn message, which is gone
 * by then. */
typedef struct bclient_binding {
  nt_registry_request *req; /* NULL: no bind in flight */
  char name[NT_NAME_MAX + 1];
  uint8_t session[NT_SESSION_LEN];
  int diagnostic, listen, no_relay;
  int reads_relay_address;
  int paid; /* took a new name from the budgets (given back unless the
               name turns out new) */
  /* What the client sent after its CheckIn, read once the bind is done so
   * that its messages keep their order (BROKER_HELD_MAX at most). */
  uint8_t *held;
  size_t nheld;
} bclient_binding;

struct bclient {
  natter_broker *broker;
  nt_conn *conn;
  nt_addr source;         /* where it came from, as counted in b->sources */
  int pending;            /* not checked in yet: counted in b->npending */
  struct event *deadline; /* to check in */
  nt_rate ctl_rate;
  nt_stream *ctl;
  nt_wire_reader *reader;
  int checked_in; /* then in natter_broker.checked_in under |name| */
  int dead;       /* closing: ignore further input */
  int listen;
  int no_relay; /* refuses relayed peers */
  /* CheckIn.reads_relay_address: may be given another broker's relay. */
  int reads_relay_address;
  char name[NT_NAME_MAX + 1];
  nt_addr local_addrs[NT_MAX_LOCAL_ADDRS];
  size_t nlocal;
  int mapping;    /* nt_nat_mapping, as it reported it */
  nt_addr mapped; /* as the mapping port saw it; len 0 if unknown */
  nt_addr portmap;    /* its gateway's mapping (NatReport); len 0: none */
  int portmap_method; /* nt_portmap_method */
  uint64_t checked_in_unix_ms; /* status: when its check-in was accepted */
  TAILQ_ENTRY(bclient) link;
  uint8_t session[NT_SESSION_LEN]; /* CheckIn.session; all 0: none */
  char introduced[BROKER_MAX_INTRODUCED][NT_NAME_MAX + 1];
  size_t nintroduced;
  uint64_t moved_ns; /* last re-introduction after a move */
  /* A diagnostic session (CheckIn.diagnostic): checked in, but not under
   * its name in natter_broker.checked_in, announced to no one, and it
   * may only ask for checks. */
  int diagnostic;
  bclient_binding binding; /* check-in waiting for the registry */
  uint64_t check_session_ends_ns; /* diagnostic: no checks after it */
};

/* A check awaiting the checked peer's report. */
typedef struct bcheck {
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  bclient *requester, *peer; /* NULL: the slot is free */
  uint64_t expires_ns;
  /* Whose it is, for the caps per source and per key (check_slot fills
   * them in with the slot it hands out). */
  uint8_t source[NT_SOURCE_KEY_MAX];
  size_t sourcelen;
  uint8_t key[NT_FINGERPRINT_LEN];
} bcheck;

TAILQ_HEAD(bclient_list, bclient);

struct natter_broker {
  struct event_base *base;
  nt_log log;
  nt_identity *identity;
  char fingerprint_hex[NT_FINGERPRINT_HEX_LEN + 1];
  char broker_id[2 * BROKER_ID_LEN + 1]; /* BROKER_ID_LEN, this run's */
  nt_endpoint *ep;
  struct bclient_list clients; /* every connected client */
  size_t nclients, npending;
  nt_sources sources;    /* connections per source address */
  int loopback;          /* serving on loopback: loopback candidates
                            are real */
  char refuse_text[200]; /* the reason of the latest refusal */
  uint32_t max_clients, max_pending, max_per_source;
  nt_log_gate limit_logged[3]; /* a line a second per kind of limit */
  /* Name -> the one checked-in bclient using it. Names and keys come
   * from clients, so lookups must not grow with their number. */
  nt_hashmap checked_in;
  nt_registry *registry;    /* name -> key, persistent */
  /* New names per source address and per key (client_session.c); one
   * log line a second when refused. */
  nt_budget new_names_by_source, new_names_by_key;
  uint32_t new_names_per_hour; /* 0: no limit */
  nt_log_gate new_names_gate;
  char registry_path[1024]; /* "" : in memory */
  int64_t name_expiry_s;    /* 0: never */
  struct event *flush_ev, *expire_ev;
  nt_registry_request *flush_req, *expire_req; /* in flight, or NULL */
  size_t expire_rounds, expired; /* the expiry in flight, so far */
  /* Closed broker: a token and/or admitted keys. */
  char token[NT_TOKEN_MAX + 1];
  size_t token_len; /* 0: no token */
  nt_keylist *admitted;
  uint64_t introductions;
  int map_fd; /* mapping-check socket on port+1, or -1 */
  int map_family, map_v6only;
  int dual_stack; /* -server :PORT: every port on IPv4 and IPv6 */
  struct event *map_ev;
  uint16_t map_port;
  uint64_t map_rx, map_tx;
  /* Status (broker_status.c). */
  uint64_t started_ns;
  uint64_t check_ins;
  uint64_t status_requests;
  nt_admins admins;
  nt_metrics *metrics;
  nt_h3_server *h3; /* HTTP/3 /status on the broker's own port */
  nt_relay *relay;  /* NULL: no relaying (-relay off) */
  bcheck checks[BROKER_MAX_CHECKS];
  nt_log_gate checks_gate; /* "too many checks" lines */
  badmission admission; /* admission_query.c */
  /* Refusals by limit, for the dashboard (broker_status.c): connections
   * by kind (broker.c: total, pending, per source), new names, checks,
   * and introductions a listener's peer rules refused. */
  uint64_t refused_connections[3];
  uint64_t refused_new_names, refused_checks, refused_introductions;
  /* "cannot bind: the name registry is unavailable" lines, while a shared
   * registry's database is away (it logs the outage itself). */
  nt_log_gate registry_down_gate;
  /* The last introductions and their outcomes, for the dashboard
   * (broker_status.c; fixed size, intro_log.h). */
  nt_intro_log intro_log;
  bxintro *xintro; /* NULL unless the registry is shared (xintro.c) */
  struct nt_tcp_listener *tcp; /* -tcp-listen (tcp_listen.c), or NULL */
};

/* ---- client_session.c: one connected client ---- */

/* A client connecting from |from|, counted in the broker's totals and
 * given a deadline to check in; its connection reports to it through
 * nt_bclient_conn_callbacks. Returns NULL when out of memory. */
bclient *nt_bclient_new(natter_broker *b, const struct sockaddr *from);

/* Forgets a client without closing its connection: the counts, its
 * checks, its deadline, a bind it still waits for, its memory. */
void nt_bclient_free(natter_broker *b, bclient *c);

extern const nt_conn_callbacks nt_bclient_conn_callbacks;

/* Sends |msg| on |c|'s control stream (a failure drops |c|). */
void nt_bclient_send(bclient *c, const nt_control *msg);
/* Answers |c|'s ConnectRequest |request_id| with |code| and |message|. */
void nt_bclient_connect_result(bclient *c, uint32_t request_id,
                               nt_control_code code, const char *message);
/* |peer|'s rules admit |c|: the meeting gets what it needs only now (a
 * relay channel, a check slot, the pair noted) and both hear of it. */
void nt_bclient_introduce(bclient *c, bclient *peer, uint32_t request_id,
                          int check);

/* What |to| needs to reach |about| (Introduction's fields but the
 * request id, nonce, relay and check). */
void nt_bclient_describe(const bclient *about, nt_introduction *intro);
/* |c| as a party of a relay channel (relay.h). */
nt_relay_party nt_bclient_relay_party(const bclient *c);
/* Notes that |c| met |name| (restart notices, refresh requests). */
void nt_bclient_remember(bclient *c, const char *name);
int nt_bclient_was_introduced(const bclient *c, const char *name);
/* The checked-in client |name| here, or NULL. */
bclient *nt_bclient_find(natter_broker *b, const char *name);

/* ---- xintro.c: introductions across brokers ---- */

/* Starts the brokers' bus when the registry at |location| is shared;
 * 0, or NATTER_ERR_NOMEM. */
int nt_xintro_start(natter_broker *b, const char *location);
void nt_xintro_free(natter_broker *b);
/* |c| asks for |r->peer|, not checked in here: 1 when another broker may
 * hold it (the answer comes later), 0 when there is no other broker. */
int nt_xintro_ask(bclient *c, const nt_connect_request *r);
/* |c|'s CheckReport for a check by a client at another broker: 1 when it
 * was one (and is passed on). */
int nt_xintro_on_report(bclient *c, const nt_check_side *report);
/* 1 when a check by a client at another broker awaits |c|'s report with
 * |nonce| (an owed reply: free of |c|'s control-message rate). */
int nt_xintro_report_owed(const bclient *c, const uint8_t *nonce);
/* |c| restarted; |name|, whom it met, is not here: tell its broker. */
void nt_xintro_restarted(bclient *c, const char *name);
/* |c| and |name| (not here) met and punch again: |c| moved, or asked. */
void nt_xintro_refresh(bclient *c, const char *name);
/* |c| leaves: forgets it everywhere here. */
void nt_xintro_forget(bclient *c);
/* The admission query for remote request |id| came to this. */
void nt_xintro_admitted(natter_broker *b, uint32_t id, bclient *listener);
void nt_xintro_refused(natter_broker *b, uint32_t id, nt_control_code code,
                       const char *message);

/* ---- admission_query.c: asking the listener first ---- */

/* |c| asks to meet the listening |peer| (a normal or check request,
 * already checked otherwise): refused from the remembered refusals, or
 * refused past a budget, or an AdmissionQuery to |peer|. */
void nt_admission_ask(bclient *c, bclient *peer, const nt_connect_request *r);
/* The same for a requester at another broker (|name|, |key|), known
 * here as bxserve |remote|: the answer goes to nt_xintro_admitted or
 * nt_xintro_refused (a refusal from the cache or a limit at once). */
void nt_admission_ask_remote(natter_broker *b, bclient *peer, const char *name,
                             const uint8_t *key, int check, uint32_t remote);
/* 1 when |a| answers a query to |c| still awaiting it: a reply owed,
 * which does not count against |c|'s control-message rate. */
int nt_admission_owed(const bclient *c, const nt_admission_answer *a);
/* |c|'s answer: an introduction, or a refusal the requester hears (and
 * that is remembered). An answer to no query of |c|'s is ignored. */
void nt_admission_on_answer(bclient *c, const nt_admission_answer *a);
/* |c|'s peer rules changed: forgets the refusals remembered for it. */
void nt_admission_reset(bclient *c);
/* |c| leaves: requesters waiting for its answer hear so. */
void nt_admission_on_leave(bclient *c);
/* Forgets |c|'s queries and remembered refusals, silently (the broker
 * may be going away). */
void nt_admission_forget(natter_broker *b, const bclient *c);
/* Frees the timer (natter_broker_free). */
void nt_admission_free(natter_broker *b);

/* ---- broker_status.c: the dashboard's ring of introductions ---- */

/* Notes the outcome of |requester_name|'s request to meet
 * |listener_name| (intro_log.h); |requester| and |listener| may be NULL
 * when gone or unknown (no NAT types then), |relay_token| is the
 * requester's token of the channel opened for the pair, or NULL. */
void nt_broker_note_intro(natter_broker *b, const bclient *requester,
                          const char *requester_name, const bclient *listener,
                          const char *listener_name, int outcome, int check,
                          const uint8_t *relay_token);

/* ---- tcp_listen.c: the TCP fallback (-tcp-listen) ---- */

/* TCP connections at once in all, and how long one may stay silent
 * (clients' keepalives come every 20 s). From one IP address: twice
 * -max-per-address (a client holds two: the broker's endpoint and its
 * relay), so a NAT's clients get as many over TCP as over UDP. */
#define NT_TCP_MAX_CONNS 1024
#define NT_TCP_IDLE_S 90

typedef struct nt_tcp_listener nt_tcp_listener;
/* Listens on |listen| ("[ADDR]:PORT"; ":PORT" IPv4 and IPv6) and sets
 * b->tcp. Returns 0 or a negative NATTER_ERR_* (logged). */
int nt_tcp_listener_new(natter_broker *b, const char *listen);
/* Closes every TCP connection and the listener; NULL b->tcp: no-op. */
void nt_tcp_listener_free(natter_broker *b);
uint16_t nt_tcp_listener_port(const natter_broker *b);
size_t nt_tcp_listener_count(const natter_broker *b);

#endif
