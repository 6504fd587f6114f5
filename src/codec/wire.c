/* Length-prefixed framing of control messages. Pure: bytes in, verdict out;
 * the caller owns the stream. */
#include "codec/wire.h"

#include <stdlib.h>
#include <string.h>

/* Decodes the length prefix at the start of |buf|. Returns 1 with *hdrlen
 * and *bodylen set, NT_WIRE_NEED_MORE, or a negative NT_WIRE_ERR_*. Errors
 * are reported as soon as the bytes present prove them, so a peer cannot
 * make us wait for a body we would refuse anyway.
 *
 * Only minimal encodings are accepted: each length then has exactly one
 * prefix, and a zero last group (0x80 0x00) is a sign of a broken encoder. */
static int decode_prefix(const uint8_t *buf, size_t len, size_t *hdrlen,
                         size_t *bodylen) {
  uint32_t value = 0;

  for (size_t i = 0; i < NT_WIRE_MAX_HDR; i++) {
    /* With a continuation bit on the second byte, the (non-zero) third adds
     * at least 1 << 14, so any bits already seen put us past the limit. This
     * is decided before looking at the third byte so that the verdict does
     * not depend on how the stream was split. */
    if (i == 2 && value + (1u << 14) > NT_WIRE_MAX_MSG) {
      return NT_WIRE_ERR_TOO_BIG;
    }
    if (i >= len) {
      return NT_WIRE_NEED_MORE;
    }
    if (i > 0 && buf[i] == 0) {
      return NT_WIRE_ERR_MALFORMED;
    }
    value |= (uint32_t)(buf[i] & 0x7f) << (7 * i);
    if ((buf[i] & 0x80) == 0) {
      if (value > NT_WIRE_MAX_MSG) {
        return NT_WIRE_ERR_TOO_BIG;
      }
      *hdrlen = i + 1;
      *bodylen = value;
      return 1;
    }
  }
  /* A continuation bit on the last byte we allow: a fourth byte would
   * follow. */
  return NT_WIRE_ERR_MALFORMED;
}

int nt_wire_frame_peek(const uint8_t *buf, size_t len, size_t *hdrlen,
                       size_t *bodylen) {
  size_t hdr, body;
  int rc = decode_prefix(buf, len, &hdr, &body);

  if (rc != 1) {
    return rc;
  }
  if (len - hdr < body) {
    return NT_WIRE_NEED_MORE;
  }
  *hdrlen = hdr;
  *bodylen = body;
  return 1;
}

size_t nt_wire_frame_header(uint8_t out[NT_WIRE_MAX_HDR], size_t bodylen) {
  size_t n = 0;

  /* Refusing here beats emitting a prefix every peer would reject. */
  if (bodylen > NT_WIRE_MAX_MSG) {
    return 0;
  }
  while (bodylen >= 0x80) {
    out[n++] = (uint8_t)(bodylen | 0x80);
    bodylen >>= 7;
  }
  out[n++] = (uint8_t)bodylen;
  return n;
}

void nt_wire_reader_reset(nt_wire_reader *r) {
  free(r->body);
  memset(r, 0, sizeof(*r));
}

int nt_wire_reader_feed(nt_wire_reader *r, const uint8_t *data, size_t len,
                        size_t *consumed, const uint8_t **body,
                        size_t *bodylen) {
  size_t taken = 0, hdr, want;

  *consumed = 0;
  *body = NULL;
  *bodylen = 0;
  if (r->error) {
    return r->error;
  }
  if (r->returned) {
    /* The frame handed out last time is done with: start the next. */
    int keep_error = r->error;
    nt_wire_reader_reset(r);
    r->error = keep_error;
  }
  /* Take the prefix one byte at a time: its length is only known once its
   * last byte is seen, and we must not swallow bytes past the frame. */
  while (!r->have_len) {
    int rc = decode_prefix(r->hdr, r->hdrlen, &hdr, &want);
    if (rc < 0) {
      r->error = rc;
      *consumed = taken;
      return rc;
    }
    if (rc == 1) {
      r->have_len = 1;
      r->bodylen = want;
      break;
    }
    if (taken == len) {
      *consumed = taken;
      return NT_WIRE_NEED_MORE;
    }
    r->hdr[r->hdrlen++] = data[taken++];
  }
  if (r->got == 0 && len - taken >= r->bodylen) {
    /* Whole in this input: no copy. */
    *body = data + taken;
    *bodylen = r->bodylen;
    *consumed = taken + r->bodylen;
    nt_wire_reader_reset(r);
    return 1;
  }
  if (taken == len) {
    *consumed = taken;
    return NT_WIRE_NEED_MORE; /* nothing of the body yet: hold nothing */
  }
  if (!r->body) {
    r->body = malloc(r->bodylen);
    if (!r->body) {
      r->error = NT_WIRE_ERR_NOMEM;
      *consumed = taken;
      return r->error;
    }
  }
  size_t n = r->bodylen - r->got;
  if (n > len - taken) {
    n = len - taken;
  }
  memcpy(r->body + r->got, data + taken, n);
  r->got += n;
  taken += n;
  *consumed = taken;
  if (r->got < r->bodylen) {
    return NT_WIRE_NEED_MORE;
  }
  *body = r->body;
  *bodylen = r->bodylen;
  r->returned = 1;
  return 1;
}

int nt_wire_reader_each(nt_wire_reader *r, const uint8_t *data, size_t len,
                        nt_wire_frame_fn fn, void *user_data) {
  size_t taken;
  return nt_wire_reader_until(r, data, len, fn, user_data, &taken);
}

int nt_wire_reader_until(nt_wire_reader *r, const uint8_t *data, size_t len,
                         nt_wire_frame_fn fn, void *user_data, size_t *taken) {
  *taken = 0;
  while (*taken < len) {
    size_t used, bodylen;
    const uint8_t *body;
    int rv = nt_wire_reader_feed(r, data + *taken, len - *taken, &used, &body,
                                 &bodylen);
    if (rv < 0) {
      return rv;
    }
    *taken += used;
    if (rv == 1 && fn(body, bodylen, user_data) != 0) {
      return 1;
    }
  }
  return 0;
}
