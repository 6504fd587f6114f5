/* Admitted-keys files (src/trust/keylist.c) and broker tokens
 * (src/trust/token.c). */
#include "trust/keylist.h"
#include "trust/token.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "natter.h"
#include "test.h"

static char tmpdir[256];

static void make_tmpdir(void) {
  const char *base = getenv("TMPDIR");

  snprintf(tmpdir, sizeof(tmpdir), "%s/natter-test-keylist-XXXXXX",
           base && base[0] ? base : "/tmp");
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
}

static void remove_tmpdir(void) {
  char cmd[512];

  snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
  CHECK(system(cmd) == 0);
}

static void write_file(char *path, size_t pathlen, const char *name,
                       const char *text, mode_t mode) {
  int fd;

  snprintf(path, pathlen, "%s/%s", tmpdir, name);
  fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, mode);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    CHECK(fchmod(fd, mode) == 0);
    close(fd);
  }
}

#define FP_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define FP_B                                                                   \
  "FF:EE:DD:CC:BB:AA:99:88:77:66:55:44:33:22:11:00:"                           \
  "ff:ee:dd:cc:bb:aa:99:88:77:66:55:44:33:22:11:00"
#define FP_C "0000000000000000000000000000000000000000000000000000000000000001"

static void test_parse_and_lookup(void) {
  static const char text[] = "# admitted clients\n"
                             "\n" FP_A " alice\n"
                             "   # indented comment\n"
                             "\t" FP_B "\t bob \r\n" FP_C " carol"; /* no \n */
  nt_keylist *list = NULL;
  uint8_t fp[NT_FINGERPRINT_LEN];
  char err[512] = "";

  CHECK(nt_keylist_parse(&list, "keys", text, strlen(text), err, sizeof(err)) ==
        0);
  if (list == NULL) {
    fprintf(stderr, "%s\n", err);
    return;
  }
  CHECK(nt_keylist_count(list) == 3);
  CHECK(nt_fingerprint_parse(fp, FP_A) == 0);
  CHECK(nt_keylist_lookup(list, fp) != NULL &&
        strcmp(nt_keylist_lookup(list, fp), "alice") == 0);
  CHECK(nt_keylist_lookup_name(list, "alice") != NULL &&
        memcmp(nt_keylist_lookup_name(list, "alice"), fp, sizeof(fp)) == 0);
  CHECK(nt_fingerprint_parse(fp, FP_B) == 0);
  CHECK(nt_keylist_lookup(list, fp) != NULL &&
        strcmp(nt_keylist_lookup(list, fp), "bob") == 0);
  CHECK(nt_fingerprint_parse(fp, FP_C) == 0);
  CHECK(nt_keylist_lookup(list, fp) != NULL &&
        strcmp(nt_keylist_lookup(list, fp), "carol") == 0);
  fp[5] ^= 1;
  CHECK(nt_keylist_lookup(list, fp) == NULL);
  CHECK(nt_keylist_lookup_name(list, "dave") == NULL);
  nt_keylist_free(list);

  /* An empty list is valid: it admits nobody. */
  CHECK(nt_keylist_parse(&list, "keys", "", 0, err, sizeof(err)) == 0);
  CHECK(list != NULL && nt_keylist_count(list) == 0);
  CHECK(nt_keylist_lookup(list, fp) == NULL);
  nt_keylist_free(list);
}

/* |text| must be refused with "keys:LINE: ..." containing |needle|. */
static void expect_bad(const char *text, const char *where,
                       const char *needle) {
  nt_keylist *list = NULL;
  char err[512] = "";

  CHECK(nt_keylist_parse(&list, "keys", text, strlen(text), err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(list == NULL);
  CHECK_STR_CONTAINS(err, where);
  CHECK_STR_CONTAINS(err, needle);
  nt_keylist_free(list);
}

static void test_bad_lines(void) {
  char longline[NT_KEYLIST_MAX_LINE + 10];

  expect_bad("# ok\n" FP_A "\n", "keys:2: ", "one field");
  expect_bad(FP_A " alice extra\n", "keys:1: ", "more after the name");
  expect_bad(FP_A " alice # note\n", "keys:1: ", "more after the name");
  expect_bad("nothex alice\n", "keys:1: ", "not a key fingerprint");
  expect_bad(FP_A "00 alice\n", "keys:1: ", "not a key fingerprint");
  expect_bad(FP_A " bad/name\n", "keys:1: ", "name is invalid");
  expect_bad(FP_A
             " a234567890123456789012345678901234567890123456789012345678901"
             "234\n",
             "keys:1: ", "name is invalid");
  expect_bad(FP_A " alice\n" FP_A " bob\n",
             "keys:2: ", "key already listed on line 1");
  expect_bad(FP_A " alice\n\n" FP_C " alice\n",
             "keys:3: ", "name already listed on line 1");
  memset(longline, 'a', sizeof(longline) - 1);
  longline[sizeof(longline) - 1] = '\0';
  longline[0] = '#';
  expect_bad(longline, "keys:1: ", "longer than");
}

static void test_too_many_entries(void) {
  size_t per = NT_FINGERPRINT_HEX_LEN + 1 + 8 + 1;
  size_t n = NT_KEYLIST_MAX_ENTRIES + 1;
  char *text = malloc(n * per + 1), *p = text;
  nt_keylist *list = NULL;
  char err[512] = "";

  if (text == NULL) {
    CHECK(0);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    p += sprintf(p, "%064zx n%07zu\n", i, i);
  }
  /* Exactly the limit loads. */
  CHECK(nt_keylist_parse(&list, "keys", text, (size_t)(p - text) - per, err,
                         sizeof(err)) == 0);
  CHECK(list != NULL && nt_keylist_count(list) == NT_KEYLIST_MAX_ENTRIES);
  if (list != NULL) {
    uint8_t fp[NT_FINGERPRINT_LEN] = {0};
    fp[NT_FINGERPRINT_LEN - 1] = 0x42;
    CHECK(nt_keylist_lookup(list, fp) != NULL &&
          strcmp(nt_keylist_lookup(list, fp), "n0000066") == 0);
  }
  nt_keylist_free(list);
  list = NULL;
  CHECK(nt_keylist_parse(&list, "keys", text, (size_t)(p - text), err,
                         sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "more than");
  free(text);
}

static void test_load_file(void) {
  char path[512], err[512] = "";
  nt_keylist *list = NULL;

  make_tmpdir();
  write_file(path, sizeof(path), "keys", FP_A " alice\n", 0644);
  CHECK(nt_keylist_load(&list, path, err, sizeof(err)) == 0);
  CHECK(list != NULL && nt_keylist_count(list) == 1);
  nt_keylist_free(list);

  write_file(path, sizeof(path), "bad", "\n\nxyz alice\n", 0644);
  CHECK(nt_keylist_load(&list, path, err, sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "/bad:3: ");

  snprintf(path, sizeof(path), "%s/missing", tmpdir);
  CHECK(nt_keylist_load(&list, path, err, sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "does not exist");
  CHECK(list == NULL);
  remove_tmpdir();
}

/* ---- tokens ---- */

#define TOKEN "s3cret-T0ken-0123456789"

static void test_token_file(void) {
  char path[512], tok[NT_TOKEN_MAX + 1], warn[256], err[512];

  make_tmpdir();
  write_file(path, sizeof(path), "token", "  " TOKEN " \r\nsecond line\n",
             0600);
  CHECK(nt_token_read_file(tok, sizeof(tok), path, warn, sizeof(warn), err,
                           sizeof(err)) == 0);
  CHECK(strcmp(tok, TOKEN) == 0);
  CHECK(warn[0] == '\0');

  /* Readable by others: accepted, with a warning to log. */
  write_file(path, sizeof(path), "token", TOKEN, 0644);
  CHECK(nt_token_read_file(tok, sizeof(tok), path, warn, sizeof(warn), err,
                           sizeof(err)) == 0);
  CHECK(strcmp(tok, TOKEN) == 0);
  CHECK_STR_CONTAINS(warn, "readable by other users");
  CHECK_STR_CONTAINS(warn, "chmod 600");
  write_file(path, sizeof(path), "token", TOKEN, 0604);
  CHECK(nt_token_read_file(tok, sizeof(tok), path, warn, sizeof(warn), err,
                           sizeof(err)) == 0);
  CHECK_STR_CONTAINS(warn, "readable by other users");

  write_file(path, sizeof(path), "short", "tooshort\n", 0600);
  CHECK(nt_token_read_file(tok, sizeof(tok), path, warn, sizeof(warn), err,
                           sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, path);
  CHECK_STR_CONTAINS(err, "16 to 256");

  write_file(path, sizeof(path), "empty", "\n" TOKEN "\n", 0600);
  CHECK(nt_token_read_file(tok, sizeof(tok), path, warn, sizeof(warn), err,
                           sizeof(err)) == NATTER_ERR_INVALID);

  write_file(path, sizeof(path), "space", "0123456789 abcdefgh\n", 0600);
  CHECK(nt_token_read_file(tok, sizeof(tok), path, warn, sizeof(warn), err,
                           sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "position 11");

  snprintf(path, sizeof(path), "%s/missing", tmpdir);
  CHECK(nt_token_read_file(tok, sizeof(tok), path, warn, sizeof(warn), err,
                           sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "does not exist");
  remove_tmpdir();
}

static void test_token_env(void) {
  char tok[NT_TOKEN_MAX + 1], err[512], big[NT_TOKEN_MAX + 2];

  CHECK(setenv("NATTER_TEST_TOKEN", TOKEN, 1) == 0);
  CHECK(nt_token_from_env(tok, sizeof(tok), "NATTER_TEST_TOKEN", err,
                          sizeof(err)) == 0);
  CHECK(strcmp(tok, TOKEN) == 0);
  /* Too small an output buffer is refused, not truncated. */
  CHECK(nt_token_from_env(tok, 10, "NATTER_TEST_TOKEN", err, sizeof(err)) ==
        NATTER_ERR_INVALID);

  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  CHECK(setenv("NATTER_TEST_TOKEN", big, 1) == 0);
  CHECK(nt_token_from_env(tok, sizeof(tok), "NATTER_TEST_TOKEN", err,
                          sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "NATTER_TEST_TOKEN");

  CHECK(unsetenv("NATTER_TEST_TOKEN") == 0);
  CHECK(nt_token_from_env(tok, sizeof(tok), "NATTER_TEST_TOKEN", err,
                          sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "not set");
}

static void test_token_equal(void) {
  const char *t = TOKEN;
  size_t n = strlen(t);
  char other[64];

  CHECK(nt_token_equal(t, n, t, n) == 1);
  CHECK(nt_token_equal(t, n, TOKEN, n) == 1);
  CHECK(nt_token_equal(t, n, t, n - 1) == 0);
  CHECK(nt_token_equal(t, n - 1, t, n) == 0);
  CHECK(nt_token_equal(t, n, "", 0) == 0);
  for (size_t i = 0; i < n; i++) {
    memcpy(other, t, n);
    other[i] ^= 0x20;
    CHECK(nt_token_equal(t, n, other, n) == 0);
  }
}

/* The text of a token file, without the file (what fuzz_token drives):
 * the first line, trimmed; a refusal names the source. */
static void test_token_parse(void) {
  static const char text[] = "\t" TOKEN "  \r\nignored\n";
  char tok[NT_TOKEN_MAX + 1], err[512];

  CHECK(nt_token_parse(tok, sizeof(tok), text, sizeof(text) - 1, "here", err,
                       sizeof(err)) == 0);
  CHECK(strcmp(tok, TOKEN) == 0);
  CHECK(nt_token_parse(tok, sizeof(tok), "", 0, "here", err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "here");
  /* It fits exactly, or it is refused. */
  CHECK(nt_token_parse(tok, sizeof(TOKEN), TOKEN, sizeof(TOKEN) - 1, "here",
                       err, sizeof(err)) == 0);
  CHECK(nt_token_parse(tok, sizeof(TOKEN) - 1, TOKEN, sizeof(TOKEN) - 1, "here",
                       err, sizeof(err)) == NATTER_ERR_INVALID);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"parse_and_lookup", test_parse_and_lookup},
      {"bad_lines", test_bad_lines},
      {"too_many_entries", test_too_many_entries},
      {"load_file", test_load_file},
      {"token_file", test_token_file},
      {"token_parse", test_token_parse},
      {"token_env", test_token_env},
      {"token_equal", test_token_equal},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
