/* The backend-independent half of the registry: argument checks and the
 * in-memory batch of last-seen updates (see registry.h). */
#include "broker/registry.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "natter.h"
#include "base/textfile.h"

/* The pending table is bounded by NT_REGISTRY_MAX_PENDING, so chains stay
 * short even when names are chosen to collide. */
#define PENDING_BUCKETS 1024

typedef struct pending_touch {
  SLIST_ENTRY(pending_touch) link;
  int64_t last_seen;
  char name[NT_NAME_MAX + 1];
} pending_touch;

SLIST_HEAD(pending_bucket, pending_touch);

struct nt_registry {
  const nt_registry_ops *ops;
  void *impl;
  size_t npending;
  struct pending_bucket pending[PENDING_BUCKETS];
};

/* FNV-1a: names are short and the table bounded. */
static size_t bucket_of(const char *name) {
  uint32_t h = 2166136261u;

  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h = (h ^ *p) * 16777619u;
  }
  return h % PENDING_BUCKETS;
}

static pending_touch *pending_find(nt_registry *reg, const char *name) {
  pending_touch *t;

  SLIST_FOREACH(t, &reg->pending[bucket_of(name)], link) {
    if (strcmp(t->name, name) == 0) {
      return t;
    }
  }
  return NULL;
}

static void pending_remove(nt_registry *reg, const char *name) {
  struct pending_bucket *b = &reg->pending[bucket_of(name)];
  pending_touch *t;

  SLIST_FOREACH(t, b, link) {
    if (strcmp(t->name, name) == 0) {
      SLIST_REMOVE(b, t, pending_touch, link);
      free(t);
      reg->npending--;
      return;
    }
  }
}

static void pending_clear(nt_registry *reg) {
  for (size_t i = 0; i < PENDING_BUCKETS; i++) {
    while (!SLIST_EMPTY(&reg->pending[i])) {
      pending_touch *t = SLIST_FIRST(&reg->pending[i]);
      SLIST_REMOVE_HEAD(&reg->pending[i], link);
      free(t);
    }
  }
  reg->npending = 0;
}

static int check_name(const char *name, char *err, size_t errlen) {
  if (!nt_name_valid(name)) {
    nt_textfile_set_err(err, errlen,
                        "invalid name: use 1 to %d of A-Z a-z 0-9 . _ -",
                        NT_NAME_MAX);
    return NATTER_ERR_INVALID;
  }
  return 0;
}

int nt_registry_open(nt_registry **preg, const nt_registry_ops *ops,
                     const char *location, char *err, size_t errlen) {
  nt_registry *reg;
  int rv;

  *preg = NULL;
  if (location == NULL || location[0] == '\0') {
    nt_textfile_set_err(err, errlen, "no registry file given");
    return NATTER_ERR_INVALID;
  }
  reg = calloc(1, sizeof(*reg));
  if (reg == NULL) {
    nt_textfile_set_err(err, errlen, "cannot open registry: out of memory");
    return NATTER_ERR_NOMEM;
  }
  reg->ops = ops ? ops : &nt_registry_sqlite_ops;
  for (size_t i = 0; i < PENDING_BUCKETS; i++) {
    SLIST_INIT(&reg->pending[i]);
  }
  rv = reg->ops->open(&reg->impl, location, err, errlen);
  if (rv != 0) {
    free(reg);
    return rv;
  }
  *preg = reg;
  return 0;
}

void nt_registry_close(nt_registry *reg) {
  if (reg == NULL) {
    return;
  }
  (void)nt_registry_flush(reg, NULL, 0);
  pending_clear(reg);
  reg->ops->close(reg->impl);
  free(reg);
}

static void apply_pending(nt_registry *reg, nt_registry_entry *entry) {
  pending_touch *t = pending_find(reg, entry->name);

  if (t != NULL && t->last_seen > entry->last_seen) {
    entry->last_seen = t->last_seen;
  }
}

int nt_registry_lookup(nt_registry *reg, const char *name,
                       nt_registry_entry *entry, char *err, size_t errlen) {
  int rv = check_name(name, err, errlen);

  if (rv == 0) {
    rv = reg->ops->lookup(reg->impl, name, entry, err, errlen);
  }
  if (rv == 0) {
    apply_pending(reg, entry);
  }
  return rv;
}

int nt_registry_bind(nt_registry *reg, const char *name,
                     const uint8_t *fingerprint, int64_t now, char *err,
                     size_t errlen) {
  nt_registry_entry entry;
  int rv = check_name(name, err, errlen);

  if (rv != 0) {
    return rv;
  }
  if (fingerprint == NULL) {
    nt_textfile_set_err(err, errlen, "cannot bind %s: no key fingerprint",
                        name);
    return NATTER_ERR_INVALID;
  }
  rv = reg->ops->lookup(reg->impl, name, &entry, err, errlen);
  if (rv == NATTER_ERR_PEER_UNKNOWN) {
    rv = reg->ops->insert(reg->impl, name, fingerprint, now, err, errlen);
    if (rv != NATTER_ERR_NAME_TAKEN) {
      return rv;
    }
    /* Bound meanwhile by another process sharing the store: decide on
     * what it wrote. */
    rv = reg->ops->lookup(reg->impl, name, &entry, err, errlen);
  }
  if (rv != 0) {
    return rv;
  }
  /* Fingerprints are public; no constant-time compare needed. */
  if (memcmp(entry.fingerprint, fingerprint, NT_FINGERPRINT_LEN) != 0) {
    nt_textfile_set_err(err, errlen, "name %s is bound to another key", name);
    return NATTER_ERR_NAME_TAKEN;
  }
  return nt_registry_touch(reg, name, now, err, errlen);
}

int nt_registry_touch(nt_registry *reg, const char *name, int64_t now,
                      char *err, size_t errlen) {
  pending_touch *t;
  int rv = check_name(name, err, errlen);

  if (rv != 0) {
    return rv;
  }
  t = pending_find(reg, name);
  if (t != NULL) {
    if (now > t->last_seen) {
      t->last_seen = now;
    }
    return 0;
  }
  if (reg->npending >= NT_REGISTRY_MAX_PENDING) {
    rv = nt_registry_flush(reg, err, errlen);
    if (rv != 0) {
      return rv;
    }
  }
  t = calloc(1, sizeof(*t));
  if (t == NULL) {
    nt_textfile_set_err(err, errlen,
                        "cannot record last-seen time of %s: "
                        "out of memory",
                        name);
    return NATTER_ERR_NOMEM;
  }
  memcpy(t->name, name, strlen(name) + 1);
  t->last_seen = now;
  SLIST_INSERT_HEAD(&reg->pending[bucket_of(name)], t, link);
  reg->npending++;
  return 0;
}

int nt_registry_flush(nt_registry *reg, char *err, size_t errlen) {
  nt_registry_seen *touches;
  size_t n = 0;
  int rv;

  if (reg->npending == 0) {
    return 0;
  }
  touches = malloc(reg->npending * sizeof(*touches));
  if (touches == NULL) {
    nt_textfile_set_err(err, errlen,
                        "cannot write last-seen times: out of "
                        "memory");
    return NATTER_ERR_NOMEM;
  }
  for (size_t i = 0; i < PENDING_BUCKETS; i++) {
    pending_touch *t;
    SLIST_FOREACH(t, &reg->pending[i], link) {
      touches[n].name = t->name;
      touches[n].last_seen = t->last_seen;
      n++;
    }
  }
  rv = reg->ops->touch_many(reg->impl, touches, n, err, errlen);
  free(touches);
  if (rv == 0) {
    pending_clear(reg);
  }
  return rv;
}

size_t nt_registry_pending(const nt_registry *reg) {
  return reg->npending;
}

int nt_registry_release(nt_registry *reg, const char *name, char *err,
                        size_t errlen) {
  int rv = check_name(name, err, errlen);

  if (rv != 0) {
    return rv;
  }
  pending_remove(reg, name);
  return reg->ops->release(reg->impl, name, err, errlen);
}

int nt_registry_expire(nt_registry *reg, int64_t now, int64_t max_idle_s,
                       size_t *removed, char *err, size_t errlen) {
  size_t n = 0;
  int rv;

  if (removed != NULL) {
    *removed = 0;
  }
  if (max_idle_s <= 0) {
    return 0;
  }
  /* Pending touches first: a name seen a moment ago must not expire on an
   * old stored time. */
  rv = nt_registry_flush(reg, err, errlen);
  if (rv == 0) {
    rv = reg->ops->expire(reg->impl, now - max_idle_s, NT_REGISTRY_EXPIRE_BATCH,
                          &n, err, errlen);
  }
  if (rv == 0 && removed != NULL) {
    *removed = n;
  }
  return rv;
}

typedef struct list_ctx {
  nt_registry *reg;
  nt_registry_list_fn fn;
  void *user_data;
} list_ctx;

static int list_one(const nt_registry_entry *stored, void *user_data) {
  list_ctx *ctx = user_data;
  nt_registry_entry entry = *stored;

  apply_pending(ctx->reg, &entry);
  return ctx->fn(&entry, ctx->user_data);
}

int nt_registry_list(nt_registry *reg, nt_registry_list_fn fn, void *user_data,
                     char *err, size_t errlen) {
  list_ctx ctx = {reg, fn, user_data};

  return reg->ops->list(reg->impl, list_one, &ctx, err, errlen);
}
