/* Peers (peer.h): introductions, one QUIC connection per peer, and the
 * queue of local connections waiting for it. Path finding's decisions are
 * path.h's; here is their I/O: probes, prediction sockets, the relay
 * channel, the connection, and the one timer per peer. */
#include "client/peer.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/mapping.h"
#include "client/path.h"
#include "client/predict.h"
#include "codec/stream_header.h"

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

struct nt_peers {
  nt_peers_env env;
  TAILQ_HEAD(, nt_peer) list;
};

static void peer_conn_established(nt_conn *conn, void *ud);
static void peer_conn_closed(nt_conn *conn, nt_close_reason reason,
                             uint64_t app_code, const char *message,
                             void *ud);
static void peer_stream_opened(nt_conn *conn, nt_stream *s, void *ud);
static void peer_timer_cb(evutil_socket_t fd, short what, void *arg);

static void peer_streams_available(nt_conn *conn, void *ud);
static void peer_conn_silent(nt_conn *conn, uint64_t silent_ms, void *ud);
static void peer_conn_moved(nt_conn *conn, void *ud);
static void repunch_start(nt_peers *peers, const nt_introduction *in);
static int repunch_datagram(nt_peers *peers, int type, const uint8_t *nonce,
                            const struct sockaddr *from, socklen_t fromlen,
                            int sock);

static const nt_conn_callbacks peer_conn_callbacks = {
    peer_conn_established,  peer_conn_closed, peer_stream_opened,
    peer_streams_available, peer_conn_silent, peer_conn_moved};

#define ENV(p) (&(p)->table->env)

/* A peer that keeps asking for us is answered at most this often: each
 * introduction makes us probe, and probes must not become a flood it
 * aims (doc/operations.md, "Limits"). */
#define PEER_MIN_INTRO_INTERVAL_NS (2 * 1000000000ull)
#define LOG(p) (ENV(p)->log)
#define NT_STR_(x) #x
#define NT_STR(x) NT_STR_(x)

/* ---- the table ---- */

int nt_peers_new(nt_peers **ppeers, const nt_peers_env *env) {
  nt_peers *peers = calloc(1, sizeof(*peers));
  *ppeers = NULL;
  if (!peers) {
    return NATTER_ERR_NOMEM;
  }
  peers->env = *env;
  TAILQ_INIT(&peers->list);
  *ppeers = peers;
  return 0;
}

void nt_peers_free(nt_peers *peers) {
  nt_peer *p;
  if (!peers) {
    return;
  }
  while ((p = TAILQ_FIRST(&peers->list))) {
    TAILQ_REMOVE(&peers->list, p, link);
    /* Waiters belong to their owners, who are gone or going: unhook. */
    nt_peer_waiter *w;
    while ((w = TAILQ_FIRST(&p->waiting))) {
      TAILQ_REMOVE(&p->waiting, w, link);
      w->peer = NULL;
    }
    if (p->conn) {
      nt_conn_set_user_data(p->conn, NULL);
    }
    nt_endpoint_aux_close(peers->env.ep, p, 0);
    event_free(p->timer);
    free(p);
  }
  free(peers);
}

nt_peer *nt_peers_find(nt_peers *peers, const char *name) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (!p->check && strcmp(p->name, name) == 0) {
      return p;
    }
  }
  return NULL;
}

static nt_peer *peer_alloc(nt_peers *peers, const char *name) {
  nt_peer *p = calloc(1, sizeof(*p));
  if (!p) {
    return NULL;
  }
  p->timer = event_new(peers->env.base, -1, 0, peer_timer_cb, p);
  if (!p->timer) {
    free(p);
    return NULL;
  }
  p->table = peers;
  snprintf(p->name, sizeof(p->name), "%s", name);
  TAILQ_INIT(&p->waiting);
  TAILQ_INSERT_HEAD(&peers->list, p, link);
  return p;
}

nt_peer *nt_peers_get(nt_peers *peers, const char *name) {
  nt_peer *p = nt_peers_find(peers, name);
  return p ? p : peer_alloc(peers, name);
}

/* The entry for a check that |name| asked for: its last one, else a new
 * one while fewer than NT_PEER_MAX_CHECKS exist, else the oldest idle
 * one (the list is newest first). NULL when all are busy. */
static nt_peer *check_entry(nt_peers *peers, const char *name) {
  nt_peer *p, *idle = NULL;
  size_t n = 0;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (!p->check) {
      continue;
    }
    if (strcmp(p->name, name) == 0) {
      return p;
    }
    n++;
    if (p->state == NT_PEER_IDLE) {
      idle = p;
    }
  }
  if (n < NT_PEER_MAX_CHECKS) {
    p = peer_alloc(peers, name);
    if (p) {
      p->check = 1;
    }
    return p;
  }
  if (idle) {
    snprintf(idle->name, sizeof(idle->name), "%s", name);
    nt_path_forget(&idle->path);
    idle->intro_ns = 0; /* another peer's pace is not this one's */
  }
  return idle;
}

nt_conn *nt_peer_conn(const nt_peer *p) {
  return p && p->state == NT_PEER_CONNECTED ? p->conn : NULL;
}

/* ---- the waiting queue ---- */

static nt_peer_waiter *dequeue(nt_peer *p) {
  nt_peer_waiter *w = TAILQ_FIRST(&p->waiting);
  if (w) {
    TAILQ_REMOVE(&p->waiting, w, link);
    w->peer = NULL;
    p->nwaiting--;
  }
  return w;
}

void nt_peer_waiter_cancel(nt_peer_waiter *w) {
  nt_peer *p = w->peer;
  if (p) {
    TAILQ_REMOVE(&p->waiting, w, link);
    w->peer = NULL;
    p->nwaiting--;
  }
}

static void arm_peer_timer(nt_peer *p, uint64_t at_ns) {
  uint64_t now = nt_monotonic_ns();
  if (p->state == NT_PEER_CONNECTED && nt_path_live_next(&p->path) < at_ns) {
    at_ns = nt_path_live_next(&p->path); /* direct attempts, re-punch */
  }
  uint64_t d = at_ns > now ? at_ns - now : 0;
  struct timeval tv = {(time_t)(d / 1000000000ull),
                       (suseconds_t)((d % 1000000000ull) / 1000)};
  event_add(p->timer, &tv);
}

/* Ends whatever was in progress; local connections still waiting are
 * failed with |why| (NULL keeps them waiting). */
static void peer_reset(nt_peer *p, int error, const char *why) {
  event_del(p->timer);
  nt_endpoint_aux_close(ENV(p)->ep, p, 0);
  nt_path_reset(&p->path);
  p->state = NT_PEER_IDLE;
  if (why) {
    nt_peer_waiter *w;
    while ((w = dequeue(p))) {
      w->failed(w, error, why);
    }
  }
}

static void emit(nt_peer *p, natter_event_type type, int error,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void emit(nt_peer *p, natter_event_type type, int error,
                 const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (p->check) {
    /* A peer's check is no connection of ours: no event, no counts. */
    nt_info(LOG(p), "check by %s: %s", p->name, msg);
    return;
  }
  ENV(p)->callbacks->event(type, error, p->name, msg, ENV(p)->user_data);
}

/* Our side of a check the peer asked for is done: tell the broker what
 * we saw, once per meeting. */
static void check_report(nt_peer *p, int outcome) {
  const nt_peers_env *env = ENV(p);
  nt_check_side side;
  if (!p->check || p->check_reported || !env->callbacks->check_report) {
    return;
  }
  p->check_reported = 1;
  memset(&side, 0, sizeof(side));
  const nt_path *pa = &p->path;
  memcpy(side.nonce, pa->punch.nonce, sizeof(side.nonce));
  side.outcome = outcome;
  side.relayed = p->conn && nt_conn_is_relayed(p->conn);
  side.mapping = env->self->mapping;
  side.nprobed = pa->ngiven;
  memcpy(side.probed, pa->punch.candidates,
         pa->ngiven * sizeof(side.probed[0]));
  side.probe_rounds = pa->punch.rounds;
  side.probes_received = pa->punch.probes_seen;
  side.replies_received = pa->punch.replies_seen;
  if (pa->have_probe_from) {
    side.probes_from = pa->probe_from;
  }
  side.elapsed_ms = (uint32_t)((nt_monotonic_ns() - pa->meet_ns) / 1000000ull);
  nt_info(env->log, "check by %s: %s; reporting to the broker", p->name,
          outcome == NT_CHECK_CONNECTED ? "connected" : "no connection came");
  env->callbacks->check_report(&side, env->user_data);
}

static void peer_fail(nt_peer *p, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void peer_fail(nt_peer *p, int error, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  emit(p, NATTER_EVENT_PEER_FAILED, error, "%s", msg);
  peer_reset(p, error, msg);
}

/* Hands the connection to waiters in order, until they are done or the
 * peer's stream limit stops them; then the oldest one's deadline is
 * armed. */
static void start_waiting(nt_peer *p) {
  nt_peer_waiter *w;
  while (p->conn && (w = TAILQ_FIRST(&p->waiting))) {
    TAILQ_REMOVE(&p->waiting, w, link);
    w->peer = NULL;
    p->nwaiting--;
    if (w->ready(w, p->conn) == NT_STREAMS_BLOCKED) {
      TAILQ_INSERT_HEAD(&p->waiting, w, link);
      w->peer = p;
      p->nwaiting++;
      break;
    }
  }
  w = TAILQ_FIRST(&p->waiting);
  if (p->state == NT_PEER_CONNECTED && w) {
    arm_peer_timer(p, w->queued_ns +
                          (uint64_t)NT_PEER_STREAM_WAIT_S * 1000000000ull);
  }
}

static void peer_streams_available(nt_conn *conn, void *ud) {
  nt_peer *p = ud;
  if (p && p->conn == conn) {
    start_waiting(p);
  }
}

/* Connected, but waiters still queue for a stream: fail those that waited
 * too long. */
static void expire_stream_waiters(nt_peer *p, uint64_t now) {
  nt_peer_waiter *w;
  while ((w = TAILQ_FIRST(&p->waiting)) &&
         now - w->queued_ns >=
             (uint64_t)NT_PEER_STREAM_WAIT_S * 1000000000ull) {
    dequeue(p);
    char why[120];
    snprintf(why, sizeof(why),
             "no free stream to the peer within %u s (it allows %llu at "
             "once: its max-streams)",
             NT_PEER_STREAM_WAIT_S,
             p->conn ? (unsigned long long)nt_conn_peer_max_streams(p->conn)
                     : 0ull);
    w->failed(w, NATTER_ERR_TIMEOUT, why);
  }
  if (w) {
    arm_peer_timer(p, w->queued_ns +
                          (uint64_t)NT_PEER_STREAM_WAIT_S * 1000000000ull);
  }
}

/* Asks the broker for |p|; 0 while the broker session is down. */
static int request(nt_peer *p) {
  p->request_id = ENV(p)->callbacks->request(p->name, ENV(p)->user_data);
  return p->request_id != 0;
}

void nt_peer_submit(nt_peer *p, nt_peer_waiter *w) {
  w->queued_ns = nt_monotonic_ns();
  if (p->state == NT_PEER_CONNECTED && p->conn && TAILQ_EMPTY(&p->waiting)) {
    if (w->ready(w, p->conn) != NT_STREAMS_BLOCKED) {
      return;
    }
    nt_warn(LOG(p),
            "%s: all %llu streams it allows are open (its max-streams); new "
            "connections wait (at most %u, %u s)",
            p->name, (unsigned long long)nt_conn_peer_max_streams(p->conn),
            NT_PEER_MAX_WAITING, NT_PEER_STREAM_WAIT_S);
  }
  if (p->nwaiting >= NT_PEER_MAX_WAITING) {
    nt_warn(LOG(p),
            "%s: %u connections already wait for the peer; dropping one",
            p->name, NT_PEER_MAX_WAITING);
    w->failed(w, NATTER_ERR_NOMEM,
              "too many connections waiting for the peer");
    return;
  }
  TAILQ_INSERT_TAIL(&p->waiting, w, link); /* first come, first served */
  w->peer = p;
  p->nwaiting++;
  if (p->state == NT_PEER_CONNECTED) {
    start_waiting(p); /* arms the wait's deadline */
    return;
  }
  if (p->state != NT_PEER_IDLE) {
    return; /* already on its way */
  }
  p->initiator = 1;
  p->state = NT_PEER_INTRODUCING;
  p->deadline_ns = nt_monotonic_ns() +
                   (uint64_t)ENV(p)->connect_timeout_ms * 1000000ull;
  arm_peer_timer(p, p->deadline_ns);
  if (!request(p)) {
    nt_debug(LOG(p),
             "%s: waiting for the broker session before asking for the peer",
             p->name);
  }
}

void nt_peers_request_waiting(nt_peers *peers) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (p->state == NT_PEER_INTRODUCING && p->initiator && !p->request_id) {
      request(p);
    }
  }
}

void nt_peers_broker_ready(nt_peers *peers) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (p->state == NT_PEER_INTRODUCING && p->initiator) {
      request(p);
    }
  }
}

/* Bounds: matched by request_id to a peer we asked for, else dropped; the
 * client passes the broker's message only when printable. */
void nt_peers_on_connect_result(nt_peers *peers, uint32_t request_id,
                                int error, const char *message) {
  nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    if (p->request_id == request_id && p->state == NT_PEER_INTRODUCING) {
      break;
    }
  }
  if (!p) {
    return;
  }
  switch (error) {
  case NATTER_ERR_PEER_UNKNOWN:
    peer_fail(p, NATTER_ERR_PEER_UNKNOWN,
              "peer \"%s\" is unknown at the broker: check the name, and "
              "that %s runs natter with this broker",
              p->name, p->name);
    break;
  case NATTER_ERR_PEER_NOT_LISTENING:
    peer_fail(p, NATTER_ERR_PEER_NOT_LISTENING,
              "peer \"%s\" is not listening: start it with -listen", p->name);
    break;
  default:
    peer_fail(p, NATTER_ERR_BROKER, "broker refused to connect us to %s: %s",
              p->name, message && message[0] ? message : "no reason");
    break;
  }
}

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
  peer_fail(p, NATTER_ERR_PUNCH,
            "hole punching to %s failed after %u s: tried %s; %s. The broker "
            "saw %s at %s (NAT %s) and %s at %s%s (NAT %s). %s",
            p->name, env->connect_timeout_ms / 1000, cands,
            pa->punch.probes_seen
                ? "probes from the peer arrived but none of ours was answered"
                : "no probe from the peer arrived and none was answered",
            env->self_name, us, nt_mapping_name(env->self->mapping), p->name,
            them, seen, nt_mapping_name(p->mapping), advice);
}

/* ---- port prediction (predict.h) ---- */

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

static void predict_start(nt_peer *p) {
  uint8_t seed[8] = {0};
  int possible = prediction_possible(p, seed);
  nt_path_start_prediction(&p->path, possible, seed);
}

/* The prediction probes of |plan|, to the peer's public address. */
static void predict_send(nt_peer *p, const nt_path_plan *plan) {
  const nt_peers_env *env = ENV(p);
  uint8_t pkt[NT_PUNCH_PACKET_LEN];
  char addr[NT_ADDR_STRLEN];
  if (!plan->predict_burst && !plan->npredict_ports) {
    return;
  }
  nt_punch_encode(pkt, NT_PUNCH_PROBE, p->path.punch.nonce);
  if (plan->predict_burst) {
    if (plan->predict_open) {
      unsigned opened = nt_endpoint_aux_open(env->ep, p, NT_PREDICT_SOCKETS);
      if (!opened) {
        nt_warn(env->log,
                "%s: our NAT gives a new port per destination, but no "
                "socket is left for port prediction (the descriptor limit, "
                "ulimit -n, or %d in use): direct paths are unlikely",
                p->name, NT_ENDPOINT_MAX_AUX);
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
  nt_endpoint_relay_bind(env->ep, p->relay_token);
  nt_info(env->log,
          "%s: no direct path after %llu ms; trying the broker's relay at %s "
          "(end-to-end encrypted: it forwards packets it cannot read)",
          p->name, (unsigned long long)((now - p->path.meet_ns) / 1000000ull),
          nt_addr_str((struct sockaddr *)&p->relay.ss, addr));
  if (!p->initiator) {
    return; /* the peer's Initial comes through the relay */
  }
  p->state = NT_PEER_CONNECTING;
  if (nt_endpoint_connect_relayed(env->ep, p->relay_token, p->key,
                                  &peer_conn_callbacks, p, &p->conn) != 0) {
    p->conn = NULL;
    peer_fail(p, NATTER_ERR_SOCKET, "cannot start a relayed connection to %s",
              p->name);
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
  params->callbacks = &peer_conn_callbacks;
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
              : "the channel is gone (expired)");
  if (p->conn && nt_conn_is_relayed(p->conn)) {
    nt_conn_close(p->conn, 0, "the broker's relay closed the channel");
  }
}

/* ---- the timer: doing what the path planner says ---- */

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
    check_report(p, NT_CHECK_FAILED);
    peer_reset(p, 0, NULL);
    return;
  }
  report_punch_failure(p);
}

static void peer_timer_cb(evutil_socket_t fd, short what, void *arg) {
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
      peer_fail(p, NATTER_ERR_TIMEOUT,
                "no introduction to %s from the broker in %u s: is the "
                "broker reachable?",
                p->name, ENV(p)->connect_timeout_ms / 1000);
      return;
    }
    arm_peer_timer(p, p->deadline_ns);
    return;
  }
  nt_path_phase phase = path_phase(p->state);
  int relayed = p->conn && nt_conn_is_relayed(p->conn);
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
    nt_endpoint_relay_bind(ENV(p)->ep, p->relay_token);
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
    arm_peer_timer(p, plan.next_ns);
    return;
  }
  if (plan.now_direct && p->conn) {
    nt_info(LOG(p),
            "%s: path now direct from %s (the peer moved the connection off "
            "the relay)",
            p->name, nt_addr_str(nt_conn_remote_addr(p->conn), addr));
  }
  send_repunch_probes(p, plan.repunch_probes, plan.nrepunch_probes);
  expire_stream_waiters(p, now);
  if (TAILQ_EMPTY(&p->waiting) && plan.next_ns != UINT64_MAX) {
    arm_peer_timer(p, plan.next_ns);
  }
}

/* The peer's addresses we probe (the rules are nt_path_candidates'). */
static size_t peer_candidates(const nt_peers_env *env, const char *name,
                              const nt_addr *observed, const nt_addr *local,
                              size_t nlocal, nt_addr *cands) {
  nt_path_self self = {&env->self->observed, env->self->local,
                       env->self->nlocal,
                       nt_endpoint_reaches(env->ep, AF_INET),
                       nt_endpoint_reaches(env->ep, AF_INET6)};
  size_t skipped = 0;
  size_t n = nt_path_candidates(&self, observed, local, nlocal, cands,
                                &skipped);
  if (skipped) {
    nt_debug(env->log,
             "%s: behind another public address; its %zu LAN "
             "addresses are not probed",
             name, skipped);
  }
  return n;
}

/* Bounds: the client has checked the introduction (client.c); here
 * nt_path_candidates() decides what is probed. Stale or unasked-for
 * introductions are dropped. */
/* Whether this listener's peer rules let |name| with |key| in; a refusal
 * is logged (once per introduction) with the rule that would admit it. */
static int peer_admitted(nt_peers *peers, const char *name, const uint8_t *key,
                         int log_refusal) {
  const nt_peers_env *env = &peers->env;
  nt_access_peer who = {name, key};
  char hex[NT_FINGERPRINT_HEX_LEN + 1];

  if (nt_access_peer_admitted(env->access, &who,
                              env->self && env->self->broker_closed)) {
    return 1;
  }
  if (log_refusal) {
    nt_fingerprint_hex(key, hex);
    nt_warn(env->log,
            "refused %s (key %s): not admitted by this listener's peer "
            "rules; to let it in, add -allow-peer %s (or -allow-peer "
            "%s@%s to pin its key too)",
            name, hex, name, name, hex);
  }
  return 0;
}

void nt_peers_on_introduction(nt_peers *peers, const nt_introduction *in) {
  const nt_peers_env *env = &peers->env;
  nt_addr cands[NT_PUNCH_MAX_CANDIDATES];
  size_t n = 0;
  nt_peer *p;

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
    if (!peer_admitted(peers, in->name, in->key, 1)) {
      if (in->check && env->callbacks->check_report) {
        /* A refusal is the check's answer: say so at once. */
        nt_check_side side;
        memset(&side, 0, sizeof(side));
        memcpy(side.nonce, in->nonce, sizeof(side.nonce));
        side.outcome = NT_CHECK_REFUSED;
        side.mapping = env->self->mapping;
        env->callbacks->check_report(&side, env->user_data);
      }
      return;
    }
    p = in->check ? check_entry(peers, in->name)
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
      nt_debug(env->log, "%s: asked again within 2 s; still on the last "
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
    nt_endpoint_set_relay(env->ep, &p->relay);
    nt_endpoint_relay_bind(env->ep, p->relay_token);
  }
  p->observed = in->observed;
  p->mapping = in->mapping;
  p->mapped = in->mapped;
  n = peer_candidates(env, p->name, &p->observed, in->local, in->nlocal, cands);
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
  nt_info(env->log, "%s: introduced (key %.16s...), probing %s", p->name,
          hex, n ? desc : "(no usable candidate)");
  peer_timer_cb(-1, 0, p);
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
    peer_timer_cb(-1, 0, p); /* re-arms for what is due first now */
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
  if (type && repunch_datagram(peers, type, nonce, from, fromlen, sock)) {
    return;
  }
  nt_peer *p = type ? peer_by_nonce(peers, nonce) : NULL;

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
                             &peer_conn_callbacks, p, &p->conn) != 0) {
    p->conn = NULL;
    peer_fail(p, NATTER_ERR_SOCKET, "cannot start a connection to %s",
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
    params->callbacks = &peer_conn_callbacks;
    params->user_data = p;
    return 1;
  }
  return 0;
}

/* ---- the connection ---- */

static void peer_conn_established(nt_conn *conn, void *ud) {
  nt_peer *p = ud;
  char addr[NT_ADDR_STRLEN];
  if (!p) {
    return;
  }
  p->conn = conn;
  p->state = NT_PEER_CONNECTED;
  event_del(p->timer);
  /* The connection runs on one socket; any other extra one goes. */
  nt_endpoint_aux_close(ENV(p)->ep, p, 0);
  uint64_t now = nt_monotonic_ns();
  p->connected_ns = now;
  unsigned long long ms = (now - p->path.meet_ns) / 1000000ull;
  nt_path_on_established(&p->path, now, nt_conn_is_relayed(conn),
                         nt_conn_socket(conn) != 0);
  if (nt_conn_is_relayed(conn)) {
    emit(p, NATTER_EVENT_PEER_CONNECTED, 0,
         "connected to %s via relay at %s (%llu ms; end-to-end encrypted, "
         "key verified; direct paths are still tried)",
         p->name, nt_addr_str(nt_conn_remote_addr(conn), addr), ms);
    arm_peer_timer(p, nt_path_live_next(&p->path));
  } else {
    emit(p, NATTER_EVENT_PEER_CONNECTED, 0,
         "connected to %s at %s (direct%s, key verified, %llu ms)", p->name,
         nt_addr_str(nt_conn_remote_addr(conn), addr),
         p->path.predicted ? " via port prediction" : "", ms);
  }
  check_report(p, NT_CHECK_CONNECTED);
  start_waiting(p);
}

static void peer_conn_closed(nt_conn *conn, nt_close_reason reason,
                             uint64_t app_code, const char *message,
                             void *ud) {
  nt_peer *p = ud;
  (void)app_code;
  if (!p) {
    return; /* superseded or failed before it began */
  }
  int was_connected = p->state == NT_PEER_CONNECTED;
  if (p->conn == conn) {
    p->conn = NULL;
  }
  if (was_connected) {
    /* Connections still waiting for a free stream cannot wait for this
     * one any more. */
    peer_reset(p, NATTER_ERR_CLOSED,
               TAILQ_EMPTY(&p->waiting)
                   ? NULL
                   : "the connection to the peer closed while this one "
                     "waited for a free stream");
    emit(p, NATTER_EVENT_PEER_DISCONNECTED, 0, "connection to %s closed (%s)",
         p->name,
         p->relay_closed == NT_RELAY_CLOSED_TOTAL
             ? "the broker's relay cap was reached: its -relay-total bytes "
               "per client are used up"
         : p->relay_closed         ? "the broker's relay closed the channel"
         : reason == NT_CLOSE_IDLE ? "peer stopped answering"
         : message && message[0]   ? message
                                   : "closed");
    return;
  }
  if (reason == NT_CLOSE_KEY_MISMATCH) {
    /* Through the relay, the broker itself (or someone on the way to it)
     * is the one posing as the peer. */
    peer_fail(p, NATTER_ERR_KEY_MISMATCH,
              "%s presented a key other than the one the broker vouched for: "
              "connection refused (%s)",
              p->name,
              nt_conn_is_relayed(conn)
                  ? "through the broker's relay: the relay, or someone on "
                    "the path to it, posed as the peer"
                  : "someone else may answer at that address");
  } else if (p->initiator && p->path.relay_started) {
    peer_fail(p, NATTER_ERR_PUNCH,
              "hole punching to %s failed and the broker's relay did not "
              "connect us either (%s): the peer may refuse relayed "
              "connections, or UDP to the broker's relay port is blocked",
              p->name,
              p->relay_closed                        ? "the relay closed it"
              : reason == NT_CLOSE_HANDSHAKE_TIMEOUT ? "no answer"
              : message && message[0]                ? message
                                                     : "TLS error");
  } else if (p->initiator) {
    peer_fail(p, NATTER_ERR_TLS, "QUIC handshake with %s failed (%s)",
              p->name,
              reason == NT_CLOSE_HANDSHAKE_TIMEOUT ? "no answer"
              : message && message[0]              ? message
                                                   : "TLS error");
  } else {
    check_report(p, NT_CHECK_FAILED);
    peer_reset(p, 0, NULL);
    nt_warn(LOG(p), "%s: incoming connection failed%s", p->name,
            reason == NT_CLOSE_KEY_MISMATCH ? " (key mismatch)" : "");
  }
}

static void peer_stream_opened(nt_conn *conn, nt_stream *s, void *ud) {
  nt_peer *p = ud;
  (void)conn;
  if (!p) {
    nt_stream_reset(s, NT_OPEN_INTERNAL);
    return;
  }
  if (p->check) {
    nt_stream_reset(s, NT_OPEN_DENIED); /* a check carries nothing */
    return;
  }
  /* A peer we connected to may open streams back; a listener serves them
   * only for peers its rules admit (the key is the one TLS verified). */
  if (ENV(p)->listen &&
      !peer_admitted(p->table, p->name, nt_conn_peer_fingerprint(conn), 1)) {
    nt_stream_reset(s, NT_OPEN_DENIED);
    return;
  }
  ENV(p)->callbacks->stream(p->name, s, ENV(p)->user_data);
}

/* ---- status (read-only views for status pages and metrics) ---- */

static const char *state_name(nt_peer_state state) {
  switch (state) {
  case NT_PEER_INTRODUCING:
    return "introducing";
  case NT_PEER_PUNCHING:
    return "punching";
  case NT_PEER_CONNECTING:
    return "connecting";
  case NT_PEER_CONNECTED:
    return "connected";
  default:
    return "idle";
  }
}

void nt_peers_each(const nt_peers *peers, nt_peer_view_fn fn, void *ud) {
  const nt_peer *p;
  TAILQ_FOREACH(p, &peers->list, link) {
    nt_peer_view v;
    memset(&v, 0, sizeof(v));
    v.name = p->name;
    v.state = state_name(p->state);
    v.initiator = p->initiator;
    const nt_path *pa = &p->path;
    v.key = p->state != NT_PEER_IDLE || pa->punch.ncandidates ? p->key : NULL;
    v.mapping = p->mapping;
    v.conn = nt_peer_conn(p);
    v.punch = &pa->punch;
    v.probe_from = pa->have_probe_from ? &pa->probe_from : NULL;
    v.predicted = v.conn && pa->predicted;
    v.check = p->check;
    v.ngiven = pa->ngiven <= pa->punch.ncandidates ? pa->ngiven : 0;
    v.observed = &p->observed;
    v.relay_offered = p->relay.len != 0;
    v.connect_ms = p->connected_ns && p->connected_ns > pa->meet_ns
                       ? (p->connected_ns - pa->meet_ns) / 1000000ull
                       : 0;
    fn(&v, ud);
  }
}

int nt_peer_mapping(const nt_peer *p) {
  return p ? p->mapping : NT_MAPPING_UNKNOWN;
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

static void peer_conn_silent(nt_conn *conn, uint64_t silent_ms, void *ud) {
  nt_peer *p = peer_by_conn(conn, ud);
  uint64_t now = nt_monotonic_ns();
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

static void peer_conn_moved(nt_conn *conn, void *ud) {
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
                      cands);
  p->mapping = in->mapping;
  p->observed = in->observed;
  nt_path_repunch_start(&p->path, in->nonce, cands, n, nt_monotonic_ns());
  nt_info(env->log, "%s: punching again to %s for the open connection", p->name,
          n ? nt_addr_str((struct sockaddr *)&cands[0].ss, desc) : "(none)");
  peer_timer_cb(-1, 0, p); /* the first round now */
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

void nt_peers_on_restart(nt_peers *peers, const char *name,
                         const uint8_t *key) {
  nt_peer *p = nt_peers_find(peers, name);
  nt_conn *conn = nt_peer_conn(p);
  if (!conn || !nt_conn_peer_fingerprint(conn) ||
      memcmp(nt_conn_peer_fingerprint(conn), key, NT_FINGERPRINT_LEN) != 0) {
    return;
  }
  /* As when a connection is superseded: let go of it first, so that a
   * local connection arriving now starts a new meeting. */
  p->conn = NULL; /* peer_reset ends the re-punch too */
  nt_conn_set_user_data(conn, NULL);
  peer_reset(p, NATTER_ERR_CLOSED,
             TAILQ_EMPTY(&p->waiting) ? NULL
                                      : "the peer restarted while this "
                                        "connection waited for a stream");
  nt_conn_close(conn, 0, "you restarted; this connection is stale");
  emit(p, NATTER_EVENT_PEER_DISCONNECTED, 0,
       "connection to %s closed (%s restarted: the broker saw a new "
       "session; its open forwarded connections are lost, new ones reach "
       "the new process)",
       p->name, p->name);
}
