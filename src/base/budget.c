/* Per-source budgets and the log gate (budget.h). */
#include "base/budget.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_HOUR (3600.0 * 1e9)
/* A full table is searched for forgettable buckets at most this often,
 * so that a flood of new keys costs no scan per key. */
#define PRUNE_EVERY_NS 1000000000ull

typedef struct bucket {
  uint8_t key[NT_BUDGET_KEY_MAX]; /* the map's key points here */
  size_t len;
  double tokens;
  uint64_t last_ns;
} bucket;

size_t nt_source_key(const struct sockaddr *sa,
                     uint8_t out[NT_SOURCE_KEY_MAX]) {
  if (sa->sa_family == AF_INET) {
    memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 4;
  }
  if (sa->sa_family == AF_INET6) {
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
      memcpy(out, a + 12, 4);
      return 4;
    }
    memcpy(out, a, 8);
    return 8;
  }
  return 0;
}

int nt_source_same(const struct sockaddr *a, const struct sockaddr *b) {
  uint8_t ka[NT_SOURCE_KEY_MAX], kb[NT_SOURCE_KEY_MAX];
  size_t la = nt_source_key(a, ka), lb = nt_source_key(b, kb);
  return la > 0 && la == lb && memcmp(ka, kb, la) == 0;
}

void nt_budget_init(nt_budget *b, const uint8_t seed[NT_HASHMAP_SEED_LEN],
                    unsigned per_hour, unsigned burst, size_t max_entries) {
  memset(b, 0, sizeof(*b));
  nt_hashmap_init(&b->map, seed);
  b->per_hour = per_hour;
  b->burst = burst > 0 ? burst : 1;
  b->max_entries = max_entries;
}

void nt_budget_clear(nt_budget *b) {
  for (size_t i = 0; i < b->map.capacity; i++) {
    if (b->map.slots[i].key) {
      free(b->map.slots[i].value);
    }
  }
  nt_hashmap_clear(&b->map);
}

static void refill(const nt_budget *b, bucket *k, uint64_t now_ns) {
  if (now_ns > k->last_ns) {
    k->tokens += (double)(now_ns - k->last_ns) * b->per_hour / NS_PER_HOUR;
    if (k->tokens > b->burst) {
      k->tokens = b->burst;
    }
  }
  k->last_ns = now_ns;
}

/* Forgets the buckets that are full again: remembering them changes
 * nothing. */
static void prune(nt_budget *b, uint64_t now_ns) {
  size_t i = 0;
  b->pruned_ns = now_ns;
  while (i < b->map.capacity) {
    bucket *k = b->map.slots[i].value;
    if (b->map.slots[i].key) {
      refill(b, k, now_ns);
      if (k->tokens >= b->burst) {
        /* Backward-shift deletion may move another entry into slot i:
         * look at it again. */
        nt_hashmap_remove(&b->map, k->key, k->len);
        free(k);
        continue;
      }
    }
    i++;
  }
}

int nt_budget_take(nt_budget *b, const void *key, size_t len, uint64_t now_ns) {
  if (b->per_hour == 0) {
    return 1;
  }
  if (len == 0 || len > NT_BUDGET_KEY_MAX) {
    return 0;
  }
  bucket *k = nt_hashmap_get(&b->map, key, len);
  if (!k) {
    if (nt_hashmap_count(&b->map) >= b->max_entries &&
        (b->pruned_ns == 0 || now_ns - b->pruned_ns >= PRUNE_EVERY_NS)) {
      prune(b, now_ns);
    }
    if (nt_hashmap_count(&b->map) >= b->max_entries ||
        !(k = calloc(1, sizeof(*k)))) {
      return 0;
    }
    memcpy(k->key, key, len);
    k->len = len;
    k->tokens = b->burst;
    k->last_ns = now_ns;
    if (nt_hashmap_put(&b->map, k->key, len, k) != 0) {
      free(k);
      return 0;
    }
  }
  refill(b, k, now_ns);
  if (k->tokens < 1.0) {
    return 0;
  }
  k->tokens -= 1.0;
  return 1;
}

void nt_budget_give_back(nt_budget *b, const void *key, size_t len) {
  bucket *k = b->per_hour ? nt_hashmap_get(&b->map, key, len) : NULL;
  if (k) {
    k->tokens += 1.0;
    if (k->tokens > b->burst) {
      k->tokens = b->burst;
    }
  }
}

size_t nt_budget_entries(const nt_budget *b) {
  return nt_hashmap_count(&b->map);
}

int nt_log_gate_pass(nt_log_gate *g, uint64_t now_ns, unsigned *held_back) {
  uint64_t interval = g->interval_ns ? g->interval_ns : 1000000000ull;
  if (g->last_ns != 0 && now_ns - g->last_ns < interval) {
    g->held++;
    return 0;
  }
  *held_back = g->held;
  g->held = 0;
  g->last_ns = now_ns ? now_ns : 1;
  return 1;
}
