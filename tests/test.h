/* A minimal test harness in the spirit of libevent's tinytest: each test is
 * a function; CHECK records a failure and carries on; the runner prints
 * "N passed, N failed" and exits non-zero on any failure. */
#ifndef NT_TEST_H
#define NT_TEST_H

#include <stdio.h>
#include <string.h>

static int nt_test_failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      nt_test_failures++;                                                      \
    }                                                                          \
  } while (0)

#define CHECK_STR_CONTAINS(haystack, needle)                                   \
  do {                                                                         \
    if (strstr((haystack), (needle)) == NULL) {                                \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,     \
              __LINE__, (haystack), (needle));                                 \
      nt_test_failures++;                                                      \
    }                                                                          \
  } while (0)

typedef struct nt_test_case {
  const char *name;
  void (*fn)(void);
} nt_test_case;

static inline int nt_test_run(const nt_test_case *cases) {
  int passed = 0, failed = 0;
  for (const nt_test_case *c = cases; c->name; c++) {
    int before = nt_test_failures;
    c->fn();
    if (nt_test_failures == before) {
      passed++;
    } else {
      fprintf(stderr, "FAIL %s\n", c->name);
      failed++;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

#endif
