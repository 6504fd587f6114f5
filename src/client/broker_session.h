/* The client's session with its broker: the control stream (check-in,
 * connect requests, introductions, peer notices, checks), the NAT mapping
 * check, the broker's key on first contact, and reconnecting with
 * backoff. It works on the facade's state (client_internal.h) and reports
 * through the facade's events; the messages themselves are control.h's. */
#ifndef NT_BROKER_SESSION_H
#define NT_BROKER_SESSION_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client_internal.h"

/* How long the broker may take to finish the QUIC handshake. */
#define NT_BROKER_HANDSHAKE_TIMEOUT_MS 5000
/* Several brokers: a broker we heard nothing from for this long (PINGs
 * go every second) is given up for the next. The silence watch reports
 * sooner (a few round trips with data unacknowledged): a timer then
 * looks again when this much has passed. */
#define NT_BROKER_LOST_MS 2000

/* Starts a connection to the broker; on failure a retry is scheduled. */
void nt_broker_session_connect(natter_client *c);

/* Event callbacks (|arg| is the client): c->reconnect_ev and
 * c->mapping_ev. */
void nt_broker_session_reconnect_cb(evutil_socket_t fd, short what, void *arg);
void nt_broker_session_mapping_cb(evutil_socket_t fd, short what, void *arg);
/* c->broker_lost_ev: several brokers, ours silent: NT_BROKER_LOST_MS? */
void nt_broker_session_lost_cb(evutil_socket_t fd, short what, void *arg);

/* A datagram on the client's socket: returns 1 when it was the answer of
 * the broker's mapping-check port (handled), 0 otherwise. */
int nt_broker_session_mapping_reply(natter_client *c, const uint8_t *data,
                                    size_t len);

/* nt_peer_callbacks (|ud| is the client): ask the broker for an
 * introduction (0 while not checked in or while the mapping check runs),
 * for a fresh one of a pair that met, and pass on our side of a check. */
uint32_t nt_broker_session_request_peer(const char *name, void *ud);
int nt_broker_session_refresh_peer(const char *name, void *ud);
void nt_broker_session_report_check(const nt_check_side *side, void *ud);
/* Our peer rules changed: the broker forgets the refusals it remembers
 * for us (AdmissionReset), so that a peer admitted now is asked again. */
void nt_broker_session_rules_changed(natter_client *c);
/* The gateway's port mapping was made, changed or lost (portmap.h's
 * changed callback; |ud| is the client): the broker hears of it in a
 * NatReport once the mapping check is over. */
void nt_broker_session_portmap_changed(void *ud);

#endif
