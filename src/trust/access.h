/* A listener's access rules: which peers may connect at all, and which
 * targets and commands each may reach. Pure: rules are parsed from text
 * and decisions are taken from their arguments alone; no sockets, no event
 * loop, no logging, no client. The library, the natter_allow_*_check()
 * functions and the CLI's config file all use this one grammar.
 *
 * Peer rules ("-allow-peer RULE"), tried in order, the first that matches
 * the peer decides:
 *   NAME              the peer checked in as NAME (at this broker)
 *   NAME@FINGERPRINT  that name with exactly that key
 *   @FINGERPRINT      any name, as long as the key is this one
 *   *                 any peer
 *   !SELECTOR         refuse what SELECTOR matches (e.g. !mallory before *)
 * FINGERPRINT is the peer key's 64 hex digits (':' between pairs allowed),
 * as natter logs it at start-up ("NAME: key FINGERPRINT, ..."). A peer no
 * rule matches is refused. With no peer rule at all, any peer is admitted
 * only when the broker is closed (token or admitted keys), that is when the
 * caller says so.
 *
 * Target rules ("-allow RULE"), optionally scoped to peers as
 * "SELECTOR=RULE" (e.g. alice=nas.lan:22, @FP=*):
 *   *                 every target
 *   HOST              every port of HOST
 *   HOST:PORT         one port of HOST
 *   HOST:*            every port of HOST (as HOST alone)
 *   [IPv6]            every port of an IPv6 address, e.g. [::1]
 *   [IPv6]:PORT       one port of it; [IPv6]:* is every port
 *   IPv6              a bare IPv6 address (two or more ':'): all of it is
 *                     the address, so it takes no port; ::1 is [::1]
 *   IPv4/BITS         a range of IPv4 addresses, every port, e.g.
 *                     198.18.1.0/24; IPv4/BITS:PORT and IPv4/BITS:* too
 *   [IPv6/BITS]       a range of IPv6 addresses, e.g. [2001:db8::/32];
 *                     [IPv6/BITS]:PORT, [IPv6/BITS]:* and a bare
 *                     IPv6/BITS (every port) too
 * HOST is a name or an IPv4 address: 1-253 of A-Z a-z 0-9 . _ -. PORT is
 * 1..65535 written plainly (no sign, no leading zero). Names match the
 * target host without regard to case; IPv6 addresses match by value
 * (::1 and 0:0::1 are one address). No DNS: a name rule matches only a
 * target given by that name, and an address rule only a target given as
 * that address. A range (BITS 0..32 or 0..128, the bits after them 0)
 * matches the address a connection actually goes to: the target's own
 * address when it is one, else the address its name resolved to on the
 * listener, checked after resolution (nt_access_target_allowed_at), so
 * that no DNS answer steers a name-given target outside the range. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as its IPv4 address.
 * An unscoped rule holds for every admitted peer.
 *
 * Command rules ("-allow-command RULE"), optionally scoped the same way
 * ("alice=rsync --server ..."; a scope is the text before the first '='
 * when no blank or quote comes before it):
 *   *                  any command at all
 *   PROG ARG...        exactly this command line: argv must have these
 *                      words, no more, no fewer
 *   PROG ARG... *      this fixed prefix followed by any arguments (a
 *                      final unquoted '*' word); "PROG *" allows whatever
 *                      PROG can be made to do
 * Words are separated by blanks; '...' or "..." keep blanks and the other
 * quote inside a word (no escapes); quotes join with the text around them.
 * No word but the last may be an unquoted '*', and '*' is never a pattern
 * inside a word. The program is compared exactly (rsync is not
 * /usr/bin/rsync). A rule holds no control character and does not start
 * or end with a blank. Commands are never run through a shell: a rule
 * "sh -c 'fixed script'" is how to allow one on purpose.
 *
 * Limits: NT_ACCESS_MAX_RULE bytes per rule, NT_ACCESS_MAX_WORDS words per
 * command rule. All rules allow; "first match wins" matters only for peer
 * rules, the only ones that can refuse. */
#ifndef NT_ACCESS_H
#define NT_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#define NT_ACCESS_MAX_RULE 4096
#define NT_ACCESS_MAX_WORDS 64

typedef struct nt_access nt_access; /* opaque rule set */

/* Who asks: the peer's name at the broker and its key (NT_FINGERPRINT_LEN
 * bytes, as verified by the TLS handshake). Decisions with a NULL peer
 * consider only unscoped rules. */
typedef struct nt_access_peer {
  const char *name;
  const uint8_t *key; /* may be NULL: matches no rule naming a key */
} nt_access_peer;

/* Returns an empty rule set (allows nothing), or NULL without memory. */
nt_access *nt_access_new(void);

/* Frees |acc| and its rules. NULL is a no-op. */
void nt_access_free(nt_access *acc);
/* Moves every rule of |src| into |dst|, whose own rules are freed first;
 * |src| is left empty. Whoever holds |dst| sees the new rules at once
 * (SIGHUP reload). */
void nt_access_replace(nt_access *dst, nt_access *src);

/* Parses |text| as a target rule and adds it to |acc|. Returns 0, or
 * NATTER_ERR_INVALID with a one-line reason in |err| ("the port is not a
 * number 1..65535 or *; expected HOST, ...", not naming |text|: callers
 * say where it came from), or NATTER_ERR_NOMEM. |err| may be NULL. */
int nt_access_add_target_rule(nt_access *acc, const char *text, char *err,
                              size_t errlen);

/* The same for a command rule and a peer rule. */
int nt_access_add_command_rule(nt_access *acc, const char *text, char *err,
                               size_t errlen);
int nt_access_add_peer_rule(nt_access *acc, const char *text, char *err,
                            size_t errlen);

/* Checks |text| as the add functions do, without a rule set. Returns 0 or
 * NATTER_ERR_INVALID with a reason in |err| (may be NULL). */
int nt_access_check_target_rule(const char *text, char *err, size_t errlen);
int nt_access_check_command_rule(const char *text, char *err, size_t errlen);
int nt_access_check_peer_rule(const char *text, char *err, size_t errlen);

/* Returns 1 when |peer| may connect at all: the first peer rule that
 * matches it says so; with no peer rules, 1 exactly when |broker_closed|.
 * Else 0. */
int nt_access_peer_admitted(const nt_access *acc, const nt_access_peer *peer,
                            int broker_closed);

/* Returns 1 when a rule of |acc| that holds for |peer| allows |host| (as
 * the opener sent it, IPv6 without brackets), |port|, else 0. Loopback
 * targets are the caller's business: this looks only at the rules. */
int nt_access_target_allowed(const nt_access *acc, const nt_access_peer *peer,
                             const char *host, uint16_t port);

/* The same, for a connection to |sa| (AF_INET or AF_INET6), the address
 * |host| resolved to (or is): name and address rules still look at
 * |host|, ranges at |sa|. With |sa| NULL, ranges match |host| when it is
 * an IP address, as nt_access_target_allowed does. */
struct sockaddr;
int nt_access_target_allowed_at(const nt_access *acc,
                                const nt_access_peer *peer, const char *host,
                                uint16_t port, const struct sockaddr *sa);

/* Returns 1 when a rule of |acc| that holds for |peer| allows running
 * |argv| (|argc| entries), else 0. An empty command is never allowed. */
int nt_access_command_allowed(const nt_access *acc, const nt_access_peer *peer,
                              const char *const *argv, size_t argc);

/* Whether |acc| holds any target / command / peer rule (for messages that
 * say "not in your rules" rather than "nothing is allowed"). NULL: 0. */
int nt_access_has_target_rules(const nt_access *acc);
int nt_access_has_command_rules(const nt_access *acc);
int nt_access_has_peer_rules(const nt_access *acc);

#endif
