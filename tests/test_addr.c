/* Socket addresses (src/base/addr.c): "host:port" parsing, printing,
 * comparing, raw IP bytes, loopback and own-address detection. Only numeric
 * hosts are parsed here, so the test needs no resolver. */
#include "base/addr.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "test.h"

/* Parses |text| (empty host = |any|) and checks that it prints back as
 * |want|. */
static void check_parse(const char *text, const char *any, int family,
                        const char *want) {
  nt_addr a;
  char err[256] = "", out[NT_ADDR_STRLEN];

  CHECK(nt_addr_parse(&a, text, any, err, sizeof(err)) == 0);
  if (err[0] != '\0') {
    fprintf(stderr, "parsing \"%s\": %s\n", text, err);
  }
  CHECK(a.ss.ss_family == family);
  CHECK(a.len == (family == AF_INET ? sizeof(struct sockaddr_in)
                                    : sizeof(struct sockaddr_in6)));
  nt_addr_str((struct sockaddr *)&a.ss, out);
  if (strcmp(out, want) != 0) {
    fprintf(stderr, "\"%s\" printed as \"%s\", want \"%s\"\n", text, out, want);
  }
  CHECK(strcmp(out, want) == 0);
}

/* |text| must be refused with a one-line reason containing |why|. */
static void check_refused(const char *text, const char *why) {
  nt_addr a;
  char err[256] = "";

  CHECK(nt_addr_parse(&a, text, "0.0.0.0", err, sizeof(err)) == -1);
  if (strstr(err, why) == NULL) {
    fprintf(stderr, "\"%s\": error \"%s\" lacks \"%s\"\n", text, err, why);
    nt_test_failures++;
  }
  CHECK(strchr(err, '\n') == NULL);
}

static void test_parse(void) {
  check_parse("127.0.0.1:80", NULL, AF_INET, "127.0.0.1:80");
  check_parse("203.0.113.7:65535", NULL, AF_INET, "203.0.113.7:65535");
  check_parse("198.51.100.1:0", NULL, AF_INET, "198.51.100.1:0");
  check_parse("[::1]:443", NULL, AF_INET6, "[::1]:443");
  check_parse("[2001:db8::42]:10000", NULL, AF_INET6, "[2001:db8::42]:10000");
  /* Leading zeros in the port are still the port. */
  check_parse("127.0.0.1:0080", NULL, AF_INET, "127.0.0.1:80");
  /* An empty host is the caller's "any" address, in either family. */
  check_parse(":5000", "0.0.0.0", AF_INET, "0.0.0.0:5000");
  check_parse(":5000", "::", AF_INET6, "[::]:5000");
  check_parse("[]:7", "127.0.0.1", AF_INET, "127.0.0.1:7");
}

static void test_parse_errors(void) {
  char longhost[400];

  check_refused("127.0.0.1", "expected HOST:PORT");
  check_refused("", "expected HOST:PORT");
  /* Brackets: closed, and followed by ":PORT". */
  check_refused("[::1]", "expected [IPV6]:PORT");
  check_refused("[::1", "expected [IPV6]:PORT");
  check_refused("[::1]443", "expected [IPV6]:PORT");
  check_refused("[::1]:", "port must be 0..65535");
  /* Ports: decimal 0..65535, nothing else. */
  check_refused("127.0.0.1:", "port must be 0..65535");
  check_refused("127.0.0.1:65536", "port must be 0..65535");
  check_refused("127.0.0.1:99999999999999999999", "port must be 0..65535");
  check_refused("127.0.0.1:-1", "port must be 0..65535");
  check_refused("127.0.0.1:+80", "port must be 0..65535");
  check_refused("127.0.0.1:80x", "port must be 0..65535");
  check_refused("127.0.0.1:0x50", "port must be 0..65535");
  check_refused("127.0.0.1:http", "port must be 0..65535");
  /* The message quotes what was given. */
  check_refused("127.0.0.1:70000", "\"127.0.0.1:70000\"");

  memset(longhost, 'a', sizeof(longhost));
  snprintf(longhost + 300, sizeof(longhost) - 300, ":80");
  check_refused(longhost, "host name too long");
}

/* A tiny error buffer is truncated, never overrun. */
static void test_parse_small_errbuf(void) {
  nt_addr a;
  char err[8];

  memset(err, 'X', sizeof(err));
  CHECK(nt_addr_parse(&a, "nonsense", NULL, err, 4) == -1);
  CHECK(memchr(err, '\0', 4) != NULL && err[4] == 'X');
}

static void test_str_longest_v6(void) {
  nt_addr a;
  uint8_t ip[16];
  char out[NT_ADDR_STRLEN];

  memset(ip, 0xff, sizeof(ip));
  CHECK(nt_addr_from_raw(&a, ip, 16, 65535) == 0);
  nt_addr_str((struct sockaddr *)&a.ss, out);
  CHECK(strcmp(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535") == 0);

  struct sockaddr_un un = {.sun_family = AF_UNIX};
  nt_addr_str((struct sockaddr *)&un, out);
  CHECK(strcmp(out, "(unknown address)") == 0);
}

static void test_equal_and_port(void) {
  nt_addr a, b, c, d;
  char err[256];
  struct sockaddr_un un = {.sun_family = AF_UNIX};

  CHECK(nt_addr_parse(&a, "198.18.0.1:4000", NULL, err, sizeof(err)) == 0);
  CHECK(nt_addr_parse(&b, "198.18.0.1:4000", NULL, err, sizeof(err)) == 0);
  CHECK(nt_addr_parse(&c, "198.18.0.2:4000", NULL, err, sizeof(err)) == 0);
  CHECK(nt_addr_parse(&d, "[::ffff:198.18.0.1]:4000", NULL, err, sizeof(err)) ==
        0);
  CHECK(nt_addr_equal((struct sockaddr *)&a.ss, (struct sockaddr *)&b.ss));
  CHECK(!nt_addr_equal((struct sockaddr *)&a.ss, (struct sockaddr *)&c.ss));
  /* The same IPv4 address mapped into IPv6 is another family. */
  CHECK(!nt_addr_equal((struct sockaddr *)&a.ss, (struct sockaddr *)&d.ss));
  CHECK(!nt_addr_equal((struct sockaddr *)&un, (struct sockaddr *)&un));

  CHECK(nt_addr_port((struct sockaddr *)&a.ss) == 4000);
  nt_addr_set_port((struct sockaddr *)&b.ss, 4001);
  CHECK(nt_addr_port((struct sockaddr *)&b.ss) == 4001);
  CHECK(!nt_addr_equal((struct sockaddr *)&a.ss, (struct sockaddr *)&b.ss));

  CHECK(nt_addr_parse(&c, "[2001:db8::1]:9", NULL, err, sizeof(err)) == 0);
  CHECK(nt_addr_parse(&d, "[2001:db8::1]:9", NULL, err, sizeof(err)) == 0);
  CHECK(nt_addr_equal((struct sockaddr *)&c.ss, (struct sockaddr *)&d.ss));
  nt_addr_set_port((struct sockaddr *)&d.ss, 65535);
  CHECK(nt_addr_port((struct sockaddr *)&d.ss) == 65535);
  CHECK(!nt_addr_equal((struct sockaddr *)&c.ss, (struct sockaddr *)&d.ss));
  CHECK(nt_addr_parse(&d, "[2001:db8::2]:9", NULL, err, sizeof(err)) == 0);
  CHECK(!nt_addr_equal((struct sockaddr *)&c.ss, (struct sockaddr *)&d.ss));

  CHECK(nt_addr_port((struct sockaddr *)&un) == 0);
  nt_addr_set_port((struct sockaddr *)&un, 5); /* ignored */
  CHECK(un.sun_family == AF_UNIX && un.sun_path[0] == '\0');
}

static void test_raw(void) {
  static const uint8_t v4[4] = {203, 0, 113, 9};
  static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7};
  nt_addr a;
  const uint8_t *ip;
  size_t iplen = 99;
  char out[NT_ADDR_STRLEN];

  CHECK(nt_addr_from_raw(&a, v4, 4, 1234) == 0);
  CHECK(a.len == sizeof(struct sockaddr_in));
  CHECK(strcmp(nt_addr_str((struct sockaddr *)&a.ss, out),
               "203.0.113.9:1234") == 0);
  ip = nt_addr_raw((struct sockaddr *)&a.ss, &iplen);
  CHECK(iplen == 4 && ip != NULL && memcmp(ip, v4, 4) == 0);

  CHECK(nt_addr_from_raw(&a, v6, 16, 80) == 0);
  CHECK(a.len == sizeof(struct sockaddr_in6));
  CHECK(strcmp(nt_addr_str((struct sockaddr *)&a.ss, out),
               "[2001:db8::7]:80") == 0);
  ip = nt_addr_raw((struct sockaddr *)&a.ss, &iplen);
  CHECK(iplen == 16 && ip != NULL && memcmp(ip, v6, 16) == 0);

  /* Only 4 or 16 bytes, and never port 0 (nothing can be reached there). */
  CHECK(nt_addr_from_raw(&a, v4, 0, 80) == -1);
  CHECK(nt_addr_from_raw(&a, v4, 5, 80) == -1);
  CHECK(nt_addr_from_raw(&a, v6, 15, 80) == -1);
  CHECK(nt_addr_from_raw(&a, v4, 4, 0) == -1);
  CHECK(nt_addr_from_raw(&a, v6, 16, 0) == -1);

  struct sockaddr_un un = {.sun_family = AF_UNIX};
  iplen = 99;
  CHECK(nt_addr_raw((struct sockaddr *)&un, &iplen) == NULL && iplen == 0);
}

static int loopback(const char *text) {
  nt_addr a;
  char err[256];

  if (nt_addr_parse(&a, text, NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "cannot parse \"%s\": %s\n", text, err);
    nt_test_failures++;
    return -1;
  }
  return nt_addr_is_loopback((struct sockaddr *)&a.ss);
}

static void test_loopback(void) {
  /* All of 127.0.0.0/8 (RFC 1122 §3.2.1.3), and ::1 only. */
  CHECK(loopback("127.0.0.1:1") == 1);
  CHECK(loopback("127.0.0.0:1") == 1);
  CHECK(loopback("127.255.255.254:1") == 1);
  CHECK(loopback("126.255.255.255:1") == 0);
  CHECK(loopback("128.0.0.1:1") == 0);
  CHECK(loopback("0.0.0.0:1") == 0);
  CHECK(loopback("203.0.113.1:1") == 0);
  CHECK(loopback("[::1]:1") == 1);
  CHECK(loopback("[::]:1") == 0);
  CHECK(loopback("[::2]:1") == 0);
  CHECK(loopback("[2001:db8::1]:1") == 0);

  struct sockaddr_un un = {.sun_family = AF_UNIX};
  CHECK(nt_addr_is_loopback((struct sockaddr *)&un) == 0);
}

/* 1 when an interface of this host has |sa|'s IP address. */
static int listed(const struct sockaddr *sa) {
  struct ifaddrs *all;
  int found = 0;
  if (getifaddrs(&all) != 0) {
    return -1;
  }
  for (struct ifaddrs *i = all; i; i = i->ifa_next) {
    found |= i->ifa_addr && i->ifa_addr->sa_family == sa->sa_family &&
             nt_addr_same_host(i->ifa_addr, sa);
  }
  freeifaddrs(all);
  return found;
}

/* This host's own addresses: loopback, and every interface address (with
 * any port), but not an address no interface has. */
static void test_own(void) {
  struct ifaddrs *all;
  nt_addr a;
  char err[256], text[64];
  size_t checked = 0;

  CHECK(nt_addr_parse(&a, "127.0.0.9:7", NULL, err, sizeof(err)) == 0);
  CHECK(nt_addr_is_own((struct sockaddr *)&a.ss) == 1);
  CHECK(nt_addr_parse(&a, "[::1]:7", NULL, err, sizeof(err)) == 0);
  CHECK(nt_addr_is_own((struct sockaddr *)&a.ss) == 1);
  CHECK(getifaddrs(&all) == 0);
  for (struct ifaddrs *i = all; i; i = i->ifa_next) {
    if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET ||
                        i->ifa_addr->sa_family == AF_INET6)) {
      struct sockaddr_storage ss;
      memcpy(&ss, i->ifa_addr,
             i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                               : sizeof(struct sockaddr_in6));
      nt_addr_set_port((struct sockaddr *)&ss, 4433);
      CHECK(nt_addr_is_own((struct sockaddr *)&ss) == 1);
      checked++;
    }
  }
  freeifaddrs(all);
  CHECK(checked >= 1); /* at least loopback */
  /* The first TEST-NET-2 address this host does not have. */
  for (int host = 1; host < 255; host++) {
    snprintf(text, sizeof(text), "198.51.100.%d:7", host);
    CHECK(nt_addr_parse(&a, text, NULL, err, sizeof(err)) == 0);
    if (listed((struct sockaddr *)&a.ss) == 0) {
      CHECK(nt_addr_is_own((struct sockaddr *)&a.ss) == 0);
      break;
    }
  }
}

static nt_addr parsed(const char *text) {
  nt_addr a;
  char err[256];
  CHECK(nt_addr_parse(&a, text, NULL, err, sizeof(err)) == 0);
  return a;
}

/* Dual-stack sockets report IPv4 peers v4-mapped; above the socket they
 * are plain IPv4, and go back out v4-mapped. */
static void test_v4mapped(void) {
  char out[NT_ADDR_STRLEN];
  nt_addr a = parsed("[::ffff:198.18.0.1]:4000");
  nt_addr_unmap(&a.ss, &a.len);
  CHECK(a.ss.ss_family == AF_INET && a.len == sizeof(struct sockaddr_in));
  CHECK(strcmp(nt_addr_str((struct sockaddr *)&a.ss, out), "198.18.0.1:4000") ==
        0);
  nt_addr b = parsed("[2001:db8::1]:9"), c = b;
  nt_addr_unmap(&c.ss, &c.len);
  CHECK(c.len == b.len && memcmp(&c.ss, &b.ss, b.len) == 0);

  struct sockaddr_storage ss;
  nt_addr v4 = parsed("198.18.0.1:4000");
  socklen_t n = nt_addr_for_socket(AF_INET6, 0, (struct sockaddr *)&v4.ss, &ss);
  CHECK(n == sizeof(struct sockaddr_in6));
  CHECK(strcmp(nt_addr_str((struct sockaddr *)&ss, out),
               "[::ffff:198.18.0.1]:4000") == 0);
  CHECK(nt_addr_for_socket(AF_INET6, 1, (struct sockaddr *)&v4.ss, &ss) == 0);
  CHECK(nt_addr_for_socket(AF_INET, 0, (struct sockaddr *)&v4.ss, &ss) ==
        sizeof(struct sockaddr_in));
  CHECK(nt_addr_equal((struct sockaddr *)&ss, (struct sockaddr *)&v4.ss));
  CHECK(nt_addr_for_socket(AF_INET, 0, (struct sockaddr *)&b.ss, &ss) == 0);
  CHECK(nt_addr_for_socket(AF_INET6, 1, (struct sockaddr *)&b.ss, &ss) ==
        sizeof(struct sockaddr_in6));
  nt_addr m = parsed("[::ffff:198.18.0.1]:4000");
  CHECK(nt_addr_for_socket(AF_INET, 0, (struct sockaddr *)&m.ss, &ss) ==
        sizeof(struct sockaddr_in));
  CHECK(nt_addr_equal((struct sockaddr *)&ss, (struct sockaddr *)&v4.ss));
}

nt_test_case cases[] = {
    {"v4mapped", test_v4mapped},
    {"parse", test_parse},
    {"parse_errors", test_parse_errors},
    {"parse_small_errbuf", test_parse_small_errbuf},
    {"str_longest_v6", test_str_longest_v6},
    {"equal_and_port", test_equal_and_port},
    {"raw", test_raw},
    {"loopback", test_loopback},
    {"own", test_own},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
