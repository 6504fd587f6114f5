/* Snapshots of a role's status (snapshot.h): each added row is copied with
 * its strings into one block of its own, so a row costs one allocation
 * besides the growth of the row array. */
#include "status/snapshot.h"

#include <stdlib.h>
#include <string.h>

/* A block: this header, then the row's pointer arrays (aligned as the
 * header is), then its strings. */
struct nt_snapshot_mem {
  nt_snapshot_mem *next;
};

static size_t str_size(const char *s) {
  return s ? strlen(s) + 1 : 0;
}

/* Room for |size| bytes after a new block's header, linked into |head|. */
static void *block_new(nt_snapshot_mem **head, size_t size) {
  nt_snapshot_mem *m = malloc(sizeof(*m) + size);
  if (!m) {
    return NULL;
  }
  m->next = *head;
  *head = m;
  return m + 1;
}

static void blocks_free(nt_snapshot_mem **head) {
  while (*head) {
    nt_snapshot_mem *next = (*head)->next;
    free(*head);
    *head = next;
  }
}

/* Copies |s| to |*cursor| and moves past it; NULL stays NULL. */
static const char *carve(char **cursor, const char *s) {
  if (!s) {
    return NULL;
  }
  size_t n = strlen(s) + 1;
  char *copy = *cursor;
  memcpy(copy, s, n);
  *cursor += n;
  return copy;
}

/* |array| with room for element |n|, grown if it was full; NULL when
 * out of memory (|array| is then unchanged). */
static void *room_for(void *array, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) {
    return array;
  }
  size_t ncap = *cap ? *cap * 2 : 8;
  void *p = realloc(array, ncap * elem);
  if (p) {
    *cap = ncap;
  }
  return p;
}

void nt_client_snapshot_init(nt_client_snapshot *s) {
  memset(s, 0, sizeof(*s));
}

void nt_broker_snapshot_init(nt_broker_snapshot *s) {
  memset(s, 0, sizeof(*s));
}

int nt_client_snapshot_add_peer(nt_client_snapshot *s,
                                const natter_peer_info *row) {
  size_t ncand = row->candidates ? row->ncandidates : 0;
  size_t size = ncand * sizeof(const char *);
  size += str_size(row->name) + str_size(row->fingerprint) +
          str_size(row->state) + str_size(row->path) + str_size(row->address) +
          str_size(row->probes_from);
  for (size_t i = 0; i < ncand; i++) {
    size += str_size(row->candidates[i]);
  }
  natter_peer_info *rows =
      room_for(s->peers, &s->peers_cap, s->npeers, sizeof(*rows));
  if (!rows) {
    return NATTER_ERR_NOMEM;
  }
  s->peers = rows;
  const char **cands = block_new(&s->mem, size);
  if (!cands) {
    return NATTER_ERR_NOMEM;
  }
  char *cursor = (char *)(cands + ncand);
  natter_peer_info *copy = &s->peers[s->npeers++];
  *copy = *row;
  copy->name = carve(&cursor, row->name);
  copy->fingerprint = carve(&cursor, row->fingerprint);
  copy->state = carve(&cursor, row->state);
  copy->path = carve(&cursor, row->path);
  copy->address = carve(&cursor, row->address);
  copy->probes_from = carve(&cursor, row->probes_from);
  for (size_t i = 0; i < ncand; i++) {
    cands[i] = carve(&cursor, row->candidates[i]);
  }
  copy->ncandidates = ncand;
  copy->candidates = cands;
  return 0;
}

int nt_client_snapshot_add_forward(nt_client_snapshot *s,
                                   const natter_forward_info *row) {
  size_t size = str_size(row->peer) + str_size(row->target);
  natter_forward_info *rows =
      room_for(s->forwards, &s->forwards_cap, s->nforwards, sizeof(*rows));
  if (!rows) {
    return NATTER_ERR_NOMEM;
  }
  s->forwards = rows;
  char *cursor = block_new(&s->mem, size);
  if (!cursor) {
    return NATTER_ERR_NOMEM;
  }
  natter_forward_info *copy = &s->forwards[s->nforwards++];
  *copy = *row;
  copy->peer = carve(&cursor, row->peer);
  copy->target = carve(&cursor, row->target);
  return 0;
}

int nt_broker_snapshot_add_client(nt_broker_snapshot *s,
                                  const natter_broker_client_info *row) {
  size_t size =
      str_size(row->name) + str_size(row->fingerprint) + str_size(row->address);
  natter_broker_client_info *rows =
      room_for(s->clients, &s->clients_cap, s->nclients, sizeof(*rows));
  if (!rows) {
    return NATTER_ERR_NOMEM;
  }
  s->clients = rows;
  char *cursor = block_new(&s->mem, size);
  if (!cursor) {
    return NATTER_ERR_NOMEM;
  }
  natter_broker_client_info *copy = &s->clients[s->nclients++];
  *copy = *row;
  copy->name = carve(&cursor, row->name);
  copy->fingerprint = carve(&cursor, row->fingerprint);
  copy->address = carve(&cursor, row->address);
  return 0;
}

void nt_client_snapshot_clear(nt_client_snapshot *s) {
  if (s->peers_cap) {
    free(s->peers);
  }
  if (s->forwards_cap) {
    free(s->forwards);
  }
  blocks_free(&s->mem);
  nt_client_snapshot_init(s);
}

void nt_broker_snapshot_clear(nt_broker_snapshot *s) {
  if (s->clients_cap) {
    free(s->clients);
  }
  blocks_free(&s->mem);
  nt_broker_snapshot_init(s);
}
