#include "codec/wire_pb.h"

#include <string.h>

size_t nt_wire_pack_frame(uint8_t *out, const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > NT_WIRE_MAX_MSG) {
    return 0;
  }
  size_t hdr = nt_wire_frame_header(out, len);
  if (hdr == 0) {
    return 0;
  }
  protobuf_c_message_pack(msg, out + hdr);
  return hdr + len;
}

void nt_wire_addr_from_nt(Natter__Address *out, uint8_t ipbuf[16],
                          const nt_addr *in) {
  natter__address__init(out);
  if (!in->len) {
    return;
  }
  const struct sockaddr *sa = (const struct sockaddr *)&in->ss;
  size_t iplen;
  const uint8_t *ip = nt_addr_raw(sa, &iplen);
  if (ip) {
    memcpy(ipbuf, ip, iplen);
    out->ip.data = ipbuf;
    out->ip.len = iplen;
  }
  out->port = nt_addr_port(sa);
}

int nt_wire_addr_to_nt(nt_addr *out, const Natter__Address *in) {
  if (!in || in->port == 0 || in->port > 65535) {
    return -1;
  }
  return nt_addr_from_raw(out, in->ip.data, in->ip.len, (uint16_t)in->port);
}

int nt_wire_string_ok(const char *s, size_t max) {
  size_t n = 0;
  if (!s) {
    return 0;
  }
  for (; s[n]; n++) {
    if (n >= max || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e) {
      return 0;
    }
  }
  return 1;
}
