/* Datagram framing for UDP flows (dgram.h). */
#include "codec/dgram.h"

size_t nt_dgram_header_len(uint64_t id) {
  if (id < 64) {
    return 1;
  }
  if (id < 16384) {
    return 2;
  }
  if (id < (UINT64_C(1) << 30)) {
    return 4;
  }
  return id <= NT_DGRAM_MAX_STREAM_ID ? 8 : 0;
}

size_t nt_dgram_header(uint8_t *out, uint64_t id) {
  size_t n = nt_dgram_header_len(id);
  /* The two top bits of the first byte say the length (RFC 9000 §16). */
  static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
  for (size_t i = 0; i < n; i++) {
    out[n - 1 - i] = (uint8_t)(id >> (8 * i));
  }
  if (n) {
    out[0] |= prefix[n];
  }
  return n;
}

int nt_dgram_decode(const uint8_t *data, size_t len, uint64_t *stream_id,
                    const uint8_t **payload, size_t *payloadlen) {
  if (len == 0) {
    return -1;
  }
  size_t n = (size_t)1 << (data[0] >> 6);
  if (len < n) {
    return -1;
  }
  uint64_t id = data[0] & 0x3f;
  for (size_t i = 1; i < n; i++) {
    id = (id << 8) | data[i];
  }
  /* Bit 1 set: a unidirectional stream, which never opens a flow. */
  if (id & 2) {
    return -1;
  }
  if (len - n > NT_DGRAM_MAX_PAYLOAD) {
    return -1;
  }
  *stream_id = id;
  *payload = data + n;
  *payloadlen = len - n;
  return 0;
}
