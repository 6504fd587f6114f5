/* Path finding's I/O for the peer table: path.h decides, this file
 * does. An introduction starts a meeting; the one timer per peer asks
 * the planner what is due and sends the probes, opens the prediction
 * sockets, falls back onto the broker's relay, moves a relayed
 * connection to a direct path, punches again for a live connection, or
 * gives up with a report of what was tried. Probes and replies are
 * matched to their peer by nonce, and incoming connections (direct or
 * relayed) to the peer we punch to. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "client/peer_internal.h"
#include "client/predict.h"
#include "codec/mapping.h"

_Static_assert(NT_PREDICT_SOCKETS * 4 <= NT_ENDPOINT_MAX_AUX,
               "one peer's prediction sockets are a quarter of the pool");

/* A peer that keeps asking for us is answered at most this often: each
 * introduction makes us probe, and probes must not become a flood it
 * aims (doc/operations.md, "Limits"). */
#define PEER_MIN_INTRO_INTERVAL_NS (2 * 1000000000ull)
#define NT_STR_(x) #x
#define NT_STR(x) NT_STR_(x)

static void repunch_start(nt_peers *peers, const nt_introduction *in);
static void repredict_start(nt_peer *p, nt_conn *conn,
                            const nt_introduction *in);
static int repunch_datagram(nt_peers *peers, int type, const uint8_t *nonce,
                            const struct sockaddr *from, socklen_t fromlen,
                            int sock);

/* ---- hole punching ---- */

static void punch_send(const uint8_t *pkt, size_t len, const nt_addr *to,
                       void *ud) {
  nt_peer *p = ud;
  char addr[NT_ADDR_STRLEN];
  nt_debug(LOG(p), "%s: probe -> %s", p->name,
           nt_addr_str((const struct sockaddr *)&to->ss, addr));
  nt_endpoint_sendto(ENV(p)->ep, pkt, len, (const struct sockaddr *)&to->ss,
                     to->len);
}

/* A re-punch probe (the end of this file). */
static void repunch_send(const uint8_t *pkt, size_t len, const nt_addr *to,
                         void *ud) {
  nt_peer *p = ud;
  nt_conn *conn = nt_peer_conn(p);
  /* From the socket the connection runs on (a prediction socket, maybe):
   * that is the mapping the peer must reach. */
  nt_endpoint_send_on(ENV(p)->ep, conn ? nt_conn_socket(conn) : 0, pkt, len,
                      (const struct sockaddr *)&to->ss, to->len);
}

static void describe_candidates(const nt_peer *p, char *out, size_t outlen) {
  char addr[NT_ADDR_STRLEN];
  size_t used = 0;
  out[0] = '\0';
  const nt_punch *punch = &p->path.punch;
  for (size_t i = 0; i < punch->ncandidates && used < outlen; i++) {
    int n = snprintf(
        out + used, outlen - used, "%s%s", i ? ", " : "",
        nt_addr_str((const struct sockaddr *)&punch->candidates[i].ss, addr));
    if (n < 0) {
      break;
    }
    used += (size_t)n;
  }
}

/* One line that says what was tried, what came back, what each NAT does,
 * and what to do about it. */
static void report_punch_failure(nt_peer *p) {
  const nt_peers_env *env = ENV(p);
  char cands[400], us[NT_ADDR_STRLEN], them[NT_ADDR_STRLEN];
  char seen[NT_ADDR_STRLEN + 80] = "", advice[450];
  int we_symmetric = env->self->mapping == NT_MAPPING_PER_DESTINATION;
  int they_symmetric = p->mapping == NT_MAPPING_PER_DESTINATION;

  describe_candidates(p, cands, sizeof(cands));
  nt_addr_str((struct sockaddr *)&env->self->observed.ss, us);
  nt_addr_str((struct sockaddr *)&p->observed.ss, them);
  const nt_path *pa = &p->path;
  if (pa->have_probe_from &&
      !nt_addr_equal((struct sockaddr *)&pa->probe_from.ss,
                     (struct sockaddr *)&p->observed.ss)) {
    char from[NT_ADDR_STRLEN];
    snprintf(seen, sizeof(seen), " (its probes came from %s)",
             nt_addr_str((struct sockaddr *)&pa->probe_from.ss, from));
    they_symmetric = 1;
  }
  if (we_symmetric && they_symmetric) {
    snprintf(advice, sizeof(advice),
             "symmetric NATs (a new port per destination) on both sides "
             "defeat hole punching, and port prediction needs one side whose "
             "NAT keeps its port: run one side where it has a public address "
             "or a forwarded UDP port (-port)");
  } else if (we_symmetric || they_symmetric) {
    snprintf(advice, sizeof(advice),
             "the symmetric NAT on %s's side gives a new port per destination "
             "and port prediction (%s) found none of them: run one side where "
             "it has a public address or a forwarded UDP port (-port)",
             we_symmetric ? env->self_name : p->name,
             pa->predict.role != NT_PREDICT_NONE
                 ? "up to " NT_STR(NT_PREDICT_SOCKETS) " sockets, " NT_STR(
                       NT_PREDICT_BUDGET) " probes"
                 : "not tried: the other side's mapping is unknown");
  } else if (pa->punch.probes_seen) {
    snprintf(advice, sizeof(advice),
             "%s's probes reach us but ours never reached %s: something on "
             "its side drops incoming UDP (a firewall, or NAT filtering)",
             p->name, p->name);
  } else {
    snprintf(advice, sizeof(advice),
             "no UDP got through either way: check that both sides may send "
             "UDP out, and run both with -v to see each probe");
  }
  if (!p->relay.len) {
    size_t used = strlen(advice);
    snprintf(advice + used, sizeof(advice) - used,
             "; the broker offered no relay (a broker started with -relay "
             "relays when punching fails, unless a side runs -no-relay)");
  }
  nt_peer_fail(
      p, NATTER_ERR_PUNCH,
      "hole punching to %s failed after %u s: tried %s; %s. The broker "
      "saw %s at %s (NAT %s) and %s at %s%s (NAT %s). %s",
      p->name, env->connect_timeout_ms / 1000, cands,
      pa->punch.probes_seen
          ? "probes from the peer arrived but none of ours was answered"
          : "no probe from the peer arrived and none was answered",
      env->self_name, us, nt_mapping_name(env->self->mapping), p->name, them,
      seen, nt_mapping_name(p->mapping), advice);
}

/* ---- port prediction (predict.h) ---- */

int nt_peers_budget_log_due(nt_peers *peers, int kind, uint64_t now_ns) {
  unsigned held;
  return nt_log_gate_pass(&peers->budget_logged[kind], now_ns, &held);
}

/* Whether port prediction can work for this meeting; fills |seed|.
 * Behind one public address, the LAN candidates decide. */
static int prediction_possible(const nt_peer *p, uint8_t seed[8]) {
  const nt_peers_env *env = ENV(p);
  int same_lan = p->observed.len && env->self->observed.len &&
                 nt_addr_same_host((struct sockaddr *)&p->observed.ss,
                                   (struct sockaddr *)&env->self->observed.ss);
  return !same_lan && p->observed.len &&
         nt_endpoint_reaches(env->ep, p->observed.ss.ss_family) &&
         nt_random_bytes(seed, 8) == 0;
}

/* Whether |q| runs a prediction now (of role |role|; NONE: either). */
static int predicting(const nt_peer *q, nt_predict_role role) {
  return (q->state == NT_PEER_PUNCHING || q->path.repredict) &&
         q->path.predict.role != NT_PREDICT_NONE &&
         (role == NT_PREDICT_NONE || q->path.predict.role == role);
}

/* The other peers predicting now: all of them (*all) and those toward
 * |p|'s public IP address (returned). */
static unsigned others_predicting(const nt_peer *p, unsigned *all) {
  const nt_peer *q;
  unsigned same_ip = 0;
  *all = 0;
  TAILQ_FOREACH(q, &p->table->list, link) {
    if (q == p || !predicting(q, NT_PREDICT_NONE)) {
      continue;
    }
    (*all)++;
    if (q->observed.len &&
        nt_addr_same_host((const struct sockaddr *)&q->observed.ss,
                          (const struct sockaddr *)&p->observed.ss)) {
      same_ip++;
    }
  }
  return same_ip;
}

/* Prediction for |p|'s meeting, within its budgets (path.h): a budget
 * hit is logged, at most every NT_PEERS_BUDGET_LOG_NS. */
static void predict_start(nt_peer *p) {
  uint8_t seed[8] = {0};
  uint64_t now = nt_monotonic_ns();
  char addr[NT_ADDR_STRLEN];
  int possible = prediction_possible(p, seed);
  unsigned all = 0, same_ip = possible ? others_predicting(p, &all) : 0;
  nt_path_predict_gate_result gate =
      possible ? nt_path_predict_gate(&p->path, now, same_ip, all)
               : NT_PATH_PREDICT_NOT_NEEDED;
  if (gate == NT_PATH_PREDICT_COOLING &&
      nt_peers_budget_log_due(p->table, NT_PEERS_LOG_PREDICT_COOLING, now)) {
    nt_info(LOG(p),
            "%s: no port prediction this time: its last one found no "
            "path, and another waits %u s after that (the limit per peer)",
            p->name, NT_PATH_PREDICT_COOLDOWN_MS / 1000);
  } else if (gate == NT_PATH_PREDICT_IP_BUSY &&
             nt_peers_budget_log_due(p->table, NT_PEERS_LOG_PREDICT_IP_BUSY,
                                     now)) {
    nt_info(LOG(p),
            "%s: no port prediction this time: %d peers at %s predict "
            "already (the limit per address)",
            p->name, NT_PATH_PREDICT_PER_IP,
            nt_addr_str((struct sockaddr *)&p->observed.ss, addr));
  } else if (gate == NT_PATH_PREDICT_BUSY &&
             nt_peers_budget_log_due(p->table, NT_PEERS_LOG_PREDICT_BUSY,
                                     now)) {
    nt_info(LOG(p),
            "%s: no port prediction this time: %d meetings predict already "
            "(the limit at once)",
            p->name, NT_PATH_PREDICT_MAX);
  }
  nt_path_start_prediction(&p->path, possible && gate == NT_PATH_PREDICT_OK,
                           seed);
}

/* The prediction probes of |plan|, to the peer's public address. */
static void predict_send(nt_peer *p, const nt_path_plan *plan) {
  const nt_peers_env *env = ENV(p);
  uint8_t pkt[NT_PUNCH_PACKET_LEN];
  char addr[NT_ADDR_STRLEN];
  if (!plan->predict_burst && !plan->npredict_ports) {
    return;
  }
  /* A live connection's new prediction carries the re-punch's nonce. */
  nt_punch_encode(pkt, NT_PUNCH_PROBE,
                  p->path.repredict ? p->path.repunch.nonce
                                    : p->path.punch.nonce);
  if (plan->predict_burst) {
    if (plan->predict_open) {
      /* At most NT_PREDICT_SOCKETS for one peer: a quarter of what the
       * endpoint has (NT_ENDPOINT_MAX_AUX), so that others find some. */
      unsigned opened = nt_endpoint_aux_open(env->ep, p, NT_PREDICT_SOCKETS);
      if (!opened) {
        if (nt_peers_budget_log_due(p->table, NT_PEERS_LOG_PREDICT_SOCKETS,
                                    nt_monotonic_ns())) {
          nt_warn(env->log,
                  "%s: our NAT gives a new port per destination, but no "
                  "socket is left for port prediction (the descriptor "
                  "limit, ulimit -n, or %d in use by other peers' "
                  "meetings): direct paths are unlikely",
                  p->name, NT_ENDPOINT_MAX_AUX);
        }
        return;
      }
      nt_info(env->log,
              "%s: our NAT gives a new port per destination: opening %u "
              "more sockets toward %s so that its probes can find one "
              "(port prediction)",
              p->name, opened,
              nt_addr_str((struct sockaddr *)&p->observed.ss, addr));
    }
    nt_endpoint_aux_send_all(env->ep, p, pkt, sizeof(pkt),
                             (struct sockaddr *)&p->observed.ss,
                             p->observed.len);
    return;
  }
  if (plan->predict_first) {
    nt_info(env->log,
            "%s: its NAT gives a new port per destination: probing up to %u "
            "ports of %s at %u a second (port prediction)",
            p->name, NT_PREDICT_BUDGET,
            nt_addr_str((struct sockaddr *)&p->observed.ss, addr),
            NT_PREDICT_RATE);
  }
  nt_addr to = p->observed;
  for (size_t i = 0; i < plan->npredict_ports; i++) {
    nt_addr_set_port((struct sockaddr *)&to.ss, plan->predict_ports[i]);
    nt_endpoint_sendto(env->ep, pkt, sizeof(pkt), (struct sockaddr *)&to.ss,
                       to.len);
  }
}

/* ---- the relay, and the way back to a direct path ---- */

static nt_peer *peer_by_relay_token(nt_peers *peers, const uint8_t *token) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (p->relay.len && p->state != NT_PEER_IDLE &&
        memcmp(p->relay_token, token, NT_RELAY_TOKEN_LEN) == 0) {
      return p;
    }
  }
  return NULL;
}

/* Punching found nothing in time: both sides tell the relay where they
 * are, and the initiator connects through it. Probing goes on. */
static void start_relay_fallback(nt_peer *p, uint64_t now) {
  const nt_peers_env *env = ENV(p);
  char addr[NT_ADDR_STRLEN];
  nt_endpoint_set_relay(env->ep, &p->relay);
  nt_endpoint_relay_bind(env->ep, &p->relay, p->relay_token);
  nt_info(env->log,
          "%s: no direct path after %llu ms; trying the broker's relay at %s "
          "(end-to-end encrypted: it forwards packets it cannot read)",
          p->name, (unsigned long long)((now - p->path.meet_ns) / 1000000ull),
          nt_addr_str((struct sockaddr *)&p->relay.ss, addr));
  if (!p->initiator) {
    return; /* the peer's Initial comes through the relay */
  }
  p->state = NT_PEER_CONNECTING;
  if (nt_endpoint_connect_relayed(env->ep, &p->relay, p->relay_token, p->key,
                                  &nt_peer_conn_callbacks, p, &p->conn) != 0) {
    p->conn = NULL;
    nt_peer_fail(p, NATTER_ERR_SOCKET,
                 "cannot start a relayed connection to %s", p->name);
  }
}

/* A punch was answered while the connection is relayed: move it there
 * (initiator only: QUIC lets the client migrate). */
static void move_direct(nt_peer *p, const struct sockaddr *to,
                        socklen_t tolen) {
  char addr[NT_ADDR_STRLEN];
  if (!p->conn || !nt_conn_is_relayed(p->conn)) {
    return;
  }
  if (nt_conn_migrate(p->conn, to, tolen) != 0) {
    nt_debug(LOG(p), "%s: could not migrate to %s yet", p->name,
             nt_addr_str(to, addr));
    return;
  }
  nt_path_on_moved_direct(&p->path);
  nt_info(LOG(p),
          "%s: path now direct to %s (moved off the relay, same connection)",
          p->name, nt_addr_str(to, addr));
}

int nt_peers_accept_relayed(nt_peers *peers, const uint8_t *token,
                            nt_accept_params *params) {
  nt_peer *p = peer_by_relay_token(peers, token);
  if (!p || p->initiator || p->state != NT_PEER_PUNCHING) {
    return 0;
  }
  p->state = NT_PEER_CONNECTING;
  params->expected_fp = p->key;
  params->callbacks = &nt_peer_conn_callbacks;
  params->user_data = p;
  return 1;
}

void nt_peers_on_relay_signal(nt_peers *peers, int type, const uint8_t *token,
                              int reason) {
  nt_peer *p = peer_by_relay_token(peers, token);
  if (!p) {
    return;
  }
  if (type == NT_RELAY_BIND) {
    nt_debug(LOG(p), "%s: the relay hears us", p->name);
    return;
  }
  if (p->relay_closed) {
    return; /* said once */
  }
  p->relay_closed = reason ? reason : NT_RELAY_CLOSED_UNKNOWN;
  nt_warn(LOG(p), "%s: the broker's relay closed our channel: %s", p->name,
          reason == NT_RELAY_CLOSED_TOTAL
              ? "a relay byte cap was reached (the broker's -relay-total)"
          : reason == NT_RELAY_CLOSED_LEFT
              ? "one of us left the broker"
              : "the channel is gone (expired)");
  if (p->conn && nt_conn_is_relayed(p->conn)) {
    nt_conn_close(p->conn, 0, "the broker's relay closed the channel");
  }
}

/* ---- the timer: doing what the path planner says ---- */

/* Easy side: this meeting's share of NT_PATH_PREDICT_RATE among all
 * that probe now (path.h); a smaller share than a full batch is logged. */
static void set_predict_share(nt_peer *p, uint64_t now) {
  const nt_peer *q;
  unsigned easy = 0;
  TAILQ_FOREACH(q, &p->table->list, link) {
    easy += predicting(q, NT_PREDICT_EASY) &&
            nt_predict_next(&q->path.predict) != UINT64_MAX;
  }
  p->path.predict_batch = nt_path_predict_share(easy);
  p->path.predict_alone = easy <= 1;
  if (p->path.predict_batch < NT_PATH_PREDICT_BATCH &&
      nt_peers_budget_log_due(p->table, NT_PEERS_LOG_PREDICT_RATE, now)) {
    nt_info(LOG(p),
            "%u peers' ports are probed at once (port prediction): they "
            "share %d probes a second",
            easy, NT_PATH_PREDICT_RATE);
  }
}

void nt_peer_arm_timer(nt_peer *p, uint64_t at_ns) {
  uint64_t now = nt_monotonic_ns();
  if (p->state == NT_PEER_CONNECTED && nt_path_live_next(&p->path) < at_ns) {
    at_ns = nt_path_live_next(&p->path); /* direct attempts, re-punch */
  }
  uint64_t d = at_ns > now ? at_ns - now : 0;
  struct timeval tv = {(time_t)(d / 1000000000ull),
                       (suseconds_t)((d % 1000000000ull) / 1000)};
  event_add(p->timer, &tv);
}

static nt_path_phase path_phase(nt_peer_state state) {
  return state == NT_PEER_PUNCHING     ? NT_PATH_PUNCHING
         : state == NT_PEER_CONNECTING ? NT_PATH_CONNECTING
                                       : NT_PATH_CONNECTED;
}

static void send_probes(nt_peer *p, const nt_addr *to, size_t n) {
  uint8_t pkt[NT_PUNCH_PACKET_LEN];
  size_t len = nt_punch_encode(pkt, NT_PUNCH_PROBE, p->path.punch.nonce);
  for (size_t i = 0; i < n; i++) {
    punch_send(pkt, len, &to[i], p);
  }
}

static void send_repunch_probes(nt_peer *p, const nt_addr *to, size_t n) {
  uint8_t pkt[NT_PUNCH_PACKET_LEN];
  size_t len = nt_punch_encode(pkt, NT_PUNCH_PROBE, p->path.repunch.nonce);
  for (size_t i = 0; i < n; i++) {
    repunch_send(pkt, len, &to[i], p);
  }
}

/* Punching gave up: the initiator reports why; the other side just stops
 * probing. */
static void give_up(nt_peer *p) {
  if (!p->initiator) {
    nt_debug(LOG(p), "%s: no connection came; stopped probing", p->name);
    nt_peer_check_report(p, NT_CHECK_FAILED);
    nt_peer_reset(p, 0, NULL);
    return;
  }
  report_punch_failure(p);
}

void nt_peer_timer_cb(evutil_socket_t fd, short what, void *arg) {
  nt_peer *p = arg;
  uint64_t now = nt_monotonic_ns();
  char addr[NT_ADDR_STRLEN];
  nt_path_plan plan;
  (void)fd;
  (void)what;

  if (p->state == NT_PEER_IDLE) {
    return;
  }
  if (p->state == NT_PEER_INTRODUCING) {
    if (now >= p->deadline_ns) {
      /* The broker asks the peer first: a peer that is stopped, or cut
       * off from the broker, never admits us. */
      nt_peer_fail(p, NATTER_ERR_TIMEOUT,
                   "no introduction to %s from the broker in %u s: %s did "
                   "not answer whether it admits us (stopped, or cut off "
                   "from the broker?), or the broker is unreachable",
                   p->name, ENV(p)->connect_timeout_ms / 1000, p->name);
      return;
    }
    nt_peer_arm_timer(p, p->deadline_ns);
    return;
  }
  nt_path_phase phase = path_phase(p->state);
  int relayed = p->conn && nt_conn_is_relayed(p->conn);
  if (predicting(p, NT_PREDICT_EASY)) {
    set_predict_share(p, now);
  }
  nt_path_due(&p->path, phase, relayed, now, &plan);
  if (plan.move_direct) {
    move_direct(p, (struct sockaddr *)&plan.direct.ss, plan.direct.len);
    relayed = p->conn && nt_conn_is_relayed(p->conn);
    nt_path_due(&p->path, phase, relayed, now, &plan);
  }
  send_probes(p, plan.probes, plan.nprobes);
  predict_send(p, &plan);
  if (plan.start_relay_fallback) {
    start_relay_fallback(p, now);
    if (p->state == NT_PEER_IDLE) {
      return; /* it could not start */
    }
  }
  if (plan.relay_bind) {
    /* Again into the list, should newer relays have pushed it out. */
    nt_endpoint_set_relay(ENV(p)->ep, &p->relay);
    nt_endpoint_relay_bind(ENV(p)->ep, &p->relay, p->relay_token);
  }
  if (plan.handshake_timeout) {
    if (p->conn) {
      nt_conn_close(p->conn, 0, "handshake took too long");
    }
    return;
  }
  if (plan.give_up) {
    give_up(p);
    return;
  }
  if (p->state != NT_PEER_CONNECTED) {
    nt_peer_arm_timer(p, plan.next_ns);
    return;
  }
  if (plan.now_direct && p->conn) {
    nt_info(LOG(p),
            "%s: path now direct from %s (the peer moved the connection off "
            "the relay)",
            p->name, nt_addr_str(nt_conn_remote_addr(p->conn), addr));
  }
  send_repunch_probes(p, plan.repunch_probes, plan.nrepunch_probes);
  if (p->path.repredict_over) {
    p->path.repredict_over = 0;
    nt_endpoint_aux_close(ENV(p)->ep, p, 0);
    nt_debug(LOG(p), "%s: the new port prediction is over", p->name);
  }
  nt_peer_expire_stream_waiters(p, now);
  if (TAILQ_EMPTY(&p->waiting) && plan.next_ns != UINT64_MAX) {
    nt_peer_arm_timer(p, plan.next_ns);
  }
}

/* ---- introductions, and the packets and connections they bring ---- */

/* The peer's addresses we probe (the rules are nt_path_candidates'). */
static size_t peer_candidates(const nt_peers_env *env, const char *name,
                              const nt_addr *observed, const nt_addr *local,
                              size_t nlocal, const nt_addr *portmap,
                              nt_addr *cands) {
  nt_path_self self = {&env->self->observed, env->self->local,
                       env->self->nlocal, nt_endpoint_reaches(env->ep, AF_INET),
                       nt_endpoint_reaches(env->ep, AF_INET6)};
  size_t skipped = 0;
  size_t n =
      nt_path_candidates(&self, observed, local, nlocal, cands, &skipped);
  if (skipped) {
    nt_debug(env->log,
             "%s: behind another public address; its %zu LAN "
             "addresses are not probed",
             name, skipped);
  }
  if (portmap->len) { /* checked_observed kept it: usable */
    n = nt_path_add_portmap(cands, n, portmap);
  }
  return n;
}

/* |in| with its observed address kept only when our broker can have
 * seen it (nt_path_observed_usable): a broker that says otherwise gets
 * no probe from us to that address. */
static nt_introduction *checked_observed(nt_peers *peers,
                                         const nt_introduction *in,
                                         nt_introduction *out) {
  const nt_peers_env *env = &peers->env;
  char addr[NT_ADDR_STRLEN], broker[NT_ADDR_STRLEN];
  *out = *in;
  if (in->portmap.len && !nt_path_portmap_usable(&in->observed, &in->portmap)) {
    /* Only a port of the address the broker saw the peer at. */
    nt_debug(env->log,
             "%s: its port mapping %s is not on its public address;"
             " not probed",
             in->name,
             nt_addr_str((const struct sockaddr *)&in->portmap.ss, addr));
    memset(&out->portmap, 0, sizeof(out->portmap));
    out->portmap_method = 0;
  }
  if (!in->observed.len ||
      nt_path_observed_usable(&env->self->broker, &in->observed)) {
    return out;
  }
  memset(&out->portmap, 0, sizeof(out->portmap));
  out->portmap_method = 0;
  if (nt_peers_budget_log_due(peers, NT_PEERS_LOG_OBSERVED,
                              nt_monotonic_ns())) {
    nt_warn(env->log,
            "%s: the broker at %s says it saw the peer at %s, which it "
            "cannot have (another scope): that address is not probed",
            in->name,
            nt_addr_str((const struct sockaddr *)&env->self->broker.ss, broker),
            nt_addr_str((const struct sockaddr *)&in->observed.ss, addr));
  }
  memset(&out->observed, 0, sizeof(out->observed));
  return out;
}

/* The probes of meeting |nonce| that came before its introduction, as
 * if they came now (nt_early_probe). */
static void early_probes(nt_peers *peers, const uint8_t *nonce) {
  uint8_t probe[NT_PUNCH_PACKET_LEN];
  uint64_t now = nt_monotonic_ns();
  for (size_t i = 0; i < NT_PEERS_EARLY_PROBES; i++) {
    nt_early_probe *e = &peers->early[i];
    if (!e->fromlen || now - e->at_ns > NT_PEERS_EARLY_PROBE_NS ||
        memcmp(e->nonce, nonce, NT_PUNCH_NONCE_LEN) != 0) {
      continue;
    }
    struct sockaddr_storage from = e->from;
    socklen_t fromlen = e->fromlen;
    e->fromlen = 0;
    nt_punch_encode(probe, NT_PUNCH_PROBE, nonce);
    nt_peers_on_datagram(peers, probe, sizeof(probe),
                         (const struct sockaddr *)&from, fromlen, 0);
  }
}

/* Bounds: the client has checked the introduction (client.c); here
 * nt_path_candidates() decides what is probed. Stale or unasked-for
 * introductions are dropped. */
void nt_peers_on_introduction(nt_peers *peers, const nt_introduction *given) {
  const nt_peers_env *env = &peers->env;
  nt_addr cands[NT_PUNCH_MAX_CANDIDATES];
  size_t n = 0;
  nt_peer *p;
  nt_introduction checked;
  const nt_introduction *in = checked_observed(peers, given, &checked);
  char raddr[NT_ADDR_STRLEN];

  if (in->refresh) {
    repunch_start(peers, in);
    return;
  }
  if (in->request_id) {
    p = nt_peers_find(peers, in->name);
    if (!p || p->request_id != in->request_id ||
        p->state != NT_PEER_INTRODUCING) {
      return; /* stale */
    }
  } else {
    if (!env->listen) {
      return; /* the broker should not have sent it */
    }
    /* The broker asked first (AdmissionQuery), but it may be hostile:
     * the rules decide again, and a refused peer gets nothing, not even
     * a report. */
    if (!nt_peer_admitted(peers, in->name, in->key, 1)) {
      return;
    }
    p = in->check ? nt_peer_check_entry(peers, in->name)
                  : nt_peers_get(peers, in->name);
    if (!p) {
      if (in->check) {
        nt_warn(env->log,
                "%s: already %d checks by peers under way; this one is "
                "ignored",
                in->name, NT_PEER_MAX_CHECKS);
      }
      return;
    }
    if (in->check) {
      nt_info(env->log, "check by %s: introduced for a connectivity check",
              in->name);
      p->check_reported = 0;
    }
    /* Both sides asked for each other at once: two meetings, and each side
     * would wait for the other to connect. The smaller name keeps the
     * initiator's role; the other yields to it. */
    if (!p->check && p->initiator && p->state != NT_PEER_IDLE &&
        p->state != NT_PEER_CONNECTED && strcmp(env->self_name, p->name) < 0) {
      return;
    }
    uint64_t now = nt_monotonic_ns();
    if (p->intro_ns && now - p->intro_ns < PEER_MIN_INTRO_INTERVAL_NS &&
        (p->state == NT_PEER_PUNCHING || p->state == NT_PEER_CONNECTING)) {
      nt_debug(env->log,
               "%s: asked again within 2 s; still on the last "
               "meeting",
               p->name);
      return;
    }
    p->intro_ns = now;
    if (p->conn) {
      /* The peer asks again, so it lost the old connection. */
      nt_conn *old = p->conn;
      p->conn = NULL;
      nt_conn_set_user_data(old, NULL);
      nt_conn_close(old, 0, "superseded by a new connection");
    }
    p->initiator = 0;
    p->deadline_ns =
        nt_monotonic_ns() + (uint64_t)env->connect_timeout_ms * 1000000ull;
  }
  memcpy(p->key, in->key, NT_FINGERPRINT_LEN);
  p->connected_ns = 0;
  p->relay_closed = 0;
  memset(&p->relay, 0, sizeof(p->relay));
  if (in->relay.len && !env->no_relay) {
    p->relay = in->relay;
    memcpy(p->relay_token, in->relay_token, NT_RELAY_TOKEN_LEN);
    /* Tell the relay where we are now (17 bytes): a relayed Initial
     * then finds us the moment punching gives way to the relay. */
    if (nt_endpoint_set_relay(env->ep, &p->relay) != 0) {
      if (nt_peers_budget_log_due(peers, NT_PEERS_LOG_RELAYS,
                                  nt_monotonic_ns())) {
        nt_warn(env->log,
                "%s: not using the relay at %s: connections run through " NT_STR(
                    NT_ENDPOINT_RELAYS) " other relays already (limit)",
                p->name,
                nt_addr_str((const struct sockaddr *)&in->relay.ss, raddr));
      }
      memset(&p->relay, 0, sizeof(p->relay));
    } else {
      nt_endpoint_relay_bind(env->ep, &p->relay, p->relay_token);
    }
  }
  p->observed = in->observed;
  p->mapping = in->mapping;
  p->mapped = in->mapped;
  p->portmap = in->portmap;
  p->portmap_method = in->portmap_method;
  n = peer_candidates(env, p->name, &p->observed, in->local, in->nlocal,
                      &p->portmap, cands);
  char hex[NT_FINGERPRINT_HEX_LEN + 1], desc[640];
  nt_fingerprint_hex(p->key, hex);
  p->state = NT_PEER_PUNCHING;
  nt_endpoint_aux_close(env->ep, p, 0); /* a previous meeting's */
  nt_path_meeting meeting = {in->nonce,
                             cands,
                             n,
                             p->initiator,
                             env->self->mapping,
                             in->mapping,
                             p->relay.len != 0,
                             env->connect_timeout_ms,
                             p->deadline_ns};
  nt_path_meet(&p->path, &meeting, nt_monotonic_ns());
  predict_start(p);
  describe_candidates(p, desc, sizeof(desc));
  nt_info(env->log, "%s: introduced (key %.16s...), probing %s", p->name, hex,
          n ? desc : "(no usable candidate)");
  nt_peer_timer_cb(-1, 0, p);
  early_probes(peers, in->nonce);
}

void nt_peers_on_self_mapping(nt_peers *peers) {
  nt_peer *p;
  if (!peers) {
    return;
  }
  TAILQ_FOREACH(p, &peers->list, link) {
    if (p->state != NT_PEER_PUNCHING) {
      continue;
    }
    nt_path_on_self_mapping(&p->path, peers->env.self->mapping);
    if (p->path.predict.role == NT_PREDICT_NONE) {
      predict_start(p);
    }
    nt_peer_timer_cb(-1, 0, p); /* re-arms for what is due first now */
  }
}

static nt_peer *peer_by_nonce(nt_peers *peers, const uint8_t *nonce) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    if ((p->state == NT_PEER_PUNCHING || p->state == NT_PEER_CONNECTING ||
         (p->state == NT_PEER_CONNECTED && p->conn &&
          nt_conn_is_relayed(p->conn))) &&
        memcmp(p->path.punch.nonce, nonce, NT_PUNCH_NONCE_LEN) == 0) {
      return p;
    }
  }
  return NULL;
}

void nt_peers_on_datagram(nt_peers *peers, const uint8_t *data, size_t len,
                          const struct sockaddr *from, socklen_t fromlen,
                          int sock) {
  const nt_peers_env *env = &peers->env;
  uint8_t nonce[NT_PUNCH_NONCE_LEN], reply[NT_PUNCH_PACKET_LEN];
  char addr[NT_ADDR_STRLEN];
  int type = nt_punch_decode(data, len, nonce);
  if (env->test_no_punch) {
    return;
  }
  if (type && repunch_datagram(peers, type, nonce, from, fromlen, sock)) {
    return;
  }
  nt_peer *p = type ? peer_by_nonce(peers, nonce) : NULL;

  if (!p && type == NT_PUNCH_PROBE && !sock &&
      fromlen <= sizeof(peers->early[0].from)) {
    /* Perhaps the peer heard of our meeting before we did. */
    nt_early_probe *e = &peers->early[peers->early_next];
    peers->early_next = (peers->early_next + 1) % NT_PEERS_EARLY_PROBES;
    memcpy(e->nonce, nonce, NT_PUNCH_NONCE_LEN);
    memcpy(&e->from, from, fromlen);
    e->fromlen = fromlen;
    e->at_ns = nt_monotonic_ns();
    return;
  }
  if (!p || fromlen > sizeof(p->path.probe_from.ss)) {
    return;
  }
  nt_addr src;
  memcpy(&src.ss, from, fromlen);
  src.len = fromlen;
  nt_path_phase phase = path_phase(p->state);
  if (type == NT_PUNCH_PROBE) {
    nt_debug(env->log, "%s: probe <- %s%s, answering", p->name,
             nt_addr_str(from, addr), sock ? " (on a prediction socket)" : "");
    nt_punch_encode(reply, NT_PUNCH_REPLY, nonce);
    nt_endpoint_send_on(env->ep, sock, reply, sizeof(reply), from, fromlen);
    nt_punch_encode(reply, NT_PUNCH_PROBE, nonce);
    switch (nt_path_on_probe(&p->path, phase, &src, sock != 0)) {
    case NT_PATH_PROBE_BACK_ON_SOCKET:
      /* Its probe found one of our extra sockets: probe back from there,
       * so that its answer arrives there too and proves the path. */
      if (p->state == NT_PEER_PUNCHING) {
        nt_info(env->log,
                "%s: its probe from %s found one of our prediction "
                "sockets",
                p->name, nt_addr_str(from, addr));
      }
      nt_endpoint_send_on(env->ep, sock, reply, sizeof(reply), from, fromlen);
      break;
    case NT_PATH_PROBE_BACK_NEW:
      /* The peer's NAT gave it a port the broker never saw (symmetric
       * mapping); its probe opened that mapping toward us. */
      nt_info(env->log, "%s: new candidate %s (seen in its probe)", p->name,
              nt_addr_str(from, addr));
      nt_endpoint_sendto(env->ep, reply, sizeof(reply), from, fromlen);
      break;
    case NT_PATH_PROBE_BACK:
      nt_endpoint_sendto(env->ep, reply, sizeof(reply), from, fromlen);
      break;
    case NT_PATH_PROBE_ANSWER_ONLY:
      break;
    }
    return;
  }
  switch (nt_path_on_reply(&p->path, phase, &src, sock != 0)) {
  case NT_PATH_REPLY_MOVE_DIRECT:
    move_direct(p, from, fromlen);
    return;
  case NT_PATH_REPLY_CONNECT:
    break;
  case NT_PATH_REPLY_IGNORE:
    return;
  }
  /* A reply: this candidate works both ways. */
  nt_info(env->log, "%s: %s answered%s; connecting", p->name,
          nt_addr_str(from, addr),
          p->path.predicted ? " (found by port prediction)" : "");
  p->state = NT_PEER_CONNECTING;
  if (nt_endpoint_connect_on(env->ep, sock, from, fromlen, p->key,
                             &nt_peer_conn_callbacks, p, &p->conn) != 0) {
    p->conn = NULL;
    nt_peer_fail(p, NATTER_ERR_SOCKET, "cannot start a connection to %s",
                 p->name);
  }
}

/* The peer whose connection we expect from |from|: one we punch to that
 * did not ask us to connect, and whose probes came from there. */
static nt_peer *expected_from(nt_peers *peers, const struct sockaddr *from) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (!p->initiator && p->state == NT_PEER_PUNCHING &&
        p->path.have_probe_from &&
        nt_addr_equal((struct sockaddr *)&p->path.probe_from.ss, from)) {
      return p;
    }
  }
  return NULL;
}

int nt_peers_expecting(nt_peers *peers, const struct sockaddr *from) {
  return expected_from(peers, from) != NULL;
}

int nt_peers_accept(nt_peers *peers, const struct sockaddr *from,
                    nt_accept_params *params) {
  nt_peer *p = expected_from(peers, from);
  if (p) {
    p->state = NT_PEER_CONNECTING;
    params->expected_fp = p->key;
    params->callbacks = &nt_peer_conn_callbacks;
    params->user_data = p;
    return 1;
  }
  return 0;
}

/* ---- paths of a live connection ----
 *
 * A connection outlives the addresses under it. ngtcp2 (conn.c) follows
 * a peer whose authenticated packets come from a new address; what it
 * cannot do is get through a NAT that filters the new address. So when
 * the connection hears nothing while it waits for something, we ask the
 * broker for a fresh introduction (its view of both addresses is
 * current) and both sides punch again, on the same connection. */

static nt_peer *peer_by_conn(nt_conn *conn, void *ud) {
  nt_peer *p = ud;
  return p && p->conn == conn && p->state == NT_PEER_CONNECTED ? p : NULL;
}

void nt_peer_conn_silent(nt_conn *conn, uint64_t silent_ms, void *ud) {
  nt_peer *p = peer_by_conn(conn, ud);
  uint64_t now = nt_monotonic_ns();
  if (p && !p->check && (p->path.predicted || p->path.repredict) &&
      silent_ms >= (p->path.repredict ? NT_PATH_REPREDICT_GIVE_UP_MS
                                      : NT_PATH_PREDICTED_GIVE_UP_MS)) {
    nt_info(LOG(p),
            "%s: no answer for %.1f s on a path found by port prediction: "
            "a NAT on it changed its ports, which only a new prediction "
            "finds, %s; closing the connection, the next one meets afresh",
            p->name, (double)silent_ms / 1000.0,
            p->path.repredict ? "and the new one found none"
                              : "and none could run");
    nt_conn_close(conn, 0, "the path found by port prediction broke");
    return;
  }
  if (!p || p->check || !nt_path_refresh_due(&p->path, now)) {
    return;
  }
  int sent = ENV(p)->callbacks->refresh &&
             ENV(p)->callbacks->refresh(p->name, ENV(p)->user_data);
  nt_info(LOG(p), "%s: no answer for %.1f s with data outstanding; %s", p->name,
          (double)silent_ms / 1000.0,
          sent ? "asking the broker where it is now, to punch again"
               : "the broker session is down, so only waiting");
}

void nt_peers_on_udp_back(nt_peers *peers) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    nt_conn *conn = nt_peer_conn(p);
    if (!conn || p->check || !nt_conn_is_relayed(conn) ||
        !ENV(p)->callbacks->refresh ||
        !nt_path_refresh_due(&p->path, nt_monotonic_ns())) {
      continue;
    }
    /* The request goes over UDP now: the broker sees our new address
     * (and reintroduces us) at once, not at our next keepalive. */
    if (ENV(p)->callbacks->refresh(p->name, ENV(p)->user_data)) {
      nt_info(LOG(p),
              "%s: UDP works again: asking the broker to have us both "
              "punch again, to leave the relay",
              p->name);
    }
  }
}

void nt_peer_conn_moved(nt_conn *conn, void *ud) {
  nt_peer *p = peer_by_conn(conn, ud);
  char addr[NT_ADDR_STRLEN];
  if (p) {
    nt_info(LOG(p), "%s: path moved to %s (validated)", p->name,
            nt_addr_str(nt_conn_remote_addr(conn), addr));
  }
}

/* A refresh introduction: probe the peer's current addresses with the
 * new nonce, keeping the connection. Ignored for a peer we have no
 * connection to, or whose key is not the one the connection verified. */
static void repunch_start(nt_peers *peers, const nt_introduction *in) {
  const nt_peers_env *env = &peers->env;
  nt_peer *p = nt_peers_find(peers, in->name);
  nt_conn *conn = nt_peer_conn(p);
  nt_addr cands[NT_PUNCH_MAX_CANDIDATES];
  size_t n = 0;
  char desc[NT_ADDR_STRLEN];

  if (!conn || !nt_conn_peer_fingerprint(conn) ||
      memcmp(nt_conn_peer_fingerprint(conn), in->key, NT_FINGERPRINT_LEN) !=
          0) {
    nt_debug(env->log, "%s: refresh introduction for no connection; ignored",
             in->name);
    return;
  }
  /* The same rules as a first introduction. */
  n = peer_candidates(env, in->name, &in->observed, in->local, in->nlocal,
                      &in->portmap, cands);
  p->mapping = in->mapping;
  p->observed = in->observed;
  nt_path_repunch_start(&p->path, in->nonce, cands, n, nt_monotonic_ns());
  nt_info(env->log, "%s: punching again to %s for the open connection", p->name,
          n ? nt_addr_str((struct sockaddr *)&cands[0].ss, desc) : "(none)");
  repredict_start(p, conn, in);
  nt_peer_timer_cb(-1, 0, p); /* the first round now */
}

/* One side of the live connection is behind a symmetric NAT (its path
 * was found by port prediction, or by a probe from a port the broker
 * never saw): a re-punch cannot find that NAT's new ports, so predict
 * again (the same budgets as a meeting's), and move the connection where
 * it finds. */
static void repredict_start(nt_peer *p, nt_conn *conn,
                            const nt_introduction *in) {
  const nt_peers_env *env = ENV(p);
  uint8_t seed[8] = {0};
  uint64_t now = nt_monotonic_ns();
  /* Only while the path is silent (a refresh the other side asked for,
   * or one asked after a blip that is over, needs no new sockets). */
  if (nt_conn_silent_ms(conn) < NT_PATH_REPREDICT_SILENT_MS) {
    return;
  }
  if (p->path.repredict) {
    if (nt_predict_next(&p->path.predict) != UINT64_MAX) {
      return; /* one at a time; the probes take the newest nonce */
    }
    /* The last one has sent all it had and found nothing: again. */
    nt_path_repredict_end(&p->path);
    nt_endpoint_aux_close(env->ep, p, 0);
  }
  if (env->self->mapping != NT_MAPPING_UNKNOWN) {
    p->path.self_mapping = env->self->mapping;
  }
  if (in->mapping != NT_MAPPING_UNKNOWN) {
    p->path.peer_mapping = in->mapping;
  }
  if (nt_predict_role_for(p->path.self_mapping, p->path.peer_mapping) ==
      NT_PREDICT_NONE) {
    return; /* a re-punch can mend it */
  }
  int possible = prediction_possible(p, seed);
  unsigned all = 0, same_ip = possible ? others_predicting(p, &all) : 0;
  if (!possible ||
      nt_path_predict_gate(&p->path, now, same_ip, all) != NT_PATH_PREDICT_OK) {
    nt_info(env->log,
            "%s: one of our NATs gives a new port per destination, but no "
            "new port prediction can run now (the limits at once)",
            p->name);
    return;
  }
  nt_predict_role role = nt_path_repredict_start(&p->path, seed, now);
  if (role != NT_PREDICT_NONE) {
    nt_info(env->log,
            "%s: one of our NATs gives a new port per destination: "
            "predicting its ports again for the open connection",
            p->name);
  }
}

/* A packet of the live re-prediction came to one of its new sockets:
 * the peer reaches us there, and we it (its probe opened its NAT), so
 * the connection moves there (the same connection: QUIC migration). */
static void repredict_found(nt_peer *p, nt_conn *conn, int sock,
                            const struct sockaddr *from, socklen_t fromlen) {
  char addr[NT_ADDR_STRLEN];
  if (nt_conn_migrate_on(conn, sock, p, from, fromlen) != 0) {
    nt_debug(LOG(p), "%s: cannot move the connection to that socket", p->name);
    return;
  }
  nt_path_repredict_end(&p->path);
  nt_endpoint_aux_close(ENV(p)->ep, p, 0);
  nt_info(LOG(p),
          "%s: its probe from %s found a new prediction socket: the "
          "connection moved there (the same connection, port prediction "
          "again)",
          p->name, nt_addr_str(from, addr));
}

/* A probe or reply of a re-punch. Answers probes; either kind means the
 * path to the peer is open again, so loss recovery resends now instead
 * of at its backed-off timer. Returns 1 when it was one of ours. */
static int repunch_datagram(nt_peers *peers, int type, const uint8_t *nonce,
                            const struct sockaddr *from, socklen_t fromlen,
                            int sock) {
  nt_peer *p;
  uint8_t reply[NT_PUNCH_PACKET_LEN];
  char addr[NT_ADDR_STRLEN];

  TAILQ_FOREACH(p, &peers->list, link) {
    if (nt_path_is_repunch(&p->path, nonce)) {
      break;
    }
  }
  if (!p) {
    return 0;
  }
  nt_conn *conn = nt_peer_conn(p);
  if (type == NT_PUNCH_PROBE) {
    nt_punch_encode(reply, NT_PUNCH_REPLY, nonce);
    nt_endpoint_send_on(peers->env.ep, sock, reply, sizeof(reply), from,
                        fromlen);
  }
  if (conn && sock && p->path.repredict && sock != nt_conn_socket(conn)) {
    repredict_found(p, conn, sock, from, fromlen);
  }
  if (type == NT_PUNCH_REPLY && conn && sock == nt_conn_socket(conn) &&
      p->path.initiator && nt_conn_is_relayed(conn)) {
    /* A relayed connection's re-punch was answered: that address works
     * both ways, so the connection moves there now (as an upgrade
     * round's reply does); kicking loss recovery would only resend on
     * the relay until the next upgrade round, up to NT_PATH_UPGRADE_MS
     * later. */
    move_direct(p, from, fromlen);
  }
  nt_addr src;
  int fits = fromlen <= sizeof(src.ss);
  if (fits) {
    memcpy(&src.ss, from, fromlen);
    src.len = fromlen;
  }
  if (nt_path_on_repunch_packet(&p->path, type, fits ? &src : NULL)) {
    nt_punch_encode(reply, NT_PUNCH_PROBE, nonce);
    nt_endpoint_send_on(peers->env.ep, sock, reply, sizeof(reply), from,
                        fromlen);
  }
  uint64_t now = nt_monotonic_ns();
  if (conn && nt_path_kick_due(&p->path, now)) {
    nt_debug(peers->env.log, "%s: %s from %s; resending now", p->name,
             type == NT_PUNCH_PROBE ? "probe" : "reply",
             nt_addr_str(from, addr));
    nt_conn_kick(conn);
  }
  return 1;
}
