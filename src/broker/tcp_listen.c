/* The broker's TCP fallback (-tcp-listen, doc/design.md "TCP fallback"):
 * accepts TCP connections, bounded in all and per source address, and
 * hands each one's datagrams to the broker's endpoint or its relay, as
 * its preamble asks, as if they came over UDP from the TCP peer's
 * address. */
#include "broker/broker_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "natter.h"
#include "quic/tcp_path.h"

typedef struct tcp_client {
  nt_tcp_listener *l;
  nt_tcp_link *link;
  nt_addr peer;
  int target; /* 0 until the preamble came */
  LIST_ENTRY(tcp_client) link_entry;
} tcp_client;

struct nt_tcp_listener {
  natter_broker *b;
  int fd;
  struct event *ev;
  LIST_HEAD(, tcp_client) clients;
  size_t nclients;
  uint64_t accepted, refused;
  nt_log_gate gate[2]; /* total, per address */
};

static void client_free(tcp_client *tc) {
  nt_tcp_listener *l = tc->l;
  if (tc->target == NT_TCPFRAME_TO_ENDPOINT) {
    nt_endpoint_tcp_remove(l->b->ep, tc->link);
  } else if (tc->target == NT_TCPFRAME_TO_RELAY) {
    nt_relay_tcp_remove(l->b->relay, tc->link);
  }
  LIST_REMOVE(tc, link_entry);
  l->nclients--;
  nt_tcp_link_free(tc->link);
  free(tc);
}

static int on_ready(nt_tcp_link *link, int target, void *ud) {
  tcp_client *tc = ud;
  natter_broker *b = tc->l->b;
  int rv = -1;
  if (target == NT_TCPFRAME_TO_ENDPOINT) {
    rv = nt_endpoint_tcp_add(b->ep, link);
  } else if (target == NT_TCPFRAME_TO_RELAY && b->relay) {
    rv = nt_relay_tcp_add(b->relay, link);
  }
  if (rv == 0) {
    tc->target = target;
  }
  return rv;
}

static void on_datagram(nt_tcp_link *link, uint8_t *data, size_t len,
                        void *ud) {
  tcp_client *tc = ud;
  if (tc->target == NT_TCPFRAME_TO_ENDPOINT) {
    nt_endpoint_tcp_input(tc->l->b->ep, link, data, len);
  } else {
    nt_relay_tcp_input(tc->l->b->relay, link, data, len);
  }
}

static void on_read_done(nt_tcp_link *link, void *ud) {
  tcp_client *tc = ud;
  (void)link;
  if (tc->target == NT_TCPFRAME_TO_ENDPOINT) {
    nt_endpoint_tcp_flush(tc->l->b->ep);
  }
}

static void on_closed(nt_tcp_link *link, const char *why, void *ud) {
  tcp_client *tc = ud;
  char addr[NT_ADDR_STRLEN];
  (void)link;
  nt_debug(&tc->l->b->log, "TCP fallback connection from %s ended: %s",
           nt_addr_str((struct sockaddr *)&tc->peer.ss, addr), why);
  client_free(tc);
}

static const nt_tcp_link_callbacks client_callbacks = {
    on_ready, on_datagram, on_read_done, NULL, on_closed};

/* Connections from |peer|'s IP address open now. */
static size_t from_address(const nt_tcp_listener *l, const struct sockaddr *peer) {
  const tcp_client *tc;
  size_t n = 0;
  LIST_FOREACH(tc, &l->clients, link_entry) {
    n += nt_addr_same_host(peer, (const struct sockaddr *)&tc->peer.ss);
  }
  return n;
}

/* Connections one IP address may hold: twice -max-per-address. */
static size_t per_address(const nt_tcp_listener *l) {
  return 2 * (size_t)l->b->max_per_source;
}

static void refuse(nt_tcp_listener *l, int fd, int kind,
                   const struct sockaddr *peer, const char *what) {
  char addr[NT_ADDR_STRLEN];
  unsigned held;
  close(fd);
  l->refused++;
  if (nt_log_gate_pass(&l->gate[kind], nt_monotonic_ns(), &held)) {
    nt_warn(&l->b->log, "refused a TCP fallback connection from %s: %s%s",
            nt_addr_str(peer, addr), what, held ? " (and more like it)" : "");
  }
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg) {
  nt_tcp_listener *l = arg;
  (void)what;
  /* A few a wake-up: the loop's other work gets its turn. */
  for (int i = 0; i < 32; i++) {
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        unsigned held;
        if (nt_log_gate_pass(&l->gate[0], nt_monotonic_ns(), &held)) {
          nt_warn(&l->b->log, "TCP fallback: cannot accept: %s",
                  strerror(errno));
        }
      }
      return;
    }
    nt_addr_unmap(&ss, &sslen);
    char why[120];
    if (l->nclients >= NT_TCP_MAX_CONNS) {
      snprintf(why, sizeof(why), "%u TCP connections already (limit)",
               NT_TCP_MAX_CONNS);
      refuse(l, fd, 0, (struct sockaddr *)&ss, why);
      continue;
    }
    if (from_address(l, (struct sockaddr *)&ss) >= per_address(l)) {
      snprintf(why, sizeof(why),
               "too many TCP connections from this address (limit %zu)",
               per_address(l));
      refuse(l, fd, 1, (struct sockaddr *)&ss, why);
      continue;
    }
    tcp_client *tc = calloc(1, sizeof(*tc));
    if (!tc) {
      close(fd);
      continue;
    }
    tc->l = l;
    memcpy(&tc->peer.ss, &ss, sslen);
    tc->peer.len = sslen;
    if (nt_tcp_link_accept(&tc->link, l->b->base, fd, (struct sockaddr *)&ss,
                           sslen, (uint64_t)NT_TCP_IDLE_S * 1000,
                           &client_callbacks, tc) != 0) {
      close(fd);
      free(tc);
      continue;
    }
    LIST_INSERT_HEAD(&l->clients, tc, link_entry);
    l->nclients++;
    l->accepted++;
  }
}

/* A listening socket on |addr|; -errno on failure. */
static int listen_on(const nt_addr *addr, int v6only) {
  const struct sockaddr *sa = (const struct sockaddr *)&addr->ss;
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0) {
    return -errno;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (sa->sa_family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
  }
  if (bind(fd, sa, addr->len) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int nt_tcp_listener_new(natter_broker *b, const char *text) {
  char err[300], addrstr[NT_ADDR_STRLEN];
  nt_addr addr;
  int fd, dual = text[0] == ':';
  if (nt_addr_parse(&addr, text, dual ? "::" : "0.0.0.0", err, sizeof(err)) !=
      0) {
    nt_error(&b->log, "broker: -tcp-listen %s: %s", text, err);
    return NATTER_ERR_INVALID;
  }
  fd = listen_on(&addr, !dual);
  if (dual && (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)) {
    /* No IPv6 here: IPv4 alone. */
    uint16_t port = nt_addr_port((struct sockaddr *)&addr.ss);
    nt_addr_parse(&addr, text, "0.0.0.0", err, sizeof(err));
    nt_addr_set_port((struct sockaddr *)&addr.ss, port);
    fd = listen_on(&addr, 0);
  }
  if (fd < 0) {
    nt_error(&b->log, "broker: cannot listen on TCP %s: %s", text,
             strerror(-fd));
    return -fd == EADDRINUSE ? NATTER_ERR_ADDR_IN_USE : NATTER_ERR_SOCKET;
  }
  nt_tcp_listener *l = calloc(1, sizeof(*l));
  if (!l) {
    close(fd);
    return NATTER_ERR_NOMEM;
  }
  l->b = b;
  l->fd = fd;
  LIST_INIT(&l->clients);
  l->ev = event_new(b->base, fd, EV_READ | EV_PERSIST, accept_cb, l);
  if (!l->ev || event_add(l->ev, NULL) != 0) {
    if (l->ev) {
      event_free(l->ev);
    }
    close(fd);
    free(l);
    return NATTER_ERR_SOCKET;
  }
  b->tcp = l;
  nt_addr local;
  local.len = sizeof(local.ss);
  getsockname(fd, (struct sockaddr *)&local.ss, &local.len);
  nt_info(&b->log,
          "TCP fallback on %s: clients whose UDP is blocked reach the broker%s "
          "over TCP (at most %u connections, %zu per address)",
          nt_addr_str((struct sockaddr *)&local.ss, addrstr),
          b->relay ? " and its relay" : "", NT_TCP_MAX_CONNS,
          per_address(l));
  return 0;
}

void nt_tcp_listener_free(natter_broker *b) {
  nt_tcp_listener *l = b->tcp;
  if (!l) {
    return;
  }
  tcp_client *tc;
  while ((tc = LIST_FIRST(&l->clients)) != NULL) {
    client_free(tc);
  }
  event_free(l->ev);
  close(l->fd);
  free(l);
  b->tcp = NULL;
}

uint16_t nt_tcp_listener_port(const natter_broker *b) {
  nt_addr local;
  if (!b->tcp) {
    return 0;
  }
  local.len = sizeof(local.ss);
  if (getsockname(b->tcp->fd, (struct sockaddr *)&local.ss, &local.len) != 0) {
    return 0;
  }
  return nt_addr_port((struct sockaddr *)&local.ss);
}

size_t nt_tcp_listener_count(const natter_broker *b) {
  return b->tcp ? b->tcp->nclients : 0;
}
