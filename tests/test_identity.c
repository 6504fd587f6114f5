/* Identity key files, fingerprints and session set-up (src/trust/tls.c). The
 * handshake itself is exercised by the integration tests. */
#include "trust/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

/* Each test works in its own fresh directory and removes it afterwards. */
static char tmpdir[64];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/natter-test-identity-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
}

static void path_in_tmp(char *out, size_t outlen, const char *name) {
  snprintf(out, outlen, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const void *data, size_t len,
                       mode_t mode) {
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, mode);
  CHECK(fd >= 0);
  if (fd < 0) {
    return;
  }
  CHECK(write(fd, data, len) == (ssize_t)len);
  CHECK(fchmod(fd, mode) == 0);
  close(fd);
}

/* Removes what the tests leave: files, then the directories that held
 * them, deepest first. */
static void remove_tmpdir(void) {
  static const char *const names[] = {"sub/deeper/identity.key",
                                      "sub/deeper",
                                      "sub",
                                      "identity.key",
                                      "other.key",
                                      "garbage.key",
                                      "empty.key",
                                      "dir.key",
                                      "big.key",
                                      "openssl.key",
                                      "other-type.key",
                                      "theirs.key",
                                      "fifo.key"};
  char path[256];

  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    path_in_tmp(path, sizeof(path), names[i]);
    if (unlink(path) != 0 && errno == EISDIR) {
      rmdir(path);
    }
  }
  CHECK(rmdir(tmpdir) == 0);
}

static void test_create_and_reload(void) {
  char path[256], subdir[256], deeper[256], err[512];
  nt_identity *a = NULL, *b = NULL;
  struct stat st;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "sub/deeper/identity.key");
  path_in_tmp(subdir, sizeof(subdir), "sub");
  path_in_tmp(deeper, sizeof(deeper), "sub/deeper");

  CHECK(nt_identity_load_or_create(&a, path, err, sizeof(err)) == 0);
  CHECK(a != NULL);
  CHECK(stat(path, &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(stat(subdir, &st) == 0 && (st.st_mode & 07777) == 0700);
  CHECK(stat(deeper, &st) == 0 && (st.st_mode & 07777) == 0700);
  /* The temporary file is gone after the rename. */
  CHECK(rmdir(deeper) != 0 && errno == ENOTEMPTY);

  CHECK(nt_identity_load_or_create(&b, path, err, sizeof(err)) == 0);
  CHECK(b != NULL);
  if (a != NULL && b != NULL) {
    CHECK(memcmp(nt_identity_fingerprint(a), nt_identity_fingerprint(b),
                 NT_FINGERPRINT_LEN) == 0);
    /* A restarted process sends the stateless resets its predecessor
     * announced: the secret is the key's, not the process's. */
    CHECK(memcmp(nt_identity_reset_secret(a), nt_identity_reset_secret(b),
                 NT_RESET_SECRET_LEN) == 0);
  }
  nt_identity_free(a);
  nt_identity_free(b);
  remove_tmpdir();
}

static void test_existing_parent_keeps_mode(void) {
  char path[256], err[512];
  nt_identity *id = NULL;
  struct stat st;

  make_tmpdir();
  CHECK(chmod(tmpdir, 0755) == 0);
  path_in_tmp(path, sizeof(path), "identity.key");
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == 0);
  CHECK(stat(tmpdir, &st) == 0 && (st.st_mode & 07777) == 0755);
  nt_identity_free(id);
  remove_tmpdir();
}

static void test_two_identities_differ(void) {
  char path1[256], path2[256], err[512];
  nt_identity *a = NULL, *b = NULL, *c = NULL;

  make_tmpdir();
  path_in_tmp(path1, sizeof(path1), "identity.key");
  path_in_tmp(path2, sizeof(path2), "other.key");
  CHECK(nt_identity_load_or_create(&a, path1, err, sizeof(err)) == 0);
  CHECK(nt_identity_load_or_create(&b, path2, err, sizeof(err)) == 0);
  CHECK(nt_identity_new_ephemeral(&c, err, sizeof(err)) == 0);
  if (a != NULL && b != NULL && c != NULL) {
    CHECK(memcmp(nt_identity_fingerprint(a), nt_identity_fingerprint(b),
                 NT_FINGERPRINT_LEN) != 0);
    CHECK(memcmp(nt_identity_fingerprint(a), nt_identity_fingerprint(c),
                 NT_FINGERPRINT_LEN) != 0);
    CHECK(memcmp(nt_identity_reset_secret(a), nt_identity_reset_secret(b),
                 NT_RESET_SECRET_LEN) != 0);
    CHECK(memcmp(nt_identity_reset_secret(a), nt_identity_reset_secret(c),
                 NT_RESET_SECRET_LEN) != 0);
    /* Derived, not the key itself, and not the fingerprint. */
    CHECK(memcmp(nt_identity_reset_secret(a), nt_identity_fingerprint(a),
                 NT_FINGERPRINT_LEN) != 0);
  }
  nt_identity_free(a);
  nt_identity_free(b);
  nt_identity_free(c);
  remove_tmpdir();
}

static void test_group_readable_refused(void) {
  char path[256], err[512];
  nt_identity *id = NULL;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "identity.key");
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == 0);
  nt_identity_free(id);
  id = NULL;

  CHECK(chmod(path, 0644) == 0);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK(id == NULL);
  CHECK_STR_CONTAINS(err, "chmod 600");
  CHECK_STR_CONTAINS(err, path);

  /* Writable by the group is as bad as readable: the key can be swapped. */
  CHECK(chmod(path, 0620) == 0);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK_STR_CONTAINS(err, "chmod 600");

  /* The user's fix works. */
  CHECK(chmod(path, 0600) == 0);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == 0);
  nt_identity_free(id);
  remove_tmpdir();
}

static void test_garbage_refused(void) {
  static const char garbage[] = "this is not a key\n";
  char path[256], err[512];
  nt_identity *id = NULL;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "garbage.key");
  write_file(path, garbage, sizeof(garbage) - 1, 0600);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK(id == NULL);
  CHECK_STR_CONTAINS(err, path);
  CHECK_STR_CONTAINS(err, "move the file away");
  CHECK(strchr(err, '\n') == NULL);
  remove_tmpdir();
}

static void test_empty_refused(void) {
  char path[256], err[512];
  nt_identity *id = NULL;
  struct stat st;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "empty.key");
  write_file(path, "", 0, 0600);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK(id == NULL);
  CHECK_STR_CONTAINS(err, path);
  CHECK_STR_CONTAINS(err, "empty");
  /* Refused, never silently replaced by a new identity. */
  CHECK(stat(path, &st) == 0 && st.st_size == 0);
  remove_tmpdir();
}

static void test_directory_refused(void) {
  char path[256], err[512];
  nt_identity *id = NULL;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "dir.key");
  CHECK(mkdir(path, 0700) == 0);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK(id == NULL);
  CHECK_STR_CONTAINS(err, "not a regular file");

  /* A path ending in '/' cannot name a key file. */
  strcat(path, "/");
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK_STR_CONTAINS(err, path);
  remove_tmpdir();
}

/* The checks of src/trust/keyfile.c reach the user through the identity: a key
 * file another user owns is refused (root can give a file away), and a
 * FIFO at the path is refused at once instead of blocking start-up. */
static void test_other_owner_and_fifo_refused(void) {
  char path[256], err[512];
  nt_identity *id = NULL;

  make_tmpdir();
  if (geteuid() == 0) {
    path_in_tmp(path, sizeof(path), "theirs.key");
    CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == 0);
    nt_identity_free(id);
    id = NULL;
    CHECK(chown(path, 65534, 65534) == 0);
    CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
    CHECK(id == NULL);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "belongs to uid 65534");
  }
  path_in_tmp(path, sizeof(path), "fifo.key");
  CHECK(mkfifo(path, 0600) == 0);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK(id == NULL);
  CHECK_STR_CONTAINS(err, "not a regular file");
  remove_tmpdir();
}

static void test_large_file_refused(void) {
  char path[256], err[512];
  nt_identity *id = NULL;
  size_t len = 1024 * 1024;
  char *big = malloc(len);

  CHECK(big != NULL);
  if (big == NULL) {
    return;
  }
  memset(big, 'A', len);
  make_tmpdir();
  path_in_tmp(path, sizeof(path), "big.key");
  write_file(path, big, len, 0600);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK(id == NULL);
  CHECK_STR_CONTAINS(err, "64 KiB");
  free(big);
  remove_tmpdir();
}

/* A P-256 key made by `openssl genpkey -algorithm EC -pkeyopt
 * ec_paramgen_curve:P-256`, in PKCS#8 and in OpenSSL's traditional SEC1
 * form, and `openssl pkey -pubout -outform DER | sha256sum` of it: users
 * can bring their own key and check its fingerprint with standard tools. */
static const char openssl_p256_pkcs8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglIBDaBT52BrFkOyv\n"
    "YLQP4Fr+jfercBSubUU1GrTxFvGhRANCAAQm1/Lhx+ekk2ZNFiaOI4InMcxNrfzT\n"
    "Nu/XjIhOKuMfoA1abP4yA7nQ/AMSUEvY+EeAYGdrwxr8+g2DeLPO1A/y\n"
    "-----END PRIVATE KEY-----\n";
static const char openssl_p256_sec1[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIJSAQ2gU+dgaxZDsr2C0D+Ba/o33q3AUrm1FNRq08RbxoAoGCCqGSM49\n"
    "AwEHoUQDQgAEJtfy4cfnpJNmTRYmjiOCJzHMTa380zbv14yITirjH6ANWmz+MgO5\n"
    "0PwDElBL2PhHgGBna8Ma/PoNg3izztQP8g==\n"
    "-----END EC PRIVATE KEY-----\n";
static const char openssl_p256_fp[] =
    "77c50ebca4e59580f37171d0f3e0617c767885112483b360d517962b3c6ace9e";

static void check_openssl_key(const char *pem) {
  char path[256], err[512], hex[NT_FINGERPRINT_HEX_LEN + 1];
  nt_identity *id = NULL;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "openssl.key");
  write_file(path, pem, strlen(pem), 0600);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == 0);
  if (id != NULL) {
    nt_fingerprint_hex(nt_identity_fingerprint(id), hex);
    CHECK(strcmp(hex, openssl_p256_fp) == 0);
  }
  nt_identity_free(id);
  remove_tmpdir();
}

static void test_openssl_key_accepted(void) {
  check_openssl_key(openssl_p256_pkcs8);
  check_openssl_key(openssl_p256_sec1);
}

/* Valid keys of another kind are refused, not used as they are: every
 * natter identity is ECDSA P-256. */
static void check_key_refused(const char *pem) {
  char path[256], err[512];
  nt_identity *id = NULL;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "other-type.key");
  write_file(path, pem, strlen(pem), 0600);
  CHECK(nt_identity_load_or_create(&id, path, err, sizeof(err)) == -1);
  CHECK(id == NULL);
  CHECK_STR_CONTAINS(err, path);
  CHECK_STR_CONTAINS(err, "P-256");
  remove_tmpdir();
}

static void test_other_key_type_refused(void) {
  check_key_refused(
      "-----BEGIN PRIVATE KEY-----\n"
      "MC4CAQAwBQYDK2VwBCIEIJGbZNHkuC8sqT9xtjqqcSXmQEtP1R4jzZUJXYQkNccF\n"
      "-----END PRIVATE KEY-----\n");
  check_key_refused(
      "-----BEGIN PRIVATE KEY-----\n"
      "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCRkw86hJEST8BZP5Dy\n"
      "xLYaeIHgUdVjqkNKLsHQlTgYsqxKfK3j8YYjDpyh++A18SGhZANiAARTRSJ+nXlc\n"
      "Jr79dgmlwTUVsjED4Z838MKsciuKpAflmYUCwr3HRkuGX/KLzHKEP1TFWocH4hOg\n"
      "+xr9ic0Zx5sasNRpXb9ANl7DV9uEsxQ3EbXatAIr5sjMx3B3pBKCsqo=\n"
      "-----END PRIVATE KEY-----\n");
}

static void test_tiny_errlen(void) {
  char path[256];
  char err[8];
  nt_identity *id = NULL;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "dir.key");
  CHECK(mkdir(path, 0700) == 0);

  memset(err, 'X', sizeof(err));
  CHECK(nt_identity_load_or_create(&id, path, err, 4) == -1);
  CHECK(memchr(err, '\0', 4) != NULL);
  CHECK(err[4] == 'X' && err[7] == 'X');

  memset(err, 'X', sizeof(err));
  CHECK(nt_identity_load_or_create(&id, path, err, 1) == -1);
  CHECK(err[0] == '\0' && err[1] == 'X');

  err[0] = 'X';
  CHECK(nt_identity_load_or_create(&id, path, err, 0) == -1);
  CHECK(err[0] == 'X');
  CHECK(nt_identity_load_or_create(&id, path, NULL, 0) == -1);
  remove_tmpdir();
}

static void test_hex_round_trip(void) {
  uint8_t fp[NT_FINGERPRINT_LEN], back[NT_FINGERPRINT_LEN];
  char hex[NT_FINGERPRINT_HEX_LEN + 1];
  char colons[3 * NT_FINGERPRINT_LEN + 1];

  for (size_t i = 0; i < sizeof(fp); i++) {
    fp[i] = (uint8_t)(i * 37 + 0xa5);
  }
  nt_fingerprint_hex(fp, hex);
  CHECK(strlen(hex) == NT_FINGERPRINT_HEX_LEN);
  for (size_t i = 0; i < NT_FINGERPRINT_HEX_LEN; i++) {
    CHECK((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
  }
  CHECK(nt_fingerprint_parse(back, hex) == 0);
  CHECK(memcmp(fp, back, sizeof(fp)) == 0);

  /* Upper case and "AB:CD:..." separators, as other tools print them. */
  for (size_t i = 0; i < NT_FINGERPRINT_LEN; i++) {
    snprintf(colons + 3 * i, 4, "%02X:", fp[i]);
  }
  colons[3 * NT_FINGERPRINT_LEN - 1] = '\0';
  memset(back, 0, sizeof(back));
  CHECK(nt_fingerprint_parse(back, colons) == 0);
  CHECK(memcmp(fp, back, sizeof(fp)) == 0);

  memset(fp, 0, sizeof(fp));
  nt_fingerprint_hex(fp, hex);
  CHECK(strcmp(hex, "00000000000000000000000000000000"
                    "00000000000000000000000000000000") == 0);
}

static void test_hex_parse_errors(void) {
  static const char good[] =
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  uint8_t fp[NT_FINGERPRINT_LEN], orig[NT_FINGERPRINT_LEN];
  char buf[160];

  memset(fp, 0x5a, sizeof(fp));
  memcpy(orig, fp, sizeof(fp));
  CHECK(nt_fingerprint_parse(fp, "") == -1);
  CHECK(nt_fingerprint_parse(fp, NULL) == -1);
  CHECK(nt_fingerprint_parse(fp, "abcd") == -1);
  /* One digit short, one long, one pair too many. */
  snprintf(buf, sizeof(buf), "%.63s", good);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  snprintf(buf, sizeof(buf), "%s0", good);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  snprintf(buf, sizeof(buf), "%s00", good);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  /* Non-hex digit. */
  snprintf(buf, sizeof(buf), "%s", good);
  buf[10] = 'g';
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  /* Separators only between byte pairs. */
  snprintf(buf, sizeof(buf), ":%s", good);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  snprintf(buf, sizeof(buf), "%s:", good);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  snprintf(buf, sizeof(buf), "0:1%s", good + 2);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  snprintf(buf, sizeof(buf), "01::%s", good + 2);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  /* Whitespace, prefixes and other separators are not fingerprints. */
  snprintf(buf, sizeof(buf), " %s", good);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  snprintf(buf, sizeof(buf), "%s\n", good);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  snprintf(buf, sizeof(buf), "01-%s", good + 2);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  snprintf(buf, sizeof(buf), "0x%s", good + 2);
  CHECK(nt_fingerprint_parse(fp, buf) == -1);
  /* A failed parse leaves the output alone. */
  CHECK(memcmp(fp, orig, sizeof(fp)) == 0);

  CHECK(nt_fingerprint_parse(fp, good) == 0);
  CHECK(fp[0] == 0x01 && fp[7] == 0xef && fp[31] == 0xef);
}

static void test_sessions(void) {
  char err[512];
  nt_identity *id = NULL;
  nt_tls_session *client = NULL, *server = NULL, *pinned = NULL;
  int dummy_conn_ref;
  uint8_t fp[NT_FINGERPRINT_LEN];

  CHECK(nt_identity_new_ephemeral(&id, err, sizeof(err)) == 0);
  if (id == NULL) {
    return;
  }
  CHECK(nt_tls_session_new(&client, id, 0, NULL, &dummy_conn_ref) == 0);
  CHECK(nt_tls_session_new(&server, id, 1, NULL, &dummy_conn_ref) == 0);
  CHECK(nt_tls_session_new(&pinned, id, 0, nt_identity_fingerprint(id),
                           &dummy_conn_ref) == 0);
  CHECK(client != NULL && server != NULL && pinned != NULL);
  if (client != NULL && server != NULL) {
    CHECK(nt_tls_session_native_handle(client) != NULL);
    CHECK(nt_tls_session_native_handle(server) != NULL);
    CHECK(nt_tls_session_native_handle(client) !=
          nt_tls_session_native_handle(server));
    /* No handshake yet: no peer key, no mismatch. */
    CHECK(nt_tls_session_peer_fingerprint(client, fp) == -1);
    CHECK(nt_tls_session_key_mismatch(client) == 0);
    CHECK(nt_tls_session_key_mismatch(server) == 0);
  }
  nt_tls_session_free(client);
  nt_tls_session_free(server);
  nt_tls_session_free(pinned);
  nt_tls_session_free(NULL);
  nt_identity_free(id);
  nt_identity_free(NULL);
}

static void test_random_bytes(void) {
  uint8_t a[32], b[32];

  CHECK(nt_random_bytes(a, sizeof(a)) == 0);
  CHECK(nt_random_bytes(b, sizeof(b)) == 0);
  CHECK(memcmp(a, b, sizeof(a)) != 0);
  CHECK(nt_random_bytes(a, 0) == 0);
}

nt_test_case cases[] = {
    {"create_and_reload", test_create_and_reload},
    {"existing_parent_keeps_mode", test_existing_parent_keeps_mode},
    {"two_identities_differ", test_two_identities_differ},
    {"group_readable_refused", test_group_readable_refused},
    {"garbage_refused", test_garbage_refused},
    {"empty_refused", test_empty_refused},
    {"directory_refused", test_directory_refused},
    {"other_owner_and_fifo_refused", test_other_owner_and_fifo_refused},
    {"large_file_refused", test_large_file_refused},
    {"openssl_key_accepted", test_openssl_key_accepted},
    {"other_key_type_refused", test_other_key_type_refused},
    {"tiny_errlen", test_tiny_errlen},
    {"hex_round_trip", test_hex_round_trip},
    {"hex_parse_errors", test_hex_parse_errors},
    {"sessions", test_sessions},
    {"random_bytes", test_random_bytes},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
