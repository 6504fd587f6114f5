#include "codec/stream_header.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/wire_pb.h"
#include "natter.h"

_Static_assert((int)NT_OPEN_OK == (int)NATTER__CODE__OK &&
                   (int)NT_OPEN_BAD_REQUEST == (int)NATTER__CODE__BAD_REQUEST &&
                   (int)NT_OPEN_NOT_LISTENING == (int)NATTER__CODE__PEER_NOT_LISTENING &&
                   (int)NT_OPEN_REFUSED == (int)NATTER__CODE__REFUSED &&
                   (int)NT_OPEN_UNREACHABLE == (int)NATTER__CODE__UNREACHABLE &&
                   (int)NT_OPEN_DENIED == (int)NATTER__CODE__DENIED &&
                   (int)NT_OPEN_INTERNAL == (int)NATTER__CODE__INTERNAL &&
                   (int)NT_OPEN_TIMEOUT == (int)NATTER__CODE__TIMEOUT,
               "nt_open_code mirrors the protocol's Code");

static size_t encode(uint8_t *out, const ProtobufCMessage *msg) {
  return nt_wire_pack_frame(out, msg);
}

size_t nt_open_request_encode(uint8_t *out, const char *host, uint16_t port,
                              char *const *argv) {
  Natter__StreamOpen open = NATTER__STREAM_OPEN__INIT;
  if (argv) {
    size_t n = 0;
    while (argv[n]) {
      n++;
    }
    open.argv = (char **)argv;
    open.n_argv = n;
  } else {
    open.host = (char *)host;
    open.port = port;
  }
  return encode(out, &open.base);
}

size_t nt_open_request_encode_udp(uint8_t *out, const char *host,
                                  uint16_t port) {
  Natter__StreamOpen open = NATTER__STREAM_OPEN__INIT;
  open.host = (char *)host;
  open.port = port;
  open.udp = 1;
  return encode(out, &open.base);
}

int nt_open_request_decode(nt_open_request *req, const uint8_t *body,
                           size_t len) {
  memset(req, 0, sizeof(*req));
  Natter__StreamOpen *open = natter__stream_open__unpack(NULL, len, body);
  int rv = NATTER_ERR_PROTOCOL;
  if (!open || !nt_wire_string_ok(open->host, NT_HOST_MAX) ||
      open->n_argv > NT_OPEN_MAX_ARGV ||
      (open->n_argv == 0 && (open->port == 0 || open->port > 65535)) ||
      (open->udp && open->n_argv > 0)) {
    goto done;
  }
  for (size_t i = 0; i < open->n_argv; i++) {
    if (!open->argv[i]) {
      goto done;
    }
  }
  snprintf(req->host, sizeof(req->host), "%s", open->host);
  if (open->n_argv == 0) {
    req->port = (uint16_t)open->port;
    req->udp = open->udp ? 1 : 0;
    rv = 0;
    goto done;
  }
  rv = NATTER_ERR_NOMEM;
  req->argv = calloc(open->n_argv + 1, sizeof(char *));
  if (!req->argv) {
    goto done;
  }
  for (size_t i = 0; i < open->n_argv; i++) {
    if (!(req->argv[i] = strdup(open->argv[i]))) {
      nt_open_request_clear(req);
      goto done;
    }
    req->argc++;
  }
  rv = 0;
done:
  if (open) {
    natter__stream_open__free_unpacked(open, NULL);
  }
  return rv;
}

void nt_open_request_clear(nt_open_request *req) {
  for (size_t i = 0; req->argv && i < req->argc; i++) {
    free(req->argv[i]);
  }
  free(req->argv);
  req->argv = NULL;
  req->argc = 0;
}

size_t nt_open_result_encode(uint8_t *out, nt_open_code code,
                             const char *message) {
  Natter__StreamOpenResult res = NATTER__STREAM_OPEN_RESULT__INIT;
  res.code = (Natter__Code)code;
  res.message = (char *)message;
  return encode(out, &res.base);
}

static int code_error(Natter__Code code) {
  switch (code) {
  case NATTER__CODE__OK:
    return 0;
  case NATTER__CODE__REFUSED:
    return NATTER_ERR_REFUSED;
  case NATTER__CODE__DENIED:
    return NATTER_ERR_DENIED;
  case NATTER__CODE__UNREACHABLE:
    return NATTER_ERR_UNREACHABLE;
  case NATTER__CODE__TIMEOUT:
    return NATTER_ERR_TIMEOUT;
  case NATTER__CODE__PEER_NOT_LISTENING:
    return NATTER_ERR_PEER_NOT_LISTENING;
  case NATTER__CODE__NAME_NOT_FOUND:
    return NATTER_ERR_RESOLVE;
  case NATTER__CODE__NETWORK_UNREACHABLE:
    return NATTER_ERR_UNREACHABLE;
  default:
    return NATTER_ERR_PROTOCOL;
  }
}

int nt_open_result_code(const uint8_t *body, size_t len) {
  Natter__StreamOpenResult *res =
      natter__stream_open_result__unpack(NULL, len, body);
  int code;
  if (!res) {
    return -1;
  }
  code = (int)res->code;
  natter__stream_open_result__free_unpacked(res, NULL);
  return code < 0 ? -1 : code;
}

int nt_open_result_decode(const uint8_t *body, size_t len, int *error,
                          char *message, size_t msglen) {
  Natter__StreamOpenResult *res =
      natter__stream_open_result__unpack(NULL, len, body);
  if (!res) {
    return NATTER_ERR_PROTOCOL;
  }
  *error = code_error(res->code);
  snprintf(message, msglen, "%s",
           nt_wire_string_ok(res->message, NT_OPEN_MAX_MESSAGE) ? res->message
                                                                : "");
  natter__stream_open_result__free_unpacked(res, NULL);
  return 0;
}
