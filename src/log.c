#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void nt_log_printf(const nt_log *log, natter_log_level level, const char *fmt,
                   ...) {
  char line[2048];
  va_list ap;

  if (level > log->level) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (log->fn) {
    log->fn(level, line, log->user_data);
  } else {
    fprintf(stderr, "natter: %s\n", line);
  }
}
