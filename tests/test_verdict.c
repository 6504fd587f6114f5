/* nt_check_verdict: the verdict of natter -check follows from both sides'
 * data (mappings, which probes arrived, the outcome), table by table. */
#include "test.h"
#include "client/verdict.h"

static const char *const given_a[] = {"203.0.113.2:40000"};
static const char *const given_b[] = {"203.0.113.1:50000"};

/* alice asked; bob reported. Both endpoint-independent, nothing arrived,
 * no connection: a starting point each case changes. */
static natter_check_result base(void) {
  natter_check_result r;
  memset(&r, 0, sizeof(r));
  r.error = NATTER_ERR_PUNCH;
  r.message = "hole punching to bob failed";
  r.address = "";
  r.self.name = "alice";
  r.self.reported = 1;
  r.self.outcome = "failed";
  r.self.mapping = NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT;
  r.self.candidates = given_a;
  r.self.ncandidates = 1;
  r.self.probes_from = "";
  r.peer.name = "bob";
  r.peer.reported = 1;
  r.peer.outcome = "failed";
  r.peer.mapping = NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT;
  r.peer.candidates = given_b;
  r.peer.ncandidates = 1;
  r.peer.probes_from = "";
  return r;
}

static void expect(const natter_check_result *r, natter_check_verdict want,
                   const char *text) {
  char got[1400];
  natter_check_verdict v = nt_check_verdict(r, got, sizeof(got));
  if (v != want || !strstr(got, text)) {
    fprintf(stderr, "verdict %d \"%s\", want %d containing \"%s\"\n", (int)v,
            got, (int)want, text);
    nt_test_failures++;
  }
}

static void test_direct(void) {
  natter_check_result r = base();
  r.error = 0;
  r.connected = 1;
  r.self.probes_received = r.peer.probes_received = 3;
  r.self.probes_from = "203.0.113.2:40000";
  r.peer.probes_from = "203.0.113.1:50000";
  expect(&r, NATTER_CHECK_DIRECT, "direct works");
}

static void test_direct_predicted(void) {
  natter_check_result r = base();
  r.error = 0;
  r.connected = 1;
  r.self.mapping = NATTER_NAT_MAPPING_SYMMETRIC;
  r.self.probes_received = r.peer.probes_received = 3;
  r.self.probes_from = "203.0.113.2:40000";
  r.peer.probes_from = "203.0.113.1:61234"; /* not the port bob was given */
  expect(&r, NATTER_CHECK_DIRECT_PREDICTED,
         "direct works only via prediction: alice's NAT gave bob a port the "
         "broker never saw (203.0.113.1:61234)");
}

/* Two symmetric NATs through a port mapping (issue 26): the verdict
 * names the mapping, not prediction, although bob saw a port of alice's
 * NAT that the broker never saw. */
static void test_direct_portmap(void) {
  natter_check_result r = base();
  r.error = 0;
  r.connected = 1;
  r.self.mapping = r.peer.mapping = NATTER_NAT_MAPPING_SYMMETRIC;
  r.self.probes_received = r.peer.probes_received = 3;
  r.self.probes_from = "203.0.113.2:40000";
  r.peer.probes_from = "203.0.113.1:61234";
  r.peer_portmap = "port-mapped (PCP) at 203.0.113.2:41000";
  r.self_portmap = "";
  expect(&r, NATTER_CHECK_DIRECT,
         "direct works via a port mapping: bob is port-mapped (PCP) at "
         "203.0.113.2:41000");
  r.peer_portmap = NULL; /* only ours */
  r.self_portmap = "port-mapped (NAT-PMP) at 203.0.113.1:42000";
  expect(&r, NATTER_CHECK_DIRECT,
         "direct works via a port mapping: alice is port-mapped (NAT-PMP)");
  /* Relayed: the mapping did not help, and the verdict does not say it
   * did. */
  r.relayed = 1;
  char got[1400];
  nt_check_verdict(&r, got, sizeof(got));
  CHECK(strstr(got, "port mapping") == NULL);
}

/* Found by port prediction (the birthday technique): said as such,
 * naming the symmetric side, whatever the probes' ports say. */
static void test_direct_birthday(void) {
  natter_check_result r = base();
  r.error = 0;
  r.connected = 1;
  r.predicted = 1;
  r.peer.mapping = NATTER_NAT_MAPPING_SYMMETRIC;
  expect(&r, NATTER_CHECK_DIRECT_PREDICTED,
         "direct works only via prediction: bob's NAT gives a new port per "
         "destination");
  r.relayed = 1; /* a relayed connection is not a direct path */
  r.predicted = 0;
  natter_check_verdict v = nt_check_verdict(&r, (char[300]){0}, 300);
  CHECK(v != NATTER_CHECK_DIRECT_PREDICTED && v != NATTER_CHECK_DIRECT);
}

static void test_both_symmetric(void) {
  natter_check_result r = base();
  r.self.mapping = r.peer.mapping = NATTER_NAT_MAPPING_SYMMETRIC;
  expect(&r, NATTER_CHECK_NEEDS_RELAY,
         "needs relay because both sides are behind symmetric NATs (a new "
         "port per destination); the broker offers no relay");
  r.connected = 1;
  r.relayed = 1;
  r.error = 0;
  expect(&r, NATTER_CHECK_NEEDS_RELAY, "connected through the broker's relay");
}

static void test_one_symmetric(void) {
  natter_check_result r = base();
  r.peer.mapping = NATTER_NAT_MAPPING_SYMMETRIC;
  expect(&r, NATTER_CHECK_NEEDS_RELAY,
         "bob is behind a symmetric NAT (a new port per destination) and "
         "alice's NAT drops unsolicited UDP");
}

static void test_udp_blocked(void) {
  natter_check_result r = base();
  expect(&r, NATTER_CHECK_UDP_BLOCKED,
         "UDP between alice and bob is blocked: no probe arrived either way");
  r.peer.probes_received = 5; /* bob saw ours, we saw none of his */
  expect(&r, NATTER_CHECK_UDP_BLOCKED, "bob's outgoing UDP to you is blocked");
  r.peer.probes_received = 0;
  r.self.probes_received = 4;
  expect(&r, NATTER_CHECK_UDP_BLOCKED, "your outgoing UDP to bob is blocked");
  r = base();
  r.peer.reported = 0;
  expect(&r, NATTER_CHECK_UDP_BLOCKED, "bob sent no report");
  r = base();
  r.peer.mapping = NATTER_NAT_MAPPING_UNKNOWN;
  expect(&r, NATTER_CHECK_UDP_BLOCKED,
         "UDP between alice and bob is blocked, or bob's NAT is symmetric");
}

static void test_broker_answers(void) {
  natter_check_result r = base();
  r.error = NATTER_ERR_PEER_UNKNOWN;
  r.peer.reported = 0;
  expect(&r, NATTER_CHECK_PEER_UNKNOWN, "bob is unknown");
  r.error = NATTER_ERR_PEER_NOT_LISTENING;
  expect(&r, NATTER_CHECK_NOT_LISTENING, "bob does not listen");
  r = base();
  r.peer.outcome = "refused";
  expect(&r, NATTER_CHECK_REFUSED,
         "bob refuses us: its -allow-peer rules do not admit alice");
  r = base();
  r.error = NATTER_ERR_BROKER;
  r.message = "cannot reach broker";
  expect(&r, NATTER_CHECK_FAILED, "the check failed: cannot reach broker");
}

/* The peer's CheckReport fills its side: outcome, counts, the addresses
 * as text; an unknown mapping or a missing address keeps what the broker
 * said. */
static void test_report_side(void) {
  natter_check_result r = base();
  nt_check_side t;
  nt_check_side_text text;
  char err[128];

  memset(&t, 0, sizeof(t));
  t.outcome = 7; /* past the known ones: read modulo 4 */
  t.mapping = NT_MAPPING_UNKNOWN;
  t.nprobed = 2;
  CHECK(nt_addr_parse(&t.probed[0], "203.0.113.2:40000", "::", err,
                      sizeof(err)) == 0);
  CHECK(nt_addr_parse(&t.probed[1], "[2001:db8::2]:40000", "::", err,
                      sizeof(err)) == 0);
  CHECK(nt_addr_parse(&t.probes_from, "203.0.113.2:40001", "::", err,
                      sizeof(err)) == 0);
  t.probe_rounds = 4;
  t.probes_received = 3;
  t.replies_received = 2;
  r.peer.reported = 0;
  r.peer.public_address = "198.51.100.1:9";
  nt_check_report_side(&r.peer, &t, &text);
  CHECK(r.peer.reported == 1);
  CHECK(strcmp(r.peer.outcome, "refused") == 0);
  CHECK(r.peer.mapping == NATTER_NAT_MAPPING_ENDPOINT_INDEPENDENT);
  CHECK(strcmp(r.peer.public_address, "198.51.100.1:9") == 0);
  CHECK(r.peer.ncandidates == 2);
  CHECK(strcmp(r.peer.candidates[1], "[2001:db8::2]:40000") == 0);
  CHECK(strcmp(r.peer.probes_from, "203.0.113.2:40001") == 0);
  CHECK(r.peer.probe_rounds == 4 && r.peer.probes_received == 3 &&
        r.peer.replies_received == 2);
  expect(&r, NATTER_CHECK_REFUSED, "bob refuses us");
}

int main(void) {
  static const nt_test_case cases[] = {
      {"direct", test_direct},
      {"direct_predicted", test_direct_predicted},
      {"direct_birthday", test_direct_birthday},
      {"direct_portmap", test_direct_portmap},
      {"both_symmetric", test_both_symmetric},
      {"one_symmetric", test_one_symmetric},
      {"udp_blocked", test_udp_blocked},
      {"broker_answers", test_broker_answers},
      {"report_side", test_report_side},
      {NULL, NULL}};
  return nt_test_run(cases);
}
