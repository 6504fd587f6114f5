/* libFuzzer target: the header exchange of every forwarded stream
 * (src/codec/stream_header.c), as a hostile opener or listener sends it: a
 * StreamOpen body and a StreamOpenResult body, decoded and checked, and a
 * decoded request encoded again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/stream_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nt_open_request req;
  if (size > NT_WIRE_MAX_MSG) {
    return 0; /* the framing never hands out more */
  }
  if (nt_open_request_decode(&req, data, size) == 0) {
    if (strlen(req.host) > NT_HOST_MAX ||
        (req.argv && (req.argc == 0 || req.argc > NT_OPEN_MAX_ARGV ||
                      req.argv[req.argc] != NULL)) ||
        (!req.argv && req.port == 0) || (req.udp && req.argv)) {
      abort();
    }
    uint8_t buf[NT_STREAM_HEADER_MAX];
    nt_open_request_encode(buf, req.host, req.port, req.argv);
    if (req.udp) {
      /* A UDP flow's request survives a round trip as one. */
      nt_open_request again;
      size_t n = nt_open_request_encode_udp(buf, req.host, req.port);
      size_t hdr = 0; /* the varint length prefix */
      while (hdr + 1 < n && hdr < NT_WIRE_MAX_HDR && (buf[hdr] & 0x80)) {
        hdr++;
      }
      hdr++;
      if (n == 0 || nt_open_request_decode(&again, buf + hdr, n - hdr) != 0 ||
          !again.udp || again.port != req.port ||
          strcmp(again.host, req.host) != 0) {
        abort();
      }
      nt_open_request_clear(&again);
    }
    nt_open_request_clear(&req);
  }
  char msg[NT_OPEN_MAX_MESSAGE + 1];
  int err;
  if (nt_open_result_decode(data, size, &err, msg, sizeof(msg)) == 0) {
    for (const char *p = msg; *p; p++) {
      if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
        abort(); /* only printable text is passed on */
      }
    }
    if (err > 0) {
      abort();
    }
  }
  /* A raw code comes only from an answer that decodes. */
  if (nt_open_result_code(data, size) >= 0 &&
      nt_open_result_decode(data, size, &err, msg, sizeof(msg)) != 0) {
    abort();
  }
  return 0;
}
