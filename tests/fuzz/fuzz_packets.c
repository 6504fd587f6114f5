/* libFuzzer target: the raw datagrams anyone can send to a client's or a
 * broker's UDP socket besides QUIC: hole-punching probes and replies
 * (src/punch.c) and NAT mapping-check requests and replies
 * (src/mapping.c). */
#include <stdint.h>
#include <stdlib.h>

#include "mapping.h"
#include "punch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t nonce[NT_PUNCH_NONCE_LEN], mnonce[NT_MAPPING_NONCE_LEN];
  nt_addr seen;
  int type = nt_punch_decode(data, size, nonce);
  if (type != 0 && type != NT_PUNCH_PROBE && type != NT_PUNCH_REPLY) {
    abort();
  }
  if (type && size != NT_PUNCH_PACKET_LEN) {
    abort();
  }
  if (nt_mapping_decode_request(data, size, mnonce) &&
      size != NT_MAPPING_REQUEST_LEN) {
    abort();
  }
  if (nt_mapping_decode_reply(data, size, mnonce, &seen)) {
    uint8_t again[NT_MAPPING_REPLY_MAX];
    if (size > NT_MAPPING_REPLY_MAX ||
        nt_mapping_encode_reply(again, mnonce,
                                (const struct sockaddr *)&seen.ss) != size) {
      abort(); /* a reply decodes to exactly what encodes it */
    }
  }
  return 0;
}
