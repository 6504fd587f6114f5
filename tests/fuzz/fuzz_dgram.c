/* libFuzzer target: the UDP flow datagram decoder (src/codec/dgram.c), fed
 * whatever a hostile peer can put in a QUIC DATAGRAM frame. Checks what it
 * promises: the payload lies inside the input right after the header, no
 * larger than NT_DGRAM_MAX_PAYLOAD, the id is a bidirectional stream's,
 * and re-encoding the id gives back the header (so ids are canonical up
 * to the varint's length). */
#include <stdint.h>
#include <stdlib.h>

#include "codec/dgram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t id;
  const uint8_t *p;
  size_t plen;
  if (nt_dgram_decode(data, size, &id, &p, &plen) != 0) {
    return 0;
  }
  size_t hdr = (size_t)(p - data);
  if (hdr < 1 || hdr > NT_DGRAM_MAX_HDR || hdr + plen != size ||
      plen > NT_DGRAM_MAX_PAYLOAD || (id & 2) ||
      id > NT_DGRAM_MAX_STREAM_ID) {
    abort();
  }
  uint8_t again[NT_DGRAM_MAX_HDR];
  size_t n = nt_dgram_header(again, id);
  /* The shortest encoding is never longer than what came in. */
  if (n == 0 || n > hdr) {
    abort();
  }
  uint64_t id2;
  const uint8_t *p2;
  size_t plen2;
  if (nt_dgram_decode(again, n, &id2, &p2, &plen2) != 0 || id2 != id ||
      plen2 != 0) {
    abort();
  }
  return 0;
}
