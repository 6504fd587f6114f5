/* Protobuf messages in frames, and the small conversions every decoder
 * in codec/ shares. Only codec/ includes this: no protobuf type leaves
 * it (the roles see control.h and stream_header.h). */
#ifndef NT_WIRE_PB_H
#define NT_WIRE_PB_H

#include <protobuf-c/protobuf-c.h>

#include "base/addr.h"
#include "codec/wire.h"
#include "natter.pb-c.h"

/* Packs |msg| with its length prefix into |out| (NT_WIRE_MAX_HDR +
 * NT_WIRE_MAX_MSG bytes). Returns the frame's size, or 0 when the
 * message is longer than NT_WIRE_MAX_MSG. */
size_t nt_wire_pack_frame(uint8_t *out, const ProtobufCMessage *msg);

/* Address conversions. nt_wire_addr_from_nt leaves |out| empty (no IP,
 * port 0) for an address of len 0; nt_wire_addr_to_nt rejects a missing
 * address, an IP of a length other than 4 or 16 and a port outside
 * 1..65535. */
void nt_wire_addr_from_nt(Natter__Address *out, uint8_t ipbuf[16],
                          const nt_addr *in);
int nt_wire_addr_to_nt(nt_addr *out, const Natter__Address *in);

/* 1 when |s| (from the network) is at most |max| bytes of printable
 * ASCII. */
int nt_wire_string_ok(const char *s, size_t max);

#endif
