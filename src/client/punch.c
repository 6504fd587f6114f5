#include "client/punch.h"

#include <string.h>

#define MS 1000000ull

static const uint8_t magic[4] = {0x00, 'N', 'T', 'P'};
#define PUNCH_VERSION 1

/* Quick probes first (a mapping may open at any moment once the other
 * side has sent its own), then one a second until the deadline. */
static uint64_t round_offset_ns(unsigned round) {
  static const uint64_t early_ms[] = {0, 50, 100, 200, 400, 700, 1000};
  const unsigned nearly = sizeof(early_ms) / sizeof(early_ms[0]);
  if (round < nearly) {
    return early_ms[round] * MS;
  }
  return (1000 + (uint64_t)(round - nearly + 1) * 1000) * MS;
}

void nt_punch_init(nt_punch *p, const uint8_t *nonce, const nt_addr *cands,
                   size_t ncands, uint64_t now_ns, uint64_t timeout_ns) {
  memset(p, 0, sizeof(*p));
  memcpy(p->nonce, nonce, NT_PUNCH_NONCE_LEN);
  if (ncands > NT_PUNCH_MAX_CANDIDATES) {
    ncands = NT_PUNCH_MAX_CANDIDATES;
  }
  memcpy(p->candidates, cands, ncands * sizeof(*cands));
  p->ncandidates = ncands;
  p->start_ns = now_ns;
  p->deadline_ns = now_ns + timeout_ns;
  p->next_ns = now_ns;
}

uint64_t nt_punch_next_expiry(const nt_punch *p) {
  return p->next_ns < p->deadline_ns ? p->next_ns : p->deadline_ns;
}

int nt_punch_on_expiry(nt_punch *p, uint64_t now_ns, nt_punch_send_fn send,
                       void *user_data) {
  uint8_t pkt[NT_PUNCH_PACKET_LEN];

  if (now_ns >= p->deadline_ns) {
    return 1;
  }
  if (now_ns >= p->next_ns) {
    size_t len = nt_punch_encode(pkt, NT_PUNCH_PROBE, p->nonce);
    for (size_t i = 0; i < p->ncandidates; i++) {
      send(pkt, len, &p->candidates[i], user_data);
    }
    p->rounds++;
    p->next_ns = p->start_ns + round_offset_ns(p->rounds);
    if (p->next_ns <= now_ns) {
      p->next_ns = now_ns + 1000 * MS;
    }
  }
  return 0;
}

size_t nt_punch_encode(uint8_t *buf, int type, const uint8_t *nonce) {
  memcpy(buf, magic, sizeof(magic));
  buf[4] = PUNCH_VERSION;
  buf[5] = (uint8_t)type;
  memcpy(buf + 6, nonce, NT_PUNCH_NONCE_LEN);
  return NT_PUNCH_PACKET_LEN;
}

/* Bounds: exactly NT_PUNCH_PACKET_LEN bytes with our magic and version, and
 * a known type; the nonce is only compared, never trusted further. */
int nt_punch_decode(const uint8_t *buf, size_t len, uint8_t *nonce) {
  if (len != NT_PUNCH_PACKET_LEN || memcmp(buf, magic, sizeof(magic)) != 0 ||
      buf[4] != PUNCH_VERSION) {
    return 0;
  }
  if (buf[5] != NT_PUNCH_PROBE && buf[5] != NT_PUNCH_REPLY) {
    return 0;
  }
  memcpy(nonce, buf + 6, NT_PUNCH_NONCE_LEN);
  return buf[5];
}
