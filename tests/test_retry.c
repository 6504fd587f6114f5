/* QUIC address validation under load (src/quic/retry.c): Initials within the
 * rate pass; past it, a Retry and no state; a client's valid token comes
 * back as its original DCID; a forged, tampered, expired or re-addressed
 * token is refused with a stateless close. */
#include <arpa/inet.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <string.h>

#include "quic/retry.h"
#include "test.h"

#define S 1000000000ull

static struct sockaddr_in addr(const char *ip, uint16_t port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

static ngtcp2_pkt_hd initial(uint8_t fill) {
  ngtcp2_pkt_hd hd;
  memset(&hd, 0, sizeof(hd));
  hd.version = NGTCP2_PROTO_VER_V1;
  hd.dcid.datalen = 16;
  memset(hd.dcid.data, fill, 16);
  hd.scid.datalen = 16;
  memset(hd.scid.data, fill + 1, 16);
  return hd;
}

static nt_log quiet = {NULL, NATTER_LOG_ERROR, NULL};

static void test_rate(void) {
  nt_retry r;
  uint8_t out[256];
  size_t outlen;
  ngtcp2_cid odcid;
  struct sockaddr_in from = addr("192.0.2.7", 4000);
  ngtcp2_pkt_hd hd = initial(1);

  CHECK(nt_retry_init(&r, 3) == 0);
  uint64_t now = 100 * S;
  for (int i = 0; i < 3; i++) {
    CHECK(nt_retry_check(&r, &quiet, &hd, (struct sockaddr *)&from,
                         sizeof(from), now, &odcid, out, sizeof(out),
                         &outlen) == NT_RETRY_ACCEPT);
  }
  /* The fourth in the same second gets a Retry packet, smaller than the
   * 1200-byte Initial it answers. */
  CHECK(nt_retry_check(&r, &quiet, &hd, (struct sockaddr *)&from,
                       sizeof(from), now, &odcid, out, sizeof(out),
                       &outlen) == NT_RETRY_ANSWERED);
  CHECK(outlen > 0 && outlen < 200);
  CHECK((out[0] & 0xf0) == 0xf0); /* long header, type Retry (v1: 3) */
  CHECK(r.retries_sent == 1);
  /* A second later the rate allows new ones again. */
  CHECK(nt_retry_check(&r, &quiet, &hd, (struct sockaddr *)&from,
                       sizeof(from), now + S, &odcid, out, sizeof(out),
                       &outlen) == NT_RETRY_ACCEPT);

  nt_retry never;
  CHECK(nt_retry_init(&never, 0) == 0);
  for (int i = 0; i < 1000; i++) {
    CHECK(nt_retry_check(&never, &quiet, &hd, (struct sockaddr *)&from,
                         sizeof(from), now, &odcid, out, sizeof(out),
                         &outlen) == NT_RETRY_ACCEPT);
  }
}

static void test_tokens(void) {
  nt_retry r;
  uint8_t out[256], token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  size_t outlen;
  ngtcp2_cid odcid, retry_scid;
  struct sockaddr_in from = addr("192.0.2.7", 4000);
  struct sockaddr_in other = addr("192.0.2.8", 4000);
  ngtcp2_pkt_hd first = initial(1), again = initial(9);
  uint64_t now = 100 * S;

  CHECK(nt_retry_init(&r, 1) == 0);
  retry_scid = again.dcid; /* the client's second Initial goes to it */
  ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token(
      token, r.secret, sizeof(r.secret), NGTCP2_PROTO_VER_V1,
      (struct sockaddr *)&from, sizeof(from), &retry_scid, &first.dcid, now);
  CHECK(tl > 0);
  again.token.base = token;
  again.token.len = (size_t)tl;

  CHECK(nt_retry_check(&r, &quiet, &again, (struct sockaddr *)&from,
                       sizeof(from), now + S, &odcid, out, sizeof(out),
                       &outlen) == NT_RETRY_VALIDATED);
  CHECK(odcid.datalen == first.dcid.datalen &&
        memcmp(odcid.data, first.dcid.data, odcid.datalen) == 0);

  /* From another address, tampered, or too old: a stateless close. */
  CHECK(nt_retry_check(&r, &quiet, &again, (struct sockaddr *)&other,
                       sizeof(other), now + S, &odcid, out, sizeof(out),
                       &outlen) == NT_RETRY_ANSWERED);
  CHECK(outlen > 0);
  token[tl / 2] ^= 1;
  CHECK(nt_retry_check(&r, &quiet, &again, (struct sockaddr *)&from,
                       sizeof(from), now + S, &odcid, out, sizeof(out),
                       &outlen) == NT_RETRY_ANSWERED);
  token[tl / 2] ^= 1;
  CHECK(nt_retry_check(&r, &quiet, &again, (struct sockaddr *)&from,
                       sizeof(from), now + (NT_RETRY_TOKEN_LIFETIME_S + 1) * S,
                       &odcid, out, sizeof(out),
                       &outlen) == NT_RETRY_ANSWERED);
  CHECK(r.tokens_refused == 3);

  /* Another endpoint's secret does not validate it. */
  nt_retry r2;
  CHECK(nt_retry_init(&r2, 1) == 0);
  CHECK(nt_retry_check(&r2, &quiet, &again, (struct sockaddr *)&from,
                       sizeof(from), now + S, &odcid, out, sizeof(out),
                       &outlen) == NT_RETRY_ANSWERED);
}

int main(void) {
  static const nt_test_case cases[] = {{"rate", test_rate},
                                       {"tokens", test_tokens},
                                       {NULL, NULL}};
  return nt_test_run(cases);
}
