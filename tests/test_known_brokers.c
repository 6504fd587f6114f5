/* The client's known-brokers file (src/trust/known_brokers.c): trust on first
 * use, a changed key, malformed lines, atomic rewrites. */
#include "trust/known_brokers.h"

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

  snprintf(tmpdir, sizeof(tmpdir), "%s/natter-test-known-XXXXXX",
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

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
  }
}

static void read_file(const char *path, char *out, size_t outlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, out, outlen - 1) : -1;

  out[n > 0 ? n : 0] = '\0';
  if (fd >= 0) {
    close(fd);
  }
}

static void key(uint8_t *fp, uint8_t seed) {
  for (int i = 0; i < NT_FINGERPRINT_LEN; i++) {
    fp[i] = (uint8_t)(seed * 13 + i);
  }
}

static void test_first_use_then_pinned(void) {
  char path[512], dir[512], err[1024], text[4096];
  char hex1[NT_FINGERPRINT_HEX_LEN + 1], hex2[NT_FINGERPRINT_HEX_LEN + 1];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  nt_known_broker known;
  struct stat st;
  int found = -1;

  make_tmpdir();
  snprintf(dir, sizeof(dir), "%s/natter", tmpdir);
  snprintf(path, sizeof(path), "%s/natter/known_brokers", tmpdir);
  key(k1, 1);
  key(k2, 2);
  nt_fingerprint_hex(k1, hex1);
  nt_fingerprint_hex(k2, hex2);

  /* No file yet: nothing known, no error. */
  CHECK(nt_known_brokers_lookup(path, "broker.example:10000", &found, &known,
                                err, sizeof(err)) == 0);
  CHECK(found == 0);

  CHECK(nt_known_brokers_add(path, "broker.example:10000", k1, err,
                             sizeof(err)) == 0);
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
  CHECK(nt_known_brokers_lookup(path, "BROKER.example:10000", &found, &known,
                                err, sizeof(err)) == 0);
  CHECK(found == 1);
  CHECK(memcmp(known.fingerprint, k1, sizeof(k1)) == 0);
  CHECK(known.line == 4); /* after the three header lines */

  /* Another port is another broker. */
  CHECK(nt_known_brokers_lookup(path, "broker.example:10001", &found, &known,
                                err, sizeof(err)) == 0);
  CHECK(found == 0);
  CHECK(nt_known_brokers_add(path, "[::1]:10001", k2, err, sizeof(err)) == 0);
  /* Adding the same entry again changes nothing. */
  CHECK(nt_known_brokers_add(path, "broker.example:10000", k1, err,
                             sizeof(err)) == 0);
  read_file(path, text, sizeof(text));
  CHECK_STR_CONTAINS(text, "broker.example:10000 ");
  CHECK_STR_CONTAINS(text, hex1);
  CHECK_STR_CONTAINS(text, "[::1]:10001 ");
  CHECK(nt_known_brokers_lookup(path, "[::1]:10001", &found, &known, err,
                                sizeof(err)) == 0);
  CHECK(found == 1 && known.line == 5);
  CHECK(memcmp(known.fingerprint, k2, sizeof(k2)) == 0);

  /* A changed key: refused, the file untouched, both keys in the words. */
  CHECK(nt_known_brokers_add(path, "broker.example:10000", k2, err,
                             sizeof(err)) == NATTER_ERR_KEY_MISMATCH);
  CHECK_STR_CONTAINS(err, hex1);
  CHECK_STR_CONTAINS(err, hex2);
  CHECK_STR_CONTAINS(err, ":4 ");
  CHECK_STR_CONTAINS(err, "delete that line");
  CHECK(strchr(err, '\n') == NULL);
  {
    char after[4096];
    read_file(path, after, sizeof(after));
    CHECK(strcmp(text, after) == 0);
  }
  CHECK(nt_known_brokers_lookup(path, "broker.example:10000", &found, &known,
                                err, sizeof(err)) == 0);
  nt_known_brokers_mismatch_message(err, sizeof(err), path,
                                    "broker.example:10000", &known, k2);
  CHECK_STR_CONTAINS(err, "broker.example:10000");
  CHECK_STR_CONTAINS(err, hex1);
  CHECK_STR_CONTAINS(err, hex2);

  /* No temporary files left behind. */
  {
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
    CHECK(system(cmd) == 0);
  }
  remove_tmpdir();
}

static void test_hand_edited_file(void) {
  char path[512], err[1024], text[4096];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_known_broker known;
  int found;

  make_tmpdir();
  snprintf(path, sizeof(path), "%s/kb", tmpdir);
  key(k1, 1);
  /* Comments, blanks, tabs, ':' separators, CRLF, the first line counts,
   * and no newline at the end. */
  write_file(path,
             "# mine\n\n  \thost:1\t"
             "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:"
             "10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f\r\n"
             "host:1 "
             "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
             "ffff");
  CHECK(nt_known_brokers_lookup(path, "host:1", &found, &known, err,
                                sizeof(err)) == 0);
  CHECK(found == 1 && known.line == 3);
  CHECK(known.fingerprint[0] == 0 && known.fingerprint[31] == 0x1f);
  /* Appending after a last line without '\n' keeps both lines intact. */
  CHECK(nt_known_brokers_add(path, "other:2", k1, err, sizeof(err)) == 0);
  read_file(path, text, sizeof(text));
  CHECK_STR_CONTAINS(text, "ffff\nother:2 ");
  CHECK(nt_known_brokers_lookup(path, "other:2", &found, &known, err,
                                sizeof(err)) == 0);
  CHECK(found == 1 && known.line == 5);
  remove_tmpdir();
}

static void expect_malformed(const char *text, const char *where) {
  char path[512], err[1024] = "";
  nt_known_broker known;
  uint8_t k1[NT_FINGERPRINT_LEN];
  int found;

  snprintf(path, sizeof(path), "%s/bad", tmpdir);
  write_file(path, text);
  CHECK(nt_known_brokers_lookup(path, "x:1", &found, &known, err,
                                sizeof(err)) == NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, where);
  /* Nor is anything added to a file that does not parse. */
  key(k1, 1);
  CHECK(nt_known_brokers_add(path, "x:1", k1, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
}

#define HEX64 "0000000000000000000000000000000000000000000000000000000000000000"

static void test_malformed(void) {
  char longline[NT_KNOWN_BROKERS_MAX_LINE + 8];

  make_tmpdir();
  expect_malformed("# c\nhost " HEX64 "\n", "/bad:2: ");    /* no port */
  expect_malformed("host:0 " HEX64 "\n", "/bad:1: ");       /* port 0 */
  expect_malformed("host:99999 " HEX64 "\n", "/bad:1: ");   /* port */
  expect_malformed("host:1\n", "/bad:1: ");                 /* no key */
  expect_malformed("host:1 " HEX64 "00\n", "/bad:1: ");     /* long key */
  expect_malformed("host:1 " HEX64 " extra\n", "/bad:1: "); /* trailing */
  expect_malformed("\n\nhost:1 xyz\n", "/bad:3: ");         /* not hex */
  memset(longline, '#', sizeof(longline) - 1);
  longline[sizeof(longline) - 1] = '\0';
  expect_malformed(longline, "/bad:1: ");
  remove_tmpdir();
}

static void test_bad_address(void) {
  char path[512], err[1024];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_known_broker known;
  int found;

  make_tmpdir();
  snprintf(path, sizeof(path), "%s/kb", tmpdir);
  key(k1, 1);
  CHECK(nt_known_brokers_add(path, "no-port", k1, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(nt_known_brokers_add(path, "a b:1", k1, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(nt_known_brokers_add(path, "#x:1", k1, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(nt_known_brokers_add(path, "x:1\nevil:2", k1, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(nt_known_brokers_lookup(path, "", &found, &known, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(access(path, F_OK) != 0); /* nothing written */
  remove_tmpdir();
}

static void test_default_path(void) {
  char out[512];
  const char *old = getenv("XDG_CONFIG_HOME");
  char *saved = old ? strdup(old) : NULL;

  CHECK(setenv("XDG_CONFIG_HOME", "/some/where", 1) == 0);
  CHECK(nt_known_brokers_default_path(out, sizeof(out)) == 0);
  CHECK(strcmp(out, "/some/where/natter/known_brokers") == 0);
  if (saved) {
    setenv("XDG_CONFIG_HOME", saved, 1);
    free(saved);
  } else {
    unsetenv("XDG_CONFIG_HOME");
  }
}

/* The text of a known-brokers file, without the file (what
 * fuzz_known_brokers drives): the first listing counts, the address in
 * any case; a refusal names the file and line. */
static void test_find_in_text(void) {
  static const char text[] = "# c\nHost:1 " HEX64 "\nhost:1 ff" HEX64 "\n";
  char err[1024] = "";
  nt_known_broker known;
  int found;

  CHECK(nt_known_brokers_find("kb", "# only\n", 7, "host:1", &found, &known,
                              err, sizeof(err)) == 0);
  CHECK(found == 0);
  CHECK(nt_known_brokers_find("kb", text, 4 + 7 + 64 + 1, "HOST:1", &found,
                              &known, err, sizeof(err)) == 0);
  CHECK(found == 1 && known.line == 2 && known.fingerprint[0] == 0);
  CHECK(nt_known_brokers_find("kb", text, sizeof(text) - 1, "host:1", &found,
                              &known, err, sizeof(err)) == NATTER_ERR_INVALID);
  CHECK(found == 0);
  CHECK_STR_CONTAINS(err, "kb:3: ");
}

int main(void) {
  static const nt_test_case cases[] = {
      {"first_use_then_pinned", test_first_use_then_pinned},
      {"hand_edited_file", test_hand_edited_file},
      {"malformed", test_malformed},
      {"bad_address", test_bad_address},
      {"default_path", test_default_path},
      {"find_in_text", test_find_in_text},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
