/* QUIC address validation under load (RFC 9000 §8.1.2): while Initials
 * arrive faster than the endpoint's threshold, a new one without a token
 * gets a Retry and no state; the client proves its address by coming back
 * with the token. Endpoint-internal (endpoint.c). */
#ifndef NT_RETRY_H
#define NT_RETRY_H

#include <ngtcp2/ngtcp2.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/admission.h"
#include "base/log.h"

#define NT_RETRY_SECRET_LEN 32
#define NT_RETRY_TOKEN_LIFETIME_S 10
#define NT_RETRY_SCID_LEN 16 /* the endpoint's connection ID length */

typedef struct nt_retry {
  uint8_t secret[NT_RETRY_SECRET_LEN]; /* random per endpoint */
  unsigned above_per_s;                /* 0: never send Retry */
  nt_rate initials;                    /* Initials that needed no token */
  uint64_t validating_since_ns;        /* logged once per episode */
  uint64_t retries_sent, tokens_refused;
} nt_retry;

/* Returns 0 or NATTER_ERR_NOMEM (no randomness). */
int nt_retry_init(nt_retry *r, unsigned above_per_s);

typedef enum nt_retry_verdict {
  NT_RETRY_ACCEPT = 0,   /* go on, no validation needed */
  NT_RETRY_VALIDATED,    /* go on; *odcid is the client's original DCID */
  NT_RETRY_ANSWERED      /* a Retry or a refusal is in |out|; no state */
} nt_retry_verdict;

/* Decides for one Initial |hd| from |from|. With NT_RETRY_ANSWERED, |out|
 * (|outcap| >= 256 bytes) holds *outlen bytes to send back to |from|. */
nt_retry_verdict nt_retry_check(nt_retry *r, const nt_log *log,
                                const ngtcp2_pkt_hd *hd,
                                const struct sockaddr *from,
                                socklen_t fromlen, uint64_t now_ns,
                                ngtcp2_cid *odcid, uint8_t *out,
                                size_t outcap, size_t *outlen);

#endif
