/* The registry's in-memory backend: bindings that live as long as the
 * broker (natter_broker_config.registry "" or "memory:"), for tests, demos and
 * embedders that keep names elsewhere. Same limits and answers as the
 * SQLite backend; nothing survives a restart. Listing sorts a copy, which
 * is fine at the sizes an in-memory broker sees. */
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "natter.h"
#include "broker/registry.h"
#include "base/textfile.h"
#include "trust/tls.h"

typedef struct mem_entry {
  nt_registry_entry e; /* e.name is the key in the table */
} mem_entry;

typedef struct registry_memory {
  nt_hashmap names; /* name -> mem_entry */
} registry_memory;

static int mem_open(void **pimpl, const char *location, char *err,
                    size_t errlen) {
  uint8_t seed[NT_HASHMAP_SEED_LEN];
  registry_memory *m;
  (void)location;

  *pimpl = NULL;
  if (nt_random_bytes(seed, sizeof(seed)) != 0) {
    nt_textfile_set_err(err, errlen, "in-memory registry: no randomness");
    return NATTER_ERR_REGISTRY;
  }
  m = calloc(1, sizeof(*m));
  if (!m) {
    nt_textfile_set_err(err, errlen, "in-memory registry: out of memory");
    return NATTER_ERR_NOMEM;
  }
  nt_hashmap_init(&m->names, seed);
  *pimpl = m;
  return 0;
}

static void mem_close(void *impl) {
  registry_memory *m = impl;
  if (!m) {
    return;
  }
  for (size_t i = 0; i < m->names.capacity; i++) {
    if (m->names.slots[i].key) {
      free(m->names.slots[i].value);
    }
  }
  nt_hashmap_clear(&m->names);
  free(m);
}

static mem_entry *find(registry_memory *m, const char *name) {
  return nt_hashmap_get(&m->names, name, strlen(name));
}

static int mem_lookup(void *impl, const char *name, nt_registry_entry *entry,
                      char *err, size_t errlen) {
  mem_entry *me = find(impl, name);
  (void)err;
  (void)errlen;
  if (!me) {
    return NATTER_ERR_PEER_UNKNOWN;
  }
  *entry = me->e;
  return 0;
}

static int mem_insert(void *impl, const char *name, const uint8_t *fingerprint,
                      int64_t now, char *err, size_t errlen) {
  registry_memory *m = impl;
  mem_entry *me;

  if (find(m, name)) {
    nt_textfile_set_err(err, errlen, "name is bound already");
    return NATTER_ERR_NAME_TAKEN;
  }
  if (nt_hashmap_count(&m->names) >= NT_REGISTRY_MAX_NAMES) {
    nt_textfile_set_err(err, errlen, "registry is full");
    return NATTER_ERR_REGISTRY;
  }
  me = calloc(1, sizeof(*me));
  if (!me) {
    nt_textfile_set_err(err, errlen, "registry: out of memory");
    return NATTER_ERR_NOMEM;
  }
  strncpy(me->e.name, name, NT_NAME_MAX);
  memcpy(me->e.fingerprint, fingerprint, NT_FINGERPRINT_LEN);
  me->e.first_seen = me->e.last_seen = now;
  if (nt_hashmap_put(&m->names, me->e.name, strlen(me->e.name), me) != 0) {
    free(me);
    nt_textfile_set_err(err, errlen, "registry: out of memory");
    return NATTER_ERR_NOMEM;
  }
  return 0;
}

static int mem_touch_many(void *impl, const nt_registry_seen *touches, size_t n,
                          char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  for (size_t i = 0; i < n; i++) {
    mem_entry *me = find(impl, touches[i].name);
    if (me && touches[i].last_seen > me->e.last_seen) {
      me->e.last_seen = touches[i].last_seen;
    }
  }
  return 0;
}

static int mem_release(void *impl, const char *name, char *err, size_t errlen) {
  registry_memory *m = impl;
  mem_entry *me = nt_hashmap_remove(&m->names, name, strlen(name));
  (void)err;
  (void)errlen;
  if (!me) {
    return NATTER_ERR_PEER_UNKNOWN;
  }
  free(me);
  return 0;
}

static int mem_expire(void *impl, int64_t cutoff, size_t limit, size_t *removed,
                      char *err, size_t errlen) {
  registry_memory *m = impl;
  (void)err;
  (void)errlen;
  *removed = 0;
  /* Removal shifts entries backwards: restart the scan after each one. */
  for (size_t i = 0; i < m->names.capacity && *removed < limit;) {
    nt_hashmap_slot *s = &m->names.slots[i];
    mem_entry *me = s->key ? s->value : NULL;
    if (me && me->e.last_seen < cutoff) {
      nt_hashmap_remove(&m->names, me->e.name, strlen(me->e.name));
      free(me);
      (*removed)++;
      continue;
    }
    i++;
  }
  return 0;
}

static int by_name(const void *a, const void *b) {
  const mem_entry *const *x = a, *const *y = b;
  return strcmp((*x)->e.name, (*y)->e.name);
}

static int mem_list(void *impl, nt_registry_list_fn fn, void *user_data,
                    char *err, size_t errlen) {
  registry_memory *m = impl;
  size_t n = 0, count = nt_hashmap_count(&m->names);
  mem_entry **all = calloc(count ? count : 1, sizeof(*all));

  if (!all) {
    nt_textfile_set_err(err, errlen, "registry: out of memory");
    return NATTER_ERR_NOMEM;
  }
  for (size_t i = 0; i < m->names.capacity; i++) {
    if (m->names.slots[i].key) {
      all[n++] = m->names.slots[i].value;
    }
  }
  qsort(all, n, sizeof(*all), by_name);
  for (size_t i = 0; i < n; i++) {
    if (fn(&all[i]->e, user_data) != 0) {
      break;
    }
  }
  free(all);
  return 0;
}

static int mem_count(void *impl, size_t *n, char *err, size_t errlen) {
  registry_memory *m = impl;
  (void)err;
  (void)errlen;
  *n = nt_hashmap_count(&m->names);
  return 0;
}

const nt_registry_ops nt_registry_memory_ops = {
    "memory",    mem_open,   mem_close, mem_lookup, mem_insert, mem_touch_many,
    mem_release, mem_expire, mem_list,  NULL,       mem_count};
