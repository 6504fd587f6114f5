/* What the status pages and metrics of both roles share: who may read the
 * detailed page (admin keys) and the clocks they report in. The pages
 * themselves are rendered from snapshots (snapshot.h, status_render.h). */
#ifndef NT_STATUS_H
#define NT_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "natter.h"
#include "trust/tls.h"

#define NT_MAX_ADMINS 64

/* Keys allowed to read detailed status. */
typedef struct nt_admins {
  uint8_t fp[NT_MAX_ADMINS][NT_FINGERPRINT_LEN];
  size_t n;
} nt_admins;

/* Adds |hex| (natter_fingerprint_check form). Returns 0, or
 * NATTER_ERR_INVALID for a bad fingerprint or a full list. */
int nt_admins_add(nt_admins *a, const char *hex);
int nt_admins_contains(const nt_admins *a, const uint8_t *fp);

/* Wall clock in milliseconds since the Unix epoch. */
uint64_t nt_unix_ms(void);
/* The wall-clock time of monotonic instant |mono_ns| (in the past). */
uint64_t nt_unix_ms_of_monotonic(uint64_t mono_ns);

#endif
