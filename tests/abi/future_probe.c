/* Built into the "future" library only (NATTER_TEST_FUTURE_FIELDS): reports
 * its struct layouts and how it loads a config, for tests/abi/old_caller.c.
 */
#include "future_probe.h"

#include "base/structs.h"

#ifndef NATTER_TEST_FUTURE_FIELDS
#error "future_probe.c belongs to the NATTER_TEST_FUTURE_FIELDS library"
#endif

int abi_future_client_config_version(void) {
  return NATTER_CLIENT_CONFIG_VERSION;
}

size_t abi_future_client_config_size(void) {
  return sizeof(natter_client_config);
}

int abi_future_broker_stats_version(void) {
  return NATTER_BROKER_STATS_VERSION;
}

size_t abi_future_broker_stats_size(void) {
  return sizeof(natter_broker_stats);
}

int abi_future_load_client_config(int version, const void *cfg,
                                  abi_loaded_client_config *out) {
  natter_client_config full;
  int rv = nt_client_config_load(&full, version, cfg);
  if (rv == 0) {
    out->name = full.name;
    out->broker = full.broker;
    out->connect_timeout_ms = full.connect_timeout_ms;
    out->user_data = full.user_data;
    out->test_future_ms = full.test_future_ms;
  }
  return rv;
}
