/* The broker's ring of introductions (intro_log.h). */
#include "broker/intro_log.h"

#include <string.h>

#include "codec/mapping.h"

void nt_intro_log_init(nt_intro_log *l) {
  memset(l, 0, sizeof(*l));
}

void nt_intro_log_add(nt_intro_log *l, const nt_intro_entry *e) {
  l->entries[l->next] = *e;
  l->next = (l->next + 1) % NT_INTRO_LOG_ENTRIES;
  if (l->n < NT_INTRO_LOG_ENTRIES) {
    l->n++;
  }
}

size_t nt_intro_log_count(const nt_intro_log *l) {
  return l->n;
}

const nt_intro_entry *nt_intro_log_at(const nt_intro_log *l, size_t i) {
  if (i >= l->n) {
    return NULL;
  }
  /* The newest is just before |next|, wrapped or not. */
  size_t at = (l->next + NT_INTRO_LOG_ENTRIES - 1 - i) % NT_INTRO_LOG_ENTRIES;
  return &l->entries[at];
}

int nt_intro_needs_prediction(int mapping_a, int mapping_b) {
  return (mapping_a == NT_MAPPING_PER_DESTINATION &&
          mapping_b == NT_MAPPING_ENDPOINT_INDEPENDENT) ||
         (mapping_a == NT_MAPPING_ENDPOINT_INDEPENDENT &&
          mapping_b == NT_MAPPING_PER_DESTINATION);
}

const char *nt_intro_outcome_name(int outcome) {
  static const char *const names[NT_INTRO_OUTCOMES] = {
      [NT_INTRO_INTRODUCED] = "introduced",
      [NT_INTRO_REFUSED] = "refused",
      [NT_INTRO_TIMEOUT] = "timeout",
      [NT_INTRO_UNKNOWN] = "unknown",
      [NT_INTRO_NOT_LISTENING] = "not listening",
      [NT_INTRO_RATE_LIMITED] = "rate-limited"};
  return outcome >= 0 && outcome < NT_INTRO_OUTCOMES ? names[outcome] : "?";
}
