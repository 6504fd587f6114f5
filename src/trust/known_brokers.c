#include "trust/known_brokers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "natter.h"
#include "base/paths.h"
#include "codec/spec.h"
#include "base/textfile.h"

#define WHAT "known brokers file"

int nt_known_brokers_default_path(char *out, size_t outlen) {
  return nt_default_key_path(out, outlen, NT_KNOWN_BROKERS_FILE);
}

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* HOST:PORT as text: printable, no spaces, bounded, ending in ":PORT". */
static int addr_valid(const char *addr, size_t len) {
  const char *colon;
  char port[8];
  size_t plen;

  if (len == 0 || len > NT_KNOWN_BROKERS_ADDR_MAX || addr[0] == '#') {
    return 0;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)addr[i];
    if (c <= ' ' || c >= 0x7f) {
      return 0;
    }
  }
  colon = memrchr(addr, ':', len);
  if (colon == NULL || colon == addr) {
    return 0;
  }
  plen = len - (size_t)(colon + 1 - addr);
  if (plen == 0 || plen >= sizeof(port)) {
    return 0;
  }
  memcpy(port, colon + 1, plen);
  port[plen] = '\0';
  return nt_port_parse(port) != 0;
}

/* Called for each entry in file order; returns non-zero to stop. */
typedef int (*entry_fn)(const char *addr, size_t addrlen,
                        const uint8_t *fingerprint, unsigned line,
                        void *user_data);

/* Checks every line of |text| and calls |fn| per entry. Returns 0 or
 * NATTER_ERR_INVALID with `FILE:LINE: reason` in |err|; *pcount (may be
 * NULL) receives the number of entries. */
static int parse(const char *path, const char *text, size_t len, entry_fn fn,
                 void *user_data, size_t *pcount, char *err, size_t errlen) {
  size_t pos = 0, linelen, count = 0;
  const char *line;
  unsigned lineno = 0;
  int stopped = 0;

  while (nt_textfile_next_line(text, len, &pos, &line, &linelen)) {
    const char *addr, *fp_text;
    size_t i = 0, addrlen, fplen;
    char fpbuf[2 * NT_FINGERPRINT_HEX_LEN];
    uint8_t fp[NT_FINGERPRINT_LEN];

    lineno++;
    if (linelen > NT_KNOWN_BROKERS_MAX_LINE) {
      nt_textfile_set_err(err, errlen, "%s:%u: line longer than %d bytes", path,
                          lineno, NT_KNOWN_BROKERS_MAX_LINE);
      return NATTER_ERR_INVALID;
    }
    while (i < linelen && is_blank(line[i])) {
      i++;
    }
    if (i == linelen || line[i] == '#') {
      continue;
    }
    addr = line + i;
    while (i < linelen && !is_blank(line[i])) {
      i++;
    }
    addrlen = (size_t)(line + i - addr);
    while (i < linelen && is_blank(line[i])) {
      i++;
    }
    fp_text = line + i;
    while (i < linelen && !is_blank(line[i])) {
      i++;
    }
    fplen = (size_t)(line + i - fp_text);
    while (i < linelen && is_blank(line[i])) {
      i++;
    }
    if (!addr_valid(addr, addrlen)) {
      nt_textfile_set_err(err, errlen,
                          "%s:%u: expected HOST:PORT FINGERPRINT; the "
                          "address is not HOST:PORT",
                          path, lineno);
      return NATTER_ERR_INVALID;
    }
    if (fplen == 0 || fplen >= sizeof(fpbuf) || i != linelen ||
        (memcpy(fpbuf, fp_text, fplen), fpbuf[fplen] = '\0',
         nt_fingerprint_parse(fp, fpbuf) != 0)) {
      nt_textfile_set_err(err, errlen,
                          "%s:%u: expected HOST:PORT FINGERPRINT; the second "
                          "field must be a key fingerprint (64 hex digits) "
                          "and nothing may follow it",
                          path, lineno);
      return NATTER_ERR_INVALID;
    }
    if (++count > NT_KNOWN_BROKERS_MAX_ENTRIES) {
      nt_textfile_set_err(err, errlen,
                          "%s:%u: more than %d entries: remove brokers you no "
                          "longer use",
                          path, lineno, NT_KNOWN_BROKERS_MAX_ENTRIES);
      return NATTER_ERR_INVALID;
    }
    if (!stopped && fn != NULL) {
      stopped = fn(addr, addrlen, fp, lineno, user_data);
    }
  }
  if (pcount != NULL) {
    *pcount = count;
  }
  return 0;
}

typedef struct find_ctx {
  const char *addr;
  size_t addrlen;
  int found;
  nt_known_broker known;
} find_ctx;

static int find_entry(const char *addr, size_t addrlen,
                      const uint8_t *fingerprint, unsigned line,
                      void *user_data) {
  find_ctx *ctx = user_data;

  if (addrlen != ctx->addrlen || strncasecmp(addr, ctx->addr, addrlen) != 0) {
    return 0;
  }
  ctx->found = 1;
  memcpy(ctx->known.fingerprint, fingerprint, NT_FINGERPRINT_LEN);
  ctx->known.line = line;
  return 1; /* the first line counts */
}

/* Reads and parses the file, looking for |addr|. *ptext (may be NULL)
 * keeps the contents for a rewrite; a missing file reads as empty. */
static int read_and_find(const char *path, const char *addr, find_ctx *ctx,
                         char **ptext, size_t *plen, size_t *pcount, char *err,
                         size_t errlen) {
  char *text = NULL;
  size_t len = 0;
  int rv;

  memset(ctx, 0, sizeof(*ctx));
  ctx->addr = addr;
  ctx->addrlen = strlen(addr);
  if (!addr_valid(addr, ctx->addrlen)) {
    nt_textfile_set_err(err, errlen,
                        "broker address \"%.*s\" cannot be remembered: "
                        "expected HOST:PORT",
                        (int)(ctx->addrlen > 80 ? 80 : ctx->addrlen), addr);
    return NATTER_ERR_INVALID;
  }
  rv = nt_textfile_read(path, WHAT, NT_KNOWN_BROKERS_MAX_BYTES, &text, &len,
                        NULL, err, errlen);
  if (rv < 0) {
    return rv;
  }
  if (rv == 0) {
    rv = parse(path, text, len, find_entry, ctx, pcount, err, errlen);
  } else { /* no file yet */
    rv = 0;
    if (pcount != NULL) {
      *pcount = 0;
    }
  }
  if (rv == 0 && ptext != NULL) {
    *ptext = text;
    *plen = len;
  } else {
    free(text);
  }
  return rv;
}

int nt_known_brokers_lookup(const char *path, const char *addr, int *found,
                            nt_known_broker *known, char *err, size_t errlen) {
  find_ctx ctx;
  int rv = read_and_find(path, addr, &ctx, NULL, NULL, NULL, err, errlen);

  *found = 0;
  if (rv == 0 && ctx.found) {
    *found = 1;
    *known = ctx.known;
  }
  return rv;
}

int nt_known_brokers_find(const char *path, const char *text, size_t len,
                          const char *addr, int *found, nt_known_broker *known,
                          char *err, size_t errlen) {
  find_ctx ctx;
  int rv;

  memset(&ctx, 0, sizeof(ctx));
  ctx.addr = addr;
  ctx.addrlen = strlen(addr);
  rv = parse(path, text, len, find_entry, &ctx, NULL, err, errlen);
  *found = rv == 0 && ctx.found;
  if (*found) {
    *known = ctx.known;
  }
  return rv;
}

void nt_known_brokers_mismatch_message(char *out, size_t outlen,
                                       const char *path, const char *addr,
                                       const nt_known_broker *known,
                                       const uint8_t *seen) {
  char was[NT_FINGERPRINT_HEX_LEN + 1], now[NT_FINGERPRINT_HEX_LEN + 1];

  nt_fingerprint_hex(known->fingerprint, was);
  nt_fingerprint_hex(seen, now);
  nt_textfile_set_err(out, outlen,
                      "broker %s presented key %s, but %s:%u remembers key "
                      "%s for it: someone may be intercepting the connection, "
                      "or the broker's key was replaced; if its operator "
                      "confirms the new key, delete that line (or pass "
                      "-broker-key %s)",
                      addr, now, path, known->line, was, now);
}

int nt_known_brokers_add(const char *path, const char *addr,
                         const uint8_t *fingerprint, char *err, size_t errlen) {
  static const char header[] =
      "# Brokers natter has met: HOST:PORT FINGERPRINT, one per line.\n"
      "# The first key a broker presents is remembered; a different key\n"
      "# later stops the client. Delete a line to accept a new key.\n";
  char hex[NT_FINGERPRINT_HEX_LEN + 1], *text = NULL, *out;
  size_t len = 0, count = 0, outlen;
  find_ctx ctx;
  int rv, n;

  rv = read_and_find(path, addr, &ctx, &text, &len, &count, err, errlen);
  if (rv != 0) {
    return rv;
  }
  if (ctx.found) {
    free(text);
    if (memcmp(ctx.known.fingerprint, fingerprint, NT_FINGERPRINT_LEN) == 0) {
      return 0;
    }
    nt_known_brokers_mismatch_message(err, errlen, path, addr, &ctx.known,
                                      fingerprint);
    return NATTER_ERR_KEY_MISMATCH;
  }
  if (count >= NT_KNOWN_BROKERS_MAX_ENTRIES) {
    free(text);
    nt_textfile_set_err(err, errlen,
                        "%s holds %d brokers already: remove brokers you no "
                        "longer use",
                        path, NT_KNOWN_BROKERS_MAX_ENTRIES);
    return NATTER_ERR_INVALID;
  }

  /* Old contents (or the header for a new file), a line end if the last
   * line lacks one, then the new entry. */
  nt_fingerprint_hex(fingerprint, hex);
  outlen =
      (text ? len : sizeof(header)) + 1 + strlen(addr) + 1 + sizeof(hex) + 1;
  out = malloc(outlen);
  if (out == NULL) {
    free(text);
    nt_textfile_set_err(err, errlen, "cannot update %s: out of memory", path);
    return NATTER_ERR_NOMEM;
  }
  n = snprintf(out, outlen, "%s%s%s %s\n", text ? text : header,
               (text && len > 0 && text[len - 1] != '\n') ? "\n" : "", addr,
               hex);
  free(text);
  /* The file must stay readable by nt_known_brokers_lookup. */
  if ((size_t)n > NT_KNOWN_BROKERS_MAX_BYTES) {
    free(out);
    nt_textfile_set_err(err, errlen,
                        "%s would grow past %u bytes: remove brokers you no "
                        "longer use",
                        path, NT_KNOWN_BROKERS_MAX_BYTES);
    return NATTER_ERR_INVALID;
  }
  rv = nt_textfile_write_atomic(path, WHAT, out, (size_t)n, err, errlen);
  free(out);
  return rv;
}
