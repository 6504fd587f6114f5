/* The client: one UDP endpoint, the session with the broker over a control
 * stream, and the public natter_client_* API. Peers, forwards and tunnels
 * live in their own files. */
#include <event2/buffer.h>
#include <event2/dns.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "client/client_status.h"
#include "base/escape.h"
#include "status/h3.h"
#include "trust/known_brokers.h"
#include "codec/mapping.h"
#include "status/metrics.h"
#include "base/paths.h"
#include "codec/spec.h"
#include "base/structs.h"
#include "trust/token.h"
#include "codec/wire_check.h"
#include "codec/wire_intro.h"
#include "codec/wire_msg.h"

#define PROTOCOL_VERSION 1
#define BROKER_HANDSHAKE_TIMEOUT_MS 5000
#define BROKER_KEEPALIVE_MS                                                    \
  20000 /* on the broker connection; see broker_connect */
#define MAX_RECONNECT_DELAY_S 30

static void broker_connect(natter_client *c);

/* Every event goes through here: one log line (escaped: messages quote
 * the peer and the broker) and the user's callback. */
static void emit_event(natter_client *c, natter_event_type type, int quiet,
                       int error, const char *peer, nt_forward *forward,
                       int exit_status, const char *text) {
  char msg[1400];
  natter_log_level level = NATTER_LOG_INFO;

  nt_escape(msg, sizeof(msg), text);
  if (type == NATTER_EVENT_FATAL || type == NATTER_EVENT_PEER_FAILED ||
      type == NATTER_EVENT_FORWARD_FAILED) {
    level = NATTER_LOG_ERROR;
  } else if (type == NATTER_EVENT_FORWARD_OPENED ||
             type == NATTER_EVENT_FORWARD_CLOSED) {
    level = NATTER_LOG_DEBUG; /* one per connection: only with -v */
  }
  if (quiet) {
    level = NATTER_LOG_DEBUG; /* the cause was logged already */
  }
  nt_log_printf(&c->log, level, "%s", msg);
  nt_client_count_event(c, type, error, peer);
  if (c->on_event) {
    natter_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.error = error;
    ev.peer = peer;
    ev.message = msg;
    ev.forward = forward;
    ev.exit_status = exit_status;
    if (type == NATTER_EVENT_PEER_CONNECTED && peer && c->peers) {
      nt_conn *pc = nt_peer_conn(nt_peers_find(c->peers, peer));
      ev.path = pc && nt_conn_is_relayed(pc) ? "relay" : "direct";
    }
    c->on_event(c, &ev, c->user_data);
  }
}

static void emit(natter_client *c, natter_event_type type, int error,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void emit(natter_client *c, natter_event_type type, int error,
                 const char *fmt, ...) {
  char msg[1400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  emit_event(c, type, 0, error, NULL, NULL, -1, msg);
}

static void fatal(natter_client *c, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fatal(natter_client *c, int error, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  c->fatal = 1;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  nt_check_run_fail(c->check, error, msg);
  emit(c, NATTER_EVENT_FATAL, error, "%s", msg);
}

/* ---- control stream ---- */

static void send_control(natter_client *c, Natter__Control *msg) {
  if (!c->ctl || nt_wire_write_msg(c->ctl, &msg->base) != 0) {
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
     * so peers probe it only behind the same public address (peer.c). */
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
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__CheckIn in = NATTER__CHECK_IN__INIT;
  nt_addr locals[NT_MAX_LOCAL_ADDRS];
  Natter__Address addrs[NT_MAX_LOCAL_ADDRS], *paddrs[NT_MAX_LOCAL_ADDRS];
  uint8_t ips[NT_MAX_LOCAL_ADDRS][16];
  size_t n = local_candidates(c, locals, NT_MAX_LOCAL_ADDRS);

  /* Our own addresses as offered, for the peers' candidate rules. */
  memcpy(c->self.local, locals, n * sizeof(locals[0]));
  c->self.nlocal = n;

  for (size_t i = 0; i < n; i++) {
    nt_wire_addr_from_sockaddr(&addrs[i], ips[i],
                               (struct sockaddr *)&locals[i].ss);
    paddrs[i] = &addrs[i];
  }
  in.protocol_version = PROTOCOL_VERSION;
  in.name = c->name;
  in.listen = c->listen;
  in.local_addrs = paddrs;
  in.n_local_addrs = n;
  in.token = c->token ? c->token : "";
  in.session.data = c->session;
  in.session.len = sizeof(c->session);
  in.no_relay = c->no_relay;
  in.diagnostic = c->diagnostic;
  msg.msg_case = NATTER__CONTROL__MSG_CHECK_IN;
  msg.check_in = &in;
  send_control(c, &msg);
}

/* A ConnectRequest for |name| (with |refresh|: punch again for the
 * connection we have). Returns its id, or 0 while not checked in. */
static uint32_t send_connect_request(natter_client *c, const char *name,
                                     int refresh) {
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__ConnectRequest req = NATTER__CONNECT_REQUEST__INIT;

  if (!c->checked_in) {
    return 0;
  }
  if (++c->next_request_id == 0) {
    c->next_request_id = 1;
  }
  req.request_id = c->next_request_id;
  req.peer = (char *)name;
  req.refresh = refresh;
  req.check = c->diagnostic && !refresh; /* all a diagnostic session asks */
  msg.msg_case = NATTER__CONTROL__MSG_CONNECT_REQUEST;
  msg.connect_request = &req;
  send_control(c, &msg);
  return req.request_id;
}

/* nt_peer_callbacks.request */
static uint32_t request_peer(const char *name, void *ud) {
  natter_client *c = ud;
  if (c->mapping_pending) {
    return 0; /* sent once the mapping check settles (mapping_settled) */
  }
  return send_connect_request(ud, name, 0);
}

/* nt_peer_callbacks.refresh */
static int refresh_peer(const char *name, void *ud) {
  return send_connect_request(ud, name, 1) != 0;
}

/* nt_peer_callbacks.check_report: our side of a check a peer asked for. */
static void report_check(const nt_check_side *side, void *ud) {
  natter_client *c = ud;
  Natter__Control msg = NATTER__CONTROL__INIT;
  nt_wire_check_buf buf;
  if (!c->checked_in) {
    return;
  }
  nt_wire_check_encode(&buf, side);
  msg.msg_case = NATTER__CONTROL__MSG_CHECK_REPORT;
  msg.check_report = &buf.msg;
  send_control(c, &msg);
}

/* The broker passes the checked peer's report (diagnostic sessions only).
 * Bounds: nt_wire_check_report; the check takes only its meeting's. */
static void handle_check_report(natter_client *c,
                                const Natter__CheckReport *r) {
  nt_check_side side;
  if (!c->check || nt_wire_check_report(&side, r, 1) != 0) {
    nt_warn(&c->log, "unexpected or malformed check report from the "
                     "broker; ignored");
    return;
  }
  nt_check_run_on_report(c->check, &side);
}

/* The broker's notice about a peer we were introduced to. */
static void handle_peer_notice(natter_client *c, const Natter__PeerNotice *n) {
  if (!nt_name_valid(n->peer) || n->peer_key.len != NT_FINGERPRINT_LEN) {
    nt_warn(&c->log, "malformed peer notice from the broker; ignored");
    return;
  }
  if (n->kind == NATTER__PEER_NOTICE__KIND__RESTARTED) {
    nt_peers_on_restart(c->peers, n->peer, n->peer_key.data);
  }
}

/* ---- NAT mapping check ---- */

static void send_nat_report(natter_client *c) {
  Natter__Control msg = NATTER__CONTROL__INIT;
  Natter__NatReport rep = NATTER__NAT_REPORT__INIT;
  Natter__Address mapped;
  uint8_t ip[16];

  rep.mapping = c->self.mapping;
  if (c->mapped.len) {
    nt_wire_addr_from_sockaddr(&mapped, ip, (struct sockaddr *)&c->mapped.ss);
    rep.mapped = &mapped;
  }
  msg.msg_case = NATTER__CONTROL__MSG_NAT_REPORT;
  msg.nat_report = &rep;
  send_control(c, &msg);
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
static void mapping_cb(evutil_socket_t fd, short what, void *arg) {
  static const unsigned delays_ms[] = {300, 700, 1000};
  natter_client *c = arg;
  uint8_t req[NT_MAPPING_REQUEST_LEN];
  (void)fd;
  (void)what;

  if (c->mapping_tries >= sizeof(delays_ms) / sizeof(delays_ms[0])) {
    nt_debug(&c->log, "no answer from the broker's mapping-check port %u",
             c->mapping_port);
    mapping_settled(c);
    nt_check_run_start(c->check); /* with the mapping unknown */
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
    nt_check_run_start(c->check); /* no mapping to wait for */
    return;
  }
  c->mapping_tries = 0;
  c->mapping_pending = 1;
  mapping_cb(-1, 0, c);
}

/* Returns 1 when |data| was a mapping reply (handled), 0 otherwise. */
static int handle_mapping_reply(natter_client *c, const uint8_t *data,
                                size_t len) {
  uint8_t nonce[NT_MAPPING_NONCE_LEN];
  nt_addr seen;
  char a[NT_ADDR_STRLEN], b[NT_ADDR_STRLEN];

  if (!nt_mapping_decode_reply(data, len, nonce, &seen)) {
    return 0;
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
  nt_check_run_start(c->check);
  return 1;
}

static void handle_check_in_result(natter_client *c,
                                   const Natter__CheckInResult *r) {
  char addr[NT_ADDR_STRLEN], broker[NT_ADDR_STRLEN];

  nt_addr_str((struct sockaddr *)&c->broker_addr.ss, broker);
  if (r->code == NATTER__CODE__NAME_TAKEN) {
    fatal(c, NATTER_ERR_NAME_TAKEN,
          "name \"%s\" is taken at broker %s by another key: choose another "
          "-name, or use the key file that first claimed it",
          c->name, broker);
    nt_conn_close(c->broker_conn, 0, "name taken");
    return;
  }
  if (r->code == NATTER__CODE__UNAUTHORIZED) {
    fatal(c, NATTER_ERR_UNAUTHORIZED,
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
  if (r->code != NATTER__CODE__OK) {
    char why[200];
    snprintf(why, sizeof(why), "%s",
             nt_wire_string_ok(r->message, 150) ? r->message : "no reason");
    fatal(c, NATTER_ERR_BROKER, "broker %s refused check-in: %s", broker,
          why);
    nt_conn_close(c->broker_conn, 0, "refused");
    return;
  }
  c->self.broker_closed = r->closed ? 1 : 0;
  if (c->listen && !c->self.broker_closed &&
      !nt_access_has_peer_rules(c->access)) {
    fatal(c, NATTER_ERR_INVALID,
          "broker %s is open (any key can check in under any unused name), "
          "so -listen without peer rules would let strangers in: name the "
          "peers that may connect with -allow-peer NAME (or "
          "NAME@FINGERPRINT), or accept anyone explicitly with -allow-peer "
          "'*'",
          broker);
    nt_conn_close(c->broker_conn, 0, "open broker, no peer rules");
    return;
  }
  if (nt_wire_addr_to_sockaddr(&c->self.observed, r->observed) != 0) {
    memset(&c->self.observed, 0, sizeof(c->self.observed));
  }
  nt_addr_unmap(&c->self.observed.ss, &c->self.observed.len);
  c->checked_in = 1;
  c->ever_checked_in = 1;
  c->mapping_port = r->mapping_port <= 65535 ? (uint16_t)r->mapping_port : 0;
  c->reconnect_delay_s = 0;
  emit(c, NATTER_EVENT_CHECKED_IN, 0,
       "checked in at broker %s as %s (public address %s)%s", broker, c->name,
       c->self.observed.len
           ? nt_addr_str((struct sockaddr *)&c->self.observed.ss, addr)
           : "unknown",
       c->listen       ? ", listening"
       : c->diagnostic ? ", for a check only (a client running as "
                         "this name is not disturbed)"
                       : "");
  /* The check first: requests wait for it (mapping_pending). */
  start_mapping_check(c);
  nt_peers_broker_ready(c->peers);
}

/* The broker's ConnectResult. Bounds: the message only when printable
 * ASCII of at most 150 bytes. */
static void handle_connect_result(natter_client *c,
                                  const Natter__ConnectResult *r) {
  int error = r->code == NATTER__CODE__PEER_UNKNOWN ? NATTER_ERR_PEER_UNKNOWN
              : r->code == NATTER__CODE__PEER_NOT_LISTENING
                  ? NATTER_ERR_PEER_NOT_LISTENING
                  : NATTER_ERR_BROKER;
  nt_peers_on_connect_result(c->peers, r->request_id, error,
                             nt_wire_string_ok(r->message, 150) ? r->message
                                                                : "");
}

/* The broker's Introduction, checked by nt_wire_introduction (which says
 * what it bounds). */
static void handle_introduction(natter_client *c,
                                const Natter__Introduction *in) {
  nt_introduction intro;
  if (nt_wire_introduction(&intro, in) != 0) {
    nt_warn(&c->log, "malformed introduction from the broker; ignored");
    return;
  }
  if (intro.relay_port) {
    /* The relay listens on the broker's own address. */
    intro.relay = c->broker_addr;
    nt_addr_set_port((struct sockaddr *)&intro.relay.ss, intro.relay_port);
  }
  if (!intro.refresh && intro.request_id) {
    nt_check_run_on_introduction(c->check, intro.name, intro.nonce);
  }
  nt_peers_on_introduction(c->peers, &intro);
}

/* One control message from the broker; returns nonzero when the session
 * ends (fatal error or a close), so nothing after it is read. */
static int handle_control(const uint8_t *body, size_t len, void *ud) {
  natter_client *c = ud;
  Natter__Control *msg = natter__control__unpack(NULL, len, body);
  if (!msg) {
    nt_warn(&c->log, "malformed message from the broker; reconnecting");
    nt_conn_close(c->broker_conn, NATTER__CODE__BAD_REQUEST, "malformed");
    return 1;
  }
  switch (msg->msg_case) {
  case NATTER__CONTROL__MSG_CHECK_IN_RESULT:
    handle_check_in_result(c, msg->check_in_result);
    break;
  case NATTER__CONTROL__MSG_CONNECT_RESULT:
    handle_connect_result(c, msg->connect_result);
    break;
  case NATTER__CONTROL__MSG_INTRODUCTION:
    if (c->checked_in) {
      handle_introduction(c, msg->introduction);
    }
    break;
  case NATTER__CONTROL__MSG_PEER_NOTICE:
    if (c->checked_in) {
      handle_peer_notice(c, msg->peer_notice);
    }
    break;
  case NATTER__CONTROL__MSG_CHECK_REPORT:
    if (c->checked_in) {
      handle_check_report(c, msg->check_report);
    }
    break;
  default:
    nt_warn(&c->log, "unexpected message from the broker; ignored");
    break;
  }
  natter__control__free_unpacked(msg, NULL);
  return c->fatal;
}

static void ctl_recv(nt_stream *s, const uint8_t *data, size_t len, int fin,
                     void *ud) {
  natter_client *c = ud;

  if (c->broker_conn && !c->fatal &&
      nt_wire_reader_each(c->ctl_reader, data, len, handle_control, c) < 0) {
    nt_warn(&c->log, "bad framing from the broker; reconnecting");
    nt_conn_close(c->broker_conn, NATTER__CODE__BAD_REQUEST, "framing");
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

/* Trust on first use: the broker's key against the known-brokers file.
 * Returns 0 to go on; otherwise the client is stopped (fatal). */
static int check_known_broker(natter_client *c, nt_conn *conn) {
  char err[600], msg[1200];
  nt_known_broker known;
  int found = 0;
  const uint8_t *seen = nt_conn_peer_fingerprint(conn);

  if (c->broker_pinned || !c->known_brokers || !seen) {
    return 0;
  }
  if (nt_known_brokers_lookup(c->known_brokers, c->broker_text, &found, &known,
                              err, sizeof(err)) != 0) {
    fatal(c, NATTER_ERR_KEY_MISMATCH,
          "cannot check the broker's key: %s (fix or remove that line)", err);
    return -1;
  }
  if (found) {
    if (memcmp(known.fingerprint, seen, NT_FINGERPRINT_LEN) == 0) {
      return 0;
    }
    nt_known_brokers_mismatch_message(msg, sizeof(msg), c->known_brokers,
                                      c->broker_text, &known, seen);
    fatal(c, NATTER_ERR_KEY_MISMATCH, "%s", msg);
    return -1;
  }
  if (nt_known_brokers_add(c->known_brokers, c->broker_text, seen, err,
                           sizeof(err)) != 0) {
    fatal(c, NATTER_ERR_KEY_MISMATCH, "cannot remember the broker's key: %s",
          err);
    return -1;
  }
  char hex[NT_FINGERPRINT_HEX_LEN + 1];
  nt_fingerprint_hex(seen, hex);
  nt_info(&c->log,
          "first contact with broker %s: remembered its key %s in %s (a "
          "different key later stops this client; -broker-key pins it "
          "explicitly)",
          c->broker_text, hex, c->known_brokers);
  return 0;
}

static void broker_established(nt_conn *conn, void *ud) {
  natter_client *c = ud;
  if (check_known_broker(c, conn) != 0) {
    nt_conn_close(conn, 0, "broker key mismatch");
    return;
  }
  if (nt_conn_open_stream(conn, &c->ctl) != 0) {
    nt_conn_close(conn, NATTER__CODE__INTERNAL, "no stream");
    return;
  }
  nt_wire_reader_reset(c->ctl_reader);
  nt_stream_set_callbacks(c->ctl, &ctl_callbacks, c);
  send_check_in(c);
}

static void schedule_reconnect(natter_client *c) {
  struct timeval tv = {0, 0};
  c->reconnect_delay_s =
      c->reconnect_delay_s ? c->reconnect_delay_s * 2 : 1;
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

static void broker_closed(nt_conn *conn, nt_close_reason reason,
                          uint64_t app_code, const char *message, void *ud) {
  natter_client *c = ud;
  char broker[NT_ADDR_STRLEN];
  (void)app_code;

  c->broker_conn = NULL;
  c->ctl = NULL;
  c->checked_in = 0;
  if (c->fatal) {
    return;
  }
  nt_addr_str((struct sockaddr *)&c->broker_addr.ss, broker);
  if (reason == NT_CLOSE_KEY_MISMATCH) {
    fatal(c, NATTER_ERR_KEY_MISMATCH,
          "broker %s presented a key other than the pinned -broker-key: "
          "check the fingerprint, or the address is not your broker",
          broker);
    return;
  }
  if (reason == NT_CLOSE_REFUSED) {
    /* A limit at the broker (busy, full, too many from this address):
     * it answers, so keep trying, with backoff, and say which limit. */
    schedule_reconnect(c);
    nt_warn(&c->log, "broker %s refused the connection: %s; retrying in %u s",
            broker, message[0] ? message : "no reason given",
            c->reconnect_delay_s);
    return;
  }
  uint64_t rtt_us, tx, rx = 0;
  if (conn) {
    nt_conn_get_stats(conn, &rtt_us, &tx, &rx);
  }
  if (!c->ever_checked_in && reason == NT_CLOSE_HANDSHAKE_TIMEOUT && rx > 0) {
    /* It answered, so it is there: busy (a check-in storm after a power
     * cut), not unreachable. Keep trying, with jittered backoff. */
    schedule_reconnect(c);
    nt_warn(&c->log,
            "broker %s answers but did not finish the handshake in %u s "
            "(busy?); retrying in %u s",
            broker, BROKER_HANDSHAKE_TIMEOUT_MS / 1000, c->reconnect_delay_s);
    return;
  }
  if (!c->ever_checked_in) {
    if (reason == NT_CLOSE_HANDSHAKE_TIMEOUT || reason == NT_CLOSE_IDLE) {
      fatal(c, NATTER_ERR_BROKER,
            "cannot reach broker %s (no answer in %u s): check the address "
            "and that UDP is allowed",
            broker, BROKER_HANDSHAKE_TIMEOUT_MS / 1000);
    } else {
      fatal(c, NATTER_ERR_BROKER,
            "broker %s closed the connection (%s): check that it is a "
            "natter broker of a compatible version",
            broker, message[0] ? message : "no reason given");
    }
    return;
  }
  nt_warn(&c->log, "lost the broker %s (%s); reconnecting", broker,
          reason == NT_CLOSE_IDLE ? "no answer"
          : message[0]            ? message
                                  : "closed");
  schedule_reconnect(c);
}

static const nt_conn_callbacks broker_conn_callbacks = {
    broker_established, broker_closed, NULL, NULL, NULL, NULL};

static void broker_connect(natter_client *c) {
  const uint8_t *pin = c->broker_pinned ? c->broker_key : NULL;
  if (nt_endpoint_connect(c->ep, (struct sockaddr *)&c->broker_addr.ss,
                          c->broker_addr.len, pin, &broker_conn_callbacks, c,
                          &c->broker_conn) != 0) {
    nt_warn(&c->log, "cannot start a connection to the broker; retrying");
    c->broker_conn = NULL;
    schedule_reconnect(c);
    return;
  }
  /* The broker pays for every client's keepalive: 20 s still keeps the
   * socket's NAT mapping inside the shortest common UDP timeout (30 s),
   * since a lost PING is resent after one probe timeout (well under a
   * second), and halves what 10,000 idle clients cost it. */
  nt_conn_set_keepalive(c->broker_conn, BROKER_KEEPALIVE_MS);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  broker_connect(arg);
}

/* ---- endpoint demux hooks ---- */

static int client_accept(nt_endpoint *ep, const struct sockaddr *from,
                         nt_accept_params *params, void *ud) {
  (void)ep;
  natter_client *c = ud;
  return nt_peers_accept(c->peers, from, params);
}

static void client_datagram(nt_endpoint *ep, const uint8_t *data, size_t len,
                            const struct sockaddr *from, socklen_t fromlen,
                            int sock, void *ud) {
  (void)ep;
  if (sock || !handle_mapping_reply(ud, data, len)) {
    natter_client *c = ud;
    nt_peers_on_datagram(c->peers, data, len, from, fromlen, sock);
  }
}

/* Before any state: a client talks QUIC only with the peers it punches
 * to, and HTTP/3 status only with its own machine; anything else is
 * dropped unanswered, as a client never answered strangers. */
static int client_admit(nt_endpoint *ep, const struct sockaddr *from,
                        const char **reason, void *ud) {
  natter_client *c = ud;
  (void)ep;
  (void)reason;
  return nt_addr_is_loopback(from) || nt_peers_expecting(c->peers, from);
}

static int client_accept_relayed(nt_endpoint *ep, const uint8_t *token,
                                 nt_accept_params *params, void *ud) {
  (void)ep;
  natter_client *c = ud;
  return nt_peers_accept_relayed(c->peers, token, params);
}

static void client_relay_signal(nt_endpoint *ep, int type, const uint8_t *token,
                                int reason, void *ud) {
  (void)ep;
  natter_client *c = ud;
  nt_peers_on_relay_signal(c->peers, type, token, reason);
}

static const nt_endpoint_callbacks client_ep_callbacks = {
    client_accept, client_datagram, client_admit, client_accept_relayed,
    client_relay_signal};

/* ---- what the parts below report ---- */

static void peer_event(natter_event_type type, int error, const char *peer,
                       const char *message, void *ud) {
  natter_client *c = ud;
  /* A check's report says what happened to its peer: the events go on,
   * their log lines only with -v. */
  emit_event(c, type, c->diagnostic, error, peer, NULL, -1, message);
}

static void peer_stream(const char *peer, nt_stream *stream, void *ud) {
  natter_client *c = ud;
  nt_tunnel_accept_stream(&c->tunnel_env, peer, stream);
}

static const nt_peer_callbacks client_peer_callbacks = {
    request_peer, peer_event, peer_stream, refresh_peer, report_check};

static void forward_event(nt_forward *f, natter_event_type type, int error,
                          int quiet, const char *peer, int exit_status,
                          const char *message, void *ud) {
  emit_event(ud, type, quiet, error, peer, f, exit_status, message);
}

static const nt_forward_callbacks client_forward_callbacks = {forward_event};

/* Hands the parts below their environments, once the endpoint exists. */
static int start_parts(natter_client *c) {
  c->peers_env.base = c->base;
  c->peers_env.log = &c->log;
  c->peers_env.ep = c->ep;
  c->peers_env.self_name = c->name;
  c->peers_env.listen = c->listen;
  c->peers_env.no_relay = c->no_relay;
  c->peers_env.access = c->access;
  c->peers_env.connect_timeout_ms = c->connect_timeout_ms;
  c->peers_env.self = &c->self;
  c->peers_env.callbacks = &client_peer_callbacks;
  c->peers_env.user_data = c;

  c->tunnel_env.base = c->base;
  c->tunnel_env.log = &c->log;
  c->tunnel_env.self_name = c->name;
  c->tunnel_env.listen = c->listen;
  c->tunnel_env.max_commands = c->max_commands;
  c->tunnel_env.max_commands_per_peer = c->max_commands_per_peer;
  c->tunnel_env.target.base = c->base;
  c->tunnel_env.target.dns = c->dns;
  c->tunnel_env.target.access = c->access;
  c->tunnel_env.target.self_name = c->name;
  c->tunnel_env.all = &c->tunnels;

  c->forward_env.base = c->base;
  c->forward_env.log = &c->log;
  c->forward_env.self_name = c->name;
  c->forward_env.tunnels = &c->tunnel_env;
  c->forward_env.all = &c->forwards;
  c->forward_env.callbacks = &client_forward_callbacks;
  c->forward_env.user_data = c;

  int rv = nt_peers_new(&c->peers, &c->peers_env);
  c->forward_env.peers = c->peers;
  return rv;
}

/* ---- public API ---- */

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

/* The token to present and the known-brokers file. Returns 0 or a
 * NATTER_ERR_* (logged). */
static int load_broker_trust(natter_client *c,
                             const natter_client_config *cfg) {
  char err[600], warn[300], token[NT_TOKEN_MAX + 1], path[1024];

  if (cfg->token && cfg->token_file) {
    nt_error(&c->log, "give the broker token once: as text or as a file");
    return NATTER_ERR_INVALID;
  }
  if (cfg->token_file) {
    if (nt_token_read_file(token, sizeof(token), cfg->token_file, warn,
                           sizeof(warn), err, sizeof(err)) != 0) {
      nt_error(&c->log, "%s", err);
      return NATTER_ERR_INVALID;
    }
    if (warn[0]) {
      nt_warn(&c->log, "%s", warn);
    }
    c->token = strdup(token);
    memset(token, 0, sizeof(token));
  } else if (cfg->token) {
    if (nt_token_check(cfg->token, strlen(cfg->token), "the broker token", err,
                       sizeof(err)) != 0) {
      nt_error(&c->log, "%s", err);
      return NATTER_ERR_INVALID;
    }
    c->token = strdup(cfg->token);
  }
  if ((cfg->token || cfg->token_file) && !c->token) {
    return NATTER_ERR_NOMEM;
  }
  if (cfg->known_brokers && cfg->known_brokers[0] == '\0') {
    return 0; /* remember nothing */
  }
  if (!cfg->known_brokers) {
    if (nt_known_brokers_default_path(path, sizeof(path)) != 0) {
      nt_warn(&c->log, "no home directory: the broker's key is not "
                       "remembered (pin it with -broker-key)");
      return 0;
    }
  }
  c->known_brokers = strdup(cfg->known_brokers ? cfg->known_brokers : path);
  return c->known_brokers ? 0 : NATTER_ERR_NOMEM;
}

/* Parses the config's -allow, -allow-peer and -allow-command rules into
 * |acc|. Returns 0, NATTER_ERR_INVALID (naming the rule in |err|) or
 * NATTER_ERR_NOMEM. */
static int parse_rules(nt_access *acc, const natter_client_config *cfg,
                       char *err, size_t errlen) {
  char why[300];
  int rv = 0;

  for (size_t i = 0; rv == 0 && cfg->allow && cfg->allow[i]; i++) {
    rv = nt_access_add_target_rule(acc, cfg->allow[i], why, sizeof(why));
    if (rv == NATTER_ERR_INVALID) {
      snprintf(err, errlen, "bad allow rule \"%.80s\": %s", cfg->allow[i], why);
    }
  }
  for (size_t i = 0; rv == 0 && cfg->allow_peers && cfg->allow_peers[i]; i++) {
    rv = nt_access_add_peer_rule(acc, cfg->allow_peers[i], why, sizeof(why));
    if (rv == NATTER_ERR_INVALID) {
      snprintf(err, errlen, "bad allow-peer rule \"%.80s\": %s",
               cfg->allow_peers[i], why);
    }
  }
  for (size_t i = 0; rv == 0 && cfg->allow_commands && cfg->allow_commands[i];
       i++) {
    rv = nt_access_add_command_rule(acc, cfg->allow_commands[i], why,
                                    sizeof(why));
    if (rv == NATTER_ERR_INVALID) {
      snprintf(err, errlen, "bad allow-command rule \"%.80s\": %s",
               cfg->allow_commands[i], why);
    }
  }
  if (rv == NATTER_ERR_NOMEM) {
    snprintf(err, errlen, "out of memory");
  }
  return rv;
}

/* The rules of a new client, into c->access (errors logged). */
static int load_rules(natter_client *c, const natter_client_config *cfg) {
  char err[500];
  c->access = nt_access_new();
  if (!c->access) {
    return NATTER_ERR_NOMEM;
  }
  int rv = parse_rules(c->access, cfg, err, sizeof(err));
  if (rv == NATTER_ERR_INVALID) {
    nt_error(&c->log, "%s", err);
  }
  return rv;
}

int natter_client_set_access_versioned(natter_client *c, int config_version,
                                       const natter_client_config *caller_cfg,
                                       char *err, size_t errlen) {
  natter_client_config full;
  char buf[500] = "";

  if (!c || nt_client_config_load(&full, config_version, caller_cfg) != 0) {
    if (err && errlen) {
      snprintf(err, errlen, "invalid arguments");
    }
    return NATTER_ERR_INVALID;
  }
  nt_access *acc = nt_access_new();
  if (!acc) {
    return NATTER_ERR_NOMEM;
  }
  int rv = parse_rules(acc, &full, buf, sizeof(buf));
  if (rv == 0 && !c->listen &&
      (full.allow || full.allow_peers || full.allow_commands)) {
    snprintf(buf, sizeof(buf), "allow rules need a listening client");
    rv = NATTER_ERR_INVALID;
  }
  if (rv != 0) {
    if (err && errlen) {
      snprintf(err, errlen, "%s", buf);
    }
    nt_access_free(acc);
    return rv;
  }
  /* Everyone holds c->access itself (the peer table, the tunnels): new
   * introductions and streams are decided by the new rules at once, open
   * ones keep running. */
  nt_access_replace(c->access, acc);
  nt_access_free(acc);
  nt_info(&c->log, "access rules replaced; open connections keep running");
  return 0;
}

int natter_client_new_versioned(natter_client **pclient,
                                struct event_base *base, int config_version,
                                const natter_client_config *caller_cfg) {
  char err[512], path[1024];
  nt_endpoint_config epcfg;
  natter_client_config full, *cfg = &full;
  natter_client *c;
  int rv = NATTER_ERR_NOMEM;

  if (!pclient) {
    return NATTER_ERR_INVALID;
  }
  *pclient = NULL;
  if (!base || nt_client_config_load(&full, config_version, caller_cfg) != 0 ||
      !cfg->name || !cfg->broker) {
    return NATTER_ERR_INVALID;
  }
  c = calloc(1, sizeof(*c));
  if (!c) {
    return NATTER_ERR_NOMEM;
  }
  TAILQ_INIT(&c->tunnels);
  TAILQ_INIT(&c->forwards);
  if (nt_random_bytes(c->session, sizeof(c->session)) != 0) {
    free(c);
    return NATTER_ERR_INVALID;
  }
  c->base = base;
  c->started_ns = nt_monotonic_ns();
  c->log.fn = cfg->log;
  c->log.level = cfg->log_level;
  c->log.user_data = cfg->user_data;
  c->on_event = cfg->on_event;
  c->user_data = cfg->user_data;
  c->listen = cfg->listen;
  c->no_relay = cfg->no_relay;
  c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
                                                  : 10000;
  if (!nt_name_valid(cfg->name)) {
    nt_error(&c->log,
             "invalid name \"%.70s\": use 1-63 characters of A-Z a-z 0-9 . _ -",
             cfg->name);
    rv = NATTER_ERR_INVALID;
    goto fail;
  }
  c->name = strdup(cfg->name);
  c->broker_text = strdup(cfg->broker);
  c->identity_path = dup_or_null(cfg->identity_file);
  c->ctl_reader = calloc(1, sizeof(*c->ctl_reader));
  if (!c->name || !c->broker_text || !c->ctl_reader ||
      (cfg->identity_file && !c->identity_path)) {
    goto fail;
  }
  if ((rv = load_rules(c, cfg)) != 0) {
    goto fail;
  }
  c->max_commands = cfg->max_commands;
  c->max_commands_per_peer = cfg->max_commands_per_peer;
  /* 0 is a zero-filled config's "default", as the header promises. */
  if (cfg->max_streams > 4096) {
    nt_error(&c->log, "max_streams %u: expected 1..4096", cfg->max_streams);
    rv = NATTER_ERR_INVALID;
    goto fail;
  }
  if ((rv = load_broker_trust(c, cfg)) != 0) {
    goto fail;
  }
  rv = NATTER_ERR_NOMEM;
  if (cfg->broker_key) {
    if (nt_fingerprint_parse(c->broker_key, cfg->broker_key) != 0) {
      nt_error(&c->log, "bad broker key \"%.80s\": expected 64 hex digits "
                        "(the fingerprint the broker prints at start)",
               cfg->broker_key);
      rv = NATTER_ERR_INVALID;
      goto fail;
    }
    c->broker_pinned = 1;
  }
  rv = nt_addr_parse(&c->broker_addr, cfg->broker, "127.0.0.1", err,
                     sizeof(err));
  if (rv == 0 && nt_addr_port((struct sockaddr *)&c->broker_addr.ss) == 0) {
    snprintf(err, sizeof(err), "port must be 1..65535");
    rv = NATTER_ERR_INVALID;
  }
  if (rv != 0) {
    nt_error(&c->log, "bad broker address \"%.80s\": %s", cfg->broker, err);
    goto fail;
  }
  const char *idfile = c->identity_path;
  if (!idfile) {
    char file[NT_NAME_MAX + 8];
    snprintf(file, sizeof(file), "%s.key", c->name);
    if (nt_default_key_path(path, sizeof(path), file) != 0) {
      nt_error(&c->log, "cannot find a home directory for the key file: set "
                        "HOME or use -identity FILE");
      rv = NATTER_ERR_IDENTITY;
      goto fail;
    }
    idfile = path;
  }
  if (idfile[0] == '\0') {
    rv = nt_identity_new_ephemeral(&c->identity, err, sizeof(err));
  } else {
    rv = nt_identity_load_or_create(&c->identity, idfile, err, sizeof(err));
  }
  if (rv != 0) {
    nt_error(&c->log, "%s", err);
    rv = NATTER_ERR_IDENTITY;
    goto fail;
  }
  nt_fingerprint_hex(nt_identity_fingerprint(c->identity), c->fingerprint_hex);

  memset(&epcfg, 0, sizeof(epcfg));
  /* One socket for both families (IPv4 alone where the host has no
   * IPv6), whatever family reaches the broker: peers may be reachable
   * over the other one. */
  epcfg.bind.ss.ss_family = AF_INET;
  epcfg.bind.len = sizeof(struct sockaddr_in);
  epcfg.dual_stack = 1;
  nt_addr_set_port((struct sockaddr *)&epcfg.bind.ss, cfg->local_port);
  epcfg.identity = c->identity;
  epcfg.callbacks = &client_ep_callbacks;
  epcfg.accept_h3 = nt_client_accept_h3;
  epcfg.user_data = c;
  epcfg.log = &c->log;
  epcfg.handshake_timeout_ms = BROKER_HANDSHAKE_TIMEOUT_MS;
  epcfg.idle_timeout_ms = 30000;
  /* NAT UDP mappings commonly expire after 30 s of silence (RFC 4787
   * REQ-5 asks for at least 2 min, few follow it): ping well inside. */
  epcfg.keepalive_ms = 10000;
  epcfg.max_streams_bidi = cfg->max_streams;
  if (nt_endpoint_new(&c->ep, base, &epcfg, err, sizeof(err)) != 0) {
    nt_error(&c->log, "%s", err);
    rv = NATTER_ERR_SOCKET;
    goto fail;
  }
  c->reconnect_ev = event_new(base, -1, 0, reconnect_cb, c);
  c->mapping_ev = event_new(base, -1, 0, mapping_cb, c);
  c->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  if (!c->dns) {
    /* No resolv.conf: numeric targets and localhost still work. */
    c->dns = evdns_base_new(base, 0);
  }
  if (!c->reconnect_ev || !c->mapping_ev || !c->dns) {
    rv = NATTER_ERR_NOMEM;
    goto fail;
  }
  nt_info(&c->log, "%s: key %s, UDP port %u", c->name, c->fingerprint_hex,
          nt_endpoint_port(c->ep));
  if ((rv = start_parts(c)) != 0) {
    goto fail;
  }
  nt_client_start_status_page(c);
  broker_connect(c);
  *pclient = c;
  return 0;
fail:
  natter_client_free(c);
  return rv;
}

int natter_client_add_forward_versioned(natter_client *c, int config_version,
                                        const natter_forward_config *caller_cfg,
                                        natter_forward **pforward, char *err,
                                        size_t errlen) {
  char buf[256];
  natter_forward_config cfg;
  if (!err || errlen == 0) {
    err = buf;
    errlen = sizeof(buf);
  }
  if (pforward) {
    *pforward = NULL;
  }
  if (!c || !caller_cfg) {
    snprintf(err, errlen, "invalid argument");
    return NATTER_ERR_INVALID;
  }
  if (nt_forward_config_load(&cfg, config_version, caller_cfg) != 0) {
    snprintf(err, errlen,
             "natter_forward_config version %d is unknown to this library "
             "(%s): built against a newer natter.h?",
             config_version, natter_version());
    return NATTER_ERR_INVALID;
  }
  return nt_forward_add(&c->forward_env, &cfg, pforward, err, errlen);
}

int natter_client_add_forward_spec(natter_client *c, const char *text,
                                   const char *const *argv,
                                   natter_forward **pforward, char *err,
                                   size_t errlen) {
  char buf[256];
  natter_forward_config cfg;
  nt_spec spec;

  if (!err || errlen == 0) {
    err = buf;
    errlen = sizeof(buf);
  }
  if (pforward) {
    *pforward = NULL;
  }
  if (!c || !text) {
    snprintf(err, errlen, "invalid argument");
    return NATTER_ERR_INVALID;
  }
  if (nt_spec_parse(&spec, text, err, errlen) != 0) {
    return NATTER_ERR_SPEC;
  }
  if (spec.is_command && (!argv || !argv[0])) {
    snprintf(err, errlen,
             "spec \"%.80s\" ends in \"%s:\": give the command to run on %s "
             "after it",
             text, spec.peer, spec.peer);
    return NATTER_ERR_SPEC;
  }
  if (!spec.is_command && argv && argv[0]) {
    snprintf(err, errlen,
             "spec \"%.80s\" names a port, so \"%.40s\" is not expected "
             "after it (a command needs the form LOCALPORT:PEER: CMD)",
             text, argv[0]);
    return NATTER_ERR_SPEC;
  }
  natter_forward_config_default(&cfg);
  cfg.peer = spec.peer;
  cfg.local_port = spec.local_port;
  cfg.host = spec.host;
  cfg.port = spec.port;
  cfg.argv = spec.is_command ? argv : NULL;
  if (spec.local_port == 0) {
    cfg.in_fd = 0;
    cfg.out_fd = 1;
  }
  int rv = nt_forward_add(&c->forward_env, &cfg, pforward, err, errlen);
  if (rv == NATTER_ERR_INVALID) {
    char inner[256];
    snprintf(inner, sizeof(inner), "%s", err);
    snprintf(err, errlen, "spec \"%.80s\": %s", text, inner);
    rv = NATTER_ERR_SPEC;
  }
  return rv;
}

int natter_spec_check(const char *text, int *is_command, int *uses_stdio,
                      char *err, size_t errlen) {
  char buf[256];
  nt_spec spec;
  if (!err || errlen == 0) {
    err = buf;
    errlen = sizeof(buf);
  }
  if (!text) {
    snprintf(err, errlen, "missing spec");
    return NATTER_ERR_SPEC;
  }
  if (nt_spec_parse(&spec, text, err, errlen) != 0) {
    return NATTER_ERR_SPEC;
  }
  if (is_command) {
    *is_command = spec.is_command;
  }
  if (uses_stdio) {
    *uses_stdio = spec.local_port == 0;
  }
  return 0;
}

int natter_fingerprint_check(const char *fingerprint) {
  uint8_t fp[NT_FINGERPRINT_LEN];
  return fingerprint && nt_fingerprint_parse(fp, fingerprint) == 0
             ? 0
             : NATTER_ERR_INVALID;
}

int natter_client_get_peer_stats_versioned(const natter_client *c,
                                           const char *name, int stats_version,
                                           natter_peer_stats *out) {
  natter_peer_stats full, *stats = &full;
  size_t len = nt_peer_stats_len(stats_version);
  if (!c || !name || !out || !len) {
    return NATTER_ERR_INVALID;
  }
  memset(stats, 0, sizeof(*stats));
  nt_peer *p = c->peers ? nt_peers_find(c->peers, name) : NULL;
  if (!p) {
    memcpy(out, stats, len);
    return NATTER_ERR_PEER_UNKNOWN;
  }
  nt_conn *conn = nt_peer_conn(p);
  if (conn) {
    stats->connected = 1;
    nt_conn_get_stats(conn, &stats->rtt_us, &stats->bytes_sent,
                      &stats->bytes_received);
    stats->relayed = nt_conn_is_relayed(conn);
  }
  stats->streams = nt_tunnel_count_for_peer(&c->tunnels, name);
  memcpy(out, stats, len);
  return 0;
}

void natter_client_free(natter_client *c) {
  if (!c) {
    return;
  }
  nt_metrics_free(c->metrics);
  nt_check_run_free(c->check);     /* its waiter is on a peer's queue */
  nt_tunnel_free_all(&c->tunnels); /* tunnels point at forwards and peers:
                                      they go first */
  nt_forward_free_all(&c->forwards);
  nt_peers_free(c->peers);
  nt_endpoint_free(c->ep); /* closes the broker and peer connections */
  nt_h3_server_free(c->h3);
  if (c->reconnect_ev) {
    event_free(c->reconnect_ev);
  }
  if (c->mapping_ev) {
    event_free(c->mapping_ev);
  }
  if (c->dns) {
    evdns_base_free(c->dns, 1);
  }
  nt_identity_free(c->identity);
  nt_access_free(c->access);
  if (c->token) {
    memset(c->token, 0, strlen(c->token));
    free(c->token);
  }
  free(c->known_brokers);
  if (c->ctl_reader) {
    nt_wire_reader_reset(c->ctl_reader);
  }
  free(c->ctl_reader);
  free(c->name);
  free(c->broker_text);
  free(c->identity_path);
  free(c);
}

int natter_client_check(natter_client *c, const char *peer, natter_check_fn fn,
                        void *user_data) {
  nt_check_env env;
  if (!c || !peer || !nt_name_valid(peer) || c->check || c->listen || c->ctl ||
      c->ever_checked_in || !TAILQ_EMPTY(&c->forwards) ||
      strcmp(peer, c->name) == 0) {
    return NATTER_ERR_INVALID;
  }
  memset(&env, 0, sizeof(env));
  env.base = c->base;
  env.log = &c->log;
  env.peers = c->peers;
  env.self = &c->self;
  env.self_name = c->name;
  env.connect_timeout_ms = c->connect_timeout_ms;
  env.client = c;
  int rv = nt_check_run_new(&c->check, &env, peer, fn, user_data);
  if (rv == 0) {
    c->diagnostic = 1;
  }
  return rv;
}

const char *natter_client_fingerprint(const natter_client *c) {
  return c ? c->fingerprint_hex : "";
}

int natter_client_checked_in(const natter_client *c) {
  return c && c->checked_in ? 1 : 0;
}

int natter_client_public_address(const natter_client *c, char *buf,
                                 size_t len) {
  char addr[NT_ADDR_STRLEN] = "";
  if (!buf || len == 0) {
    return NATTER_ERR_INVALID;
  }
  buf[0] = '\0';
  if (!c) {
    return NATTER_ERR_INVALID;
  }
  if (c->self.observed.len) {
    nt_addr_str((struct sockaddr *)&c->self.observed.ss, addr);
  }
  if (strlen(addr) >= len) {
    return NATTER_ERR_INVALID;
  }
  memcpy(buf, addr, strlen(addr) + 1);
  return 0;
}

natter_nat_mapping natter_client_nat_mapping(const natter_client *c) {
  switch (c ? c->self.mapping : NT_MAPPING_UNKNOWN) {
  case NT_MAPPING_ENDPOINT_INDEPENDENT:
    return NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT;
  case NT_MAPPING_PER_DESTINATION:
    return NATTER_NAT_MAPPING_SYMMETRIC;
  default:
    return NATTER_NAT_MAPPING_UNKNOWN;
  }
}
