/* The client's status glue (client_status.c), as client.c calls it: the
 * event counters, and the HTTP/3 status page on the client's socket. The
 * public getters (natter_client_get_status, natter_client_foreach_*) and
 * metrics (natter_client_metrics_*) live there too; natter.h has them. */
#ifndef NT_CLIENT_STATUS_H
#define NT_CLIENT_STATUS_H

#include "natter.h"
#include "quic/endpoint.h"

/* Every event passes here (emit_event): the counters are the events, so
 * they cannot disagree with what the log and the embedder were told. */
void nt_client_count_event(natter_client *c, natter_event_type type, int error,
                           const char *peer);

/* Creates the HTTP/3 server of GET /status (the client's own key and
 * -admin keys only); without memory the client runs without it. */
void nt_client_start_status_page(natter_client *c);

/* The endpoint's accept_h3 callback (|ud| is the client): hands an HTTP/3
 * connection to the status page, or refuses it (0) when there is none. */
int nt_client_accept_h3(nt_endpoint *ep, const struct sockaddr *from,
                        nt_accept_params *params, void *ud);

#endif
