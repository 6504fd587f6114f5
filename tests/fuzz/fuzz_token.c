/* libFuzzer target: a closed broker's token file (src/trust/token.c):
 * whatever its first line holds, a token that loads is one the broker
 * can compare, and the constant-time comparison agrees with memcmp on
 * any two byte strings a client could present. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trust/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512];

  if (size == 0) {
    return 0;
  }
  /* The first byte sizes the output buffer (as a caller might); exactly
   * that much is allocated, so a write past it shows. */
  size_t outlen = 1 + data[0] % (NT_TOKEN_MAX + 8);
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  char *out = malloc(outlen);
  if (!out) {
    return 0;
  }
  /* nt_token_read_file reads through nt_textfile_read, which refuses NULs
   * and files past NT_TOKEN_FILE_MAX_BYTES. */
  if (len <= NT_TOKEN_FILE_MAX_BYTES && !memchr(text, 0, len)) {
    err[0] = '\0';
    if (nt_token_parse(out, outlen, text, len, "fuzz", err, sizeof(err)) == 0) {
      size_t n = strlen(out);
      if (n < NT_TOKEN_MIN || n > NT_TOKEN_MAX || n >= outlen ||
          !memmem(text, len, out, n)) {
        abort();
      }
      for (size_t i = 0; i < n; i++) {
        if ((unsigned char)out[i] <= ' ' || (unsigned char)out[i] >= 0x7f) {
          abort();
        }
      }
      if (!nt_token_equal(out, n, out, n) ||
          nt_token_equal(out, n, out, n - 1)) {
        abort();
      }
    } else if (strstr(err, "fuzz") == NULL) {
      abort(); /* a refusal names the source */
    }
  }
  free(out);

  /* Any split of the bytes: expected | presented. */
  size_t elen = len / 2;
  const char *expected = text, *presented = text + elen;
  size_t plen = len - elen;
  int same = elen == plen && memcmp(expected, presented, elen) == 0;
  if (nt_token_equal(expected, elen, presented, plen) != same) {
    abort();
  }
  return 0;
}
