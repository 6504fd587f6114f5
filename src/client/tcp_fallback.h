/* The client's TCP fallback (doc/design.md, "TCP fallback"): when the
 * broker's UDP port has not answered within NT_TCP_FALLBACK_AFTER_MS, the
 * client also connects over TCP to the broker's host at its -broker-tcp
 * port, and the endpoint sends the broker's packets (and, once relayed,
 * the relay's) over that connection (quic/tcp_path.h). Meanwhile UDP is
 * probed every NT_TCP_FALLBACK_PROBE_S; when a probe is answered the TCP
 * connections close and the same QUIC connections carry on over UDP. */
#ifndef NT_TCP_FALLBACK_H
#define NT_TCP_FALLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"

struct natter_client;

#define NT_TCP_FALLBACK_AFTER_MS 3000
#define NT_TCP_FALLBACK_PROBE_S 10

/* |port| 0: no fallback (every call below is then a no-op). Returns 0 or
 * NATTER_ERR_NOMEM. */
int nt_tcp_fallback_new(struct natter_client *c, int port);
void nt_tcp_fallback_free(struct natter_client *c);

/* A connection to the broker starts / finished its handshake. */
void nt_tcp_fallback_on_connect(struct natter_client *c);
void nt_tcp_fallback_on_established(struct natter_client *c);

/* The broker connection closed: 1 when the fallback closed it itself (to
 * start again over TCP: reconnect at once), 2 when a TCP connection is
 * being tried (retry rather than give up), 0 otherwise. */
int nt_tcp_fallback_on_closed(struct natter_client *c);

/* An introduction named the relay at |relay|: while on TCP, the relay is
 * reached over TCP too. */
void nt_tcp_fallback_on_relay(struct natter_client *c, const nt_addr *relay);

/* A NAT mapping reply with |nonce| came over UDP: returns 1 when it
 * answered our UDP probe (then UDP is used again), 0 otherwise. */
int nt_tcp_fallback_probe_reply(struct natter_client *c, const uint8_t *nonce);

/* The TCP port tried, 0: none (-broker-tcp 0). */
unsigned nt_tcp_fallback_port(const struct natter_client *c);

/* 1 while the broker is reached over TCP. */
int nt_tcp_fallback_active(const struct natter_client *c);

#endif
