/* Library-wide functions: versions and error strings. */
#include "natter.h"

NATTER_EXPORT const char *natter_version(void) {
  return NATTER_VERSION_STRING;
}

NATTER_EXPORT const char *natter_strerror(int err) {
  switch (err) {
  case NATTER_OK:
    return "success";
  case NATTER_ERR_INVALID:
    return "invalid argument";
  case NATTER_ERR_NOMEM:
    return "out of memory";
  case NATTER_ERR_SOCKET:
    return "socket error";
  case NATTER_ERR_ADDR_IN_USE:
    return "address already in use";
  case NATTER_ERR_IDENTITY:
    return "identity key unusable";
  case NATTER_ERR_SPEC:
    return "malformed forward spec";
  case NATTER_ERR_BROKER:
    return "broker unreachable or failed";
  case NATTER_ERR_NAME_TAKEN:
    return "name taken by another key";
  case NATTER_ERR_PEER_UNKNOWN:
    return "peer unknown at the broker";
  case NATTER_ERR_PEER_NOT_LISTENING:
    return "peer not listening";
  case NATTER_ERR_PUNCH:
    return "hole punching failed";
  case NATTER_ERR_KEY_MISMATCH:
    return "peer key mismatch";
  case NATTER_ERR_REFUSED:
    return "connection refused by the target";
  case NATTER_ERR_UNREACHABLE:
    return "target unreachable";
  case NATTER_ERR_DENIED:
    return "denied by the peer's rules";
  case NATTER_ERR_PROTOCOL:
    return "protocol error";
  case NATTER_ERR_TLS:
    return "TLS handshake failed";
  case NATTER_ERR_UNAUTHORIZED:
    return "not authorized by the broker";
  case NATTER_ERR_CLOSED:
    return "connection closed";
  case NATTER_ERR_TIMEOUT:
    return "timed out";
  case NATTER_ERR_RESOLVE:
    return "host name did not resolve";
  case NATTER_ERR_REGISTRY:
    return "broker registry unusable or full";
  default:
    return "unknown error";
  }
}
