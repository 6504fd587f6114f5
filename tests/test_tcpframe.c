/* The TCP fallback's framing (src/codec/tcpframe.c): preambles and frames
 * round-trip, and every bad length, magic, version or target is refused. */
#include <string.h>

#include "codec/tcpframe.h"
#include "test.h"

static void test_preamble(void) {
  uint8_t p[NT_TCPFRAME_PREAMBLE_LEN];
  nt_tcpframe_preamble(p, NT_TCPFRAME_TO_ENDPOINT);
  CHECK(memcmp(p, "NATTER\x01\x01", sizeof(p)) == 0);
  CHECK(nt_tcpframe_preamble_decode(p) == NT_TCPFRAME_TO_ENDPOINT);
  nt_tcpframe_preamble(p, NT_TCPFRAME_TO_RELAY);
  CHECK(nt_tcpframe_preamble_decode(p) == NT_TCPFRAME_TO_RELAY);
  p[7] = 3; /* no such target */
  CHECK(nt_tcpframe_preamble_decode(p) == 0);
  p[7] = 0;
  CHECK(nt_tcpframe_preamble_decode(p) == 0);
  nt_tcpframe_preamble(p, NT_TCPFRAME_TO_RELAY);
  p[6] = 2; /* a later version */
  CHECK(nt_tcpframe_preamble_decode(p) == 0);
  CHECK(nt_tcpframe_preamble_decode((const uint8_t *)"GET / HT") == 0);
}

static void test_frames(void) {
  uint8_t buf[NT_TCPFRAME_HDR + 5];
  size_t len;
  nt_tcpframe_header(buf, 5);
  memcpy(buf + NT_TCPFRAME_HDR, "hello", 5);
  CHECK(buf[0] == 0 && buf[1] == 5);
  for (size_t have = 0; have < sizeof(buf); have++) {
    CHECK(nt_tcpframe_peek(buf, have, &len) == NT_TCPFRAME_NEED_MORE);
    CHECK(len == (have >= NT_TCPFRAME_HDR ? 5u : 0u));
  }
  CHECK(nt_tcpframe_peek(buf, sizeof(buf), &len) == 1);
  CHECK(len == 5);
  uint8_t hdr[NT_TCPFRAME_HDR];
  nt_tcpframe_header(hdr, NT_TCPFRAME_MAX);
  CHECK(nt_tcpframe_peek(hdr, sizeof(hdr), &len) == NT_TCPFRAME_NEED_MORE);
  CHECK(len == NT_TCPFRAME_MAX);
}

static void test_bad_lengths(void) {
  size_t len;
  const uint8_t zero[2] = {0, 0}, big[2] = {0xff, 0xff};
  CHECK(nt_tcpframe_peek(zero, 2, &len) == NT_TCPFRAME_ERR_LENGTH);
  CHECK(nt_tcpframe_peek(big, 2, &len) == NT_TCPFRAME_ERR_LENGTH);
  uint8_t over[2];
  nt_tcpframe_header(over, NT_TCPFRAME_MAX + 1);
  CHECK(nt_tcpframe_peek(over, 2, &len) == NT_TCPFRAME_ERR_LENGTH);
}

int main(void) {
  static const nt_test_case cases[] = {{"preamble", test_preamble},
                                       {"frames", test_frames},
                                       {"bad_lengths", test_bad_lengths},
                                       {NULL, NULL}};
  return nt_test_run(cases);
}
