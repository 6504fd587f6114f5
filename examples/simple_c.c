/* simple_c: natter's three README commands in one process, through the
 * library: a broker on 127.0.0.1:10000, "bob" accepting forwards, and
 * "alice" forwarding 127.0.0.1:8022 to port 22 on bob. While it runs,
 * `ssh -p 8022 user@127.0.0.1` reaches this machine's sshd through a QUIC
 * connection between alice and bob. Ctrl-C stops it.
 *
 *   simple_c [--check] [LOCALPORT]
 *
 * LOCALPORT replaces 8022. --check exits 0 as soon as both clients have
 * checked in at the broker, or 1 after 10 s; the broker then takes any
 * free UDP port. (alice connects to bob only when the first connection
 * to LOCALPORT arrives.)
 *
 * Build against an installed libnatter:
 *   cc simple_c.c $(pkg-config --cflags --libs natter) -o simple_c
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <natter.h>

#define CHECK_TIMEOUT_S 10

typedef struct app {
  struct event_base *base;
  int check; /* --check given */
  int exit_code;
} app;

/* Each client gets its own user_data: the callbacks learn who speaks. */
typedef struct role {
  app *app;
  const char *name;
  int checked_in;
} role;

static void log_line(natter_log_level level, const char *line,
                     void *user_data) {
  const role *r = user_data;
  (void)level;
  fprintf(stderr, "%-6s %s\n", r->name, line);
}

static role broker_role = {NULL, "broker", 0};
static role bob_role = {NULL, "bob", 0};
static role alice_role = {NULL, "alice", 0};

/* Events come from inside the loop. The library has logged them already;
 * here we only decide whether to stop. A callback must not free the
 * client: it breaks the loop and main() frees everything. */
static void on_event(natter_client *client, const natter_event *ev,
                     void *user_data) {
  role *r = user_data;
  app *a = r->app;
  (void)client;

  switch (ev->type) {
  case NATTER_EVENT_CHECKED_IN:
    r->checked_in = 1;
    if (a->check && bob_role.checked_in && alice_role.checked_in) {
      printf("simple_c: bob and alice checked in\n");
      event_base_loopbreak(a->base);
    }
    break;
  case NATTER_EVENT_FATAL:
    fprintf(stderr, "simple_c: %s gave up: %s\n", r->name, ev->message);
    a->exit_code = 1;
    event_base_loopbreak(a->base);
    break;
  default:
    break;
  }
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  app *a = arg;
  (void)sig;
  (void)what;
  event_base_loopbreak(a->base);
}

static void on_check_timeout(evutil_socket_t fd, short what, void *arg) {
  app *a = arg;
  (void)fd;
  (void)what;
  fprintf(stderr, "simple_c: clients not checked in after %d s\n",
          CHECK_TIMEOUT_S);
  a->exit_code = 1;
  event_base_loopbreak(a->base);
}

static int usage(void) {
  fprintf(stderr, "usage: simple_c [--check] [LOCALPORT]\n");
  return 2;
}

int main(int argc, char **argv) {
  app a = {NULL, 0, 0};
  long local_port = 8022;
  natter_broker *broker = NULL;
  natter_client *bob = NULL, *alice = NULL;
  struct event *sigint = NULL, *sigterm = NULL, *timeout = NULL;
  natter_broker_config bcfg;
  natter_client_config ccfg;
  natter_forward_config fcfg;
  char broker_addr[32], err[256];
  int rv;

  for (int i = 1; i < argc; i++) {
    char *end;
    if (strcmp(argv[i], "--check") == 0) {
      a.check = 1;
      continue;
    }
    local_port = strtol(argv[i], &end, 10);
    if (*end != '\0' || local_port < 1 || local_port > 65535) {
      return usage();
    }
  }

  a.base = event_base_new();
  if (!a.base) {
    fprintf(stderr, "simple_c: cannot create an event_base\n");
    return 1;
  }
  broker_role.app = bob_role.app = alice_role.app = &a;

  /* The library installs no signal handler: the application does. */
  sigint = evsignal_new(a.base, SIGINT, on_signal, &a);
  sigterm = evsignal_new(a.base, SIGTERM, on_signal, &a);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);

  /* The broker. identity_file "" gives an ephemeral in-memory key and
   * registry "" keeps names in memory, so the example writes nothing to
   * disk. */
  natter_broker_config_default(&bcfg);
  bcfg.listen = a.check ? "127.0.0.1:0" : "127.0.0.1:10000";
  bcfg.identity_file = "";
  bcfg.registry = "";
  bcfg.log = log_line;
  bcfg.user_data = &broker_role;
  rv = natter_broker_new(&broker, a.base, &bcfg);
  if (rv != 0) {
    fprintf(stderr, "simple_c: broker: %s\n", natter_strerror(rv));
    a.exit_code = 1;
    goto out;
  }
  snprintf(broker_addr, sizeof(broker_addr), "127.0.0.1:%u",
           (unsigned)natter_broker_port(broker));

  /* bob accepts forwards to its own loopback, from alice only (the broker
   * is open: anyone could check in). Both pin the broker's key. */
  static const char *const peers[] = {"alice", NULL};
  natter_client_config_default(&ccfg);
  ccfg.name = "bob";
  ccfg.broker = broker_addr;
  ccfg.broker_key = natter_broker_fingerprint(broker);
  ccfg.allow_peers = peers;
  ccfg.identity_file = "";
  ccfg.listen = 1;
  ccfg.log = log_line;
  ccfg.on_event = on_event;
  ccfg.user_data = &bob_role;
  rv = natter_client_new(&bob, a.base, &ccfg);
  if (rv != 0) {
    fprintf(stderr, "simple_c: bob: %s\n", natter_strerror(rv));
    a.exit_code = 1;
    goto out;
  }

  /* alice: the same config with another name, not listening. */
  ccfg.name = "alice";
  ccfg.listen = 0;
  ccfg.user_data = &alice_role;
  rv = natter_client_new(&alice, a.base, &ccfg);
  if (rv != 0) {
    fprintf(stderr, "simple_c: alice: %s\n", natter_strerror(rv));
    a.exit_code = 1;
    goto out;
  }

  /* 127.0.0.1:LOCALPORT on alice -> port 22 on bob's loopback. The port is
   * bound here, so a port in use fails now, not later. */
  natter_forward_config_default(&fcfg);
  fcfg.peer = "bob";
  fcfg.local_port = (uint16_t)local_port;
  fcfg.port = 22;
  rv = natter_client_add_forward(alice, &fcfg, NULL, err, sizeof(err));
  if (rv != 0) {
    fprintf(stderr, "simple_c: %s\n", err);
    a.exit_code = 1;
    goto out;
  }

  if (a.check) {
    struct timeval tv = {CHECK_TIMEOUT_S, 0};
    timeout = evtimer_new(a.base, on_check_timeout, &a);
    evtimer_add(timeout, &tv);
  } else {
    printf("simple_c: ssh -p %ld user@127.0.0.1 now reaches port 22 here "
           "through natter; Ctrl-C stops\n",
           local_port);
    fflush(stdout);
  }
  event_base_dispatch(a.base);

out:
  /* Clients before the broker, everything before the event_base. */
  natter_client_free(alice);
  natter_client_free(bob);
  natter_broker_free(broker);
  if (timeout) {
    event_free(timeout);
  }
  event_free(sigint);
  event_free(sigterm);
  event_base_free(a.base);
  return a.exit_code;
}
