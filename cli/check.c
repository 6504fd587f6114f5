/* natter -check: a diagnostic session that reports how this machine
 * reaches a peer. */
#include "app.h"

#include <signal.h>
#include <stdio.h>

#include "report.h"

static void on_check(natter_client *client, const natter_check_result *r,
                     void *user_data) {
  cli *app = user_data;
  (void)client;
  report_print(stdout, r, app->o->broker, app->o->json);
  app->exit_code = report_exit_code(r->verdict);
  event_base_loopbreak(app->base);
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

/* -check: a diagnostic session. The config file's listener and forwards
 * belong to the client that runs as NAME; a check takes only who we are
 * and where the broker is, and its own UDP port unless -port says
 * otherwise. */
int main_check(cli *app, cli_config *o, const cli_config *flags,
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
