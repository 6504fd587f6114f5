/* libFuzzer target: what a gateway (or anyone on the LAN spoofing it)
 * sends to our socket from port 5351 (src/codec/portmap.c): PCP MAP and
 * NAT-PMP answers, decoded against a fixed question, and the claims of a
 * decoded success checked as the client checks them; plus the text of
 * /proc/net/route. A decoded answer must be one to our question. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/portmap.h"
#include "codec/portmap.h"

static const uint8_t nonce[NT_PCP_NONCE_LEN] = {1, 2, 3, 4,  5,  6,
                                                7, 8, 9, 10, 11, 12};
static const uint8_t me[4] = {198, 18, 1, 10}, gw[4] = {198, 18, 1, 1};
#define PORT 40000

static void claims(const nt_portmap_answer *a, const uint8_t ip[4]) {
  nt_addr out;
  int r = nt_portmap_answer_check(a->lifetime_s, ip, a->external_port, me, gw,
                                  &out);
  if (r == NT_PORTMAP_USABLE &&
      (out.len == 0 || a->lifetime_s < NT_PORTMAP_MIN_LIFETIME_S ||
       a->external_port == 0 || memcmp(ip, me, 4) == 0 ||
       memcmp(ip, gw, 4) == 0)) {
    abort();
  }
  if (r != NT_PORTMAP_USABLE && out.len != 0) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nt_portmap_answer a;
  if (nt_pcp_decode_map(data, size, nonce, PORT, &a)) {
    if (size < NT_PCP_MAP_LEN || size > NT_PCP_MAX_LEN || data[0] != 2 ||
        data[1] != 0x81 || memcmp(data + 24, nonce, NT_PCP_NONCE_LEN) != 0 ||
        a.internal_port != PORT || !nt_portmap_is_answer(data, size)) {
      abort();
    }
    if (a.result == NT_PORTMAP_SUCCESS && a.external_ipv4) {
      claims(&a, a.external_ip);
    }
  }
  if (nt_natpmp_decode_addr(data, size, &a)) {
    if ((size != NT_NATPMP_ADDR_RESP_LEN && size != 8) || data[1] != 0x80 ||
        (a.result == NT_PORTMAP_SUCCESS && !a.external_ipv4)) {
      abort();
    }
  }
  if (nt_natpmp_decode_map(data, size, PORT, &a)) {
    if ((size != NT_NATPMP_MAP_RESP_LEN && size != 8) || data[1] != 0x81 ||
        (size == 8 && a.result == NT_PORTMAP_SUCCESS)) {
      abort();
    }
    if (a.result == NT_PORTMAP_SUCCESS) {
      const uint8_t ip[4] = {203, 0, 113, 1};
      claims(&a, ip);
    }
  }
  uint32_t epoch;
  if (nt_pcp_decode_announce(data, size, &epoch) &&
      (size < 24 || data[0] != 2 || data[1] != 0x80 || data[3] != 0)) {
    abort();
  }
  uint8_t route_gw[4];
  if (nt_route_default_gateway((const char *)data, size, route_gw) &&
      memcmp(route_gw, "\0\0\0\0", 4) == 0) {
    abort(); /* a gateway of 0.0.0.0 is no gateway */
  }
  return 0;
}
