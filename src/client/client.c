/* The client: one UDP endpoint, the session with the broker over a control
 * stream, and the public natter_client_* API. Peers, forwards and tunnels
 * live in their own files. */
#include <event2/buffer.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/broker_resolve.h"
#include "client/broker_session.h"
#include "client/tcp_fallback.h"
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

void nt_client_emit(natter_client *c, natter_event_type type, int error,
                    const char *fmt, ...) {
  char msg[1400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  emit_event(c, type, 0, error, NULL, NULL, -1, msg);
}

void nt_client_fatal(natter_client *c, int error, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  c->fatal = 1;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  nt_check_run_fail(c->check, error, msg);
  nt_client_emit(c, NATTER_EVENT_FATAL, error, "%s", msg);
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
  natter_client *c = ud;
  if (!sock && nt_portmap_on_datagram(c->portmap, data, len, from)) {
    return;
  }
  if (sock || !nt_broker_session_mapping_reply(ud, data, len)) {
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

static void peer_datagram(nt_conn *conn, const uint8_t *data, size_t len,
                          void *ud) {
  natter_client *c = ud;
  nt_udp_on_datagram(c->udp, conn, data, len);
}

static const nt_peer_callbacks client_peer_callbacks = {
    nt_broker_session_request_peer, peer_event,
    peer_stream,                    nt_broker_session_refresh_peer,
    nt_broker_session_report_check, peer_datagram};

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
  c->peers_env.test_no_punch = getenv("NATTER_TEST_NO_PUNCH") != NULL;
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
  if (rv != 0) {
    return rv;
  }
  nt_udp_env uenv = {.base = c->base,
                     .dns = c->dns,
                     .log = &c->log,
                     .self_name = c->name,
                     .listen = c->listen,
                     .allow_udp = c->access_udp,
                     .idle_timeout_s = c->udp_idle_timeout_s,
                     .max_flows_per_peer = c->max_udp_flows,
                     .peers = c->peers};
  c->udp = nt_udp_new(&uenv);
  c->tunnel_env.udp = c->udp;
  c->forward_env.udp = c->udp;
  return c->udp ? 0 : NATTER_ERR_NOMEM;
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

/* The config's -allow-udp rules into |acc|: target rules of their own, so
 * that -allow never opens a UDP target (udp.h). Returns as parse_rules. */
static int parse_udp_rules(nt_access *acc, const natter_client_config *cfg,
                           char *err, size_t errlen) {
  char why[300];
  int rv = 0;
  for (size_t i = 0; rv == 0 && cfg->allow_udp && cfg->allow_udp[i]; i++) {
    rv = nt_access_add_target_rule(acc, cfg->allow_udp[i], why, sizeof(why));
    if (rv == NATTER_ERR_INVALID) {
      snprintf(err, errlen, "bad allow-udp rule \"%.80s\": %s",
               cfg->allow_udp[i], why);
    } else if (rv == NATTER_ERR_NOMEM) {
      snprintf(err, errlen, "out of memory");
    }
  }
  return rv;
}

/* The rules of a new client, into c->access (errors logged). */
static int load_rules(natter_client *c, const natter_client_config *cfg) {
  char err[500];
  c->access = nt_access_new();
  c->access_udp = nt_access_new();
  if (!c->access || !c->access_udp) {
    return NATTER_ERR_NOMEM;
  }
  int rv = parse_rules(c->access, cfg, err, sizeof(err));
  if (rv == 0) {
    rv = parse_udp_rules(c->access_udp, cfg, err, sizeof(err));
  }
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
  nt_access *acc_udp = nt_access_new();
  if (!acc || !acc_udp) {
    nt_access_free(acc);
    nt_access_free(acc_udp);
    return NATTER_ERR_NOMEM;
  }
  int rv = parse_rules(acc, &full, buf, sizeof(buf));
  if (rv == 0) {
    rv = parse_udp_rules(acc_udp, &full, buf, sizeof(buf));
  }
  if (rv == 0 && !c->listen &&
      (full.allow || full.allow_peers || full.allow_commands ||
       full.allow_udp)) {
    snprintf(buf, sizeof(buf), "allow rules need a listening client");
    rv = NATTER_ERR_INVALID;
  }
  if (rv != 0) {
    if (err && errlen) {
      snprintf(err, errlen, "%s", buf);
    }
    nt_access_free(acc);
    nt_access_free(acc_udp);
    return rv;
  }
  /* Everyone holds c->access itself (the peer table, the tunnels): new
   * introductions and streams are decided by the new rules at once, open
   * ones keep running. */
  nt_access_replace(c->access, acc);
  nt_access_free(acc);
  nt_access_replace(c->access_udp, acc_udp);
  nt_access_free(acc_udp);
  nt_broker_session_rules_changed(c);
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
  c->no_portmap = cfg->no_portmap;
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
  c->udp_idle_timeout_s = cfg->udp_idle_timeout_s ? cfg->udp_idle_timeout_s
                                                  : NT_UDP_IDLE_DEFAULT_S;
  c->max_udp_flows = cfg->max_udp_flows;
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
  /* One broker, or several of one network (broker_list.h): the list as
   * given, without blanks, names the network in the known-brokers file. */
  char norm[NT_BROKER_LIST_TEXT_MAX + 1];
  rv = nt_broker_list_parse(&c->brokers, cfg->broker, norm, sizeof(norm), err,
                            sizeof(err));
  if (rv != 0) {
    nt_error(&c->log, "bad broker address \"%.80s\": %s", cfg->broker, err);
    goto fail;
  }
  free(c->broker_text);
  c->broker_text = strdup(norm);
  if (!c->broker_text) {
    rv = NATTER_ERR_NOMEM;
    goto fail;
  }
  if (c->brokers.n > 1 && c->known_brokers && !c->broker_pinned &&
      strlen(norm) > NT_KNOWN_BROKERS_ADDR_MAX) {
    nt_error(&c->log,
             "the broker list is longer than the %d characters the "
             "known-brokers file keeps for a network: pin the brokers' "
             "key with -broker-key, or list fewer",
             NT_KNOWN_BROKERS_ADDR_MAX);
    rv = NATTER_ERR_INVALID;
    goto fail;
  }
  c->broker_addr = c->brokers.addr[0];
  c->self.broker = c->broker_addr;
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
  epcfg.handshake_timeout_ms = NT_BROKER_HANDSHAKE_TIMEOUT_MS;
  epcfg.idle_timeout_ms = 30000;
  /* NAT UDP mappings commonly expire after 30 s of silence (RFC 4787
   * REQ-5 asks for at least 2 min, few follow it): ping well inside. */
  epcfg.keepalive_ms = 10000;
  /* 0: the default of natter_client_config_default(), not the
   * endpoint's own (the broker's sessions need few streams). */
  epcfg.max_streams_bidi = cfg->max_streams ? cfg->max_streams : 1024;
  if (nt_endpoint_new(&c->ep, base, &epcfg, err, sizeof(err)) != 0) {
    nt_error(&c->log, "%s", err);
    rv = NATTER_ERR_SOCKET;
    goto fail;
  }
  /* A broker address of a family our socket cannot reach (IPv6 on a
   * host without it) is left out of the list. */
  size_t kept = 0;
  for (size_t i = 0; i < c->brokers.n; i++) {
    if (nt_endpoint_reaches(c->ep, c->brokers.addr[i].ss.ss_family)) {
      c->brokers.addr[kept++] = c->brokers.addr[i];
    }
  }
  if (kept == 0) {
    nt_error(&c->log,
             "broker \"%.80s\": no address of a family this host "
             "reaches (IPv6 only, and no IPv6 here?)",
             cfg->broker);
    rv = NATTER_ERR_RESOLVE;
    goto fail;
  }
  c->brokers.n = kept;
  c->broker_addr = c->brokers.addr[0];
  c->self.broker = c->broker_addr;
  /* Ask the gateway for a mapping of our port, unless told not to or
   * the broker is on this host (its peers are too: no gateway between). */
  if (!c->no_portmap &&
      !nt_addr_is_loopback((struct sockaddr *)&c->broker_addr.ss)) {
    nt_portmap_env pmenv = {base, &c->log, c->ep,
                            nt_broker_session_portmap_changed, c};
    if (nt_portmap_new(&c->portmap, &pmenv) != 0) {
      rv = NATTER_ERR_NOMEM;
      goto fail;
    }
  }
  c->reconnect_ev = event_new(base, -1, 0, nt_broker_session_reconnect_cb, c);
  c->broker_lost_ev = evtimer_new(base, nt_broker_session_lost_cb, c);
  c->mapping_ev = event_new(base, -1, 0, nt_broker_session_mapping_cb, c);
  c->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  if (!c->dns) {
    /* No resolv.conf: numeric targets and localhost still work. */
    c->dns = evdns_base_new(base, 0);
  }
  if (!c->reconnect_ev || !c->broker_lost_ev || !c->mapping_ev || !c->dns) {
    rv = NATTER_ERR_NOMEM;
    goto fail;
  }
  if ((rv = nt_broker_resolve_new(&c->resolve, c)) != 0) {
    goto fail;
  }
  if ((rv = nt_tcp_fallback_new(c, cfg->broker_tcp_port)) != 0) {
    goto fail;
  }
  nt_info(&c->log, "%s: key %s, UDP port %u", c->name, c->fingerprint_hex,
          nt_endpoint_port(c->ep));
  if ((rv = start_parts(c)) != 0) {
    goto fail;
  }
  nt_client_start_status_page(c);
  nt_broker_session_connect(c);
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
  if (spec.kind == NT_SPEC_SOCKS) {
    cfg.kind = NATTER_FORWARD_SOCKS;
    cfg.bind = spec.host[0] ? spec.host : NULL;
    cfg.host = NULL;
  } else if (spec.kind == NT_SPEC_UDP) {
    cfg.kind = NATTER_FORWARD_UDP;
  }
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
  nt_udp_free(c->udp); /* listener flows; forwards took theirs */
  nt_peers_free(c->peers);
  nt_portmap_free(c->portmap); /* deletes the mapping: before the socket */
  if (c->portmap_wait_ev) {
    event_free(c->portmap_wait_ev);
  }
  nt_tcp_fallback_free(c); /* its links leave the endpoint */
  nt_broker_resolve_free(c->resolve); /* before the resolver */
  c->resolve = NULL;
  nt_endpoint_free(c->ep); /* closes the broker and peer connections */
  nt_h3_server_free(c->h3);
  if (c->broker_lost_ev) {
    event_free(c->broker_lost_ev);
  }
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
  nt_access_free(c->access_udp);
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
  return nt_mapping_to_public(c ? c->self.mapping : NT_MAPPING_UNKNOWN);
}
