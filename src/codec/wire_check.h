/* CheckReport (natter.proto) <-> the plain nt_check_side the peer table
 * and the check's requester use. Kept apart from client.c and broker.c so
 * that the fuzz target reaches the very checks both roles apply. */
#ifndef NT_WIRE_CHECK_H
#define NT_WIRE_CHECK_H

#include "natter.pb-c.h"
#include "client/peer.h"

/* Bounds: the nonce exactly NT_PUNCH_NONCE_LEN bytes, an outcome of
 * CONNECTED, FAILED or REFUSED, at most NT_PUNCH_MAX_CANDIDATES probed
 * addresses (each with a valid length and port, others dropped), and,
 * with |need_peer| (broker -> requester), a valid peer name. An unknown
 * NAT mapping reads "unknown"; counts are taken as they are (32 bits).
 * Returns 0, or NATTER_ERR_PROTOCOL. */
int nt_wire_check_report(nt_check_side *out, const Natter__CheckReport *in,
                         int need_peer);

/* The storage a CheckReport encoded from an nt_check_side points into. */
typedef struct nt_wire_check_buf {
  Natter__CheckReport msg;
  Natter__Address probed[NT_PUNCH_MAX_CANDIDATES];
  Natter__Address *pprobed[NT_PUNCH_MAX_CANDIDATES];
  Natter__Address from;
  uint8_t ips[NT_PUNCH_MAX_CANDIDATES + 1][16];
} nt_wire_check_buf;

/* Fills |buf->msg| from |side| (the reporter's fields only); it points
 * into |buf| and |side|, which must outlive it. */
void nt_wire_check_encode(nt_wire_check_buf *buf, const nt_check_side *side);

#endif
