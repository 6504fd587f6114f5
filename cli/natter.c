/* natter command line: flags and the config file -> library config,
 * signals, the loop, exit codes. No networking logic lives here. */
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
#include "usage.h"

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
  /* SIGHUP reload (clients): the command line, what the file said last,
   * and the forward each of its forward lines made. */
  const cli_config *flags;
  const cli_config *o; /* the settings in force: flags over the file */
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

/* A spec on the command line, |argv[i]|; "LOCALPORT:PEER:" runs a
 * command on PEER: the rest of the command line is that command. Returns
 * -1 to go on, 0 when it took the rest, or an exit code. */
static int add_spec(cli_config *o, int argc, char **argv, int i) {
  const char *a = argv[i];
  size_t len = strlen(a);
  int is_command = len > 1 && a[len - 1] == ':';
  int rv;

  if (is_command && i + 1 >= argc) {
    return usage_error("spec %s needs a command after it", a);
  }
  rv = cli_config_add_forward(o, a, is_command ? &argv[i + 1] : NULL, 0);
  if (rv == -2) {
    return usage_error("too many forwards (at most %s)", "64");
  }
  if (rv != 0) {
    fprintf(stderr, "natter: out of memory\n");
    return 1;
  }
  return is_command ? 0 : -1;
}

/* Returns -1 to go on, or an exit code. */
static int parse_flags(cli_config *o, int argc, char **argv) {
  char why[300], msg[500];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *value = NULL;
    const cli_setting *s;
    int rv;

    if (a[0] != '-' || a[1] == '\0') {
      rv = add_spec(o, argc, argv, i);
      if (rv == 0) {
        break;
      }
      if (rv > 0) {
        return rv;
      }
      continue;
    }
    s = cli_setting_by_flag(a);
    if (s == NULL) {
      return usage_error("unknown flag %s", a);
    }
    if (s->type == CLI_T_OPTIONAL_ADDR) {
      if (i + 1 < argc && argv[i + 1][0] != '-') {
        value = argv[++i];
      }
    } else if (s->arg != NULL) {
      if (i + 1 >= argc) {
        return usage_error("flag %s needs a value", a);
      }
      value = argv[++i];
    }
    rv = cli_setting_set(o, s, value, (size_t)i, 0, why, sizeof(why));
    if (rv == -2) {
      return usage_error("too many %s flags (at most 64)", s->flag);
    }
    if (rv != 0) {
      switch (s->type) {
      case CLI_T_ALLOW_RULES:
      case CLI_T_COMMAND_RULES:
      case CLI_T_PEER_RULES:
      case CLI_T_PEER:
        return rule_error(a, value, why);
      default:
        snprintf(msg, sizeof(msg), "bad %s \"%.80s\": %s", s->flag, value, why);
        return usage_error("%s", msg);
      }
    }
    if (s == &cli_settings[CLI_S_HELP]) {
      cli_usage(stdout);
      return 0;
    }
    if (s == &cli_settings[CLI_S_VERSION]) {
      printf("natter %s\n", natter_version());
      return 0;
    }
  }
  return -1;
}

/* The token from the environment, when no -token-file names one. */
static const char *env_token(const cli_config *o) {
  const char *t = getenv(CLI_TOKEN_ENV);
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
static int run_registry_admin(const cli_config *o) {
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

static int run_status(cli *app, const cli_config *o) {
  char addr[300], keypath[1024];
  const char *identity = o->identity;
  if (o->status) {
    snprintf(addr, sizeof(addr), "%s", o->status);
  } else if (o->port) {
    snprintf(addr, sizeof(addr), "127.0.0.1:%llu", o->port);
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

static int run_broker(cli *app, const cli_config *o, natter_log_level level) {
  natter_broker_config cfg;
  natter_broker *b = NULL;

  natter_broker_config_default(&cfg);
  cfg.listen = o->server;
  cfg.identity_file = o->identity;
  cfg.log_level = level;
  cfg.registry = o->registry;
  if (o->name_expiry_s_set) {
    cfg.name_expiry_s = (uint32_t)o->name_expiry_s;
  }
  cfg.token_file = o->token_file;
  cfg.token = env_token(o);
  cfg.admitted_keys = o->admitted_keys;
  if (o->max_clients_set) {
    cfg.max_clients = (uint32_t)o->max_clients;
  }
  if (o->max_pending_set) {
    cfg.max_pending = (uint32_t)o->max_pending;
  }
  if (o->max_per_address_set) {
    cfg.max_per_source = (uint32_t)o->max_per_address;
  }
  if (o->retry_above_set) {
    cfg.retry_above_per_s = (uint32_t)o->retry_above;
  }
  cfg.log = cli_log;
  cfg.user_data = app;
  cfg.relay = (int)o->relay;
  if (o->relay_rate_set) {
    cfg.relay_rate = o->relay_rate;
  }
  if (o->relay_total_set) {
    cfg.relay_total = o->relay_total;
  }
  if (natter_broker_new(&b, app->base, &cfg) != 0) {
    return 1;
  }
  for (size_t i = 0; i < o->nadmin; i++) {
    natter_broker_add_admin(b, o->admin[i]);
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
                          const cli_config *o, natter_log_level level) {
  natter_client_config_default(cfg);
  cfg->name = o->name;
  cfg->broker = o->broker;
  cfg->identity_file = o->identity;
  cfg->broker_key = o->broker_key;
  cfg->token_file = o->token_file;
  cfg->token = env_token(o);
  if (o->timeout_s_set) {
    cfg->connect_timeout_ms = (uint32_t)o->timeout_s * 1000;
  }
  cfg->local_port = (uint16_t)o->port;
  cfg->log_level = level;
  cfg->no_relay = (int)o->no_relay;
  cfg->on_event = on_event;
  cfg->log = cli_log;
  cfg->user_data = app;
}

/* A diagnostic session: the settings that say who we are and how to reach
 * the broker, none of a listener's or a forwarder's. */
static int run_check(cli *app, const cli_config *o, natter_log_level level) {
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

static int run_client(cli *app, const cli_config *o, natter_log_level level,
                      int level_given, size_t nstdio) {
  natter_client_config cfg;
  natter_client *c = NULL;
  int rv;

  client_basics(&cfg, app, o, level);
  cfg.listen = (int)o->listen;
  cfg.allow = o->nallow ? (const char *const *)o->allow : NULL;
  cfg.allow_commands =
      o->nallow_command ? (const char *const *)o->allow_command : NULL;
  cfg.allow_peers = o->nallow_peer ? (const char *const *)o->allow_peer : NULL;
  if (o->max_commands_set) {
    cfg.max_commands = (uint32_t)o->max_commands;
  }
  if (o->max_commands_per_peer_set) {
    cfg.max_commands_per_peer = (uint32_t)o->max_commands_per_peer;
  }
  if (o->max_streams_set) {
    cfg.max_streams = (uint32_t)o->max_streams;
  }
  /* A stdin/stdout session speaks through stdout: keep stderr for what
   * goes wrong unless asked for more. */
  if (nstdio && !level_given) {
    cfg.log_level = NATTER_LOG_WARN;
  }
  if (natter_client_new(&c, app->base, &cfg) != 0) {
    return 1;
  }
  for (size_t i = 0; i < o->nadmin; i++) {
    natter_client_add_admin(c, o->admin[i]);
  }
  if (o->metrics && natter_client_metrics_listen(c, o->metrics) != 0) {
    natter_client_free(c);
    return 1;
  }
  for (size_t i = 0; i < o->nforward; i++) {
    char err[512];
    natter_forward *f = NULL;
    rv = natter_client_add_forward_spec(c, o->forward[i].spec,
                                        (const char *const *)o->forward[i].argv,
                                        &f, err, sizeof(err));
    if (rv != 0) {
      fprintf(stderr, "natter: %s\n", err);
      natter_client_free(c);
      return rv == NATTER_ERR_SPEC ? 2 : 1;
    }
    if (o->forward[i].spec[0] == ':') {
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
  rlim_t want =
      rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* The first setting of |scope| that |c| uses, or NULL. */
static const cli_setting *first_in_use(const cli_config *c, cli_scope scope) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    if (cli_settings[i].scope == scope &&
        cli_setting_in_use(c, &cli_settings[i])) {
      return &cli_settings[i];
    }
  }
  return NULL;
}

/* Checks the settings in force before anything touches keys or sockets.
 * Returns -1 to go on, or an exit code. */
static int check_settings(const cli_config *o, size_t nstdio) {
  const cli_setting *misplaced;
  char err[600];

  if (o->server && (misplaced = first_in_use(o, CLI_CLIENT)) != NULL) {
    return usage_error("-server runs a broker only; %s is for clients",
                       misplaced->flag ? misplaced->flag : "a forward SPEC");
  }
  if (!o->server && (misplaced = first_in_use(o, CLI_BROKER)) != NULL) {
    return usage_error("%s is for a broker (-server)", misplaced->flag);
  }
  if (!o->server && !o->name) {
    return usage_error("%s", "missing -name (or -server to run a broker)");
  }
  if (!o->server && !o->broker) {
    return usage_error("%s", "missing -broker HOST:PORT");
  }
  if (!o->server && !o->listen && o->nforward == 0) {
    return usage_error("%s",
                       "nothing to do: give -listen and/or a forward SPEC");
  }
  if ((o->nallow || o->nallow_command || o->nallow_peer) && !o->listen) {
    return usage_error("%s", "-allow, -allow-command and -allow-peer need "
                             "-listen");
  }
  if (nstdio > 1) {
    return usage_error("%s", "only one spec may use stdin/stdout (:PEER:...)");
  }
  if (o->broker_key && natter_fingerprint_check(o->broker_key) != 0) {
    return usage_error("bad -broker-key \"%.80s\": expected the 64 hex digits "
                       "the broker prints at start",
                       o->broker_key);
  }
  for (size_t i = 0; i < o->nforward; i++) {
    int is_command = 0;
    if (natter_spec_check(o->forward[i].spec, &is_command, NULL, err,
                          sizeof(err)) != 0) {
      fprintf(stderr, "natter: %s\n", err);
      return 2;
    }
    if (is_command && !o->forward[i].argv) {
      return usage_error("spec %s needs a command after it",
                         o->forward[i].spec);
    }
  }
  return -1;
}

/* -check: a diagnostic session. The config file's listener and forwards
 * belong to the client that runs as NAME; a check takes only who we are
 * and where the broker is, and its own UDP port unless -port says
 * otherwise. */
static int main_check(cli *app, cli_config *o, const cli_config *flags,
                      natter_log_level level) {
  if (!o->name) {
    return usage_error("%s", "-check needs -name (this side's name)");
  }
  if (!o->broker) {
    return usage_error("%s", "-check needs -broker HOST:PORT");
  }
  if (o->broker_key && natter_fingerprint_check(o->broker_key) != 0) {
    return usage_error("bad -broker-key \"%.80s\": expected the 64 hex "
                       "digits the broker prints at start",
                       o->broker_key);
  }
  o->port = flags->port;
  sink_init(&app->sink, o->log_format);
  signal(SIGPIPE, SIG_IGN);
  app->base = event_base_new();
  app->o = o;
  if (!app->base) {
    return 1;
  }
  struct event *sigint = evsignal_new(app->base, SIGINT, on_signal, app);
  struct event *sigterm = evsignal_new(app->base, SIGTERM, on_signal, app);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);
  /* The report is the output: logs only when they matter. */
  int rv = run_check(app, o, flags->log_level_set ? level : NATTER_LOG_WARN);
  event_free(sigint);
  event_free(sigterm);
  event_base_free(app->base);
  return rv;
}

/* -status: print a status page. */
static int main_status(cli *app, const cli_config *o) {
  int rv;
  if (!o->status_set) {
    return usage_error("%s", "-json goes with -status or -check");
  }
  if (o->nforward || o->listen) {
    return usage_error("%s", "-status only reads a status page: no specs or "
                             "-listen with it");
  }
  signal(SIGPIPE, SIG_IGN);
  app->base = event_base_new();
  rv = app->base ? run_status(app, o) : 1;
  if (app->base) {
    event_base_free(app->base);
  }
  return rv;
}

/* The settings in force: the flags, then what the file adds. Returns -1
 * to go on, or an exit code. */
static int merge_settings(cli_config *o, const cli_config *flags,
                          const cli_config *file) {
  const cli_setting *full = NULL;
  if (cli_config_overlay(o, flags, &full) != 0 ||
      cli_config_overlay(o, file, &full) != 0) {
    if (full && full->type == CLI_T_FORWARDS) {
      return usage_error("too many forwards (at most %s in all)", "64");
    }
    return usage_error("too many allow rules (at most %s in all)", "64");
  }
  /* The environment's token comes before the file's token-file. */
  if (!flags->token_file_set && getenv(CLI_TOKEN_ENV)) {
    free(o->token_file);
    o->token_file = NULL;
    o->token_file_set = 0;
  }
  return -1;
}

int main(int argc, char **argv) {
  static cli app; /* zeroed; on_hup reaches it through the event */
  static cli_config flags, o;
  char err[600];
  size_t nstdio = 0;
  int rv;

  raise_fd_limit();
  rv = parse_flags(&flags, argc, argv);
  if (rv >= 0) {
    cli_config_free(&flags);
    return rv;
  }
  if (flags.check &&
      (flags.listen || flags.nforward || flags.server || flags.status_set)) {
    cli_config_free(&flags);
    return usage_error("%s", "-check runs a check only: no -server, -status, "
                             "-listen or specs with it");
  }

  /* The file fills what the flags left open; lists add up. */
  app.flags = &flags;
  app.config_path = flags.config ? flags.config : CLI_DEFAULT_CONFIG;
  if (cli_config_load(&app.file, app.config_path, !flags.config_set, err,
                      sizeof(err)) < 0) {
    fprintf(stderr, "natter: %s\n", err);
    rv = 2;
    goto done;
  }
  rv = merge_settings(&o, &flags, &app.file);
  if (rv >= 0) {
    goto done;
  }
  natter_log_level level =
      o.log_level_set ? (natter_log_level)o.log_level : NATTER_LOG_INFO;
  for (size_t i = 0; i < o.nforward; i++) {
    nstdio += o.forward[i].spec[0] == ':';
  }

  if (o.check) {
    rv = main_check(&app, &o, &flags, level);
    goto done;
  }
  if (o.status_set || o.json) {
    rv = main_status(&app, &o);
    goto done;
  }
  if (o.list || o.release) {
    rv = o.list && o.release
             ? usage_error("%s", "give -list or -release, not both")
             : run_registry_admin(&o);
    goto done;
  }
  rv = check_settings(&o, nstdio);
  if (rv >= 0) {
    goto done;
  }

  sink_init(&app.sink, o.log_format);
  signal(SIGPIPE, SIG_IGN);
  app.base = event_base_new();
  if (!app.base) {
    fprintf(stderr, "natter: cannot create the event loop\n");
    rv = 1;
    goto done;
  }
  struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
  struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
  struct event *sighup = evsignal_new(app.base, SIGHUP, on_hup, &app);
  event_add(sigint, NULL);
  event_add(sigterm, NULL);
  event_add(sighup, NULL);
  app.o = &o;
  app.level = level;

  rv = o.server ? run_broker(&app, &o, level)
                : run_client(&app, &o, level, o.log_level_set != 0, nstdio);

  event_free(sigint);
  event_free(sigterm);
  event_free(sighup);
  event_base_free(app.base);
done:
  cli_config_free(&app.file);
  cli_config_free(&o);
  cli_config_free(&flags);
  return rv;
}

/* ---- SIGHUP: reload the configuration file (like sshd) ----
 *
 * The settings that settings.h marks RELOAD are taken again: the file's
 * allow rules (with those of the command line) replace the client's rules;
 * its forward lines are compared with the running ones: an unchanged
 * forward keeps its listener and connections, a removed one stops, a new
 * one starts. Other settings are read at start only: a change to one is
 * logged. A file that does not parse, or a rule the library refuses,
 * leaves everything as it was. */

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
  cli_config rules;
  char err[600];
  int rv = 0;

  cli_config_init(&rules);
  if (cli_config_overlay(&rules, app->flags, NULL) != 0 ||
      cli_config_overlay(&rules, nf, NULL) != 0) {
    hup_log(app, NATTER_LOG_ERROR,
            "reload refused: too many allow rules (at most %s in all); the "
            "old configuration stays in force",
            "64");
    cli_config_free(&rules);
    return -1;
  }
  natter_client_config cfg;
  natter_client_config_default(&cfg);
  cfg.allow = rules.nallow ? (const char *const *)rules.allow : NULL;
  cfg.allow_commands =
      rules.nallow_command ? (const char *const *)rules.allow_command : NULL;
  cfg.allow_peers =
      rules.nallow_peer ? (const char *const *)rules.allow_peer : NULL;
  if (natter_client_set_access(app->client, &cfg, err, sizeof(err)) != 0) {
    char msg[700];
    snprintf(msg, sizeof(msg), "%s: %s", app->config_path, err);
    hup_log(app, NATTER_LOG_ERROR,
            "reload refused: %s; the old configuration stays in force", msg);
    rv = -1;
  }
  cli_config_free(&rules);
  return rv;
}

static void reload_forwards(cli *app, const cli_config *nf,
                            natter_forward **made) {
  cli_config *old = &app->file;
  char err[600], msg[800];
  size_t kept = 0, added = 0, removed = 0;

  for (size_t i = 0; i < old->nforward; i++) {
    size_t j;
    for (j = 0; j < nf->nforward; j++) {
      if (!made[j] && cli_forward_equal(&old->forward[i], &nf->forward[j])) {
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
  if (cli_config_load(&nf, app->config_path, !app->flags->config_set, err,
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
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    if (s->key && !s->reload && !cli_setting_equal(&app->file, &nf, s)) {
      hup_log(app, NATTER_LOG_WARN,
              "reload: \"%s\" changed; it takes effect at the next start",
              s->key);
    }
  }
  cli_config_free(&app->file);
  app->file = nf; /* plain strings and arrays: a shallow move is fine */
  memcpy(app->file_forwards, made, sizeof(made));
}
