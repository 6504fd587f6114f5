/* natter command line: flags -> library config, signals, the loop, exit
 * codes. No networking logic lives here. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natter.h"

#define MAX_SPECS 64
#define MAX_ALLOW 64

static const char usage_text[] =
    "usage:\n"
    "  natter -server [ADDR]:PORT                          run a broker\n"
    "  natter -name NAME -broker HOST:PORT -listen         accept forwards\n"
    "  natter -name NAME -broker HOST:PORT SPEC...         forward ports\n"
    "\n"
    "SPEC:\n"
    "  LOCALPORT:PEER:PORT        127.0.0.1:LOCALPORT -> PORT on PEER's "
    "loopback\n"
    "  LOCALPORT:PEER:HOST:PORT   127.0.0.1:LOCALPORT -> HOST:PORT as PEER "
    "reaches it\n"
    "                             (HOST may be [IPv6]; PEER must -allow it)\n"
    "\n"
    "flags:\n"
    "  -server [ADDR]:PORT  run a broker on UDP ADDR:PORT (ADDR default: "
    "all)\n"
    "  -name NAME           this client's name at the broker (1-63 of "
    "A-Za-z0-9._-)\n"
    "  -broker HOST:PORT    the broker's address\n"
    "  -listen              accept forwards from peers (to this machine's "
    "loopback)\n"
    "  -allow HOST[:PORT]   also let peers reach HOST (PORT or * for any); "
    "'*' allows\n"
    "                       every target; repeatable; needs -listen\n"
    "  -identity FILE       key file (default ~/.config/natter/NAME.key, or\n"
    "                       broker.key for -server; created with mode 0600)\n"
    "  -broker-key FP       refuse a broker whose key fingerprint is not FP\n"
    "  -timeout SECONDS     budget to reach a peer (default 10)\n"
    "  -v                   verbose: log every candidate check and stream\n"
    "  -q                   quiet: errors only\n"
    "  -h, --help           this help\n"
    "  --version            print the version\n"
    "\n"
    "example:\n"
    "  broker> natter -server :10000\n"
    "  bob>    natter -name bob   -broker 1.2.3.4:10000 -listen\n"
    "  alice>  natter -name alice -broker 1.2.3.4:10000 8022:bob:22\n"
    "  alice>  ssh -p 8022 user@localhost\n";

typedef struct cli {
  struct event_base *base;
  int exit_code;
} cli;

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  cli *app = arg;
  (void)sig;
  (void)what;
  event_base_loopbreak(app->base);
}

static void on_event(natter_client *client, const natter_event *ev,
                     void *user_data) {
  cli *app = user_data;
  (void)client;
  if (ev->type == NATTER_EVENT_FATAL) {
    app->exit_code = 1;
    event_base_loopbreak(app->base);
  }
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "natter: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nrun 'natter -h' for usage\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *server = NULL, *name = NULL, *broker = NULL;
  const char *identity = NULL, *broker_key = NULL;
  const char *specs[MAX_SPECS], *allow[MAX_ALLOW + 1];
  size_t nspecs = 0, nallow = 0;
  int listen = 0;
  long timeout_s = 10;
  natter_log_level level = NATTER_LOG_INFO;
  cli app = {NULL, 0};

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
#define VALUE(var)                                                             \
  do {                                                                         \
    if (!has_value)                                                            \
      return usage_error("flag %s needs a value", a);                          \
    var = argv[++i];                                                           \
  } while (0)
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 ||
        strcmp(a, "-help") == 0) {
      fputs(usage_text, stdout);
      return 0;
    } else if (strcmp(a, "--version") == 0 || strcmp(a, "-version") == 0) {
      printf("natter %s\n", natter_version());
      return 0;
    } else if (strcmp(a, "-server") == 0) {
      VALUE(server);
    } else if (strcmp(a, "-name") == 0) {
      VALUE(name);
    } else if (strcmp(a, "-broker") == 0) {
      VALUE(broker);
    } else if (strcmp(a, "-identity") == 0) {
      VALUE(identity);
    } else if (strcmp(a, "-broker-key") == 0) {
      VALUE(broker_key);
    } else if (strcmp(a, "-allow") == 0) {
      if (nallow >= MAX_ALLOW) {
        return usage_error("too many -allow rules (at most %s)", "64");
      }
      VALUE(allow[nallow]);
      nallow++;
    } else if (strcmp(a, "-timeout") == 0) {
      const char *v;
      char *end;
      VALUE(v);
      timeout_s = strtol(v, &end, 10);
      if (*v == '\0' || *end != '\0' || timeout_s < 1 || timeout_s > 3600) {
        return usage_error("bad -timeout \"%s\": expected 1..3600 seconds",
                           v);
      }
    } else if (strcmp(a, "-listen") == 0) {
      listen = 1;
    } else if (strcmp(a, "-v") == 0) {
      level = NATTER_LOG_DEBUG;
    } else if (strcmp(a, "-q") == 0) {
      level = NATTER_LOG_ERROR;
    } else if (a[0] == '-' && a[1] != '\0') {
      return usage_error("unknown flag %s", a);
    } else {
      if (nspecs >= MAX_SPECS) {
        return usage_error("too many forwards (at most %s)", "64");
      }
      specs[nspecs++] = a;
    }
#undef VALUE
  }
  allow[nallow] = NULL;

  if (server && (name || broker || listen || nspecs || nallow)) {
    return usage_error("%s", "-server runs a broker only; -name, -broker, "
                             "-listen, -allow and specs are for clients");
  }
  if (!server) {
    if (!name) {
      return usage_error("%s", "missing -name (or -server to run a broker)");
    }
    if (!broker) {
      return usage_error("%s", "missing -broker HOST:PORT");
    }
    if (!listen && nspecs == 0) {
      return usage_error("%s", "nothing to do: give -listen and/or a "
                               "forward SPEC");
    }
    if (nallow && !listen) {
      return usage_error("%s", "-allow needs -listen");
    }
  }

  signal(SIGPIPE, SIG_IGN);
  app.base = event_base_new();
  if (!app.base) {
    fprintf(stderr, "natter: cannot create the event loop\n");
    return 1;
  }
  struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
  struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);

  natter_broker *b = NULL;
  natter_client *c = NULL;
  int rv;
  if (server) {
    natter_broker_config cfg;
    natter_broker_config_default(&cfg);
    cfg.listen = server;
    cfg.identity_file = identity;
    cfg.log_level = level;
    rv = natter_broker_new(&b, app.base, &cfg);
  } else {
    natter_client_config cfg;
    natter_client_config_default(&cfg);
    cfg.name = name;
    cfg.broker = broker;
    cfg.identity_file = identity;
    cfg.broker_key = broker_key;
    cfg.listen = listen;
    cfg.allow = nallow ? allow : NULL;
    cfg.connect_timeout_ms = (uint32_t)timeout_s * 1000;
    cfg.log_level = level;
    cfg.on_event = on_event;
    cfg.user_data = &app;
    rv = natter_client_new(&c, app.base, &cfg);
    for (size_t i = 0; rv == 0 && i < nspecs; i++) {
      char err[512];
      rv = natter_client_add_forward(c, specs[i], err, sizeof(err));
      if (rv != 0) {
        fprintf(stderr, "natter: %s\n", err);
      }
    }
  }
  if (rv == 0) {
    event_base_dispatch(app.base);
  } else {
    app.exit_code = 1;
  }
  if (b) {
    natter_broker_stats st;
    natter_broker_get_stats(b, &st);
    fprintf(stderr,
            "natter: broker traffic: received %llu bytes, sent %llu bytes, "
            "%llu introductions\n",
            (unsigned long long)st.bytes_received,
            (unsigned long long)st.bytes_sent,
            (unsigned long long)st.introductions);
  }
  natter_client_free(c);
  natter_broker_free(b);
  event_free(sigint);
  event_free(sigterm);
  event_base_free(app.base);
  return app.exit_code;
}
