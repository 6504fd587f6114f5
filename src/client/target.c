#include "client/target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/addr.h"
#include "codec/spec.h"
#include "trust/tls.h"

struct nt_target {
  nt_target_env env;
  char peer[NT_NAME_MAX + 1];
  uint8_t peer_key[NT_FINGERPRINT_LEN];
  int have_key;
  char host[NT_HOST_MAX + 1];
  uint16_t port;
  nt_target_done_fn done;
  void *user_data;
  struct evdns_getaddrinfo_request *dns_req;
  int fd;
  struct event *connect_ev, *timer;
  int resolved; /* |host| is a name, resolved to the address connected */
};

static void target_free(nt_target *t) {
  if (t->dns_req) {
    evdns_getaddrinfo_cancel(t->dns_req);
  }
  if (t->connect_ev) {
    event_free(t->connect_ev);
  }
  if (t->timer) {
    event_free(t->timer);
  }
  if (t->fd >= 0) {
    close(t->fd);
  }
  free(t);
}

/* Reports the outcome and frees the attempt. */
static void finish(nt_target *t, nt_open_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(nt_target *t, nt_open_code code, const char *fmt, ...) {
  nt_target_result r;
  va_list ap;
  r.code = code;
  r.fd = -1;
  va_start(ap, fmt);
  vsnprintf(r.message, sizeof(r.message), fmt, ap);
  va_end(ap);
  if (code == NT_OPEN_OK) {
    r.fd = t->fd;
    t->fd = -1;
  }
  nt_target_done_fn done = t->done;
  void *ud = t->user_data;
  target_free(t);
  done(&r, ud);
}

static void connect_done(nt_target *t, int soerr) {
  if (soerr == 0) {
    finish(t, NT_OPEN_OK, "%s", "");
  } else if (soerr == ENETUNREACH) {
    finish(t, NT_OPEN_NET_UNREACHABLE,
           "network unreachable: %s has no route to %.80s", t->env.self_name,
           t->host);
  } else if (soerr == ECONNREFUSED) {
    finish(t, NT_OPEN_REFUSED,
           "connection refused by %.80s:%u on %s: nothing listens there",
           t->host, t->port, t->env.self_name);
  } else {
    finish(t, soerr == ETIMEDOUT ? NT_OPEN_TIMEOUT : NT_OPEN_UNREACHABLE,
           "cannot connect to %.80s:%u on %s: %s", t->host, t->port,
           t->env.self_name, strerror(soerr));
  }
}

static void connect_cb(evutil_socket_t fd, short what, void *arg) {
  nt_target *t = arg;
  int soerr = 0;
  socklen_t len = sizeof(soerr);
  if (what & EV_TIMEOUT) {
    connect_done(t, ETIMEDOUT);
    return;
  }
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
  connect_done(t, soerr);
}

static void connect_to(nt_target *t, const struct sockaddr *sa,
                       socklen_t salen) {
  nt_access_peer peer = {t->peer, t->have_key ? t->peer_key : NULL};
  /* The rules see the address about to be connected, so that a range
   * rule holds whatever a name resolved to (access.h). */
  if (!nt_addr_is_loopback(sa) &&
      !nt_access_target_allowed_at(t->env.access, &peer, t->host, t->port,
                                   sa)) {
    char target[100]; /* as a rule writes it: an IPv6 host in brackets */
    char resolved[INET6_ADDRSTRLEN + 20] = "";
    char addr[INET6_ADDRSTRLEN];
    int v6 = strchr(t->host, ':') != NULL;
    snprintf(target, sizeof(target), "%s%.80s%s:%u", v6 ? "[" : "", t->host,
             v6 ? "]" : "", t->port);
    if (t->resolved &&
        inet_ntop(
            sa->sa_family,
            sa->sa_family == AF_INET
                ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr,
            addr, sizeof(addr))) {
      snprintf(resolved, sizeof(resolved), " (resolved to %s)", addr);
    }
    if (nt_access_has_target_rules(t->env.access)) {
      finish(t, NT_OPEN_DENIED,
             "%s's -allow rules do not include %s%s for %s; add -allow %s "
             "(or -allow %s=%s) there to permit it",
             t->env.self_name, target, resolved, t->peer, target, t->peer,
             target);
    } else {
      finish(t, NT_OPEN_DENIED,
             "%s allows only its own loopback by default; to reach %s, "
             "start %s with -allow %s",
             t->env.self_name, target, t->env.self_name, target);
    }
    return;
  }
  t->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (t->fd < 0) {
    int e = errno;
    finish(t, NT_OPEN_INTERNAL, "cannot create a socket on %s: %s%s",
           t->env.self_name, strerror(e),
           e == EMFILE || e == ENFILE
               ? " (out of file descriptors: raise its limit, ulimit -n or "
                 "systemd LimitNOFILE=, or lower its -max-streams)"
               : "");
    return;
  }
  if (connect(t->fd, sa, salen) == 0) {
    connect_done(t, 0);
    return;
  }
  if (errno != EINPROGRESS) {
    connect_done(t, errno);
    return;
  }
  struct timeval tv = {NT_TARGET_CONNECT_TIMEOUT_S, 0};
  t->connect_ev =
      event_new(t->env.base, t->fd, EV_WRITE | EV_TIMEOUT, connect_cb, t);
  if (!t->connect_ev) {
    finish(t, NT_OPEN_INTERNAL, "out of memory");
    return;
  }
  event_add(t->connect_ev, &tv);
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg) {
  nt_target *t = arg;
  t->dns_req = NULL;
  if (result == EVUTIL_EAI_CANCEL) {
    return;
  }
  if (result != 0 || !res) {
    if (res) {
      evutil_freeaddrinfo(res);
    }
    /* "No such name" is the name's fault, not the network's: the opener
     * (a SOCKS client, say) is told so apart. */
    if (result == EVUTIL_EAI_NONAME || result == EVUTIL_EAI_NODATA ||
        result == 0) {
      finish(t, NT_OPEN_NAME_NOT_FOUND,
             "name not found: %.80s does not resolve on %s", t->host,
             t->env.self_name);
    } else {
      finish(t, NT_OPEN_UNREACHABLE, "cannot resolve %.80s on %s: %s", t->host,
             t->env.self_name, evutil_gai_strerror(result));
    }
    return;
  }
  t->resolved = 1;
  struct sockaddr_storage ss;
  socklen_t sslen = (socklen_t)res->ai_addrlen;
  memcpy(&ss, res->ai_addr, sslen);
  evutil_freeaddrinfo(res);
  connect_to(t, (struct sockaddr *)&ss, sslen);
}

void nt_target_connect(nt_target **ptarget, const nt_target_env *env,
                       const nt_access_peer *peer, const char *host,
                       uint16_t port, nt_target_done_fn done, void *user_data) {
  nt_target *t = calloc(1, sizeof(*t));
  *ptarget = NULL;
  if (!t) {
    nt_target_result r = {NT_OPEN_INTERNAL, "out of memory", -1};
    done(&r, user_data);
    return;
  }
  t->env = *env;
  t->fd = -1;
  if (peer && peer->name) {
    snprintf(t->peer, sizeof(t->peer), "%s", peer->name);
  }
  if (peer && peer->key) {
    memcpy(t->peer_key, peer->key, NT_FINGERPRINT_LEN);
    t->have_key = 1;
  }
  t->done = done;
  t->user_data = user_data;
  snprintf(t->host, sizeof(t->host), "%s", host[0] ? host : "127.0.0.1");
  t->port = port;

  /* Numeric addresses and localhost need no resolver. */
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  struct sockaddr_in *in = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  int localhost = strcasecmp(t->host, "localhost") == 0;
  if (localhost || inet_pton(AF_INET, t->host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    if (localhost) {
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    in->sin_port = htons(t->port);
    *ptarget = t;
    connect_to(t, (struct sockaddr *)in, sizeof(*in));
    return;
  }
  if (inet_pton(AF_INET6, t->host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(t->port);
    *ptarget = t;
    connect_to(t, (struct sockaddr *)in6, sizeof(*in6));
    return;
  }
  struct evutil_addrinfo hints;
  char portstr[8];
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(portstr, sizeof(portstr), "%u", t->port);
  *ptarget = t;
  /* NULL: answered already, and |t| may be gone with it. */
  struct evdns_getaddrinfo_request *req =
      evdns_getaddrinfo(env->dns, t->host, portstr, &hints, dns_cb, t);
  if (req) {
    t->dns_req = req;
  }
}

void nt_target_cancel(nt_target *target) {
  if (target) {
    target_free(target);
  }
}

nt_open_code nt_target_spawn(const nt_target_env *env,
                             const nt_access_peer *peer, char *const *argv,
                             size_t argc, nt_child *child,
                             nt_target_result *r) {
  char err[300];
  r->fd = -1;
  r->message[0] = '\0';
  if (!nt_access_command_allowed(env->access, peer, (const char *const *)argv,
                                 argc)) {
    if (nt_access_has_command_rules(env->access)) {
      snprintf(r->message, sizeof(r->message),
               "remote command \"%.100s%s\" is not allowed on %s (it may "
               "run only the command lines -allow-command lists, whole or "
               "as a prefix ending in *)",
               argv[0], argc > 1 ? " ..." : "", env->self_name);
    } else {
      snprintf(r->message, sizeof(r->message),
               "remote commands are not allowed on %s (start it with "
               "-allow-command 'COMMAND LINE')",
               env->self_name);
    }
    return r->code = NT_OPEN_DENIED;
  }
  if (nt_child_spawn(child, argv, err, sizeof(err)) != 0) {
    snprintf(r->message, sizeof(r->message), "%s on %s", err, env->self_name);
    return r->code = NT_OPEN_UNREACHABLE;
  }
  return r->code = NT_OPEN_OK;
}
