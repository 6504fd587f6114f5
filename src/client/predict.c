#include "client/predict.h"

#include <string.h>

#include "codec/mapping.h"

#define MS 1000000ull
#define PORTS (65536u - NT_PREDICT_PORT_MIN) /* 64512 = 2^10 * 3^2 * 7 */

/* The hard side probes from every socket at these times after it starts:
 * once opens the mappings; the repeats cover a lost packet. */
static const uint64_t hard_rounds_ms[] = {0, 1000, 2500};
#define HARD_ROUNDS (sizeof(hard_rounds_ms) / sizeof(hard_rounds_ms[0]))

nt_predict_role nt_predict_role_for(int self, int peer) {
  if (self == NT_MAPPING_PER_DESTINATION &&
      peer == NT_MAPPING_ENDPOINT_INDEPENDENT) {
    return NT_PREDICT_HARD;
  }
  if (self == NT_MAPPING_ENDPOINT_INDEPENDENT &&
      peer == NT_MAPPING_PER_DESTINATION) {
    return NT_PREDICT_EASY;
  }
  return NT_PREDICT_NONE;
}

void nt_predict_init(nt_predict *pr, nt_predict_role role, uint64_t now_ns,
                     const uint8_t random[8]) {
  uint32_t a, b;
  memset(pr, 0, sizeof(*pr));
  pr->role = role;
  pr->next_ns = UINT64_MAX;
  if (role == NT_PREDICT_HARD) {
    pr->next_ns = now_ns + NT_PREDICT_HARD_START_MS * MS;
  } else if (role == NT_PREDICT_EASY) {
    pr->next_ns = now_ns + NT_PREDICT_EASY_START_MS * MS;
  }
  memcpy(&a, random, 4);
  memcpy(&b, random + 4, 4);
  pr->offset = a % PORTS;
  /* A stride coprime with 64512 (odd, not a multiple of 3 or 7) visits
   * every port once before any repeats. */
  uint32_t s = (b % PORTS) | 1;
  while (s % 3 == 0 || s % 7 == 0) {
    s += 2;
  }
  pr->stride = s % PORTS;
}

uint64_t nt_predict_next(const nt_predict *pr) {
  return pr->next_ns;
}

size_t nt_predict_due(nt_predict *pr, uint64_t now_ns, uint16_t *ports,
                      size_t max) {
  if (pr->role == NT_PREDICT_NONE || now_ns < pr->next_ns ||
      pr->next_ns == UINT64_MAX) {
    return 0;
  }
  if (pr->role == NT_PREDICT_HARD) {
    uint64_t start = pr->next_ns - hard_rounds_ms[pr->rounds] * MS;
    pr->rounds++;
    pr->next_ns = pr->rounds < HARD_ROUNDS
                      ? start + hard_rounds_ms[pr->rounds] * MS
                      : UINT64_MAX;
    return 1;
  }
  size_t per_tick = NT_PREDICT_RATE * NT_PREDICT_TICK_MS / 1000;
  size_t n = 0;
  while (n < max && n < per_tick && pr->sent < NT_PREDICT_BUDGET) {
    uint32_t k = (pr->offset + (uint64_t)pr->sent * pr->stride) % PORTS;
    ports[n++] = (uint16_t)(NT_PREDICT_PORT_MIN + k);
    pr->sent++;
  }
  uint64_t tick = pr->tick_ms ? pr->tick_ms : NT_PREDICT_TICK_MS;
  pr->next_ns = pr->sent < NT_PREDICT_BUDGET ? now_ns + tick * MS : UINT64_MAX;
  return n;
}
