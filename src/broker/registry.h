/* The broker's registry: which key owns which name, and since when.
 *
 * A name is bound to the first key that claims it and stays bound across
 * restarts and crashes until it has been unused for a while (expire) or an
 * operator releases it. The broker talks to this interface only; storage
 * is a backend behind nt_registry_ops, chosen by the location given to
 * nt_registry_open (nt_registry_parse_location): SQLite (one file under
 * the broker's state directory) is the default, "memory:" keeps bindings
 * in memory only, "postgresql://..." shares them between brokers in a
 * PostgreSQL database.
 *
 * Asynchronous contract. Every call that may reach storage (bind, lookup,
 * release, flush, expire, list) only queues a request and returns:
 *  - 0: queued. Its done callback runs exactly once, later, from the
 *    event loop of the registry's event_base; NEVER inside the call that
 *    queued it, whatever the backend (the synchronous backends below run
 *    from a zero-timeout timer on that base). A caller may therefore
 *    queue while holding state that the callback would touch.
 *  - a negative NATTER_ERR_* with a reason in |err|: nothing was queued
 *    and the callback never runs. That covers bad arguments
 *    (NATTER_ERR_INVALID) and the outstanding-request bound
 *    (NATTER_ERR_REGISTRY, "too many registry requests waiting").
 * Cancelling: *preq (when |preq| is not NULL) is a handle valid until the
 * callback starts; nt_registry_cancel on it frees the request and its
 * callback never runs, so a requester that goes away (a client that
 * disconnects mid check-in) cancels and nothing touches its memory later.
 * Inside the callback the handle is already gone: clear your copy first.
 * A callback may queue or cancel other requests, but must not close the
 * registry.
 * Order: requests run one at a time in the order they were queued, so
 * two binds of one name run first come, first served (the second sees the
 * first's binding) and every later request sees the effects of earlier
 * ones. At most NT_REGISTRY_MAX_OUTSTANDING requests wait at once; past
 * that a call fails at once (the broker logs it and refuses the client).
 * Durability: a bind's callback runs after the binding is committed to
 * the backend's storage (SQLite: written to its WAL, see
 * registry_sqlite.c; PostgreSQL: committed by the server), so a client is answered only for a binding that
 * survives a crash of the broker.
 *
 * This layer owns what every backend needs the same way: argument checks
 * (names as nt_name_valid, fingerprints of NT_FINGERPRINT_LEN bytes), the
 * queue, and the batching of last-seen updates. nt_registry_touch only
 * records the time in memory and stays synchronous for that reason (no
 * storage, no waiting); a flush writes all recorded times in one
 * transaction (the broker queues one from a timer), so a check-in of a
 * known name costs no disk write. Lookups and listings see pending
 * touches.
 *
 * Times are wall-clock seconds since the Unix epoch (time(NULL)), not the
 * monotonic clock: they are stored and must mean the same after a reboot.
 *
 * Limits: NT_REGISTRY_MAX_NAMES names (bind of a new name fails beyond
 * it); when NT_REGISTRY_MAX_PENDING distinct touches are pending, a flush
 * is queued; at most NT_REGISTRY_MAX_NAMES touches are held (one per name
 * that can be bound; a touch beyond that is refused: last-seen times are
 * advisory); an expire request removes at most NT_REGISTRY_EXPIRE_BATCH
 * names, so that one request stays short.
 * Not thread-safe: one registry per thread and event_base. */
#ifndef NT_REGISTRY_H
#define NT_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "codec/spec.h"
#include "trust/tls.h"

struct event_base;

#define NT_REGISTRY_MAX_NAMES 100000
#define NT_REGISTRY_MAX_PENDING 4096
#define NT_REGISTRY_EXPIRE_BATCH 1000
/* Requests queued and not yet completed. Above the broker's default for
 * clients not checked in yet (512), each of which has at most one bind
 * in flight, with room for its timers' flushes and expiries. */
#define NT_REGISTRY_MAX_OUTSTANDING 4096
/* A backend's answer "the store is locked by another process; nothing
 * was changed, try again" (never seen by callers: see nt_registry_ops).
 * Outside natter.h's codes. */
#define NT_REGISTRY_ERR_BUSY (-1000)
/* How long a request waits for a lock held elsewhere, retried from a
 * timer every NT_REGISTRY_BUSY_RETRY_MS at most (the loop serves
 * everything else meanwhile); under the broker's 10 s check-in deadline. */
#define NT_REGISTRY_BUSY_WAIT_MS 5000
#define NT_REGISTRY_BUSY_RETRY_MS 50
/* The start of a request's reason when a networked store cannot be
 * reached (the backend has logged that once; a client hears it). */
#define NT_REGISTRY_UNAVAILABLE "the name registry is unavailable, try again"
/* The broker's default for unused names: 30 days. */
#define NT_REGISTRY_DEFAULT_MAX_IDLE_S (30 * 24 * 3600)

/* Flags for nt_registry_bind. */
/* A name bound to another key is rebound to this one (the broker's
 * admitted-keys file is the authority on a closed broker). */
#define NT_REGISTRY_BIND_TAKEOVER 1u
/* Only a name bound already (to this key, or taken over): a name not
 * bound yet is not bound, NATTER_ERR_PEER_UNKNOWN (the broker's budget of
 * new names is spent). */
#define NT_REGISTRY_BIND_EXISTING 2u

typedef struct nt_registry nt_registry;
typedef struct nt_registry_request nt_registry_request;

typedef struct nt_registry_entry {
  char name[NT_NAME_MAX + 1];
  uint8_t fingerprint[NT_FINGERPRINT_LEN];
  int64_t first_seen; /* seconds since the epoch: when the name was bound */
  int64_t last_seen;  /* seconds since the epoch: last bind or touch */
} nt_registry_entry;

/* What a request came to; valid during the done callback only. */
typedef struct nt_registry_result {
  int rv;          /* 0 or a negative NATTER_ERR_* */
  const char *err; /* a one-line reason when rv != 0, else "" */
  /* lookup: the entry. bind: the owner of the name when rv is
   * NATTER_ERR_NAME_TAKEN, or the key it was taken from when |replaced|
   * (the name is all zero otherwise). */
  nt_registry_entry entry;
  int replaced;   /* bind with NT_REGISTRY_BIND_TAKEOVER took the name
                     from another key */
  int created;    /* bind: the name was not bound before */
  size_t removed; /* expire: how many names went */
  size_t count;   /* the internal count of names (nt_registry_names) */
} nt_registry_result;

typedef void (*nt_registry_done_fn)(const nt_registry_result *result,
                                    void *user_data);

/* One pending last-seen update, as handed to a backend's touch_many. */
typedef struct nt_registry_seen {
  const char *name;
  int64_t last_seen;
} nt_registry_seen;

/* Called once per entry by a listing, in name order; returning non-zero
 * stops the listing. It must not call into the registry. */
typedef int (*nt_registry_list_fn)(const nt_registry_entry *entry,
                                   void *user_data);

/* A storage backend. Every function returns 0 or a negative NATTER_ERR_*
 * with a one-line reason in |err| (NATTER_ERR_REGISTRY for storage
 * failures). Arguments are already checked by this layer. The backends
 * here are local (a file, memory) and synchronous: this layer calls them
 * from the loop, one request at a time, never from the caller's call, so
 * the loop waits while one runs, but never for a lock that another
 * process holds (an operator's -list/-release, a backup): the backend
 * returns NT_REGISTRY_ERR_BUSY at once, with nothing changed, and this
 * layer runs the request again from a timer, keeping it first in the
 * queue, for up to NT_REGISTRY_BUSY_WAIT_MS; then it fails with
 * NATTER_ERR_REGISTRY and the backend's reason. A networked backend
 * (PostgreSQL) sets |async| instead (nt_registry_async_ops below); the
 * contract above stays what callers rely on. */
typedef struct nt_registry_ops {
  const char *name; /* "sqlite" */
  /* Opens (creating when missing) the store at |location| (a path for
   * SQLite); a store that is unreadable, corrupt or of another schema is an
   * error, never silently replaced. */
  int (*open)(void **pimpl, const char *location, char *err, size_t errlen);
  void (*close)(void *impl);
  /* NATTER_ERR_PEER_UNKNOWN when |name| is not bound. */
  int (*lookup)(void *impl, const char *name, nt_registry_entry *entry,
                char *err, size_t errlen);
  /* Binds |name| (not bound yet) with first_seen = last_seen = |now|,
   * durably before it returns. NATTER_ERR_NAME_TAKEN when it got bound
   * meanwhile, NATTER_ERR_REGISTRY when NT_REGISTRY_MAX_NAMES are bound. */
  int (*insert)(void *impl, const char *name, const uint8_t *fingerprint,
                int64_t now, char *err, size_t errlen);
  /* Raises last_seen of each bound name to the given time, all in one
   * transaction; unbound names are skipped. */
  int (*touch_many)(void *impl, const nt_registry_seen *touches, size_t n,
                    char *err, size_t errlen);
  /* NATTER_ERR_PEER_UNKNOWN when |name| is not bound. */
  int (*release)(void *impl, const char *name, char *err, size_t errlen);
  /* Removes up to |limit| names with last_seen < |cutoff|; *removed says
   * how many. */
  int (*expire)(void *impl, int64_t cutoff, size_t limit, size_t *removed,
                char *err, size_t errlen);
  int (*list)(void *impl, nt_registry_list_fn fn, void *user_data, char *err,
              size_t errlen);
  /* A networked backend sets this and none of the functions above. */
  const struct nt_registry_async_ops *async;
  /* How many names are bound, from storage (another process may have
   * changed it). */
  int (*count)(void *impl, size_t *n, char *err, size_t errlen);
} nt_registry_ops;

/* ---- asynchronous backends (PostgreSQL) ----
 * This layer hands the backend one request at a time, the first of the
 * queue, as an nt_registry_call, and waits for its answer before the next
 * (the order of the contract). The backend does the whole request,
 * including a bind's decision (insert, else compare with the owner, else
 * take over), so that it is atomic in a shared store; this layer keeps
 * the pending touches and what follows a result (a bind of the same key
 * is a touch). */
typedef enum {
  NT_REGISTRY_CALL_LOOKUP,
  NT_REGISTRY_CALL_BIND,
  NT_REGISTRY_CALL_RELEASE,
  NT_REGISTRY_CALL_FLUSH,  /* writes |touches| */
  NT_REGISTRY_CALL_EXPIRE, /* writes |touches|, then expires */
  NT_REGISTRY_CALL_LIST,
  NT_REGISTRY_CALL_COUNT /* result->count: how many names are bound */
} nt_registry_call_kind;

typedef struct nt_registry_call {
  nt_registry_call_kind kind;
  const char *name;
  const uint8_t *fingerprint;
  int64_t now;
  unsigned flags;
  int64_t cutoff; /* expire: last_seen < cutoff goes */
  size_t limit;   /* expire: at most this many */
  const nt_registry_seen *touches;
  size_t ntouches;
  nt_registry_list_fn list_fn; /* valid until the answer */
  void *list_user_data;
} nt_registry_call;

/* The backend's answer to a call; |res->err| is set by the backend. */
typedef void (*nt_registry_call_done_fn)(nt_registry_result *res, void *arg);

struct nt_log;

typedef struct nt_registry_async_ops {
  /* Opens the store at |location| on |base|; may connect later (requests
   * wait for the first attempt). An error only for a location that can
   * never work. */
  int (*open)(void **pimpl, struct event_base *base, const char *location,
              char *err, size_t errlen);
  /* Writes |touches| if it can without waiting long, and closes: no
   * answer of a call started comes any more. */
  void (*close)(void *impl, const nt_registry_seen *touches, size_t n);
  /* Starts |call|: 0 and |done| runs once, from the loop (usually later;
   * a connection found broken while starting answers before start
   * returns, which this layer allows: it calls start from the loop, never
   * from a requester's call); or a negative NATTER_ERR_* with the reason
   * in |err| (nothing started).
   * Nothing in |call| is used after this returns but list_fn and its
   * user data. */
  int (*start)(void *impl, const nt_registry_call *call,
               nt_registry_call_done_fn done, void *arg, char *err,
               size_t errlen);
  /* Where its log lines (connection state changes) go; NULL: nowhere. */
  void (*set_log)(void *impl, const struct nt_log *log);
  /* The store for a log line, without secrets (no password). */
  void (*describe)(void *impl, char *buf, size_t len);
  /* Presence (nt_registry_set_broker, nt_registry_presence). */
  void (*set_broker)(void *impl, const char *broker_id);
  void (*presence)(void *impl, const char *name, const uint8_t *fingerprint,
                   int64_t since, int present);
} nt_registry_async_ops;

/* The embedded default: registry_sqlite.c. */
extern const nt_registry_ops nt_registry_sqlite_ops;
/* Bindings in memory only, gone with the registry: registry_memory.c. */
extern const nt_registry_ops nt_registry_memory_ops;
/* A PostgreSQL database shared by brokers: registry_pg.c. */
extern const nt_registry_ops nt_registry_pg_ops;

/* Chooses the backend for |location| (registry_location.c):
 *   "sqlite:///ABS/PATH", "sqlite:REL/PATH"  the SQLite file at that path
 *   "memory:"                                in memory only
 *   "postgresql://..." (or postgres://)      a PostgreSQL database (a
 *                                             libpq connection URI)
 *   anything else without "SCHEME://"         a plain SQLite file path, as
 *                                             before URIs (so "a:b.db" is a
 *                                             file; write "./memory:" for a
 *                                             file of that name)
 * No percent-decoding: the path is taken as written. Sets *ops and
 * *where (a pointer into |location|: the backend's part) and returns 0,
 * or NATTER_ERR_INVALID with a one-line reason in |err| naming the
 * accepted forms. */
int nt_registry_parse_location(const char *location,
                               const nt_registry_ops **ops, const char **where,
                               char *err, size_t errlen);

/* Opens the registry at |location| (nt_registry_parse_location) on
 * |base|, whose loop runs every request. Returns 0 and sets *preg (closed
 * with nt_registry_close), or a negative NATTER_ERR_* with a one-line
 * reason in |err| that names the file and what to do. */
int nt_registry_open(nt_registry **preg, struct event_base *base,
                     const char *location, char *err, size_t errlen);

/* Drops every queued request without its callback (requesters cancel
 * theirs first), writes pending touches (the one synchronous write: at
 * shutdown a short wait beats losing them; a failure is lost, as
 * last-seen times are advisory; PostgreSQL waits 2 s at most) and
 * closes. NULL is a no-op. */
void nt_registry_close(nt_registry *reg);

/* The backend's name ("sqlite", "memory", "postgresql"). */
const char *nt_registry_backend(const nt_registry *reg);

/* Where a backend logs its own events (PostgreSQL: connection lost and
 * back); |log| must outlive the registry. Until then it logs nothing. */
void nt_registry_set_log(nt_registry *reg, const struct nt_log *log);

/* Writes a description of the store fit for a log line (no password)
 * into |buf|; "" for the local backends. */
void nt_registry_describe(const nt_registry *reg, char *buf, size_t len);

/* Presence, in a store that brokers share (PostgreSQL; a no-op for the
 * others): which broker each checked-in client is at, so that another
 * broker can find it, and which brokers are alive.
 * nt_registry_set_broker names this broker (|broker_id|, at most
 * NT_REGISTRY_BROKER_ID_MAX bytes: this run's own, never its key, which
 * the brokers of one network share) and
 * starts its heartbeat, written every NT_REGISTRY_HEARTBEAT_S; a broker
 * whose heartbeat is older than NT_REGISTRY_BROKER_DEAD_S (the database's
 * clock) is removed, with its clients' presence, by any other whose own
 * heartbeats have gone through promptly for that long (after a stalled or
 * lost database, every broker first gets that long to beat again).
 * nt_registry_presence records that |name| (key |fingerprint|) checked in
 * here at |since| (|present| 1) or left (0): in memory, written with the
 * next heartbeat in the same statement (after the database was away: all
 * of them again). Both synchronous, never failing (presence is
 * advisory). */
#define NT_REGISTRY_BROKER_ID_MAX 64
#define NT_REGISTRY_HEARTBEAT_S 2
#define NT_REGISTRY_BROKER_DEAD_S 6
void nt_registry_set_broker(nt_registry *reg, const char *broker_id);
void nt_registry_presence(nt_registry *reg, const char *name,
                          const uint8_t *fingerprint, int64_t since,
                          int present);

/* Frees a queued request; its callback never runs. Only before the
 * callback started; NULL is a no-op. */
void nt_registry_cancel(nt_registry_request *req);

/* Number of requests queued and not completed. */
size_t nt_registry_outstanding(const nt_registry *reg);

/* The requests. Each returns 0 (queued: |done| runs later, see the
 * contract at the top; *preq, when |preq| is not NULL, is its handle) or
 * a negative NATTER_ERR_* with a reason in |err| (nothing queued). The
 * result codes below are what the callback's result->rv carries. */

/* Looks up |name|: 0 with result->entry, NATTER_ERR_PEER_UNKNOWN when the
 * name is not bound, or NATTER_ERR_REGISTRY. */
int nt_registry_lookup(nt_registry *reg, const char *name,
                       nt_registry_done_fn done, void *user_data,
                       nt_registry_request **preq, char *err, size_t errlen);

/* Binds |name| to |fingerprint| (NT_FINGERPRINT_LEN bytes, copied) at
 * |now|; |flags| is 0 or NT_REGISTRY_BIND_TAKEOVER and/or
 * NT_REGISTRY_BIND_EXISTING. When the name is bound to this key already,
 * it only counts as a touch. Result: 0 (a new binding is committed
 * before the callback runs; result->created says the name was new),
 * NATTER_ERR_PEER_UNKNOWN for a new name with NT_REGISTRY_BIND_EXISTING,
 * NATTER_ERR_NAME_TAKEN when another key owns the name (result->entry is
 * the owner), NATTER_ERR_REGISTRY when the registry is full ("registry is
 * full") or the store failed. */
int nt_registry_bind(nt_registry *reg, const char *name,
                     const uint8_t *fingerprint, int64_t now, unsigned flags,
                     nt_registry_done_fn done, void *user_data,
                     nt_registry_request **preq, char *err, size_t errlen);

/* Unbinds |name| and forgets its pending touch. Result: 0,
 * NATTER_ERR_PEER_UNKNOWN when it was not bound, or NATTER_ERR_REGISTRY. */
int nt_registry_release(nt_registry *reg, const char *name,
                        nt_registry_done_fn done, void *user_data,
                        nt_registry_request **preq, char *err, size_t errlen);

/* Writes every pending touch in one transaction. On failure the touches
 * stay pending for the next flush. Result: 0 or NATTER_ERR_REGISTRY.
 * |done| may be NULL (nobody waits for the answer). */
int nt_registry_flush(nt_registry *reg, nt_registry_done_fn done,
                      void *user_data, nt_registry_request **preq, char *err,
                      size_t errlen);

/* Flushes, then removes up to NT_REGISTRY_EXPIRE_BATCH names unused for
 * more than |max_idle_s| seconds before |now| (last_seen < now -
 * max_idle_s). result->removed says how many; ask again while it equals
 * NT_REGISTRY_EXPIRE_BATCH. |max_idle_s| <= 0 disables expiry (result 0,
 * nothing removed). Result: 0 or NATTER_ERR_REGISTRY. */
int nt_registry_expire(nt_registry *reg, int64_t now, int64_t max_idle_s,
                       nt_registry_done_fn done, void *user_data,
                       nt_registry_request **preq, char *err, size_t errlen);

/* Calls |fn| for every bound name in name order, with pending touches
 * applied, all from the loop, then |done|. Result: 0 (also when |fn|
 * stopped early) or NATTER_ERR_REGISTRY. */
int nt_registry_list(nt_registry *reg, nt_registry_list_fn fn,
                     void *list_user_data, nt_registry_done_fn done,
                     void *user_data, nt_registry_request **preq, char *err,
                     size_t errlen);

/* Records that |name| was seen at |now|, in memory until the next flush:
 * synchronous, as it never touches storage. Reaching
 * NT_REGISTRY_MAX_PENDING pending names queues a flush. Returns 0,
 * NATTER_ERR_INVALID, NATTER_ERR_NOMEM, or NATTER_ERR_REGISTRY when
 * NT_REGISTRY_MAX_NAMES touches already wait (not recorded). */
int nt_registry_touch(nt_registry *reg, const char *name, int64_t now,
                      char *err, size_t errlen);

/* Number of touches recorded and not written yet. */
size_t nt_registry_pending(const nt_registry *reg);

/* How many names are bound, without a query per call (the dashboard asks
 * on every poll): a count kept here, set by one count request (SELECT
 * count(*), or the memory backend's table) that the first call queues
 * (the broker calls it right after opening, before any bind), and moved
 * by this registry's own binds of new names, releases and expiries,
 * which run in queue order after it. Another process changes the store too (a
 * broker sharing a PostgreSQL database; an operator's -release on the
 * SQLite file), so a call finding the count older than
 * NT_REGISTRY_COUNT_REFRESH_S queues one more count request, at most one
 * at a time; the answer comes with a later call. Returns 0 and sets *n,
 * or -1 while no count has come yet (or every one failed). */
#define NT_REGISTRY_COUNT_REFRESH_S 60
int nt_registry_names(nt_registry *reg, size_t *n);

#endif
