/* The natter configuration file; the format is described in config.h. */
#include "config.h"

#include "natter.h" /* the only library header the CLI uses */
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Edit distance up to which an unknown key gets a "did you mean". */
#define SUGGEST_MAX_DISTANCE 2

#define HINT_HASH " ('#' starts a comment only at the beginning of a line)"

/* State of one cli_config_parse() call. */
typedef struct parser {
  cli_config *c;
  const char *filename;
  size_t line; /* 1-based number of the line being parsed */
  char *err;
  size_t errlen;
} parser;

/* ---- messages ---- */

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
      size_t cost = cli_lower((unsigned char)a[i - 1]) == b[j - 1] ? 0 : 1;
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
  char quoted[CLI_QUOTE_BUF];
  char original[CLI_QUOTE_BUF];

  /* Quoted now: the loop overwrites |value|. */
  cli_quote(original, value, strlen(value));
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
        cli_quote(quoted, in + 1, 1);
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
  while (cli_is_space(*in)) {
    in++;
  }
  if (*in != '\0') {
    cli_quote(quoted, in, strlen(in));
    return fail(p,
                "text \"%s\" after the closing quote: a quoted value must "
                "end the line",
                quoted);
  }
  *out = '\0';
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
  char quoted[CLI_QUOTE_BUF];

  if (c->nforward >= CLI_CONFIG_MAX_LIST) {
    return fail(p, "more than %d \"forward\" lines: that is the limit",
                CLI_CONFIG_MAX_LIST);
  }
  while (value[speclen] != '\0' && !cli_is_space(value[speclen])) {
    speclen++;
  }
  command = value + speclen;
  while (cli_is_space(*command)) {
    command++;
  }
  spec_text = cli_dup_n(value, speclen);
  if (spec_text == NULL) {
    return fail(p, "out of memory");
  }
  if (natter_spec_check(spec_text, &is_command, &uses_stdio, reason,
                        sizeof(reason)) != 0) {
    free(spec_text);
    return fail(p, "%s%s", reason, hash_hint(value));
  }
  cli_quote(quoted, spec_text, speclen);
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
  char quoted[CLI_QUOTE_BUF];
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
    cli_quote(quoted, value, strlen(value));
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
  char quoted[CLI_QUOTE_BUF];
  size_t keylen;
  const cli_setting *setting;

  while (cli_is_space(*start)) {
    start++;
  }
  if (*start == '\0' || *start == '#') {
    return 0;
  }

  eq = strchr(start, '=');
  if (eq == NULL) {
    size_t n = strlen(start);
    while (n > 0 && cli_is_space(start[n - 1])) {
      n--;
    }
    const cli_setting *s = cli_setting_by_key(start, n);
    if (s != NULL) {
      return fail(p, "\"%s\" needs '=' and a value, as in %s = %s", s->key,
                  s->key, s->type == CLI_T_BOOL ? "yes" : "VALUE");
    }
    cli_quote(quoted, start, n);
    return fail(p, "missing '=' in \"%s\": expected key = value", quoted);
  }

  key_end = eq;
  while (key_end > start && cli_is_space(key_end[-1])) {
    key_end--;
  }
  keylen = (size_t)(key_end - start);
  if (keylen == 0) {
    return fail(p, "no key before '=': expected key = value");
  }
  setting = cli_setting_by_key(start, keylen);
  if (setting == NULL) {
    const char *suggestion = suggest_key(start, keylen);
    cli_quote(quoted, start, keylen);
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

  if (!cli_setting_is_list(setting) && cli_setting_line(p->c, setting) > 0) {
    return fail(p,
                "duplicate key \"%s\" (first set on line %zu): it may "
                "appear once",
                setting->key, cli_setting_line(p->c, setting));
  }

  value = eq + 1;
  while (cli_is_space(*value)) {
    value++;
  }
  value_end = value + strlen(value);
  while (value_end > value && cli_is_space(value_end[-1])) {
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
