/* natter-flood: a hostile client of a broker, for the denial-of-service
 * tests (tests/integration/test_flood.sh). Built on the library's
 * internals in test builds only; never installed.
 *
 *   natter-flood idle BROKER BIND N SECONDS
 *       N QUIC connections from the address BIND that never check in;
 *       prints how many were established, refused (with the reason) and
 *       closed (with the reason) by the broker within SECONDS.
 *   natter-flood control BROKER BIND CASE
 *       one connection that opens its control stream and sends CASE:
 *       oversized (a length prefix past the limit), malformed (garbage
 *       inside valid framing), flood (1000 ConnectRequests after a
 *       CheckIn), second-stream (a second control stream), silent (no
 *       CheckIn at all). Prints how the broker answered.
 *   natter-flood aim BROKER BIND NAME PEER CANDIDATE...
 *       checks in as NAME reporting CANDIDATEs (IP:PORT) as its own LAN
 *       addresses, asks for PEER, and waits 4 s: the test listens on the
 *       candidates to see whether PEER probes them.
 *
 * Every run ends by itself: a deadline bounds it. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic/endpoint.h"
#include "natter.h"
#include "trust/tls.h"
#include "codec/control.h"

typedef struct flood {
  struct event_base *base;
  nt_endpoint *ep;
  nt_identity *id;
  nt_log log;
  nt_addr broker;
  const char *mode;
  const char *name;
  const char *peer;
  nt_addr cands[8];
  size_t ncands;
  const char *kase;
  unsigned established, refused, closed, total;
  char last_refusal[256], last_close[256];
} flood;

static void on_established(nt_conn *conn, void *ud);
static void on_closed(nt_conn *conn, nt_close_reason reason, uint64_t code,
                      const char *message, void *ud);
static const nt_conn_callbacks callbacks = {on_established, on_closed, NULL,
                                            NULL,           NULL,      NULL};

static void send_msg(nt_stream *s, const nt_control *msg) {
  uint8_t frame[NT_CONTROL_FRAME_MAX];
  size_t len = nt_control_encode(frame, msg);
  if (len) {
    nt_stream_write(s, frame, len);
  }
}

static void send_check_in(flood *f, nt_stream *s) {
  nt_control msg = {.type = NT_CONTROL_CHECK_IN};
  nt_check_in *in = &msg.u.check_in;
  for (size_t i = 0; i < f->ncands && i < NT_MAX_LOCAL_ADDRS; i++) {
    in->local[in->nlocal++] = f->cands[i];
  }
  in->protocol_version = NT_CONTROL_PROTOCOL_VERSION;
  snprintf(in->name, sizeof(in->name), "%s", f->name ? f->name : "flood");
  send_msg(s, &msg);
}

static void send_connect(nt_stream *s, const char *peer, uint32_t id) {
  nt_control msg = {.type = NT_CONTROL_CONNECT_REQUEST};
  msg.u.connect_request.request_id = id;
  snprintf(msg.u.connect_request.peer, sizeof(msg.u.connect_request.peer),
           "%s", peer);
  send_msg(s, &msg);
}

static void ignore_recv(nt_stream *s, const uint8_t *data, size_t len,
                        int fin, void *ud) {
  (void)data;
  (void)fin;
  (void)ud;
  nt_stream_consume(s, len);
}

static const nt_stream_callbacks stream_callbacks = {ignore_recv, NULL, NULL};

static nt_stream *open_ctl(nt_conn *conn) {
  nt_stream *s = NULL;
  if (nt_conn_open_stream(conn, &s) != 0) {
    return NULL;
  }
  nt_stream_set_callbacks(s, &stream_callbacks, NULL);
  return s;
}

static void on_established(nt_conn *conn, void *ud) {
  flood *f = ud;
  f->established++;
  if (strcmp(f->mode, "idle") == 0) {
    return; /* hold it, never check in */
  }
  nt_stream *s = open_ctl(conn);
  if (!s) {
    return;
  }
  if (strcmp(f->mode, "aim") == 0) {
    send_check_in(f, s);
    send_connect(s, f->peer, 1);
    return;
  }
  if (strcmp(f->kase, "oversized") == 0) {
    uint8_t hdr[] = {0xff, 0xff, 0x7f}; /* ~2 MB body announced */
    nt_stream_write(s, hdr, sizeof(hdr));
  } else if (strcmp(f->kase, "malformed") == 0) {
    uint8_t junk[] = {6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    nt_stream_write(s, junk, sizeof(junk));
  } else if (strcmp(f->kase, "flood") == 0) {
    send_check_in(f, s);
    for (uint32_t i = 1; i <= 1000; i++) {
      send_connect(s, "nobody", i);
    }
  } else if (strcmp(f->kase, "second-stream") == 0) {
    send_check_in(f, s);
    nt_stream *s2 = open_ctl(conn);
    if (s2) {
      send_check_in(f, s2);
    }
  }
  /* "silent": nothing at all */
}

static void on_closed(nt_conn *conn, nt_close_reason reason, uint64_t code,
                      const char *message, void *ud) {
  flood *f = ud;
  (void)conn;
  (void)code;
  if (reason == NT_CLOSE_REFUSED) {
    f->refused++;
    snprintf(f->last_refusal, sizeof(f->last_refusal), "%s", message);
  } else {
    f->closed++;
    snprintf(f->last_close, sizeof(f->last_close), "%s",
             message[0] ? message
             : reason == NT_CLOSE_HANDSHAKE_TIMEOUT ? "handshake timeout"
             : reason == NT_CLOSE_IDLE              ? "idle timeout"
                                                    : "closed");
  }
}

static void done_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

static int usage(void) {
  fprintf(stderr,
          "usage: natter-flood idle BROKER BIND N SECONDS\n"
          "       natter-flood control BROKER BIND CASE\n"
          "       natter-flood aim BROKER BIND NAME PEER CANDIDATE...\n");
  return 2;
}

int main(int argc, char **argv) {
  flood f;
  char err[300];
  nt_endpoint_config cfg;
  unsigned seconds = 5;

  memset(&f, 0, sizeof(f));
  if (argc < 5) {
    return usage();
  }
  f.mode = argv[1];
  f.log.level = NATTER_LOG_WARN;
  if (nt_addr_parse(&f.broker, argv[2], "127.0.0.1", err, sizeof(err)) != 0) {
    fprintf(stderr, "natter-flood: broker: %s\n", err);
    return 2;
  }
  memset(&cfg, 0, sizeof(cfg));
  char bind[80];
  snprintf(bind, sizeof(bind), "%s:0", argv[3]);
  if (nt_addr_parse(&cfg.bind, bind, "127.0.0.1", err, sizeof(err)) != 0) {
    fprintf(stderr, "natter-flood: bind: %s\n", err);
    return 2;
  }
  if (strcmp(f.mode, "idle") == 0 && argc == 6) {
    f.total = (unsigned)atoi(argv[4]);
    seconds = (unsigned)atoi(argv[5]);
  } else if (strcmp(f.mode, "control") == 0 && argc == 5) {
    f.total = 1;
    f.kase = argv[4];
  } else if (strcmp(f.mode, "aim") == 0 && argc >= 7 && argc <= 14) {
    f.total = 1;
    f.name = argv[4];
    f.peer = argv[5];
    seconds = 4;
    for (int i = 6; i < argc; i++) {
      if (nt_addr_parse(&f.cands[f.ncands++], argv[i], "127.0.0.1", err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "natter-flood: candidate: %s\n", err);
        return 2;
      }
    }
  } else {
    return usage();
  }
  if (f.total == 0 || f.total > 5000 || seconds == 0 || seconds > 120) {
    return usage();
  }
  f.base = event_base_new();
  if (!f.base || nt_identity_new_ephemeral(&f.id, err, sizeof(err)) != 0) {
    fprintf(stderr, "natter-flood: %s\n", err);
    return 1;
  }
  static const nt_endpoint_callbacks no_ep_callbacks = {NULL, NULL, NULL,
                                                       NULL, NULL};
  cfg.callbacks = &no_ep_callbacks;
  cfg.identity = f.id;
  cfg.log = &f.log;
  cfg.handshake_timeout_ms = 5000;
  cfg.idle_timeout_ms = 30000;
  cfg.keepalive_ms = 5000; /* keep the broker's state alive */
  if (nt_endpoint_new(&f.ep, f.base, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "natter-flood: %s\n", err);
    return 1;
  }
  for (unsigned i = 0; i < f.total; i++) {
    nt_conn *conn;
    if (nt_endpoint_connect(f.ep, (struct sockaddr *)&f.broker.ss,
                            f.broker.len, NULL, &callbacks, &f, &conn) != 0) {
      fprintf(stderr, "natter-flood: cannot start connection %u\n", i);
      break;
    }
  }
  struct timeval tv = {seconds, 0};
  struct event *done = evtimer_new(f.base, done_cb, f.base);
  evtimer_add(done, &tv);
  event_base_dispatch(f.base);
  printf("established %u\nrefused %u%s%s\nclosed %u%s%s\n", f.established,
         f.refused, f.refused ? ": " : "", f.last_refusal, f.closed,
         f.closed ? ": " : "", f.last_close);
  event_free(done);
  nt_endpoint_free(f.ep);
  nt_identity_free(f.id);
  event_base_free(f.base);
  return 0;
}
