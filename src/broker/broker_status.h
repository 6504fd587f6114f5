/* The broker's status glue (broker_status.c), as broker.c calls it: the
 * HTTP/3 status page on the broker's port. The public getters
 * (natter_broker_get_status, natter_broker_foreach_client) and metrics
 * (natter_broker_metrics_*) live there too; natter.h has them. */
#ifndef NT_BROKER_STATUS_H
#define NT_BROKER_STATUS_H

#include "natter.h"
#include "quic/endpoint.h"

/* Creates the HTTP/3 server of GET /status (aggregate counts for anyone,
 * client rows for the broker's own and -admin keys); without memory the
 * broker runs without it. */
void nt_broker_start_status_page(natter_broker *b);

/* The endpoint's accept_h3 callback (|ud| is the broker): hands an HTTP/3
 * connection to the status page, or refuses it (0) when there is none. */
int nt_broker_accept_h3(nt_endpoint *ep, const struct sockaddr *from,
                        nt_accept_params *params, void *ud);

#endif
