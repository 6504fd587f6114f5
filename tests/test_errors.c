/* Unit tests for the error table (src/base/errors.c): every code that
 * include/natter.h declares, read from the header itself so that a code
 * added there and not to the table fails here, has a name and a message;
 * the messages are the ones natter_strerror has always returned. */
#include "natter.h"
#include "test.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>

#ifndef NATTER_SOURCE_DIR
#error "NATTER_SOURCE_DIR must name the source tree (for include/natter.h)"
#endif

#define MAX_CODES 128

typedef struct declared_code {
  char symbol[64];
  int value;
} declared_code;

/* Reads every "NATTER_OK = 0" and "NATTER_ERR_X = -N" from natter.h.
 * Returns how many, or -1 if the header cannot be read. */
static int read_declared_codes(declared_code *out, int max) {
  FILE *f = fopen(NATTER_SOURCE_DIR "/include/natter.h", "r");
  char line[512];
  int n = 0;
  if (!f) {
    return -1;
  }
  while (fgets(line, sizeof(line), f) && n < max) {
    const char *p = line;
    while (*p == ' ') {
      p++;
    }
    if (strncmp(p, "NATTER_ERR_", 11) != 0 &&
        strncmp(p, "NATTER_OK ", 10) != 0) {
      continue;
    }
    size_t len = 0;
    while (isupper((unsigned char)p[len]) || p[len] == '_') {
      len++;
    }
    const char *eq = p + len;
    while (*eq == ' ') {
      eq++;
    }
    if (*eq != '=' || len >= sizeof(out[n].symbol)) {
      continue; /* a mention in a comment, not the enum */
    }
    memcpy(out[n].symbol, p, len);
    out[n].symbol[len] = '\0';
    out[n].value = (int)strtol(eq + 1, NULL, 10);
    n++;
  }
  fclose(f);
  return n;
}

static void test_every_declared_code_has_name_and_message(void) {
  declared_code codes[MAX_CODES];
  int n = read_declared_codes(codes, MAX_CODES);
  CHECK(n >= 23); /* NATTER_OK .. NATTER_ERR_REGISTRY at least */
  for (int i = 0; i < n; i++) {
    const char *name = natter_error_name(codes[i].value);
    const char *msg = natter_strerror(codes[i].value);
    if (strcmp(name, "unknown") == 0 || strcmp(msg, "unknown error") == 0) {
      fprintf(stderr, "%s (%d) has no %s in src/base/errors.c\n",
              codes[i].symbol, codes[i].value,
              strcmp(name, "unknown") == 0 ? "name" : "message");
      nt_test_failures++;
      continue;
    }
    /* The name is the symbol's tail in lower case: NATTER_ERR_NAME_TAKEN
     * is "name_taken", NATTER_OK "ok". */
    const char *tail =
        codes[i].symbol +
        (strncmp(codes[i].symbol, "NATTER_ERR_", 11) == 0 ? 11 : 7);
    char want[64];
    size_t k = 0;
    for (; tail[k] && k + 1 < sizeof(want); k++) {
      want[k] = (char)tolower((unsigned char)tail[k]);
    }
    want[k] = '\0';
    if (strcmp(name, want) != 0) {
      fprintf(stderr, "%s is named \"%s\", want \"%s\"\n", codes[i].symbol,
              name, want);
      nt_test_failures++;
    }
    for (int j = 0; j < i; j++) {
      CHECK(codes[j].value != codes[i].value);
      CHECK(strcmp(natter_strerror(codes[j].value), msg) != 0);
    }
  }
}

/* The messages as natter_strerror has always returned them: callers and
 * scripts match on them. */
static void test_messages_unchanged(void) {
  static const struct {
    int code;
    const char *message;
  } want[] = {
      {NATTER_OK, "success"},
      {NATTER_ERR_INVALID, "invalid argument"},
      {NATTER_ERR_NOMEM, "out of memory"},
      {NATTER_ERR_SOCKET, "socket error"},
      {NATTER_ERR_ADDR_IN_USE, "address already in use"},
      {NATTER_ERR_IDENTITY, "identity key unusable"},
      {NATTER_ERR_SPEC, "malformed forward spec"},
      {NATTER_ERR_BROKER, "broker unreachable or failed"},
      {NATTER_ERR_NAME_TAKEN, "name taken by another key"},
      {NATTER_ERR_PEER_UNKNOWN, "peer unknown at the broker"},
      {NATTER_ERR_PEER_NOT_LISTENING, "peer not listening"},
      {NATTER_ERR_PUNCH, "hole punching failed"},
      {NATTER_ERR_KEY_MISMATCH, "peer key mismatch"},
      {NATTER_ERR_REFUSED, "connection refused by the target"},
      {NATTER_ERR_UNREACHABLE, "target unreachable"},
      {NATTER_ERR_DENIED, "denied by the peer's rules"},
      {NATTER_ERR_PROTOCOL, "protocol error"},
      {NATTER_ERR_TLS, "TLS handshake failed"},
      {NATTER_ERR_UNAUTHORIZED, "not authorized by the broker"},
      {NATTER_ERR_CLOSED, "connection closed"},
      {NATTER_ERR_TIMEOUT, "timed out"},
      {NATTER_ERR_RESOLVE, "host name did not resolve"},
      {NATTER_ERR_REGISTRY, "broker registry unusable or full"},
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    CHECK(strcmp(natter_strerror(want[i].code), want[i].message) == 0);
  }
}

static void test_unknown_codes(void) {
  const int unknown[] = {1,     2,       100,    NATTER_ERR_REGISTRY - 1,
                         -1000, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    CHECK(strcmp(natter_strerror(unknown[i]), "unknown error") == 0);
    CHECK(strcmp(natter_error_name(unknown[i]), "unknown") == 0);
  }
}

int main(void) {
  static const nt_test_case cases[] = {
      {"every_declared_code_has_name_and_message",
       test_every_declared_code_has_name_and_message},
      {"messages_unchanged", test_messages_unchanged},
      {"unknown_codes", test_unknown_codes},
      {NULL, NULL}};
  return nt_test_run(cases);
}
