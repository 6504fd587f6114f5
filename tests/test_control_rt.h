/* A control message through the wire and back, for unit tests of what
 * rides in one: control_round_trip(&in, &out) == 0 when |in| encoded,
 * framed and decoded again into |out|. */
#ifndef NT_TEST_CONTROL_RT_H
#define NT_TEST_CONTROL_RT_H

#include <stddef.h>
#include <stdint.h>

#include "codec/control.h"

static inline int control_round_trip(const nt_control *in, nt_control *out) {
  static uint8_t frame[NT_CONTROL_FRAME_MAX];
  size_t hdr, body, len = nt_control_encode(frame, in);
  if (len == 0 || nt_wire_frame_peek(frame, len, &hdr, &body) != 1 ||
      hdr + body != len) {
    return -1;
  }
  return nt_control_decode(out, frame + hdr, body);
}

#endif
