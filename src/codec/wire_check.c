#include "codec/wire_check.h"

#include <stdio.h>
#include <string.h>

#include "codec/mapping.h"
#include "natter.h"
#include "codec/spec.h"
#include "codec/wire_msg.h"

int nt_wire_check_report(nt_check_side *out, const Natter__CheckReport *in,
                         int need_peer) {
  memset(out, 0, sizeof(*out));
  if (!in || in->nonce.len != NT_PUNCH_NONCE_LEN ||
      in->n_probed > NT_PUNCH_MAX_CANDIDATES ||
      (in->outcome != NATTER__CHECK_REPORT__OUTCOME__CONNECTED &&
       in->outcome != NATTER__CHECK_REPORT__OUTCOME__FAILED &&
       in->outcome != NATTER__CHECK_REPORT__OUTCOME__REFUSED) ||
      (need_peer && !nt_name_valid(in->peer))) {
    return NATTER_ERR_PROTOCOL;
  }
  memcpy(out->nonce, in->nonce.data, NT_PUNCH_NONCE_LEN);
  out->outcome = (int)in->outcome;
  out->relayed = in->relayed ? 1 : 0;
  out->mapping =
      in->mapping == NATTER__NAT_MAPPING__MAPPING_ENDPOINT_INDEPENDENT
          ? NT_MAPPING_ENDPOINT_INDEPENDENT
      : in->mapping == NATTER__NAT_MAPPING__MAPPING_PER_DESTINATION
          ? NT_MAPPING_PER_DESTINATION
          : NT_MAPPING_UNKNOWN;
  for (size_t i = 0; i < in->n_probed; i++) {
    if (nt_wire_addr_to_sockaddr(&out->probed[out->nprobed], in->probed[i]) ==
        0) {
      out->nprobed++;
    }
  }
  out->probe_rounds = in->probe_rounds;
  out->probes_received = in->probes_received;
  out->replies_received = in->replies_received;
  if (nt_wire_addr_to_sockaddr(&out->probes_from, in->probes_from) != 0) {
    memset(&out->probes_from, 0, sizeof(out->probes_from));
  }
  if (nt_wire_addr_to_sockaddr(&out->observed, in->observed) != 0) {
    memset(&out->observed, 0, sizeof(out->observed));
  }
  out->elapsed_ms = in->elapsed_ms;
  if (need_peer) {
    snprintf(out->peer, sizeof(out->peer), "%s", in->peer);
  }
  return 0;
}

void nt_wire_check_encode(nt_wire_check_buf *buf, const nt_check_side *side) {
  Natter__CheckReport init = NATTER__CHECK_REPORT__INIT;
  size_t n = side->nprobed <= NT_PUNCH_MAX_CANDIDATES ? side->nprobed
                                                      : NT_PUNCH_MAX_CANDIDATES;
  buf->msg = init;
  buf->msg.nonce.data = (uint8_t *)side->nonce;
  buf->msg.nonce.len = NT_PUNCH_NONCE_LEN;
  buf->msg.outcome = (Natter__CheckReport__Outcome)side->outcome;
  buf->msg.relayed = side->relayed;
  buf->msg.mapping = (Natter__NatMapping)side->mapping;
  for (size_t i = 0; i < n; i++) {
    nt_wire_addr_from_sockaddr(&buf->probed[i], buf->ips[i],
                               (const struct sockaddr *)&side->probed[i].ss);
    buf->pprobed[i] = &buf->probed[i];
  }
  buf->msg.probed = buf->pprobed;
  buf->msg.n_probed = n;
  buf->msg.probe_rounds = side->probe_rounds;
  buf->msg.probes_received = side->probes_received;
  buf->msg.replies_received = side->replies_received;
  if (side->probes_from.len) {
    nt_wire_addr_from_sockaddr(&buf->from, buf->ips[NT_PUNCH_MAX_CANDIDATES],
                               (const struct sockaddr *)&side->probes_from.ss);
    buf->msg.probes_from = &buf->from;
  }
  buf->msg.elapsed_ms = side->elapsed_ms;
}
