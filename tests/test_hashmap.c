/* Unit tests for the hash table (src/base/hashmap.c): SipHash against the
 * reference vectors, insert/lookup/replace/remove, growth, and deletion
 * inside collision runs (including runs that wrap past the table's end),
 * checked against a plain array as the model. */
#include "base/hashmap.h"
#include "natter.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

static const uint8_t seed_0_15[NT_HASHMAP_SEED_LEN] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* Every key hashes alike: one probe run holds them all. */
static uint64_t constant_hash(const uint8_t seed[NT_HASHMAP_SEED_LEN],
                              const void *key, size_t len) {
  (void)seed;
  (void)key;
  (void)len;
  return 7; /* the last slot of the first (8-slot) table: runs wrap */
}

/* Few distinct hashes: many partly overlapping runs. */
static uint64_t weak_hash(const uint8_t seed[NT_HASHMAP_SEED_LEN],
                          const void *key, size_t len) {
  const uint8_t *p = key;
  (void)seed;
  return len ? (uint64_t)(p[0] % 13) * 5 + 3 : 0;
}

static void test_siphash_vectors(void) {
  /* From the SipHash paper's reference implementation: key 00..0f,
   * message 00..(len-1). */
  uint8_t msg[64];
  for (int i = 0; i < 64; i++) {
    msg[i] = (uint8_t)i;
  }
  CHECK(nt_siphash24(seed_0_15, msg, 0) == 0x726fdb47dd0e0e31ull);
  CHECK(nt_siphash24(seed_0_15, msg, 1) == 0x74f839c593dc67fdull);
  CHECK(nt_siphash24(seed_0_15, msg, 8) == 0x93f5f5799a932462ull);
  CHECK(nt_siphash24(seed_0_15, msg, 15) == 0xa129ca6149be45e5ull);
  CHECK(nt_siphash24(seed_0_15, msg, 63) == 0x958a324ceb064572ull);
}

static void test_basic(void) {
  nt_hashmap m;
  int a = 1, b = 2, c = 3;

  nt_hashmap_init(&m, seed_0_15);
  CHECK(nt_hashmap_count(&m) == 0);
  CHECK(nt_hashmap_get(&m, "alice", 5) == NULL);
  CHECK(nt_hashmap_remove(&m, "alice", 5) == NULL);
  CHECK(nt_hashmap_put(&m, "alice", 5, &a) == 0);
  CHECK(nt_hashmap_put(&m, "bob", 3, &b) == 0);
  CHECK(nt_hashmap_count(&m) == 2);
  CHECK(nt_hashmap_get(&m, "alice", 5) == &a);
  CHECK(nt_hashmap_get(&m, "bob", 3) == &b);
  /* Length is part of the key. */
  CHECK(nt_hashmap_get(&m, "alice", 4) == NULL);
  CHECK(nt_hashmap_get(&m, "bobby", 5) == NULL);

  /* Replacing keeps one entry and takes the new key pointer. */
  char alice2[] = "alice";
  CHECK(nt_hashmap_put(&m, alice2, 5, &c) == 0);
  CHECK(nt_hashmap_count(&m) == 2);
  CHECK(nt_hashmap_get(&m, "alice", 5) == &c);
  alice2[0] = 'X'; /* the table now reads this buffer */
  CHECK(nt_hashmap_get(&m, "alice", 5) == NULL);
  alice2[0] = 'a';

  CHECK(nt_hashmap_remove(&m, "alice", 5) == &c);
  CHECK(nt_hashmap_remove(&m, "alice", 5) == NULL);
  CHECK(nt_hashmap_count(&m) == 1);
  CHECK(nt_hashmap_get(&m, "bob", 3) == &b);

  /* A zero-length key is a key like any other. */
  CHECK(nt_hashmap_put(&m, "", 0, &a) == 0);
  CHECK(nt_hashmap_get(&m, "", 0) == &a);
  CHECK(nt_hashmap_remove(&m, "", 0) == &a);
  CHECK(nt_hashmap_get(&m, "", 0) == NULL);
  nt_hashmap_clear(&m);
  CHECK(nt_hashmap_count(&m) == 0);
  CHECK(nt_hashmap_get(&m, "bob", 3) == NULL);
}

#define GROW_N 20000

static void test_grow(void) {
  nt_hashmap m;
  uint32_t *keys = malloc(GROW_N * sizeof(*keys));
  CHECK(keys != NULL);
  if (!keys) {
    return;
  }
  nt_hashmap_init(&m, seed_0_15);
  for (uint32_t i = 0; i < GROW_N; i++) {
    keys[i] = i * 2654435761u;
    CHECK(nt_hashmap_put(&m, &keys[i], sizeof(keys[i]), &keys[i]) == 0);
  }
  CHECK(nt_hashmap_count(&m) == GROW_N);
  /* Power of two, load under 70%. */
  CHECK(m.capacity && (m.capacity & (m.capacity - 1)) == 0);
  CHECK(m.count * 10 <= m.capacity * 7);
  size_t found = 0;
  for (uint32_t i = 0; i < GROW_N; i++) {
    found += nt_hashmap_get(&m, &keys[i], sizeof(keys[i])) == &keys[i];
  }
  CHECK(found == GROW_N);
  /* Remove the even ones; the odd ones stay reachable. */
  for (uint32_t i = 0; i < GROW_N; i += 2) {
    CHECK(nt_hashmap_remove(&m, &keys[i], sizeof(keys[i])) == &keys[i]);
  }
  CHECK(nt_hashmap_count(&m) == GROW_N / 2);
  size_t odd = 0, even = 0;
  for (uint32_t i = 0; i < GROW_N; i++) {
    void *v = nt_hashmap_get(&m, &keys[i], sizeof(keys[i]));
    if (i % 2) {
      odd += v == &keys[i];
    } else {
      even += v != NULL;
    }
  }
  CHECK(odd == GROW_N / 2);
  CHECK(even == 0);
  nt_hashmap_clear(&m);
  free(keys);
}

/* All keys in one run that wraps from the last slot to the first; removing
 * from the front, the middle and the end must keep the rest reachable. */
static void test_full_collisions(void) {
  nt_hashmap m;
  uint8_t keys[5] = {10, 11, 12, 13, 14};

  nt_hashmap_init(&m, seed_0_15);
  m.hash = constant_hash;
  for (int i = 0; i < 5; i++) {
    CHECK(nt_hashmap_put(&m, &keys[i], 1, &keys[i]) == 0);
  }
  CHECK(m.capacity == 8);
  for (int i = 0; i < 5; i++) {
    CHECK(nt_hashmap_get(&m, &keys[i], 1) == &keys[i]);
  }
  uint8_t absent = 99;
  CHECK(nt_hashmap_get(&m, &absent, 1) == NULL);
  int order[5] = {2, 0, 4, 1, 3};
  for (int n = 0; n < 5; n++) {
    int r = order[n];
    CHECK(nt_hashmap_remove(&m, &keys[r], 1) == &keys[r]);
    for (int k = 0; k < 5; k++) {
      int gone = 0;
      for (int p = 0; p <= n; p++) {
        gone |= order[p] == k;
      }
      CHECK(nt_hashmap_get(&m, &keys[k], 1) == (gone ? NULL : &keys[k]));
    }
  }
  CHECK(nt_hashmap_count(&m) == 0);
  /* Grows while every key collides. */
  for (int i = 0; i < 5; i++) {
    CHECK(nt_hashmap_put(&m, &keys[i], 1, &keys[i]) == 0);
  }
  uint8_t more[20];
  for (int i = 0; i < 20; i++) {
    more[i] = (uint8_t)(100 + i);
    CHECK(nt_hashmap_put(&m, &more[i], 1, &more[i]) == 0);
  }
  CHECK(m.capacity >= 32);
  for (int i = 0; i < 20; i++) {
    CHECK(nt_hashmap_get(&m, &more[i], 1) == &more[i]);
  }
  for (int i = 0; i < 5; i++) {
    CHECK(nt_hashmap_get(&m, &keys[i], 1) == &keys[i]);
  }
  nt_hashmap_clear(&m);
}

#define MODEL_KEYS 200
#define MODEL_OPS 200000

/* Random puts and removes with overlapping probe runs, compared with an
 * array after every step. */
static void test_model(void) {
  nt_hashmap m;
  uint8_t keys[MODEL_KEYS][2];
  int present[MODEL_KEYS] = {0};
  size_t count = 0;
  uint32_t rng = 12345;
  int mismatches = 0;

  nt_hashmap_init(&m, seed_0_15);
  m.hash = weak_hash;
  for (int i = 0; i < MODEL_KEYS; i++) {
    keys[i][0] = (uint8_t)i;
    keys[i][1] = (uint8_t)(i * 7);
  }
  for (int op = 0; op < MODEL_OPS && mismatches < 10; op++) {
    rng = rng * 1103515245u + 12345u;
    int k = (int)((rng >> 8) % MODEL_KEYS);
    if ((rng >> 20) % 3) {
      CHECK(nt_hashmap_put(&m, keys[k], 2, keys[k]) == 0);
      count += !present[k];
      present[k] = 1;
    } else {
      void *v = nt_hashmap_remove(&m, keys[k], 2);
      if (v != (present[k] ? (void *)keys[k] : NULL)) {
        mismatches++;
      }
      count -= present[k];
      present[k] = 0;
    }
    if (nt_hashmap_count(&m) != count) {
      mismatches++;
    }
    if (op % 97 == 0) {
      for (int i = 0; i < MODEL_KEYS; i++) {
        void *v = nt_hashmap_get(&m, keys[i], 2);
        if (v != (present[i] ? (void *)keys[i] : NULL)) {
          fprintf(stderr, "op %d: key %d %s\n", op, i,
                  present[i] ? "lost" : "resurrected");
          mismatches++;
        }
      }
    }
  }
  CHECK(mismatches == 0);
  nt_hashmap_clear(&m);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"siphash_vectors", test_siphash_vectors},
      {"basic", test_basic},
      {"grow", test_grow},
      {"full_collisions", test_full_collisions},
      {"model", test_model},
      {NULL, NULL},
  };
  return nt_test_run(cases);
}
