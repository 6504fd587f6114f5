/* The broker's registry: which key owns which name, and since when.
 *
 * A name is bound to the first key that claims it and stays bound across
 * restarts and crashes until it has been unused for a while (expire) or an
 * operator releases it. The broker talks to this interface only; storage
 * is a backend behind nt_registry_ops. SQLite (registry_sqlite.c, one file
 * under the broker's state directory) is the default; a shared backend for
 * several brokers (PostgreSQL) can be added as another ops table without
 * touching the broker.
 *
 * This layer owns what every backend needs the same way: argument checks
 * (names as nt_name_valid, fingerprints of NT_FINGERPRINT_LEN bytes) and
 * the batching of last-seen updates. nt_registry_touch only records the
 * time in memory; nt_registry_flush writes all recorded times in one
 * transaction (the broker calls it from a timer), so a check-in of a known
 * name costs no disk write. Lookups and listings see pending touches.
 *
 * Times are wall-clock seconds since the Unix epoch (time(NULL)), not the
 * monotonic clock: they are stored and must mean the same after a reboot.
 *
 * Limits: NT_REGISTRY_MAX_NAMES names (bind of a new name fails beyond
 * it); NT_REGISTRY_MAX_PENDING distinct pending touches (one more flushes
 * at once); nt_registry_expire removes at most NT_REGISTRY_EXPIRE_BATCH
 * names per call, so that one call stays short. Every call is synchronous
 * and may wait up to the backend's lock timeout (SQLite: 200 ms) when
 * another process (an operator's `natter -registry FILE -release NAME`)
 * holds the write lock. Not thread-safe: one registry per thread. */
#ifndef NT_REGISTRY_H
#define NT_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "codec/spec.h"
#include "trust/tls.h"

#define NT_REGISTRY_MAX_NAMES 100000
#define NT_REGISTRY_MAX_PENDING 4096
#define NT_REGISTRY_EXPIRE_BATCH 1000
/* The broker's default for unused names: 30 days. */
#define NT_REGISTRY_DEFAULT_MAX_IDLE_S (30 * 24 * 3600)

typedef struct nt_registry nt_registry;

typedef struct nt_registry_entry {
  char name[NT_NAME_MAX + 1];
  uint8_t fingerprint[NT_FINGERPRINT_LEN];
  int64_t first_seen; /* seconds since the epoch: when the name was bound */
  int64_t last_seen;  /* seconds since the epoch: last bind or touch */
} nt_registry_entry;

/* One pending last-seen update, as handed to a backend's touch_many. */
typedef struct nt_registry_seen {
  const char *name;
  int64_t last_seen;
} nt_registry_seen;

/* Called once per entry by nt_registry_list, in name order; returning
 * non-zero stops the listing. It must not call into the registry. */
typedef int (*nt_registry_list_fn)(const nt_registry_entry *entry,
                                   void *user_data);

/* A storage backend. Every function returns 0 or a negative NATTER_ERR_*
 * with a one-line reason in |err| (NATTER_ERR_REGISTRY for storage
 * failures). Arguments are already checked by this layer. */
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
  /* Binds |name| (not bound yet) with first_seen = last_seen = |now|.
   * NATTER_ERR_NAME_TAKEN when it got bound meanwhile, NATTER_ERR_REGISTRY
   * when NT_REGISTRY_MAX_NAMES are bound. */
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
} nt_registry_ops;

/* The embedded default. */
extern const nt_registry_ops nt_registry_sqlite_ops;
/* Bindings in memory only, gone with the registry (|location| ignored):
 * registry_memory.c. */
extern const nt_registry_ops nt_registry_memory_ops;

/* Opens the registry at |location| with |ops| (NULL: SQLite). Returns 0 and
 * sets *preg (closed with nt_registry_close), or a negative NATTER_ERR_*
 * with a one-line reason in |err| that names the file and what to do. */
int nt_registry_open(nt_registry **preg, const nt_registry_ops *ops,
                     const char *location, char *err, size_t errlen);

/* Flushes pending touches (a failure is lost, as last-seen times are
 * advisory) and closes. NULL is a no-op. */
void nt_registry_close(nt_registry *reg);

/* Fills |entry| for |name|. Returns 0, NATTER_ERR_PEER_UNKNOWN when the
 * name is not bound, NATTER_ERR_INVALID for an invalid name, or
 * NATTER_ERR_REGISTRY. */
int nt_registry_lookup(nt_registry *reg, const char *name,
                       nt_registry_entry *entry, char *err, size_t errlen);

/* Binds |name| to |fingerprint| (NT_FINGERPRINT_LEN bytes) at |now|. When
 * the name is bound to this key already, it only counts as a touch.
 * Returns 0, NATTER_ERR_NAME_TAKEN when another key owns the name,
 * NATTER_ERR_INVALID for an invalid name, NATTER_ERR_REGISTRY when the
 * registry is full ("registry is full") or the store failed. A new binding
 * is written before this returns. */
int nt_registry_bind(nt_registry *reg, const char *name,
                     const uint8_t *fingerprint, int64_t now, char *err,
                     size_t errlen);

/* Records that |name| was seen at |now|, in memory until the next flush.
 * Returns 0, NATTER_ERR_INVALID, or the flush's error when the pending
 * table was full and had to be written first. */
int nt_registry_touch(nt_registry *reg, const char *name, int64_t now,
                      char *err, size_t errlen);

/* Writes every pending touch in one transaction. On failure the touches
 * stay pending for the next call. Returns 0 or NATTER_ERR_REGISTRY. */
int nt_registry_flush(nt_registry *reg, char *err, size_t errlen);

/* Number of touches waiting for nt_registry_flush. */
size_t nt_registry_pending(const nt_registry *reg);

/* Unbinds |name| (and forgets its pending touch). Returns 0,
 * NATTER_ERR_PEER_UNKNOWN when it was not bound, NATTER_ERR_INVALID or
 * NATTER_ERR_REGISTRY. */
int nt_registry_release(nt_registry *reg, const char *name, char *err,
                        size_t errlen);

/* Flushes, then removes up to NT_REGISTRY_EXPIRE_BATCH names unused for
 * more than |max_idle_s| seconds before |now| (last_seen < now -
 * max_idle_s). *removed (may be NULL) says how many; call again while it
 * equals NT_REGISTRY_EXPIRE_BATCH. |max_idle_s| <= 0 disables expiry.
 * Returns 0 or NATTER_ERR_REGISTRY. */
int nt_registry_expire(nt_registry *reg, int64_t now, int64_t max_idle_s,
                       size_t *removed, char *err, size_t errlen);

/* Calls |fn| for every bound name in name order, with pending touches
 * applied. Returns 0 (also when |fn| stopped early) or
 * NATTER_ERR_REGISTRY. */
int nt_registry_list(nt_registry *reg, nt_registry_list_fn fn, void *user_data,
                     char *err, size_t errlen);

#endif
