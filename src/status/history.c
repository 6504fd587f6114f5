/* The dashboard's ring of samples (history.h). */
#include "status/history.h"

#include <string.h>

void nt_history_init(nt_history *h) {
  memset(h, 0, sizeof(*h));
}

void nt_history_add(nt_history *h, const nt_history_point *p) {
  h->points[h->next] = *p;
  h->next = (h->next + 1) % NT_HISTORY_POINTS;
  if (h->n < NT_HISTORY_POINTS) {
    h->n++;
  }
}

size_t nt_history_count(const nt_history *h) {
  return h->n;
}

const nt_history_point *nt_history_at(const nt_history *h, size_t i) {
  if (i >= h->n) {
    return NULL;
  }
  /* The oldest is at |next| once the ring has wrapped, else at 0. */
  size_t first = h->n < NT_HISTORY_POINTS ? 0 : h->next;
  return &h->points[(first + i) % NT_HISTORY_POINTS];
}
