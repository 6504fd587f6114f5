/* The public API (natter.h) as an application sees it: every function with
 * bad arguments returns an error code instead of crashing; errors are
 * logged; objects are freed outside their callbacks the ways the header
 * documents; one broker serves two independent client pairs in one
 * process on one loop, with bytes checked end to end. Loopback only;
 * every wait has a deadline. */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "natter.h"
#include "test.h"
#include "test_loop.h"

/* ---- helpers ---- */

/* Log lines are kept, not printed (NATTER_TEST_LOG=1 prints them), so a
 * test can check that a failure says why. */
typedef struct log_capture {
  char last[1024];
  int lines;
} log_capture;

static void capture_log(natter_log_level level, const char *line,
                        void *user_data) {
  log_capture *cap = user_data;
  if (getenv("NATTER_TEST_LOG")) {
    fprintf(stderr, "  log[%d]: %s\n", (int)level, line);
  }
  if (cap) {
    snprintf(cap->last, sizeof(cap->last), "%s", line);
    cap->lines++;
  }
}

static void quiet_log(natter_log_level level, const char *line,
                      void *user_data) {
  (void)user_data;
  capture_log(level, line, NULL);
}


static int flag_set(void *arg) {
  return *(int *)arg != 0;
}

/* Runs |base| for |ms|, whatever happens. */
static void run_for(struct event_base *base, int ms) {
  int never = 0;
  run_until(base, flag_set, &never, ms);
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static uint16_t free_tcp_port(void) {
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
    if (fd >= 0) {
      close(fd);
    }
    return 0;
  }
  close(fd);
  return ntohs(sin.sin_port);
}

/* A socket bound to 127.0.0.1 on a fresh port (|type| SOCK_STREAM: also
 * listening); *port receives the port. */
static int bound_socket(int type, uint16_t *port) {
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, type, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
      (type == SOCK_STREAM && listen(fd, 4) != 0) ||
      getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
    if (fd >= 0) {
      close(fd);
    }
    return -1;
  }
  *port = ntohs(sin.sin_port);
  return fd;
}

static int count_open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) {
    return -1;
  }
  while (readdir(d)) {
    n++;
  }
  closedir(d);
  return n;
}

static void broker_config(natter_broker_config *cfg, log_capture *cap) {
  natter_broker_config_default(cfg);
  cfg->listen = "127.0.0.1:0";
  cfg->identity_file = "";
  cfg->registry = ""; /* in memory: nothing written to $HOME */
  cfg->log = capture_log;
  cfg->user_data = cap;
}

static void client_config(natter_client_config *cfg, const char *name,
                          const char *broker) {
  natter_client_config_default(cfg);
  cfg->name = name;
  cfg->broker = broker;
  cfg->identity_file = "";
  cfg->known_brokers = ""; /* brokers here have ephemeral keys */
  cfg->log = quiet_log;
}

static natter_broker *start_broker(struct event_base *base, char *addr,
                                   size_t addrlen) {
  natter_broker_config cfg;
  natter_broker *b = NULL;
  broker_config(&cfg, NULL);
  CHECK(natter_broker_new(&b, base, &cfg) == 0);
  if (b) {
    snprintf(addr, addrlen, "127.0.0.1:%u", (unsigned)natter_broker_port(b));
  }
  return b;
}

/* Per-client record of events, as user_data. */
typedef struct client_events {
  natter_client *client;
  struct event_base *base;
  int checked_in;
  int fatal;
  int fatal_error;
  int peer_connected;
  int peer_failed;
  int forward_opened;
  int forward_failed;
  int forward_closed;
  natter_forward *opened_forward;
  char peer[64];
  char message[600];
  int break_on_fatal;
  int break_on_opened;
  struct event *free_ev; /* deferred free: activated from a callback */
} client_events;

static void record_event(natter_client *client, const natter_event *ev,
                         void *user_data) {
  client_events *e = user_data;
  CHECK(client != NULL);
  CHECK(ev != NULL && ev->message != NULL);
  if (!ev) {
    return;
  }
  snprintf(e->message, sizeof(e->message), "%s",
           ev->message ? ev->message : "");
  switch (ev->type) {
  case NATTER_EVENT_CHECKED_IN:
    e->checked_in++;
    CHECK(ev->error == 0);
    if (e->free_ev) {
      /* Deferred free: the client goes away from the loop, after this
       * callback has returned. */
      event_active(e->free_ev, EV_TIMEOUT, 0);
    }
    break;
  case NATTER_EVENT_FATAL:
    e->fatal++;
    e->fatal_error = ev->error;
    CHECK(ev->error < 0);
    if (e->break_on_fatal) {
      event_base_loopbreak(e->base);
    }
    break;
  case NATTER_EVENT_PEER_CONNECTED:
    e->peer_connected++;
    CHECK(ev->peer != NULL);
    snprintf(e->peer, sizeof(e->peer), "%s", ev->peer ? ev->peer : "");
    break;
  case NATTER_EVENT_PEER_FAILED:
    e->peer_failed++;
    break;
  case NATTER_EVENT_FORWARD_OPENED:
    e->forward_opened++;
    CHECK(ev->forward != NULL);
    e->opened_forward = ev->forward;
    if (e->break_on_opened) {
      event_base_loopbreak(e->base);
    }
    break;
  case NATTER_EVENT_FORWARD_FAILED:
    e->forward_failed++;
    CHECK(ev->forward != NULL);
    CHECK(ev->error < 0);
    break;
  case NATTER_EVENT_FORWARD_CLOSED:
    e->forward_closed++;
    CHECK(ev->forward != NULL);
    break;
  default:
    break;
  }
}

static natter_client *start_client(struct event_base *base, const char *name,
                                   const char *broker, int listen,
                                   client_events *events) {
  natter_client_config cfg;
  natter_client *c = NULL;
  static const char *const anyone[] = {"*", NULL};
  client_config(&cfg, name, broker);
  cfg.listen = listen;
  cfg.allow_peers = listen ? anyone : NULL; /* the broker here is open */
  cfg.on_event = record_event;
  cfg.user_data = events;
  memset(events, 0, sizeof(*events));
  events->base = base;
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  events->client = c;
  return c;
}

/* ---- echo servers and checked TCP clients on libevent ---- */

#define MAX_ECHO_CONNS 8

typedef struct echo_server {
  struct evconnlistener *listener;
  struct bufferevent *conns[MAX_ECHO_CONNS];
  uint16_t port;
  int accepted;
} echo_server;

static void echo_read(struct bufferevent *bev, void *arg) {
  (void)arg;
  bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void echo_event(struct bufferevent *bev, short what, void *arg) {
  echo_server *s = arg;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    for (int i = 0; i < MAX_ECHO_CONNS; i++) {
      if (s->conns[i] == bev) {
        s->conns[i] = NULL;
      }
    }
    bufferevent_free(bev);
  }
}

static void echo_accept(struct evconnlistener *l, evutil_socket_t fd,
                        struct sockaddr *sa, int salen, void *arg) {
  echo_server *s = arg;
  int i;
  (void)sa;
  (void)salen;
  for (i = 0; i < MAX_ECHO_CONNS && s->conns[i]; i++) {
  }
  if (i == MAX_ECHO_CONNS) {
    evutil_closesocket(fd);
    return;
  }
  s->conns[i] = bufferevent_socket_new(evconnlistener_get_base(l), fd,
                                       BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(s->conns[i], echo_read, NULL, echo_event, s);
  bufferevent_enable(s->conns[i], EV_READ | EV_WRITE);
  s->accepted++;
}

static int echo_start(echo_server *s, struct event_base *base) {
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  memset(s, 0, sizeof(*s));
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->listener = evconnlistener_new_bind(
      base, echo_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
      (struct sockaddr *)&sin, sizeof(sin));
  if (!s->listener) {
    return -1;
  }
  getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&sin,
              &len);
  s->port = ntohs(sin.sin_port);
  return 0;
}

static void echo_stop(echo_server *s) {
  for (int i = 0; i < MAX_ECHO_CONNS; i++) {
    if (s->conns[i]) {
      bufferevent_free(s->conns[i]);
    }
  }
  if (s->listener) {
    evconnlistener_free(s->listener);
  }
  memset(s, 0, sizeof(*s));
}

/* A TCP client that sends |len| pseudo-random bytes and checks that the
 * same bytes come back. */
typedef struct probe {
  struct bufferevent *bev;
  uint8_t *data;
  size_t len;
  size_t received;
  int connected;
  int mismatch;
  int closed; /* EOF or error before everything came back */
} probe;

static void probe_read(struct bufferevent *bev, void *arg) {
  probe *p = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  uint8_t chunk[8192];
  int n;
  while ((n = evbuffer_remove(in, chunk, sizeof(chunk))) > 0) {
    if (p->received + (size_t)n > p->len ||
        memcmp(chunk, p->data + p->received, (size_t)n) != 0) {
      p->mismatch = 1;
      return;
    }
    p->received += (size_t)n;
  }
}

static void probe_event(struct bufferevent *bev, short what, void *arg) {
  probe *p = arg;
  (void)bev;
  if (what & BEV_EVENT_CONNECTED) {
    p->connected = 1;
    bufferevent_write(p->bev, p->data, p->len);
  } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    p->closed = 1;
    bufferevent_disable(p->bev, EV_READ | EV_WRITE);
  }
}

static int probe_start(probe *p, struct event_base *base, uint16_t port,
                       size_t len, uint32_t seed) {
  struct sockaddr_in sin;
  memset(p, 0, sizeof(*p));
  p->len = len;
  p->data = malloc(len);
  if (!p->data) {
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    p->data[i] = (uint8_t)(seed >> 24);
  }
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port);
  p->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(p->bev, probe_read, NULL, probe_event, p);
  bufferevent_enable(p->bev, EV_READ | EV_WRITE);
  return bufferevent_socket_connect(p->bev, (struct sockaddr *)&sin,
                                    sizeof(sin));
}

static int probe_done(const probe *p) {
  return p->received == p->len || p->mismatch || p->closed;
}

static void probe_free(probe *p) {
  if (p->bev) {
    bufferevent_free(p->bev);
  }
  free(p->data);
  memset(p, 0, sizeof(*p));
}

/* ---- library-wide functions ---- */

static void test_strerror_every_code(void) {
  const char *seen[32];
  int n = 0;
  for (int code = NATTER_OK; code >= NATTER_ERR_RESOLVE; code--) {
    const char *s = natter_strerror(code);
    CHECK(s != NULL);
    if (!s) {
      continue;
    }
    CHECK(s[0] != '\0');
    CHECK(strcmp(s, natter_strerror(-1000)) != 0); /* not "unknown" */
    for (int i = 0; i < n; i++) {
      CHECK(strcmp(seen[i], s) != 0); /* every code its own text */
    }
    seen[n++] = s;
  }
  const int unknown[] = {1,     2,       100,    NATTER_ERR_RESOLVE - 1,
                         -1000, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    const char *s = natter_strerror(unknown[i]);
    CHECK(s != NULL && s[0] != '\0');
  }
}

static void test_version_matches_macros(void) {
  char want[32];
  snprintf(want, sizeof(want), "%d.%d.%d", NATTER_VERSION_MAJOR,
           NATTER_VERSION_MINOR, NATTER_VERSION_PATCH);
  CHECK(natter_version() != NULL);
  CHECK(strcmp(natter_version(), want) == 0);
}

static void test_config_defaults(void) {
  natter_broker_config b;
  natter_client_config c;
  natter_forward_config f;

  natter_broker_config_default(NULL);
  natter_client_config_default(NULL);
  natter_forward_config_default(NULL);

  memset(&b, 0xa5, sizeof(b));
  natter_broker_config_default(&b);
  CHECK(b.listen == NULL && b.identity_file == NULL && b.log == NULL);
  CHECK(b.log_level == NATTER_LOG_INFO && b.user_data == NULL);
  CHECK(b.registry == NULL && b.name_expiry_s == 30u * 24 * 3600);
  CHECK(b.token == NULL && b.token_file == NULL && b.admitted_keys == NULL);

  memset(&c, 0xa5, sizeof(c));
  natter_client_config_default(&c);
  CHECK(c.name == NULL && c.broker == NULL && c.identity_file == NULL);
  CHECK(c.broker_key == NULL && c.listen == 0 && c.allow == NULL);
  CHECK(c.allow_commands == NULL && c.on_event == NULL && c.log == NULL);
  CHECK(c.connect_timeout_ms == 10000 && c.log_level == NATTER_LOG_INFO);
  CHECK(c.allow_peers == NULL && c.token == NULL && c.token_file == NULL);
  CHECK(c.known_brokers == NULL);
  CHECK(c.max_commands == 32 && c.max_commands_per_peer == 8);
  CHECK(c.allow_udp == NULL && c.udp_idle_timeout_s == 60 &&
        c.max_udp_flows == 64);

  memset(&f, 0xa5, sizeof(f));
  natter_forward_config_default(&f);
  CHECK(f.peer == NULL && f.local_port == 0 && f.bind == NULL);
  CHECK(f.in_fd == -1 && f.out_fd == -1 && f.err_fd == 2);
  CHECK(f.host == NULL && f.port == 0 && f.argv == NULL);
  CHECK(f.kind == NATTER_FORWARD_TCP);
  /* A V1 caller's struct ends at argv: nothing is written past it. */
  memset(&f, 0xa5, sizeof(f));
  natter_forward_config_default_versioned(NATTER_FORWARD_CONFIG_V1, &f);
  CHECK(f.argv == NULL && f.kind == (int)0xa5a5a5a5);
}

/* ---- broker ---- */

static void test_broker_bad_arguments(void) {
  struct event_base *base = event_base_new();
  natter_broker_config cfg;
  natter_broker *b = NULL;
  log_capture cap;
  natter_broker_stats st;

  broker_config(&cfg, &cap);
  CHECK(natter_broker_new(NULL, base, &cfg) == NATTER_ERR_INVALID);
  CHECK(natter_broker_new(&b, NULL, &cfg) == NATTER_ERR_INVALID);
  CHECK(b == NULL);
  CHECK(natter_broker_new(&b, base, NULL) == NATTER_ERR_INVALID);
  CHECK(b == NULL);
  cfg.listen = NULL;
  CHECK(natter_broker_new(&b, base, &cfg) == NATTER_ERR_INVALID);
  CHECK(b == NULL);

  /* Malformed addresses (none needs DNS to be refused). */
  const char *bad[] = {"",
                       "nohost",
                       "127.0.0.1",
                       "1.2.3.4:99999",
                       "127.0.0.1:65536",
                       "127.0.0.1:-1",
                       "127.0.0.1:+5",
                       "127.0.0.1:abc",
                       "127.0.0.1:",
                       "[::1",
                       "[::1]",
                       "[::1]5"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    memset(&cap, 0, sizeof(cap));
    cfg.listen = bad[i];
    int rv = natter_broker_new(&b, base, &cfg);
    if (rv != NATTER_ERR_INVALID) {
      fprintf(stderr, "  broker listen \"%s\": %d\n", bad[i], rv);
    }
    CHECK(rv == NATTER_ERR_INVALID);
    CHECK(b == NULL);
    CHECK(cap.lines > 0); /* the reason is logged */
  }

  /* An address not on this host: a socket error, not a crash. */
  cfg.listen = "192.0.2.1:0";
  CHECK(natter_broker_new(&b, base, &cfg) == NATTER_ERR_SOCKET);
  CHECK(b == NULL);

  /* Identity files that cannot be keys. */
  char junk[] = "/tmp/natter-test-api-XXXXXX";
  int fd = mkstemp(junk);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, "not a key\n", 10) == 10);
    close(fd);
  }
  const char *bad_ids[] = {"/", junk, "/proc/self/status/x"};
  cfg.listen = "127.0.0.1:0";
  for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
    memset(&cap, 0, sizeof(cap));
    cfg.identity_file = bad_ids[i];
    int rv = natter_broker_new(&b, base, &cfg);
    if (rv != NATTER_ERR_IDENTITY) {
      fprintf(stderr, "  broker identity \"%s\": %d\n", bad_ids[i], rv);
    }
    CHECK(rv == NATTER_ERR_IDENTITY);
    CHECK(b == NULL);
    CHECK(cap.lines > 0);
  }
  unlink(junk);

  /* NULL objects. */
  natter_broker_free(NULL);
  CHECK(natter_broker_port(NULL) == 0);
  memset(&st, 0, sizeof(st));
  natter_broker_get_stats(NULL, &st);

  /* A good broker, then NULL stats. */
  broker_config(&cfg, NULL);
  CHECK(natter_broker_new(&b, base, &cfg) == 0);
  CHECK(b != NULL);
  CHECK(natter_broker_port(b) != 0);
  natter_broker_get_stats(b, NULL);
  memset(&st, 0xa5, sizeof(st));
  natter_broker_get_stats(b, &st);
  CHECK(st.clients == 0 && st.introductions == 0);
  natter_broker_free(b);
  event_base_free(base);
}

static void test_broker_addr_in_use(void) {
  struct event_base *base = event_base_new();
  natter_broker_config cfg;
  natter_broker *b = NULL, *b2 = NULL;
  log_capture cap = {{0}, 0};
  uint16_t port = 0;
  char addr[32];
  int fd = bound_socket(SOCK_DGRAM, &port);

  CHECK(fd >= 0);
  snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
  broker_config(&cfg, &cap);
  cfg.listen = addr;
  CHECK(natter_broker_new(&b, base, &cfg) == NATTER_ERR_ADDR_IN_USE);
  CHECK(b == NULL);
  CHECK_STR_CONTAINS(cap.last, "in use");
  close(fd);

  /* Two brokers on one port: the second is refused. */
  cfg.listen = "127.0.0.1:0";
  CHECK(natter_broker_new(&b, base, &cfg) == 0);
  snprintf(addr, sizeof(addr), "127.0.0.1:%u", natter_broker_port(b));
  cfg.listen = addr;
  CHECK(natter_broker_new(&b2, base, &cfg) == NATTER_ERR_ADDR_IN_USE);
  CHECK(b2 == NULL);
  natter_broker_free(b);
  event_base_free(base);
}

/* ---- client ---- */

static void test_client_bad_arguments(void) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_client *c = NULL;
  log_capture cap;
  char long_name[100];

  client_config(&cfg, "alice", "127.0.0.1:9");
  cfg.log = capture_log;
  cfg.user_data = &cap;
  CHECK(natter_client_new(NULL, base, &cfg) == NATTER_ERR_INVALID);
  c = (natter_client *)&cap; /* must be reset on failure */
  CHECK(natter_client_new(&c, NULL, &cfg) == NATTER_ERR_INVALID);
  CHECK(c == NULL);
  CHECK(natter_client_new(&c, base, NULL) == NATTER_ERR_INVALID);
  CHECK(c == NULL);
  cfg.name = NULL;
  CHECK(natter_client_new(&c, base, &cfg) == NATTER_ERR_INVALID);
  CHECK(c == NULL);
  cfg.name = "alice";
  cfg.broker = NULL;
  CHECK(natter_client_new(&c, base, &cfg) == NATTER_ERR_INVALID);
  CHECK(c == NULL);
  cfg.broker = "127.0.0.1:9";

  memset(long_name, 'a', 64);
  long_name[64] = '\0';
  const char *bad_names[] = {"",    "a b",         "a:b",  "../x",
                             "a/b", "caf\xc3\xa9", "a\nb", long_name};
  for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
    memset(&cap, 0, sizeof(cap));
    cfg.name = bad_names[i];
    CHECK(natter_client_new(&c, base, &cfg) == NATTER_ERR_INVALID);
    CHECK(c == NULL);
    CHECK(cap.lines > 0);
  }
  long_name[63] = '\0'; /* 63 characters: the longest valid name */
  cfg.name = long_name;
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  natter_client_free(c);
  c = NULL;
  cfg.name = "alice";

  const char *bad_brokers[] = {"",          "nohost",        ":0",
                               "127.0.0.1", "127.0.0.1:0",   "127.0.0.1:",
                               ":",         "1.2.3.4:99999", "1.2.3.4:-5",
                               "[::1",      "[::1]:",        "[::1]:70000",
                               /* several brokers of one network */
                               "127.0.0.1:9,", ",127.0.0.1:9",
                               "127.0.0.1:9,,127.0.0.1:10",
                               "127.0.0.1:9,127.0.0.1:0",
                               "127.0.0.1:1,127.0.0.2:1,127.0.0.3:1,127.0.0.4:1,"
                               "127.0.0.5:1,127.0.0.6:1,127.0.0.7:1,127.0.0.8:1,"
                               "127.0.0.9:1,127.0.0.10:1,127.0.0.11:1,127.0.0.12:1,"
                               "127.0.0.13:1,127.0.0.14:1,127.0.0.15:1,127.0.0.16:1,"
                               "127.0.0.17:1"};
  for (size_t i = 0; i < sizeof(bad_brokers) / sizeof(bad_brokers[0]); i++) {
    memset(&cap, 0, sizeof(cap));
    cfg.broker = bad_brokers[i];
    int rv = natter_client_new(&c, base, &cfg);
    if (rv != NATTER_ERR_INVALID) {
      fprintf(stderr, "  client broker \"%s\": %d\n", bad_brokers[i], rv);
    }
    CHECK(rv == NATTER_ERR_INVALID);
    CHECK(c == NULL);
    CHECK(cap.lines > 0);
  }
  cfg.broker = "127.0.0.1:9, 127.0.0.1:10";
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  natter_client_free(c);
  c = NULL;
  cfg.broker = "127.0.0.1:9";

  char hex63[64], hex65[66], nothex[65];
  memset(hex63, 'a', 63);
  hex63[63] = '\0';
  memset(hex65, 'a', 65);
  hex65[65] = '\0';
  memset(nothex, 'g', 64);
  nothex[64] = '\0';
  const char *bad_keys[] = {"", "abc", hex63, hex65, nothex};
  for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
    memset(&cap, 0, sizeof(cap));
    cfg.broker_key = bad_keys[i];
    CHECK(natter_client_new(&c, base, &cfg) == NATTER_ERR_INVALID);
    CHECK(c == NULL);
    CHECK(cap.lines > 0);
  }
  cfg.broker_key = NULL;

  const char *bad_ids[] = {"/", "/proc/self/status/x"};
  for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
    cfg.identity_file = bad_ids[i];
    CHECK(natter_client_new(&c, base, &cfg) == NATTER_ERR_IDENTITY);
    CHECK(c == NULL);
  }

  natter_client_free(NULL);
  CHECK(natter_client_fingerprint(NULL) != NULL);
  event_base_free(base);
}

static void test_client_fingerprint(void) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_client *c = NULL, *d = NULL;

  client_config(&cfg, "alice", "127.0.0.1:9");
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  CHECK(natter_client_new(&d, base, &cfg) == 0);
  const char *fp = natter_client_fingerprint(c);
  CHECK(fp != NULL && strlen(fp) == 64);
  CHECK(strspn(fp, "0123456789abcdef") == 64);
  /* identity_file "": a fresh key per client. */
  CHECK(strcmp(fp, natter_client_fingerprint(d)) != 0);
  natter_client_free(c);
  natter_client_free(d);
  event_base_free(base);
}

/* A host name that cannot resolve without asking anyone: its first label
 * is longer than DNS allows (RFC 1035 §2.3.4), so no query is sent. */
static void test_client_resolve_error(void) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_client *c = (natter_client *)&cfg;
  log_capture cap;
  char broker[128];

  memset(broker, 'a', 64);
  snprintf(broker + 64, sizeof(broker) - 64, ".invalid:10000");
  client_config(&cfg, "alice", broker);
  cfg.log = capture_log;
  cfg.user_data = &cap;
  memset(&cap, 0, sizeof(cap));
  CHECK(natter_client_new(&c, base, &cfg) == NATTER_ERR_RESOLVE);
  CHECK(c == NULL);
  CHECK_STR_CONTAINS(cap.last, "cannot resolve");
  event_base_free(base);
}

/* A caller compiled against a newer header than this library (or passing
 * garbage) is refused, and nothing is written to its struct. */
static void test_unknown_struct_versions(void) {
  struct event_base *base = event_base_new();
  natter_broker_config bcfg, bcfg_before;
  natter_client_config ccfg, ccfg_before;
  natter_forward_config fcfg, fcfg_before;
  natter_broker_stats bs, bs_before;
  natter_forward_stats fs, fs_before;
  natter_peer_stats ps, ps_before;
  natter_broker *b = NULL;
  natter_client *c = NULL;
  natter_forward *fw = NULL;
  char addr[32], err[256];
  const int bad[] = {0, -1, 1000};

  b = start_broker(base, addr, sizeof(addr));
  client_config(&ccfg, "alice", addr);
  CHECK(natter_client_new(&c, base, &ccfg) == 0);
  broker_config(&bcfg, NULL);
  natter_forward_config_default(&fcfg);
  fcfg.peer = "bob";
  fcfg.port = 9;
  fcfg.local_port = free_tcp_port();

  for (size_t i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
    /* the last round: each struct's next version, not released yet */
    int is_last = i == sizeof(bad) / sizeof(bad[0]);
    int v;

    v = is_last ? NATTER_BROKER_CONFIG_VERSION + 1 : bad[i];
    memset(&bcfg_before, 0xa5, sizeof(bcfg_before));
    bcfg = bcfg_before;
    natter_broker_config_default_versioned(v, &bcfg);
    CHECK(memcmp(&bcfg, &bcfg_before, sizeof(bcfg)) == 0);
    broker_config(&bcfg, NULL);
    natter_broker *b2 = (natter_broker *)&bcfg;
    CHECK(natter_broker_new_versioned(&b2, base, v, &bcfg) ==
          NATTER_ERR_INVALID);
    CHECK(b2 == NULL);

    v = is_last ? NATTER_CLIENT_CONFIG_VERSION + 1 : bad[i];
    memset(&ccfg_before, 0xa5, sizeof(ccfg_before));
    ccfg = ccfg_before;
    natter_client_config_default_versioned(v, &ccfg);
    CHECK(memcmp(&ccfg, &ccfg_before, sizeof(ccfg)) == 0);
    client_config(&ccfg, "carol", addr);
    natter_client *c2 = (natter_client *)&ccfg;
    CHECK(natter_client_new_versioned(&c2, base, v, &ccfg) ==
          NATTER_ERR_INVALID);
    CHECK(c2 == NULL);

    v = is_last ? NATTER_FORWARD_CONFIG_VERSION + 1 : bad[i];
    memset(&fcfg_before, 0xa5, sizeof(fcfg_before));
    natter_forward_config tmp = fcfg_before;
    natter_forward_config_default_versioned(v, &tmp);
    CHECK(memcmp(&tmp, &fcfg_before, sizeof(tmp)) == 0);
    fw = (natter_forward *)&fcfg;
    err[0] = '\0';
    CHECK(natter_client_add_forward_versioned(
              c, v, &fcfg, &fw, err, sizeof(err)) == NATTER_ERR_INVALID);
    CHECK(fw == NULL && err[0] != '\0');

    v = is_last ? NATTER_BROKER_STATS_VERSION + 1 : bad[i];
    memset(&bs_before, 0xa5, sizeof(bs_before));
    bs = bs_before;
    CHECK(natter_broker_get_stats_versioned(b, v, &bs) == NATTER_ERR_INVALID);
    CHECK(memcmp(&bs, &bs_before, sizeof(bs)) == 0);

    v = is_last ? NATTER_FORWARD_STATS_VERSION + 1 : bad[i];
    memset(&fs_before, 0xa5, sizeof(fs_before));
    fs = fs_before;
    CHECK(natter_forward_get_stats_versioned(NULL, v, &fs) ==
          NATTER_ERR_INVALID);
    CHECK(memcmp(&fs, &fs_before, sizeof(fs)) == 0);

    v = is_last ? NATTER_PEER_STATS_VERSION + 1 : bad[i];
    memset(&ps_before, 0xa5, sizeof(ps_before));
    ps = ps_before;
    CHECK(natter_client_get_peer_stats_versioned(c, "bob", v, &ps) ==
          NATTER_ERR_INVALID);
    CHECK(memcmp(&ps, &ps_before, sizeof(ps)) == 0);
  }

  /* The versions this header has still work on the same objects. */
  CHECK(natter_client_add_forward(c, &fcfg, &fw, err, sizeof(err)) == 0);
  CHECK(natter_forward_get_stats(fw, &fs) == 0 && fs.connections == 0);
  CHECK(natter_broker_get_stats(b, &bs) == 0);
  natter_client_free(c);
  natter_broker_free(b);
  event_base_free(base);
}

/* A UDP port on 127.0.0.1 that was free a moment ago with the port after
 * it, where a broker opens its NAT mapping-check port. */
static uint16_t free_udp_port_pair(void) {
  for (int tries = 0; tries < 100; tries++) {
    struct sockaddr_in sin;
    uint16_t port = 0;
    int fd = bound_socket(SOCK_DGRAM, &port);
    int next = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)(port + 1));
    int ok = fd >= 0 && next >= 0 && port < 65535 &&
             bind(next, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    if (fd >= 0) {
      close(fd);
    }
    if (next >= 0) {
      close(next);
    }
    if (ok) {
      return port;
    }
  }
  return 0;
}

static int mapping_known(void *arg) {
  return natter_client_nat_mapping(arg) != NATTER_NAT_MAPPING_UNKNOWN;
}

/* What an embedder can ask: the broker's key (and pinning it works), and
 * a client's state at the broker, public address and NAT mapping. */
static void test_broker_and_client_getters(void) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_client *c = NULL;
  client_events ev;
  natter_broker_config bcfg;
  natter_broker *b = NULL;
  char addr[32], want[NATTER_ADDRSTRLEN], pub[NATTER_ADDRSTRLEN];
  uint16_t udp_port = 0;

  /* The broker's port is chosen so that the one after it, its mapping
   * check's, is free too. */
  snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)free_udp_port_pair());
  broker_config(&bcfg, NULL);
  bcfg.listen = addr;
  CHECK(natter_broker_new(&b, base, &bcfg) == 0);

  const char *fp = natter_broker_fingerprint(b);
  CHECK(fp != NULL && strlen(fp) == 64);
  CHECK(strspn(fp, "0123456789abcdef") == 64);
  CHECK(natter_fingerprint_check(fp) == 0);
  CHECK(natter_broker_fingerprint(NULL) != NULL);
  CHECK(strcmp(natter_broker_fingerprint(NULL), "") == 0);

  /* A fixed UDP port, so the public address is known in advance: on
   * loopback the broker sees the client's own address. */
  int fd = bound_socket(SOCK_DGRAM, &udp_port);
  CHECK(fd >= 0);
  if (fd >= 0) {
    close(fd);
  }
  client_config(&cfg, "getter", addr);
  cfg.broker_key = fp; /* pinned: check-in fails on any other key */
  cfg.local_port = udp_port;
  cfg.on_event = record_event;
  cfg.user_data = &ev;
  memset(&ev, 0, sizeof(ev));
  ev.base = base;
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  ev.client = c;

  /* Nothing has run yet. */
  CHECK(natter_client_checked_in(c) == 0);
  memset(pub, 'x', sizeof(pub));
  CHECK(natter_client_public_address(c, pub, sizeof(pub)) == 0);
  CHECK(pub[0] == '\0');
  CHECK(natter_client_nat_mapping(c) == NATTER_NAT_MAPPING_UNKNOWN);

  CHECK(run_until(base, flag_set, &ev.checked_in, 10000));
  CHECK(ev.fatal == 0);
  CHECK(natter_client_checked_in(c) == 1);
  snprintf(want, sizeof(want), "127.0.0.1:%u", (unsigned)udp_port);
  CHECK(natter_client_public_address(c, pub, sizeof(pub)) == 0);
  CHECK(strcmp(pub, want) == 0);
  /* Exactly enough room, then one byte short of it. */
  CHECK(natter_client_public_address(c, pub, strlen(want) + 1) == 0);
  CHECK(strcmp(pub, want) == 0);
  CHECK(natter_client_public_address(c, pub, strlen(want)) ==
        NATTER_ERR_INVALID);
  CHECK(pub[0] == '\0');

  /* No NAT between loopback addresses: the broker's two ports see the
   * same address. */
  CHECK(run_until(base, mapping_known, c, 5000));
  CHECK(natter_client_nat_mapping(c) ==
        NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT);

  /* Bad arguments. */
  CHECK(natter_client_checked_in(NULL) == 0);
  CHECK(natter_client_nat_mapping(NULL) == NATTER_NAT_MAPPING_UNKNOWN);
  memset(pub, 'x', sizeof(pub));
  CHECK(natter_client_public_address(NULL, pub, sizeof(pub)) ==
        NATTER_ERR_INVALID);
  CHECK(pub[0] == '\0');
  CHECK(natter_client_public_address(c, NULL, 64) == NATTER_ERR_INVALID);
  CHECK(natter_client_public_address(c, pub, 0) == NATTER_ERR_INVALID);

  natter_client_free(c);
  natter_broker_free(b);
  event_base_free(base);
}

/* Creating and freeing objects leaves no descriptor behind. */
static void test_no_fd_leak(void) {
  struct event_base *base = event_base_new();
  int before = -1;
  char addr[32];

  /* The first round may open what lives as long as the process (GnuTLS's
   * random source, say): count after it. */
  for (int i = 0; i < 6; i++) {
    if (i == 1) {
      before = count_open_fds();
    }
    natter_broker *b = start_broker(base, addr, sizeof(addr));
    natter_client_config cfg;
    natter_client *c = NULL;
    client_config(&cfg, "alice", addr);
    CHECK(natter_client_new(&c, base, &cfg) == 0);
    natter_forward_config fcfg;
    natter_forward_config_default(&fcfg);
    fcfg.peer = "bob";
    fcfg.port = 22;
    fcfg.local_port = free_tcp_port();
    CHECK(natter_client_add_forward(c, &fcfg, NULL, NULL, 0) == 0);
    run_for(base, 20);
    natter_client_free(c);
    natter_broker_free(b);
  }
  CHECK(count_open_fds() == before);
  event_base_free(base);
}

/* ---- forwards ---- */

/* SOCKS forwards: what their config may hold, and the password a forward
 * bound beyond loopback must have. */
static void test_socks_forward_config(void) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_forward_config f;
  natter_forward *fw = NULL;
  natter_client *c = NULL;
  char err[300], path[] = "/tmp/natter-test-socks-auth.XXXXXX", spec[64];
  int fd;

  client_config(&cfg, "alice", "127.0.0.1:9");
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  if (!c) {
    event_base_free(base);
    return;
  }
  natter_forward_config_default(&f);
  CHECK(f.kind == NATTER_FORWARD_TCP && f.socks_auth_file == NULL);
  f.kind = NATTER_FORWARD_SOCKS;
  f.peer = "bob";
  f.local_port = free_tcp_port();
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) == 0);
  CHECK(fw != NULL && natter_forward_local_port(fw) == f.local_port);
  natter_forward_remove(fw);

  /* The client names the target: the forward names none. */
  f.port = 22;
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) == 0);
  natter_forward_remove(fw);
  f.host = "nas.lan";
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "no target host or command");
  f.host = NULL;
  f.local_port = 0;
  f.in_fd = f.out_fd = 0;
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  f.in_fd = f.out_fd = -1;
  f.local_port = free_tcp_port();

  /* Beyond loopback: a password, from a file only its owner reads. */
  f.bind = "0.0.0.0";
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "must require a password");
  f.bind = "127.0.0.2"; /* loopback still: no password needed */
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) == 0);
  natter_forward_remove(fw);
  f.bind = "0.0.0.0";
  fd = mkstemp(path);
  CHECK(fd >= 0);
  CHECK(write(fd, "sam:pw\n", 7) == 7);
  close(fd);
  f.socks_auth_file = path;
  CHECK(chmod(path, 0640) == 0);
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "chmod 600");
  CHECK(chmod(path, 0600) == 0);
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) == 0);
  natter_forward_remove(fw);
  unlink(path);
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "does not exist");
  f.socks_auth_file = NULL;
  f.bind = NULL;

  /* A V1 caller's struct has no kind: its forwards are TCP, whatever
   * lies past its end. */
  f.port = 0;
  CHECK(natter_client_add_forward_versioned(c, NATTER_FORWARD_CONFIG_V1, &f,
                                            &fw, err,
                                            sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "target port");

  /* The same from specs. */
  snprintf(spec, sizeof(spec), "socks:%u:bob", free_tcp_port());
  CHECK(natter_client_add_forward_spec(c, spec, NULL, &fw, err, sizeof(err)) ==
        0);
  natter_forward_remove(fw);
  snprintf(spec, sizeof(spec), "socks:0.0.0.0:%u:bob", free_tcp_port());
  CHECK(natter_client_add_forward_spec(c, spec, NULL, &fw, err, sizeof(err)) ==
        NATTER_ERR_SPEC);
  CHECK_STR_CONTAINS(err, "must require a password");
  natter_client_free(c);
  event_base_free(base);
}

static void test_forward_bad_arguments(void) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_forward_config f;
  natter_forward *fw = NULL;
  natter_client *c = NULL;
  char err[256], long_host[300];
  int rv;

  client_config(&cfg, "alice", "127.0.0.1:9");
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  if (!c) {
    event_base_free(base);
    return;
  }

  natter_forward_config_default(&f);
  f.peer = "bob";
  f.port = 22;
  f.local_port = free_tcp_port();
  CHECK(natter_client_add_forward(NULL, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(fw == NULL && err[0] != '\0');
  fw = (natter_forward *)&f; /* must be reset on failure */
  CHECK(natter_client_add_forward(c, NULL, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(fw == NULL);
  /* No error buffer, or a zero-length one, is fine. */
  CHECK(natter_client_add_forward(NULL, &f, NULL, NULL, 0) ==
        NATTER_ERR_INVALID);
  CHECK(natter_client_add_forward(NULL, &f, NULL, err, 0) ==
        NATTER_ERR_INVALID);

  const char *bad_peers[] = {NULL, "", "bad name", "a/b", "alice" /* self */};
  for (size_t i = 0; i < sizeof(bad_peers) / sizeof(bad_peers[0]); i++) {
    err[0] = '\0';
    f.peer = bad_peers[i];
    CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
          NATTER_ERR_INVALID);
    CHECK(fw == NULL && err[0] != '\0');
  }
  f.peer = "bob";

  f.port = 0; /* and no argv */
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  f.port = 22;

  memset(long_host, 'h', sizeof(long_host) - 1);
  long_host[sizeof(long_host) - 1] = '\0';
  f.host = long_host;
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  f.host = NULL;

  const char *empty_argv[] = {NULL};
  f.argv = empty_argv;
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  static const char *huge_argv[400];
  for (int i = 0; i < 399; i++) {
    huge_argv[i] = "x";
  }
  f.argv = huge_argv;
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  f.argv = NULL;

  /* fd sessions need both fds; a refused session leaves them open (no
   * forward took them over). */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  f.local_port = 0;
  f.in_fd = -1;
  f.out_fd = -1;
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  f.in_fd = sv[0];
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  f.out_fd = sv[0];
  f.peer = "no such name";
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(fcntl(sv[0], F_GETFD) != -1);
  close(sv[0]);
  close(sv[1]);
  f.peer = "bob";
  f.in_fd = f.out_fd = -1;

  /* Bind addresses: not on this host (no DNS needed to tell). */
  f.local_port = free_tcp_port();
  f.bind = "192.0.2.1";
  rv = natter_client_add_forward(c, &f, &fw, err, sizeof(err));
  CHECK(rv == NATTER_ERR_SOCKET);
  CHECK(fw == NULL && err[0] != '\0');
  f.bind = NULL;

  /* A good forward; removing it frees the port for another. */
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) == 0);
  CHECK(fw != NULL);
  natter_forward_stats st;
  memset(&st, 0xa5, sizeof(st));
  natter_forward_get_stats(fw, &st);
  CHECK(st.connections == 0 && st.active == 0 && st.failures == 0);
  CHECK(st.bytes_sent == 0 && st.bytes_received == 0);
  natter_forward_get_stats(fw, NULL);
  natter_forward_remove(fw);
  fw = NULL;
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) == 0);
  natter_forward_remove(fw);

  natter_forward_remove(NULL);
  memset(&st, 0xa5, sizeof(st));
  natter_forward_get_stats(NULL, &st);
  CHECK(st.connections == 0 && st.bytes_sent == 0);
  natter_forward_get_stats(NULL, NULL);

  /* Peer stats. */
  natter_peer_stats ps;
  CHECK(natter_client_get_peer_stats(NULL, "bob", &ps) == NATTER_ERR_INVALID);
  CHECK(natter_client_get_peer_stats(c, NULL, &ps) == NATTER_ERR_INVALID);
  CHECK(natter_client_get_peer_stats(c, "bob", NULL) == NATTER_ERR_INVALID);
  CHECK(natter_client_get_peer_stats(c, "nobody", &ps) ==
        NATTER_ERR_PEER_UNKNOWN);
  CHECK(natter_client_get_peer_stats(c, "", &ps) != 0);

  natter_client_free(c);
  event_base_free(base);
}

static void test_forward_spec_bad_arguments(void) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_forward *fw = NULL;
  natter_client *c = NULL;
  char err[256], spec[64];
  const char *argv[] = {"uname", "-a", NULL};

  client_config(&cfg, "alice", "127.0.0.1:9");
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  if (!c) {
    event_base_free(base);
    return;
  }
  CHECK(natter_client_add_forward_spec(NULL, "8022:bob:22", NULL, &fw, err,
                                       sizeof(err)) == NATTER_ERR_INVALID);
  CHECK(fw == NULL);
  CHECK(natter_client_add_forward_spec(c, NULL, NULL, &fw, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(natter_client_add_forward_spec(c, NULL, NULL, NULL, NULL, 0) ==
        NATTER_ERR_INVALID);

  const char *bad[] = {"",
                       ":",
                       "abc",
                       "8022",
                       "8022:bob",
                       "8022:bob:0",
                       "8022:bob:99999",
                       "8022:bob:-1",
                       "70000:bob:22",
                       "-1:bob:22",
                       "x:bob:22",
                       "8022::22",
                       "8022:bad name:22",
                       "8022:bob:host:",
                       "8022:bob:[::1:22",
                       "8022:bob:host:22:33",
                       "8022:alice:22" /* itself */};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = '\0';
    fw = (natter_forward *)&cfg;
    int rv =
        natter_client_add_forward_spec(c, bad[i], NULL, &fw, err, sizeof(err));
    if (rv != NATTER_ERR_SPEC) {
      fprintf(stderr, "  spec \"%s\": %d (%s)\n", bad[i], rv, err);
    }
    CHECK(rv == NATTER_ERR_SPEC);
    CHECK(fw == NULL);
    CHECK(err[0] != '\0');
  }

  /* A command spec needs a command; a port spec must not have one. */
  uint16_t port = free_tcp_port();
  snprintf(spec, sizeof(spec), "%u:bob:", port);
  CHECK(natter_client_add_forward_spec(c, spec, NULL, &fw, err, sizeof(err)) ==
        NATTER_ERR_SPEC);
  const char *no_cmd[] = {NULL};
  CHECK(natter_client_add_forward_spec(c, spec, no_cmd, &fw, err,
                                       sizeof(err)) == NATTER_ERR_SPEC);
  snprintf(spec, sizeof(spec), "%u:bob:22", port);
  CHECK(natter_client_add_forward_spec(c, spec, argv, &fw, err, sizeof(err)) ==
        NATTER_ERR_SPEC);
  CHECK_STR_CONTAINS(err, "uname");

  /* The good ones. */
  CHECK(natter_client_add_forward_spec(c, spec, NULL, &fw, err, sizeof(err)) ==
        0);
  CHECK(fw != NULL);
  natter_forward_remove(fw);
  snprintf(spec, sizeof(spec), "%u:bob:", port);
  CHECK(natter_client_add_forward_spec(c, spec, argv, &fw, err, sizeof(err)) ==
        0);
  natter_forward_remove(fw);
  snprintf(spec, sizeof(spec), "%u:bob:[::1]:22", port);
  CHECK(natter_client_add_forward_spec(c, spec, NULL, NULL, NULL, 0) == 0);

  natter_client_free(c);
  event_base_free(base);
}

static void test_forward_addr_in_use(void) {
  struct event_base *base = event_base_new();
  natter_client_config cfg;
  natter_forward_config f;
  natter_forward *fw = NULL, *fw2 = NULL;
  natter_client *c = NULL;
  char err[256], spec[64];
  uint16_t port = 0;
  int fd = bound_socket(SOCK_STREAM, &port);

  CHECK(fd >= 0);
  client_config(&cfg, "alice", "127.0.0.1:9");
  CHECK(natter_client_new(&c, base, &cfg) == 0);
  if (!c) {
    event_base_free(base);
    return;
  }
  natter_forward_config_default(&f);
  f.peer = "bob";
  f.port = 22;
  f.local_port = port;
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) ==
        NATTER_ERR_ADDR_IN_USE);
  CHECK(fw == NULL);
  CHECK_STR_CONTAINS(err, "in use");
  snprintf(spec, sizeof(spec), "%u:bob:22", port);
  CHECK(natter_client_add_forward_spec(c, spec, NULL, &fw, err, sizeof(err)) ==
        NATTER_ERR_ADDR_IN_USE);
  close(fd);

  /* The same port twice in one client. */
  f.local_port = free_tcp_port();
  CHECK(natter_client_add_forward(c, &f, &fw, err, sizeof(err)) == 0);
  CHECK(natter_client_add_forward(c, &f, &fw2, err, sizeof(err)) ==
        NATTER_ERR_ADDR_IN_USE);
  CHECK(fw2 == NULL);
  /* A UDP forward on the same number is another socket (UDP), and a
   * second one on it is in use; a UDP forward takes no command and needs
   * a local port; an unknown kind is refused. */
  natter_forward *ufw = NULL;
  f.kind = NATTER_FORWARD_UDP;
  CHECK(natter_client_add_forward(c, &f, &ufw, err, sizeof(err)) == 0);
  CHECK(ufw != NULL && natter_forward_local_port(ufw) == f.local_port);
  CHECK(natter_client_add_forward(c, &f, &fw2, err, sizeof(err)) ==
        NATTER_ERR_ADDR_IN_USE);
  static const char *const argv[] = {"cat", NULL};
  f.argv = argv;
  CHECK(natter_client_add_forward(c, &f, &fw2, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  f.argv = NULL;
  f.kind = 7;
  CHECK(natter_client_add_forward(c, &f, &fw2, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  natter_forward_stats st;
  CHECK(natter_forward_get_stats(ufw, &st) == 0);
  CHECK(st.datagrams_sent == 0 && st.datagrams_dropped == 0);
  natter_forward_remove(ufw);
  natter_forward_remove(fw);
  natter_client_free(c);
  event_base_free(base);
}

/* ---- lifetimes ---- */

/* A FATAL event (name taken), then the client is freed outside the
 * callback, as the header asks; the loop keeps serving the others. */
static void test_free_after_fatal_name_taken(void) {
  struct event_base *base = event_base_new();
  client_events first, second;
  char addr[32];
  natter_broker *b = start_broker(base, addr, sizeof(addr));
  natter_client *c1 = start_client(base, "carol", addr, 0, &first);

  CHECK(run_until(base, flag_set, &first.checked_in, 10000));
  /* Same name, another (ephemeral) key. */
  natter_client *c2 = start_client(base, "carol", addr, 0, &second);
  second.break_on_fatal = 1;
  CHECK(run_until(base, flag_set, &second.fatal, 10000));
  CHECK(second.fatal_error == NATTER_ERR_NAME_TAKEN);
  CHECK_STR_CONTAINS(second.message, "carol");
  CHECK(second.checked_in == 0);
  natter_client_free(c2);
  run_for(base, 200); /* nothing may fire for the freed client */

  natter_broker_stats st;
  natter_broker_get_stats(b, &st);
  CHECK(st.clients == 1);
  CHECK(first.fatal == 0);
  natter_client_free(c1);
  natter_broker_free(b);
  event_base_free(base);
}

/* FATAL "broker unreachable": a UDP port that swallows every packet. */
static void test_free_after_fatal_unreachable(void) {
  struct event_base *base = event_base_new();
  client_events ev;
  uint16_t port = 0;
  char addr[32];
  int fd = bound_socket(SOCK_DGRAM, &port);

  CHECK(fd >= 0);
  snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
  natter_client *c = start_client(base, "dave", addr, 0, &ev);
  ev.break_on_fatal = 1;
  CHECK(run_until(base, flag_set, &ev.fatal, 15000));
  CHECK(ev.fatal_error == NATTER_ERR_BROKER);
  CHECK_STR_CONTAINS(ev.message, addr);
  natter_client_free(c);
  run_for(base, 100);
  close(fd);
  event_base_free(base);
}

static void deferred_free_cb(evutil_socket_t fd, short what, void *arg) {
  client_events *e = arg;
  (void)fd;
  (void)what;
  natter_client_free(e->client);
  e->client = NULL;
}

/* The other documented pattern: a callback defers the free to the loop. */
static void test_deferred_free_from_callback(void) {
  struct event_base *base = event_base_new();
  client_events ev;
  char addr[32];
  natter_broker *b = start_broker(base, addr, sizeof(addr));
  natter_client *c = start_client(base, "erin", addr, 0, &ev);

  CHECK(c != NULL);
  ev.free_ev = event_new(base, -1, 0, deferred_free_cb, &ev);
  CHECK(run_until(base, flag_set, &ev.checked_in, 10000));
  run_for(base, 200); /* the deferred free runs, then nothing else */
  CHECK(ev.client == NULL);
  natter_client_free(ev.client); /* NULL if the deferred free ran */
  event_free(ev.free_ev);
  natter_broker_free(b);
  event_base_free(base);
}

typedef struct pair_state {
  client_events *a, *b;
} pair_state;

static int both_checked_in(void *arg) {
  pair_state *p = arg;
  return p->a->checked_in && p->b->checked_in;
}

static int probe_closed(void *arg) {
  return ((probe *)arg)->closed;
}

/* FORWARD_OPENED breaks the loop; the forward is removed and its client
 * freed after the loop returns, while the connection is still open. */
static void test_remove_and_free_after_loopbreak(void) {
  struct event_base *base = event_base_new();
  client_events bob_ev, alice_ev;
  echo_server echo;
  probe p;
  char addr[32], err[256];
  natter_broker *b = start_broker(base, addr, sizeof(addr));
  natter_client *bob = start_client(base, "bob", addr, 1, &bob_ev);
  natter_client *alice = start_client(base, "alice", addr, 0, &alice_ev);
  pair_state both = {&bob_ev, &alice_ev};
  natter_forward_config f;
  natter_forward *fw = NULL;

  CHECK(echo_start(&echo, base) == 0);
  CHECK(run_until(base, both_checked_in, &both, 10000));
  natter_forward_config_default(&f);
  f.peer = "bob";
  f.port = echo.port;
  f.local_port = free_tcp_port();
  CHECK(natter_client_add_forward(alice, &f, &fw, err, sizeof(err)) == 0);

  alice_ev.break_on_opened = 1;
  CHECK(probe_start(&p, base, f.local_port, 4096, 7) == 0);
  CHECK(run_until(base, flag_set, &alice_ev.forward_opened, 10000));
  CHECK(alice_ev.opened_forward == fw);
  CHECK(alice_ev.peer_connected == 1);
  CHECK(strcmp(alice_ev.peer, "bob") == 0);

  /* Out of the callback now: remove the forward with its connection
   * open, and its local end sees the connection go. */
  natter_forward_stats st;
  natter_forward_get_stats(fw, &st);
  CHECK(st.connections == 1);
  natter_forward_remove(fw);
  CHECK(run_until(base, probe_closed, &p, 5000));
  CHECK(!p.mismatch);
  probe_free(&p);

  /* A second forward with a live connection, then free the whole client
   * after a loopbreak. */
  alice_ev.forward_opened = 0;
  f.local_port = free_tcp_port();
  CHECK(natter_client_add_forward(alice, &f, &fw, err, sizeof(err)) == 0);
  CHECK(probe_start(&p, base, f.local_port, 4096, 8) == 0);
  CHECK(run_until(base, flag_set, &alice_ev.forward_opened, 10000));
  natter_client_free(alice);
  CHECK(run_until(base, probe_closed, &p, 5000));
  run_for(base, 200); /* bob sees the streams reset; nothing crashes */
  CHECK(bob_ev.fatal == 0);
  probe_free(&p);

  natter_client_free(bob);
  natter_broker_free(b);
  echo_stop(&echo);
  event_base_free(base);
}

/* ---- one broker, two independent pairs ---- */

typedef struct four_clients {
  client_events *ev[4];
} four_clients;

static int all_four_checked_in(void *arg) {
  four_clients *f = arg;
  for (int i = 0; i < 4; i++) {
    if (!f->ev[i]->checked_in) {
      return 0;
    }
  }
  return 1;
}

typedef struct two_probes {
  probe *p[2];
} two_probes;

static int both_probes_done(void *arg) {
  two_probes *t = arg;
  return probe_done(t->p[0]) && probe_done(t->p[1]);
}

static void test_one_broker_two_pairs(void) {
  enum { PAYLOAD = 300 * 1024 };
  struct event_base *base = event_base_new();
  client_events ev[4]; /* bob1, alice1, bob2, alice2 */
  const char *names[4] = {"bob1", "alice1", "bob2", "alice2"};
  natter_client *c[4];
  echo_server echo[2];
  probe p[2];
  natter_forward *fw[2] = {NULL, NULL};
  char addr[32], err[256];
  natter_broker *b = start_broker(base, addr, sizeof(addr));
  four_clients four = {{&ev[0], &ev[1], &ev[2], &ev[3]}};
  two_probes probes = {{&p[0], &p[1]}};

  for (int i = 0; i < 4; i++) {
    c[i] = start_client(base, names[i], addr, i % 2 == 0, &ev[i]);
  }
  CHECK(echo_start(&echo[0], base) == 0);
  CHECK(echo_start(&echo[1], base) == 0);
  CHECK(run_until(base, all_four_checked_in, &four, 10000));

  for (int pair = 0; pair < 2; pair++) {
    natter_forward_config f;
    natter_forward_config_default(&f);
    f.peer = names[2 * pair];
    f.port = echo[pair].port;
    f.local_port = free_tcp_port();
    CHECK(natter_client_add_forward(c[2 * pair + 1], &f, &fw[pair], err,
                                    sizeof(err)) == 0);
    CHECK(probe_start(&p[pair], base, f.local_port, PAYLOAD,
                      0x1234u + (uint32_t)pair) == 0);
  }
  CHECK(run_until(base, both_probes_done, &probes, 20000));

  for (int pair = 0; pair < 2; pair++) {
    natter_forward_stats fs;
    natter_peer_stats ps;
    client_events *alice = &ev[2 * pair + 1];
    const char *bob = names[2 * pair], *other_bob = names[2 - 2 * pair];

    CHECK(!p[pair].mismatch && !p[pair].closed);
    CHECK(p[pair].received == PAYLOAD);
    CHECK(echo[pair].accepted == 1); /* each pair reached its own server */
    CHECK(alice->peer_connected == 1 && strcmp(alice->peer, bob) == 0);
    CHECK(alice->forward_failed == 0 && alice->peer_failed == 0);
    natter_forward_get_stats(fw[pair], &fs);
    CHECK(fs.connections == 1 && fs.active == 1 && fs.failures == 0);
    CHECK(fs.bytes_sent == PAYLOAD && fs.bytes_received == PAYLOAD);
    CHECK(natter_client_get_peer_stats(c[2 * pair + 1], bob, &ps) == 0);
    CHECK(ps.connected == 1 && ps.streams == 1);
    CHECK(ps.bytes_sent >= PAYLOAD && ps.bytes_received >= PAYLOAD);
    /* The pairs are independent: alice1 never dealt with bob2. */
    CHECK(natter_client_get_peer_stats(c[2 * pair + 1], other_bob, &ps) ==
          NATTER_ERR_PEER_UNKNOWN);
  }
  natter_broker_stats bs;
  natter_broker_get_stats(b, &bs);
  CHECK(bs.clients == 4);
  CHECK(bs.introductions == 2);
  CHECK(bs.bytes_received > 0 && bs.bytes_sent > 0);

  for (int i = 0; i < 2; i++) {
    probe_free(&p[i]);
  }
  for (int i = 0; i < 4; i++) {
    CHECK(ev[i].fatal == 0);
    natter_client_free(c[i]);
  }
  natter_broker_free(b);
  echo_stop(&echo[0]);
  echo_stop(&echo[1]);
  event_base_free(base);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"strerror_every_code", test_strerror_every_code},
      {"version_matches_macros", test_version_matches_macros},
      {"config_defaults", test_config_defaults},
      {"broker_bad_arguments", test_broker_bad_arguments},
      {"broker_addr_in_use", test_broker_addr_in_use},
      {"client_bad_arguments", test_client_bad_arguments},
      {"client_fingerprint", test_client_fingerprint},
      {"client_resolve_error", test_client_resolve_error},
      {"unknown_struct_versions", test_unknown_struct_versions},
      {"broker_and_client_getters", test_broker_and_client_getters},
      {"no_fd_leak", test_no_fd_leak},
      {"forward_bad_arguments", test_forward_bad_arguments},
      {"socks_forward_config", test_socks_forward_config},
      {"forward_spec_bad_arguments", test_forward_spec_bad_arguments},
      {"forward_addr_in_use", test_forward_addr_in_use},
      {"free_after_fatal_name_taken", test_free_after_fatal_name_taken},
      {"free_after_fatal_unreachable", test_free_after_fatal_unreachable},
      {"deferred_free_from_callback", test_deferred_free_from_callback},
      {"remove_and_free_after_loopbreak", test_remove_and_free_after_loopbreak},
      {"one_broker_two_pairs", test_one_broker_two_pairs},
      {NULL, NULL}};
  return nt_test_run(cases);
}
