/* The header exchange that starts every forwarded stream (doc/design.md,
 * "Streams"): the opener's StreamOpen names a target host:port or a
 * command; the listener answers StreamOpenResult, OK or why not. Each is
 * one length-prefixed message (wire.h). Encoding, decoding and validation
 * only: no I/O, and no protobuf type in this header. */
#ifndef NT_STREAM_HEADER_H
#define NT_STREAM_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "codec/spec.h"
#include "codec/wire.h"

#define NT_OPEN_MAX_ARGV 256     /* arguments of a remote command */
#define NT_OPEN_MAX_MESSAGE 500  /* bytes of a result's reason shown */
#define NT_STREAM_HEADER_MAX (NT_WIRE_MAX_HDR + NT_WIRE_MAX_MSG)

/* Result codes, equal to the protocol's Code values (natter.proto). */
typedef enum nt_open_code {
  NT_OPEN_OK = 0,
  NT_OPEN_BAD_REQUEST = 1,
  NT_OPEN_NOT_LISTENING = 4,
  NT_OPEN_REFUSED = 5,
  NT_OPEN_UNREACHABLE = 6,
  NT_OPEN_DENIED = 7,
  NT_OPEN_INTERNAL = 8,
  NT_OPEN_TIMEOUT = 9,
  NT_OPEN_NAME_NOT_FOUND = 11, /* decodes to NATTER_ERR_RESOLVE */
  NT_OPEN_NET_UNREACHABLE = 12 /* decodes to NATTER_ERR_UNREACHABLE */
} nt_open_code;

/* What a StreamOpen asks for, checked. */
typedef struct nt_open_request {
  char host[NT_HOST_MAX + 1]; /* printable ASCII; "" : the loopback */
  uint16_t port;              /* 1..65535 unless a command */
  char **argv;                /* NULL-terminated command, or NULL; owned */
  size_t argc;                /* 1..NT_OPEN_MAX_ARGV for a command */
  int udp;                    /* a UDP flow to host:port (never with argv):
                                 its datagrams travel in QUIC DATAGRAM
                                 frames (dgram.h) */
} nt_open_request;

/* Encodes a StreamOpen for host:port (|argv| NULL) or for the command
 * |argv| into |out| (NT_STREAM_HEADER_MAX bytes), length prefix included.
 * Returns its size, or 0 when it does not fit in one message. */
size_t nt_open_request_encode(uint8_t *out, const char *host, uint16_t port,
                              char *const *argv);

/* Encodes a StreamOpen for a UDP flow to |host|:|port| ("" : the
 * loopback) the same way. */
size_t nt_open_request_encode_udp(uint8_t *out, const char *host,
                                  uint16_t port);

/* Decodes a StreamOpen body. Bounds: host printable ASCII of at most
 * NT_HOST_MAX bytes; port 1..65535 unless a command; at most
 * NT_OPEN_MAX_ARGV arguments (their bytes are free: they are a command's
 * arguments, and reach logs only through nt_escape). Returns 0, or
 * NATTER_ERR_PROTOCOL (malformed) or NATTER_ERR_NOMEM; on success release
 * with nt_open_request_clear(). */
int nt_open_request_decode(nt_open_request *req, const uint8_t *body,
                           size_t len);
void nt_open_request_clear(nt_open_request *req);

/* Encodes a StreamOpenResult into |out| (NT_STREAM_HEADER_MAX bytes).
 * Returns its size, or 0 when |message| is too long. */
size_t nt_open_result_encode(uint8_t *out, nt_open_code code,
                             const char *message);

/* Decodes a StreamOpenResult body into a NATTER_ERR_* (0 for OK; an
 * unknown code is NATTER_ERR_PROTOCOL) and its reason, copied into
 * |message| only when it is printable ASCII of at most NT_OPEN_MAX_MESSAGE
 * bytes, else "". Returns 0, or NATTER_ERR_PROTOCOL when malformed. */
int nt_open_result_decode(const uint8_t *body, size_t len, int *error,
                          char *message, size_t msglen);

/* The code of a StreamOpenResult body as sent, known to this version or
 * not (where a NATTER_ERR_* says too little: a SOCKS reply tells a
 * network from a host unreachable), or -1 when malformed or negative
 * (no code is). */
int nt_open_result_code(const uint8_t *body, size_t len);

#endif
