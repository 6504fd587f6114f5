/* The broker: a name registry and introductions. Clients check in over a
 * control stream; the broker binds each name to the first key that claims
 * it (persistently, registry.h), and when one client asks for another it
 * sends each the other's key and addresses. Forwarded bytes never pass
 * through here. A closed broker admits only clients that present its
 * token (token.h) and/or whose key is listed (keylist.h). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/admission.h"
#include "quic/endpoint.h"
#include "status/h3.h"
#include "base/hashmap.h"
#include "trust/keylist.h"
#include "codec/mapping.h"
#include "status/metrics.h"
#include "natter.h"
#include "base/paths.h"
#include "client/punch.h"
#include "broker/registry.h"
#include "broker/relay.h"
#include "codec/spec.h"
#include "status/status.h"
#include "base/structs.h"
#include "trust/token.h"
#include "quic/udpsock.h"
#include "codec/wire_check.h"
#include "codec/wire_msg.h"

#define BROKER_MAX_LOCAL_ADDRS 8
#define PROTOCOL_VERSION 1
/* Last-seen times of checked-in clients reach the registry this often
 * (one transaction); expiry runs every quarter of the expiry time, at
 * least every second and at most every hour. */
#define BROKER_FLUSH_S 15
#define BROKER_EXPIRE_MAX_S 3600
#define NOT_AUTHORIZED "not authorized by the broker"

/* Limits against one host holding the broker (README, "Limits"); each is
 * logged when hit (at most once a second per kind) and answered with a
 * stateless CONNECTION_CLOSE that names it, never with silence. */
/* (max_clients, max_pending and max_per_source: natter_broker_config) */
#define BROKER_CHECKIN_DEADLINE_S 10 /* from the first packet to CheckIn */
#define BROKER_CTL_RATE 20          /* control messages per second ... */
#define BROKER_CTL_BURST 40         /* ... per client, with this burst */
/* (retry_above_per_s too: past it, QUIC Retry validates addresses) */
/* Whom each client was introduced to, newest first, for notices when it
 * moves or restarts and to allow refresh requests only within a pair
 * that met: at most this many names per client (1 KiB), the oldest
 * forgotten first; gone with the client's session (or handed to the
 * session that replaces it). */
#define BROKER_MAX_INTRODUCED 16
#define BROKER_SESSION_LEN 16
/* A client whose address changes is re-introduced to its peers at most
 * this often. */
#define BROKER_MOVE_NOTICE_NS (2 * 1000000000ull)
/* Connectivity checks (ConnectRequest.check) awaiting the checked peer's
 * report: at most this many at once, this many per requester, each for
 * this long; the report goes to the requester only. */
#define BROKER_MAX_CHECKS 64
#define BROKER_MAX_CHECKS_PER_CLIENT 4
#define BROKER_CHECK_TTL_NS (120 * 1000000000ull)

typedef struct bclient bclient;

/* A check-in waiting for the registry to bind its name (registry.h): what
 * the answer needs from the CheckIn message, which is gone by then. */
typedef struct bclient_binding {
  nt_registry_request *req; /* NULL: no bind in flight */
  char name[NT_NAME_MAX + 1];
  uint8_t session[BROKER_SESSION_LEN];
  size_t session_len;
  int diagnostic, listen, no_relay;
} bclient_binding;

struct bclient {
  natter_broker *broker;
  nt_conn *conn;
  nt_addr source;       /* where it came from, as counted in b->sources */
  int pending;          /* not checked in yet: counted in b->npending */
  struct event *deadline; /* to check in */
  nt_rate ctl_rate;
  nt_stream *ctl;
  nt_wire_reader *reader;
  int checked_in; /* then in natter_broker.checked_in under |name| */
  int dead;       /* closing: ignore further input */
  int listen;
  int no_relay; /* refuses relayed peers */
  char name[NT_NAME_MAX + 1];
  nt_addr local_addrs[BROKER_MAX_LOCAL_ADDRS];
  size_t nlocal;
  Natter__NatMapping mapping;
  nt_addr mapped; /* as the mapping port saw it; len 0 if unknown */
  uint64_t checked_in_unix_ms; /* status: when its check-in was accepted */
  TAILQ_ENTRY(bclient) link;
  uint8_t session[BROKER_SESSION_LEN]; /* CheckIn.session; all 0: none */
  char introduced[BROKER_MAX_INTRODUCED][NT_NAME_MAX + 1];
  size_t nintroduced;
  uint64_t moved_ns; /* last re-introduction after a move */
  /* A diagnostic session (CheckIn.diagnostic): checked in, but not under
   * its name in natter_broker.checked_in, announced to no one, and it
   * may only ask for checks. */
  int diagnostic;
  bclient_binding binding; /* check-in waiting for the registry */
};

/* A check awaiting the checked peer's report. */
typedef struct bcheck {
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  bclient *requester, *peer; /* NULL: the slot is free */
  uint64_t expires_ns;
} bcheck;

TAILQ_HEAD(bclient_list, bclient);

struct natter_broker {
  struct event_base *base;
  nt_log log;
  nt_identity *identity;
  char fingerprint_hex[NT_FINGERPRINT_HEX_LEN + 1];
  nt_endpoint *ep;
  struct bclient_list clients; /* every connected client */
  size_t nclients, npending;
  nt_sources sources;          /* connections per source address */
  int loopback;                /* serving on loopback: loopback candidates
                                  are real */
  char refuse_text[200];       /* the reason of the latest refusal */
  uint32_t max_clients, max_pending, max_per_source;
  uint64_t limit_logged_ns[3]; /* last log line per kind of limit */
  unsigned limit_suppressed[3];
  /* Name -> the one checked-in bclient using it. Names and keys come
   * from clients, so lookups must not grow with their number. */
  nt_hashmap checked_in;
  nt_registry *registry;    /* name -> key, persistent */
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
  /* Status (getters at the end of this file). */
  uint64_t started_ns;
  uint64_t check_ins;
  uint64_t status_requests;
  nt_admins admins;
  nt_metrics *metrics;
  nt_h3_server *h3; /* HTTP/3 /status on the broker's own port */
  nt_relay *relay; /* NULL: no relaying (-relay off) */
  bcheck checks[BROKER_MAX_CHECKS];
};

static void client_closed(nt_conn *conn, nt_close_reason reason,
                          uint64_t app_code, const char *message, void *ud);
static void client_free(natter_broker *b, bclient *c);

#define STR_(x) #x
#define STR(x) STR_(x)
static void client_established(nt_conn *conn, void *ud);
static void client_stream_opened(nt_conn *conn, nt_stream *s, void *ud);
static void client_moved(nt_conn *conn, void *ud);
static void note_check_in(bclient *c, bclient *old, const Natter__CheckIn *in);
static void note_introduced(bclient *a, bclient *b);
static void handle_refresh_request(bclient *c, const Natter__ConnectRequest *r);
static bcheck *check_slot(natter_broker *b, const bclient *c);

static const nt_conn_callbacks client_conn_callbacks = {
    client_established, client_closed, client_stream_opened, NULL, NULL,
    client_moved};

static void reject(bclient *c, Natter__Code code, const char *why) {
  char addr[NT_ADDR_STRLEN];
  if (c->dead) {
    return;
  }
  c->dead = 1;
  nt_info(&c->broker->log, "dropping client %s: %s",
          nt_addr_str(nt_conn_remote_addr(c->conn), addr), why);
  nt_conn_close(c->conn, (uint64_t)code, why);
}

static bclient *find_client(natter_broker *b, const char *name) {
  return nt_hashmap_get(&b->checked_in, name, strlen(name));
}

static void send_control(bclient *c, Natter__Control *msg) {
  if (nt_wire_write_msg(c->ctl, &msg->base) != 0) {
    reject(c, NATTER__CODE__INTERNAL, "cannot queue control message");
  }
}

static void send_check_in_result(bclient *c, Natter__Code code,
                                 const char *message) {
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__CheckInResult res = NATTER__CHECK_IN_RESULT__INIT;
  Natter__Address observed;
  uint8_t ip[16];

  res.code = code;
  res.message = (char *)message;
  if (code == NATTER__CODE__OK) {
    c->broker->check_ins++;
    c->checked_in_unix_ms = nt_unix_ms();
  }
  nt_wire_addr_from_sockaddr(&observed, ip, nt_conn_remote_addr(c->conn));
  res.observed = &observed;
  res.mapping_port = c->broker->map_port;
  res.closed = c->broker->token_len > 0 || c->broker->admitted != NULL;
  msg.msg_case = NATTER__CONTROL__MSG_CHECK_IN_RESULT;
  msg.check_in_result = &res;
  send_control(c, &msg);
}

/* A closed broker's door: the token and the admitted keys. Returns 1
 * when |c| may check in as |name|; else answers "not authorized" (the same
 * words whatever failed, so a stranger learns nothing about names) and
 * logs why. */
static int check_authorized(bclient *c, const Natter__CheckIn *in,
                            const uint8_t *key) {
  natter_broker *b = c->broker;
  char hex[NT_FINGERPRINT_HEX_LEN + 1], addr[NT_ADDR_STRLEN];
  const char *why = NULL;

  if (b->token_len > 0) {
    const char *t = in->token ? in->token : "";
    if (!nt_token_equal(b->token, b->token_len, t, strlen(t))) {
      why = t[0] ? "wrong token" : "no token";
    }
  }
  if (!why && b->admitted) {
    const char *admitted_as = nt_keylist_lookup(b->admitted, key);
    if (!admitted_as) {
      why = "key not admitted";
    } else if (strcmp(admitted_as, in->name) != 0) {
      why = "key admitted under another name";
    }
  }
  if (!why) {
    return 1;
  }
  nt_fingerprint_hex(key, hex);
  nt_info(&b->log, "refused a client from %s as \"%s\" (key %.16s...): %s",
          nt_addr_str(nt_conn_remote_addr(c->conn), addr), in->name, hex, why);
  send_check_in_result(c, NATTER__CODE__UNAUTHORIZED, NOT_AUTHORIZED);
  return 0;
}

/* The registry refused |name|: answers the client why. */
static void bind_refused(bclient *c, const char *name, int rv, const char *err,
                         const nt_registry_entry *owner) {
  natter_broker *b = c->broker;
  char hex[NT_FINGERPRINT_HEX_LEN + 1];

  if (rv == NATTER_ERR_NAME_TAKEN) {
    if (owner) {
      nt_fingerprint_hex(owner->fingerprint, hex);
      nt_info(&b->log, "refused \"%s\": name bound to key %.16s...", name, hex);
    }
    send_check_in_result(c, NATTER__CODE__NAME_TAKEN,
                         "name is bound to another key at this broker");
    return;
  }
  nt_error(&b->log, "registry: cannot bind \"%s\": %s", name, err);
  send_check_in_result(c, NATTER__CODE__INTERNAL,
                       strstr(err, "registry is full")
                           ? "broker is full (its name registry)"
                           : "broker registry unavailable");
}

static void finish_check_in(bclient *c, const uint8_t *key,
                            const Natter__CheckIn *in);

/* The registry has decided on the name of a waiting check-in. */
static void name_bound(const nt_registry_result *res, void *user_data) {
  bclient *c = user_data;
  bclient_binding *w = &c->binding;
  Natter__CheckIn in = NATTER__CHECK_IN__INIT;
  char hex[NT_FINGERPRINT_HEX_LEN + 1];

  w->req = NULL;
  if (c->dead) {
    return;
  }
  if (res->replaced) {
    nt_fingerprint_hex(res->entry.fingerprint, hex);
    nt_info(&c->broker->log,
            "\"%s\" was bound to key %.16s...; rebinding it to the key "
            "the admitted-keys file lists",
            w->name, hex);
  }
  if (res->rv != 0) {
    bind_refused(c, w->name, res->rv, res->err, &res->entry);
    return;
  }
  in.name = w->name;
  in.session.data = w->session;
  in.session.len = w->session_len;
  in.diagnostic = w->diagnostic;
  in.listen = w->listen;
  in.no_relay = w->no_relay;
  finish_check_in(c, nt_conn_peer_fingerprint(c->conn), &in);
}

/* Asks the registry to bind |in->name| to |key|; the check-in goes on in
 * name_bound once the binding is stored, or is answered why not. On a
 * closed broker the admitted-keys file is the authority: an operator who
 * gave the name a new key there meant it, so the bind takes the name
 * over. */
static void bind_name(bclient *c, const Natter__CheckIn *in,
                      const uint8_t *key) {
  natter_broker *b = c->broker;
  bclient_binding *w = &c->binding;
  char err[300];

  snprintf(w->name, sizeof(w->name), "%s", in->name);
  w->session_len = 0;
  if (in->session.len == BROKER_SESSION_LEN) {
    memcpy(w->session, in->session.data, BROKER_SESSION_LEN);
    w->session_len = BROKER_SESSION_LEN;
  }
  w->diagnostic = in->diagnostic;
  w->listen = in->listen;
  w->no_relay = in->no_relay;
  int rv = nt_registry_bind(b->registry, in->name, key, (int64_t)time(NULL),
                            b->admitted ? NT_REGISTRY_BIND_TAKEOVER : 0,
                            name_bound, c, &w->req, err, sizeof(err));
  if (rv != 0) {
    bind_refused(c, in->name, rv, err, NULL);
  }
}

/* The check-in succeeded: |c| leaves the pending count and its deadline,
 * and hears so. |how| ends the log line (", listening", ...). */
static void checked_in(bclient *c, const uint8_t *key, const char *how) {
  natter_broker *b = c->broker;
  char hex[NT_FINGERPRINT_HEX_LEN + 1], addr[NT_ADDR_STRLEN];
  c->checked_in = 1;
  if (c->pending) {
    c->pending = 0;
    b->npending--;
  }
  event_del(c->deadline);
  nt_fingerprint_hex(key, hex);
  nt_info(&b->log, "%s checked in from %s%s (key %.16s...)", c->name,
          nt_addr_str(nt_conn_remote_addr(c->conn), addr), how, hex);
  send_check_in_result(c, NATTER__CODE__OK, "");
}

static void handle_check_in(bclient *c, const Natter__CheckIn *in) {
  natter_broker *b = c->broker;
  const uint8_t *key = nt_conn_peer_fingerprint(c->conn);

  if (c->checked_in || c->binding.req) {
    reject(c, NATTER__CODE__BAD_REQUEST, "checked in twice");
    return;
  }
  if (in->protocol_version != PROTOCOL_VERSION) {
    send_check_in_result(c, NATTER__CODE__BAD_REQUEST,
                         "protocol version not supported by this broker");
    return;
  }
  if (!nt_name_valid(in->name)) {
    send_check_in_result(c, NATTER__CODE__BAD_REQUEST,
                         "invalid name (use 1-63 of A-Z a-z 0-9 . _ -)");
    return;
  }
  if (in->n_local_addrs > BROKER_MAX_LOCAL_ADDRS) {
    reject(c, NATTER__CODE__BAD_REQUEST, "too many local addresses");
    return;
  }
  /* Before anything about names: a refused client learns none. */
  if (!check_authorized(c, in, key)) {
    return;
  }
  c->nlocal = 0;
  for (size_t i = 0; i < in->n_local_addrs; i++) {
    nt_addr *a = &c->local_addrs[c->nlocal];
    /* Peers will probe these: nothing that aims their probes at their own
     * host, or at a broadcast or multicast group. Both families are kept,
     * whichever one the client came in on: clients are dual-stack. */
    if (nt_wire_addr_to_sockaddr(a, in->local_addrs[i]) == 0 &&
        nt_candidate_acceptable((struct sockaddr *)&a->ss, b->loopback)) {
      c->nlocal++;
    }
  }
  if (c->nlocal < in->n_local_addrs) {
    nt_debug(&b->log, "%s: %zu of %zu reported local addresses dropped",
             in->name, in->n_local_addrs - c->nlocal, in->n_local_addrs);
  }
  bind_name(c, in, key);
}

/* The rest of a check-in, once its name is bound to |key|. */
static void finish_check_in(bclient *c, const uint8_t *key,
                            const Natter__CheckIn *in) {
  natter_broker *b = c->broker;

  if (in->diagnostic) {
    /* The key owns the name (bind_name), but the session takes nothing
     * from a client running under it: no table entry, no notices. */
    snprintf(c->name, sizeof(c->name), "%s", in->name);
    c->diagnostic = 1;
    checked_in(c, key, " for a check");
    return;
  }
  /* The name must be in the table before anything else changes, so that
   * running out of memory leaves the old session as it was. The entry
   * reads its key from c->name. */
  snprintf(c->name, sizeof(c->name), "%s", in->name);
  bclient *old = find_client(b, c->name);
  if (nt_hashmap_put(&b->checked_in, c->name, strlen(c->name), c) != 0) {
    c->name[0] = '\0';
    send_check_in_result(c, NATTER__CODE__INTERNAL, "out of memory");
    return;
  }
  /* Same name, same key: the client came back (restart, new address);
   * the old session is stale. */
  note_check_in(c, old && old != c ? old : NULL, in);
  if (old && old != c) {
    old->checked_in = 0;
    old->dead = 1;
    nt_conn_close(old->conn, NATTER__CODE__OK, "replaced by a new session");
  }
  c->listen = in->listen;
  c->no_relay = in->no_relay;
  checked_in(c, key, c->listen ? ", listening" : "");
}

static void send_connect_result(bclient *c, uint32_t request_id,
                                Natter__Code code, const char *message) {
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__ConnectResult res = NATTER__CONNECT_RESULT__INIT;
  res.request_id = request_id;
  res.code = code;
  res.message = (char *)message;
  msg.msg_case = NATTER__CONTROL__MSG_CONNECT_RESULT;
  msg.connect_result = &res;
  send_control(c, &msg);
}

/* Tells |to| everything it needs to reach |about|. */
static void send_introduction(bclient *to, bclient *about, uint32_t request_id,
                              const uint8_t *nonce, int refresh,
                              const uint8_t *relay_token, int check) {
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__Introduction intro = NATTER__INTRODUCTION__INIT;
  Natter__Address observed, mapped, locals[BROKER_MAX_LOCAL_ADDRS];
  Natter__Address *plocals[BROKER_MAX_LOCAL_ADDRS];
  uint8_t ips[BROKER_MAX_LOCAL_ADDRS + 2][16];

  intro.request_id = request_id;
  intro.refresh = refresh;
  intro.check = check;
  intro.peer = about->name;
  intro.peer_key.data = (uint8_t *)nt_conn_peer_fingerprint(about->conn);
  intro.peer_key.len = NT_FINGERPRINT_LEN;
  nt_wire_addr_from_sockaddr(&observed, ips[0],
                             nt_conn_remote_addr(about->conn));
  intro.observed = &observed;
  for (size_t i = 0; i < about->nlocal; i++) {
    nt_wire_addr_from_sockaddr(&locals[i], ips[i + 1],
                               (struct sockaddr *)&about->local_addrs[i].ss);
    plocals[i] = &locals[i];
  }
  intro.local_addrs = plocals;
  intro.n_local_addrs = about->nlocal;
  intro.nonce.data = (uint8_t *)nonce;
  intro.nonce.len = NT_PUNCH_NONCE_LEN;
  intro.peer_mapping = about->mapping;
  if (about->mapped.len) {
    nt_wire_addr_from_sockaddr(&mapped, ips[BROKER_MAX_LOCAL_ADDRS + 1],
                               (struct sockaddr *)&about->mapped.ss);
    intro.peer_mapped = &mapped;
  }
  if (relay_token) {
    intro.relay_token.data = (uint8_t *)relay_token;
    intro.relay_token.len = NT_RELAY_TOKEN_LEN;
    intro.relay_port = nt_relay_port(to->broker->relay);
  }
  msg.msg_case = NATTER__CONTROL__MSG_INTRODUCTION;
  msg.introduction = &intro;
  send_control(to, &msg);
}

static void handle_connect_request(bclient *c, const Natter__ConnectRequest *r) {
  natter_broker *b = c->broker;
  uint8_t nonce[NT_PUNCH_NONCE_LEN];

  if (!c->checked_in || r->request_id == 0) {
    reject(c, NATTER__CODE__BAD_REQUEST, "connect request before check-in");
    return;
  }
  if (r->refresh && !c->diagnostic) {
    handle_refresh_request(c, r);
    return;
  }
  if (!r->check != !c->diagnostic) {
    send_connect_result(c, r->request_id, NATTER__CODE__BAD_REQUEST,
                        c->diagnostic
                            ? "a check session may only ask for checks"
                            : "checks come from check sessions only");
    return;
  }
  if (!nt_name_valid(r->peer)) {
    send_connect_result(c, r->request_id, NATTER__CODE__BAD_REQUEST,
                        "invalid peer name");
    return;
  }
  if (strcmp(r->peer, c->name) == 0) {
    send_connect_result(c, r->request_id, NATTER__CODE__BAD_REQUEST,
                        "a client cannot connect to itself");
    return;
  }
  bclient *peer = find_client(b, r->peer);
  if (!peer) {
    send_connect_result(c, r->request_id, NATTER__CODE__PEER_UNKNOWN,
                        "no client with that name is checked in");
    return;
  }
  if (!peer->listen) {
    send_connect_result(c, r->request_id, NATTER__CODE__PEER_NOT_LISTENING,
                        "the peer is checked in but not listening");
    return;
  }
  if (nt_random_bytes(nonce, sizeof(nonce)) != 0) {
    send_connect_result(c, r->request_id, NATTER__CODE__INTERNAL,
                        "no randomness");
    return;
  }
  bcheck *chk = NULL;
  if (r->check && !(chk = check_slot(b, c))) {
    send_connect_result(c, r->request_id, NATTER__CODE__INTERNAL,
                        "the broker runs too many checks at once; try "
                        "again in a minute");
    return;
  }
  b->introductions++;
  /* A relay channel for the pair, in case punching fails; none when
   * either refuses relayed peers. */
  uint8_t tok_c[NT_RELAY_TOKEN_LEN], tok_peer[NT_RELAY_TOKEN_LEN];
  int relayed =
      b->relay && !c->no_relay && !peer->no_relay &&
      nt_relay_open(b->relay, c->name, nt_conn_remote_addr(c->conn), peer->name,
                    nt_conn_remote_addr(peer->conn), tok_c, tok_peer) == 0;
  nt_info(&b->log, "introducing %s to %s%s%s", c->name, peer->name,
          r->check ? " for a check" : "",
          relayed ? " (relay channel open)" : "");
  if (chk) {
    memcpy(chk->nonce, nonce, sizeof(chk->nonce));
    chk->requester = c;
    chk->peer = peer;
    chk->expires_ns = nt_monotonic_ns() + BROKER_CHECK_TTL_NS;
  } else {
    note_introduced(c, peer);
  }
  send_introduction(peer, c, 0, nonce, 0, relayed ? tok_peer : NULL, r->check);
  send_introduction(c, peer, r->request_id, nonce, 0, relayed ? tok_c : NULL,
                    0);
}

/* A free slot for a check by |c|, or NULL past the limits (expired
 * checks are forgotten first). */
static bcheck *check_slot(natter_broker *b, const bclient *c) {
  uint64_t now = nt_monotonic_ns();
  bcheck *free_slot = NULL;
  size_t mine = 0;
  for (size_t i = 0; i < BROKER_MAX_CHECKS; i++) {
    bcheck *k = &b->checks[i];
    if (k->requester && now >= k->expires_ns) {
      k->requester = k->peer = NULL;
    }
    if (!k->requester) {
      free_slot = free_slot ? free_slot : k;
    } else if (k->requester == c) {
      mine++;
    }
  }
  return mine < BROKER_MAX_CHECKS_PER_CLIENT ? free_slot : NULL;
}

/* The checked peer's report: to the check's requester only, with the
 * reporter's name and address as we know them. Bounds:
 * nt_wire_check_report; a report of no check of ours is dropped. */
static void handle_check_report(bclient *c, const Natter__CheckReport *r) {
  natter_broker *b = c->broker;
  nt_check_side side;
  bcheck *k = NULL;
  if (!c->checked_in || c->diagnostic) {
    reject(c, NATTER__CODE__BAD_REQUEST, "unexpected check report");
    return;
  }
  if (nt_wire_check_report(&side, r, 0) != 0) {
    reject(c, NATTER__CODE__BAD_REQUEST, "malformed check report");
    return;
  }
  for (size_t i = 0; i < BROKER_MAX_CHECKS; i++) {
    if (b->checks[i].peer == c &&
        memcmp(b->checks[i].nonce, side.nonce, NT_PUNCH_NONCE_LEN) == 0) {
      k = &b->checks[i];
      break;
    }
  }
  if (!k) {
    nt_debug(&b->log, "%s: report of no check under way; dropped", c->name);
    return;
  }
  Natter__Control msg = NATTER__CONTROL__INIT;
  nt_wire_check_buf buf;
  Natter__Address observed;
  uint8_t ip[16];
  nt_wire_check_encode(&buf, &side);
  buf.msg.peer = c->name;
  nt_wire_addr_from_sockaddr(&observed, ip, nt_conn_remote_addr(c->conn));
  buf.msg.observed = &observed;
  msg.msg_case = NATTER__CONTROL__MSG_CHECK_REPORT;
  msg.check_report = &buf.msg;
  nt_info(&b->log, "%s reports on the check by %s", c->name,
          k->requester->name);
  send_control(k->requester, &msg);
  k->requester = k->peer = NULL;
}

/* One control message from a client; returns nonzero once the client is
 * being dropped, so nothing after it is read. */
static int handle_control(const uint8_t *body, size_t len, void *ud) {
  bclient *c = ud;
  if (!nt_rate_take(&c->ctl_rate, BROKER_CTL_RATE, BROKER_CTL_BURST,
                    nt_monotonic_ns())) {
    reject(c, NATTER__CODE__BAD_REQUEST,
           "too many control messages (limit " STR(BROKER_CTL_RATE)
           " per second)");
    return 1;
  }
  Natter__Control *msg = natter__control__unpack(NULL, len, body);
  if (!msg) {
    reject(c, NATTER__CODE__BAD_REQUEST, "malformed control message");
    return 1;
  }
  switch (msg->msg_case) {
  case NATTER__CONTROL__MSG_CHECK_IN:
    handle_check_in(c, msg->check_in);
    break;
  case NATTER__CONTROL__MSG_CONNECT_REQUEST:
    handle_connect_request(c, msg->connect_request);
    break;
  case NATTER__CONTROL__MSG_CHECK_REPORT:
    handle_check_report(c, msg->check_report);
    break;
  case NATTER__CONTROL__MSG_NAT_REPORT:
    if (!c->checked_in) {
      reject(c, NATTER__CODE__BAD_REQUEST, "NAT report before check-in");
      break;
    }
    c->mapping = msg->nat_report->mapping;
    if (c->mapping != NATTER__NAT_MAPPING__MAPPING_ENDPOINT_INDEPENDENT &&
        c->mapping != NATTER__NAT_MAPPING__MAPPING_PER_DESTINATION) {
      c->mapping = NATTER__NAT_MAPPING__MAPPING_UNKNOWN;
    }
    if (nt_wire_addr_to_sockaddr(&c->mapped, msg->nat_report->mapped) != 0) {
      memset(&c->mapped, 0, sizeof(c->mapped));
    }
    nt_debug(&c->broker->log, "%s reports %s NAT mapping", c->name,
             c->mapping == NATTER__NAT_MAPPING__MAPPING_PER_DESTINATION
                 ? "per-destination (symmetric)"
             : c->mapping == NATTER__NAT_MAPPING__MAPPING_ENDPOINT_INDEPENDENT
                 ? "endpoint-independent"
                 : "unknown");
    break;
  default:
    reject(c, NATTER__CODE__BAD_REQUEST, "unexpected control message");
    break;
  }
  natter__control__free_unpacked(msg, NULL);
  return c->dead;
}

static void ctl_recv(nt_stream *s, const uint8_t *data, size_t len, int fin,
                     void *ud) {
  bclient *c = ud;

  if (!c->dead &&
      nt_wire_reader_each(c->reader, data, len, handle_control, c) < 0) {
    reject(c, NATTER__CODE__BAD_REQUEST, "bad message framing");
  }
  nt_stream_consume(s, len);
  if (fin && !c->dead) {
    c->dead = 1;
    nt_conn_close(c->conn, 0, "control stream ended");
  }
}

static void ctl_closed(nt_stream *s, int reset, uint64_t code, void *ud) {
  bclient *c = ud;
  (void)s;
  (void)reset;
  (void)code;
  c->ctl = NULL;
  if (!c->dead) {
    c->dead = 1;
    nt_conn_close(c->conn, 0, "control stream closed");
  }
}

static const nt_stream_callbacks ctl_callbacks = {ctl_recv, NULL, ctl_closed};

static void client_stream_opened(nt_conn *conn, nt_stream *s, void *ud) {
  bclient *c = ud;
  c->conn = conn;
  if (c->ctl) {
    /* One control stream per client; anything else is refused. */
    nt_stream_reset(s, NATTER__CODE__BAD_REQUEST);
    return;
  }
  c->ctl = s;
  nt_stream_set_callbacks(s, &ctl_callbacks, c);
}

static void client_established(nt_conn *conn, void *ud) {
  bclient *c = ud;
  c->conn = conn;
}

static void client_closed(nt_conn *conn, nt_close_reason reason,
                          uint64_t app_code, const char *message, void *ud) {
  bclient *c = ud;
  natter_broker *b = c->broker;
  (void)conn;
  (void)app_code;
  if (c->checked_in) {
    nt_info(&b->log, "%s left (%s)", c->name,
            reason == NT_CLOSE_IDLE  ? "idle timeout"
            : reason == NT_CLOSE_PEER ? (message[0] ? message : "closed")
                                      : "closed");
  }
  if (c->checked_in && !c->diagnostic) {
    char err[300];
    nt_hashmap_remove(&b->checked_in, c->name, strlen(c->name));
    /* Idle time counts from leaving. */
    if (nt_registry_touch(b->registry, c->name, (int64_t)time(NULL), err,
                          sizeof(err)) != 0) {
      nt_warn(&b->log, "registry: %s", err);
    }
  }
  client_free(b, c);
}

/* Forgets a client: the counts, its deadline, its memory. */
static void client_free(natter_broker *b, bclient *c) {
  /* A check-in still waiting for the registry: its answer must not come
   * to freed memory. */
  nt_registry_cancel(c->binding.req);
  for (size_t i = 0; i < BROKER_MAX_CHECKS; i++) {
    if (b->checks[i].requester == c || b->checks[i].peer == c) {
      b->checks[i].requester = b->checks[i].peer = NULL;
    }
  }
  TAILQ_REMOVE(&b->clients, c, link);
  b->nclients--;
  if (c->pending) {
    b->npending--;
  }
  nt_sources_remove(&b->sources, (struct sockaddr *)&c->source.ss);
  if (c->deadline) {
    event_free(c->deadline);
  }
  if (c->reader) {
    nt_wire_reader_reset(c->reader);
  }
  free(c->reader);
  free(c);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  bclient *c = arg;
  (void)fd;
  (void)what;
  if (!c->checked_in) {
    reject(c, NATTER__CODE__BAD_REQUEST,
           "no check-in within " STR(BROKER_CHECKIN_DEADLINE_S) " s");
  }
}

enum { LIMIT_TOTAL, LIMIT_PENDING, LIMIT_SOURCE };

/* Refuses a new connection because of a limit: the reason goes back to
 * the client; the log says so at most once a second per limit. */
static int refuse(natter_broker *b, const char **reason, int kind,
                  const struct sockaddr *from, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int refuse(natter_broker *b, const char **reason, int kind,
                  const struct sockaddr *from, const char *fmt, ...) {
  va_list ap;
  uint64_t now = nt_monotonic_ns();
  char addr[NT_ADDR_STRLEN];
  va_start(ap, fmt);
  vsnprintf(b->refuse_text, sizeof(b->refuse_text), fmt, ap);
  va_end(ap);
  *reason = b->refuse_text;
  if (now - b->limit_logged_ns[kind] >= 1000000000ull ||
      b->limit_logged_ns[kind] == 0) {
    nt_warn(&b->log, "refused a connection from %s: %s%s",
            nt_addr_str(from, addr), b->refuse_text,
            b->limit_suppressed[kind] ? " (and more like it)" : "");
    b->limit_logged_ns[kind] = now;
    b->limit_suppressed[kind] = 0;
  } else {
    b->limit_suppressed[kind]++;
  }
  return 0;
}

/* Returns 1 when a new connection from |from| is within every limit; 0,
 * logged, with the reason in *reason, when not. */
static int within_limits(natter_broker *b, const struct sockaddr *from,
                         const char **reason) {
  char addr[NT_ADDR_STRLEN];
  if (b->nclients >= b->max_clients) {
    return refuse(b, reason, LIMIT_TOTAL, from,
                  "broker is full (%u connections, its limit); try again "
                  "later",
                  b->max_clients);
  }
  if (b->npending >= b->max_pending) {
    return refuse(b, reason, LIMIT_PENDING, from,
                  "broker is busy (%u connections not checked in yet, its "
                  "limit); retry in a few seconds",
                  b->max_pending);
  }
  if (nt_sources_count(&b->sources, from) >= b->max_per_source) {
    nt_addr_str(from, addr);
    *strrchr(addr, ':') = '\0'; /* the address, without the port */
    return refuse(b, reason, LIMIT_SOURCE, from,
                  "too many connections from %s (limit %u per address)",
                  addr, b->max_per_source);
  }
  return 1;
}

/* nt_endpoint_callbacks.admit: the limits, before any state is made. */
static int broker_admit(nt_endpoint *ep, const struct sockaddr *from,
                        const char **reason, void *ud) {
  (void)ep;
  return within_limits(ud, from, reason);
}

static int broker_accept(nt_endpoint *ep, const struct sockaddr *from,
                         nt_accept_params *params, void *ud) {
  natter_broker *b = ud;
  (void)ep;
  /* Again: a routed (HTTP/3-capable) connection is accepted only once
   * its ClientHello is read, and others may have come in meanwhile. */
  if (!within_limits(b, from, &params->refuse_reason)) {
    return 0;
  }
  bclient *c = calloc(1, sizeof(*c));
  if (!c) {
    return 0;
  }
  c->reader = calloc(1, sizeof(*c->reader));
  c->deadline = event_new(b->base, -1, 0, deadline_cb, c);
  if (!c->reader || !c->deadline ||
      nt_sources_add(&b->sources, from) != 0) {
    if (c->deadline) {
      event_free(c->deadline);
    }
    free(c->reader);
    free(c);
    return 0;
  }
  c->broker = b;
  c->source.len = from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
  memcpy(&c->source.ss, from, c->source.len);
  c->pending = 1;
  b->npending++;
  nt_rate_init(&c->ctl_rate, BROKER_CTL_BURST, nt_monotonic_ns());
  struct timeval tv = {BROKER_CHECKIN_DEADLINE_S, 0};
  event_add(c->deadline, &tv);
  TAILQ_INSERT_HEAD(&b->clients, c, link);
  b->nclients++;
  params->expected_fp = NULL; /* any key: the name binding decides */
  params->callbacks = &client_conn_callbacks;
  params->user_data = c;
  return 1;
}

static int broker_accept_h3(nt_endpoint *ep, const struct sockaddr *from,
                            nt_accept_params *params, void *ud);

static const nt_endpoint_callbacks broker_ep_callbacks = {
    broker_accept, NULL, broker_admit, NULL, NULL};

/* Answers mapping checks: each request gets back the address it came from.
 * Stateless, one reply per request, bounded per wake-up. */
static void map_read_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  uint8_t buf[64], reply[NT_MAPPING_REPLY_MAX], nonce[NT_MAPPING_NONCE_LEN];
  (void)what;
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage from;
    struct iovec iov = {buf, sizeof(buf)};
    union {
      char buf[NT_UDP_PKTINFO_SPACE];
      struct cmsghdr align;
    } ctrl;
    struct msghdr msg = {.msg_name = &from,
                         .msg_namelen = sizeof(from),
                         .msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctrl.buf,
                         .msg_controllen = sizeof(ctrl.buf)};
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
      return;
    }
    b->map_rx += (uint64_t)n;
    if (!nt_mapping_decode_request(buf, (size_t)n, nonce)) {
      continue;
    }
    /* The address as the main port's endpoint reports it (IPv4 plain,
     * not v4-mapped), so that the client can compare the two. */
    struct sockaddr_storage seen = from;
    socklen_t seenlen = msg.msg_namelen;
    nt_addr_unmap(&seen, &seenlen);
    /* From the address the request went to: the client's NAT lets
     * nothing else back in. */
    nt_addr dst;
    nt_udp_arrival(&msg, &dst);
    size_t len =
        nt_mapping_encode_reply(reply, nonce, (struct sockaddr *)&seen);
    if (len && nt_udp_send(fd, b->map_family, b->map_v6only, reply, len, 0,
                           (struct sockaddr *)&seen, &dst) == 0) {
      b->map_tx += len;
    }
  }
}

/* Opens the mapping-check port next to the main one; without it clients
 * simply cannot tell their NAT's mapping, so failure is only a warning. */
static void open_mapping_port(natter_broker *b, const nt_addr *main_addr) {
  nt_addr a = *main_addr;
  uint16_t port = nt_endpoint_port(b->ep);
  char addrstr[NT_ADDR_STRLEN];

  b->map_fd = -1;
  if (port == 65535) {
    return;
  }
  nt_addr_set_port((struct sockaddr *)&a.ss, (uint16_t)(port + 1));
  b->map_fd = nt_udp_open(&a, b->dual_stack, &b->map_family, &b->map_v6only);
  if (b->map_fd < 0) {
    nt_warn(&b->log,
            "cannot open the NAT mapping-check port %s (%s): clients will "
            "not learn whether their NAT is symmetric",
            nt_addr_str((struct sockaddr *)&a.ss, addrstr),
            strerror(-b->map_fd));
    b->map_fd = -1;
    return;
  }
  b->map_ev = event_new(b->base, b->map_fd, EV_READ | EV_PERSIST, map_read_cb,
                        b);
  if (!b->map_ev || event_add(b->map_ev, NULL) != 0) {
    close(b->map_fd);
    b->map_fd = -1;
    return;
  }
  b->map_port = (uint16_t)(port + 1);
}

/* Opens the relay on port+2 (relay.h); a broker asked to relay that
 * cannot fails to start rather than silently not relaying. */
static int open_relay(natter_broker *b, const nt_addr *main_addr,
                      const natter_broker_config *cfg) {
  nt_relay_config rc;
  char err[300], addrstr[NT_ADDR_STRLEN];
  uint16_t port = nt_endpoint_port(b->ep);
  memset(&rc, 0, sizeof(rc));
  rc.bind = *main_addr;
  rc.dual_stack = b->dual_stack;
  nt_addr_set_port((struct sockaddr *)&rc.bind.ss,
                   port <= 65533 ? (uint16_t)(port + 2) : 0);
  rc.rate = cfg->relay_rate;
  rc.total = cfg->relay_total;
  rc.log = &b->log;
  int rv = nt_relay_new(&b->relay, b->base, &rc, err, sizeof(err));
  if (rv != 0) {
    nt_error(&b->log, "broker: %s", err);
    return rv;
  }
  nt_addr_set_port((struct sockaddr *)&rc.bind.ss, nt_relay_port(b->relay));
  nt_info(&b->log,
          "relaying for peers that cannot punch a hole on %s (UDP): at most "
          "%llu bytes/s and %llu bytes per client",
          nt_addr_str((struct sockaddr *)&rc.bind.ss, addrstr),
          (unsigned long long)cfg->relay_rate,
          (unsigned long long)cfg->relay_total);
  return 0;
}

/* ---- the registry's upkeep and a closed broker's settings ---- */

/* Records that every checked-in client is here now, so that no name in
 * use ever looks idle. */
static void touch_checked_in(natter_broker *b, int64_t now) {
  char err[300];
  bclient *c;
  TAILQ_FOREACH(c, &b->clients, link) {
    if (c->checked_in &&
        nt_registry_touch(b->registry, c->name, now, err, sizeof(err)) != 0) {
      nt_warn(&b->log, "registry: %s", err);
      return;
    }
  }
}

static void flushed(const nt_registry_result *res, void *arg) {
  natter_broker *b = arg;
  b->flush_req = NULL;
  if (res->rv != 0) {
    nt_warn(&b->log, "registry: %s (retrying later)", res->err);
  }
}

static void flush_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  char err[300];
  (void)fd;
  (void)what;
  touch_checked_in(b, (int64_t)time(NULL));
  if (!b->flush_req && nt_registry_flush(b->registry, flushed, b, &b->flush_req,
                                         err, sizeof(err)) != 0) {
    nt_warn(&b->log, "registry: %s (retrying later)", err);
  }
}

/* Batches keep each request short; a large backlog goes over a few
 * rounds, at most this many per run of the timer. */
#define BROKER_EXPIRE_ROUNDS 10

static void expire_round(natter_broker *b);

static void expired(const nt_registry_result *res, void *arg) {
  natter_broker *b = arg;
  b->expire_req = NULL;
  if (res->rv != 0) {
    nt_warn(&b->log, "registry: %s (retrying later)", res->err);
  } else {
    b->expired += res->removed;
    if (res->removed >= NT_REGISTRY_EXPIRE_BATCH &&
        ++b->expire_rounds < BROKER_EXPIRE_ROUNDS) {
      expire_round(b);
      return;
    }
  }
  if (b->expired > 0) {
    nt_info(&b->log, "released %zu name%s unused for %lld s", b->expired,
            b->expired == 1 ? "" : "s", (long long)b->name_expiry_s);
  }
}

static void expire_round(natter_broker *b) {
  char err[300];
  if (nt_registry_expire(b->registry, (int64_t)time(NULL), b->name_expiry_s,
                         expired, b, &b->expire_req, err, sizeof(err)) != 0) {
    nt_warn(&b->log, "registry: %s (retrying later)", err);
  }
}

static void expire_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  (void)fd;
  (void)what;
  if (b->expire_req) {
    return; /* the last run is still going */
  }
  touch_checked_in(b, (int64_t)time(NULL));
  b->expire_rounds = 0;
  b->expired = 0;
  expire_round(b);
}

/* Opens the registry, reads the token and the admitted keys, starts the
 * timers. Returns 0 or a NATTER_ERR_* (logged). */
static int broker_security_new(natter_broker *b,
                               const natter_broker_config *cfg) {
  char err[600], warn[300];
  int rv;

  if (cfg->token && cfg->token_file) {
    nt_error(&b->log, "give the broker token once: as text or as a file");
    return NATTER_ERR_INVALID;
  }
  if (cfg->token_file) {
    rv = nt_token_read_file(b->token, sizeof(b->token), cfg->token_file, warn,
                            sizeof(warn), err, sizeof(err));
    if (rv != 0) {
      nt_error(&b->log, "%s", err);
      return rv;
    }
    if (warn[0]) {
      nt_warn(&b->log, "%s", warn);
    }
    b->token_len = strlen(b->token);
  } else if (cfg->token) {
    rv = nt_token_check(cfg->token, strlen(cfg->token), "the broker token", err,
                        sizeof(err));
    if (rv != 0) {
      nt_error(&b->log, "%s", err);
      return rv;
    }
    snprintf(b->token, sizeof(b->token), "%s", cfg->token);
    b->token_len = strlen(b->token);
  }
  if (cfg->admitted_keys) {
    rv = nt_keylist_load(&b->admitted, cfg->admitted_keys, err, sizeof(err));
    if (rv != 0) {
      nt_error(&b->log, "%s", err);
      return rv;
    }
  }
  /* A file path or a URI (registry.h); "" keeps its old meaning. */
  const char *where = cfg->registry;
  if (where && where[0] == '\0') {
    where = "memory:";
  } else if (!where) {
    if (nt_default_registry_path(b->registry_path, sizeof(b->registry_path)) !=
        0) {
      nt_error(&b->log, "cannot find a place for the name registry: set "
                        "HOME or STATE_DIRECTORY, or use -registry FILE");
      return NATTER_ERR_REGISTRY;
    }
    where = b->registry_path;
  }
  rv = nt_registry_open(&b->registry, b->base, where, err, sizeof(err));
  if (rv != 0) {
    nt_error(&b->log, "%s", err);
    return rv == NATTER_ERR_NOMEM ? rv : NATTER_ERR_REGISTRY;
  }
  /* For the log: the file, or "" for memory. */
  if (strcmp(nt_registry_backend(b->registry), "sqlite") != 0) {
    b->registry_path[0] = '\0';
  } else if (where != b->registry_path) {
    const nt_registry_ops *ops;
    const char *path = where;
    (void)nt_registry_parse_location(where, &ops, &path, NULL, 0);
    snprintf(b->registry_path, sizeof(b->registry_path), "%s", path);
  }
  b->name_expiry_s = cfg->name_expiry_s;
  b->flush_ev = event_new(b->base, -1, EV_PERSIST, flush_cb, b);
  b->expire_ev = event_new(b->base, -1, EV_PERSIST, expire_cb, b);
  if (!b->flush_ev || !b->expire_ev) {
    return NATTER_ERR_NOMEM;
  }
  struct timeval flush_tv = {BROKER_FLUSH_S, 0};
  event_add(b->flush_ev, &flush_tv);
  if (b->name_expiry_s > 0) {
    int64_t every = b->name_expiry_s / 4;
    struct timeval tv = {every < 1                     ? 1
                         : every > BROKER_EXPIRE_MAX_S ? BROKER_EXPIRE_MAX_S
                                                       : (time_t)every,
                         0};
    event_add(b->expire_ev, &tv);
    expire_cb(-1, 0, b); /* what expired while the broker was down */
  }
  return 0;
}

static void broker_security_free(natter_broker *b) {
  if (b->flush_ev) {
    event_free(b->flush_ev);
  }
  if (b->expire_ev) {
    event_free(b->expire_ev);
  }
  if (b->registry) {
    bclient *c;
    /* The requests go with the registry: none may be cancelled later. */
    TAILQ_FOREACH(c, &b->clients, link) {
      nt_registry_cancel(c->binding.req);
      c->binding.req = NULL;
    }
    nt_registry_cancel(b->flush_req);
    nt_registry_cancel(b->expire_req);
    b->flush_req = b->expire_req = NULL;
    touch_checked_in(b, (int64_t)time(NULL));
  }
  nt_registry_close(b->registry); /* flushes */
  nt_keylist_free(b->admitted);
  memset(b->token, 0, sizeof(b->token));
}

/* One line at start: where names live, and who may check in. */
static void log_security(natter_broker *b) {
  char expiry[64] = "names never expire";
  if (b->name_expiry_s > 0) {
    if (b->name_expiry_s % 86400 == 0) {
      snprintf(expiry, sizeof(expiry), "unused names expire after %lld d",
               (long long)(b->name_expiry_s / 86400));
    } else {
      snprintf(expiry, sizeof(expiry), "unused names expire after %lld s",
               (long long)b->name_expiry_s);
    }
  }
  nt_info(&b->log, "name registry: %s (%s)",
          b->registry_path[0] ? b->registry_path
                              : "in memory, lost when the broker stops",
          expiry);
  if (b->token_len || b->admitted) {
    nt_info(&b->log, "closed broker: clients need %s%s%s",
            b->token_len ? "the token" : "",
            b->token_len && b->admitted ? " and " : "",
            b->admitted ? "a key from the admitted-keys file" : "");
  } else {
    nt_info(&b->log, "open broker: any client may check in (close it with "
                     "-token-file or -admitted-keys)");
  }
}
static void start_status_page(natter_broker *b);

int natter_broker_new_versioned(natter_broker **pbroker,
                                struct event_base *base, int config_version,
                                const natter_broker_config *caller_cfg) {
  char err[512], path[1024];
  char addrstr[NT_ADDR_STRLEN];
  nt_endpoint_config epcfg;
  natter_broker_config full, *cfg = &full;

  if (!pbroker) {
    return NATTER_ERR_INVALID;
  }
  *pbroker = NULL;
  if (!base || nt_broker_config_load(&full, config_version, caller_cfg) != 0 ||
      !cfg->listen) {
    return NATTER_ERR_INVALID;
  }
  natter_broker *b = calloc(1, sizeof(*b));
  if (!b) {
    return NATTER_ERR_NOMEM;
  }
  b->map_fd = -1;
  b->base = base;
  b->started_ns = nt_monotonic_ns();
  TAILQ_INIT(&b->clients);
  b->log.fn = cfg->log;
  b->log.level = cfg->log_level;
  b->log.user_data = cfg->user_data;

  memset(&epcfg, 0, sizeof(epcfg));
  if (nt_addr_parse(&epcfg.bind, cfg->listen, "0.0.0.0", err, sizeof(err)) !=
      0) {
    nt_error(&b->log, "bad broker address: %s", err);
    free(b);
    return NATTER_ERR_INVALID;
  }
  int rv;
  if (cfg->identity_file && cfg->identity_file[0] == '\0') {
    rv = nt_identity_new_ephemeral(&b->identity, err, sizeof(err));
  } else {
    const char *file = cfg->identity_file;
    if (!file) {
      if (nt_default_key_path(path, sizeof(path), "broker.key") != 0) {
        nt_error(&b->log, "cannot find a home directory for the broker key: "
                          "set HOME or use -identity FILE");
        free(b);
        return NATTER_ERR_IDENTITY;
      }
      file = path;
    }
    rv = nt_identity_load_or_create(&b->identity, file, err, sizeof(err));
  }
  if (rv != 0) {
    nt_error(&b->log, "%s", err);
    free(b);
    return NATTER_ERR_IDENTITY;
  }
  uint8_t seed[NT_HASHMAP_SEED_LEN * 2];
  if (nt_random_bytes(seed, sizeof(seed)) != 0) {
    nt_error(&b->log, "broker: cannot get random bytes");
    nt_identity_free(b->identity);
    free(b);
    return NATTER_ERR_INVALID;
  }
  nt_hashmap_init(&b->checked_in, seed);
  nt_sources_init(&b->sources, seed + NT_HASHMAP_SEED_LEN);
  b->loopback = nt_addr_is_loopback((struct sockaddr *)&epcfg.bind.ss);
  /* ":PORT" (no host) is every address of both families; "0.0.0.0:PORT"
   * and "[::]:PORT" are that family only, as given. */
  b->dual_stack = cfg->listen[0] == ':';
  b->max_clients = cfg->max_clients ? cfg->max_clients : 10000;
  b->max_pending = cfg->max_pending ? cfg->max_pending : 512;
  b->max_per_source = cfg->max_per_source ? cfg->max_per_source : 32;
  rv = broker_security_new(b, cfg);
  if (rv != 0) {
    broker_security_free(b);
    nt_identity_free(b->identity);
    free(b);
    return rv;
  }
  epcfg.identity = b->identity;
  epcfg.callbacks = &broker_ep_callbacks;
  epcfg.accept_h3 = broker_accept_h3;
  epcfg.user_data = b;
  epcfg.log = &b->log;
  epcfg.handshake_timeout_ms = 5000;
  epcfg.idle_timeout_ms = 30000;
  epcfg.keepalive_ms = 0; /* clients keep their own mappings alive */
  epcfg.retry_above_per_s = cfg->retry_above_per_s;
  epcfg.small_packets = 1; /* control messages only: small and many */
  epcfg.rcvbuf_bytes = 32 * 1024 * 1024; /* ~25,000 Initials of a storm */
  epcfg.dual_stack = b->dual_stack;
  rv = nt_endpoint_new(&b->ep, base, &epcfg, err, sizeof(err));
  if (rv != 0) {
    nt_error(&b->log, "broker: %s", err);
    broker_security_free(b);
    nt_identity_free(b->identity);
    free(b);
    return rv;
  }
  nt_addr_set_port((struct sockaddr *)&epcfg.bind.ss, nt_endpoint_port(b->ep));
  open_mapping_port(b, &epcfg.bind);
  if (cfg->relay) {
    rv = open_relay(b, &epcfg.bind, cfg);
    if (rv != 0) {
      nt_endpoint_free(b->ep);
      broker_security_free(b);
      nt_identity_free(b->identity);
      free(b);
      return rv;
    }
  }
  start_status_page(b);
  nt_fingerprint_hex(nt_identity_fingerprint(b->identity), b->fingerprint_hex);
  int both = b->dual_stack && nt_endpoint_family(b->ep) == AF_INET6;
  if (both) {
    snprintf(addrstr, sizeof(addrstr), "[::]:%u", nt_endpoint_port(b->ep));
  } else {
    nt_addr_str((struct sockaddr *)&epcfg.bind.ss, addrstr);
  }
  nt_info(&b->log, "broker listening on %s (UDP%s), key %s", addrstr,
          both ? ", IPv4 and IPv6" : "", b->fingerprint_hex);
  log_security(b);
  *pbroker = b;
  return 0;
}

void natter_broker_free(natter_broker *b) {
  if (!b) {
    return;
  }
  nt_metrics_free(b->metrics);
  nt_endpoint_free(b->ep); /* frees connections without callbacks */
  nt_h3_server_free(b->h3);
  nt_relay_free(b->relay);
  if (b->map_ev) {
    event_free(b->map_ev);
  }
  if (b->map_fd >= 0) {
    close(b->map_fd);
  }
  broker_security_free(b); /* before the clients: their names are touched */
  bclient *c;
  while ((c = TAILQ_FIRST(&b->clients)) != NULL) {
    client_free(b, c);
  }
  nt_sources_clear(&b->sources);
  nt_hashmap_clear(&b->checked_in);
  nt_identity_free(b->identity);
  free(b);
}

uint16_t natter_broker_port(const natter_broker *b) {
  return b ? nt_endpoint_port(b->ep) : 0;
}

const char *natter_broker_fingerprint(const natter_broker *b) {
  return b ? b->fingerprint_hex : "";
}

int natter_broker_get_stats_versioned(const natter_broker *b, int stats_version,
                                      natter_broker_stats *out) {
  natter_broker_stats full, *stats = &full;
  size_t len = nt_broker_stats_len(stats_version);
  if (!out || !len) {
    return NATTER_ERR_INVALID;
  }
  memset(stats, 0, sizeof(*stats));
  if (!b) {
    memcpy(out, stats, len);
    return NATTER_ERR_INVALID;
  }
  nt_endpoint_traffic(b->ep, &stats->bytes_received, &stats->bytes_sent);
  stats->bytes_received += b->map_rx;
  stats->bytes_sent += b->map_tx;
  stats->clients = nt_hashmap_count(&b->checked_in);
  stats->introductions = b->introductions;
  nt_relay_stats rs;
  nt_relay_get_stats(b->relay, &rs);
  stats->relayed_bytes = rs.relayed;
  stats->relay_bytes_received = rs.rx;
  stats->relay_bytes_sent = rs.tx;
  stats->relay_channels = rs.channels;
  memcpy(out, stats, len);
  return 0;
}

/* ---- status: the getters behind metrics, status pages and embedders ---- */

static int bclient_mapping(const bclient *c) {
  switch (c->mapping) {
  case NATTER__NAT_MAPPING__MAPPING_ENDPOINT_INDEPENDENT:
    return NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT;
  case NATTER__NAT_MAPPING__MAPPING_PER_DESTINATION:
    return NATTER_NAT_MAPPING_SYMMETRIC;
  default:
    return NATTER_NAT_MAPPING_UNKNOWN;
  }
}

int natter_broker_get_status_versioned(const natter_broker *b,
                                       int status_version,
                                       natter_broker_status *out) {
  natter_broker_status full, *st = &full;
  size_t len = nt_broker_status_len(status_version);
  if (!out || !len) {
    return NATTER_ERR_INVALID;
  }
  memset(st, 0, sizeof(*st));
  if (!b) {
    memcpy(out, st, len);
    return NATTER_ERR_INVALID;
  }
  st->uptime_ms = (nt_monotonic_ns() - b->started_ns) / 1000000;
  st->connections = b->nclients;
  st->clients = nt_hashmap_count(&b->checked_in);
  const bclient *c;
  TAILQ_FOREACH(c, &b->clients, link) {
    if (c->checked_in) {
      st->clients_by_mapping[bclient_mapping(c)]++;
    }
  }
  st->check_ins = b->check_ins;
  st->introductions = b->introductions;
  st->relayed_bytes = 0;
  nt_endpoint_traffic(b->ep, &st->bytes_received, &st->bytes_sent);
  st->bytes_received += b->map_rx;
  st->bytes_sent += b->map_tx;
  st->packets_dropped = nt_endpoint_dropped(b->ep);
  st->status_requests = b->status_requests;
  memcpy(out, st, len);
  return 0;
}

int natter_broker_foreach_client(const natter_broker *b,
                                 natter_broker_client_fn fn, void *user_data) {
  char hex[NT_FINGERPRINT_HEX_LEN + 1], addr[NT_ADDR_STRLEN];
  if (!b || !fn) {
    return NATTER_ERR_INVALID;
  }
  const bclient *c;
  TAILQ_FOREACH(c, &b->clients, link) {
    if (!c->checked_in || !nt_conn_peer_fingerprint(c->conn)) {
      continue;
    }
    natter_broker_client_info info;
    nt_conn_path_stats ps;
    memset(&info, 0, sizeof(info));
    nt_fingerprint_hex(nt_conn_peer_fingerprint(c->conn), hex);
    nt_conn_get_path_stats(c->conn, &ps);
    info.name = c->name;
    info.fingerprint = hex;
    info.address = nt_addr_str(nt_conn_remote_addr(c->conn), addr);
    info.mapping = bclient_mapping(c);
    info.listening = c->listen;
    info.connected_unix_ms = c->checked_in_unix_ms;
    info.last_seen_unix_ms =
        nt_unix_ms_of_monotonic(nt_conn_last_rx_ns(c->conn));
    info.bytes_received = ps.bytes_received;
    info.bytes_sent = ps.bytes_sent;
    fn(&info, user_data);
  }
  return 0;
}

int natter_broker_add_admin(natter_broker *b, const char *fingerprint) {
  return b ? nt_admins_add(&b->admins, fingerprint) : NATTER_ERR_INVALID;
}

static void broker_render_metrics(struct evbuffer *out, void *ud) {
  natter_broker *b = ud;
  b->status_requests++;
  nt_render_broker_metrics(out, b);
}

int natter_broker_metrics_listen(natter_broker *b, const char *addr) {
  char err[300];
  if (!b || !addr || b->metrics) {
    return NATTER_ERR_INVALID;
  }
  int rv = nt_metrics_new(&b->metrics, b->base, addr, broker_render_metrics, b,
                          err, sizeof(err));
  if (rv != 0) {
    nt_error(&b->log, "%s", err);
    return rv;
  }
  nt_info(&b->log, "Prometheus metrics on %s (TCP port %u, GET /metrics)", addr,
          nt_metrics_port(b->metrics));
  return 0;
}

uint16_t natter_broker_metrics_port(const natter_broker *b) {
  return b ? nt_metrics_port(b->metrics) : 0;
}

/* ---- HTTP/3 status page ---- */

/* GET /status: anyone gets the aggregate counts (a broker is public, and
 * so are how many use it); a caller whose certificate key is an -admin
 * key also gets every client's row. JSON, or the table natter -status
 * prints when the request accepts text/plain. */
static int broker_render_status(struct evbuffer *body, const char *path,
                                const char *accept, const uint8_t *peer_fp,
                                const char **content_type, void *ud) {
  natter_broker *b = ud;
  size_t plen = strcspn(path, "?");
  b->status_requests++;
  if (plen != 7 || strncmp(path, "/status", 7) != 0) {
    *content_type = "text/plain; charset=utf-8";
    evbuffer_add_printf(body, "not found: try /status\n");
    return 404;
  }
  /* The broker's own key (natter -status on its machine) and -admin
   * keys see everything. */
  int detailed =
      nt_admins_contains(&b->admins, peer_fp) ||
      (peer_fp && memcmp(peer_fp, nt_identity_fingerprint(b->identity),
                         NT_FINGERPRINT_LEN) == 0);
  if (strstr(accept, "text/plain")) {
    *content_type = "text/plain; charset=utf-8";
    nt_render_broker_text(body, b, detailed);
  } else {
    *content_type = "application/json";
    nt_render_broker_json(body, b, detailed);
  }
  return 200;
}

static int broker_accept_h3(nt_endpoint *ep, const struct sockaddr *from,
                            nt_accept_params *params, void *ud) {
  natter_broker *b = ud;
  (void)ep;
  (void)from;
  return b->h3 ? nt_h3_server_accept(b->h3, params) : 0;
}

static void start_status_page(natter_broker *b) {
  if (nt_h3_server_new(&b->h3, &b->log, broker_render_status, b) != 0) {
    nt_warn(&b->log, "no HTTP/3 status page: out of memory");
  }
}

/* ---- moves and restarts ----
 *
 * Peers hold their connection across address changes and punch again
 * through us; for that they need our current view of both sides. */

static int was_introduced(const bclient *c, const char *name) {
  for (size_t i = 0; i < c->nintroduced; i++) {
    if (strcmp(c->introduced[i], name) == 0) {
      return 1;
    }
  }
  return 0;
}

/* Puts |name| first in |c|'s record, dropping the oldest when full. */
static void remember(bclient *c, const char *name) {
  size_t i, n = c->nintroduced;
  for (i = 0; i < n; i++) {
    if (strcmp(c->introduced[i], name) == 0) {
      break;
    }
  }
  if (i == n) {
    i = n < BROKER_MAX_INTRODUCED ? n : BROKER_MAX_INTRODUCED - 1;
    if (n < BROKER_MAX_INTRODUCED) {
      c->nintroduced++;
    }
  }
  memmove(c->introduced[1], c->introduced[0], i * sizeof(c->introduced[0]));
  snprintf(c->introduced[0], sizeof(c->introduced[0]), "%s", name);
}

static void note_introduced(bclient *a, bclient *b) {
  remember(a, b->name);
  remember(b, a->name);
}

/* Both sides of a pair that met get a fresh nonce and each other's
 * current addresses, to punch again for the connection they have. */
static void reintroduce(bclient *a, bclient *b) {
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  if (nt_random_bytes(nonce, sizeof(nonce)) != 0) {
    return;
  }
  a->broker->introductions++;
  send_introduction(b, a, 0, nonce, 1, NULL, 0);
  send_introduction(a, b, 0, nonce, 1, NULL, 0);
}

static void handle_refresh_request(bclient *c,
                                   const Natter__ConnectRequest *r) {
  natter_broker *b = c->broker;
  bclient *peer = nt_name_valid(r->peer) ? find_client(b, r->peer) : NULL;
  if (!peer || !was_introduced(c, peer->name)) {
    send_connect_result(c, r->request_id, NATTER__CODE__PEER_UNKNOWN,
                        "no client with that name was introduced to you");
    return;
  }
  nt_info(&b->log, "introducing %s to %s again (%s hears nothing)", c->name,
          peer->name, c->name);
  reintroduce(c, peer);
}

static void notify_restart(bclient *to, bclient *about) {
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__PeerNotice n = NATTER__PEER_NOTICE__INIT;
  n.peer = about->name;
  n.peer_key.data = (uint8_t *)nt_conn_peer_fingerprint(about->conn);
  n.peer_key.len = NT_FINGERPRINT_LEN;
  n.kind = NATTER__PEER_NOTICE__KIND__RESTARTED;
  msg.msg_case = NATTER__CONTROL__MSG_PEER_NOTICE;
  msg.peer_notice = &n;
  send_control(to, &msg);
}

/* |c| checked in; |old| is the session it replaces, if any. A new
 * session (the process restarted) is news to every peer it met: their
 * connections to it are dead. The same session from a new address (its
 * broker connection was lost) means its peers should punch again. */
static void note_check_in(bclient *c, bclient *old, const Natter__CheckIn *in) {
  natter_broker *b = c->broker;
  if (in->session.len == BROKER_SESSION_LEN) {
    memcpy(c->session, in->session.data, BROKER_SESSION_LEN);
  }
  if (!old) {
    return;
  }
  static const uint8_t none[BROKER_SESSION_LEN];
  int restarted = memcmp(c->session, none, sizeof(none)) == 0 ||
                  memcmp(c->session, old->session, sizeof(c->session)) != 0;
  int moved = !nt_addr_equal(nt_conn_remote_addr(c->conn),
                             nt_conn_remote_addr(old->conn));
  memcpy(c->introduced, old->introduced, sizeof(c->introduced));
  c->nintroduced = old->nintroduced;
  for (size_t i = 0; i < c->nintroduced; i++) {
    bclient *peer = find_client(b, c->introduced[i]);
    if (!peer || peer == c || peer->dead) {
      continue;
    }
    if (restarted) {
      nt_info(&b->log, "telling %s that %s restarted", peer->name, c->name);
      notify_restart(peer, c);
    } else if (moved) {
      reintroduce(c, peer);
    }
  }
}

/* The client's broker connection moved (its NAT rebound): its peers,
 * whose packets may now be filtered, punch again. */
static void client_moved(nt_conn *conn, void *ud) {
  bclient *c = ud;
  natter_broker *b = c->broker;
  char addr[NT_ADDR_STRLEN];
  uint64_t now = nt_monotonic_ns();
  (void)conn;
  if (!c->checked_in || c->dead) {
    return;
  }
  nt_info(&b->log, "%s moved to %s", c->name,
          nt_addr_str(nt_conn_remote_addr(c->conn), addr));
  if (c->moved_ns && now - c->moved_ns < BROKER_MOVE_NOTICE_NS) {
    return;
  }
  c->moved_ns = now;
  for (size_t i = 0; i < c->nintroduced; i++) {
    bclient *peer = find_client(b, c->introduced[i]);
    if (peer && peer != c && !peer->dead) {
      reintroduce(c, peer);
    }
  }
}
