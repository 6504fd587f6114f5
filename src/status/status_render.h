/* Status as text, for a broker and a client: Prometheus metrics, the JSON
 * document of the HTTP/3 status page and the readable tables natter
 * -status prints. The renderers read only the snapshot they are given
 * (snapshot.h) and append to |out|; they call into no role. */
#ifndef NT_STATUS_RENDER_H
#define NT_STATUS_RENDER_H

#include "status/snapshot.h"

struct evbuffer;

/* Prometheus text exposition format 0.0.4. */
void nt_render_broker_metrics(struct evbuffer *out,
                              const nt_broker_snapshot *s);
void nt_render_client_metrics(struct evbuffer *out,
                              const nt_client_snapshot *s);

/* The JSON status document. |detailed| adds what only an admin (or, for a
 * client, its own key) may see: the fingerprint, the byte counts and the
 * per-client or per-peer rows. */
void nt_render_broker_json(struct evbuffer *out, const nt_broker_snapshot *s,
                           int detailed);
void nt_render_client_json(struct evbuffer *out, const nt_client_snapshot *s,
                           int detailed);

/* The readable tables natter -status prints (text/plain). */
void nt_render_broker_text(struct evbuffer *out, const nt_broker_snapshot *s,
                           int detailed);
void nt_render_client_text(struct evbuffer *out, const nt_client_snapshot *s,
                           int detailed);

#endif
