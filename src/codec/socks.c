/* The server side of a SOCKS5 handshake (socks.h). */
#include "codec/socks.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "codec/stream_header.h"
#include "natter.h"

#define SOCKS_VERSION 5
#define AUTH_VERSION 1 /* RFC 1929's subnegotiation */
#define METHOD_NONE 0x00
#define METHOD_USERPASS 0x02
#define METHOD_REFUSED 0xff
#define CMD_CONNECT 1
#define ATYP_IPV4 1
#define ATYP_NAME 3
#define ATYP_IPV6 4

void nt_socks_init(nt_socks *s, const char *user, const char *password) {
  memset(s, 0, sizeof(*s));
  if (user && password) {
    s->user = user;
    s->password = password;
  }
}

/* The length of the current message as far as the bytes so far tell it:
 * more than |have| while it is incomplete. */
static size_t message_len(const nt_socks *s) {
  const uint8_t *b = s->buf;
  size_t have = s->have;

  switch (s->phase) {
  case NT_SOCKS_GREETING: /* VER NMETHODS METHODS... */
    return have < 2 ? 2 : 2 + (size_t)b[1];
  case NT_SOCKS_AUTH: /* VER ULEN UNAME PLEN PASSWD */
    if (have < 2) {
      return 2;
    }
    if (have < 3 + (size_t)b[1]) {
      return 3 + (size_t)b[1];
    }
    return 3 + (size_t)b[1] + b[2 + b[1]];
  case NT_SOCKS_REQUEST: /* VER CMD RSV ATYP ADDR PORT */
    if (have < 4) {
      return 4;
    }
    switch (b[3]) {
    case ATYP_IPV4:
      return 4 + 4 + 2;
    case ATYP_IPV6:
      return 4 + 16 + 2;
    case ATYP_NAME:
      return have < 5 ? 5 : 5 + (size_t)b[4] + 2;
    default:
      return have; /* decided: not supported */
    }
  case NT_SOCKS_DONE:
  default:
    return have;
  }
}

size_t nt_socks_want(const nt_socks *s) {
  if (s->phase == NT_SOCKS_DONE) {
    return 0;
  }
  return message_len(s) - s->have;
}

static nt_socks_step fail(nt_socks *s, const char *why) {
  s->phase = NT_SOCKS_DONE;
  s->error = why;
  return NT_SOCKS_FAIL;
}

size_t nt_socks_reply(uint8_t *out, uint8_t rep) {
  memset(out, 0, NT_SOCKS_REPLY_MAX);
  out[0] = SOCKS_VERSION;
  out[1] = rep;
  out[3] = ATYP_IPV4; /* bound address 0.0.0.0:0: we do not say it */
  return NT_SOCKS_REPLY_MAX;
}

/* Compares without stopping at the first difference, so that the time
 * taken does not tell how much of a guess was right. */
static int same_secret(const char *want, const uint8_t *got, size_t gotlen) {
  size_t wantlen = strlen(want);
  unsigned diff = wantlen != gotlen;
  for (size_t i = 0; i < gotlen; i++) {
    diff |= (unsigned)(uint8_t)want[i < wantlen ? i : 0] ^ got[i];
  }
  return diff == 0 && wantlen > 0;
}

static nt_socks_step greeting(nt_socks *s, uint8_t *reply, size_t *replylen) {
  uint8_t want = s->user ? METHOD_USERPASS : METHOD_NONE;
  int offered = 0;
  for (size_t i = 0; i < s->buf[1]; i++) {
    offered |= s->buf[2 + i] == want;
  }
  reply[0] = SOCKS_VERSION;
  *replylen = 2;
  if (!offered) {
    reply[1] = METHOD_REFUSED;
    return fail(s, s->user ? "the client does not offer username/password "
                             "authentication, which this forward requires"
                           : "the client offers no method without "
                             "authentication");
  }
  reply[1] = want;
  s->phase = s->user ? NT_SOCKS_AUTH : NT_SOCKS_REQUEST;
  s->have = 0;
  return NT_SOCKS_MORE;
}

static nt_socks_step auth(nt_socks *s, uint8_t *reply, size_t *replylen) {
  size_t ulen = s->buf[1];
  size_t plen = s->buf[2 + ulen];
  /* Both compared, whatever the first says. */
  int user_ok = same_secret(s->user, s->buf + 2, ulen);
  int password_ok = same_secret(s->password, s->buf + 3 + ulen, plen);

  reply[0] = AUTH_VERSION;
  *replylen = 2;
  if (!(user_ok & password_ok)) {
    reply[1] = 1;
    return fail(s, "wrong user name or password");
  }
  reply[1] = 0;
  s->phase = NT_SOCKS_REQUEST;
  s->have = 0;
  return NT_SOCKS_MORE;
}

static int is_name_char(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* A domain name as the request carries it: a name of the spec alphabet,
 * or an address written as text (clients send "::1" that way too). */
static int take_name(nt_socks *s, const uint8_t *name, size_t n) {
  char text[NT_HOST_MAX + 1];
  uint8_t scratch[16];
  size_t i = 0;

  if (n == 0 || n > NT_HOST_MAX) {
    return -1;
  }
  memcpy(text, name, n);
  text[n] = '\0';
  while (i < n && is_name_char(name[i])) {
    i++;
  }
  if (i == n) {
    memcpy(s->host, text, n + 1);
    s->host_is_name = inet_pton(AF_INET, text, scratch) != 1;
    return 0;
  }
  if (inet_pton(AF_INET6, text, scratch) == 1) {
    inet_ntop(AF_INET6, scratch, s->host, sizeof(s->host));
    return 0;
  }
  return -1;
}

static nt_socks_step request(nt_socks *s, uint8_t *reply, size_t *replylen) {
  const uint8_t *b = s->buf;
  size_t addr_end;

  if (b[1] != CMD_CONNECT) {
    *replylen = nt_socks_reply(reply, NT_SOCKS_REP_COMMAND);
    return fail(s, b[1] == 2   ? "BIND is not supported (only CONNECT)"
                   : b[1] == 3 ? "UDP ASSOCIATE is not supported (only "
                                 "CONNECT)"
                               : "unknown command (only CONNECT is "
                                 "supported)");
  }
  switch (b[3]) {
  case ATYP_IPV4:
    inet_ntop(AF_INET, b + 4, s->host, sizeof(s->host));
    addr_end = 8;
    break;
  case ATYP_IPV6:
    inet_ntop(AF_INET6, b + 4, s->host, sizeof(s->host));
    addr_end = 20;
    break;
  case ATYP_NAME:
    addr_end = 5 + (size_t)b[4];
    if (take_name(s, b + 5, b[4]) != 0) {
      *replylen = nt_socks_reply(reply, NT_SOCKS_REP_HOST_UNREACH);
      return fail(s, "the domain name is empty, longer than 253 bytes or "
                     "holds characters other than A-Z a-z 0-9 . _ -");
    }
    break;
  default:
    *replylen = nt_socks_reply(reply, NT_SOCKS_REP_ADDRESS);
    return fail(s, "unknown address type");
  }
  s->port = (uint16_t)(b[addr_end] << 8 | b[addr_end + 1]);
  if (s->port == 0) {
    *replylen = nt_socks_reply(reply, NT_SOCKS_REP_FAILURE);
    return fail(s, "the target port is 0");
  }
  s->phase = NT_SOCKS_DONE;
  return NT_SOCKS_CONNECT;
}

nt_socks_step nt_socks_feed(nt_socks *s, const uint8_t *data, size_t len,
                            size_t *used, uint8_t *reply, size_t *replylen) {
  *used = 0;
  *replylen = 0;
  if (s->phase == NT_SOCKS_DONE) {
    return fail(s, s->error ? s->error : "the handshake is over");
  }
  for (;;) {
    size_t want = nt_socks_want(s);
    if (want == 0) {
      break;
    }
    if (*used == len) {
      return NT_SOCKS_MORE;
    }
    size_t take = len - *used < want ? len - *used : want;
    memcpy(s->buf + s->have, data + *used, take);
    s->have += take;
    s->total += take;
    *used += take;
    /* A wrong version is decided by the first byte: do not wait for a
     * length it may give that means nothing. */
    if (s->buf[0] !=
        (s->phase == NT_SOCKS_AUTH ? AUTH_VERSION : SOCKS_VERSION)) {
      return fail(s, s->phase == NT_SOCKS_AUTH
                         ? "not a username/password subnegotiation "
                           "(version 1)"
                         : "not SOCKS version 5");
    }
  }
  switch (s->phase) {
  case NT_SOCKS_GREETING:
    return greeting(s, reply, replylen);
  case NT_SOCKS_AUTH:
    return auth(s, reply, replylen);
  case NT_SOCKS_REQUEST:
    return request(s, reply, replylen);
  case NT_SOCKS_DONE:
  default:
    return fail(s, "the handshake is over");
  }
}

uint8_t nt_socks_reply_code(int natter_error) {
  switch (natter_error) {
  case 0:
    return NT_SOCKS_REP_OK;
  case NATTER_ERR_DENIED:
    return NT_SOCKS_REP_NOT_ALLOWED;
  case NATTER_ERR_REFUSED:
    return NT_SOCKS_REP_REFUSED;
  case NATTER_ERR_UNREACHABLE:
  case NATTER_ERR_RESOLVE:
    return NT_SOCKS_REP_HOST_UNREACH;
  case NATTER_ERR_TIMEOUT:
    return NT_SOCKS_REP_TTL_EXPIRED;
  default:
    return NT_SOCKS_REP_FAILURE;
  }
}

uint8_t nt_socks_reply_for_open(int open_code) {
  switch (open_code) {
  case NT_OPEN_OK:
    return NT_SOCKS_REP_OK;
  case NT_OPEN_DENIED:
    return NT_SOCKS_REP_NOT_ALLOWED;
  case NT_OPEN_REFUSED:
    return NT_SOCKS_REP_REFUSED;
  case NT_OPEN_UNREACHABLE:
  case NT_OPEN_NAME_NOT_FOUND:
    return NT_SOCKS_REP_HOST_UNREACH;
  case NT_OPEN_NET_UNREACHABLE:
    return NT_SOCKS_REP_NET_UNREACH;
  case NT_OPEN_TIMEOUT:
    return NT_SOCKS_REP_TTL_EXPIRED;
  default:
    return NT_SOCKS_REP_FAILURE;
  }
}

const char *nt_socks_reply_text(uint8_t rep) {
  static const char *const text[] = {"succeeded",
                                     "general failure",
                                     "not allowed by the listener's rules",
                                     "network unreachable",
                                     "host unreachable",
                                     "connection refused",
                                     "timed out",
                                     "command not supported",
                                     "address type not supported"};
  return rep < sizeof(text) / sizeof(text[0]) ? text[rep] : "unknown";
}

static int cred_fail(char *err, size_t errlen, const char *why) {
  if (err && errlen > 0) {
    snprintf(err, errlen, "%s", why);
  }
  return -1;
}

int nt_socks_credentials_parse(const char *text, size_t len, char *user,
                               char *password, char *err, size_t errlen) {
  size_t pos = 0;
  int found = 0;

  while (pos < len) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - line) : len - pos;
    pos += n + (nl != NULL);
    if (n > 0 && line[n - 1] == '\r') {
      n--;
    }
    if (n == 0 || line[0] == '#') {
      continue;
    }
    if (found) {
      return cred_fail(err, errlen,
                       "more than one USER:PASSWORD line (one is expected)");
    }
    for (size_t i = 0; i < n; i++) {
      uint8_t c = (uint8_t)line[i];
      if (c < 0x20 || c == 0x7f) {
        return cred_fail(err, errlen,
                         "a control character in the USER:PASSWORD line");
      }
    }
    const char *colon = memchr(line, ':', n);
    if (!colon) {
      return cred_fail(err, errlen, "expected one line USER:PASSWORD");
    }
    size_t ulen = (size_t)(colon - line), plen = n - ulen - 1;
    if (ulen == 0 || ulen > NT_SOCKS_MAX_CREDENTIAL || plen == 0 ||
        plen > NT_SOCKS_MAX_CREDENTIAL) {
      return cred_fail(err, errlen,
                       "the user name and the password must each be 1..255 "
                       "bytes (USER:PASSWORD)");
    }
    memcpy(user, line, ulen);
    user[ulen] = '\0';
    memcpy(password, colon + 1, plen);
    password[plen] = '\0';
    found = 1;
  }
  return found ? 0
               : cred_fail(err, errlen, "no USER:PASSWORD line in the file");
}
