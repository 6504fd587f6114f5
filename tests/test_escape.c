/* nt_escape: what reaches a log line or an event message from the network
 * cannot forge a line or drive a terminal. */
#include "base/escape.h"
#include "test.h"

static void check_escape(const char *in, const char *want) {
  char out[256];
  nt_escape(out, sizeof(out), in);
  if (strcmp(out, want) != 0) {
    fprintf(stderr, "nt_escape: got \"%s\", want \"%s\"\n", out, want);
    nt_test_failures++;
  }
}

static void test_passes_printable(void) {
  check_escape("", "");
  check_escape("bob runs \"rsync\" (pid 42)", "bob runs \"rsync\" (pid 42)");
  check_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82",
               "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82");
  check_escape("a\\b", "a\\b");
}

static void test_escapes_controls(void) {
  /* The forged log line of issue 8. */
  check_escape("evil\nnatter: root checked in from 1.2.3.4\x1b[2J",
               "evil\\nnatter: root checked in from 1.2.3.4\\x1b[2J");
  check_escape("a\rb\tc\x7f", "a\\rb\\tc\\x7f");
  check_escape("\x01\x1f", "\\x01\\x1f");
  /* C1 controls (CSI is U+009B) and the Unicode line separators. */
  check_escape("\xc2\x9b" "2J", "\\xc2\\x9b" "2J");
  check_escape("\xe2\x80\xa8", "\\xe2\\x80\\xa8");
}

static void test_escapes_bad_utf8(void) {
  check_escape("\xff\xfe", "\\xff\\xfe");
  check_escape("\xc0\xaf", "\\xc0\\xaf");         /* overlong '/' */
  check_escape("\xe0\x80\xaf", "\\xe0\\x80\\xaf"); /* overlong */
  check_escape("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* surrogate */
  check_escape("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
  check_escape("\xe2\x82", "\\xe2\\x82");          /* truncated at end */
  check_escape("\xe2x", "\\xe2x");
}

static void test_truncates_whole(void) {
  char out[6];
  CHECK(nt_escape(out, sizeof(out), "abcdefgh") == 5);
  CHECK(strcmp(out, "abcde") == 0);
  /* An escape or a UTF-8 character is never cut in half. */
  CHECK(nt_escape(out, sizeof(out), "abcd\n") == 4);
  CHECK(strcmp(out, "abcd") == 0);
  CHECK(nt_escape(out, sizeof(out), "abc\xe2\x82\xac") == 3);
  CHECK(strcmp(out, "abc") == 0);
  char one[1];
  CHECK(nt_escape(one, sizeof(one), "x") == 0 && one[0] == '\0');
}

int main(void) {
  static const nt_test_case cases[] = {
      {"passes_printable", test_passes_printable},
      {"escapes_controls", test_escapes_controls},
      {"escapes_bad_utf8", test_escapes_bad_utf8},
      {"truncates_whole", test_truncates_whole},
      {NULL, NULL}};
  return nt_test_run(cases);
}
