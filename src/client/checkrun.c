#include "client/checkrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic/endpoint.h"
#include "codec/mapping.h"
#include "codec/portmap.h"
#include "codec/spec.h"
#include "client/verdict.h"

enum { RUN_WAITING = 0, RUN_ASKED, RUN_OUTCOME, RUN_DONE };

struct nt_check_run {
  nt_peer_waiter waiter; /* first: the waiter callbacks cast back */
  nt_check_env env;
  char peer[NT_NAME_MAX + 1];
  natter_check_fn fn;
  void *user_data;
  int phase;
  struct event *ev; /* the deadline, then "finish now" */
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  int have_nonce;
  nt_check_side theirs;
  int have_theirs;
  int error;
  char message[1200];
  int connected, relayed;
  int over_tcp; /* relayed, the relay reached over TCP (the fallback) */
  uint64_t rtt_us;
  char address[NT_ADDR_STRLEN];
};

static void arm(nt_check_run *run, uint64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  event_add(run->ev, &tv);
}

/* Our outcome is in: wait a little for the peer's report, unless it is
 * here already. */
static void outcome(nt_check_run *run) {
  run->phase = RUN_OUTCOME;
  arm(run, run->have_theirs ? 0 : NT_CHECK_REPORT_WAIT_MS);
}

static int check_ready(nt_peer_waiter *w, nt_conn *conn) {
  nt_check_run *run = (nt_check_run *)w;
  nt_conn_path_stats ps;
  nt_conn_get_path_stats(conn, &ps);
  run->connected = 1;
  run->relayed = nt_conn_is_relayed(conn);
  run->over_tcp = run->relayed && nt_conn_over_tcp(conn);
  run->rtt_us = ps.rtt_us;
  nt_addr_str(nt_conn_remote_addr(conn), run->address);
  outcome(run);
  return 0;
}

static void check_failed(nt_peer_waiter *w, int error, const char *why) {
  nt_check_run *run = (nt_check_run *)w;
  run->error = error;
  snprintf(run->message, sizeof(run->message), "%s", why ? why : "");
  if (error == NATTER_ERR_PUNCH || error == NATTER_ERR_TIMEOUT ||
      error == NATTER_ERR_TLS) {
    outcome(run); /* the peer's side tells why */
  } else {
    run->phase = RUN_OUTCOME;
    arm(run, 0);
  }
}

typedef struct view_copy {
  const char *name;
  int found;
  nt_peer_view v;
  nt_punch punch;
  nt_addr probe_from, observed, portmap;
} view_copy;

static void find_view(const nt_peer_view *v, void *ud) {
  view_copy *vc = ud;
  if (vc->found || v->check || strcmp(v->name, vc->name) != 0) {
    return;
  }
  vc->found = 1;
  vc->v = *v;
  vc->punch = *v->punch;
  if (v->probe_from) {
    vc->probe_from = *v->probe_from;
  }
  if (v->observed) {
    vc->observed = *v->observed;
  }
  if (v->portmap && v->portmap_method) {
    vc->portmap = *v->portmap;
  }
}

static const char *addr_or_empty(const nt_addr *a, char *buf) {
  buf[0] = '\0';
  return a->len ? nt_addr_str((const struct sockaddr *)&a->ss, buf) : buf;
}

/* "port-mapped (PCP) at ADDR", or "" without a mapping. */
static const char *portmap_text(const nt_addr *a, int method, char *buf,
                                size_t len) {
  char s[NT_ADDR_STRLEN];
  buf[0] = '\0';
  if (a->len && method != NT_PORTMAP_NONE) {
    snprintf(buf, len, "port-mapped (%s) at %s", nt_portmap_method_name(method),
             nt_addr_str((const struct sockaddr *)&a->ss, s));
  }
  return buf;
}

static void finish(nt_check_run *run) {
  const nt_check_env *env = &run->env;
  natter_check_result res;
  view_copy vc;
  char a_pub[NT_ADDR_STRLEN], b_pub[NT_ADDR_STRLEN];
  char a_from[NT_ADDR_STRLEN], text[1400];
  char a_pm[NT_ADDR_STRLEN + 40], b_pm[NT_ADDR_STRLEN + 40];
  char a_cands[NT_PUNCH_MAX_CANDIDATES][NT_ADDR_STRLEN];
  const char *pa[NT_PUNCH_MAX_CANDIDATES];
  nt_check_side_text b_text;

  if (run->phase == RUN_DONE) {
    return;
  }
  if (run->phase != RUN_OUTCOME && !run->error) {
    run->error = NATTER_ERR_TIMEOUT;
    snprintf(run->message, sizeof(run->message), "no outcome within %u s",
             (env->connect_timeout_ms + NT_CHECK_EXTRA_MS) / 1000);
  }
  run->phase = RUN_DONE;
  event_del(run->ev);
  nt_peer_waiter_cancel(&run->waiter);

  memset(&vc, 0, sizeof(vc));
  vc.name = run->peer;
  nt_peers_each(env->peers, find_view, &vc);
  memset(&res, 0, sizeof(res));
  res.error = run->connected ? 0 : run->error;
  res.message = run->connected ? "" : run->message;
  res.connected = run->connected;
  res.relayed = run->relayed;
  res.over_tcp = run->over_tcp;
  res.rtt_us = run->rtt_us;
  res.address = run->connected ? run->address : "";
  res.predicted = run->connected && !run->relayed && vc.found &&
                  vc.v.predicted;
  res.self_portmap = portmap_text(
      &env->self->portmap, env->self->portmap_method, a_pm, sizeof(a_pm));
  res.peer_portmap = portmap_text(
      &vc.portmap, vc.found ? vc.v.portmap_method : 0, b_pm, sizeof(b_pm));

  natter_check_side *a = &res.self, *b = &res.peer;
  a->name = env->self_name;
  a->reported = 1;
  /* Refused by the peer's rules (the broker asked it first): we tried
   * nothing, and learnt nothing about the peer but that. */
  int refused = !run->connected && run->error == NATTER_ERR_DENIED;
  a->outcome = run->connected ? "connected"
               : refused      ? ""
               : run->error   ? "failed"
                              : "";
  a->mapping = nt_mapping_to_public(env->self->mapping);
  a->public_address = addr_or_empty(&env->self->observed, a_pub);
  a->probes_from = "";
  a->candidates = pa;
  if (vc.found) {
    for (size_t i = 0; i < vc.v.ngiven; i++) {
      pa[i] = nt_addr_str((const struct sockaddr *)&vc.punch.candidates[i].ss,
                          a_cands[i]);
    }
    a->ncandidates = vc.v.ngiven;
    a->probe_rounds = vc.punch.rounds;
    a->probes_received = vc.punch.probes_seen;
    a->replies_received = vc.punch.replies_seen;
    a->probes_from = addr_or_empty(&vc.probe_from, a_from);
    res.relay_offered = vc.v.relay_offered;
    res.connect_ms = vc.v.connect_ms;
  }

  b->name = run->peer;
  b->outcome = refused ? "refused" : "";
  b->probes_from = "";
  b->candidates = b_text.pcand;
  b->mapping =
      vc.found ? nt_mapping_to_public(vc.v.mapping)
               : NATTER_NAT_MAPPING_UNKNOWN;
  b->public_address = addr_or_empty(&vc.observed, b_pub);
  if (run->have_theirs) {
    nt_check_report_side(b, &run->theirs, &b_text);
  }
  res.verdict = nt_check_verdict(&res, text, sizeof(text));
  res.verdict_text = text;

  nt_conn *conn = nt_peer_conn(nt_peers_find(env->peers, run->peer));
  if (conn) {
    nt_conn_close(conn, 0, "check done");
  }
  nt_info(env->log, "check of %s: %s", run->peer, text);
  if (run->fn) {
    run->fn(env->client, &res, run->user_data);
  }
}

static void run_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  finish(arg);
}

int nt_check_run_new(nt_check_run **prun, const nt_check_env *env,
                     const char *peer, natter_check_fn fn, void *user_data) {
  nt_check_run *run = calloc(1, sizeof(*run));
  *prun = NULL;
  if (!run) {
    return NATTER_ERR_NOMEM;
  }
  run->env = *env;
  run->ev = event_new(env->base, -1, 0, run_cb, run);
  if (!run->ev) {
    free(run);
    return NATTER_ERR_NOMEM;
  }
  snprintf(run->peer, sizeof(run->peer), "%s", peer);
  run->fn = fn;
  run->user_data = user_data;
  run->waiter.ready = check_ready;
  run->waiter.failed = check_failed;
  arm(run, (uint64_t)env->connect_timeout_ms + NT_CHECK_EXTRA_MS);
  *prun = run;
  return 0;
}

void nt_check_run_free(nt_check_run *run) {
  if (!run) {
    return;
  }
  nt_peer_waiter_cancel(&run->waiter);
  event_free(run->ev);
  free(run);
}

void nt_check_run_start(nt_check_run *run) {
  if (!run || run->phase != RUN_WAITING) {
    return;
  }
  nt_peer *p = nt_peers_get(run->env.peers, run->peer);
  if (!p) {
    nt_check_run_fail(run, NATTER_ERR_NOMEM, "out of memory");
    return;
  }
  run->phase = RUN_ASKED;
  nt_info(run->env.log, "checking the way to %s (NAT mapping: %s)", run->peer,
          nt_mapping_name(run->env.self->mapping));
  nt_peer_submit(p, &run->waiter);
}

void nt_check_run_on_introduction(nt_check_run *run, const char *peer,
                                  const uint8_t *nonce) {
  if (run && run->phase == RUN_ASKED && strcmp(peer, run->peer) == 0) {
    memcpy(run->nonce, nonce, NT_PUNCH_NONCE_LEN);
    run->have_nonce = 1;
  }
}

/* Bounds: only the report of our meeting (its nonce), only the first. */
void nt_check_run_on_report(nt_check_run *run, const nt_check_side *side) {
  if (!run || !run->have_nonce || run->have_theirs || run->phase == RUN_DONE ||
      memcmp(side->nonce, run->nonce, NT_PUNCH_NONCE_LEN) != 0 ||
      strcmp(side->peer, run->peer) != 0) {
    return;
  }
  run->theirs = *side;
  run->have_theirs = 1;
  if (side->outcome == NT_CHECK_REFUSED || run->phase == RUN_OUTCOME) {
    run->phase = RUN_OUTCOME;
    arm(run, 0);
  }
}

void nt_check_run_fail(nt_check_run *run, int error, const char *why) {
  if (!run || run->phase == RUN_DONE || run->phase == RUN_OUTCOME) {
    return;
  }
  run->error = error;
  snprintf(run->message, sizeof(run->message), "%s", why ? why : "");
  run->phase = RUN_OUTCOME;
  arm(run, 0);
}
