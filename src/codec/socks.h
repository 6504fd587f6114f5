/* The server side of a SOCKS5 handshake (RFC 1928), with username and
 * password authentication (RFC 1929): the client's greeting, its
 * credentials, its request; and the replies. Pure: no I/O, no allocation,
 * no global state. The caller reads bytes from the client, at most
 * nt_socks_want() of them at a time (so that it never reads past the
 * request: what follows it is the connection's data), and feeds them.
 *
 * Only CONNECT is served: BIND and UDP ASSOCIATE are answered "command not
 * supported" (0x07). Targets are IPv4, IPv6 or a domain name, which is
 * passed on unresolved (the peer resolves it, as ssh -D does).
 *
 * Limits: a greeting is at most 257 bytes, credentials 513, a request 262;
 * a whole handshake at most NT_SOCKS_MAX_HANDSHAKE bytes. A domain name
 * must fit NT_HOST_MAX and hold only A-Z a-z 0-9 . _ - (or be an IP
 * address). */
#ifndef NT_SOCKS_H
#define NT_SOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "codec/spec.h"

#define NT_SOCKS_MAX_MESSAGE 513 /* the longest message: credentials */
#define NT_SOCKS_MAX_HANDSHAKE (257 + 513 + 262)
#define NT_SOCKS_MAX_CREDENTIAL 255 /* bytes of a user name or password */
#define NT_SOCKS_REPLY_MAX 10       /* bytes of the longest reply we send */

/* Reply codes (RFC 1928 §6). */
enum {
  NT_SOCKS_REP_OK = 0x00,
  NT_SOCKS_REP_FAILURE = 0x01,      /* general SOCKS server failure */
  NT_SOCKS_REP_NOT_ALLOWED = 0x02,  /* connection not allowed by ruleset */
  NT_SOCKS_REP_NET_UNREACH = 0x03,  /* network unreachable */
  NT_SOCKS_REP_HOST_UNREACH = 0x04, /* host unreachable */
  NT_SOCKS_REP_REFUSED = 0x05,      /* connection refused */
  NT_SOCKS_REP_TTL_EXPIRED = 0x06,  /* TTL expired: we use it for timeouts */
  NT_SOCKS_REP_COMMAND = 0x07,      /* command not supported */
  NT_SOCKS_REP_ADDRESS = 0x08       /* address type not supported */
};

typedef enum nt_socks_phase {
  NT_SOCKS_GREETING,
  NT_SOCKS_AUTH,
  NT_SOCKS_REQUEST,
  NT_SOCKS_DONE /* a CONNECT was parsed, or the handshake failed */
} nt_socks_phase;

typedef enum nt_socks_step {
  NT_SOCKS_MORE = 0,    /* send the reply, if any, then feed more */
  NT_SOCKS_CONNECT = 1, /* a CONNECT for |host|:|port|: answer it later
                           with nt_socks_reply() */
  NT_SOCKS_FAIL = -1    /* send the reply, if any, then close; |error| */
} nt_socks_step;

typedef struct nt_socks {
  /* Set by nt_socks_init: the credentials a client must give, or NULL
   * for no authentication. Not copied: they must outlive the handshake. */
  const char *user, *password;

  nt_socks_phase phase;
  uint8_t buf[NT_SOCKS_MAX_MESSAGE]; /* the current message so far */
  size_t have;
  size_t total; /* bytes of the whole handshake so far */

  /* A CONNECT's target: an IP address as text (IPv6 without brackets) or
   * a name, and the port (1..65535). */
  char host[NT_HOST_MAX + 1];
  uint16_t port;
  int host_is_name;
  const char *error; /* why NT_SOCKS_FAIL: a static one-line reason */
} nt_socks;

/* Starts a handshake. |user| and |password| (both or neither) are what a
 * client must authenticate with. */
void nt_socks_init(nt_socks *s, const char *user, const char *password);

/* How many more bytes the current message needs at most before it can be
 * decided (>= 1 until the handshake is done, then 0). Reading no more than
 * this never takes a byte that follows the request. */
size_t nt_socks_want(const nt_socks *s);

/* Feeds |len| bytes. Takes at most the rest of the current message:
 * *used says how many; feed the others again (after sending the reply).
 * Writes a reply to send, if there is one, into |reply|
 * (NT_SOCKS_REPLY_MAX bytes) and its length into *replylen (0: none). */
nt_socks_step nt_socks_feed(nt_socks *s, const uint8_t *data, size_t len,
                            size_t *used, uint8_t *reply, size_t *replylen);

/* The answer to a CONNECT: |rep| (NT_SOCKS_REP_*) and a bound address of
 * 0.0.0.0:0. Writes NT_SOCKS_REPLY_MAX bytes; returns that. */
size_t nt_socks_reply(uint8_t *out, uint8_t rep);

/* The reply for a failed forward's NATTER_ERR_* (0: OK). */
uint8_t nt_socks_reply_code(int natter_error);

/* The reply for the listener's StreamOpenResult code (an nt_open_code),
 * which says more: network unreachable (0x03) apart from host unreachable
 * (0x04). A code unknown here is a general failure. */
uint8_t nt_socks_reply_for_open(int open_code);

/* A reply code in words, for logs ("connection refused"). */
const char *nt_socks_reply_text(uint8_t rep);

/* Parses a credentials file's |len| bytes: the first line that is not
 * empty and not a '#' comment is USER:PASSWORD (the user holds no ':';
 * each 1..NT_SOCKS_MAX_CREDENTIAL bytes, no control characters); nothing
 * else may follow but empty lines and comments. Fills |user| and
 * |password| (NT_SOCKS_MAX_CREDENTIAL + 1 bytes each). Returns 0, or -1
 * with a one-line reason in |err| that never shows the password. */
int nt_socks_credentials_parse(const char *text, size_t len, char *user,
                               char *password, char *err, size_t errlen);

#endif
