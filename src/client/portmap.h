/* Asks the default gateway to map our UDP port (issue 26): PCP (RFC 6887)
 * first, then NAT-PMP (RFC 6886), from the endpoint's own socket to the
 * gateway's port 5351, on the event loop; when neither answered at all,
 * UPnP IGD (client/upnp.h), which keeps its own schedule. A mapped external
 * address is as good as a public address: a peer behind a symmetric NAT reaches
 * us there, so two symmetric NATs that both map need no relay.
 *
 * What is trusted: only answers from the gateway's address and port,
 * matching our question (PCP nonce, opcode, our internal port), with a
 * lifetime of at least NT_PORTMAP_MIN_LIFETIME_S and an external address
 * that is a public unicast IPv4 address other than our own or the
 * gateway's. Anything else is dropped and changes nothing. The caller
 * offers the mapping to peers only when its IP address is the one the
 * broker sees us at (else a NAT beyond the gateway makes it useless).
 *
 * Schedule: each protocol is asked NT_PORTMAP_TRIES times, 250 ms after
 * the first try then doubling (RFC 6886 §3.1, capped); no answer from
 * either and we give up with one log line. A mapping is renewed at half
 * its lifetime (the same tries); a renewal not answered is tried again
 * (nt_portmap_retry_ms) until the mapping runs out, then dropped; a
 * refusal drops it. An answer whose epoch shows that the gateway lost its
 * state (nt_portmap_epoch_ok) makes us map again at once. Freeing
 * deletes it (lifetime 0, one datagram; UPnP: DeletePortMapping, a
 * bounded wait). */
#ifndef NT_PORTMAP_H
#define NT_PORTMAP_H

#include <event2/event.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/log.h"
#include "quic/endpoint.h"

#define NT_PORTMAP_LIFETIME_S 3600 /* asked for */
#define NT_PORTMAP_MIN_LIFETIME_S 60
#define NT_PORTMAP_TRIES 4
#define NT_PORTMAP_FIRST_WAIT_MS 250

typedef struct nt_portmap nt_portmap;

/* What a successful answer claims, checked (pure): a lifetime of at least
 * NT_PORTMAP_MIN_LIFETIME_S, and |ip|:|port| public unicast IPv4
 * (nt_path_scope_of: global), port not 0, neither |local_ip| nor
 * |gw_ip|. Returns NT_PORTMAP_USABLE with the address in |out|, or why
 * not (|out| len 0). */
enum {
  NT_PORTMAP_USABLE = 0,
  NT_PORTMAP_BAD_LIFETIME = 1,
  NT_PORTMAP_BAD_ADDRESS = 2
};
int nt_portmap_answer_check(uint32_t lifetime_s, const uint8_t ip[4],
                            uint16_t port, const uint8_t local_ip[4],
                            const uint8_t gw_ip[4], nt_addr *out);

/* A renewal that got no answer is tried again at half the time the
 * mapping has left, as long as at least NT_PORTMAP_RETRY_MIN_S are left
 * (pure): returns the wait in ms, or 0 to give the mapping up. */
#define NT_PORTMAP_RETRY_MIN_S 10
uint64_t nt_portmap_retry_ms(uint64_t now_ns, uint64_t expires_ns);

/* A gateway's epoch (PCP §8.5, NAT-PMP §3.6), |epoch| seen at |now_ns|
 * after |prev_epoch| at |prev_ns|: 1 when it is consistent with the time
 * gone by (it may not go back more than 1 s, nor run more than 1/16 plus
 * 2 s off our clock), 0 when the gateway lost its state (a restart):
 * its mappings, ours too, are gone. */
int nt_portmap_epoch_ok(uint32_t prev_epoch, uint64_t prev_ns, uint32_t epoch,
                        uint64_t now_ns);

typedef struct nt_portmap_env {
  struct event_base *base;
  const nt_log *log;
  nt_endpoint *ep;
  /* The mapping was made, changed or lost, or asking gave up
   * (nt_portmap_get says which). */
  void (*changed)(void *user_data);
  void *user_data;
} nt_portmap_env;

/* Finds the gateway (/proc/net/route) and starts asking (when there is
 * no IPv4 default gateway: logged at debug, nothing asked). Returns 0
 * with *ppm set, or NATTER_ERR_NOMEM. */
int nt_portmap_new(nt_portmap **ppm, const nt_portmap_env *env);

/* At each check-in with the broker (a new network, perhaps): when the
 * default gateway or our address toward it changed, the mapping is
 * forgotten and the new gateway asked; when the last asking gave up, the
 * gateway is asked again. Nothing while asking or renewing, or while the
 * mapping holds on the same gateway. */
void nt_portmap_recheck(nt_portmap *pm);

/* Deletes a mapping we hold (one request, lifetime 0) and frees. */
void nt_portmap_free(nt_portmap *pm);

/* A datagram on the endpoint's socket: returns 1 when it came from the
 * gateway's port (handled or dropped), 0 to let others have it. */
int nt_portmap_on_datagram(nt_portmap *pm, const uint8_t *data, size_t len,
                           const struct sockaddr *from);

/* 1 when asking is over for now: mapped, given up, or nothing to ask
 * (NULL). */
int nt_portmap_settled(const nt_portmap *pm);

/* The mapping now: returns its nt_portmap_method and the external
 * address in |external|, or NT_PORTMAP_NONE (|external| len 0). */
int nt_portmap_get(const nt_portmap *pm, nt_addr *external);

#endif
