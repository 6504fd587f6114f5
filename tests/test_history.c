/* Unit tests for the dashboard's ring of samples (src/status/history.c):
 * empty, partly filled, exactly full and wrapped many times over, the
 * points always come back oldest first and the ring never holds more
 * than NT_HISTORY_POINTS. */
#include "status/history.h"
#include "test.h"

static nt_history_point point(uint64_t i) {
  nt_history_point p = {1000 * i, 10 * i, 20 * i, 30 * i, i};
  return p;
}

static void test_empty(void) {
  nt_history h;
  nt_history_init(&h);
  CHECK(nt_history_count(&h) == 0);
  CHECK(nt_history_at(&h, 0) == NULL);
}

static void test_partial(void) {
  nt_history h;
  nt_history_init(&h);
  for (uint64_t i = 1; i <= 5; i++) {
    nt_history_point p = point(i);
    nt_history_add(&h, &p);
  }
  CHECK(nt_history_count(&h) == 5);
  for (size_t i = 0; i < 5; i++) {
    const nt_history_point *p = nt_history_at(&h, i);
    CHECK(p && p->count == i + 1 && p->unix_ms == 1000 * (i + 1) &&
          p->bytes_received == 10 * (i + 1) && p->bytes_sent == 20 * (i + 1) &&
          p->relayed_bytes == 30 * (i + 1));
  }
  CHECK(nt_history_at(&h, 5) == NULL);
}

static void check_wrapped(size_t added) {
  nt_history h;
  nt_history_init(&h);
  for (uint64_t i = 1; i <= added; i++) {
    nt_history_point p = point(i);
    nt_history_add(&h, &p);
  }
  size_t held = added < NT_HISTORY_POINTS ? added : NT_HISTORY_POINTS;
  CHECK(nt_history_count(&h) == held);
  /* Oldest first: the last |held| points added, in order. */
  for (size_t i = 0; i < held; i++) {
    const nt_history_point *p = nt_history_at(&h, i);
    CHECK(p && p->count == added - held + 1 + i);
  }
  CHECK(nt_history_at(&h, held) == NULL);
  CHECK(nt_history_at(&h, (size_t)-1) == NULL);
}

static void test_full_and_wrapped(void) {
  check_wrapped(NT_HISTORY_POINTS - 1);
  check_wrapped(NT_HISTORY_POINTS);
  check_wrapped(NT_HISTORY_POINTS + 1);
  check_wrapped(3 * NT_HISTORY_POINTS + 7);
}

static void test_size_is_fixed(void) {
  /* What doc/operations.md says a process spends on it. */
  CHECK(sizeof(nt_history_point) == 40);
  CHECK(sizeof(nt_history) < 15 * 1024);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"empty", test_empty},
      {"partial", test_partial},
      {"full_and_wrapped", test_full_and_wrapped},
      {"size_is_fixed", test_size_is_fixed},
      {NULL, NULL}};
  return nt_test_run(cases);
}
