/* Identity key files on disk (src/trust/keyfile.c): atomic 0600 creation, the
 * checks before reading, and the bytes read back. What the bytes mean is
 * test_identity.c's part. */
#include "trust/keyfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static char tmpdir[64];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/natter-test-keyfile-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
}

static void path_in_tmp(char *out, size_t outlen, const char *name) {
  snprintf(out, outlen, "%s/%s", tmpdir, name);
}

/* Number of entries in |dir| other than "." and "..", -1 on error. */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;

  if (d == NULL) {
    return -1;
  }
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      n++;
    }
  }
  closedir(d);
  return n;
}

/* Removes every file in tmpdir (the tests make no subdirectories except
 * where they remove them), then tmpdir itself. */
static void remove_tmpdir(void) {
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  char path[512];

  if (d != NULL) {
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
        continue;
      }
      snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
      if (unlink(path) != 0) {
        rmdir(path);
      }
    }
    closedir(d);
  }
  CHECK(rmdir(tmpdir) == 0);
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

static void test_create_then_read(void) {
  static const uint8_t key[] = "-----BEGIN PRIVATE KEY-----\nbytes\n";
  char path[256], err[512];
  uint8_t *data = NULL;
  size_t len = 0;
  struct stat st;
  mode_t old_umask;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "k.key");
  /* 0600 whatever the umask lets through: the mode is not left to it. */
  old_umask = umask(0);
  CHECK(nt_keyfile_create(path, key, sizeof(key) - 1, err, sizeof(err)) == 0);
  umask(old_umask);
  CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(st.st_size == (off_t)(sizeof(key) - 1));
  /* Only the key: the temporary file was renamed, not left beside it. */
  CHECK(count_entries(tmpdir) == 1);

  CHECK(nt_keyfile_read(path, &data, &len, err, sizeof(err)) == 0);
  CHECK(data != NULL && len == sizeof(key) - 1);
  if (data != NULL && len == sizeof(key) - 1) {
    CHECK(memcmp(data, key, len) == 0);
  }
  nt_keyfile_wipe(data, len);
  nt_keyfile_wipe(NULL, 0);
  remove_tmpdir();
}

static void test_create_never_replaces(void) {
  static const uint8_t first[] = "first", second[] = "second key";
  char path[256], err[512];
  uint8_t *data = NULL;
  size_t len = 0;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "k.key");
  CHECK(nt_keyfile_create(path, first, 5, err, sizeof(err)) == 0);
  /* A second creator (another process starting with the same path) is
   * told the file exists; the first key stays, and no temporary remains. */
  CHECK(nt_keyfile_create(path, second, 10, err, sizeof(err)) == 1);
  CHECK(count_entries(tmpdir) == 1);
  CHECK(nt_keyfile_read(path, &data, &len, err, sizeof(err)) == 0);
  CHECK(len == 5 && data != NULL && memcmp(data, first, 5) == 0);
  nt_keyfile_wipe(data, len);
  remove_tmpdir();
}

static void test_create_makes_parents(void) {
  char path[256], dir[256], err[512];
  struct stat st;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "a/b/k.key");
  CHECK(nt_keyfile_create(path, (const uint8_t *)"x", 1, err, sizeof(err)) ==
        0);
  path_in_tmp(dir, sizeof(dir), "a");
  CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);
  path_in_tmp(dir, sizeof(dir), "a/b");
  CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);
  CHECK(unlink(path) == 0);
  CHECK(rmdir(dir) == 0);
  remove_tmpdir();
}

static void test_create_errors(void) {
  char path[256], err[512];

  make_tmpdir();
  /* A regular file where a parent directory should be. */
  path_in_tmp(path, sizeof(path), "file");
  write_file(path, "x", 1, 0600);
  path_in_tmp(path, sizeof(path), "file/k.key");
  err[0] = '\0';
  CHECK(nt_keyfile_create(path, (const uint8_t *)"x", 1, err, sizeof(err)) ==
        -1);
  CHECK_STR_CONTAINS(err, path);
  CHECK_STR_CONTAINS(err, "choose another key path");
  CHECK(strchr(err, '\n') == NULL);
  remove_tmpdir();
}

static void test_read_missing(void) {
  char path[256], err[512];
  uint8_t *data = (uint8_t *)"not touched";
  size_t len = 99;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "none.key");
  CHECK(nt_keyfile_read(path, &data, &len, err, sizeof(err)) == 1);
  CHECK(data == NULL && len == 0);
  remove_tmpdir();
}

/* Each refusal leaves *pdata NULL and names the path and the fix. */
static void check_refused(const char *path, const char *why) {
  char err[512];
  uint8_t *data = NULL;
  size_t len = 0;

  err[0] = '\0';
  CHECK(nt_keyfile_read(path, &data, &len, err, sizeof(err)) == -1);
  CHECK(data == NULL && len == 0);
  CHECK_STR_CONTAINS(err, path);
  CHECK_STR_CONTAINS(err, why);
  CHECK(strchr(err, '\n') == NULL);
}

static void test_read_refusals(void) {
  char path[256];
  size_t big = NT_KEYFILE_MAX + 1;
  char *buf = calloc(1, big);

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "open.key");
  write_file(path, "key", 3, 0604);
  check_refused(path, "chmod 600");
  CHECK(chmod(path, 0400) == 0); /* read-only for the owner is fine */
  {
    char err[64];
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK(nt_keyfile_read(path, &data, &len, err, sizeof(err)) == 0);
    nt_keyfile_wipe(data, len);
  }

  path_in_tmp(path, sizeof(path), "empty.key");
  write_file(path, "", 0, 0600);
  check_refused(path, "is empty");

  path_in_tmp(path, sizeof(path), "big.key");
  CHECK(buf != NULL);
  if (buf != NULL) {
    write_file(path, buf, big, 0600);
    check_refused(path, "64 KiB");
  }

  path_in_tmp(path, sizeof(path), "dir.key");
  CHECK(mkdir(path, 0700) == 0);
  check_refused(path, "not a regular file");

  /* A FIFO is refused at once, not read (which would block start-up). */
  path_in_tmp(path, sizeof(path), "fifo.key");
  CHECK(mkfifo(path, 0600) == 0);
  check_refused(path, "not a regular file");

  free(buf);
  remove_tmpdir();
}

/* A key file another user owns could have been read or replaced by them.
 * Needs root to give a file away; elsewhere only the own-file case runs. */
static void test_read_other_owner(void) {
  char path[256];

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "theirs.key");
  write_file(path, "key", 3, 0600);
  if (geteuid() == 0) {
    CHECK(chown(path, 65534, 65534) == 0);
    check_refused(path, "belongs to uid 65534");
    check_refused(path, "chown 0 ");
  } else {
    fprintf(stderr, "note: not root, the other-owner case is skipped\n");
  }
  remove_tmpdir();
}

static void test_tiny_errlen(void) {
  char path[256], err[8];
  uint8_t *data = NULL;
  size_t len = 0;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "empty.key");
  write_file(path, "", 0, 0600);
  memset(err, 'X', sizeof(err));
  CHECK(nt_keyfile_read(path, &data, &len, err, 4) == -1);
  CHECK(memchr(err, '\0', 4) != NULL && err[4] == 'X');
  CHECK(nt_keyfile_read(path, &data, &len, NULL, 0) == -1);
  remove_tmpdir();
}

nt_test_case cases[] = {
    {"create_then_read", test_create_then_read},
    {"create_never_replaces", test_create_never_replaces},
    {"create_makes_parents", test_create_makes_parents},
    {"create_errors", test_create_errors},
    {"read_missing", test_read_missing},
    {"read_refusals", test_read_refusals},
    {"read_other_owner", test_read_other_owner},
    {"tiny_errlen", test_tiny_errlen},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
