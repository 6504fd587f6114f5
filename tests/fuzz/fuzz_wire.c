/* libFuzzer target: a control or tunnel stream as a hostile peer, client
 * or broker sends it: the length-prefixed framing (src/codec/wire.c) fed in
 * fuzzer-chosen pieces, and every complete frame unpacked as each message
 * a receiver may expect there (protobuf-c, bounded by NT_WIRE_MAX_MSG). */
#include <stdint.h>
#include <stdlib.h>

#include "natter.pb-c.h"
#include "codec/wire.h"

static int on_frame(const uint8_t *body, size_t len, void *ud) {
  (void)ud;
  if (len > NT_WIRE_MAX_MSG) {
    abort();
  }
  Natter__Control *ctl = natter__control__unpack(NULL, len, body);
  natter__control__free_unpacked(ctl, NULL);
  Natter__StreamOpen *open = natter__stream_open__unpack(NULL, len, body);
  natter__stream_open__free_unpacked(open, NULL);
  Natter__StreamOpenResult *res =
      natter__stream_open_result__unpack(NULL, len, body);
  natter__stream_open_result__free_unpacked(res, NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static nt_wire_reader reader; /* large; reset for every input */
  if (size < 1) {
    return 0;
  }
  size_t step = (size_t)data[0] * 64 + 1;
  data++;
  size--;
  nt_wire_reader_reset(&reader);
  while (size > 0) {
    size_t chunk = size < step ? size : step;
    if (nt_wire_reader_each(&reader, data, chunk, on_frame, NULL) < 0) {
      break;
    }
    data += chunk;
    size -= chunk;
  }
  return 0;
}
