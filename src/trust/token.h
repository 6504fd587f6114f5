/* A closed broker's shared token: a secret that every admitted client
 * presents. It comes from a file (the first line, surrounding spaces and
 * the line end trimmed) or from an environment variable, never from the
 * command line, where other users see it in ps. A token is
 * NT_TOKEN_MIN..NT_TOKEN_MAX printable ASCII characters without spaces.
 * Comparison is constant-time in the token's content. */
#ifndef NT_TOKEN_H
#define NT_TOKEN_H

#include <stddef.h>

#define NT_TOKEN_MIN 16
#define NT_TOKEN_MAX 256
#define NT_TOKEN_FILE_MAX_BYTES 4096

/* Reads the token from the file at |path| into |out| (at least
 * NT_TOKEN_MAX + 1 bytes; NUL-terminated). Returns 0, or a negative
 * NATTER_ERR_INVALID with a one-line reason in |err|. When the file is
 * readable by group or others, it still returns 0 but writes a one-line
 * warning into |warn| (which the caller logs); otherwise |warn| is set to
 * "". */
int nt_token_read_file(char *out, size_t outlen, const char *path, char *warn,
                       size_t warnlen, char *err, size_t errlen);

/* The token in |len| bytes of |text| as a token file holds it: the first
 * line, surrounding spaces and the line end trimmed, checked as
 * nt_token_check does (|what| names the source). Fills |out| as
 * nt_token_read_file does. For nt_token_read_file, tests and fuzzing. */
int nt_token_parse(char *out, size_t outlen, const char *text, size_t len,
                   const char *what, char *err, size_t errlen);

/* Reads the token from the environment variable |var|. Returns 0 or
 * NATTER_ERR_INVALID with a reason in |err| (unset, too short, ...). */
int nt_token_from_env(char *out, size_t outlen, const char *var, char *err,
                      size_t errlen);

/* Checks a token's form; |what| names its source in messages. Returns 0 or
 * NATTER_ERR_INVALID with a reason in |err|. */
int nt_token_check(const char *token, size_t len, const char *what, char *err,
                   size_t errlen);

/* 1 when |presented| (|plen| bytes, from the network) equals |expected|
 * (|elen| bytes), else 0. Time depends on |elen|, not on where the two
 * differ, so a guess cannot be improved byte by byte. */
int nt_token_equal(const char *expected, size_t elen, const char *presented,
                   size_t plen);

#endif
