/* The SOCKS5 side of a "socks:" forward (socks_forward.h).
 *
 * The handshake reads no more than the codec asks for, so the bytes a
 * client sends after its request stay in the socket for the tunnel. Once
 * the tunnel owns the socket, a duplicate of it is kept until the peer
 * has answered: the SOCKS reply goes out on it, and a failed tunnel's
 * abortive close (a reset) cannot overtake that reply, since the socket
 * is closed gracefully on the duplicate, last. */
#include "client/socks_forward.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/budget.h"
#include "base/textfile.h"
#include "codec/socks.h"
#include "codec/spec.h"

typedef struct socks_conn {
  nt_socks_server *server;
  int fd;      /* the client: ours in the handshake, then a duplicate
                  kept until the reply is sent and the tunnel is gone */
  int waiting; /* counted in server->waiting */
  int replied;
  int answer; /* the listener's StreamOpenResult code, or -1 */
  nt_socks hs;
  struct event *read_ev, *timer;
  nt_tunnel *tunnel;
  TAILQ_ENTRY(socks_conn) link;
} socks_conn;

TAILQ_HEAD(socks_conns, socks_conn);

/* Log lines the clients can cause, one a second each. */
enum { LOG_FULL, LOG_TIMEOUT, LOG_HANDSHAKE, LOG_KINDS };

struct nt_socks_server {
  nt_socks_server_env env;
  char peer[NT_NAME_MAX + 1];
  int auth;
  char user[NT_SOCKS_MAX_CREDENTIAL + 1];
  char password[NT_SOCKS_MAX_CREDENTIAL + 1];
  size_t waiting;
  struct socks_conns conns;
  nt_log_gate logged[LOG_KINDS];
};

static void slog(nt_socks_server *s, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void slog(nt_socks_server *s, int kind, const char *fmt, ...) {
  char line[400];
  unsigned held;
  va_list ap;
  if (!nt_log_gate_pass(&s->logged[kind], nt_monotonic_ns(), &held)) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  nt_warn(s->env.log, "SOCKS on local port %u: %s%s", s->env.local_port, line,
          held ? " (and more like it)" : "");
}

static void stop_waiting(socks_conn *c) {
  if (c->waiting) {
    c->waiting = 0;
    c->server->waiting--;
  }
}

/* Closes our fd of the client: gracefully, even if the tunnel asked for
 * an abortive close on its own fd of the same socket. */
static void close_client(socks_conn *c) {
  if (c->fd >= 0) {
    struct linger lg = {0, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(c->fd);
    c->fd = -1;
  }
}

static void conn_free(socks_conn *c) {
  stop_waiting(c);
  TAILQ_REMOVE(&c->server->conns, c, link);
  if (c->read_ev) {
    event_free(c->read_ev);
  }
  if (c->timer) {
    event_free(c->timer);
  }
  close_client(c);
  free(c);
}

/* Sends a short reply; a fresh socket has room for it, so a short write
 * means the client is gone. */
static int send_reply(socks_conn *c, const uint8_t *reply, size_t len) {
  return send(c->fd, reply, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* ---- after the handshake: the tunnel ---- */

static void tunnel_event(nt_tunnel *t, natter_event_type type, int error,
                         int quiet, int exit_status, const char *message,
                         void *ud) {
  socks_conn *c = ud;
  nt_socks_server *s = c->server;
  uint8_t reply[NT_SOCKS_REPLY_MAX];

  if (!c->replied && (type == NATTER_EVENT_FORWARD_OPENED ||
                      type == NATTER_EVENT_FORWARD_FAILED)) {
    /* The listener's own code says more than |error|; without one (no
     * peer connection, a malformed answer) |error| is all there is. */
    uint8_t rep = type == NATTER_EVENT_FORWARD_OPENED ? NT_SOCKS_REP_OK
                  : c->answer >= 0 ? nt_socks_reply_for_open(c->answer)
                                   : nt_socks_reply_code(error);
    if (type == NATTER_EVENT_FORWARD_FAILED && rep == NT_SOCKS_REP_OK) {
      rep = NT_SOCKS_REP_FAILURE;
    }
    c->replied = 1;
    stop_waiting(c);
    send_reply(c, reply, nt_socks_reply(reply, rep));
    if (rep == NT_SOCKS_REP_OK) {
      close_client(c); /* the tunnel's fd carries on */
    } else {
      int v6 = strchr(c->hs.host, ':') != NULL;
      nt_info(s->env.log,
              "SOCKS on local port %u: %s%s%s:%u via %s failed: reply "
              "0x%02x (%s)",
              s->env.local_port, v6 ? "[" : "", c->hs.host, v6 ? "]" : "",
              c->hs.port, s->peer, rep,
              error == NATTER_ERR_RESOLVE ? "name not found"
                                          : nt_socks_reply_text(rep));
    }
  }
  s->env.callbacks->event(t, type, error, quiet, exit_status, message,
                          s->env.user_data);
}

static void tunnel_answer(nt_tunnel *t, int code, void *ud) {
  socks_conn *c = ud;
  (void)t;
  c->answer = code;
}

static void tunnel_gone(nt_tunnel *t, void *ud) {
  socks_conn *c = ud;
  nt_socks_server *s = c->server;
  c->tunnel = NULL;
  conn_free(c);
  s->env.callbacks->gone(t, s->env.user_data);
}

static const nt_tunnel_callbacks socks_tunnel_callbacks = {
    tunnel_event, tunnel_gone, tunnel_answer};

static void start_tunnel(socks_conn *c) {
  nt_socks_server *s = c->server;
  uint8_t reply[NT_SOCKS_REPLY_MAX];
  nt_peer *peer = nt_peers_get(s->env.peers, s->peer);
  int dup_fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);

  event_del(c->read_ev);
  event_del(c->timer);
  if (!peer || dup_fd < 0) {
    nt_warn(s->env.log, "SOCKS on local port %u: %s; a client was dropped",
            s->env.local_port, dup_fd < 0 ? strerror(errno) : "out of memory");
    send_reply(c, reply, nt_socks_reply(reply, NT_SOCKS_REP_FAILURE));
    if (dup_fd >= 0) {
      close(dup_fd);
    }
    conn_free(c);
    return;
  }
  nt_tunnel_target target = {
      .peer = s->peer,
      .host = c->hs.host,
      .port = c->hs.port,
      .argv = NULL,
      .err_fd = -1,
      .local_port = s->env.local_port,
      .stats = s->env.stats,
      .callbacks = &socks_tunnel_callbacks,
      .user_data = c,
  };
  /* The tunnel owns the client's fd from here on, even when it fails. */
  int fd = c->fd;
  c->fd = dup_fd;
  c->tunnel = nt_tunnel_new_outgoing(s->env.tunnels, &target, fd, fd);
  if (!c->tunnel) {
    nt_warn(s->env.log, "out of memory; a SOCKS client was dropped");
    send_reply(c, reply, nt_socks_reply(reply, NT_SOCKS_REP_FAILURE));
    conn_free(c);
    return;
  }
  s->env.stats->connections++;
  s->env.stats->active++;
  nt_debug(s->env.log, "SOCKS on local port %u: CONNECT %s port %u via %s",
           s->env.local_port, c->hs.host, c->hs.port, s->peer);
  nt_peer_submit(peer, nt_tunnel_waiter(c->tunnel));
}

/* ---- the handshake ---- */

static void read_cb(evutil_socket_t fd, short what, void *arg) {
  socks_conn *c = arg;
  nt_socks_server *s = c->server;
  (void)what;

  for (;;) {
    uint8_t buf[NT_SOCKS_MAX_MESSAGE], reply[NT_SOCKS_REPLY_MAX];
    size_t want = nt_socks_want(&c->hs), used, replylen;
    ssize_t n = recv(fd, buf, want, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return;
    }
    if (n <= 0) {
      nt_debug(s->env.log,
               "SOCKS on local port %u: a client left during its handshake",
               s->env.local_port);
      conn_free(c);
      return;
    }
    nt_socks_step step =
        nt_socks_feed(&c->hs, buf, (size_t)n, &used, reply, &replylen);
    if (replylen > 0 && send_reply(c, reply, replylen) != 0) {
      conn_free(c);
      return;
    }
    if (step == NT_SOCKS_FAIL) {
      slog(s, LOG_HANDSHAKE, "refused a client: %s", c->hs.error);
      conn_free(c);
      return;
    }
    if (step == NT_SOCKS_CONNECT) {
      start_tunnel(c);
      return;
    }
  }
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg) {
  socks_conn *c = arg;
  (void)fd;
  (void)what;
  slog(c->server, LOG_TIMEOUT,
       "closed a client that did not finish its handshake within %d s",
       NT_SOCKS_HANDSHAKE_TIMEOUT_S);
  conn_free(c);
}

void nt_socks_server_accept(nt_socks_server *s, int fd) {
  if (s->waiting >= NT_SOCKS_MAX_WAITING) {
    slog(s, LOG_FULL,
         "%zu clients are in their handshake or wait for %s's answer, the "
         "limit; closed a new one",
         s->waiting, s->peer);
    close(fd);
    return;
  }
  socks_conn *c = calloc(1, sizeof(*c));
  if (!c) {
    close(fd);
    return;
  }
  c->server = s;
  c->fd = fd;
  c->waiting = 1;
  c->answer = -1;
  s->waiting++;
  TAILQ_INSERT_TAIL(&s->conns, c, link);
  nt_socks_init(&c->hs, s->auth ? s->user : NULL, s->auth ? s->password : NULL);
  c->read_ev = event_new(s->env.base, fd, EV_READ | EV_PERSIST, read_cb, c);
  c->timer = evtimer_new(s->env.base, timeout_cb, c);
  if (!c->read_ev || !c->timer) {
    conn_free(c);
    return;
  }
  struct timeval tv = {NT_SOCKS_HANDSHAKE_TIMEOUT_S, 0};
  event_add(c->read_ev, NULL);
  evtimer_add(c->timer, &tv);
}

/* ---- the server ---- */

static int load_credentials(nt_socks_server *s, const char *path, char *err,
                            size_t errlen) {
  char *text = NULL, why[200];
  size_t len = 0;
  struct stat st;
  int rv =
      nt_textfile_read(path, "SOCKS credentials file", NT_SOCKS_AUTH_FILE_MAX,
                       &text, &len, &st, err, errlen);
  if (rv == 1) {
    snprintf(err, errlen, "SOCKS credentials file %s does not exist", path);
    return NATTER_ERR_INVALID;
  }
  if (rv != 0) {
    return NATTER_ERR_INVALID;
  }
  if (st.st_mode & 077) {
    snprintf(err, errlen,
             "SOCKS credentials file %s is open to other users (mode %03o): "
             "chmod 600 %s",
             path, (unsigned)(st.st_mode & 0777), path);
    rv = NATTER_ERR_INVALID;
  } else if (nt_socks_credentials_parse(text, len, s->user, s->password, why,
                                        sizeof(why)) != 0) {
    snprintf(err, errlen, "SOCKS credentials file %s: %s", path, why);
    rv = NATTER_ERR_INVALID;
  }
  explicit_bzero(text, len);
  free(text);
  s->auth = rv == 0;
  return rv;
}

int nt_socks_server_new(nt_socks_server **pserver,
                        const nt_socks_server_env *env, const char *auth_file,
                        int loopback, char *err, size_t errlen) {
  nt_socks_server *s;
  *pserver = NULL;
  if (!loopback && (!auth_file || !auth_file[0])) {
    snprintf(err, errlen,
             "a SOCKS forward bound to an address other than loopback "
             "must require a password: give it a credentials file "
             "(socks-auth FILE, one line USER:PASSWORD)");
    return NATTER_ERR_INVALID;
  }
  s = calloc(1, sizeof(*s));
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  s->env = *env;
  snprintf(s->peer, sizeof(s->peer), "%s", env->peer);
  s->env.peer = s->peer;
  TAILQ_INIT(&s->conns);
  if (auth_file && auth_file[0]) {
    int rv = load_credentials(s, auth_file, err, errlen);
    if (rv != 0) {
      explicit_bzero(s, sizeof(*s));
      free(s);
      return rv;
    }
  }
  *pserver = s;
  return 0;
}

void nt_socks_server_free(nt_socks_server *s) {
  socks_conn *c;
  if (!s) {
    return;
  }
  while ((c = TAILQ_FIRST(&s->conns))) {
    if (c->tunnel) {
      /* No callbacks from here on: "gone" will not free |c|. */
      nt_tunnel_detach_owner(s->env.tunnels->all, c);
      c->tunnel = NULL;
    }
    conn_free(c);
  }
  explicit_bzero(s->password, sizeof(s->password));
  free(s);
}
