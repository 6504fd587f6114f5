/* libFuzzer target: the TCP fallback's framing (src/codec/tcpframe.c),
 * as the broker reads a hostile client's stream: a preamble, then frames,
 * in pieces of fuzzer-chosen sizes. Checks that a frame is handed out
 * only whole, from inside what arrived, within NT_TCPFRAME_MAX, and that
 * an error stays an error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/tcpframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t buf[2 * (NT_TCPFRAME_HDR + NT_TCPFRAME_MAX)];
  size_t have = 0;

  if (size < 1 + NT_TCPFRAME_PREAMBLE_LEN) {
    return 0;
  }
  size_t step = (size_t)data[0] * 37 + 1;
  data++;
  size--;
  int target = nt_tcpframe_preamble_decode(data);
  if (target != 0 && target != NT_TCPFRAME_TO_ENDPOINT &&
      target != NT_TCPFRAME_TO_RELAY) {
    abort();
  }
  data += NT_TCPFRAME_PREAMBLE_LEN;
  size -= NT_TCPFRAME_PREAMBLE_LEN;
  while (size > 0) {
    size_t chunk = size < step ? size : step;
    if (chunk > sizeof(buf) - have) {
      chunk = sizeof(buf) - have;
    }
    memcpy(buf + have, data, chunk);
    have += chunk;
    data += chunk;
    size -= chunk;
    for (;;) {
      size_t len;
      int rv = nt_tcpframe_peek(buf, have, &len);
      if (rv == NT_TCPFRAME_ERR_LENGTH) {
        if (nt_tcpframe_peek(buf, have, &len) != rv) {
          abort();
        }
        return 0;
      }
      if (len > NT_TCPFRAME_MAX || (have >= NT_TCPFRAME_HDR && len == 0)) {
        abort();
      }
      if (rv == NT_TCPFRAME_NEED_MORE) {
        break;
      }
      if (rv != 1 || NT_TCPFRAME_HDR + len > have) {
        abort();
      }
      uint8_t hdr[NT_TCPFRAME_HDR];
      nt_tcpframe_header(hdr, len);
      if (memcmp(hdr, buf, NT_TCPFRAME_HDR) != 0) {
        abort();
      }
      have -= NT_TCPFRAME_HDR + len;
      memmove(buf, buf + NT_TCPFRAME_HDR + len, have);
    }
  }
  return 0;
}
