/* Hole punching (RFC 5128 §3.3.1) as a schedule, free of I/O: both peers
 * send small probes to every candidate address of the other; a probe is
 * answered from the address it arrived at, and an answer proves the path
 * works both ways (as an ICE connectivity check does). */
#ifndef NT_PUNCH_H
#define NT_PUNCH_H

#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "codec/control.h" /* NT_PUNCH_NONCE_LEN, NT_PUNCH_MAX_CANDIDATES */

#define NT_PUNCH_PACKET_LEN 22

enum { NT_PUNCH_PROBE = 1, NT_PUNCH_REPLY = 2 };

typedef struct nt_punch {
  uint8_t nonce[NT_PUNCH_NONCE_LEN];
  nt_addr candidates[NT_PUNCH_MAX_CANDIDATES];
  size_t ncandidates;
  uint64_t start_ns, deadline_ns, next_ns;
  unsigned rounds;      /* probe rounds sent */
  unsigned probes_seen; /* probes received from the peer */
  unsigned replies_seen;
} nt_punch;

typedef void (*nt_punch_send_fn)(const uint8_t *packet, size_t len,
                                 const nt_addr *to, void *user_data);

void nt_punch_init(nt_punch *p, const uint8_t *nonce, const nt_addr *cands,
                   size_t ncands, uint64_t now_ns, uint64_t timeout_ns);

/* When nt_punch_on_expiry must run next (monotonic ns). */
uint64_t nt_punch_next_expiry(const nt_punch *p);

/* Sends the probes that are due. Returns 1 once the deadline has passed,
 * 0 otherwise. */
int nt_punch_on_expiry(nt_punch *p, uint64_t now_ns, nt_punch_send_fn send,
                       void *user_data);

/* Encodes a probe or reply into |buf| (NT_PUNCH_PACKET_LEN bytes). At 22
 * bytes it is shorter than any QUIC packet can be, so the endpoint never
 * confuses the two. */
size_t nt_punch_encode(uint8_t *buf, int type, const uint8_t *nonce);

/* Returns the type, or 0 when |buf| is not a punch packet. */
int nt_punch_decode(const uint8_t *buf, size_t len, uint8_t *nonce);

#endif
