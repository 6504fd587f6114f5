/* libFuzzer target: the remote-command frame decoder (src/codec/cmdframe.c),
 * fed bytes from a hostile listener in pieces of fuzzer-chosen sizes. Checks
 * what the decoder promises: it never claims more than it was given, hands out
 * payload only from inside the input, never more than a frame allows, at most
 * one exit status, and stays failed once failed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/cmdframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nt_cmdframe_decoder d;
  size_t exits = 0;
  int failed = 0;

  if (size < 1) {
    return 0;
  }
  /* The first byte picks the piece size: the stream arrives in packets. */
  size_t step = (size_t)data[0] + 1;
  data++;
  size--;
  nt_cmdframe_decoder_init(&d);
  while (size > 0) {
    size_t chunk = size < step ? size : step;
    const uint8_t *p = data;
    size_t left = chunk;
    while (left > 0) {
      nt_cmdframe_event ev;
      size_t used;
      nt_cmdframe_result rv = nt_cmdframe_decode(&d, p, left, &used, &ev);
      if (used > left) {
        abort();
      }
      if (rv == NT_CMDFRAME_ERROR) {
        if (!ev.error) {
          abort();
        }
        failed = 1;
        break;
      }
      if (failed) {
        abort(); /* a failed decoder must stay failed */
      }
      if (rv == NT_CMDFRAME_DATA &&
          (ev.data < p || ev.data + ev.len > p + used ||
           ev.len > NT_CMDFRAME_MAX ||
           (ev.channel != NT_CMDFRAME_STDOUT &&
            ev.channel != NT_CMDFRAME_STDERR))) {
        abort();
      }
      if (rv == NT_CMDFRAME_EXITED &&
          (++exits > 1 || ev.exit_status < 0 ||
           ev.exit_status > NT_CMDFRAME_EXIT_MAX)) {
        abort();
      }
      if (rv == NT_CMDFRAME_NEED_MORE && used != left) {
        abort();
      }
      p += used;
      left -= used;
    }
    if (failed) {
      break;
    }
    data += chunk;
    size -= chunk;
  }
  const char *end = nt_cmdframe_finish(&d);
  if ((failed || exits == 0) && !end) {
    abort();
  }
  return 0;
}
