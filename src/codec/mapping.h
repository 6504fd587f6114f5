/* NAT mapping checks (after RFC 5780 §4.3, much reduced): the broker
 * answers a raw probe on a second UDP port with the address it came from.
 * If that differs from the address the broker's main port sees, the
 * client's NAT maps per destination (symmetric) and hole punching toward a
 * filtering peer cannot work. Packets stay under 34 bytes so the endpoint
 * never takes them for QUIC. */
#ifndef NT_MAPPING_H
#define NT_MAPPING_H

#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "natter.h"

/* How a NAT maps a UDP socket (RFC 4787 §4.1); the values are the
 * protocol's NatMapping. */
typedef enum nt_nat_mapping {
  NT_MAPPING_UNKNOWN = 0,
  NT_MAPPING_ENDPOINT_INDEPENDENT = 1,
  NT_MAPPING_PER_DESTINATION = 2 /* symmetric: a new port per destination */
} nt_nat_mapping;

/* "symmetric (a new public port per destination)" etc., for messages; any
 * other value (from the network) reads "unknown". */
const char *nt_mapping_name(int mapping);

/* The public name of a mapping (natter.h), for status, metrics and checks;
 * anything not known reads NATTER_NAT_MAPPING_UNKNOWN. */
natter_nat_mapping nt_mapping_to_public(int mapping);

#define NT_MAPPING_NONCE_LEN 8
#define NT_MAPPING_REPLY_MAX 33
/* A request is padded to the longest reply, so the check port never
 * answers more bytes than it was sent (no amplification). */
#define NT_MAPPING_REQUEST_LEN NT_MAPPING_REPLY_MAX

/* Writes a request into |buf| (NT_MAPPING_REQUEST_LEN bytes). */
size_t nt_mapping_encode_request(uint8_t *buf, const uint8_t *nonce);

/* Returns 1 and the nonce when |buf| is a request, else 0. */
int nt_mapping_decode_request(const uint8_t *buf, size_t len,
                              uint8_t *nonce);

/* Writes a reply telling |seen| into |buf| (NT_MAPPING_REPLY_MAX bytes);
 * returns its length, or 0 for an address family it cannot carry. */
size_t nt_mapping_encode_reply(uint8_t *buf, const uint8_t *nonce,
                               const struct sockaddr *seen);

/* Returns 1 with the nonce and address when |buf| is a reply, else 0. */
int nt_mapping_decode_reply(const uint8_t *buf, size_t len, uint8_t *nonce,
                            nt_addr *seen);

#endif
