/* The brokers of one network, as the client was given them: "HOST:PORT"
 * or a comma-separated list of them ("a:10000,b:10000"), each name
 * resolved to all of its addresses (several A/AAAA records are several
 * brokers). The client checks in at the first that answers, in this
 * order, and moves to the next when it loses it (broker_session.c). */
#ifndef NT_BROKER_LIST_H
#define NT_BROKER_LIST_H

#include <stddef.h>

#include "base/addr.h"

/* At most this many broker addresses, after resolving every name of the
 * list (doc/operations.md, "Limits"). */
#define NT_BROKERS_MAX 16
/* The list as text: at most this many bytes. */
#define NT_BROKER_LIST_TEXT_MAX 1024

typedef struct nt_broker_list {
  nt_addr addr[NT_BROKERS_MAX]; /* in the order given, duplicates dropped */
  size_t n;
} nt_broker_list;

/* Parses |text| and resolves every name (getaddrinfo: blocking, once at
 * start), numeric ports 1..65535, an IPv6 address in brackets; blanks
 * around the commas are allowed. Writes into |norm| (|normlen| bytes) the
 * list without blanks: the network's name in the known-brokers file.
 * Returns 0, or NATTER_ERR_INVALID / NATTER_ERR_RESOLVE with a one-line
 * reason in |err| (an empty item, a bad port, more than NT_BROKERS_MAX
 * addresses, a name that does not resolve). */
int nt_broker_list_parse(nt_broker_list *out, const char *text, char *norm,
                         size_t normlen, char *err, size_t errlen);

/* Splits one item of a list, "HOST:PORT" or "[IPV6]:PORT" (an empty HOST
 * is 127.0.0.1), into |host| and |port| (checked: 1..65535). 0, or
 * NATTER_ERR_INVALID with the reason in |err|. */
int nt_broker_list_split(const char *item, char *host, size_t hostlen,
                         char *port, size_t portlen, char *err, size_t errlen);

/* Appends |sa| unless listed already: 0, or -1 when the list holds
 * NT_BROKERS_MAX addresses already. */
struct sockaddr;
int nt_broker_list_add(nt_broker_list *out, const struct sockaddr *sa,
                       size_t salen);

#endif
