/* The broker's session with one connected client: the control protocol
 * (check-in, connect requests and introductions, checks, NAT reports),
 * the client's deadline and rate limit, and what its peers hear when it
 * moves or restarts. The messages themselves are control.h's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/broker_internal.h"

#define NOT_AUTHORIZED "not authorized by the broker"

/* Limits against one host holding the broker (doc/operations.md,
 * "Limits"); each is answered with a CONNECTION_CLOSE that names it,
 * never with silence. */
#define BROKER_CHECKIN_DEADLINE_S 10 /* from the first packet to CheckIn */
#define BROKER_CTL_RATE 20           /* control messages per second ... */
#define BROKER_CTL_BURST 40          /* ... per client, with this burst */
/* Bytes a client may send after its CheckIn while the registry binds its
 * name: one message of the largest size. A client that waits for the
 * answer, as natter's does, sends none. */
#define BROKER_HELD_MAX NT_WIRE_MAX_MSG
/* A client whose address changes is re-introduced to its peers at most
 * this often. */
#define BROKER_MOVE_NOTICE_NS (2 * 1000000000ull)
/* Connectivity checks awaiting the checked peer's report (at most
 * BROKER_MAX_CHECKS at once): this many per requester key (across its
 * sessions) and per source address (IPv6: /64), each for this long; the
 * report goes to the requester only. A check session may start checks
 * for BROKER_CHECK_SESSION_NS after its check-in, so that no slot is
 * renewed past twice the TTL without a new session (a new connection,
 * counted against -max-per-address). natter -check needs one check of
 * at most connect timeout + 10 s. */
#define BROKER_MAX_CHECKS_PER_KEY 4
#define BROKER_MAX_CHECKS_PER_SOURCE 8
#define BROKER_CHECK_TTL_S 120
#define BROKER_CHECK_SESSION_S 240 /* twice the TTL */
#define BROKER_CHECK_TTL_NS (BROKER_CHECK_TTL_S * 1000000000ull)
#define BROKER_CHECK_SESSION_NS (BROKER_CHECK_SESSION_S * 1000000000ull)

static void client_closed(nt_conn *conn, nt_close_reason reason,
                          uint64_t app_code, const char *message, void *ud);

#define STR_(x) #x
#define STR(x) STR_(x)
static void client_established(nt_conn *conn, void *ud);
static void client_stream_opened(nt_conn *conn, nt_stream *s, void *ud);
static void client_moved(nt_conn *conn, void *ud);
static void note_check_in(bclient *c, bclient *old, const nt_check_in *in);
static void note_introduced(bclient *a, bclient *b);
static void handle_refresh_request(bclient *c, const nt_connect_request *r);
static bcheck *check_slot(natter_broker *b, const bclient *c);

const nt_conn_callbacks nt_bclient_conn_callbacks = {
    client_established, client_closed, client_stream_opened, NULL, NULL,
    client_moved, NULL};

static void reject(bclient *c, nt_control_code code, const char *why) {
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

/* |sa| as an nt_addr. */
static nt_addr addr_of(const struct sockaddr *sa) {
  nt_addr a;
  memset(&a, 0, sizeof(a));
  a.len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                    : sizeof(struct sockaddr_in);
  memcpy(&a.ss, sa, a.len);
  return a;
}

static void send_control(bclient *c, const nt_control *msg) {
  uint8_t frame[NT_CONTROL_FRAME_MAX];
  size_t len = nt_control_encode(frame, msg);
  if (len == 0 || nt_stream_write(c->ctl, frame, len) != 0) {
    reject(c, NT_CODE_INTERNAL, "cannot queue control message");
  }
}

void nt_bclient_send(bclient *c, const nt_control *msg) {
  send_control(c, msg);
}

static void send_check_in_result(bclient *c, nt_control_code code,
                                 const char *message) {
  nt_control msg = {.type = NT_CONTROL_CHECK_IN_RESULT};
  nt_check_in_result *res = &msg.u.check_in_result;

  res->code = code;
  snprintf(res->message, sizeof(res->message), "%s", message);
  if (code == NT_CODE_OK) {
    c->broker->check_ins++;
    c->checked_in_unix_ms = nt_unix_ms();
  }
  res->observed = addr_of(nt_conn_validated_addr(c->conn));
  res->mapping_port = c->broker->map_port;
  res->closed = c->broker->token_len > 0 || c->broker->admitted != NULL;
  send_control(c, &msg);
}

/* A closed broker's door: the token and the admitted keys. Returns 1
 * when |c| may check in as |name|; else answers "not authorized" (the same
 * words whatever failed, so a stranger learns nothing about names) and
 * logs why. */
static int check_authorized(bclient *c, const nt_check_in *in,
                            const uint8_t *key) {
  natter_broker *b = c->broker;
  char hex[NT_FINGERPRINT_HEX_LEN + 1], addr[NT_ADDR_STRLEN];
  const char *why = NULL;

  if (b->token_len > 0) {
    const char *t = in->token;
    if (in->token_invalid ||
        !nt_token_equal(b->token, b->token_len, t, strlen(t))) {
      why = t[0] || in->token_invalid ? "wrong token" : "no token";
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
  send_check_in_result(c, NT_CODE_UNAUTHORIZED, NOT_AUTHORIZED);
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
    send_check_in_result(c, NT_CODE_NAME_TAKEN,
                         "name is bound to another key at this broker");
    return;
  }
  if (strstr(err, NT_REGISTRY_UNAVAILABLE)) {
    /* A shared registry's database is away: it logged that once, and a
     * flood of new names must not flood the log. */
    unsigned held;
    if (nt_log_gate_pass(&b->registry_down_gate, nt_monotonic_ns(), &held)) {
      nt_error(&b->log, "registry: cannot bind \"%s\": %s%s", name, err,
               held ? " (and more like it)" : "");
    }
    send_check_in_result(c, NT_CODE_INTERNAL, NT_REGISTRY_UNAVAILABLE);
    return;
  }
  nt_error(&b->log, "registry: cannot bind \"%s\": %s", name, err);
  send_check_in_result(c, NT_CODE_INTERNAL,
                       strstr(err, "registry is full")
                           ? "broker is full (its name registry)"
                           : "broker registry unavailable");
}

static void finish_check_in(bclient *c, const uint8_t *key,
                            const nt_check_in *in);
static void read_held(bclient *c);

/* ---- the budget of new names ----
 *
 * A name not bound yet costs its source address and its key one token
 * each (BROKER_NEW_NAMES_BURST saved, new_names_per_hour more an hour),
 * so one host cannot fill the registry; a name already bound costs
 * nothing and is never refused for it. The tokens are taken before the
 * bind (two binds in flight cannot both spend the last one) and given
 * back when the name was not new after all. */

static int new_name_pay(bclient *c, const uint8_t *key) {
  natter_broker *b = c->broker;
  uint8_t src[NT_SOURCE_KEY_MAX];
  size_t srclen = nt_source_key((struct sockaddr *)&c->source.ss, src);
  uint64_t now = nt_monotonic_ns();

  if (b->admitted) {
    /* Each admitted key has its one name: nothing to squat. */
    return 0;
  }
  if (!nt_budget_take(&b->new_names_by_source, src, srclen, now)) {
    return 0;
  }
  if (!nt_budget_take(&b->new_names_by_key, key, NT_FINGERPRINT_LEN, now)) {
    nt_budget_give_back(&b->new_names_by_source, src, srclen);
    return 0;
  }
  return 1;
}

static void new_name_refund(bclient *c) {
  natter_broker *b = c->broker;
  uint8_t src[NT_SOURCE_KEY_MAX];
  size_t srclen = nt_source_key((struct sockaddr *)&c->source.ss, src);

  nt_budget_give_back(&b->new_names_by_source, src, srclen);
  nt_budget_give_back(&b->new_names_by_key, nt_conn_peer_fingerprint(c->conn),
                      NT_FINGERPRINT_LEN);
  c->binding.paid = 0;
}

/* The budget was spent and |name| was not bound yet. */
static void new_name_refused(bclient *c, const char *name) {
  natter_broker *b = c->broker;
  char addr[NT_ADDR_STRLEN], msg[200];
  unsigned held;

  b->refused_new_names++;
  if (nt_log_gate_pass(&b->new_names_gate, nt_monotonic_ns(), &held)) {
    nt_warn(&b->log,
            "refused the new name \"%s\" from %s: its address or key used up "
            "its new names (%u an hour, -new-names-per-hour)%s",
            name, nt_addr_str(nt_conn_remote_addr(c->conn), addr),
            b->new_names_per_hour, held ? " (and more like it)" : "");
  }
  snprintf(msg, sizeof(msg),
           "too many new names from this address or key (limit %u an hour); "
           "use a name you have, or try later",
           b->new_names_per_hour);
  send_check_in_result(c, NT_CODE_REFUSED, msg);
}

/* The registry has decided on the name of a waiting check-in. */
static void name_bound(const nt_registry_result *res, void *user_data) {
  bclient *c = user_data;
  bclient_binding *w = &c->binding;
  nt_check_in in;
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
  int paid = w->paid;
  if (paid && !res->created) {
    new_name_refund(c); /* a name it had, or none at all */
  }
  if (res->rv == NATTER_ERR_PEER_UNKNOWN && !paid && !c->broker->admitted) {
    new_name_refused(c, w->name);
    read_held(c);
    return;
  }
  if (res->rv != 0) {
    bind_refused(c, w->name, res->rv, res->err, &res->entry);
    read_held(c);
    return;
  }
  memset(&in, 0, sizeof(in));
  in.protocol_version = NT_CONTROL_PROTOCOL_VERSION;
  memcpy(in.name, w->name, sizeof(in.name));
  memcpy(in.session, w->session, sizeof(in.session));
  in.diagnostic = w->diagnostic;
  in.listen = w->listen;
  in.no_relay = w->no_relay;
  in.reads_relay_address = w->reads_relay_address;
  finish_check_in(c, nt_conn_peer_fingerprint(c->conn), &in);
  read_held(c);
}

/* Asks the registry to bind |in->name| to |key|; the check-in goes on in
 * name_bound once the binding is stored, or is answered why not. On a
 * closed broker the admitted-keys file is the authority: an operator who
 * gave the name a new key there meant it, so the bind takes the name
 * over. */
static void bind_name(bclient *c, const nt_check_in *in, const uint8_t *key) {
  natter_broker *b = c->broker;
  bclient_binding *w = &c->binding;
  char err[300];

  memcpy(w->name, in->name, sizeof(w->name));
  memcpy(w->session, in->session, sizeof(w->session));
  w->diagnostic = in->diagnostic;
  w->listen = in->listen;
  w->no_relay = in->no_relay;
  w->reads_relay_address = in->reads_relay_address;
  /* A spent budget still binds a name the key has: it only refuses a new
   * one (name_bound). */
  w->paid = new_name_pay(c, key);
  unsigned flags = b->admitted ? NT_REGISTRY_BIND_TAKEOVER
                   : w->paid   ? 0
                               : NT_REGISTRY_BIND_EXISTING;
  int rv = nt_registry_bind(b->registry, in->name, key, (int64_t)time(NULL),
                            flags, name_bound, c, &w->req, err, sizeof(err));
  if (rv != 0) {
    if (w->paid) {
      new_name_refund(c);
    }
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
  send_check_in_result(c, NT_CODE_OK, "");
}

static void handle_check_in(bclient *c, const nt_check_in *in) {
  natter_broker *b = c->broker;
  const uint8_t *key = nt_conn_peer_fingerprint(c->conn);

  if (c->checked_in || c->binding.req) {
    reject(c, NT_CODE_BAD_REQUEST, "checked in twice");
    return;
  }
  if (in->protocol_version != NT_CONTROL_PROTOCOL_VERSION) {
    char why[NT_CONTROL_TEXT_MAX + 1];
    /* Say which side to upgrade: an older natter prints this as is. */
    snprintf(why, sizeof(why),
             "protocol version not supported by this broker: the client "
             "speaks %u, the broker %d; upgrade natter on the %s",
             in->protocol_version, NT_CONTROL_PROTOCOL_VERSION,
             in->protocol_version < NT_CONTROL_PROTOCOL_VERSION ? "client"
                                                                : "broker");
    send_check_in_result(c, NT_CODE_BAD_REQUEST, why);
    return;
  }
  if (!nt_name_valid(in->name)) {
    send_check_in_result(c, NT_CODE_BAD_REQUEST,
                         "invalid name (use 1-63 of A-Z a-z 0-9 . _ -)");
    return;
  }
  /* Before anything about names: a refused client learns none. */
  if (!check_authorized(c, in, key)) {
    return;
  }
  c->nlocal = 0;
  for (size_t i = 0; i < in->nlocal; i++) {
    /* Peers will probe these: nothing that aims their probes at their own
     * host, or at a broadcast or multicast group. Both families are kept,
     * whichever one the client came in on: clients are dual-stack. */
    if (nt_candidate_acceptable((const struct sockaddr *)&in->local[i].ss,
                                b->loopback)) {
      c->local_addrs[c->nlocal++] = in->local[i];
    }
  }
  if (c->nlocal < in->nlocal_sent) {
    nt_debug(&b->log, "%s: %zu of %zu reported local addresses dropped",
             in->name, in->nlocal_sent - c->nlocal, in->nlocal_sent);
  }
  bind_name(c, in, key);
}

/* The rest of a check-in, once its name is bound to |key|. */
static void finish_check_in(bclient *c, const uint8_t *key,
                            const nt_check_in *in) {
  natter_broker *b = c->broker;

  c->reads_relay_address = in->reads_relay_address;
  if (in->diagnostic) {
    /* The key owns the name (bind_name), but the session takes nothing
     * from a client running under it: no table entry, no notices. */
    snprintf(c->name, sizeof(c->name), "%s", in->name);
    c->diagnostic = 1;
    c->check_session_ends_ns = nt_monotonic_ns() + BROKER_CHECK_SESSION_NS;
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
    send_check_in_result(c, NT_CODE_INTERNAL, "out of memory");
    return;
  }
  /* Same name, same key: the client came back (restart, new address);
   * the old session is stale. */
  note_check_in(c, old && old != c ? old : NULL, in);
  if (old && old != c) {
    old->checked_in = 0;
    old->dead = 1;
    nt_conn_close(old->conn, NT_CODE_OK, "replaced by a new session");
  }
  c->listen = in->listen;
  c->no_relay = in->no_relay;
  nt_registry_presence(b->registry, c->name, key, (int64_t)time(NULL), 1);
  checked_in(c, key, c->listen ? ", listening" : "");
}

static void send_connect_result(bclient *c, uint32_t request_id,
                                nt_control_code code, const char *message) {
  nt_control msg = {.type = NT_CONTROL_CONNECT_RESULT};
  msg.u.connect_result.request_id = request_id;
  msg.u.connect_result.code = code;
  snprintf(msg.u.connect_result.message, sizeof(msg.u.connect_result.message),
           "%s", message);
  send_control(c, &msg);
}

void nt_bclient_connect_result(bclient *c, uint32_t request_id,
                               nt_control_code code, const char *message) {
  if (!c->dead && c->ctl) {
    send_connect_result(c, request_id, code, message);
  }
}

nt_relay_party nt_bclient_relay_party(const bclient *c) {
  nt_relay_party p = {c->name, nt_conn_peer_fingerprint(c->conn),
                      nt_conn_validated_addr(c->conn), c};
  return p;
}

void nt_bclient_describe(const bclient *about, nt_introduction *intro) {
  snprintf(intro->name, sizeof(intro->name), "%s", about->name);
  memcpy(intro->key, nt_conn_peer_fingerprint(about->conn), NT_FINGERPRINT_LEN);
  /* Where |about| proved it receives (the handshake, or a validated
   * path), never an address a packet merely came from: a copy of its
   * packet from a spoofed source would aim |to|'s probes there
   * (doc/design.md, "Security model"). */
  intro->observed = addr_of(nt_conn_validated_addr(about->conn));
  memcpy(intro->local, about->local_addrs,
         about->nlocal * sizeof(about->local_addrs[0]));
  intro->nlocal = about->nlocal;
  intro->mapping = about->mapping;
  intro->mapped = about->mapped;
  /* Passed on as the client said: the peer probes it only on the IP
   * address the broker validated (doc/design.md, "Port mapping"). */
  intro->portmap = about->portmap;
  intro->portmap_method = about->portmap_method;
}

bclient *nt_bclient_find(natter_broker *b, const char *name) {
  return find_client(b, name);
}

/* Tells |to| everything it needs to reach |about|. */
static void send_introduction(bclient *to, bclient *about, uint32_t request_id,
                              const uint8_t *nonce, int refresh,
                              const uint8_t *relay_token, int check) {
  nt_control msg = {.type = NT_CONTROL_INTRODUCTION};
  nt_introduction *intro = &msg.u.introduction;

  nt_bclient_describe(about, intro);
  intro->request_id = request_id;
  intro->refresh = refresh;
  intro->check = check;
  memcpy(intro->nonce, nonce, NT_PUNCH_NONCE_LEN);
  if (relay_token) {
    memcpy(intro->relay_token, relay_token, NT_RELAY_TOKEN_LEN);
    intro->relay_port = nt_relay_port(to->broker->relay);
  }
  send_control(to, &msg);
}

static void handle_connect_request(bclient *c, const nt_connect_request *r) {
  natter_broker *b = c->broker;

  if (!c->checked_in || r->request_id == 0) {
    reject(c, NT_CODE_BAD_REQUEST, "connect request before check-in");
    return;
  }
  if (r->refresh && !c->diagnostic) {
    handle_refresh_request(c, r);
    return;
  }
  if (!r->check != !c->diagnostic) {
    send_connect_result(c, r->request_id, NT_CODE_BAD_REQUEST,
                        c->diagnostic
                            ? "a check session may only ask for checks"
                            : "checks come from check sessions only");
    return;
  }
  if (!nt_name_valid(r->peer)) {
    send_connect_result(c, r->request_id, NT_CODE_BAD_REQUEST,
                        "invalid peer name");
    return;
  }
  if (strcmp(r->peer, c->name) == 0) {
    send_connect_result(c, r->request_id, NT_CODE_BAD_REQUEST,
                        "a client cannot connect to itself");
    return;
  }
  bclient *peer = find_client(b, r->peer);
  if (!peer && nt_xintro_ask(c, r)) {
    return; /* another broker may hold it */
  }
  if (!peer) {
    nt_broker_note_intro(b, c, c->name, NULL, r->peer, NT_INTRO_UNKNOWN,
                         r->check, NULL);
    send_connect_result(c, r->request_id, NT_CODE_PEER_UNKNOWN,
                        "no client with that name is checked in");
    return;
  }
  if (!peer->listen) {
    nt_broker_note_intro(b, c, c->name, peer, peer->name,
                         NT_INTRO_NOT_LISTENING, r->check, NULL);
    send_connect_result(c, r->request_id, NT_CODE_PEER_NOT_LISTENING,
                        "the peer is checked in but not listening");
    return;
  }
  /* Nothing is spent on |c| before |peer| says its rules admit it. */
  nt_admission_ask(c, peer, r);
}

/* A relay channel for the pair, in case punching fails: 1 with both
 * tokens, or 0 (no relay, either side refuses relayed peers, or the
 * relay's budgets are spent). */
static int open_relay_channel(bclient *c, bclient *peer,
                              uint8_t tok_c[NT_RELAY_TOKEN_LEN],
                              uint8_t tok_peer[NT_RELAY_TOKEN_LEN]) {
  natter_broker *b = c->broker;
  nt_relay_party party_c = nt_bclient_relay_party(c),
                 party_peer = nt_bclient_relay_party(peer);
  return b->relay && !c->no_relay && !peer->no_relay &&
         nt_relay_open(b->relay, &party_c, &party_peer, tok_c, tok_peer) == 0;
}

void nt_bclient_introduce(bclient *c, bclient *peer, uint32_t request_id,
                          int check) {
  natter_broker *b = c->broker;
  uint8_t nonce[NT_PUNCH_NONCE_LEN];

  if (nt_random_bytes(nonce, sizeof(nonce)) != 0) {
    send_connect_result(c, request_id, NT_CODE_INTERNAL, "no randomness");
    return;
  }
  bcheck *chk = NULL;
  if (check && !(chk = check_slot(b, c))) {
    nt_broker_note_intro(b, c, c->name, peer, peer->name, NT_INTRO_RATE_LIMITED,
                         check, NULL);
    send_connect_result(c, request_id, NT_CODE_INTERNAL,
                        "the broker runs too many checks at once; try "
                        "again in a minute");
    return;
  }
  b->introductions++;
  uint8_t tok_c[NT_RELAY_TOKEN_LEN], tok_peer[NT_RELAY_TOKEN_LEN];
  int relayed = open_relay_channel(c, peer, tok_c, tok_peer);
  nt_broker_note_intro(b, c, c->name, peer, peer->name, NT_INTRO_INTRODUCED,
                       check, relayed ? tok_c : NULL);
  nt_info(&b->log, "introducing %s to %s%s%s", c->name, peer->name,
          check ? " for a check" : "", relayed ? " (relay channel open)" : "");
  if (chk) {
    memcpy(chk->nonce, nonce, sizeof(chk->nonce));
    chk->requester = c;
    chk->peer = peer;
    chk->expires_ns = nt_monotonic_ns() + BROKER_CHECK_TTL_NS;
  } else {
    note_introduced(c, peer);
  }
  /* The requester first: it probes the moment it hears, and the
   * listener's first probes then find it ready for them. */
  send_introduction(c, peer, request_id, nonce, 0, relayed ? tok_c : NULL, 0);
  send_introduction(peer, c, 0, nonce, 0, relayed ? tok_peer : NULL, check);
}

/* A free slot for a check by |c|, or NULL past the limits (logged, at
 * most once a second): BROKER_MAX_CHECKS_PER_KEY for its key,
 * BROKER_MAX_CHECKS_PER_SOURCE for its source address, none after its
 * session's BROKER_CHECK_SESSION_NS. Expired checks are forgotten
 * first. The slot comes back with its owner's source and key filled in;
 * it is taken once the caller sets its requester. */
static bcheck *check_slot(natter_broker *b, const bclient *c) {
  uint64_t now = nt_monotonic_ns();
  bcheck *free_slot = NULL;
  size_t by_key = 0, by_source = 0;
  uint8_t src[NT_SOURCE_KEY_MAX];
  size_t srclen = nt_source_key((const struct sockaddr *)&c->source.ss, src);
  const uint8_t *key = nt_conn_peer_fingerprint(c->conn);
  const char *why = NULL;
  char addr[NT_ADDR_STRLEN];
  unsigned held;

  for (size_t i = 0; i < BROKER_MAX_CHECKS; i++) {
    bcheck *k = &b->checks[i];
    if (k->requester && now >= k->expires_ns) {
      k->requester = k->peer = NULL;
    }
    if (!k->requester) {
      free_slot = free_slot ? free_slot : k;
      continue;
    }
    by_key += memcmp(k->key, key, NT_FINGERPRINT_LEN) == 0;
    by_source += k->sourcelen == srclen && memcmp(k->source, src, srclen) == 0;
  }
  if (c->check_session_ends_ns && now >= c->check_session_ends_ns) {
    why = "its check session is older than " STR(
        BROKER_CHECK_SESSION_S) " s (a new one may check again)";
  } else if (by_key >= BROKER_MAX_CHECKS_PER_KEY) {
    why = "its key has " STR(BROKER_MAX_CHECKS_PER_KEY) " checks under way";
  } else if (by_source >= BROKER_MAX_CHECKS_PER_SOURCE) {
    why = "its address has " STR(
        BROKER_MAX_CHECKS_PER_SOURCE) " checks under way";
  } else if (!free_slot) {
    why = "all " STR(BROKER_MAX_CHECKS) " check slots are taken";
  }
  if (why) {
    b->refused_checks++;
    if (nt_log_gate_pass(&b->checks_gate, now, &held)) {
      nt_warn(&b->log, "refused a check by %s from %s: %s%s", c->name,
              nt_addr_str((const struct sockaddr *)&c->source.ss, addr), why,
              held ? " (and more like it)" : "");
    }
    return NULL;
  }
  memcpy(free_slot->source, src, srclen);
  free_slot->sourcelen = srclen;
  memcpy(free_slot->key, key, NT_FINGERPRINT_LEN);
  return free_slot;
}

/* The checked peer's report: to the check's requester only, with the
 * reporter's name and address as we know them. Bounds: control.h; a
 * report of no check of ours is dropped. */
static void handle_check_report(bclient *c, const nt_check_side *report,
                                int malformed) {
  natter_broker *b = c->broker;
  bcheck *k = NULL;
  if (!c->checked_in || c->diagnostic) {
    reject(c, NT_CODE_BAD_REQUEST, "unexpected check report");
    return;
  }
  if (malformed) {
    reject(c, NT_CODE_BAD_REQUEST, "malformed check report");
    return;
  }
  for (size_t i = 0; i < BROKER_MAX_CHECKS; i++) {
    if (b->checks[i].peer == c &&
        memcmp(b->checks[i].nonce, report->nonce, NT_PUNCH_NONCE_LEN) == 0) {
      k = &b->checks[i];
      break;
    }
  }
  if (!k && nt_xintro_on_report(c, report)) {
    return;
  }
  if (!k) {
    nt_debug(&b->log, "%s: report of no check under way; dropped", c->name);
    return;
  }
  nt_control msg = {.type = NT_CONTROL_CHECK_REPORT};
  msg.u.check_report = *report;
  snprintf(msg.u.check_report.peer, sizeof(msg.u.check_report.peer), "%s",
           c->name);
  msg.u.check_report.observed = addr_of(nt_conn_validated_addr(c->conn));
  nt_info(&b->log, "%s reports on the check by %s", c->name,
          k->requester->name);
  send_control(k->requester, &msg);
  k->requester = k->peer = NULL;
}

/* The check awaiting |c|'s report with |nonce|, or NULL. */
static bcheck *check_of_report(natter_broker *b, const bclient *c,
                               const uint8_t *nonce) {
  for (size_t i = 0; i < BROKER_MAX_CHECKS; i++) {
    if (b->checks[i].peer == c && b->checks[i].requester &&
        memcmp(b->checks[i].nonce, nonce, NT_PUNCH_NONCE_LEN) == 0) {
      return &b->checks[i];
    }
  }
  return NULL;
}

/* Whether |msg| from |c| answers something the broker asked of it and
 * still awaits. */
static int owed_reply(const bclient *c, const nt_control *msg) {
  if (!c->checked_in || c->diagnostic) {
    return 0;
  }
  if (msg->type == NT_CONTROL_ADMISSION_ANSWER) {
    return nt_admission_owed(c, &msg->u.admission_answer);
  }
  if (msg->type == NT_CONTROL_CHECK_REPORT) {
    return check_of_report(c->broker, c, msg->u.check_report.nonce) != NULL ||
           nt_xintro_report_owed(c, msg->u.check_report.nonce);
  }
  return 0;
}

/* One control message from a client; returns nonzero once the client is
 * being dropped, so nothing after it is read. */
static int handle_control(const uint8_t *body, size_t len, void *ud) {
  bclient *c = ud;
  nt_control msg;
  int malformed = nt_control_decode(&msg, body, len) != 0;
  /* Replies the broker asked |c| for (an admission answer, a check's
   * report) are owed, not chosen: they do not count against its rate,
   * so that requests aimed at a listener cost the requester, never the
   * listener. Each query or check permits one. */
  if (!(!malformed && owed_reply(c, &msg)) &&
      !nt_rate_take(&c->ctl_rate, BROKER_CTL_RATE, BROKER_CTL_BURST,
                    nt_monotonic_ns())) {
    if (!malformed && msg.type == NT_CONTROL_CONNECT_REQUEST && c->checked_in &&
        nt_name_valid(msg.u.connect_request.peer)) {
      nt_broker_note_intro(c->broker, c, c->name, NULL,
                           msg.u.connect_request.peer, NT_INTRO_RATE_LIMITED,
                           msg.u.connect_request.check, NULL);
    }
    reject(c, NT_CODE_BAD_REQUEST,
           "too many control messages (limit " STR(
               BROKER_CTL_RATE) " per second)");
    return 1;
  }
  switch (msg.type) {
  case NT_CONTROL_CHECK_IN:
    if (malformed) {
      reject(c, NT_CODE_BAD_REQUEST, "malformed check-in");
      break;
    }
    handle_check_in(c, &msg.u.check_in);
    if (c->binding.req) {
      return 1; /* the rest waits for the registry (read_held) */
    }
    break;
  case NT_CONTROL_CONNECT_REQUEST:
    handle_connect_request(c, &msg.u.connect_request);
    break;
  case NT_CONTROL_CHECK_REPORT:
    handle_check_report(c, &msg.u.check_report, malformed);
    break;
  case NT_CONTROL_ADMISSION_ANSWER:
    if (!c->checked_in || c->diagnostic || malformed) {
      reject(c, NT_CODE_BAD_REQUEST, "unexpected admission answer");
      break;
    }
    nt_admission_on_answer(c, &msg.u.admission_answer);
    break;
  case NT_CONTROL_ADMISSION_RESET:
    if (!c->checked_in || c->diagnostic) {
      reject(c, NT_CODE_BAD_REQUEST, "unexpected admission reset");
      break;
    }
    nt_admission_reset(c);
    break;
  case NT_CONTROL_NAT_REPORT:
    if (!c->checked_in) {
      reject(c, NT_CODE_BAD_REQUEST, "NAT report before check-in");
      break;
    }
    c->mapping = msg.u.nat_report.mapping;
    c->mapped = msg.u.nat_report.mapped;
    c->portmap = msg.u.nat_report.portmap;
    c->portmap_method = msg.u.nat_report.portmap_method;
    nt_debug(
        &c->broker->log, "%s reports %s NAT mapping", c->name,
        c->mapping == NT_MAPPING_PER_DESTINATION ? "per-destination (symmetric)"
        : c->mapping == NT_MAPPING_ENDPOINT_INDEPENDENT ? "endpoint-independent"
                                                        : "unknown");
    break;
  default:
    reject(c, NT_CODE_BAD_REQUEST,
           malformed && msg.type == NT_CONTROL_NONE
               ? "malformed control message"
               : "unexpected control message");
    break;
  }
  return c->dead;
}

/* Keeps |len| bytes of the control stream until the bind in flight is
 * done, or drops the client past BROKER_HELD_MAX. */
static void hold(bclient *c, const uint8_t *data, size_t len) {
  bclient_binding *w = &c->binding;
  uint8_t *held;

  if (len > BROKER_HELD_MAX - w->nheld) {
    reject(c, NT_CODE_BAD_REQUEST,
           "more than " STR(BROKER_HELD_MAX) " bytes sent before the "
           "check-in was answered");
    return;
  }
  held = realloc(w->held, w->nheld + len);
  if (!held) {
    reject(c, NT_CODE_INTERNAL, "out of memory");
    return;
  }
  memcpy(held + w->nheld, data, len);
  w->held = held;
  w->nheld += len;
}

/* Reads control messages from |data| in order. While a check-in waits for
 * the registry, what follows it waits too (hold). */
static void read_control(bclient *c, const uint8_t *data, size_t len) {
  size_t taken = 0;
  int rv = 0;

  if (!c->dead && !c->binding.req) {
    rv = nt_wire_reader_until(c->reader, data, len, handle_control, c, &taken);
  }
  if (rv < 0) {
    reject(c, NT_CODE_BAD_REQUEST, "bad message framing");
  } else if (!c->dead && c->binding.req && taken < len) {
    hold(c, data + taken, len - taken);
  }
}

/* The bind is done: the messages that waited for it are read now. */
static void read_held(bclient *c) {
  bclient_binding *w = &c->binding;
  uint8_t *held = w->held;
  size_t nheld = w->nheld;

  w->held = NULL;
  w->nheld = 0;
  if (held) {
    read_control(c, held, nheld);
    free(held);
  }
}

static void ctl_recv(nt_stream *s, const uint8_t *data, size_t len, int fin,
                     void *ud) {
  bclient *c = ud;

  read_control(c, data, len);
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
    nt_stream_reset(s, NT_CODE_BAD_REQUEST);
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
            reason == NT_CLOSE_IDLE   ? "idle timeout"
            : reason == NT_CLOSE_PEER ? (message[0] ? message : "closed")
                                      : "closed");
  }
  /* Also a session replaced by a new one: its questions end here. */
  nt_admission_on_leave(c);
  if (c->checked_in && !c->diagnostic) {
    char err[300];
    nt_hashmap_remove(&b->checked_in, c->name, strlen(c->name));
    nt_registry_presence(b->registry, c->name, NULL, 0, 0);
    /* Idle time counts from leaving. */
    if (nt_registry_touch(b->registry, c->name, (int64_t)time(NULL), err,
                          sizeof(err)) != 0) {
      nt_warn(&b->log, "registry: %s", err);
    }
  }
  nt_bclient_free(b, c);
}

/* Forgets a client: the counts, its deadline, its memory. */
void nt_bclient_free(natter_broker *b, bclient *c) {
  /* A check-in still waiting for the registry: its answer must not come
   * to freed memory. */
  nt_registry_cancel(c->binding.req);
  free(c->binding.held);
  nt_admission_forget(b, c);
  nt_xintro_forget(c);
  for (size_t i = 0; i < BROKER_MAX_CHECKS; i++) {
    if (b->checks[i].requester == c || b->checks[i].peer == c) {
      b->checks[i].requester = b->checks[i].peer = NULL;
    }
  }
  /* Its relay channels end with it, not when they idle out. */
  nt_relay_close_session(b->relay, c);
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
    reject(c, NT_CODE_BAD_REQUEST,
           "no check-in within " STR(BROKER_CHECKIN_DEADLINE_S) " s");
  }
}

bclient *nt_bclient_new(natter_broker *b, const struct sockaddr *from) {
  bclient *c = calloc(1, sizeof(*c));
  if (!c) {
    return NULL;
  }
  c->reader = calloc(1, sizeof(*c->reader));
  c->deadline = event_new(b->base, -1, 0, deadline_cb, c);
  if (!c->reader || !c->deadline || nt_sources_add(&b->sources, from) != 0) {
    if (c->deadline) {
      event_free(c->deadline);
    }
    free(c->reader);
    free(c);
    return NULL;
  }
  c->broker = b;
  c->source = addr_of(from);
  c->pending = 1;
  b->npending++;
  nt_rate_init(&c->ctl_rate, BROKER_CTL_BURST, nt_monotonic_ns());
  struct timeval tv = {BROKER_CHECKIN_DEADLINE_S, 0};
  event_add(c->deadline, &tv);
  TAILQ_INSERT_HEAD(&b->clients, c, link);
  b->nclients++;
  return c;
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

void nt_bclient_remember(bclient *c, const char *name) {
  remember(c, name);
}

int nt_bclient_was_introduced(const bclient *c, const char *name) {
  return was_introduced(c, name);
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

static void handle_refresh_request(bclient *c, const nt_connect_request *r) {
  natter_broker *b = c->broker;
  bclient *peer = nt_name_valid(r->peer) ? find_client(b, r->peer) : NULL;
  if (!peer && nt_name_valid(r->peer) && was_introduced(c, r->peer) &&
      b->xintro) {
    nt_info(&b->log, "introducing %s to %s again (%s hears nothing; at "
                     "another broker)",
            c->name, r->peer, c->name);
    nt_xintro_refresh(c, r->peer);
    return;
  }
  if (!peer || !was_introduced(c, peer->name)) {
    send_connect_result(c, r->request_id, NT_CODE_PEER_UNKNOWN,
                        "no client with that name was introduced to you");
    return;
  }
  nt_info(&b->log, "introducing %s to %s again (%s hears nothing)", c->name,
          peer->name, c->name);
  reintroduce(c, peer);
}

static void notify_restart(bclient *to, bclient *about) {
  nt_control msg = {.type = NT_CONTROL_PEER_NOTICE};
  snprintf(msg.u.peer_notice.peer, sizeof(msg.u.peer_notice.peer), "%s",
           about->name);
  memcpy(msg.u.peer_notice.key, nt_conn_peer_fingerprint(about->conn),
         NT_FINGERPRINT_LEN);
  msg.u.peer_notice.kind = NT_NOTICE_RESTARTED;
  send_control(to, &msg);
}

/* |c| checked in; |old| is the session it replaces, if any. A new
 * session (the process restarted) is news to every peer it met: their
 * connections to it are dead. The same session from a new address (its
 * broker connection was lost) means its peers should punch again. */
static void note_check_in(bclient *c, bclient *old, const nt_check_in *in) {
  natter_broker *b = c->broker;
  memcpy(c->session, in->session, NT_SESSION_LEN);
  if (!old) {
    return;
  }
  static const uint8_t none[NT_SESSION_LEN];
  int restarted = memcmp(c->session, none, sizeof(none)) == 0 ||
                  memcmp(c->session, old->session, sizeof(c->session)) != 0;
  int moved = !nt_addr_equal(nt_conn_validated_addr(c->conn),
                             nt_conn_validated_addr(old->conn));
  memcpy(c->introduced, old->introduced, sizeof(c->introduced));
  c->nintroduced = old->nintroduced;
  if (!restarted) {
    /* Its relayed connections live on: their channels carry over. */
    nt_relay_move_session(b->relay, old, c, nt_conn_validated_addr(c->conn));
  }
  for (size_t i = 0; i < c->nintroduced; i++) {
    bclient *peer = find_client(b, c->introduced[i]);
    if (!peer && restarted) {
      nt_xintro_restarted(c, c->introduced[i]); /* at another broker? */
    } else if (!peer && moved) {
      nt_xintro_refresh(c, c->introduced[i]);
    }
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
  nt_relay_move_session(b->relay, c, c, nt_conn_validated_addr(c->conn));
  if (c->moved_ns && now - c->moved_ns < BROKER_MOVE_NOTICE_NS) {
    return;
  }
  c->moved_ns = now;
  for (size_t i = 0; i < c->nintroduced; i++) {
    bclient *peer = find_client(b, c->introduced[i]);
    if (peer && peer != c && !peer->dead) {
      reintroduce(c, peer);
    } else if (!peer) {
      nt_xintro_refresh(c, c->introduced[i]); /* at another broker? */
    }
  }
}
