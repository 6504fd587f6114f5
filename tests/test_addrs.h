/* Addresses for unit tests, from text: addr4("198.51.100.7", 5000). */
#ifndef NT_TEST_ADDRS_H
#define NT_TEST_ADDRS_H

#include <arpa/inet.h>
#include <string.h>

#include "base/addr.h"

static inline nt_addr addr4(const char *ip, uint16_t port) {
  nt_addr a;
  uint8_t raw[4];
  memset(&a, 0, sizeof(a));
  inet_pton(AF_INET, ip, raw);
  nt_addr_from_raw(&a, raw, 4, port);
  return a;
}

static inline nt_addr addr6(const char *ip, uint16_t port) {
  nt_addr a;
  uint8_t raw[16];
  memset(&a, 0, sizeof(a));
  inet_pton(AF_INET6, ip, raw);
  nt_addr_from_raw(&a, raw, 16, port);
  return a;
}

#endif
