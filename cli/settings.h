/* Every setting of natter, in one table. From it come the command-line
 * flags and their parser, the configuration file's keys, the fields of
 * cli_config (config.h), the flag list and defaults of `natter -h` (and so
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
 *   TYPE     how the value is read and checked (CLI_T_*, config.h)
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
 * The order is the order of `natter -h`. */
#ifndef NATTER_CLI_SETTINGS_H
#define NATTER_CLI_SETTINGS_H

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
    "HOST:PORT", NULL, CLI_CLIENT, 0, "the broker's address")                  \
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
    4096, "a number 1..4096", "256", CLI_CLIENT, 0,                            \
    "forwarded connections one peer may have open here at once; more wait "    \
    "for a free one")                                                          \
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
    "broker: name registry; also sqlite:///FILE, or memory: (names lost "      \
    "at exit)")                                                                \
  X(NAME_EXPIRY, "-name-expiry", "name-expiry", DURATION, name_expiry_s,       \
    "DUR", 0, 0, "a duration such as 30d, 12h, 90m or 45s (0: never)", "30d",  \
    CLI_BROKER, 0,                                                             \
    "broker: release names unused for DUR (30d, 12h, 90m, 45s; 0: never)")     \
  X(RELAY, "-relay", "relay", BOOL, relay, NULL, 0, 0, NULL, NULL,             \
    CLI_BROKER, 0,                                                             \
    "broker: relay peers that cannot punch a hole (UDP PORT+2; end-to-end "    \
    "encrypted, the broker reads nothing)")                                   \
  X(RELAY_RATE, "-relay-rate", "relay-rate", BYTES, relay_rate, "BYTES", 0, 0, \
    "a number of bytes (0: no cap)", "2000000", CLI_BROKER, 0,                 \
    "broker: relayed bytes a second per client (0: no cap)")                   \
  X(RELAY_TOTAL, "-relay-total", "relay-total", BYTES, relay_total, "BYTES",   \
    0, 0, "a number of bytes (0: no cap)", "1000000000", CLI_BROKER, 0,        \
    "broker: relayed bytes per client in all (0: no cap)")                     \
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
    CLI_ANY, 0, "print the version")
/* clang-format on */

#endif
