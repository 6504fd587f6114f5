#include "codec/tcpframe.h"

#include <string.h>

static const uint8_t magic[6] = {'N', 'A', 'T', 'T', 'E', 'R'};

void nt_tcpframe_preamble(uint8_t out[NT_TCPFRAME_PREAMBLE_LEN], int target) {
  memcpy(out, magic, sizeof(magic));
  out[6] = NT_TCPFRAME_VERSION;
  out[7] = (uint8_t)target;
}

int nt_tcpframe_preamble_decode(const uint8_t in[NT_TCPFRAME_PREAMBLE_LEN]) {
  if (memcmp(in, magic, sizeof(magic)) != 0 || in[6] != NT_TCPFRAME_VERSION ||
      (in[7] != NT_TCPFRAME_TO_ENDPOINT && in[7] != NT_TCPFRAME_TO_RELAY)) {
    return 0;
  }
  return in[7];
}

void nt_tcpframe_header(uint8_t out[NT_TCPFRAME_HDR], size_t len) {
  out[0] = (uint8_t)(len >> 8);
  out[1] = (uint8_t)len;
}

int nt_tcpframe_peek(const uint8_t *buf, size_t avail, size_t *len) {
  *len = 0;
  if (avail < NT_TCPFRAME_HDR) {
    return NT_TCPFRAME_NEED_MORE;
  }
  size_t n = (size_t)buf[0] << 8 | buf[1];
  if (n == 0 || n > NT_TCPFRAME_MAX) {
    return NT_TCPFRAME_ERR_LENGTH;
  }
  *len = n;
  return avail - NT_TCPFRAME_HDR >= n ? 1 : NT_TCPFRAME_NEED_MORE;
}
