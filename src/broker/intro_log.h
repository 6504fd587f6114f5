/* The broker's memory of its last introductions, for the dashboard: a
 * ring of NT_INTRO_LOG_ENTRIES requests to reach a listener, each with
 * its outcome, the oldest overwritten first. Its size is fixed where it
 * is declared (NT_INTRO_LOG_ENTRIES * sizeof(nt_intro_entry) = 64 * 160
 * bytes, 10 kB a broker) and nothing is allocated. An entry keeps
 * the requester's relay token (never shown: it only lets the dashboard
 * ask the relay whether the channel carried bytes); it is forgotten with
 * the entry. Pure: no clock of its own (callers pass the time). */
#ifndef NT_INTRO_LOG_H
#define NT_INTRO_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "codec/relay_wire.h"
#include "codec/spec.h"

#define NT_INTRO_LOG_ENTRIES 64

typedef enum nt_intro_outcome {
  NT_INTRO_INTRODUCED = 0,
  NT_INTRO_REFUSED,       /* the listener's peer rules */
  NT_INTRO_TIMEOUT,       /* the listener did not answer in time */
  NT_INTRO_UNKNOWN,       /* no such name checked in, or it left */
  NT_INTRO_NOT_LISTENING, /* checked in, not listening */
  NT_INTRO_RATE_LIMITED,  /* a limit of the broker's (queries, checks) */
  NT_INTRO_OUTCOMES
} nt_intro_outcome;

typedef struct nt_intro_entry {
  uint64_t unix_ms; /* when the outcome was known */
  char requester[NT_NAME_MAX + 1];
  char listener[NT_NAME_MAX + 1];
  uint8_t outcome;    /* nt_intro_outcome */
  uint8_t relay;      /* a relay channel was opened for the pair */
  uint8_t predict;    /* their NAT types need port prediction */
  uint8_t check;      /* for a check session (natter -check) */
  uint8_t relay_used; /* the channel was seen forwarding bytes */
  uint8_t relay_token[NT_RELAY_TOKEN_LEN]; /* the requester's; all 0:
                                               none */
} nt_intro_entry;

typedef struct nt_intro_log {
  nt_intro_entry entries[NT_INTRO_LOG_ENTRIES];
  size_t next; /* where the next entry goes */
  size_t n;    /* entries held, at most NT_INTRO_LOG_ENTRIES */
} nt_intro_log;

void nt_intro_log_init(nt_intro_log *l);
/* Keeps a copy of |e|; when full, the oldest entry goes. */
void nt_intro_log_add(nt_intro_log *l, const nt_intro_entry *e);
size_t nt_intro_log_count(const nt_intro_log *l);
/* The |i|th entry held, newest first (i < nt_intro_log_count), or NULL. */
const nt_intro_entry *nt_intro_log_at(const nt_intro_log *l, size_t i);
/* Whether two clients' NAT mappings (nt_nat_mapping, as each reported
 * it) leave port prediction as the only way to punch: one side a new
 * port per destination, the other endpoint-independent (as the clients
 * decide, src/client/predict.c). Unknown types: 0, never a guess. */
int nt_intro_needs_prediction(int mapping_a, int mapping_b);
/* The outcome's name on the dashboard ("introduced", "refused", ...);
 * "?" for no outcome. */
const char *nt_intro_outcome_name(int outcome);

#endif
