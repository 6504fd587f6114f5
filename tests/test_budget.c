/* Budgets per source (src/base/budget.c): which addresses are one source,
 * token buckets per key with a burst and an hourly rate, the bound on
 * remembered keys (failing closed), giving back, and the log gate. */
#include "base/budget.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "test.h"

#define HOUR_NS (3600ull * 1000000000ull)

static const uint8_t seed[NT_HASHMAP_SEED_LEN] = {1, 2, 3};

static struct sockaddr_storage addr(const char *ip, int port) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (strchr(ip, ':')) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &s6->sin6_addr);
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &s4->sin_addr);
  }
  return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_sources(void) {
  struct sockaddr_storage a = addr("192.0.2.1", 1), b = addr("192.0.2.1", 2),
                          c = addr("192.0.2.2", 1),
                          m = addr("::ffff:192.0.2.1", 3),
                          v1 = addr("2001:db8:1:2::1", 1),
                          v2 = addr("2001:db8:1:2:ffff::9", 1),
                          v3 = addr("2001:db8:1:3::1", 1);
  uint8_t k[NT_SOURCE_KEY_MAX];
  CHECK(nt_source_same(SA(a), SA(b))); /* the port is not the source */
  CHECK(!nt_source_same(SA(a), SA(c)));
  CHECK(nt_source_same(SA(a), SA(m)));   /* v4-mapped is its IPv4 address */
  CHECK(nt_source_same(SA(v1), SA(v2))); /* one /64 */
  CHECK(!nt_source_same(SA(v1), SA(v3)));
  CHECK(nt_source_key(SA(a), k) == 4);
  CHECK(nt_source_key(SA(v1), k) == 8);
  struct sockaddr un = {.sa_family = AF_UNIX};
  CHECK(nt_source_key(&un, k) == 0);
  CHECK(!nt_source_same(&un, &un));
}

static void test_bucket(void) {
  nt_budget b;
  uint64_t t = 1000;
  nt_budget_init(&b, seed, 60, 3, 100); /* one a minute, burst 3 */
  for (int i = 0; i < 3; i++) {
    CHECK(nt_budget_take(&b, "a", 1, t) == 1);
  }
  CHECK(nt_budget_take(&b, "a", 1, t) == 0);
  CHECK(nt_budget_take(&b, "b", 1, t) == 1); /* another key: its own */
  /* 30 s: half a token; 60 s: one. */
  CHECK(nt_budget_take(&b, "a", 1, t + HOUR_NS / 120) == 0);
  CHECK(nt_budget_take(&b, "a", 1, t + HOUR_NS / 60) == 1);
  CHECK(nt_budget_take(&b, "a", 1, t + HOUR_NS / 60) == 0);
  /* Given back: the thing it paid for did not happen. */
  nt_budget_give_back(&b, "a", 1);
  CHECK(nt_budget_take(&b, "a", 1, t + HOUR_NS / 60) == 1);
  /* Never more than the burst, however long it waited. */
  for (int i = 0; i < 3; i++) {
    CHECK(nt_budget_take(&b, "a", 1, t + 10 * HOUR_NS) == 1);
  }
  CHECK(nt_budget_take(&b, "a", 1, t + 10 * HOUR_NS) == 0);
  CHECK(nt_budget_take(&b, "", 0, t) == 0);
  nt_budget_clear(&b);

  nt_budget_init(&b, seed, 0, 3, 100); /* 0: no limit, nothing stored */
  for (int i = 0; i < 1000; i++) {
    CHECK(nt_budget_take(&b, "a", 1, t) == 1);
  }
  CHECK(nt_budget_entries(&b) == 0);
  nt_budget_clear(&b);
}

static void test_table_bound(void) {
  nt_budget b;
  uint64_t t = 5;
  uint32_t key;
  nt_budget_init(&b, seed, 10, 2, 64);
  for (key = 0; key < 64; key++) {
    CHECK(nt_budget_take(&b, &key, sizeof(key), t) == 1);
  }
  CHECK(nt_budget_entries(&b) == 64);
  /* Full of keys still spending: a new key gets nothing (fails closed),
   * and the table does not grow. */
  key = 1000;
  CHECK(nt_budget_take(&b, &key, sizeof(key), t + 1) == 0);
  CHECK(nt_budget_entries(&b) == 64);
  /* An hour on, every bucket has filled up again: forgotten to make
   * room. */
  CHECK(nt_budget_take(&b, &key, sizeof(key), t + HOUR_NS) == 1);
  CHECK(nt_budget_entries(&b) == 1);
  nt_budget_clear(&b);
}

static void test_log_gate(void) {
  nt_log_gate g = {0};
  unsigned held = 99;
  CHECK(nt_log_gate_pass(&g, 0, &held) == 1 && held == 0);
  CHECK(nt_log_gate_pass(&g, 500000000ull, &held) == 0);
  CHECK(nt_log_gate_pass(&g, 900000000ull, &held) == 0);
  CHECK(nt_log_gate_pass(&g, 1000000001ull, &held) == 1 && held == 2);
  CHECK(nt_log_gate_pass(&g, 1000000002ull, &held) == 0);

  /* A gate of its own interval (the client's prediction budgets: 10 s). */
  nt_log_gate slow = {.interval_ns = 10000000000ull};
  CHECK(nt_log_gate_pass(&slow, 5, &held) == 1 && held == 0);
  CHECK(nt_log_gate_pass(&slow, 2000000000ull, &held) == 0);
  CHECK(nt_log_gate_pass(&slow, 10000000004ull, &held) == 0);
  CHECK(nt_log_gate_pass(&slow, 10000000005ull, &held) == 1 && held == 2);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"sources", test_sources},
      {"bucket", test_bucket},
      {"table_bound", test_table_bound},
      {"log_gate", test_log_gate},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
