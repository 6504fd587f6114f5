/* natter_log_json and natter_log_timestamp: the JSON log format keeps its
 * keys, escapes what JSON needs, and says how long a cut line would be. */
#include "natter.h"
#include "test.h"

static void check_json(natter_log_level level, uint64_t ms, const char *line,
                       const char *want) {
  char out[512];
  size_t n = natter_log_json(out, sizeof(out), level, ms, line);
  if (strcmp(out, want) != 0 || n != strlen(want)) {
    fprintf(stderr, "natter_log_json: got %s (%zu), want %s\n", out, n, want);
    nt_test_failures++;
  }
}

static void test_keys_and_levels(void) {
  check_json(NATTER_LOG_INFO, 0, "bob checked in",
             "{\"level\":\"info\",\"msg\":\"bob checked in\"}");
  check_json(NATTER_LOG_ERROR, 1714564800123ULL, "x",
             "{\"time\":\"2024-05-01T12:00:00.123Z\",\"level\":\"error\","
             "\"msg\":\"x\"}");
  check_json(NATTER_LOG_WARN, 0, "", "{\"level\":\"warn\",\"msg\":\"\"}");
  check_json(NATTER_LOG_DEBUG, 0, NULL, "{\"level\":\"debug\",\"msg\":\"\"}");
}

static void test_escaping(void) {
  /* What nt_escape leaves (quotes, backslashes of \xHH, UTF-8) and what a
   * caller's own line may hold (controls). */
  check_json(NATTER_LOG_INFO, 0, "invalid name \"a\\x1bb\"",
             "{\"level\":\"info\",\"msg\":\"invalid name \\\"a\\\\x1bb\\\"\"}");
  check_json(NATTER_LOG_INFO, 0,
             "a\nb\x7f"
             "caf\xc3\xa9",
             "{\"level\":\"info\",\"msg\":\"a\\u000ab\\u007fcaf\xc3\xa9\"}");
}

static void test_cut(void) {
  char out[16];
  size_t n = natter_log_json(out, sizeof(out), NATTER_LOG_INFO, 0, "hello");
  CHECK(n == strlen("{\"level\":\"info\",\"msg\":\"hello\"}"));
  CHECK(strlen(out) == sizeof(out) - 1);
  CHECK(natter_log_json(NULL, 0, NATTER_LOG_INFO, 0, "x") == 0);
  char ts[32];
  CHECK(natter_log_timestamp(ts, sizeof(ts), 0) == 24);
  CHECK(strcmp(ts, "1970-01-01T00:00:00.000Z") == 0);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"keys_and_levels", test_keys_and_levels},
      {"escaping", test_escaping},
      {"cut", test_cut},
      {NULL, NULL}};
  return nt_test_run(cases);
}
