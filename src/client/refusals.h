/* A listener's refusals (its peer rules do not admit a requester), logged
 * without letting a flood of them flood the log: one line per requester
 * (name and key) per minute, at most NT_REFUSALS_LINES lines a minute in
 * all, and every refusal counted (natter_client_status.peers_refused,
 * the metric natter_client_peers_refused_total). Pure bookkeeping: the
 * caller passes the time and writes the line. */
#ifndef NT_REFUSALS_H
#define NT_REFUSALS_H

#include <stddef.h>
#include <stdint.h>

#include "codec/spec.h" /* NT_NAME_MAX, NT_FINGERPRINT_LEN */

/* One line per requester (name and key) per interval, at most
 * NT_REFUSALS_LINES lines per interval in all, and this many requesters
 * remembered (the one with the oldest line is forgotten first). */
#define NT_REFUSALS_INTERVAL_NS (60 * 1000000000ull)
#define NT_REFUSALS_LINES 10
#define NT_REFUSALS_TRACKED 64

typedef struct nt_refusal_entry {
  char name[NT_NAME_MAX + 1]; /* "": free */
  uint8_t key[NT_FINGERPRINT_LEN];
  uint64_t logged_ns;  /* its last line */
  uint64_t suppressed; /* its refusals since, not logged */
} nt_refusal_entry;

typedef struct nt_refusals {
  nt_refusal_entry entries[NT_REFUSALS_TRACKED];
  uint64_t window_ns; /* start of the interval NT_REFUSALS_LINES counts */
  unsigned lines;     /* lines in it */
  uint64_t unlogged;  /* refusals left out by that cap, not yet told */
  uint64_t total;     /* every refusal */
} nt_refusals;

/* Zeroes |r|. */
void nt_refusals_init(nt_refusals *r);

/* Counts one refusal of |name| with |key| at |now_ns| (monotonic).
 * Returns 1 when it gets a log line, with *same set to this requester's
 * refusals left out since its last line and *others to the other
 * refusals the overall cap left out since the last line; 0 when it is
 * only counted. */
int nt_refusals_note(nt_refusals *r, const char *name, const uint8_t *key,
                     uint64_t now_ns, uint64_t *same, uint64_t *others);

#endif
