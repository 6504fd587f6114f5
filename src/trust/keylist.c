#include "trust/keylist.h"

#include <stdlib.h>
#include <string.h>

#include "natter.h"
#include "codec/spec.h"
#include "base/textfile.h"

typedef struct keylist_entry {
  uint8_t fingerprint[NT_FINGERPRINT_LEN];
  char name[NT_NAME_MAX + 1];
  unsigned line; /* for messages about duplicates */
} keylist_entry;

/* Two open-addressing tables of entry indices + 1 (0: empty slot), one by
 * fingerprint and one by name; sized to at least twice the entries, so
 * probes stay short. */
struct nt_keylist {
  keylist_entry *entries;
  size_t count;
  size_t mask; /* table size - 1 */
  uint32_t *by_fp;
  uint32_t *by_name;
};

/* Every byte counts: fingerprints are SHA-256 output, but the file is
 * text anyone may have written, and listed keys that share their first
 * bytes would otherwise all probe from one slot (quadratic loading). */
static size_t hash_fp(const uint8_t *fp) {
  uint32_t h = 2166136261u;

  for (size_t i = 0; i < NT_FINGERPRINT_LEN; i++) {
    h = (h ^ fp[i]) * 16777619u;
  }
  return h;
}

static size_t hash_name(const char *name) {
  uint32_t h = 2166136261u;

  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h = (h ^ *p) * 16777619u;
  }
  return h;
}

static uint32_t find_fp(const nt_keylist *list, const uint8_t *fp) {
  for (size_t i = hash_fp(fp) & list->mask;; i = (i + 1) & list->mask) {
    uint32_t slot = list->by_fp[i];
    if (slot == 0 || memcmp(list->entries[slot - 1].fingerprint, fp,
                            NT_FINGERPRINT_LEN) == 0) {
      return slot;
    }
  }
}

static uint32_t find_name(const nt_keylist *list, const char *name) {
  for (size_t i = hash_name(name) & list->mask;; i = (i + 1) & list->mask) {
    uint32_t slot = list->by_name[i];
    if (slot == 0 || strcmp(list->entries[slot - 1].name, name) == 0) {
      return slot;
    }
  }
}

static void insert_slot(uint32_t *table, size_t mask, size_t hash,
                        uint32_t slot) {
  size_t i = hash & mask;

  while (table[i] != 0) {
    i = (i + 1) & mask;
  }
  table[i] = slot;
}

void nt_keylist_free(nt_keylist *list) {
  if (list == NULL) {
    return;
  }
  free(list->entries);
  free(list->by_fp);
  free(list->by_name);
  free(list);
}

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* Splits |line| into at most three space-separated fields; returns how
 * many it found (3 means "too many"). */
static int split_fields(const char *line, size_t len, const char *field[3],
                        size_t flen[3]) {
  size_t i = 0;
  int n = 0;

  while (n < 3) {
    while (i < len && is_blank(line[i])) {
      i++;
    }
    if (i == len) {
      break;
    }
    field[n] = line + i;
    while (i < len && !is_blank(line[i])) {
      i++;
    }
    flen[n] = (size_t)(line + i - field[n]);
    n++;
  }
  return n;
}

/* Parses one non-comment line into |e|. Returns 0 or -1 with the reason
 * (without the FILE:LINE: prefix) in |why|. */
static int parse_line(const char *line, size_t len, keylist_entry *e, char *why,
                      size_t whylen) {
  const char *field[3];
  size_t flen[3];
  char buf[2 * NT_FINGERPRINT_HEX_LEN];
  int n = split_fields(line, len, field, flen);

  if (n < 2) {
    nt_textfile_set_err(why, whylen,
                        "expected FINGERPRINT NAME, found one field");
    return -1;
  }
  if (n > 2) {
    nt_textfile_set_err(why, whylen,
                        "expected FINGERPRINT NAME, found more after the "
                        "name (comments go on their own line, after '#')");
    return -1;
  }
  if (flen[0] >= sizeof(buf) ||
      (memcpy(buf, field[0], flen[0]), buf[flen[0]] = '\0',
       nt_fingerprint_parse(e->fingerprint, buf) != 0)) {
    nt_textfile_set_err(why, whylen,
                        "the first field is not a key fingerprint (64 hex "
                        "digits, ':' between pairs allowed, as natter logs "
                        "it at start)");
    return -1;
  }
  if (flen[1] > NT_NAME_MAX ||
      (memcpy(e->name, field[1], flen[1]), e->name[flen[1]] = '\0',
       !nt_name_valid(e->name))) {
    nt_textfile_set_err(why, whylen,
                        "the name is invalid: use 1 to %d of A-Z a-z 0-9 . _ -",
                        NT_NAME_MAX);
    return -1;
  }
  return 0;
}

int nt_keylist_parse(nt_keylist **plist, const char *path, const char *text,
                     size_t len, char *err, size_t errlen) {
  nt_keylist *list;
  size_t pos = 0, cap = 16, tablesize = 16;
  unsigned lineno = 0;
  const char *line;
  size_t linelen;
  char why[256];

  *plist = NULL;
  list = calloc(1, sizeof(*list));
  if (list == NULL ||
      (list->entries = malloc(cap * sizeof(*list->entries))) == NULL) {
    goto nomem;
  }
  while (nt_textfile_next_line(text, len, &pos, &line, &linelen)) {
    size_t skip = 0;

    lineno++;
    if (linelen > NT_KEYLIST_MAX_LINE) {
      nt_textfile_set_err(err, errlen, "%s:%u: line longer than %d bytes", path,
                          lineno, NT_KEYLIST_MAX_LINE);
      goto invalid;
    }
    while (skip < linelen && is_blank(line[skip])) {
      skip++;
    }
    if (skip == linelen || line[skip] == '#') {
      continue;
    }
    if (list->count == NT_KEYLIST_MAX_ENTRIES) {
      nt_textfile_set_err(err, errlen, "%s:%u: more than %d keys", path, lineno,
                          NT_KEYLIST_MAX_ENTRIES);
      goto invalid;
    }
    if (list->count == cap) {
      keylist_entry *grown =
          realloc(list->entries, 2 * cap * sizeof(*list->entries));
      if (grown == NULL) {
        goto nomem;
      }
      list->entries = grown;
      cap *= 2;
    }
    if (parse_line(line, linelen, &list->entries[list->count], why,
                   sizeof(why)) != 0) {
      nt_textfile_set_err(err, errlen, "%s:%u: %s", path, lineno, why);
      goto invalid;
    }
    list->entries[list->count].line = lineno;
    list->count++;
  }

  while (tablesize < 2 * list->count) {
    tablesize *= 2;
  }
  list->mask = tablesize - 1;
  list->by_fp = calloc(tablesize, sizeof(*list->by_fp));
  list->by_name = calloc(tablesize, sizeof(*list->by_name));
  if (list->by_fp == NULL || list->by_name == NULL) {
    goto nomem;
  }
  /* Duplicates show up while the tables are filled in file order, so the
   * message names the later line and the earlier one. */
  for (size_t i = 0; i < list->count; i++) {
    const keylist_entry *e = &list->entries[i];
    uint32_t other = find_fp(list, e->fingerprint);

    if (other == 0) {
      other = find_name(list, e->name);
    }
    if (other != 0) {
      const keylist_entry *o = &list->entries[other - 1];
      int same_key =
          memcmp(o->fingerprint, e->fingerprint, NT_FINGERPRINT_LEN) == 0;
      nt_textfile_set_err(err, errlen,
                          "%s:%u: %s already listed on line %u: each key has "
                          "one name and each name one key",
                          path, e->line, same_key ? "key" : "name", o->line);
      goto invalid;
    }
    insert_slot(list->by_fp, list->mask, hash_fp(e->fingerprint),
                (uint32_t)i + 1);
    insert_slot(list->by_name, list->mask, hash_name(e->name), (uint32_t)i + 1);
  }
  *plist = list;
  return 0;

nomem:
  nt_textfile_set_err(err, errlen, "cannot read %s: out of memory", path);
  nt_keylist_free(list);
  return NATTER_ERR_NOMEM;
invalid:
  nt_keylist_free(list);
  return NATTER_ERR_INVALID;
}

int nt_keylist_load(nt_keylist **plist, const char *path, char *err,
                    size_t errlen) {
  char *text;
  size_t len;
  int rv;

  *plist = NULL;
  rv = nt_textfile_read(path, "admitted keys file", NT_KEYLIST_MAX_BYTES, &text,
                        &len, NULL, err, errlen);
  if (rv == 1) {
    nt_textfile_set_err(err, errlen,
                        "admitted keys file %s does not exist: create it "
                        "(one FINGERPRINT NAME per line)",
                        path);
    return NATTER_ERR_INVALID;
  }
  if (rv != 0) {
    return rv;
  }
  rv = nt_keylist_parse(plist, path, text, len, err, errlen);
  free(text);
  return rv;
}

const char *nt_keylist_lookup(const nt_keylist *list,
                              const uint8_t *fingerprint) {
  uint32_t slot = find_fp(list, fingerprint);

  return slot ? list->entries[slot - 1].name : NULL;
}

const uint8_t *nt_keylist_lookup_name(const nt_keylist *list,
                                      const char *name) {
  uint32_t slot = name ? find_name(list, name) : 0;

  return slot ? list->entries[slot - 1].fingerprint : NULL;
}

size_t nt_keylist_count(const nt_keylist *list) {
  return list->count;
}
