/* A listener's access rules: parsing and decisions (see access.h). */
#include "access.h"

#include "natter.h"
#include "spec.h" /* nt_port_parse, NT_HOST_MAX: as in specs */

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#define HOST_MAX NT_HOST_MAX
/* Longest text an IPv6 address can take, with an embedded IPv4 address:
 * INET6_ADDRSTRLEN counts the NUL. */
#define V6_TEXT_MAX (INET6_ADDRSTRLEN - 1)

#define TARGET_FORMS                                                           \
  "expected HOST, HOST:PORT, HOST:*, [IPv6], [IPv6]:PORT or *"

typedef struct target_rule {
  TAILQ_ENTRY(target_rule) link;
  int any_target;          /* "*" */
  int is_v6;               /* host is an IPv6 address, in v6 */
  unsigned char v6[16];    /* network order */
  char host[HOST_MAX + 1]; /* a name or IPv4 address when !is_v6 */
  uint16_t port;           /* 0: every port */
} target_rule;

typedef struct command_rule {
  TAILQ_ENTRY(command_rule) link;
  int any_program; /* "*" */
  char *program;   /* compared with argv[0] when !any_program */
} command_rule;

TAILQ_HEAD(target_rules, target_rule);
TAILQ_HEAD(command_rules, command_rule);

struct nt_access {
  struct target_rules targets;
  struct command_rules commands;
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the reason into |err| when there is room; returns
 * NATTER_ERR_INVALID so that callers can return it. */
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (err && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return NATTER_ERR_INVALID;
}

static int is_host_char(char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* Parses the |n| bytes at |s| as an IPv6 address into |out|. */
static int v6_parse(const char *s, size_t n, unsigned char out[16]) {
  char text[V6_TEXT_MAX + 1];

  if (n == 0 || n > V6_TEXT_MAX) {
    return -1;
  }
  memcpy(text, s, n);
  text[n] = '\0';
  return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
}

/* Parses a target rule into |r| (zeroed by the caller). */
static int parse_target(const char *text, target_rule *r, char *err,
                        size_t errlen) {
  const char *host = text, *port = NULL, *colon;
  size_t hostlen;

  if (!text || text[0] == '\0') {
    return fail(err, errlen, "the rule is empty; " TARGET_FORMS);
  }
  if (strcmp(text, "*") == 0) {
    r->any_target = 1;
    return 0;
  }
  if (text[0] == '[') {
    const char *end = strchr(text, ']');
    if (!end) {
      return fail(err, errlen,
                  "an IPv6 address needs both brackets, as in [::1]; "
                  "" TARGET_FORMS);
    }
    if (end[1] != '\0' && end[1] != ':') {
      return fail(err, errlen,
                  "text after ']' that is not :PORT; " TARGET_FORMS);
    }
    if (v6_parse(text + 1, (size_t)(end - text - 1), r->v6) != 0) {
      return fail(err, errlen,
                  "what is in brackets is not an IPv6 address; " TARGET_FORMS);
    }
    r->is_v6 = 1;
    port = end[1] == ':' ? end + 2 : NULL;
  } else if ((colon = strchr(text, ':')) != NULL && strchr(colon + 1, ':')) {
    /* Two or more ':': a bare IPv6 address, all of it. */
    if (v6_parse(text, strlen(text), r->v6) != 0) {
      return fail(err, errlen,
                  "not an IPv6 address (a rule with two or more ':' is "
                  "one; write [IPv6]:PORT for a port); " TARGET_FORMS);
    }
    r->is_v6 = 1;
  } else {
    hostlen = colon ? (size_t)(colon - text) : strlen(text);
    port = colon ? colon + 1 : NULL;
    if (hostlen == 0) {
      return fail(err, errlen, "the host is empty; " TARGET_FORMS);
    }
    if (hostlen == 1 && host[0] == '*') {
      return fail(err, errlen,
                  "'*' stands alone (it allows every target) and is not a "
                  "host; " TARGET_FORMS);
    }
    if (hostlen > HOST_MAX) {
      return fail(err, errlen,
                  "the host is longer than %d characters; " TARGET_FORMS,
                  HOST_MAX);
    }
    for (size_t i = 0; i < hostlen; i++) {
      if (!is_host_char(host[i])) {
        return fail(err, errlen,
                    "the host may hold only A-Z a-z 0-9 . _ - (or be an "
                    "IPv6 address); " TARGET_FORMS);
      }
    }
    memcpy(r->host, host, hostlen);
    r->host[hostlen] = '\0';
  }
  if (port && port[0] == '\0') {
    return fail(err, errlen,
                "the port is missing (write HOST or HOST:* for every "
                "port); " TARGET_FORMS);
  }
  if (port && strcmp(port, "*") != 0) {
    r->port = nt_port_parse(port);
    if (r->port == 0) {
      return fail(err, errlen,
                  "the port is not a number 1..65535 or *; " TARGET_FORMS);
    }
  }
  return 0;
}

static int parse_command(const char *text, int *any, char *err, size_t errlen) {
  size_t n;

  *any = 0;
  if (!text || text[0] == '\0') {
    return fail(err, errlen,
                "the program is empty; expected a program name or path, "
                "or *");
  }
  if (strcmp(text, "*") == 0) {
    *any = 1;
    return 0;
  }
  n = strlen(text);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch < 0x20 || ch == 0x7f) {
      return fail(err, errlen, "the program holds a control character");
    }
    if (ch == '*') {
      return fail(err, errlen,
                  "'*' stands alone (it allows any program); a rule has no "
                  "patterns");
    }
  }
  if (text[0] == ' ' || text[n - 1] == ' ') {
    return fail(err, errlen,
                "the program starts or ends with a blank; it is matched "
                "exactly against the command's first word");
  }
  return 0;
}

/* ---- rule sets ---- */

nt_access *nt_access_new(void) {
  nt_access *acc = calloc(1, sizeof(*acc));
  if (acc) {
    TAILQ_INIT(&acc->targets);
    TAILQ_INIT(&acc->commands);
  }
  return acc;
}

void nt_access_free(nt_access *acc) {
  target_rule *t;
  command_rule *c;

  if (!acc) {
    return;
  }
  while ((t = TAILQ_FIRST(&acc->targets)) != NULL) {
    TAILQ_REMOVE(&acc->targets, t, link);
    free(t);
  }
  while ((c = TAILQ_FIRST(&acc->commands)) != NULL) {
    TAILQ_REMOVE(&acc->commands, c, link);
    free(c->program);
    free(c);
  }
  free(acc);
}

int nt_access_check_target_rule(const char *text, char *err, size_t errlen) {
  target_rule r;
  memset(&r, 0, sizeof(r));
  return parse_target(text, &r, err, errlen);
}

int nt_access_check_command_rule(const char *text, char *err, size_t errlen) {
  int any;
  return parse_command(text, &any, err, errlen);
}

int nt_access_add_target_rule(nt_access *acc, const char *text, char *err,
                              size_t errlen) {
  target_rule *r = calloc(1, sizeof(*r));
  int rv;

  if (!r) {
    fail(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  rv = parse_target(text, r, err, errlen);
  if (rv != 0) {
    free(r);
    return rv;
  }
  TAILQ_INSERT_TAIL(&acc->targets, r, link);
  return 0;
}

int nt_access_add_command_rule(nt_access *acc, const char *text, char *err,
                               size_t errlen) {
  command_rule *r;
  int any, rv;

  rv = parse_command(text, &any, err, errlen);
  if (rv != 0) {
    return rv;
  }
  r = calloc(1, sizeof(*r));
  if (!r || (!any && !(r->program = strdup(text)))) {
    free(r);
    fail(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  r->any_program = any;
  TAILQ_INSERT_TAIL(&acc->commands, r, link);
  return 0;
}

/* ---- decisions ---- */

int nt_access_target_allowed(const nt_access *acc, const char *host,
                             uint16_t port) {
  unsigned char v6[16];
  int host_is_v6;
  const target_rule *r;

  if (!acc || !host) {
    return 0;
  }
  host_is_v6 = strchr(host, ':') && v6_parse(host, strlen(host), v6) == 0;
  TAILQ_FOREACH(r, &acc->targets, link) {
    if (r->any_target) {
      return 1;
    }
    if (r->port != 0 && r->port != port) {
      continue;
    }
    if (r->is_v6 ? host_is_v6 && memcmp(r->v6, v6, sizeof(v6)) == 0
                 : strcasecmp(r->host, host) == 0) {
      return 1;
    }
  }
  return 0;
}

int nt_access_command_allowed(const nt_access *acc, const char *const *argv,
                              size_t argc) {
  const command_rule *r;

  if (!acc || !argv || argc == 0 || !argv[0]) {
    return 0;
  }
  TAILQ_FOREACH(r, &acc->commands, link) {
    if (r->any_program || strcmp(r->program, argv[0]) == 0) {
      return 1;
    }
  }
  return 0;
}

int nt_access_has_target_rules(const nt_access *acc) {
  return acc && !TAILQ_EMPTY(&acc->targets);
}

int nt_access_has_command_rules(const nt_access *acc) {
  return acc && !TAILQ_EMPTY(&acc->commands);
}
