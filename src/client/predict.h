/* Port prediction for a pair where one side's NAT is symmetric (a new
 * public port per destination, as the mapping check reported) and the
 * other's maps endpoint-independently: the birthday technique, as a
 * schedule free of I/O.
 *
 * The symmetric ("hard") side opens NT_PREDICT_SOCKETS extra sockets and
 * sends a probe from each to the other side's public address: its NAT
 * opens as many mappings, each letting that address in. The other
 * ("easy") side sends probes from its one socket to random ports of the
 * hard side's public address, each port once: with 256 open mappings
 * among 64512 ports, a probe hits one with p = 1/252, and the budget of
 * NT_PREDICT_BUDGET probes finds one with probability 1 - e^-9.9 (all but
 * certain when the hard NAT keeps the mappings open). Every probe is the
 * authenticated punch packet of the meeting (punch.h); nothing else is
 * answered. Plain punching gets the first NT_PREDICT_*_START_MS. */
#ifndef NT_PREDICT_H
#define NT_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#define NT_PREDICT_SOCKETS 256
#define NT_PREDICT_BUDGET 2500 /* easy side: probes per meeting */
#define NT_PREDICT_RATE 1000   /* easy side: probes a second at most */
#define NT_PREDICT_TICK_MS 10  /* ... sent every tick in a batch */
#define NT_PREDICT_HARD_START_MS 300
#define NT_PREDICT_EASY_START_MS 400 /* the hard side's mappings first */
#define NT_PREDICT_PORT_MIN 1024     /* NATs allocate from here up */

typedef enum nt_predict_role {
  NT_PREDICT_NONE = 0,
  NT_PREDICT_HARD, /* we are behind the symmetric NAT: open sockets */
  NT_PREDICT_EASY  /* the peer is: probe its random ports */
} nt_predict_role;

typedef struct nt_predict {
  nt_predict_role role;
  uint64_t next_ns;        /* next action; UINT64_MAX: done */
  unsigned rounds;         /* hard side: rounds of probes from every socket */
  uint32_t sent;           /* easy side: probes sent */
  uint32_t offset, stride; /* easy side: port order, a permutation */
  /* Easy side: ms between batches; 0: NT_PREDICT_TICK_MS (the caller may
   * halve it, doubling the rate, for a live connection's prediction). */
  uint32_t tick_ms;
} nt_predict;

/* The role for mappings |self| and |peer| (nt_nat_mapping values). */
nt_predict_role nt_predict_role_for(int self, int peer);

/* |random| seeds the port order (8 bytes). */
void nt_predict_init(nt_predict *pr, nt_predict_role role, uint64_t now_ns,
                     const uint8_t random[8]);

/* When nt_predict_due must run next; UINT64_MAX when nothing is left. */
uint64_t nt_predict_next(const nt_predict *pr);

/* What is due at |now_ns|. Hard side: returns 1 when every extra socket
 * should send a probe now (the first time: open them first), 0 if not.
 * Easy side: fills |ports| with up to |max| ports to probe now and
 * returns how many. */
size_t nt_predict_due(nt_predict *pr, uint64_t now_ns, uint16_t *ports,
                      size_t max);

#endif
