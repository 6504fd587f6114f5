/* The UDP flow datagram codec (src/codec/dgram.c): headers of every
 * varint length round-trip, and what a hostile peer can send is refused. */
#include <stdint.h>

#include "codec/dgram.h"
#include "test.h"

static void test_round_trip(void) {
  static const uint64_t ids[] = {0,         4,         60,
                                 64,        16380,     16384,
                                 (1u << 30) - 4,        UINT64_C(1) << 30,
                                 NT_DGRAM_MAX_STREAM_ID - 3};
  static const size_t lens[] = {1, 1, 1, 2, 2, 4, 4, 8, 8};
  for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    uint8_t buf[NT_DGRAM_MAX_HDR + 3];
    size_t n = nt_dgram_header(buf, ids[i]);
    CHECK(n == lens[i]);
    CHECK(nt_dgram_header_len(ids[i]) == n);
    memcpy(buf + n, "abc", 3);
    uint64_t id = 99;
    const uint8_t *p = NULL;
    size_t plen = 0;
    CHECK(nt_dgram_decode(buf, n + 3, &id, &p, &plen) == 0);
    CHECK(id == ids[i]);
    CHECK(p == buf + n && plen == 3 && memcmp(p, "abc", 3) == 0);
    /* An empty payload is a valid UDP datagram. */
    CHECK(nt_dgram_decode(buf, n, &id, &p, &plen) == 0 && plen == 0);
  }
}

static void test_refused(void) {
  uint8_t buf[16];
  uint64_t id;
  const uint8_t *p;
  size_t plen;
  CHECK(nt_dgram_header_len(NT_DGRAM_MAX_STREAM_ID + 1) == 0);
  CHECK(nt_dgram_header(buf, UINT64_MAX) == 0);
  CHECK(nt_dgram_decode(buf, 0, &id, &p, &plen) == -1); /* empty */
  buf[0] = 0xc0; /* an 8-byte varint cut short */
  CHECK(nt_dgram_decode(buf, 7, &id, &p, &plen) == -1);
  buf[0] = 0x40;
  CHECK(nt_dgram_decode(buf, 1, &id, &p, &plen) == -1);
  buf[0] = 2; /* a unidirectional stream's id */
  CHECK(nt_dgram_decode(buf, 5, &id, &p, &plen) == -1);
  buf[0] = 3;
  CHECK(nt_dgram_decode(buf, 5, &id, &p, &plen) == -1);
}

static void test_max_payload(void) {
  static uint8_t big[NT_DGRAM_MAX + 1];
  uint64_t id;
  const uint8_t *p;
  size_t plen;
  size_t n = nt_dgram_header(big, 8);
  CHECK(nt_dgram_decode(big, n + NT_DGRAM_MAX_PAYLOAD, &id, &p, &plen) == 0);
  CHECK(plen == NT_DGRAM_MAX_PAYLOAD);
  CHECK(nt_dgram_decode(big, n + NT_DGRAM_MAX_PAYLOAD + 1, &id, &p, &plen) ==
        -1);
}

int main(void) {
  static const nt_test_case cases[] = {{"round_trip", test_round_trip},
                                       {"refused", test_refused},
                                       {"max_payload", test_max_payload},
                                       {NULL, NULL}};
  return nt_test_run(cases);
}
