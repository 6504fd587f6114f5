/* QUIC datagrams over a TCP stream (the TCP fallback, doc/design.md),
 * without I/O.
 *
 * A connection starts with an NT_TCPFRAME_PREAMBLE_LEN-byte preamble from
 * the connecting side:
 *
 *   "NATTER" (6 bytes), version 1, target (NT_TCPFRAME_TO_*)
 *
 * then, both ways, frames:
 *
 *   [length u16 big-endian, 1..NT_TCPFRAME_MAX][one whole datagram]
 *
 * A frame is exactly what one UDP datagram would carry (a QUIC packet, a
 * relay datagram or a NAT mapping probe). Everything here comes from the
 * network: the decoder bounds every length, and a zero length, a longer
 * one, a wrong magic, version or target is an error (the connection is
 * closed). */
#ifndef NT_TCPFRAME_H
#define NT_TCPFRAME_H

#include <stddef.h>
#include <stdint.h>

#define NT_TCPFRAME_HDR 2
/* The largest datagram: a relay header (17 bytes) and the largest QUIC
 * packet natter sends (a loopback one, 65507 bytes). */
#define NT_TCPFRAME_MAX 65524
#define NT_TCPFRAME_PREAMBLE_LEN 8
#define NT_TCPFRAME_VERSION 1

enum {
  NT_TCPFRAME_TO_ENDPOINT = 1, /* the broker's QUIC endpoint (PORT) */
  NT_TCPFRAME_TO_RELAY = 2,    /* the broker's relay (PORT+2) */
};

/* Writes the preamble for |target| into |out|. */
void nt_tcpframe_preamble(uint8_t out[NT_TCPFRAME_PREAMBLE_LEN], int target);

/* Reads a preamble: returns its target, or 0 when |in| is none of ours. */
int nt_tcpframe_preamble_decode(const uint8_t in[NT_TCPFRAME_PREAMBLE_LEN]);

/* Writes the header of a frame of |len| bytes (1..NT_TCPFRAME_MAX). */
void nt_tcpframe_header(uint8_t out[NT_TCPFRAME_HDR], size_t len);

#define NT_TCPFRAME_NEED_MORE 0
#define NT_TCPFRAME_ERR_LENGTH (-1) /* zero, or above NT_TCPFRAME_MAX */

/* Looks at the start of |buf| (|avail| bytes received so far). Returns 1
 * with the datagram's length in *len when a whole frame is there (the
 * datagram at buf + NT_TCPFRAME_HDR), NT_TCPFRAME_NEED_MORE (*len: the
 * datagram's length once the header is in, else 0), or
 * NT_TCPFRAME_ERR_LENGTH. */
int nt_tcpframe_peek(const uint8_t *buf, size_t avail, size_t *len);

#endif
