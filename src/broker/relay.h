/* The broker's relay: when two peers cannot punch a hole (symmetric NATs
 * on both sides, UDP blocked between them), their QUIC packets pass
 * through here, opaque. The QUIC connection inside stays the peers' own,
 * mutually authenticated with the keys the broker vouched for, so the
 * relay can neither read nor alter it undetected (doc/design.md,
 * "Security model").
 *
 * The relay has its own UDP socket (the broker's port + 2). It forwards
 * only on channels the broker opened for two clients it introduced, only
 * between the addresses those clients' own packets came from (each from
 * the IP address of its broker connection), never to an address a client
 * names. Every client has a byte rate and a byte total (doc/operations.md,
 * "Limits"); channels unused for NT_RELAY_IDLE_S are closed. */
#ifndef NT_RELAY_H
#define NT_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/addr.h"
#include "base/log.h"
#include "codec/relay_wire.h"

struct event_base;

typedef struct nt_relay nt_relay;

#define NT_RELAY_MAX_CHANNELS 1024 /* at once, on the whole broker */
#define NT_RELAY_MAX_PER_CLIENT 16 /* at once, per client name */
#define NT_RELAY_IDLE_S 60         /* a channel unused this long ends */

typedef struct nt_relay_config {
  nt_addr bind;      /* address and port of the relay socket */
  int dual_stack;    /* an unspecified |bind|: IPv4 and IPv6 (udpsock.h) */
  uint64_t rate;     /* bytes a second each client may relay (sent plus
                        received); packets above it are dropped */
  uint64_t total;    /* bytes each client may relay in all; 0: no cap */
  const nt_log *log; /* borrowed */
} nt_relay_config;

typedef struct nt_relay_stats {
  uint64_t rx, tx;       /* UDP payload bytes on the relay socket */
  uint64_t relayed;      /* bytes forwarded between peers */
  uint64_t channels;     /* open now */
  uint64_t dropped_rate; /* datagrams over a client's rate */
  uint64_t dropped;      /* no channel, wrong source, no peer address yet */
} nt_relay_stats;

/* Returns 0 and sets *prelay, or a negative NATTER_ERR_* with a reason in
 * |err|. */
int nt_relay_new(nt_relay **prelay, struct event_base *base,
                 const nt_relay_config *cfg, char *err, size_t errlen);
void nt_relay_free(nt_relay *relay);
uint16_t nt_relay_port(const nt_relay *relay);

/* Opens a channel between two clients the broker is introducing: |ip_a|
 * and |ip_b| are where their broker connections come from (only packets
 * from those IP addresses may bind a side). Fills the two tokens. Returns
 * 0, or NATTER_ERR_NOMEM / NATTER_ERR_INVALID when a limit is reached
 * (logged). */
int nt_relay_open(nt_relay *relay, const char *name_a,
                  const struct sockaddr *ip_a, const char *name_b,
                  const struct sockaddr *ip_b, uint8_t *token_a,
                  uint8_t *token_b);

/* The socket-free part of the relay, for tests and fuzzing. Input
 * handles |len| bytes at |data| (rewritten in place when forwarded) as a
 * datagram read at |now| (nt_monotonic_ns's clock) from |from|, sent to
 * our address |dst| (len 0: unknown), and sends what it answers or
 * forwards. Sweep closes the channels unused since |now| -
 * NT_RELAY_IDLE_S, as the relay's own timer does. */
void nt_relay_input(nt_relay *relay, uint8_t *data, size_t len,
                    const struct sockaddr *from, socklen_t fromlen,
                    const nt_addr *dst, uint64_t now);
void nt_relay_sweep(nt_relay *relay, uint64_t now);

void nt_relay_get_stats(const nt_relay *relay, nt_relay_stats *st);

#endif
