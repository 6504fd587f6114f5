#include "codec/cmdframe.h"

#include <string.h>

void nt_cmdframe_header(uint8_t out[NT_CMDFRAME_HDR], nt_cmdframe_channel ch,
                        size_t len) {
  out[0] = (uint8_t)ch;
  out[1] = (uint8_t)(len >> 8);
  out[2] = (uint8_t)len;
}

void nt_cmdframe_exit(uint8_t out[NT_CMDFRAME_HDR + NT_CMDFRAME_EXIT_LEN],
                      int status) {
  uint32_t st = (uint32_t)status;
  nt_cmdframe_header(out, NT_CMDFRAME_EXIT, NT_CMDFRAME_EXIT_LEN);
  out[3] = (uint8_t)(st >> 24);
  out[4] = (uint8_t)(st >> 16);
  out[5] = (uint8_t)(st >> 8);
  out[6] = (uint8_t)st;
}

void nt_cmdframe_decoder_init(nt_cmdframe_decoder *d) {
  memset(d, 0, sizeof(*d));
}

static nt_cmdframe_result fail(nt_cmdframe_decoder *d, nt_cmdframe_event *ev,
                               const char *why) {
  d->failed = why;
  ev->error = why;
  return NT_CMDFRAME_ERROR;
}

/* A complete header: check it against what its channel allows. */
static const char *check_header(nt_cmdframe_decoder *d) {
  d->channel = d->hdr[0];
  d->left = ((size_t)d->hdr[1] << 8) | d->hdr[2];
  switch (d->channel) {
  case NT_CMDFRAME_STDOUT:
  case NT_CMDFRAME_STDERR:
    return d->left > NT_CMDFRAME_MAX ? "output frame longer than 16384 bytes"
                                     : NULL;
  case NT_CMDFRAME_EXIT:
    return d->left != NT_CMDFRAME_EXIT_LEN ? "exit frame not 4 bytes long"
                                           : NULL;
  default:
    return "frame on an unknown channel";
  }
}

nt_cmdframe_result nt_cmdframe_decode(nt_cmdframe_decoder *d,
                                      const uint8_t *data, size_t len,
                                      size_t *used, nt_cmdframe_event *ev) {
  memset(ev, 0, sizeof(*ev));
  *used = 0;
  if (d->failed) {
    return fail(d, ev, d->failed);
  }
  while (len > 0) {
    if (d->exited) {
      return fail(d, ev, "data after the exit status");
    }
    if (d->hdr_len < NT_CMDFRAME_HDR) {
      size_t n = NT_CMDFRAME_HDR - d->hdr_len;
      n = n < len ? n : len;
      memcpy(d->hdr + d->hdr_len, data, n);
      d->hdr_len += n;
      *used += n;
      data += n;
      len -= n;
      if (d->hdr_len < NT_CMDFRAME_HDR) {
        break;
      }
      const char *bad = check_header(d);
      if (bad) {
        return fail(d, ev, bad);
      }
      if (d->left == 0) {
        d->hdr_len = 0; /* an empty output frame: legal, carries nothing */
      }
      continue;
    }
    size_t n = d->left < len ? d->left : len;
    d->left -= n;
    *used += n;
    if (d->channel != NT_CMDFRAME_EXIT) {
      ev->channel = (nt_cmdframe_channel)d->channel;
      ev->data = data;
      ev->len = n;
      if (d->left == 0) {
        d->hdr_len = 0;
      }
      return NT_CMDFRAME_DATA;
    }
    /* check_header fixed the exit frame at 4 bytes and the decoder takes
     * one exit frame only, so status_len + n <= 4. */
    memcpy(d->status + d->status_len, data, n);
    d->status_len += n;
    data += n;
    len -= n;
    if (d->left > 0) {
      break;
    }
    d->hdr_len = 0;
    uint32_t st = ((uint32_t)d->status[0] << 24) |
                  ((uint32_t)d->status[1] << 16) |
                  ((uint32_t)d->status[2] << 8) | d->status[3];
    if (st > NT_CMDFRAME_EXIT_MAX) {
      return fail(d, ev, "exit status out of range");
    }
    d->exited = 1;
    ev->channel = NT_CMDFRAME_EXIT;
    ev->exit_status = (int)st;
    return NT_CMDFRAME_EXITED;
  }
  return NT_CMDFRAME_NEED_MORE;
}

const char *nt_cmdframe_finish(const nt_cmdframe_decoder *d) {
  if (d->failed) {
    return d->failed;
  }
  if (d->hdr_len > 0) {
    return "the stream ended inside a frame";
  }
  if (!d->exited) {
    return "the stream ended without an exit status";
  }
  return NULL;
}
