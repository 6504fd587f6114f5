/* BrokerNote: packing, hex, and the checks of every field (xnote.h). */
#include "codec/xnote.h"

#include <stdio.h>
#include <string.h>

#include "codec/wire_pb.h"
#include "natter.h"

int nt_xnote_broker_id_ok(const char *s) {
  size_t n = 0;
  if (!s) {
    return 0;
  }
  for (; s[n]; n++) {
    if (n >= NT_XNOTE_BROKER_MAX ||
        !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) {
      return 0;
    }
  }
  return n > 0;
}

static int kind_ok(int kind) {
  return kind >= NT_XNOTE_ASK && kind <= NT_XNOTE_REFRESHED;
}

/* The side a kind carries: the Control type, or NONE for none. */
static nt_control_type side_type(int kind) {
  switch (kind) {
  case NT_XNOTE_ASK:
  case NT_XNOTE_ADMITTED:
  case NT_XNOTE_NOTICE:
  case NT_XNOTE_REFRESH:
  case NT_XNOTE_REFRESHED:
    return NT_CONTROL_INTRODUCTION;
  case NT_XNOTE_REPORT:
    return NT_CONTROL_CHECK_REPORT;
  default:
    return NT_CONTROL_NONE;
  }
}

size_t nt_xnote_encode(char *out, const nt_xnote *n) {
  Natter__BrokerNote msg = NATTER__BROKER_NOTE__INIT;
  static const char hex[] = "0123456789abcdef";
  uint8_t side[NT_CONTROL_FRAME_MAX];
  uint8_t packed[NT_XNOTE_MAX];
  size_t hdr = 0, body = 0;

  out[0] = '\0';
  if (!kind_ok(n->kind) || n->xid == 0 || !nt_xnote_broker_id_ok(n->from)) {
    return 0;
  }
  msg.version = NT_XNOTE_VERSION;
  msg.kind = (Natter__BrokerNote__Kind)n->kind;
  msg.xid = n->xid;
  msg.from = (char *)n->from;
  msg.peer = (char *)n->peer;
  msg.check = n->check ? 1 : 0;
  msg.relay = n->relay ? 1 : 0;
  msg.code = (Natter__Code)n->code;
  msg.message = (char *)n->message;
  if (side_type(n->kind) != NT_CONTROL_NONE) {
    nt_control c = {.type = side_type(n->kind)};
    if (c.type == NT_CONTROL_INTRODUCTION) {
      c.u.introduction = n->intro;
    } else {
      c.u.check_report = n->report;
    }
    size_t len = nt_control_encode(side, &c);
    if (len == 0 || nt_wire_frame_peek(side, len, &hdr, &body) != 1 ||
        body > NT_XNOTE_SIDE_MAX) {
      return 0;
    }
    msg.side.data = side + hdr;
    msg.side.len = body;
  }
  size_t plen = natter__broker_note__get_packed_size(&msg);
  if (plen > NT_XNOTE_MAX) {
    return 0;
  }
  natter__broker_note__pack(&msg, packed);
  for (size_t i = 0; i < plen; i++) {
    out[2 * i] = hex[packed[i] >> 4];
    out[2 * i + 1] = hex[packed[i] & 15];
  }
  out[2 * plen] = '\0';
  return 2 * plen;
}

static int nibble(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

int nt_xnote_decode(nt_xnote *out, const char *text, size_t len) {
  uint8_t packed[NT_XNOTE_MAX];
  Natter__BrokerNote *msg;
  int rv = NATTER_ERR_PROTOCOL;

  memset(out, 0, sizeof(*out));
  if (len == 0 || len % 2 || len > NT_XNOTE_TEXT_MAX) {
    return NATTER_ERR_PROTOCOL;
  }
  for (size_t i = 0; i < len / 2; i++) {
    int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return NATTER_ERR_PROTOCOL;
    }
    packed[i] = (uint8_t)(hi << 4 | lo);
  }
  msg = natter__broker_note__unpack(NULL, len / 2, packed);
  if (!msg) {
    return NATTER_ERR_PROTOCOL;
  }
  if (msg->version != NT_XNOTE_VERSION || !kind_ok((int)msg->kind) ||
      msg->xid == 0 || !nt_xnote_broker_id_ok(msg->from) ||
      msg->side.len > NT_XNOTE_SIDE_MAX) {
    goto out;
  }
  out->kind = (nt_xnote_kind)msg->kind;
  out->xid = msg->xid;
  snprintf(out->from, sizeof(out->from), "%s", msg->from);
  switch (out->kind) {
  case NT_XNOTE_ASK:
  case NT_XNOTE_NOTICE:
  case NT_XNOTE_REFRESH:
  case NT_XNOTE_REFRESHED:
    if (!msg->peer || !nt_name_valid(msg->peer)) {
      goto out;
    }
    snprintf(out->peer, sizeof(out->peer), "%s", msg->peer);
    out->check = msg->check ? 1 : 0;
    out->relay = msg->relay ? 1 : 0;
    break;
  case NT_XNOTE_REFUSED:
    if ((int)msg->code <= NT_CODE_OK || (int)msg->code > NT_CODE_UNAUTHORIZED ||
        !nt_wire_string_ok(msg->message, NT_CONTROL_TEXT_MAX)) {
      goto out;
    }
    out->code = (nt_control_code)msg->code;
    snprintf(out->message, sizeof(out->message), "%s", msg->message);
    break;
  default:
    break;
  }
  nt_control_type want = side_type(out->kind);
  if (want != NT_CONTROL_NONE) {
    nt_control c;
    if (msg->side.len == 0 ||
        nt_control_decode(&c, msg->side.data, msg->side.len) != 0 ||
        c.type != want) {
      goto out;
    }
    if (want == NT_CONTROL_INTRODUCTION) {
      out->intro = c.u.introduction;
    } else {
      out->report = c.u.check_report;
    }
  } else if (msg->side.len != 0) {
    goto out;
  }
  rv = 0;
out:
  natter__broker_note__free_unpacked(msg, NULL);
  if (rv != 0) {
    memset(out, 0, sizeof(*out));
  }
  return rv;
}
