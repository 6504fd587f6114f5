#include "quic/retry.h"

#include <ngtcp2/ngtcp2_crypto.h>
#include <string.h>

#include "base/addr.h"
#include "natter.h"
#include "trust/tls.h"

#define NS_PER_S 1000000000ull

int nt_retry_init(nt_retry *r, unsigned above_per_s) {
  memset(r, 0, sizeof(*r));
  r->above_per_s = above_per_s;
  nt_rate_init(&r->initials, above_per_s, 0);
  return nt_random_bytes(r->secret, sizeof(r->secret)) == 0 ? 0
                                                            : NATTER_ERR_NOMEM;
}

static nt_retry_verdict refuse(const ngtcp2_pkt_hd *hd, uint64_t code,
                               const char *why, uint8_t *out, size_t outcap,
                               size_t *outlen) {
  ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(
      out, outcap, hd->version, &hd->scid, &hd->dcid, code,
      (const uint8_t *)why, strlen(why));
  *outlen = n > 0 ? (size_t)n : 0;
  return NT_RETRY_ANSWERED;
}

nt_retry_verdict nt_retry_check(nt_retry *r, const nt_log *log,
                                const ngtcp2_pkt_hd *hd,
                                const struct sockaddr *from,
                                socklen_t fromlen, uint64_t now_ns,
                                ngtcp2_cid *odcid, uint8_t *out,
                                size_t outcap, size_t *outlen) {
  *outlen = 0;
  if (hd->token.len > 0 && hd->token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
    if (ngtcp2_crypto_verify_retry_token(
            odcid, hd->token.base, hd->token.len, r->secret,
            sizeof(r->secret), hd->version, from, fromlen, &hd->dcid,
            NT_RETRY_TOKEN_LIFETIME_S * NGTCP2_SECONDS,
            now_ns /* ngtcp2 timestamps are nanoseconds too */) != 0) {
      r->tokens_refused++;
      return refuse(hd, NGTCP2_INVALID_TOKEN, "invalid or expired token",
                    out, outcap, outlen);
    }
    return NT_RETRY_VALIDATED;
  }
  /* Anything else in the token field (NEW_TOKEN, which we never issue, or
   * junk) counts as no token. */
  if (!r->above_per_s ||
      nt_rate_take(&r->initials, r->above_per_s, r->above_per_s, now_ns)) {
    if (r->validating_since_ns &&
        now_ns - r->validating_since_ns > 10 * NS_PER_S) {
      r->validating_since_ns = 0; /* the episode is over */
    }
    return NT_RETRY_ACCEPT;
  }
  if (!r->validating_since_ns) {
    r->validating_since_ns = now_ns;
    nt_warn(log,
            "more than %u new connections a second: validating client "
            "addresses with QUIC Retry",
            r->above_per_s);
  }
  ngtcp2_cid scid;
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  scid.datalen = NT_RETRY_SCID_LEN;
  if (nt_random_bytes(scid.data, scid.datalen) != 0) {
    return NT_RETRY_ANSWERED; /* nothing to send; drop */
  }
  ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token(
      token, r->secret, sizeof(r->secret), hd->version, from, fromlen, &scid,
      &hd->dcid, now_ns);
  if (tl < 0) {
    return NT_RETRY_ANSWERED;
  }
  ngtcp2_ssize n = ngtcp2_crypto_write_retry(out, outcap, hd->version,
                                             &hd->scid, &scid, &hd->dcid,
                                             token, (size_t)tl);
  if (n > 0) {
    *outlen = (size_t)n;
    r->retries_sent++;
  }
  return NT_RETRY_ANSWERED;
}
