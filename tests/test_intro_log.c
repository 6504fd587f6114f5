/* Unit tests for the broker's ring of introductions
 * (src/broker/intro_log.c): empty, partly filled, exactly full and
 * wrapped many times over, the entries always come back newest first,
 * whole, and the ring never holds more than NT_INTRO_LOG_ENTRIES. */
#include <stdio.h>
#include <string.h>

#include "broker/intro_log.h"
#include "codec/mapping.h"
#include "test.h"

static nt_intro_entry entry(uint64_t i) {
  nt_intro_entry e;
  memset(&e, 0, sizeof(e));
  e.unix_ms = 1000 * i;
  snprintf(e.requester, sizeof(e.requester), "r%llu", (unsigned long long)i);
  snprintf(e.listener, sizeof(e.listener), "l%llu", (unsigned long long)i);
  e.outcome = (uint8_t)(i % NT_INTRO_OUTCOMES);
  e.relay = i % 2;
  e.relay_token[0] = (uint8_t)i;
  return e;
}

static void test_empty(void) {
  nt_intro_log l;
  nt_intro_log_init(&l);
  CHECK(nt_intro_log_count(&l) == 0);
  CHECK(nt_intro_log_at(&l, 0) == NULL);
}

static void check_added(size_t added) {
  static nt_intro_log l; /* 10 kB: not on the stack of a test */
  nt_intro_log_init(&l);
  for (uint64_t i = 1; i <= added; i++) {
    nt_intro_entry e = entry(i);
    nt_intro_log_add(&l, &e);
  }
  size_t held = added < NT_INTRO_LOG_ENTRIES ? added : NT_INTRO_LOG_ENTRIES;
  CHECK(nt_intro_log_count(&l) == held);
  /* Newest first: the last |held| entries added, in reverse. */
  for (size_t i = 0; i < held; i++) {
    const nt_intro_entry *e = nt_intro_log_at(&l, i);
    nt_intro_entry want = entry(added - i);
    CHECK(e && memcmp(e, &want, sizeof(want)) == 0);
  }
  CHECK(nt_intro_log_at(&l, held) == NULL);
  CHECK(nt_intro_log_at(&l, (size_t)-1) == NULL);
}

static void test_partial(void) {
  check_added(1);
  check_added(5);
}

static void test_full_and_wrapped(void) {
  check_added(NT_INTRO_LOG_ENTRIES - 1);
  check_added(NT_INTRO_LOG_ENTRIES);
  check_added(NT_INTRO_LOG_ENTRIES + 1);
  check_added(3 * NT_INTRO_LOG_ENTRIES + 7);
}

static void test_outcome_names(void) {
  CHECK(strcmp(nt_intro_outcome_name(NT_INTRO_INTRODUCED), "introduced") == 0);
  CHECK(strcmp(nt_intro_outcome_name(NT_INTRO_REFUSED), "refused") == 0);
  CHECK(strcmp(nt_intro_outcome_name(NT_INTRO_TIMEOUT), "timeout") == 0);
  CHECK(strcmp(nt_intro_outcome_name(NT_INTRO_RATE_LIMITED), "rate-limited") ==
        0);
  for (int i = 0; i < NT_INTRO_OUTCOMES; i++) {
    CHECK(strcmp(nt_intro_outcome_name(i), "?") != 0);
  }
  CHECK(strcmp(nt_intro_outcome_name(-1), "?") == 0);
  CHECK(strcmp(nt_intro_outcome_name(NT_INTRO_OUTCOMES), "?") == 0);
}

static void test_needs_prediction(void) {
  enum { U = NT_MAPPING_UNKNOWN, E = NT_MAPPING_ENDPOINT_INDEPENDENT };
  enum { S = NT_MAPPING_PER_DESTINATION };
  CHECK(nt_intro_needs_prediction(S, E) && nt_intro_needs_prediction(E, S));
  CHECK(!nt_intro_needs_prediction(E, E));
  CHECK(!nt_intro_needs_prediction(S, S)); /* prediction cannot help */
  CHECK(!nt_intro_needs_prediction(S, U) && !nt_intro_needs_prediction(U, S));
  CHECK(!nt_intro_needs_prediction(U, U));
}

static void test_size_is_fixed(void) {
  /* What doc/operations.md and intro_log.h say a broker spends on it. */
  CHECK(sizeof(nt_intro_entry) == 160);
  CHECK(sizeof(nt_intro_log) < 11 * 1024);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"empty", test_empty},
      {"partial", test_partial},
      {"full_and_wrapped", test_full_and_wrapped},
      {"outcome_names", test_outcome_names},
      {"needs_prediction", test_needs_prediction},
      {"size_is_fixed", test_size_is_fixed},
      {NULL, NULL}};
  return nt_test_run(cases);
}
