/* Local forwards: a TCP port on 127.0.0.1 whose connections are carried to
 * a target on a peer. */
#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_internal.h"

struct nt_forward {
  natter_client *client;
  nt_spec spec;
  struct evconnlistener *listener;
  nt_forward *next;
};

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg) {
  nt_forward *f = arg;
  natter_client *c = f->client;
  (void)l;
  (void)sa;
  (void)salen;

  nt_peer *peer = nt_peer_get(c, f->spec.peer);
  nt_tunnel *t = peer ? nt_tunnel_new_outgoing(c, fd, &f->spec) : NULL;
  if (!t) {
    if (!peer) {
      close(fd);
    }
    nt_warn(&c->log, "local port %u: out of memory; connection dropped",
            f->spec.local_port);
    return;
  }
  nt_peer_submit(peer, t);
}

static void accept_error_cb(struct evconnlistener *l, void *arg) {
  nt_forward *f = arg;
  (void)l;
  /* EMFILE and friends: keep the listener, the next accept may work. */
  nt_warn(&f->client->log, "local port %u: accept failed: %s",
          f->spec.local_port, strerror(errno));
}

int nt_forward_add(natter_client *c, const nt_spec *spec, char *err,
                   size_t errlen) {
  struct sockaddr_in sin;
  nt_forward *f = calloc(1, sizeof(*f));

  if (!f) {
    snprintf(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  f->client = c;
  f->spec = *spec;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(spec->local_port);
  f->listener = evconnlistener_new_bind(
      c->base, accept_cb, f,
      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 128,
      (struct sockaddr *)&sin, sizeof(sin));
  if (!f->listener) {
    int e = errno;
    snprintf(err, errlen,
             "cannot listen on 127.0.0.1:%u: %s%s", spec->local_port,
             strerror(e),
             e == EADDRINUSE ? " (port already in use: pick another local "
                               "port or stop what uses it)"
                             : "");
    free(f);
    return e == EADDRINUSE ? NATTER_ERR_ADDR_IN_USE : NATTER_ERR_SOCKET;
  }
  evconnlistener_set_error_cb(f->listener, accept_error_cb);
  f->next = c->forwards;
  c->forwards = f;
  char target[NT_HOST_MAX + 16];
  if (!spec->host[0]) {
    snprintf(target, sizeof(target), "%u", spec->port);
  } else if (strchr(spec->host, ':')) {
    snprintf(target, sizeof(target), "[%s]:%u", spec->host, spec->port);
  } else {
    snprintf(target, sizeof(target), "%s:%u", spec->host, spec->port);
  }
  nt_info(&c->log, "forwarding 127.0.0.1:%u -> %s:%s", spec->local_port,
          spec->peer, target);
  return 0;
}

void nt_forward_free_all(natter_client *c) {
  while (c->forwards) {
    nt_forward *f = c->forwards;
    c->forwards = f->next;
    evconnlistener_free(f->listener);
    free(f);
  }
}
