/* The settings in force -> the library's client or broker config, and the
 * loop that runs it; the client's events that end natter. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The token from the environment, when no -token-file names one. */
static const char *env_token(const cli_config *o) {
  const char *t = getenv(CLI_TOKEN_ENV);
  return !o->token_file && t && t[0] ? t : NULL;
}

static void on_event(natter_client *client, const natter_event *ev,
                     void *user_data) {
  cli *app = user_data;
  (void)client;
  if (ev->type == NATTER_EVENT_FATAL && !app->checking) {
    app->exit_code = app->o && app->o->rsh ? 255 : 1;
    event_base_loopbreak(app->base);
  }
  /* A stdin/stdout session is the whole job: its end ends natter, with
   * the remote command's status when there was one. */
  if (app->session && ev->forward == app->session) {
    if (ev->type == NATTER_EVENT_FORWARD_CLOSED) {
      app->exit_code = ev->exit_status >= 0 ? ev->exit_status : 0;
      event_base_loopbreak(app->base);
    } else if (ev->type == NATTER_EVENT_FORWARD_FAILED) {
      /* -rsh: 255 as ssh, so that rsync and git tell natter's failure from
       * the command's status */
      app->exit_code = app->o && app->o->rsh ? 255 : 1;
      event_base_loopbreak(app->base);
    }
  }
}

int run_broker(cli *app, const cli_config *o, natter_log_level level) {
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
  if (o->new_names_per_hour_set) {
    cfg.new_names_per_hour = (uint32_t)o->new_names_per_hour;
  }
  cfg.tcp_listen = o->tcp_listen;
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

/* What every client session takes from the options: who we are, how to
 * reach the broker, how long to try a peer, and where events go. */
void client_basics(natter_client_config *cfg, cli *app, const cli_config *o,
                   natter_log_level level) {
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
  cfg->no_portmap = (int)o->no_portmap;
  if (o->broker_tcp_set) {
    cfg->broker_tcp_port = (int)o->broker_tcp;
  }
  cfg->on_event = on_event;
  cfg->log = cli_log;
  cfg->user_data = app;
}

int cli_add_forward(natter_client *c, const cli_config *o,
                    const cli_forward *fw, natter_forward **pforward, char *err,
                    size_t errlen) {
  if (o->socks_auth && strncmp(fw->spec, "socks:", 6) == 0) {
    /* socks:[BIND:]LOCALPORT:PEER, checked first: the peer follows the
     * last ':', the port the one before, and the rest is the bind
     * address (an IPv6 one in brackets). */
    char buf[256], *peer, *port, *bind = NULL;
    natter_forward_config cfg;
    int rv = natter_spec_check(fw->spec, NULL, NULL, err, errlen);
    if (rv != 0) {
      return rv;
    }
    snprintf(buf, sizeof(buf), "%s", fw->spec + 6);
    peer = strrchr(buf, ':');
    *peer++ = '\0';
    port = strrchr(buf, ':');
    if (port) {
      *port++ = '\0';
      bind = buf;
      if (bind[0] == '[') {
        bind++;
        bind[strlen(bind) - 1] = '\0';
      }
    } else {
      port = buf;
    }
    natter_forward_config_default(&cfg);
    cfg.kind = NATTER_FORWARD_SOCKS;
    cfg.peer = peer;
    cfg.local_port = (uint16_t)atoi(port);
    cfg.bind = bind;
    cfg.socks_auth_file = o->socks_auth;
    rv = natter_client_add_forward(c, &cfg, pforward, err, errlen);
    if (rv == NATTER_ERR_INVALID) {
      char inner[400];
      snprintf(inner, sizeof(inner), "%s", err);
      snprintf(err, errlen, "spec \"%.80s\": %s", fw->spec, inner);
    }
    return rv;
  }
  return natter_client_add_forward_spec(
      c, fw->spec, (const char *const *)fw->argv, pforward, err, errlen);
}

int run_client(cli *app, const cli_config *o, natter_log_level level,
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
  cfg.allow_udp = o->nallow_udp ? (const char *const *)o->allow_udp : NULL;
  if (o->udp_idle_timeout_s_set) {
    cfg.udp_idle_timeout_s = (uint32_t)o->udp_idle_timeout_s;
  }
  if (o->max_udp_flows_set) {
    cfg.max_udp_flows = (uint32_t)o->max_udp_flows;
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
    rv = cli_add_forward(c, o, &o->forward[i], &f, err, sizeof(err));
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
