/* Why a check came out as it did. The rules read the data as hole
 * punching (RFC 5128 §3.3) would: a probe that arrives proves the path in
 * that direction; a symmetric NAT (RFC 4787 §4.1, a new port per
 * destination) hides the port a peer must aim at, and a filtering NAT on
 * the other side then drops everything. */
#include "client/verdict.h"

#include <stdio.h>
#include <string.h>

#include "codec/mapping.h"

static int listed(const char *addr, const natter_check_side *s) {
  for (size_t i = 0; i < s->ncandidates; i++) {
    if (strcmp(addr, s->candidates[i]) == 0) {
      return 1;
    }
  }
  return 0;
}

/* Probes from |sender| reached |receiver| from a port that |receiver| was
 * not given: |sender|'s NAT made a new one for it. */
static int learned(const natter_check_side *receiver) {
  return receiver->probes_from && receiver->probes_from[0] &&
         !listed(receiver->probes_from, receiver);
}

/* Why no direct path came up; returns NEEDS_RELAY, UDP_BLOCKED or FAILED
 * with the reason in |why|. */
static natter_check_verdict why_not_direct(const natter_check_result *r,
                                           char *why, size_t len) {
  const natter_check_side *a = &r->self, *b = &r->peer;
  int sym_a = a->mapping == NATTER_NAT_MAPPING_SYMMETRIC;
  int sym_b = b->mapping == NATTER_NAT_MAPPING_SYMMETRIC;
  int at_a = a->probes_received > 0;
  int at_b = b->reported && b->probes_received > 0;

  if (!at_a && !at_b) {
    if (sym_a && sym_b) {
      snprintf(why, len,
               "both sides are behind symmetric NATs (a new port per "
               "destination)");
      return NATTER_CHECK_NEEDS_RELAY;
    }
    if (sym_a || sym_b) {
      snprintf(why, len,
               "%s is behind a symmetric NAT (a new port per destination) "
               "and %s's NAT drops unsolicited UDP",
               sym_a ? a->name : b->name, sym_a ? b->name : a->name);
      return NATTER_CHECK_NEEDS_RELAY;
    }
    if (!b->reported) {
      snprintf(why, len,
               "no probe from %s arrived and %s sent no report: UDP between "
               "%s and %s is blocked, or %s stopped",
               b->name, b->name, a->name, b->name, b->name);
      return NATTER_CHECK_UDP_BLOCKED;
    }
    int unknown_a = a->mapping == NATTER_NAT_MAPPING_UNKNOWN;
    int unknown_b = b->mapping == NATTER_NAT_MAPPING_UNKNOWN;
    if (unknown_a || unknown_b) {
      /* Unmeasured: it may be symmetric, which would explain it too. */
      snprintf(why, len,
               "UDP between %s and %s is blocked, or %s's NAT is symmetric: "
               "no probe arrived either way, and %s NAT mapping is unknown "
               "(no answer from the broker's PORT+1)",
               a->name, b->name,
               unknown_a && unknown_b ? "either side"
               : unknown_a            ? a->name
                                      : b->name,
               unknown_a && unknown_b ? "both sides'" : "its");
      return NATTER_CHECK_UDP_BLOCKED;
    }
    snprintf(why, len,
             "UDP between %s and %s is blocked: no probe arrived either way, "
             "although both NATs keep one port for every destination",
             a->name, b->name);
    return NATTER_CHECK_UDP_BLOCKED;
  }
  if (at_b && !at_a) {
    snprintf(why, len,
             "%s's outgoing UDP to you is blocked: %s saw %u of your probes, "
             "none of its own arrived",
             b->name, b->name, b->probes_received);
    return NATTER_CHECK_UDP_BLOCKED;
  }
  if (at_a && !at_b && b->reported) {
    snprintf(why, len,
             "your outgoing UDP to %s is blocked: %u of its probes arrived "
             "here, none of yours there",
             b->name, a->probes_received);
    return NATTER_CHECK_UDP_BLOCKED;
  }
  snprintf(why, len, "probes arrived (%u here%s) but no connection came up: %s",
           a->probes_received, b->reported ? ", some there" : "",
           r->message && r->message[0] ? r->message : "no reason given");
  return NATTER_CHECK_FAILED;
}

natter_check_verdict nt_check_verdict(const natter_check_result *r, char *text,
                                      size_t len) {
  const natter_check_side *a = &r->self, *b = &r->peer;
  char why[600];
  natter_check_verdict v;

  if (r->error == NATTER_ERR_PEER_UNKNOWN) {
    snprintf(text, len,
             "%s is unknown: no client of that name is checked in at the "
             "broker",
             b->name);
    return NATTER_CHECK_PEER_UNKNOWN;
  }
  if (r->error == NATTER_ERR_PEER_NOT_LISTENING) {
    snprintf(text, len, "%s does not listen: it is checked in without -listen",
             b->name);
    return NATTER_CHECK_NOT_LISTENING;
  }
  if (r->error == NATTER_ERR_DENIED ||
      (b->reported && b->outcome && strcmp(b->outcome, "refused") == 0)) {
    snprintf(text, len, "%s refuses us: its -allow-peer rules do not admit %s",
             b->name, a->name);
    return NATTER_CHECK_REFUSED;
  }
  if (r->connected && !r->relayed) {
    if (r->predicted) {
      const natter_check_side *sym =
          a->mapping == NATTER_NAT_MAPPING_SYMMETRIC ? a : b;
      snprintf(text, len,
               "direct works only via prediction: %s's NAT gives a new port "
               "per destination, and port prediction (extra sockets on %s's "
               "side, probes to random ports from the other) found one",
               sym->name, sym->name);
      return NATTER_CHECK_DIRECT_PREDICTED;
    }
    /* Through a side's port mapping (or both): say so, it is why two
     * symmetric NATs need no relay; the port the mapped side then
     * learns from the other's probes is that one's NAT at work, no
     * prediction. */
    const char *pm = r->peer_portmap && r->peer_portmap[0]   ? r->peer_portmap
                     : r->self_portmap && r->self_portmap[0] ? r->self_portmap
                                                             : NULL;
    if (pm) {
      snprintf(text, len, "direct works via a port mapping: %s is %s",
               pm == r->peer_portmap ? b->name : a->name, pm);
      return NATTER_CHECK_DIRECT;
    }
    if (learned(b) || learned(a)) {
      const natter_check_side *nat = learned(b) ? a : b;
      const natter_check_side *saw = learned(b) ? b : a;
      snprintf(text, len,
               "direct works only via prediction: %s's NAT gave %s a port "
               "the broker never saw (%s), which %s learned from its probes",
               nat->name, saw == a ? "us" : saw->name, saw->probes_from,
               saw == a ? "we" : saw->name);
      return NATTER_CHECK_DIRECT_PREDICTED;
    }
    snprintf(text, len, "direct works");
    return NATTER_CHECK_DIRECT;
  }
  if (!r->connected && r->error != NATTER_ERR_PUNCH &&
      r->error != NATTER_ERR_TIMEOUT && r->error != NATTER_ERR_TLS &&
      r->error != NATTER_ERR_CLOSED) {
    snprintf(text, len, "the check failed: %s",
             r->message && r->message[0] ? r->message : "no reason given");
    return NATTER_CHECK_FAILED;
  }
  v = why_not_direct(r, why, sizeof(why));
  if (v == NATTER_CHECK_FAILED) {
    snprintf(text, len, "no direct path: %s", why);
    return v;
  }
  if (v == NATTER_CHECK_NEEDS_RELAY) {
    snprintf(text, len, "needs relay because %s%s", why,
             r->relayed ? "; connected through the broker's relay"
             : r->relay_offered
                 ? "; the broker's relay did not connect either"
                 : "; the broker offers no relay (start it with -relay)");
    return v;
  }
  snprintf(text, len, "%s%s", why,
           r->relayed ? "; connected through the broker's relay" : "");
  return v;
}

static const char *addr_or_empty(const nt_addr *a, char *buf) {
  buf[0] = '\0';
  return a->len ? nt_addr_str((const struct sockaddr *)&a->ss, buf) : buf;
}

void nt_check_report_side(natter_check_side *b, const nt_check_side *t,
                          nt_check_side_text *text) {
  static const char *const outcomes[] = {"", "connected", "failed", "refused"};

  b->reported = 1;
  b->outcome = outcomes[t->outcome & 3];
  if (t->mapping != NT_MAPPING_UNKNOWN) {
    b->mapping = nt_mapping_to_public(t->mapping);
  }
  if (t->observed.len) {
    b->public_address = addr_or_empty(&t->observed, text->public_address);
  }
  for (size_t i = 0; i < t->nprobed; i++) {
    text->pcand[i] =
        nt_addr_str((const struct sockaddr *)&t->probed[i].ss, text->cand[i]);
  }
  b->candidates = text->pcand;
  b->ncandidates = t->nprobed;
  b->probe_rounds = t->probe_rounds;
  b->probes_received = t->probes_received;
  b->replies_received = t->replies_received;
  b->probes_from = addr_or_empty(&t->probes_from, text->probes_from);
}
