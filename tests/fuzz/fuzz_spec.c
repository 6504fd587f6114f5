/* libFuzzer target: forward specs (src/codec/spec.c) as a user or a config file
 * gives them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "natter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *spec = malloc(size + 1);
  char err[256];
  int is_command, uses_stdio;
  if (!spec) {
    return 0;
  }
  memcpy(spec, data, size);
  spec[size] = '\0';
  err[0] = '\0';
  if (natter_spec_check(spec, &is_command, &uses_stdio, err, sizeof(err)) !=
          0 &&
      err[0] == '\0') {
    abort(); /* a refusal always says why */
  }
  free(spec);
  return 0;
}
