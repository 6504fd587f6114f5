/* The registry in a PostgreSQL database that several brokers share
 * (-registry postgresql://...): an asynchronous backend (registry.h,
 * nt_registry_async_ops) on libpq's non-blocking API, driven by events on
 * the connection's socket, so that no query ever holds up the broker's
 * loop. libpq stays in this file.
 *
 * One connection, one statement at a time (the registry hands over one
 * request at a time). A bind is decided by the database: INSERT ... ON
 * CONFLICT DO NOTHING, and when the name was there, the owner is read;
 * so two brokers binding one name at once agree on one owner.
 *
 * When the database cannot be reached, requests fail at once with "the
 * name registry is unavailable, try again", except a bind or lookup of a
 * name this process has seen bound, answered from memory (the clients a
 * broker knows keep checking in); touches stay pending in the registry
 * and are written once the database is back. The connection is retried
 * after 1 s, doubling to 30 s; the log says when it goes and comes back.
 * The schema is created and migrated here (doc/operations.md). */
#include <errno.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/textfile.h"
#include "broker/registry.h"
#include "natter.h"
#include "trust/tls.h"

#define SCHEMA_VERSION 1
/* A connection attempt (with the schema check) and a statement each get
 * this long; then the connection counts as lost. Under the broker's 10 s
 * check-in deadline. */
#define PG_TIMEOUT_S 5
/* What closing waits for its last statements, at most. */
#define PG_CLOSE_WAIT_MS 2000
#define PG_BACKOFF_MIN_S 1
#define PG_BACKOFF_MAX_S 30
/* Binds retried when the name came and went between two statements. */
#define BIND_TRIES 3
/* A name's last-seen time in the database is at most this stale while
 * its client stays checked in (a flush skips fresher rows); an expiry
 * first writes every row its cutoff would remove, so no name in use
 * expires. Names expire after days (30 by default). */
#define PG_TOUCH_GRAIN_S 3600

/* Creates or migrates the schema in one transaction, under an advisory
 * lock so that brokers starting together take turns; the last result is
 * the version. */
static const char MIGRATE_SQL[] =
    "BEGIN;"
    "SELECT pg_advisory_xact_lock(7305318432707700017);"
    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);"
    "INSERT INTO schema_version SELECT 0"
    " WHERE NOT EXISTS (SELECT 1 FROM schema_version);"
    "DO $$ BEGIN"
    " IF (SELECT max(version) FROM schema_version) < 1 THEN"
    "  CREATE TABLE names (name text PRIMARY KEY,"
    "   key bytea NOT NULL, created bigint NOT NULL,"
    "   last_seen bigint NOT NULL);"
    "  CREATE INDEX names_last_seen ON names (last_seen);"
    "  CREATE TABLE brokers (broker_id text PRIMARY KEY,"
    "   heartbeat bigint NOT NULL);"
    "  CREATE TABLE presence (broker_id text NOT NULL"
    "   REFERENCES brokers ON DELETE CASCADE, name text NOT NULL,"
    "   key bytea NOT NULL, since bigint NOT NULL,"
    "   PRIMARY KEY (broker_id, name));"
    "  UPDATE schema_version SET version = 1;"
    " END IF;"
    "END $$;"
    "COMMIT;"
    /* The server gives up on a statement (a lock held elsewhere) before
     * this side's PG_TIMEOUT_S drops the connection, and the statements
     * at close, which wait, end too. */
    "SET statement_timeout = 4000;"
    "SELECT max(version) FROM schema_version;";

enum {
  S_LOOKUP,
  S_INSERT,
  S_TAKEOVER,
  S_RELEASE,
  S_TOUCH,
  S_EXPIRE,
  S_LIST,
  S_HEARTBEAT,
  S_LEAVE,
  S_NAMES,
  S_COUNT
};

static const struct {
  const char *name;
  int nparams;
  const char *sql;
} STATEMENTS[S_COUNT] = {
    {"natter_lookup", 1,
     "SELECT encode(key, 'hex'), created, last_seen FROM names "
     "WHERE name = $1"},
    /* The count keeps NT_REGISTRY_MAX_NAMES across brokers. Counting
     * reads every row: at 27,000 names it made each check-in of a new
     * name cost milliseconds of the database (tests/bench/NOTES.md). So
     * the table's size is estimated first, as the planner does (the
     * density of rows the statistics last saw, times its pages now;
     * without statistics, the most rows a page can hold: a row is more
     * than 60 bytes), and rows are counted only when that estimate is
     * above 80% of the limit; an initplan runs only when the OR needs
     * it. */
    {"natter_insert", 4,
     "INSERT INTO names (name, key, created, last_seen) "
     "SELECT $1, decode($2, 'hex'), $3, $3 "
     "WHERE COALESCE((SELECT CASE WHEN c.reltuples > 0 AND c.relpages > 0 "
     " THEN c.reltuples / c.relpages "
     " ELSE current_setting('block_size')::float8 / 60 END * "
     " (pg_relation_size(c.oid) / current_setting('block_size')::bigint) "
     " < $4::bigint * 0.8 FROM pg_class c "
     " WHERE c.oid = 'names'::regclass), false) "
     "OR (SELECT count(*) FROM names) < $4::bigint "
     "ON CONFLICT (name) DO NOTHING RETURNING name"},
    /* Compare and swap: only from the owner just read. */
    {"natter_takeover", 4,
     "UPDATE names SET key = decode($2, 'hex'), created = $3, last_seen = $3 "
     "WHERE name = $1 AND key = decode($4, 'hex') RETURNING name"},
    {"natter_release", 1, "DELETE FROM names WHERE name = $1 RETURNING name"},
    /* One statement per flush, however many names; a row is written
     * only when its last-seen time is older than $3 (PG_TOUCH_GRAIN_S
     * ago, or an expiry's cutoff): a flush every 15 s rewrote every
     * checked-in client's row (tests/bench/NOTES.md). */
    {"natter_touch", 3,
     "UPDATE names AS n SET last_seen = t.seen "
     "FROM unnest($1::text[], $2::bigint[]) AS t(name, seen) "
     "WHERE n.name = t.name AND n.last_seen < t.seen "
     "AND n.last_seen < $3::bigint"},
    {"natter_expire", 2,
     "DELETE FROM names WHERE name IN (SELECT name FROM names "
     "WHERE last_seen < $1 ORDER BY last_seen LIMIT $2) RETURNING name"},
    {"natter_list", 0,
     "SELECT name, encode(key, 'hex'), created, last_seen FROM names "
     "ORDER BY name"},
    /* Presence, one statement every heartbeat: this broker's heartbeat,
     * brokers dead for long enough removed when $2 says this broker may
     * judge (their clients' presence with them: ON DELETE CASCADE), then
     * this broker's changes: $5 the names gone (with $4 every name not in
     * $6), $6..$8 the names here. Says whether this broker's row was new
     * (it had been removed as dead: all its presence goes again). Times
     * are the database's clock, when the statement runs: brokers' clocks
     * may differ, and a statement held up by a stalled server carries
     * the time it ran, not the time it was sent. */
    {"natter_heartbeat", 8,
     "WITH hb AS (INSERT INTO brokers (broker_id, heartbeat) "
     " VALUES ($1, extract(epoch FROM now())::bigint) "
     " ON CONFLICT (broker_id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat "
     " RETURNING (xmax = 0) AS inserted), "
     "dead AS (DELETE FROM brokers WHERE $2::boolean "
     " AND heartbeat < extract(epoch FROM now())::bigint - $3::bigint "
     " AND broker_id <> $1), "
     "gone AS (DELETE FROM presence WHERE broker_id = $1 "
     " AND ($4::boolean OR name = ANY ($5::text[])) "
     " AND NOT name = ANY ($6::text[])), "
     "here AS (INSERT INTO presence (broker_id, name, key, since) "
     " SELECT $1, t.n, decode(t.k, 'hex'), t.s "
     " FROM unnest($6::text[], $7::text[], $8::bigint[]) AS t(n, k, s) "
     " ON CONFLICT (broker_id, name) DO UPDATE "
     " SET key = EXCLUDED.key, since = EXCLUDED.since) "
     "SELECT inserted FROM hb"},
    /* A broker that stops takes its presence with it. */
    {"natter_leave", 1, "DELETE FROM brokers WHERE broker_id = $1"},
    /* The dashboard's count of names (at most once a minute). */
    {"natter_names", 0, "SELECT count(*) FROM names"},
};

typedef enum {
  PG_DOWN,       /* waiting to retry */
  PG_CONNECTING, /* PQconnectPoll */
  PG_SETUP,      /* schema, then prepared statements */
  PG_READY
} pg_state;

/* The request being worked on. */
typedef struct pg_call {
  int active;
  nt_registry_call_kind kind;
  int step; /* the statement sent, or -1 */
  int tries;
  char name[NT_NAME_MAX + 1];
  uint8_t fingerprint[NT_FINGERPRINT_LEN];
  char fp_hex[NT_FINGERPRINT_HEX_LEN + 1];
  char owner_hex[NT_FINGERPRINT_HEX_LEN + 1];
  int64_t now, cutoff;
  size_t limit;
  unsigned flags;
  char *touch_names, *touch_seen; /* array literals, or NULL */
  nt_registry_list_fn list_fn;
  void *list_user_data;
  nt_registry_call_done_fn done;
  void *arg;
  nt_registry_result res;
  char err[512];
} pg_call;

typedef struct registry_pg {
  struct event_base *base;
  char *conninfo;
  char where[300]; /* for log lines: no password */
  const nt_log *log;
  PGconn *conn;
  pg_state state;
  int tried;     /* a first attempt has ended */
  int was_ready; /* for the log: the last state change said "up" */
  int logged_down;
  int backoff_s;
  int setup_step; /* -1: the schema; then the statement to prepare */
  evutil_socket_t sock;
  struct event *sock_ev;
  struct event *timer_ev; /* retry, or the current deadline */
  struct event *later_ev; /* completes a call answered without a query */
  PGresult *result;       /* the current statement's */
  char last_error[256];
  pg_call call;
  /* Names seen bound in this process: name -> nt_registry_entry, for the
   * clients it knows while the database is away. */
  nt_hashmap cache;
  /* Presence: off until a broker id is set. */
  char broker_id[NT_REGISTRY_BROKER_ID_MAX + 1];
  struct event *hb_ev; /* every NT_REGISTRY_HEARTBEAT_S */
  int hb_due;          /* a heartbeat waits for the connection */
  int hb_inflight;     /* the statement on the connection is one */
  int resync;          /* write all of this broker's presence again */
  int hb_full;         /* the one in flight is a full one */
  char *hb_arrays[4];  /* its parameters: gone, names, keys, since */
  /* Judging other brokers dead: only after this broker's own heartbeats
   * have gone through promptly for NT_REGISTRY_BROKER_DEAD_S (a database
   * that was away or stalled held up theirs as well as ours; each gets
   * that long to beat again). Monotonic ms; steady_since 0: not steady. */
  uint64_t hb_sent_ms, steady_since_ms;
  int judging; /* for the log: the last heartbeat judged others */
  nt_hashmap presence; /* name -> pg_presence */
} registry_pg;

/* A checked-in client, or one that left and is not written yet. */
typedef struct pg_presence {
  char name[NT_NAME_MAX + 1]; /* the key in registry_pg.presence */
  char key_hex[NT_FINGERPRINT_HEX_LEN + 1];
  int64_t since;
  int present;
  int dirty;              /* changed since last written */
  unsigned gen, sent_gen; /* changes; the one a heartbeat in flight sends */
} pg_presence;

static void try_heartbeat(registry_pg *pg);
static void answer_later(registry_pg *pg, int rv);

static void pg_connect(registry_pg *pg);
static void sock_cb(evutil_socket_t fd, short what, void *arg);
static void call_step(registry_pg *pg);

/* ---- small things ---- */

static uint64_t close_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_last_error(registry_pg *pg, const char *msg) {
  size_t n;
  size_t o = 0;

  if (msg == NULL || msg[0] == '\0') {
    msg = "unknown error";
  }
  /* libpq's messages end with a newline, some span indented lines: one
   * line, single spaces. */
  for (n = 0; msg[n] && o + 1 < sizeof(pg->last_error); n++) {
    int space = msg[n] == '\n' || msg[n] == '\t' || msg[n] == ' ';
    if (space && (o == 0 || pg->last_error[o - 1] == ' ')) {
      continue;
    }
    pg->last_error[o++] = space ? ' ' : msg[n];
  }
  while (o > 0 && pg->last_error[o - 1] == ' ') {
    o--;
  }
  pg->last_error[o] = '\0';
}

/* A row of (key hex, created, last_seen) starting at column |col|. */
static int parse_entry(const PGresult *r, int row, int col, const char *name,
                       nt_registry_entry *e) {
  memset(e, 0, sizeof(*e));
  snprintf(e->name, sizeof(e->name), "%s", name);
  e->first_seen = strtoll(PQgetvalue(r, row, col + 1), NULL, 10);
  e->last_seen = strtoll(PQgetvalue(r, row, col + 2), NULL, 10);
  /* Stored as nt_fingerprint_hex wrote it; whatever else is there (a
   * hand-edited row) fails the parse and the row is refused. */
  return nt_fingerprint_parse(e->fingerprint, PQgetvalue(r, row, col));
}

static void cache_put(registry_pg *pg, const nt_registry_entry *e) {
  nt_registry_entry *c = nt_hashmap_get(&pg->cache, e->name, strlen(e->name));

  if (c == NULL) {
    if (nt_hashmap_count(&pg->cache) >= NT_REGISTRY_MAX_NAMES ||
        (c = malloc(sizeof(*c))) == NULL) {
      return; /* only a help while the database is away */
    }
    *c = *e;
    if (nt_hashmap_put(&pg->cache, c->name, strlen(c->name), c) != 0) {
      free(c);
    }
    return;
  }
  *c = *e;
}

static void cache_remove(registry_pg *pg, const char *name) {
  free(nt_hashmap_remove(&pg->cache, name, strlen(name)));
}

static void cache_clear(registry_pg *pg) {
  for (size_t i = 0; i < pg->cache.capacity; i++) {
    if (pg->cache.slots[i].key) {
      free(pg->cache.slots[i].value);
    }
  }
  nt_hashmap_clear(&pg->cache);
}

/* ---- the socket and the timer ---- */

/* Waits for |what| on the connection's socket, which may change while
 * connecting. */
static void watch(registry_pg *pg, short what) {
  evutil_socket_t fd = PQsocket(pg->conn);

  if (pg->sock_ev != NULL && fd != pg->sock) {
    event_free(pg->sock_ev);
    pg->sock_ev = NULL;
  }
  if (pg->sock_ev == NULL) {
    pg->sock = fd;
    pg->sock_ev = event_new(pg->base, fd, what, sock_cb, pg);
    if (pg->sock_ev == NULL) {
      return; /* the deadline ends the wait */
    }
  } else {
    event_del(pg->sock_ev);
    event_assign(pg->sock_ev, pg->base, fd, what, sock_cb, pg);
  }
  event_add(pg->sock_ev, NULL);
}

static void set_timer(registry_pg *pg, int seconds) {
  struct timeval tv = {seconds, 0};
  evtimer_add(pg->timer_ev, &tv);
}

/* ---- a call's answer ---- */

static void call_finish(registry_pg *pg, int rv) {
  pg_call *call = &pg->call;
  nt_registry_call_done_fn done = call->done;
  void *arg = call->arg;
  nt_registry_result res = call->res;
  char err[sizeof(call->err)];

  memcpy(err, call->err, sizeof(err));
  free(call->touch_names);
  free(call->touch_seen);
  memset(call, 0, sizeof(*call));
  res.rv = rv;
  res.err = err;
  done(&res, arg);
  /* The registry starts its next request from a timer: a heartbeat that
   * waited for this one goes first. */
  try_heartbeat(pg);
}

static void call_fail_unavailable(registry_pg *pg) {
  nt_textfile_set_err(pg->call.err, sizeof(pg->call.err),
                      NT_REGISTRY_UNAVAILABLE " (%s: %s)", pg->where,
                      pg->last_error);
  call_finish(pg, NATTER_ERR_REGISTRY);
}

/* ---- the connection's states ---- */

static void drop_connection(registry_pg *pg) {
  if (pg->sock_ev != NULL) {
    event_free(pg->sock_ev);
    pg->sock_ev = NULL;
  }
  PQclear(pg->result);
  pg->result = NULL;
  PQfinish(pg->conn);
  pg->conn = NULL;
  pg->sock = -1;
}

static void heartbeat_free(registry_pg *pg) {
  for (size_t i = 0; i < 4; i++) {
    free(pg->hb_arrays[i]);
    pg->hb_arrays[i] = NULL;
  }
  pg->hb_inflight = 0;
}

/* The connection failed or was lost: the call fails, a retry waits. */
static void went_down(registry_pg *pg, const char *why) {
  set_last_error(pg, why);
  drop_connection(pg);
  heartbeat_free(pg);
  pg->resync = 1;
  pg->steady_since_ms = 0;
  evtimer_del(pg->timer_ev);
  if (!pg->logged_down && pg->log) {
    nt_error(pg->log,
             "registry: %s %s: %s; names known here are still served, new "
             "ones refused; retrying",
             pg->was_ready ? "lost" : "cannot reach", pg->where,
             pg->last_error);
  }
  pg->logged_down = 1;
  pg->was_ready = 0;
  pg->tried = 1;
  pg->state = PG_DOWN;
  set_timer(pg, pg->backoff_s);
  pg->backoff_s = pg->backoff_s * 2 > PG_BACKOFF_MAX_S ? PG_BACKOFF_MAX_S
                                                       : pg->backoff_s * 2;
  if (pg->call.active) {
    call_fail_unavailable(pg);
  }
}

static void became_ready(registry_pg *pg) {
  pg->state = PG_READY;
  pg->tried = 1;
  pg->backoff_s = PG_BACKOFF_MIN_S;
  evtimer_del(pg->timer_ev);
  if (pg->log) {
    if (pg->logged_down) {
      nt_info(pg->log, "registry: %s is back", pg->where);
    } else {
      nt_debug(pg->log, "registry: connected to %s", pg->where);
    }
  }
  pg->logged_down = 0;
  pg->was_ready = 1;
  watch(pg, EV_READ);
  /* Whatever happened meanwhile: all of this broker's presence again. */
  pg->resync = 1;
  pg->hb_due = pg->broker_id[0] != '\0';
  if (pg->call.active && !evtimer_pending(pg->later_ev, NULL)) {
    call_step(pg);
  } else if (!pg->call.active) {
    try_heartbeat(pg);
  }
}

/* Sends what is buffered; waits for the socket to take the rest. */
static int flush_out(registry_pg *pg) {
  int r = PQflush(pg->conn);

  if (r < 0) {
    went_down(pg, PQerrorMessage(pg->conn));
    return -1;
  }
  watch(pg, r == 1 ? EV_READ | EV_WRITE : EV_READ);
  return 0;
}

static void setup_next(registry_pg *pg) {
  int ok;

  if (pg->setup_step < 0) {
    ok = PQsendQuery(pg->conn, MIGRATE_SQL);
  } else if (pg->setup_step < S_COUNT) {
    ok = PQsendPrepare(pg->conn, STATEMENTS[pg->setup_step].name,
                       STATEMENTS[pg->setup_step].sql,
                       STATEMENTS[pg->setup_step].nparams, NULL);
  } else {
    became_ready(pg);
    return;
  }
  if (!ok) {
    went_down(pg, PQerrorMessage(pg->conn));
    return;
  }
  (void)flush_out(pg);
}

/* A result of the setup (the schema's statements come one by one: the
 * last one with rows says the version). */
static int setup_result(registry_pg *pg, PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  char why[300];

  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    snprintf(why, sizeof(why), "%s the schema: %s",
             pg->setup_step < 0 ? "cannot create or migrate"
                                : "cannot prepare statements for",
             PQresultErrorMessage(r));
    set_last_error(pg, why);
    return -1;
  }
  if (pg->setup_step < 0 && st == PGRES_TUPLES_OK && PQnfields(r) == 1 &&
      PQntuples(r) == 1 && strcmp(PQfname(r, 0), "max") == 0) {
    long version = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    if (version != SCHEMA_VERSION) {
      snprintf(why, sizeof(why),
               "its schema is version %ld, this natter knows %d: upgrade "
               "natter",
               version, SCHEMA_VERSION);
      set_last_error(pg, why);
      return -1;
    }
  }
  return 0;
}

static void notice_cb(void *arg, const char *message) {
  registry_pg *pg = arg;
  if (pg->log) {
    nt_debug(pg->log, "registry: PostgreSQL says: %s", message);
  }
}

/* Starts a connection attempt, polled from the loop. (libpq resolves a
 * host name synchronously, in PQconnectStart or PQconnectPoll: the only
 * wait on the loop; operations.md says to give an address, or hostaddr=,
 * when the resolver may be slow.) */
static void pg_connect(registry_pg *pg) {
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;

  pg->conn = PQconnectStart(pg->conninfo);
  if (pg->conn == NULL) {
    went_down(pg, "out of memory");
    return;
  }
  if (PQstatus(pg->conn) == CONNECTION_BAD) {
    went_down(pg, PQerrorMessage(pg->conn));
    return;
  }
  PQsetNoticeProcessor(pg->conn, notice_cb, pg);
  pg->state = PG_CONNECTING;
  set_timer(pg, PG_TIMEOUT_S);
  watch(pg, st == PGRES_POLLING_READING ? EV_READ : EV_WRITE);
}

static void connect_poll(registry_pg *pg) {
  switch (PQconnectPoll(pg->conn)) {
  case PGRES_POLLING_READING:
    watch(pg, EV_READ);
    return;
  case PGRES_POLLING_WRITING:
    watch(pg, EV_WRITE);
    return;
  case PGRES_POLLING_OK:
    if (PQsetnonblocking(pg->conn, 1) != 0) {
      went_down(pg, PQerrorMessage(pg->conn));
      return;
    }
    pg->state = PG_SETUP;
    pg->setup_step = -1;
    setup_next(pg);
    return;
  default:
    went_down(pg, PQerrorMessage(pg->conn));
    return;
  }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  registry_pg *pg = arg;
  (void)fd;
  (void)what;

  if (pg->state == PG_DOWN) {
    pg_connect(pg);
  } else if (pg->state != PG_READY || pg->call.active || pg->hb_inflight) {
    went_down(pg, pg->state == PG_READY ? "a statement took too long"
                                        : "connecting took too long");
  }
}

/* ---- statements ---- */

static void send_stmt(registry_pg *pg, int stmt, const char *const *values) {
  pg->call.step = stmt;
  if (!PQsendQueryPrepared(pg->conn, STATEMENTS[stmt].name,
                           STATEMENTS[stmt].nparams, values, NULL, NULL, 0)) {
    went_down(pg, PQerrorMessage(pg->conn));
    return;
  }
  set_timer(pg, PG_TIMEOUT_S);
  (void)flush_out(pg);
}

/* Starts the call's next statement, or answers it. */
static void call_step(registry_pg *pg) {
  pg_call *c = &pg->call;
  char now[24], max[24], cutoff[24], limit[24];

  snprintf(now, sizeof(now), "%lld", (long long)c->now);
  snprintf(max, sizeof(max), "%d", NT_REGISTRY_MAX_NAMES);
  switch (c->kind) {
  case NT_REGISTRY_CALL_LOOKUP: {
    const char *v[] = {c->name};
    send_stmt(pg, S_LOOKUP, v);
    return;
  }
  case NT_REGISTRY_CALL_BIND:
    if (c->flags & NT_REGISTRY_BIND_EXISTING) {
      const char *v[] = {c->name};
      send_stmt(pg, S_LOOKUP, v);
    } else {
      const char *v[] = {c->name, c->fp_hex, now, max};
      send_stmt(pg, S_INSERT, v);
    }
    return;
  case NT_REGISTRY_CALL_RELEASE: {
    const char *v[] = {c->name};
    send_stmt(pg, S_RELEASE, v);
    return;
  }
  case NT_REGISTRY_CALL_FLUSH:
  case NT_REGISTRY_CALL_EXPIRE:
    if (c->touch_names != NULL) {
      int64_t stale = (int64_t)time(NULL) - PG_TOUCH_GRAIN_S;
      if (c->kind == NT_REGISTRY_CALL_EXPIRE && c->cutoff > stale) {
        stale = c->cutoff;
      }
      snprintf(cutoff, sizeof(cutoff), "%lld", (long long)stale);
      const char *v[] = {c->touch_names, c->touch_seen, cutoff};
      send_stmt(pg, S_TOUCH, v);
    } else if (c->kind == NT_REGISTRY_CALL_EXPIRE) {
      snprintf(cutoff, sizeof(cutoff), "%lld", (long long)c->cutoff);
      snprintf(limit, sizeof(limit), "%zu", c->limit);
      const char *v[] = {cutoff, limit};
      send_stmt(pg, S_EXPIRE, v);
    } else {
      answer_later(pg, 0); /* nothing to write */
    }
    return;
  case NT_REGISTRY_CALL_LIST:
    send_stmt(pg, S_LIST, NULL);
    return;
  case NT_REGISTRY_CALL_COUNT:
    send_stmt(pg, S_NAMES, NULL);
    return;
  }
}

/* The bind's owner as read: same key, another key, or none. */
static int bind_read(registry_pg *pg, PGresult *r) {
  pg_call *c = &pg->call;
  nt_registry_entry e;

  if (PQntuples(r) == 0) {
    if (c->flags & NT_REGISTRY_BIND_EXISTING) {
      nt_textfile_set_err(c->err, sizeof(c->err), "name %s is not bound",
                          c->name);
      return NATTER_ERR_PEER_UNKNOWN;
    }
    if (++c->tries < BIND_TRIES) {
      return 1; /* released meanwhile: insert again */
    }
    nt_textfile_set_err(c->err, sizeof(c->err), "registry is full");
    return NATTER_ERR_REGISTRY;
  }
  if (parse_entry(r, 0, 0, c->name, &e) != 0) {
    nt_textfile_set_err(c->err, sizeof(c->err),
                        "registry: a bad key stored for %s", c->name);
    return NATTER_ERR_REGISTRY;
  }
  if (memcmp(e.fingerprint, c->fingerprint, NT_FINGERPRINT_LEN) == 0) {
    cache_put(pg, &e);
    return 0;
  }
  c->res.entry = e;
  if (!(c->flags & NT_REGISTRY_BIND_TAKEOVER)) {
    cache_put(pg, &e);
    nt_textfile_set_err(c->err, sizeof(c->err),
                        "name %s is bound to another key", c->name);
    return NATTER_ERR_NAME_TAKEN;
  }
  nt_fingerprint_hex(e.fingerprint, c->owner_hex);
  return 2; /* take it over */
}

static void bound_new(registry_pg *pg) {
  pg_call *c = &pg->call;
  nt_registry_entry e;

  memset(&e, 0, sizeof(e));
  memcpy(e.name, c->name, sizeof(e.name));
  memcpy(e.fingerprint, c->fingerprint, NT_FINGERPRINT_LEN);
  e.first_seen = e.last_seen = c->now;
  cache_put(pg, &e);
}

/* A statement failed because the connection or the server is going away
 * (SQLSTATE class 08, connection exception; 57P01..57P03, the server
 * shutting down, crashed, or not accepting connections yet), or the
 * connection is gone anyway. */
static int connection_error(registry_pg *pg, const PGresult *r) {
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

  if (PQstatus(pg->conn) == CONNECTION_BAD || state == NULL) {
    return 1; /* libpq's own failure (no SQLSTATE): the connection */
  }
  return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
         strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0;
}

/* The current statement's result has come: the next step. */
static void call_result(registry_pg *pg, PGresult *r) {
  pg_call *c = &pg->call;
  ExecStatusType st = PQresultStatus(r);
  char now[24];
  int rv;

  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (connection_error(pg, r)) {
      /* The server is going away (a restart, an administrator ending the
       * session): the database is unavailable, not this request wrong,
       * and the client hears the same "try again" as in an outage. */
      went_down(pg, PQresultErrorMessage(r));
      return;
    }
    nt_textfile_set_err(c->err, sizeof(c->err), "registry (%s): %s", pg->where,
                        PQresultErrorMessage(r));
    set_last_error(pg, c->err);
    for (char *p = c->err; *p; p++) {
      if (*p == '\n') {
        *p = ' ';
      }
    }
    call_finish(pg, NATTER_ERR_REGISTRY);
    return;
  }
  switch (c->step) {
  case S_LOOKUP:
    if (c->kind == NT_REGISTRY_CALL_BIND) {
      rv = bind_read(pg, r);
      if (rv == 1) {
        call_step(pg);
      } else if (rv == 2) {
        const char *v[] = {c->name, c->fp_hex, now, c->owner_hex};
        snprintf(now, sizeof(now), "%lld", (long long)c->now);
        send_stmt(pg, S_TAKEOVER, v);
      } else {
        call_finish(pg, rv);
      }
      return;
    }
    if (PQntuples(r) == 0) {
      cache_remove(pg, c->name);
      nt_textfile_set_err(c->err, sizeof(c->err), "name %s is not bound",
                          c->name);
      call_finish(pg, NATTER_ERR_PEER_UNKNOWN);
      return;
    }
    if (parse_entry(r, 0, 0, c->name, &c->res.entry) != 0) {
      nt_textfile_set_err(c->err, sizeof(c->err),
                          "registry: a bad key stored for %s", c->name);
      call_finish(pg, NATTER_ERR_REGISTRY);
      return;
    }
    cache_put(pg, &c->res.entry);
    call_finish(pg, 0);
    return;
  case S_INSERT:
    if (PQntuples(r) == 1) {
      c->res.created = 1;
      bound_new(pg);
      call_finish(pg, 0);
    } else {
      const char *v[] = {c->name};
      send_stmt(pg, S_LOOKUP, v); /* bound already: by whom? */
    }
    return;
  case S_TAKEOVER:
    if (PQntuples(r) == 1) {
      c->res.replaced = 1;
      bound_new(pg);
      call_finish(pg, 0);
    } else if (++c->tries < BIND_TRIES) {
      call_step(pg); /* the owner changed meanwhile */
    } else {
      nt_textfile_set_err(c->err, sizeof(c->err),
                          "cannot take over %s: it keeps changing", c->name);
      call_finish(pg, NATTER_ERR_REGISTRY);
    }
    return;
  case S_RELEASE:
    cache_remove(pg, c->name);
    if (PQntuples(r) == 0) {
      nt_textfile_set_err(c->err, sizeof(c->err), "name %s is not bound",
                          c->name);
      call_finish(pg, NATTER_ERR_PEER_UNKNOWN);
    } else {
      call_finish(pg, 0);
    }
    return;
  case S_TOUCH:
    free(c->touch_names);
    free(c->touch_seen);
    c->touch_names = c->touch_seen = NULL;
    call_step(pg); /* the expiry, or the answer */
    return;
  case S_EXPIRE:
    c->res.removed = (size_t)PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
      cache_remove(pg, PQgetvalue(r, i, 0));
    }
    call_finish(pg, 0);
    return;
  case S_LIST:
    for (int i = 0; i < PQntuples(r); i++) {
      nt_registry_entry e;
      if (parse_entry(r, i, 1, PQgetvalue(r, i, 0), &e) != 0) {
        continue;
      }
      if (c->list_fn(&e, c->list_user_data) != 0) {
        break;
      }
    }
    call_finish(pg, 0);
    return;
  case S_NAMES:
    if (PQntuples(r) == 1) {
      c->res.count = (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10);
      call_finish(pg, 0);
    } else {
      nt_textfile_set_err(c->err, sizeof(c->err), "registry: no count");
      call_finish(pg, NATTER_ERR_REGISTRY);
    }
    return;
  }
}

/* ---- presence ---- */

/* Appends |s| to the array literal being built in |buf| (NULL: out of
 * memory before). */
static char *array_add(char *buf, size_t *len, size_t *cap, const char *s,
                       int quote) {
  size_t need = strlen(s) + 4;

  if (buf == NULL) {
    return NULL;
  }
  if (*len + need > *cap) {
    size_t ncap = (*cap + need) * 2;
    char *nbuf = realloc(buf, ncap);
    if (nbuf == NULL) {
      free(buf);
      return NULL;
    }
    buf = nbuf;
    *cap = ncap;
  }
  *len +=
      (size_t)sprintf(buf + *len, "%s%s%s%s", buf[*len - 1] == '{' ? "" : ",",
                      quote ? "\"" : "", s, quote ? "\"" : "");
  return buf;
}

static char *array_new(size_t *len, size_t *cap) {
  char *buf = malloc(64);
  if (buf != NULL) {
    memcpy(buf, "{", 2);
  }
  *len = 1;
  *cap = 64;
  return buf;
}

/* Sends the heartbeat with this broker's presence changes (all of it
 * after a reconnection), when the connection is free. */
static void try_heartbeat(registry_pg *pg) {
  char dead[24];
  size_t len[4], cap[4];
  char **a = pg->hb_arrays;
  int judge;

  if (!pg->hb_due || pg->state != PG_READY || pg->hb_inflight ||
      pg->call.active || pg->broker_id[0] == '\0') {
    return;
  }
  for (size_t i = 0; i < 4; i++) {
    a[i] = array_new(&len[i], &cap[i]);
  }
  pg->hb_full = pg->resync;
  for (size_t i = 0; i < pg->presence.capacity; i++) {
    pg_presence *p = pg->presence.slots[i].value;
    char since[24];
    if (!pg->presence.slots[i].key || (!p->dirty && !pg->hb_full)) {
      continue;
    }
    p->sent_gen = p->gen;
    if (!p->present) {
      a[0] = array_add(a[0], &len[0], &cap[0], p->name, 1);
      continue;
    }
    snprintf(since, sizeof(since), "%lld", (long long)p->since);
    a[1] = array_add(a[1], &len[1], &cap[1], p->name, 1);
    a[2] = array_add(a[2], &len[2], &cap[2], p->key_hex, 1);
    a[3] = array_add(a[3], &len[3], &cap[3], since, 0);
  }
  for (size_t i = 0; i < 4; i++) {
    /* "{" + "" closes as "{}" or "{...,}": end with "}" by hand. */
    if (a[i] != NULL && len[i] + 2 <= cap[i]) {
      memcpy(a[i] + len[i], "}", 2);
    } else if (a[i] != NULL) {
      char *b = realloc(a[i], len[i] + 2);
      if (b == NULL) {
        free(a[i]);
      } else {
        memcpy(b + len[i], "}", 2);
      }
      a[i] = b;
    }
  }
  if (!a[0] || !a[1] || !a[2] || !a[3]) {
    heartbeat_free(pg); /* out of memory: the next beat tries again */
    return;
  }
  pg->hb_sent_ms = close_clock_ms();
  judge = pg->steady_since_ms != 0 &&
          pg->hb_sent_ms - pg->steady_since_ms >=
              (uint64_t)NT_REGISTRY_BROKER_DEAD_S * 1000;
  if (judge != pg->judging && pg->log) {
    if (judge) {
      nt_debug(pg->log, "registry: heartbeats steady again: brokers silent "
                        "for %d s are taken for dead again",
               NT_REGISTRY_BROKER_DEAD_S);
    } else {
      nt_info(pg->log,
              "registry: this broker's heartbeats were held up: no other "
              "broker is taken for dead until they have gone through for "
              "%d s",
              NT_REGISTRY_BROKER_DEAD_S);
    }
  }
  pg->judging = judge;
  snprintf(dead, sizeof(dead), "%d", NT_REGISTRY_BROKER_DEAD_S);
  const char *v[] = {pg->broker_id, judge ? "true" : "false",
                     dead,          pg->hb_full ? "true" : "false",
                     a[0],          a[1],
                     a[2],          a[3]};
  pg->hb_due = 0;
  if (!PQsendQueryPrepared(pg->conn, STATEMENTS[S_HEARTBEAT].name, 8, v, NULL,
                           NULL, 0)) {
    went_down(pg, PQerrorMessage(pg->conn));
    return;
  }
  pg->hb_inflight = 1;
  set_timer(pg, PG_TIMEOUT_S);
  (void)flush_out(pg);
}

static void heartbeat_result(registry_pg *pg, const PGresult *r) {
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  uint64_t now_ms = close_clock_ms();

  if (!ok) {
    if (pg->log) {
      nt_debug(pg->log, "registry: heartbeat failed: %s",
               PQresultErrorMessage(r));
    }
    pg->resync = 1;
    pg->steady_since_ms = 0;
  } else {
    /* Steady from the first prompt answer on; a slow one (the server
     * stalled) starts the count again from now. */
    if (now_ms - pg->hb_sent_ms > (uint64_t)NT_REGISTRY_HEARTBEAT_S * 1000) {
      pg->steady_since_ms = now_ms;
    } else if (pg->steady_since_ms == 0) {
      pg->steady_since_ms = pg->hb_sent_ms;
    }
    int was_removed = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    /* Written: what has not changed since is clean, a name gone is
     * forgotten. */
    for (size_t i = 0; i < pg->presence.capacity;) {
      pg_presence *p = pg->presence.slots[i].value;
      if (pg->presence.slots[i].key && p->sent_gen == p->gen &&
          (p->dirty || pg->hb_full)) {
        p->dirty = 0;
        if (!p->present) {
          /* Removal shifts entries backwards: look at slot i again. */
          nt_hashmap_remove(&pg->presence, p->name, strlen(p->name));
          free(p);
          continue;
        }
      }
      i++;
    }
    pg->resync = was_removed && !pg->hb_full;
  }
  heartbeat_free(pg);
}

static void hb_cb(evutil_socket_t fd, short what, void *arg) {
  registry_pg *pg = arg;
  (void)fd;
  (void)what;

  pg->hb_due = 1;
  try_heartbeat(pg);
}

static void pg_set_broker(void *impl, const char *broker_id) {
  registry_pg *pg = impl;
  struct timeval tv = {NT_REGISTRY_HEARTBEAT_S, 0};

  if (broker_id == NULL || broker_id[0] == '\0' ||
      strlen(broker_id) > NT_REGISTRY_BROKER_ID_MAX) {
    return;
  }
  snprintf(pg->broker_id, sizeof(pg->broker_id), "%s", broker_id);
  event_add(pg->hb_ev, &tv);
  pg->hb_due = 1;
  pg->resync = 1;
  try_heartbeat(pg);
}

static void pg_presence_set(void *impl, const char *name,
                            const uint8_t *fingerprint, int64_t since,
                            int present) {
  registry_pg *pg = impl;
  pg_presence *p = nt_hashmap_get(&pg->presence, name, strlen(name));

  if (pg->broker_id[0] == '\0' || (present && fingerprint == NULL)) {
    return;
  }
  if (p == NULL) {
    if (!present || nt_hashmap_count(&pg->presence) >= NT_REGISTRY_MAX_NAMES ||
        (p = calloc(1, sizeof(*p))) == NULL) {
      return; /* advisory */
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    if (nt_hashmap_put(&pg->presence, p->name, strlen(p->name), p) != 0) {
      free(p);
      return;
    }
  }
  p->present = present;
  if (present) {
    nt_fingerprint_hex(fingerprint, p->key_hex);
    p->since = since;
  }
  p->gen++;
  p->dirty = 1;
}

/* Reads what came; a complete answer goes to the setup or the call. */
static void read_results(registry_pg *pg) {
  if (!PQconsumeInput(pg->conn)) {
    went_down(pg, PQerrorMessage(pg->conn));
    return;
  }
  for (PGnotify *n; (n = PQnotifies(pg->conn)) != NULL;) {
    PQfreemem(n);
  }
  while (!PQisBusy(pg->conn)) {
    PGresult *r = PQgetResult(pg->conn);
    if (r != NULL) {
      /* Keep the first failure, else the last result. */
      ExecStatusType st = PQresultStatus(pg->result);
      if (pg->result == NULL ||
          (st != PGRES_FATAL_ERROR && st != PGRES_BAD_RESPONSE)) {
        if (pg->state == PG_SETUP && setup_result(pg, r) != 0) {
          PQclear(r);
          went_down(pg, pg->last_error);
          return;
        }
        PQclear(pg->result);
        pg->result = r;
      } else {
        PQclear(r);
      }
      continue;
    }
    /* NULL: the statement is done. */
    r = pg->result;
    pg->result = NULL;
    if (r == NULL) {
      break; /* nothing was asked: a notice, or the connection closing */
    }
    evtimer_del(pg->timer_ev);
    if (pg->state == PG_SETUP) {
      PQclear(r);
      pg->setup_step++;
      setup_next(pg);
      return;
    }
    if (pg->hb_inflight) {
      heartbeat_result(pg, r);
      PQclear(r);
      if (pg->call.active && pg->call.step < 0) {
        call_step(pg); /* it waited for the heartbeat */
      }
      return;
    }
    if (pg->call.active && pg->call.step >= 0) {
      call_result(pg, r);
    }
    PQclear(r);
    return;
  }
  if (PQstatus(pg->conn) == CONNECTION_BAD) {
    went_down(pg, PQerrorMessage(pg->conn));
  }
}

static void sock_cb(evutil_socket_t fd, short what, void *arg) {
  registry_pg *pg = arg;
  (void)fd;

  if (pg->state == PG_CONNECTING) {
    connect_poll(pg);
    return;
  }
  if ((what & EV_WRITE) && flush_out(pg) != 0) {
    return;
  }
  if (what & EV_READ) {
    read_results(pg);
    if (pg->conn != NULL && pg->state != PG_CONNECTING) {
      /* Still waiting for more, or idle: a closed connection shows up as
       * readable. */
      if (pg->sock_ev != NULL && !event_pending(pg->sock_ev, EV_READ, NULL)) {
        watch(pg, EV_READ);
      }
    }
  }
}

/* ---- the backend ---- */

/* A call answered without the database (a listing of nothing to flush, or
 * a name known here while the database is away). */
static void later_cb(evutil_socket_t fd, short what, void *arg) {
  registry_pg *pg = arg;
  (void)fd;
  (void)what;

  if (pg->call.active) {
    call_finish(pg, pg->call.res.rv);
  }
}

static void answer_later(registry_pg *pg, int rv) {
  static const struct timeval zero = {0, 0};
  pg->call.res.rv = rv;
  evtimer_add(pg->later_ev, &zero);
}

/* A bind or lookup while the database is away, from what this process
 * has seen: 1 when answered. */
static int answer_from_cache(registry_pg *pg) {
  pg_call *c = &pg->call;
  nt_registry_entry *e = nt_hashmap_get(&pg->cache, c->name, strlen(c->name));

  if (e == NULL || (c->kind != NT_REGISTRY_CALL_LOOKUP &&
                    c->kind != NT_REGISTRY_CALL_BIND)) {
    return 0;
  }
  if (c->kind == NT_REGISTRY_CALL_LOOKUP) {
    c->res.entry = *e;
    answer_later(pg, 0);
    return 1;
  }
  if (memcmp(e->fingerprint, c->fingerprint, NT_FINGERPRINT_LEN) == 0) {
    answer_later(pg, 0);
    return 1;
  }
  if (c->flags & NT_REGISTRY_BIND_TAKEOVER) {
    return 0;
  }
  c->res.entry = *e;
  nt_textfile_set_err(c->err, sizeof(c->err), "name %s is bound to another key",
                      c->name);
  answer_later(pg, NATTER_ERR_NAME_TAKEN);
  return 1;
}

/* The touches as two array literals for unnest (names need no quoting:
 * nt_name_valid). */
static int touch_arrays(pg_call *c, const nt_registry_seen *t, size_t n) {
  size_t nlen = 3, slen = 3;
  char *np, *sp;

  for (size_t i = 0; i < n; i++) {
    nlen += strlen(t[i].name) + 3;
    slen += 22;
  }
  c->touch_names = np = malloc(nlen);
  c->touch_seen = sp = malloc(slen);
  if (np == NULL || sp == NULL) {
    return -1;
  }
  *np++ = '{';
  *sp++ = '{';
  for (size_t i = 0; i < n; i++) {
    np += sprintf(np, "%s\"%s\"", i ? "," : "", t[i].name);
    sp += sprintf(sp, "%s%lld", i ? "," : "", (long long)t[i].last_seen);
  }
  memcpy(np, "}", 2);
  memcpy(sp, "}", 2);
  return 0;
}

static int pg_start(void *impl, const nt_registry_call *call,
                    nt_registry_call_done_fn done, void *arg, char *err,
                    size_t errlen) {
  registry_pg *pg = impl;
  pg_call *c = &pg->call;

  if (c->active) {
    nt_textfile_set_err(err, errlen, "registry: one request at a time");
    return NATTER_ERR_INVALID;
  }
  memset(c, 0, sizeof(*c));
  c->kind = call->kind;
  c->step = -1;
  if (call->name != NULL) {
    snprintf(c->name, sizeof(c->name), "%s", call->name);
  }
  if (call->fingerprint != NULL) {
    memcpy(c->fingerprint, call->fingerprint, NT_FINGERPRINT_LEN);
    nt_fingerprint_hex(call->fingerprint, c->fp_hex);
  }
  c->now = call->now;
  c->flags = call->flags;
  c->cutoff = call->cutoff;
  c->limit = call->limit;
  c->list_fn = call->list_fn;
  c->list_user_data = call->list_user_data;
  c->done = done;
  c->arg = arg;
  if (call->ntouches > 0 &&
      touch_arrays(c, call->touches, call->ntouches) != 0) {
    free(c->touch_names);
    free(c->touch_seen);
    memset(c, 0, sizeof(*c));
    nt_textfile_set_err(err, errlen,
                        "cannot write last-seen times: out of memory");
    return NATTER_ERR_NOMEM;
  }
  c->active = 1;
  if (pg->state == PG_READY) {
    if (!pg->hb_inflight) {
      call_step(pg);
    }
    return 0; /* else after the heartbeat */
  }
  if (!pg->tried) {
    return 0; /* connecting the first time: that attempt decides */
  }
  /* The database was away (and may be coming back). */
  if (answer_from_cache(pg)) {
    return 0;
  }
  free(c->touch_names);
  free(c->touch_seen);
  memset(c, 0, sizeof(*c));
  nt_textfile_set_err(err, errlen, NT_REGISTRY_UNAVAILABLE " (%s: %s)",
                      pg->where, pg->last_error);
  return NATTER_ERR_REGISTRY;
}

/* "PostgreSQL database DB on HOST:PORT as USER", from the URI's parts. */
static void describe_conninfo(PQconninfoOption *opts, char *buf, size_t len) {
  const char *db = NULL, *host = NULL, *port = NULL, *user = NULL;

  for (PQconninfoOption *o = opts; o && o->keyword; o++) {
    if (!o->val || !o->val[0]) {
      continue;
    }
    if (strcmp(o->keyword, "dbname") == 0) {
      db = o->val;
    } else if (strcmp(o->keyword, "host") == 0) {
      host = o->val;
    } else if (strcmp(o->keyword, "port") == 0) {
      port = o->val;
    } else if (strcmp(o->keyword, "user") == 0) {
      user = o->val;
    }
  }
  snprintf(buf, len, "PostgreSQL database %s on %s%s%s%s%s",
           db ? db : "(default)", host ? host : "(default host)",
           port ? ":" : "", port ? port : "", user ? " as " : "",
           user ? user : "");
}

static int pg_open(void **pimpl, struct event_base *base, const char *location,
                   char *err, size_t errlen) {
  uint8_t seed[NT_HASHMAP_SEED_LEN];
  PQconninfoOption *opts;
  char *msg = NULL;
  registry_pg *pg;

  *pimpl = NULL;
  opts = PQconninfoParse(location, &msg);
  if (opts == NULL) {
    nt_textfile_set_err(err, errlen, "registry: not a PostgreSQL URI: %s",
                        msg ? msg : "out of memory");
    PQfreemem(msg);
    return NATTER_ERR_INVALID;
  }
  if (nt_random_bytes(seed, sizeof(seed)) != 0) {
    PQconninfoFree(opts);
    nt_textfile_set_err(err, errlen, "registry: no randomness");
    return NATTER_ERR_REGISTRY;
  }
  pg = calloc(1, sizeof(*pg));
  if (pg == NULL || (pg->conninfo = strdup(location)) == NULL ||
      (pg->timer_ev = evtimer_new(base, timer_cb, pg)) == NULL ||
      (pg->later_ev = evtimer_new(base, later_cb, pg)) == NULL ||
      (pg->hb_ev = event_new(base, -1, EV_PERSIST, hb_cb, pg)) == NULL) {
    if (pg) {
      if (pg->timer_ev) {
        event_free(pg->timer_ev);
      }
      if (pg->later_ev) {
        event_free(pg->later_ev);
      }
      free(pg->conninfo);
    }
    free(pg);
    PQconninfoFree(opts);
    nt_textfile_set_err(err, errlen, "registry: out of memory");
    return NATTER_ERR_NOMEM;
  }
  describe_conninfo(opts, pg->where, sizeof(pg->where));
  PQconninfoFree(opts);
  pg->base = base;
  pg->sock = -1;
  pg->backoff_s = PG_BACKOFF_MIN_S;
  snprintf(pg->last_error, sizeof(pg->last_error), "not connected yet");
  nt_hashmap_init(&pg->cache, seed);
  nt_hashmap_init(&pg->presence, seed);
  pg_connect(pg);
  *pimpl = pg;
  return 0;
}

/* Waits (at close only) until the statement in flight is answered, for
 * at most until |deadline_ms|: 0 when it was. */
static int close_wait(registry_pg *pg, uint64_t deadline_ms) {
  PGresult *r;

  for (;;) {
    int out = PQflush(pg->conn);
    uint64_t now = close_clock_ms();
    struct pollfd pfd = {PQsocket(pg->conn), POLLIN, 0};

    if (out < 0) {
      return -1;
    }
    if (out == 0 && !PQisBusy(pg->conn)) {
      break;
    }
    if (now >= deadline_ms) {
      return -1;
    }
    pfd.events = (short)(out == 1 ? POLLIN | POLLOUT : POLLIN);
    if (poll(&pfd, 1, (int)(deadline_ms - now)) < 0 && errno != EINTR) {
      return -1;
    }
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) &&
        !PQconsumeInput(pg->conn)) {
      return -1;
    }
  }
  while ((r = PQgetResult(pg->conn)) != NULL) {
    PQclear(r);
    if (PQisBusy(pg->conn)) {
      return close_wait(pg, deadline_ms); /* a statement's next result */
    }
  }
  return 0;
}

static void close_exec(registry_pg *pg, int stmt, const char *const *values,
                       uint64_t deadline_ms) {
  if (PQsendQueryPrepared(pg->conn, STATEMENTS[stmt].name,
                          STATEMENTS[stmt].nparams, values, NULL, NULL, 0)) {
    (void)close_wait(pg, deadline_ms);
  }
}

static void pg_close(void *impl, const nt_registry_seen *touches, size_t n) {
  registry_pg *pg = impl;

  if (pg == NULL) {
    return;
  }
  /* The last touches, and this broker's presence gone (shutdown only):
   * what is in flight first, then one statement each, waiting, but not
   * for a database that does not answer. */
  if (pg->state == PG_READY && pg->conn != NULL &&
      (n > 0 || pg->broker_id[0])) {
    uint64_t deadline = close_clock_ms() + PG_CLOSE_WAIT_MS;
    pg_call c;
    memset(&c, 0, sizeof(c));
    if (close_wait(pg, deadline) == 0) {
      if (pg->broker_id[0]) {
        const char *v[] = {pg->broker_id};
        close_exec(pg, S_LEAVE, v, deadline);
      }
      if (n > 0 && touch_arrays(&c, touches, n) == 0) {
        char stale[24];
        snprintf(stale, sizeof(stale), "%lld",
                 (long long)time(NULL) - PG_TOUCH_GRAIN_S);
        const char *v[] = {c.touch_names, c.touch_seen, stale};
        close_exec(pg, S_TOUCH, v, deadline);
      }
    }
    free(c.touch_names);
    free(c.touch_seen);
  }
  free(pg->call.touch_names);
  free(pg->call.touch_seen);
  drop_connection(pg);
  heartbeat_free(pg);
  event_free(pg->timer_ev);
  event_free(pg->later_ev);
  event_free(pg->hb_ev);
  cache_clear(pg);
  for (size_t i = 0; i < pg->presence.capacity; i++) {
    if (pg->presence.slots[i].key) {
      free(pg->presence.slots[i].value);
    }
  }
  nt_hashmap_clear(&pg->presence);
  free(pg->conninfo);
  free(pg);
}

static void pg_set_log(void *impl, const nt_log *log) {
  ((registry_pg *)impl)->log = log;
}

static void pg_describe(void *impl, char *buf, size_t len) {
  snprintf(buf, len, "%s", ((registry_pg *)impl)->where);
}

static const nt_registry_async_ops pg_async = {
    pg_open,     pg_close,      pg_start,       pg_set_log,
    pg_describe, pg_set_broker, pg_presence_set};

const nt_registry_ops nt_registry_pg_ops = {"postgresql", NULL,      NULL, NULL,
                                            NULL,         NULL,      NULL, NULL,
                                            NULL,         &pg_async, NULL};
