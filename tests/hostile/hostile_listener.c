/* The misbehaviours of natter-hostile: each answers a remote command's
 * StreamOpen with bytes an honest listener never sends. */
#include "hostile.h"

#include <string.h>

#include "codec/cmdframe.h"
#include "codec/stream_header.h"

static void send_result(nt_stream *s, nt_open_code code, const char *msg) {
  uint8_t frame[NT_STREAM_HEADER_MAX];
  size_t len = nt_open_result_encode(frame, code, msg);
  if (len) {
    nt_stream_write(s, frame, len);
  }
}

static void send_raw_frame(nt_stream *s, int channel, unsigned len_field,
                           const char *payload, size_t len) {
  uint8_t hdr[NT_CMDFRAME_HDR] = {(uint8_t)channel, (uint8_t)(len_field >> 8),
                                  (uint8_t)len_field};
  nt_stream_write(s, hdr, sizeof(hdr));
  if (len) {
    nt_stream_write(s, (const uint8_t *)payload, len);
  }
}

static void send_exit_raw(nt_stream *s, uint32_t status) {
  uint8_t st[4] = {(uint8_t)(status >> 24), (uint8_t)(status >> 16),
                   (uint8_t)(status >> 8), (uint8_t)status};
  send_raw_frame(s, NT_CMDFRAME_EXIT, 4, (const char *)st, sizeof(st));
}

int nt_hostile_command(nt_stream *s, char *const *argv, size_t argc) {
  static const char filler[256] = {0};
  const char *name = argc > 0 ? argv[0] : "";

  if (strncmp(name, "hostile-", 8) != 0) {
    return 0;
  }
  name += 8;
  if (strcmp(name, "bad-result") == 0) {
    uint8_t junk[] = {5, 0xff, 0xff, 0xff, 0xff, 0xff};
    nt_stream_write(s, junk, sizeof(junk));
    return 1;
  }
  if (strcmp(name, "forged-message") == 0) {
    send_result(s, NT_OPEN_DENIED,
                "evil\nnatter: root checked in from 192.0.2.1\x1b[2J");
    return 1;
  }
  send_result(s, NT_OPEN_OK, "");
  if (strcmp(name, "double-exit") == 0) {
    /* The attack of issue 8: a second and third exit frame. */
    send_raw_frame(s, NT_CMDFRAME_STDOUT, 3, "hi\n", 3);
    send_exit_raw(s, 0);
    send_exit_raw(s, 0xfffffff0u);
    send_exit_raw(s, 0x41414141u);
  } else if (strcmp(name, "oversize") == 0) {
    send_raw_frame(s, NT_CMDFRAME_STDOUT, 0xffff, filler, sizeof(filler));
  } else if (strcmp(name, "channel") == 0) {
    send_raw_frame(s, 9, 3, "abc", 3);
  } else if (strcmp(name, "truncated") == 0) {
    send_raw_frame(s, NT_CMDFRAME_STDOUT, 100, filler, 10);
    nt_stream_shutdown_write(s);
  } else if (strcmp(name, "no-exit") == 0) {
    send_raw_frame(s, NT_CMDFRAME_STDOUT, 8, "partial\n", 8);
    nt_stream_shutdown_write(s);
  } else if (strcmp(name, "bad-status") == 0) {
    send_exit_raw(s, 0x7fffffffu);
  } else if (strcmp(name, "exit-then-stdout") == 0) {
    send_exit_raw(s, 0);
    send_raw_frame(s, NT_CMDFRAME_STDOUT, 4, "late", 4);
  } else if (strcmp(name, "long-exit") == 0) {
    send_raw_frame(s, NT_CMDFRAME_EXIT, 8, filler, 8);
  }
  return 1;
}
