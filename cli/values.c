/* One value of a setting, read and checked by its type (settings.h). */
#include "values.h"

#include "natter.h" /* the only library header the CLI uses */
#include "text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
    cli_set_err(why, whylen, "expected %s%s", form,
                host_optional && natter_port_parse(value) != 0
                    ? " (\":PORT\" for every address)"
                    : "");
    return -1;
  }
  if (natter_port_parse(colon + 1) == 0) {
    cli_set_err(why, whylen, "the port is %s; expected %s",
                colon[1] == '\0' ? "missing" : "not a number 1..65535", form);
    return -1;
  }
  if (colon != value || !host_optional) {
    problem = host_problem(value, (size_t)(colon - value));
  }
  if (problem != NULL) {
    cli_set_err(why, whylen, "%s; expected %s", problem, form);
    return -1;
  }
  return 0;
}

/* "HOST:PORT[,HOST:PORT...]": the brokers of one network. */
static int check_broker_list(const char *value, char *why, size_t whylen) {
  char item[300];
  const char *p = value;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    while (len && (*p == ' ' || *p == '\t')) {
      p++;
      len--;
    }
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
      len--;
    }
    if (len == 0 || len >= sizeof(item)) {
      cli_set_err(why, whylen,
                  "%s item in the list of brokers; expected "
                  "HOST:PORT[,HOST:PORT...]",
                  len ? "a too long" : "an empty");
      return -1;
    }
    memcpy(item, p, len);
    item[len] = '\0';
    if (check_host_port(item, 0, why, whylen) != 0) {
      return -1;
    }
    if (!comma) {
      return 0;
    }
    p = comma + 1;
  }
}

static int parse_bool(const char *s, unsigned long long *out) {
  static const char *const yes[] = {"yes", "true", "on", "1"};
  static const char *const no[] = {"no", "false", "off", "0"};

  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (cli_equal_nocase(s, yes[i])) {
      *out = 1;
      return 0;
    }
    if (cli_equal_nocase(s, no[i])) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

static int parse_log_level(const char *s, unsigned long long *out) {
  static const char *const names[] = {"error", "warn", "info", "debug"};

  for (int i = 0; i < 4; i++) {
    if (cli_equal_nocase(s, names[i])) {
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

/* Checks one value of a single-valued or list setting; 0, or -1 with
 * why. Numbers land in *num. */
int cli_value_check(const cli_setting *s, const char *value, int from_file,
                    unsigned long long *num, char *why, size_t whylen) {
  uint32_t seconds;
  int bad = 0;

  switch (s->type) {
  case CLI_T_SERVER:
  case CLI_T_ADDR:
    if (from_file && s == &cli_settings[CLI_S_BROKER]) {
      return check_broker_list(value, why, whylen);
    }
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
    cli_set_err(why, whylen, "expected %s",
                s->expect ? s->expect
                : s->type == CLI_T_BOOL
                    ? "yes or no (or true/false, on/off, 1/0)"
                    : "a value");
    return -1;
  }
  return 0;
}
