/* A listener's access rules: parsing and decisions (see access.h). */
#include "trust/access.h"

#include "natter.h"
#include "codec/spec.h" /* nt_port_parse, nt_name_valid, NT_HOST_MAX */
#include "trust/tls.h"  /* nt_fingerprint_parse, NT_FINGERPRINT_LEN */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#define HOST_MAX NT_HOST_MAX
/* Longest text an IPv6 address can take, with an embedded IPv4 address:
 * INET6_ADDRSTRLEN counts the NUL. */
#define V6_TEXT_MAX (INET6_ADDRSTRLEN - 1)

#define TARGET_FORMS                                                           \
  "expected HOST, HOST:PORT, HOST:*, [IPv6], [IPv6]:PORT or *, or a range "    \
  "IPv4/BITS[:PORT] or [IPv6/BITS][:PORT]"

/* Who a rule is for: a name, a key, both, or anyone. */
typedef struct peer_sel {
  int any;                    /* "*" */
  char name[NT_NAME_MAX + 1]; /* "" : any name */
  int has_key;
  uint8_t key[NT_FINGERPRINT_LEN];
} peer_sel;

typedef struct target_rule {
  TAILQ_ENTRY(target_rule) link;
  int scoped; /* holds only for |scope| */
  peer_sel scope;
  int any_target;          /* "*" */
  int is_v6;               /* host is an IPv6 address, in v6 */
  unsigned char v6[16];    /* network order */
  char host[HOST_MAX + 1]; /* a name or IPv4 address when !is_v6 */
  uint16_t port;           /* 0: every port */
  int cidr;                /* a range: |bits| of |v6| (is_v6) or of the
                              first 4 bytes of |v6| (IPv4) */
  unsigned bits;
} target_rule;

typedef struct command_rule {
  TAILQ_ENTRY(command_rule) link;
  int scoped;
  peer_sel scope;
  int any_command; /* "*" */
  int prefix;      /* a final '*': more arguments may follow */
  char **words;    /* NULL-terminated when !any_command */
  size_t nwords;
} command_rule;

typedef struct peer_rule {
  TAILQ_ENTRY(peer_rule) link;
  int refuse; /* "!SELECTOR" */
  peer_sel sel;
} peer_rule;

TAILQ_HEAD(target_rules, target_rule);
TAILQ_HEAD(command_rules, command_rule);
TAILQ_HEAD(peer_rules, peer_rule);

struct nt_access {
  struct target_rules targets;
  struct command_rules commands;
  struct peer_rules peers;
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

/* Parses "ADDRESS/BITS" (|n| bytes at |s|, an IPv6 address when |v6|)
 * into |r| as a range. Bits after the prefix must be 0, so that a typo
 * like 198.18.1.5/16 is not silently a wider rule than it reads. */
static int parse_cidr(const char *s, size_t n, int v6, target_rule *r,
                      char *err, size_t errlen) {
  const char *slash = memchr(s, '/', n);
  const char *b = slash + 1;
  size_t blen = n - (size_t)(slash - s) - 1;
  unsigned max = v6 ? 128 : 32, bits = 0;
  char text[V6_TEXT_MAX + 1];
  size_t alen = (size_t)(slash - s);

  if (blen == 0 || blen > 3 || (blen > 1 && b[0] == '0')) {
    return fail(err, errlen,
                "the prefix length after '/' is not a number 0..%u; "
                "" TARGET_FORMS,
                max);
  }
  for (size_t i = 0; i < blen; i++) {
    if (b[i] < '0' || b[i] > '9') {
      return fail(err, errlen,
                  "the prefix length after '/' is not a number 0..%u; "
                  "" TARGET_FORMS,
                  max);
    }
    bits = bits * 10 + (unsigned)(b[i] - '0');
  }
  if (bits > max) {
    return fail(err, errlen,
                "the prefix length after '/' is not a number 0..%u; "
                "" TARGET_FORMS,
                max);
  }
  if (alen == 0 || alen > V6_TEXT_MAX) {
    return fail(err, errlen, "no address before '/'; " TARGET_FORMS);
  }
  memcpy(text, s, alen);
  text[alen] = '\0';
  if (inet_pton(v6 ? AF_INET6 : AF_INET, text, r->v6) != 1) {
    return fail(
        err, errlen,
        v6 ? "what is before '/' is not an IPv6 address; " TARGET_FORMS
           : "what is before '/' is not an IPv4 address; " TARGET_FORMS);
  }
  for (unsigned i = bits; i < max; i++) {
    if (r->v6[i / 8] & (0x80u >> (i % 8))) {
      return fail(err, errlen,
                  "the address has bits set after the first %u: write the "
                  "range's first address (as in 198.18.1.0/24); "
                  "" TARGET_FORMS,
                  bits);
    }
  }
  r->cidr = 1;
  r->is_v6 = v6;
  r->bits = bits;
  return 0;
}

static int parse_port_part(const char *port, target_rule *r, char *err,
                           size_t errlen);

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
    if (memchr(text + 1, '/', (size_t)(end - text - 1)) != NULL) {
      if (parse_cidr(text + 1, (size_t)(end - text - 1), 1, r, err, errlen) !=
          0) {
        return NATTER_ERR_INVALID;
      }
    } else if (v6_parse(text + 1, (size_t)(end - text - 1), r->v6) != 0) {
      return fail(err, errlen,
                  "what is in brackets is not an IPv6 address; " TARGET_FORMS);
    }
    r->is_v6 = 1;
    port = end[1] == ':' ? end + 2 : NULL;
  } else if ((colon = strchr(text, ':')) != NULL && strchr(colon + 1, ':')) {
    /* Two or more ':': a bare IPv6 address, all of it. */
    if (strchr(text, '/') != NULL) {
      if (parse_cidr(text, strlen(text), 1, r, err, errlen) != 0) {
        return NATTER_ERR_INVALID;
      }
    } else if (v6_parse(text, strlen(text), r->v6) != 0) {
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
    if (memchr(host, '/', hostlen) != NULL) {
      return parse_cidr(host, hostlen, 0, r, err, errlen) != 0
                 ? NATTER_ERR_INVALID
                 : parse_port_part(port, r, err, errlen);
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
  return parse_port_part(port, r, err, errlen);
}

/* The ":PORT" part of a target rule, |port| after the ':' (NULL: none). */
static int parse_port_part(const char *port, target_rule *r, char *err,
                           size_t errlen) {
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

/* ---- peer selectors and scopes ---- */

#define PEER_FORMS "expected NAME, NAME@FINGERPRINT, @FINGERPRINT or *"

/* Parses the |n| bytes at |s| as a peer selector into |sel|. */
static int parse_sel(const char *s, size_t n, peer_sel *sel, char *err,
                     size_t errlen) {
  char buf[NT_NAME_MAX + 1 + 3 * NT_FINGERPRINT_LEN + 2];
  const char *at;

  memset(sel, 0, sizeof(*sel));
  if (n == 0) {
    return fail(err, errlen, "the peer is empty; " PEER_FORMS);
  }
  if (n == 1 && s[0] == '*') {
    sel->any = 1;
    return 0;
  }
  if (n >= sizeof(buf)) {
    return fail(err, errlen, "the peer is too long; " PEER_FORMS);
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  at = strchr(buf, '@');
  if (at) {
    buf[at - buf] = '\0';
    if (nt_fingerprint_parse(sel->key, at + 1) != 0) {
      return fail(err, errlen,
                  "the key after '@' is not a fingerprint of 64 hex digits "
                  "(as natter -id prints it); " PEER_FORMS);
    }
    sel->has_key = 1;
  }
  if (buf[0] != '\0') {
    if (!nt_name_valid(buf)) {
      return fail(err, errlen,
                  "the peer name may hold only 1-63 of A-Z a-z 0-9 . _ -; "
                  "" PEER_FORMS);
    }
    memcpy(sel->name, buf, strlen(buf) + 1); /* valid: fits */
  }
  return 0;
}

static int sel_matches(const peer_sel *sel, const nt_access_peer *peer) {
  if (sel->any) {
    return 1;
  }
  if (!peer || !peer->name) {
    return 0;
  }
  if (sel->name[0] && strcmp(sel->name, peer->name) != 0) {
    return 0;
  }
  if (sel->has_key &&
      (!peer->key || memcmp(sel->key, peer->key, NT_FINGERPRINT_LEN) != 0)) {
    return 0;
  }
  return 1;
}

/* A rule that holds for |peer|: unscoped, or scoped to a selector that
 * matches it. */
static int scope_holds(int scoped, const peer_sel *scope,
                       const nt_access_peer *peer) {
  return !scoped || sel_matches(scope, peer);
}

/* Splits "SELECTOR=RULE" off |text|: sets *rest to the rule and fills
 * |scope| when there is a scope. A scope ends at the first '=' that comes
 * before any blank or quote. */
static int split_scope(const char *text, int *scoped, peer_sel *scope,
                       const char **rest, char *err, size_t errlen) {
  size_t n = strcspn(text, "= \t'\"");
  *scoped = 0;
  *rest = text;
  if (text[n] != '=') {
    return 0;
  }
  char why[200];
  if (parse_sel(text, n, scope, why, sizeof(why)) != 0) {
    return fail(err, errlen, "bad peer before '=': %s", why);
  }
  *scoped = !scope->any; /* "*=RULE" is RULE */
  *rest = text + n + 1;
  return 0;
}

/* ---- command lines ---- */

static void free_words(char **words) {
  for (size_t i = 0; words && words[i]; i++) {
    free(words[i]);
  }
  free(words);
}

/* Parses a command rule (scope removed) into |r|: "*", or words. With
 * |r| NULL only checks. */
static int parse_command(const char *text, command_rule *r, char *err,
                         size_t errlen) {
  char **words = NULL;
  size_t n, nwords = 0;
  int prefix = 0, rv = 0;
  char *word = NULL;

  if (!text || text[0] == '\0') {
    return fail(err, errlen,
                "the program is empty; expected a command line, a prefix "
                "ending in ' *', or *");
  }
  n = strlen(text);
  if (n > NT_ACCESS_MAX_RULE) {
    return fail(err, errlen, "the rule is longer than %d bytes",
                NT_ACCESS_MAX_RULE);
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch < 0x20 || ch == 0x7f) {
      return fail(err, errlen, "the command holds a control character");
    }
  }
  if (text[0] == ' ' || text[n - 1] == ' ') {
    return fail(err, errlen,
                "the command starts or ends with a blank; words are "
                "matched exactly against the command's arguments");
  }
  if (strcmp(text, "*") == 0) {
    if (r) {
      r->any_command = 1;
    }
    return 0;
  }
  words = calloc(NT_ACCESS_MAX_WORDS + 1, sizeof(*words));
  word = malloc(n + 1);
  if (!words || !word) {
    free(words);
    free(word);
    fail(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  const char *p = text;
  while (*p && rv == 0) {
    size_t len = 0;
    int quoted = 0, star = 0;
    while (*p == ' ') {
      p++;
    }
    if (!*p) {
      break;
    }
    if (prefix) {
      rv = fail(err, errlen,
                "'*' stands alone as the last word (any further "
                "arguments); quote it ('*') for a literal star");
      break;
    }
    while (*p && *p != ' ' && rv == 0) {
      if (*p == '\'' || *p == '"') {
        const char *end = strchr(p + 1, *p);
        if (!end) {
          rv = fail(err, errlen, "a quote (%c) is not closed", *p);
          break;
        }
        memcpy(word + len, p + 1, (size_t)(end - p - 1));
        len += (size_t)(end - p - 1);
        quoted = 1;
        p = end + 1;
      } else {
        if (*p == '*') {
          star = 1;
        }
        word[len++] = *p++;
      }
    }
    if (rv != 0) {
      break;
    }
    word[len] = '\0';
    if (star) {
      if (quoted || len != 1 || nwords == 0) {
        rv = fail(err, errlen,
                  "'*' stands alone: as the whole rule (any command) or as "
                  "the last word after the program (any further "
                  "arguments); a rule has no patterns");
        break;
      }
      prefix = 1;
      continue;
    }
    if (nwords == 0 && len == 0) {
      rv = fail(err, errlen, "the program (first word) is empty");
      break;
    }
    if (nwords == NT_ACCESS_MAX_WORDS) {
      rv = fail(err, errlen, "more than %d words", NT_ACCESS_MAX_WORDS);
      break;
    }
    words[nwords] = strdup(word);
    if (!words[nwords]) {
      fail(err, errlen, "out of memory");
      rv = NATTER_ERR_NOMEM;
      break;
    }
    nwords++;
  }
  free(word);
  if (rv == 0 && nwords == 0) {
    rv = fail(err, errlen, "the program is empty");
  }
  if (rv != 0 || !r) {
    free_words(words);
    return rv;
  }
  r->words = words;
  r->nwords = nwords;
  r->prefix = prefix;
  return 0;
}

/* ---- rule sets ---- */

nt_access *nt_access_new(void) {
  nt_access *acc = calloc(1, sizeof(*acc));
  if (acc) {
    TAILQ_INIT(&acc->targets);
    TAILQ_INIT(&acc->commands);
    TAILQ_INIT(&acc->peers);
  }
  return acc;
}

static void clear_rules(nt_access *acc) {
  target_rule *t;
  command_rule *c;
  peer_rule *p;

  while ((t = TAILQ_FIRST(&acc->targets)) != NULL) {
    TAILQ_REMOVE(&acc->targets, t, link);
    free(t);
  }
  while ((c = TAILQ_FIRST(&acc->commands)) != NULL) {
    TAILQ_REMOVE(&acc->commands, c, link);
    free_words(c->words);
    free(c);
  }
  while ((p = TAILQ_FIRST(&acc->peers)) != NULL) {
    TAILQ_REMOVE(&acc->peers, p, link);
    free(p);
  }
}

void nt_access_free(nt_access *acc) {
  if (!acc) {
    return;
  }
  clear_rules(acc);
  free(acc);
}

static int target_rule_parse(const char *text, target_rule *r, char *err,
                             size_t errlen) {
  const char *rest;
  if (!text) {
    return fail(err, errlen, "the rule is empty; " TARGET_FORMS);
  }
  int rv = split_scope(text, &r->scoped, &r->scope, &rest, err, errlen);
  return rv != 0 ? rv : parse_target(rest, r, err, errlen);
}

static int command_rule_parse(const char *text, command_rule *r, char *err,
                              size_t errlen) {
  const char *rest;
  if (!text) {
    return parse_command(NULL, r, err, errlen);
  }
  int rv = split_scope(text, &r->scoped, &r->scope, &rest, err, errlen);
  return rv != 0 ? rv : parse_command(rest, r, err, errlen);
}

static int peer_rule_parse(const char *text, peer_rule *r, char *err,
                           size_t errlen) {
  if (!text) {
    return fail(err, errlen, "the peer is empty; " PEER_FORMS);
  }
  if (text[0] == '!') {
    r->refuse = 1;
    text++;
  }
  return parse_sel(text, strlen(text), &r->sel, err, errlen);
}

int nt_access_check_target_rule(const char *text, char *err, size_t errlen) {
  target_rule r;
  memset(&r, 0, sizeof(r));
  return target_rule_parse(text, &r, err, errlen);
}

int nt_access_check_command_rule(const char *text, char *err, size_t errlen) {
  command_rule r;
  memset(&r, 0, sizeof(r));
  int rv = command_rule_parse(text, &r, err, errlen);
  free_words(r.words);
  return rv;
}

int nt_access_check_peer_rule(const char *text, char *err, size_t errlen) {
  peer_rule r;
  memset(&r, 0, sizeof(r));
  return peer_rule_parse(text, &r, err, errlen);
}

int nt_access_add_target_rule(nt_access *acc, const char *text, char *err,
                              size_t errlen) {
  target_rule *r = calloc(1, sizeof(*r));
  int rv;

  if (!r) {
    fail(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  rv = target_rule_parse(text, r, err, errlen);
  if (rv != 0) {
    free(r);
    return rv;
  }
  TAILQ_INSERT_TAIL(&acc->targets, r, link);
  return 0;
}

int nt_access_add_command_rule(nt_access *acc, const char *text, char *err,
                               size_t errlen) {
  command_rule *r = calloc(1, sizeof(*r));
  int rv;

  if (!r) {
    fail(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  rv = command_rule_parse(text, r, err, errlen);
  if (rv != 0) {
    free(r);
    return rv;
  }
  TAILQ_INSERT_TAIL(&acc->commands, r, link);
  return 0;
}

int nt_access_add_peer_rule(nt_access *acc, const char *text, char *err,
                            size_t errlen) {
  peer_rule *r = calloc(1, sizeof(*r));
  int rv;

  if (!r) {
    fail(err, errlen, "out of memory");
    return NATTER_ERR_NOMEM;
  }
  rv = peer_rule_parse(text, r, err, errlen);
  if (rv != 0) {
    free(r);
    return rv;
  }
  TAILQ_INSERT_TAIL(&acc->peers, r, link);
  return 0;
}

/* ---- decisions ---- */

int nt_access_peer_admitted(const nt_access *acc, const nt_access_peer *peer,
                            int broker_closed) {
  const peer_rule *r;

  if (!acc || TAILQ_EMPTY(&acc->peers)) {
    return broker_closed ? 1 : 0;
  }
  TAILQ_FOREACH(r, &acc->peers, link) {
    if (sel_matches(&r->sel, peer)) {
      return r->refuse ? 0 : 1;
    }
  }
  return 0;
}

/* Whether the first |bits| bits of |a| and |b| are equal. */
static int prefix_equal(const unsigned char *a, const unsigned char *b,
                        unsigned bits) {
  unsigned whole = bits / 8, rest = bits % 8;
  if (memcmp(a, b, whole) != 0) {
    return 0;
  }
  return rest == 0 ||
         ((a[whole] ^ b[whole]) & (unsigned char)(0xff00u >> rest)) == 0;
}

/* The address a range rule is compared with: |sa| when given, else |host|
 * when it is an IP address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * is the IPv4 address it carries, which is where a connection to it goes.
 * Returns 4, 6, or 0 when there is no address. */
static int target_address(const char *host, const struct sockaddr *sa,
                          unsigned char out[16]) {
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                           0, 0, 0, 0, 0xff, 0xff};
  int family = 0;
  if (sa && sa->sa_family == AF_INET) {
    memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    family = 4;
  } else if (sa && sa->sa_family == AF_INET6) {
    memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    family = 6;
  } else if (!sa && host && inet_pton(AF_INET, host, out) == 1) {
    family = 4;
  } else if (!sa && host && strchr(host, ':') &&
             v6_parse(host, strlen(host), out) == 0) {
    family = 6;
  }
  if (family == 6 && memcmp(out, mapped, sizeof(mapped)) == 0) {
    memmove(out, out + 12, 4);
    family = 4;
  }
  return family;
}

int nt_access_target_allowed_at(const nt_access *acc,
                                const nt_access_peer *peer, const char *host,
                                uint16_t port, const struct sockaddr *sa) {
  unsigned char v6[16], addr[16];
  int host_is_v6, family;
  const target_rule *r;

  if (!acc || !host) {
    return 0;
  }
  host_is_v6 = strchr(host, ':') && v6_parse(host, strlen(host), v6) == 0;
  family = target_address(host, sa, addr);
  TAILQ_FOREACH(r, &acc->targets, link) {
    if (!scope_holds(r->scoped, &r->scope, peer)) {
      continue;
    }
    if (r->any_target) {
      return 1;
    }
    if (r->port != 0 && r->port != port) {
      continue;
    }
    if (r->cidr) {
      if (family == (r->is_v6 ? 6 : 4) && prefix_equal(r->v6, addr, r->bits)) {
        return 1;
      }
      continue;
    }
    if (r->is_v6 ? host_is_v6 && memcmp(r->v6, v6, sizeof(v6)) == 0
                 : strcasecmp(r->host, host) == 0) {
      return 1;
    }
  }
  return 0;
}

int nt_access_target_allowed(const nt_access *acc, const nt_access_peer *peer,
                             const char *host, uint16_t port) {
  return nt_access_target_allowed_at(acc, peer, host, port, NULL);
}

int nt_access_command_allowed(const nt_access *acc, const nt_access_peer *peer,
                              const char *const *argv, size_t argc) {
  const command_rule *r;

  if (!acc || !argv || argc == 0 || !argv[0]) {
    return 0;
  }
  TAILQ_FOREACH(r, &acc->commands, link) {
    if (!scope_holds(r->scoped, &r->scope, peer)) {
      continue;
    }
    if (r->any_command) {
      return 1;
    }
    if (argc < r->nwords || (!r->prefix && argc != r->nwords)) {
      continue;
    }
    size_t i = 0;
    while (i < r->nwords && argv[i] && strcmp(r->words[i], argv[i]) == 0) {
      i++;
    }
    if (i == r->nwords) {
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

int nt_access_has_peer_rules(const nt_access *acc) {
  return acc && !TAILQ_EMPTY(&acc->peers);
}

void nt_access_replace(nt_access *dst, nt_access *src) {
  clear_rules(dst);
  TAILQ_CONCAT(&dst->targets, &src->targets, link);
  TAILQ_CONCAT(&dst->commands, &src->commands, link);
  TAILQ_CONCAT(&dst->peers, &src->peers, link);
}
