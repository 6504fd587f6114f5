/* Identity key files on disk: created with mode 0600 atomically, checked
 * (type, owner, mode, size) before they are read. Bytes only: what is in
 * the file is tls.c's business, so no TLS library type appears here. */
#ifndef NT_KEYFILE_H
#define NT_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

/* A PEM P-256 key is about 240 bytes; anything past this is not a key, and
 * the bound keeps a mistaken path (a log, a disk image) out of memory. */
#define NT_KEYFILE_MAX (64 * 1024)

/* The advice every "this file is not a usable key" message ends with. */
#define NT_KEYFILE_MOVE_AWAY_HINT "move the file away to create a new key"

/* Reads the key file at |path|. Refuses (-1, with a one-line reason in
 * |err| naming the path and what to do) a file that is not a regular file,
 * that belongs to another user (root's files are accepted), that group or
 * others may access in any way, that is larger than NT_KEYFILE_MAX, or that
 * is empty. Returns 0 with the contents in *pdata (*plen bytes, released
 * with nt_keyfile_wipe), 1 when nothing exists at |path|, or -1. */
int nt_keyfile_read(const char *path, uint8_t **pdata, size_t *plen, char *err,
                    size_t errlen);

/* Creates the key file |path| holding |len| bytes of |data|, so that a
 * reader sees either no file or the whole key, and nobody else can read it
 * at any moment: missing parent directories are created with mode 0700, the
 * bytes go to a temporary file beside |path| created with O_EXCL and mode
 * 0600, which is fsynced and renamed to |path| without replacing anything.
 * Returns 0, 1 when |path| appeared meanwhile (another process created its
 * key first; the caller should read that one), or -1 with a reason in
 * |err|. */
int nt_keyfile_create(const char *path, const uint8_t *data, size_t len,
                      char *err, size_t errlen);

/* Zeroes |len| bytes of |data| (from nt_keyfile_read) and frees it. */
void nt_keyfile_wipe(uint8_t *data, size_t len);

#endif
