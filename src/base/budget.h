/* Budgets per source, for the shared resources a broker or a status page
 * hands out (check slots, status connections, new names): who counts as
 * one source, a bounded table of token buckets keyed by source address or
 * key, and a gate that keeps the log lines about a limit to one a second.
 * Pure: no I/O and no clock of its own (callers pass the time). */
#ifndef NT_BUDGET_H
#define NT_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/hashmap.h"

/* One source: an IPv4 address (a v4-mapped IPv6 address counts as its
 * IPv4 address), or the /64 prefix of an IPv6 address, since one host or
 * site is routinely given a whole /64. */
#define NT_SOURCE_KEY_MAX 8
/* Writes |sa|'s source into |out| and returns its length (4 or 8); 0 for
 * another family. */
size_t nt_source_key(const struct sockaddr *sa, uint8_t out[NT_SOURCE_KEY_MAX]);
/* 1 when |a| and |b| are the same source. */
int nt_source_same(const struct sockaddr *a, const struct sockaddr *b);

/* The longest key a budget takes (a key fingerprint). */
#define NT_BUDGET_KEY_MAX 32

/* Token buckets, one per key (a source or a key fingerprint): |per_hour|
 * tokens an hour, at most |burst| saved; a key never seen has a full
 * bucket. At most |max_entries| keys are remembered; a bucket that has
 * filled up again is forgotten when room is needed, and when none has,
 * a new key gets nothing (the budget fails closed rather than growing). */
typedef struct nt_budget {
  nt_hashmap map; /* key bytes -> bucket */
  unsigned per_hour, burst;
  size_t max_entries;
  uint64_t pruned_ns; /* last search for forgettable buckets */
} nt_budget;

/* |per_hour| 0: no limit (every take succeeds, nothing is stored). */
void nt_budget_init(nt_budget *b, const uint8_t seed[NT_HASHMAP_SEED_LEN],
                    unsigned per_hour, unsigned burst, size_t max_entries);
void nt_budget_clear(nt_budget *b);
/* Takes one token of |key| (|len| <= NT_BUDGET_KEY_MAX bytes): 1 when
 * there was one, 0 when the key's budget is spent (or the table is full of
 * keys still spending). */
int nt_budget_take(nt_budget *b, const void *key, size_t len, uint64_t now_ns);
/* Returns a token taken by nt_budget_take (the thing it paid for did not
 * happen). */
void nt_budget_give_back(nt_budget *b, const void *key, size_t len);
/* Keys remembered now. */
size_t nt_budget_entries(const nt_budget *b);

/* At most one log line a second (or every |interval_ns|) about one limit,
 * so that hitting it in a flood cannot flood the log. A zero-filled gate
 * is ready to use. */
typedef struct nt_log_gate {
  uint64_t last_ns;     /* 0: never logged */
  unsigned held;        /* lines held back since */
  uint64_t interval_ns; /* 0: one second */
} nt_log_gate;

/* 1 when a line may be written now, with *held_back the number of lines
 * held back since the last one; 0 (counted) when not. */
int nt_log_gate_pass(nt_log_gate *g, uint64_t now_ns, unsigned *held_back);

#endif
