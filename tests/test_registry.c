/* The broker's registry (src/broker/registry*.c) on real files and in
 * memory: the asynchronous contract (callbacks only from the loop,
 * cancelling, the outstanding bound, order, durability before the
 * answer), persistence, conflicts, batched touches, expiry, the size
 * bound, backends chosen by location, and files that are corrupt,
 * foreign, unreadable or left by a crash. */
#include "broker/registry.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "natter.h"
#include "test.h"

static char tmpdir[256];
/* Every registry here runs on this loop (a forked child makes its own). */
static struct event_base *base;

static void make_tmpdir(void) {
  const char *top = getenv("TMPDIR");

  snprintf(tmpdir, sizeof(tmpdir), "%s/natter-test-registry-XXXXXX",
           top && top[0] ? top : "/tmp");
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
}

static void path_in_tmp(char *out, size_t outlen, const char *name) {
  snprintf(out, outlen, "%s/%s", tmpdir, name);
}

static void remove_tmpdir(void) {
  char cmd[512];

  /* Every test leaves files of its own under tmpdir; the directory name
   * comes from mkdtemp, so it needs no quoting beyond the quotes. */
  snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
  CHECK(system(cmd) == 0);
}

static void key(uint8_t *fp, uint8_t seed) {
  for (int i = 0; i < NT_FINGERPRINT_LEN; i++) {
    fp[i] = (uint8_t)(seed * 31 + i);
  }
}

/* One request's answer, as its callback saw it. */
typedef struct waiter {
  int calls;
  int order; /* the value of |completed| when it ran */
  nt_registry_result res;
  char err[512];
} waiter;

static int completed;

static void on_done(const nt_registry_result *res, void *user_data) {
  waiter *w = user_data;

  w->calls++;
  w->order = ++completed;
  w->res = *res;
  snprintf(w->err, sizeof(w->err), "%s", res->err);
  w->res.err = w->err;
}

/* Runs the loop until |w| has its answer (or the loop has nothing left:
 * a lost request fails the check below rather than hanging). */
static void run_until_done(waiter *w) {
  for (int i = 0; i < 100000 && w->calls == 0; i++) {
    if (event_base_loop(base, EVLOOP_ONCE) != 0) {
      break;
    }
  }
  CHECK(w->calls == 1);
}

/* Runs the loop until the registry has nothing queued. */
static void run_all(nt_registry *reg) {
  for (int i = 0; i < 100000 && nt_registry_outstanding(reg) > 0; i++) {
    if (event_base_loop(base, EVLOOP_ONCE) != 0) {
      break;
    }
  }
  CHECK(nt_registry_outstanding(reg) == 0);
}

/* The synchronous shape the older tests read best in: queue, run, answer.
 * |err| is a char[512]. */
static int finish(int rv, waiter *w, char *err) {
  if (rv != 0) {
    CHECK(w->calls == 0);
    return rv;
  }
  CHECK(w->calls == 0); /* never inside the call */
  run_until_done(w);
  snprintf(err, 512, "%s", w->err);
  return w->res.rv;
}

static int bind_now(nt_registry *reg, const char *name, const uint8_t *fp,
                    int64_t now, char *err) {
  waiter w = {0};
  return finish(
      nt_registry_bind(reg, name, fp, now, 0, on_done, &w, NULL, err, 512), &w,
      err);
}

static int lookup_now(nt_registry *reg, const char *name, nt_registry_entry *e,
                      char *err) {
  waiter w = {0};
  int rv = finish(nt_registry_lookup(reg, name, on_done, &w, NULL, err, 512),
                  &w, err);
  if (rv == 0) {
    *e = w.res.entry;
  }
  return rv;
}

static int release_now(nt_registry *reg, const char *name, char *err) {
  waiter w = {0};
  return finish(nt_registry_release(reg, name, on_done, &w, NULL, err, 512), &w,
                err);
}

static int flush_now(nt_registry *reg, char *err) {
  waiter w = {0};
  return finish(nt_registry_flush(reg, on_done, &w, NULL, err, 512), &w, err);
}

static int expire_now(nt_registry *reg, int64_t now, int64_t max_idle_s,
                      size_t *removed, char *err) {
  waiter w = {0};
  int rv = finish(
      nt_registry_expire(reg, now, max_idle_s, on_done, &w, NULL, err, 512), &w,
      err);
  *removed = w.res.removed;
  return rv;
}

static int list_now(nt_registry *reg, nt_registry_list_fn fn, void *ud,
                    char *err) {
  waiter w = {0};
  return finish(nt_registry_list(reg, fn, ud, on_done, &w, NULL, err, 512), &w,
                err);
}

static nt_registry *open_ok(const char *path) {
  nt_registry *reg = NULL;
  char err[512] = "";
  int rv = nt_registry_open(&reg, base, path, err, sizeof(err));

  if (rv != 0) {
    fprintf(stderr, "open %s: %s\n", path, err);
  }
  CHECK(rv == 0);
  return reg;
}

static void test_persists_across_reopen(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg;
  nt_registry_entry e;
  struct stat st;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "state/deeper/registry.db");
  key(k1, 1);
  reg = open_ok(path);
  if (reg == NULL) {
    remove_tmpdir();
    return;
  }
  CHECK(bind_now(reg, "alice", k1, 1000, err) == 0);
  /* SQLite's side files copy the database's mode. */
  path_in_tmp(path, sizeof(path), "state/deeper/registry.db-wal");
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  path_in_tmp(path, sizeof(path), "state/deeper/registry.db");
  nt_registry_close(reg);

  /* File 0600 in a directory created 0700. */
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  path_in_tmp(path, sizeof(path), "state/deeper");
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);
  path_in_tmp(path, sizeof(path), "state/deeper/registry.db");

  reg = open_ok(path);
  CHECK(lookup_now(reg, "alice", &e, err) == 0);
  CHECK(strcmp(e.name, "alice") == 0);
  CHECK(memcmp(e.fingerprint, k1, sizeof(k1)) == 0);
  CHECK(e.first_seen == 1000 && e.last_seen == 1000);
  CHECK(lookup_now(reg, "bob", &e, err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK(lookup_now(reg, "bad name", &e, err) == NATTER_ERR_INVALID);
  nt_registry_close(reg);
  remove_tmpdir();
}

static void test_bind_conflict(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  nt_registry *reg;
  nt_registry_entry e;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  key(k2, 2);
  reg = open_ok(path);
  CHECK(bind_now(reg, "alice", k1, 1000, err) == 0);
  CHECK(bind_now(reg, "alice", k2, 1001, err) == NATTER_ERR_NAME_TAKEN);
  CHECK_STR_CONTAINS(err, "alice");
  CHECK_STR_CONTAINS(err, "another key");
  /* The same key again is a check-in, not a conflict. */
  CHECK(bind_now(reg, "alice", k1, 1002, err) == 0);
  CHECK(lookup_now(reg, "alice", &e, err) == 0);
  CHECK(memcmp(e.fingerprint, k1, sizeof(k1)) == 0);
  CHECK(e.first_seen == 1000 && e.last_seen == 1002);
  CHECK(bind_now(reg, "-x/", k1, 1, err) == NATTER_ERR_INVALID);
  nt_registry_close(reg);

  /* And after a restart. */
  reg = open_ok(path);
  CHECK(bind_now(reg, "alice", k2, 2000, err) == NATTER_ERR_NAME_TAKEN);
  nt_registry_close(reg);
  remove_tmpdir();
}

static void test_touch_is_batched(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg, *other;
  nt_registry_entry e;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  reg = open_ok(path);
  other = open_ok(path); /* a second connection sees only what is written */
  CHECK(bind_now(reg, "alice", k1, 100, err) == 0);
  CHECK(flush_now(reg, err) == 0);
  CHECK(nt_registry_touch(reg, "alice", 200, err, sizeof(err)) == 0);
  CHECK(nt_registry_touch(reg, "alice", 150, err, sizeof(err)) == 0);
  CHECK(nt_registry_touch(reg, "ghost", 200, err, sizeof(err)) == 0);
  CHECK(nt_registry_pending(reg) == 2);

  CHECK(lookup_now(reg, "alice", &e, err) == 0);
  CHECK(e.last_seen == 200);
  CHECK(lookup_now(other, "alice", &e, err) == 0);
  CHECK(e.last_seen == 100);

  CHECK(flush_now(reg, err) == 0);
  CHECK(nt_registry_pending(reg) == 0);
  CHECK(lookup_now(other, "alice", &e, err) == 0);
  CHECK(e.last_seen == 200 && e.first_seen == 100);
  /* A touch of an unbound name binds nothing. */
  CHECK(lookup_now(other, "ghost", &e, err) == NATTER_ERR_PEER_UNKNOWN);

  /* Close flushes what is pending. */
  CHECK(nt_registry_touch(reg, "alice", 300, err, sizeof(err)) == 0);
  nt_registry_close(reg);
  CHECK(lookup_now(other, "alice", &e, err) == 0);
  CHECK(e.last_seen == 300);
  nt_registry_close(other);
  remove_tmpdir();
}

static void test_expire(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg;
  nt_registry_entry e;
  size_t removed = 99;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  reg = open_ok(path);
  CHECK(bind_now(reg, "old", k1, 100, err) == 0);
  CHECK(bind_now(reg, "fresh", k1, 1000, err) == 0);
  CHECK(bind_now(reg, "touched", k1, 100, err) == 0);
  CHECK(flush_now(reg, err) == 0);
  /* Seen recently, but only in memory: expire must write it first. */
  CHECK(nt_registry_touch(reg, "touched", 1900, err, sizeof(err)) == 0);

  CHECK(expire_now(reg, 2000, 0, &removed, err) == 0);
  CHECK(removed == 0); /* 0 disables expiry */
  CHECK(expire_now(reg, 2000, 1500, &removed, err) == 0);
  CHECK(removed == 1);
  CHECK(lookup_now(reg, "old", &e, err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK(lookup_now(reg, "fresh", &e, err) == 0);
  CHECK(lookup_now(reg, "touched", &e, err) == 0);
  CHECK(expire_now(reg, 2000, 1500, &removed, err) == 0);
  CHECK(removed == 0);
  nt_registry_close(reg);
  remove_tmpdir();
}

static void test_release(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  nt_registry *reg;
  nt_registry_entry e;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  key(k2, 2);
  reg = open_ok(path);
  CHECK(bind_now(reg, "alice", k1, 100, err) == 0);
  CHECK(release_now(reg, "alice", err) == 0);
  CHECK(nt_registry_pending(reg) == 0);
  CHECK(lookup_now(reg, "alice", &e, err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK(release_now(reg, "alice", err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK_STR_CONTAINS(err, "not bound");
  /* A released name is free for another key. */
  CHECK(bind_now(reg, "alice", k2, 200, err) == 0);
  nt_registry_close(reg);

  /* Released by another process (the operator) while the broker runs. */
  reg = open_ok(path);
  {
    nt_registry *op = open_ok(path);
    CHECK(release_now(op, "alice", err) == 0);
    nt_registry_close(op);
  }
  CHECK(lookup_now(reg, "alice", &e, err) == NATTER_ERR_PEER_UNKNOWN);
  nt_registry_close(reg);
  remove_tmpdir();
}

typedef struct listing {
  char names[8][NT_NAME_MAX + 1];
  int64_t last_seen[8];
  int n;
  int stop_after;
} listing;

static int collect(const nt_registry_entry *e, void *user_data) {
  listing *l = user_data;

  if (l->n < 8) {
    snprintf(l->names[l->n], sizeof(l->names[0]), "%s", e->name);
    l->last_seen[l->n] = e->last_seen;
  }
  l->n++;
  return l->stop_after && l->n >= l->stop_after;
}

static void test_list(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg;
  listing l;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  reg = open_ok(path);
  CHECK(bind_now(reg, "carol", k1, 100, err) == 0);
  CHECK(bind_now(reg, "alice", k1, 100, err) == 0);
  CHECK(bind_now(reg, "bob", k1, 100, err) == 0);
  CHECK(flush_now(reg, err) == 0);
  CHECK(nt_registry_touch(reg, "bob", 500, err, sizeof(err)) == 0);

  memset(&l, 0, sizeof(l));
  CHECK(list_now(reg, collect, &l, err) == 0);
  CHECK(l.n == 3);
  CHECK(strcmp(l.names[0], "alice") == 0);
  CHECK(strcmp(l.names[1], "bob") == 0 && l.last_seen[1] == 500);
  CHECK(strcmp(l.names[2], "carol") == 0 && l.last_seen[2] == 100);

  memset(&l, 0, sizeof(l));
  l.stop_after = 2;
  CHECK(list_now(reg, collect, &l, err) == 0);
  CHECK(l.n == 2);
  /* The listing statement was reset: the registry still works. */
  CHECK(bind_now(reg, "dave", k1, 100, err) == 0);
  nt_registry_close(reg);
  remove_tmpdir();
}

/* Fills the registry to one below the bound directly with SQLite, in one
 * transaction (100000 binds one by one would take seconds). */
static void prefill(const char *path, int n) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  uint8_t k[NT_FINGERPRINT_LEN];

  key(k, 9);
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
  CHECK(sqlite3_prepare_v2(db, "INSERT INTO names VALUES (?1, ?2, 100, 100)",
                           -1, &st, NULL) == SQLITE_OK);
  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof(name), "n%d", i);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, k, sizeof(k), SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
      CHECK(0);
      break;
    }
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  CHECK(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
}

static void test_full(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  reg = open_ok(path);
  nt_registry_close(reg);
  prefill(path, NT_REGISTRY_MAX_NAMES - 1);

  reg = open_ok(path);
  CHECK(bind_now(reg, "last", k1, 100, err) == 0);
  CHECK(bind_now(reg, "onetoomany", k1, 100, err) == NATTER_ERR_REGISTRY);
  CHECK_STR_CONTAINS(err, "registry is full");
  /* Names already bound still check in. */
  CHECK(bind_now(reg, "n7", k1, 100, err) == NATTER_ERR_NAME_TAKEN);
  CHECK(bind_now(reg, "last", k1, 200, err) == 0);
  CHECK(release_now(reg, "n0", err) == 0);
  CHECK(bind_now(reg, "onetoomany", k1, 100, err) == 0);
  nt_registry_close(reg);
  remove_tmpdir();
}

static void write_bytes(const char *path, const void *data, size_t len) {
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, data, len) == (ssize_t)len);
    close(fd);
  }
}

static int file_equals(const char *path, const void *data, size_t len) {
  char buf[8192];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0) {
    return 0;
  }
  n = read(fd, buf, sizeof(buf));
  close(fd);
  return n == (ssize_t)len && memcmp(buf, data, len) == 0;
}

static void expect_open_error(const char *path, const char *needle) {
  nt_registry *reg = NULL;
  char err[512] = "";

  CHECK(nt_registry_open(&reg, base, path, err, sizeof(err)) ==
        NATTER_ERR_REGISTRY);
  CHECK(reg == NULL);
  CHECK_STR_CONTAINS(err, path);
  CHECK_STR_CONTAINS(err, needle);
  CHECK(strchr(err, '\n') == NULL);
  printf("  refused as it should be: %s\n", err);
  nt_registry_close(reg);
}

static void test_corrupt_file(void) {
  char path[512], err[512];
  char garbage[4096];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "garbage.db");
  for (size_t i = 0; i < sizeof(garbage); i++) {
    garbage[i] = (char)(i * 7 + 3);
  }
  write_bytes(path, garbage, sizeof(garbage));
  expect_open_error(path, "restore it from a backup");
  /* Never replaced by an empty registry. */
  CHECK(file_equals(path, garbage, sizeof(garbage)));

  /* A real registry whose pages were damaged after the header. */
  path_in_tmp(path, sizeof(path), "damaged.db");
  key(k1, 1);
  reg = open_ok(path);
  for (int i = 0; i < 200 && reg; i++) {
    char name[32];
    snprintf(name, sizeof(name), "name%d", i);
    CHECK(bind_now(reg, name, k1, 100, err) == 0);
  }
  nt_registry_close(reg);
  {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    char junk[8192];
    memset(junk, 0x5a, sizeof(junk));
    CHECK(fd >= 0);
    /* Pages 2 and 3 (default page size 4096): the table's and the index's
     * roots; page 1, the header and schema, stays intact. */
    CHECK(pwrite(fd, junk, sizeof(junk), 4096) == (ssize_t)sizeof(junk));
    close(fd);
  }
  expect_open_error(path, "corrupt");
  remove_tmpdir();
}

static void test_foreign_or_newer_file(void) {
  char path[512];
  sqlite3 *db = NULL;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "foreign.db");
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1);", NULL,
                     NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  expect_open_error(path, "not a natter registry");

  path_in_tmp(path, sizeof(path), "newer.db");
  nt_registry_close(open_ok(path));
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL) ==
        SQLITE_OK);
  sqlite3_close(db);
  expect_open_error(path, "newer");
  remove_tmpdir();
}

static void test_unreadable_path(void) {
  char path[512];

  make_tmpdir();
  /* A directory where the file should be. */
  path_in_tmp(path, sizeof(path), "dir.db");
  CHECK(mkdir(path, 0700) == 0);
  expect_open_error(path, "Is a directory");
  /* A path through a regular file. */
  path_in_tmp(path, sizeof(path), "plain");
  write_bytes(path, "x", 1);
  path_in_tmp(path, sizeof(path), "plain/registry.db");
  {
    nt_registry *reg = NULL;
    char err[512] = "";
    CHECK(nt_registry_open(&reg, base, path, err, sizeof(err)) ==
          NATTER_ERR_REGISTRY);
    CHECK_STR_CONTAINS(err, "plain");
  }
  /* Mode 000: only meaningful when not running as root. */
  if (geteuid() != 0) {
    path_in_tmp(path, sizeof(path), "locked.db");
    nt_registry_close(open_ok(path));
    CHECK(chmod(path, 0) == 0);
    expect_open_error(path, "Permission denied");
  }
  remove_tmpdir();
}

/* Waits for |pid| with a deadline; kills it when the deadline passes. */
static int wait_child(pid_t pid) {
  struct timespec start, now;
  int status = 0;

  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (r < 0 && errno != EINTR) {
      return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec > 20) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(10000); /* polling a child's exit, not synchronising on time */
  }
}

static void test_crash_keeps_bindings(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  nt_registry *reg;
  nt_registry_entry e;
  pid_t pid;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  key(k2, 2);

  /* The broker binds, then dies without closing (no checkpoint, WAL
   * left behind). */
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    nt_registry *child = NULL;
    char cerr[512];
    base = event_base_new(); /* the parent's loop is not ours to use */
    if (nt_registry_open(&child, base, path, cerr, sizeof(cerr)) != 0 ||
        bind_now(child, "alice", k1, 100, cerr) != 0 ||
        nt_registry_touch(child, "alice", 500, cerr, sizeof(cerr)) != 0) {
      _exit(1);
    }
    _exit(0);
  }
  CHECK(wait_child(pid) == 0);
  path_in_tmp(err, sizeof(err), "registry.db-wal");
  CHECK(access(err, F_OK) == 0); /* really left mid-flight */

  /* A writer killed inside a transaction: its half is rolled back. */
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "BEGIN; DELETE FROM names; INSERT INTO names VALUES "
                     "('mallory', zeroblob(32), 1, 1);",
                     NULL, NULL, NULL) != SQLITE_OK) {
      _exit(1);
    }
    _exit(0);
  }
  CHECK(wait_child(pid) == 0);

  reg = open_ok(path);
  CHECK(lookup_now(reg, "alice", &e, err) == 0);
  CHECK(memcmp(e.fingerprint, k1, sizeof(k1)) == 0);
  /* The unflushed touch died with the process: last-seen is advisory. */
  CHECK(e.first_seen == 100 && e.last_seen == 100);
  CHECK(lookup_now(reg, "mallory", &e, err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK(bind_now(reg, "alice", k2, 600, err) == NATTER_ERR_NAME_TAKEN);
  nt_registry_close(reg);
  remove_tmpdir();
}

/* ---- the asynchronous contract ---- */

static nt_registry *open_memory(void) {
  nt_registry *reg = NULL;
  char err[512] = "";

  CHECK(nt_registry_open(&reg, base, "memory:", err, sizeof(err)) == 0);
  CHECK(reg != NULL && strcmp(nt_registry_backend(reg), "memory") == 0);
  return reg;
}

/* The count of names behind the dashboard (nt_registry_names): unknown
 * until the first call's count request has run, then moved by binds of
 * new names, releases and expiries, without another request. */
static void check_names(nt_registry *reg, size_t already) {
  char err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  size_t n = 99, removed = 0;

  key(k1, 1);
  key(k2, 2);
  CHECK(nt_registry_names(reg, &n) == -1);
  CHECK(nt_registry_outstanding(reg) == 1); /* the count request */
  CHECK(nt_registry_names(reg, &n) == -1);
  CHECK(nt_registry_outstanding(reg) == 1); /* one at a time */
  run_all(reg);
  CHECK(nt_registry_names(reg, &n) == 0 && n == already);
  CHECK(nt_registry_outstanding(reg) == 0); /* not again within a minute */
  CHECK(bind_now(reg, "carol", k1, 100, err) == 0);
  CHECK(bind_now(reg, "dave", k2, 100, err) == 0);
  CHECK(nt_registry_names(reg, &n) == 0 && n == already + 2);
  CHECK(bind_now(reg, "carol", k1, 200, err) == 0); /* a touch */
  CHECK(bind_now(reg, "carol", k2, 200, err) == NATTER_ERR_NAME_TAKEN);
  CHECK(release_now(reg, "nobody", err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK(nt_registry_names(reg, &n) == 0 && n == already + 2);
  CHECK(release_now(reg, "dave", err) == 0);
  CHECK(nt_registry_names(reg, &n) == 0 && n == already + 1);
  CHECK(expire_now(reg, 1000000, 10, &removed, err) == 0);
  CHECK(removed == already + 1);
  CHECK(nt_registry_names(reg, &n) == 0 && n == 0);
  CHECK(nt_registry_outstanding(reg) == 0);
}

static void test_names(void) {
  char path[512], err[512];
  uint8_t k[NT_FINGERPRINT_LEN];
  nt_registry *reg = open_memory();

  check_names(reg, 0);
  nt_registry_close(reg);
  /* SQLite: the count comes from the file, names bound before included. */
  make_tmpdir();
  path_in_tmp(path, sizeof(path), "names.db");
  reg = open_ok(path);
  key(k, 3);
  CHECK(bind_now(reg, "alice", k, 50, err) == 0);
  CHECK(bind_now(reg, "bob", k, 50, err) == 0);
  CHECK(bind_now(reg, "eve", k, 50, err) == 0);
  nt_registry_close(reg);
  reg = open_ok(path);
  check_names(reg, 3);
  nt_registry_close(reg);
  remove_tmpdir();
}

/* Queues a bind and checks that its callback did not run inside the call
 * and does run from the loop, on both backends. */
static void check_not_inside_call(nt_registry *reg) {
  char err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  waiter w = {0}, bad = {0};
  nt_registry_request *req = NULL;

  key(k1, 1);
  CHECK(nt_registry_bind(reg, "alice", k1, 100, 0, on_done, &w, &req, err,
                         sizeof(err)) == 0);
  CHECK(req != NULL);
  CHECK(w.calls == 0);
  CHECK(nt_registry_outstanding(reg) == 1);
  run_until_done(&w);
  CHECK(w.res.rv == 0 && w.err[0] == '\0');
  CHECK(nt_registry_outstanding(reg) == 0);
  /* Refused at once: an error from the call and never a callback. */
  CHECK(nt_registry_bind(reg, "bad name", k1, 100, 0, on_done, &bad, &req, err,
                         sizeof(err)) == NATTER_ERR_INVALID);
  CHECK(req == NULL);
  CHECK(nt_registry_bind(reg, "alice", NULL, 100, 0, on_done, &bad, NULL, err,
                         sizeof(err)) == NATTER_ERR_INVALID);
  CHECK(nt_registry_outstanding(reg) == 0);
  event_base_loop(base, EVLOOP_NONBLOCK);
  CHECK(bad.calls == 0);
}

static void test_callback_never_inside_call(void) {
  char path[512];
  nt_registry *reg;

  reg = open_memory();
  check_not_inside_call(reg);
  nt_registry_close(reg);

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  reg = open_ok(path);
  check_not_inside_call(reg);
  nt_registry_close(reg);
  remove_tmpdir();
}

/* A callback that queues the next request: allowed, and it runs later. */
typedef struct chain {
  nt_registry *reg;
  waiter first, second;
} chain;

static void chain_first(const nt_registry_result *res, void *user_data) {
  chain *c = user_data;
  char err[512];

  on_done(res, &c->first);
  CHECK(nt_registry_lookup(c->reg, "alice", on_done, &c->second, NULL, err,
                           sizeof(err)) == 0);
  CHECK(c->second.calls == 0);
}

static void test_callback_may_queue(void) {
  char err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  chain c;

  memset(&c, 0, sizeof(c));
  key(k1, 1);
  c.reg = open_memory();
  CHECK(nt_registry_bind(c.reg, "alice", k1, 100, 0, chain_first, &c, NULL, err,
                         sizeof(err)) == 0);
  run_until_done(&c.second);
  CHECK(c.first.calls == 1 && c.first.res.rv == 0);
  CHECK(c.second.res.rv == 0 &&
        memcmp(c.second.res.entry.fingerprint, k1, sizeof(k1)) == 0);
  nt_registry_close(c.reg);
}

static void test_cancel(void) {
  char err[512], path[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  nt_registry_request *gone = NULL, *kept = NULL;
  waiter w_gone = {0}, w_kept = {0}, w_closed = {0};
  nt_registry_entry e;
  nt_registry *reg;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  key(k2, 2);
  reg = open_ok(path);
  /* The requester of the first bind goes away before it ran. */
  CHECK(nt_registry_bind(reg, "alice", k1, 100, 0, on_done, &w_gone, &gone, err,
                         sizeof(err)) == 0);
  CHECK(nt_registry_bind(reg, "bob", k2, 100, 0, on_done, &w_kept, &kept, err,
                         sizeof(err)) == 0);
  nt_registry_cancel(gone);
  CHECK(nt_registry_outstanding(reg) == 1);
  run_until_done(&w_kept);
  CHECK(w_gone.calls == 0);
  CHECK(w_kept.res.rv == 0);
  /* Cancelled before it ran: nothing was stored. */
  CHECK(lookup_now(reg, "alice", &e, err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK(lookup_now(reg, "bob", &e, err) == 0);
  nt_registry_cancel(NULL);

  /* Closing drops what is queued, without callbacks (and, under ASan,
   * without leaks). */
  CHECK(nt_registry_bind(reg, "carol", k1, 100, 0, on_done, &w_closed, NULL,
                         err, sizeof(err)) == 0);
  CHECK(nt_registry_flush(reg, NULL, NULL, NULL, err, sizeof(err)) == 0);
  nt_registry_close(reg);
  event_base_loop(base, EVLOOP_NONBLOCK);
  CHECK(w_closed.calls == 0);
  remove_tmpdir();
}

static void test_outstanding_limit(void) {
  char err[512];
  nt_registry *reg = open_memory();
  static waiter ws[NT_REGISTRY_MAX_OUTSTANDING];
  waiter over = {0}, after = {0};
  int queued = 0;

  memset(ws, 0, sizeof(ws));
  for (int i = 0; i < NT_REGISTRY_MAX_OUTSTANDING; i++) {
    queued += nt_registry_lookup(reg, "alice", on_done, &ws[i], NULL, err,
                                 sizeof(err)) == 0;
  }
  CHECK(queued == NT_REGISTRY_MAX_OUTSTANDING);
  CHECK(nt_registry_outstanding(reg) == NT_REGISTRY_MAX_OUTSTANDING);
  CHECK(nt_registry_lookup(reg, "alice", on_done, &over, NULL, err,
                           sizeof(err)) == NATTER_ERR_REGISTRY);
  CHECK_STR_CONTAINS(err, "too many registry requests waiting");
  /* A touch at the threshold queues no flush past the bound either. */
  CHECK(nt_registry_flush(reg, NULL, NULL, NULL, err, sizeof(err)) ==
        NATTER_ERR_REGISTRY);
  run_all(reg);
  CHECK(over.calls == 0);
  for (int i = 0; i < NT_REGISTRY_MAX_OUTSTANDING; i++) {
    if (ws[i].calls != 1 || ws[i].res.rv != NATTER_ERR_PEER_UNKNOWN) {
      CHECK(0);
      break;
    }
  }
  /* In the order they were queued. */
  CHECK(ws[0].order < ws[NT_REGISTRY_MAX_OUTSTANDING - 1].order);
  CHECK(nt_registry_lookup(reg, "alice", on_done, &after, NULL, err,
                           sizeof(err)) == 0);
  run_until_done(&after);
  nt_registry_close(reg);
}

/* Reads |name|'s fingerprint with a connection of its own: what is
 * committed, nothing the registry holds in memory. */
static int committed_key(const char *path, const char *name, uint8_t *fp) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int found = 0;

  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "SELECT fingerprint FROM names WHERE name = ?1",
                         -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_bytes(st, 0) == NT_FINGERPRINT_LEN) {
      memcpy(fp, sqlite3_column_blob(st, 0), NT_FINGERPRINT_LEN);
      found = 1;
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return found;
}

typedef struct durable_check {
  const char *path;
  int seen; /* 1: the binding was committed when the callback ran */
  int rv;
} durable_check;

static void bound_check_file(const nt_registry_result *res, void *user_data) {
  durable_check *d = user_data;
  uint8_t fp[NT_FINGERPRINT_LEN], k1[NT_FINGERPRINT_LEN];

  key(k1, 1);
  d->rv = res->rv;
  d->seen =
      committed_key(d->path, "alice", fp) && memcmp(fp, k1, sizeof(fp)) == 0;
}

static void test_durable_before_callback(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], fp[NT_FINGERPRINT_LEN];
  durable_check d = {path, -1, -1};
  nt_registry *reg, *second;
  nt_registry_entry e;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  reg = open_ok(path);
  CHECK(nt_registry_bind(reg, "alice", k1, 100, 0, bound_check_file, &d, NULL,
                         err, sizeof(err)) == 0);
  CHECK(!committed_key(path, "alice", fp)); /* queued, not written */
  run_all(reg);
  CHECK(d.rv == 0);
  CHECK(d.seen == 1);
  /* A second registry on the same file sees it, the first still open. */
  second = open_ok(path);
  CHECK(lookup_now(second, "alice", &e, err) == 0);
  CHECK(memcmp(e.fingerprint, k1, sizeof(k1)) == 0);
  nt_registry_close(second);
  nt_registry_close(reg);
  remove_tmpdir();
}

/* Two keys claim one name, both binds in flight at once: the first
 * queued wins, the second hears who owns it. */
static void check_race(nt_registry *reg) {
  char err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  waiter first = {0}, second = {0};

  key(k1, 1);
  key(k2, 2);
  CHECK(nt_registry_bind(reg, "alice", k1, 100, 0, on_done, &first, NULL, err,
                         sizeof(err)) == 0);
  CHECK(nt_registry_bind(reg, "alice", k2, 101, 0, on_done, &second, NULL, err,
                         sizeof(err)) == 0);
  run_all(reg);
  CHECK(first.calls == 1 && first.res.rv == 0);
  CHECK(second.calls == 1 && second.res.rv == NATTER_ERR_NAME_TAKEN);
  CHECK(first.order < second.order);
  CHECK_STR_CONTAINS(second.err, "another key");
  CHECK(memcmp(second.res.entry.fingerprint, k1, sizeof(k1)) == 0);
  CHECK(second.res.entry.first_seen == 100);
}

static void test_two_binds_in_flight(void) {
  char path[512];
  nt_registry *reg = open_memory();

  check_race(reg);
  nt_registry_close(reg);
  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  reg = open_ok(path);
  check_race(reg);
  nt_registry_close(reg);
  remove_tmpdir();
}

static void test_takeover(void) {
  char err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  nt_registry *reg = open_memory();
  nt_registry_entry e;
  waiter w = {0};

  key(k1, 1);
  key(k2, 2);
  CHECK(bind_now(reg, "alice", k1, 100, err) == 0);
  CHECK(nt_registry_bind(reg, "alice", k2, 200, NT_REGISTRY_BIND_TAKEOVER,
                         on_done, &w, NULL, err, sizeof(err)) == 0);
  run_until_done(&w);
  CHECK(w.res.rv == 0 && w.res.replaced);
  CHECK(memcmp(w.res.entry.fingerprint, k1, sizeof(k1)) == 0);
  CHECK(lookup_now(reg, "alice", &e, err) == 0);
  CHECK(memcmp(e.fingerprint, k2, sizeof(k2)) == 0 && e.first_seen == 200);
  nt_registry_close(reg);
}

/* Enough pending touches for one transaction queue a flush of their own;
 * the touches themselves never wait. */
static void test_touch_threshold_flushes(void) {
  char err[512], name[32];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg = open_memory();
  nt_registry_entry e;

  key(k1, 1);
  CHECK(bind_now(reg, "n0", k1, 100, err) == 0);
  for (int i = 0; i < NT_REGISTRY_MAX_PENDING; i++) {
    snprintf(name, sizeof(name), "n%d", i);
    CHECK(nt_registry_touch(reg, name, 500, err, sizeof(err)) == 0);
  }
  CHECK(nt_registry_pending(reg) == NT_REGISTRY_MAX_PENDING);
  CHECK(nt_registry_outstanding(reg) == 1); /* one flush, not one per touch */
  CHECK(nt_registry_touch(reg, "late", 500, err, sizeof(err)) == 0);
  CHECK(nt_registry_outstanding(reg) == 1);
  run_all(reg);
  CHECK(nt_registry_pending(reg) == 0);
  CHECK(lookup_now(reg, "n0", &e, err) == 0 && e.last_seen == 500);
  nt_registry_close(reg);
}

/* ---- backends by location ---- */

static void expect_location_error(const char *location, const char *needle) {
  const nt_registry_ops *ops = NULL;
  const char *where = NULL;
  nt_registry *reg = NULL;
  char err[512] = "";

  CHECK(nt_registry_parse_location(location, &ops, &where, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(ops == NULL && where == NULL);
  CHECK_STR_CONTAINS(err, needle);
  CHECK(nt_registry_open(&reg, base, location, err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(reg == NULL);
  printf("  refused as it should be: %s\n", err);
}

static void expect_location(const char *location,
                            const nt_registry_ops *want_ops,
                            const char *want_where) {
  const nt_registry_ops *ops = NULL;
  const char *where = NULL;
  char err[512] = "";

  CHECK(nt_registry_parse_location(location, &ops, &where, err, sizeof(err)) ==
        0);
  CHECK(ops == want_ops);
  CHECK(where != NULL && strcmp(where, want_where) == 0);
}

static void test_location(void) {
  char path[512], uri[600], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg = NULL;
  struct stat st;

  expect_location("memory:", &nt_registry_memory_ops, "");
  expect_location("sqlite:///var/lib/natter/registry.db",
                  &nt_registry_sqlite_ops, "/var/lib/natter/registry.db");
  expect_location("sqlite:state/registry.db", &nt_registry_sqlite_ops,
                  "state/registry.db");
  /* Plain paths as before, even with a colon. */
  expect_location("/var/lib/natter/registry.db", &nt_registry_sqlite_ops,
                  "/var/lib/natter/registry.db");
  expect_location("a:b.db", &nt_registry_sqlite_ops, "a:b.db");
  expect_location("./memory:", &nt_registry_sqlite_ops, "./memory:");

  expect_location("postgresql://db.example/natter", &nt_registry_pg_ops,
                  "postgresql://db.example/natter");
  expect_location("postgres://natter@db.example:5433/natter?sslmode=require",
                  &nt_registry_pg_ops,
                  "postgres://natter@db.example:5433/natter?sslmode=require");
  expect_location_error("postgresql:natter", "postgresql://");
  expect_location_error("postgres:/natter", "DATABASE");
  expect_location_error("mysql://db.example/natter",
                        "unknown scheme \"mysql\"");
  expect_location_error("mysql://db.example/natter", "sqlite:///PATH");
  expect_location_error("mysql://db.example/natter", "memory:");
  expect_location_error("sqlite://host/registry.db", "local file");
  expect_location_error("sqlite:", "local file");
  expect_location_error("memory:names", "takes no location");
  expect_location_error("", "no registry file given");

  /* A sqlite:/// URI opens (and creates) the file it names. */
  make_tmpdir();
  key(k1, 1);
  path_in_tmp(path, sizeof(path), "by-uri/registry.db");
  snprintf(uri, sizeof(uri), "sqlite://%s", path);
  CHECK(path[0] == '/');
  CHECK(nt_registry_open(&reg, base, uri, err, sizeof(err)) == 0);
  CHECK(reg && strcmp(nt_registry_backend(reg), "sqlite") == 0);
  if (reg) {
    CHECK(bind_now(reg, "alice", k1, 100, err) == 0);
  }
  nt_registry_close(reg);
  CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));

  /* The operator's tools take the same locations, keep the message for a
   * missing file, and cannot reach into a broker's memory. */
  CHECK(natter_registry_release(uri, "alice", err, sizeof(err)) == 0);
  CHECK(natter_registry_release(uri, "alice", err, sizeof(err)) ==
        NATTER_ERR_PEER_UNKNOWN);
  CHECK_STR_CONTAINS(err, "is not bound in this registry");
  path_in_tmp(path, sizeof(path), "none.db");
  CHECK(natter_registry_release(path, "alice", err, sizeof(err)) ==
        NATTER_ERR_REGISTRY);
  CHECK_STR_CONTAINS(err, "no such file");
  CHECK(access(path, F_OK) != 0); /* not created */
  CHECK(natter_registry_release("memory:", "alice", err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "inside its broker");
  remove_tmpdir();
}

/* A PostgreSQL URI that libpq refuses fails at open; a database that
 * cannot be reached does not (the broker starts and retries), but every
 * request says it is unavailable, and an operator's -release too. Port 1
 * on loopback: refused at once, no server needed. */
static void test_pg_unreachable(void) {
  static const char uri[] = "postgresql://natter@127.0.0.1:1/natter";
  char err[512] = "", desc[300];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg = NULL;

  CHECK(nt_registry_open(&reg, base, "postgresql://h/db?no_such_option=1", err,
                         sizeof(err)) == NATTER_ERR_INVALID);
  CHECK(reg == NULL);
  CHECK_STR_CONTAINS(err, "not a PostgreSQL URI");

  key(k1, 1);
  CHECK(nt_registry_open(&reg, base, uri, err, sizeof(err)) == 0);
  CHECK(strcmp(nt_registry_backend(reg), "postgresql") == 0);
  nt_registry_describe(reg, desc, sizeof(desc));
  CHECK_STR_CONTAINS(desc, "PostgreSQL database natter on 127.0.0.1:1");
  /* The first attempt decides the first request; later ones fail at
   * once while the connection waits to be retried. */
  CHECK(bind_now(reg, "alice", k1, 100, err) == NATTER_ERR_REGISTRY);
  CHECK_STR_CONTAINS(err, "the name registry is unavailable, try again");
  CHECK(bind_now(reg, "alice", k1, 100, err) == NATTER_ERR_REGISTRY);
  CHECK_STR_CONTAINS(err, "unavailable");
  CHECK(nt_registry_touch(reg, "alice", 100, err, sizeof(err)) == 0);
  nt_registry_close(reg); /* nothing to flush to: no wait */

  CHECK(natter_registry_release(uri, "alice", err, sizeof(err)) ==
        NATTER_ERR_REGISTRY);
  CHECK_STR_CONTAINS(err, "the name registry is unavailable, try again");
}

/* Another process (an operator's -release, a backup) holds the write
 * lock: a bind neither blocks the loop nor fails at once; it waits first
 * in the queue, retried from a timer, and binds once the lock goes. */
static void test_lock_held_elsewhere(void) {
  char path[512], err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg;
  sqlite3 *db = NULL;
  waiter w = {0}, later = {0};
  struct timespec t0, t1;

  make_tmpdir();
  path_in_tmp(path, sizeof(path), "registry.db");
  key(k1, 1);
  reg = open_ok(path);
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);

  CHECK(nt_registry_bind(reg, "alice", k1, 100, 0, on_done, &w, NULL, err,
                         sizeof(err)) == 0);
  CHECK(nt_registry_lookup(reg, "alice", on_done, &later, NULL, err,
                           sizeof(err)) == 0);
  /* Turns of the loop while the lock is held: each returns without
   * waiting for the lock (the old 200 ms busy timeout would show here as
   * 200 ms per turn), and nothing is answered. */
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 5; i++) {
    CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK(w.calls == 0 && later.calls == 0);
  CHECK(nt_registry_outstanding(reg) == 2);
  printf("  5 turns with the lock held: %ld ms\n",
         (long)((t1.tv_sec - t0.tv_sec) * 1000 +
                (t1.tv_nsec - t0.tv_nsec) / 1000000));
  CHECK(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  run_until_done(&w);
  CHECK(w.res.rv == 0);
  run_until_done(&later);
  CHECK(later.res.rv == 0 && later.order == w.order + 1);

  /* A waiting request is still cancellable. */
  CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
  nt_registry_request *req = NULL;
  waiter never = {0};
  CHECK(nt_registry_release(reg, "alice", on_done, &never, &req, err,
                            sizeof(err)) == 0);
  CHECK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0);
  CHECK(never.calls == 0);
  nt_registry_cancel(req);
  CHECK(nt_registry_outstanding(reg) == 0);
  CHECK(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  nt_registry_close(reg);
  remove_tmpdir();
}

/* ---- the PostgreSQL backend on a real server ----
 * `test_registry pg URI` runs these on an empty database at URI
 * (tests/integration/test_registry_pg.sh starts a server for them); the
 * same contract as the local backends, and what only a shared store
 * shows: two registries (two brokers) on one database. */

static const char *pg_uri;

static void test_pg_contract(void) {
  char err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  nt_registry *reg = open_ok(pg_uri), *other = open_ok(pg_uri);
  nt_registry_entry e;
  waiter w = {0};
  size_t removed = 0;
  listing l;

  key(k1, 1);
  key(k2, 2);
  CHECK(strcmp(nt_registry_backend(reg), "postgresql") == 0);
  /* Never inside the call, also on the first request (still connecting). */
  CHECK(nt_registry_bind(reg, "alice", k1, 100, 0, on_done, &w, NULL, err,
                         sizeof(err)) == 0);
  CHECK(w.calls == 0);
  run_until_done(&w);
  CHECK(w.res.rv == 0 && w.res.created);
  /* The other broker: the name is taken there, the owner says who. */
  memset(&w, 0, sizeof(w));
  CHECK(nt_registry_bind(other, "alice", k2, 101, 0, on_done, &w, NULL, err,
                         sizeof(err)) == 0);
  run_until_done(&w);
  CHECK(w.res.rv == NATTER_ERR_NAME_TAKEN);
  CHECK(memcmp(w.res.entry.fingerprint, k1, NT_FINGERPRINT_LEN) == 0);
  CHECK(w.res.entry.first_seen == 100);
  /* The owner again: a touch, seen by a lookup before any flush. */
  memset(&w, 0, sizeof(w));
  CHECK(nt_registry_bind(other, "alice", k1, 300, 0, on_done, &w, NULL, err,
                         sizeof(err)) == 0);
  run_until_done(&w);
  CHECK(w.res.rv == 0 && !w.res.created && !w.res.replaced);
  CHECK(nt_registry_pending(other) == 1);
  CHECK(lookup_now(other, "alice", &e, err) == 0 && e.last_seen == 300);
  CHECK(lookup_now(reg, "alice", &e, err) == 0 && e.last_seen == 100);
  /* One flush writes it; the first broker sees it. */
  CHECK(nt_registry_touch(other, "alice", 400, err, sizeof(err)) == 0);
  CHECK(flush_now(other, err) == 0);
  CHECK(nt_registry_pending(other) == 0);
  CHECK(lookup_now(reg, "alice", &e, err) == 0 && e.last_seen == 400);
  CHECK(memcmp(e.fingerprint, k1, NT_FINGERPRINT_LEN) == 0);

  /* Only an existing name; a takeover. */
  memset(&w, 0, sizeof(w));
  CHECK(nt_registry_bind(reg, "nobody", k1, 100, NT_REGISTRY_BIND_EXISTING,
                         on_done, &w, NULL, err, sizeof(err)) == 0);
  run_until_done(&w);
  CHECK(w.res.rv == NATTER_ERR_PEER_UNKNOWN);
  memset(&w, 0, sizeof(w));
  CHECK(nt_registry_bind(other, "alice", k2, 500, NT_REGISTRY_BIND_TAKEOVER,
                         on_done, &w, NULL, err, sizeof(err)) == 0);
  run_until_done(&w);
  CHECK(w.res.rv == 0 && w.res.replaced);
  CHECK(memcmp(w.res.entry.fingerprint, k1, NT_FINGERPRINT_LEN) == 0);
  CHECK(lookup_now(reg, "alice", &e, err) == 0);
  CHECK(memcmp(e.fingerprint, k2, NT_FINGERPRINT_LEN) == 0);
  CHECK(e.first_seen == 500);

  /* Release, list, expire. */
  CHECK(bind_now(reg, "bob", k1, 100, err) == 0);
  CHECK(bind_now(reg, "carol", k1, 10, err) == 0);
  CHECK(release_now(other, "bob", err) == 0);
  CHECK(release_now(other, "bob", err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK(lookup_now(reg, "bob", &e, err) == NATTER_ERR_PEER_UNKNOWN);
  memset(&l, 0, sizeof(l));
  CHECK(list_now(reg, collect, &l, err) == 0);
  CHECK(l.n == 2 && strcmp(l.names[0], "alice") == 0 &&
        strcmp(l.names[1], "carol") == 0);
  memset(&l, 0, sizeof(l));
  l.stop_after = 1;
  CHECK(list_now(reg, collect, &l, err) == 0 && l.n == 1);
  /* The count of names: one count(*), then this registry's own
   * changes. */
  size_t n = 0;
  CHECK(nt_registry_names(other, &n) == -1);
  run_all(other);
  CHECK(nt_registry_names(other, &n) == 0 && n == 2);
  CHECK(bind_now(other, "dave", k2, 900, err) == 0);
  CHECK(nt_registry_names(other, &n) == 0 && n == 3);
  CHECK(release_now(other, "dave", err) == 0);
  CHECK(nt_registry_names(other, &n) == 0 && n == 2);
  /* A touch pending in this registry saves carol from expiry. */
  CHECK(nt_registry_touch(reg, "carol", 450, err, sizeof(err)) == 0);
  CHECK(expire_now(reg, 1000, 600, &removed, err) == 0 && removed == 0);
  CHECK(expire_now(reg, 1000, 500, &removed, err) == 0 && removed == 1);
  CHECK(lookup_now(other, "carol", &e, err) == NATTER_ERR_PEER_UNKNOWN);
  CHECK(release_now(reg, "alice", err) == 0);
  nt_registry_close(other);
  nt_registry_close(reg);
}

/* How long the statements take on a real server: binds one at a time,
 * one flush of every name, expiry in batches (printed, not judged). */
static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_pg_timing(void) {
  enum { N = 2000 };
  char err[512], name[NT_NAME_MAX + 1];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg = open_ok(pg_uri);
  size_t removed = 0, total = 0;
  uint64_t t0;

  key(k1, 1);
  CHECK(bind_now(reg, "warmup", k1, 100, err) == 0);
  t0 = mono_ns();
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "timing%d", i);
    CHECK(bind_now(reg, name, k1, 100, err) == 0);
  }
  printf("  %d new names bound one by one: %.0f us each\n", N,
         (double)(mono_ns() - t0) / 1e3 / N);
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "timing%d", i);
    CHECK(nt_registry_touch(reg, name, 200, err, sizeof(err)) == 0);
  }
  t0 = mono_ns();
  CHECK(flush_now(reg, err) == 0);
  printf("  one flush of %d last-seen times: %.1f ms\n", N,
         (double)(mono_ns() - t0) / 1e6);
  t0 = mono_ns();
  do {
    CHECK(expire_now(reg, 1000, 500, &removed, err) == 0);
    total += removed;
  } while (removed == NT_REGISTRY_EXPIRE_BATCH);
  printf("  %zu names expired in batches of %d: %.1f ms\n", total,
         NT_REGISTRY_EXPIRE_BATCH, (double)(mono_ns() - t0) / 1e6);
  CHECK(total == N + 1);
  nt_registry_close(reg);
}

/* Two brokers bind one name with different keys at once: one wins, the
 * other is told who. */
static void test_pg_race(void) {
  char err[512];
  uint8_t k1[NT_FINGERPRINT_LEN], k2[NT_FINGERPRINT_LEN];
  nt_registry *a = open_ok(pg_uri), *b = open_ok(pg_uri);
  waiter wa = {0}, wb = {0};

  key(k1, 1);
  key(k2, 2);
  CHECK(nt_registry_bind(a, "race", k1, 100, 0, on_done, &wa, NULL, err,
                         sizeof(err)) == 0);
  CHECK(nt_registry_bind(b, "race", k2, 100, 0, on_done, &wb, NULL, err,
                         sizeof(err)) == 0);
  for (int i = 0; i < 100000 && (wa.calls == 0 || wb.calls == 0); i++) {
    event_base_loop(base, EVLOOP_ONCE);
  }
  CHECK(wa.calls == 1 && wb.calls == 1);
  CHECK((wa.res.rv == 0) + (wb.res.rv == 0) == 1);
  CHECK((wa.res.rv == NATTER_ERR_NAME_TAKEN) +
            (wb.res.rv == NATTER_ERR_NAME_TAKEN) ==
        1);
  CHECK(release_now(a, "race", err) == 0);
  nt_registry_close(a);
  nt_registry_close(b);
}

/* A request cancelled while its statement runs: no callback, the next
 * request goes on; closing with one in flight and touches pending writes
 * the touches and calls nothing. */
static void test_pg_cancel_in_flight(void) {
  char err[512];
  uint8_t k1[NT_FINGERPRINT_LEN];
  nt_registry *reg = open_ok(pg_uri), *other;
  nt_registry_request *first = NULL;
  waiter w1 = {0}, w2 = {0}, w3 = {0};
  nt_registry_entry e;

  key(k1, 1);
  CHECK(bind_now(reg, "zed", k1, 100, err) == 0); /* connected */
  CHECK(nt_registry_lookup(reg, "zed", on_done, &w1, &first, err,
                           sizeof(err)) == 0);
  CHECK(nt_registry_bind(reg, "yan", k1, 100, 0, on_done, &w2, NULL, err,
                         sizeof(err)) == 0);
  /* One turn starts the lookup's statement; it cannot have come back. */
  event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  nt_registry_cancel(first);
  run_until_done(&w2);
  CHECK(w1.calls == 0 && w2.res.rv == 0);

  CHECK(nt_registry_touch(reg, "zed", 900, err, sizeof(err)) == 0);
  CHECK(nt_registry_lookup(reg, "yan", on_done, &w3, NULL, err, sizeof(err)) ==
        0);
  event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  nt_registry_close(reg);
  event_base_loop(base, EVLOOP_NONBLOCK);
  CHECK(w3.calls == 0);
  other = open_ok(pg_uri);
  CHECK(lookup_now(other, "zed", &e, err) == 0 && e.last_seen == 900);
  CHECK(release_now(other, "zed", err) == 0);
  CHECK(release_now(other, "yan", err) == 0);
  nt_registry_close(other);
}

int main(int argc, char **argv) {
  static const nt_test_case cases[] = {
      {"persists_across_reopen", test_persists_across_reopen},
      {"bind_conflict", test_bind_conflict},
      {"touch_is_batched", test_touch_is_batched},
      {"expire", test_expire},
      {"release", test_release},
      {"list", test_list},
      {"full", test_full},
      {"corrupt_file", test_corrupt_file},
      {"foreign_or_newer_file", test_foreign_or_newer_file},
      {"unreadable_path", test_unreadable_path},
      {"crash_keeps_bindings", test_crash_keeps_bindings},
      {"callback_never_inside_call", test_callback_never_inside_call},
      {"callback_may_queue", test_callback_may_queue},
      {"cancel", test_cancel},
      {"outstanding_limit", test_outstanding_limit},
      {"durable_before_callback", test_durable_before_callback},
      {"two_binds_in_flight", test_two_binds_in_flight},
      {"takeover", test_takeover},
      {"names", test_names},
      {"touch_threshold_flushes", test_touch_threshold_flushes},
      {"location", test_location},
      {"lock_held_elsewhere", test_lock_held_elsewhere},
      {"pg_unreachable", test_pg_unreachable},
      {NULL, NULL},
  };
  static const nt_test_case pg_cases[] = {
      {"pg_contract", test_pg_contract},
      {"pg_race", test_pg_race},
      {"pg_cancel_in_flight", test_pg_cancel_in_flight},
      {"pg_timing", test_pg_timing},
      {NULL, NULL},
  };
  int rv;

  base = event_base_new();
  if (base == NULL) {
    return 2;
  }
  if (argc == 3 && strcmp(argv[1], "pg") == 0) {
    pg_uri = argv[2];
    rv = nt_test_run(pg_cases);
  } else {
    rv = nt_test_run(cases);
  }
  event_base_free(base);
  return rv;
}
