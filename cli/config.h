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
#include <stdint.h>
#include <stdio.h>

#include "settings.h"

#define CLI_CONFIG_MAX_BYTES (1024 * 1024) /* whole file */
#define CLI_CONFIG_MAX_LINE 4096 /* bytes in a line, line end excluded */
#define CLI_CONFIG_MAX_LIST 64   /* forward, allow, allow-command: each */
#define CLI_CONFIG_MAX_ARGS 256  /* arguments of one forward command */

/* Same values as natter_log_level in natter.h, so the CLI may cast. */
typedef enum cli_log_level {
  CLI_LOG_ERROR = 0,
  CLI_LOG_WARN = 1,
  CLI_LOG_INFO = 2,
  CLI_LOG_DEBUG = 3
} cli_log_level;

typedef struct cli_forward {
  char *spec;  /* "8022:bob:22", or "8022:bob:" when argv is set */
  char **argv; /* NULL-terminated command to run on the peer, argv[0] not
                  empty; NULL when the spec is not a command form */
  size_t argc; /* entries in argv before the NULL; 0 when argv is NULL */
  size_t line; /* line of the file it came from, for later messages; 0 for
                  a spec from the command line */
} cli_forward;

/* How a setting's value is read and checked (the TYPE of settings.h), and
 * the cli_config fields it has. Single values have FIELD and FIELD_set;
 * lists have FIELD[] (NULL-terminated) and nFIELD. The order matters:
 * the string types come first (up to OPTIONAL_ADDR), the lists last (from
 * ALLOW_RULES on). */
typedef enum cli_type {
  CLI_T_TEXT,          /* char *: any text */
  CLI_T_SERVER,        /* char *: "[ADDR]:PORT" (checked in the file) */
  CLI_T_ADDR,          /* char *: "HOST:PORT" (checked in the file) */
  CLI_T_NAME,          /* char *: a client name (checked in the file) */
  CLI_T_FINGERPRINT,   /* char *: 64 hex digits (checked in the file) */
  CLI_T_PEER,          /* char *: a peer name, checked */
  CLI_T_LOG_FORMAT,    /* char *: "text" or "json" */
  CLI_T_OPTIONAL_ADDR, /* char *, maybe NULL: a flag's optional HOST:PORT */
  CLI_T_BOOL,          /* 0 or 1: a flag without value, a yes/no key */
  CLI_T_ACTION,        /* 1: a flag that ends the parse (-h, --version) */
  CLI_T_COUNT,         /* MIN..MAX, digits only */
  CLI_T_BYTES,         /* any unsigned 64-bit number */
  CLI_T_DURATION,      /* seconds, as cli_parse_duration() reads them */
  CLI_T_LOG_LEVEL,     /* a cli_log_level, by name */
  CLI_T_LEVEL_FLAG,    /* no field of its own: sets log_level to MIN */
  CLI_T_ALLOW_RULES,   /* list: natter_allow_rule_check() */
  CLI_T_COMMAND_RULES, /* list: natter_allow_command_check() */
  CLI_T_PEER_RULES,    /* list: natter_allow_peer_check() */
  CLI_T_FINGERPRINTS,  /* list: fingerprints */
  CLI_T_FORWARDS       /* cli_forward list: SPEC [COMMAND] */
} cli_type;

typedef enum cli_scope { CLI_ANY, CLI_CLIENT, CLI_BROKER } cli_scope;

#define CLI_SINGLE_(f)                                                         \
  unsigned long long f;                                                        \
  size_t f##_set;
#define CLI_STRING_(f)                                                         \
  char *f;                                                                     \
  size_t f##_set;
#define CLI_LIST_(f)                                                           \
  char *f[CLI_CONFIG_MAX_LIST + 1];                                            \
  size_t n##f;
#define CLI_FIELD_TEXT(f) CLI_STRING_(f)
#define CLI_FIELD_SERVER(f) CLI_STRING_(f)
#define CLI_FIELD_ADDR(f) CLI_STRING_(f)
#define CLI_FIELD_NAME(f) CLI_STRING_(f)
#define CLI_FIELD_FINGERPRINT(f) CLI_STRING_(f)
#define CLI_FIELD_PEER(f) CLI_STRING_(f)
#define CLI_FIELD_LOG_FORMAT(f) CLI_STRING_(f)
#define CLI_FIELD_OPTIONAL_ADDR(f) CLI_STRING_(f)
#define CLI_FIELD_BOOL(f) CLI_SINGLE_(f)
#define CLI_FIELD_ACTION(f) CLI_SINGLE_(f)
#define CLI_FIELD_COUNT(f) CLI_SINGLE_(f)
#define CLI_FIELD_BYTES(f) CLI_SINGLE_(f)
#define CLI_FIELD_DURATION(f) CLI_SINGLE_(f)
#define CLI_FIELD_LOG_LEVEL(f) CLI_SINGLE_(f)
#define CLI_FIELD_LEVEL_FLAG(f)
#define CLI_FIELD_ALLOW_RULES(f) CLI_LIST_(f)
#define CLI_FIELD_COMMAND_RULES(f) CLI_LIST_(f)
#define CLI_FIELD_PEER_RULES(f) CLI_LIST_(f)
#define CLI_FIELD_FINGERPRINTS(f) CLI_LIST_(f)
#define CLI_FIELD_FORWARDS(f)                                                  \
  cli_forward f[CLI_CONFIG_MAX_LIST];                                          \
  size_t n##f;

/* Every setting, from the command line or a file: FIELD_set is the line
 * that set it (for a flag, its position on the command line), 0 when
 * unset (the value is then NULL or 0). Strings are NUL-terminated copies
 * owned by the struct. The fields are those of settings.h: server, name,
 * timeout_s, allow and nallow, forward and nforward, ... */
typedef struct cli_config {
#define X(id, flag, key, type, field, ...) CLI_FIELD_##type(field)
  CLI_SETTINGS(X)
#undef X
} cli_config;

/* One entry of the table, as the code reads it. */
typedef struct cli_setting {
  const char *flag, *key; /* NULL: not on the command line / in the file */
  cli_type type;
  size_t off;     /* the value's offset in cli_config */
  size_t set_off; /* FIELD_set's (single values) or nFIELD's (lists) */
  const char *arg;
  unsigned long long min, max;
  const char *expect, *def;
  cli_scope scope;
  int reload;
  const char *help;
} cli_setting;

typedef enum cli_setting_id {
#define X(id, ...) CLI_S_##id,
  CLI_SETTINGS(X)
#undef X
      CLI_S_COUNT
} cli_setting_id;

extern const cli_setting cli_settings[CLI_S_COUNT];

/* The setting of flag |flag| ("-name"; the aliases --help, -help and
 * -version too), or NULL. */
const cli_setting *cli_setting_by_flag(const char *flag);

/* The setting of the |n| bytes of |key| in a file, or NULL. */
const cli_setting *cli_setting_by_key(const char *key, size_t n);

/* Whether the setting is a list (ALLOW_RULES .. FORWARDS). */
int cli_setting_is_list(const cli_setting *s);

/* Whether |c| has |s| set: a single value given (a yes/no one given as
 * yes), a list not empty. */
int cli_setting_in_use(const cli_config *c, const cli_setting *s);

/* Checks |value| for |s| and stores it in |c| (a list gets it appended;
 * FORWARDS are not taken here), recording |line| in FIELD_set. Values of
 * BOOL, ACTION and LEVEL_FLAG settings are NULL on the command line.
 * |from_file|: also check what the library would check later anyway
 * (SERVER, ADDR, NAME, FINGERPRINT), as a file is read before it runs.
 * Returns 0; -1 with the reason in |why|, as it follows
 * 'bad LABEL "VALUE": '; -2 when the list is full. */
int cli_setting_set(cli_config *c, const cli_setting *s, const char *value,
                    size_t line, int from_file, char *why, size_t whylen);

/* The LABEL of the messages for a value of |s| in a file: its key, or
 * "allow rule" for allow. */
const char *cli_setting_label(const cli_setting *s);

/* Writes the flags part of `natter -h`: each flag with its ARG, HELP and
 * DEFAULT, wrapped to 79 columns. */
void cli_settings_usage(FILE *out);

/* Adds to |c| what |under| says and |c| does not: a single value that |c|
 * leaves unset is copied; a list becomes |under|'s entries, then |c|'s.
 * Returns 0, or -1 when a list would hold more than CLI_CONFIG_MAX_LIST
 * entries, with *full (may be NULL) set to that setting; |c| then keeps
 * what was merged so far. */
int cli_config_overlay(cli_config *c, const cli_config *under,
                       const cli_setting **full);

/* Appends the forward |spec| (with |argv|, NULL-terminated, or NULL) to
 * |c|, copied, as from |line| (0: the command line). Returns 0, -1 when
 * out of memory, -2 when |c| holds CLI_CONFIG_MAX_LIST already. */
int cli_config_add_forward(cli_config *c, const char *spec, char *const *argv,
                           size_t line);

/* Whether two forwards have the same spec and command. */
int cli_forward_equal(const cli_forward *a, const cli_forward *b);

/* Whether |a| and |b| say the same for |s|: both unset, or the same
 * value(s) in the same order. */
int cli_setting_equal(const cli_config *a, const cli_config *b,
                      const cli_setting *s);

/* Makes |c| empty: nothing set, no lists. Call before the first parse. */
void cli_config_init(cli_config *c);

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

/* Releases everything |c| holds and makes it empty again (as after
 * cli_config_init), so it may be reused or freed twice. */
void cli_config_free(cli_config *c);

/* Splits the command |s| into arguments the way a POSIX shell splits words,
 * without running one:
 * - blanks (space, tab, newline, CR, VT, FF) separate arguments;
 * - '...' keeps everything inside as it is, backslashes included;
 * - "..." keeps everything inside except that \" \\ \$ and \` stand for the
 *   second character (a backslash before anything else is kept);
 * - outside quotes, a backslash makes the next character ordinary (and
 *   backslash-newline is removed);
 * - quotes join with the text around them: a"b c"'d' is one argument, and
 *   "" is an empty argument.
 * Nothing is expanded or interpreted: $VAR, `cmd`, *, ?, [..], ~, |, ;, &,
 * <, > and # are ordinary characters, so pipes and redirections need
 * sh -c '...'.
 * On success returns 0 and sets *pargv to a NULL-terminated array owned by
 * the caller (release with cli_argv_free()) and *pargc (may be NULL) to its
 * length, which is 0 when |s| holds only blanks. Returns -1 with a one-line
 * reason in |err| on an unterminated quote, a trailing backslash or more than
 * CLI_CONFIG_MAX_ARGS arguments; *pargv is then NULL. */
int cli_split_argv(const char *s, char ***pargv, size_t *pargc, char *err,
                   size_t errlen);

/* Parses a duration: digits and one unit, s, m, h or d ("30d", "90s"), or
 * "0" alone. Returns 0 with the seconds in *out, or -1. */
int cli_parse_duration(const char *s, uint32_t *out);

/* Frees an argv from cli_split_argv(); NULL is fine. */
void cli_argv_free(char **argv);

#endif
