/* UDP sockets of one family or both: the one place that decides how
 * natter's UDP sockets are opened (the endpoint's, and the broker's
 * mapping-check and relay ports), so that all of them follow one rule. */
#ifndef NT_UDPSOCK_H
#define NT_UDPSOCK_H

#include "addr.h"

/* Opens a non-blocking, close-on-exec UDP socket bound to |bind|.
 *
 * With |dual| and an unspecified bind address (0.0.0.0 or ::), one socket
 * serves both families: AF_INET6 with IPV6_V6ONLY off, bound to [::] and
 * the port. Where the host has no IPv6 (no AF_INET6 sockets, or [::]
 * cannot be bound for another reason than the port being taken) it is an
 * IPv4 socket on 0.0.0.0 instead. Without |dual| an IPv6 bind address
 * gets IPV6_V6ONLY on: exactly the family asked for.
 *
 * Returns the descriptor and sets *family and *v6only, or -errno. */
int nt_udp_open(const nt_addr *bind, int dual, int *family, int *v6only);

/* Whether a socket opened so (|family|, |v6only|) can send to and receive
 * from addresses of |addr_family| (AF_INET or AF_INET6). */
int nt_udp_reaches(int family, int v6only, int addr_family);

#endif
