/* UPnP IGD port mapping (issue 26), asked by client/portmap.c when the
 * gateway answers neither PCP nor NAT-PMP: SSDP, HTTP and SOAP of our
 * own on the event loop (no thread, no blocking call except the bounded
 * deletion in nt_upnp_free). Formats are in codec/upnp.h.
 *
 * Flow: an M-SEARCH for InternetGatewayDevice :1 and :2 to
 * 239.255.255.250:1900 from a socket bound to our LAN address (sent
 * NT_UPNP_SEARCH_TRIES times, NT_UPNP_SEARCH_WAIT_MS apart); the first
 * answer from the default gateway whose LOCATION names the gateway
 * itself is taken (others are ignored: anyone on the LAN can answer, and
 * must not aim us at another host); its description is fetched, the
 * WANIPConnection (or WANPPPConnection) control URL found (again only at
 * the gateway), then GetExternalIPAddress and AddPortMapping (UDP, our
 * port, our LAN address, a lease of NT_PORTMAP_LIFETIME_S). Each HTTP
 * exchange is one connection, at most NT_HTTP_RESPONSE_MAX bytes read,
 * within NT_UPNP_HTTP_TIMEOUT_MS. A ConflictInMappingEntry (718) tries
 * another external port, up to NT_UPNP_CONFLICT_TRIES times; an IGD that
 * only does permanent leases (725) is asked again with lease 0, and such
 * a mapping is deleted on exit like any other. An external address that
 * is missing or not public unicast (miniupnpd on a reserved WAN address
 * answers "") ends it: no mapping is asked for, one log line says why. */
#ifndef NT_UPNP_H
#define NT_UPNP_H

#include <event2/event.h>
#include <stdint.h>

#include "base/log.h"

#define NT_UPNP_SEARCH_TRIES 3
#define NT_UPNP_SEARCH_WAIT_MS 1000 /* between searches; as long after */
#define NT_UPNP_HTTP_TIMEOUT_MS 3000
#define NT_UPNP_CONFLICT_TRIES 3
#define NT_UPNP_DELETE_WAIT_MS 1000 /* nt_upnp_free's bound */

typedef struct nt_upnp nt_upnp;

/* What came of asking (nt_upnp_env.result). */
enum {
  NT_UPNP_MAPPED = 1,    /* ip, port, lease_s (0: permanent) */
  NT_UPNP_NO_ANSWER = 2, /* no IGD answered the search */
  NT_UPNP_FAILED = 3     /* an IGD, but no mapping: |why| */
};

typedef struct nt_upnp_env {
  struct event_base *base;
  const nt_log *log;
  uint8_t gw_ip[4];    /* the default gateway */
  uint8_t local_ip[4]; /* our address toward it */
  uint16_t port;       /* our UDP port: internal, and first external */
  /* Called once per nt_upnp_new or nt_upnp_renew. */
  void (*result)(void *user_data, int what, const uint8_t ip[4], uint16_t port,
                 uint32_t lease_s, const char *why);
  void *user_data;
} nt_upnp_env;

/* Starts the search. Returns 0 with *pu set, or NATTER_ERR_NOMEM /
 * NATTER_ERR_SOCKET (no socket). */
int nt_upnp_new(nt_upnp **pu, const nt_upnp_env *env);

/* Renews a mapping made (its external address asked again, then the same
 * external port mapped again); the result callback says how it went. */
void nt_upnp_renew(nt_upnp *u);

/* Deletes a mapping held (DeletePortMapping, waiting at most
 * NT_UPNP_DELETE_WAIT_MS: this blocks) and frees. NULL is fine. */
void nt_upnp_free(nt_upnp *u);

#endif
