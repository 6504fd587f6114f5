#include "codec/wire_msg.h"

#include <string.h>

int nt_wire_write_msg(nt_stream *stream, const ProtobufCMessage *msg) {
  uint8_t buf[NT_WIRE_MAX_HDR + NT_WIRE_MAX_MSG];
  size_t len = protobuf_c_message_get_packed_size(msg);

  if (len > NT_WIRE_MAX_MSG) {
    return -1;
  }
  size_t hdr = nt_wire_frame_header(buf, len);
  if (hdr == 0) {
    return -1;
  }
  protobuf_c_message_pack(msg, buf + hdr);
  return nt_stream_write(stream, buf, hdr + len);
}

void nt_wire_addr_from_sockaddr(Natter__Address *out, uint8_t *ipbuf,
                                const struct sockaddr *sa) {
  size_t iplen;
  const uint8_t *ip = nt_addr_raw(sa, &iplen);
  natter__address__init(out);
  if (ip) {
    memcpy(ipbuf, ip, iplen);
    out->ip.data = ipbuf;
    out->ip.len = iplen;
  }
  out->port = nt_addr_port(sa);
}

int nt_wire_addr_to_sockaddr(nt_addr *out, const Natter__Address *in) {
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
