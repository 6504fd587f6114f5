/* Protobuf messages on streams: encode with a length prefix, decode from a
 * completed frame. Only the broker and client roles include this. */
#ifndef NT_WIRE_MSG_H
#define NT_WIRE_MSG_H

#include <protobuf-c/protobuf-c.h>

#include "quic/endpoint.h"
#include "natter.pb-c.h"
#include "codec/wire.h"

/* Queues |msg| with its length prefix on |stream|. Returns 0, or -1 when
 * the message is larger than NT_WIRE_MAX_MSG or the stream is closed. */
int nt_wire_write_msg(nt_stream *stream, const ProtobufCMessage *msg);

/* Address conversions; nt_wire_addr_to_sockaddr rejects bad lengths and
 * port 0. */
void nt_wire_addr_from_sockaddr(Natter__Address *out, uint8_t *ipbuf,
                                const struct sockaddr *sa);
int nt_wire_addr_to_sockaddr(nt_addr *out, const Natter__Address *in);

/* 1 when |s| (from the network) is at most |max| bytes of printable
 * ASCII. */
int nt_wire_string_ok(const char *s, size_t max);

#endif
