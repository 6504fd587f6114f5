/* Every setting of natter, in one table. From it come the command-line
 * flags and their parser, the configuration file's keys, the fields of
 * cli_config (below), the flag list and defaults of `natter -h` (and so
 * the bash completion, which reads `natter -h`), which settings apply only
 * to a client or only to a broker, and which ones SIGHUP reloads.
 *
 * A new setting is one entry here plus the code that uses its field;
 * doc/natter.1.scd (a flag) and doc/natter.conf.5.scd (a key) document it,
 * and tests/test_settings.c fails until they do.
 *
 * X(ID, FLAG, KEY, TYPE, FIELD, ARG, MIN, MAX, EXPECT, DEFAULT, SCOPE,
 *   RELOAD, HELP):
 *   ID       names the entry: CLI_S_ID
 *   FLAG     "-flag" on the command line; NULL: the file only
 *   KEY      "key" in the configuration file; NULL: the command line only
 *   TYPE     how the value is read and checked (CLI_T_*, below)
 *   FIELD    the cli_config field it fills (for -v and -q: log_level)
 *   ARG      the value's name in `natter -h`; NULL: the flag takes none
 *   MIN, MAX bounds of a COUNT (and the log level -v or -q stands for)
 *   EXPECT   what a bad value is told: bad KEY "VALUE": expected EXPECT
 *   DEFAULT  shown by `natter -h` as "(default DEFAULT)"; NULL: nothing to
 *            show. Where the library has the setting, this is the
 *            library's default (tests/test_settings.c compares them).
 *   SCOPE    CLI_CLIENT: refused with -server; CLI_BROKER: only with
 *            -server; CLI_ANY
 *   RELOAD   1: a client's SIGHUP re-reads it from the file; 0: read at
 *            start only
 *   HELP     its text in `natter -h` (wrapped there), without the default
 *
 * The order is the order of `natter -h`.
 *
 * Below the table: the table as code (cli_settings[], the fields of
 * cli_config) and what is done with a cli_config: setting a value, merging
 * the command line over the file, comparing for a reload (settings.c). */
#ifndef NATTER_CLI_SETTINGS_H
#define NATTER_CLI_SETTINGS_H

#include <stddef.h>

/* The file read when -config names none, if it exists. */
#define CLI_DEFAULT_CONFIG "/etc/natter/natter.conf"
/* The environment variable that holds a broker token. */
#define CLI_TOKEN_ENV "NATTER_TOKEN"

/* clang-format off */
#define CLI_SETTINGS(X)                                                        \
  X(SERVER, "-server", "server", SERVER, server, "[ADDR]:PORT", 0, 0,          \
    "[ADDR]:PORT", NULL, CLI_ANY, 0,                                           \
    "run a broker on UDP ADDR:PORT (ADDR default: all, IPv4 and IPv6)")        \
  X(NAME, "-name", "name", NAME, name, "NAME", 0, 0,                           \
    "1-63 of A-Z a-z 0-9 . _ -", NULL, CLI_CLIENT, 0,                          \
    "this client's name at the broker (1-63 of A-Za-z0-9._-)")                 \
  X(BROKER, "-broker", "broker", ADDR, broker, "HOST:PORT", 0, 0,              \
    "HOST:PORT", NULL, CLI_CLIENT, 0,                                          \
    "the broker's address; several of one network: A:P,B:P (at most 16)")     \
  X(LISTEN, "-listen", "listen", BOOL, listen, NULL, 0, 0, NULL, NULL,         \
    CLI_CLIENT, 0,                                                             \
    "accept forwards from admitted peers (to this machine's loopback)")        \
  X(ALLOW_PEER, "-allow-peer", "allow-peer", PEER_RULES, allow_peer, "RULE",   \
    0, 0, NULL, NULL, CLI_CLIENT, 1,                                           \
    "admit peer NAME, NAME@FINGERPRINT, @FINGERPRINT or '*' (anyone); "        \
    "'!RULE' refuses; first match wins; repeatable. Needed with -listen "      \
    "unless the broker is closed")                                             \
  X(ALLOW, "-allow", "allow", ALLOW_RULES, allow, "HOST[:PORT]", 0, 0, NULL,   \
    NULL, CLI_CLIENT, 1,                                                       \
    "also let peers reach HOST (PORT or * for any); '*' allows every "         \
    "target; HOST may be [IPv6] (a bare IPv6 address takes no port); "         \
    "PEER=RULE for one peer only; repeatable; needs -listen")                  \
  X(ALLOW_COMMAND, "-allow-command", "allow-command", COMMAND_RULES,           \
    allow_command, "CMD", 0, 0, NULL, NULL, CLI_CLIENT, 1,                     \
    "let peers run exactly this command line here; a final word '*' "         \
    "allows any further arguments, '*' alone any command; PEER=CMD for one "   \
    "peer only; never through a shell; repeatable; needs -listen")             \
  X(ALLOW_UDP, "-allow-udp", "allow-udp", ALLOW_RULES, allow_udp,              \
    "HOST[:PORT]", 0, 0, NULL, NULL, CLI_CLIENT, 1,                            \
    "let peers send UDP to HOST (PORT or * for any), the grammar of -allow; "  \
    "without it no UDP target at all, not even loopback; PEER=RULE for one "   \
    "peer only; repeatable; needs -listen")                                    \
  X(MAX_CLIENTS, "-max-clients", "max-clients", COUNT, max_clients, "N", 1,    \
    1000000, "a number 1..1000000", "10000", CLI_BROKER, 0,                    \
    "broker: connections in all")                                              \
  X(MAX_PENDING, "-max-pending", "max-pending", COUNT, max_pending, "N", 1,    \
    1000000, "a number 1..1000000", "512", CLI_BROKER, 0,                      \
    "broker: connections not checked in yet")                                 \
  X(MAX_PER_ADDRESS, "-max-per-address", "max-per-address", COUNT,             \
    max_per_address, "N", 1, 1000000, "a number 1..1000000", "32",             \
    CLI_BROKER, 0, "broker: connections from one IP address")                  \
  X(RETRY_ABOVE, "-retry-above", "retry-above", COUNT, retry_above, "N", 0,    \
    1000000, "a number 0..1000000", "200", CLI_BROKER, 0,                      \
    "broker: new connections a second before QUIC Retry validates "            \
    "addresses (0: never)")                                                    \
  X(MAX_COMMANDS, "-max-commands", "max-commands", COUNT, max_commands, "N",   \
    1, 100000, "a number 1..100000", "32", CLI_CLIENT, 0,                      \
    "remote commands running here at once")                                   \
  X(MAX_COMMANDS_PER_PEER, "-max-commands-per-peer", "max-commands-per-peer",  \
    COUNT, max_commands_per_peer, "N", 1, 100000, "a number 1..100000", "8",   \
    CLI_CLIENT, 0, "... for one peer")                                         \
  X(MAX_STREAMS, "-max-streams", "max-streams", COUNT, max_streams, "N", 1,    \
    4096, "a number 1..4096", "1024", CLI_CLIENT, 0,                           \
    "forwarded connections one peer may have open here at once; more wait "    \
    "for a free one")                                                          \
  X(UDP_IDLE_TIMEOUT, "-udp-idle-timeout", "udp-idle-timeout", COUNT,          \
    udp_idle_timeout_s, "SECONDS", 1, 86400, "a number 1..86400", "60",        \
    CLI_CLIENT, 0, "a UDP flow with no datagram either way this long ends")    \
  X(MAX_UDP_FLOWS, "-max-udp-flows", "max-udp-flows", COUNT, max_udp_flows,    \
    "N", 1, 4096, "a number 1..4096", "64", CLI_CLIENT, 0,                     \
    "UDP flows (local sources) one peer may have open at once, each side")    \
  X(IDENTITY, "-identity", "identity", TEXT, identity, "FILE", 0, 0, NULL,     \
    "~/.config/natter/NAME.key, or broker.key for -server", CLI_ANY, 0,        \
    "key file (created with mode 0600)")                                      \
  X(BROKER_KEY, "-broker-key", "broker-key", FINGERPRINT, broker_key, "FP",    \
    0, 0,                                                                      \
    "the broker's fingerprint, 64 hex digits (':' between pairs allowed), "    \
    "as the broker logs it at start",                                          \
    "trust on first use, remembered in ~/.config/natter/known_brokers",        \
    CLI_ANY, 0, "refuse a broker whose key fingerprint is not FP")            \
  X(TOKEN_FILE, "-token-file", "token-file", TEXT, token_file, "FILE", 0, 0,   \
    NULL, NULL, CLI_ANY, 0,                                                    \
    "the broker's shared token (first line of FILE); or set " CLI_TOKEN_ENV   \
    ". A "  \
    "broker with a token admits only clients that present it")                \
  X(ADMITTED_KEYS, "-admitted-keys", "admitted-keys", TEXT, admitted_keys,     \
    "FILE", 0, 0, NULL, NULL, CLI_BROKER, 0,                                   \
    "broker: admit only the keys listed in FILE (\"FINGERPRINT NAME\" "        \
    "lines)")                                                                  \
  X(REGISTRY, "-registry", "registry", TEXT, registry, "FILE", 0, 0, NULL,     \
    "$STATE_DIRECTORY/registry.db or ~/.local/state/natter/registry.db",       \
    CLI_BROKER, 0,                                                             \
    "broker: name registry; also sqlite:///FILE, memory: (names lost at "      \
    "exit) or postgresql://... (shared by brokers)")                           \
  X(NAME_EXPIRY, "-name-expiry", "name-expiry", DURATION, name_expiry_s,       \
    "DUR", 0, 0, "a duration such as 30d, 12h, 90m or 45s (0: never)", "30d",  \
    CLI_BROKER, 0,                                                             \
    "broker: release names unused for DUR (30d, 12h, 90m, 45s; 0: never)")     \
  X(NEW_NAMES_PER_HOUR, "-new-names-per-hour", "new-names-per-hour", COUNT,  \
    new_names_per_hour, "N", 0, 1000000, "a number 0..1000000", "60",          \
    CLI_BROKER, 0,                                                             \
    "broker: new names one address (IPv6: /64) and one key may each bind "     \
    "an hour, burst up to 10 (0: no limit)")                                  \
  X(RELAY, "-relay", "relay", BOOL, relay, NULL, 0, 0, NULL, NULL,             \
    CLI_BROKER, 0,                                                             \
    "broker: relay peers that cannot punch a hole (UDP PORT+2; end-to-end "    \
    "encrypted, the broker reads nothing)")                                   \
  X(RELAY_RATE, "-relay-rate", "relay-rate", BYTES, relay_rate, "BYTES", 0, 0, \
    "a number of bytes (0: no cap)", "2000000", CLI_BROKER, 0,                 \
    "broker: relayed bytes a second per key and per address (0: no cap)")     \
  X(RELAY_TOTAL, "-relay-total", "relay-total", BYTES, relay_total, "BYTES",   \
    0, 0, "a number of bytes (0: no cap)", "1000000000", CLI_BROKER, 0,        \
    "broker: relayed bytes an hour per key and per address (0: no cap)")      \
  X(NO_RELAY, "-no-relay", "no-relay", BOOL, no_relay, NULL, 0, 0, NULL, NULL, \
    CLI_CLIENT, 0,                                                             \
    "never connect to or accept peers through the broker's relay")            \
  X(LIST, "-list", NULL, BOOL, list, NULL, 0, 0, NULL, NULL, CLI_ANY, 0,       \
    "print the names in the registry and exit")                               \
  X(RELEASE, "-release", NULL, TEXT, release, "NAME", 0, 0, NULL, NULL,        \
    CLI_ANY, 0, "release NAME in the registry and exit")                      \
  X(TIMEOUT, "-timeout", "timeout", COUNT, timeout_s, "SECONDS", 1, 3600,      \
    "whole seconds 1..3600", "10", CLI_ANY, 0, "budget to reach a peer")       \
  X(PORT, "-port", "port", COUNT, port, "PORT", 1, 65535,                      \
    "a UDP port 1..65535", "any free port", CLI_CLIENT, 0,                     \
    "this client's UDP port; fix it when a router forwards a UDP port to "     \
    "this host")                                                               \
  X(METRICS, "-metrics", "metrics", ADDR, metrics, "IP:PORT", 0, 0,            \
    "HOST:PORT", "off", CLI_ANY, 0,                                            \
    "serve Prometheus metrics on this loopback TCP address (GET /metrics)")    \
  X(ADMIN, "-admin", "admin", FINGERPRINTS, admin, "FP", 0, 0,                 \
    "a key fingerprint, 64 hex digits (':' between pairs allowed)", NULL,      \
    CLI_ANY, 0,                                                                \
    "a key (fingerprint) that may read the detailed status page; "            \
    "repeatable")                                                              \
  X(STATUS, "-status", NULL, OPTIONAL_ADDR, status, "[HOST:PORT]", 0, 0,       \
    NULL, NULL, CLI_ANY, 0,                                                    \
    "print the HTTP/3 status page of a broker or client (its UDP port; "       \
    "default: this machine's client at -port, or the -server or -broker "     \
    "address), as this machine's key (-identity, or NAME.key with -name)")     \
  X(CHECK, "-check", NULL, PEER, check, "PEER", 0, 0, NULL, NULL, CLI_ANY, 0,  \
    "check how this machine reaches PEER (a -listen peer): both sides' NAT "   \
    "mapping, candidates and probes, and a verdict; exit status 0 direct, 3 "  \
    "needs relay, 4 UDP blocked, 5 PEER does not listen, 6 unknown, 7 "        \
    "refused, 1 failed. Does not disturb a client running as NAME")           \
  X(JSON, "-json", NULL, BOOL, json, NULL, 0, 0, NULL, NULL, CLI_ANY, 0,       \
    "with -status: print the raw JSON; with -check: one JSON object")         \
  X(LOG_FORMAT, "-log-format", "log-format", LOG_FORMAT, log_format,           \
    "FORMAT", 0, 0, "text or json", "text", CLI_ANY, 0,                        \
    "text or json: one object per line with the keys time, level, msg")       \
  X(LOG_LEVEL, NULL, "log-level", LOG_LEVEL, log_level, NULL, 0, 0,            \
    "error, warn, info or debug", "info", CLI_ANY, 0,                          \
    "error, warn, info or debug")                                              \
  X(FORWARD, NULL, "forward", FORWARDS, forward, NULL, 0, 0, NULL, NULL,       \
    CLI_CLIENT, 1, "SPEC [COMMAND], as a SPEC on the command line")            \
  X(SOCKS_AUTH, "-socks-auth", "socks-auth", TEXT, socks_auth, "FILE", 0, 0,   \
    NULL, NULL, CLI_CLIENT, 0,                                                 \
    "socks: forwards ask their clients for the USER:PASSWORD in FILE "        \
    "(mode 600); needed when a socks: forward binds beyond loopback")         \
  X(CONFIG, "-config", NULL, TEXT, config, "FILE", 0, 0, NULL,                 \
    CLI_DEFAULT_CONFIG ", if it exists", CLI_ANY, 0,                           \
    "read settings from FILE; flags override it")                             \
  X(VERBOSE, "-v", NULL, LEVEL_FLAG, log_level, NULL, CLI_LOG_DEBUG, 0, NULL,  \
    NULL, CLI_ANY, 0, "verbose: log every candidate check and stream")        \
  X(QUIET, "-q", NULL, LEVEL_FLAG, log_level, NULL, CLI_LOG_ERROR, 0, NULL,    \
    NULL, CLI_ANY, 0, "quiet: errors only")                                   \
  X(HELP, "-h", NULL, ACTION, help, NULL, 0, 0, NULL, NULL, CLI_ANY, 0,        \
    "this help")                                                               \
  X(VERSION, "--version", NULL, ACTION, version, NULL, 0, 0, NULL, NULL,       \
    CLI_ANY, 0, "print the version")                                          \
  X(NO_PORTMAP, "-no-portmap", "no-portmap", BOOL, no_portmap, NULL, 0, 0,     \
    NULL, NULL, CLI_CLIENT, 0,                                                 \
    "never ask the router to map our UDP port (PCP, NAT-PMP, UPnP)")           \
  X(RSH, "-rsh", NULL, BOOL, rsh, NULL, 0, 0, NULL, NULL, CLI_CLIENT, 0,       \
    "last flag: the rest is ssh's [-l USER] [-p PORT] [-o OPT] HOST "          \
    "COMMAND..., run as rsync -e, scp -S or GIT_SSH_COMMAND; runs COMMAND "    \
    "on peer HOST under its -allow-command rules; exits with its status")    \
  X(TCP_LISTEN, "-tcp-listen", "tcp-listen", SERVER, tcp_listen,               \
    "[ADDR]:PORT", 0, 0, "[ADDR]:PORT", "off", CLI_BROKER, 0,                  \
    "broker: also accept clients whose UDP is blocked over TCP here (e.g. "    \
    ":443); the same QUIC packets, framed")                                   \
  X(BROKER_TCP, "-broker-tcp", "broker-tcp", COUNT, broker_tcp, "PORT", 0,     \
    65535, "a TCP port 0..65535 (0: no TCP fallback)", "443", CLI_CLIENT, 0,   \
    "when the broker's UDP port does not answer in 3 s, also try TCP to the "  \
    "broker's host at PORT (its -tcp-listen; 0: never)")
/* clang-format on */

/* ---- the table as code ---- */

#define CLI_CONFIG_MAX_LIST 64 /* forward, allow, allow-command: each */

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

/* Flags that name a setting without being its FLAG: --help is shown next
 * to -h (|shown|); -help and -version are accepted and not shown. */
typedef struct cli_flag_alias {
  const char *alias;
  cli_setting_id id;
  int shown;
} cli_flag_alias;

extern const cli_flag_alias cli_flag_aliases[];
extern const size_t cli_flag_alias_count;

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

/* For a single-valued |s|: the line that set it in |c| (FIELD_set), 0 when
 * unset. */
size_t cli_setting_line(const cli_config *c, const cli_setting *s);

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

/* Releases everything |c| holds and makes it empty again (as after
 * cli_config_init), so it may be reused or freed twice. */
void cli_config_free(cli_config *c);

#endif
