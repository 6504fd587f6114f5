/* The brokers' bus: notes between brokers that share a PostgreSQL
 * registry, by LISTEN/NOTIFY on a libpq connection of its own (so that a
 * note never waits behind the registry's statements, nor they behind a
 * note), and the presence lookup "which live broker holds this name".
 * Non-blocking like registry_pg.c: nothing here waits on the loop.
 *
 * Its application_name is the registry's followed by " bus" ("natter
 * bus" without one). Each broker listens on the channel "natter_" + the first
 * NT_BUS_CHANNEL_ID hex digits of its broker id. Requests are queued (at
 * most NT_BUS_QUEUE_MAX) and run one at a time; a statement gets
 * NT_BUS_TIMEOUT_S, then the connection counts as lost: every queued
 * request fails (a lookup's callback gets NATTER_ERR_REGISTRY, a note is
 * dropped: the asking broker's timeout answers), and it reconnects after
 * 1 s, doubling to 30 s. Callbacks run from the loop, never inside the
 * call that queued them. */
#ifndef NT_BUS_PG_H
#define NT_BUS_PG_H

#include <event2/event.h>
#include <stddef.h>

#include "base/log.h"

#define NT_BUS_QUEUE_MAX 512
#define NT_BUS_TIMEOUT_S 5
#define NT_BUS_CHANNEL_ID 48

typedef struct nt_bus nt_bus;
typedef struct nt_bus_req nt_bus_req;

/* A note for this broker: |payload| (|len| bytes, NUL-terminated), not
 * checked yet. */
typedef void (*nt_bus_note_fn)(const char *payload, size_t len, void *ud);
/* A lookup's answer: 0 with the id of a live broker (not this one) that
 * holds the name, NATTER_ERR_PEER_UNKNOWN when none does, or
 * NATTER_ERR_REGISTRY when the database could not say. */
typedef void (*nt_bus_where_fn)(int rv, const char *broker_id, void *ud);

/* Connects (later, from the loop) to |conninfo| as broker |self_id| (a
 * broker id, xnote.h). Returns 0 or NATTER_ERR_NOMEM / INVALID. */
int nt_bus_new(nt_bus **out, struct event_base *base, const char *conninfo,
               const char *self_id, const nt_log *log, nt_bus_note_fn fn,
               void *ud);
/* Closes; no callback runs after. NULL is a no-op. */
void nt_bus_free(nt_bus *bus);

/* Which other live broker holds |name|. 0 and |fn| runs once later
 * (*preq is its handle until then, for nt_bus_cancel), or a negative
 * NATTER_ERR_* (the database is away, the queue is full): no callback. */
int nt_bus_where(nt_bus *bus, const char *name, nt_bus_where_fn fn, void *ud,
                 nt_bus_req **preq);
/* Cancels a lookup; its callback never runs. NULL is a no-op. */
void nt_bus_cancel(nt_bus *bus, nt_bus_req *req);

/* Sends |payload| (text, < 8000 bytes) to broker |broker_id|'s channel:
 * 0 queued, or a negative NATTER_ERR_* (nothing sent). Delivery is not
 * confirmed: the receiver answers with a note of its own, or not. */
int nt_bus_send(nt_bus *bus, const char *broker_id, const char *payload);

#endif
