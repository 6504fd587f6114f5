/* What the broker's relay (relay.h) lets each party spend, kept apart
 * from the sockets so that it can be tested and reasoned about alone.
 *
 * Budgets belong to a client's key and to its source address (an IPv4
 * address, or an IPv6 /64: one host or one site usually holds a whole
 * /64), never to a name, because names cost nothing on an open broker
 * and one key may claim many. Each account has:
 *   - channels: how many open channels it asked for (the requester pays
 *     for a channel; the peer it asked for does not);
 *   - a byte rate: a token bucket of |rate| bytes a second, one second's
 *     worth of burst;
 *   - a byte total: |total| bytes within a fixed window of |window_ns|
 *     that starts at the first byte counted and ends |window_ns| later,
 *     when the count starts afresh.
 * Bytes are charged to the accounts of the side that sent them, so a
 * peer's traffic never spends another's budget.
 *
 * An account lives while a channel side uses it; afterwards, while its
 * window runs and it has counted bytes, it is kept so that leaving and
 * coming back does not reset the total: at most NT_RELAY_KEPT_ACCOUNTS
 * such accounts of keys and as many of addresses (the oldest are
 * forgotten first; fresh keys never push out an address's total).
 * Pure: no I/O, no clock of its own (callers pass the time). */
#ifndef NT_RELAY_BUDGET_H
#define NT_RELAY_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "base/hashmap.h"
#include "codec/spec.h" /* NT_FINGERPRINT_LEN */

/* Accounts without a channel whose totals are remembered until their
 * window ends, of keys and of addresses each (about 1 MB at most). */
#define NT_RELAY_KEPT_ACCOUNTS 4096

#define NT_RELAY_ACCOUNT_ID_MAX (1 + NT_FINGERPRINT_LEN)
#define NT_RELAY_LABEL_MAX 64

typedef struct nt_relay_account nt_relay_account;

/* An account's id starts with its kind. */
enum { NT_RELAY_BY_KEY = 'K', NT_RELAY_BY_ADDRESS = 'A' };

struct nt_relay_account {
  uint8_t id[NT_RELAY_ACCOUNT_ID_MAX]; /* NT_RELAY_BY_*, then the key's
                                          fingerprint or the prefix */
  size_t idlen;
  char label[NT_RELAY_LABEL_MAX]; /* "key 9b2e4c6a..." or "192.0.2.7" or
                                     "2001:db8::/64", for log lines */
  unsigned refs;                  /* channel sides that spend from it */
  unsigned channels;              /* channels it asked for, open now */
  uint64_t used;                  /* bytes counted in the current window */
  uint64_t window_ns;             /* when that window began; 0: none yet */
  double bucket;                  /* bytes it may send now */
  uint64_t bucket_ns;
  int kept; /* on the kept list (refs 0, total remembered) */
  TAILQ_ENTRY(nt_relay_account) link;
};

typedef struct nt_relay_budget {
  uint64_t rate;                          /* bytes a second; 0: no cap */
  uint64_t total;                         /* bytes per window; 0: no cap */
  uint64_t window_ns;                     /* the total's window */
  nt_hashmap accounts;                    /* id -> account */
  TAILQ_HEAD(, nt_relay_account) kept[2]; /* of keys, of addresses */
  size_t nkept[2];
} nt_relay_budget;

void nt_relay_budget_init(nt_relay_budget *b, uint64_t rate, uint64_t total,
                          uint64_t window_ns,
                          const uint8_t seed[NT_HASHMAP_SEED_LEN]);
/* Frees every account. */
void nt_relay_budget_clear(nt_relay_budget *b);

/* The account of key |fp| (NT_FINGERPRINT_LEN bytes) or of the address
 * of |ip| (v4-mapped IPv6 counts as IPv4; IPv6 by its /64), created when
 * new, with one more reference. NULL when out of memory or |ip| is no IP
 * address. */
nt_relay_account *nt_relay_account_of_key(nt_relay_budget *b, const uint8_t *fp,
                                          uint64_t now);
nt_relay_account *nt_relay_account_of_address(nt_relay_budget *b,
                                              const struct sockaddr *ip,
                                              uint64_t now);
/* Drops a reference; at none the account is kept (while its total
 * matters) or freed. NULL is a no-op. */
void nt_relay_account_release(nt_relay_budget *b, nt_relay_account *a,
                              uint64_t now);

enum {
  NT_RELAY_SPEND_OK = 0,
  NT_RELAY_SPEND_RATE = 1,  /* over a rate: drop this datagram */
  NT_RELAY_SPEND_TOTAL = 2, /* a total used up: close the channel */
};

/* Charges |n| bytes to every one of the |count| accounts, or to none:
 * returns NT_RELAY_SPEND_OK, or why not with the account that said no in
 * *over. A used-up total wins over a rate. */
int nt_relay_spend(nt_relay_budget *b, nt_relay_account *const *accts,
                   size_t count, size_t n, uint64_t now,
                   nt_relay_account **over);

/* Forgets kept accounts whose window has ended. */
void nt_relay_budget_expire(nt_relay_budget *b, uint64_t now);

/* Accounts held now (with channels or kept), for tests and status. */
size_t nt_relay_budget_accounts(const nt_relay_budget *b);

#endif
