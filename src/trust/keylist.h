/* A closed broker's list of admitted client keys, in the spirit of ssh's
 * authorized_keys: one entry per line,
 *
 *     FINGERPRINT NAME
 *
 * FINGERPRINT is the client key's SHA-256 fingerprint as the client logs
 * it at start-up (64 hex digits, ':' between pairs allowed); NAME is the name
 * that key may use at the broker (nt_name_valid), so the broker can bind
 * it. Blank lines and lines starting with '#' (after optional spaces) are
 * ignored; fields are separated by spaces or tabs; nothing may follow the
 * name. A fingerprint or a name listed twice is an error: each key has one
 * name and each name one key.
 *
 * Limits: NT_KEYLIST_MAX_BYTES per file, NT_KEYLIST_MAX_LINE bytes per
 * line, NT_KEYLIST_MAX_ENTRIES entries. Errors read `FILE:LINE: reason`.
 * The list is read once; reloading is loading a new one and swapping. */
#ifndef NT_KEYLIST_H
#define NT_KEYLIST_H

#include <stddef.h>
#include <stdint.h>

#include "trust/tls.h"

#define NT_KEYLIST_MAX_BYTES (4u << 20) /* 4 MiB */
#define NT_KEYLIST_MAX_LINE 1024
#define NT_KEYLIST_MAX_ENTRIES 100000 /* as many as the registry holds */

typedef struct nt_keylist nt_keylist;

/* Reads and checks the file at |path|. Returns 0 and sets *plist (freed
 * with nt_keylist_free), or a negative NATTER_ERR_INVALID/NATTER_ERR_NOMEM
 * with a one-line reason in |err| (`FILE:LINE: reason` for a bad line). A
 * missing file is an error: a broker told to admit listed keys only must
 * not start open. */
int nt_keylist_load(nt_keylist **plist, const char *path, char *err,
                    size_t errlen);

/* Parses |len| bytes of |text| as the file |path| would be (for tests and
 * for callers that have the text already). */
int nt_keylist_parse(nt_keylist **plist, const char *path, const char *text,
                     size_t len, char *err, size_t errlen);

void nt_keylist_free(nt_keylist *list);

/* The name admitted with |fingerprint| (NT_FINGERPRINT_LEN bytes), or NULL
 * when the key is not listed. The string lives as long as |list|. */
const char *nt_keylist_lookup(const nt_keylist *list,
                              const uint8_t *fingerprint);

/* The fingerprint listed for |name|, or NULL. Lives as long as |list|. */
const uint8_t *nt_keylist_lookup_name(const nt_keylist *list, const char *name);

size_t nt_keylist_count(const nt_keylist *list);

#endif
