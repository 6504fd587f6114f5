/* The broker's Introduction (natter.proto), checked and turned into the
 * plain nt_introduction the peer table takes. Client role only; kept
 * apart from client.c so that its fuzz target reaches the same checks. */
#ifndef NT_WIRE_INTRO_H
#define NT_WIRE_INTRO_H

#include "natter.pb-c.h"
#include "client/peer.h"

/* Bounds: the peer's name is a valid name (spec.c), its key exactly
 * NT_FINGERPRINT_LEN bytes, the nonce NT_PUNCH_NONCE_LEN, at most
 * NT_MAX_LOCAL_ADDRS local addresses, each with a valid length and a
 * non-zero port (others are dropped); an unknown NAT mapping is kept as
 * a number and reads "unknown". Returns 0, or NATTER_ERR_PROTOCOL. */
int nt_wire_introduction(nt_introduction *out, const Natter__Introduction *in);

#endif
