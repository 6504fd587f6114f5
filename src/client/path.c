#include "client/path.h"

#include <netinet/in.h>
#include <string.h>

#include "codec/mapping.h"

#define MS(x) ((uint64_t)(x)*1000000ull)

static uint64_t min_ns(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

static int in_list(const nt_addr *list, size_t n, const struct sockaddr *a) {
  for (size_t i = 0; i < n; i++) {
    if (nt_addr_equal((const struct sockaddr *)&list[i].ss, a)) {
      return 1;
    }
  }
  return 0;
}

static int has_candidate(const nt_punch *p, const nt_addr *a) {
  return in_list(p->candidates, p->ncandidates,
                 (const struct sockaddr *)&a->ss);
}

static int reaches(const nt_path_self *self, int family) {
  return family == AF_INET    ? self->reaches_ipv4
         : family == AF_INET6 ? self->reaches_ipv6
                              : 0;
}

/* Whether IPv6 |a| lies in the /64 of one of our own offered addresses:
 * our own network, even though the address is global. */
static int in_own_prefix(const nt_path_self *self, const struct sockaddr *a) {
  if (a->sa_family != AF_INET6) {
    return 0;
  }
  const uint8_t *x = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
  for (size_t i = 0; i < self->nlocal; i++) {
    const struct sockaddr *own = (const struct sockaddr *)&self->local[i].ss;
    if (own->sa_family == AF_INET6 &&
        memcmp(x, ((const struct sockaddr_in6 *)own)->sin6_addr.s6_addr, 8) ==
            0) {
      return 1;
    }
  }
  return 0;
}

nt_path_scope nt_path_scope_of(const struct sockaddr *a) {
  if ((a->sa_family != AF_INET && a->sa_family != AF_INET6) ||
      nt_addr_port(a) == 0) {
    return NT_PATH_SCOPE_NONE;
  }
  if (nt_addr_is_loopback(a)) {
    return NT_PATH_SCOPE_LOOPBACK;
  }
  if (a->sa_family == AF_INET) {
    uint32_t v = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
    if ((v >> 24) == 0 || (v >> 28) >= 0xe || /* 0/8, 224/4 and 240/4 */
        (v >> 16) == 0xa9fe) {                /* 169.254/16 link-local */
      return NT_PATH_SCOPE_NONE;
    }
    if ((v >> 24) == 10 || (v >> 20) == 0xac1 || /* 10/8, 172.16/12 */
        (v >> 16) == 0xc0a8 ||                   /* 192.168/16 */
        (v >> 22) == (100u << 2 | 1) ||          /* 100.64/10 */
        (v >> 17) == (198u << 7 | 9)) {          /* 198.18/15 */
      return NT_PATH_SCOPE_PRIVATE;
    }
    return NT_PATH_SCOPE_GLOBAL;
  }
  const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
  if (IN6_IS_ADDR_UNSPECIFIED(v6) || IN6_IS_ADDR_MULTICAST(v6) ||
      IN6_IS_ADDR_LINKLOCAL(v6) || IN6_IS_ADDR_V4MAPPED(v6)) {
    return NT_PATH_SCOPE_NONE;
  }
  return (v6->s6_addr[0] & 0xfe) == 0xfc ? NT_PATH_SCOPE_PRIVATE
                                         : NT_PATH_SCOPE_GLOBAL;
}

int nt_path_observed_usable(const nt_addr *broker, const nt_addr *observed) {
  if (!observed->len) {
    return 0;
  }
  nt_path_scope peer = nt_path_scope_of((const struct sockaddr *)&observed->ss);
  nt_path_scope ours = nt_path_scope_of((const struct sockaddr *)&broker->ss);
  switch (peer) {
  case NT_PATH_SCOPE_NONE:
    return 0;
  case NT_PATH_SCOPE_LOOPBACK:
    return ours == NT_PATH_SCOPE_LOOPBACK;
  case NT_PATH_SCOPE_PRIVATE:
    return ours == NT_PATH_SCOPE_LOOPBACK || ours == NT_PATH_SCOPE_PRIVATE;
  case NT_PATH_SCOPE_GLOBAL:
    return 1;
  }
  return 0;
}

size_t nt_path_candidates(const nt_path_self *self, const nt_addr *observed,
                          const nt_addr *local, size_t nlocal, nt_addr *cands,
                          size_t *skipped) {
  size_t n = 0;
  const struct sockaddr *obs = (const struct sockaddr *)&observed->ss;
  *skipped = 0;
  if (observed->len && reaches(self, obs->sa_family)) {
    cands[n++] = *observed;
  }
  int same_lan =
      observed->len && self->observed->len &&
      nt_addr_same_host(obs, (const struct sockaddr *)&self->observed->ss);
  for (int lan = 0; lan < 2; lan++) {
    for (size_t i = 0; i < nlocal && n < NT_PUNCH_MAX_CANDIDATES; i++) {
      const struct sockaddr *a = (const struct sockaddr *)&local[i].ss;
      const uint8_t *b = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
      int public6 = a->sa_family == AF_INET6 && (b[0] & 0xe0) == 0x20 &&
                    !in_own_prefix(self, a);
      if (public6 == lan || !reaches(self, a->sa_family) ||
          in_list(cands, n, a)) {
        continue; /* a public LAN address repeats the observed one */
      }
      if (lan && a->sa_family == AF_INET &&
          nt_path_scope_of(a) != NT_PATH_SCOPE_PRIVATE) {
        (*skipped)++;
        continue; /* not a LAN address at all */
      }
      if (lan && !same_lan) {
        (*skipped)++;
        continue;
      }
      cands[n++] = local[i];
    }
  }
  return n;
}

/* Adds |a| to |p|'s candidates; 0 when it is one already or there is no
 * room. */
static int add_candidate(nt_punch *p, const nt_addr *a) {
  if (has_candidate(p, a) || p->ncandidates >= NT_PUNCH_MAX_CANDIDATES) {
    return 0;
  }
  p->candidates[p->ncandidates++] = *a;
  return 1;
}

typedef struct probe_list {
  nt_addr *to;
  size_t *n;
} probe_list;

static void collect_probe(const uint8_t *pkt, size_t len, const nt_addr *to,
                          void *ud) {
  probe_list *l = ud;
  (void)pkt;
  (void)len;
  if (*l->n < NT_PUNCH_MAX_CANDIDATES) {
    l->to[(*l->n)++] = *to;
  }
}

/* nt_punch_on_expiry, with the probes due added to |to|. */
static int punch_due(nt_punch *p, uint64_t now, nt_addr *to, size_t *n) {
  probe_list l = {to, n};
  return nt_punch_on_expiry(p, now, collect_probe, &l);
}

int nt_path_portmap_usable(const nt_addr *observed, const nt_addr *portmap) {
  return observed->len && portmap->len && portmap->ss.ss_family == AF_INET &&
         nt_path_scope_of((const struct sockaddr *)&portmap->ss) ==
             NT_PATH_SCOPE_GLOBAL &&
         nt_addr_same_host((const struct sockaddr *)&observed->ss,
                           (const struct sockaddr *)&portmap->ss);
}

size_t nt_path_add_portmap(nt_addr *cands, size_t n, const nt_addr *portmap) {
  for (size_t i = 0; i < n; i++) {
    if (nt_addr_equal((const struct sockaddr *)&cands[i].ss,
                      (const struct sockaddr *)&portmap->ss)) {
      return n;
    }
  }
  size_t at = n ? 1 : 0;
  if (n == NT_PUNCH_MAX_CANDIDATES) {
    n--;
  }
  memmove(&cands[at + 1], &cands[at], (n - at) * sizeof(cands[0]));
  cands[at] = *portmap;
  return n + 1;
}

uint64_t nt_path_relay_after_ms(int self_mapping, int peer_mapping,
                                uint32_t connect_timeout_ms) {
  uint64_t after =
      peer_mapping != NT_MAPPING_UNKNOWN && peer_mapping == self_mapping
          ? NT_PATH_RELAY_AFTER_KNOWN_MS
          : NT_PATH_RELAY_AFTER_MS;
  if (after > connect_timeout_ms / 3) {
    after = connect_timeout_ms / 3;
  }
  return after;
}

static void set_relay_at(nt_path *pa) {
  pa->relay_at_ns =
      pa->meet_ns +
      MS(nt_path_relay_after_ms(pa->self_mapping, pa->peer_mapping,
                                pa->connect_timeout_ms));
}

void nt_path_meet(nt_path *pa, const nt_path_meeting *m, uint64_t now_ns) {
  pa->initiator = m->initiator;
  pa->self_mapping = m->self_mapping;
  pa->peer_mapping = m->peer_mapping;
  pa->connect_timeout_ms = m->connect_timeout_ms;
  pa->meet_ns = now_ns;
  pa->deadline_ns = m->deadline_ns;
  pa->relay_offered = m->relay_offered;
  pa->relay_started = 0;
  if (pa->relay_offered) {
    set_relay_at(pa);
  }
  pa->have_direct = 0;
  pa->upgrade_next_ns = 0;
  pa->upgrade_round = 0;
  pa->have_probe_from = 0;
  pa->predicted = 0;
  memset(&pa->predict, 0, sizeof(pa->predict));
  pa->predict.next_ns = UINT64_MAX;
  pa->repunch_active = 0;
  pa->repredict = 0;
  pa->ngiven = m->ncandidates;
  nt_punch_init(&pa->punch, m->nonce, m->candidates, m->ncandidates, now_ns,
                MS(m->connect_timeout_ms));
}

nt_path_predict_gate_result nt_path_predict_gate(const nt_path *pa,
                                                 uint64_t now_ns,
                                                 unsigned same_ip,
                                                 unsigned all) {
  if (nt_predict_role_for(pa->self_mapping, pa->peer_mapping) ==
      NT_PREDICT_NONE) {
    return NT_PATH_PREDICT_NOT_NEEDED;
  }
  if (now_ns < pa->predict_quiet_until_ns) {
    return NT_PATH_PREDICT_COOLING;
  }
  if (same_ip >= NT_PATH_PREDICT_PER_IP) {
    return NT_PATH_PREDICT_IP_BUSY;
  }
  if (all >= NT_PATH_PREDICT_MAX) {
    return NT_PATH_PREDICT_BUSY;
  }
  return NT_PATH_PREDICT_OK;
}

size_t nt_path_predict_share(unsigned easy) {
  size_t per_tick = NT_PATH_PREDICT_RATE * NT_PREDICT_TICK_MS / 1000;
  size_t share = easy > 1 ? per_tick / easy : per_tick;
  return share < 1                       ? 1
         : share > NT_PATH_PREDICT_BATCH ? NT_PATH_PREDICT_BATCH
                                         : share;
}

void nt_path_start_prediction(nt_path *pa, int possible,
                              const uint8_t seed[8]) {
  static const uint8_t zero[8] = {0};
  nt_predict_role role =
      possible ? nt_predict_role_for(pa->self_mapping, pa->peer_mapping)
               : NT_PREDICT_NONE;
  pa->predicted = 0;
  nt_predict_init(&pa->predict, role, pa->meet_ns, possible ? seed : zero);
  if (role != NT_PREDICT_NONE) {
    /* Until it connects, this meeting counts as one that found nothing:
     * a new introduction replacing it must not start another. */
    pa->predict_quiet_until_ns =
        pa->deadline_ns + MS(NT_PATH_PREDICT_COOLDOWN_MS);
  }
}

void nt_path_on_self_mapping(nt_path *pa, int self_mapping) {
  pa->self_mapping = self_mapping;
  if (pa->relay_offered && !pa->relay_started) {
    set_relay_at(pa);
  }
}

static void predict_due(nt_path *pa, uint64_t now, nt_path_plan *plan) {
  nt_predict_role role = pa->predict.role;
  /* A live connection stalls until a probe hits: alone, it probes at the
   * endpoint's whole rate (twice a meeting's). */
  pa->predict.tick_ms =
      pa->repredict && pa->predict_alone
          ? NT_PREDICT_TICK_MS * NT_PREDICT_RATE / NT_PATH_PREDICT_RATE
          : NT_PREDICT_TICK_MS;
  int first =
      role == NT_PREDICT_HARD ? pa->predict.rounds == 0 : pa->predict.sent == 0;
  size_t max = pa->predict_batch && pa->predict_batch < NT_PATH_PREDICT_BATCH
                   ? pa->predict_batch
                   : NT_PATH_PREDICT_BATCH;
  size_t n = nt_predict_due(&pa->predict, now, plan->predict_ports, max);
  if (!n) {
    return;
  }
  if (role == NT_PREDICT_HARD) {
    plan->predict_open = first;
    plan->predict_burst = 1;
    return;
  }
  plan->npredict_ports = n;
  plan->predict_first = first;
}

/* The handshake's schedule: probing goes on while it runs through the
 * relay, until the deadline. */
static void connecting_due(nt_path *pa, uint64_t now, nt_path_plan *plan) {
  if (now >= pa->deadline_ns) {
    plan->handshake_timeout = 1;
    return;
  }
  if (pa->relay_started &&
      !punch_due(&pa->punch, now, plan->probes, &plan->nprobes)) {
    plan->next_ns = min_ns(nt_punch_next_expiry(&pa->punch), pa->deadline_ns);
    return;
  }
  plan->next_ns = pa->deadline_ns;
}

static void punching_due(nt_path *pa, uint64_t now, nt_path_plan *plan) {
  int expired = punch_due(&pa->punch, now, plan->probes, &plan->nprobes);
  predict_due(pa, now, plan);
  if (pa->relay_offered && !pa->relay_started && now >= pa->relay_at_ns &&
      now < pa->deadline_ns) {
    plan->start_relay_fallback = 1;
    pa->relay_started = 1;
    pa->bind_next_ns = now + MS(NT_PATH_RELAY_BIND_MS);
    if (pa->initiator) {
      connecting_due(pa, now, plan); /* the caller connects through it */
      return;
    }
  }
  if (pa->relay_started && now >= pa->bind_next_ns) {
    plan->relay_bind = 1;
    pa->bind_next_ns = now + MS(NT_PATH_RELAY_BIND_MS);
  }
  if (!expired && now < pa->deadline_ns) {
    uint64_t next = nt_punch_next_expiry(&pa->punch);
    if (pa->relay_offered && !pa->relay_started) {
      next = min_ns(next, pa->relay_at_ns);
    }
    if (pa->relay_started) {
      next = min_ns(next, pa->bind_next_ns);
    }
    next = min_ns(next, nt_predict_next(&pa->predict));
    plan->next_ns = min_ns(next, pa->deadline_ns);
    return;
  }
  plan->give_up = 1;
}

/* Relayed and connected: a round of probes every NT_PATH_UPGRADE_MS. */
static void upgrade_due(nt_path *pa, int relayed, uint64_t now,
                        nt_path_plan *plan) {
  if (!relayed || !pa->punch.ncandidates) {
    if (pa->upgrade_next_ns && !pa->initiator) {
      plan->now_direct = 1;
    }
    pa->upgrade_next_ns = 0;
    return;
  }
  if (pa->initiator && pa->have_direct) {
    pa->have_direct = 0;
    plan->move_direct = 1;
    plan->direct = pa->direct;
    return;
  }
  if (!pa->upgrade_round) {
    if (now < pa->upgrade_next_ns) {
      return;
    }
    nt_addr cands[NT_PUNCH_MAX_CANDIDATES];
    uint8_t nonce[NT_PUNCH_NONCE_LEN];
    size_t n = pa->punch.ncandidates;
    memcpy(cands, pa->punch.candidates, n * sizeof(cands[0]));
    memcpy(nonce, pa->punch.nonce, sizeof(nonce));
    nt_punch_init(&pa->punch, nonce, cands, n, now,
                  MS(NT_PATH_UPGRADE_ROUND_MS));
    pa->upgrade_round = 1;
  }
  if (punch_due(&pa->punch, now, plan->probes, &plan->nprobes)) {
    pa->upgrade_round = 0;
    pa->upgrade_next_ns = now + MS(NT_PATH_UPGRADE_MS);
  } else {
    pa->upgrade_next_ns = nt_punch_next_expiry(&pa->punch);
  }
}

static void repunch_due(nt_path *pa, uint64_t now, nt_path_plan *plan) {
  if (pa->repunch_active && punch_due(&pa->repunch, now, plan->repunch_probes,
                                      &plan->nrepunch_probes)) {
    pa->repunch_active = 0;
  }
  if (pa->repredict && !pa->repunch_active) {
    nt_path_repredict_end(pa);
    pa->repredict_over = 1;
  }
  if (pa->repredict) {
    predict_due(pa, now, plan);
  }
}

uint64_t nt_path_live_next(const nt_path *pa) {
  uint64_t next = pa->upgrade_next_ns ? pa->upgrade_next_ns : UINT64_MAX;
  if (pa->repunch_active) {
    next = min_ns(next, nt_punch_next_expiry(&pa->repunch));
  }
  if (pa->repredict) {
    next = min_ns(next, nt_predict_next(&pa->predict));
  }
  return next;
}

void nt_path_due(nt_path *pa, nt_path_phase phase, int relayed, uint64_t now_ns,
                 nt_path_plan *plan) {
  memset(plan, 0, sizeof(*plan));
  plan->next_ns = UINT64_MAX;
  switch (phase) {
  case NT_PATH_PUNCHING:
    punching_due(pa, now_ns, plan);
    break;
  case NT_PATH_CONNECTING:
    connecting_due(pa, now_ns, plan);
    break;
  case NT_PATH_CONNECTED:
    upgrade_due(pa, relayed, now_ns, plan);
    if (plan->move_direct) {
      return; /* the caller asks again once it has moved */
    }
    repunch_due(pa, now_ns, plan);
    plan->next_ns = nt_path_live_next(pa);
    break;
  }
}

nt_path_probe_back nt_path_on_probe(nt_path *pa, nt_path_phase phase,
                                    const nt_addr *from,
                                    int on_prediction_socket) {
  pa->punch.probes_seen++;
  if (!pa->have_probe_from) {
    pa->probe_from = *from;
    pa->have_probe_from = 1;
  }
  if (on_prediction_socket) {
    return NT_PATH_PROBE_BACK_ON_SOCKET;
  }
  if ((phase == NT_PATH_PUNCHING || pa->relay_started) &&
      add_candidate(&pa->punch, from)) {
    return NT_PATH_PROBE_BACK_NEW;
  }
  if (pa->initiator && phase == NT_PATH_PUNCHING && !pa->punch.replies_seen) {
    return NT_PATH_PROBE_BACK;
  }
  return NT_PATH_PROBE_ANSWER_ONLY;
}

nt_path_reply_action nt_path_on_reply(nt_path *pa, nt_path_phase phase,
                                      const nt_addr *from,
                                      int on_prediction_socket) {
  pa->punch.replies_seen++;
  /* Found by prediction: on an extra socket, or (probing a symmetric
   * peer's ports) from a port the broker never saw. */
  int predicted =
      on_prediction_socket ||
      (pa->predict.role == NT_PREDICT_EASY && !has_candidate(&pa->punch, from));
  if (on_prediction_socket && phase != NT_PATH_PUNCHING) {
    return NT_PATH_REPLY_IGNORE; /* upgrades use the main socket */
  }
  if (pa->initiator && pa->relay_started && phase != NT_PATH_PUNCHING) {
    if (phase == NT_PATH_CONNECTED) {
      return NT_PATH_REPLY_MOVE_DIRECT;
    }
    if (!pa->have_direct) {
      pa->direct = *from; /* taken once the connection is up */
      pa->have_direct = 1;
    }
    return NT_PATH_REPLY_IGNORE;
  }
  if (!pa->initiator || phase != NT_PATH_PUNCHING) {
    return NT_PATH_REPLY_IGNORE;
  }
  pa->predicted = predicted;
  return NT_PATH_REPLY_CONNECT;
}

void nt_path_on_established(nt_path *pa, uint64_t now_ns, int relayed,
                            int on_prediction_socket) {
  if (on_prediction_socket) {
    pa->predicted = 1;
  }
  pa->predict_quiet_until_ns = 0; /* the meeting did not fail */
  if (relayed) {
    pa->upgrade_next_ns = now_ns + MS(NT_PATH_UPGRADE_MS);
    if (pa->initiator && pa->have_direct) {
      pa->upgrade_next_ns = now_ns; /* a punch answered meanwhile */
    }
  }
}

void nt_path_on_remote(nt_path *pa, const nt_addr *remote) {
  if (pa->predict.role == NT_PREDICT_EASY && pa->predict.sent > 0 &&
      !in_list(pa->punch.candidates, pa->ngiven,
               (const struct sockaddr *)&remote->ss)) {
    pa->predicted = 1;
  }
}

void nt_path_on_moved_direct(nt_path *pa) {
  pa->upgrade_next_ns = 0;
  pa->upgrade_round = 0;
}

void nt_path_reset(nt_path *pa) {
  pa->predict.role = NT_PREDICT_NONE;
  pa->have_probe_from = 0;
  pa->relay_started = 0;
  pa->upgrade_next_ns = 0;
  pa->upgrade_round = 0;
  pa->have_direct = 0;
  pa->repunch_active = 0;
  pa->repredict = 0;
}

void nt_path_forget(nt_path *pa) {
  memset(pa, 0, sizeof(*pa));
  pa->predict.next_ns = UINT64_MAX;
}

int nt_path_refresh_due(nt_path *pa, uint64_t now_ns) {
  if (pa->refresh_ns &&
      now_ns - pa->refresh_ns < MS(NT_PATH_REFRESH_INTERVAL_MS)) {
    return 0;
  }
  pa->refresh_ns = now_ns;
  return 1;
}

void nt_path_repunch_start(nt_path *pa, const uint8_t *nonce,
                           const nt_addr *cands, size_t ncands,
                           uint64_t now_ns) {
  if (pa->repunch_active) {
    memcpy(pa->repunch_prev, pa->repunch.nonce, NT_PUNCH_NONCE_LEN);
    pa->have_repunch_prev = 1;
  }
  nt_punch_init(&pa->repunch, nonce, cands, ncands, now_ns,
                MS((uint64_t)NT_PATH_REPUNCH_S * 1000));
  pa->repunch_active = 1;
}

nt_predict_role nt_path_repredict_start(nt_path *pa, const uint8_t seed[8],
                                        uint64_t now_ns) {
  nt_predict_role role =
      nt_predict_role_for(pa->self_mapping, pa->peer_mapping);
  if (pa->repredict || !pa->repunch_active || role == NT_PREDICT_NONE) {
    return NT_PREDICT_NONE;
  }
  /* The meeting's head start of plain punching is not needed: the path
   * is known dead, and every moment of it is a stall. Both sides start
   * at once: the easy side's first probes may come before the hard
   * side's new mappings and miss (a few of its 2500), but each later
   * probe hits as likely as ever. */
  uint64_t head = role == NT_PREDICT_HARD ? MS(NT_PREDICT_HARD_START_MS)
                                          : MS(NT_PREDICT_EASY_START_MS);
  uint64_t base = now_ns > head ? now_ns - head : 0;
  nt_predict_init(&pa->predict, role, base, seed);
  pa->repredict = 1;
  pa->repredict_over = 0;
  return role;
}

void nt_path_repredict_end(nt_path *pa) {
  pa->repredict = 0;
  pa->predict.role = NT_PREDICT_NONE;
  pa->predict.next_ns = UINT64_MAX;
}

int nt_path_is_repunch(const nt_path *pa, const uint8_t *nonce) {
  return pa->repunch_active &&
         (memcmp(pa->repunch.nonce, nonce, NT_PUNCH_NONCE_LEN) == 0 ||
          (pa->have_repunch_prev &&
           memcmp(pa->repunch_prev, nonce, NT_PUNCH_NONCE_LEN) == 0));
}

int nt_path_on_repunch_packet(nt_path *pa, int type, const nt_addr *from) {
  if (type != NT_PUNCH_PROBE) {
    pa->repunch.replies_seen++;
    return 0;
  }
  pa->repunch.probes_seen++;
  /* Its probe came from where it is now: probing back there too (a
   * peer-reflexive candidate) opens our NAT for it. */
  return from && add_candidate(&pa->repunch, from);
}

int nt_path_kick_due(nt_path *pa, uint64_t now_ns) {
  if (now_ns - pa->kick_ns <= MS(NT_PATH_KICK_INTERVAL_MS)) {
    return 0;
  }
  pa->kick_ns = now_ns;
  return 1;
}
