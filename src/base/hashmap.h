/* A hash table from byte strings to pointers, for every lookup that grows
 * with users: connection IDs at the endpoint, names at the broker.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), doubling at 70% load. Keys are borrowed: the table stores
 * the pointer, so the key's bytes must stay put while the entry exists
 * (they normally live inside the value). The hash is SipHash-2-4 keyed
 * with a per-table random seed, because the keys come from the network
 * (a peer picks its initial DCID, a client picks its name) and a fixed
 * hash would let them choose colliding keys. */
#ifndef NT_HASHMAP_H
#define NT_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

#define NT_HASHMAP_SEED_LEN 16

typedef uint64_t (*nt_hash_fn)(const uint8_t seed[NT_HASHMAP_SEED_LEN],
                               const void *key, size_t len);

typedef struct nt_hashmap_slot {
  uint64_t hash;
  const void *key; /* NULL: empty slot */
  size_t keylen;
  void *value;
} nt_hashmap_slot;

typedef struct nt_hashmap {
  nt_hashmap_slot *slots;
  size_t capacity; /* 0 or a power of two */
  size_t count;
  uint8_t seed[NT_HASHMAP_SEED_LEN];
  /* nt_siphash24 unless replaced right after init (tests force collisions
   * with a constant hash). */
  nt_hash_fn hash;
} nt_hashmap;

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of |key| under |seed|. */
uint64_t nt_siphash24(const uint8_t seed[NT_HASHMAP_SEED_LEN], const void *key,
                      size_t len);

/* An empty table; allocates nothing until the first put. */
void nt_hashmap_init(nt_hashmap *map, const uint8_t seed[NT_HASHMAP_SEED_LEN]);

/* Frees the table itself; keys and values belong to the caller. */
void nt_hashmap_clear(nt_hashmap *map);

/* The value stored under |key|, or NULL. */
void *nt_hashmap_get(const nt_hashmap *map, const void *key, size_t len);

/* Stores |value| (not NULL) under |key|, which must not be NULL (a zero
 * length key still needs a pointer). An existing entry is replaced, key
 * pointer included. Returns 0 or NATTER_ERR_NOMEM (table unchanged). */
int nt_hashmap_put(nt_hashmap *map, const void *key, size_t len, void *value);

/* Removes |key|; returns the value it had, or NULL if it was absent. */
void *nt_hashmap_remove(nt_hashmap *map, const void *key, size_t len);

size_t nt_hashmap_count(const nt_hashmap *map);

#endif
