/* The relay's datagram header, shared by the broker's relay (relay.c) and
 * the client's endpoint, which wraps and unwraps relayed QUIC packets.
 *
 *   byte 0       type: NT_RELAY_DATA, NT_RELAY_BIND or NT_RELAY_CLOSED
 *   bytes 1..16  the channel token of the client the datagram is from
 *                (client -> relay) or for (relay -> client)
 *   bytes 17..   DATA: one QUIC datagram, opaque to the relay;
 *                CLOSED: one reason byte (NT_RELAY_CLOSED_*)
 *
 * A token is 16 random bytes the broker gives one client, over its
 * authenticated control stream, for one channel to one peer it
 * introduced: it names the channel and the side, and only that client and
 * the broker know it. The relay never learns anything else: the QUIC
 * packets inside are end-to-end encrypted between the peers. */
#ifndef NT_RELAY_WIRE_H
#define NT_RELAY_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NT_RELAY_TOKEN_LEN 16
#define NT_RELAY_HDR_LEN (1 + NT_RELAY_TOKEN_LEN)

enum {
  NT_RELAY_DATA = 0x01,   /* a relayed QUIC datagram follows */
  NT_RELAY_BIND = 0x02,   /* "this is where I am" (and its echo) */
  NT_RELAY_CLOSED = 0x03, /* the relay ended the channel: reason byte */
};

enum {
  NT_RELAY_CLOSED_TOTAL = 1,   /* a client used up its byte budget */
  NT_RELAY_CLOSED_UNKNOWN = 2, /* no such channel (expired) */
  NT_RELAY_CLOSED_LEFT = 3,    /* a client of the channel left the broker */
};

/* Writes a header into |buf| (NT_RELAY_HDR_LEN bytes). */
static inline void nt_relay_hdr_encode(uint8_t *buf, uint8_t type,
                                       const uint8_t *token) {
  buf[0] = type;
  memcpy(buf + 1, token, NT_RELAY_TOKEN_LEN);
}

/* Returns the type and points |*token| into |buf|, or 0 when |buf| is no
 * relay datagram. */
static inline int nt_relay_hdr_decode(const uint8_t *buf, size_t len,
                                      const uint8_t **token) {
  if (len < NT_RELAY_HDR_LEN || buf[0] < NT_RELAY_DATA ||
      buf[0] > NT_RELAY_CLOSED) {
    return 0;
  }
  *token = buf + 1;
  return buf[0];
}

#endif
