/* Bookkeeping for the limits that keep one host from holding a server:
 * connections per source address, a token bucket per client for message
 * rates, and which reported addresses may become probe targets. Pure: no
 * I/O and no clock of its own (callers pass the time). */
#ifndef NT_ADMISSION_H
#define NT_ADMISSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "base/hashmap.h"

struct nt_source;

/* Connections per source IP address (the port is not part of it: one host
 * has many ports). */
typedef struct nt_sources {
  nt_hashmap map; /* raw IP bytes -> nt_source */
  LIST_HEAD(, nt_source) all;
} nt_sources;

void nt_sources_init(nt_sources *s, const uint8_t seed[NT_HASHMAP_SEED_LEN]);
void nt_sources_clear(nt_sources *s);
/* Connections counted for |sa|'s address now. */
unsigned nt_sources_count(const nt_sources *s, const struct sockaddr *sa);
/* Counts one more; returns 0 or NATTER_ERR_NOMEM. */
int nt_sources_add(nt_sources *s, const struct sockaddr *sa);
/* Counts one less (the entry goes at zero). */
void nt_sources_remove(nt_sources *s, const struct sockaddr *sa);
size_t nt_sources_addresses(const nt_sources *s);

/* A token bucket: |rate| tokens per second, at most |burst| saved. */
typedef struct nt_rate {
  double tokens;
  uint64_t last_ns;
} nt_rate;

void nt_rate_init(nt_rate *r, unsigned burst, uint64_t now_ns);
/* Takes one token: 1 when there was one, 0 when the rate is exceeded. */
int nt_rate_take(nt_rate *r, unsigned rate, unsigned burst, uint64_t now_ns);

/* Whether |cand|, an address a client reports as its own, may be handed
 * to peers as a candidate to probe: IPv4 or IPv6 (either, whatever family
 * the client reached the broker with: a dual-stack peer can probe both),
 * with a port, not unspecified, multicast, broadcast, link-local or
 * v4-mapped, and loopback only when |allow_loopback| (a broker that itself
 * serves on loopback). */
int nt_candidate_acceptable(const struct sockaddr *cand, int allow_loopback);

#endif
