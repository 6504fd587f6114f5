/* The public syntax checks: what a caller (the CLI first) can verify about
 * its configuration before it creates anything, with the very rules the
 * library applies later. */
#include "natter.h"

#include "trust/access.h"
#include "codec/spec.h"

#include <stdio.h>

NATTER_EXPORT int natter_allow_rule_check(const char *rule, char *err,
                                          size_t errlen) {
  return nt_access_check_target_rule(rule, err, errlen);
}

NATTER_EXPORT int natter_allow_command_check(const char *rule, char *err,
                                             size_t errlen) {
  return nt_access_check_command_rule(rule, err, errlen);
}

NATTER_EXPORT int natter_allow_peer_check(const char *rule, char *err,
                                          size_t errlen) {
  return nt_access_check_peer_rule(rule, err, errlen);
}

NATTER_EXPORT int natter_name_check(const char *name, char *err,
                                    size_t errlen) {
  if (nt_name_valid(name)) {
    return 0;
  }
  if (err && errlen > 0) {
    snprintf(err, errlen, "expected 1-%d of A-Z a-z 0-9 . _ -", NT_NAME_MAX);
  }
  return NATTER_ERR_INVALID;
}

NATTER_EXPORT uint16_t natter_port_parse(const char *s) {
  return nt_port_parse(s);
}
