/* The structs natter.h lets callers allocate (configs, stats): their
 * defaults and how much of each a caller compiled against an older header
 * has. See "Structs that grow" at the top of natter.h. */
#ifndef NT_STRUCTS_H
#define NT_STRUCTS_H

#include <stddef.h>

#include "natter.h"

/* Bytes of the struct that a caller compiled with |version| of its
 * NATTER_*_VERSION has: the end of that version's last field. 0 for a
 * version this library does not know (newer than itself, or garbage). */
size_t nt_broker_config_len(int version);
size_t nt_client_config_len(int version);
size_t nt_forward_config_len(int version);
size_t nt_broker_stats_len(int version);
size_t nt_forward_stats_len(int version);
size_t nt_peer_stats_len(int version);
size_t nt_broker_status_len(int version);
size_t nt_client_status_len(int version);

/* Fills |out| (this library's layout) from a caller's |in| laid out as
 * |version|: the fields that version has are copied, the newer ones get
 * their defaults. Returns 0, or NATTER_ERR_INVALID for a NULL |in| or an
 * unknown version. */
int nt_broker_config_load(natter_broker_config *out, int version,
                          const natter_broker_config *in);
int nt_client_config_load(natter_client_config *out, int version,
                          const natter_client_config *in);
int nt_forward_config_load(natter_forward_config *out, int version,
                           const natter_forward_config *in);

#endif
