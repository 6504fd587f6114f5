/* Asking a listener before an introduction (protocol 2). A requester's
 * ConnectRequest becomes an AdmissionQuery to the listener carrying the
 * requester's name and key only; the listener applies its own peer rules
 * (the broker holds none of them) and answers once. Only an admitted
 * requester is introduced (nt_bclient_introduce: relay channel, check
 * slot, both Introductions); a refused one hears "refused" and nothing
 * else, and the refusal is remembered for a few seconds so that the same
 * request costs the listener nothing. Every table here is bounded
 * (broker_internal.h) and each limit is logged, at most once a second. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_internal.h"

#define NS_PER_S 1000000000ull

static void admission_log(natter_broker *b, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One line a second per kind; the lines left out are counted in the
 * next. */
static void admission_log(natter_broker *b, int kind, const char *fmt, ...) {
  badmission *a = &b->admission;
  uint64_t now = nt_monotonic_ns();
  char line[400];
  unsigned held;
  va_list ap;
  if (!nt_log_gate_pass(&a->logged[kind], now, &held)) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (held) {
    nt_info(&b->log, "%s (and %u more like it in the last second)", line,
            held);
  } else {
    nt_info(&b->log, "%s", line);
  }
}

static void arm_timer(natter_broker *b);

/* The admitted queries' introductions, from a fresh turn of the loop. */
static void intro_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  (void)fd;
  (void)what;
  for (size_t i = 0; i < BROKER_MAX_QUERIES; i++) {
    bquery *q = &b->admission.queries[i];
    if (!q->query_id || !q->admitted) {
      continue;
    }
    bquery done = *q;
    q->query_id = 0;
    q->admitted = 0;
    if (done.remote) {
      if (done.listener && !done.listener->dead) {
        nt_xintro_admitted(b, done.remote, done.listener);
      } else {
        nt_xintro_refused(b, done.remote, NT_CODE_PEER_UNKNOWN,
                          "the peer left before it answered");
      }
    } else if (done.requester && !done.requester->dead && done.listener &&
               !done.listener->dead) {
      nt_bclient_introduce(done.requester, done.listener, done.request_id,
                           done.check);
    }
  }
}

/* Ends the queries whose answer did not come in time. */
static void timeout_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  uint64_t now = nt_monotonic_ns();
  char why[NT_CONTROL_TEXT_MAX + 1];
  (void)fd;
  (void)what;
  for (size_t i = 0; i < BROKER_MAX_QUERIES; i++) {
    bquery *q = &b->admission.queries[i];
    if (!q->query_id || q->admitted || now < q->expires_ns) {
      continue;
    }
    admission_log(b, BROKER_ADMIT_LOG_TIMEOUT,
                  "%s did not answer whether it admits %s within %llu s",
                  q->listener->name, q->name,
                  BROKER_QUERY_TIMEOUT_NS / NS_PER_S);
    nt_broker_note_intro(b, q->requester, q->name, q->listener,
                         q->listener->name, NT_INTRO_TIMEOUT, q->check, NULL);
    snprintf(why, sizeof(why),
             "%s did not answer whether it admits you (stopped, or cut "
             "off from the broker?)",
             q->listener->name);
    if (q->remote) {
      nt_xintro_refused(b, q->remote, NT_CODE_TIMEOUT, why);
    } else if (q->requester) {
      nt_bclient_connect_result(q->requester, q->request_id, NT_CODE_TIMEOUT,
                                why);
    }
    q->query_id = 0;
  }
  arm_timer(b);
}

/* Arms the timer for the earliest query's timeout, if any. */
static void arm_timer(natter_broker *b) {
  badmission *a = &b->admission;
  uint64_t first = UINT64_MAX, now = nt_monotonic_ns();
  for (size_t i = 0; i < BROKER_MAX_QUERIES; i++) {
    if (a->queries[i].query_id && !a->queries[i].admitted &&
        a->queries[i].expires_ns < first) {
      first = a->queries[i].expires_ns;
    }
  }
  if (!a->timer) {
    return;
  }
  if (first == UINT64_MAX) {
    event_del(a->timer);
    return;
  }
  uint64_t in_us = (first > now ? first - now : 0) / 1000 + 1;
  struct timeval tv = {(time_t)(in_us / 1000000),
                       (suseconds_t)(in_us % 1000000)};
  event_add(a->timer, &tv);
}

/* Whether |listener| refused |name| with |key| within the last
 * BROKER_REFUSED_TTL_NS. */
static int refused_lately(natter_broker *b, const bclient *listener,
                          const char *name, const uint8_t *key, uint64_t now) {
  for (size_t i = 0; i < BROKER_REFUSED_CACHE; i++) {
    const brefused *r = &b->admission.refused[i];
    if (r->listener == listener && now < r->expires_ns &&
        strcmp(r->name, name) == 0 &&
        memcmp(r->key, key, NT_FINGERPRINT_LEN) == 0) {
      return 1;
    }
  }
  return 0;
}

static void remember_refusal(natter_broker *b, const bclient *listener,
                             const char *name, const uint8_t *key) {
  badmission *a = &b->admission;
  brefused *r = &a->refused[a->refused_next];
  a->refused_next = (a->refused_next + 1) % BROKER_REFUSED_CACHE;
  r->listener = listener;
  snprintf(r->name, sizeof(r->name), "%s", name);
  memcpy(r->key, key, NT_FINGERPRINT_LEN);
  r->expires_ns = nt_monotonic_ns() + BROKER_REFUSED_TTL_NS;
}

/* What the requester hears when |listener| does not admit it: that much,
 * and nothing about the listener. */
static void tell_refused(natter_broker *b, bclient *requester,
                         uint32_t request_id, uint32_t remote,
                         const char *listener) {
  char why[NT_CONTROL_TEXT_MAX + 1];
  b->refused_introductions++;
  snprintf(why, sizeof(why), "%s's peer rules do not admit you", listener);
  if (remote) {
    nt_xintro_refused(b, remote, NT_CODE_DENIED, why);
  } else if (requester) {
    nt_bclient_connect_result(requester, request_id, NT_CODE_DENIED, why);
  }
}

/* Whoever hears the answer: |c| (request |request_id|) or, when |remote|,
 * the broker of a requester elsewhere. */
static void answer(natter_broker *b, bclient *c, uint32_t request_id,
                   uint32_t remote, nt_control_code code, const char *why) {
  if (remote) {
    nt_xintro_refused(b, remote, code, why);
  } else if (c) {
    nt_bclient_connect_result(c, request_id, code, why);
  }
}

static void ask(natter_broker *b, bclient *c, bclient *peer, const char *name,
                const uint8_t *key, uint32_t request_id, int check,
                uint32_t remote);

void nt_admission_ask(bclient *c, bclient *peer, const nt_connect_request *r) {
  ask(c->broker, c, peer, c->name, nt_conn_peer_fingerprint(c->conn),
      r->request_id, r->check, 0);
}

void nt_admission_ask_remote(natter_broker *b, bclient *peer, const char *name,
                             const uint8_t *key, int check, uint32_t remote) {
  ask(b, NULL, peer, name, key, 0, check, remote);
}

static void ask(natter_broker *b, bclient *c, bclient *peer, const char *name,
                const uint8_t *key, uint32_t request_id, int check,
                uint32_t remote) {
  badmission *a = &b->admission;
  uint64_t now = nt_monotonic_ns();
  size_t mine = 0, theirs = 0;
  bquery *slot = NULL;
  char why[NT_CONTROL_TEXT_MAX + 1];

  if (refused_lately(b, peer, name, key, now)) {
    admission_log(b, BROKER_ADMIT_LOG_REFUSED,
                  "%s's peer rules do not admit %s (refused lately; not "
                  "asked again)",
                  peer->name, name);
    nt_broker_note_intro(b, c, name, peer, peer->name, NT_INTRO_REFUSED, check,
                         NULL);
    tell_refused(b, c, request_id, remote, peer->name);
    return;
  }
  for (size_t i = 0; i < BROKER_MAX_QUERIES; i++) {
    bquery *q = &a->queries[i];
    if (!q->query_id) {
      slot = slot ? slot : q;
      continue;
    }
    mine += c && q->requester == c;
    theirs += q->listener == peer;
  }
  if (mine >= BROKER_QUERIES_PER_REQUESTER ||
      theirs >= BROKER_QUERIES_PER_LISTENER || !slot) {
    char which[100];
    if (mine >= BROKER_QUERIES_PER_REQUESTER) {
      snprintf(which, sizeof(which),
               "requests of yours await an answer (limit %d)",
               BROKER_QUERIES_PER_REQUESTER);
    } else if (!slot) {
      snprintf(which, sizeof(which),
               "requests await an answer at the broker (limit %d)",
               BROKER_MAX_QUERIES);
    } else {
      snprintf(which, sizeof(which),
               "requests await that peer's answer (limit %d)",
               BROKER_QUERIES_PER_LISTENER);
    }
    admission_log(b, BROKER_ADMIT_LOG_LIMIT,
                  "not asking %s about %s: too many %s", peer->name, name,
                  which);
    nt_broker_note_intro(b, c, name, peer, peer->name, NT_INTRO_RATE_LIMITED,
                         check, NULL);
    snprintf(why, sizeof(why), "too many %s; try again in a few seconds",
             which);
    answer(b, c, request_id, remote, NT_CODE_INTERNAL, why);
    return;
  }
  if (!a->timer) {
    a->timer = event_new(b->base, -1, 0, timeout_cb, b);
    a->intro_ev = event_new(b->base, -1, 0, intro_cb, b);
    if (!a->timer || !a->intro_ev) {
      nt_admission_free(b);
      answer(b, c, request_id, remote, NT_CODE_INTERNAL, "out of memory");
      return;
    }
  }
  if (++a->next_id == 0) {
    a->next_id = 1;
  }
  memset(slot, 0, sizeof(*slot));
  slot->query_id = a->next_id;
  slot->listener = peer;
  slot->requester = c;
  slot->remote = remote;
  snprintf(slot->name, sizeof(slot->name), "%s", name);
  memcpy(slot->key, key, NT_FINGERPRINT_LEN);
  slot->request_id = request_id;
  slot->check = check;
  slot->expires_ns = now + BROKER_QUERY_TIMEOUT_NS;

  nt_control msg = {.type = NT_CONTROL_ADMISSION_QUERY};
  nt_admission_query *q = &msg.u.admission_query;
  q->query_id = slot->query_id;
  snprintf(q->peer, sizeof(q->peer), "%s", name);
  memcpy(q->key, key, NT_FINGERPRINT_LEN);
  q->check = check;
  nt_debug(&b->log, "asking %s whether it admits %s%s%s", peer->name, name,
           remote ? " (at another broker)" : "", check ? " for a check" : "");
  nt_bclient_send(peer, &msg);
  arm_timer(b);
}

static bquery *find_query(natter_broker *b, const bclient *listener,
                          uint32_t query_id) {
  if (query_id == 0) {
    return NULL;
  }
  for (size_t i = 0; i < BROKER_MAX_QUERIES; i++) {
    bquery *q = &b->admission.queries[i];
    if (q->query_id == query_id && q->listener == listener && !q->admitted) {
      return q;
    }
  }
  return NULL;
}

int nt_admission_owed(const bclient *c, const nt_admission_answer *a) {
  return find_query(c->broker, c, a->query_id) != NULL;
}

void nt_admission_on_answer(bclient *c, const nt_admission_answer *a) {
  natter_broker *b = c->broker;
  bquery *q = find_query(b, c, a->query_id);
  if (!q) {
    nt_debug(&b->log, "%s: answer to no question of ours (late?); ignored",
             c->name);
    return;
  }
  if (a->admitted) {
    q->admitted = 1;
    event_active(b->admission.intro_ev, EV_TIMEOUT, 0);
    arm_timer(b);
    return;
  }
  bquery done = *q;
  q->query_id = 0;
  arm_timer(b);
  remember_refusal(b, c, done.name, done.key);
  admission_log(b, BROKER_ADMIT_LOG_REFUSED,
                "%s's peer rules do not admit %s: refused, no introduction",
                c->name, done.name);
  nt_broker_note_intro(b, done.requester, done.name, c, c->name,
                       NT_INTRO_REFUSED, done.check, NULL);
  if (done.requester || done.remote) {
    tell_refused(b, done.requester, done.request_id, done.remote, c->name);
  }
}

void nt_admission_reset(bclient *c) {
  natter_broker *b = c->broker;
  size_t n = 0;
  for (size_t i = 0; i < BROKER_REFUSED_CACHE; i++) {
    if (b->admission.refused[i].listener == c) {
      b->admission.refused[i].listener = NULL;
      n++;
    }
  }
  nt_info(&b->log, "%s changed its peer rules: %zu refusals forgotten", c->name,
          n);
}

void nt_admission_on_leave(bclient *c) {
  natter_broker *b = c->broker;
  char why[NT_CONTROL_TEXT_MAX + 1];
  for (size_t i = 0; i < BROKER_MAX_QUERIES; i++) {
    bquery *q = &b->admission.queries[i];
    if (q->query_id && q->listener == c && q->remote) {
      snprintf(why, sizeof(why), "%s left before it answered", c->name);
      nt_xintro_refused(b, q->remote, NT_CODE_PEER_UNKNOWN, why);
      q->remote = 0;
    }
    if (q->query_id && q->listener == c && q->requester &&
        !q->requester->dead) {
      snprintf(why, sizeof(why), "%s left before it answered", c->name);
      nt_broker_note_intro(b, q->requester, q->name, NULL, c->name,
                           NT_INTRO_UNKNOWN, q->check, NULL);
      nt_bclient_connect_result(q->requester, q->request_id,
                                NT_CODE_PEER_UNKNOWN, why);
      q->requester = NULL;
    }
  }
}

void nt_admission_forget(natter_broker *b, const bclient *c) {
  badmission *a = &b->admission;
  for (size_t i = 0; i < BROKER_MAX_QUERIES; i++) {
    bquery *q = &a->queries[i];
    if (q->listener == c) {
      q->query_id = 0;
      q->listener = NULL;
    }
    if (q->requester == c) {
      q->requester = NULL; /* the answer is still owed */
    }
  }
  for (size_t i = 0; i < BROKER_REFUSED_CACHE; i++) {
    if (a->refused[i].listener == c) {
      a->refused[i].listener = NULL;
    }
  }
}

void nt_admission_free(natter_broker *b) {
  if (b->admission.timer) {
    event_free(b->admission.timer);
    b->admission.timer = NULL;
  }
  if (b->admission.intro_ev) {
    event_free(b->admission.intro_ev);
    b->admission.intro_ev = NULL;
  }
}
