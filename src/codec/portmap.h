/* Port mapping requests to the default gateway, as pure formats: PCP MAP
 * (RFC 6887 §7, §11) and NAT-PMP (RFC 6886 §3.2, §3.3), both to UDP port
 * NT_PORTMAP_PORT of the gateway. Only what natter asks is encoded (a MAP
 * of one UDP port over IPv4, NAT-PMP's external address and UDP mapping);
 * decoders accept only an answer to that question: exact lengths, the
 * right version, opcode with the response bit, and (PCP) the nonce, the
 * protocol and the internal port we asked for. What an answer claims (its
 * external address, its lifetime) is checked by the caller
 * (client/portmap.c), which alone knows what it asked. */
#ifndef NT_PORTMAP_CODEC_H
#define NT_PORTMAP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define NT_PORTMAP_PORT 5351

/* How a mapping was obtained; the values are the protocol's
 * PortmapMethod. */
typedef enum nt_portmap_method {
  NT_PORTMAP_NONE = 0,
  NT_PORTMAP_PCP = 1,
  NT_PORTMAP_NATPMP = 2,
  NT_PORTMAP_UPNP = 3 /* UPnP IGD (codec/upnp.h) */
} nt_portmap_method;

/* "PCP", "NAT-PMP", "UPnP"; "" for anything else. */
const char *nt_portmap_method_name(int method);

/* Limits. A PCP response is at most 1100 bytes (RFC 6887 §7), a MAP
 * response without options exactly NT_PCP_MAP_LEN; options in a response
 * are ignored but bounded by that size. */
#define NT_PCP_NONCE_LEN 12
#define NT_PCP_MAP_LEN 60 /* header 24 + MAP opcode data 36 */
#define NT_PCP_MAX_LEN 1100
#define NT_NATPMP_ADDR_REQ_LEN 2
#define NT_NATPMP_ADDR_RESP_LEN 12
#define NT_NATPMP_MAP_REQ_LEN 12
#define NT_NATPMP_MAP_RESP_LEN 16

/* Result codes (PCP §7.4; NAT-PMP uses 0..5 of its own, same meaning for
 * 0 = success). */
#define NT_PORTMAP_SUCCESS 0

/* A PCP MAP request for UDP |internal_port| from |client_ip| (4 bytes,
 * IPv4; carried as an IPv4-mapped IPv6 address), suggesting
 * |suggested_port| (0: any) and asking |lifetime_s| (0: delete). Writes
 * NT_PCP_MAP_LEN bytes into |buf| and returns that. */
size_t nt_pcp_encode_map(uint8_t *buf, const uint8_t nonce[NT_PCP_NONCE_LEN],
                         const uint8_t client_ip[4], uint16_t internal_port,
                         uint16_t suggested_port, uint32_t lifetime_s);

/* A decoded answer. */
typedef struct nt_portmap_answer {
  int result;             /* NT_PORTMAP_SUCCESS or the gateway's code */
  uint32_t lifetime_s;    /* as granted */
  uint32_t epoch_s;       /* the gateway's epoch (a restart resets it) */
  uint16_t internal_port; /* PCP and NAT-PMP map answers */
  uint16_t external_port; /* map answers */
  uint8_t external_ip[4]; /* PCP map answer, NAT-PMP address answer */
  int external_ipv4;      /* PCP: the external address is IPv4-mapped */
} nt_portmap_answer;

/* Decodes a PCP MAP response to the request with |nonce| for UDP
 * |internal_port|. Returns 1 and fills |out| when it is one (any result
 * code), else 0. */
int nt_pcp_decode_map(const uint8_t *buf, size_t len,
                      const uint8_t nonce[NT_PCP_NONCE_LEN],
                      uint16_t internal_port, nt_portmap_answer *out);

/* A PCP ANNOUNCE response (RFC 6887 §14.1.3: a gateway that restarted
 * may send one, unasked, to the clients it knows): the 24-byte header,
 * version 2, opcode ANNOUNCE with the response bit, success. Returns 1
 * with its epoch, else 0. */
int nt_pcp_decode_announce(const uint8_t *buf, size_t len, uint32_t *epoch);

/* NAT-PMP: the external address request (NT_NATPMP_ADDR_REQ_LEN bytes)
 * and the UDP mapping request (NT_NATPMP_MAP_REQ_LEN). Return the
 * length written. */
size_t nt_natpmp_encode_addr(uint8_t *buf);
size_t nt_natpmp_encode_map(uint8_t *buf, uint16_t internal_port,
                            uint16_t suggested_port, uint32_t lifetime_s);

/* Decodes a NAT-PMP external address response (fills result, epoch,
 * external_ip). Returns 1 when it is one, else 0. */
int nt_natpmp_decode_addr(const uint8_t *buf, size_t len,
                          nt_portmap_answer *out);

/* Decodes a NAT-PMP UDP mapping response for |internal_port|. Returns 1
 * when it is one, else 0. */
int nt_natpmp_decode_map(const uint8_t *buf, size_t len, uint16_t internal_port,
                         nt_portmap_answer *out);

/* 1 when |buf| may be an answer from a port mapping gateway (PCP or
 * NAT-PMP version byte, response bit set): for telling them apart from
 * other datagrams on the same socket. */
int nt_portmap_is_answer(const uint8_t *buf, size_t len);

/* The default IPv4 gateway in the text of /proc/net/route (|len|
 * bytes, at most NT_ROUTE_TEXT_MAX are read): the first up route to
 * 0.0.0.0/0 through a gateway. Returns 1 and the address in |gw| (network
 * order), else 0. */
#define NT_ROUTE_TEXT_MAX 65536
int nt_route_default_gateway(const char *text, size_t len, uint8_t gw[4]);

#endif
