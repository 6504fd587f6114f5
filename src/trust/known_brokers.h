/* Brokers a client has met, like ssh's known_hosts: trust on first use.
 * The first key fingerprint a broker presents is remembered for its
 * address; a later different key stops the client (the caller decides,
 * with nt_known_brokers_mismatch_message for the words). The file lives in
 * the client's config directory (nt_known_brokers_default_path) and holds
 * one entry per line,
 *
 *     HOST:PORT FINGERPRINT
 *
 * where HOST:PORT is the broker address as the user gave it (compared
 * case-insensitively; "[::1]:10000" for IPv6), or the brokers of one
 * network as the user listed them, "HOST:PORT,HOST:PORT" (one key pins
 * them all: doc/design.md, "Several brokers"), and FINGERPRINT the broker
 * key's 64 hex digits (':' between pairs allowed). Blank lines and lines
 * starting with '#' are ignored; a malformed line is an error
 * `FILE:LINE: reason`. When an address is listed twice, the first line
 * counts.
 *
 * Adding rewrites the file atomically (temporary file + rename, mode 0600,
 * directory 0700), so a crash or a reader never sees half a file. Two
 * clients adding at the same moment may lose one entry, which is then
 * added again on that client's next start. Limits: NT_KNOWN_BROKERS_MAX_BYTES
 * per file, NT_KNOWN_BROKERS_MAX_LINE bytes per line,
 * NT_KNOWN_BROKERS_MAX_ENTRIES entries. */
#ifndef NT_KNOWN_BROKERS_H
#define NT_KNOWN_BROKERS_H

#include <stddef.h>
#include <stdint.h>

#include "trust/tls.h"

#define NT_KNOWN_BROKERS_FILE "known_brokers"
#define NT_KNOWN_BROKERS_MAX_BYTES (1u << 20) /* 1 MiB */
#define NT_KNOWN_BROKERS_MAX_LINE 512
#define NT_KNOWN_BROKERS_MAX_ENTRIES 10000
#define NT_KNOWN_BROKERS_ADDR_MAX 300 /* a 253-byte name, brackets, port */

typedef struct nt_known_broker {
  uint8_t fingerprint[NT_FINGERPRINT_LEN];
  unsigned line; /* where it is listed, for messages */
} nt_known_broker;

/* Writes $XDG_CONFIG_HOME/natter/known_brokers (or ~/.config/natter/...)
 * into |out|. Returns 0 or -1 when no home directory is known. */
int nt_known_brokers_default_path(char *out, size_t outlen);

/* Looks |addr| up in the file at |path|. Returns 0 with *found set to 1
 * (and |known| filled) or 0 (also when the file does not exist yet), or a
 * negative NATTER_ERR_INVALID with a one-line reason in |err| when the
 * file is unreadable or malformed. */
int nt_known_brokers_lookup(const char *path, const char *addr, int *found,
                            nt_known_broker *known, char *err, size_t errlen);

/* Looks |addr| up in |len| bytes of |text|, parsed as the file at |path|
 * would be: as nt_known_brokers_lookup, without reading a file. For tests
 * and fuzzing. */
int nt_known_brokers_find(const char *path, const char *text, size_t len,
                          const char *addr, int *found, nt_known_broker *known,
                          char *err, size_t errlen);

/* Remembers |fingerprint| for |addr|. Returns 0 (also when exactly this
 * entry exists), NATTER_ERR_KEY_MISMATCH when |addr| is listed with
 * another key (the file is left alone; |err| says what to do),
 * NATTER_ERR_INVALID for a bad address, a malformed or full file, or a
 * write failure. */
int nt_known_brokers_add(const char *path, const char *addr,
                         const uint8_t *fingerprint, char *err, size_t errlen);

/* The message for a broker that presents |seen| where |known| is
 * remembered: both fingerprints, the file and line, and what to do. */
void nt_known_brokers_mismatch_message(char *out, size_t outlen,
                                       const char *path, const char *addr,
                                       const nt_known_broker *known,
                                       const uint8_t *seen);

#endif
