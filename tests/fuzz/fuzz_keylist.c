/* libFuzzer target: a closed broker's admitted-keys file
 * (src/trust/keylist.c) as an operator, or whoever can write it, may
 * leave it. A refusal names the file; a list that loads answers for
 * every line it holds: the line's key gives the line's name and back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/textfile.h"
#include "trust/keylist.h"

#define PATH "fuzz.keys"

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data;
  nt_keylist *list = NULL;
  char err[512];

  /* nt_keylist_load reads through nt_textfile_read, which refuses NULs. */
  if (size > NT_KEYLIST_MAX_BYTES || memchr(data, 0, size)) {
    return 0;
  }
  err[0] = '\0';
  int rv = nt_keylist_parse(&list, PATH, text, size, err, sizeof(err));
  if (rv != 0) {
    if (list != NULL || strncmp(err, PATH ":", sizeof(PATH)) != 0) {
      abort();
    }
    return 0;
  }
  size_t pos = 0, linelen, entries = 0;
  const char *line;
  while (nt_textfile_next_line(text, size, &pos, &line, &linelen)) {
    size_t i = 0, f0, f1;
    char hex[200], name[200];
    uint8_t fp[NT_FINGERPRINT_LEN];
    while (i < linelen && is_blank(line[i])) {
      i++;
    }
    if (i == linelen || line[i] == '#') {
      continue;
    }
    f0 = i;
    while (i < linelen && !is_blank(line[i])) {
      i++;
    }
    if (i - f0 >= sizeof(hex)) {
      abort(); /* a line that loaded has a fingerprint there */
    }
    memcpy(hex, line + f0, i - f0);
    hex[i - f0] = '\0';
    while (i < linelen && is_blank(line[i])) {
      i++;
    }
    f1 = i;
    while (i < linelen && !is_blank(line[i])) {
      i++;
    }
    if (i - f1 >= sizeof(name) || nt_fingerprint_parse(fp, hex) != 0) {
      abort();
    }
    memcpy(name, line + f1, i - f1);
    name[i - f1] = '\0';
    const char *listed = nt_keylist_lookup(list, fp);
    const uint8_t *key = nt_keylist_lookup_name(list, name);
    if (!listed || strcmp(listed, name) != 0 || !key ||
        memcmp(key, fp, NT_FINGERPRINT_LEN) != 0) {
      abort();
    }
    entries++;
  }
  if (entries != nt_keylist_count(list)) {
    abort();
  }
  nt_keylist_free(list);
  return 0;
}
