/* natter command line: main, the settings in force (flags over the file)
 * and the dispatch to a mode; signals, exit codes. No networking logic
 * lives here. */
#include "app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "config.h"

void on_signal(evutil_socket_t sig, short what, void *arg) {
  cli *app = arg;
  (void)sig;
  (void)what;
  event_base_loopbreak(app->base);
}

/* A client holds a descriptor per forwarded TCP connection (a listener
 * one more per connection it makes; 2 x 1024 streams of one peer by
 * default, plus waiting ones) and, behind a symmetric NAT, up to 256 more
 * sockets for port prediction: raise the soft limit, often 1024, to the
 * hard one (an unlimited one to 1048576, Linux's usual nr_open). Running
 * out is logged where it happens (accept, connect). */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return;
  }
  rlim_t want = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
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
  if ((o->nallow || o->nallow_command || o->nallow_peer || o->nallow_udp) &&
      !o->listen) {
    return usage_error("%s", "-allow, -allow-command, -allow-peer and "
                             "-allow-udp need -listen");
  }
  if (o->rsh && (o->listen || o->nforward != 1)) {
    return usage_error("%s", "-rsh runs one command: no -listen or forward "
                             "SPEC with it");
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

/* Frees the |n| first entries of the list |l| and empties it. */
static void drop_list(char **l, size_t *n) {
  for (size_t i = 0; i < *n; i++) {
    free(l[i]);
    l[i] = NULL;
  }
  *n = 0;
}

/* -rsh runs one command for rsync, scp or git: what a file says about
 * serving (listen, its rules) and its forwards belong to the natter that
 * runs as a service, not to this one. */
static void drop_serving(cli_config *file) {
  for (size_t i = 0; i < file->nforward; i++) {
    free(file->forward[i].spec);
    cli_argv_free(file->forward[i].argv);
  }
  file->nforward = 0;
  file->listen = 0;
  file->listen_set = 0;
  drop_list(file->allow, &file->nallow);
  drop_list(file->allow_command, &file->nallow_command);
  drop_list(file->allow_peer, &file->nallow_peer);
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
  if (flags.rsh) {
    drop_serving(&app.file);
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
  if (!o.rsh) {
    event_add(sighup, NULL); /* -rsh: a hangup ends it, as it ends ssh */
  }
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
