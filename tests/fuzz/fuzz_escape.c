/* libFuzzer target: nt_escape (src/base/escape.c). Whatever the network sends,
 * the result has no control character, is well-formed UTF-8, fits, and is
 * NUL-terminated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/escape.h"

/* Length of a well-formed UTF-8 sequence at |s| (any code point), or 0. */
static size_t utf8_len(const unsigned char *s) {
  size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2
                           : (s[0] & 0xf0) == 0xe0   ? 3
                           : (s[0] & 0xf8) == 0xf0   ? 4
                                                     : 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) {
      return 0;
    }
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *in = malloc(size + 1);
  char out[512];
  size_t outlen = size > 0 ? (size_t)data[0] % sizeof(out) + 1 : sizeof(out);

  if (!in) {
    return 0;
  }
  memcpy(in, data, size);
  in[size] = '\0';
  size_t n = nt_escape(out, outlen, in);
  if (n >= outlen || out[n] != '\0' || strlen(out) != n) {
    abort();
  }
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)out[i];
    if (c < 0x20 || c == 0x7f) {
      abort();
    }
    size_t len = utf8_len((const unsigned char *)out + i);
    if (len == 0) {
      abort();
    }
    if (len == 2 && c == 0xc2 && (unsigned char)out[i + 1] < 0xa0) {
      abort(); /* a C1 control */
    }
    i += len;
  }
  free(in);
  return 0;
}
