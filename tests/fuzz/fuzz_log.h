/* The log sink of the fuzz targets that run natter's own logging: every
 * line must stay one bounded line whatever the input made it say, and
 * FUZZ_VERBOSE=1 shows the lines on stderr, each after |ud| (the target's
 * name, a string) so that a run can be followed. */
#ifndef FUZZ_LOG_H
#define FUZZ_LOG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natter.h"

static inline void fuzz_log_sink(natter_log_level level, const char *line,
                                 void *ud) {
  (void)level;
  if (strlen(line) > 4096) {
    abort(); /* a log line stays a line */
  }
  if (getenv("FUZZ_VERBOSE")) {
    fprintf(stderr, "%s: %s\n", (const char *)ud, line);
  }
}

#endif
