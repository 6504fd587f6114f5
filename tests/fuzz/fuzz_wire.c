/* libFuzzer target: a control or tunnel stream as a hostile peer, client
 * or broker sends it: the length-prefixed framing (src/codec/wire.c) fed
 * in fuzzer-chosen pieces, and every complete frame decoded as each
 * message a receiver may expect there, by the decoders the roles use
 * (codec/control.h, codec/stream_header.h). */
#include <stdint.h>
#include <stdlib.h>

#include "codec/control.h"
#include "codec/stream_header.h"
#include "codec/wire.h"

static int on_frame(const uint8_t *body, size_t len, void *ud) {
  (void)ud;
  if (len > NT_WIRE_MAX_MSG) {
    abort();
  }
  static nt_control ctl; /* large: off the stack */
  nt_control_decode(&ctl, body, len);
  nt_open_request req;
  if (nt_open_request_decode(&req, body, len) == 0) {
    nt_open_request_clear(&req);
  }
  int error;
  char message[NT_OPEN_MAX_MESSAGE + 1];
  nt_open_result_decode(body, len, &error, message, sizeof(message));
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
