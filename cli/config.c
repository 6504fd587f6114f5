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

/* The table of settings.h as data: offsets of each field and its
 * FIELD_set or nFIELD. */
#define CLI_SET_OFF_(f) offsetof(cli_config, f##_set)
#define CLI_COUNT_OFF_(f) offsetof(cli_config, n##f)
#define CLI_SET_OFF_TEXT CLI_SET_OFF_
#define CLI_SET_OFF_SERVER CLI_SET_OFF_
#define CLI_SET_OFF_ADDR CLI_SET_OFF_
#define CLI_SET_OFF_NAME CLI_SET_OFF_
#define CLI_SET_OFF_FINGERPRINT CLI_SET_OFF_
#define CLI_SET_OFF_PEER CLI_SET_OFF_
#define CLI_SET_OFF_LOG_FORMAT CLI_SET_OFF_
#define CLI_SET_OFF_OPTIONAL_ADDR CLI_SET_OFF_
#define CLI_SET_OFF_BOOL CLI_SET_OFF_
#define CLI_SET_OFF_ACTION CLI_SET_OFF_
#define CLI_SET_OFF_COUNT CLI_SET_OFF_
#define CLI_SET_OFF_BYTES CLI_SET_OFF_
#define CLI_SET_OFF_DURATION CLI_SET_OFF_
#define CLI_SET_OFF_LOG_LEVEL CLI_SET_OFF_
#define CLI_SET_OFF_LEVEL_FLAG CLI_SET_OFF_
#define CLI_SET_OFF_ALLOW_RULES CLI_COUNT_OFF_
#define CLI_SET_OFF_COMMAND_RULES CLI_COUNT_OFF_
#define CLI_SET_OFF_PEER_RULES CLI_COUNT_OFF_
#define CLI_SET_OFF_FINGERPRINTS CLI_COUNT_OFF_
#define CLI_SET_OFF_FORWARDS CLI_COUNT_OFF_

const cli_setting cli_settings[CLI_S_COUNT] = {
#define X(id, flag, key, type, field, arg, min, max, expect, def, scope,       \
          reload, help)                                                        \
  {flag,                                                                       \
   key,                                                                        \
   CLI_T_##type,                                                               \
   offsetof(cli_config, field),                                                \
   CLI_SET_OFF_##type(field),                                                  \
   arg,                                                                        \
   min,                                                                        \
   max,                                                                        \
   expect,                                                                     \
   def,                                                                        \
   scope,                                                                      \
   reload,                                                                     \
   help},
    CLI_SETTINGS(X)
#undef X
};

/* Flags that name a setting without being its FLAG: --help is shown next
 * to -h; -help and -version are accepted and not shown. */
static const struct {
  const char *alias;
  cli_setting_id id;
  int shown;
} flag_aliases[] = {
    {"--help", CLI_S_HELP, 1},
    {"-help", CLI_S_HELP, 0},
    {"-version", CLI_S_VERSION, 0},
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

  for (int i = 0; i < CLI_S_COUNT; i++) {
    const char *name = cli_settings[i].key;
    size_t d = name ? edit_distance(key, n, name) : SUGGEST_MAX_DISTANCE + 1;
    if (d < best_distance) {
      best = name;
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

/* Checks "HOST:PORT" (server: "[ADDR]:PORT"): 0, or -1 with why. */
static int check_host_port(const char *value, int host_optional, char *why,
                           size_t whylen) {
  const char *colon = strrchr(value, ':');
  const char *form = host_optional ? "[ADDR]:PORT" : "HOST:PORT";
  const char *problem = NULL;

  if (colon == NULL) {
    set_err(why, whylen, "expected %s%s", form,
            host_optional && natter_port_parse(value) != 0
                ? " (\":PORT\" for every address)"
                : "");
    return -1;
  }
  if (natter_port_parse(colon + 1) == 0) {
    set_err(why, whylen, "the port is %s; expected %s",
            colon[1] == '\0' ? "missing" : "not a number 1..65535", form);
    return -1;
  }
  if (colon != value || !host_optional) {
    problem = host_problem(value, (size_t)(colon - value));
  }
  if (problem != NULL) {
    set_err(why, whylen, "%s; expected %s", problem, form);
    return -1;
  }
  return 0;
}

static int parse_bool(const char *s, unsigned long long *out) {
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

static int parse_log_level(const char *s, unsigned long long *out) {
  static const char *const names[] = {"error", "warn", "info", "debug"};

  for (int i = 0; i < 4; i++) {
    if (equal_nocase(s, names[i])) {
      *out = (unsigned long long)i;
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

/* A decimal count |min|..|max| (digits only, no sign). Returns 0 and sets
 * *out, or -1. */
static int parse_count(const char *value, unsigned long long min,
                       unsigned long long max, unsigned long long *out) {
  unsigned long long v = 0;
  const char *d = value;
  for (; *d >= '0' && *d <= '9' && v <= max; d++) {
    v = v * 10 + (unsigned long long)(*d - '0');
  }
  if (*value == '\0' || *d != '\0' || v < min || v > max) {
    return -1;
  }
  *out = v;
  return 0;
}

/* Any unsigned 64-bit number, digits only. */
static int parse_bytes(const char *value, unsigned long long *out) {
  char *end;
  errno = 0;
  *out = strtoull(value, &end, 10);
  return value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0 ? -1
                                                                        : 0;
}

/* ---- settings ---- */

const cli_setting *cli_setting_by_flag(const char *flag) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    if (cli_settings[i].flag && strcmp(flag, cli_settings[i].flag) == 0) {
      return &cli_settings[i];
    }
  }
  for (size_t i = 0; i < sizeof(flag_aliases) / sizeof(flag_aliases[0]); i++) {
    if (strcmp(flag, flag_aliases[i].alias) == 0) {
      return &cli_settings[flag_aliases[i].id];
    }
  }
  return NULL;
}

const cli_setting *cli_setting_by_key(const char *key, size_t n) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const char *k = cli_settings[i].key;
    if (k && strlen(k) == n && memcmp(k, key, n) == 0) {
      return &cli_settings[i];
    }
  }
  return NULL;
}

int cli_setting_is_list(const cli_setting *s) {
  return s->type >= CLI_T_ALLOW_RULES;
}

const char *cli_setting_label(const cli_setting *s) {
  return s->type == CLI_T_ALLOW_RULES ? "allow rule" : s->key;
}

#define FIELD(c, s, T) ((T *)((char *)(c) + (s)->off))
#define SET(c, s) ((size_t *)((char *)(c) + (s)->set_off))
#define CFIELD(c, s, T) ((T const *)((const char *)(c) + (s)->off))
#define CSET(c, s) ((const size_t *)((const char *)(c) + (s)->set_off))

static int is_string(const cli_setting *s) {
  return s->type <= CLI_T_OPTIONAL_ADDR;
}

int cli_setting_in_use(const cli_config *c, const cli_setting *s) {
  if (cli_setting_is_list(s)) {
    return *CSET(c, s) > 0;
  }
  if (s->type == CLI_T_BOOL) {
    return *CSET(c, s) > 0 && *CFIELD(c, s, unsigned long long) != 0;
  }
  return *CSET(c, s) > 0;
}

/* Replaces a string field by a copy of |value| (which may be NULL). */
static int store_string(char **field, const char *value) {
  char *copy = NULL;
  if (value != NULL && (copy = strdup(value)) == NULL) {
    return -1;
  }
  free(*field);
  *field = copy;
  return 0;
}

/* Checks one value of a single-valued or list setting; 0, or -1 with
 * why. Numbers land in *num. */
static int check_value(const cli_setting *s, const char *value, int from_file,
                       unsigned long long *num, char *why, size_t whylen) {
  uint32_t seconds;
  int bad = 0;

  switch (s->type) {
  case CLI_T_SERVER:
  case CLI_T_ADDR:
    return from_file
               ? check_host_port(value, s->type == CLI_T_SERVER, why, whylen)
               : 0;
  case CLI_T_NAME:
    bad = from_file && natter_name_check(value, NULL, 0) != 0;
    break;
  case CLI_T_FINGERPRINT:
    bad = from_file && natter_fingerprint_check(value) != 0;
    break;
  case CLI_T_FINGERPRINTS:
    bad = natter_fingerprint_check(value) != 0;
    break;
  case CLI_T_LOG_FORMAT:
    bad = strcmp(value, "text") != 0 && strcmp(value, "json") != 0;
    break;
  case CLI_T_PEER:
    return natter_name_check(value, why, whylen) != 0 ? -1 : 0;
  case CLI_T_ALLOW_RULES:
    return natter_allow_rule_check(value, why, whylen) != 0 ? -1 : 0;
  case CLI_T_COMMAND_RULES:
    return natter_allow_command_check(value, why, whylen) != 0 ? -1 : 0;
  case CLI_T_PEER_RULES:
    return natter_allow_peer_check(value, why, whylen) != 0 ? -1 : 0;
  case CLI_T_BOOL:
    bad = parse_bool(value, num) != 0;
    break;
  case CLI_T_COUNT:
    bad = parse_count(value, s->min, s->max, num) != 0;
    break;
  case CLI_T_BYTES:
    bad = parse_bytes(value, num) != 0;
    break;
  case CLI_T_DURATION:
    bad = cli_parse_duration(value, &seconds) != 0;
    *num = seconds;
    break;
  case CLI_T_LOG_LEVEL:
    bad = parse_log_level(value, num) != 0;
    break;
  default:
    break;
  }
  if (bad) {
    set_err(why, whylen, "expected %s",
            s->expect               ? s->expect
            : s->type == CLI_T_BOOL ? "yes or no (or true/false, on/off, 1/0)"
                                    : "a value");
    return -1;
  }
  return 0;
}

int cli_setting_set(cli_config *c, const cli_setting *s, const char *value,
                    size_t line, int from_file, char *why, size_t whylen) {
  unsigned long long num = 1;

  if (why != NULL && whylen > 0) {
    why[0] = '\0';
  }
  if (s->type == CLI_T_LEVEL_FLAG) {
    num = s->min; /* the level this flag stands for */
  } else if (value != NULL &&
             check_value(s, value, from_file, &num, why, whylen) != 0) {
    return -1;
  }
  if (cli_setting_is_list(s)) {
    char **list = FIELD(c, s, char *);
    size_t *n = SET(c, s);
    if (s->type == CLI_T_FORWARDS || value == NULL) {
      return -1;
    }
    if (*n >= CLI_CONFIG_MAX_LIST) {
      return -2;
    }
    if ((list[*n] = strdup(value)) == NULL) {
      set_err(why, whylen, "out of memory");
      return -1;
    }
    list[++*n] = NULL;
    return 0;
  }
  if (is_string(s)) {
    if (store_string(FIELD(c, s, char *), value) != 0) {
      set_err(why, whylen, "out of memory");
      return -1;
    }
  } else {
    *FIELD(c, s, unsigned long long) = num;
  }
  *SET(c, s) = line;
  return 0;
}

static void free_forwards(cli_forward *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(f[i].spec);
    cli_argv_free(f[i].argv);
  }
}

static char **copy_argv(char *const *argv) {
  size_t n = 0;
  char **copy;
  while (argv[n] != NULL) {
    n++;
  }
  if ((copy = calloc(n + 1, sizeof(*copy))) == NULL) {
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if ((copy[i] = strdup(argv[i])) == NULL) {
      cli_argv_free(copy);
      return NULL;
    }
  }
  return copy;
}

/* Puts copies of |under|'s |nadd| forwards before |c|'s. */
static int overlay_forwards(cli_config *c, const cli_config *under) {
  size_t nadd = under->nforward;
  if (nadd == 0) {
    return 0;
  }
  if (c->nforward + nadd > CLI_CONFIG_MAX_LIST) {
    return -1;
  }
  memmove(c->forward + nadd, c->forward, c->nforward * sizeof(c->forward[0]));
  memset(c->forward, 0, nadd * sizeof(c->forward[0]));
  c->nforward += nadd;
  for (size_t i = 0; i < nadd; i++) {
    const cli_forward *f = &under->forward[i];
    c->forward[i] = *f;
    c->forward[i].spec = strdup(f->spec);
    c->forward[i].argv = f->argv ? copy_argv(f->argv) : NULL;
    if (!c->forward[i].spec || (f->argv && !c->forward[i].argv)) {
      return -1;
    }
  }
  return 0;
}

int cli_config_overlay(cli_config *c, const cli_config *under,
                       const cli_setting **full) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    if (s->type == CLI_T_FORWARDS) {
      if (overlay_forwards(c, under) != 0) {
        goto fail;
      }
    } else if (cli_setting_is_list(s)) {
      char **list = FIELD(c, s, char *);
      char *const *add = CFIELD(under, s, char *);
      size_t *n = SET(c, s), nadd = *CSET(under, s);
      if (nadd == 0) {
        continue;
      }
      if (*n + nadd > CLI_CONFIG_MAX_LIST) {
        goto fail;
      }
      memmove(list + nadd, list, (*n + 1) * sizeof(*list));
      memset(list, 0, nadd * sizeof(*list));
      *n += nadd;
      for (size_t j = 0; j < nadd; j++) {
        if ((list[j] = strdup(add[j])) == NULL) {
          goto fail;
        }
      }
    } else if (s->type != CLI_T_LEVEL_FLAG && *SET(c, s) == 0 &&
               *CSET(under, s) > 0) {
      if (is_string(s)) {
        if (store_string(FIELD(c, s, char *), *CFIELD(under, s, char *)) != 0) {
          goto fail;
        }
      } else {
        *FIELD(c, s, unsigned long long) =
            *CFIELD(under, s, unsigned long long);
      }
      *SET(c, s) = *CSET(under, s);
    }
    continue;
  fail:
    if (full != NULL) {
      *full = s;
    }
    return -1;
  }
  return 0;
}

int cli_config_add_forward(cli_config *c, const char *spec, char *const *argv,
                           size_t line) {
  cli_forward *f;
  if (c->nforward >= CLI_CONFIG_MAX_LIST) {
    return -2;
  }
  f = &c->forward[c->nforward];
  memset(f, 0, sizeof(*f));
  f->spec = strdup(spec);
  f->argv = argv ? copy_argv(argv) : NULL;
  if (f->spec == NULL || (argv && f->argv == NULL)) {
    free(f->spec);
    cli_argv_free(f->argv);
    return -1;
  }
  while (f->argv && f->argv[f->argc] != NULL) {
    f->argc++;
  }
  f->line = line;
  c->nforward++;
  return 0;
}

int cli_forward_equal(const cli_forward *a, const cli_forward *b) {
  if (strcmp(a->spec, b->spec) != 0 || a->argc != b->argc) {
    return 0;
  }
  for (size_t i = 0; i < a->argc; i++) {
    if (strcmp(a->argv[i], b->argv[i]) != 0) {
      return 0;
    }
  }
  return 1;
}

int cli_setting_equal(const cli_config *a, const cli_config *b,
                      const cli_setting *s) {
  if (s->type == CLI_T_FORWARDS) {
    if (a->nforward != b->nforward) {
      return 0;
    }
    for (size_t i = 0; i < a->nforward; i++) {
      if (!cli_forward_equal(&a->forward[i], &b->forward[i])) {
        return 0;
      }
    }
    return 1;
  }
  if (cli_setting_is_list(s)) {
    if (*CSET(a, s) != *CSET(b, s)) {
      return 0;
    }
    for (size_t i = 0; i < *CSET(a, s); i++) {
      if (strcmp(CFIELD(a, s, char *)[i], CFIELD(b, s, char *)[i]) != 0) {
        return 0;
      }
    }
    return 1;
  }
  if ((*CSET(a, s) > 0) != (*CSET(b, s) > 0)) {
    return 0;
  }
  if (is_string(s)) {
    const char *x = *CFIELD(a, s, char *), *y = *CFIELD(b, s, char *);
    return x == y || (x && y && strcmp(x, y) == 0);
  }
  return *CFIELD(a, s, unsigned long long) == *CFIELD(b, s, unsigned long long);
}

/* ---- natter -h ---- */

#define USAGE_WIDTH 79
#define USAGE_TEXT_COLUMN 23

/* Writes |text| from column |col| on, wrapped to USAGE_WIDTH with
 * continuation lines at USAGE_TEXT_COLUMN. A word starting with '-' never
 * starts a line: readers of `natter -h` take such a line for a flag. */
static void usage_wrap(FILE *out, size_t col, const char *text) {
  const char *w = text;
  int first = 1;

  while (*w != '\0') {
    const char *end = w;
    while (*end == ' ') {
      end++;
    }
    /* One unit: a word, or a word and the '-' words that follow it. */
    do {
      while (*end == ' ') {
        end++;
      }
      while (*end != '\0' && *end != ' ') {
        end++;
      }
    } while (end[0] == ' ' && end[1] == '-');
    size_t len = (size_t)(end - w);
    while (len > 0 && *w == ' ') {
      w++;
      len--;
    }
    if (!first && col + 1 + len > USAGE_WIDTH) {
      fprintf(out, "\n%*s", USAGE_TEXT_COLUMN, "");
      col = USAGE_TEXT_COLUMN;
    } else if (!first) {
      fputc(' ', out);
      col++;
    }
    fwrite(w, 1, len, out);
    col += len;
    first = 0;
    w = end;
  }
  fputc('\n', out);
}

void cli_settings_usage(FILE *out) {
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    char head[80], text[1024];
    int n;

    if (s->flag == NULL) {
      continue;
    }
    n = snprintf(head, sizeof(head), "  %s", s->flag);
    for (size_t j = 0; j < sizeof(flag_aliases) / sizeof(flag_aliases[0]);
         j++) {
      if (flag_aliases[j].shown && flag_aliases[j].id == (cli_setting_id)i) {
        n += snprintf(head + n, sizeof(head) - (size_t)n, ", %s",
                      flag_aliases[j].alias);
      }
    }
    if (s->arg != NULL) {
      snprintf(head + n, sizeof(head) - (size_t)n, " %s", s->arg);
    }
    if (s->def != NULL) {
      snprintf(text, sizeof(text), "%s (default %s)", s->help, s->def);
    } else {
      snprintf(text, sizeof(text), "%s", s->help);
    }
    n = fprintf(out, "%-*s", USAGE_TEXT_COLUMN - 2, head);
    fputs("  ", out);
    usage_wrap(out, (size_t)n + 2, text);
  }
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
/* Checks |value| for the key |s| and stores it. */
static int set_key(parser *p, const cli_setting *s, const char *value) {
  char quoted[QUOTE_BUF];
  char why[512];
  int rv;

  if (s->type == CLI_T_FORWARDS) {
    return add_forward(p, value);
  }
  rv = cli_setting_set(p->c, s, value, p->line, 1, why, sizeof(why));
  if (rv == -2) {
    return fail(p, "more than %d \"%s\" lines: that is the limit",
                CLI_CONFIG_MAX_LIST, s->key);
  }
  if (rv != 0) {
    quote(quoted, value, strlen(value));
    return fail(p, "bad %s \"%s\": %s%s", cli_setting_label(s), quoted, why,
                hash_hint(value));
  }
  return 0;
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
  const cli_setting *setting;

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
    const cli_setting *s = cli_setting_by_key(start, n);
    if (s != NULL) {
      return fail(p, "\"%s\" needs '=' and a value, as in %s = %s", s->key,
                  s->key, s->type == CLI_T_BOOL ? "yes" : "VALUE");
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
  setting = cli_setting_by_key(start, keylen);
  if (setting == NULL) {
    const char *suggestion = suggest_key(start, keylen);
    quote(quoted, start, keylen);
    if (suggestion != NULL) {
      return fail(p, "unknown key \"%s\" (did you mean \"%s\"?)", quoted,
                  suggestion);
    }
    /* Not a list of every key: it would grow with each setting. */
    return fail(p,
                "unknown key \"%s\": expected one of the keys of "
                "natter.conf(5)",
                quoted);
  }

  if (!cli_setting_is_list(setting) && *CSET(p->c, setting) > 0) {
    return fail(p,
                "duplicate key \"%s\" (first set on line %zu): it may "
                "appear once",
                setting->key, *CSET(p->c, setting));
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
  if (*value == '"' && unquote(p, value) != 0) {
    return -1;
  }
  if (*value == '\0') {
    return fail(p, "\"%s\" has no value: expected %s = VALUE", setting->key,
                setting->key);
  }
  return set_key(p, setting, value);
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
  for (int i = 0; i < CLI_S_COUNT; i++) {
    const cli_setting *s = &cli_settings[i];
    if (s->type == CLI_T_FORWARDS) {
      free_forwards(c->forward, c->nforward);
    } else if (cli_setting_is_list(s)) {
      for (size_t j = 0; j < *SET(c, s); j++) {
        free(FIELD(c, s, char *)[j]);
      }
    } else if (is_string(s)) {
      free(*FIELD(c, s, char *));
    }
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
