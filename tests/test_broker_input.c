/* A broker fed malformed control streams by authenticated clients must
 * drop those clients with a reason, never crash, and keep serving. The
 * clients here are raw QUIC connections (the internal endpoint API), so
 * they can send what a real natter client never would. */
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "codec/control.h"
#include "codec/wire.h"
#include "natter.h"
#include "quic/endpoint.h"
#include "test.h"
#include "trust/tls.h"

#define DEADLINE_MS 8000

typedef struct probe {
  struct event_base *base;
  const uint8_t *payload;
  size_t len;
  int established, closed;
  nt_close_reason reason;
  char message[256];
} probe;

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

static void on_established(nt_conn *conn, void *ud) {
  probe *p = ud;
  nt_stream *s;
  p->established = 1;
  if (p->len == 0) {
    event_base_loopbreak(p->base); /* only checking that it connects */
    return;
  }
  if (nt_conn_open_stream(conn, &s) == 0) {
    nt_stream_write(s, p->payload, p->len);
  }
}

static void on_closed(nt_conn *conn, nt_close_reason reason,
                      uint64_t app_code, const char *message, void *ud) {
  probe *p = ud;
  (void)conn;
  (void)app_code;
  p->closed = 1;
  p->reason = reason;
  snprintf(p->message, sizeof(p->message), "%s", message);
  event_base_loopbreak(p->base);
}

static const nt_conn_callbacks probe_cbs = {on_established, on_closed, NULL,
                                            NULL,           NULL,      NULL, NULL};

static const nt_endpoint_callbacks no_ep_cbs = {NULL, NULL, NULL, NULL, NULL};

static void quiet(natter_log_level level, const char *line, void *ud) {
  (void)level;
  (void)line;
  (void)ud;
}

/* Sends |payload| on a fresh connection's first stream and runs until the
 * broker closes the connection (or, for an empty payload, until it is
 * established); |p| tells what happened. */
static void send_to_broker(uint16_t port, const uint8_t *payload, size_t len,
                           struct event_base *base, probe *p) {
  char err[256];
  nt_identity *id = NULL;
  nt_endpoint *ep = NULL;
  nt_endpoint_config cfg;
  nt_log log = {quiet, NATTER_LOG_ERROR, NULL};
  nt_conn *conn;
  struct sockaddr_in to;

  memset(p, 0, sizeof(*p));
  p->base = base;
  p->payload = payload;
  p->len = len;
  CHECK(nt_identity_new_ephemeral(&id, err, sizeof(err)) == 0);
  memset(&cfg, 0, sizeof(cfg));
  cfg.bind.ss.ss_family = AF_INET;
  ((struct sockaddr_in *)&cfg.bind.ss)->sin_addr.s_addr =
      htonl(INADDR_LOOPBACK);
  cfg.bind.len = sizeof(struct sockaddr_in);
  cfg.identity = id;
  cfg.callbacks = &no_ep_cbs;
  cfg.log = &log;
  cfg.handshake_timeout_ms = 3000;
  cfg.idle_timeout_ms = 5000;
  CHECK(nt_endpoint_new(&ep, base, &cfg, err, sizeof(err)) == 0);
  memset(&to, 0, sizeof(to));
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  CHECK(nt_endpoint_connect(ep, (struct sockaddr *)&to, sizeof(to), NULL,
                            &probe_cbs, p, &conn) == 0);
  struct event *deadline = evtimer_new(base, on_deadline, base);
  struct timeval tv = {DEADLINE_MS / 1000, 0};
  evtimer_add(deadline, &tv);
  event_base_dispatch(base);
  event_free(deadline);
  nt_endpoint_free(ep);
  nt_identity_free(id);
}

static void test_malformed_control(void) {
  struct event_base *base = event_base_new();
  natter_broker_config bcfg;
  natter_broker *b = NULL;
  probe p;

  natter_broker_config_default(&bcfg);
  bcfg.listen = "127.0.0.1:0";
  bcfg.identity_file = "";
  bcfg.registry = ""; /* in memory: nothing written to $HOME */
  bcfg.log = quiet;
  CHECK(natter_broker_new(&b, base, &bcfg) == 0);
  uint16_t port = natter_broker_port(b);

  /* A length prefix that is not a varint of at most 3 bytes. */
  const uint8_t bad_framing[] = {0xff, 0xff, 0xff, 0xff};
  send_to_broker(port, bad_framing, sizeof(bad_framing), base, &p);
  CHECK(p.established && p.closed && p.reason == NT_CLOSE_PEER);
  CHECK_STR_CONTAINS(p.message, "framing");

  /* A well-framed body that is not a protobuf Control message. */
  uint8_t garbage[1 + 20];
  garbage[0] = 20;
  memset(garbage + 1, 0xff, 20);
  send_to_broker(port, garbage, sizeof(garbage), base, &p);
  CHECK(p.established && p.closed && p.reason == NT_CLOSE_PEER);
  CHECK_STR_CONTAINS(p.message, "malformed");

  /* ConnectRequest (field 3) before any check-in. */
  const uint8_t early[] = {6, 0x1a, 4, 0x08, 0x01, 0x12, 0x00};
  send_to_broker(port, early, sizeof(early), base, &p);
  CHECK(p.established && p.closed && p.reason == NT_CLOSE_PEER);
  CHECK_STR_CONTAINS(p.message, "before check-in");

  /* A second CheckIn sent before the first is answered: it waits, as
   * everything after a CheckIn does, until the registry has bound the
   * first one's name, and is then refused. Each is
   * Control{check_in{version 2, "x"}}. */
  _Static_assert(NT_CONTROL_PROTOCOL_VERSION == 2, "the bytes say version 2");
  const uint8_t twice[] = {7, 0x0a, 5, 0x08, 0x02, 0x12, 0x01, 'x',
                           7, 0x0a, 5, 0x08, 0x02, 0x12, 0x01, 'x'};
  send_to_broker(port, twice, sizeof(twice), base, &p);
  CHECK(p.established && p.closed && p.reason == NT_CLOSE_PEER);
  CHECK_STR_CONTAINS(p.message, "checked in twice");

  /* An empty Control (no message set). */
  const uint8_t empty[] = {0};
  send_to_broker(port, empty, sizeof(empty), base, &p);
  CHECK(p.closed && p.reason == NT_CLOSE_PEER);
  CHECK_STR_CONTAINS(p.message, "unexpected");

  /* The broker still serves: a fresh connection is established. */
  const uint8_t nothing[] = {0x01};
  send_to_broker(port, nothing, 0, base, &p);
  CHECK(p.established);

  natter_broker_stats st;
  natter_broker_get_stats(b, &st);
  CHECK(st.bytes_received > 0);
  natter_broker_free(b);
  event_base_free(base);
}

static const nt_test_case cases[] = {
    {"malformed_control", test_malformed_control},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
