/* Library-wide functions: versions, and the one table of error codes that
 * natter_strerror and natter_error_name both read, so a code cannot have a
 * message without a name or the other way round (tests/test_errors.c
 * checks every code natter.h declares against it). */
#include "natter.h"

#include <stddef.h>

typedef struct error_row {
  const char *name;    /* short and stable: metrics labels, JSON */
  const char *message; /* for people: natter_strerror */
} error_row;

/* Indexed by -code: the codes run from 0 down without gaps. */
static const error_row error_table[] = {
    [-NATTER_OK] = {"ok", "success"},
    [-NATTER_ERR_INVALID] = {"invalid", "invalid argument"},
    [-NATTER_ERR_NOMEM] = {"nomem", "out of memory"},
    [-NATTER_ERR_SOCKET] = {"socket", "socket error"},
    [-NATTER_ERR_ADDR_IN_USE] = {"addr_in_use", "address already in use"},
    [-NATTER_ERR_IDENTITY] = {"identity", "identity key unusable"},
    [-NATTER_ERR_SPEC] = {"spec", "malformed forward spec"},
    [-NATTER_ERR_BROKER] = {"broker", "broker unreachable or failed"},
    [-NATTER_ERR_NAME_TAKEN] = {"name_taken", "name taken by another key"},
    [-NATTER_ERR_PEER_UNKNOWN] = {"peer_unknown", "peer unknown at the broker"},
    [-NATTER_ERR_PEER_NOT_LISTENING] = {"peer_not_listening",
                                        "peer not listening"},
    [-NATTER_ERR_PUNCH] = {"punch", "hole punching failed"},
    [-NATTER_ERR_KEY_MISMATCH] = {"key_mismatch", "peer key mismatch"},
    [-NATTER_ERR_REFUSED] = {"refused", "connection refused by the target"},
    [-NATTER_ERR_UNREACHABLE] = {"unreachable", "target unreachable"},
    [-NATTER_ERR_DENIED] = {"denied", "denied by the peer's rules"},
    [-NATTER_ERR_PROTOCOL] = {"protocol", "protocol error"},
    [-NATTER_ERR_TLS] = {"tls", "TLS handshake failed"},
    [-NATTER_ERR_UNAUTHORIZED] = {"unauthorized",
                                  "not authorized by the broker"},
    [-NATTER_ERR_CLOSED] = {"closed", "connection closed"},
    [-NATTER_ERR_TIMEOUT] = {"timeout", "timed out"},
    [-NATTER_ERR_RESOLVE] = {"resolve", "host name did not resolve"},
    [-NATTER_ERR_REGISTRY] = {"registry", "broker registry unusable or full"},
};

/* The row of |err|, or NULL for a code the table does not have (positive,
 * out of range, or a gap a designated initializer left). */
static const error_row *error_find(int err) {
  if (err > 0 ||
      err < -(int)(sizeof(error_table) / sizeof(error_table[0]) - 1)) {
    return NULL;
  }
  const error_row *row = &error_table[-err];
  return row->name && row->message ? row : NULL;
}

NATTER_EXPORT const char *natter_version(void) {
  return NATTER_VERSION_STRING;
}

NATTER_EXPORT const char *natter_strerror(int err) {
  const error_row *row = error_find(err);
  return row ? row->message : "unknown error";
}

NATTER_EXPORT const char *natter_error_name(int err) {
  const error_row *row = error_find(err);
  return row ? row->name : "unknown";
}
