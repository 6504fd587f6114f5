/* natter-hog: a client of a broker that tries to take more than its share
 * of a shared resource, for the budget tests (tests/integration/
 * test_budgets.sh). Each session has a key of its own (an endpoint of
 * its own), all from the address BIND. Built on the library's internals
 * in test builds only; never installed.
 *
 *   natter-hog names BROKER BIND N PREFIX
 *       N sessions check in under new names PREFIX-1 .. PREFIX-N, one
 *       after the other; prints how many were bound and how many refused
 *       (with the last reason).
 *   natter-hog checks BROKER BIND N PEER PER SECONDS
 *       N check sessions (new names chk-BIND-1 ..) each ask for PER checks
 *       of PEER, and again every second for SECONDS (renewing what the
 *       broker frees); prints how many checks were granted and how many
 *       refused (with the last reason).
 *   natter-hog checks-one-key BROKER BIND N PEER PER SECONDS
 *       the same with one key for all N sessions.
 *   natter-hog status BROKER BIND N SECONDS
 *       N HTTP/3 status connections, one after the other, held open for
 *       SECONDS; prints how many were established (also as they are) and
 *       how many the broker closed or refused (with the last reason).
 *
 * Every run ends by itself: a deadline bounds it. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_client.h"

#define HOG_MAX_SESSIONS 64

typedef struct hog hog;

typedef struct session {
  hog *h;
  unsigned index;
  nt_endpoint *ep;
  nt_identity *id;
  nt_conn *conn;
  nt_hclient bc;
  int checked_in, done, established;
  uint32_t next_id;
} session;

struct hog {
  struct event_base *base;
  nt_log log;
  nt_addr broker, bind;
  const char *mode, *prefix, *peer;
  unsigned n, per, seconds;
  int one_key;      /* every session under the first one's key */
  unsigned started; /* names: sessions started so far */
  session sessions[HOG_MAX_SESSIONS];
  unsigned bound, refused, granted, established, closed;
  char last_refusal[256], last_close[256];
  struct event *tick;
};

static void start_session(hog *h, unsigned i);

static void ask_checks(session *s) {
  for (unsigned i = 0; i < s->h->per; i++) {
    nt_control msg = {.type = NT_CONTROL_CONNECT_REQUEST};
    msg.u.connect_request.request_id = ++s->next_id;
    msg.u.connect_request.check = 1;
    snprintf(msg.u.connect_request.peer, sizeof(msg.u.connect_request.peer),
             "%s", s->h->peer);
    nt_hclient_send(&s->bc, &msg);
  }
}

/* The session is over (names: the next one starts). */
static void finish(session *s) {
  if (s->done) {
    return;
  }
  s->done = 1;
  if (s->conn) {
    nt_conn_close(s->conn, 0, "done");
  }
  hog *h = s->h;
  /* status: the next one started when this one was established. */
  if (strcmp(h->mode, "checks") != 0 && !s->established && h->started < h->n) {
    start_session(h, h->started);
  }
}

/* Returns 1 once the session is over: the rest is not read. */
static int on_msg(const nt_control *msg, void *ud) {
  session *s = ud;
  hog *h = s->h;
  if (!msg) {
    return 0;
  }
  switch (msg->type) {
  case NT_CONTROL_CHECK_IN_RESULT:
    if (msg->u.check_in_result.code != NT_CODE_OK) {
      h->refused++;
      snprintf(h->last_refusal, sizeof(h->last_refusal), "%s",
               msg->u.check_in_result.message);
      finish(s);
      return 1;
    }
    s->checked_in = 1;
    if (strcmp(h->mode, "names") == 0) {
      h->bound++;
      finish(s);
      return 1;
    }
    ask_checks(s);
    break;
  case NT_CONTROL_INTRODUCTION:
    h->granted++;
    break;
  case NT_CONTROL_CONNECT_RESULT:
    h->refused++;
    snprintf(h->last_refusal, sizeof(h->last_refusal), "%s",
             msg->u.connect_result.message);
    break;
  default:
    break;
  }
  return 0;
}

static void on_established(nt_conn *conn, void *ud) {
  session *s = ud;
  hog *h = s->h;
  h->established++;
  if (strcmp(h->mode, "status") == 0) {
    s->established = 1;
    /* Hold it: a reader that never reads. The next one starts now, so
     * that handshakes never overlap. */
    printf("established %u\n", h->established);
    fflush(stdout);
    if (h->started < h->n) {
      start_session(h, h->started);
    }
    return;
  }
  char name[NT_NAME_MAX + 1];
  snprintf(name, sizeof(name), "%s-%u", h->prefix, s->index + 1);
  nt_hclient_check_in in = {.name = name,
                            .diagnostic = strcmp(h->mode, "checks") == 0};
  nt_hclient_start(&s->bc, conn, &in);
}

static void on_closed(nt_conn *conn, nt_close_reason reason, uint64_t code,
                      const char *message, void *ud) {
  session *s = ud;
  hog *h = s->h;
  (void)conn;
  (void)code;
  s->conn = NULL;
  nt_hclient_closed(&s->bc);
  if (strcmp(h->mode, "status") == 0 || reason == NT_CLOSE_REFUSED) {
    h->closed++;
    snprintf(h->last_close, sizeof(h->last_close), "%s",
             message && message[0] ? message : "closed");
  }
  finish(s);
}

static const nt_conn_callbacks callbacks = {on_established, on_closed, NULL,
                                            NULL,           NULL,      NULL, NULL};

static void start_session(hog *h, unsigned i) {
  session *s = &h->sessions[i];
  char err[300];

  h->started = i + 1;
  s->h = h;
  s->index = i;
  nt_hclient_init(&s->bc, on_msg, s, NT_HCLIENT_ADMIT_ASK);
  if (!(h->one_key && i > 0) &&
      nt_identity_new_ephemeral(&s->id, err, sizeof(err)) != 0) {
    fprintf(stderr, "natter-hog: %s\n", err);
    exit(1);
  }
  if (nt_hclient_endpoint(&s->ep, h->base, &h->bind,
                          h->one_key ? h->sessions[0].id : s->id, &h->log, 5000,
                          err, sizeof(err)) != 0) {
    fprintf(stderr, "natter-hog: %s\n", err);
    exit(1);
  }
  int rv =
      strcmp(h->mode, "status") == 0
          ? nt_endpoint_connect_h3(s->ep, (struct sockaddr *)&h->broker.ss,
                                   h->broker.len, NULL, &callbacks, s, &s->conn)
          : nt_endpoint_connect(s->ep, (struct sockaddr *)&h->broker.ss,
                                h->broker.len, NULL, &callbacks, s, &s->conn);
  if (rv != 0) {
    fprintf(stderr, "natter-hog: cannot start session %u\n", i);
    exit(1);
  }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  hog *h = arg;
  (void)fd;
  (void)what;
  for (unsigned i = 0; i < h->n; i++) {
    if (h->sessions[i].checked_in && h->sessions[i].conn) {
      ask_checks(&h->sessions[i]);
    }
  }
}

static int usage(void) {
  fprintf(stderr, "usage: natter-hog names BROKER BIND N PREFIX\n"
                  "       natter-hog checks BROKER BIND N PEER PER SECONDS\n"
                  "       natter-hog checks-one-key BROKER BIND N PEER PER "
                  "SECONDS\n"
                  "       natter-hog status BROKER BIND N SECONDS\n");
  return 2;
}

int main(int argc, char **argv) {
  static hog h;
  char prefix[80];

  if (argc < 5) {
    return usage();
  }
  h.mode = argv[1];
  h.n = (unsigned)atoi(argv[4]);
  h.log.level = NATTER_LOG_ERROR;
  h.seconds = 60;
  if (nt_hclient_parse_args("natter-hog", argv[2], argv[3], &h.broker,
                            &h.bind) != 0) {
    return 2;
  }
  if (strcmp(h.mode, "checks-one-key") == 0) {
    h.mode = "checks";
    h.one_key = 1;
  }
  if (strcmp(h.mode, "names") == 0 && argc == 6) {
    h.prefix = argv[5];
  } else if (strcmp(h.mode, "checks") == 0 && argc == 8) {
    snprintf(prefix, sizeof(prefix), "chk-%s", argv[3]);
    h.prefix = prefix;
    h.peer = argv[5];
    h.per = (unsigned)atoi(argv[6]);
    h.seconds = (unsigned)atoi(argv[7]);
  } else if (strcmp(h.mode, "status") == 0 && argc == 6) {
    h.seconds = (unsigned)atoi(argv[5]);
  } else {
    return usage();
  }
  if (h.n == 0 || h.n > HOG_MAX_SESSIONS || h.seconds == 0 || h.seconds > 120 ||
      h.per > 16) {
    return usage();
  }
  h.base = event_base_new();
  if (!h.base) {
    return 1;
  }
  if (strcmp(h.mode, "checks") != 0) {
    start_session(&h, 0); /* each next one when the last is answered */
  } else {
    for (unsigned i = 0; i < h.n; i++) {
      start_session(&h, i);
    }
  }
  if (strcmp(h.mode, "checks") == 0) {
    struct timeval second = {1, 0};
    h.tick = event_new(h.base, -1, EV_PERSIST, tick_cb, &h);
    event_add(h.tick, &second);
  }
  struct event *done = nt_hclient_deadline(h.base, h.seconds);
  /* names: ends when every session was answered, or at the deadline. */
  while (event_base_loop(h.base, EVLOOP_ONCE) == 0 &&
         !event_base_got_break(h.base)) {
    if (strcmp(h.mode, "names") == 0 && h.bound + h.refused >= h.n) {
      break;
    }
  }
  printf("bound %u\ngranted %u\nrefused %u%s%s\nestablished %u\nclosed "
         "%u%s%s\n",
         h.bound, h.granted, h.refused, h.refused ? ": " : "", h.last_refusal,
         h.established, h.closed, h.closed ? ": " : "", h.last_close);
  fflush(stdout);
  if (done) {
    event_free(done);
  }
  if (h.tick) {
    event_free(h.tick);
  }
  for (unsigned i = 0; i < h.n; i++) {
    nt_endpoint_free(h.sessions[i].ep);
  }
  for (unsigned i = 0; i < h.n; i++) {
    nt_identity_free(h.sessions[i].id);
    nt_hclient_reset(&h.sessions[i].bc);
  }
  event_base_free(h.base);
  return 0;
}
