/* Resolving the names of the broker list again (issue 24): a -broker
 * given as a DNS name is resolved at start (broker_list.c, blocking, once);
 * when a whole round through the list has failed, the names are asked
 * again, asynchronously (libevent's evdns, the client's resolver), so that
 * a broker that moved to another address is found without a restart. At
 * most one such lookup at a time, each given NT_BROKER_RESOLVE_TIMEOUT_S;
 * the answer replaces the list only when every name resolved, to at most
 * NT_BROKERS_MAX addresses in all, and differs from it (logged). A list of
 * addresses only asks nothing. */
#ifndef NT_BROKER_RESOLVE_H
#define NT_BROKER_RESOLVE_H

#define NT_BROKER_RESOLVE_TIMEOUT_S 10

typedef struct natter_client natter_client;
typedef struct nt_broker_resolve nt_broker_resolve;

/* 0 (with *out NULL when the list names no host), or NATTER_ERR_NOMEM. */
int nt_broker_resolve_new(nt_broker_resolve **out, natter_client *c);
void nt_broker_resolve_free(nt_broker_resolve *r);

/* A round through the list failed: asks the names again (a no-op while a
 * lookup is under way). An answer that came while the client was
 * connecting to a broker waits for the next call. */
void nt_broker_resolve_start(nt_broker_resolve *r);

#endif
