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
 * names. Budgets belong to keys and source addresses, not names
 * (relay_budget.h): channels at once, a byte rate and a byte total per
 * window, each charged to the party that asked for the channel or sent
 * the bytes (doc/operations.md, "Limits"). A channel ends when either
 * client's broker session ends, or when either side has sent nothing for
 * NT_RELAY_IDLE_S. */
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
/* Channels open at once that one key, and one source address (IPv6: its
 * /64), asked for. */
#define NT_RELAY_MAX_PER_KEY 16
#define NT_RELAY_MAX_PER_ADDRESS 32
/* A channel ends when either side has sent nothing this long: a peer
 * that stopped talking stops receiving, whatever the other sends. */
#define NT_RELAY_IDLE_S 60
/* nt_relay_config.total counts bytes within this window (fixed: from an
 * account's first byte counted, then afresh). */
#define NT_RELAY_WINDOW_S 3600

typedef struct nt_relay_config {
  nt_addr bind;      /* address and port of the relay socket */
  int dual_stack;    /* an unspecified |bind|: IPv4 and IPv6 (udpsock.h) */
  uint64_t rate;     /* bytes a second each key, and each source
                        address, may send through the relay; packets
                        above it are dropped; 0: no cap */
  uint64_t total;    /* bytes each key, and each source address, may send
                        within NT_RELAY_WINDOW_S; past it the channel
                        closes; 0: no cap */
  const nt_log *log; /* borrowed */
} nt_relay_config;

typedef struct nt_relay_stats {
  uint64_t rx, tx;       /* UDP payload bytes on the relay socket */
  uint64_t relayed;      /* bytes forwarded between peers */
  uint64_t channels;     /* open now */
  uint64_t dropped_rate; /* datagrams over a key's or address's rate */
  uint64_t refused;      /* channels not opened: a limit was reached */
  uint64_t dropped;      /* no channel, wrong source, no peer address yet */
} nt_relay_stats;

/* Returns 0 and sets *prelay, or a negative NATTER_ERR_* with a reason in
 * |err|. */
int nt_relay_new(nt_relay **prelay, struct event_base *base,
                 const nt_relay_config *cfg, char *err, size_t errlen);
void nt_relay_free(nt_relay *relay);
uint16_t nt_relay_port(const nt_relay *relay);
/* The relay socket's address (its IP as configured, maybe unspecified,
 * and its port). */
const nt_addr *nt_relay_bind_addr(const nt_relay *relay);

/* One client of a channel, as the broker knows it. */
typedef struct nt_relay_party {
  const char *name;          /* for log lines */
  const uint8_t *key;        /* its key's fingerprint, NT_FINGERPRINT_LEN
                                bytes: its budget */
  const struct sockaddr *ip; /* its broker connection's address: only
                                packets from this IP may bind its side,
                                and this address's budget pays too */
  const void *session;       /* its broker session, as
                                nt_relay_close_session names it; NULL:
                                a client of another broker (the channel
                                ends when idle) */
} nt_relay_party;

/* Opens a channel between |requester| and the |peer| it asked for, which
 * the broker is introducing; the channel counts against the requester's
 * key and address (NT_RELAY_MAX_PER_*), never the peer's. Fills the two
 * tokens. Returns 0, or NATTER_ERR_NOMEM / NATTER_ERR_INVALID when a
 * limit is reached (logged, at most once a second per limit). */
int nt_relay_open(nt_relay *relay, const nt_relay_party *requester,
                  const nt_relay_party *peer, uint8_t *token_requester,
                  uint8_t *token_peer);

/* |session| ended (its client left the broker): every channel with a
 * side of it closes now, and both sides hear CLOSED. NULL |relay|: no-op. */
void nt_relay_close_session(nt_relay *relay, const void *session);

/* The sides of |from| belong to |to| from now on (a client's new session
 * that carries on the old one), and their packets must come from |ip|
 * (its broker connection moved); |from| may be |to|. */
void nt_relay_move_session(nt_relay *relay, const void *from, const void *to,
                           const struct sockaddr *ip);

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

/* The channel that |token| (either side's) names: 1 while it is open,
 * with the bytes it forwarded so far in *relayed; 0 once it is gone
 * (closed, idle, or never opened). NULL |relay|: 0. */
int nt_relay_channel_use(const nt_relay *relay, const uint8_t *token,
                         uint64_t *relayed);

/* What the key of fingerprint |fp| spends now (the dashboard): bytes in
 * its current window of |now| (0 once the window is over) and the
 * channels it asked for that are open. Returns 0 (key without an
 * account: both 0) and the caps in *rate and *total (0: none). */
int nt_relay_key_usage(const nt_relay *relay, const uint8_t *fp, uint64_t now,
                       uint64_t *used, unsigned *channels, uint64_t *rate,
                       uint64_t *total);

/* TCP fallback connections to the relay (quic/tcp_path.h): while |link|
 * is added, what the relay sends to its pseudo address goes over it; the
 * owner hands each datagram it reads to nt_relay_tcp_input, which handles
 * it as one from that address and sends what it forwards at once. The
 * link stays its owner's: remove it before freeing it (NULL |relay|:
 * remove is a no-op). */
struct nt_tcp_link;
int nt_relay_tcp_add(nt_relay *relay, struct nt_tcp_link *link);
void nt_relay_tcp_remove(nt_relay *relay, struct nt_tcp_link *link);
void nt_relay_tcp_input(nt_relay *relay, struct nt_tcp_link *link,
                        uint8_t *data, size_t len);

#endif
