/* A listener's refusal log (client/refusals.h): one line per requester a
 * minute with the count of those left out, at most NT_REFUSALS_LINES
 * lines a minute in all, and every refusal counted. */
#include <stdio.h>

#include "client/refusals.h"
#include "test.h"

#define S 1000000000ull

static const uint8_t key_a[NT_FINGERPRINT_LEN] = {1};
static const uint8_t key_b[NT_FINGERPRINT_LEN] = {2};

static void test_one_requester(void) {
  static nt_refusals r;
  uint64_t same = 99, others = 99;
  nt_refusals_init(&r);
  CHECK(nt_refusals_note(&r, "mallory", key_a, 5 * S, &same, &others) == 1);
  CHECK(same == 0 && others == 0);
  /* Asking again and again within the minute: counted, not logged. */
  for (int i = 1; i <= 800; i++) {
    CHECK(nt_refusals_note(&r, "mallory", key_a, 5 * S + (uint64_t)i * 10000000,
                           &same, &others) == 0);
  }
  CHECK(r.total == 801);
  /* The same name with another key, or another name, is another
   * requester. */
  CHECK(nt_refusals_note(&r, "mallory", key_b, 20 * S, &same, &others) == 1);
  CHECK(nt_refusals_note(&r, "trudy", key_a, 20 * S, &same, &others) == 1);
  /* A minute after its line, the next one says how many were left out. */
  CHECK(nt_refusals_note(&r, "mallory", key_a, 65 * S, &same, &others) == 1);
  CHECK(same == 800 && others == 0);
  CHECK(nt_refusals_note(&r, "mallory", key_a, 66 * S, &same, &others) == 0);
  CHECK(r.total == 805);
}

static void test_many_requesters(void) {
  static nt_refusals r;
  uint64_t same = 0, others = 0;
  char name[32];
  int lines = 0;
  nt_refusals_init(&r);
  /* 800 strangers in 10 s: NT_REFUSALS_LINES lines, every one counted. */
  for (int i = 0; i < 800; i++) {
    snprintf(name, sizeof(name), "stranger%d", i);
    lines += nt_refusals_note(&r, name, key_a, S + (uint64_t)i * 12500000,
                              &same, &others);
  }
  CHECK(lines == NT_REFUSALS_LINES);
  CHECK(r.total == 800);
  /* Those logged are remembered: the first stranger, logged at 1 s, is
   * due again only a minute later. */
  CHECK(nt_refusals_note(&r, "stranger0", key_a, 50 * S, &same, &others) == 0);
  /* The next interval's first line tells how many others were left out. */
  CHECK(nt_refusals_note(&r, "stranger900", key_a, 62 * S, &same, &others) ==
        1);
  CHECK(same == 0 && others == 800 - NT_REFUSALS_LINES);
  CHECK(nt_refusals_note(&r, "stranger0", key_a, 63 * S, &same, &others) == 1);
  CHECK(same == 1 && others == 0);
}

static void test_table_is_bounded(void) {
  static nt_refusals r;
  uint64_t same = 0, others = 0;
  char name[32];
  nt_refusals_init(&r);
  /* More requesters than the table holds, each in its own minute: the
   * oldest line's entry is reused, and each still gets its line. */
  for (int i = 0; i < NT_REFUSALS_TRACKED * 3; i++) {
    snprintf(name, sizeof(name), "peer%d", i);
    CHECK(nt_refusals_note(&r, name, key_b, (uint64_t)(i + 1) * 61 * S, &same,
                           &others) == 1);
  }
  CHECK(r.total == NT_REFUSALS_TRACKED * 3);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"one_requester", test_one_requester},
      {"many_requesters", test_many_requesters},
      {"table_is_bounded", test_table_is_bounded},
      {NULL, NULL}};
  return nt_test_run(cases);
}
