/* The natter configuration file: parsing and checking, no I/O beyond reading
 * the file, no global state.
 *
 * Format. UTF-8 or ASCII text, one setting per line:
 *
 *     # a comment
 *     key = value
 *
 * - A line whose first non-blank character is '#' is a comment; blank lines
 *   are ignored. A '#' anywhere else is part of the value.
 * - White space (space, tab, CR, VT, FF) around the key and around the
 *   value is dropped. Lines may end in "\n" or "\r\n"; the last one needs
 *   no line end. A UTF-8 byte order mark at the start of the file is
 *   skipped.
 * - A value may be written in double quotes, "...", to keep blanks at its
 *   ends or a leading '"'; inside, \" is a quote and \\ a backslash, and no
 *   other escape exists. Nothing may follow the closing quote.
 * - Limits: a file of at most CLI_CONFIG_MAX_BYTES bytes, a line of at most
 *   CLI_CONFIG_MAX_LINE bytes (line end excluded), no NUL byte.
 *
 * Keys: the KEY column of settings.h, each the config-file form of the
 * flag of the same name (a flag given on the command line overrides the
 * file); natter.conf(5) describes them. A yes/no value is yes/no,
 * true/false, on/off or 1/0.
 *
 * Single-valued keys may appear once each ("duplicate key" otherwise);
 * list keys (allow, allow-command, allow-peer, admin, forward) up to
 * CLI_CONFIG_MAX_LIST times each, and their order is kept. No value may be
 * empty. Values are checked as far as can be done without the network: the
 * shape of addresses and allow rules (natter_allow_rule_check(),
 * natter_allow_command_check(): the library's own rules), ports, names,
 * numbers, fingerprints and specs. Keys are case-sensitive; yes/no words and
 * log levels are not.
 *
 * A forward is a SPEC exactly as on the command line ("8022:bob:22",
 * "8022:bob:10.0.1.1:22", ":bob:22"), checked with natter_spec_check(). A
 * SPEC that ends in "PEER:" ("8022:bob:", ":bob:") takes a command: the rest of
 * the line after the blanks that follow the SPEC, split into arguments as
 * cli_split_argv() describes, e.g.
 *
 *     forward = :bob: sh -c 'cat > backup.tar'
 *
 * Errors. Parsing stops at the first error, described in one line as
 * "FILE:LINE: what is wrong", or "FILE: what is wrong" for the file as a
 * whole (cannot be read, too large). Text from the file is quoted with
 * non-printable bytes escaped and cut after 40 bytes, so the message stays
 * one short line whatever the file holds. */
#ifndef NATTER_CLI_CONFIG_H
#define NATTER_CLI_CONFIG_H

#include <stddef.h>

#include "argv.h"
#include "settings.h"

#define CLI_CONFIG_MAX_BYTES (1024 * 1024) /* whole file */
#define CLI_CONFIG_MAX_LINE 4096 /* bytes in a line, line end excluded */

/* Parses |len| bytes of |text| (NUL bytes in it are reported, not taken for
 * its end; |text| may be NULL when |len| is 0). |filename| only names the
 * file in messages. Settings are added to |c|, which must have been
 * initialised; a key already set in |c| counts as a duplicate.
 * Returns 0, or -1 with "FILE:LINE: reason" in |err| (always NUL-terminated
 * when |errlen| > 0, truncated to fit). On failure |c| keeps what the lines
 * before the bad one set; either way the caller releases it with
 * cli_config_free(). */
int cli_config_parse(cli_config *c, const char *text, size_t len,
                     const char *filename, char *err, size_t errlen);

/* Reads |path| and parses it as cli_config_parse() does. A file that does
 * not exist is an error, unless |missing_ok|: then returns 1 and leaves |c|
 * unchanged. Returns 0 on success, -1 with a reason in |err| on failure
 * ("PATH: cannot open it: Permission denied", or a parse error). */
int cli_config_load(cli_config *c, const char *path, int missing_ok, char *err,
                    size_t errlen);

#endif
