/* Port mapping (issue 26): the PCP and NAT-PMP codecs and the default
 * route parser (src/codec/portmap.c), what a gateway's answer may claim
 * (nt_portmap_answer_check), the peer-side rules for a mapping candidate
 * (src/client/path.c) and its place in the control messages. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "client/path.h"
#include "client/portmap.h"
#include "codec/control.h"
#include "codec/portmap.h"
#include "codec/wire.h"
#include "test.h"
#include "test_addrs.h"
#include "test_control_rt.h"

static const uint8_t nonce[NT_PCP_NONCE_LEN] = {1, 2, 3, 4,  5,  6,
                                                7, 8, 9, 10, 11, 12};

/* A PCP MAP answer as a gateway builds it, from our own request. */
static size_t pcp_answer(uint8_t *buf, const uint8_t *req, int result,
                         uint32_t lifetime, uint16_t ext_port,
                         const uint8_t ext_ip[4]) {
  memcpy(buf, req, NT_PCP_MAP_LEN);
  buf[1] |= 0x80;
  buf[2] = 0;
  buf[3] = (uint8_t)result;
  buf[4] = (uint8_t)(lifetime >> 24);
  buf[5] = (uint8_t)(lifetime >> 16);
  buf[6] = (uint8_t)(lifetime >> 8);
  buf[7] = (uint8_t)lifetime;
  memset(buf + 8, 0, 16); /* epoch and reserved */
  buf[24 + 18] = (uint8_t)(ext_port >> 8);
  buf[24 + 19] = (uint8_t)ext_port;
  memcpy(buf + 24 + 32, ext_ip, 4);
  return NT_PCP_MAP_LEN;
}

static void test_pcp(void) {
  const uint8_t me[4] = {198, 18, 1, 10}, ext[4] = {203, 0, 113, 1};
  uint8_t req[NT_PCP_MAP_LEN], ans[NT_PCP_MAX_LEN + 8];
  nt_portmap_answer a;

  CHECK(nt_pcp_encode_map(req, nonce, me, 40000, 40000, 3600) ==
        NT_PCP_MAP_LEN);
  CHECK(req[0] == 2 && req[1] == 1);
  CHECK(req[8 + 10] == 0xff && memcmp(req + 8 + 12, me, 4) == 0);
  CHECK(memcmp(req + 24, nonce, NT_PCP_NONCE_LEN) == 0 && req[24 + 12] == 17);
  /* A request is no answer. */
  CHECK(!nt_portmap_is_answer(req, sizeof(req)));
  CHECK(!nt_pcp_decode_map(req, sizeof(req), nonce, 40000, &a));

  size_t n = pcp_answer(ans, req, 0, 3600, 41000, ext);
  CHECK(nt_portmap_is_answer(ans, n));
  CHECK(nt_pcp_decode_map(ans, n, nonce, 40000, &a));
  CHECK(a.result == 0 && a.lifetime_s == 3600 && a.external_port == 41000);
  CHECK(a.external_ipv4 && memcmp(a.external_ip, ext, 4) == 0);

  /* Not our question: another nonce, another port, another protocol. */
  uint8_t other[NT_PCP_NONCE_LEN];
  memcpy(other, nonce, sizeof(other));
  other[11] ^= 1;
  CHECK(!nt_pcp_decode_map(ans, n, other, 40000, &a));
  CHECK(!nt_pcp_decode_map(ans, n, nonce, 40001, &a));
  ans[24 + 12] = 6;
  CHECK(!nt_pcp_decode_map(ans, n, nonce, 40000, &a));
  ans[24 + 12] = 17;
  /* Wrong version, opcode, or no response bit. */
  ans[0] = 1;
  CHECK(!nt_pcp_decode_map(ans, n, nonce, 40000, &a));
  ans[0] = 2;
  ans[1] = 0x82;
  CHECK(!nt_pcp_decode_map(ans, n, nonce, 40000, &a));
  ans[1] = 0x01;
  CHECK(!nt_pcp_decode_map(ans, n, nonce, 40000, &a));
  ans[1] = 0x81;
  /* Lengths: short, not a multiple of 4, options up to the bound. */
  for (size_t len = 0; len < NT_PCP_MAP_LEN; len++) {
    CHECK(!nt_pcp_decode_map(ans, len, nonce, 40000, &a));
  }
  memset(ans + n, 0, sizeof(ans) - n);
  CHECK(!nt_pcp_decode_map(ans, n + 2, nonce, 40000, &a));
  CHECK(nt_pcp_decode_map(ans, n + 8, nonce, 40000, &a));
  CHECK(nt_pcp_decode_map(ans, NT_PCP_MAX_LEN, nonce, 40000, &a));
  CHECK(!nt_pcp_decode_map(ans, NT_PCP_MAX_LEN + 4, nonce, 40000, &a));
  /* An error result decodes (the caller moves on), an IPv6 external
   * address is flagged. */
  n = pcp_answer(ans, req, 2, 0, 0, ext);
  CHECK(nt_pcp_decode_map(ans, n, nonce, 40000, &a) && a.result == 2);
  n = pcp_answer(ans, req, 0, 3600, 41000, ext);
  ans[24 + 20 + 10] = 0;
  CHECK(nt_pcp_decode_map(ans, n, nonce, 40000, &a) && !a.external_ipv4);
}

static void test_natpmp(void) {
  uint8_t buf[32];
  nt_portmap_answer a;
  CHECK(nt_natpmp_encode_addr(buf) == 2 && buf[0] == 0 && buf[1] == 0);
  CHECK(nt_natpmp_encode_map(buf, 40000, 40000, 3600) == 12);
  CHECK(buf[1] == 1 && buf[4] == 0x9c && buf[5] == 0x40 && buf[11] == 0x10);

  const uint8_t addr_ok[12] = {0, 0x80, 0, 0, 0, 0, 0, 7, 203, 0, 113, 1};
  CHECK(nt_natpmp_decode_addr(addr_ok, 12, &a) && a.result == 0 &&
        a.external_ip[0] == 203 && a.external_ip[3] == 1);
  CHECK(!nt_natpmp_decode_addr(addr_ok, 11, &a));
  CHECK(!nt_natpmp_decode_addr(addr_ok, 8, &a)); /* success needs the IP */
  const uint8_t addr_fail[8] = {0, 0x80, 0, 3, 0, 0, 0, 7};
  CHECK(nt_natpmp_decode_addr(addr_fail, 8, &a) && a.result == 3);
  CHECK(!nt_natpmp_decode_map(addr_ok, 12, 40000, &a));

  const uint8_t map_ok[16] = {0,    0x81, 0,    0,    0, 0, 0,    7,
                              0x9c, 0x40, 0xa0, 0x28, 0, 0, 0x0e, 0x10};
  CHECK(nt_natpmp_decode_map(map_ok, 16, 40000, &a) && a.result == 0 &&
        a.external_port == 41000 && a.lifetime_s == 3600);
  CHECK(!nt_natpmp_decode_map(map_ok, 16, 40001, &a)); /* not our port */
  CHECK(!nt_natpmp_decode_map(map_ok, 15, 40000, &a));
  CHECK(!nt_natpmp_decode_map(map_ok, 8, 40000, &a)); /* short success */
  CHECK(!nt_natpmp_decode_addr(map_ok, 16, &a));
  /* A NAT-PMP gateway's answer to a PCP request: unsupported version. */
  const uint8_t unsupp[8] = {0, 0x81, 0, 1, 0, 0, 0, 7};
  CHECK(nt_natpmp_decode_map(unsupp, 8, 40000, &a) && a.result == 1);
}

static void test_route(void) {
  const char *table =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU"
      "\tWindow\tIRTT\n"
      "eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
      "eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
  uint8_t gw[4];
  CHECK(nt_route_default_gateway(table, strlen(table), gw));
  /* The kernel prints the in-memory word: on this host it reads back as
   * the address. */
  struct in_addr want;
  inet_pton(AF_INET, "192.168.2.1", &want);
  CHECK(memcmp(gw, &want, 4) == 0);
  /* No default route, a default route not up or without a gateway, and
   * malformed lines: none. */
  const char *none[] = {
      "Iface\tDestination\tGateway\tFlags\n"
      "eth0\t0002A8C0\t00000000\t0001\t0\n",
      "Iface\tDestination\tGateway\tFlags\n"
      "eth0\t00000000\t0102A8C0\t0002\t0\n",
      "Iface\tDestination\tGateway\tFlags\n"
      "eth0\t00000000\t00000000\t0003\t0\n",
      "Iface\tDestination\tGateway\tFlags\n"
      "eth0\t00000000\t0102A8Cx\t0003\t0\n",
      "Iface\tDestination\tGateway\tFlags\n"
      "eth0\t00000000\t0102A8C\t0003\t0\n",
      "Iface\tDestination\tGateway\tFlags\n"
      "eth0\t00000000\t0102A8C0\n",
      "eth0\t00000000\t0102A8C0\t0003\t0\n", /* a header line only */
      "",
  };
  for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
    CHECK(!nt_route_default_gateway(none[i], strlen(none[i]), gw));
  }
}

static void test_answer_check(void) {
  const uint8_t me[4] = {198, 18, 1, 10}, gw[4] = {198, 18, 1, 1};
  const uint8_t pub[4] = {203, 0, 113, 1};
  const uint8_t bad[][4] = {
      {198, 18, 1, 10}, {198, 18, 1, 1},  {10, 0, 0, 1},
      {127, 0, 0, 1},   {224, 0, 0, 1},   {0, 0, 0, 0},
      {169, 254, 0, 1}, {192, 168, 1, 1}, {255, 255, 255, 255}};
  nt_addr out;
  CHECK(nt_portmap_answer_check(3600, pub, 41000, me, gw, &out) ==
        NT_PORTMAP_USABLE);
  CHECK(out.len && nt_addr_port((struct sockaddr *)&out.ss) == 41000);
  CHECK(nt_portmap_answer_check(NT_PORTMAP_MIN_LIFETIME_S, pub, 41000, me, gw,
                                &out) == NT_PORTMAP_USABLE);
  CHECK(nt_portmap_answer_check(NT_PORTMAP_MIN_LIFETIME_S - 1, pub, 41000, me,
                                gw, &out) == NT_PORTMAP_BAD_LIFETIME);
  CHECK(out.len == 0);
  CHECK(nt_portmap_answer_check(3600, pub, 0, me, gw, &out) ==
        NT_PORTMAP_BAD_ADDRESS);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK(nt_portmap_answer_check(3600, bad[i], 41000, me, gw, &out) ==
          NT_PORTMAP_BAD_ADDRESS);
    CHECK(out.len == 0);
  }
}

static void test_candidate(void) {
  nt_addr observed = addr4("203.0.113.2", 5000);
  nt_addr none;
  memset(&none, 0, sizeof(none));
  nt_addr same_ip = addr4("203.0.113.2", 6000);
  CHECK(nt_path_portmap_usable(&observed, &same_ip));
  nt_addr other_ip = addr4("203.0.113.3", 6000);
  CHECK(!nt_path_portmap_usable(&observed, &other_ip));
  nt_addr v6 = addr6("2001:db8::2", 6000);
  CHECK(!nt_path_portmap_usable(&observed, &v6));
  CHECK(!nt_path_portmap_usable(&none, &observed));
  CHECK(!nt_path_portmap_usable(&observed, &none));
  nt_addr priv_obs = addr4("10.0.0.2", 5000), priv_pm = addr4("10.0.0.2", 6000);
  CHECK(!nt_path_portmap_usable(&priv_obs, &priv_pm));

  /* Right after the observed address; once; the last one makes room. */
  nt_addr cands[NT_PUNCH_MAX_CANDIDATES];
  nt_addr pm = addr4("203.0.113.2", 6000);
  cands[0] = observed;
  cands[1] = addr4("198.18.2.10", 5000);
  size_t n = nt_path_add_portmap(cands, 2, &pm);
  CHECK(n == 3);
  CHECK(nt_addr_equal((struct sockaddr *)&cands[1].ss,
                      (struct sockaddr *)&pm.ss));
  CHECK(nt_addr_port((struct sockaddr *)&cands[2].ss) == 5000);
  CHECK(nt_path_add_portmap(cands, n, &pm) == n);
  CHECK(nt_path_add_portmap(cands, 0, &pm) == 1);
  for (size_t i = 0; i < NT_PUNCH_MAX_CANDIDATES; i++) {
    cands[i] = addr4("198.18.2.10", (uint16_t)(5000 + i));
  }
  n = nt_path_add_portmap(cands, NT_PUNCH_MAX_CANDIDATES, &pm);
  CHECK(n == NT_PUNCH_MAX_CANDIDATES);
  CHECK(nt_addr_equal((struct sockaddr *)&cands[1].ss,
                      (struct sockaddr *)&pm.ss));
  CHECK(
      nt_addr_port((struct sockaddr *)&cands[NT_PUNCH_MAX_CANDIDATES - 1].ss) ==
      5000 + NT_PUNCH_MAX_CANDIDATES - 2);
}

static void test_control(void) {
  nt_control in, out;
  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_NAT_REPORT;
  in.u.nat_report.mapping = NT_MAPPING_PER_DESTINATION;
  in.u.nat_report.portmap = addr4("203.0.113.2", 6000);
  in.u.nat_report.portmap_method = NT_PORTMAP_PCP;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(out.u.nat_report.portmap_method == NT_PORTMAP_PCP);
  CHECK(nt_addr_equal((struct sockaddr *)&out.u.nat_report.portmap.ss,
                      (struct sockaddr *)&in.u.nat_report.portmap.ss));
  /* An unknown method is no mapping. */
  in.u.nat_report.portmap_method = 7;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(out.u.nat_report.portmap_method == NT_PORTMAP_NONE &&
        out.u.nat_report.portmap.len == 0);
  /* No mapping: nothing on the wire. */
  in.u.nat_report.portmap_method = NT_PORTMAP_NONE;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(out.u.nat_report.portmap.len == 0);

  memset(&in, 0, sizeof(in));
  in.type = NT_CONTROL_INTRODUCTION;
  snprintf(in.u.introduction.name, sizeof(in.u.introduction.name), "bob");
  in.u.introduction.observed = addr4("203.0.113.2", 5000);
  in.u.introduction.portmap = addr4("203.0.113.2", 6000);
  in.u.introduction.portmap_method = NT_PORTMAP_NATPMP;
  CHECK(control_round_trip(&in, &out) == 0);
  CHECK(out.type == NT_CONTROL_INTRODUCTION);
  CHECK(out.u.introduction.portmap_method == NT_PORTMAP_NATPMP);
  CHECK(nt_addr_port((struct sockaddr *)&out.u.introduction.portmap.ss) ==
        6000);
  CHECK(strcmp(nt_portmap_method_name(NT_PORTMAP_NATPMP), "NAT-PMP") == 0);
  CHECK(strcmp(nt_portmap_method_name(9), "") == 0);
}

/* Renewals not answered are tried again while the mapping holds; the
 * gateway's epoch (RFC 6887 §8.5); a PCP ANNOUNCE. */
static void test_renew_epoch(void) {
  const uint64_t s = 1000000000u, t0 = 5000 * s;
  CHECK(nt_portmap_retry_ms(t0, t0 + 1800 * s) == 900000);
  CHECK(nt_portmap_retry_ms(t0, t0 + NT_PORTMAP_RETRY_MIN_S * s) ==
        NT_PORTMAP_RETRY_MIN_S * 1000 / 2);
  CHECK(nt_portmap_retry_ms(t0, t0 + NT_PORTMAP_RETRY_MIN_S * s - 1) == 0);
  CHECK(nt_portmap_retry_ms(t0, t0 - s) == 0);

  CHECK(nt_portmap_epoch_ok(100, t0, 130, t0 + 30 * s));
  CHECK(nt_portmap_epoch_ok(100, t0, 132, t0 + 30 * s));     /* 2 s slack */
  CHECK(nt_portmap_epoch_ok(100, t0, 99, t0));               /* 1 s back */
  CHECK(!nt_portmap_epoch_ok(100, t0, 98, t0));              /* went back */
  CHECK(!nt_portmap_epoch_ok(1800, t0, 5, t0 + 1800 * s));   /* restarted */
  CHECK(!nt_portmap_epoch_ok(100, t0, 100, t0 + 1800 * s));  /* stood still */
  CHECK(!nt_portmap_epoch_ok(100, t0, 5000, t0 + 1800 * s)); /* ran ahead */
  CHECK(nt_portmap_epoch_ok(100, t0, 1900 + 100, t0 + 1800 * s)); /* 1/16 */

  uint8_t buf[NT_PCP_MAP_LEN];
  uint32_t epoch = 0;
  memset(buf, 0, sizeof(buf));
  buf[0] = 2;
  buf[1] = 0x80;
  buf[11] = 7;
  CHECK(nt_pcp_decode_announce(buf, 24, &epoch) == 1 && epoch == 7);
  CHECK(nt_pcp_decode_announce(buf, 23, &epoch) == 0);
  CHECK(nt_pcp_decode_announce(buf, 26, &epoch) == 0);
  buf[3] = 1; /* not success */
  CHECK(nt_pcp_decode_announce(buf, 24, &epoch) == 0);
  buf[3] = 0;
  buf[1] = 0x81; /* a MAP answer */
  CHECK(nt_pcp_decode_announce(buf, 24, &epoch) == 0);
}

static const nt_test_case cases[] = {
    {"pcp", test_pcp},
    {"natpmp", test_natpmp},
    {"route", test_route},
    {"answer_check", test_answer_check},
    {"candidate", test_candidate},
    {"control", test_control},
    {"renew_epoch", test_renew_epoch},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
