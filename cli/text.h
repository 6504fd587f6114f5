/* Small text helpers shared by the CLI's settings, its configuration file
 * reader and its command splitter. */
#ifndef NATTER_CLI_TEXT_H
#define NATTER_CLI_TEXT_H

#include <stddef.h>

/* Text from a file or the command line is echoed in messages cut after this
 * many bytes. */
#define CLI_QUOTE_MAX_IN 40
/* Each byte becomes at most 4 ("\xNN"), plus "..." and the NUL. */
#define CLI_QUOTE_BUF (CLI_QUOTE_MAX_IN * 4 + 3 + 1)

/* Writes the first |n| bytes of |s| into |out| for use inside double
 * quotes: at most CLI_QUOTE_MAX_IN of them, then "...". Non-printable and
 * non-ASCII bytes are escaped so that a message stays one line of plain
 * text. */
void cli_quote(char out[CLI_QUOTE_BUF], const char *s, size_t n);

/* snprintf into |err| when it is not NULL and |errlen| > 0. */
void cli_set_err(char *err, size_t errlen, const char *fmt, ...);

/* Space, tab, newline, CR, VT or FF. */
int cli_is_space(char ch);

/* A NUL-terminated copy of the |n| bytes of |s| (malloc), or NULL. */
char *cli_dup_n(const char *s, size_t n);

/* ASCII lower case of |ch|; other bytes unchanged. */
int cli_lower(int ch);

/* Whether |a| and |b| are equal but for ASCII case. */
int cli_equal_nocase(const char *a, const char *b);

#endif
