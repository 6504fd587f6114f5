/* The waiting queue (peer.h): local connections that need a peer wait
 * in its queue, first come first served, at most NT_PEER_MAX_WAITING;
 * the first one starts the meeting by asking the broker for the peer.
 * Once connected, the queue is handed the connection one stream at a
 * time, as far as the peer's max-streams allows, and a waiter that gets
 * no stream within NT_PEER_STREAM_WAIT_S fails. */
#include <stdio.h>

#include "client/peer_internal.h"

nt_peer_waiter *nt_peer_dequeue(nt_peer *p) {
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

/* Hands the connection to waiters in order, until they are done or the
 * peer's stream limit stops them; then the oldest one's deadline is
 * armed. */
void nt_peer_start_waiting(nt_peer *p) {
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
    nt_peer_arm_timer(p, w->queued_ns +
                             (uint64_t)NT_PEER_STREAM_WAIT_S * 1000000000ull);
  }
}

void nt_peer_streams_available(nt_conn *conn, void *ud) {
  nt_peer *p = ud;
  if (p && p->conn == conn) {
    nt_peer_start_waiting(p);
  }
}

/* Connected, but waiters still queue for a stream: fail those that waited
 * too long. */
void nt_peer_expire_stream_waiters(nt_peer *p, uint64_t now) {
  nt_peer_waiter *w;
  while ((w = TAILQ_FIRST(&p->waiting)) &&
         now - w->queued_ns >=
             (uint64_t)NT_PEER_STREAM_WAIT_S * 1000000000ull) {
    nt_peer_dequeue(p);
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
    nt_peer_arm_timer(p, w->queued_ns +
                             (uint64_t)NT_PEER_STREAM_WAIT_S * 1000000000ull);
  }
}

/* ---- asking the broker for the peer ---- */

/* Asks the broker for |p|; 0 while the broker session is down. */
static int request(nt_peer *p) {
  p->request_id = ENV(p)->callbacks->request(p->name, ENV(p)->user_data);
  return p->request_id != 0;
}

void nt_peer_submit(nt_peer *p, nt_peer_waiter *w) {
  unsigned held;
  w->queued_ns = nt_monotonic_ns();
  if (p->state == NT_PEER_CONNECTED && p->conn && TAILQ_EMPTY(&p->waiting)) {
    if (w->ready(w, p->conn) != NT_STREAMS_BLOCKED) {
      return;
    }
    if (nt_log_gate_pass(&p->streams_logged, w->queued_ns, &held)) {
      nt_warn(LOG(p),
              "%s: all %llu streams it allows are open (its max-streams); new "
              "connections wait (at most %u, %u s)%s",
              p->name, (unsigned long long)nt_conn_peer_max_streams(p->conn),
              NT_PEER_MAX_WAITING, NT_PEER_STREAM_WAIT_S,
              held ? " (again)" : "");
    }
  }
  if (p->nwaiting >= NT_PEER_MAX_WAITING) {
    if (nt_log_gate_pass(&p->queue_logged, w->queued_ns, &held)) {
      nt_warn(LOG(p),
              "%s: %u connections already wait for the peer; closing new "
              "ones%s",
              p->name, NT_PEER_MAX_WAITING,
              held ? " (more closed since the last line)" : "");
    }
    w->failed(w, NATTER_ERR_NOMEM, "too many connections waiting for the peer");
    return;
  }
  TAILQ_INSERT_TAIL(&p->waiting, w, link); /* first come, first served */
  w->peer = p;
  p->nwaiting++;
  if (p->state == NT_PEER_CONNECTED) {
    nt_peer_start_waiting(p); /* arms the wait's deadline */
    return;
  }
  if (p->state != NT_PEER_IDLE) {
    return; /* already on its way */
  }
  p->initiator = 1;
  p->state = NT_PEER_INTRODUCING;
  p->deadline_ns =
      nt_monotonic_ns() + (uint64_t)ENV(p)->connect_timeout_ms * 1000000ull;
  nt_peer_arm_timer(p, p->deadline_ns);
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
void nt_peers_on_connect_result(nt_peers *peers, uint32_t request_id, int error,
                                const char *message) {
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
    nt_peer_fail(p, NATTER_ERR_PEER_UNKNOWN,
                 "peer \"%s\" is unknown at the broker: check the name, and "
                 "that %s runs natter with this broker",
                 p->name, p->name);
    break;
  case NATTER_ERR_PEER_NOT_LISTENING:
    nt_peer_fail(p, NATTER_ERR_PEER_NOT_LISTENING,
                 "peer \"%s\" is not listening: start it with -listen",
                 p->name);
    break;
  case NATTER_ERR_DENIED:
    nt_peer_fail(p, NATTER_ERR_DENIED,
                 "%s refuses us: its peer rules do not admit %s (its "
                 "operator can add -allow-peer %s)",
                 p->name, ENV(p)->self_name, ENV(p)->self_name);
    break;
  default:
    nt_peer_fail(p, NATTER_ERR_BROKER,
                 "the broker cannot introduce us to %s: %s", p->name,
                 message && message[0] ? message : "no reason");
    break;
  }
}
