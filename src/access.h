/* A listener's access rules: which targets and commands its peers may
 * reach. Pure: rules are parsed from text and decisions are taken from
 * their arguments alone; no sockets, no event loop, no logging, no client.
 * The library, natter_allow_rule_check() and the CLI's config file all use
 * this one grammar.
 *
 * Target rules ("-allow RULE"):
 *   *                 every target
 *   HOST              every port of HOST
 *   HOST:PORT         one port of HOST
 *   HOST:*            every port of HOST (as HOST alone)
 *   [IPv6]            every port of an IPv6 address, e.g. [::1]
 *   [IPv6]:PORT       one port of it; [IPv6]:* is every port
 *   IPv6              a bare IPv6 address (two or more ':'): all of it is
 *                     the address, so it takes no port; ::1 is [::1]
 * HOST is a name or an IPv4 address: 1-253 of A-Z a-z 0-9 . _ -. PORT is
 * 1..65535 written plainly (no sign, no leading zero). Names match the
 * target host without regard to case; IPv6 addresses match by value
 * (::1 and 0:0::1 are one address). No DNS: a name matches only a target
 * given by that name.
 *
 * Command rules ("-allow-command PROG"): "*" (any program) or a program
 * compared exactly with the command's argv[0]. A program is not empty,
 * holds no control character, does not start or end with a blank and has
 * no '*' (there are no patterns).
 *
 * Later rules (per-peer sections, whole command lines) extend nt_access
 * with new add functions and decisions; the text of today's rules keeps
 * its meaning. */
#ifndef NT_ACCESS_H
#define NT_ACCESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct nt_access nt_access; /* opaque rule set */

/* Returns an empty rule set (allows nothing), or NULL without memory. */
nt_access *nt_access_new(void);

/* Frees |acc| and its rules. NULL is a no-op. */
void nt_access_free(nt_access *acc);

/* Parses |text| as a target rule and adds it to |acc|. Returns 0, or
 * NATTER_ERR_INVALID with a one-line reason in |err| ("the port is not a
 * number 1..65535 or *; expected HOST, ...", not naming |text|: callers
 * say where it came from), or NATTER_ERR_NOMEM. |err| may be NULL. */
int nt_access_add_target_rule(nt_access *acc, const char *text, char *err,
                              size_t errlen);

/* The same for a command rule. */
int nt_access_add_command_rule(nt_access *acc, const char *text, char *err,
                               size_t errlen);

/* Checks |text| as the add functions do, without a rule set. Returns 0 or
 * NATTER_ERR_INVALID with a reason in |err| (may be NULL). */
int nt_access_check_target_rule(const char *text, char *err, size_t errlen);
int nt_access_check_command_rule(const char *text, char *err, size_t errlen);

/* Returns 1 when a rule of |acc| allows |host| (as the opener sent it,
 * IPv6 without brackets), |port|, else 0. Loopback targets are the
 * caller's business: this looks only at the rules. */
int nt_access_target_allowed(const nt_access *acc, const char *host,
                             uint16_t port);

/* Returns 1 when a rule of |acc| allows running |argv| (|argc| entries),
 * else 0. An empty command is never allowed. */
int nt_access_command_allowed(const nt_access *acc, const char *const *argv,
                              size_t argc);

/* Whether |acc| holds any target / command rule (for messages that say
 * "not in your rules" rather than "nothing is allowed"). NULL: 0. */
int nt_access_has_target_rules(const nt_access *acc);
int nt_access_has_command_rules(const nt_access *acc);

#endif
