#include "base/log.h"

#include "base/escape.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* ---- formats for log sinks (the CLI's, or an embedder's) ---- */

static const char *level_name(natter_log_level level) {
  switch (level) {
  case NATTER_LOG_ERROR:
    return "error";
  case NATTER_LOG_WARN:
    return "warn";
  case NATTER_LOG_INFO:
    return "info";
  default:
    return "debug";
  }
}

/* Appends to |out| as snprintf would, tracking the length even past the
 * end so that the caller can tell a cut line. */
static void put(char *out, size_t outlen, size_t *used, const char *s,
                size_t n) {
  if (*used < outlen) {
    size_t room = outlen - 1 - *used;
    memcpy(out + *used, s, n < room ? n : room);
    out[*used + (n < room ? n : room)] = '\0';
  }
  *used += n;
}

size_t natter_log_timestamp(char *out, size_t outlen, uint64_t unix_ms) {
  char buf[40];
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  size_t used = 0;

  if (!out || outlen == 0) {
    return 0;
  }
  out[0] = '\0';
  if (!gmtime_r(&t, &tm)) {
    return 0;
  }
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03uZ",
                        (unsigned)(unix_ms % 1000));
  put(out, outlen, &used, buf, n);
  return used;
}

size_t natter_log_json(char *out, size_t outlen, natter_log_level level,
                       uint64_t unix_ms, const char *line) {
  static const char hex[] = "0123456789abcdef";
  char ts[40];
  size_t used = 0;

  if (!out || outlen == 0) {
    return 0;
  }
  out[0] = '\0';
  put(out, outlen, &used, "{", 1);
  if (unix_ms) {
    size_t n = natter_log_timestamp(ts, sizeof(ts), unix_ms);
    put(out, outlen, &used, "\"time\":\"", 8);
    put(out, outlen, &used, ts, n);
    put(out, outlen, &used, "\",", 2);
  }
  put(out, outlen, &used, "\"level\":\"", 9);
  put(out, outlen, &used, level_name(level), strlen(level_name(level)));
  put(out, outlen, &used, "\",\"msg\":\"", 9);
  /* Lines from the library are escaped already (printable ASCII and
   * well-formed UTF-8); JSON still needs its own quotes and backslashes,
   * and any control byte a caller's own line holds. */
  for (const unsigned char *p = (const unsigned char *)(line ? line : ""); *p;
       p++) {
    if (*p == '"' || *p == '\\') {
      char esc[2] = {'\\', (char)*p};
      put(out, outlen, &used, esc, 2);
    } else if (*p < 0x20 || *p == 0x7f) {
      char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0xf]};
      put(out, outlen, &used, esc, 6);
    } else {
      put(out, outlen, &used, (const char *)p, 1);
    }
  }
  put(out, outlen, &used, "\"}", 2);
  return used;
}
