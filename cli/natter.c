/* natter command line: flags and the config file -> library config,
 * signals, the loop, exit codes. No networking logic lives here. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "natter.h"
#include "report.h"

#define MAX_SPECS 64
#define MAX_RULES 64
#define DEFAULT_CONFIG "/etc/natter/natter.conf"
#define TOKEN_ENV "NATTER_TOKEN"

static const char usage_text[] =
    "usage:\n"
    "  natter -server [ADDR]:PORT                          run a broker\n"
    "  natter -name NAME -broker HOST:PORT -listen -allow-peer PEER\n"
    "                                                      accept forwards\n"
    "  natter -name NAME -broker HOST:PORT SPEC...         forward ports\n"
    "  natter [-registry FILE] -list | -release NAME       manage a broker's "
    "names\n"
    "  natter -status [HOST:PORT] [-json]                  show a status "
    "page\n"
    "  natter -name NAME -broker HOST:PORT -check PEER [-json]\n"
    "                                                      check the way to "
    "PEER\n"
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
    "                             -allow-command that command line); must be "
    "the\n"
    "                             last spec\n"
    "  :PEER: CMD ARGS...         stdin/stdout piped into CMD on PEER; exits "
    "with\n"
    "                             CMD's status\n"
    "\n"
    "flags:\n"
    "  -server [ADDR]:PORT  run a broker on UDP ADDR:PORT (ADDR default: "
    "all, IPv4 and IPv6)\n"
    "  -name NAME           this client's name at the broker (1-63 of "
    "A-Za-z0-9._-)\n"
    "  -broker HOST:PORT    the broker's address\n"
    "  -listen              accept forwards from admitted peers (to this "
    "machine's\n"
    "                       loopback)\n"
    "  -allow-peer RULE     admit peer NAME, NAME@FINGERPRINT, @FINGERPRINT "
    "or '*'\n"
    "                       (anyone); '!RULE' refuses; first match wins; "
    "repeatable.\n"
    "                       Needed with -listen unless the broker is closed\n"
    "  -allow HOST[:PORT]   also let peers reach HOST (PORT or * for any); "
    "'*' allows\n"
    "                       every target; HOST may be [IPv6] (a bare IPv6 "
    "address\n"
    "                       takes no port); PEER=RULE for one peer only; "
    "repeatable;\n"
    "                       needs -listen\n"
    "  -allow-command CMD   let peers run exactly this command line here; a "
    "final\n"
    "                       ' *' word allows any further arguments, '*' "
    "alone any\n"
    "                       command; PEER=CMD for one peer only; never "
    "through a\n"
    "                       shell; repeatable; needs -listen\n"
    "  -max-clients N       broker: connections in all (default 10000)\n"
    "  -max-pending N       broker: connections not checked in yet (default "
    "512)\n"
    "  -max-per-address N   broker: connections from one IP address (default "
    "32)\n"
    "  -retry-above N       broker: new connections a second before QUIC "
    "Retry\n"
    "                       validates addresses (default 200; 0: never)\n"
    "  -max-commands N      remote commands running here at once (default "
    "32)\n"
    "  -max-commands-per-peer N  ... for one peer (default 8)\n"
    "  -identity FILE       key file (default ~/.config/natter/NAME.key, or\n"
    "                       broker.key for -server; created with mode 0600)\n"
    "  -broker-key FP       refuse a broker whose key fingerprint is not FP "
    "(default:\n"
    "                       trust on first use, remembered in\n"
    "                       ~/.config/natter/known_brokers)\n"
    "  -token-file FILE     the broker's shared token (first line of FILE); "
    "or set\n"
    "                       " TOKEN_ENV ". A broker with a token admits only "
    "clients\n"
    "                       that present it\n"
    "  -admitted-keys FILE  broker: admit only the keys listed in FILE\n"
    "                       (\"FINGERPRINT NAME\" lines)\n"
    "  -registry FILE       broker: name registry (default "
    "$STATE_DIRECTORY/\n"
    "                       registry.db or "
    "~/.local/state/natter/registry.db);\n"
    "                       also sqlite:///FILE, or memory: (names lost at "
    "exit)\n"
    "  -name-expiry DUR     broker: release names unused for DUR (30d, 12h, "
    "90m,\n"
    "                       45s; 0: never; default 30d)\n"
    "  -relay               broker: relay peers that cannot punch a hole "
    "(UDP PORT+2;\n"
    "                       end-to-end encrypted, the broker reads nothing)\n"
    "  -relay-rate BYTES    broker: relayed bytes a second per client "
    "(default\n"
    "                       2000000; 0: no cap)\n"
    "  -relay-total BYTES   broker: relayed bytes per client in all "
    "(default\n"
    "                       1000000000; 0: no cap)\n"
    "  -no-relay            never connect to or accept peers through the "
    "broker's\n"
    "                       relay\n"
    "  -list                print the names in the registry and exit\n"
    "  -release NAME        release NAME in the registry and exit\n"
    "  -timeout SECONDS     budget to reach a peer (default 10)\n"
    "  -port PORT           this client's UDP port (default: any free "
    "port); fix it\n"
    "                       when a router forwards a UDP port to this host\n"
    "  -metrics IP:PORT     serve Prometheus metrics on this loopback TCP "
    "address\n"
    "                       (GET /metrics; default: off)\n"
    "  -admin FP            a key (fingerprint) that may read the detailed "
    "status\n"
    "                       page; repeatable\n"
    "  -status [HOST:PORT]  print the HTTP/3 status page of a broker or "
    "client (its\n"
    "                       UDP port; default: this machine's client at "
    "-port, or\n"
    "                       the -server or -broker address), as this "
    "machine's key\n"
    "                       (-identity, or NAME.key with -name)\n"
    "  -check PEER          check how this machine reaches PEER (a -listen "
    "peer):\n"
    "                       both sides' NAT mapping, candidates and probes, "
    "and a\n"
    "                       verdict; exit status 0 direct, 3 needs relay, 4 "
    "UDP\n"
    "                       blocked, 5 PEER does not listen, 6 unknown, 7 "
    "refused,\n"
    "                       1 failed. Does not disturb a client running as "
    "NAME\n"
    "  -json                with -status: print the raw JSON; with -check: "
    "one JSON\n"
    "                       object\n"
    "  -log-format FORMAT   text (default) or json: one object per line "
    "with the\n"
    "                       keys time, level, msg\n"
    "  -config FILE         read settings from FILE (default " DEFAULT_CONFIG
    ",\n"
    "                       if it exists); flags override it\n"
    "  -v                   verbose: log every candidate check and stream\n"
    "  -q                   quiet: errors only\n"
    "  -h, --help           this help\n"
    "  --version            print the version\n"
    "\n"
    "example:\n"
    "  broker> natter -server :10000\n"
    "  bob>    natter -name bob   -broker 1.2.3.4:10000 -listen -allow-peer "
    "alice\n"
    "  alice>  natter -name alice -broker 1.2.3.4:10000 8022:bob:22\n"
    "  alice>  ssh -p 8022 user@localhost\n";

/* Everything the command line says, before the config file fills gaps. */
typedef struct options {
  const char *config;
  int config_given;
  const char *server, *name, *broker, *identity, *broker_key;
  const char *token_file, *registry, *admitted_keys, *release;
  int list;
  uint32_t name_expiry_s;
  int name_expiry_given;
  long max_commands, max_commands_per_peer; /* 0: not given */
  long broker_limit[4]; /* -max-clients ... -retry-above; -1: not given */
  int relay, no_relay;
  unsigned long long relay_rate, relay_total;
  int relay_rate_given, relay_total_given;
  const char *allow_peer[MAX_RULES];
  size_t nallow_peer;
  const char *metrics;
  const char *log_format; /* "text" or "json"; NULL: not given */
  int status;             /* -status */
  const char *status_addr; /* its HOST:PORT, or NULL */
  int json;                /* -json */
  const char *check;       /* -check PEER */
  const char *admin[MAX_RULES];
  size_t nadmin;
  int listen;
  long timeout_s; /* 0: not given */
  long port;      /* 0: not given */
  int level;      /* -1: not given */
  const char *allow[MAX_RULES];
  size_t nallow;
  const char *allow_cmd[MAX_RULES];
  size_t nallow_cmd;
  const char *specs[MAX_SPECS];
  const char *const *spec_argv[MAX_SPECS];
  size_t nspecs;
} options;

/* Where log lines go: stderr, as text or JSON, with a timestamp unless
 * a terminal (a person watching) or journald (which stamps lines itself)
 * reads them. */
typedef struct log_sink {
  int json;
  int timestamps;
  int journald; /* stderr is the journal's stream: "<N>" level prefixes */
} log_sink;

typedef struct cli {
  struct event_base *base;
  int exit_code;
  natter_forward *session; /* the stdin/stdout forward, if any */
  log_sink sink;
  /* SIGHUP reload (clients): what the file said last, and the forward
   * each of its forward lines made. */
  const options *o;
  natter_client *client;
  natter_log_level level;
  const char *config_path;
  cli_config file;
  natter_forward *file_forwards[CLI_CONFIG_MAX_LIST];
  int checking; /* -check: the check's callback ends the run */
} cli;

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected to the
 * journal (systemd.exec(5)); it only counts if stderr is still that. */
static int stderr_is_journal(void) {
  const char *env = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0) {
    return 0;
  }
  return (unsigned long long)st.st_dev == dev &&
         (unsigned long long)st.st_ino == ino;
}

static void sink_init(log_sink *sink, const char *format) {
  sink->json = format && strcmp(format, "json") == 0;
  sink->journald = stderr_is_journal();
  sink->timestamps = !sink->journald && !isatty(2);
}

static uint64_t now_unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* natter_log_fn for the library, and the CLI's own lines. */
static void cli_log(natter_log_level level, const char *line, void *user_data) {
  const log_sink *sink = &((cli *)user_data)->sink;
  /* sd-daemon(3) priorities: err, warning, info, debug. */
  static const char prio[] = {'3', '4', '6', '7'};
  char prefix[48] = "", buf[8192];
  uint64_t ms = sink->timestamps ? now_unix_ms() : 0;

  if (sink->journald) {
    snprintf(prefix, sizeof(prefix), "<%c>", prio[level & 3]);
  }
  if (sink->json) {
    natter_log_json(buf, sizeof(buf), level, ms, line);
    fprintf(stderr, "%s%s\n", prefix, buf);
    return;
  }
  if (ms) {
    size_t n = strlen(prefix);
    n += natter_log_timestamp(prefix + n, sizeof(prefix) - n, ms);
    snprintf(prefix + n, sizeof(prefix) - n, " ");
  }
  fprintf(stderr, "%snatter: %s\n", prefix, line);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  cli *app = arg;
  (void)sig;
  (void)what;
  event_base_loopbreak(app->base);
}

static void on_hup(evutil_socket_t sig, short what, void *arg);

static void on_event(natter_client *client, const natter_event *ev,
                     void *user_data) {
  cli *app = user_data;
  (void)client;
  if (ev->type == NATTER_EVENT_FATAL && !app->checking) {
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

/* The broker's limits (natter_broker_config, README "Limits"), as flags
 * and config keys of the same names. */
enum { LIMIT_CLIENTS, LIMIT_PENDING, LIMIT_PER_ADDRESS, LIMIT_RETRY };
static const char *const broker_limit_flags[] = {
    "-max-clients", "-max-pending", "-max-per-address", "-retry-above"};

static int broker_limit_index(const char *flag) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(flag, broker_limit_flags[i]) == 0) {
      return i;
    }
  }
  return -1;
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "natter: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nrun 'natter -h' for usage\n");
  return 2;
}

/* Reports a bad -allow / -allow-command rule as
 * natter: FLAG "RULE": REASON
 * with RULE cut and its control and non-ASCII bytes escaped, so that the
 * message stays one line. Returns the exit code for a bad command line. */
static int rule_error(const char *flag, const char *rule, const char *reason) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;

  fprintf(stderr, "natter: %s \"", flag);
  for (; rule[n] != '\0' && n < 80; n++) {
    unsigned char ch = (unsigned char)rule[n];
    if (ch == '"' || ch == '\\') {
      fprintf(stderr, "\\%c", ch);
    } else if (ch >= 0x20 && ch < 0x7f) {
      fputc(ch, stderr);
    } else {
      fprintf(stderr, "\\x%c%c", hex[ch >> 4], hex[ch & 0xf]);
    }
  }
  fprintf(stderr, "%s\": %s\n", rule[n] != '\0' ? "..." : "", reason);
  return 2;
}

/* Returns -1 to go on, or an exit code. */
static int parse_flags(options *o, int argc, char **argv) {
  char err[300];
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
      VALUE(o->server);
    } else if (strcmp(a, "-name") == 0) {
      VALUE(o->name);
    } else if (strcmp(a, "-broker") == 0) {
      VALUE(o->broker);
    } else if (strcmp(a, "-identity") == 0) {
      VALUE(o->identity);
    } else if (strcmp(a, "-broker-key") == 0) {
      VALUE(o->broker_key);
    } else if (strcmp(a, "-config") == 0) {
      VALUE(o->config);
      o->config_given = 1;
    } else if (strcmp(a, "-allow") == 0) {
      if (o->nallow >= MAX_RULES) {
        return usage_error("too many -allow rules (at most %s)", "64");
      }
      VALUE(o->allow[o->nallow]);
      if (natter_allow_rule_check(o->allow[o->nallow], err, sizeof(err)) != 0) {
        return rule_error(a, o->allow[o->nallow], err);
      }
      o->nallow++;
    } else if (strcmp(a, "-allow-peer") == 0) {
      if (o->nallow_peer >= MAX_RULES) {
        return usage_error("too many -allow-peer rules (at most %s)", "64");
      }
      VALUE(o->allow_peer[o->nallow_peer]);
      if (natter_allow_peer_check(o->allow_peer[o->nallow_peer], err,
                                  sizeof(err)) != 0) {
        return rule_error(a, o->allow_peer[o->nallow_peer], err);
      }
      o->nallow_peer++;
    } else if (strcmp(a, "-token-file") == 0) {
      VALUE(o->token_file);
    } else if (strcmp(a, "-registry") == 0) {
      VALUE(o->registry);
    } else if (strcmp(a, "-admitted-keys") == 0) {
      VALUE(o->admitted_keys);
    } else if (strcmp(a, "-release") == 0) {
      VALUE(o->release);
    } else if (strcmp(a, "-list") == 0) {
      o->list = 1;
    } else if (strcmp(a, "-relay") == 0) {
      o->relay = 1;
    } else if (strcmp(a, "-no-relay") == 0) {
      o->no_relay = 1;
    } else if (strcmp(a, "-relay-rate") == 0 ||
               strcmp(a, "-relay-total") == 0) {
      const char *v;
      char *end;
      unsigned long long n;
      VALUE(v);
      errno = 0;
      n = strtoull(v, &end, 10);
      if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0) {
        return usage_error("bad value \"%s\": expected a number of bytes", v);
      }
      if (strcmp(a, "-relay-rate") == 0) {
        o->relay_rate = n;
        o->relay_rate_given = 1;
      } else {
        o->relay_total = n;
        o->relay_total_given = 1;
      }
    } else if (strcmp(a, "-name-expiry") == 0) {
      const char *v;
      VALUE(v);
      if (cli_parse_duration(v, &o->name_expiry_s) != 0) {
        return usage_error("bad -name-expiry \"%s\": expected a duration "
                           "such as 30d, 12h, 90m or 45s (0: never)",
                           v);
      }
      o->name_expiry_given = 1;
    } else if (broker_limit_index(a) >= 0) {
      const char *v;
      char *end;
      int which = broker_limit_index(a);
      long n;
      VALUE(v);
      n = strtol(v, &end, 10);
      if (v[0] < '0' || v[0] > '9' || *end != '\0' ||
          n < (which == LIMIT_RETRY ? 0 : 1) || n > 1000000) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "bad %s \"%.40s\": expected a number %s..1000000", a, v,
                 which == LIMIT_RETRY ? "0" : "1");
        return usage_error("%s", msg);
      }
      o->broker_limit[which] = n;
    } else if (strcmp(a, "-max-commands") == 0 ||
               strcmp(a, "-max-commands-per-peer") == 0) {
      const char *v;
      char *end;
      long n;
      VALUE(v);
      n = strtol(v, &end, 10);
      if (v[0] < '0' || v[0] > '9' || *end != '\0' || n < 1 || n > 100000) {
        return usage_error("bad value \"%s\": expected a number 1..100000", v);
      }
      if (strcmp(a, "-max-commands") == 0) {
        o->max_commands = n;
      } else {
        o->max_commands_per_peer = n;
      }
    } else if (strcmp(a, "-allow-command") == 0) {
      if (o->nallow_cmd >= MAX_RULES) {
        return usage_error("too many -allow-command rules (at most %s)",
                           "64");
      }
      VALUE(o->allow_cmd[o->nallow_cmd]);
      if (natter_allow_command_check(o->allow_cmd[o->nallow_cmd], err,
                                     sizeof(err)) != 0) {
        return rule_error(a, o->allow_cmd[o->nallow_cmd], err);
      }
      o->nallow_cmd++;
    } else if (strcmp(a, "-status") == 0) {
      o->status = 1;
      if (has_value && argv[i + 1][0] != '-') {
        o->status_addr = argv[++i];
      }
    } else if (strcmp(a, "-json") == 0) {
      o->json = 1;
    } else if (strcmp(a, "-check") == 0) {
      VALUE(o->check);
      if (natter_name_check(o->check, err, sizeof(err)) != 0) {
        return rule_error(a, o->check, err);
      }
    } else if (strcmp(a, "-log-format") == 0) {
      VALUE(o->log_format);
      if (strcmp(o->log_format, "text") != 0 &&
          strcmp(o->log_format, "json") != 0) {
        return usage_error("bad -log-format \"%.40s\": expected text or json",
                           o->log_format);
      }
    } else if (strcmp(a, "-metrics") == 0) {
      VALUE(o->metrics);
    } else if (strcmp(a, "-admin") == 0) {
      if (o->nadmin >= MAX_RULES) {
        return usage_error("too many -admin keys (at most %s)", "64");
      }
      VALUE(o->admin[o->nadmin]);
      if (natter_fingerprint_check(o->admin[o->nadmin]) != 0) {
        return usage_error("bad -admin \"%.80s\": expected a key "
                           "fingerprint, 64 hex digits",
                           o->admin[o->nadmin]);
      }
      o->nadmin++;
    } else if (strcmp(a, "-timeout") == 0) {
      const char *v;
      char *end;
      VALUE(v);
      o->timeout_s = strtol(v, &end, 10);
      if (v[0] < '0' || v[0] > '9' || *end != '\0' || o->timeout_s < 1 ||
          o->timeout_s > 3600) {
        return usage_error("bad -timeout \"%s\": expected 1..3600 seconds",
                           v);
      }
    } else if (strcmp(a, "-port") == 0) {
      const char *v;
      char *end;
      VALUE(v);
      o->port = strtol(v, &end, 10);
      if (v[0] < '0' || v[0] > '9' || *end != '\0' || o->port < 1 ||
          o->port > 65535) {
        return usage_error("bad -port \"%s\": expected a UDP port 1..65535",
                           v);
      }
    } else if (strcmp(a, "-listen") == 0) {
      o->listen = 1;
    } else if (strcmp(a, "-v") == 0) {
      o->level = NATTER_LOG_DEBUG;
    } else if (strcmp(a, "-q") == 0) {
      o->level = NATTER_LOG_ERROR;
    } else if (a[0] == '-' && a[1] != '\0') {
      return usage_error("unknown flag %s", a);
    } else {
      if (o->nspecs >= MAX_SPECS) {
        return usage_error("too many forwards (at most %s)", "64");
      }
      size_t len = strlen(a);
      o->spec_argv[o->nspecs] = NULL;
      o->specs[o->nspecs++] = a;
      /* "LOCALPORT:PEER:" runs a command on PEER: the rest of the command
       * line is that command. */
      if (len > 1 && a[len - 1] == ':') {
        if (i + 1 >= argc) {
          return usage_error("spec %s needs a command after it", a);
        }
        o->spec_argv[o->nspecs - 1] = (const char *const *)&argv[i + 1];
        break;
      }
    }
#undef VALUE
  }
  return -1;
}

/* Appends |add| (NULL-terminated or counted) to |list|; -1 when full. */
static int append_rules(const char **list, size_t *n, char *const *add,
                        size_t nadd) {
  for (size_t i = 0; i < nadd; i++) {
    if (*n >= MAX_RULES) {
      return -1;
    }
    list[(*n)++] = add[i];
  }
  return 0;
}

/* The token from the environment, when no -token-file names one. */
static const char *env_token(const options *o) {
  const char *t = getenv(TOKEN_ENV);
  return !o->token_file && t && t[0] ? t : NULL;
}

static int print_entry(const natter_registry_entry *e, void *ud) {
  char first[32], last[32];
  struct tm tm;
  time_t t;
  (void)ud;
  t = (time_t)e->first_seen;
  strftime(first, sizeof(first), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  t = (time_t)e->last_seen;
  strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  printf("%-20s %s %s %s\n", e->name, e->fingerprint, first, last);
  return 0;
}

/* -list / -release: the registry file, without a broker. */
static int run_registry_admin(const options *o) {
  char err[600];
  int rv;
  if (o->list) {
    printf("%-20s %-64s %-20s %s\n", "NAME", "FINGERPRINT", "FIRST SEEN",
           "LAST SEEN");
    rv = natter_registry_list(o->registry, print_entry, NULL, err, sizeof(err));
  } else {
    rv = natter_registry_release(o->registry, o->release, err, sizeof(err));
    if (rv == 0) {
      printf("released \"%s\": the next key to check in with it gets it\n",
             o->release);
    }
  }
  if (rv != 0) {
    fprintf(stderr, "natter: %s\n", err);
    return 1;
  }
  return 0;
}

/* ---- natter -status ---- */

typedef struct status_run {
  cli *app;
  const char *addr;
  int exit_code;
} status_run;

/* Prints what a status page said. The server may be anyone's: control
 * characters other than line ends and tabs are shown as '?'. */
static void print_body(FILE *out, const char *body, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)body[i];
    fputc(ch < 0x20 && ch != '\n' && ch != '\t' ? '?'
          : ch == 0x7f                          ? '?'
                                                : ch,
          out);
  }
  if (len && body[len - 1] != '\n') {
    fputc('\n', out);
  }
}

static void on_status(int error, int status, const char *body, size_t len,
                      void *user_data) {
  status_run *r = user_data;
  if (error != 0) {
    fprintf(stderr, "natter: no status from %s: ", r->addr);
    print_body(stderr, body, len);
    r->exit_code = 1;
  } else if (status != 200) {
    fprintf(stderr, "natter: status from %s: HTTP %d: ", r->addr, status);
    print_body(stderr, body, len);
    r->exit_code = 1;
  } else {
    print_body(stdout, body, len);
    r->exit_code = 0;
  }
  event_base_loopbreak(r->app->base);
}

static int run_status(cli *app, const options *o) {
  char addr[300], keypath[1024];
  const char *identity = o->identity;
  if (o->status_addr) {
    snprintf(addr, sizeof(addr), "%s", o->status_addr);
  } else if (o->port) {
    snprintf(addr, sizeof(addr), "127.0.0.1:%ld", o->port);
  } else if (o->server) {
    const char *colon = strrchr(o->server, ':');
    snprintf(addr, sizeof(addr), "127.0.0.1:%s", colon ? colon + 1 : "");
  } else if (o->broker) {
    snprintf(addr, sizeof(addr), "%s", o->broker);
  } else {
    return usage_error("%s", "-status needs HOST:PORT (or -port, -server or "
                             "-broker to take it from)");
  }
  /* This machine's key for that role, as natter would use it. */
  if (!identity && (o->name || o->server)) {
    const char *home = getenv("XDG_CONFIG_HOME");
    if (home && home[0] == '/') {
      snprintf(keypath, sizeof(keypath), "%s/natter/%s.key", home,
               o->server ? "broker" : o->name);
    } else {
      snprintf(keypath, sizeof(keypath), "%s/.config/natter/%s.key",
               getenv("HOME") ? getenv("HOME") : "",
               o->server ? "broker" : o->name);
    }
    if (access(keypath, R_OK) == 0) {
      identity = keypath;
    }
  }
  status_run r = {app, addr, 1};
  natter_status_fetch *f = NULL;
  if (natter_status_fetch_start(&f, app->base, addr, identity, !o->json,
                                on_status, &r) != 0) {
    return 1;
  }
  event_base_dispatch(app->base);
  natter_status_fetch_free(f);
  return r.exit_code;
}

static int run_broker(cli *app, const options *o, natter_log_level level,
                      const char **admins) {
  natter_broker_config cfg;
  natter_broker *b = NULL;

  natter_broker_config_default(&cfg);
  cfg.listen = o->server;
  cfg.identity_file = o->identity;
  cfg.log_level = level;
  cfg.registry = o->registry;
  if (o->name_expiry_given) {
    cfg.name_expiry_s = o->name_expiry_s;
  }
  cfg.token_file = o->token_file;
  cfg.token = env_token(o);
  cfg.admitted_keys = o->admitted_keys;
  if (o->broker_limit[LIMIT_CLIENTS] >= 0) {
    cfg.max_clients = (uint32_t)o->broker_limit[LIMIT_CLIENTS];
  }
  if (o->broker_limit[LIMIT_PENDING] >= 0) {
    cfg.max_pending = (uint32_t)o->broker_limit[LIMIT_PENDING];
  }
  if (o->broker_limit[LIMIT_PER_ADDRESS] >= 0) {
    cfg.max_per_source = (uint32_t)o->broker_limit[LIMIT_PER_ADDRESS];
  }
  if (o->broker_limit[LIMIT_RETRY] >= 0) {
    cfg.retry_above_per_s = (uint32_t)o->broker_limit[LIMIT_RETRY];
  }
  cfg.log = cli_log;
  cfg.user_data = app;
  cfg.relay = o->relay;
  if (o->relay_rate_given) {
    cfg.relay_rate = o->relay_rate;
  }
  if (o->relay_total_given) {
    cfg.relay_total = o->relay_total;
  }
  if (natter_broker_new(&b, app->base, &cfg) != 0) {
    return 1;
  }
  for (size_t i = 0; admins[i]; i++) {
    natter_broker_add_admin(b, admins[i]);
  }
  if (o->metrics && natter_broker_metrics_listen(b, o->metrics) != 0) {
    natter_broker_free(b);
    return 1;
  }
  event_base_dispatch(app->base);
  natter_broker_stats st;
  char line[200];
  natter_broker_get_stats(b, &st);
  snprintf(line, sizeof(line),
           "broker traffic: received %llu bytes, sent %llu bytes, %llu "
           "introductions",
           (unsigned long long)st.bytes_received,
           (unsigned long long)st.bytes_sent,
           (unsigned long long)st.introductions);
  cli_log(NATTER_LOG_INFO, line, app); /* printed even with -q, as ever */
  if (cfg.relay) {
    snprintf(line, sizeof(line),
             "broker relay: relayed %llu bytes between peers (relay port "
             "received %llu bytes, sent %llu bytes)",
             (unsigned long long)st.relayed_bytes,
             (unsigned long long)st.relay_bytes_received,
             (unsigned long long)st.relay_bytes_sent);
    cli_log(NATTER_LOG_INFO, line, app);
  }
  natter_broker_free(b);
  return 0;
}

/* ---- natter -check ---- */

static void on_check(natter_client *client, const natter_check_result *r,
                     void *user_data) {
  cli *app = user_data;
  (void)client;
  report_print(stdout, r, app->o->broker, app->o->json);
  app->exit_code = report_exit_code(r->verdict);
  event_base_loopbreak(app->base);
}

/* What every client session takes from the options: who we are, how to
 * reach the broker, how long to try a peer, and where events go. */
static void client_basics(natter_client_config *cfg, cli *app,
                          const options *o, natter_log_level level) {
  natter_client_config_default(cfg);
  cfg->name = o->name;
  cfg->broker = o->broker;
  cfg->identity_file = o->identity;
  cfg->broker_key = o->broker_key;
  cfg->token_file = o->token_file;
  cfg->token = env_token(o);
  cfg->connect_timeout_ms =
      (uint32_t)(o->timeout_s ? o->timeout_s : 10) * 1000;
  cfg->local_port = (uint16_t)o->port;
  cfg->log_level = level;
  cfg->no_relay = o->no_relay;
  cfg->on_event = on_event;
  cfg->log = cli_log;
  cfg->user_data = app;
}

/* A diagnostic session: the settings that say who we are and how to reach
 * the broker, none of a listener's or a forwarder's. */
static int run_check(cli *app, const options *o, natter_log_level level) {
  natter_client_config cfg;
  natter_client *c = NULL;

  client_basics(&cfg, app, o, level);
  if (natter_client_new(&c, app->base, &cfg) != 0) {
    return 1;
  }
  if (natter_client_check(c, o->check, on_check, app) != 0) {
    natter_client_free(c);
    return 1;
  }
  app->checking = 1;
  app->exit_code = 1; /* interrupted before a verdict */
  event_base_dispatch(app->base);
  natter_client_free(c);
  return app->exit_code;
}

static int run_client(cli *app, const options *o, natter_log_level level,
                      int level_given, const char **allow,
                      const char **allow_cmd, const char **allow_peer,
                      const char **admins,
                      size_t nstdio) {
  natter_client_config cfg;
  natter_client *c = NULL;
  int rv;

  client_basics(&cfg, app, o, level);
  cfg.listen = o->listen;
  cfg.allow = allow[0] ? allow : NULL;
  cfg.allow_commands = allow_cmd[0] ? allow_cmd : NULL;
  cfg.allow_peers = allow_peer[0] ? allow_peer : NULL;
  if (o->max_commands) {
    cfg.max_commands = (uint32_t)o->max_commands;
  }
  if (o->max_commands_per_peer) {
    cfg.max_commands_per_peer = (uint32_t)o->max_commands_per_peer;
  }
  /* A stdin/stdout session speaks through stdout: keep stderr for what
   * goes wrong unless asked for more. */
  if (nstdio && !level_given) {
    cfg.log_level = NATTER_LOG_WARN;
  }
  if (natter_client_new(&c, app->base, &cfg) != 0) {
    return 1;
  }
  for (size_t i = 0; admins[i]; i++) {
    natter_client_add_admin(c, admins[i]);
  }
  if (o->metrics && natter_client_metrics_listen(c, o->metrics) != 0) {
    natter_client_free(c);
    return 1;
  }
  for (size_t i = 0; i < o->nspecs; i++) {
    char err[512];
    natter_forward *f = NULL;
    rv = natter_client_add_forward_spec(c, o->specs[i], o->spec_argv[i], &f,
                                        err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "natter: %s\n", err);
      natter_client_free(c);
      return rv == NATTER_ERR_SPEC ? 2 : 1;
    }
    if (o->specs[i][0] == ':') {
      app->session = f;
    }
    if (i < app->file.nforward) {
      app->file_forwards[i] = f;
    }
  }
  app->client = c;
  event_base_dispatch(app->base);
  app->client = NULL;
  natter_client_free(c);
  return app->exit_code;
}

/* A client holds a descriptor per forwarded TCP connection and, behind a
 * symmetric NAT, up to 256 more sockets for port prediction: take what
 * the hard limit allows (up to 65536) instead of the usual soft 1024. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return;
  }
  rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536
                    ? 65536
                    : rl.rlim_max;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv) {
  options o;
  static cli app; /* zeroed; on_hup reaches it through the event */
  cli_config *const pfile = &app.file;
#define file (*pfile)
  char err[600];
  const char *allow[MAX_RULES + 1] = {NULL};
  const char *allow_cmd[MAX_RULES + 1] = {NULL};
  const char *allow_peer[MAX_RULES + 1] = {NULL};
  const char *admins[MAX_RULES + 1] = {NULL};
  size_t nallow = 0, nallow_cmd = 0, nallow_peer = 0, nadmins = 0, nstdio = 0;
  int rv;

  raise_fd_limit();
  memset(&o, 0, sizeof(o));
  for (int i = 0; i < 4; i++) {
    o.broker_limit[i] = -1;
  }
  memset(&app, 0, sizeof(app));
  o.level = -1;
  rv = parse_flags(&o, argc, argv);
  if (rv >= 0) {
    return rv;
  }
  if (o.check && (o.listen || o.nspecs || o.server || o.status)) {
    return usage_error("%s", "-check runs a check only: no -server, -status, "
                             "-listen or specs with it");
  }
  long port_flag = o.port;

  /* The file fills what the flags left open; lists add up. */
  cli_config_init(&file);
  if (cli_config_load(&file, o.config ? o.config : DEFAULT_CONFIG,
                      !o.config_given, err, sizeof(err)) < 0) {
    fprintf(stderr, "natter: %s\n", err);
    cli_config_free(&file);
    return 2;
  }
#define FILL(field)                                                            \
  if (!o.field && file.field)                                                  \
  o.field = file.field
  FILL(server);
  FILL(name);
  FILL(broker);
  FILL(identity);
  FILL(broker_key);
  FILL(registry);
  FILL(admitted_keys);
  FILL(metrics);
  FILL(log_format);
#undef FILL
  /* The environment's token comes before the file's token-file. */
  if (!o.token_file && file.token_file && !getenv(TOKEN_ENV)) {
    o.token_file = file.token_file;
  }
  if (!o.name_expiry_given && file.name_expiry_set) {
    o.name_expiry_s = file.name_expiry_s;
    o.name_expiry_given = 1;
  }
  if (!o.relay && file.relay_set) {
    o.relay = file.relay;
  }
  if (!o.no_relay && file.no_relay_set) {
    o.no_relay = file.no_relay;
  }
  if (!o.relay_rate_given && file.relay_rate_set) {
    o.relay_rate = file.relay_rate;
    o.relay_rate_given = 1;
  }
  if (!o.relay_total_given && file.relay_total_set) {
    o.relay_total = file.relay_total;
    o.relay_total_given = 1;
  }
  for (int i = 0; i < 4; i++) {
    if (o.broker_limit[i] < 0 && file.broker_limit_set[i]) {
      o.broker_limit[i] = file.broker_limit[i];
    }
  }
  if (!o.max_commands && file.max_commands_set) {
    o.max_commands = file.max_commands;
  }
  if (!o.max_commands_per_peer && file.max_commands_per_peer_set) {
    o.max_commands_per_peer = file.max_commands_per_peer;
  }
  if (!o.listen && file.listen_set) {
    o.listen = file.listen;
  }
  if (!o.timeout_s && file.timeout_set) {
    o.timeout_s = file.timeout_s;
  }
  if (!o.port && file.port_set) {
    o.port = file.port;
  }
  natter_log_level level =
      o.level >= 0       ? (natter_log_level)o.level
      : file.log_level_set ? (natter_log_level)file.log_level
                           : NATTER_LOG_INFO;
  if (append_rules(allow, &nallow, file.allow, file.nallow) != 0 ||
      append_rules(allow, &nallow, (char *const *)o.allow, o.nallow) != 0 ||
      append_rules(allow_cmd, &nallow_cmd, file.allow_command,
                   file.nallow_command) != 0 ||
      append_rules(allow_cmd, &nallow_cmd, (char *const *)o.allow_cmd,
                   o.nallow_cmd) != 0 ||
      append_rules(allow_peer, &nallow_peer, file.allow_peer,
                   file.nallow_peer) != 0 ||
      append_rules(allow_peer, &nallow_peer, (char *const *)o.allow_peer,
                   o.nallow_peer) != 0 ||

      append_rules(admins, &nadmins, file.admin, file.nadmin) != 0 ||
      append_rules(admins, &nadmins, (char *const *)o.admin, o.nadmin) != 0) {
    cli_config_free(&file);
    return usage_error("too many allow rules (at most %s in all)", "64");
  }
  /* Forwards from the file come first, then those from the command line. */
  if (file.nforward + o.nspecs > MAX_SPECS) {
    cli_config_free(&file);
    return usage_error("too many forwards (at most %s in all)", "64");
  }
  memmove(o.specs + file.nforward, o.specs, o.nspecs * sizeof(o.specs[0]));
  memmove(o.spec_argv + file.nforward, o.spec_argv,
          o.nspecs * sizeof(o.spec_argv[0]));
  for (size_t i = 0; i < file.nforward; i++) {
    o.specs[i] = file.forward[i].spec;
    o.spec_argv[i] = (const char *const *)file.forward[i].argv;
  }
  o.nspecs += file.nforward;
  for (size_t i = 0; i < o.nspecs; i++) {
    nstdio += o.specs[i][0] == ':';
  }

  rv = -1;
  if (o.check) {
    /* The config file's listener and forwards belong to the client that
     * runs as NAME; a check takes only who we are and where the broker
     * is, and its own UDP port unless -port says otherwise. */
    if (!o.name) {
      rv = usage_error("%s", "-check needs -name (this side's name)");
    } else if (!o.broker) {
      rv = usage_error("%s", "-check needs -broker HOST:PORT");
    } else if (o.broker_key && natter_fingerprint_check(o.broker_key) != 0) {
      rv = usage_error("bad -broker-key \"%.80s\": expected the 64 hex "
                       "digits the broker prints at start",
                       o.broker_key);
    } else {
      o.port = port_flag;
      sink_init(&app.sink, o.log_format);
      signal(SIGPIPE, SIG_IGN);
      app.base = event_base_new();
      app.o = &o;
      rv = 1;
      if (app.base) {
        struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
        struct event *sigterm =
            evsignal_new(app.base, SIGTERM, on_signal, &app);
        event_add(sigint, NULL);
        event_add(sigterm, NULL);
        /* The report is the output: logs only when they matter. */
        rv = run_check(&app, &o, o.level >= 0 ? level : NATTER_LOG_WARN);
        event_free(sigint);
        event_free(sigterm);
        event_base_free(app.base);
      }
    }
    cli_config_free(&file);
    return rv;
  }
  if (o.status || o.json) {
    if (!o.status) {
      rv = usage_error("%s", "-json goes with -status or -check");
    } else if (o.nspecs || o.listen) {
      rv = usage_error("%s", "-status only reads a status page: no specs or "
                             "-listen with it");
    } else {
      signal(SIGPIPE, SIG_IGN);
      app.base = event_base_new();
      rv = app.base ? run_status(&app, &o) : 1;
      if (app.base) {
        event_base_free(app.base);
      }
    }
    cli_config_free(&file);
    return rv;
  }
  if (o.list || o.release) {
    if (o.list && o.release) {
      rv = usage_error("%s", "give -list or -release, not both");
    } else {
      rv = run_registry_admin(&o);
    }
  } else if (o.server &&
             (o.name || o.broker || o.listen || o.nspecs || nallow ||
              nallow_cmd || nallow_peer || o.port || o.max_commands ||
              o.max_commands_per_peer || o.no_relay)) {
    rv = usage_error("%s", "-server runs a broker only; -name, -broker, "
                           "-listen, -allow*, -max-commands*, -port, "
                           "-no-relay and specs are for clients");
  } else if (!o.server &&
             (o.registry || o.admitted_keys || o.name_expiry_given ||
              o.broker_limit[0] >= 0 || o.broker_limit[1] >= 0 ||
              o.broker_limit[2] >= 0 || o.broker_limit[3] >= 0 || o.relay ||
              o.relay_rate_given || o.relay_total_given)) {
    rv = usage_error("%s", "-registry, -name-expiry, -admitted-keys, "
                           "-max-*, -retry-above and -relay* are for a "
                           "broker (-server)");
  } else if (!o.server && !o.name) {
    rv = usage_error("%s", "missing -name (or -server to run a broker)");
  } else if (!o.server && !o.broker) {
    rv = usage_error("%s", "missing -broker HOST:PORT");
  } else if (!o.server && !o.listen && o.nspecs == 0) {
    rv = usage_error("%s",
                     "nothing to do: give -listen and/or a forward SPEC");
  } else if ((nallow || nallow_cmd || nallow_peer) && !o.listen) {
    rv = usage_error("%s", "-allow, -allow-command and -allow-peer need "
                           "-listen");
  } else if (nstdio > 1) {
    rv = usage_error("%s", "only one spec may use stdin/stdout (:PEER:...)");
  } else if (o.broker_key && natter_fingerprint_check(o.broker_key) != 0) {
    rv = usage_error("bad -broker-key \"%.80s\": expected the 64 hex digits "
                     "the broker prints at start",
                     o.broker_key);
  }
  /* Specs are checked before anything touches keys or sockets. */
  for (size_t i = 0; rv < 0 && i < o.nspecs; i++) {
    int is_command = 0;
    if (natter_spec_check(o.specs[i], &is_command, NULL, err, sizeof(err)) !=
        0) {
      fprintf(stderr, "natter: %s\n", err);
      rv = 2;
    } else if (is_command && !o.spec_argv[i]) {
      rv = usage_error("spec %s needs a command after it", o.specs[i]);
    }
  }
  if (rv >= 0) {
    cli_config_free(&file);
    return rv;
  }

  sink_init(&app.sink, o.log_format);
  signal(SIGPIPE, SIG_IGN);
  app.base = event_base_new();
  if (!app.base) {
    fprintf(stderr, "natter: cannot create the event loop\n");
    cli_config_free(&file);
    return 1;
  }
  struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
  struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
  struct event *sighup = evsignal_new(app.base, SIGHUP, on_hup, &app);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);
  event_add(sighup, NULL);
  app.o = &o;
  app.level = level;
  app.config_path = o.config ? o.config : DEFAULT_CONFIG;

  rv = o.server
           ? run_broker(&app, &o, level, admins)
           : run_client(&app, &o, level, o.level >= 0 || file.log_level_set,
                        allow, allow_cmd, allow_peer, admins, nstdio);

  event_free(sigint);
  event_free(sigterm);
  event_free(sighup);
  event_base_free(app.base);
  cli_config_free(&file);
  return rv;
#undef file
}

/* ---- SIGHUP: reload the configuration file (like sshd) ----
 *
 * The file's allow rules (with those of the command line) replace the
 * client's rules; its forward lines are compared with the running ones:
 * an unchanged forward keeps its listener and connections, a removed one
 * stops, a new one starts. Other settings are read at start only. A file
 * that does not parse, or a rule the library refuses, leaves everything
 * as it was. */

static int same_forward(const cli_forward *a, const cli_forward *b) {
  if (strcmp(a->spec, b->spec) != 0 || a->argc != b->argc) {
    return 0;
  }
  for (size_t i = 0; i < a->argc; i++) {
    if (strcmp(a->argv[i], b->argv[i]) != 0) {
      return 0;
    }
  }
  return 1;
}

static void hup_log(cli *app, natter_log_level level, const char *fmt,
                    const char *arg) {
  if (app->level >= level) {
    fprintf(stderr, "natter: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
  }
}

/* Replaces the rules; returns 0, or -1 with the reason logged. */
static int reload_rules(cli *app, const cli_config *nf) {
  const options *o = app->o;
  const char *allow[MAX_RULES + 1] = {NULL};
  const char *allow_cmd[MAX_RULES + 1] = {NULL};
  const char *allow_peer[MAX_RULES + 1] = {NULL};
  size_t na = 0, nc = 0, np = 0;
  char err[600];

  if (append_rules(allow, &na, nf->allow, nf->nallow) != 0 ||
      append_rules(allow, &na, (char *const *)o->allow, o->nallow) != 0 ||
      append_rules(allow_cmd, &nc, nf->allow_command, nf->nallow_command) !=
          0 ||
      append_rules(allow_cmd, &nc, (char *const *)o->allow_cmd,
                   o->nallow_cmd) != 0 ||
      append_rules(allow_peer, &np, nf->allow_peer, nf->nallow_peer) != 0 ||
      append_rules(allow_peer, &np, (char *const *)o->allow_peer,
                   o->nallow_peer) != 0) {
    hup_log(app, NATTER_LOG_ERROR,
            "reload refused: too many allow rules (at most %s in all); the "
            "old configuration stays in force",
            "64");
    return -1;
  }
  natter_client_config cfg;
  natter_client_config_default(&cfg);
  cfg.allow = na ? allow : NULL;
  cfg.allow_commands = nc ? allow_cmd : NULL;
  cfg.allow_peers = np ? allow_peer : NULL;
  if (natter_client_set_access(app->client, &cfg, err, sizeof(err)) != 0) {
    char msg[700];
    snprintf(msg, sizeof(msg), "%s: %s", app->config_path, err);
    hup_log(app, NATTER_LOG_ERROR,
            "reload refused: %s; the old configuration stays in force", msg);
    return -1;
  }
  return 0;
}

static void reload_forwards(cli *app, const cli_config *nf,
                            natter_forward **made) {
  cli_config *old = &app->file;
  char err[600], msg[800];
  size_t kept = 0, added = 0, removed = 0;

  for (size_t i = 0; i < old->nforward; i++) {
    size_t j;
    for (j = 0; j < nf->nforward; j++) {
      if (!made[j] && same_forward(&old->forward[i], &nf->forward[j])) {
        break;
      }
    }
    if (j < nf->nforward && app->file_forwards[i]) {
      made[j] = app->file_forwards[i];
      kept++;
    } else if (old->forward[i].spec[0] == ':') {
      hup_log(app, NATTER_LOG_WARN,
              "reload: the stdin/stdout forward %s stays as it is",
              old->forward[i].spec);
    } else if (app->file_forwards[i]) {
      natter_forward_remove(app->file_forwards[i]);
      removed++;
    }
  }
  for (size_t j = 0; j < nf->nforward; j++) {
    if (made[j] || nf->forward[j].spec[0] == ':') {
      continue;
    }
    if (natter_client_add_forward_spec(app->client, nf->forward[j].spec,
                                       (const char *const *)nf->forward[j].argv,
                                       &made[j], err, sizeof(err)) != 0) {
      made[j] = NULL;
      snprintf(msg, sizeof(msg), "%s:%zu: %s", app->config_path,
               nf->forward[j].line, err);
      hup_log(app, NATTER_LOG_ERROR, "reload: %s", msg);
      continue;
    }
    added++;
  }
  snprintf(msg, sizeof(msg),
           "%s: %zu forwards kept, %zu added, %zu removed; allow rules "
           "replaced (other settings are read at start only)",
           app->config_path, kept, added, removed);
  hup_log(app, NATTER_LOG_INFO, "reloaded %s", msg);
}

static void on_hup(evutil_socket_t sig, short what, void *arg) {
  cli *app = arg;
  cli_config nf;
  char err[600];
  natter_forward *made[CLI_CONFIG_MAX_LIST] = {NULL};
  (void)sig;
  (void)what;

  if (!app->client) {
    hup_log(app, NATTER_LOG_INFO,
            "SIGHUP: a broker has nothing to reload (it logs to stderr and "
            "writes its registry as it goes); %s",
            "still running");
    return;
  }
  cli_config_init(&nf);
  if (cli_config_load(&nf, app->config_path, !app->o->config_given, err,
                      sizeof(err)) < 0) {
    hup_log(app, NATTER_LOG_ERROR,
            "reload refused: %s; the old configuration stays in force", err);
    cli_config_free(&nf);
    return;
  }
  if (reload_rules(app, &nf) != 0) {
    cli_config_free(&nf);
    return;
  }
  reload_forwards(app, &nf, made);
  cli_config_free(&app->file);
  app->file = nf; /* plain strings and arrays: a shallow move is fine */
  memcpy(app->file_forwards, made, sizeof(made));
}
