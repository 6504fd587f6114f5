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
 *   natter-flood ask BROKER BIND NAME PEER SESSIONS INTERVAL_MS SECONDS KIND
 *       SESSIONS connections (one key) check in as NAME and each asks for
 *       PEER every INTERVAL_MS for SECONDS. KIND: connect (ordinary
 *       requests), check (diagnostic sessions asking for checks), or
 *       check-names (the same, session i checking in as NAMEi), or v1
 *       (a CheckIn of protocol version 1, nothing more). Prints
 *       what the broker answered: introductions (the listener's
 *       addresses), results by code and the last message.
 *
 * Every run ends by itself: a deadline bounds it. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_client.h"

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
  nt_hclient ctl, ctl2; /* control: what the broker sends is dropped */
} flood;

/* One connection of "ask". */
typedef struct asker {
  flood *f;
  unsigned idx;
  nt_hclient bc;
  struct event *tick;
  uint32_t next_id;
  int checked_in;
} asker;

static struct {
  unsigned interval_ms;
  const char *kind;
  unsigned checked_in, requests, introductions, results, denied;
  unsigned relay_tokens;
  char last_result[NT_CONTROL_TEXT_MAX + 1];
} ask;

static void on_established(nt_conn *conn, void *ud);
static void on_closed(nt_conn *conn, nt_close_reason reason, uint64_t code,
                      const char *message, void *ud);
static const nt_conn_callbacks callbacks = {on_established, on_closed, NULL,
                                            NULL,           NULL,      NULL, NULL};

static void send_check_in(flood *f, nt_hclient *c) {
  nt_hclient_check_in in = {.name = f->name ? f->name : "flood",
                            .local = f->cands,
                            .nlocal = f->ncands};
  nt_hclient_send_check_in(c, &in);
}

static void send_connect(nt_hclient *c, const char *peer, uint32_t id) {
  nt_control msg = {.type = NT_CONTROL_CONNECT_REQUEST};
  msg.u.connect_request.request_id = id;
  snprintf(msg.u.connect_request.peer, sizeof(msg.u.connect_request.peer),
           "%s", peer);
  nt_hclient_send(c, &msg);
}

static void ask_tick(evutil_socket_t fd, short what, void *arg) {
  asker *a = arg;
  nt_control msg = {.type = NT_CONTROL_CONNECT_REQUEST};
  (void)fd;
  (void)what;
  if (!a->bc.ctl) {
    return;
  }
  msg.u.connect_request.request_id = ++a->next_id;
  snprintf(msg.u.connect_request.peer, sizeof(msg.u.connect_request.peer), "%s",
           a->f->peer);
  msg.u.connect_request.check = strcmp(ask.kind, "connect") != 0;
  nt_hclient_send(&a->bc, &msg);
  ask.requests++;
  struct timeval tv = {(time_t)(ask.interval_ms / 1000),
                       (suseconds_t)(ask.interval_ms % 1000) * 1000};
  event_add(a->tick, &tv);
}

static int ask_msg(const nt_control *msg, void *ud) {
  asker *a = ud;
  if (!msg) {
    return 0;
  }
  if (msg->type == NT_CONTROL_CHECK_IN_RESULT) {
    if (msg->u.check_in_result.code == NT_CODE_OK && !a->checked_in) {
      a->checked_in = 1;
      ask.checked_in++;
      ask_tick(-1, 0, a);
    } else if (msg->u.check_in_result.code != NT_CODE_OK) {
      snprintf(ask.last_result, sizeof(ask.last_result), "check-in: %.120s",
               msg->u.check_in_result.message);
    }
  } else if (msg->type == NT_CONTROL_INTRODUCTION) {
    ask.introductions++;
    ask.relay_tokens += msg->u.introduction.relay_port != 0;
  } else if (msg->type == NT_CONTROL_CONNECT_RESULT) {
    ask.results++;
    ask.denied += msg->u.connect_result.code == NT_CODE_DENIED;
    snprintf(ask.last_result, sizeof(ask.last_result), "%s",
             msg->u.connect_result.message);
  }
  return 0;
}

static void ask_established(nt_conn *conn, void *ud) {
  asker *a = ud;
  char name[NT_NAME_MAX + 1];
  a->f->established++;
  if (strcmp(ask.kind, "check-names") == 0) {
    snprintf(name, sizeof(name), "%.50s%u", a->f->name, a->idx + 1);
  } else {
    snprintf(name, sizeof(name), "%s", a->f->name);
  }
  /* v1: a client of the first protocol, which the broker must tell to
   * upgrade. */
  nt_hclient_check_in in = {.name = name,
                            .protocol_version =
                                strcmp(ask.kind, "v1") == 0 ? 1 : 0,
                            .diagnostic = strcmp(ask.kind, "connect") != 0};
  nt_hclient_start(&a->bc, conn, &in);
}

static void ask_closed(nt_conn *conn, nt_close_reason reason, uint64_t code,
                       const char *message, void *ud) {
  asker *a = ud;
  nt_hclient_closed(&a->bc);
  on_closed(conn, reason, code, message, a->f);
}

static const nt_conn_callbacks ask_callbacks = {
    ask_established, ask_closed, NULL, NULL, NULL, NULL, NULL};

static void on_established(nt_conn *conn, void *ud) {
  flood *f = ud;
  f->established++;
  if (strcmp(f->mode, "idle") == 0) {
    return; /* hold it, never check in */
  }
  nt_hclient *c = &f->ctl;
  if (nt_hclient_open(c, conn) != 0) {
    return;
  }
  if (strcmp(f->mode, "aim") == 0) {
    send_check_in(f, c);
    send_connect(c, f->peer, 1);
    return;
  }
  if (strcmp(f->kase, "oversized") == 0) {
    uint8_t hdr[] = {0xff, 0xff, 0x7f}; /* ~2 MB body announced */
    nt_stream_write(c->ctl, hdr, sizeof(hdr));
  } else if (strcmp(f->kase, "malformed") == 0) {
    uint8_t junk[] = {6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    nt_stream_write(c->ctl, junk, sizeof(junk));
  } else if (strcmp(f->kase, "flood") == 0) {
    send_check_in(f, c);
    for (uint32_t i = 1; i <= 1000; i++) {
      send_connect(c, "nobody", i);
    }
  } else if (strcmp(f->kase, "second-stream") == 0) {
    send_check_in(f, c);
    if (nt_hclient_open(&f->ctl2, conn) == 0) {
      send_check_in(f, &f->ctl2);
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

static int usage(void) {
  fprintf(stderr, "usage: natter-flood idle BROKER BIND N SECONDS\n"
                  "       natter-flood control BROKER BIND CASE\n"
                  "       natter-flood aim BROKER BIND NAME PEER CANDIDATE...\n"
                  "       natter-flood ask BROKER BIND NAME PEER SESSIONS "
                  "INTERVAL_MS SECONDS connect|check|check-names|v1\n");
  return 2;
}

int main(int argc, char **argv) {
  flood f;
  char err[300];
  nt_addr bind;
  unsigned seconds = 5;

  memset(&f, 0, sizeof(f));
  if (argc < 5) {
    return usage();
  }
  f.mode = argv[1];
  f.log.level = NATTER_LOG_WARN;
  nt_hclient_init(&f.ctl, NULL, NULL, NT_HCLIENT_ADMIT_ASK);
  nt_hclient_init(&f.ctl2, NULL, NULL, NT_HCLIENT_ADMIT_ASK);
  if (nt_hclient_parse_args("natter-flood", argv[2], argv[3], &f.broker,
                            &bind) != 0) {
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
  } else if (strcmp(f.mode, "ask") == 0 && argc == 10) {
    f.name = argv[4];
    f.peer = argv[5];
    f.total = (unsigned)atoi(argv[6]);
    ask.interval_ms = (unsigned)atoi(argv[7]);
    seconds = (unsigned)atoi(argv[8]);
    ask.kind = argv[9];
    if (ask.interval_ms == 0 ||
        (strcmp(ask.kind, "connect") != 0 && strcmp(ask.kind, "check") != 0 &&
         strcmp(ask.kind, "check-names") != 0 && strcmp(ask.kind, "v1") != 0)) {
      return usage();
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
  if (nt_hclient_endpoint(&f.ep, f.base, &bind, f.id, &f.log, 5000, err,
                          sizeof(err)) != 0) {
    fprintf(stderr, "natter-flood: %s\n", err);
    return 1;
  }
  asker *askers = NULL;
  if (strcmp(f.mode, "ask") == 0) {
    askers = calloc(f.total, sizeof(*askers));
    if (!askers) {
      return 1;
    }
  }
  for (unsigned i = 0; i < f.total; i++) {
    nt_conn *conn;
    int rv;
    if (askers) {
      askers[i].f = &f;
      askers[i].idx = i;
      nt_hclient_init(&askers[i].bc, ask_msg, &askers[i], NT_HCLIENT_ADMIT_ASK);
      askers[i].tick = evtimer_new(f.base, ask_tick, &askers[i]);
      rv = nt_endpoint_connect(f.ep, (struct sockaddr *)&f.broker.ss,
                               f.broker.len, NULL, &ask_callbacks, &askers[i],
                               &conn);
    } else {
      rv = nt_endpoint_connect(f.ep, (struct sockaddr *)&f.broker.ss,
                               f.broker.len, NULL, &callbacks, &f, &conn);
    }
    if (rv != 0) {
      fprintf(stderr, "natter-flood: cannot start connection %u\n", i);
      break;
    }
  }
  struct event *done = nt_hclient_deadline(f.base, seconds);
  event_base_dispatch(f.base);
  printf("established %u\nrefused %u%s%s\nclosed %u%s%s\n", f.established,
         f.refused, f.refused ? ": " : "", f.last_refusal, f.closed,
         f.closed ? ": " : "", f.last_close);
  if (askers) {
    printf("checked-in %u\nrequests %u\nintroductions %u\nrelay-tokens "
           "%u\nresults %u\ndenied %u\nlast-result %s\n",
           ask.checked_in, ask.requests, ask.introductions, ask.relay_tokens,
           ask.results, ask.denied, ask.last_result);
  }
  if (done) {
    event_free(done);
  }
  nt_endpoint_free(f.ep);
  for (unsigned i = 0; askers && i < f.total; i++) {
    event_free(askers[i].tick);
    nt_hclient_reset(&askers[i].bc);
  }
  nt_hclient_reset(&f.ctl);
  nt_hclient_reset(&f.ctl2);
  free(askers);
  nt_identity_free(f.id);
  event_base_free(f.base);
  return 0;
}
