/* Admin keys and clocks for the status pages (status.h). */
#include "status/status.h"

#include <string.h>
#include <time.h>

#include "quic/endpoint.h"

int nt_admins_add(nt_admins *a, const char *hex) {
  uint8_t fp[NT_FINGERPRINT_LEN];
  if (!a || !hex || nt_fingerprint_parse(fp, hex) != 0 ||
      a->n >= NT_MAX_ADMINS) {
    return NATTER_ERR_INVALID;
  }
  if (!nt_admins_contains(a, fp)) {
    memcpy(a->fp[a->n++], fp, sizeof(fp));
  }
  return 0;
}

int nt_admins_contains(const nt_admins *a, const uint8_t *fp) {
  for (size_t i = 0; fp && i < a->n; i++) {
    if (memcmp(a->fp[i], fp, NT_FINGERPRINT_LEN) == 0) {
      return 1;
    }
  }
  return 0;
}

uint64_t nt_unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t nt_unix_ms_of_monotonic(uint64_t mono_ns) {
  uint64_t now_ns = nt_monotonic_ns();
  uint64_t ago_ms = now_ns > mono_ns ? (now_ns - mono_ns) / 1000000 : 0;
  uint64_t now_ms = nt_unix_ms();
  return now_ms > ago_ms ? now_ms - ago_ms : 0;
}
