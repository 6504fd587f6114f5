/* The client's session with its broker (broker_session.h). */
#include "client/broker_session.h"
#include "client/broker_resolve.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/admission.h"
#include "codec/control.h"
#include "codec/mapping.h"
#include "codec/portmap.h"
#include "client/tcp_fallback.h"
#include "trust/known_brokers.h"
#include "trust/token.h"

#define BROKER_KEEPALIVE_MS                                                    \
  20000 /* on the broker connection; see nt_broker_session_connect */
#define MAX_RECONNECT_DELAY_S 30

_Static_assert(NT_TOKEN_MAX <= NT_CONTROL_TOKEN_MAX,
               "a CheckIn carries any token the client accepts");

/* ---- control stream ---- */

static void send_control(natter_client *c, const nt_control *msg) {
  uint8_t frame[NT_CONTROL_FRAME_MAX];
  size_t len = nt_control_encode(frame, msg);
  if (!c->ctl || len == 0 || nt_stream_write(c->ctl, frame, len) != 0) {
    nt_warn(&c->log, "cannot send to the broker (control stream closed)");
  }
}

/* Which of this host's addresses are worth offering as candidates, in
 * the order of the lists local_candidates() fills: 0 none. */
enum { CAND_NONE = -1, CAND_V4 = 0, CAND_V6_GLOBAL, CAND_V6_ULA, CAND_KINDS };

static int candidate_kind(const struct sockaddr *sa) {
  if (nt_addr_is_loopback(sa)) {
    return CAND_NONE;
  }
  if (sa->sa_family == AF_INET) {
    uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
    /* 169.254.0.0/16 link-local: the broker would drop it anyway. */
    return (a >> 16) == 0xa9fe || a == INADDR_ANY ? CAND_NONE : CAND_V4;
  }
  if (sa->sa_family != AF_INET6) {
    return CAND_NONE;
  }
  const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  if ((b[0] & 0xe0) == 0x20) {
    return CAND_V6_GLOBAL; /* 2000::/3, global unicast (RFC 4291 §2.4) */
  }
  if ((b[0] & 0xfe) == 0xfc) {
    /* fc00::/7 unique local (RFC 4193): reachable within its site only,
     * so peers probe it only behind the same public address (path.c). */
    return CAND_V6_ULA;
  }
  return CAND_NONE; /* link-local (needs a scope id the peer cannot
                       know), v4-mapped, multicast, other special ranges */
}

/* This host's addresses with our UDP port: candidates for peers. IPv4
 * LAN addresses serve peers on the same network, which often cannot
 * reach our public address (no hairpinning); global IPv6 addresses are
 * public (no NAT66) and let a peer reach us over IPv6 whatever family
 * reached the broker. At most |max| (the wire's limit, 8): up to half
 * for IPv4 and half for global IPv6 first, so that neither family crowds
 * out the other, then whatever is left (IPv4, global IPv6, unique local
 * IPv6, in that order). Only families our socket reaches. */
static size_t local_candidates(natter_client *c, nt_addr *out, size_t max) {
  struct ifaddrs *ifa, *i;
  nt_addr found[CAND_KINDS][NT_MAX_LOCAL_ADDRS];
  size_t nfound[CAND_KINDS] = {0}, taken[CAND_KINDS] = {0}, n = 0;
  if (getifaddrs(&ifa) != 0) {
    return 0;
  }
  for (i = ifa; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) ||
        !nt_endpoint_reaches(c->ep, i->ifa_addr->sa_family)) {
      continue;
    }
    int kind = candidate_kind(i->ifa_addr);
    if (kind == CAND_NONE || nfound[kind] == NT_MAX_LOCAL_ADDRS) {
      continue;
    }
    nt_addr *a = &found[kind][nfound[kind]++];
    memset(a, 0, sizeof(*a));
    a->len = i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                               : sizeof(struct sockaddr_in6);
    memcpy(&a->ss, i->ifa_addr, a->len);
    nt_addr_set_port((struct sockaddr *)&a->ss, nt_endpoint_port(c->ep));
  }
  freeifaddrs(ifa);
  size_t quota[CAND_KINDS] = {max / 2, max - max / 2, 0};
  for (int pass = 0; pass < 2; pass++) {
    for (int k = 0; k < CAND_KINDS; k++) {
      while (n < max && taken[k] < nfound[k] &&
             (pass == 1 || taken[k] < quota[k])) {
        out[n++] = found[k][taken[k]++];
      }
    }
  }
  return n;
}

static void send_check_in(natter_client *c) {
  nt_control msg = {.type = NT_CONTROL_CHECK_IN};
  nt_check_in *in = &msg.u.check_in;
  size_t n = local_candidates(c, in->local, NT_MAX_LOCAL_ADDRS);

  /* Our own addresses as offered, for the peers' candidate rules. */
  memcpy(c->self.local, in->local, n * sizeof(in->local[0]));
  c->self.nlocal = n;

  in->nlocal = n;
  in->protocol_version = NT_CONTROL_PROTOCOL_VERSION;
  snprintf(in->name, sizeof(in->name), "%s", c->name);
  in->listen = c->listen;
  snprintf(in->token, sizeof(in->token), "%s", c->token ? c->token : "");
  memcpy(in->session, c->session, sizeof(in->session));
  in->no_relay = c->no_relay;
  in->diagnostic = c->diagnostic;
  /* Another broker's relay works like ours (NATTER_TEST_NO_RELAY_ADDRESS:
   * tests only, a client from before it). */
  in->reads_relay_address = getenv("NATTER_TEST_NO_RELAY_ADDRESS") == NULL;
  send_control(c, &msg);
}

/* A ConnectRequest for |name| (with |refresh|: punch again for the
 * connection we have). Returns its id, or 0 while not checked in. */
static uint32_t send_connect_request(natter_client *c, const char *name,
                                     int refresh) {
  nt_control msg = {.type = NT_CONTROL_CONNECT_REQUEST};
  nt_connect_request *req = &msg.u.connect_request;

  if (!c->checked_in) {
    return 0;
  }
  if (++c->next_request_id == 0) {
    c->next_request_id = 1;
  }
  req->request_id = c->next_request_id;
  snprintf(req->peer, sizeof(req->peer), "%s", name);
  req->refresh = refresh;
  req->check = c->diagnostic && !refresh; /* all a diagnostic session asks */
  send_control(c, &msg);
  return req->request_id;
}

uint32_t nt_broker_session_request_peer(const char *name, void *ud) {
  natter_client *c = ud;
  if (c->mapping_pending) {
    return 0; /* sent once the mapping check settles (mapping_settled) */
  }
  return send_connect_request(ud, name, 0);
}

int nt_broker_session_refresh_peer(const char *name, void *ud) {
  return send_connect_request(ud, name, 1) != 0;
}

void nt_broker_session_report_check(const nt_check_side *side, void *ud) {
  natter_client *c = ud;
  nt_control msg = {.type = NT_CONTROL_CHECK_REPORT};
  if (!c->checked_in) {
    return;
  }
  msg.u.check_report = *side;
  /* The broker names the reporter and its address, not we. */
  msg.u.check_report.peer[0] = '\0';
  memset(&msg.u.check_report.observed, 0, sizeof(nt_addr));
  send_control(c, &msg);
}

void nt_broker_session_rules_changed(natter_client *c) {
  nt_control msg = {.type = NT_CONTROL_ADMISSION_RESET};
  if (c->checked_in && c->listen && !c->diagnostic) {
    send_control(c, &msg);
  }
}

/* The broker passes the checked peer's report (diagnostic sessions only),
 * naming the reporter. Bounds: control.h; the check takes only its
 * meeting's. */
static void handle_check_report(natter_client *c, const nt_check_side *side,
                                int malformed) {
  if (!c->check || malformed || !side->peer[0]) {
    nt_warn(&c->log, "unexpected or malformed check report from the "
                     "broker; ignored");
    return;
  }
  nt_check_run_on_report(c->check, side);
}

/* The broker's notice about a peer we were introduced to. */
static void handle_peer_notice(natter_client *c, const nt_peer_notice *n,
                               int malformed) {
  if (malformed) {
    nt_warn(&c->log, "malformed peer notice from the broker; ignored");
    return;
  }
  if (n->kind == NT_NOTICE_RESTARTED) {
    nt_peers_on_restart(c->peers, n->peer, n->key);
  }
}

/* ---- NAT mapping check ---- */

/* Our gateway's mapping, offered only on the IP address the broker sees
 * us at: on another one a NAT beyond the gateway maps us again, and
 * nothing reaches the gateway's external port (doc/design.md, "Port
 * mapping"). */
static void update_portmap(natter_client *c) {
  nt_addr ext, was = c->self.portmap;
  int method = nt_portmap_get(c->portmap, &ext);
  if (method != NT_PORTMAP_NONE &&
      !nt_addr_same_host((struct sockaddr *)&ext.ss,
                         (struct sockaddr *)&c->self.observed.ss)) {
    if (c->self.observed.len && !c->portmap_elsewhere_logged) {
      char a[NT_ADDR_STRLEN], b[NT_ADDR_STRLEN];
      nt_info(&c->log,
              "port mapping at %s not offered: the broker sees us at %s "
              "(another NAT beyond the gateway)",
              nt_addr_str((struct sockaddr *)&ext.ss, a),
              nt_addr_str((struct sockaddr *)&c->self.observed.ss, b));
      c->portmap_elsewhere_logged = 1;
    }
    method = NT_PORTMAP_NONE;
  }
  if (method == NT_PORTMAP_NONE) {
    memset(&ext, 0, sizeof(ext));
  }
  c->self.portmap = ext;
  c->self.portmap_method = method;
  if (ext.len && (!was.len || !nt_addr_equal((struct sockaddr *)&ext.ss,
                                             (struct sockaddr *)&was.ss))) {
    char a[NT_ADDR_STRLEN];
    nt_info(&c->log, "port-mapped (%s) at %s: offered to peers",
            nt_portmap_method_name(method),
            nt_addr_str((struct sockaddr *)&ext.ss, a));
  }
}

/* A check (natter -check) waits for the gateway's answer, at most
 * NT_CHECK_PORTMAP_WAIT_MS, so that its report and the peer's
 * introduction carry our mapping: a gateway on the LAN answers in
 * milliseconds, and without one the check goes on without. */
#define NT_CHECK_PORTMAP_WAIT_MS 1000

static void portmap_wait_cb(evutil_socket_t fd, short what, void *arg) {
  natter_client *c = arg;
  (void)fd;
  (void)what;
  nt_check_run_start(c->check);
}

static void start_check(natter_client *c) {
  if (!c->check) {
    return;
  }
  if (!nt_portmap_settled(c->portmap) && !c->portmap_wait_ev) {
    struct timeval tv = {0, NT_CHECK_PORTMAP_WAIT_MS * 1000};
    c->portmap_wait_ev = evtimer_new(c->base, portmap_wait_cb, c);
    if (c->portmap_wait_ev && event_add(c->portmap_wait_ev, &tv) == 0) {
      return; /* portmap_wait_cb, or the gateway's answer, starts it */
    }
  }
  if (c->portmap_wait_ev &&
      event_pending(c->portmap_wait_ev, EV_TIMEOUT, NULL)) {
    return; /* still waiting */
  }
  nt_check_run_start(c->check);
}

static void send_nat_report(natter_client *c) {
  nt_control msg = {.type = NT_CONTROL_NAT_REPORT};
  update_portmap(c);
  msg.u.nat_report.mapping = c->self.mapping;
  msg.u.nat_report.mapped = c->mapped;
  msg.u.nat_report.portmap = c->self.portmap;
  msg.u.nat_report.portmap_method = c->self.portmap_method;
  send_control(c, &msg);
}

void nt_broker_session_portmap_changed(void *ud) {
  natter_client *c = ud;
  nt_addr was = c->self.portmap;
  if (c->checked_in && !c->mapping_pending) {
    update_portmap(c);
    if (was.len != c->self.portmap.len ||
        !nt_addr_equal((struct sockaddr *)&was.ss,
                       (struct sockaddr *)&c->self.portmap.ss)) {
      send_nat_report(c);
    }
  } else {
    update_portmap(c);
  }
  /* A check waiting for the gateway goes on now. */
  if (c->portmap_wait_ev &&
      event_pending(c->portmap_wait_ev, EV_TIMEOUT, NULL) &&
      nt_portmap_settled(c->portmap)) {
    event_del(c->portmap_wait_ev);
    nt_check_run_start(c->check);
  }
}

/* The mapping check is over (answered or given up): the introductions
 * that waited for it go out. */
static void mapping_settled(natter_client *c) {
  if (c->mapping_pending) {
    c->mapping_pending = 0;
    nt_peers_request_waiting(c->peers);
  }
}

/* Probes the broker's second port a few times; the first answer settles
 * it, and silence leaves the mapping unknown. */
void nt_broker_session_mapping_cb(evutil_socket_t fd, short what, void *arg) {
  static const unsigned delays_ms[] = {300, 700, 1000};
  natter_client *c = arg;
  uint8_t req[NT_MAPPING_REQUEST_LEN];
  (void)fd;
  (void)what;

  if (c->mapping_tries >= sizeof(delays_ms) / sizeof(delays_ms[0])) {
    nt_debug(&c->log, "no answer from the broker's mapping-check port %u",
             c->mapping_port);
    mapping_settled(c);
    start_check(c); /* with the mapping unknown */
    return;
  }
  nt_addr to = c->broker_addr;
  nt_addr_set_port((struct sockaddr *)&to.ss, c->mapping_port);
  nt_mapping_encode_request(req, c->mapping_nonce);
  nt_endpoint_sendto(c->ep, req, sizeof(req), (struct sockaddr *)&to.ss,
                     to.len);
  struct timeval tv = {0, (suseconds_t)delays_ms[c->mapping_tries] * 1000};
  c->mapping_tries++;
  event_add(c->mapping_ev, &tv);
}

static void start_mapping_check(natter_client *c) {
  if (!c->mapping_port || !c->self.observed.len ||
      nt_random_bytes(c->mapping_nonce, sizeof(c->mapping_nonce)) != 0) {
    start_check(c); /* no mapping to wait for */
    return;
  }
  c->mapping_pending = 1;
  if (nt_tcp_fallback_active(c)) {
    /* Over TCP the broker saw our TCP address: nothing to compare a UDP
     * mapping with. Settled as unknown, from the loop, as when no answer
     * comes (the requests and a check wait until then). */
    static const struct timeval now = {0, 0};
    c->mapping_tries = 3; /* every try used: gives up at once */
    event_add(c->mapping_ev, &now);
    return;
  }
  c->mapping_tries = 0;
  nt_broker_session_mapping_cb(-1, 0, c);
}

/* Returns 1 when |data| was a mapping reply (handled), 0 otherwise. */
int nt_broker_session_mapping_reply(natter_client *c, const uint8_t *data,
                                    size_t len) {
  uint8_t nonce[NT_MAPPING_NONCE_LEN];
  nt_addr seen;
  char a[NT_ADDR_STRLEN], b[NT_ADDR_STRLEN];

  if (!nt_mapping_decode_reply(data, len, nonce, &seen)) {
    return 0;
  }
  if (nt_tcp_fallback_probe_reply(c, nonce)) {
    return 1;
  }
  if (memcmp(nonce, c->mapping_nonce, sizeof(nonce)) != 0 ||
      !event_pending(c->mapping_ev, EV_TIMEOUT, NULL)) {
    return 1; /* stale or forged: ignore */
  }
  event_del(c->mapping_ev);
  c->mapped = seen;
  c->self.mapping = nt_addr_equal((struct sockaddr *)&seen.ss,
                                  (struct sockaddr *)&c->self.observed.ss)
                        ? NT_MAPPING_ENDPOINT_INDEPENDENT
                        : NT_MAPPING_PER_DESTINATION;
  nt_addr_str((struct sockaddr *)&c->self.observed.ss, a);
  nt_addr_str((struct sockaddr *)&seen.ss, b);
  if (c->self.mapping == NT_MAPPING_PER_DESTINATION && !c->diagnostic) {
    nt_warn(&c->log,
            "this host's NAT is symmetric: the broker's two ports saw %s and "
            "%s; peers with a public address are reached directly, peers "
            "behind other NATs by port prediction, and peers behind "
            "symmetric NATs too only through a broker's relay (-relay) or a "
            "forwarded UDP port (see -port)",
            a, b);
  } else {
    nt_debug(&c->log, "NAT mapping: %s (%s on both broker ports)",
             nt_mapping_name(c->self.mapping), a);
  }
  send_nat_report(c);
  /* Meetings that began before we knew: their relay delay and port
   * prediction depend on it. */
  nt_peers_on_self_mapping(c->peers);
  mapping_settled(c);
  /* A check waits for the mapping: the broker hands it to the peer with
   * the introduction, and the verdict reads it. */
  start_check(c);
  return 1;
}

static void handle_check_in_result(natter_client *c,
                                   const nt_check_in_result *r) {
  char addr[NT_ADDR_STRLEN], broker[NT_ADDR_STRLEN];

  nt_addr_str((struct sockaddr *)&c->broker_addr.ss, broker);
  if (r->code == NT_CODE_NAME_TAKEN) {
    nt_client_fatal(
        c, NATTER_ERR_NAME_TAKEN,
        "name \"%s\" is taken at broker %s by another key: choose another "
        "-name, or use the key file that first claimed it",
        c->name, broker);
    nt_conn_close(c->broker_conn, 0, "name taken");
    return;
  }
  if (r->code == NT_CODE_UNAUTHORIZED) {
    nt_client_fatal(
        c, NATTER_ERR_UNAUTHORIZED,
        "broker %s refused %s: not authorized by the broker (%s; this "
        "key is %s)",
        broker, c->name,
        c->token ? "check the token, and that the broker admits this key "
                   "under this name"
                 : "it needs a token (-token-file or NATTER_TOKEN) "
                   "and/or this key in its admitted-keys file",
        c->fingerprint_hex);
    nt_conn_close(c->broker_conn, 0, "unauthorized");
    return;
  }
  if (r->code == NT_CODE_BAD_REQUEST && strstr(r->message, "protocol") &&
      !strstr(r->message, "upgrade")) {
    /* A broker older than this client says no more than that. */
    nt_client_fatal(c, NATTER_ERR_BROKER,
                    "broker %s runs an older natter: it does not speak "
                    "protocol %d (%s); upgrade the broker, or use the "
                    "natter version it runs",
                    broker, NT_CONTROL_PROTOCOL_VERSION, r->message);
    nt_conn_close(c->broker_conn, 0, "refused");
    return;
  }
  if (r->code != NT_CODE_OK) {
    char why[200];
    snprintf(why, sizeof(why), "%s", r->message[0] ? r->message : "no reason");
    nt_client_fatal(c, NATTER_ERR_BROKER, "broker %s refused check-in: %s",
                    broker, why);
    nt_conn_close(c->broker_conn, 0, "refused");
    return;
  }
  c->self.broker_closed = r->closed ? 1 : 0;
  if (c->listen && !c->self.broker_closed &&
      !nt_access_has_peer_rules(c->access)) {
    nt_client_fatal(
        c, NATTER_ERR_INVALID,
        "broker %s is open (any key can check in under any unused name), "
        "so -listen without peer rules would let strangers in: name the "
        "peers that may connect with -allow-peer NAME (or "
        "NAME@FINGERPRINT), or accept anyone explicitly with -allow-peer "
        "'*'",
        broker);
    nt_conn_close(c->broker_conn, 0, "open broker, no peer rules");
    return;
  }
  c->self.observed = r->observed;
  nt_addr_unmap(&c->self.observed.ss, &c->self.observed.len);
  c->checked_in = 1;
  c->ever_checked_in = 1;
  c->mapping_port = r->mapping_port;
  c->reconnect_delay_s = 0;
  c->broker_tries = 0;
  c->broker_answered = 0;
  nt_client_emit(
      c, NATTER_EVENT_CHECKED_IN, 0,
      "checked in at broker %s as %s (public address %s)%s", broker, c->name,
      c->self.observed.len
          ? nt_addr_str((struct sockaddr *)&c->self.observed.ss, addr)
          : "unknown",
      c->listen       ? ", listening"
      : c->diagnostic ? ", for a check only (a client running as "
                        "this name is not disturbed)"
                      : "");
  nt_portmap_recheck(c->portmap);
  /* The check first: requests wait for it (mapping_pending). */
  start_mapping_check(c);
  nt_peers_broker_ready(c->peers);
}

/* The broker's ConnectResult. Bounds: control.h (the message reads ""
 * unless printable ASCII of at most NT_CONTROL_TEXT_MAX bytes). */
static void handle_connect_result(natter_client *c,
                                  const nt_connect_result *r) {
  int error = r->code == NT_CODE_PEER_UNKNOWN ? NATTER_ERR_PEER_UNKNOWN
              : r->code == NT_CODE_PEER_NOT_LISTENING
                  ? NATTER_ERR_PEER_NOT_LISTENING
              : r->code == NT_CODE_DENIED ? NATTER_ERR_DENIED
                                          : NATTER_ERR_BROKER;
  nt_peers_on_connect_result(c->peers, r->request_id, error, r->message);
}

/* The broker's Introduction, checked by nt_control_decode (control.h
 * says what it bounds). */
static void handle_introduction(natter_client *c, const nt_introduction *in,
                                int malformed) {
  if (malformed) {
    nt_warn(&c->log, "malformed introduction from the broker; ignored");
    return;
  }
  nt_introduction intro = *in;
  char addr[NT_ADDR_STRLEN];
  if (intro.relay_port && intro.relay.len) {
    /* Another broker's relay (the peer's broker relays across brokers):
     * the address comes from our broker over the pinned control stream,
     * yet it only gets what a relay gets (a bind, QUIC packets to the
     * peer's key), and never our own host unless our broker is on it. */
    if (!nt_candidate_acceptable(
            (const struct sockaddr *)&intro.relay.ss,
            nt_addr_is_loopback((const struct sockaddr *)&c->broker_addr.ss))) {
      nt_warn(&c->log,
              "%s: the broker named a relay at %s, which is no address for "
              "one; not used",
              intro.name,
              nt_addr_str((const struct sockaddr *)&intro.relay.ss, addr));
      intro.relay_port = 0;
      memset(&intro.relay, 0, sizeof(intro.relay));
      memset(intro.relay_token, 0, sizeof(intro.relay_token));
    } else {
      nt_debug(&c->log, "%s: relayed by its broker's relay at %s if need be",
               intro.name,
               nt_addr_str((const struct sockaddr *)&intro.relay.ss, addr));
    }
  } else if (intro.relay_port) {
    /* The relay listens on the broker's own address. */
    intro.relay = c->broker_addr;
    nt_addr_set_port((struct sockaddr *)&intro.relay.ss, intro.relay_port);
    nt_tcp_fallback_on_relay(c, &intro.relay);
  }
  if (!intro.refresh && intro.request_id) {
    nt_check_run_on_introduction(c->check, intro.name, intro.nonce);
  }
  nt_peers_on_introduction(c->peers, &intro);
}

/* The broker asks whether a requester may meet us, before it spends
 * anything on it: our peer rules decide (refusals counted and logged
 * within bounds), and we answer exactly once. The query carries the
 * requester's name and key only. */
static void handle_admission_query(natter_client *c,
                                   const nt_admission_query *q, int malformed) {
  nt_control msg = {.type = NT_CONTROL_ADMISSION_ANSWER};
  if (malformed) {
    nt_warn(&c->log, "malformed admission query from the broker; ignored");
    return;
  }
  msg.u.admission_answer.query_id = q->query_id;
  msg.u.admission_answer.admitted =
      c->listen && !c->diagnostic && nt_peers_admit(c->peers, q->peer, q->key);
  send_control(c, &msg);
}

/* One control message from the broker; returns nonzero when the session
 * ends (fatal error or a close), so nothing after it is read. */
static int handle_control(const uint8_t *body, size_t len, void *ud) {
  natter_client *c = ud;
  nt_control msg;
  int malformed = nt_control_decode(&msg, body, len) != 0;
  if (malformed && msg.type == NT_CONTROL_NONE) {
    nt_warn(&c->log, "malformed message from the broker; reconnecting");
    nt_conn_close(c->broker_conn, NT_CODE_BAD_REQUEST, "malformed");
    return 1;
  }
  switch (msg.type) {
  case NT_CONTROL_CHECK_IN_RESULT:
    handle_check_in_result(c, &msg.u.check_in_result);
    break;
  case NT_CONTROL_CONNECT_RESULT:
    handle_connect_result(c, &msg.u.connect_result);
    break;
  case NT_CONTROL_INTRODUCTION:
    if (c->checked_in) {
      handle_introduction(c, &msg.u.introduction, malformed);
    }
    break;
  case NT_CONTROL_PEER_NOTICE:
    if (c->checked_in) {
      handle_peer_notice(c, &msg.u.peer_notice, malformed);
    }
    break;
  case NT_CONTROL_CHECK_REPORT:
    if (c->checked_in) {
      handle_check_report(c, &msg.u.check_report, malformed);
    }
    break;
  case NT_CONTROL_ADMISSION_QUERY:
    if (c->checked_in) {
      handle_admission_query(c, &msg.u.admission_query, malformed);
    }
    break;
  default:
    nt_warn(&c->log, "unexpected message from the broker; ignored");
    break;
  }
  return c->fatal;
}

static void ctl_recv(nt_stream *s, const uint8_t *data, size_t len, int fin,
                     void *ud) {
  natter_client *c = ud;

  if (c->broker_conn && !c->fatal &&
      nt_wire_reader_each(c->ctl_reader, data, len, handle_control, c) < 0) {
    nt_warn(&c->log, "bad framing from the broker; reconnecting");
    nt_conn_close(c->broker_conn, NT_CODE_BAD_REQUEST, "framing");
  }
  nt_stream_consume(s, len);
  if (fin && c->broker_conn) {
    nt_conn_close(c->broker_conn, 0, "control stream ended");
  }
}

static void ctl_closed(nt_stream *s, int reset, uint64_t code, void *ud) {
  natter_client *c = ud;
  (void)s;
  (void)reset;
  (void)code;
  c->ctl = NULL;
}

static const nt_stream_callbacks ctl_callbacks = {ctl_recv, NULL, ctl_closed};

/* ---- broker connection ---- */

/* Several brokers of one network (broker_list.h) share one identity key:
 * the TLS handshake then pins no key, and broker_established compares the
 * key it saw with the network's, so that a broker with another key is
 * named, with both fingerprints, and skipped. */
static int several(const natter_client *c) {
  return c->brokers.n > 1;
}

static void refuse_broker(natter_client *c, const uint8_t *seen,
                          const uint8_t *expected, const char *whence) {
  char broker[NT_ADDR_STRLEN], a[NT_FINGERPRINT_HEX_LEN + 1],
      b[NT_FINGERPRINT_HEX_LEN + 1];
  nt_addr_str((struct sockaddr *)&c->broker_addr.ss, broker);
  nt_fingerprint_hex(seen, a);
  nt_fingerprint_hex(expected, b);
  nt_warn(&c->log,
          "broker %s presents key %s, but the key of this network (%s) is "
          "%s (%s): refused, not used (the brokers of one network share "
          "one identity file)",
          broker, a, c->broker_text, b, whence);
  c->broker_refused = 1;
}

/* The broker's key against the pinned one (several brokers), the
 * known-brokers file (trust on first use: the first key met is
 * remembered for the broker, or the list of brokers, as given) or the
 * key learnt this run (several brokers, no file). Returns 0 to go on, 1
 * when this broker is refused (several brokers: the next is tried), -1
 * when the client is stopped (fatal). */
static int check_known_broker(natter_client *c, nt_conn *conn) {
  char err[600], msg[1200], whence[700];
  nt_known_broker known;
  int found = 0;
  const uint8_t *seen = nt_conn_peer_fingerprint(conn);

  if (!seen) {
    return 0;
  }
  if (c->broker_pinned) {
    if (several(c) && memcmp(seen, c->broker_key, NT_FINGERPRINT_LEN) != 0) {
      refuse_broker(c, seen, c->broker_key, "pinned by -broker-key");
      return 1;
    }
    return 0; /* one broker: the handshake checked the pin */
  }
  if (!c->known_brokers) {
    if (!several(c)) {
      return 0;
    }
    if (!c->network_key_learnt) {
      memcpy(c->network_key, seen, NT_FINGERPRINT_LEN);
      c->network_key_learnt = 1;
      return 0;
    }
    if (memcmp(seen, c->network_key, NT_FINGERPRINT_LEN) != 0) {
      refuse_broker(c, seen, c->network_key, "the first broker's key this run");
      return 1;
    }
    return 0;
  }
  if (nt_known_brokers_lookup(c->known_brokers, c->broker_text, &found, &known,
                              err, sizeof(err)) != 0) {
    nt_client_fatal(
        c, NATTER_ERR_KEY_MISMATCH,
        "cannot check the broker's key: %s (fix or remove that line)", err);
    return -1;
  }
  if (found) {
    if (memcmp(known.fingerprint, seen, NT_FINGERPRINT_LEN) == 0) {
      return 0;
    }
    if (several(c)) {
      snprintf(whence, sizeof(whence), "remembered in %s:%u", c->known_brokers,
               known.line);
      refuse_broker(c, seen, known.fingerprint, whence);
      return 1;
    }
    nt_known_brokers_mismatch_message(msg, sizeof(msg), c->known_brokers,
                                      c->broker_text, &known, seen);
    nt_client_fatal(c, NATTER_ERR_KEY_MISMATCH, "%s", msg);
    return -1;
  }
  if (nt_known_brokers_add(c->known_brokers, c->broker_text, seen, err,
                           sizeof(err)) != 0) {
    nt_client_fatal(c, NATTER_ERR_KEY_MISMATCH,
                    "cannot remember the broker's key: %s", err);
    return -1;
  }
  char hex[NT_FINGERPRINT_HEX_LEN + 1], at[NT_ADDR_STRLEN];
  nt_fingerprint_hex(seen, hex);
  if (several(c)) {
    nt_info(&c->log,
            "first contact with the brokers %s (at %s): remembered their "
            "key %s in %s (every broker of the list must present it; "
            "-broker-key pins it explicitly)",
            c->broker_text,
            nt_addr_str((struct sockaddr *)&c->broker_addr.ss, at), hex,
            c->known_brokers);
    return 0;
  }
  nt_info(&c->log,
          "first contact with broker %s: remembered its key %s in %s (a "
          "different key later stops this client; -broker-key pins it "
          "explicitly)",
          c->broker_text, hex, c->known_brokers);
  return 0;
}

static void broker_established(nt_conn *conn, void *ud) {
  natter_client *c = ud;
  nt_tcp_fallback_on_established(c);
  if (check_known_broker(c, conn) != 0) {
    nt_conn_close(conn, 0, "broker key mismatch");
    return;
  }
  if (nt_conn_open_stream(conn, &c->ctl) != 0) {
    nt_conn_close(conn, NT_CODE_INTERNAL, "no stream");
    return;
  }
  nt_wire_reader_reset(c->ctl_reader);
  nt_stream_set_callbacks(c->ctl, &ctl_callbacks, c);
  send_check_in(c);
}

static void schedule_reconnect(natter_client *c) {
  struct timeval tv = {0, 0};
  c->reconnect_delay_s = c->reconnect_delay_s ? c->reconnect_delay_s * 2 : 1;
  if (c->reconnect_delay_s > MAX_RECONNECT_DELAY_S) {
    c->reconnect_delay_s = MAX_RECONNECT_DELAY_S;
  }
  /* ±25% jitter: clients that lost the broker together (a restart, a
   * power cut) must not come back in lockstep. */
  uint16_t r = 0;
  nt_random_bytes((uint8_t *)&r, sizeof(r));
  uint64_t ms = (uint64_t)c->reconnect_delay_s * (750 + r % 501);
  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
  event_add(c->reconnect_ev, &tv);
}

/* Whether the broker just given up was the last untried one of this
 * round through the list (always, with one broker). */
static int round_over(const natter_client *c) {
  return c->broker_tries + 1 >= c->brokers.n;
}

/* Goes on with the next broker of the list: within a second while the
 * round has untried ones (jittered: the clients of a broker that died
 * must not all arrive in the same millisecond), with backoff across the
 * list once every one was tried (with one broker: backoff, as always).
 * Writes what happens next into |how|. */
static void move_on(natter_client *c, char *how, size_t howlen) {
  char next[NT_ADDR_STRLEN];
  int over = round_over(c);

  c->broker_index = (c->broker_index + 1) % c->brokers.n;
  c->broker_addr = c->brokers.addr[c->broker_index];
  c->self.broker = c->broker_addr;
  nt_addr_str((struct sockaddr *)&c->broker_addr.ss, next);
  if (!over) {
    c->broker_tries++;
    uint16_t r = 0;
    nt_random_bytes((uint8_t *)&r, sizeof(r));
    struct timeval tv = {0, (suseconds_t)(100 + r % 401) * 1000};
    event_add(c->reconnect_ev, &tv);
    snprintf(how, howlen, "trying broker %s next", next);
    return;
  }
  c->broker_tries = 0;
  c->broker_answered = 0;
  schedule_reconnect(c);
  /* A whole round failed: a broker given by name may have moved. */
  nt_broker_resolve_start(c->resolve);
  if (several(c)) {
    snprintf(how, howlen, "all %zu brokers tried: retrying in %u s, at %s",
             c->brokers.n, c->reconnect_delay_s, next);
  } else {
    snprintf(how, howlen, "retrying in %u s", c->reconnect_delay_s);
  }
}

/* No broker of the list could be used on the first round at start: the
 * client stops, as with one broker that does not answer. */
static void give_up(natter_client *c, int error, const char *why) {
  nt_client_fatal(c, error,
                  "no broker of %s could be used (%zu tried; the last, %s): "
                  "check the addresses, that UDP is allowed, and that every "
                  "broker of the list has the network's key",
                  c->broker_text, c->brokers.n, why);
}

static void broker_closed(nt_conn *conn, nt_close_reason reason,
                          uint64_t app_code, const char *message, void *ud) {
  natter_client *c = ud;
  char broker[NT_ADDR_STRLEN], how[160], why[300];
  int silent = c->broker_silent, refused = c->broker_refused;
  int was_in = c->checked_in;
  (void)app_code;

  c->broker_conn = NULL;
  c->ctl = NULL;
  c->checked_in = 0;
  c->broker_silent = c->broker_refused = 0;
  event_del(c->broker_lost_ev);
  /* A mapping check of the lost session ends with it; introductions
   * that waited for it go out at the next check-in. */
  event_del(c->mapping_ev);
  c->mapping_pending = 0;
  if (c->fatal) {
    return;
  }
  int tcp = nt_tcp_fallback_on_closed(c);
  if (tcp == 1) {
    nt_broker_session_connect(c); /* again, over TCP */
    return;
  }
  if (tcp == 2 && !c->ever_checked_in) {
    schedule_reconnect(c); /* the TCP connection may still come up */
    return;
  }
  nt_addr_str((struct sockaddr *)&c->broker_addr.ss, broker);
  if (refused) {
    /* Said by refuse_broker. */
    if (!c->ever_checked_in && round_over(c) && !c->broker_answered) {
      snprintf(why, sizeof(why), "%s, presents another key", broker);
      give_up(c, NATTER_ERR_KEY_MISMATCH, why);
      return;
    }
    move_on(c, how, sizeof(how));
    nt_info(&c->log, "broker %s skipped: %s", broker, how);
    return;
  }
  if (reason == NT_CLOSE_KEY_MISMATCH) {
    nt_client_fatal(
        c, NATTER_ERR_KEY_MISMATCH,
        "broker %s presented a key other than the pinned -broker-key: "
        "check the fingerprint, or the address is not your broker",
        broker);
    return;
  }
  if (reason == NT_CLOSE_REFUSED) {
    /* A limit at the broker (busy, full, too many from this address):
     * it answers, so keep trying, with backoff, and say which limit. */
    c->broker_answered = 1;
    move_on(c, how, sizeof(how));
    nt_warn(&c->log, "broker %s refused the connection: %s; %s", broker,
            message[0] ? message : "no reason given", how);
    return;
  }
  uint64_t rtt_us, tx, rx = 0;
  if (conn) {
    nt_conn_get_stats(conn, &rtt_us, &tx, &rx);
  }
  if (!c->ever_checked_in && reason == NT_CLOSE_HANDSHAKE_TIMEOUT && rx > 0) {
    /* It answered, so it is there: busy (a check-in storm after a power
     * cut), not unreachable. Keep trying, with jittered backoff. */
    c->broker_answered = 1;
    move_on(c, how, sizeof(how));
    nt_warn(&c->log,
            "broker %s answers but did not finish the handshake in %u s "
            "(busy?); %s",
            broker, NT_BROKER_HANDSHAKE_TIMEOUT_MS / 1000, how);
    return;
  }
  if (!c->ever_checked_in) {
    int unreachable = silent || reason == NT_CLOSE_HANDSHAKE_TIMEOUT ||
                      reason == NT_CLOSE_IDLE;
    if (several(c)) {
      const char *what = unreachable  ? "did not answer"
                         : message[0] ? message
                                      : "closed the connection";
      if (!round_over(c) || c->broker_answered) {
        move_on(c, how, sizeof(how));
        nt_warn(&c->log, "broker %s could not be used (%s); %s", broker, what,
                how);
        return;
      }
      snprintf(why, sizeof(why), "%s, %s", broker, what);
      give_up(c, NATTER_ERR_BROKER, why);
      return;
    }
    if (unreachable) {
      unsigned tcp_port = nt_tcp_fallback_port(c);
      char also[80] = "";
      if (tcp_port) {
        snprintf(also, sizeof(also),
                 " (or that the broker listens on TCP port %u)", tcp_port);
      }
      nt_client_fatal(
          c, NATTER_ERR_BROKER,
          "cannot reach broker %s (no answer in %u s): check the address "
          "and that UDP is allowed%s",
          broker, NT_BROKER_HANDSHAKE_TIMEOUT_MS / 1000, also);
    } else {
      nt_client_fatal(
          c, NATTER_ERR_BROKER,
          "broker %s closed the connection (%s): check that it is a "
          "natter broker of a compatible version",
          broker, message[0] ? message : "no reason given");
    }
    return;
  }
  const char *what =
      silent || reason == NT_CLOSE_IDLE || reason == NT_CLOSE_HANDSHAKE_TIMEOUT
          ? "no answer"
      : message[0] ? message
                   : "closed";
  move_on(c, how, sizeof(how));
  if (was_in) {
    nt_warn(&c->log, "lost the broker %s (%s); %s", broker, what, how);
  } else {
    /* Another of the list, tried after a loss: never checked in. */
    nt_warn(&c->log, "broker %s could not be used (%s); %s", broker, what, how);
  }
}

/* Several brokers: nothing came from ours for NT_BROKER_LOST_MS while the
 * control stream is open (quic/endpoint.h's silence watch, which also
 * keeps a PING going every second): it is gone, or the path to it is;
 * the next broker takes over. Peer connections are left alone. */
static void give_up_silent(natter_client *c, uint64_t silent_ms) {
  char broker[NT_ADDR_STRLEN];
  nt_debug(&c->log, "broker %s silent for %llu ms: giving it up",
           nt_addr_str((struct sockaddr *)&c->broker_addr.ss, broker),
           (unsigned long long)silent_ms);
  c->broker_silent = 1;
  nt_conn_close(c->broker_conn, 0, "silent");
}

static void broker_silent(nt_conn *conn, uint64_t silent_ms, void *ud) {
  natter_client *c = ud;
  if (conn != c->broker_conn || c->broker_silent) {
    return;
  }
  if (silent_ms < NT_BROKER_LOST_MS) {
    /* A hiccup, maybe: look again when it would be long enough. */
    uint64_t left = NT_BROKER_LOST_MS - silent_ms;
    struct timeval tv = {(time_t)(left / 1000),
                         (suseconds_t)(left % 1000) * 1000};
    event_add(c->broker_lost_ev, &tv);
    return;
  }
  give_up_silent(c, silent_ms);
}

void nt_broker_session_lost_cb(evutil_socket_t fd, short what, void *arg) {
  natter_client *c = arg;
  (void)fd;
  (void)what;
  if (!c->broker_conn || c->broker_silent || c->fatal) {
    return;
  }
  uint64_t silent_ms = nt_conn_silent_ms(c->broker_conn);
  if (silent_ms >= NT_BROKER_LOST_MS) {
    give_up_silent(c, silent_ms);
  } /* else it answered meanwhile; the watch reports a new silence */
}

static const nt_conn_callbacks broker_conn_callbacks = {
    broker_established, broker_closed, NULL, NULL, NULL, NULL, NULL};
/* Several brokers: the silence watch gives a lost one up after 2 s
 * (NT_BROKER_LOST_MS), at the price of a PING a second to it. */
static const nt_conn_callbacks broker_list_callbacks = {
    broker_established, broker_closed, NULL, NULL, broker_silent, NULL, NULL};

void nt_broker_session_connect(natter_client *c) {
  char how[160];
  const uint8_t *pin = c->broker_pinned && !several(c) ? c->broker_key : NULL;
  if (nt_endpoint_connect(
          c->ep, (struct sockaddr *)&c->broker_addr.ss, c->broker_addr.len, pin,
          several(c) ? &broker_list_callbacks : &broker_conn_callbacks, c,
          &c->broker_conn) != 0) {
    c->broker_conn = NULL;
    move_on(c, how, sizeof(how));
    nt_warn(&c->log, "cannot start a connection to the broker; %s", how);
    return;
  }
  nt_tcp_fallback_on_connect(c); /* whichever broker of a list it is */
  if (several(c)) {
    return; /* the silence watch keeps its PING a second going */
  }
  /* The broker pays for every client's keepalive: 20 s still keeps the
   * socket's NAT mapping inside the shortest common UDP timeout (30 s),
   * since a lost PING is resent after one probe timeout (well under a
   * second), and halves what 10,000 idle clients cost it. */
  nt_conn_set_keepalive(c->broker_conn, BROKER_KEEPALIVE_MS);
}

void nt_broker_session_reconnect_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  nt_broker_session_connect(arg);
}
