/* libFuzzer target: the raw datagrams anyone can send to a client's or a
 * broker's UDP socket besides QUIC: hole-punching probes and replies
 * (src/client/punch.c), NAT mapping-check requests and replies
 * (src/codec/mapping.c), and the relay's datagram header
 * (src/codec/relay_wire.h). */
#include <stdint.h>
#include <stdlib.h>

#include "codec/mapping.h"
#include "client/punch.h"
#include "codec/relay_wire.h"

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
  const uint8_t *token = NULL;
  int rtype = nt_relay_hdr_decode(data, size, &token);
  if (rtype != 0 &&
      (rtype < NT_RELAY_DATA || rtype > NT_RELAY_CLOSED || token != data + 1 ||
       size < NT_RELAY_HDR_LEN)) {
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
