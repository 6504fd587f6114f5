/* The dashboard's memory of the last hour: a ring of NT_HISTORY_POINTS
 * samples of a role's running totals, one every NT_HISTORY_INTERVAL_MS,
 * the oldest overwritten first. Its size is fixed when it is declared
 * (NT_HISTORY_POINTS * sizeof(nt_history_point) = 360 * 40 bytes, about
 * 14 kB a process) and nothing is allocated. A point keeps totals, not
 * rates: whoever draws a chart takes the difference of two neighbours, so
 * a missed sample loses resolution, never bytes.
 * Pure: no clock of its own (callers pass the time). */
#ifndef NT_HISTORY_H
#define NT_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define NT_HISTORY_POINTS 360
#define NT_HISTORY_INTERVAL_MS 10000

typedef struct nt_history_point {
  uint64_t unix_ms;        /* when the point was taken */
  uint64_t bytes_received; /* running totals at that time */
  uint64_t bytes_sent;
  uint64_t relayed_bytes; /* broker: relayed; client: through the relay */
  uint64_t count;         /* broker: clients checked in; client: peers up */
} nt_history_point;

typedef struct nt_history {
  nt_history_point points[NT_HISTORY_POINTS];
  size_t next; /* where the next point goes */
  size_t n;    /* points held, at most NT_HISTORY_POINTS */
} nt_history;

void nt_history_init(nt_history *h);
/* Keeps a copy of |p|; when full, the oldest point goes. */
void nt_history_add(nt_history *h, const nt_history_point *p);
size_t nt_history_count(const nt_history *h);
/* The |i|th point held, oldest first (i < nt_history_count), or NULL. */
const nt_history_point *nt_history_at(const nt_history *h, size_t i);

#endif
