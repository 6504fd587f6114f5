/* libFuzzer target: a client's known-brokers file
 * (src/trust/known_brokers.c), which anyone with the user's rights may
 * have edited. A refusal names the file; an entry that loads is found
 * again under its address, on its line, with its key (the first listing
 * counts). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/textfile.h"
#include "trust/known_brokers.h"

#define PATH "fuzz_known_brokers"

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  char err[512], addr[NT_KNOWN_BROKERS_ADDR_MAX + 1];
  nt_known_broker known;
  int found;

  if (size > NT_KNOWN_BROKERS_MAX_BYTES || memchr(data, 0, size)) {
    return 0; /* nt_textfile_read refuses these */
  }
  err[0] = '\0';
  if (nt_known_brokers_find(PATH, text, size, "broker.example:10000", &found,
                            &known, err, sizeof(err)) != 0) {
    if (found || strncmp(err, PATH ":", sizeof(PATH)) != 0) {
      abort();
    }
    return 0;
  }
  /* The file loads: its first entry is found where it is. */
  size_t pos = 0, linelen;
  const char *line;
  unsigned lineno = 0;
  while (nt_textfile_next_line(text, size, &pos, &line, &linelen)) {
    size_t i = 0, a;
    lineno++;
    while (i < linelen && is_blank(line[i])) {
      i++;
    }
    if (i == linelen || line[i] == '#') {
      continue;
    }
    a = i;
    while (i < linelen && !is_blank(line[i])) {
      i++;
    }
    if (i - a > NT_KNOWN_BROKERS_ADDR_MAX) {
      abort();
    }
    memcpy(addr, line + a, i - a);
    addr[i - a] = '\0';
    if (nt_known_brokers_find(PATH, text, size, addr, &found, &known, err,
                              sizeof(err)) != 0 ||
        !found || known.line != lineno) {
      abort();
    }
    /* Case does not matter in the address. */
    for (char *p = addr; *p; p++) {
      if (*p >= 'a' && *p <= 'z') {
        *p = (char)(*p - 'a' + 'A');
      }
    }
    if (nt_known_brokers_find(PATH, text, size, addr, &found, &known, err,
                              sizeof(err)) != 0 ||
        !found || known.line != lineno) {
      abort();
    }
    char msg[1024];
    nt_known_brokers_mismatch_message(msg, sizeof(msg), PATH, addr, &known,
                                      known.fingerprint);
    if (!strstr(msg, PATH)) {
      abort();
    }
    break;
  }
  return 0;
}
