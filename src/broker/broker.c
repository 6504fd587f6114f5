/* The broker: a name registry and introductions. Clients check in over a
 * control stream; the broker binds each name to the first key that claims
 * it (persistently, registry.h), and when one client asks for another it
 * sends each the other's key and addresses. Forwarded bytes never pass
 * through here. A closed broker admits only clients that present its
 * token (token.h) and/or whose key is listed (keylist.h). This file is
 * the facade: admission, the mapping-check port, the registry's upkeep
 * and the public API; each connected client's session, the control
 * protocol, is client_session.c. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/admission.h"
#include "base/paths.h"
#include "broker/broker_status.h"
#include "broker/registry.h"
#include "broker/relay.h"
#include "status/status.h"
#include "base/structs.h"
#include "broker/broker_internal.h"
#include "codec/mapping.h"
#include "codec/spec.h"
#include "quic/udpsock.h"

/* Last-seen times of checked-in clients reach the registry this often
 * (one transaction); expiry runs every quarter of the expiry time, at
 * least every second and at most every hour. */
#define BROKER_FLUSH_S 15
#define BROKER_EXPIRE_MAX_S 3600

/* Limits against one host holding the broker (doc/operations.md,
 * "Limits"): max_clients, max_pending and max_per_source
 * (natter_broker_config); each is logged when hit (at most once a second
 * per kind) and answered with a stateless CONNECTION_CLOSE that names it,
 * never with silence. */
enum { LIMIT_TOTAL, LIMIT_PENDING, LIMIT_SOURCE };

/* Refuses a new connection because of a limit: the reason goes back to
 * the client; the log says so at most once a second per limit. */
static int refuse(natter_broker *b, const char **reason, int kind,
                  const struct sockaddr *from, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int refuse(natter_broker *b, const char **reason, int kind,
                  const struct sockaddr *from, const char *fmt, ...) {
  va_list ap;
  uint64_t now = nt_monotonic_ns();
  char addr[NT_ADDR_STRLEN];
  va_start(ap, fmt);
  vsnprintf(b->refuse_text, sizeof(b->refuse_text), fmt, ap);
  va_end(ap);
  *reason = b->refuse_text;
  b->refused_connections[kind]++;
  unsigned held;
  if (nt_log_gate_pass(&b->limit_logged[kind], now, &held)) {
    nt_warn(&b->log, "refused a connection from %s: %s%s",
            nt_addr_str(from, addr), b->refuse_text,
            held ? " (and more like it)" : "");
  }
  return 0;
}

/* Returns 1 when a new connection from |from| is within every limit; 0,
 * logged, with the reason in *reason, when not. */
static int within_limits(natter_broker *b, const struct sockaddr *from,
                         const char **reason) {
  char addr[NT_ADDR_STRLEN];
  if (b->nclients >= b->max_clients) {
    return refuse(b, reason, LIMIT_TOTAL, from,
                  "broker is full (%u connections, its limit); try again "
                  "later",
                  b->max_clients);
  }
  if (b->npending >= b->max_pending) {
    return refuse(b, reason, LIMIT_PENDING, from,
                  "broker is busy (%u connections not checked in yet, its "
                  "limit); retry in a few seconds",
                  b->max_pending);
  }
  if (nt_sources_count(&b->sources, from) >= b->max_per_source) {
    nt_addr_str(from, addr);
    *strrchr(addr, ':') = '\0'; /* the address, without the port */
    return refuse(b, reason, LIMIT_SOURCE, from,
                  "too many connections from %s (limit %u per address)",
                  addr, b->max_per_source);
  }
  return 1;
}

/* nt_endpoint_callbacks.admit: the limits, before any state is made. */
static int broker_admit(nt_endpoint *ep, const struct sockaddr *from,
                        const char **reason, void *ud) {
  (void)ep;
  return within_limits(ud, from, reason);
}

static int broker_accept(nt_endpoint *ep, const struct sockaddr *from,
                         nt_accept_params *params, void *ud) {
  natter_broker *b = ud;
  (void)ep;
  /* Again: a routed (HTTP/3-capable) connection is accepted only once
   * its ClientHello is read, and others may have come in meanwhile. */
  if (!within_limits(b, from, &params->refuse_reason)) {
    return 0;
  }
  bclient *c = nt_bclient_new(b, from);
  if (!c) {
    return 0;
  }
  params->expected_fp = NULL; /* any key: the name binding decides */
  params->callbacks = &nt_bclient_conn_callbacks;
  params->user_data = c;
  return 1;
}

static const nt_endpoint_callbacks broker_ep_callbacks = {
    broker_accept, NULL, broker_admit, NULL, NULL};

/* Answers mapping checks: each request gets back the address it came from.
 * Stateless, one reply per request, bounded per wake-up. */
static void map_read_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  uint8_t buf[64], reply[NT_MAPPING_REPLY_MAX], nonce[NT_MAPPING_NONCE_LEN];
  (void)what;
  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage from;
    struct iovec iov = {buf, sizeof(buf)};
    union {
      char buf[NT_UDP_PKTINFO_SPACE];
      struct cmsghdr align;
    } ctrl;
    struct msghdr msg = {.msg_name = &from,
                         .msg_namelen = sizeof(from),
                         .msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctrl.buf,
                         .msg_controllen = sizeof(ctrl.buf)};
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
      return;
    }
    b->map_rx += (uint64_t)n;
    if (!nt_mapping_decode_request(buf, (size_t)n, nonce)) {
      continue;
    }
    /* The address as the main port's endpoint reports it (IPv4 plain,
     * not v4-mapped), so that the client can compare the two. */
    struct sockaddr_storage seen = from;
    socklen_t seenlen = msg.msg_namelen;
    nt_addr_unmap(&seen, &seenlen);
    /* From the address the request went to: the client's NAT lets
     * nothing else back in. */
    nt_addr dst;
    nt_udp_arrival(&msg, &dst);
    size_t len =
        nt_mapping_encode_reply(reply, nonce, (struct sockaddr *)&seen);
    if (len && nt_udp_send(fd, b->map_family, b->map_v6only, reply, len, 0,
                           (struct sockaddr *)&seen, &dst) == 0) {
      b->map_tx += len;
    }
  }
}

/* Opens the mapping-check port next to the main one; without it clients
 * simply cannot tell their NAT's mapping, so failure is only a warning. */
static void close_mapping_port(natter_broker *b);

static void open_mapping_port(natter_broker *b, const nt_addr *main_addr) {
  nt_addr a = *main_addr;
  uint16_t port = nt_endpoint_port(b->ep);
  char addrstr[NT_ADDR_STRLEN];

  b->map_fd = -1;
  if (port == 65535) {
    return;
  }
  nt_addr_set_port((struct sockaddr *)&a.ss, (uint16_t)(port + 1));
  b->map_fd = nt_udp_open(&a, b->dual_stack, &b->map_family, &b->map_v6only);
  if (b->map_fd < 0) {
    nt_warn(&b->log,
            "cannot open the NAT mapping-check port %s (%s): clients will "
            "not learn whether their NAT is symmetric",
            nt_addr_str((struct sockaddr *)&a.ss, addrstr),
            strerror(-b->map_fd));
    b->map_fd = -1;
    return;
  }
  b->map_ev = event_new(b->base, b->map_fd, EV_READ | EV_PERSIST, map_read_cb,
                        b);
  if (!b->map_ev || event_add(b->map_ev, NULL) != 0) {
    close_mapping_port(b);
    return;
  }
  b->map_port = (uint16_t)(port + 1);
}

/* Undoes open_mapping_port; safe when it opened nothing. */
static void close_mapping_port(natter_broker *b) {
  if (b->map_ev) {
    event_free(b->map_ev);
    b->map_ev = NULL;
  }
  if (b->map_fd >= 0) {
    close(b->map_fd);
    b->map_fd = -1;
  }
}

/* Opens the relay on port+2 (relay.h); a broker asked to relay that
 * cannot fails to start rather than silently not relaying. */
static int open_relay(natter_broker *b, const nt_addr *main_addr,
                      const natter_broker_config *cfg) {
  nt_relay_config rc;
  char err[300], addrstr[NT_ADDR_STRLEN];
  uint16_t port = nt_endpoint_port(b->ep);
  memset(&rc, 0, sizeof(rc));
  rc.bind = *main_addr;
  rc.dual_stack = b->dual_stack;
  nt_addr_set_port((struct sockaddr *)&rc.bind.ss,
                   port <= 65533 ? (uint16_t)(port + 2) : 0);
  rc.rate = cfg->relay_rate;
  rc.total = cfg->relay_total;
  rc.log = &b->log;
  int rv = nt_relay_new(&b->relay, b->base, &rc, err, sizeof(err));
  if (rv != 0) {
    nt_error(&b->log, "broker: %s", err);
    return rv;
  }
  nt_addr_set_port((struct sockaddr *)&rc.bind.ss, nt_relay_port(b->relay));
  nt_info(&b->log,
          "relaying for peers that cannot punch a hole on %s (UDP): at most "
          "%llu bytes/s and %llu bytes an hour per key and per address",
          nt_addr_str((struct sockaddr *)&rc.bind.ss, addrstr),
          (unsigned long long)cfg->relay_rate,
          (unsigned long long)cfg->relay_total);
  return 0;
}

/* ---- the registry's upkeep and a closed broker's settings ---- */

/* Records that every checked-in client is here now, so that no name in
 * use ever looks idle. */
static void touch_checked_in(natter_broker *b, int64_t now) {
  char err[300];
  bclient *c;
  TAILQ_FOREACH(c, &b->clients, link) {
    if (c->checked_in &&
        nt_registry_touch(b->registry, c->name, now, err, sizeof(err)) != 0) {
      nt_warn(&b->log, "registry: %s", err);
      return;
    }
  }
}

/* A failed flush or expiry is retried by its timer. A store that cannot
 * be reached has said so once in the log (registry_pg.c): not again at
 * every round. */
static void upkeep_failed(natter_broker *b, const char *err) {
  if (strstr(err, NT_REGISTRY_UNAVAILABLE)) {
    nt_debug(&b->log, "registry: %s (retrying later)", err);
  } else {
    nt_warn(&b->log, "registry: %s (retrying later)", err);
  }
}

static void flushed(const nt_registry_result *res, void *arg) {
  natter_broker *b = arg;
  b->flush_req = NULL;
  if (res->rv != 0) {
    upkeep_failed(b, res->err);
  }
}

static void flush_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  char err[300];
  (void)fd;
  (void)what;
  touch_checked_in(b, (int64_t)time(NULL));
  if (!b->flush_req && nt_registry_flush(b->registry, flushed, b, &b->flush_req,
                                         err, sizeof(err)) != 0) {
    nt_warn(&b->log, "registry: %s (retrying later)", err);
  }
}

/* Batches keep each request short; a large backlog goes over a few
 * rounds, at most this many per run of the timer. */
#define BROKER_EXPIRE_ROUNDS 10

static void expire_round(natter_broker *b);

static void expired(const nt_registry_result *res, void *arg) {
  natter_broker *b = arg;
  b->expire_req = NULL;
  if (res->rv != 0) {
    upkeep_failed(b, res->err);
  } else {
    b->expired += res->removed;
    if (res->removed >= NT_REGISTRY_EXPIRE_BATCH &&
        ++b->expire_rounds < BROKER_EXPIRE_ROUNDS) {
      expire_round(b);
      return;
    }
  }
  if (b->expired > 0) {
    nt_info(&b->log, "released %zu name%s unused for %lld s", b->expired,
            b->expired == 1 ? "" : "s", (long long)b->name_expiry_s);
  }
}

static void expire_round(natter_broker *b) {
  char err[300];
  if (nt_registry_expire(b->registry, (int64_t)time(NULL), b->name_expiry_s,
                         expired, b, &b->expire_req, err, sizeof(err)) != 0) {
    nt_warn(&b->log, "registry: %s (retrying later)", err);
  }
}

static void expire_cb(evutil_socket_t fd, short what, void *arg) {
  natter_broker *b = arg;
  (void)fd;
  (void)what;
  if (b->expire_req) {
    return; /* the last run is still going */
  }
  touch_checked_in(b, (int64_t)time(NULL));
  b->expire_rounds = 0;
  b->expired = 0;
  expire_round(b);
}

/* Opens the registry, reads the token and the admitted keys, starts the
 * timers. Returns 0 or a NATTER_ERR_* (logged). */
static int broker_security_new(natter_broker *b,
                               const natter_broker_config *cfg) {
  char err[600], warn[300];
  int rv;

  if (cfg->token && cfg->token_file) {
    nt_error(&b->log, "give the broker token once: as text or as a file");
    return NATTER_ERR_INVALID;
  }
  if (cfg->token_file) {
    rv = nt_token_read_file(b->token, sizeof(b->token), cfg->token_file, warn,
                            sizeof(warn), err, sizeof(err));
    if (rv != 0) {
      nt_error(&b->log, "%s", err);
      return rv;
    }
    if (warn[0]) {
      nt_warn(&b->log, "%s", warn);
    }
    b->token_len = strlen(b->token);
  } else if (cfg->token) {
    rv = nt_token_check(cfg->token, strlen(cfg->token), "the broker token", err,
                        sizeof(err));
    if (rv != 0) {
      nt_error(&b->log, "%s", err);
      return rv;
    }
    snprintf(b->token, sizeof(b->token), "%s", cfg->token);
    b->token_len = strlen(b->token);
  }
  if (cfg->admitted_keys) {
    rv = nt_keylist_load(&b->admitted, cfg->admitted_keys, err, sizeof(err));
    if (rv != 0) {
      nt_error(&b->log, "%s", err);
      return rv;
    }
  }
  /* A file path or a URI (registry.h); "" keeps its old meaning. */
  const char *where = cfg->registry;
  if (where && where[0] == '\0') {
    where = "memory:";
  } else if (!where) {
    if (nt_default_registry_path(b->registry_path, sizeof(b->registry_path)) !=
        0) {
      nt_error(&b->log, "cannot find a place for the name registry: set "
                        "HOME or STATE_DIRECTORY, or use -registry FILE");
      return NATTER_ERR_REGISTRY;
    }
    where = b->registry_path;
  }
  rv = nt_registry_open(&b->registry, b->base, where, err, sizeof(err));
  if (rv != 0) {
    nt_error(&b->log, "%s", err);
    return rv == NATTER_ERR_NOMEM ? rv : NATTER_ERR_REGISTRY;
  }
  nt_registry_set_log(b->registry, &b->log);
  /* The count of names the dashboard shows: its first request now, ahead
   * of every bind (nt_registry_names). */
  size_t names;
  (void)nt_registry_names(b->registry, &names);
  /* For the log: the file, the database, or "" for memory. */
  if (strcmp(nt_registry_backend(b->registry), "sqlite") != 0) {
    nt_registry_describe(b->registry, b->registry_path,
                         sizeof(b->registry_path));
  } else if (where != b->registry_path) {
    const nt_registry_ops *ops;
    const char *path = where;
    (void)nt_registry_parse_location(where, &ops, &path, NULL, 0);
    snprintf(b->registry_path, sizeof(b->registry_path), "%s", path);
  }
  b->name_expiry_s = cfg->name_expiry_s;
  b->flush_ev = event_new(b->base, -1, EV_PERSIST, flush_cb, b);
  b->expire_ev = event_new(b->base, -1, EV_PERSIST, expire_cb, b);
  if (!b->flush_ev || !b->expire_ev) {
    return NATTER_ERR_NOMEM;
  }
  struct timeval flush_tv = {BROKER_FLUSH_S, 0};
  event_add(b->flush_ev, &flush_tv);
  if (b->name_expiry_s > 0) {
    int64_t every = b->name_expiry_s / 4;
    struct timeval tv = {every < 1                     ? 1
                         : every > BROKER_EXPIRE_MAX_S ? BROKER_EXPIRE_MAX_S
                                                       : (time_t)every,
                         0};
    event_add(b->expire_ev, &tv);
    expire_cb(-1, 0, b); /* what expired while the broker was down */
  }
  return 0;
}

static void broker_security_free(natter_broker *b) {
  if (b->flush_ev) {
    event_free(b->flush_ev);
  }
  if (b->expire_ev) {
    event_free(b->expire_ev);
  }
  if (b->registry) {
    bclient *c;
    /* The requests go with the registry: none may be cancelled later. */
    TAILQ_FOREACH(c, &b->clients, link) {
      nt_registry_cancel(c->binding.req);
      c->binding.req = NULL;
    }
    nt_registry_cancel(b->flush_req);
    nt_registry_cancel(b->expire_req);
    b->flush_req = b->expire_req = NULL;
    touch_checked_in(b, (int64_t)time(NULL));
  }
  nt_registry_close(b->registry); /* flushes */
  nt_keylist_free(b->admitted);
  memset(b->token, 0, sizeof(b->token));
}

/* One line at start: where names live, and who may check in. */
static void log_security(natter_broker *b) {
  char expiry[64] = "names never expire";
  if (b->name_expiry_s > 0) {
    if (b->name_expiry_s % 86400 == 0) {
      snprintf(expiry, sizeof(expiry), "unused names expire after %lld d",
               (long long)(b->name_expiry_s / 86400));
    } else {
      snprintf(expiry, sizeof(expiry), "unused names expire after %lld s",
               (long long)b->name_expiry_s);
    }
  }
  nt_info(&b->log, "name registry: %s (%s)",
          b->registry_path[0] ? b->registry_path
                              : "in memory, lost when the broker stops",
          expiry);
  if (b->token_len || b->admitted) {
    nt_info(&b->log, "closed broker: clients need %s%s%s",
            b->token_len ? "the token" : "",
            b->token_len && b->admitted ? " and " : "",
            b->admitted ? "a key from the admitted-keys file" : "");
  } else {
    nt_info(&b->log, "open broker: any client may check in (close it with "
                     "-token-file or -admitted-keys)");
  }
}
int natter_broker_new_versioned(natter_broker **pbroker,
                                struct event_base *base, int config_version,
                                const natter_broker_config *caller_cfg) {
  char err[512], path[1024];
  char addrstr[NT_ADDR_STRLEN];
  nt_endpoint_config epcfg;
  natter_broker_config full, *cfg = &full;

  if (!pbroker) {
    return NATTER_ERR_INVALID;
  }
  *pbroker = NULL;
  if (!base || nt_broker_config_load(&full, config_version, caller_cfg) != 0 ||
      !cfg->listen) {
    return NATTER_ERR_INVALID;
  }
  natter_broker *b = calloc(1, sizeof(*b));
  if (!b) {
    return NATTER_ERR_NOMEM;
  }
  b->map_fd = -1;
  b->base = base;
  b->started_ns = nt_monotonic_ns();
  nt_intro_log_init(&b->intro_log);
  TAILQ_INIT(&b->clients);
  b->log.fn = cfg->log;
  b->log.level = cfg->log_level;
  b->log.user_data = cfg->user_data;

  memset(&epcfg, 0, sizeof(epcfg));
  if (nt_addr_parse(&epcfg.bind, cfg->listen, "0.0.0.0", err, sizeof(err)) !=
      0) {
    nt_error(&b->log, "bad broker address: %s", err);
    free(b);
    return NATTER_ERR_INVALID;
  }
  int rv;
  if (cfg->identity_file && cfg->identity_file[0] == '\0') {
    rv = nt_identity_new_ephemeral(&b->identity, err, sizeof(err));
  } else {
    const char *file = cfg->identity_file;
    if (!file) {
      if (nt_default_key_path(path, sizeof(path), "broker.key") != 0) {
        nt_error(&b->log, "cannot find a home directory for the broker key: "
                          "set HOME or use -identity FILE");
        free(b);
        return NATTER_ERR_IDENTITY;
      }
      file = path;
    }
    rv = nt_identity_load_or_create(&b->identity, file, err, sizeof(err));
  }
  if (rv != 0) {
    nt_error(&b->log, "%s", err);
    free(b);
    return NATTER_ERR_IDENTITY;
  }
  uint8_t seed[NT_HASHMAP_SEED_LEN * 4];
  if (nt_random_bytes(seed, sizeof(seed)) != 0) {
    nt_error(&b->log, "broker: cannot get random bytes");
    nt_identity_free(b->identity);
    free(b);
    return NATTER_ERR_INVALID;
  }
  /* Its own id, whatever key it shares with the other brokers of its
   * network; a new one each run, so a restart never meets its
   * predecessor's rows (they go when its heartbeat is stale). */
  uint8_t id[BROKER_ID_LEN];
  if (nt_random_bytes(id, sizeof(id)) != 0) {
    nt_error(&b->log, "broker: cannot get random bytes");
    nt_identity_free(b->identity);
    free(b);
    return NATTER_ERR_INVALID;
  }
  for (size_t i = 0; i < sizeof(id); i++) {
    snprintf(b->broker_id + 2 * i, 3, "%02x", id[i]);
  }
  nt_hashmap_init(&b->checked_in, seed);
  nt_sources_init(&b->sources, seed + NT_HASHMAP_SEED_LEN);
  b->new_names_per_hour = cfg->new_names_per_hour;
  unsigned burst = cfg->new_names_per_hour < BROKER_NEW_NAMES_BURST
                       ? cfg->new_names_per_hour
                       : BROKER_NEW_NAMES_BURST;
  nt_budget_init(&b->new_names_by_source, seed + 2 * NT_HASHMAP_SEED_LEN,
                 cfg->new_names_per_hour, burst, BROKER_NEW_NAMES_TRACKED);
  nt_budget_init(&b->new_names_by_key, seed + 3 * NT_HASHMAP_SEED_LEN,
                 cfg->new_names_per_hour, burst, BROKER_NEW_NAMES_TRACKED);
  b->loopback = nt_addr_is_loopback((struct sockaddr *)&epcfg.bind.ss);
  /* ":PORT" (no host) is every address of both families; "0.0.0.0:PORT"
   * and "[::]:PORT" are that family only, as given. */
  b->dual_stack = cfg->listen[0] == ':';
  b->max_clients = cfg->max_clients ? cfg->max_clients : 10000;
  b->max_pending = cfg->max_pending ? cfg->max_pending : 512;
  b->max_per_source = cfg->max_per_source ? cfg->max_per_source : 32;
  rv = broker_security_new(b, cfg);
  if (rv != 0) {
    broker_security_free(b);
    nt_identity_free(b->identity);
    free(b);
    return rv;
  }
  epcfg.identity = b->identity;
  epcfg.callbacks = &broker_ep_callbacks;
  epcfg.accept_h3 = nt_broker_accept_h3;
  epcfg.user_data = b;
  epcfg.log = &b->log;
  epcfg.handshake_timeout_ms = 5000;
  epcfg.idle_timeout_ms = 30000;
  epcfg.keepalive_ms = 0; /* clients keep their own mappings alive */
  epcfg.retry_above_per_s = cfg->retry_above_per_s;
  epcfg.small_packets = 1; /* control messages only: small and many */
  epcfg.rcvbuf_bytes = 32 * 1024 * 1024; /* ~25,000 Initials of a storm */
  epcfg.dual_stack = b->dual_stack;
  rv = nt_endpoint_new(&b->ep, base, &epcfg, err, sizeof(err));
  if (rv != 0) {
    nt_error(&b->log, "broker: %s", err);
    broker_security_free(b);
    nt_identity_free(b->identity);
    free(b);
    return rv;
  }
  nt_addr_set_port((struct sockaddr *)&epcfg.bind.ss, nt_endpoint_port(b->ep));
  open_mapping_port(b, &epcfg.bind);
  if (cfg->relay) {
    rv = open_relay(b, &epcfg.bind, cfg);
    if (rv != 0) {
      close_mapping_port(b);
      nt_endpoint_free(b->ep);
      broker_security_free(b);
      nt_identity_free(b->identity);
      free(b);
      return rv;
    }
  }
  if (cfg->tcp_listen && cfg->tcp_listen[0]) {
    rv = nt_tcp_listener_new(b, cfg->tcp_listen);
    if (rv != 0) {
      close_mapping_port(b);
      nt_relay_free(b->relay);
      nt_endpoint_free(b->ep);
      broker_security_free(b);
      nt_identity_free(b->identity);
      free(b);
      return rv;
    }
  }
  nt_broker_start_status_page(b);
  nt_fingerprint_hex(nt_identity_fingerprint(b->identity), b->fingerprint_hex);
  /* In a registry brokers share: this broker's heartbeat and presence. */
  nt_registry_set_broker(b->registry, b->broker_id);
  /* ... and the bus for introductions across them (xintro.c). */
  if (cfg->registry && nt_xintro_start(b, cfg->registry) != 0) {
    nt_warn(&b->log, "no introductions across brokers: out of memory");
  }
  int both = b->dual_stack && nt_endpoint_family(b->ep) == AF_INET6;
  if (both) {
    snprintf(addrstr, sizeof(addrstr), "[::]:%u", nt_endpoint_port(b->ep));
  } else {
    nt_addr_str((struct sockaddr *)&epcfg.bind.ss, addrstr);
  }
  nt_info(&b->log, "broker listening on %s (UDP%s), key %s", addrstr,
          both ? ", IPv4 and IPv6" : "", b->fingerprint_hex);
  log_security(b);
  *pbroker = b;
  return 0;
}

void natter_broker_free(natter_broker *b) {
  if (!b) {
    return;
  }
  nt_metrics_free(b->metrics);
  nt_tcp_listener_free(b); /* its links leave the endpoint and relay */
  nt_endpoint_free(b->ep); /* frees connections without callbacks */
  nt_h3_server_free(b->h3);
  nt_relay_free(b->relay);
  b->relay = NULL; /* the clients freed below had channels there */
  nt_admission_free(b);
  close_mapping_port(b);
  broker_security_free(b); /* before the clients: their names are touched */
  bclient *c;
  while ((c = TAILQ_FIRST(&b->clients)) != NULL) {
    nt_bclient_free(b, c);
  }
  nt_xintro_free(b);
  nt_sources_clear(&b->sources);
  nt_budget_clear(&b->new_names_by_source);
  nt_budget_clear(&b->new_names_by_key);
  nt_hashmap_clear(&b->checked_in);
  nt_identity_free(b->identity);
  free(b);
}

uint16_t natter_broker_port(const natter_broker *b) {
  return b ? nt_endpoint_port(b->ep) : 0;
}

const char *natter_broker_fingerprint(const natter_broker *b) {
  return b ? b->fingerprint_hex : "";
}

int natter_broker_get_stats_versioned(const natter_broker *b, int stats_version,
                                      natter_broker_stats *out) {
  natter_broker_stats full, *stats = &full;
  size_t len = nt_broker_stats_len(stats_version);
  if (!out || !len) {
    return NATTER_ERR_INVALID;
  }
  memset(stats, 0, sizeof(*stats));
  if (!b) {
    memcpy(out, stats, len);
    return NATTER_ERR_INVALID;
  }
  nt_endpoint_traffic(b->ep, &stats->bytes_received, &stats->bytes_sent);
  stats->bytes_received += b->map_rx;
  stats->bytes_sent += b->map_tx;
  stats->clients = nt_hashmap_count(&b->checked_in);
  stats->introductions = b->introductions;
  nt_relay_stats rs;
  nt_relay_get_stats(b->relay, &rs);
  stats->relayed_bytes = rs.relayed;
  stats->relay_bytes_received = rs.rx;
  stats->relay_bytes_sent = rs.tx;
  stats->relay_channels = rs.channels;
  memcpy(out, stats, len);
  return 0;
}

