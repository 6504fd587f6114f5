/* A client's control session with a broker, for the hostile tools: see
 * broker_client.h. */
#include "broker_client.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "base/addr.h"

void nt_hclient_init(nt_hclient *c, nt_hclient_msg_fn on_msg, void *user_data,
                     nt_hclient_admit admit) {
  memset(c, 0, sizeof(*c));
  c->on_msg = on_msg;
  c->user_data = user_data;
  c->admit = admit;
}

void nt_hclient_send(nt_hclient *c, const nt_control *msg) {
  uint8_t frame[NT_CONTROL_FRAME_MAX];
  size_t len = nt_control_encode(frame, msg);
  if (len && c->ctl) {
    nt_stream_write(c->ctl, frame, len);
  }
}

void nt_hclient_send_check_in(nt_hclient *c, const nt_hclient_check_in *in) {
  nt_control msg = {.type = NT_CONTROL_CHECK_IN};
  nt_check_in *ci = &msg.u.check_in;
  for (size_t i = 0; i < in->nlocal && i < NT_MAX_LOCAL_ADDRS; i++) {
    ci->local[ci->nlocal++] = in->local[i];
  }
  ci->protocol_version =
      in->protocol_version ? in->protocol_version : NT_CONTROL_PROTOCOL_VERSION;
  snprintf(ci->name, sizeof(ci->name), "%s", in->name);
  ci->listen = in->listen;
  ci->diagnostic = in->diagnostic;
  nt_hclient_send(c, &msg);
}

static int on_frame(const uint8_t *body, size_t len, void *ud) {
  nt_hclient *c = ud;
  nt_control msg;
  if (nt_control_decode(&msg, body, len) != 0) {
    return c->on_msg ? c->on_msg(NULL, c->user_data) : 0;
  }
  if (msg.type == NT_CONTROL_ADMISSION_QUERY &&
      c->admit != NT_HCLIENT_ADMIT_ASK) {
    nt_control ans = {.type = NT_CONTROL_ADMISSION_ANSWER};
    ans.u.admission_answer.query_id = msg.u.admission_query.query_id;
    ans.u.admission_answer.admitted = c->admit == NT_HCLIENT_ADMIT_ALL;
    nt_hclient_send(c, &ans);
    return 0;
  }
  return c->on_msg ? c->on_msg(&msg, c->user_data) : 0;
}

static void ctl_recv(nt_stream *s, const uint8_t *data, size_t len, int fin,
                     void *ud) {
  nt_hclient *c = ud;
  (void)fin;
  nt_wire_reader_each(&c->reader, data, len, on_frame, c);
  nt_stream_consume(s, len);
}

static void ctl_closed(nt_stream *s, int reset, uint64_t code, void *ud) {
  nt_hclient *c = ud;
  (void)s;
  (void)reset;
  (void)code;
  c->ctl = NULL;
}

static const nt_stream_callbacks ctl_callbacks = {ctl_recv, NULL, ctl_closed};

int nt_hclient_open(nt_hclient *c, nt_conn *conn) {
  if (nt_conn_open_stream(conn, &c->ctl) != 0) {
    c->ctl = NULL;
    return -1;
  }
  nt_stream_set_callbacks(c->ctl, &ctl_callbacks, c);
  return 0;
}

int nt_hclient_start(nt_hclient *c, nt_conn *conn,
                     const nt_hclient_check_in *in) {
  if (nt_hclient_open(c, conn) != 0) {
    return -1;
  }
  nt_hclient_send_check_in(c, in);
  return 0;
}

void nt_hclient_closed(nt_hclient *c) {
  c->ctl = NULL;
}

void nt_hclient_reset(nt_hclient *c) {
  nt_wire_reader_reset(&c->reader);
}

int nt_hclient_endpoint(nt_endpoint **pep, struct event_base *base,
                        const nt_addr *bind, nt_identity *id, const nt_log *log,
                        uint64_t handshake_timeout_ms, char *err,
                        size_t errlen) {
  static const nt_endpoint_callbacks no_ep_callbacks = {NULL, NULL, NULL, NULL,
                                                        NULL};
  nt_endpoint_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.bind = *bind;
  cfg.callbacks = &no_ep_callbacks;
  cfg.identity = id;
  cfg.log = log;
  cfg.handshake_timeout_ms = handshake_timeout_ms;
  cfg.idle_timeout_ms = 30000;
  cfg.keepalive_ms = 5000; /* keep the broker's state alive */
  return nt_endpoint_new(pep, base, &cfg, err, errlen);
}

static void done_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

struct event *nt_hclient_deadline(struct event_base *base, unsigned seconds) {
  struct timeval tv = {(time_t)seconds, 0};
  struct event *ev = evtimer_new(base, done_cb, base);
  if (ev && evtimer_add(ev, &tv) != 0) {
    event_free(ev);
    ev = NULL;
  }
  return ev;
}

int nt_hclient_parse_args(const char *tool, const char *broker_arg,
                          const char *bind_arg, nt_addr *broker,
                          nt_addr *bind) {
  char err[300], text[80];
  if (nt_addr_parse(broker, broker_arg, "127.0.0.1", err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: broker: %s\n", tool, err);
    return -1;
  }
  snprintf(text, sizeof(text), "%s:0", bind_arg ? bind_arg : "");
  if (bind && nt_addr_parse(bind, text, "127.0.0.1", err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: bind: %s\n", tool, err);
    return -1;
  }
  return 0;
}
