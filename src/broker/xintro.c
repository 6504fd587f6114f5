/* Introductions across brokers that share a PostgreSQL registry (issue
 * 24; doc/design.md, "Introductions across brokers").
 *
 * Broker A gets a ConnectRequest for a name not checked in here: it looks
 * the name up in presence (bus_pg.c), and when another live broker B
 * holds it, sends B an ASK note on B's channel with what B's listener
 * needs to know of the requester (its Introduction: name, key, validated
 * address, LAN addresses, NAT report). B asks its listener exactly as for
 * a local requester (admission_query.c) and answers with a REFUSED note
 * (the code and text the requester would hear locally) or, once the
 * listener admits, sends the listener its Introduction and an ADMITTED
 * note with the listener's side and the meeting's nonce; A then sends its
 * requester the Introduction. A check adds a REPORT note: the listener's
 * CheckReport, passed on to the requester. A restart seen at B of a
 * client that met one at A becomes a NOTICE note; a move or a refresh
 * request, a REFRESH note answered by REFRESHED (both punch again).
 *
 * Notes come from the database: every one is decoded by codec/xnote.c
 * (bounded, checked) and matched against what this broker asked (the
 * request's number and the broker it asked); anything else is dropped.
 * Every table is bounded (broker_internal.h) and its limit logged.
 *
 * The relay across brokers: the listener's broker relays for both. The
 * ASK says whether the requester takes a relay there (it reads a relay's
 * address and does not refuse relayed peers); B opens the channel with
 * the requester as a party by the key and the IP address its broker
 * validated (both from the note; no session of B's: the channel ends
 * when idle, or with the listener's session), within the relay's usual
 * budgets, and the ADMITTED note carries the requester's token and B's
 * relay address, which A checks and names in its Introduction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_internal.h"
#include "broker/bus_pg.h"
#include "codec/xnote.h"

/* A check admitted across brokers waits this long for the report. */
#define XCHECK_TTL_NS (60 * 1000000000ull)
#define TICK_MS 250
/* As BROKER_MAX_CHECKS_PER_KEY for checks on one broker. */
#define XCHECKS_PER_KEY 4
#define STR_(x) #x
#define STR(x) STR_(x)

static void xlog_limit(natter_broker *b, const char *fmt, const char *a,
                       const char *c) {
  unsigned held;
  if (nt_log_gate_pass(&b->xintro->limit_gate, nt_monotonic_ns(), &held)) {
    char line[300];
    snprintf(line, sizeof(line), fmt, a, c);
    nt_warn(&b->log, "%s%s", line, held ? " (and more like it)" : "");
  }
}

static void xlog_bad(natter_broker *b, const char *why) {
  unsigned held;
  if (nt_log_gate_pass(&b->xintro->bad_gate, nt_monotonic_ns(), &held)) {
    nt_warn(&b->log, "brokers' bus: note dropped: %s%s", why,
            held ? " (and more like it)" : "");
  }
}

static void send_note(natter_broker *b, const char *to, nt_xnote *n) {
  char text[NT_XNOTE_TEXT_MAX + 1];
  snprintf(n->from, sizeof(n->from), "%s", b->broker_id);
  if (nt_xnote_encode(text, n) == 0) {
    nt_warn(&b->log, "brokers' bus: a note to %.16s is out of bounds; not sent",
            to);
  } else if (nt_bus_send(b->xintro->bus, to, text) != 0) {
    /* Its request times out at the other end. */
    xlog_limit(b,
               "brokers' bus: cannot send a note to %.16s%s: the database "
               "is away or " STR(NT_BUS_QUEUE_MAX) " notes and lookups wait",
               to, "");
  }
}

/* ---- the asking side ---- */

static void ask_free(bxintro *x, bxask *a) {
  if (a->lookup) {
    nt_bus_cancel(x->bus, a->lookup);
  }
  memset(a, 0, sizeof(*a));
}

static void ask_answer(natter_broker *b, bxask *a, nt_control_code code,
                       const char *why) {
  if (a->requester && !a->requester->dead) {
    nt_bclient_connect_result(a->requester, a->request_id, code, why);
  }
  ask_free(b->xintro, a);
}

static void where_done(int rv, const char *broker_id, void *ud) {
  bxask *a = ud;
  natter_broker *b;
  nt_xnote n;

  a->lookup = NULL;
  if (!a->requester) {
    memset(a, 0, sizeof(*a));
    return;
  }
  b = a->requester->broker;
  if (rv == NATTER_ERR_PEER_UNKNOWN ||
      (rv == 0 && !nt_xnote_broker_id_ok(broker_id))) {
    ask_answer(b, a, NT_CODE_PEER_UNKNOWN,
               "no client with that name is checked in");
    return;
  }
  if (rv != 0) {
    ask_answer(b, a, NT_CODE_INTERNAL,
               "the brokers' database is unavailable; try again");
    return;
  }
  snprintf(a->broker, sizeof(a->broker), "%s", broker_id);
  memset(&n, 0, sizeof(n));
  n.kind = NT_XNOTE_ASK;
  n.xid = a->xid;
  snprintf(n.peer, sizeof(n.peer), "%s", a->peer);
  n.check = a->check;
  /* Only a client that reads a relay's address may be given another
   * broker's relay (an older one would take our address with its port). */
  n.relay = a->requester->reads_relay_address && !a->requester->no_relay;
  a->relay = n.relay;
  nt_bclient_describe(a->requester, &n.intro);
  nt_debug(&b->log, "asking broker %.16s to introduce %s to %s", broker_id,
           a->requester->name, a->peer);
  send_note(b, broker_id, &n);
}

int nt_xintro_ask(bclient *c, const nt_connect_request *r) {
  natter_broker *b = c->broker;
  bxintro *x = b->xintro;
  bxask *slot = NULL;
  size_t mine = 0, checks_of_key = 0;
  const uint8_t *key = nt_conn_peer_fingerprint(c->conn);
  uint64_t now = nt_monotonic_ns();

  if (!x || !x->bus) {
    return 0;
  }
  for (size_t i = 0; i < BROKER_XASKS; i++) {
    if (!x->asks[i].xid) {
      slot = slot ? slot : &x->asks[i];
      continue;
    }
    mine += x->asks[i].requester == c;
    checks_of_key += x->asks[i].check &&
                     memcmp(x->asks[i].key, key, NT_FINGERPRINT_LEN) == 0;
  }
  /* A check across brokers is held to the caps of a local one (a key's
   * checks under way, a check session's age; client_session.c). */
  if (r->check &&
      (checks_of_key >= XCHECKS_PER_KEY ||
       (c->check_session_ends_ns && now >= c->check_session_ends_ns))) {
    xlog_limit(b,
               "refused a check of %s by %s: its key has checks under way "
               "or its check session is too old",
               r->peer, c->name);
    nt_bclient_connect_result(c, r->request_id, NT_CODE_INTERNAL,
                              "the broker runs too many checks at once; try "
                              "again in a minute");
    return 1;
  }
  if (mine >= BROKER_XASKS_PER_REQUESTER || !slot) {
    xlog_limit(b,
               "not asking other brokers for %s on behalf of %s: too many "
               "requests across brokers await an answer",
               r->peer, c->name);
    nt_bclient_connect_result(
        c, r->request_id, NT_CODE_INTERNAL,
        mine >= BROKER_XASKS_PER_REQUESTER
            ? "too many requests of yours await an answer (limit " STR(
                  BROKER_XASKS_PER_REQUESTER) "); try again in a few seconds"
            : "too many requests await an answer at the broker; try again "
              "in a few seconds");
    return 1;
  }
  memset(slot, 0, sizeof(*slot));
  if (++x->next_xid == 0) {
    x->next_xid = 1;
  }
  slot->xid = x->next_xid;
  slot->requester = c;
  memcpy(slot->key, key, NT_FINGERPRINT_LEN);
  slot->request_id = r->request_id;
  slot->check = r->check;
  snprintf(slot->peer, sizeof(slot->peer), "%s", r->peer);
  slot->asked_ns = now;
  slot->expires_ns = slot->asked_ns + BROKER_XASK_TIMEOUT_NS;
  if (nt_bus_where(x->bus, r->peer, where_done, slot, &slot->lookup) != 0) {
    memset(slot, 0, sizeof(*slot));
    xlog_limit(b,
               "cannot look up %s for %s: the brokers' database is away "
               "or " STR(NT_BUS_QUEUE_MAX) " notes and lookups wait",
               r->peer, c->name);
    nt_bclient_connect_result(c, r->request_id, NT_CODE_PEER_UNKNOWN,
                              "no client with that name is checked in here, "
                              "and the brokers' database is unavailable");
  }
  return 1;
}

static bxask *find_ask(bxintro *x, const nt_xnote *n) {
  for (size_t i = 0; i < BROKER_XASKS; i++) {
    bxask *a = &x->asks[i];
    if (a->xid && a->xid == n->xid && a->broker[0] &&
        strcmp(a->broker, n->from) == 0) {
      return a;
    }
  }
  return NULL;
}

/* The relay the listener's broker offers in |intro| (ADMITTED), kept only
 * when we asked for one and it is whole and an address a relay may have
 * (never our requester's own host unless we serve on loopback); else
 * none. Says which in |says| for the log line. */
static void relay_words(natter_broker *b, const bxask *a,
                        nt_introduction *intro, char *says, size_t len) {
  char addr[NT_ADDR_STRLEN];
  int offered = intro->relay_port && intro->relay.len;
  says[0] = '\0';
  if (offered && a->relay &&
      nt_candidate_acceptable((const struct sockaddr *)&intro->relay.ss,
                              b->loopback)) {
    snprintf(says, len, "; relay at %s",
             nt_addr_str((const struct sockaddr *)&intro->relay.ss, addr));
    return;
  }
  if (offered) {
    xlog_bad(b, "a relay we did not ask for, or at no address for one");
  } else if (a->relay) {
    snprintf(says, len,
             "; no relay: %s's broker offered none (it relays only with "
             "-relay, to peers without -no-relay, within its limits)",
             a->peer);
  } else if (!a->requester->reads_relay_address && !a->requester->no_relay) {
    snprintf(says, len,
             "; no relay across brokers for %s: its natter is too old to be "
             "given another broker's relay (upgrade it)",
             a->requester->name);
  }
  memset(intro->relay_token, 0, NT_RELAY_TOKEN_LEN);
  intro->relay_port = 0;
  memset(&intro->relay, 0, sizeof(intro->relay));
}

static void on_admitted(natter_broker *b, const nt_xnote *n) {
  bxask *a = find_ask(b->xintro, n);
  if (!a || a->admitted || strcmp(n->intro.name, a->peer) != 0) {
    xlog_bad(b, "an admission for no request of ours");
    return;
  }
  if (!a->requester || a->requester->dead) {
    ask_free(b->xintro, a);
    return;
  }
  nt_control msg = {.type = NT_CONTROL_INTRODUCTION};
  msg.u.introduction = n->intro;
  msg.u.introduction.request_id = a->request_id;
  msg.u.introduction.refresh = 0;
  msg.u.introduction.check = 0;
  char relay_says[NT_NAME_MAX + NT_ADDR_STRLEN + 128];
  relay_words(b, a, &msg.u.introduction, relay_says, sizeof(relay_says));
  b->introductions++;
  uint64_t took = nt_monotonic_ns() - a->asked_ns;
  nt_info(&b->log,
          "introducing %s to %s at broker %.16s%s (across brokers: %llu.%03llu "
          "ms)%s",
          a->requester->name, a->peer, n->from, a->check ? " for a check" : "",
          (unsigned long long)(took / 1000000),
          (unsigned long long)(took / 1000 % 1000), relay_says);
  nt_bclient_send(a->requester, &msg);
  if (a->check) {
    a->admitted = 1;
    memcpy(a->nonce, n->intro.nonce, NT_PUNCH_NONCE_LEN);
    a->expires_ns = nt_monotonic_ns() + XCHECK_TTL_NS;
    return;
  }
  nt_bclient_remember(a->requester, a->peer);
  ask_free(b->xintro, a);
}

static void on_refused(natter_broker *b, const nt_xnote *n) {
  bxask *a = find_ask(b->xintro, n);
  if (!a || a->admitted) {
    xlog_bad(b, "a refusal for no request of ours");
    return;
  }
  nt_info(&b->log, "broker %.16s: no introduction of %s to %s: %s", n->from,
          a->requester ? a->requester->name : "(gone)", a->peer, n->message);
  ask_answer(b, a, n->code, n->message);
}

static void on_report(natter_broker *b, const nt_xnote *n) {
  bxask *a = find_ask(b->xintro, n);
  if (!a || !a->admitted ||
      memcmp(a->nonce, n->report.nonce, NT_PUNCH_NONCE_LEN) != 0 ||
      strcmp(n->report.peer, a->peer) != 0) {
    xlog_bad(b, "a check report for no check of ours");
    return;
  }
  if (a->requester && !a->requester->dead) {
    nt_control msg = {.type = NT_CONTROL_CHECK_REPORT};
    msg.u.check_report = n->report;
    nt_info(&b->log, "%s (at broker %.16s) reports on the check by %s", a->peer,
            n->from, a->requester->name);
    nt_bclient_send(a->requester, &msg);
  }
  ask_free(b->xintro, a);
}

/* ---- the listener's side ---- */

static bxserve *find_served(bxintro *x, uint32_t id) {
  for (size_t i = 0; id && i < BROKER_XSERVED; i++) {
    if (x->served[i].id == id) {
      return &x->served[i];
    }
  }
  return NULL;
}

static void refuse_note(natter_broker *b, const char *to, uint64_t xid,
                        nt_control_code code, const char *why) {
  nt_xnote n;
  memset(&n, 0, sizeof(n));
  n.kind = NT_XNOTE_REFUSED;
  n.xid = xid;
  n.code = code;
  snprintf(n.message, sizeof(n.message), "%s", why);
  send_note(b, to, &n);
}

static void on_ask(natter_broker *b, const nt_xnote *n) {
  bxintro *x = b->xintro;
  bxserve *slot = NULL;
  size_t theirs = 0;

  for (size_t i = 0; i < BROKER_XSERVED; i++) {
    bxserve *s = &x->served[i];
    if (!s->id) {
      slot = slot ? slot : s;
    } else if (strcmp(s->from, n->from) == 0) {
      theirs++;
      if (s->xid == n->xid) {
        xlog_bad(b, "a request asked twice");
        return;
      }
    }
  }
  bclient *peer = nt_bclient_find(b, n->peer);
  if (!peer || peer->dead) {
    refuse_note(b, n->from, n->xid, NT_CODE_PEER_UNKNOWN,
                "no client with that name is checked in");
    return;
  }
  if (!peer->listen) {
    refuse_note(b, n->from, n->xid, NT_CODE_PEER_NOT_LISTENING,
                "the peer is checked in but not listening");
    return;
  }
  if (strcmp(n->intro.name, n->peer) == 0) {
    refuse_note(b, n->from, n->xid, NT_CODE_BAD_REQUEST,
                "a client cannot connect to itself");
    return;
  }
  if (!slot || theirs >= BROKER_XSERVED_PER_BROKER) {
    xlog_limit(b,
               "not asking %s about %s: too many requests from other "
               "brokers await an answer",
               n->peer, n->intro.name);
    refuse_note(b, n->from, n->xid, NT_CODE_INTERNAL,
                "too many requests await an answer at the peer's broker; "
                "try again in a few seconds");
    return;
  }
  memset(slot, 0, sizeof(*slot));
  if (++x->next_id == 0) {
    x->next_id = 1;
  }
  slot->id = x->next_id;
  slot->xid = n->xid;
  snprintf(slot->from, sizeof(slot->from), "%s", n->from);
  slot->listener = peer;
  slot->requester = n->intro;
  slot->check = n->check;
  slot->relay = n->relay;
  /* Past the admission query's own timeout: it answers first. */
  slot->expires_ns = nt_monotonic_ns() + BROKER_XASK_TIMEOUT_NS;
  nt_admission_ask_remote(b, peer, n->intro.name, n->intro.key, n->check,
                          slot->id);
}

/* Our relay's address as the requester at another broker is to reach
 * it: the relay socket's own IP when it has one, else the IP the
 * listener's packets arrive at (where our clients reach us), with the
 * relay's port; in the requester's family, and an address a relay may
 * have. 0 and |out|, or -1 with why not in |why|. */
static int relay_public_addr(natter_broker *b, const bclient *listener,
                             const struct sockaddr *requester, nt_addr *out,
                             const char **why) {
  const nt_addr *bind = nt_relay_bind_addr(b->relay);
  const nt_addr *seen = nt_conn_local_addr(listener->conn);
  if (nt_candidate_acceptable((const struct sockaddr *)&bind->ss,
                              b->loopback)) {
    *out = *bind;
  } else if (seen->len) {
    *out = *seen;
    nt_addr_unmap(&out->ss, &out->len);
    nt_addr_set_port((struct sockaddr *)&out->ss, nt_relay_port(b->relay));
  } else {
    *why = "this broker does not know its own address (its relay is bound "
           "to a wildcard and the listener's packets did not say)";
    return -1;
  }
  if (out->ss.ss_family != requester->sa_family) {
    *why = "the relay's address is of the other IP family";
    return -1;
  }
  if (!nt_candidate_acceptable((const struct sockaddr *)&out->ss,
                               b->loopback)) {
    *why = "the relay's address is no public one";
    return -1;
  }
  return 0;
}

/* Opens a relay channel here between another broker's requester of |s|
 * (by its key and the address its broker validated, from the note) and
 * |listener|, when the requester asked for one, this broker relays and
 * the listener takes relayed peers: puts the requester's token and our
 * relay's address in |intro| (the ADMITTED note's side) and the
 * listener's token in |tok_listener|. Returns 1, or 0 with no relay
 * (said in the log). */
static int open_xrelay(natter_broker *b, const bxserve *s,
                       const bclient *listener, nt_introduction *intro,
                       uint8_t *tok_listener) {
  char addr[NT_ADDR_STRLEN], relay_at[NT_ADDR_STRLEN];
  const char *why = NULL;
  nt_addr at;
  const nt_addr *ip = &s->requester.observed;
  if (!b->relay || listener->no_relay) {
    return 0;
  }
  if (!s->relay) {
    nt_info(&b->log,
            "no relay channel for %s (at broker %.16s) and %s: its broker "
            "did not ask for one (-no-relay, or a natter too old for a relay "
            "at another broker)",
            s->requester.name, s->from, listener->name);
    return 0;
  }
  if (!ip->len || relay_public_addr(b, listener, (const struct sockaddr *)&ip->ss,
                                    &at, &why) != 0) {
    nt_warn(&b->log, "no relay channel for %s (at broker %.16s) and %s: %s",
            s->requester.name, s->from, listener->name,
            why ? why : "its broker gave no address for it");
    return 0;
  }
  nt_relay_party requester = {s->requester.name, s->requester.key,
                              (const struct sockaddr *)&ip->ss, NULL};
  nt_relay_party peer = nt_bclient_relay_party(listener);
  if (nt_relay_open(b->relay, &requester, &peer, intro->relay_token,
                    tok_listener) != 0) {
    return 0; /* a limit, logged by the relay */
  }
  intro->relay_port = nt_relay_port(b->relay);
  intro->relay = at;
  nt_info(&b->log,
          "relay channel open for %s (at broker %.16s, from %s) and %s on "
          "%s",
          s->requester.name, s->from,
          nt_addr_str((const struct sockaddr *)&ip->ss, addr), listener->name,
          nt_addr_str((const struct sockaddr *)&at.ss, relay_at));
  return 1;
}

void nt_xintro_admitted(natter_broker *b, uint32_t id, bclient *listener) {
  bxserve *s = b->xintro ? find_served(b->xintro, id) : NULL;
  nt_xnote n;
  if (!s) {
    return;
  }
  if (s->listener != listener) {
    refuse_note(b, s->from, s->xid, NT_CODE_PEER_UNKNOWN,
                "the peer left before it answered");
    memset(s, 0, sizeof(*s));
    return;
  }
  if (nt_random_bytes(s->nonce, sizeof(s->nonce)) != 0) {
    refuse_note(b, s->from, s->xid, NT_CODE_INTERNAL, "no randomness");
    memset(s, 0, sizeof(*s));
    return;
  }
  b->introductions++;
  nt_info(&b->log, "introducing %s (at broker %.16s) to %s%s",
          s->requester.name, s->from, listener->name,
          s->check ? " for a check" : "");
  /* The requester's broker hears first: its Introduction leaves as soon
   * as the note arrives, while the listener's goes out here. */
  memset(&n, 0, sizeof(n));
  n.kind = NT_XNOTE_ADMITTED;
  n.xid = s->xid;
  nt_bclient_describe(listener, &n.intro);
  memcpy(n.intro.nonce, s->nonce, NT_PUNCH_NONCE_LEN);
  uint8_t tok_listener[NT_RELAY_TOKEN_LEN];
  int relayed = open_xrelay(b, s, listener, &n.intro, tok_listener);
  send_note(b, s->from, &n);

  nt_control msg = {.type = NT_CONTROL_INTRODUCTION};
  msg.u.introduction = s->requester;
  msg.u.introduction.request_id = 0;
  msg.u.introduction.refresh = 0;
  msg.u.introduction.check = s->check;
  memcpy(msg.u.introduction.nonce, s->nonce, NT_PUNCH_NONCE_LEN);
  memset(msg.u.introduction.relay_token, 0, NT_RELAY_TOKEN_LEN);
  msg.u.introduction.relay_port = 0;
  memset(&msg.u.introduction.relay, 0, sizeof(msg.u.introduction.relay));
  if (relayed) {
    /* Our own relay: the listener takes our address with the port. */
    memcpy(msg.u.introduction.relay_token, tok_listener, NT_RELAY_TOKEN_LEN);
    msg.u.introduction.relay_port = nt_relay_port(b->relay);
  }
  nt_bclient_send(listener, &msg);
  if (s->check) {
    s->admitted = 1;
    s->expires_ns = nt_monotonic_ns() + XCHECK_TTL_NS;
    return;
  }
  nt_bclient_remember(listener, s->requester.name);
  memset(s, 0, sizeof(*s));
}

void nt_xintro_refused(natter_broker *b, uint32_t id, nt_control_code code,
                       const char *message) {
  bxserve *s = b->xintro ? find_served(b->xintro, id) : NULL;
  if (!s) {
    return;
  }
  refuse_note(b, s->from, s->xid, code, message);
  memset(s, 0, sizeof(*s));
}

int nt_xintro_report_owed(const bclient *c, const uint8_t *nonce) {
  const bxintro *x = c->broker->xintro;
  for (size_t i = 0; x && i < BROKER_XSERVED; i++) {
    const bxserve *s = &x->served[i];
    if (s->id && s->admitted && s->listener == c &&
        memcmp(s->nonce, nonce, NT_PUNCH_NONCE_LEN) == 0) {
      return 1;
    }
  }
  return 0;
}

int nt_xintro_on_report(bclient *c, const nt_check_side *report) {
  natter_broker *b = c->broker;
  bxintro *x = b->xintro;
  if (!x) {
    return 0;
  }
  for (size_t i = 0; i < BROKER_XSERVED; i++) {
    bxserve *s = &x->served[i];
    if (!s->id || !s->admitted || s->listener != c ||
        memcmp(s->nonce, report->nonce, NT_PUNCH_NONCE_LEN) != 0) {
      continue;
    }
    nt_xnote n;
    memset(&n, 0, sizeof(n));
    n.kind = NT_XNOTE_REPORT;
    n.xid = s->xid;
    n.report = *report;
    snprintf(n.report.peer, sizeof(n.report.peer), "%s", c->name);
    const struct sockaddr *sa = nt_conn_validated_addr(c->conn);
    memset(&n.report.observed, 0, sizeof(n.report.observed));
    n.report.observed.len = sa->sa_family == AF_INET6
                                ? sizeof(struct sockaddr_in6)
                                : sizeof(struct sockaddr_in);
    memcpy(&n.report.observed.ss, sa, n.report.observed.len);
    nt_info(&b->log, "%s reports on the check by %s (at broker %.16s)", c->name,
            s->requester.name, s->from);
    send_note(b, s->from, &n);
    memset(s, 0, sizeof(*s));
    return 1;
  }
  return 0;
}

/* ---- restart notices ---- */

static void notice_where(int rv, const char *broker_id, void *ud) {
  bxnotice *t = ud;
  nt_xnote n;
  t->lookup = NULL;
  if (rv == 0 && nt_xnote_broker_id_ok(broker_id)) {
    memset(&n, 0, sizeof(n));
    n.kind = t->refresh ? NT_XNOTE_REFRESH : NT_XNOTE_NOTICE;
    n.xid = ++t->broker->xintro->next_xid ? t->broker->xintro->next_xid : 1;
    snprintf(n.peer, sizeof(n.peer), "%s", t->to);
    n.intro = t->about;
    send_note(t->broker, broker_id, &n);
  }
  memset(t, 0, sizeof(*t));
}

/* Finds |name|'s broker, then sends it a NOTICE or REFRESH about |c|. */
static void route(bclient *c, const char *name, int refresh) {
  natter_broker *b = c->broker;
  bxintro *x = b->xintro;
  if (!x || !x->bus) {
    return;
  }
  for (size_t i = 0; i < BROKER_XNOTICES; i++) {
    bxnotice *t = &x->notices[i];
    if (t->lookup) {
      continue;
    }
    memset(t, 0, sizeof(*t));
    t->broker = b;
    t->refresh = refresh;
    snprintf(t->to, sizeof(t->to), "%s", name);
    nt_bclient_describe(c, &t->about);
    if (refresh && nt_random_bytes(t->about.nonce, NT_PUNCH_NONCE_LEN) != 0) {
      memset(t, 0, sizeof(*t));
      return;
    }
    if (nt_bus_where(x->bus, name, notice_where, t, &t->lookup) != 0) {
      memset(t, 0, sizeof(*t));
    }
    return;
  }
  xlog_limit(b,
             "not telling %s's broker about %s: too many notices to other "
             "brokers under way",
             name, c->name);
}

void nt_xintro_restarted(bclient *c, const char *name) {
  route(c, name, 0);
}

void nt_xintro_refresh(bclient *c, const char *name) {
  route(c, name, 1);
}

/* A refresh introduction about |about| (another broker's client) to |to|. */
static void send_refresh(natter_broker *b, bclient *to,
                         const nt_introduction *about) {
  nt_control msg = {.type = NT_CONTROL_INTRODUCTION};
  msg.u.introduction = *about;
  msg.u.introduction.request_id = 0;
  msg.u.introduction.refresh = 1;
  msg.u.introduction.check = 0;
  memset(msg.u.introduction.relay_token, 0, NT_RELAY_TOKEN_LEN);
  msg.u.introduction.relay_port = 0;
  b->introductions++;
  nt_bclient_send(to, &msg);
}

/* REFRESH or its answer: only within a pair that met (as locally). */
static void on_refresh(natter_broker *b, const nt_xnote *n) {
  bclient *to = nt_bclient_find(b, n->peer);
  if (!to || to->dead || !nt_bclient_was_introduced(to, n->intro.name)) {
    xlog_bad(b, "a refresh for a pair that did not meet here");
    return;
  }
  nt_info(&b->log, "introducing %s (at broker %.16s) to %s again",
          n->intro.name, n->from, to->name);
  send_refresh(b, to, &n->intro);
  if (n->kind == NT_XNOTE_REFRESH) {
    nt_xnote r;
    memset(&r, 0, sizeof(r));
    r.kind = NT_XNOTE_REFRESHED;
    r.xid = n->xid;
    snprintf(r.peer, sizeof(r.peer), "%s", n->intro.name);
    nt_bclient_describe(to, &r.intro);
    memcpy(r.intro.nonce, n->intro.nonce, NT_PUNCH_NONCE_LEN);
    send_note(b, n->from, &r);
  }
}

/* ---- notes in, timeouts, start and end ---- */

static void on_note(const char *payload, size_t len, void *ud) {
  natter_broker *b = ud;
  nt_xnote n;
  if (nt_xnote_decode(&n, payload, len) != 0) {
    xlog_bad(b, "malformed");
    return;
  }
  if (strcmp(n.from, b->broker_id) == 0) {
    xlog_bad(b, "it claims to come from this broker");
    return;
  }
  switch (n.kind) {
  case NT_XNOTE_ASK:
    on_ask(b, &n);
    break;
  case NT_XNOTE_ADMITTED:
    on_admitted(b, &n);
    break;
  case NT_XNOTE_REFUSED:
    on_refused(b, &n);
    break;
  case NT_XNOTE_REPORT:
    on_report(b, &n);
    break;
  case NT_XNOTE_REFRESH:
  case NT_XNOTE_REFRESHED:
    on_refresh(b, &n);
    break;
  case NT_XNOTE_NOTICE: {
    bclient *to = nt_bclient_find(b, n.peer);
    if (to && !to->dead) {
      nt_control msg = {.type = NT_CONTROL_PEER_NOTICE};
      snprintf(msg.u.peer_notice.peer, sizeof(msg.u.peer_notice.peer), "%s",
               n.intro.name);
      memcpy(msg.u.peer_notice.key, n.intro.key, NT_FINGERPRINT_LEN);
      msg.u.peer_notice.kind = NT_NOTICE_RESTARTED;
      nt_info(&b->log, "telling %s that %s (at broker %.16s) restarted",
              to->name, n.intro.name, n.from);
      nt_bclient_send(to, &msg);
    }
    break;
  }
  }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  bxintro *x = b->xintro;
  uint64_t now = nt_monotonic_ns();
  (void)fd;
  (void)what;
  for (size_t i = 0; i < BROKER_XASKS; i++) {
    bxask *a = &x->asks[i];
    if (!a->xid || now < a->expires_ns) {
      continue;
    }
    if (a->admitted) {
      ask_free(x, a); /* the check's report never came: as locally */
    } else {
      nt_info(&b->log, "no answer from broker %.16s about %s for %s",
              a->broker[0] ? a->broker : "(lookup)", a->peer,
              a->requester ? a->requester->name : "(gone)");
      ask_answer(b, a, NT_CODE_TIMEOUT,
                 "the peer's broker did not answer in time");
    }
  }
  for (size_t i = 0; i < BROKER_XSERVED; i++) {
    bxserve *s = &x->served[i];
    if (s->id && now >= s->expires_ns) {
      memset(s, 0, sizeof(*s));
    }
  }
}

/* The channel is the whole id: two runs never share one. */
_Static_assert(2 * BROKER_ID_LEN == NT_BUS_CHANNEL_ID,
               "a broker id is its bus channel's hex digits");

int nt_xintro_start(natter_broker *b, const char *location) {
  const nt_registry_ops *ops;
  const char *where;
  bxintro *x;

  if (nt_registry_parse_location(location, &ops, &where, NULL, 0) != 0 ||
      ops != &nt_registry_pg_ops) {
    return 0;
  }
  if ((x = calloc(1, sizeof(*x))) == NULL) {
    return NATTER_ERR_NOMEM;
  }
  b->xintro = x;
  if (nt_random_bytes(&x->next_xid, sizeof(x->next_xid)) != 0) {
    x->next_xid = 1;
  }
  x->timer = event_new(b->base, -1, EV_PERSIST, tick_cb, b);
  if (!x->timer || nt_bus_new(&x->bus, b->base, location, b->broker_id, &b->log,
                              on_note, b) != 0) {
    nt_xintro_free(b);
    return NATTER_ERR_NOMEM;
  }
  struct timeval tv = {0, TICK_MS * 1000};
  event_add(x->timer, &tv);
  nt_info(&b->log, "broker id %s (this run's, in presence and on the bus)",
          b->broker_id);
  return 0;
}

void nt_xintro_forget(bclient *c) {
  bxintro *x = c->broker->xintro;
  if (!x) {
    return;
  }
  for (size_t i = 0; i < BROKER_XASKS; i++) {
    bxask *a = &x->asks[i];
    if (a->xid && a->requester == c) {
      if (a->lookup) {
        ask_free(x, a);
      } else {
        a->requester = NULL; /* the answer is still owed: it goes nowhere */
      }
    }
  }
  for (size_t i = 0; i < BROKER_XSERVED; i++) {
    bxserve *s = &x->served[i];
    if (s->id && s->listener == c) {
      /* Unanswered: the admission query said so as it left. */
      memset(s, 0, sizeof(*s));
    }
  }
}

void nt_xintro_free(natter_broker *b) {
  bxintro *x = b->xintro;
  if (!x) {
    return;
  }
  for (size_t i = 0; i < BROKER_XASKS; i++) {
    x->asks[i].lookup = NULL; /* freed with the bus */
  }
  for (size_t i = 0; i < BROKER_XNOTICES; i++) {
    x->notices[i].lookup = NULL;
  }
  nt_bus_free(x->bus);
  if (x->timer) {
    event_free(x->timer);
  }
  free(x);
  b->xintro = NULL;
}
