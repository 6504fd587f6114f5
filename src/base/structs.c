/* Defaults and per-version sizes of the caller-allocated structs. When a
 * release appends a field to one of them, its NATTER_*_VERSION goes up, a
 * case for the new version is added below, and the old version's case
 * stays as it is: it still ends at the old last field, so an old caller's
 * struct is never read or written past its end. */
#include "base/structs.h"

#include <string.h>

/* Where |field| of |type| ends: a version's length, which excludes any
 * tail padding that a field appended later may occupy. */
#define FIELD_END(type, field)                                                 \
  (offsetof(type, field) + sizeof(((type *)0)->field))

size_t nt_broker_config_len(int version) {
  switch (version) {
  case NATTER_BROKER_CONFIG_V1:
    return FIELD_END(natter_broker_config, user_data);
  case NATTER_BROKER_CONFIG_V2:
    return FIELD_END(natter_broker_config, retry_above_per_s);
  case NATTER_BROKER_CONFIG_V3:
    return FIELD_END(natter_broker_config, relay_total);
  case NATTER_BROKER_CONFIG_V4:
    return FIELD_END(natter_broker_config, new_names_per_hour);
  case NATTER_BROKER_CONFIG_V5:
    return FIELD_END(natter_broker_config, tcp_listen);
  default:
    return 0;
  }
}

size_t nt_client_config_len(int version) {
  switch (version) {
  case NATTER_CLIENT_CONFIG_V1:
    return FIELD_END(natter_client_config, user_data);
  case NATTER_CLIENT_CONFIG_V2:
    return FIELD_END(natter_client_config, max_commands_per_peer);
  case NATTER_CLIENT_CONFIG_V3:
    return FIELD_END(natter_client_config, no_relay);
  case NATTER_CLIENT_CONFIG_V4:
    return FIELD_END(natter_client_config, max_streams);
  case NATTER_CLIENT_CONFIG_V5:
    return FIELD_END(natter_client_config, no_portmap);
  case NATTER_CLIENT_CONFIG_V6:
    return FIELD_END(natter_client_config, max_udp_flows);
  case NATTER_CLIENT_CONFIG_V7:
    return FIELD_END(natter_client_config, broker_tcp_port);
#ifdef NATTER_TEST_FUTURE_FIELDS
  case NATTER_CLIENT_CONFIG_V8:
    return FIELD_END(natter_client_config, test_future_ms);
#endif
  default:
    return 0;
  }
}

size_t nt_forward_config_len(int version) {
  switch (version) {
  case NATTER_FORWARD_CONFIG_V1:
    return FIELD_END(natter_forward_config, argv);
  case NATTER_FORWARD_CONFIG_V2:
    return FIELD_END(natter_forward_config, kind);
  case NATTER_FORWARD_CONFIG_V3:
    return FIELD_END(natter_forward_config, socks_auth_file);
  default:
    return 0;
  }
}

size_t nt_broker_stats_len(int version) {
  switch (version) {
  case NATTER_BROKER_STATS_V1:
    return FIELD_END(natter_broker_stats, introductions);
  case NATTER_BROKER_STATS_V2:
    return FIELD_END(natter_broker_stats, relay_channels);
#ifdef NATTER_TEST_FUTURE_FIELDS
  case NATTER_BROKER_STATS_V3:
    return FIELD_END(natter_broker_stats, test_future_stat);
#endif
  default:
    return 0;
  }
}

size_t nt_forward_stats_len(int version) {
  switch (version) {
  case NATTER_FORWARD_STATS_V1:
    return FIELD_END(natter_forward_stats, bytes_received);
  case NATTER_FORWARD_STATS_V2:
    return FIELD_END(natter_forward_stats, datagrams_dropped);
  default:
    return 0;
  }
}

size_t nt_peer_stats_len(int version) {
  switch (version) {
  case NATTER_PEER_STATS_V1:
    return FIELD_END(natter_peer_stats, streams);
  case NATTER_PEER_STATS_V2:
    return FIELD_END(natter_peer_stats, relayed);
  default:
    return 0;
  }
}

size_t nt_broker_status_len(int version) {
  switch (version) {
  case NATTER_BROKER_STATUS_V1:
    return FIELD_END(natter_broker_status, status_requests);
  default:
    return 0;
  }
}

size_t nt_client_status_len(int version) {
  switch (version) {
  case NATTER_CLIENT_STATUS_V1:
    return FIELD_END(natter_client_status, status_requests);
  case NATTER_CLIENT_STATUS_V2:
    return FIELD_END(natter_client_status, peers_refused);
  case NATTER_CLIENT_STATUS_V3:
    return FIELD_END(natter_client_status, portmap);
  default:
    return 0;
  }
}

/* ---- defaults, as documented in natter.h ---- */

static void broker_config_defaults(natter_broker_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->log_level = NATTER_LOG_INFO;
  cfg->name_expiry_s = 30u * 24 * 3600;
  cfg->max_clients = 10000;
  cfg->max_pending = 512;
  cfg->max_per_source = 32;
  cfg->retry_above_per_s = 200;
  cfg->relay_rate = 2000000;
  cfg->relay_total = 1000000000;
  cfg->new_names_per_hour = 60;
}

static void client_config_defaults(natter_client_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->connect_timeout_ms = 10000;
  cfg->log_level = NATTER_LOG_INFO;
  cfg->max_commands = 32;
  cfg->max_commands_per_peer = 8;
  cfg->max_streams = 1024;
  cfg->udp_idle_timeout_s = 60;
  cfg->max_udp_flows = 64;
  cfg->broker_tcp_port = 443;
#ifdef NATTER_TEST_FUTURE_FIELDS
  cfg->test_future_ms = 4242;
#endif
}

static void forward_config_defaults(natter_forward_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->in_fd = -1;
  cfg->out_fd = -1;
  cfg->err_fd = 2;
}

void natter_broker_config_default_versioned(int version,
                                            natter_broker_config *cfg) {
  natter_broker_config full;
  size_t len = nt_broker_config_len(version);
  if (cfg && len) {
    broker_config_defaults(&full);
    memcpy(cfg, &full, len);
  }
}

void natter_client_config_default_versioned(int version,
                                            natter_client_config *cfg) {
  natter_client_config full;
  size_t len = nt_client_config_len(version);
  if (cfg && len) {
    client_config_defaults(&full);
    memcpy(cfg, &full, len);
  }
}

void natter_forward_config_default_versioned(int version,
                                             natter_forward_config *cfg) {
  natter_forward_config full;
  size_t len = nt_forward_config_len(version);
  if (cfg && len) {
    forward_config_defaults(&full);
    memcpy(cfg, &full, len);
  }
}

int nt_broker_config_load(natter_broker_config *out, int version,
                          const natter_broker_config *in) {
  size_t len = nt_broker_config_len(version);
  if (!in || !len) {
    return NATTER_ERR_INVALID;
  }
  broker_config_defaults(out);
  memcpy(out, in, len);
  return 0;
}

int nt_client_config_load(natter_client_config *out, int version,
                          const natter_client_config *in) {
  size_t len = nt_client_config_len(version);
  if (!in || !len) {
    return NATTER_ERR_INVALID;
  }
  client_config_defaults(out);
  memcpy(out, in, len);
  return 0;
}

int nt_forward_config_load(natter_forward_config *out, int version,
                           const natter_forward_config *in) {
  size_t len = nt_forward_config_len(version);
  if (!in || !len) {
    return NATTER_ERR_INVALID;
  }
  forward_config_defaults(out);
  memcpy(out, in, len);
  return 0;
}
