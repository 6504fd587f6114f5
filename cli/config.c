/* The natter configuration file; the format is described in config.h. */
#include "config.h"

#include "natter.h" /* the only library header the CLI uses */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Text from the file is echoed in messages cut after this many bytes. */
#define QUOTE_MAX_IN 40
/* Each byte becomes at most 4 ("\xNN"), plus "..." and the NUL. */
#define QUOTE_BUF (QUOTE_MAX_IN * 4 + 3 + 1)

/* Edit distance up to which an unknown key gets a "did you mean". */
#define SUGGEST_MAX_DISTANCE 2

#define HINT_HASH " ('#' starts a comment only at the beginning of a line)"

typedef enum key_id {
  KEY_SERVER,
  KEY_NAME,
  KEY_BROKER,
  KEY_IDENTITY,
  KEY_BROKER_KEY,
  KEY_TIMEOUT,
  KEY_LOG_LEVEL,
  KEY_LISTEN,
  KEY_PORT,
  KEY_ALLOW,
  KEY_ALLOW_COMMAND,
  KEY_FORWARD,
  KEY_ALLOW_PEER,
  KEY_TOKEN_FILE,
  KEY_REGISTRY,
  KEY_NAME_EXPIRY,
  KEY_ADMITTED_KEYS,
  KEY_MAX_COMMANDS,
  KEY_MAX_COMMANDS_PER_PEER,
  KEY_METRICS,
  KEY_ADMIN,
  KEY_LOG_FORMAT,
  KEY_MAX_CLIENTS, /* the broker's limits, in cli_config.broker_limit order */
  KEY_MAX_PENDING,
  KEY_MAX_PER_ADDRESS,
  KEY_RETRY_ABOVE,
  KEY_RELAY,
  KEY_RELAY_RATE,
  KEY_RELAY_TOTAL,
  KEY_NO_RELAY,
  KEY_COUNT
} key_id;

static const char *const key_names[KEY_COUNT] = {
    "server",
    "name",
    "broker",
    "identity",
    "broker-key",
    "timeout",
    "log-level",
    "listen",
    "port",
    "allow",
    "allow-command",
    "forward",
    "allow-peer",
    "token-file",
    "registry",
    "name-expiry",
    "admitted-keys",
    "max-commands",
    "max-commands-per-peer",
    "metrics",
    "admin",
    "log-format",
    "max-clients",
    "max-pending",
    "max-per-address",
    "retry-above",
    "relay",
    "relay-rate",
    "relay-total",
    "no-relay",
};

/* State of one cli_config_parse() call. */
typedef struct parser {
  cli_config *c;
  const char *filename;
  size_t line; /* 1-based number of the line being parsed */
  char *err;
  size_t errlen;
} parser;

/* ---- messages ---- */

/* Writes the first |n| bytes of |s| into |out| for use inside double quotes:
 * at most QUOTE_MAX_IN of them, then "...". Non-printable and non-ASCII bytes
 * are escaped so that a message stays one line of plain text. */
static void quote(char out[QUOTE_BUF], const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t shown = n < QUOTE_MAX_IN ? n : QUOTE_MAX_IN;
  size_t o = 0;

  for (size_t i = 0; i < shown; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else if (ch >= 0x20 && ch < 0x7f) {
      out[o++] = (char)ch;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 0xf];
    }
  }
  if (shown < n) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

/* Appends |s| to the message in |err| (holding |*len| bytes), escaping
 * control bytes when |escape|; stops when full and keeps |err|
 * NUL-terminated. */
static void append(char *err, size_t errlen, size_t *len, const char *s,
                   int escape) {
  static const char hex[] = "0123456789abcdef";

  for (; *s != '\0'; s++) {
    unsigned char ch = (unsigned char)*s;
    char esc[4] = {'\\', 'x', hex[ch >> 4], hex[ch & 0xf]};
    int plain = !escape || (ch >= 0x20 && ch != 0x7f);
    size_t need = plain ? 1 : 4;

    if (*len + need >= errlen) {
      break;
    }
    if (plain) {
      err[(*len)++] = (char)ch;
    } else {
      memcpy(err + *len, esc, 4);
      *len += 4;
    }
  }
  err[*len] = '\0';
}

/* Formats "FILE:LINE: reason" (or "FILE: reason" when |line| is 0) into
 * |err|. The file name comes from the caller and may hold anything: control
 * bytes in it are escaped so that the message stays one line. */
static int vfail_at(char *err, size_t errlen, const char *filename, size_t line,
                    const char *fmt, va_list ap) {
  char reason[1024];
  char where[32];
  size_t len = 0;

  if (err == NULL || errlen == 0) {
    return -1;
  }
  vsnprintf(reason, sizeof(reason), fmt, ap);
  if (line > 0) {
    snprintf(where, sizeof(where), ":%zu: ", line);
  } else {
    snprintf(where, sizeof(where), ": ");
  }
  err[0] = '\0';
  append(err, errlen, &len, filename ? filename : "(config)", 1);
  append(err, errlen, &len, where, 0);
  append(err, errlen, &len, reason, 1);
  return -1;
}

static int fail_at(char *err, size_t errlen, const char *filename, size_t line,
                   const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail_at(err, errlen, filename, line, fmt, ap);
  va_end(ap);
  return -1;
}

/* Fails on the current line. */
static int fail(parser *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail_at(p->err, p->errlen, p->filename, p->line, fmt, ap);
  va_end(ap);
  return -1;
}

/* A hint for a value that went wrong and holds a '#': most likely the user
 * meant a trailing comment, which this format does not have. */
static const char *hash_hint(const char *value) {
  return strchr(value, '#') != NULL ? HINT_HASH : "";
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;

  if (err == NULL || errlen == 0) {
    return;
  }
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- small helpers ---- */

static int is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
         ch == '\f';
}

static char *dup_n(const char *s, size_t n) {
  char *copy = malloc(n + 1);
  if (copy != NULL) {
    memcpy(copy, s, n);
    copy[n] = '\0';
  }
  return copy;
}

static int lower(int ch) {
  return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static int equal_nocase(const char *a, const char *b) {
  while (*a != '\0' && lower((unsigned char)*a) == lower((unsigned char)*b)) {
    a++;
    b++;
  }
  return *a == '\0' && *b == '\0';
}

/* Levenshtein distance between |a| (length |n|) and the key name |b|, or
 * SUGGEST_MAX_DISTANCE + 1 when it is surely larger. Key names are short, so
 * one row on the stack is enough; a long |a| is ruled out by its length. */
static size_t edit_distance(const char *a, size_t n, const char *b) {
  size_t m = strlen(b);
  size_t row[32];

  if ((n > m ? n - m : m - n) > SUGGEST_MAX_DISTANCE || m >= 32) {
    return SUGGEST_MAX_DISTANCE + 1;
  }
  for (size_t j = 0; j <= m; j++) {
    row[j] = j;
  }
  for (size_t i = 1; i <= n; i++) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= m; j++) {
      size_t above = row[j];
      size_t cost = lower((unsigned char)a[i - 1]) == b[j - 1] ? 0 : 1;
      size_t best = diagonal + cost;
      if (above + 1 < best) {
        best = above + 1;
      }
      if (row[j - 1] + 1 < best) {
        best = row[j - 1] + 1;
      }
      row[j] = best;
      diagonal = above;
    }
  }
  return row[m];
}

static const char *suggest_key(const char *key, size_t n) {
  const char *best = NULL;
  size_t best_distance = SUGGEST_MAX_DISTANCE + 1;

  for (int k = 0; k < KEY_COUNT; k++) {
    size_t d = edit_distance(key, n, key_names[k]);
    if (d < best_distance) {
      best = key_names[k];
      best_distance = d;
    }
  }
  return best;
}

/* ---- values ---- */

/* Unquotes a value that starts with '"' in place. Returns 0 or -1. */
static int unquote(parser *p, char *value) {
  char *in = value + 1;
  char *out = value;
  char quoted[QUOTE_BUF];
  char original[QUOTE_BUF];

  /* Quoted now: the loop overwrites |value|. */
  quote(original, value, strlen(value));
  for (;;) {
    /* A backslash at the end escapes the NUL: no closing quote either. */
    if (*in == '\0' || (*in == '\\' && in[1] == '\0')) {
      return fail(p, "unterminated quote in value \"%s\": add the closing '\"'",
                  original);
    }
    if (*in == '"') {
      break;
    }
    if (*in == '\\') {
      if (in[1] != '"' && in[1] != '\\') {
        quote(quoted, in + 1, 1);
        return fail(p,
                    "unknown escape \\%s in quoted value: only \\\" and "
                    "\\\\ are escapes (write \\\\ for a backslash)",
                    quoted);
      }
      in++;
    }
    *out++ = *in++;
  }
  in++;
  while (is_space(*in)) {
    in++;
  }
  if (*in != '\0') {
    quote(quoted, in, strlen(in));
    return fail(p,
                "text \"%s\" after the closing quote: a quoted value must "
                "end the line",
                quoted);
  }
  *out = '\0';
  return 0;
}

/* Host characters as in specs: names, IPv4 addresses. */
static int is_host_char(char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* Checks the HOST of "HOST:PORT": a name, an IPv4 address or an IPv6
 * address in brackets. It is resolved later, by the library. Returns a
 * reason, or NULL when it looks right. */
static const char *host_problem(const char *host, size_t n) {
  if (n == 0) {
    return "the host is empty";
  }
  if (host[0] == '[') {
    if (n < 3 || host[n - 1] != ']') {
      return "an IPv6 address needs both brackets, as in [::1]";
    }
    for (size_t i = 1; i + 1 < n; i++) {
      char ch = host[i];
      if (!(ch == ':' || ch == '.' || (ch >= '0' && ch <= '9') ||
            (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) {
        return "what is in brackets is not an IPv6 address";
      }
    }
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if (host[i] == ':') {
      return "an IPv6 address goes in brackets, as in [::1]:10000";
    }
    if (!is_host_char(host[i])) {
      return "the host may hold only A-Z a-z 0-9 . _ - (or be [IPv6])";
    }
  }
  return NULL;
}

/* Checks "HOST:PORT" (server: "[ADDR]:PORT"). */
static int check_host_port(parser *p, const char *key, const char *value,
                           int host_optional) {
  const char *colon = strrchr(value, ':');
  const char *form = host_optional ? "[ADDR]:PORT" : "HOST:PORT";
  const char *problem = NULL;
  char quoted[QUOTE_BUF];

  quote(quoted, value, strlen(value));
  if (colon == NULL) {
    return fail(p, "bad %s \"%s\": expected %s%s%s", key, quoted, form,
                host_optional && natter_port_parse(value) != 0
                    ? " (\":PORT\" for every address)"
                    : "",
                hash_hint(value));
  }
  if (natter_port_parse(colon + 1) == 0) {
    return fail(p, "bad %s \"%s\": the port is %s; expected %s%s", key, quoted,
                colon[1] == '\0' ? "missing" : "not a number 1..65535", form,
                hash_hint(value));
  }
  if (colon != value || !host_optional) {
    problem = host_problem(value, (size_t)(colon - value));
  }
  if (problem != NULL) {
    return fail(p, "bad %s \"%s\": %s; expected %s%s", key, quoted, problem,
                form, hash_hint(value));
  }
  return 0;
}

/* An allow rule, checked by the library's own grammar (access.h). */
static int check_allow(parser *p, const char *value) {
  char quoted[QUOTE_BUF];
  char reason[300];

  if (natter_allow_rule_check(value, reason, sizeof(reason)) == 0) {
    return 0;
  }
  quote(quoted, value, strlen(value));
  return fail(p, "bad allow rule \"%s\": %s%s", quoted, reason,
              hash_hint(value));
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"yes", "true", "on", "1"};
  static const char *const no[] = {"no", "false", "off", "0"};

  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (equal_nocase(s, yes[i])) {
      *out = 1;
      return 0;
    }
    if (equal_nocase(s, no[i])) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

static int parse_log_level(const char *s, cli_log_level *out) {
  static const char *const names[] = {"error", "warn", "info", "debug"};

  for (int i = 0; i < 4; i++) {
    if (equal_nocase(s, names[i])) {
      *out = (cli_log_level)i;
      return 0;
    }
  }
  return -1;
}

int cli_parse_duration(const char *s, uint32_t *out) {
  unsigned long long v = 0;
  unsigned long mult = 1;
  const char *d = s;

  for (; *d >= '0' && *d <= '9'; d++) {
    v = v * 10 + (unsigned long long)(*d - '0');
    if (v > 0xffffffffull) {
      return -1;
    }
  }
  if (d == s) {
    return -1;
  }
  if (*d != '\0') {
    switch (*d) {
    case 's':
      break;
    case 'm':
      mult = 60;
      break;
    case 'h':
      mult = 3600;
      break;
    case 'd':
      mult = 86400;
      break;
    default:
      return -1;
    }
    if (d[1] != '\0') {
      return -1;
    }
  } else if (v != 0) {
    return -1; /* a unit is required, except for 0 */
  }
  if (v * mult > 0xffffffffull) {
    return -1;
  }
  *out = (uint32_t)(v * mult);
  return 0;
}

/* Whole seconds 1..3600, digits only. */
static int parse_timeout(const char *s, unsigned *out) {
  unsigned long value = 0;

  if (*s == '\0') {
    return -1;
  }
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9') {
      return -1;
    }
    value = value * 10 + (unsigned long)(*s - '0');
    if (value > 3600) {
      return -1;
    }
  }
  if (value < 1) {
    return -1;
  }
  *out = (unsigned)value;
  return 0;
}

/* ---- keys ---- */

/* A decimal count |min|..|max| (digits only, no sign). Returns 0 and sets
 * *out, or -1. */
static int parse_count(const char *value, unsigned long min,
                       unsigned long max, unsigned long *out) {
  unsigned long v = 0;
  const char *d = value;
  for (; *d >= '0' && *d <= '9' && v <= max; d++) {
    v = v * 10 + (unsigned long)(*d - '0');
  }
  if (*value == '\0' || *d != '\0' || v < min || v > max) {
    return -1;
  }
  *out = v;
  return 0;
}

static int set_string(parser *p, char **field, size_t *set, const char *value) {
  char *copy = strdup(value);
  if (copy == NULL) {
    return fail(p, "out of memory");
  }
  *field = copy;
  *set = p->line;
  return 0;
}

static int add_to_list(parser *p, char **list, size_t *n, const char *key,
                       const char *value) {
  if (*n >= CLI_CONFIG_MAX_LIST) {
    return fail(p, "more than %d \"%s\" lines: that is the limit",
                CLI_CONFIG_MAX_LIST, key);
  }
  list[*n] = strdup(value);
  if (list[*n] == NULL) {
    return fail(p, "out of memory");
  }
  (*n)++;
  list[*n] = NULL;
  return 0;
}

static int add_forward(parser *p, const char *value) {
  cli_config *c = p->c;
  size_t speclen = 0;
  const char *command;
  char *spec_text;
  char **argv = NULL;
  size_t argc = 0;
  int is_command = 0, uses_stdio = 0;
  char reason[512];
  char quoted[QUOTE_BUF];

  if (c->nforward >= CLI_CONFIG_MAX_LIST) {
    return fail(p, "more than %d \"forward\" lines: that is the limit",
                CLI_CONFIG_MAX_LIST);
  }
  while (value[speclen] != '\0' && !is_space(value[speclen])) {
    speclen++;
  }
  command = value + speclen;
  while (is_space(*command)) {
    command++;
  }
  spec_text = dup_n(value, speclen);
  if (spec_text == NULL) {
    return fail(p, "out of memory");
  }
  if (natter_spec_check(spec_text, &is_command, &uses_stdio, reason,
                        sizeof(reason)) != 0) {
    free(spec_text);
    return fail(p, "%s%s", reason, hash_hint(value));
  }
  quote(quoted, spec_text, speclen);
  /* As on the command line: stdin/stdout can carry one session only. */
  if (uses_stdio) {
    for (size_t i = 0; i < c->nforward; i++) {
      if (c->forward[i].spec[0] == ':') {
        free(spec_text);
        return fail(p,
                    "forward \"%s\": only one forward may use stdin/stdout "
                    "(\":PEER:...\"), and line %zu has one",
                    quoted, c->forward[i].line);
      }
    }
  }
  if (!is_command && *command != '\0') {
    free(spec_text);
    return fail(p,
                "forward \"%s\" takes no command (only a spec ending in "
                "\"PEER:\" does, as in 8022:bob: CMD ARGS...)%s",
                quoted, hash_hint(value));
  }
  if (is_command) {
    if (*command == '\0') {
      free(spec_text);
      return fail(p,
                  "forward \"%s\" needs a command after it, as in "
                  "\"%s sh -c 'cat > file'\"",
                  quoted, quoted);
    }
    if (cli_split_argv(command, &argv, &argc, reason, sizeof(reason)) != 0) {
      free(spec_text);
      return fail(p, "command of forward \"%s\": %s", quoted, reason);
    }
    if (argc == 0 || argv[0][0] == '\0') {
      free(spec_text);
      cli_argv_free(argv);
      return fail(p, "command of forward \"%s\": the program name is empty",
                  quoted);
    }
  }
  c->forward[c->nforward].spec = spec_text;
  c->forward[c->nforward].argv = argv;
  c->forward[c->nforward].argc = argc;
  c->forward[c->nforward].line = p->line;
  c->nforward++;
  return 0;
}

/* Checks |value| for |key| and stores it. |was_quoted|: the value was
 * written in double quotes. */
static int set_key(parser *p, key_id key, const char *value, int was_quoted) {
  cli_config *c = p->c;
  char quoted[QUOTE_BUF];

  quote(quoted, value, strlen(value));
  switch (key) {
  case KEY_SERVER:
    if (check_host_port(p, "server", value, 1) != 0) {
      return -1;
    }
    return set_string(p, &c->server, &c->server_set, value);
  case KEY_NAME:
    if (natter_name_check(value, NULL, 0) != 0) {
      return fail(p, "bad name \"%s\": expected 1-63 of A-Z a-z 0-9 . _ -%s",
                  quoted, hash_hint(value));
    }
    return set_string(p, &c->name, &c->name_set, value);
  case KEY_BROKER:
    if (check_host_port(p, "broker", value, 0) != 0) {
      return -1;
    }
    return set_string(p, &c->broker, &c->broker_set, value);
  case KEY_IDENTITY:
    return set_string(p, &c->identity, &c->identity_set, value);
  case KEY_BROKER_KEY:
    if (natter_fingerprint_check(value) != 0) {
      return fail(p,
                  "bad broker-key \"%s\": expected the broker's fingerprint, "
                  "64 hex digits (':' between pairs allowed), as the broker "
                  "logs it at start%s",
                  quoted, hash_hint(value));
    }
    return set_string(p, &c->broker_key, &c->broker_key_set, value);
  case KEY_TIMEOUT:
    if (parse_timeout(value, &c->timeout_s) != 0) {
      return fail(p, "bad timeout \"%s\": expected whole seconds 1..3600%s",
                  quoted, hash_hint(value));
    }
    c->timeout_set = p->line;
    return 0;
  case KEY_LOG_LEVEL:
    if (parse_log_level(value, &c->log_level) != 0) {
      return fail(p,
                  "bad log-level \"%s\": expected error, warn, info or "
                  "debug%s",
                  quoted, hash_hint(value));
    }
    c->log_level_set = p->line;
    return 0;
  case KEY_LISTEN:
  case KEY_RELAY:
  case KEY_NO_RELAY: {
    /* The yes/no keys: one parse, one message. */
    int *flag = key == KEY_LISTEN  ? &c->listen
                : key == KEY_RELAY ? &c->relay
                                   : &c->no_relay;
    size_t *set = key == KEY_LISTEN  ? &c->listen_set
                  : key == KEY_RELAY ? &c->relay_set
                                     : &c->no_relay_set;
    if (parse_bool(value, flag) != 0) {
      return fail(p,
                  "bad %s \"%s\": expected yes or no (or true/false, "
                  "on/off, 1/0)%s",
                  key_names[key], quoted, hash_hint(value));
    }
    *set = p->line;
    return 0;
  }
  case KEY_RELAY_RATE:
  case KEY_RELAY_TOTAL: {
    char *end;
    unsigned long long v;
    errno = 0;
    v = strtoull(value, &end, 10);
    if (value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0) {
      return fail(p, "bad %s \"%s\": expected a number of bytes (0: no cap)%s",
                  key_names[key], quoted, hash_hint(value));
    }
    if (key == KEY_RELAY_RATE) {
      c->relay_rate = v;
      c->relay_rate_set = p->line;
    } else {
      c->relay_total = v;
      c->relay_total_set = p->line;
    }
    return 0;
  }
  case KEY_PORT:
    c->port = natter_port_parse(value);
    if (c->port == 0) {
      return fail(p, "bad port \"%s\": expected a UDP port 1..65535%s",
                  quoted, hash_hint(value));
    }
    c->port_set = p->line;
    return 0;
  case KEY_ALLOW:
    if (check_allow(p, value) != 0) {
      return -1;
    }
    return add_to_list(p, c->allow, &c->nallow, "allow", value);
  case KEY_ALLOW_COMMAND:
    (void)was_quoted; /* a rule has words: blanks are part of it */
    {
      char reason[300];
      if (natter_allow_command_check(value, reason, sizeof(reason)) != 0) {
        return fail(p, "bad allow-command \"%s\": %s%s", quoted, reason,
                    hash_hint(value));
      }
    }
    return add_to_list(p, c->allow_command, &c->nallow_command, "allow-command",
                       value);
  case KEY_FORWARD:
    return add_forward(p, value);
  case KEY_ALLOW_PEER: {
    char reason[300];
    if (natter_allow_peer_check(value, reason, sizeof(reason)) != 0) {
      return fail(p, "bad allow-peer \"%s\": %s%s", quoted, reason,
                  hash_hint(value));
    }
    return add_to_list(p, c->allow_peer, &c->nallow_peer, "allow-peer", value);
  }
  case KEY_TOKEN_FILE:
    return set_string(p, &c->token_file, &c->token_file_set, value);
  case KEY_REGISTRY:
    return set_string(p, &c->registry, &c->registry_set, value);
  case KEY_ADMITTED_KEYS:
    return set_string(p, &c->admitted_keys, &c->admitted_keys_set, value);
  case KEY_NAME_EXPIRY:
    if (cli_parse_duration(value, &c->name_expiry_s) != 0) {
      return fail(p,
                  "bad name-expiry \"%s\": expected a duration such as "
                  "30d, 12h, 90m or 45s (0: never)%s",
                  quoted, hash_hint(value));
    }
    c->name_expiry_set = p->line;
    return 0;
  case KEY_MAX_CLIENTS:
  case KEY_MAX_PENDING:
  case KEY_MAX_PER_ADDRESS:
  case KEY_RETRY_ABOVE: {
    unsigned long v;
    unsigned long min = key == KEY_RETRY_ABOVE ? 0 : 1;
    if (parse_count(value, min, 1000000, &v) != 0) {
      return fail(p, "bad %s \"%s\": expected a number %lu..1000000%s",
                  key_names[key], quoted, min, hash_hint(value));
    }
    c->broker_limit[key - KEY_MAX_CLIENTS] = (long)v;
    c->broker_limit_set[key - KEY_MAX_CLIENTS] = p->line;
    return 0;
  }
  case KEY_MAX_COMMANDS:
  case KEY_MAX_COMMANDS_PER_PEER: {
    unsigned long v;
    if (parse_count(value, 1, 100000, &v) != 0) {
      return fail(p, "bad %s \"%s\": expected a number 1..100000%s",
                  key_names[key], quoted, hash_hint(value));
    }
    if (key == KEY_MAX_COMMANDS) {
      c->max_commands = (unsigned)v;
      c->max_commands_set = p->line;
    } else {
      c->max_commands_per_peer = (unsigned)v;
      c->max_commands_per_peer_set = p->line;
    }
    return 0;
  }
  case KEY_METRICS:
    if (check_host_port(p, "metrics", value, 0) != 0) {
      return -1;
    }
    return set_string(p, &c->metrics, &c->metrics_set, value);
  case KEY_ADMIN:
    if (natter_fingerprint_check(value) != 0) {
      return fail(p,
                  "bad admin \"%s\": expected a key fingerprint, 64 hex "
                  "digits (':' between pairs allowed)%s",
                  quoted, hash_hint(value));
    }
    return add_to_list(p, c->admin, &c->nadmin, "admin", value);
  case KEY_LOG_FORMAT:
    if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0) {
      return fail(p, "bad log-format \"%s\": expected text or json%s", quoted,
                  hash_hint(value));
    }
    return set_string(p, &c->log_format, &c->log_format_set, value);
  case KEY_COUNT:
    break;
  }
  return fail(p, "internal error: key %d", (int)key);
}

/* Returns the line that set single-valued |key| in |c|, 0 when unset or
 * when the key is repeatable. */
static size_t line_set(const cli_config *c, key_id key) {
  switch (key) {
  case KEY_SERVER:
    return c->server_set;
  case KEY_NAME:
    return c->name_set;
  case KEY_BROKER:
    return c->broker_set;
  case KEY_IDENTITY:
    return c->identity_set;
  case KEY_BROKER_KEY:
    return c->broker_key_set;
  case KEY_TIMEOUT:
    return c->timeout_set;
  case KEY_LOG_LEVEL:
    return c->log_level_set;
  case KEY_LISTEN:
    return c->listen_set;
  case KEY_RELAY:
    return c->relay_set;
  case KEY_NO_RELAY:
    return c->no_relay_set;
  case KEY_RELAY_RATE:
    return c->relay_rate_set;
  case KEY_RELAY_TOTAL:
    return c->relay_total_set;
  case KEY_PORT:
    return c->port_set;
  case KEY_TOKEN_FILE:
    return c->token_file_set;
  case KEY_REGISTRY:
    return c->registry_set;
  case KEY_NAME_EXPIRY:
    return c->name_expiry_set;
  case KEY_ADMITTED_KEYS:
    return c->admitted_keys_set;
  case KEY_MAX_COMMANDS:
    return c->max_commands_set;
  case KEY_MAX_COMMANDS_PER_PEER:
    return c->max_commands_per_peer_set;
  case KEY_METRICS:
    return c->metrics_set;
  case KEY_LOG_FORMAT:
    return c->log_format_set;
  case KEY_MAX_CLIENTS:
  case KEY_MAX_PENDING:
  case KEY_MAX_PER_ADDRESS:
  case KEY_RETRY_ABOVE:
    return c->broker_limit_set[key - KEY_MAX_CLIENTS];
  default:
    return 0;
  }
}

/* ---- lines ---- */

/* Parses one line, |buf| (NUL-terminated, no line end). */
static int parse_line(parser *p, char *buf) {
  char *start = buf;
  char *eq;
  char *key_end;
  char *value;
  char *value_end;
  char quoted[QUOTE_BUF];
  size_t keylen;
  size_t first;
  int was_quoted = 0;
  int key = -1;

  while (is_space(*start)) {
    start++;
  }
  if (*start == '\0' || *start == '#') {
    return 0;
  }

  eq = strchr(start, '=');
  if (eq == NULL) {
    size_t n = strlen(start);
    while (n > 0 && is_space(start[n - 1])) {
      n--;
    }
    for (int k = 0; k < KEY_COUNT; k++) {
      if (strlen(key_names[k]) == n && memcmp(start, key_names[k], n) == 0) {
        return fail(p, "\"%s\" needs '=' and a value, as in %s = %s",
                    key_names[k], key_names[k],
                    k == KEY_LISTEN ? "yes" : "VALUE");
      }
    }
    quote(quoted, start, n);
    return fail(p, "missing '=' in \"%s\": expected key = value", quoted);
  }

  key_end = eq;
  while (key_end > start && is_space(key_end[-1])) {
    key_end--;
  }
  keylen = (size_t)(key_end - start);
  if (keylen == 0) {
    return fail(p, "no key before '=': expected key = value");
  }
  for (int k = 0; k < KEY_COUNT; k++) {
    if (strlen(key_names[k]) == keylen &&
        memcmp(start, key_names[k], keylen) == 0) {
      key = k;
      break;
    }
  }
  if (key < 0) {
    const char *suggestion = suggest_key(start, keylen);
    quote(quoted, start, keylen);
    if (suggestion != NULL) {
      return fail(p, "unknown key \"%s\" (did you mean \"%s\"?)", quoted,
                  suggestion);
    }
    return fail(
        p,
        "unknown key \"%s\": expected one of server, name, broker, "
        "identity, broker-key, timeout, log-level, listen, port, allow, "
        "allow-command, forward, allow-peer, token-file, registry, "
        "name-expiry, admitted-keys, max-commands, "
        "max-commands-per-peer, metrics, admin, log-format, max-clients, "
        "max-pending, max-per-address, retry-above, relay, relay-rate, "
        "relay-total, no-relay",
        quoted);
  }

  first = line_set(p->c, (key_id)key);
  if (first > 0) {
    return fail(p,
                "duplicate key \"%s\" (first set on line %zu): it may "
                "appear once",
                key_names[key], first);
  }

  value = eq + 1;
  while (is_space(*value)) {
    value++;
  }
  value_end = value + strlen(value);
  while (value_end > value && is_space(value_end[-1])) {
    value_end--;
  }
  *value_end = '\0';
  if (*value == '"') {
    if (unquote(p, value) != 0) {
      return -1;
    }
    was_quoted = 1;
  }
  if (*value == '\0') {
    return fail(p, "\"%s\" has no value: expected %s = VALUE", key_names[key],
                key_names[key]);
  }
  return set_key(p, (key_id)key, value, was_quoted);
}

int cli_config_parse(cli_config *c, const char *text, size_t len,
                     const char *filename, char *err, size_t errlen) {
  parser p = {c, filename, 0, err, errlen};
  char buf[CLI_CONFIG_MAX_LINE + 1];
  size_t pos = 0;

  if (err != NULL && errlen > 0) {
    err[0] = '\0';
  }
  if (len > CLI_CONFIG_MAX_BYTES) {
    return fail_at(err, errlen, filename, 0,
                   "the file is larger than 1 MiB (%zu bytes): is it the "
                   "right file?",
                   len);
  }
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
    pos = 3;
  }
  while (pos < len) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - line) : len - pos;
    const char *nul;

    pos += n + (nl ? 1 : 0);
    p.line++;
    if (n > 0 && line[n - 1] == '\r') {
      n--;
    }
    if (n > CLI_CONFIG_MAX_LINE) {
      return fail(&p, "line is longer than %d bytes (%zu)", CLI_CONFIG_MAX_LINE,
                  n);
    }
    nul = memchr(line, '\0', n);
    if (nul != NULL) {
      return fail(&p, "NUL byte at column %zu: is this a text file?",
                  (size_t)(nul - line) + 1);
    }
    memcpy(buf, line, n);
    buf[n] = '\0';
    if (parse_line(&p, buf) != 0) {
      return -1;
    }
  }
  return 0;
}

/* ---- files ---- */

int cli_config_load(cli_config *c, const char *path, int missing_ok, char *err,
                    size_t errlen) {
  char *text = NULL;
  size_t len = 0;
  int fd;
  int rv;

  if (err != NULL && errlen > 0) {
    err[0] = '\0';
  }
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && missing_ok) {
      return 1;
    }
    return fail_at(err, errlen, path, 0, "cannot open it: %s", strerror(errno));
  }
  /* Read up to one byte past the limit, whatever fstat says: pipes and
   * /proc files have no size. */
  text = malloc(CLI_CONFIG_MAX_BYTES + 1);
  if (text == NULL) {
    close(fd);
    return fail_at(err, errlen, path, 0, "out of memory");
  }
  while (len <= CLI_CONFIG_MAX_BYTES) {
    ssize_t got = read(fd, text + len, CLI_CONFIG_MAX_BYTES + 1 - len);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0) {
      int saved = errno;
      close(fd);
      free(text);
      return fail_at(err, errlen, path, 0, "cannot read it: %s",
                     strerror(saved));
    }
    if (got == 0) {
      break;
    }
    len += (size_t)got;
  }
  close(fd);
  if (len > CLI_CONFIG_MAX_BYTES) {
    free(text);
    return fail_at(err, errlen, path, 0,
                   "the file is larger than 1 MiB: is it the right file?");
  }
  rv = cli_config_parse(c, text, len, path, err, errlen);
  free(text);
  return rv;
}

void cli_config_init(cli_config *c) {
  memset(c, 0, sizeof(*c));
}

void cli_config_free(cli_config *c) {
  if (c == NULL) {
    return;
  }
  free(c->server);
  free(c->name);
  free(c->broker);
  free(c->identity);
  free(c->broker_key);
  free(c->token_file);
  free(c->registry);
  free(c->admitted_keys);
  for (size_t i = 0; i < c->nallow_peer; i++) {
    free(c->allow_peer[i]);
  }
  free(c->metrics);
  free(c->log_format);
  for (size_t i = 0; i < c->nadmin; i++) {
    free(c->admin[i]);
  }
  for (size_t i = 0; i < c->nallow; i++) {
    free(c->allow[i]);
  }
  for (size_t i = 0; i < c->nallow_command; i++) {
    free(c->allow_command[i]);
  }
  for (size_t i = 0; i < c->nforward; i++) {
    free(c->forward[i].spec);
    cli_argv_free(c->forward[i].argv);
  }
  cli_config_init(c);
}

/* ---- commands ---- */

void cli_argv_free(char **argv) {
  if (argv == NULL) {
    return;
  }
  for (char **a = argv; *a != NULL; a++) {
    free(*a);
  }
  free(argv);
}

/* Frees the |n| first entries of |words| and the scratch word. */
static void free_words(char **words, size_t n, char *word) {
  for (size_t i = 0; i < n; i++) {
    free(words[i]);
  }
  free(word);
}

int cli_split_argv(const char *s, char ***pargv, size_t *pargc, char *err,
                   size_t errlen) {
  /* One word is never longer than the input; collect the words first and
   * allocate the array once their number is known. */
  char *words[CLI_CONFIG_MAX_ARGS];
  size_t nwords = 0;
  char *word;
  char **argv;
  char quoted[QUOTE_BUF];
  const char *p = s;

  *pargv = NULL;
  if (pargc != NULL) {
    *pargc = 0;
  }
  if (s == NULL) {
    s = "";
    p = s;
  }
  if (err != NULL && errlen > 0) {
    err[0] = '\0';
  }
  word = malloc(strlen(s) + 1);
  if (word == NULL) {
    set_err(err, errlen, "out of memory");
    return -1;
  }
  for (;;) {
    size_t n = 0;
    int quoted_part = 0; /* a quote makes a word even when empty: "" */

    while (is_space(*p)) {
      p++;
    }
    if (*p == '\0') {
      break;
    }
    while (*p != '\0' && !is_space(*p)) {
      const char *open = p;
      if (*p == '\'') {
        const char *close = strchr(p + 1, '\'');
        if (close == NULL) {
          quote(quoted, open, strlen(open));
          set_err(err, errlen, "unterminated single quote at \"%s\"", quoted);
          free_words(words, nwords, word);
          return -1;
        }
        memcpy(word + n, p + 1, (size_t)(close - p - 1));
        n += (size_t)(close - p - 1);
        p = close + 1;
        quoted_part = 1;
      } else if (*p == '"') {
        p++;
        while (*p != '"') {
          if (*p == '\0') {
            quote(quoted, open, strlen(open));
            set_err(err, errlen, "unterminated double quote at \"%s\"", quoted);
            free_words(words, nwords, word);
            return -1;
          }
          /* POSIX sh: inside "", a backslash escapes only $ ` " \ and a
           * newline (which it removes); before anything else it stays. */
          if (*p == '\\' && p[1] == '\n') {
            p += 2;
            continue;
          }
          if (*p == '\\' &&
              (p[1] == '"' || p[1] == '\\' || p[1] == '$' || p[1] == '`')) {
            p++;
          }
          word[n++] = *p++;
        }
        p++;
        quoted_part = 1;
      } else if (*p == '\\') {
        if (p[1] == '\0') {
          set_err(err, errlen,
                  "the command ends in a backslash: escape it as \\\\ or "
                  "quote it");
          free_words(words, nwords, word);
          return -1;
        }
        if (p[1] != '\n') {
          word[n++] = p[1];
        }
        p += 2;
      } else {
        word[n++] = *p++;
      }
    }
    if (n == 0 && !quoted_part) {
      continue; /* only backslash-newlines: no word, as in sh */
    }
    if (nwords == CLI_CONFIG_MAX_ARGS) {
      set_err(err, errlen, "more than %d arguments: that is the limit",
              CLI_CONFIG_MAX_ARGS);
      free_words(words, nwords, word);
      return -1;
    }
    words[nwords] = dup_n(word, n);
    if (words[nwords] == NULL) {
      set_err(err, errlen, "out of memory");
      free_words(words, nwords, word);
      return -1;
    }
    nwords++;
  }
  free(word);

  argv = malloc((nwords + 1) * sizeof(*argv));
  if (argv == NULL) {
    set_err(err, errlen, "out of memory");
    free_words(words, nwords, NULL);
    return -1;
  }
  memcpy(argv, words, nwords * sizeof(*argv));
  argv[nwords] = NULL;
  *pargv = argv;
  if (pargc != NULL) {
    *pargc = nwords;
  }
  return 0;
}
