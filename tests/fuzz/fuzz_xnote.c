/* libFuzzer target: the notes between brokers (src/codec/xnote.c), as a
 * hostile database or broker could NOTIFY them. The input is the payload
 * as text, or (first byte odd) bytes to be hex-encoded first, which
 * reaches the protobuf decoder at once. A decoded note must keep every
 * promised bound and encode again to a note that decodes the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/xnote.h"

static void check(const nt_xnote *n) {
  if (n->kind < NT_XNOTE_ASK || n->kind > NT_XNOTE_REFRESHED || n->xid == 0 ||
      !nt_xnote_broker_id_ok(n->from)) {
    abort();
  }
  if ((n->kind == NT_XNOTE_ASK || n->kind >= NT_XNOTE_NOTICE) &&
      !nt_name_valid(n->peer)) {
    abort();
  }
  if (n->kind == NT_XNOTE_REFUSED &&
      (n->code == NT_CODE_OK || strlen(n->message) > NT_CONTROL_TEXT_MAX)) {
    abort();
  }
  if (n->intro.nlocal > NT_MAX_LOCAL_ADDRS ||
      n->report.nprobed > NT_PUNCH_MAX_CANDIDATES) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char text[NT_XNOTE_TEXT_MAX + 64];
  static const char hex[] = "0123456789abcdef";
  size_t len;
  nt_xnote n, back;

  if (size < 1) {
    return 0;
  }
  if (data[0] & 1) {
    if ((size - 1) * 2 > sizeof(text)) {
      return 0;
    }
    for (size_t i = 1; i < size; i++) {
      text[2 * (i - 1)] = hex[data[i] >> 4];
      text[2 * (i - 1) + 1] = hex[data[i] & 15];
    }
    len = (size - 1) * 2;
  } else {
    if (size - 1 > sizeof(text)) {
      return 0;
    }
    memcpy(text, data + 1, size - 1);
    len = size - 1;
  }
  if (nt_xnote_decode(&n, text, len) != 0) {
    return 0;
  }
  check(&n);
  char again[NT_XNOTE_TEXT_MAX + 1];
  size_t alen = nt_xnote_encode(again, &n);
  if (alen == 0 || nt_xnote_decode(&back, again, alen) != 0 ||
      back.kind != n.kind || back.xid != n.xid ||
      strcmp(back.from, n.from) != 0 || strcmp(back.peer, n.peer) != 0) {
    abort();
  }
  return 0;
}
