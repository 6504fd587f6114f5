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
    "  :PEER:PORT, :PEER:HOST:PORT  this process's stdin/stdout instead of a "
    "port\n"
    "  LOCALPORT:PEER: CMD ARGS...  each connection runs CMD on PEER (PEER "
    "must\n"
    "                             -allow-command CMD); must be the last "
    "spec\n"
    "  :PEER: CMD ARGS...         stdin/stdout piped into CMD on PEER; exits "
    "with\n"
    "                             CMD's status\n"
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
    "  -allow-command PROG  let peers run PROG here (exact argv[0]; '*' for "
    "any);\n"
    "                       never through a shell; repeatable; needs -listen\n"
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
  natter_forward *session; /* the stdin/stdout forward, if any */
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
  /* A stdin/stdout session is the whole job: its end ends natter, with
   * the remote command's status when there was one. */
  if (app->session && ev->forward == app->session) {
    if (ev->type == NATTER_EVENT_FORWARD_CLOSED) {
      app->exit_code = ev->exit_status >= 0 ? ev->exit_status : 0;
      event_base_loopbreak(app->base);
    } else if (ev->type == NATTER_EVENT_FORWARD_FAILED) {
      app->exit_code = 1;
      event_base_loopbreak(app->base);
    }
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
  const char *allow_cmd[MAX_ALLOW + 1];
  const char *const *spec_argv[MAX_SPECS];
  size_t nspecs = 0, nallow = 0, nallow_cmd = 0, nstdio = 0;
  int listen = 0;
  long timeout_s = 10;
  natter_log_level level = NATTER_LOG_INFO;
  cli app = {NULL, 0, NULL};

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
    } else if (strcmp(a, "-allow-command") == 0) {
      if (nallow_cmd >= MAX_ALLOW) {
        return usage_error("too many -allow-command rules (at most %s)",
                           "64");
      }
      VALUE(allow_cmd[nallow_cmd]);
      nallow_cmd++;
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
      size_t len = strlen(a);
      spec_argv[nspecs] = NULL;
      if (a[0] == ':') {
        nstdio++;
      }
      specs[nspecs++] = a;
      /* "LOCALPORT:PEER:" runs a command on PEER: the rest of the command
       * line is that command. */
      if (len > 1 && a[len - 1] == ':') {
        if (i + 1 >= argc) {
          return usage_error("spec %s needs a command after it", a);
        }
        spec_argv[nspecs - 1] = (const char *const *)&argv[i + 1];
        break;
      }
    }
#undef VALUE
  }
  allow[nallow] = NULL;
  allow_cmd[nallow_cmd] = NULL;
  if (nstdio > 1) {
    return usage_error("%s", "only one spec may use stdin/stdout (:PEER:...)");
  }

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
    if ((nallow || nallow_cmd) && !listen) {
      return usage_error("%s", "-allow and -allow-command need -listen");
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
    cfg.allow_commands = nallow_cmd ? allow_cmd : NULL;
    cfg.connect_timeout_ms = (uint32_t)timeout_s * 1000;
    cfg.log_level = level;
    /* A stdin/stdout session speaks through stdout: keep stderr for
     * what goes wrong unless asked for more. */
    if (nstdio && level == NATTER_LOG_INFO) {
      cfg.log_level = NATTER_LOG_WARN;
    }
    cfg.on_event = on_event;
    cfg.user_data = &app;
    rv = natter_client_new(&c, app.base, &cfg);
    for (size_t i = 0; rv == 0 && i < nspecs; i++) {
      char err[512];
      natter_forward *f = NULL;
      rv = natter_client_add_forward_spec(c, specs[i], spec_argv[i], &f, err,
                                          sizeof(err));
      if (rv == 0 && specs[i][0] == ':') {
        app.session = f;
      }
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
