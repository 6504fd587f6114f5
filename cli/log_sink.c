/* Where log lines go: stderr, as text or JSON, with a timestamp unless a
 * terminal or journald reads them. */
#include "app.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected to the
 * journal (systemd.exec(5)); it only counts if stderr is still that. */
static int stderr_is_journal(void) {
  const char *env = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0) {
    return 0;
  }
  return (unsigned long long)st.st_dev == dev &&
         (unsigned long long)st.st_ino == ino;
}

void sink_init(log_sink *sink, const char *format) {
  sink->json = format && strcmp(format, "json") == 0;
  sink->journald = stderr_is_journal();
  sink->timestamps = !sink->journald && !isatty(2);
}

static uint64_t now_unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* natter_log_fn for the library, and the CLI's own lines. */
void cli_log(natter_log_level level, const char *line, void *user_data) {
  const log_sink *sink = &((cli *)user_data)->sink;
  /* sd-daemon(3) priorities: err, warning, info, debug. */
  static const char prio[] = {'3', '4', '6', '7'};
  char prefix[48] = "", buf[8192];
  uint64_t ms = sink->timestamps ? now_unix_ms() : 0;

  if (sink->journald) {
    snprintf(prefix, sizeof(prefix), "<%c>", prio[level & 3]);
  }
  if (sink->json) {
    natter_log_json(buf, sizeof(buf), level, ms, line);
    fprintf(stderr, "%s%s\n", prefix, buf);
    return;
  }
  if (ms) {
    size_t n = strlen(prefix);
    n += natter_log_timestamp(prefix + n, sizeof(prefix) - n, ms);
    snprintf(prefix + n, sizeof(prefix) - n, " ");
  }
  fprintf(stderr, "%snatter: %s\n", prefix, line);
}
