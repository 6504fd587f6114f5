/* The QUIC DATAGRAM frames (RFC 9221) that carry forwarded UDP between
 * peers (doc/design.md, "UDP flows"): the flow's stream id as a QUIC
 * variable-length integer (RFC 9000 §16), then one UDP payload, whole.
 * The stream is the bidirectional one whose StreamOpen opened the flow;
 * both peers know it by the same id. Encoding and decoding only. */
#ifndef NT_DGRAM_H
#define NT_DGRAM_H

#include <stddef.h>
#include <stdint.h>

/* The largest UDP payload (IPv4: 65535 - 8 - 20): what a local socket can
 * hand us, and the most a datagram carries. */
#define NT_DGRAM_MAX_PAYLOAD 65507
/* A varint is 1, 2, 4 or 8 bytes. */
#define NT_DGRAM_MAX_HDR 8
#define NT_DGRAM_MAX (NT_DGRAM_MAX_HDR + NT_DGRAM_MAX_PAYLOAD)
/* Stream ids are 62-bit (RFC 9000 §2.1). */
#define NT_DGRAM_MAX_STREAM_ID ((UINT64_C(1) << 62) - 1)

/* Bytes the header for |stream_id| takes (1..8), 0 for an id above
 * NT_DGRAM_MAX_STREAM_ID. */
size_t nt_dgram_header_len(uint64_t stream_id);

/* Writes the header for |stream_id| into |out| (NT_DGRAM_MAX_HDR bytes).
 * Returns its length, or 0 for an invalid id. The payload follows. */
size_t nt_dgram_header(uint8_t *out, uint64_t stream_id);

/* Parses a received datagram: sets *stream_id and the payload's place.
 * Returns 0, or -1 when it is empty, its varint is cut short, the id is
 * not a bidirectional stream's, or the payload exceeds
 * NT_DGRAM_MAX_PAYLOAD. An empty payload is valid (so is UDP's). */
int nt_dgram_decode(const uint8_t *data, size_t len, uint64_t *stream_id,
                    const uint8_t **payload, size_t *payloadlen);

#endif
