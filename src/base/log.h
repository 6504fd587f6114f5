/* Log lines through the user's callback, or "natter: ..." on stderr. */
#ifndef NT_LOG_H
#define NT_LOG_H

#include "natter.h"

typedef struct nt_log {
  natter_log_fn fn;        /* NULL: stderr */
  natter_log_level level;  /* lines above this level are dropped */
  void *user_data;
} nt_log;

void nt_log_printf(const nt_log *log, natter_log_level level, const char *fmt,
                   ...) __attribute__((format(printf, 3, 4)));

#define nt_error(log, ...) nt_log_printf((log), NATTER_LOG_ERROR, __VA_ARGS__)
#define nt_warn(log, ...) nt_log_printf((log), NATTER_LOG_WARN, __VA_ARGS__)
#define nt_info(log, ...) nt_log_printf((log), NATTER_LOG_INFO, __VA_ARGS__)
#define nt_debug(log, ...)                                                     \
  do {                                                                         \
    if ((log)->level >= NATTER_LOG_DEBUG)                                      \
      nt_log_printf((log), NATTER_LOG_DEBUG, __VA_ARGS__);                     \
  } while (0)

#endif
