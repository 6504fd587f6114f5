/* The client's TCP fallback (tcp_fallback.h). */
#include "client/tcp_fallback.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "client/broker_session.h"
#include "client/client_internal.h"
#include "codec/mapping.h"
#include "codec/tcpframe.h"
#include "quic/tcp_path.h"

struct nt_tcp_fallback {
  natter_client *c;
  uint16_t port;
  nt_addr tcp_to;            /* the broker's host at the TCP port */
  struct event *timer;       /* NT_TCP_FALLBACK_AFTER_MS after a connect */
  struct event *probe_ev;    /* UDP probes while on TCP */
  nt_tcp_link *broker_link;  /* stands for the broker's UDP address */
  nt_tcp_link *relay_link;   /* stands for the relay's */
  uint8_t nonce[NT_MAPPING_NONCE_LEN];
  int probing;               /* a probe with |nonce| is out */
  int broker_connected;      /* broker_link's TCP handshake was done */
  int restarting;            /* we closed the broker connection */
};

static void link_closed(nt_tcp_link *link, const char *why, void *ud);

static void drop_link(natter_client *c, nt_tcp_link **plink) {
  if (*plink) {
    nt_endpoint_tcp_remove(c->ep, *plink);
    nt_tcp_link_free(*plink);
    *plink = NULL;
  }
}

static void link_datagram(nt_tcp_link *link, uint8_t *data, size_t len,
                          void *ud) {
  natter_client *c = ud;
  nt_endpoint_tcp_input(c->ep, link, data, len);
}

static void link_read_done(nt_tcp_link *link, void *ud) {
  natter_client *c = ud;
  (void)link;
  nt_endpoint_tcp_flush(c->ep);
}

static void schedule_probe(struct nt_tcp_fallback *fb) {
  struct timeval tv = {NT_TCP_FALLBACK_PROBE_S, 0};
  event_add(fb->probe_ev, &tv);
}

static void broker_link_connected(nt_tcp_link *link, void *ud) {
  natter_client *c = ud;
  struct nt_tcp_fallback *fb = c->tcpfb;
  char to[NT_ADDR_STRLEN];
  (void)link;
  fb->broker_connected = 1;
  nt_info(&c->log,
          "no answer from the broker's UDP port in %u s: reaching the broker "
          "over TCP at %s (the same QUIC connection inside)",
          NT_TCP_FALLBACK_AFTER_MS / 1000,
          nt_addr_str((struct sockaddr *)&fb->tcp_to.ss, to));
  schedule_probe(fb);
  /* A handshake that waited on UDP starts afresh over TCP, instead of
   * after its backed-off resend timer. */
  if (c->broker_conn && !nt_conn_is_established(c->broker_conn)) {
    fb->restarting = 1;
    nt_conn_close(c->broker_conn, 0, "moving to TCP");
  } else if (!c->broker_conn && event_pending(c->reconnect_ev, EV_TIMEOUT,
                                              NULL)) {
    event_del(c->reconnect_ev);
    nt_broker_session_connect(c);
  }
}

static const nt_tcp_link_callbacks broker_link_callbacks = {
    NULL, link_datagram, link_read_done, broker_link_connected, link_closed};
static const nt_tcp_link_callbacks relay_link_callbacks = {
    NULL, link_datagram, link_read_done, NULL, link_closed};

static void link_closed(nt_tcp_link *link, const char *why, void *ud) {
  natter_client *c = ud;
  struct nt_tcp_fallback *fb = c->tcpfb;
  char to[NT_ADDR_STRLEN];
  nt_addr_str((struct sockaddr *)&fb->tcp_to.ss, to);
  if (link == fb->broker_link) {
    if (fb->broker_connected) {
      nt_warn(&c->log, "TCP connection to the broker at %s ended: %s", to,
              why);
    } else {
      nt_warn(&c->log, "no TCP fallback either: cannot connect to %s: %s", to,
              why);
    }
    drop_link(c, &fb->broker_link);
    /* Without the broker's connection the relay's has no use. */
    drop_link(c, &fb->relay_link);
    event_del(fb->probe_ev);
    if (fb->broker_connected && c->broker_conn && !c->fatal) {
      /* The QUIC connection inside is cut off (UDP gets no answer):
       * start again now rather than after its idle timeout; at the
       * same broker (over TCP again: it may have restarted), or, in a
       * list, at the next one, as for any lost broker (its own TCP
       * fallback follows if its UDP gets no answer either). */
      fb->restarting = c->brokers.n <= 1;
      nt_conn_close(c->broker_conn, 0, "TCP connection ended");
    }
  } else if (link == fb->relay_link) {
    nt_warn(&c->log, "TCP connection to the broker's relay ended: %s", why);
    drop_link(c, &fb->relay_link);
  }
}

/* Connects a link for |pseudo| with |target|; returns it, added to the
 * endpoint, or NULL. */
static nt_tcp_link *open_link(natter_client *c, const nt_addr *pseudo,
                              int target, const nt_tcp_link_callbacks *cbs) {
  struct nt_tcp_fallback *fb = c->tcpfb;
  nt_tcp_link *link;
  if (nt_tcp_link_connect(&link, c->base, (struct sockaddr *)&fb->tcp_to.ss,
                          fb->tcp_to.len, (const struct sockaddr *)&pseudo->ss,
                          pseudo->len, target, 0, cbs, c) != 0) {
    return NULL;
  }
  if (nt_endpoint_tcp_add(c->ep, link) != 0) {
    nt_tcp_link_free(link);
    return NULL;
  }
  return link;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  natter_client *c = arg;
  struct nt_tcp_fallback *fb = c->tcpfb;
  char to[NT_ADDR_STRLEN];
  (void)fd;
  (void)what;
  if (c->fatal || fb->broker_link ||
      (c->broker_conn && nt_conn_is_established(c->broker_conn))) {
    return;
  }
  /* The broker's host as of now: in a list, the one being tried. */
  fb->tcp_to = c->broker_addr;
  nt_addr_set_port((struct sockaddr *)&fb->tcp_to.ss, fb->port);
  nt_debug(&c->log, "no answer from the broker over UDP yet: trying TCP %s",
           nt_addr_str((struct sockaddr *)&fb->tcp_to.ss, to));
  fb->broker_connected = 0;
  fb->broker_link =
      open_link(c, &c->broker_addr, NT_TCPFRAME_TO_ENDPOINT,
                &broker_link_callbacks);
  if (!fb->broker_link) {
    nt_warn(&c->log, "cannot start a TCP connection to %s", to);
  }
}

/* Every NT_TCP_FALLBACK_PROBE_S on TCP: a mapping-check request over UDP
 * to the broker's PORT+1 (the broker answers one with exactly as many
 * bytes); an answer means UDP works again. */
static void probe_cb(evutil_socket_t fd, short what, void *arg) {
  natter_client *c = arg;
  struct nt_tcp_fallback *fb = c->tcpfb;
  uint16_t port = nt_addr_port((struct sockaddr *)&c->broker_addr.ss);
  (void)fd;
  (void)what;
  if (!fb->broker_link) {
    return;
  }
  schedule_probe(fb);
  /* Only a mapping port beside the address we use for the broker tells
   * about UDP to that address. */
  if (!c->mapping_port || port == 65535 || c->mapping_port != port + 1 ||
      nt_random_bytes(fb->nonce, sizeof(fb->nonce)) != 0) {
    return;
  }
  uint8_t req[NT_MAPPING_REQUEST_LEN];
  nt_addr to = c->broker_addr;
  nt_addr_set_port((struct sockaddr *)&to.ss, c->mapping_port);
  nt_mapping_encode_request(req, fb->nonce);
  fb->probing = 1;
  nt_endpoint_sendto(c->ep, req, sizeof(req), (struct sockaddr *)&to.ss,
                     to.len);
}

int nt_tcp_fallback_new(natter_client *c, int port) {
  c->tcpfb = NULL;
  if (port <= 0 || port > 65535) {
    return 0;
  }
  struct nt_tcp_fallback *fb = calloc(1, sizeof(*fb));
  if (!fb) {
    return NATTER_ERR_NOMEM;
  }
  fb->c = c;
  fb->port = (uint16_t)port;
  fb->tcp_to = c->broker_addr;
  nt_addr_set_port((struct sockaddr *)&fb->tcp_to.ss, fb->port);
  fb->timer = event_new(c->base, -1, 0, timer_cb, c);
  fb->probe_ev = event_new(c->base, -1, 0, probe_cb, c);
  if (!fb->timer || !fb->probe_ev) {
    if (fb->timer) {
      event_free(fb->timer);
    }
    free(fb);
    return NATTER_ERR_NOMEM;
  }
  c->tcpfb = fb;
  return 0;
}

void nt_tcp_fallback_free(natter_client *c) {
  struct nt_tcp_fallback *fb = c->tcpfb;
  if (!fb) {
    return;
  }
  drop_link(c, &fb->broker_link);
  drop_link(c, &fb->relay_link);
  event_free(fb->timer);
  if (fb->probe_ev) {
    event_free(fb->probe_ev);
  }
  free(fb);
  c->tcpfb = NULL;
}

void nt_tcp_fallback_on_connect(natter_client *c) {
  struct nt_tcp_fallback *fb = c->tcpfb;
  if (!fb || fb->broker_link) {
    return;
  }
  struct timeval tv = {NT_TCP_FALLBACK_AFTER_MS / 1000,
                       (NT_TCP_FALLBACK_AFTER_MS % 1000) * 1000};
  event_add(fb->timer, &tv);
}

void nt_tcp_fallback_on_established(natter_client *c) {
  if (c->tcpfb) {
    event_del(c->tcpfb->timer);
  }
}

int nt_tcp_fallback_on_closed(natter_client *c) {
  struct nt_tcp_fallback *fb = c->tcpfb;
  if (!fb) {
    return 0;
  }
  if (fb->restarting) {
    fb->restarting = 0;
    return 1;
  }
  if (fb->broker_link && !nt_tcp_link_is_connected(fb->broker_link)) {
    return 2;
  }
  return 0;
}

void nt_tcp_fallback_on_relay(natter_client *c, const nt_addr *relay) {
  struct nt_tcp_fallback *fb = c->tcpfb;
  if (!fb || !fb->broker_link || !relay->len) {
    return;
  }
  if (fb->relay_link) {
    if (nt_addr_equal((const struct sockaddr *)&relay->ss,
                      (const struct sockaddr *)&nt_tcp_link_pseudo(
                          fb->relay_link)->ss)) {
      return;
    }
    drop_link(c, &fb->relay_link);
  }
  fb->relay_link =
      open_link(c, relay, NT_TCPFRAME_TO_RELAY, &relay_link_callbacks);
  if (fb->relay_link) {
    nt_info(&c->log, "the broker's relay is reached over TCP too");
  }
}

int nt_tcp_fallback_probe_reply(natter_client *c, const uint8_t *nonce) {
  struct nt_tcp_fallback *fb = c->tcpfb;
  if (!fb || !fb->probing || !fb->broker_link ||
      memcmp(nonce, fb->nonce, sizeof(fb->nonce)) != 0) {
    return 0;
  }
  fb->probing = 0;
  nt_info(&c->log, "UDP to the broker works again: leaving TCP (the same "
                   "connections carry on over UDP)");
  event_del(fb->probe_ev);
  drop_link(c, &fb->broker_link);
  drop_link(c, &fb->relay_link);
  if (c->broker_conn) {
    nt_conn_kick(c->broker_conn);
  }
  if (c->peers) {
    nt_peers_on_udp_back(c->peers);
  }
  return 1;
}

int nt_tcp_fallback_active(const natter_client *c) {
  return c->tcpfb && c->tcpfb->broker_link &&
         nt_tcp_link_is_connected(c->tcpfb->broker_link);
}

unsigned nt_tcp_fallback_port(const natter_client *c) {
  return c->tcpfb ? c->tcpfb->port : 0;
}
