/* One TCP connection carrying datagrams (tcp_path.h), on a libevent
 * bufferevent: its buffers hold the partial frames, and its read timeout
 * is the idle timeout. */
#include "quic/tcp_path.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "natter.h"

struct nt_tcp_link {
  struct bufferevent *bev;
  nt_addr pseudo;
  uint8_t key[NT_TCP_LINK_KEY_LEN];
  int target;
  int accepting;     /* the preamble is still due from the peer */
  int connected;
  int closed;        /* closed was called: nothing more happens */
  int in_cb;         /* inside one of our callbacks */
  int free_pending;  /* nt_tcp_link_free was called from one */
  uint64_t rx, tx;
  nt_tcp_link_callbacks cbs;
  void *user_data;
  void *owner;
};

int nt_tcp_link_key_of(const struct sockaddr *sa,
                       uint8_t key[NT_TCP_LINK_KEY_LEN]) {
  memset(key, 0, NT_TCP_LINK_KEY_LEN);
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &in->sin_addr, 4);
    memcpy(key + 16, &in->sin_port, 2);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    memcpy(key, &in6->sin6_addr, 16);
    memcpy(key + 16, &in6->sin6_port, 2);
    return 0;
  }
  return -1;
}

/* Ends the link once: reading and writing stop, the owner hears why. */
static void fail(nt_tcp_link *l, const char *why) {
  if (l->closed) {
    return;
  }
  l->closed = 1;
  bufferevent_disable(l->bev, EV_READ | EV_WRITE);
  if (l->cbs.closed) {
    l->in_cb++;
    l->cbs.closed(l, why, l->user_data);
    l->in_cb--;
  }
}

static void really_free(nt_tcp_link *l) {
  bufferevent_free(l->bev);
  free(l);
}

/* Returns 1 when |l| was freed during a callback: the caller stops. */
static int leave_cb(nt_tcp_link *l) {
  if (l->in_cb == 0 && l->free_pending) {
    really_free(l);
    return 1;
  }
  return 0;
}

static void read_cb(struct bufferevent *bev, void *arg) {
  nt_tcp_link *l = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  size_t datagrams = 0;

  l->in_cb++;
  if (l->accepting) {
    uint8_t pre[NT_TCPFRAME_PREAMBLE_LEN];
    if (evbuffer_get_length(in) < sizeof(pre)) {
      goto out;
    }
    evbuffer_remove(in, pre, sizeof(pre));
    l->rx += sizeof(pre);
    l->accepting = 0;
    l->target = nt_tcpframe_preamble_decode(pre);
    if (!l->target) {
      fail(l, "not a natter TCP fallback connection (bad preamble)");
      goto out;
    }
    if (l->cbs.ready && l->cbs.ready(l, l->target, l->user_data) != 0) {
      fail(l, "refused");
      goto out;
    }
  }
  while (!l->closed && !l->free_pending) {
    size_t avail = evbuffer_get_length(in), len;
    uint8_t hdr[NT_TCPFRAME_HDR];
    if (avail < sizeof(hdr)) {
      break;
    }
    evbuffer_copyout(in, hdr, sizeof(hdr));
    if (nt_tcpframe_peek(hdr, sizeof(hdr), &len) == NT_TCPFRAME_ERR_LENGTH) {
      fail(l, "bad frame length");
      break;
    }
    if (avail < NT_TCPFRAME_HDR + len) {
      break;
    }
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(NT_TCPFRAME_HDR + len));
    if (!p) {
      fail(l, "out of memory");
      break;
    }
    l->rx += NT_TCPFRAME_HDR + len;
    l->cbs.datagram(l, p + NT_TCPFRAME_HDR, len, l->user_data);
    evbuffer_drain(in, NT_TCPFRAME_HDR + len);
    datagrams++;
  }
  if (datagrams && !l->free_pending && l->cbs.read_done) {
    l->cbs.read_done(l, l->user_data);
  }
out:
  l->in_cb--;
  leave_cb(l);
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
  nt_tcp_link *l = arg;
  (void)bev;
  l->in_cb++;
  if (what & BEV_EVENT_CONNECTED) {
    l->connected = 1;
    if (l->cbs.connected) {
      l->cbs.connected(l, l->user_data);
    }
  } else if (what & BEV_EVENT_TIMEOUT) {
    fail(l, "idle timeout");
  } else if (what & BEV_EVENT_EOF) {
    fail(l, "closed by the other side");
  } else if (what & BEV_EVENT_ERROR) {
    int e = EVUTIL_SOCKET_ERROR();
    fail(l, e ? strerror(e) : "error");
  }
  l->in_cb--;
  leave_cb(l);
}

static int link_new(nt_tcp_link **plink, struct event_base *base, int fd,
                    const struct sockaddr *pseudo, socklen_t pseudolen,
                    uint64_t idle_ms, const nt_tcp_link_callbacks *cbs,
                    void *user_data) {
  nt_tcp_link *l = calloc(1, sizeof(*l));
  if (!l || pseudolen > sizeof(l->pseudo.ss) ||
      nt_tcp_link_key_of(pseudo, l->key) != 0) {
    free(l);
    return l ? NATTER_ERR_INVALID : NATTER_ERR_NOMEM;
  }
  memcpy(&l->pseudo.ss, pseudo, pseudolen);
  l->pseudo.len = pseudolen;
  nt_addr_unmap(&l->pseudo.ss, &l->pseudo.len);
  nt_tcp_link_key_of((struct sockaddr *)&l->pseudo.ss, l->key);
  l->cbs = *cbs;
  l->user_data = user_data;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  l->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (!l->bev) {
    free(l);
    return NATTER_ERR_NOMEM;
  }
  bufferevent_setcb(l->bev, read_cb, NULL, event_cb, l);
  /* libevent reads and writes 16 KiB at a time by default: a dozen
   * packets a wake-up. Larger turns cost fewer system calls and flushes
   * per relayed megabyte. */
  bufferevent_set_max_single_read(l->bev, 128 * 1024);
  bufferevent_set_max_single_write(l->bev, NT_TCP_LINK_MAX_QUEUED);
  /* One whole frame and a read's worth: reading pauses beyond it. */
  bufferevent_setwatermark(l->bev, EV_READ, 0,
                           2 * (NT_TCPFRAME_HDR + NT_TCPFRAME_MAX));
  if (idle_ms) {
    struct timeval tv = {(time_t)(idle_ms / 1000),
                         (suseconds_t)(idle_ms % 1000) * 1000};
    bufferevent_set_timeouts(l->bev, &tv, NULL);
  }
  bufferevent_enable(l->bev, EV_READ | EV_WRITE);
  *plink = l;
  return 0;
}

int nt_tcp_link_connect(nt_tcp_link **plink, struct event_base *base,
                        const struct sockaddr *to, socklen_t tolen,
                        const struct sockaddr *pseudo, socklen_t pseudolen,
                        int target, uint64_t idle_ms,
                        const nt_tcp_link_callbacks *cbs, void *user_data) {
  int fd = socket(to->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return NATTER_ERR_SOCKET;
  }
  nt_tcp_link *l;
  int rv = link_new(&l, base, fd, pseudo, pseudolen, idle_ms, cbs, user_data);
  if (rv != 0) {
    close(fd);
    return rv;
  }
  l->target = target;
  uint8_t pre[NT_TCPFRAME_PREAMBLE_LEN];
  nt_tcpframe_preamble(pre, target);
  bufferevent_write(l->bev, pre, sizeof(pre));
  l->tx += sizeof(pre);
  if (bufferevent_socket_connect(l->bev, (struct sockaddr *)to, (int)tolen) !=
      0) {
    really_free(l);
    return NATTER_ERR_SOCKET;
  }
  *plink = l;
  return 0;
}

int nt_tcp_link_accept(nt_tcp_link **plink, struct event_base *base, int fd,
                       const struct sockaddr *peer, socklen_t peerlen,
                       uint64_t idle_ms, const nt_tcp_link_callbacks *cbs,
                       void *user_data) {
  int rv = link_new(plink, base, fd, peer, peerlen, idle_ms, cbs, user_data);
  if (rv == 0) {
    (*plink)->accepting = 1;
    (*plink)->connected = 1;
  }
  return rv;
}

void nt_tcp_link_free(nt_tcp_link *l) {
  if (!l) {
    return;
  }
  if (l->in_cb) {
    /* Inside one of its callbacks: freed when that returns. */
    l->free_pending = 1;
    l->closed = 1;
    bufferevent_disable(l->bev, EV_READ | EV_WRITE);
    return;
  }
  really_free(l);
}

int nt_tcp_link_send(nt_tcp_link *l, const uint8_t *buf, size_t len,
                     size_t segsize) {
  if (l->closed || len == 0) {
    return -1;
  }
  if (segsize == 0 || segsize > len) {
    segsize = len;
  }
  struct evbuffer *out = bufferevent_get_output(l->bev);
  size_t frames = (len + segsize - 1) / segsize;
  if (segsize > NT_TCPFRAME_MAX ||
      evbuffer_get_length(out) + len + frames * NT_TCPFRAME_HDR >
          NT_TCP_LINK_MAX_QUEUED) {
    return -1; /* as a full UDP socket buffer: QUIC resends */
  }
  for (size_t off = 0; off < len; off += segsize) {
    size_t n = len - off < segsize ? len - off : segsize;
    uint8_t hdr[NT_TCPFRAME_HDR];
    nt_tcpframe_header(hdr, n);
    evbuffer_add(out, hdr, sizeof(hdr));
    evbuffer_add(out, buf + off, n);
  }
  l->tx += len + frames * NT_TCPFRAME_HDR;
  return 0;
}

const nt_addr *nt_tcp_link_pseudo(const nt_tcp_link *l) {
  return &l->pseudo;
}

const uint8_t *nt_tcp_link_key(const nt_tcp_link *l) {
  return l->key;
}

int nt_tcp_link_target(const nt_tcp_link *l) {
  return l->target;
}

int nt_tcp_link_is_connected(const nt_tcp_link *l) {
  return l->connected && !l->closed;
}

void nt_tcp_link_traffic(const nt_tcp_link *l, uint64_t *rx, uint64_t *tx) {
  *rx = l->rx;
  *tx = l->tx;
}

void nt_tcp_link_set_owner(nt_tcp_link *l, void *owner) {
  l->owner = owner;
}

void *nt_tcp_link_owner(const nt_tcp_link *l) {
  return l->owner;
}
