/* libFuzzer target: the configuration file parser (cli/config.c) and its
 * shell-like command splitter (cli/argv.c), on any bytes. A refusal always says why,
 * with the file name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cli_config c;
  char err[512];
  cli_config_init(&c);
  err[0] = '\0';
  if (cli_config_parse(&c, (const char *)data, size, "fuzz.conf", err,
                       sizeof(err)) != 0 &&
      strncmp(err, "fuzz.conf", 9) != 0) {
    abort();
  }
  cli_config_free(&c);

  char *s = malloc(size + 1);
  if (s) {
    char **argv = NULL;
    size_t argc;
    memcpy(s, data, size);
    s[size] = '\0';
    if (cli_split_argv(s, &argv, &argc, err, sizeof(err)) == 0) {
      if (argv[argc] != NULL) {
        abort();
      }
      cli_argv_free(argv);
    } else if (argv) {
      abort();
    }
    free(s);
  }
  return 0;
}
