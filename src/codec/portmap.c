#include "codec/portmap.h"

#include <string.h>

#define PCP_VERSION 2
#define PCP_OP_MAP 1
#define PCP_RESPONSE 0x80
#define PCP_HDR 24
#define NATPMP_VERSION 0
#define NATPMP_OP_ADDR 0
#define NATPMP_OP_MAP_UDP 1
#define NATPMP_RESPONSE 0x80
#define PROTO_UDP 17

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

/* An IPv4 address as an IPv4-mapped IPv6 address (RFC 6887 §5). */
static void put_mapped(uint8_t *p, const uint8_t ip[4]) {
  memset(p, 0, 10);
  p[10] = 0xff;
  p[11] = 0xff;
  memcpy(p + 12, ip, 4);
}

static int is_mapped(const uint8_t *p) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(p, prefix, sizeof(prefix)) == 0;
}

size_t nt_pcp_encode_map(uint8_t *buf, const uint8_t nonce[NT_PCP_NONCE_LEN],
                         const uint8_t client_ip[4], uint16_t internal_port,
                         uint16_t suggested_port, uint32_t lifetime_s) {
  static const uint8_t any4[4] = {0, 0, 0, 0};
  memset(buf, 0, NT_PCP_MAP_LEN);
  buf[0] = PCP_VERSION;
  buf[1] = PCP_OP_MAP;
  put32(buf + 4, lifetime_s);
  put_mapped(buf + 8, client_ip);
  uint8_t *op = buf + PCP_HDR;
  memcpy(op, nonce, NT_PCP_NONCE_LEN);
  op[12] = PROTO_UDP;
  put16(op + 16, internal_port);
  put16(op + 18, suggested_port);
  put_mapped(op + 20, any4); /* no preference: ::ffff:0.0.0.0 */
  return NT_PCP_MAP_LEN;
}

int nt_pcp_decode_map(const uint8_t *buf, size_t len,
                      const uint8_t nonce[NT_PCP_NONCE_LEN],
                      uint16_t internal_port, nt_portmap_answer *out) {
  /* Options may follow (§7.3), in 4-byte units; they are not read. */
  if (len < NT_PCP_MAP_LEN || len > NT_PCP_MAX_LEN || len % 4 != 0 ||
      buf[0] != PCP_VERSION || buf[1] != (PCP_RESPONSE | PCP_OP_MAP)) {
    return 0;
  }
  const uint8_t *op = buf + PCP_HDR;
  if (memcmp(op, nonce, NT_PCP_NONCE_LEN) != 0 || op[12] != PROTO_UDP ||
      get16(op + 16) != internal_port) {
    return 0;
  }
  memset(out, 0, sizeof(*out));
  out->result = buf[3];
  out->lifetime_s = get32(buf + 4);
  out->epoch_s = get32(buf + 8);
  out->internal_port = internal_port;
  out->external_port = get16(op + 18);
  out->external_ipv4 = is_mapped(op + 20);
  if (out->external_ipv4) {
    memcpy(out->external_ip, op + 32, 4);
  }
  return 1;
}

size_t nt_natpmp_encode_addr(uint8_t *buf) {
  buf[0] = NATPMP_VERSION;
  buf[1] = NATPMP_OP_ADDR;
  return NT_NATPMP_ADDR_REQ_LEN;
}

size_t nt_natpmp_encode_map(uint8_t *buf, uint16_t internal_port,
                            uint16_t suggested_port, uint32_t lifetime_s) {
  memset(buf, 0, NT_NATPMP_MAP_REQ_LEN);
  buf[0] = NATPMP_VERSION;
  buf[1] = NATPMP_OP_MAP_UDP;
  put16(buf + 4, internal_port);
  put16(buf + 6, suggested_port);
  put32(buf + 8, lifetime_s);
  return NT_NATPMP_MAP_REQ_LEN;
}

int nt_natpmp_decode_addr(const uint8_t *buf, size_t len,
                          nt_portmap_answer *out) {
  /* A gateway that failed may answer with only the first 8 bytes. */
  if ((len != NT_NATPMP_ADDR_RESP_LEN && len != 8) ||
      buf[0] != NATPMP_VERSION ||
      buf[1] != (NATPMP_RESPONSE | NATPMP_OP_ADDR)) {
    return 0;
  }
  memset(out, 0, sizeof(*out));
  out->result = get16(buf + 2);
  out->epoch_s = get32(buf + 4);
  if (len == NT_NATPMP_ADDR_RESP_LEN) {
    memcpy(out->external_ip, buf + 8, 4);
    out->external_ipv4 = 1;
  } else if (out->result == NT_PORTMAP_SUCCESS) {
    return 0; /* success without the address */
  }
  return 1;
}

int nt_natpmp_decode_map(const uint8_t *buf, size_t len, uint16_t internal_port,
                         nt_portmap_answer *out) {
  if ((len != NT_NATPMP_MAP_RESP_LEN && len != 8) || buf[0] != NATPMP_VERSION ||
      buf[1] != (NATPMP_RESPONSE | NATPMP_OP_MAP_UDP)) {
    return 0;
  }
  memset(out, 0, sizeof(*out));
  out->result = get16(buf + 2);
  out->epoch_s = get32(buf + 4);
  if (len != NT_NATPMP_MAP_RESP_LEN) {
    return out->result != NT_PORTMAP_SUCCESS; /* a short failure only */
  }
  if (get16(buf + 8) != internal_port) {
    return 0;
  }
  out->internal_port = internal_port;
  out->external_port = get16(buf + 10);
  out->lifetime_s = get32(buf + 12);
  return 1;
}

int nt_pcp_decode_announce(const uint8_t *buf, size_t len, uint32_t *epoch) {
  if (len < PCP_HDR || len > NT_PCP_MAX_LEN || len % 4 != 0 ||
      buf[0] != PCP_VERSION || buf[1] != PCP_RESPONSE ||
      buf[3] != NT_PORTMAP_SUCCESS) {
    return 0;
  }
  *epoch = get32(buf + 8);
  return 1;
}

int nt_portmap_is_answer(const uint8_t *buf, size_t len) {
  return len >= 2 && (buf[0] == PCP_VERSION || buf[0] == NATPMP_VERSION) &&
         (buf[1] & 0x80);
}

const char *nt_portmap_method_name(int method) {
  return method == NT_PORTMAP_PCP      ? "PCP"
         : method == NT_PORTMAP_NATPMP ? "NAT-PMP"
         : method == NT_PORTMAP_UPNP   ? "UPnP"
                                       : "";
}

/* One field of a whitespace-separated line: [*p, end) -> [start, len). */
static int next_field(const char **p, const char *end, const char **start,
                      size_t *flen) {
  while (*p < end && (**p == ' ' || **p == '\t')) {
    (*p)++;
  }
  *start = *p;
  while (*p < end && **p != ' ' && **p != '\t') {
    (*p)++;
  }
  *flen = (size_t)(*p - *start);
  return *flen > 0;
}

/* 1 to 8 hex digits (the kernel prints addresses as %08X in host order,
 * flags as %04X). */
static int hex32(const char *s, size_t n, uint32_t *v) {
  if (n == 0 || n > 8) {
    return 0;
  }
  *v = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (d < 0) {
      return 0;
    }
    *v = (*v << 4) | (uint32_t)d;
  }
  return 1;
}

int nt_route_default_gateway(const char *text, size_t len, uint8_t gw[4]) {
  enum { RTF_UP_ = 0x1, RTF_GATEWAY_ = 0x2 };
  const char *p = text,
             *end = text + (len < NT_ROUTE_TEXT_MAX ? len : NT_ROUTE_TEXT_MAX);
  int first = 1;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    if (!first) {
      /* Iface Destination Gateway Flags ... */
      const char *f[4];
      size_t n[4];
      const char *q = p;
      int ok = 1;
      for (int i = 0; i < 4 && ok; i++) {
        ok = next_field(&q, line_end, &f[i], &n[i]);
      }
      uint32_t dst, via, flags;
      if (ok && hex32(f[1], n[1], &dst) && hex32(f[2], n[2], &via) &&
          n[1] == 8 && n[2] == 8 && hex32(f[3], n[3], &flags) && dst == 0 &&
          via != 0 &&
          (flags & (RTF_UP_ | RTF_GATEWAY_)) == (RTF_UP_ | RTF_GATEWAY_)) {
        /* The kernel printed the in-memory (network order) word as a
         * host-order number: its bytes in memory are the address. */
        memcpy(gw, &via, 4);
        return 1;
      }
    }
    first = 0;
    p = eol ? eol + 1 : end;
  }
  return 0;
}
