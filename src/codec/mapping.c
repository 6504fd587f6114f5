#include "codec/mapping.h"

#include <string.h>

const char *nt_mapping_name(int mapping) {
  switch (mapping) {
  case NT_MAPPING_ENDPOINT_INDEPENDENT:
    return "endpoint-independent (one public port for every destination)";
  case NT_MAPPING_PER_DESTINATION:
    return "symmetric (a new public port per destination)";
  default:
    return "unknown";
  }
}

natter_nat_mapping nt_mapping_to_public(int mapping) {
  switch (mapping) {
  case NT_MAPPING_ENDPOINT_INDEPENDENT:
    return NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT;
  case NT_MAPPING_PER_DESTINATION:
    return NATTER_NAT_MAPPING_SYMMETRIC;
  default:
    return NATTER_NAT_MAPPING_UNKNOWN;
  }
}

static const uint8_t magic[4] = {0x00, 'N', 'T', 'M'};
#define MAPPING_VERSION 1
#define TYPE_REQUEST 1
#define TYPE_REPLY 2
#define HDR (4 + 2 + NT_MAPPING_NONCE_LEN)

static size_t put_header(uint8_t *buf, int type, const uint8_t *nonce) {
  memcpy(buf, magic, sizeof(magic));
  buf[4] = MAPPING_VERSION;
  buf[5] = (uint8_t)type;
  memcpy(buf + 6, nonce, NT_MAPPING_NONCE_LEN);
  return HDR;
}

static int check_header(const uint8_t *buf, size_t len, int type,
                        uint8_t *nonce) {
  if (len < HDR || memcmp(buf, magic, sizeof(magic)) != 0 ||
      buf[4] != MAPPING_VERSION || buf[5] != type) {
    return 0;
  }
  memcpy(nonce, buf + 6, NT_MAPPING_NONCE_LEN);
  return 1;
}

size_t nt_mapping_encode_request(uint8_t *buf, const uint8_t *nonce) {
  size_t n = put_header(buf, TYPE_REQUEST, nonce);
  memset(buf + n, 0, NT_MAPPING_REQUEST_LEN - n);
  return NT_MAPPING_REQUEST_LEN;
}

/* Bounds: exactly NT_MAPPING_REQUEST_LEN bytes with our magic, version and
 * type. */
int nt_mapping_decode_request(const uint8_t *buf, size_t len,
                              uint8_t *nonce) {
  return len == NT_MAPPING_REQUEST_LEN &&
         check_header(buf, len, TYPE_REQUEST, nonce);
}

size_t nt_mapping_encode_reply(uint8_t *buf, const uint8_t *nonce,
                               const struct sockaddr *seen) {
  size_t iplen;
  const uint8_t *ip = nt_addr_raw(seen, &iplen);
  uint16_t port = nt_addr_port(seen);
  if (!ip) {
    return 0;
  }
  size_t n = put_header(buf, TYPE_REPLY, nonce);
  buf[n++] = iplen == 4 ? 4 : 6;
  buf[n++] = (uint8_t)(port >> 8);
  buf[n++] = (uint8_t)port;
  memcpy(buf + n, ip, iplen);
  return n + iplen;
}

/* Bounds: our header, an address family of 4 or 6 and exactly the length
 * that family needs. The nonce is compared by the caller. */
int nt_mapping_decode_reply(const uint8_t *buf, size_t len, uint8_t *nonce,
                            nt_addr *seen) {
  if (!check_header(buf, len, TYPE_REPLY, nonce) || len < HDR + 3) {
    return 0;
  }
  size_t iplen = buf[HDR] == 4 ? 4 : buf[HDR] == 6 ? 16 : 0;
  if (iplen == 0 || len != HDR + 3 + iplen) {
    return 0;
  }
  uint16_t port = (uint16_t)((buf[HDR + 1] << 8) | buf[HDR + 2]);
  return nt_addr_from_raw(seen, buf + HDR + 3, iplen, port) == 0;
}
