/* The registry's embedded backend: one SQLite file (Debian's libsqlite3),
 * the only SQL in natter.
 *
 * Durability and latency: WAL journal with synchronous=NORMAL, so a commit
 * is one append to the -wal file without an fsync; a checkpoint fsyncs
 * later. A binding survives a crash of the broker process at any point;
 * after a power loss or kernel crash the last few commits may be lost
 * (SQLite's documented WAL+NORMAL trade-off). Statements are prepared once
 * at open. A lock held by another process (an operator's -list/-release,
 * or a backup) is never waited for inside a call, which runs on the
 * broker's loop: the call returns NT_REGISTRY_ERR_BUSY at once and
 * registry.c retries it from a timer (registry.h). Only opening, before
 * the loop serves anyone, waits up to OPEN_BUSY_TIMEOUT_MS.
 *
 * The file is created with mode 0600 (SQLite's -wal and -shm files copy
 * that mode) in a directory created with 0700 if missing. It carries
 * PRAGMA application_id (natter's) and user_version (the schema version),
 * so that a foreign SQLite file or one from a newer natter is refused with
 * a clear message, and a later version can migrate. Opening runs PRAGMA
 * quick_check: a corrupt file is an error, never replaced by an empty
 * registry. Backup while the broker runs: `sqlite3 FILE ".backup COPY"`.
 *
 * The count of bound names for NT_REGISTRY_MAX_NAMES is kept in memory and
 * re-read on every expire; names released by another process meanwhile
 * only make the bound stricter for a while. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "natter.h"
#include "broker/registry.h"
#include "base/textfile.h"

#define OPEN_BUSY_TIMEOUT_MS 200
#define SCHEMA_VERSION 1
#define APPLICATION_ID 1851880562 /* 0x6e617472, "natr" */
#define STR_(x) #x
#define STR(x) STR_(x)

enum {
  STMT_LOOKUP,
  STMT_INSERT,
  STMT_TOUCH,
  STMT_RELEASE,
  STMT_EXPIRE,
  STMT_LIST,
  STMT_COUNT,
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_N
};

static const char *const stmt_sql[STMT_N] = {
    [STMT_LOOKUP] = "SELECT fingerprint, first_seen, last_seen FROM names "
                    "WHERE name = ?1",
    [STMT_INSERT] = "INSERT INTO names (name, fingerprint, first_seen, "
                    "last_seen) VALUES (?1, ?2, ?3, ?3)",
    [STMT_TOUCH] = "UPDATE names SET last_seen = ?2 WHERE name = ?1 AND "
                   "last_seen < ?2",
    [STMT_RELEASE] = "DELETE FROM names WHERE name = ?1",
    /* The oldest first, a bounded batch per call. */
    [STMT_EXPIRE] = "DELETE FROM names WHERE name IN (SELECT name FROM names "
                    "WHERE last_seen < ?1 ORDER BY last_seen LIMIT ?2)",
    [STMT_LIST] = "SELECT name, fingerprint, first_seen, last_seen FROM names "
                  "ORDER BY name",
    [STMT_COUNT] = "SELECT count(*) FROM names",
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
};

typedef struct registry_sqlite {
  sqlite3 *db;
  char *path;
  size_t count; /* bound names, for NT_REGISTRY_MAX_NAMES */
  int open;     /* opened: calls run on the loop, a held lock is retried */
  sqlite3_stmt *stmt[STMT_N];
} registry_sqlite;

/* What the operator can do about a failed call, by SQLite's primary code. */
static const char *hint_for(int code) {
  switch (code & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return "another process holds the registry's lock; try again";
  case SQLITE_FULL:
    return "the disk is full; free space";
  case SQLITE_READONLY:
  case SQLITE_PERM:
  case SQLITE_CANTOPEN:
  case SQLITE_AUTH:
    return "check that the file and its directory are writable by the broker";
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return "restore it from a backup (sqlite3 FILE \".backup COPY\" makes "
           "one) or move it away to start an empty registry";
  default:
    return "check the file and the disk";
  }
}

static int db_fail(registry_sqlite *r, int code, const char *what, char *err,
                   size_t errlen) {
  nt_textfile_set_err(err, errlen, "registry %s: cannot %s (%s): %s", r->path,
                      what, sqlite3_errmsg(r->db), hint_for(code));
  /* Once open, a lock held elsewhere is retried by registry.c. */
  if ((code & 0xff) == SQLITE_BUSY && r->open) {
    return NT_REGISTRY_ERR_BUSY;
  }
  return NATTER_ERR_REGISTRY;
}

/* Runs a statement that returns no rows. */
static int exec_sql(registry_sqlite *r, const char *sql, const char *what,
                    char *err, size_t errlen) {
  int rc = sqlite3_exec(r->db, sql, NULL, NULL, NULL);

  return rc == SQLITE_OK ? 0 : db_fail(r, rc, what, err, errlen);
}

/* Reads one integer from a single-row statement such as a PRAGMA. */
static int query_int(registry_sqlite *r, const char *sql, int64_t *out,
                     const char *what, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);

  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
  }
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? 0 : db_fail(r, rc, what, err, errlen);
}

/* Reads one text value (journal_mode, quick_check) into |out|. */
static int query_text(registry_sqlite *r, const char *sql, char *out,
                      size_t outlen, const char *what, char *err,
                      size_t errlen) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);

  out[0] = '\0';
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
  }
  if (rc == SQLITE_ROW) {
    const unsigned char *text = sqlite3_column_text(st, 0);
    snprintf(out, outlen, "%s", text ? (const char *)text : "");
    /* quick_check reports on several lines; messages have one. */
    for (char *p = out; *p; p++) {
      if (*p == '\n') {
        *p = ' ';
      }
    }
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_OK ? 0 : db_fail(r, rc, what, err, errlen);
}

static int corrupt(registry_sqlite *r, const char *why, char *err,
                   size_t errlen) {
  nt_textfile_set_err(err, errlen, "registry %s is corrupt (%s): %s", r->path,
                      why, hint_for(SQLITE_CORRUPT));
  return NATTER_ERR_REGISTRY;
}

/* Creates the schema in a new file, or checks that an existing file is a
 * natter registry of a version this code reads. Inside one write
 * transaction, so two processes opening a new file at once agree. */
static int check_or_create_schema(registry_sqlite *r, char *err,
                                  size_t errlen) {
  int64_t app_id = 0, version = 0, objects = 0;
  int rv;

  rv = exec_sql(r, "BEGIN IMMEDIATE", "read the schema", err, errlen);
  if (rv != 0) {
    return rv;
  }
  if ((rv = query_int(r, "PRAGMA application_id", &app_id, "read the schema",
                      err, errlen)) != 0 ||
      (rv = query_int(r, "PRAGMA user_version", &version, "read the schema",
                      err, errlen)) != 0 ||
      (rv = query_int(r, "SELECT count(*) FROM sqlite_master", &objects,
                      "read the schema", err, errlen)) != 0) {
    goto out;
  }
  if (app_id == 0 && version == 0 && objects == 0) {
    rv = exec_sql(
        r,
        "CREATE TABLE names ("
        " name TEXT PRIMARY KEY NOT NULL,"
        " fingerprint BLOB NOT NULL,"
        " first_seen INTEGER NOT NULL,"
        " last_seen INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX names_last_seen ON names (last_seen);"
        "PRAGMA application_id = " STR(
            APPLICATION_ID) ";"
                            "PRAGMA user_version = " STR(SCHEMA_VERSION) ";",
        "create the schema", err, errlen);
  } else if (app_id != APPLICATION_ID) {
    nt_textfile_set_err(err, errlen,
                        "registry %s is a SQLite file of another program, "
                        "not a natter registry: choose another -registry "
                        "file",
                        r->path);
    rv = NATTER_ERR_REGISTRY;
  } else if (version > SCHEMA_VERSION) {
    nt_textfile_set_err(err, errlen,
                        "registry %s has schema version %lld, newer than this "
                        "natter reads (%d): run the newer natter",
                        r->path, (long long)version, SCHEMA_VERSION);
    rv = NATTER_ERR_REGISTRY;
  } else if (version != SCHEMA_VERSION) {
    nt_textfile_set_err(err, errlen,
                        "registry %s has unknown schema version %lld: restore "
                        "it from a backup",
                        r->path, (long long)version);
    rv = NATTER_ERR_REGISTRY;
  }
out:
  if (rv == 0) {
    return exec_sql(r, "COMMIT", "create the schema", err, errlen);
  }
  sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
  return rv;
}

/* Creates the file ourselves so that its mode is 0600 whatever the umask
 * (SQLite would use 0644), and so that an unreadable path fails with the
 * system's reason rather than SQLite's "unable to open database file". */
static int create_file(const char *path, char *err, size_t errlen) {
  struct stat st;
  int fd, rv;

  rv = nt_textfile_make_parent_dirs(path, "registry", err, errlen);
  if (rv != 0) {
    return NATTER_ERR_REGISTRY;
  }
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) {
    nt_textfile_set_err(err, errlen,
                        "cannot open registry %s (%s): check its path and "
                        "that the broker may read and write it",
                        path, strerror(errno));
    return NATTER_ERR_REGISTRY;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    nt_textfile_set_err(err, errlen, "registry %s is not a regular file", path);
    close(fd);
    return NATTER_ERR_REGISTRY;
  }
  /* Closed before SQLite opens it: closing another descriptor of the file
   * later would drop SQLite's POSIX locks. */
  close(fd);
  return 0;
}

static void sqlite_close(void *impl) {
  registry_sqlite *r = impl;

  if (r == NULL) {
    return;
  }
  for (int i = 0; i < STMT_N; i++) {
    sqlite3_finalize(r->stmt[i]);
  }
  /* sqlite3_close_v2 checkpoints the WAL and removes it when this is the
   * last connection. */
  sqlite3_close_v2(r->db);
  free(r->path);
  free(r);
}

static int refresh_count(registry_sqlite *r, char *err, size_t errlen) {
  sqlite3_stmt *st = r->stmt[STMT_COUNT];
  int rc = sqlite3_step(st);

  if (rc == SQLITE_ROW) {
    r->count = (size_t)sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_reset(st);
  return rc == SQLITE_OK ? 0 : db_fail(r, rc, "count names", err, errlen);
}

static int sqlite_open(void **pimpl, const char *path, char *err,
                       size_t errlen) {
  registry_sqlite *r;
  char text[256];
  int rc, rv;

  *pimpl = NULL;
  rv = create_file(path, err, errlen);
  if (rv != 0) {
    return rv;
  }
  r = calloc(1, sizeof(*r));
  if (r == NULL || (r->path = strdup(path)) == NULL) {
    free(r);
    nt_textfile_set_err(err, errlen, "cannot open registry %s: out of memory",
                        path);
    return NATTER_ERR_NOMEM;
  }
  rc = sqlite3_open_v2(path, &r->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    rv = r->db ? db_fail(r, rc, "open it", err, errlen) : NATTER_ERR_NOMEM;
    goto fail;
  }
  sqlite3_extended_result_codes(r->db, 1);
  sqlite3_busy_timeout(r->db, OPEN_BUSY_TIMEOUT_MS);

  /* The first statement reads the header: a file that is not a database
   * fails here. */
  rv = query_text(r, "PRAGMA journal_mode = WAL", text, sizeof(text), "read it",
                  err, errlen);
  if (rv != 0) {
    goto fail;
  }
  if (strcmp(text, "wal") != 0) {
    nt_textfile_set_err(err, errlen,
                        "registry %s: cannot use the WAL journal (journal "
                        "mode is %s): put it on a local file system",
                        path, text);
    rv = NATTER_ERR_REGISTRY;
    goto fail;
  }
  if ((rv = exec_sql(r, "PRAGMA synchronous = NORMAL", "configure it", err,
                     errlen)) != 0 ||
      (rv = query_text(r, "PRAGMA quick_check(1)", text, sizeof(text),
                       "check it", err, errlen)) != 0) {
    goto fail;
  }
  if (strcmp(text, "ok") != 0) {
    rv = corrupt(r, text, err, errlen);
    goto fail;
  }
  rv = check_or_create_schema(r, err, errlen);
  if (rv != 0) {
    goto fail;
  }
  for (int i = 0; i < STMT_N; i++) {
    rc = sqlite3_prepare_v3(r->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                            &r->stmt[i], NULL);
    if (rc != SQLITE_OK) {
      /* The schema check passed, so a missing table means damage. */
      rv = db_fail(r, SQLITE_CORRUPT, "prepare its statements", err, errlen);
      goto fail;
    }
  }
  rv = refresh_count(r, err, errlen);
  if (rv != 0) {
    goto fail;
  }
  /* From here calls run on the loop: never wait for a lock there. */
  sqlite3_busy_timeout(r->db, 0);
  r->open = 1;
  *pimpl = r;
  return 0;

fail:
  sqlite_close(r);
  return rv;
}

/* Reads the columns (fingerprint, first_seen, last_seen) from |col|. */
static int read_entry(registry_sqlite *r, sqlite3_stmt *st, int col,
                      nt_registry_entry *entry, char *err, size_t errlen) {
  const void *fp = sqlite3_column_blob(st, col);

  if (fp == NULL || sqlite3_column_bytes(st, col) != NT_FINGERPRINT_LEN) {
    return corrupt(r, "a fingerprint is not 32 bytes", err, errlen);
  }
  memcpy(entry->fingerprint, fp, NT_FINGERPRINT_LEN);
  entry->first_seen = sqlite3_column_int64(st, col + 1);
  entry->last_seen = sqlite3_column_int64(st, col + 2);
  return 0;
}

static int sqlite_lookup(void *impl, const char *name, nt_registry_entry *entry,
                         char *err, size_t errlen) {
  registry_sqlite *r = impl;
  sqlite3_stmt *st = r->stmt[STMT_LOOKUP];
  int rc, rv;

  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    memset(entry, 0, sizeof(*entry));
    snprintf(entry->name, sizeof(entry->name), "%s", name);
    rv = read_entry(r, st, 0, entry, err, errlen);
  } else if (rc == SQLITE_DONE) {
    nt_textfile_set_err(err, errlen, "name %s is not bound", name);
    rv = NATTER_ERR_PEER_UNKNOWN;
  } else {
    rv = db_fail(r, rc, "look up a name", err, errlen);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rv;
}

static int sqlite_insert(void *impl, const char *name,
                         const uint8_t *fingerprint, int64_t now, char *err,
                         size_t errlen) {
  registry_sqlite *r = impl;
  sqlite3_stmt *st = r->stmt[STMT_INSERT];
  int rc;

  if (r->count >= NT_REGISTRY_MAX_NAMES) {
    nt_textfile_set_err(err, errlen,
                        "registry is full: %s holds %d names, the most it "
                        "takes: release unused names (natter -registry FILE "
                        "-list, -release NAME) or let them expire sooner",
                        r->path, NT_REGISTRY_MAX_NAMES);
    return NATTER_ERR_REGISTRY;
  }
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, fingerprint, NT_FINGERPRINT_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, now);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc == SQLITE_DONE) {
    r->count++;
    return 0;
  }
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    nt_textfile_set_err(err, errlen, "name %s is bound to another key", name);
    return NATTER_ERR_NAME_TAKEN;
  }
  return db_fail(r, rc, "bind a name", err, errlen);
}

static int sqlite_touch_many(void *impl, const nt_registry_seen *touches,
                             size_t n, char *err, size_t errlen) {
  registry_sqlite *r = impl;
  sqlite3_stmt *st = r->stmt[STMT_TOUCH];
  int rc;

  rc = sqlite3_step(r->stmt[STMT_BEGIN]);
  sqlite3_reset(r->stmt[STMT_BEGIN]);
  if (rc != SQLITE_DONE) {
    return db_fail(r, rc, "write last-seen times", err, errlen);
  }
  for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
    sqlite3_bind_text(st, 1, touches[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, touches[i].last_seen);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_clear_bindings(st);
  if (rc == SQLITE_DONE) {
    rc = sqlite3_step(r->stmt[STMT_COMMIT]);
    sqlite3_reset(r->stmt[STMT_COMMIT]);
  }
  if (rc != SQLITE_DONE) {
    int rv = db_fail(r, rc, "write last-seen times", err, errlen);
    if (!sqlite3_get_autocommit(r->db)) {
      sqlite3_step(r->stmt[STMT_ROLLBACK]);
      sqlite3_reset(r->stmt[STMT_ROLLBACK]);
    }
    return rv;
  }
  return 0;
}

static int sqlite_release(void *impl, const char *name, char *err,
                          size_t errlen) {
  registry_sqlite *r = impl;
  sqlite3_stmt *st = r->stmt[STMT_RELEASE];
  int rc, changed;

  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  changed = sqlite3_changes(r->db);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) {
    return db_fail(r, rc, "release a name", err, errlen);
  }
  if (changed == 0) {
    nt_textfile_set_err(err, errlen, "name %s is not bound in registry %s",
                        name, r->path);
    return NATTER_ERR_PEER_UNKNOWN;
  }
  if (r->count > 0) {
    r->count--;
  }
  return 0;
}

static int sqlite_expire(void *impl, int64_t cutoff, size_t limit,
                         size_t *removed, char *err, size_t errlen) {
  registry_sqlite *r = impl;
  sqlite3_stmt *st = r->stmt[STMT_EXPIRE];
  int rc;

  sqlite3_bind_int64(st, 1, cutoff);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
  rc = sqlite3_step(st);
  *removed = rc == SQLITE_DONE ? (size_t)sqlite3_changes(r->db) : 0;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) {
    return db_fail(r, rc, "expire names", err, errlen);
  }
  return refresh_count(r, err, errlen);
}

static int sqlite_list(void *impl, nt_registry_list_fn fn, void *user_data,
                       char *err, size_t errlen) {
  registry_sqlite *r = impl;
  sqlite3_stmt *st = r->stmt[STMT_LIST];
  nt_registry_entry entry;
  int rc, rv = 0;

  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *name = sqlite3_column_text(st, 0);

    memset(&entry, 0, sizeof(entry));
    if (name == NULL || !nt_name_valid((const char *)name)) {
      rv = corrupt(r, "a stored name is invalid", err, errlen);
      break;
    }
    snprintf(entry.name, sizeof(entry.name), "%s", (const char *)name);
    rv = read_entry(r, st, 1, &entry, err, errlen);
    if (rv != 0 || fn(&entry, user_data) != 0) {
      break;
    }
  }
  if (rv == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE) {
    rv = db_fail(r, rc, "list names", err, errlen);
  }
  sqlite3_reset(st);
  return rv;
}

/* From the file, not the count kept for the limit: an operator's
 * -release from another process changes it too. */
static int sqlite_count(void *impl, size_t *n, char *err, size_t errlen) {
  registry_sqlite *r = impl;
  int rv = refresh_count(r, err, errlen);

  *n = r->count;
  return rv;
}

const nt_registry_ops nt_registry_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .lookup = sqlite_lookup,
    .insert = sqlite_insert,
    .touch_many = sqlite_touch_many,
    .release = sqlite_release,
    .expire = sqlite_expire,
    .list = sqlite_list,
    .count = sqlite_count,
};
