#include "trust/token.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "natter.h"
#include "base/textfile.h"

int nt_token_check(const char *token, size_t len, const char *what, char *err,
                   size_t errlen) {
  if (len < NT_TOKEN_MIN || len > NT_TOKEN_MAX) {
    nt_textfile_set_err(err, errlen,
                        "token from %s has %zu characters; it needs %d to %d: "
                        "generate one with `head -c 32 /dev/urandom | base64`",
                        what, len, NT_TOKEN_MIN, NT_TOKEN_MAX);
    return NATTER_ERR_INVALID;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)token[i];
    if (c <= ' ' || c >= 0x7f) {
      nt_textfile_set_err(err, errlen,
                          "token from %s holds a space, control or non-ASCII "
                          "character at position %zu: use printable ASCII",
                          what, i + 1);
      return NATTER_ERR_INVALID;
    }
  }
  return 0;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

int nt_token_parse(char *out, size_t outlen, const char *text, size_t len,
                   const char *what, char *err, size_t errlen) {
  const char *line = text;
  size_t pos = 0, linelen = 0;
  int rv;

  (void)nt_textfile_next_line(text, len, &pos, &line, &linelen);
  while (linelen > 0 && is_space(line[0])) {
    line++;
    linelen--;
  }
  while (linelen > 0 && is_space(line[linelen - 1])) {
    linelen--;
  }
  rv = nt_token_check(line, linelen, what, err, errlen);
  if (rv == 0 && linelen + 1 > outlen) {
    nt_textfile_set_err(err, errlen, "token from %s does not fit", what);
    rv = NATTER_ERR_INVALID;
  }
  if (rv == 0) {
    memcpy(out, line, linelen);
    out[linelen] = '\0';
  }
  return rv;
}

int nt_token_read_file(char *out, size_t outlen, const char *path, char *warn,
                       size_t warnlen, char *err, size_t errlen) {
  struct stat st;
  size_t len;
  char *text, what[512];
  int rv;

  nt_textfile_set_err(warn, warnlen, "%s", "");
  rv = nt_textfile_read(path, "token file", NT_TOKEN_FILE_MAX_BYTES, &text,
                        &len, &st, err, errlen);
  if (rv == 1) {
    nt_textfile_set_err(err, errlen, "token file %s does not exist", path);
    return NATTER_ERR_INVALID;
  }
  if (rv != 0) {
    return rv;
  }
  snprintf(what, sizeof(what), "file %s", path);
  rv = nt_token_parse(out, outlen, text, len, what, err, errlen);
  if (rv == 0) {
    if (st.st_mode & 077) {
      nt_textfile_set_err(warn, warnlen,
                          "token file %s is readable by other users (mode "
                          "%03o): chmod 600 %s",
                          path, (unsigned)(st.st_mode & 0777), path);
    }
  }
  /* The buffer held the secret. */
  explicit_bzero(text, len);
  free(text);
  return rv;
}

int nt_token_from_env(char *out, size_t outlen, const char *var, char *err,
                      size_t errlen) {
  const char *value = var ? getenv(var) : NULL;
  char what[128];
  size_t len;
  int rv;

  if (value == NULL) {
    nt_textfile_set_err(err, errlen,
                        "environment variable %s is not set: export the "
                        "broker token in it",
                        var ? var : "(none)");
    return NATTER_ERR_INVALID;
  }
  len = strlen(value);
  snprintf(what, sizeof(what), "environment variable %s", var);
  rv = nt_token_check(value, len, what, err, errlen);
  if (rv == 0 && len + 1 > outlen) {
    nt_textfile_set_err(err, errlen, "token from %s does not fit", what);
    rv = NATTER_ERR_INVALID;
  }
  if (rv == 0) {
    memcpy(out, value, len + 1);
  }
  return rv;
}

int nt_token_equal(const char *expected, size_t elen, const char *presented,
                   size_t plen) {
  /* volatile: keeps the compiler from turning the loop into an early-exit
   * memcmp. Bytes past |plen| are compared against 0 and the length
   * difference is folded in, so a short guess costs the same time. */
  volatile uint8_t diff = (uint8_t)(elen != plen);

  for (size_t i = 0; i < elen; i++) {
    uint8_t p = i < plen ? (uint8_t)presented[i] : 0;
    diff |= (uint8_t)((uint8_t)expected[i] ^ p);
  }
  return diff == 0;
}
