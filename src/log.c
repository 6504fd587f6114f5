#include "log.h"

#include "escape.h"

#include <stdarg.h>
#include <stdio.h>

void nt_log_printf(const nt_log *log, natter_log_level level, const char *fmt,
                   ...) {
  char raw[2048], line[2048];
  va_list ap;

  if (level > log->level) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(raw, sizeof(raw), fmt, ap);
  va_end(ap);
  /* Lines quote peers, clients and brokers, any of which may be hostile. */
  nt_escape(line, sizeof(line), raw);
  if (log->fn) {
    log->fn(level, line, log->user_data);
  } else {
    fprintf(stderr, "natter: %s\n", line);
  }
}
