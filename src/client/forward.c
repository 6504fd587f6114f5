/* Forwards (forward.h). */
#include "client/forward.h"

#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/addr.h"
#include "base/budget.h"
#include "quic/endpoint.h" /* nt_monotonic_ns */
#include "codec/spec.h"
#include "base/structs.h"
#include "client/socks_forward.h"
#include "client/udp.h"

struct natter_forward {
  const nt_forward_env *env;
  char peer[NT_NAME_MAX + 1];
  char host[NT_HOST_MAX + 1]; /* "" : the peer's loopback */
  uint16_t port;
  uint16_t local_port;
  char **argv; /* remote command, NULL-terminated, or NULL */
  int err_fd;
  struct evconnlistener *listener; /* NULL for an fd session */
  struct event *accept_retry;      /* re-enables it after running out of fds */
  nt_log_gate accept_logged;       /* accept failures: a line a second */
  nt_socks_server *socks; /* a SOCKS forward: its clients name targets */
  nt_udp_forward *udp;             /* a UDP forward's socket and flows */
  natter_forward_stats stats;
  TAILQ_ENTRY(natter_forward) link;
};

#define FORWARD_MAX_ARGV 256
#define FORWARD_MAX_ARGV_BYTES 8192

static void tunnel_event(nt_tunnel *t, natter_event_type type, int error,
                         int quiet, int exit_status, const char *message,
                         void *ud) {
  nt_forward *f = ud;
  (void)t;
  if (type == NATTER_EVENT_FORWARD_FAILED) {
    f->stats.failures++;
  }
  f->env->callbacks->event(f, type, error, quiet, f->peer, exit_status,
                           message, f->env->user_data);
}

static void tunnel_gone(nt_tunnel *t, void *ud) {
  nt_forward *f = ud;
  (void)t;
  if (f->stats.active > 0) {
    f->stats.active--;
  }
}

static const nt_tunnel_callbacks forward_tunnel_callbacks = {tunnel_event,
                                                             tunnel_gone, NULL};

static void start_connection(nt_forward *f, int in_fd, int out_fd) {
  const nt_forward_env *env = f->env;
  nt_peer *peer = nt_peers_get(env->peers, f->peer);
  nt_tunnel *t = NULL;
  if (peer) {
    nt_tunnel_target target = {
        .peer = f->peer,
        .host = f->host,
        .port = f->port,
        .argv = f->argv,
        .err_fd = f->err_fd,
        .local_port = f->local_port,
        .stats = &f->stats,
        .callbacks = &forward_tunnel_callbacks,
        .user_data = f,
    };
    t = nt_tunnel_new_outgoing(env->tunnels, &target, in_fd, out_fd);
  } else {
    close(in_fd);
    if (out_fd != in_fd) {
      close(out_fd);
    }
  }
  if (!t) {
    nt_warn(env->log, "out of memory; a connection to %s was dropped",
            f->peer);
    return;
  }
  f->stats.connections++;
  f->stats.active++;
  nt_peer_submit(peer, nt_tunnel_waiter(t));
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg) {
  (void)l;
  (void)sa;
  (void)salen;
  nt_forward *f = arg;
  if (f->socks) {
    nt_socks_server_accept(f->socks, fd);
    return;
  }
  start_connection(f, fd, fd);
}

/* How long the listener rests after accept() ran out of descriptors or
 * memory: the pending connection keeps the socket readable, so accepting
 * again at once would spin. */
#define FORWARD_ACCEPT_PAUSE_MS 100

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg) {
  nt_forward *f = arg;
  (void)fd;
  (void)what;
  evconnlistener_enable(f->listener);
}

static void accept_error_cb(struct evconnlistener *l, void *arg) {
  nt_forward *f = arg;
  int e = errno;
  unsigned held;
  int out_of_fds = e == EMFILE || e == ENFILE;
  struct rlimit rl;

  if (nt_log_gate_pass(&f->accept_logged, nt_monotonic_ns(), &held)) {
    if (out_of_fds && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      nt_warn(f->env->log,
              "local port %u: cannot accept: out of file descriptors (%s; "
              "this process may open %llu): new connections wait in the "
              "kernel's queue until some close; raise the limit (ulimit -n, "
              "systemd LimitNOFILE=)%s",
              f->local_port, strerror(e), (unsigned long long)rl.rlim_cur,
              held ? " (again)" : "");
    } else {
      nt_warn(f->env->log, "local port %u: accept failed: %s%s", f->local_port,
              strerror(e), held ? " (again)" : "");
    }
  }
  /* Keep the listener, the next accept may work; but not at once. */
  if (out_of_fds || e == ENOBUFS || e == ENOMEM) {
    struct timeval tv = {0, FORWARD_ACCEPT_PAUSE_MS * 1000};
    if (!f->accept_retry) {
      f->accept_retry = evtimer_new(f->env->base, accept_retry_cb, f);
    }
    if (f->accept_retry) {
      evconnlistener_disable(l);
      evtimer_add(f->accept_retry, &tv);
    }
  }
}

static void forward_free(nt_forward *f) {
  nt_udp_forward_free(f->udp);
  if (f->accept_retry) {
    event_free(f->accept_retry);
  }
  if (f->listener) {
    evconnlistener_free(f->listener);
  }
  nt_socks_server_free(f->socks);
  if (f->argv) {
    for (size_t i = 0; f->argv[i]; i++) {
      free(f->argv[i]);
    }
    free(f->argv);
  }
  free(f);
}

static int copy_argv(nt_forward *f, const char *const *argv, char *err,
                     size_t errlen) {
  size_t n = 0, bytes = 0;
  while (argv[n]) {
    bytes += strlen(argv[n]) + 1;
    n++;
  }
  if (n == 0 || n > FORWARD_MAX_ARGV || bytes > FORWARD_MAX_ARGV_BYTES) {
    snprintf(err, errlen,
             n == 0 ? "empty remote command"
                    : "remote command too long (at most 256 arguments, 8 KiB)");
    return NATTER_ERR_INVALID;
  }
  f->argv = calloc(n + 1, sizeof(char *));
  if (!f->argv) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    if (!(f->argv[i] = strdup(argv[i]))) {
      snprintf(err, errlen, "out of memory");
      return NATTER_ERR_NOMEM;
    }
  }
  return 0;
}

static void udp_event(natter_event_type type, int error, int quiet,
                      const char *message, void *ud) {
  nt_forward *f = ud;
  if (type == NATTER_EVENT_FORWARD_FAILED) {
    f->stats.failures++;
  }
  f->env->callbacks->event(f, type, error, quiet, f->peer, -1, message,
                           f->env->user_data);
}

static const nt_udp_forward_callbacks forward_udp_callbacks = {udp_event};

static void describe_target(const nt_forward *f, char *out, size_t outlen) {
  if (f->socks) {
    snprintf(out, outlen, "%s (SOCKS: each connection names its target)",
             f->peer);
  } else if (f->udp) {
    snprintf(out, outlen, strchr(f->host, ':') ? "udp:%s:[%.60s]:%u"
                          : f->host[0]        ? "udp:%s:%.60s:%u"
                                              : "udp:%s:%.0s%u",
             f->peer, f->host, f->port);
  } else if (f->argv) {
    snprintf(out, outlen, "%s: %.60s%s", f->peer, f->argv[0],
             f->argv[1] ? " ..." : "");
  } else if (!f->host[0]) {
    snprintf(out, outlen, "%s:%u", f->peer, f->port);
  } else if (strchr(f->host, ':')) {
    snprintf(out, outlen, "%s:[%.60s]:%u", f->peer, f->host, f->port);
  } else {
    snprintf(out, outlen, "%s:%.60s:%u", f->peer, f->host, f->port);
  }
}

int nt_forward_add(const nt_forward_env *env,
                   const natter_forward_config *cfg, nt_forward **pforward,
                   char *err, size_t errlen) {
  char target[NT_NAME_MAX + 100];
  int rv;

  if (!cfg->peer || !nt_name_valid(cfg->peer)) {
    snprintf(err, errlen, "invalid peer name");
    return NATTER_ERR_INVALID;
  }
  if (strcmp(cfg->peer, env->self_name) == 0) {
    snprintf(err, errlen, "%s cannot forward to itself", env->self_name);
    return NATTER_ERR_INVALID;
  }
  if (cfg->kind == NATTER_FORWARD_SOCKS) {
    if (cfg->local_port == 0 || cfg->argv || (cfg->host && cfg->host[0])) {
      snprintf(err, errlen,
               "a SOCKS forward needs a local port, and no target host or "
               "command: its clients name their targets");
      return NATTER_ERR_INVALID;
    }
  } else if (cfg->kind == NATTER_FORWARD_UDP) {
    if (cfg->argv || !cfg->local_port || cfg->port == 0) {
      snprintf(err, errlen, "a UDP forward needs a local port and a target "
                            "port, not a command or stdin/stdout");
      return NATTER_ERR_INVALID;
    }
  } else if (cfg->kind != NATTER_FORWARD_TCP) {
    snprintf(err, errlen, "forward kind %d is not supported", cfg->kind);
    return NATTER_ERR_INVALID;
  } else if (!cfg->argv && cfg->port == 0) {
    snprintf(err, errlen, "target port must be 1..65535");
    return NATTER_ERR_INVALID;
  }
  if (cfg->host && strlen(cfg->host) > NT_HOST_MAX) {
    snprintf(err, errlen, "target host name too long");
    return NATTER_ERR_INVALID;
  }
  if (cfg->local_port == 0 && (cfg->in_fd < 0 || cfg->out_fd < 0)) {
    snprintf(err, errlen, "give a local port, or both in_fd and out_fd");
    return NATTER_ERR_INVALID;
  }
  nt_forward *f = calloc(1, sizeof(*f));
  if (!f) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  f->env = env;
  snprintf(f->peer, sizeof(f->peer), "%s", cfg->peer);
  snprintf(f->host, sizeof(f->host), "%s", cfg->host ? cfg->host : "");
  f->port = cfg->argv ? 0 : cfg->port;
  f->local_port = cfg->local_port;
  f->err_fd = cfg->err_fd;
  if (cfg->argv && (rv = copy_argv(f, cfg->argv, err, errlen)) != 0) {
    forward_free(f);
    return rv;
  }
  describe_target(f, target, sizeof(target));
  if (cfg->local_port) {
    nt_addr bind;
    char addrerr[200];
    const char *host = cfg->bind ? cfg->bind : "127.0.0.1";
    char text[300];
    snprintf(text, sizeof(text), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
             host, cfg->local_port);
    if (nt_addr_parse(&bind, text, "127.0.0.1", addrerr, sizeof(addrerr)) !=
        0) {
      snprintf(err, errlen, "bad bind address: %s", addrerr);
      forward_free(f);
      return NATTER_ERR_INVALID;
    }
    if (cfg->kind == NATTER_FORWARD_UDP) {
      rv = nt_udp_forward_new(&f->udp, env->udp, &bind, f->peer, f->host,
                              f->port, &f->stats, &forward_udp_callbacks, f,
                              err, errlen);
      if (rv != 0) {
        forward_free(f);
        return rv;
      }
      describe_target(f, target, sizeof(target));
      nt_info(env->log, "forwarding UDP %s:%u -> %s", host, cfg->local_port,
              target);
      TAILQ_INSERT_HEAD(env->all, f, link);
      if (pforward) {
        *pforward = f;
      }
      return 0;
    }
    if (cfg->kind == NATTER_FORWARD_SOCKS) {
      nt_socks_server_env senv = {
          .base = env->base,
          .log = env->log,
          .peers = env->peers,
          .tunnels = env->tunnels,
          .peer = f->peer,
          .local_port = f->local_port,
          .stats = &f->stats,
          .callbacks = &forward_tunnel_callbacks,
          .user_data = f,
      };
      rv = nt_socks_server_new(&f->socks, &senv, cfg->socks_auth_file,
                               nt_addr_is_loopback((struct sockaddr *)&bind.ss),
                               err, errlen);
      if (rv != 0) {
        forward_free(f);
        return rv;
      }
      describe_target(f, target, sizeof(target));
    }
    f->listener = evconnlistener_new_bind(
        env->base, accept_cb, f,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
        SOMAXCONN, (struct sockaddr *)&bind.ss, bind.len);
    if (!f->listener) {
      int e = errno;
      snprintf(err, errlen, "cannot listen on %s:%u: %s%s", host,
               cfg->local_port, strerror(e),
               e == EADDRINUSE ? " (port already in use: pick another local "
                                 "port or stop what uses it)"
                               : "");
      forward_free(f);
      return e == EADDRINUSE ? NATTER_ERR_ADDR_IN_USE : NATTER_ERR_SOCKET;
    }
    evconnlistener_set_error_cb(f->listener, accept_error_cb);
    nt_info(env->log, "forwarding %s:%u -> %s", host, cfg->local_port,
            target);
  } else {
    nt_debug(env->log, "stdin/stdout -> %s", target);
  }
  TAILQ_INSERT_HEAD(env->all, f, link);
  if (!cfg->local_port) {
    start_connection(f, cfg->in_fd, cfg->out_fd);
  }
  if (pforward) {
    *pforward = f;
  }
  return 0;
}

void natter_forward_remove(natter_forward *f) {
  if (!f) {
    return;
  }
  nt_tunnel_detach_owner(f->env->tunnels->all, f);
  TAILQ_REMOVE(f->env->all, f, link);
  forward_free(f);
}

/* The forward's stats, with a UDP forward's datagram counts. */
static natter_forward_stats current_stats(const nt_forward *f) {
  natter_forward_stats s = f->stats;
  if (f->udp) {
    nt_udp_counts c;
    nt_udp_forward_counts(f->udp, &c);
    s.datagrams_sent = c.sent;
    s.datagrams_received = c.received;
    s.datagrams_dropped = c.dropped_too_big + c.dropped_full;
  }
  return s;
}

int natter_forward_get_stats_versioned(const natter_forward *f,
                                       int stats_version,
                                       natter_forward_stats *out) {
  natter_forward_stats stats;
  size_t len = nt_forward_stats_len(stats_version);
  if (!out || !len) {
    return NATTER_ERR_INVALID;
  }
  if (f) {
    stats = current_stats(f);
  } else {
    memset(&stats, 0, sizeof(stats));
  }
  memcpy(out, &stats, len);
  return f ? 0 : NATTER_ERR_INVALID;
}

uint16_t natter_forward_local_port(const natter_forward *f) {
  return f ? f->local_port : 0;
}

void nt_forward_free_all(struct nt_forward_list *all) {
  nt_forward *f;
  while ((f = TAILQ_FIRST(all))) {
    TAILQ_REMOVE(all, f, link);
    forward_free(f);
  }
}

/* ---- status ---- */

nt_forward *nt_forward_next(const struct nt_forward_list *all,
                            const nt_forward *prev) {
  return prev ? TAILQ_NEXT(prev, link) : TAILQ_FIRST(all);
}

void nt_forward_describe(const nt_forward *f, natter_forward_info *info,
                         char *target, size_t targetlen) {
  describe_target(f, target, targetlen);
  memset(info, 0, sizeof(*info));
  info->forward = (natter_forward *)f;
  info->peer = f->peer;
  info->target = target;
  info->local_port = f->local_port;
  info->stats = current_stats(f);
}
