/* Small text helpers shared by the settings, the configuration file reader
 * and the command splitter. */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_quote(char out[CLI_QUOTE_BUF], const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t shown = n < CLI_QUOTE_MAX_IN ? n : CLI_QUOTE_MAX_IN;
  size_t o = 0;

  for (size_t i = 0; i < shown; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else if (ch >= 0x20 && ch < 0x7f) {
      out[o++] = (char)ch;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 0xf];
    }
  }
  if (shown < n) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

void cli_set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err == NULL || errlen == 0) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int cli_is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
         ch == '\f';
}

char *cli_dup_n(const char *s, size_t n) {
  char *copy = malloc(n + 1);
  if (copy != NULL) {
    memcpy(copy, s, n);
    copy[n] = '\0';
  }
  return copy;
}

int cli_lower(int ch) {
  return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

int cli_equal_nocase(const char *a, const char *b) {
  while (*a != '\0' &&
         cli_lower((unsigned char)*a) == cli_lower((unsigned char)*b)) {
    a++;
    b++;
  }
  return *a == '\0' && *b == '\0';
}
