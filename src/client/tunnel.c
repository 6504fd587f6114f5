/* One forwarded connection <-> one bidirectional QUIC stream.
 *
 * The local end is a TCP socket, an fd pair (stdin/stdout), or on the
 * listener a command's pipes. The opener sends StreamOpen and waits for
 * StreamOpenResult before it reads local input; the listener checks its
 * rules, connects (or spawns), and answers. Then bytes flow both ways with
 * backpressure: local input is read only while the stream has send room,
 * and stream bytes are consumed (flow-control credit returned to the peer)
 * only once written locally. FIN maps to FIN, reset to reset.
 *
 * A command's stream carries frames from listener to opener (cmdframe.h),
 * so that stderr and the exit status reach the opener. */
#include "client/tunnel.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/child.h"
#include "client/udp.h"
#include "codec/cmdframe.h"
#include "codec/stream_header.h"
#include "codec/wire.h"
#include "quic/sendbuf.h"
#ifdef NATTER_HOSTILE_PEER
#include "hostile.h" /* tests/hostile: test builds only */
#endif

#define TUNNEL_READ_MAX (256 * 1024)
/* Stream data at least this large goes to a local socket at once (behind
 * what is queued, in the same sendmsg) instead of being gathered for one
 * write per read batch. */
#define TUNNEL_DIRECT_MIN (16 * 1024)
/* iovecs per local sendmsg: the whole queue (at most the stream's receive
 * window, which ngtcp2 grows to 4 MiB: 65 chunks of NT_CHUNK_SIZE) and the
 * data in hand. */
#define TUNNEL_WRITE_IOV 72

typedef enum tunnel_state {
  T_WAIT_PEER,   /* opener: local connection waits for the peer */
  T_WAIT_RESULT, /* opener: StreamOpen sent */
  T_WAIT_OPEN,   /* listener: waiting for StreamOpen */
  T_REFUSED,     /* listener: refused; waits for the opener to reset */
  T_CONNECTING,  /* listener: reaching the target (target.c) */
  T_OPEN,        /* bytes flow */
  T_DONE         /* finished; freed from the loop */
} tunnel_state;

/* How a local fd is waited on: sockets, pipes and ttys with the event
 * loop; regular files (stdin redirected from a file) are always ready and
 * epoll refuses them. */
typedef struct local_fd {
  int fd;
  int is_socket;
  int always_ready;
  int restore_flags; /* original O_* flags to put back, or -1 */
} local_fd;

struct nt_tunnel {
  const nt_tunnel_env *env;
  nt_tunnel_target target; /* opener: what and where; strings below */
  nt_peer_waiter waiter;   /* opener: queued for the peer connection */
  tunnel_state state;
  int opener;
  local_fd in, out;
  int err_fd;          /* opener: where the remote stderr goes */
  nt_stream *stream;
  struct event *read_ev, *write_ev, *free_ev;
  /* Stream bytes the local end did not take yet, in chunks of the
   * endpoint's pool (the same memory again and again, however often the
   * queue fills and drains). Bounded by the stream's receive window: bytes
   * are consumed (credit returned to the peer) only once written, so a
   * slow local end slows the peer instead of growing this queue. */
  nt_sendbuf to_local;
  int out_waiting; /* a local write came up short: write_ev waits for room */
  nt_wire_reader *reader;    /* only until the header exchange is done */
  nt_target *connecting;     /* listener: reaching host:port */
  int in_done;      /* local input reached EOF (or is not read any more) */
  int stream_fin;   /* FIN from the peer seen */
  int out_shut;     /* local output closed after the peer's FIN */
  int failed;       /* a FORWARD_FAILED was reported */
  int draining;     /* stream done cleanly; writing out what is queued */
  int quiet;        /* failure already logged by the peer: log at debug */

  /* remote commands */
  int command;          /* this stream runs a command (framed downstream) */
  nt_child child;       /* listener */
  int have_child;
  struct event *stderr_ev, *exit_ev;
  int stdout_eof, stderr_eof, child_exited, child_status, exit_sent;
  nt_cmdframe_decoder frames; /* opener: the listener's output frames */
  int exit_status; /* opener: received status, -1 until then */

  char peer[NT_NAME_MAX + 1];
  uint8_t peer_key[NT_FINGERPRINT_LEN]; /* listener: as TLS verified it */
  int have_peer_key;
  char host[NT_HOST_MAX + 1];
  uint16_t port;
  TAILQ_ENTRY(nt_tunnel) link; /* env->all */
};

static void tunnel_stream_recv(nt_stream *s, const uint8_t *data, size_t len,
                               int fin, void *ud);
static size_t queued(const nt_tunnel *t);
static void tunnel_stream_room(nt_stream *s, void *ud);
static void tunnel_stream_closed(nt_stream *s, int reset, uint64_t code,
                                 void *ud);
static void pump_input(nt_tunnel *t);

static const nt_stream_callbacks tunnel_stream_callbacks = {
    tunnel_stream_recv, tunnel_stream_room, tunnel_stream_closed};
static const nt_stream_callbacks no_callbacks = {NULL, NULL, NULL};

nt_peer_waiter *nt_tunnel_waiter(nt_tunnel *t) {
  return &t->waiter;
}

size_t nt_tunnel_count_for_peer(const struct nt_tunnel_list *all,
                                const char *peer) {
  const nt_tunnel *t;
  size_t n = 0;
  TAILQ_FOREACH(t, all, link) {
    n += t->stream && strcmp(t->peer, peer) == 0;
  }
  return n;
}

/* ---- local fds ---- */

static void local_fd_init(local_fd *l, int fd) {
  struct stat st;
  l->fd = fd;
  l->is_socket = 0;
  l->always_ready = 0;
  l->restore_flags = -1;
  if (fd < 0 || fstat(fd, &st) != 0) {
    return;
  }
  l->is_socket = S_ISSOCK(st.st_mode);
  /* epoll takes sockets, pipes and ttys; files and devices like /dev/null
   * are never "not ready", so they are simply read and written. */
  l->always_ready =
      !S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode) && !isatty(fd);
  /* Non-blocking only where it is ours to change: sockets and pipes. A
   * tty's flags are shared with the shell, so it stays as it is. */
  if (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode)) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) {
      l->restore_flags = flags;
      fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
  }
}

static void local_fd_close(local_fd *l) {
  if (l->fd < 0) {
    return;
  }
  if (l->restore_flags >= 0) {
    fcntl(l->fd, F_SETFL, l->restore_flags);
  }
  close(l->fd);
  l->fd = -1;
}

static void arm_read(nt_tunnel *t) {
  if (t->in.always_ready) {
    event_active(t->read_ev, EV_READ, 0);
  } else {
    event_add(t->read_ev, NULL);
  }
}

/* ---- lifetime ---- */

/* The header exchange is over (or the tunnel is): its reader goes. */
static void drop_reader(nt_tunnel *t) {
  if (t->reader) {
    nt_wire_reader_reset(t->reader);
    free(t->reader);
    t->reader = NULL;
  }
}

static void release(nt_tunnel *t) {
  TAILQ_REMOVE(t->env->all, t, link);
  if (t->target.callbacks && t->target.callbacks->gone) {
    t->target.callbacks->gone(t, t->target.user_data);
  }
  nt_peer_waiter_cancel(&t->waiter);
  nt_target_cancel(t->connecting);
  struct event *evs[] = {t->read_ev, t->free_ev, t->write_ev, t->stderr_ev,
                         t->exit_ev};
  for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
    if (evs[i]) {
      event_free(evs[i]);
    }
  }
  nt_sendbuf_free(&t->to_local);
  if (t->have_child) {
    /* The child's pipes are in/out: nt_child_destroy closes them. */
    if (t->in.fd == t->child.stdout_fd) {
      t->in.fd = -1;
    }
    if (t->out.fd == t->child.stdin_fd) {
      t->out.fd = -1;
    }
    nt_child_destroy(&t->child);
  }
  if (t->out.fd == t->in.fd) {
    t->out.fd = -1;
  }
  local_fd_close(&t->in);
  local_fd_close(&t->out);
  drop_reader(t);
  free(t);
}

static void free_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  release(arg);
}

static void describe(const nt_tunnel *t, char *out, size_t outlen) {
  if (t->command) {
    snprintf(out, outlen, "%s: (command)", t->peer);
  } else if (strchr(t->host, ':')) {
    snprintf(out, outlen, "%s:[%s]:%u", t->peer, t->host, t->port);
  } else if (t->host[0]) {
    snprintf(out, outlen, "%s:%s:%u", t->peer, t->host, t->port);
  } else {
    snprintf(out, outlen, "%s:%u", t->peer, t->port);
  }
}

static void local_name(const nt_tunnel *t, char *out, size_t outlen) {
  if (t->target.local_port) {
    snprintf(out, outlen, "local port %u", t->target.local_port);
  } else {
    snprintf(out, outlen, "stdin/stdout");
  }
}

static void report(nt_tunnel *t, natter_event_type type, int error,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Reports an event about this tunnel's forward (opener side only). */
static void report(nt_tunnel *t, natter_event_type type, int error,
                   const char *fmt, ...) {
  char msg[1300], where[32], what[NT_NAME_MAX + NT_HOST_MAX + 16];
  va_list ap;

  if (!t->opener) {
    return;
  }
  if (type == NATTER_EVENT_FORWARD_FAILED) {
    if (t->failed) {
      return;
    }
    t->failed = 1;
  }
  if (!t->target.callbacks) {
    return; /* the owner is gone */
  }
  char line[sizeof(msg) + sizeof(where) + sizeof(what) + 8];
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  local_name(t, where, sizeof(where));
  describe(t, what, sizeof(what));
  snprintf(line, sizeof(line), "%s -> %s: %s", where, what, msg);
  t->target.callbacks->event(
      t, type, error, t->quiet,
      type == NATTER_EVENT_FORWARD_CLOSED ? t->exit_status : -1, line,
      t->target.user_data);
}

/* Ends the tunnel: a reset when |abort|, so the far end sees an abort
 * rather than a clean end it might mistake for complete data. Freed from
 * the loop, never from inside one of its own callbacks. */
static void tunnel_end(nt_tunnel *t, int abort) {
  if (t->state == T_DONE) {
    return;
  }
  t->state = T_DONE;
  if (t->stream) {
    /* Queued bytes are dropped: return their flow-control credit. */
    nt_stream_consume(t->stream, queued(t));
    nt_stream_set_callbacks(t->stream, &no_callbacks, NULL);
    if (abort) {
      nt_stream_reset(t->stream, NT_OPEN_INTERNAL);
    }
    t->stream = NULL;
  }
  if (abort && t->in.fd >= 0 && t->in.is_socket) {
    struct linger lg = {1, 0};
    setsockopt(t->in.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  struct event *evs[] = {t->read_ev, t->write_ev, t->stderr_ev, t->exit_ev};
  for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
    if (evs[i]) {
      event_del(evs[i]);
    }
  }
  event_active(t->free_ev, EV_TIMEOUT, 0);
}

/* ---- local input -> stream ---- */

static void send_frame(nt_tunnel *t, nt_cmdframe_channel channel,
                       const uint8_t *data, size_t len) {
  uint8_t hdr[NT_CMDFRAME_HDR];
  nt_cmdframe_header(hdr, channel, len);
  if (nt_stream_write(t->stream, hdr, sizeof(hdr)) != 0 ||
      (len && nt_stream_write(t->stream, data, len) != 0)) {
    tunnel_end(t, 1);
  }
}

/* Listener of a command: once stdout and stderr hit EOF and the process
 * exited, the status goes out and the stream ends. */
static void maybe_send_exit(nt_tunnel *t) {
  if (!t->have_child || t->exit_sent || !t->stdout_eof || !t->stderr_eof ||
      !t->child_exited || !t->stream) {
    return;
  }
  uint8_t frame[NT_CMDFRAME_HDR + NT_CMDFRAME_EXIT_LEN];
  nt_cmdframe_exit(frame, t->child_status);
  t->exit_sent = 1;
  if (nt_stream_write(t->stream, frame, sizeof(frame)) != 0) {
    tunnel_end(t, 1);
    return;
  }
  if (t->stream) {
    nt_stream_shutdown_write(t->stream);
  }
}

/* Reads one framed chunk from a command's pipe; returns bytes read, 0 at
 * EOF, -1 with errno. */
static ssize_t read_framed(nt_tunnel *t, int fd, nt_cmdframe_channel channel,
                           size_t room) {
  uint8_t buf[NT_CMDFRAME_MAX];
  size_t max = room > NT_CMDFRAME_HDR ? room - NT_CMDFRAME_HDR : 0;
  if (max > sizeof(buf)) {
    max = sizeof(buf);
  }
  if (max == 0) {
    errno = EAGAIN;
    return -1;
  }
  ssize_t n = read(fd, buf, max);
  if (n > 0) {
    send_frame(t, channel, buf, (size_t)n);
  }
  return n;
}

static void pump_input(nt_tunnel *t) {
  if (t->state != T_OPEN || !t->stream || t->in_done) {
    return;
  }
  size_t room = nt_stream_send_room(t->stream);
  if (room == 0) {
    event_del(t->read_ev); /* tunnel_stream_room re-arms */
    return;
  }
  if (room > TUNNEL_READ_MAX) {
    room = TUNNEL_READ_MAX;
  }
  ssize_t n = t->have_child
                  ? read_framed(t, t->in.fd, NT_CMDFRAME_STDOUT, room)
                  : nt_stream_read_fd(t->stream, t->in.fd, room);
  if (n > 0) {
    if (t->target.stats) {
      t->target.stats->bytes_sent += (uint64_t)n;
    }
    if (t->in.always_ready) {
      arm_read(t);
    }
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    return;
  }
  event_del(t->read_ev);
  t->in_done = 1;
  if (n < 0 && t->in.is_socket) {
    tunnel_end(t, 1); /* ECONNRESET and friends: the peer sees a reset */
    return;
  }
  if (t->have_child) {
    t->stdout_eof = 1;
    maybe_send_exit(t);
  } else {
    nt_stream_shutdown_write(t->stream); /* EOF travels as FIN */
  }
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pump_input(arg);
}

static void stderr_cb(evutil_socket_t fd, short what, void *arg) {
  nt_tunnel *t = arg;
  (void)what;
  if (t->state != T_OPEN || !t->stream) {
    return;
  }
  size_t room = nt_stream_send_room(t->stream);
  /* stderr is small and must not stall stdout: it may exceed the window by
   * one frame. */
  ssize_t n = read_framed(t, fd, NT_CMDFRAME_STDERR, room > 4096 ? room : 4096);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
    return;
  }
  event_del(t->stderr_ev);
  t->stderr_eof = 1;
  maybe_send_exit(t);
}

static void exit_cb(evutil_socket_t fd, short what, void *arg) {
  nt_tunnel *t = arg;
  (void)fd;
  (void)what;
  int pid = (int)t->child.pid; /* reaping forgets it */
  if (nt_child_reap(&t->child, &t->child_status)) {
    event_del(t->exit_ev);
    t->child_exited = 1;
    /* The moment it stops counting against -max-commands. */
    nt_info(t->env->log, "%s's command (pid %d) ended: status %d", t->peer,
            pid, t->child_status);
    maybe_send_exit(t);
  }
}

static void tunnel_stream_room(nt_stream *s, void *ud) {
  nt_tunnel *t = ud;
  (void)s;
  if (t->state == T_OPEN && !t->in_done) {
    arm_read(t);
  }
}

/* ---- stream -> local output ---- */

static void shut_output_if_drained(nt_tunnel *t) {
  if (!t->stream_fin || t->out_shut || queued(t)) {
    return;
  }
  t->out_shut = 1;
  if (t->out.fd < 0) {
    return;
  }
  if (t->out.is_socket) {
    shutdown(t->out.fd, SHUT_WR);
  } else if (t->out.fd != t->in.fd) {
    /* A pipe or file: closing it is how its reader learns of the end. */
    if (t->have_child && t->out.fd == t->child.stdin_fd) {
      t->child.stdin_fd = -1;
    }
    local_fd_close(&t->out);
  }
}

/* The command stopped reading its stdin (or exited): what the opener still
 * sends is dropped, not an error; its output and status still travel. */
static void stop_child_input(nt_tunnel *t) {
  nt_sendbuf_drop_front(&t->to_local, queued(t));
  event_del(t->write_ev);
  t->out_shut = 1;
  if (t->out.fd >= 0 && t->out.fd == t->child.stdin_fd) {
    t->child.stdin_fd = -1;
    local_fd_close(&t->out);
  }
}

/* After a clean stream end: once everything queued is written, close. */
static void finish_if_drained(nt_tunnel *t) {
  if (!t->draining || queued(t) > 0) {
    return;
  }
  shut_output_if_drained(t);
  report(t, NATTER_EVENT_FORWARD_CLOSED, 0, "closed");
  tunnel_end(t, 0);
}

static ssize_t write_local(nt_tunnel *t, const uint8_t *data, size_t len) {
  if (t->out.is_socket) {
    return send(t->out.fd, data, len, MSG_NOSIGNAL);
  }
  return write(t->out.fd, data, len);
}

static size_t queued(const nt_tunnel *t) {
  return (size_t)nt_sendbuf_held(&t->to_local);
}

/* Ends the tunnel over bytes in hand that go nowhere: their credit goes
 * back (tunnel_end returns the queue's). */
static void end_dropping(nt_tunnel *t, size_t len) {
  if (t->stream) {
    nt_stream_consume(t->stream, len);
  }
  tunnel_end(t, 1);
}

/* Queues what the local end did not take. A failed allocation (out of
 * memory) ends the tunnel: the bytes cannot be kept. */
static int enqueue(nt_tunnel *t, const uint8_t *data, size_t len) {
  size_t before = queued(t);
  if (len > 0 && nt_sendbuf_append_bulk(&t->to_local, data, len) != 0) {
    /* What did go in is in the queue, whose credit tunnel_end returns. */
    end_dropping(t, len - (queued(t) - before));
    return -1;
  }
  return 0;
}

/* Waits for the local fd to take more. */
static void wait_writable(nt_tunnel *t) {
  t->out_waiting = 1;
  event_add(t->write_ev, NULL);
}

/* The local end took |n| of what was queued and then of |len| bytes in
 * hand: those are consumed; the rest of the data in hand is queued. Returns
 * -1 when the tunnel ended. */
static int wrote(nt_tunnel *t, size_t n, const uint8_t *data, size_t len) {
  size_t from_queue = n < queued(t) ? n : queued(t);
  nt_sendbuf_drop_front(&t->to_local, from_queue);
  if (t->stream) {
    nt_stream_consume(t->stream, n);
  }
  n -= from_queue;
  return enqueue(t, data + n, len - n);
}

/* Writes the queue and then |data| to the local end, as far as it takes
 * them now; what it does not take stays queued for write_cb. One sendmsg
 * for a socket: queued bytes and a packet's payload in one call, with no
 * copy of the payload unless the socket is full. Returns -1 when the
 * tunnel ended. */
static int write_out(nt_tunnel *t, const uint8_t *data, size_t len) {
  struct iovec iov[TUNNEL_WRITE_IOV];
  size_t nv = 0, total = len;
  ssize_t n;

  if (t->out.is_socket) {
    nv = nt_sendbuf_unsent_iov(&t->to_local, iov,
                               len ? TUNNEL_WRITE_IOV - 1 : TUNNEL_WRITE_IOV);
    for (size_t i = 0; i < nv; i++) {
      total += iov[i].iov_len;
    }
    if (len) {
      iov[nv].iov_base = (void *)data;
      iov[nv++].iov_len = len;
    }
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = nv;
    do {
      n = sendmsg(t->out.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
  } else {
    /* A pipe or file: the head of the queue, or the data when none. */
    if (nt_sendbuf_unsent_iov(&t->to_local, iov, 1) == 0) {
      iov[0].iov_base = (void *)data;
      iov[0].iov_len = len;
    }
    total = iov[0].iov_len;
    do {
      n = write_local(t, iov[0].iov_base, iov[0].iov_len);
    } while (n < 0 && errno == EINTR);
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (enqueue(t, data, len) != 0) {
        return -1;
      }
      wait_writable(t);
      return 0;
    }
    if (errno == EPIPE && t->have_child) {
      /* The command stopped reading: its input is dropped (consumed). */
      if (t->stream) {
        nt_stream_consume(t->stream, queued(t) + len);
      }
      stop_child_input(t);
      finish_if_drained(t);
      return 0;
    }
    end_dropping(t, len);
    return -1;
  }
  if (!t->out.is_socket && queued(t) > 0) {
    /* Wrote part of the queue: the data in hand goes behind it. */
    nt_sendbuf_drop_front(&t->to_local, (size_t)n);
    if (t->stream) {
      nt_stream_consume(t->stream, (size_t)n);
    }
    if (enqueue(t, data, len) != 0) {
      return -1;
    }
  } else if (wrote(t, (size_t)n, data, len) != 0) {
    return -1;
  }
  if ((size_t)n < total && !t->out.always_ready) {
    wait_writable(t); /* a short write: the fd is full */
  } else if (queued(t) > 0) {
    event_active(t->write_ev, EV_WRITE, 0); /* files: the next piece */
  }
  return 0;
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
  nt_tunnel *t = arg;
  (void)fd;
  (void)what;
  t->out_waiting = 0;
  if (queued(t) == 0) {
    event_del(t->write_ev); /* written already, behind a direct write */
    return;
  }
  if (write_out(t, NULL, 0) != 0 || t->state == T_DONE) {
    return;
  }
  if (queued(t) == 0) {
    event_del(t->write_ev);
    t->out_waiting = 0;
    shut_output_if_drained(t);
    finish_if_drained(t);
  }
}

/* Hands payload bytes to the local end: written at once when the local
 * end has room (behind what is queued, in the same call), else queued.
 * Small pieces (a path's MTU worth) are gathered and written once this
 * loop pass's datagrams are all read: one sendmsg per batch instead of one
 * send per QUIC packet. Bytes are consumed (credit returned) only once
 * written. */
static void deliver(nt_tunnel *t, const uint8_t *data, size_t len) {
  if (len == 0) {
    return;
  }
  if (t->target.stats) {
    t->target.stats->bytes_received += len;
  }
  if (t->out.fd < 0 || t->out_shut) {
    nt_stream_consume(t->stream, len); /* nowhere to go: discard */
    return;
  }
  if (t->out_waiting) {
    enqueue(t, data, len); /* write_cb runs when the fd has room */
    return;
  }
  if (t->out.is_socket && len < TUNNEL_DIRECT_MIN) {
    int was_empty = queued(t) == 0;
    if (enqueue(t, data, len) == 0 && was_empty) {
      event_active(t->write_ev, EV_WRITE, 0);
    }
    return;
  }
  write_out(t, data, len);
}

static void write_stderr(nt_tunnel *t, const uint8_t *data, size_t len) {
  while (t->err_fd >= 0 && len > 0) {
    ssize_t n = write(t->err_fd, data, len);
    if (n <= 0) {
      break; /* stderr is best effort: never stall the stream on it */
    }
    data += n;
    len -= (size_t)n;
  }
}

/* A command stream that broke the frame protocol: say so, naming the
 * peer, and reset it. */
static void frame_error(nt_tunnel *t, const char *why) {
  report(t, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_PROTOCOL,
         "protocol error from %s: %s", t->peer, why);
  tunnel_end(t, 1);
}

/* Opener side of a command stream: splits frames into stdout, stderr and
 * the exit status. */
static void recv_frames(nt_tunnel *t, const uint8_t *data, size_t len) {
  while (len > 0 && t->state == T_OPEN) {
    nt_cmdframe_event ev;
    size_t used;
    nt_cmdframe_result rv =
        nt_cmdframe_decode(&t->frames, data, len, &used, &ev);
    if (rv == NT_CMDFRAME_ERROR) {
      nt_stream_consume(t->stream, len); /* dropped: credit goes back */
      frame_error(t, ev.error);
      return;
    }
    data += used;
    len -= used;
    if (rv == NT_CMDFRAME_DATA && ev.channel == NT_CMDFRAME_STDOUT) {
      /* Headers are consumed here; the payload once written locally. */
      nt_stream_consume(t->stream, used - ev.len);
      deliver(t, ev.data, ev.len);
      continue;
    }
    nt_stream_consume(t->stream, used);
    if (rv == NT_CMDFRAME_DATA) {
      write_stderr(t, ev.data, ev.len);
    } else if (rv == NT_CMDFRAME_EXITED) {
      t->exit_status = ev.exit_status;
      /* The command is gone: like ssh, stop sending it input, so the
       * session ends now rather than at our stdin's EOF. */
      if (!t->in_done) {
        t->in_done = 1;
        event_del(t->read_ev);
        nt_stream_shutdown_write(t->stream);
      }
    }
  }
}

/* ---- header exchange ---- */

static void send_result(nt_tunnel *t, nt_open_code code, const char *msg) {
  uint8_t buf[NT_STREAM_HEADER_MAX];
  size_t n = nt_open_result_encode(buf, code, msg);
  if (n == 0 || nt_stream_write(t->stream, buf, n) != 0) {
    nt_debug(t->env->log, "cannot answer %s's stream (closed)", t->peer);
  }
}

/* Listener: answers with an error and waits for the opener to reset. */
static void refuse(nt_tunnel *t, nt_open_code code, const char *msg) {
  nt_info(t->env->log, "refused a stream from %s: %s", t->peer, msg);
  send_result(t, code, msg);
  nt_stream_shutdown_write(t->stream);
  t->state = T_REFUSED;
  t->in_done = 1;
  drop_reader(t);
}

/* Both ways open: bytes flow between the local socket and the stream. */
static void start_pump(nt_tunnel *t) {
  t->state = T_OPEN;
  drop_reader(t);
  arm_read(t);
  /* Bytes (and a FIN) that came while the target was being connected. */
  if (queued(t) > 0) {
    wait_writable(t);
  } else {
    shut_output_if_drained(t);
  }
}

static int make_local_events(nt_tunnel *t) {
  struct event_base *base = t->env->base;
  t->read_ev = event_new(base, t->in.always_ready ? -1 : t->in.fd,
                         t->in.always_ready ? 0 : EV_READ | EV_PERSIST,
                         read_cb, t);
  t->write_ev = event_new(base, t->out.always_ready ? -1 : t->out.fd,
                          t->out.always_ready ? 0 : EV_WRITE | EV_PERSIST,
                          write_cb, t);
  return t->read_ev && t->write_ev ? 0 : -1;
}

/* Listener: target.c reached host:port, or says why not. */
static void target_done(const nt_target_result *r, void *ud) {
  nt_tunnel *t = ud;
  t->connecting = NULL;
  if (r->code != NT_OPEN_OK) {
    refuse(t, r->code, r->message);
    return;
  }
  int one = 1;
  setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  local_fd_init(&t->in, r->fd);
  t->out = t->in;
  t->out.restore_flags = -1;
  if (make_local_events(t) != 0) {
    refuse(t, NT_OPEN_INTERNAL, "out of memory");
    return;
  }
  send_result(t, NT_OPEN_OK, "");
  start_pump(t);
}

/* The peer that asks, for the access rules. */
static nt_access_peer access_peer(const nt_tunnel *t) {
  nt_access_peer p = {t->peer, t->have_peer_key ? t->peer_key : NULL};
  return p;
}

/* Remote commands running now: in all, and for |peer|. */
static void count_children(const struct nt_tunnel_list *all, const char *peer,
                           size_t *total, size_t *for_peer) {
  const nt_tunnel *t;
  *total = *for_peer = 0;
  TAILQ_FOREACH(t, all, link) {
    if (t->have_child && !t->child_exited) {
      (*total)++;
      *for_peer += strcmp(t->peer, peer) == 0;
    }
  }
}

static void start_command(nt_tunnel *t, const nt_open_request *req) {
  nt_target_result r;
  const nt_tunnel_env *env = t->env;
  nt_access_peer peer = access_peer(t);
  size_t total, for_peer;

  t->command = 1;
  count_children(env->all, t->peer, &total, &for_peer);
  if (env->max_commands_per_peer && for_peer >= env->max_commands_per_peer) {
    nt_warn(env->log,
            "refused a command for %s: it runs %zu already, the limit per "
            "peer (-max-commands-per-peer)",
            t->peer, for_peer);
    char msg[300];
    snprintf(msg, sizeof(msg),
             "%s runs %zu commands for %s already, its limit per peer; try "
             "again when one has ended",
             env->self_name, for_peer, t->peer);
    refuse(t, NT_OPEN_DENIED, msg);
    return;
  }
  if (env->max_commands && total >= env->max_commands) {
    nt_warn(env->log,
            "refused a command for %s: %zu commands run already, the limit "
            "(-max-commands)",
            t->peer, total);
    char msg[300];
    snprintf(msg, sizeof(msg),
             "%s runs %zu commands already, its limit; try again when one "
             "has ended",
             env->self_name, total);
    refuse(t, NT_OPEN_DENIED, msg);
    return;
  }
#ifdef NATTER_HOSTILE_PEER
  if (nt_access_command_allowed(env->target.access, &peer,
                                (const char *const *)req->argv, req->argc) &&
      nt_hostile_command(t->stream, req->argv, req->argc)) {
    t->state = T_REFUSED; /* misbehaved; waits for the opener's reset */
    return;
  }
#endif
  if (nt_target_spawn(&env->target, &peer, req->argv, req->argc, &t->child,
                      &r) != NT_OPEN_OK) {
    refuse(t, r.code, r.message);
    return;
  }
  t->have_child = 1;
  nt_info(env->log, "%s runs \"%.100s\" (pid %d)", t->peer, req->argv[0],
          (int)t->child.pid);
  local_fd_init(&t->in, t->child.stdout_fd);
  local_fd_init(&t->out, t->child.stdin_fd);
  t->stderr_ev = event_new(env->base, t->child.stderr_fd,
                           EV_READ | EV_PERSIST, stderr_cb, t);
  t->exit_ev = event_new(env->base, t->child.pidfd, EV_READ | EV_PERSIST,
                         exit_cb, t);
  if (make_local_events(t) != 0 || !t->stderr_ev || !t->exit_ev) {
    refuse(t, NT_OPEN_INTERNAL, "out of memory");
    return;
  }
  event_add(t->stderr_ev, NULL);
  event_add(t->exit_ev, NULL);
  send_result(t, NT_OPEN_OK, "");
  start_pump(t);
}

/* Listener: the opener's StreamOpen, checked by nt_open_request_decode
 * (stream_header.h says what it bounds). */
static void handle_stream_open(nt_tunnel *t, const uint8_t *body,
                               size_t len) {
  nt_open_request req;
  int rv = nt_open_request_decode(&req, body, len);
  if (rv != 0) {
    if (rv == NATTER_ERR_NOMEM) {
      refuse(t, NT_OPEN_INTERNAL, "out of memory");
      return;
    }
    nt_warn(t->env->log,
            "protocol error from %s: malformed stream header; reset",
            t->peer);
    tunnel_end(t, 1);
    return;
  }
  if (!t->env->listen) {
    nt_open_request_clear(&req);
    refuse(t, NT_OPEN_NOT_LISTENING, "not listening");
    return;
  }
  if (req.udp) {
    /* A UDP flow (udp.h): its stream is the flow's from here on. */
    nt_stream *s = t->stream;
    t->stream = NULL;
    drop_reader(t);
    nt_udp_accept(t->env->udp, t->peer, t->have_peer_key ? t->peer_key : NULL,
                  s, &req);
    nt_open_request_clear(&req);
    tunnel_end(t, 0);
    return;
  }
  if (req.argv) {
    start_command(t, &req);
    nt_open_request_clear(&req);
    return;
  }
  snprintf(t->host, sizeof(t->host), "%s",
           req.host[0] ? req.host : "127.0.0.1");
  t->port = req.port;
  t->state = T_CONNECTING;
  nt_access_peer peer = access_peer(t);
  nt_target_connect(&t->connecting, &t->env->target, &peer, t->host, t->port,
                    target_done, t);
}

/* Opener: the listener's StreamOpenResult, checked by
 * nt_open_result_decode (stream_header.h). */
static void handle_open_result(nt_tunnel *t, const uint8_t *body,
                               size_t len) {
  char why[NT_OPEN_MAX_MESSAGE + 1];
  int err;

  if (nt_open_result_decode(body, len, &err, why, sizeof(why)) != 0) {
    report(t, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_PROTOCOL,
           "protocol error from %s: malformed answer", t->peer);
    tunnel_end(t, 1);
    return;
  }
  if (t->target.callbacks && t->target.callbacks->answer) {
    t->target.callbacks->answer(t, nt_open_result_code(body, len),
                                t->target.user_data);
  }
  if (err != 0) {
    report(t, NATTER_EVENT_FORWARD_FAILED, err, "%s",
           why[0] ? why : natter_strerror(err));
    tunnel_end(t, 1);
    return;
  }
  report(t, NATTER_EVENT_FORWARD_OPENED, 0, "open");
  start_pump(t);
}

static void tunnel_stream_recv(nt_stream *s, const uint8_t *data, size_t len,
                               int fin, void *ud) {
  nt_tunnel *t = ud;

  while (len > 0 && t->reader &&
         (t->state == T_WAIT_OPEN || t->state == T_WAIT_RESULT)) {
    size_t used, bodylen;
    const uint8_t *body;
    int rv = nt_wire_reader_feed(t->reader, data, len, &used, &body,
                                 &bodylen);
    if (rv < 0) {
      if (!t->opener) {
        nt_warn(t->env->log,
                "protocol error from %s: bad stream header framing; reset",
                t->peer);
      }
      report(t, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_PROTOCOL,
             "protocol error from %s: bad answer framing", t->peer);
      tunnel_end(t, 1);
      return;
    }
    nt_stream_consume(s, used);
    data += used;
    len -= used;
    if (rv == 1) {
      if (t->opener) {
        handle_open_result(t, body, bodylen);
      } else {
        handle_stream_open(t, body, bodylen);
      }
    }
  }
  if (t->state == T_DONE) {
    return;
  }
  if (t->state == T_OPEN) {
    if (t->opener && t->command) {
      recv_frames(t, data, len);
    } else {
      deliver(t, data, len);
    }
  } else if (len > 0) {
    if (t->state == T_REFUSED) {
      nt_stream_consume(s, len); /* refused: discard */
    } else {
      /* Bytes before the target is connected wait here, bounded by the
       * stream's flow-control window. */
      enqueue(t, data, len);
    }
  }
  if (t->state == T_DONE || !fin) {
    return;
  }
  t->stream_fin = 1;
  if (t->state == T_OPEN && t->opener && t->command) {
    const char *why = nt_cmdframe_finish(&t->frames);
    if (why) {
      frame_error(t, why);
      return;
    }
  }
  if (t->state == T_OPEN) {
    shut_output_if_drained(t);
  } else if (t->state == T_WAIT_RESULT || t->state == T_WAIT_OPEN) {
    report(t, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_CLOSED,
           "the peer ended the stream before answering");
    tunnel_end(t, 1); /* ended before the exchange finished */
  }
}

static void tunnel_stream_closed(nt_stream *s, int reset, uint64_t code,
                                 void *ud) {
  nt_tunnel *t = ud;
  (void)code;
  /* What the local end has not taken yet is written (draining) or dropped;
   * either way its connection-level credit goes back now, once. */
  if (t->state != T_DONE) {
    nt_stream_consume(s, queued(t));
  }
  t->stream = NULL;
  if (t->state == T_DONE) {
    return;
  }
  /* Both directions finished cleanly, or something aborted. */
  int clean = !reset && t->state == T_OPEN && t->stream_fin && t->in_done;
  if (!clean) {
    report(t, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_CLOSED,
           t->state == T_OPEN ? "connection reset by the peer"
                              : "the peer closed the stream");
    tunnel_end(t, 1);
    return;
  }
  /* The last bytes may still wait for the local end to take them. */
  t->draining = 1;
  finish_if_drained(t);
}

/* ---- creation ---- */

static nt_tunnel *tunnel_alloc(const nt_tunnel_env *env) {
  nt_tunnel *t = calloc(1, sizeof(*t));
  if (!t) {
    return NULL;
  }
  t->env = env;
  t->in.fd = t->out.fd = -1;
  t->in.restore_flags = t->out.restore_flags = -1;
  t->err_fd = -1;
  t->exit_status = -1;
  t->free_ev = event_new(env->base, -1, 0, free_cb, t);
  nt_sendbuf_init(&t->to_local, NULL); /* the stream's pool, once known */
  t->reader = calloc(1, sizeof(*t->reader));
  TAILQ_INSERT_HEAD(env->all, t, link);
  if (!t->free_ev || !t->reader) {
    release(t);
    return NULL;
  }
  return t;
}

/* The peer connection is up: open the stream and send StreamOpen. */
static int waiter_ready(nt_peer_waiter *w, nt_conn *conn) {
  nt_tunnel *t = (nt_tunnel *)((char *)w - offsetof(nt_tunnel, waiter));
  uint8_t buf[NT_STREAM_HEADER_MAX];

  int rv = nt_conn_open_stream(conn, &t->stream);
  if (rv == NT_STREAMS_BLOCKED) {
    t->stream = NULL;
    return rv; /* waits in the peer's queue for a free stream */
  }
  if (rv != 0) {
    t->stream = NULL;
    report(t, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_CLOSED,
           "the connection to the peer cannot open streams");
    tunnel_end(t, 1);
    return 0;
  }
  nt_stream_set_callbacks(t->stream, &tunnel_stream_callbacks, t);
  nt_sendbuf_init(&t->to_local, nt_stream_chunk_pool(t->stream));
  t->state = T_WAIT_RESULT;
  size_t n = nt_open_request_encode(buf, t->host, t->port, t->target.argv);
  if (n == 0 || nt_stream_write(t->stream, buf, n) != 0) {
    report(t, NATTER_EVENT_FORWARD_FAILED, NATTER_ERR_INVALID,
           "the command line is too long to send");
    tunnel_end(t, 1);
  }
  return 0;
}

/* The peer connection could not be made: close the local side. */
static void waiter_failed(nt_peer_waiter *w, int error, const char *why) {
  nt_tunnel *t = (nt_tunnel *)((char *)w - offsetof(nt_tunnel, waiter));
  t->quiet = 1;
  report(t, NATTER_EVENT_FORWARD_FAILED, error, "%s", why);
  tunnel_end(t, 1);
}

nt_tunnel *nt_tunnel_new_outgoing(const nt_tunnel_env *env,
                                  const nt_tunnel_target *target, int in_fd,
                                  int out_fd) {
  nt_tunnel *t = tunnel_alloc(env);
  if (!t) {
    close(in_fd);
    if (out_fd != in_fd) {
      close(out_fd);
    }
    return NULL;
  }
  t->opener = 1;
  t->target = *target;
  t->waiter.ready = waiter_ready;
  t->waiter.failed = waiter_failed;
  t->state = T_WAIT_PEER;
  t->command = target->argv != NULL;
  t->err_fd = target->err_fd;
  snprintf(t->peer, sizeof(t->peer), "%s", target->peer);
  snprintf(t->host, sizeof(t->host), "%s", target->host ? target->host : "");
  t->port = target->port;
  t->target.peer = t->peer;
  t->target.host = t->host;
  local_fd_init(&t->in, in_fd);
  if (out_fd == in_fd) {
    t->out = t->in;
    t->out.restore_flags = -1;
  } else {
    local_fd_init(&t->out, out_fd);
  }
  if (t->in.is_socket) {
    int one = 1;
    setsockopt(in_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  if (make_local_events(t) != 0) {
    release(t);
    return NULL;
  }
  return t;
}

void nt_tunnel_accept_stream(const nt_tunnel_env *env, const char *peer,
                             nt_stream *stream) {
  nt_tunnel *t = tunnel_alloc(env);
  if (!t) {
    nt_stream_reset(stream, NT_OPEN_INTERNAL);
    return;
  }
  t->stream = stream;
  nt_sendbuf_init(&t->to_local, nt_stream_chunk_pool(stream));
  t->state = T_WAIT_OPEN;
  snprintf(t->peer, sizeof(t->peer), "%s", peer);
  const uint8_t *key = nt_conn_peer_fingerprint(nt_stream_conn(stream));
  if (key) {
    memcpy(t->peer_key, key, NT_FINGERPRINT_LEN);
    t->have_peer_key = 1;
  }
  nt_stream_set_callbacks(stream, &tunnel_stream_callbacks, t);
}

void nt_tunnel_detach_owner(struct nt_tunnel_list *all, void *user_data) {
  nt_tunnel *t;
  TAILQ_FOREACH(t, all, link) {
    if (t->opener && t->target.user_data == user_data) {
      nt_peer_waiter_cancel(&t->waiter);
      t->target.callbacks = NULL; /* no events about an owner that is gone */
      t->target.stats = NULL;
      t->target.argv = NULL;
      t->opener = 0;
      tunnel_end(t, 1);
    }
  }
}

void nt_tunnel_free_all(struct nt_tunnel_list *all) {
  nt_tunnel *t;
  while ((t = TAILQ_FIRST(all))) {
    if (t->stream) {
      nt_stream_set_callbacks(t->stream, &no_callbacks, NULL);
    }
    release(t);
  }
}
