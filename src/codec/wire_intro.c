#include "codec/wire_intro.h"

#include <stdio.h>
#include <string.h>

#include "natter.h"
#include "codec/spec.h"
#include "codec/wire_msg.h"

int nt_wire_introduction(nt_introduction *out,
                         const Natter__Introduction *in) {
  memset(out, 0, sizeof(*out));
  if (!in || !nt_name_valid(in->peer) ||
      in->peer_key.len != NT_FINGERPRINT_LEN ||
      in->nonce.len != NT_PUNCH_NONCE_LEN ||
      in->n_local_addrs > NT_MAX_LOCAL_ADDRS) {
    return NATTER_ERR_PROTOCOL;
  }
  snprintf(out->name, sizeof(out->name), "%s", in->peer);
  out->request_id = in->request_id;
  out->refresh = in->refresh;
  out->check = in->check;
  memcpy(out->key, in->peer_key.data, NT_FINGERPRINT_LEN);
  memcpy(out->nonce, in->nonce.data, NT_PUNCH_NONCE_LEN);
  if (nt_wire_addr_to_sockaddr(&out->observed, in->observed) != 0) {
    memset(&out->observed, 0, sizeof(out->observed));
  }
  if (nt_wire_addr_to_sockaddr(&out->mapped, in->peer_mapped) != 0) {
    memset(&out->mapped, 0, sizeof(out->mapped));
  }
  out->mapping = in->peer_mapping;
  /* A relay needs both; a half-given one is no relay. The client fills
   * in the address (the broker's, with this port). */
  if (in->relay_token.len == NT_RELAY_TOKEN_LEN && in->relay_port &&
      in->relay_port <= 65535) {
    memcpy(out->relay_token, in->relay_token.data, NT_RELAY_TOKEN_LEN);
    out->relay_port = (uint16_t)in->relay_port;
  }
  for (size_t i = 0; i < in->n_local_addrs; i++) {
    if (nt_wire_addr_to_sockaddr(&out->local[out->nlocal],
                                 in->local_addrs[i]) == 0) {
      out->nlocal++;
    }
  }
  return 0;
}
