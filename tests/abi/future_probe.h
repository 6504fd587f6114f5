/* The ABI test's window into the "future" library (built with
 * NATTER_TEST_FUTURE_FIELDS, see tests/CMakeLists.txt): what its structs
 * look like and what it makes of an old caller's config. Only plain types
 * cross this line, so both sides agree on them whatever natter.h says. */
#ifndef ABI_FUTURE_PROBE_H
#define ABI_FUTURE_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "natter.h"

typedef struct abi_loaded_client_config {
  const char *name;
  const char *broker;
  uint32_t connect_timeout_ms;
  void *user_data;
  uint32_t test_future_ms; /* the field the old caller does not have */
} abi_loaded_client_config;

/* The library's own NATTER_CLIENT_CONFIG_VERSION and struct size. */
NATTER_EXPORT int abi_future_client_config_version(void);
NATTER_EXPORT size_t abi_future_client_config_size(void);
NATTER_EXPORT int abi_future_broker_stats_version(void);
NATTER_EXPORT size_t abi_future_broker_stats_size(void);

/* Reads |cfg| (laid out as |version|) the way natter_client_new_versioned
 * does and reports the result. Returns its return value. */
NATTER_EXPORT int abi_future_load_client_config(int version, const void *cfg,
                                                abi_loaded_client_config *out);

#endif
