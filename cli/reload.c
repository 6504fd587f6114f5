/* SIGHUP: reload the configuration file (like sshd).
 *
 * The settings that settings.h marks RELOAD are taken again: the file's
 * allow rules (with those of the command line) replace the client's rules;
 * its forward lines are compared with the running ones: an unchanged
 * forward keeps its listener and connections, a removed one stops, a new
 * one starts. Other settings are read at start only: a change to one is
 * logged. A file that does not parse, or a rule the library refuses,
 * leaves everything as it was. */
#include "app.h"

#include <stdio.h>
#include <string.h>

#include "config.h"

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
  cfg.allow_udp =
      rules.nallow_udp ? (const char *const *)rules.allow_udp : NULL;
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
    if (cli_add_forward(app->client, app->o, &nf->forward[j], &made[j], err,
                        sizeof(err)) != 0) {
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

void on_hup(evutil_socket_t sig, short what, void *arg) {
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
