#include "base/escape.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence of a printable character at |s|
 * (RFC 3629 §4), or 0. */
static size_t utf8_printable_len(const unsigned char *s) {
  uint32_t cp;
  size_t n;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    n = 2;
    cp = s[0] & 0x1f;
  } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    n = 3;
    cp = s[0] & 0x0f;
  } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    n = 4;
    cp = s[0] & 0x07;
  } else {
    return 0;
  }
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) { /* also stops at the NUL */
      return 0;
    }
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f) ||
      cp == 0x2028 || cp == 0x2029) {
    return 0; /* overlong, out of range, surrogate, C1 control, separator */
  }
  return n;
}

size_t nt_escape(char *out, size_t outlen, const char *in) {
  const unsigned char *s = (const unsigned char *)in;
  size_t used = 0;

  while (*s) {
    char esc[5];
    const char *piece = esc;
    size_t n;
    if (*s >= 0x20 && *s < 0x7f) {
      piece = (const char *)s;
      n = 1;
    } else if ((n = utf8_printable_len(s)) > 0) {
      piece = (const char *)s;
    } else if (*s == '\n' || *s == '\r' || *s == '\t') {
      esc[0] = '\\';
      esc[1] = *s == '\n' ? 'n' : *s == '\r' ? 'r' : 't';
      n = 2;
    } else {
      snprintf(esc, sizeof(esc), "\\x%02x", *s);
      n = 4;
    }
    if (used + n >= outlen) {
      break;
    }
    memcpy(out + used, piece, n);
    used += n;
    s += piece == esc ? 1 : n;
  }
  out[used] = '\0';
  return used;
}
