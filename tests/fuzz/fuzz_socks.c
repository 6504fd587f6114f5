/* libFuzzer target: the SOCKS5 handshake (src/codec/socks.c) as a local
 * client sends it, and the credentials file it is checked against. Input:
 * one byte of options (bit 0: the forward asks for a password; bits 1-3:
 * the chunk size the client's bytes come in), then the client's bytes,
 * which are also parsed as a credentials file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/socks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nt_socks s;
  char user[NT_SOCKS_MAX_CREDENTIAL + 1], pw[NT_SOCKS_MAX_CREDENTIAL + 1];
  char err[200];

  if (size < 1) {
    return 0;
  }
  size_t chunk = ((size_t)(data[0] >> 1) & 7) * 37 + 1;
  nt_socks_init(&s, data[0] & 1 ? "user" : NULL, data[0] & 1 ? "pw" : NULL);
  data++;
  size--;
  size_t pos = 0;
  while (pos < size) {
    uint8_t reply[NT_SOCKS_REPLY_MAX];
    size_t want = nt_socks_want(&s), used, replylen;
    size_t n = size - pos < chunk ? size - pos : chunk;
    if (want == 0) {
      abort(); /* more is wanted until the handshake is over */
    }
    nt_socks_step step =
        nt_socks_feed(&s, data + pos, n, &used, reply, &replylen);
    /* |used| may pass |want|, the least the codec knew it needed: it
     * takes the rest of the message, never more (test_socks.c). */
    if (used > n || (used < want && used < n) ||
        replylen > NT_SOCKS_REPLY_MAX || s.total > NT_SOCKS_MAX_HANDSHAKE ||
        s.total != pos + used) {
      abort();
    }
    pos += used;
    if (step == NT_SOCKS_FAIL) {
      if (!s.error || nt_socks_want(&s) != 0) {
        abort();
      }
      break;
    }
    if (step == NT_SOCKS_CONNECT) {
      size_t len = strnlen(s.host, sizeof(s.host));
      if (len == 0 || len > NT_HOST_MAX || s.port == 0) {
        abort();
      }
      for (size_t i = 0; i < len; i++) {
        if (s.host[i] <= 0x20 || s.host[i] >= 0x7f) {
          abort(); /* a StreamOpen host is printable */
        }
      }
      break;
    }
    if (used == 0 && replylen == 0) {
      abort(); /* no progress */
    }
  }
  err[0] = '\0';
  if (nt_socks_credentials_parse((const char *)data, size, user, pw, err,
                                 sizeof(err)) != 0 &&
      err[0] == '\0') {
    abort(); /* a refusal always says why */
  }
  return 0;
}
