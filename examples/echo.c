/* echo: a self-checking natter round trip in one process on one
 * event_base, using only natter.h and libevent.
 *
 *   broker  127.0.0.1:(any free UDP port)
 *   bob     listening; two TCP echo servers on 127.0.0.1:ECHO and ECHO+1
 *   alice   127.0.0.1:FWD   -> bob:ECHO
 *           127.0.0.1:FWD+1 -> bob:ECHO+1
 *
 * Once both clients have checked in, one TCP connection to each of alice's
 * forwards sends a few messages (a line, 256 KiB of pseudo-random bytes, a
 * line), each after the echo of the one before, and compares every echoed
 * byte.
 *
 *   echo [ECHO [FWD]]      default ECHO 7000, FWD 6000; ECHO 0: any free
 *                          ports for the echo servers
 *
 * Exit status: 0 when every byte came back, 1 on a mismatch, a failure or
 * after 15 s, 2 on bad usage, 3 when a port is in use.
 *
 * Build against an installed libnatter:
 *   cc echo.c $(pkg-config --cflags --libs natter) -o echo
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <natter.h>

#define NFORWARDS 2
#define NMESSAGES 3
#define BIG_MESSAGE_LEN (256 * 1024)
#define TIMEOUT_S 15
#define MAX_ECHO_CONNS 16

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_PORT_IN_USE 3

typedef struct app app;

/* One TCP connection through one of alice's forwards. */
typedef struct probe {
  app *app;
  int index;
  uint16_t port; /* alice's local port */
  struct bufferevent *bev;
  char *messages[NMESSAGES];
  size_t lengths[NMESSAGES];
  size_t current;  /* message being echoed */
  size_t received; /* bytes of it echoed so far */
  int done;
} probe;

struct app {
  struct event_base *base;
  int exit_code; /* -1 while running */
  natter_client *bob, *alice;
  int bob_in, alice_in; /* checked in at the broker */
  int probes_started;
  struct evconnlistener *echo_listeners[NFORWARDS];
  struct bufferevent *echo_conns[MAX_ECHO_CONNS];
  probe probes[NFORWARDS];
  uint64_t bytes_checked;
};

static void finish(app *a, int exit_code) {
  if (a->exit_code == -1) {
    a->exit_code = exit_code;
  }
  event_base_loopbreak(a->base);
}

/* ---- the echo servers (bob's side) ---- */

static void echo_conn_free(app *a, struct bufferevent *bev) {
  for (size_t i = 0; i < MAX_ECHO_CONNS; i++) {
    if (a->echo_conns[i] == bev) {
      a->echo_conns[i] = NULL;
    }
  }
  bufferevent_free(bev);
}

static void echo_read(struct bufferevent *bev, void *arg) {
  (void)arg;
  bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void echo_event(struct bufferevent *bev, short what, void *arg) {
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    echo_conn_free(arg, bev);
  }
}

static void echo_accept(struct evconnlistener *listener, evutil_socket_t fd,
                        struct sockaddr *sa, int salen, void *arg) {
  app *a = arg;
  size_t slot;
  (void)listener;
  (void)sa;
  (void)salen;

  for (slot = 0; slot < MAX_ECHO_CONNS && a->echo_conns[slot]; slot++) {
  }
  struct bufferevent *bev =
      slot < MAX_ECHO_CONNS
          ? bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE)
          : NULL;
  if (!bev) {
    evutil_closesocket(fd);
    return;
  }
  a->echo_conns[slot] = bev;
  bufferevent_setcb(bev, echo_read, NULL, echo_event, a);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Listens on 127.0.0.1:|port| (0: any free port); returns the port bound,
 * or 0 with errno set. */
static uint16_t echo_listen(app *a, int i, uint16_t port) {
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port);
  a->echo_listeners[i] = evconnlistener_new_bind(
      a->base, echo_accept, a, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
      (struct sockaddr *)&sin, sizeof(sin));
  if (!a->echo_listeners[i]) {
    return 0;
  }
  getsockname(evconnlistener_get_fd(a->echo_listeners[i]),
              (struct sockaddr *)&sin, &len);
  return ntohs(sin.sin_port);
}

/* ---- the probes (alice's side) ---- */

static void probe_send_current(probe *p) {
  p->received = 0;
  bufferevent_write(p->bev, p->messages[p->current], p->lengths[p->current]);
}

static void probe_fail(probe *p, const char *what) {
  fprintf(stderr,
          "echo: forward 127.0.0.1:%u: %s (message %zu of %d, %zu of %zu "
          "bytes echoed)\n",
          p->port, what, p->current + 1, NMESSAGES, p->received,
          p->lengths[p->current]);
  finish(p->app, EXIT_FAILED);
}

static void probe_read(struct bufferevent *bev, void *arg) {
  probe *p = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  char chunk[16384];

  while (!p->done && evbuffer_get_length(in) > 0) {
    size_t want = p->lengths[p->current] - p->received;
    size_t n =
        evbuffer_remove(in, chunk, want < sizeof(chunk) ? want : sizeof(chunk));
    if (memcmp(chunk, p->messages[p->current] + p->received, n) != 0) {
      probe_fail(p, "echoed bytes differ from the bytes sent");
      return;
    }
    p->received += n;
    p->app->bytes_checked += n;
    if (p->received < p->lengths[p->current]) {
      continue;
    }
    if (++p->current < NMESSAGES) {
      probe_send_current(p);
      continue;
    }
    printf("echo: forward 127.0.0.1:%u: %d messages echoed intact\n", p->port,
           NMESSAGES);
    p->done = 1;
    bufferevent_free(p->bev);
    p->bev = NULL;
    int all = 1;
    for (int i = 0; i < NFORWARDS; i++) {
      all &= p->app->probes[i].done;
    }
    if (all) {
      finish(p->app, 0);
    }
    return;
  }
  if (evbuffer_get_length(in) > 0) {
    probe_fail(p, "more bytes came back than were sent");
  }
}

static void probe_event(struct bufferevent *bev, short what, void *arg) {
  probe *p = arg;
  (void)bev;
  if (what & BEV_EVENT_CONNECTED) {
    probe_send_current(p);
  } else if (what & BEV_EVENT_EOF) {
    probe_fail(p, "connection closed early");
  } else if (what & BEV_EVENT_ERROR) {
    probe_fail(p, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
  }
}

static int probe_start(probe *p) {
  struct sockaddr_in sin;

  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(p->port);
  p->bev = bufferevent_socket_new(p->app->base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (!p->bev) {
    return -1;
  }
  bufferevent_setcb(p->bev, probe_read, NULL, probe_event, p);
  bufferevent_enable(p->bev, EV_READ | EV_WRITE);
  return bufferevent_socket_connect(p->bev, (struct sockaddr *)&sin,
                                    sizeof(sin));
}

static int probe_init(probe *p, app *a, int index, uint16_t port) {
  uint32_t x = 0x9e3779b9u * (uint32_t)(index + 1); /* xorshift32 seed */

  memset(p, 0, sizeof(*p));
  p->app = a;
  p->index = index;
  p->port = port;
  p->lengths[1] = BIG_MESSAGE_LEN;
  p->messages[0] = malloc(100);
  p->messages[1] = malloc(BIG_MESSAGE_LEN);
  p->messages[2] = malloc(100);
  if (!p->messages[0] || !p->messages[1] || !p->messages[2]) {
    return -1;
  }
  p->lengths[0] = (size_t)snprintf(p->messages[0], 100,
                                   "hello through forward %d\n", index + 1);
  for (size_t i = 0; i < BIG_MESSAGE_LEN; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p->messages[1][i] = (char)(x >> 24);
  }
  p->lengths[2] = (size_t)snprintf(p->messages[2], 100,
                                   "goodbye from forward %d\n", index + 1);
  return 0;
}

static void probe_free(probe *p) {
  if (p->bev) {
    bufferevent_free(p->bev);
  }
  for (int i = 0; i < NMESSAGES; i++) {
    free(p->messages[i]);
  }
}

/* ---- natter ---- */

static void on_event(natter_client *client, const natter_event *ev,
                     void *user_data) {
  app *a = user_data;

  switch (ev->type) {
  case NATTER_EVENT_CHECKED_IN:
    /* alice asks the broker for bob when a connection arrives, so both
     * must be checked in before the probes connect. */
    if (client == a->bob) {
      a->bob_in = 1;
    } else {
      a->alice_in = 1;
    }
    if (a->bob_in && a->alice_in && !a->probes_started) {
      a->probes_started = 1;
      for (int i = 0; i < NFORWARDS; i++) {
        if (probe_start(&a->probes[i]) != 0) {
          fprintf(stderr, "echo: cannot connect to 127.0.0.1:%u\n",
                  a->probes[i].port);
          finish(a, EXIT_FAILED);
        }
      }
    }
    break;
  case NATTER_EVENT_FATAL:
  case NATTER_EVENT_PEER_FAILED:
  case NATTER_EVENT_FORWARD_FAILED:
    fprintf(stderr, "echo: %s\n", ev->message);
    finish(a, EXIT_FAILED); /* never free a client in its callback */
    break;
  default:
    break;
  }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  app *a = arg;
  (void)fd;
  (void)what;
  fprintf(stderr, "echo: not done after %d s\n", TIMEOUT_S);
  for (int i = 0; i < NFORWARDS; i++) {
    if (!a->probes[i].done && a->probes[i].bev) {
      probe_fail(&a->probes[i], "still waiting");
    }
  }
  finish(a, EXIT_FAILED);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)sig;
  (void)what;
  finish(arg, EXIT_FAILED);
}

static int parse_port(const char *s, long *port) {
  char *end;
  *port = strtol(s, &end, 10);
  return *s && *end == '\0' && *port >= 0 && *port <= 65534 ? 0 : -1;
}

int main(int argc, char **argv) {
  app a;
  long echo_base = 7000, fwd_base = 6000;
  uint16_t echo_ports[NFORWARDS];
  natter_broker *broker = NULL;
  struct event *timeout = NULL, *sigint = NULL;
  natter_broker_config bcfg;
  natter_client_config ccfg;
  char broker_addr[32], err[256];
  int rv;

  if (argc > 3 || (argc > 1 && parse_port(argv[1], &echo_base) != 0) ||
      (argc > 2 && (parse_port(argv[2], &fwd_base) != 0 || fwd_base == 0))) {
    fprintf(stderr, "usage: echo [ECHO_PORT [FORWARD_PORT]]  (defaults "
                    "7000 6000; each uses PORT and PORT+1)\n");
    return EXIT_USAGE;
  }
  memset(&a, 0, sizeof(a));
  a.exit_code = -1;
  a.base = event_base_new();
  if (!a.base) {
    fprintf(stderr, "echo: cannot create an event_base\n");
    return EXIT_FAILED;
  }
  for (int i = 0; i < NFORWARDS; i++) {
    if (probe_init(&a.probes[i], &a, i, (uint16_t)(fwd_base + i)) != 0) {
      fprintf(stderr, "echo: out of memory\n");
      a.exit_code = EXIT_FAILED;
      goto out;
    }
  }
  sigint = evsignal_new(a.base, SIGINT, on_signal, &a);
  event_add(sigint, NULL);

  /* bob's echo servers. */
  for (int i = 0; i < NFORWARDS; i++) {
    echo_ports[i] =
        echo_listen(&a, i, echo_base ? (uint16_t)(echo_base + i) : 0);
    if (!echo_ports[i]) {
      int e = errno;
      fprintf(stderr, "echo: cannot listen on 127.0.0.1:%ld: %s\n",
              echo_base + i, strerror(e));
      a.exit_code = e == EADDRINUSE ? EXIT_PORT_IN_USE : EXIT_FAILED;
      goto out;
    }
  }

  /* The broker on any free port; ephemeral keys everywhere, names in
   * memory: nothing is written to disk. */
  natter_broker_config_default(&bcfg);
  bcfg.listen = "127.0.0.1:0";
  bcfg.identity_file = "";
  bcfg.registry = "";
  bcfg.log_level = NATTER_LOG_WARN;
  if ((rv = natter_broker_new(&broker, a.base, &bcfg)) != 0) {
    fprintf(stderr, "echo: broker: %s\n", natter_strerror(rv));
    a.exit_code = EXIT_FAILED;
    goto out;
  }
  snprintf(broker_addr, sizeof(broker_addr), "127.0.0.1:%u",
           (unsigned)natter_broker_port(broker));

  /* bob admits alice only; both pin the broker's key. */
  static const char *const peers[] = {"alice", NULL};
  natter_client_config_default(&ccfg);
  ccfg.broker = broker_addr;
  ccfg.broker_key = natter_broker_fingerprint(broker);
  ccfg.allow_peers = peers;
  ccfg.identity_file = "";
  ccfg.log_level = NATTER_LOG_WARN;
  ccfg.on_event = on_event;
  ccfg.user_data = &a;
  ccfg.name = "bob";
  ccfg.listen = 1;
  if ((rv = natter_client_new(&a.bob, a.base, &ccfg)) != 0) {
    fprintf(stderr, "echo: bob: %s\n", natter_strerror(rv));
    a.exit_code = EXIT_FAILED;
    goto out;
  }
  ccfg.name = "alice";
  ccfg.listen = 0;
  if ((rv = natter_client_new(&a.alice, a.base, &ccfg)) != 0) {
    fprintf(stderr, "echo: alice: %s\n", natter_strerror(rv));
    a.exit_code = EXIT_FAILED;
    goto out;
  }
  for (int i = 0; i < NFORWARDS; i++) {
    natter_forward_config fcfg;
    natter_forward_config_default(&fcfg);
    fcfg.peer = "bob";
    fcfg.local_port = a.probes[i].port;
    fcfg.port = echo_ports[i];
    rv = natter_client_add_forward(a.alice, &fcfg, NULL, err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "echo: %s\n", err);
      a.exit_code =
          rv == NATTER_ERR_ADDR_IN_USE ? EXIT_PORT_IN_USE : EXIT_FAILED;
      goto out;
    }
    printf("echo: alice 127.0.0.1:%u -> bob 127.0.0.1:%u (echo server)\n",
           a.probes[i].port, echo_ports[i]);
  }

  timeout = evtimer_new(a.base, on_timeout, &a);
  struct timeval tv = {TIMEOUT_S, 0};
  evtimer_add(timeout, &tv);

  /* The probes start once both clients checked in (on_event); the loop
   * runs until they finish, fail or time out. */
  event_base_dispatch(a.base);
  if (a.exit_code == 0) {
    printf("echo: OK: %llu bytes echoed through %d forwards\n",
           (unsigned long long)a.bytes_checked, NFORWARDS);
  }

out:
  for (int i = 0; i < NFORWARDS; i++) {
    probe_free(&a.probes[i]);
  }
  natter_client_free(a.alice);
  natter_client_free(a.bob);
  natter_broker_free(broker);
  for (int i = 0; i < MAX_ECHO_CONNS; i++) {
    if (a.echo_conns[i]) {
      bufferevent_free(a.echo_conns[i]);
    }
  }
  for (int i = 0; i < NFORWARDS; i++) {
    if (a.echo_listeners[i]) {
      evconnlistener_free(a.echo_listeners[i]);
    }
  }
  if (timeout) {
    event_free(timeout);
  }
  if (sigint) {
    event_free(sigint);
  }
  event_base_free(a.base);
  return a.exit_code < 0 ? EXIT_FAILED : a.exit_code;
}
