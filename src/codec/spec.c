/* Parsing of forward specs ("LOCALPORT:PEER[:HOST]:PORT"). Pure: no I/O, no
 * allocation, no global state, so it can be fed anything by the tests. */
#include "codec/spec.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SPEC_FORM "LOCALPORT:PEER[:HOST]:PORT"

/* Echoing user input back is capped so that a 100 KB argument still gives a
 * one-line error. */
#define QUOTE_MAX_IN 40
/* Each input byte becomes at most 4 bytes ("\xNN"), plus "..." and NUL. */
#define QUOTE_BUF (QUOTE_MAX_IN * 4 + 3 + 1)

/* Writes the first |n| bytes of |s| into |out| for use inside double quotes:
 * at most QUOTE_MAX_IN of them, then "...". Non-printable and non-ASCII bytes
 * are escaped so that the error stays one line of plain text whatever the
 * input holds. */
static void quote(char out[QUOTE_BUF], const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t shown = n < QUOTE_MAX_IN ? n : QUOTE_MAX_IN;
  size_t o = 0;

  for (size_t i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c >= 0x20 && c < 0x7f) {
      out[o++] = (char)c;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 0xf];
    }
  }
  if (shown < n) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

/* Formats "bad spec "<text>": <reason>" into |err|. snprintf truncates and
 * NUL-terminates for any errlen >= 1 and writes nothing when it is 0. */
static int fail(char *err, size_t errlen, const char *text, const char *fmt,
                ...) {
  char quoted[QUOTE_BUF];
  char reason[512];
  va_list ap;

  if (err == NULL || errlen == 0) {
    return -1;
  }
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  quote(quoted, text, strlen(text));
  snprintf(err, errlen, "bad spec \"%s\": %s", quoted, reason);
  return -1;
}

static int is_name_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* A port is written exactly as a number 1..65535: no sign, no space, no
 * leading zero, so that "022" or "+22" is not silently taken for 22. */
static uint16_t port_parse_n(const char *s, size_t n) {
  unsigned long value = 0;

  if (n == 0 || n > 5 || s[0] == '0') {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') {
      return 0;
    }
    value = value * 10 + (unsigned long)(s[i] - '0');
  }
  return value <= 65535 ? (uint16_t)value : 0;
}

uint16_t nt_port_parse(const char *s) {
  if (s == NULL) {
    return 0;
  }
  /* strnlen: a long string cannot be a port, no need to walk all of it. */
  return port_parse_n(s, strnlen(s, 6));
}

/* Returns the index of the first byte of |s| (length |n|) that is not a
 * peer-name character, or |n| when all are. */
static size_t name_bad_char(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && is_name_char((unsigned char)s[i])) {
    i++;
  }
  return i;
}

int nt_name_valid(const char *name) {
  size_t n;

  if (name == NULL) {
    return 0;
  }
  n = strnlen(name, NT_NAME_MAX + 1);
  return n >= 1 && n <= NT_NAME_MAX && name_bad_char(name, n) == n;
}

static int parse_port(const char *what, const char *s, size_t n, uint16_t *port,
                      const char *text, char *err, size_t errlen) {
  char quoted[QUOTE_BUF];

  *port = port_parse_n(s, n);
  if (*port == 0 && n == 0) {
    return fail(err, errlen, text, "%s is missing; expected " SPEC_FORM, what);
  }
  if (*port == 0) {
    quote(quoted, s, n);
    return fail(err, errlen, text,
                "%s \"%s\" is not a number 1..65535; expected " SPEC_FORM, what,
                quoted);
  }
  return 0;
}

static int parse_peer(nt_spec *spec, const char *s, size_t n, const char *text,
                      char *err, size_t errlen) {
  char quoted[QUOTE_BUF];
  char bad[QUOTE_BUF];
  size_t bad_at;

  if (n == 0) {
    return fail(err, errlen, text, "peer name is empty; expected " SPEC_FORM);
  }
  quote(quoted, s, n);
  if (n > NT_NAME_MAX) {
    return fail(err, errlen, text,
                "peer name \"%s\" is longer than %d bytes; expected " SPEC_FORM,
                quoted, NT_NAME_MAX);
  }
  bad_at = name_bad_char(s, n);
  if (bad_at < n) {
    quote(bad, s + bad_at, 1);
    return fail(err, errlen, text,
                "peer name \"%s\" contains \"%s\"; allowed are A-Z a-z 0-9 . _ "
                "-; expected " SPEC_FORM,
                quoted, bad);
  }
  memcpy(spec->peer, s, n);
  spec->peer[n] = '\0';
  return 0;
}

/* Stores a bracketed IPv6 literal without its brackets; |s| excludes them. */
static int parse_ipv6_host(nt_spec *spec, const char *s, size_t n,
                           const char *text, char *err, size_t errlen) {
  char quoted[QUOTE_BUF];
  char addr[INET6_ADDRSTRLEN];
  struct in6_addr scratch;

  if (n == 0) {
    return fail(err, errlen, text, "host \"[]\" is empty; expected " SPEC_FORM);
  }
  quote(quoted, s, n);
  if (n >= sizeof(addr)) {
    return fail(err, errlen, text,
                "host \"[%s]\" is not an IPv6 address; expected " SPEC_FORM,
                quoted);
  }
  memcpy(addr, s, n);
  addr[n] = '\0';
  /* inet_pton rejects zone ids ("%eth0"): the peer would have to resolve a
   * name of one of its own interfaces, which the protocol does not carry. */
  if (inet_pton(AF_INET6, addr, &scratch) != 1) {
    return fail(err, errlen, text,
                "host \"[%s]\" is not an IPv6 address; expected " SPEC_FORM,
                quoted);
  }
  memcpy(spec->host, addr, n + 1);
  return 0;
}

static int parse_name_host(nt_spec *spec, const char *s, size_t n,
                           const char *text, char *err, size_t errlen) {
  char quoted[QUOTE_BUF];
  char bad[QUOTE_BUF];
  size_t bad_at;

  if (n == 0) {
    return fail(err, errlen, text,
                "host is empty (leave it out for the peer's loopback, as in "
                "LOCALPORT:PEER:PORT); expected " SPEC_FORM);
  }
  quote(quoted, s, n);
  if (n > NT_HOST_MAX) {
    return fail(err, errlen, text,
                "host \"%s\" is longer than %d bytes; expected " SPEC_FORM,
                quoted, NT_HOST_MAX);
  }
  /* Host names, IPv4 addresses and peer names share one alphabet. */
  bad_at = name_bad_char(s, n);
  if (bad_at < n) {
    quote(bad, s + bad_at, 1);
    return fail(err, errlen, text,
                "host \"%s\" contains \"%s\"; allowed are A-Z a-z 0-9 . _ - "
                "or an IPv6 address in brackets; expected " SPEC_FORM,
                quoted, bad);
  }
  memcpy(spec->host, s, n);
  spec->host[n] = '\0';
  return 0;
}

/* Parses what follows "LOCALPORT:PEER:" when it is not empty: "PORT",
 * "HOST:PORT" or "[IPV6]:PORT". */
static int parse_target(nt_spec *spec, const char *s, const char *text,
                        char *err, size_t errlen) {
  char quoted[QUOTE_BUF];
  const char *colon;
  const char *port;

  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL) {
      quote(quoted, s, strlen(s));
      return fail(err, errlen, text,
                  "host \"%s\" has no closing ']'; expected " SPEC_FORM,
                  quoted);
    }
    if (parse_ipv6_host(spec, s + 1, (size_t)(close - s - 1), text, err,
                        errlen) != 0) {
      return -1;
    }
    if (close[1] != ':') {
      quote(quoted, s, (size_t)(close - s + 1));
      return fail(err, errlen, text,
                  "host \"%s\" must be followed by ':' and a port; "
                  "expected " SPEC_FORM,
                  quoted);
    }
    port = close + 2;
    return parse_port("port", port, strlen(port), &spec->port, text, err,
                      errlen);
  }

  colon = strrchr(s, ':');
  if (colon == NULL) {
    return parse_port("port", s, strlen(s), &spec->port, text, err, errlen);
  }
  if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
    /* More than one ':' left: most likely an IPv6 address without brackets.
     * Show the fix when it is one, since the error is easy to make. */
    size_t hostlen = (size_t)(colon - s);
    char addr[INET6_ADDRSTRLEN];
    struct in6_addr scratch;

    quote(quoted, s, hostlen);
    if (hostlen < sizeof(addr)) {
      memcpy(addr, s, hostlen);
      addr[hostlen] = '\0';
      if (inet_pton(AF_INET6, addr, &scratch) == 1) {
        return fail(err, errlen, text,
                    "IPv6 host \"%s\" needs brackets, as in "
                    "LOCALPORT:PEER:[%s]:PORT",
                    addr, addr);
      }
    }
    return fail(err, errlen, text,
                "host \"%s\" contains ':' (an IPv6 address goes in brackets, "
                "as in [::1]); expected " SPEC_FORM,
                quoted);
  }
  if (parse_name_host(spec, s, (size_t)(colon - s), text, err, errlen) != 0) {
    return -1;
  }
  port = colon + 1;
  return parse_port("port", port, strlen(port), &spec->port, text, err, errlen);
}

#define SOCKS_FORM "socks:[BIND:]LOCALPORT:PEER"

/* "socks:[BIND:]LOCALPORT:PEER", |s| after the prefix: the peer follows
 * the last ':', the local port the one before; what is left is the bind
 * address, an IPv4 address or an IPv6 address in brackets. */
static int parse_socks(nt_spec *spec, const char *s, const char *text,
                       char *err, size_t errlen) {
  char quoted[QUOTE_BUF];
  const char *peer = strrchr(s, ':');
  const char *port;
  size_t bindlen;

  spec->kind = NT_SPEC_SOCKS;
  if (peer == NULL) {
    return fail(err, errlen, text, "expected " SOCKS_FORM);
  }
  if (parse_peer(spec, peer + 1, strlen(peer + 1), text, err, errlen) != 0) {
    return -1;
  }
  port = s;
  for (const char *p = peer; p > s; p--) {
    if (p[-1] == ':') {
      port = p;
      break;
    }
  }
  if (parse_port("local port", port, (size_t)(peer - port), &spec->local_port,
                 text, err, errlen) != 0) {
    return -1;
  }
  if (port == s) {
    return 0;
  }
  bindlen = (size_t)(port - 1 - s);
  quote(quoted, s, bindlen);
  if (bindlen >= 2 && s[0] == '[' && s[bindlen - 1] == ']') {
    char addr[INET6_ADDRSTRLEN];
    struct in6_addr scratch;
    if (bindlen - 2 < sizeof(addr)) {
      memcpy(addr, s + 1, bindlen - 2);
      addr[bindlen - 2] = '\0';
      if (inet_pton(AF_INET6, addr, &scratch) == 1) {
        memcpy(spec->host, addr, bindlen - 1);
        return 0;
      }
    }
  } else if (bindlen < INET_ADDRSTRLEN) {
    char addr[INET_ADDRSTRLEN];
    struct in_addr scratch;
    memcpy(addr, s, bindlen);
    addr[bindlen] = '\0';
    if (inet_pton(AF_INET, addr, &scratch) == 1) {
      memcpy(spec->host, addr, bindlen + 1);
      return 0;
    }
  }
  return fail(err, errlen, text,
              "bind address \"%s\" is not an IPv4 address or an IPv6 "
              "address in brackets; expected " SOCKS_FORM,
              quoted);
}

int nt_spec_parse(nt_spec *spec, const char *text, char *err, size_t errlen) {
  nt_spec parsed;
  const char *peer;
  const char *peer_end;

  memset(spec, 0, sizeof(*spec));
  if (err != NULL && errlen > 0) {
    err[0] = '\0';
  }
  if (text == NULL) {
    return fail(err, errlen, "", "no spec given; expected " SPEC_FORM);
  }
  memset(&parsed, 0, sizeof(parsed));
  if (strncmp(text, "socks:", 6) == 0) {
    if (parse_socks(&parsed, text + 6, text, err, errlen) != 0) {
      return -1;
    }
    *spec = parsed;
    return 0;
  }
  const char *whole = text; /* for messages */
  if (strncmp(text, "udp:", 4) == 0) {
    parsed.kind = NT_SPEC_UDP;
    text += 4;
  }

  peer = strchr(text, ':');
  if (peer == NULL) {
    return fail(err, errlen, whole, "expected " SPEC_FORM);
  }
  peer++;
  peer_end = strchr(peer, ':');
  if (peer_end == NULL) {
    return fail(err, errlen, whole, "expected " SPEC_FORM);
  }

  /* An empty local port means stdin/stdout, as with ssh -W. */
  if (peer - 1 != text &&
      parse_port("local port", text, (size_t)(peer - 1 - text),
                 &parsed.local_port, whole, err, errlen) != 0) {
    return -1;
  }
  if (parse_peer(&parsed, peer, (size_t)(peer_end - peer), whole, err,
                 errlen) != 0) {
    return -1;
  }
  if (peer_end[1] == '\0') {
    parsed.is_command = 1;
  } else if (parse_target(&parsed, peer_end + 1, whole, err, errlen) != 0) {
    return -1;
  }
  if (parsed.kind == NT_SPEC_UDP &&
      (parsed.is_command || parsed.local_port == 0)) {
    return fail(err, errlen, whole,
                "a UDP forward needs a local port and a target port; "
                "expected udp:" SPEC_FORM);
  }
  *spec = parsed;
  return 0;
}
