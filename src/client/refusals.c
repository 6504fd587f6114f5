/* A listener's refusals, counted and logged within bounds (refusals.h). */
#include "client/refusals.h"

#include <stdio.h>
#include <string.h>

void nt_refusals_init(nt_refusals *r) {
  memset(r, 0, sizeof(*r));
}

static nt_refusal_entry *find(nt_refusals *r, const char *name,
                              const uint8_t *key) {
  for (size_t i = 0; i < NT_REFUSALS_TRACKED; i++) {
    nt_refusal_entry *e = &r->entries[i];
    if (e->name[0] && strcmp(e->name, name) == 0 &&
        memcmp(e->key, key, NT_FINGERPRINT_LEN) == 0) {
      return e;
    }
  }
  return NULL;
}

/* A free entry, else the one whose line is oldest. */
static nt_refusal_entry *take(nt_refusals *r) {
  nt_refusal_entry *oldest = &r->entries[0];
  for (size_t i = 0; i < NT_REFUSALS_TRACKED; i++) {
    nt_refusal_entry *e = &r->entries[i];
    if (!e->name[0]) {
      return e;
    }
    if (e->logged_ns < oldest->logged_ns) {
      oldest = e;
    }
  }
  return oldest;
}

int nt_refusals_note(nt_refusals *r, const char *name, const uint8_t *key,
                     uint64_t now_ns, uint64_t *same, uint64_t *others) {
  nt_refusal_entry *e = find(r, name, key);
  r->total++;
  if (e && now_ns - e->logged_ns < NT_REFUSALS_INTERVAL_NS) {
    e->suppressed++;
    return 0;
  }
  if (r->lines == 0 || now_ns - r->window_ns >= NT_REFUSALS_INTERVAL_NS) {
    r->window_ns = now_ns;
    r->lines = 0;
  }
  if (r->lines >= NT_REFUSALS_LINES) {
    if (e) {
      e->suppressed++;
    } else {
      r->unlogged++;
    }
    return 0;
  }
  r->lines++;
  if (!e) {
    e = take(r);
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    memcpy(e->key, key, NT_FINGERPRINT_LEN);
  }
  e->logged_ns = now_ns;
  *same = e->suppressed;
  e->suppressed = 0;
  *others = r->unlogged;
  r->unlogged = 0;
  return 1;
}
