#include "base/hashmap.h"

#include <stdlib.h>
#include <string.h>

#include "natter.h"

#define HASHMAP_MIN_CAPACITY 8

static uint64_t rotl(uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

static uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) {
    v = (v << 8) | p[i];
  }
  return v;
}

#define SIPROUND                                                               \
  do {                                                                         \
    v0 += v1;                                                                  \
    v1 = rotl(v1, 13);                                                         \
    v1 ^= v0;                                                                  \
    v0 = rotl(v0, 32);                                                         \
    v2 += v3;                                                                  \
    v3 = rotl(v3, 16);                                                         \
    v3 ^= v2;                                                                  \
    v0 += v3;                                                                  \
    v3 = rotl(v3, 21);                                                         \
    v3 ^= v0;                                                                  \
    v2 += v1;                                                                  \
    v1 = rotl(v1, 17);                                                         \
    v1 ^= v2;                                                                  \
    v2 = rotl(v2, 32);                                                         \
  } while (0)

uint64_t nt_siphash24(const uint8_t seed[NT_HASHMAP_SEED_LEN], const void *key,
                      size_t len) {
  const uint8_t *in = key;
  uint64_t k0 = load_le64(seed), k1 = load_le64(seed + 8);
  uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
  uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
  uint64_t v3 = k1 ^ 0x7465646279746573ull;
  size_t whole = len - len % 8;

  for (size_t off = 0; off < whole; off += 8) {
    uint64_t m = load_le64(in + off);
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
  }
  /* The last block: remaining bytes, and the length in the top byte. */
  uint64_t b = (uint64_t)len << 56;
  for (size_t i = 0; i < len % 8; i++) {
    b |= (uint64_t)in[whole + i] << (8 * i);
  }
  v3 ^= b;
  SIPROUND;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

void nt_hashmap_init(nt_hashmap *map, const uint8_t seed[NT_HASHMAP_SEED_LEN]) {
  memset(map, 0, sizeof(*map));
  memcpy(map->seed, seed, NT_HASHMAP_SEED_LEN);
  map->hash = nt_siphash24;
}

void nt_hashmap_clear(nt_hashmap *map) {
  free(map->slots);
  map->slots = NULL;
  map->capacity = 0;
  map->count = 0;
}

size_t nt_hashmap_count(const nt_hashmap *map) {
  return map->count;
}

/* The slot holding |key|, or the empty slot where it would go. The table
 * is never full (load stays under 70%), so the probe ends. */
static size_t find_slot(const nt_hashmap *map, uint64_t hash, const void *key,
                        size_t len) {
  size_t mask = map->capacity - 1;
  for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
    const nt_hashmap_slot *s = &map->slots[i];
    if (!s->key || (s->hash == hash && s->keylen == len &&
                    memcmp(s->key, key, len) == 0)) {
      return i;
    }
  }
}

static int grow(nt_hashmap *map) {
  size_t capacity =
      map->capacity ? map->capacity * 2 : (size_t)HASHMAP_MIN_CAPACITY;
  nt_hashmap_slot *slots = calloc(capacity, sizeof(*slots));
  if (!slots) {
    return NATTER_ERR_NOMEM;
  }
  nt_hashmap_slot *old = map->slots;
  size_t old_capacity = map->capacity;
  map->slots = slots;
  map->capacity = capacity;
  for (size_t i = 0; i < old_capacity; i++) {
    if (old[i].key) {
      /* Keys are distinct: the first empty slot on the probe is it. */
      size_t mask = capacity - 1, j = (size_t)old[i].hash & mask;
      while (slots[j].key) {
        j = (j + 1) & mask;
      }
      slots[j] = old[i];
    }
  }
  free(old);
  return 0;
}

void *nt_hashmap_get(const nt_hashmap *map, const void *key, size_t len) {
  if (map->count == 0) {
    return NULL;
  }
  uint64_t hash = map->hash(map->seed, key, len);
  const nt_hashmap_slot *s = &map->slots[find_slot(map, hash, key, len)];
  return s->key ? s->value : NULL;
}

int nt_hashmap_put(nt_hashmap *map, const void *key, size_t len, void *value) {
  uint64_t hash = map->hash(map->seed, key, len);
  size_t i;

  if (map->capacity) {
    i = find_slot(map, hash, key, len);
    if (map->slots[i].key) {
      map->slots[i].key = key;
      map->slots[i].value = value;
      return 0;
    }
  }
  if ((map->count + 1) * 10 > map->capacity * 7) {
    int rv = grow(map);
    if (rv != 0) {
      return rv;
    }
  }
  i = find_slot(map, hash, key, len);
  map->slots[i].hash = hash;
  map->slots[i].key = key;
  map->slots[i].keylen = len;
  map->slots[i].value = value;
  map->count++;
  return 0;
}

void *nt_hashmap_remove(nt_hashmap *map, const void *key, size_t len) {
  if (map->count == 0) {
    return NULL;
  }
  uint64_t hash = map->hash(map->seed, key, len);
  size_t mask = map->capacity - 1;
  size_t hole = find_slot(map, hash, key, len);
  if (!map->slots[hole].key) {
    return NULL;
  }
  void *value = map->slots[hole].value;
  /* Backward-shift deletion: pull later entries of the same probe run
   * into the hole, so lookups never need tombstones. An entry may move
   * back only if its home slot is not cyclically in (hole, j]. */
  for (size_t j = (hole + 1) & mask; map->slots[j].key; j = (j + 1) & mask) {
    size_t home = (size_t)map->slots[j].hash & mask;
    int stays =
        hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!stays) {
      map->slots[hole] = map->slots[j];
      hole = j;
    }
  }
  memset(&map->slots[hole], 0, sizeof(map->slots[hole]));
  map->count--;
  return value;
}
