/* What a status page or a metrics scrape shows, as plain data: a role
 * (client or broker) fills a snapshot from its public getters and hands it
 * to the renderers (status_render.h), which read nothing else. The rows
 * are the public natter_*_info structs, so what is printed is what an
 * embedder reads.
 *
 * A snapshot may be built two ways. A caller that owns its rows (a test)
 * points |peers|, |forwards| or |clients| at its own arrays. A role that
 * reads rows from a callback whose strings live only during the call uses
 * nt_*_snapshot_add_*, which copy each row and its strings into memory the
 * snapshot owns, released by nt_*_snapshot_clear. Not both in one
 * snapshot. */
#ifndef NT_SNAPSHOT_H
#define NT_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "natter.h"

/* Strings and arrays the add functions copied (opaque). */
typedef struct nt_snapshot_mem nt_snapshot_mem;

typedef struct nt_client_snapshot {
  const char *fingerprint; /* 64 hex digits; borrowed, not copied */
  natter_client_status status;
  natter_peer_info *peers;
  size_t npeers;
  natter_forward_info *forwards;
  size_t nforwards;
  /* Only the add functions use these. */
  size_t peers_cap, forwards_cap;
  nt_snapshot_mem *mem;
  /* The broker checked in at ("HOST:PORT"; of several, the one in use),
   * "" while not checked in. */
  char broker[64];
  int broker_over_tcp; /* the broker is reached over TCP (the fallback) */
  /* Stateless resets of the client's socket (nt_endpoint_reset_stats). */
  uint64_t resets_sent, resets_received, resets_dropped;
} nt_client_snapshot;

typedef struct nt_broker_snapshot {
  const char *fingerprint; /* 64 hex digits; borrowed, not copied */
  natter_broker_status status;
  uint64_t relay_channels; /* natter_broker_stats.relay_channels */
  uint64_t now_unix_ms; /* the wall clock "last seen ... ago" counts from */
  natter_broker_client_info *clients;
  size_t nclients;
  size_t clients_cap;
  nt_snapshot_mem *mem;
} nt_broker_snapshot;

/* Zeroes |s|: no rows, nothing owned. */
void nt_client_snapshot_init(nt_client_snapshot *s);
void nt_broker_snapshot_init(nt_broker_snapshot *s);

/* Append a copy of |row|, its strings and (for a peer) its candidate list
 * included. Return 0 or NATTER_ERR_NOMEM (the row is left out). */
int nt_client_snapshot_add_peer(nt_client_snapshot *s,
                                const natter_peer_info *row);
int nt_client_snapshot_add_forward(nt_client_snapshot *s,
                                   const natter_forward_info *row);
int nt_broker_snapshot_add_client(nt_broker_snapshot *s,
                                  const natter_broker_client_info *row);

/* Release what the add functions copied; |s| is then as after _init. */
void nt_client_snapshot_clear(nt_client_snapshot *s);
void nt_broker_snapshot_clear(nt_broker_snapshot *s);

#endif
