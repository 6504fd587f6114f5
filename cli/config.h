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
 * Keys, each the config-file form of the flag of the same name (a flag given
 * on the command line overrides the file):
 *
 *   server = [ADDR]:PORT        run a broker on this UDP address
 *   name = NAME                 this client's name (1-63 of A-Za-z0-9._-)
 *   broker = HOST:PORT          the broker's address
 *   identity = FILE             key file
 *   broker-key = FINGERPRINT    64 hex digits, ':' between pairs allowed
 *   timeout = SECONDS           1..3600
 *   log-level = LEVEL           error, warn, info or debug
 *   listen = BOOL               yes/no, true/false, on/off, 1/0
 *   port = PORT                 the client's UDP port, 1..65535
 *   allow = RULE                HOST, HOST:PORT, HOST:*, [IPv6], [IPv6]:PORT,
 *                               bare IPv6 (::1) or *            (repeatable)
 *   allow-command = RULE        a whole command line, a prefix ending in
 *                               " *", or *, maybe PEER=RULE    (repeatable)
 *   forward = SPEC [COMMAND]    as on the command line          (repeatable)
 *   allow-peer = RULE           NAME, NAME@FP, @FP, *, !RULE   (repeatable)
 *   token-file = FILE           the broker's shared token (both roles)
 *   registry = FILE             broker: the name registry (SQLite)
 *   name-expiry = DURATION      broker: 30d, 12h, 90m, 45s; 0: never
 *   admitted-keys = FILE        broker: "FINGERPRINT NAME" lines
 *   max-commands = N            remote commands at once, 1..100000
 *   max-commands-per-peer = N   ... for one peer
 *   metrics = IP:PORT           Prometheus metrics on this loopback address
 *   admin = FINGERPRINT         a key that may read the detailed status
 *                               page                            (repeatable)
 *   log-format = FORMAT         text or json
 *   max-clients = N             broker: connections in all, 1..1000000
 *   max-pending = N             broker: not checked in yet, 1..1000000
 *   max-per-address = N         broker: from one IP address, 1..1000000
 *   retry-above = N             broker: new connections/s before QUIC
 *                               Retry, 0..1000000 (0: never)
 *   relay = BOOL                broker: relay peers that cannot punch
 *   relay-rate = BYTES          broker: relayed bytes a second per client
 *   relay-total = BYTES         broker: relayed bytes per client in all
 *   no-relay = BOOL             client: never through the relay
 *
 * Single-valued keys may appear once each ("duplicate key" otherwise);
 * allow, allow-command, allow-peer, admin and forward up to
 * CLI_CONFIG_MAX_LIST times each, and
 * their order is kept. No value may be empty. Values are checked as far
 * as can be done without the network: the shape of addresses and allow
 * rules (natter_allow_rule_check(), natter_allow_command_check(): the
 * library's own rules), ports, names, numbers, fingerprints and specs.
 * Keys are case-sensitive; yes/no words and log levels are not.
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
  size_t line; /* line of the file it came from, for later messages */
} cli_forward;

/* Each single-valued key has a *_set field: the line that set it, 0 when
 * the file does not set it (the value field is then NULL or 0). Strings are
 * NUL-terminated copies owned by the struct. */
typedef struct cli_config {
  char *server; /* "[ADDR]:PORT" */
  size_t server_set;
  char *name;
  size_t name_set;
  char *broker; /* "HOST:PORT" */
  size_t broker_set;
  char *identity; /* a path, as written: no ~ or $VAR expansion */
  size_t identity_set;
  char *broker_key; /* as written: 64 hex digits, maybe with ':' */
  size_t broker_key_set;
  unsigned timeout_s; /* 1..3600 */
  size_t timeout_set;
  cli_log_level log_level;
  size_t log_level_set;
  int listen; /* 0 or 1 */
  size_t listen_set;
  uint16_t port; /* the client's UDP port, 1..65535 */
  size_t port_set;
  char *token_file; /* both roles */
  size_t token_file_set;
  char *registry; /* broker */
  size_t registry_set;
  uint32_t name_expiry_s; /* broker; 0: never */
  size_t name_expiry_set;
  char *admitted_keys; /* broker */
  size_t admitted_keys_set;
  unsigned max_commands; /* 1..100000 */
  size_t max_commands_set;
  unsigned max_commands_per_peer;
  size_t max_commands_per_peer_set;
  long broker_limit[4]; /* max-clients, max-pending, max-per-address,
                           retry-above */
  size_t broker_limit_set[4];
  int relay, no_relay; /* broker; client */
  size_t relay_set, no_relay_set;
  unsigned long long relay_rate, relay_total; /* broker; 0: no cap */
  size_t relay_rate_set, relay_total_set;
  char *metrics; /* "IP:PORT" */
  size_t metrics_set;
  char *log_format; /* "text" or "json" */
  size_t log_format_set;

  /* NULL-terminated, as natter_client_config.allow wants it. */
  char *allow[CLI_CONFIG_MAX_LIST + 1];
  size_t nallow;
  char *allow_command[CLI_CONFIG_MAX_LIST + 1];
  size_t nallow_command;
  char *allow_peer[CLI_CONFIG_MAX_LIST + 1];
  size_t nallow_peer;
  char *admin[CLI_CONFIG_MAX_LIST + 1];
  size_t nadmin;
  cli_forward forward[CLI_CONFIG_MAX_LIST];
  size_t nforward;
} cli_config;

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
