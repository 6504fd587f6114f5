#include "quic/sendbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void nt_chunk_pool_init(nt_chunk_pool *pool, size_t max_free) {
  pool->free = NULL;
  pool->nfree = 0;
  pool->max_free = max_free;
}

void nt_chunk_pool_clear(nt_chunk_pool *pool) {
  while (pool->free) {
    nt_chunk *c = pool->free;
    pool->free = c->next;
    free(c);
  }
  pool->nfree = 0;
}

static nt_chunk *chunk_get(nt_chunk_pool *pool) {
  nt_chunk *c = pool->free;
  if (c) {
    pool->free = c->next;
    pool->nfree--;
  } else {
    c = malloc(sizeof(*c) + NT_CHUNK_SIZE);
    if (!c) {
      return NULL;
    }
  }
  c->next = NULL;
  c->len = 0;
  c->cap = NT_CHUNK_SIZE;
  return c;
}

/* A chunk of |cap| bytes outside the pool, for a small message. */
static nt_chunk *chunk_small(size_t cap) {
  nt_chunk *c = malloc(sizeof(*c) + cap);
  if (c) {
    c->next = NULL;
    c->len = 0;
    c->cap = cap;
  }
  return c;
}

static void chunk_put(nt_chunk_pool *pool, nt_chunk *c) {
  if (c->cap != NT_CHUNK_SIZE || pool->nfree >= pool->max_free) {
    free(c);
    return;
  }
  c->next = pool->free;
  pool->free = c;
  pool->nfree++;
}

void nt_sendbuf_init(nt_sendbuf *sb, nt_chunk_pool *pool) {
  memset(sb, 0, sizeof(*sb));
  sb->pool = pool;
}

void nt_sendbuf_free(nt_sendbuf *sb) {
  while (sb->head) {
    nt_chunk *c = sb->head;
    sb->head = c->next;
    chunk_put(sb->pool, c);
  }
  sb->tail = NULL;
  sb->cur = NULL;
}

/* Returns the tail chunk with free space, adding one when needed: small
 * when |want| (the bytes about to come) is small, else a pooled one. */
static nt_chunk *tail_with_room(nt_sendbuf *sb, size_t want) {
  if (sb->tail && sb->tail->len < sb->tail->cap) {
    return sb->tail;
  }
  nt_chunk *c = want < NT_CHUNK_SMALL ? chunk_small(want < 512 ? 512 : want)
                                      : chunk_get(sb->pool);
  if (!c) {
    return NULL;
  }
  if (sb->tail) {
    sb->tail->next = c;
  } else {
    sb->head = c;
    sb->head_off = 0;
  }
  sb->tail = c;
  return c;
}

/* |hint|: how much is coming, which picks a small or a pooled chunk. */
static int append(nt_sendbuf *sb, const uint8_t *data, size_t len,
                  size_t hint) {
  while (len > 0) {
    nt_chunk *c = tail_with_room(sb, hint);
    if (!c) {
      return -1;
    }
    size_t n = c->cap - c->len;
    if (n > len) {
      n = len;
    }
    memcpy(c->data + c->len, data, n);
    c->len += n;
    sb->queued += n;
    data += n;
    len -= n;
  }
  return 0;
}

int nt_sendbuf_append(nt_sendbuf *sb, const uint8_t *data, size_t len) {
  return append(sb, data, len, len);
}

int nt_sendbuf_append_bulk(nt_sendbuf *sb, const uint8_t *data, size_t len) {
  return append(sb, data, len, NT_CHUNK_SIZE);
}

ssize_t nt_sendbuf_read_fd(nt_sendbuf *sb, int fd, size_t max) {
  struct iovec iov[2];
  int iovcnt = 0;
  nt_chunk *c = tail_with_room(sb, NT_CHUNK_SIZE); /* reads are bulk */
  nt_chunk *extra = NULL;

  if (!c) {
    errno = ENOMEM;
    return -1;
  }
  size_t room = c->cap - c->len;
  if (room > max) {
    room = max;
  }
  iov[iovcnt].iov_base = c->data + c->len;
  iov[iovcnt++].iov_len = room;
  /* A second chunk lets one read fill the rest of the tail and go on, so
   * reads stay large even when the tail is nearly full. */
  if (room < max && room < 16384) {
    extra = chunk_get(sb->pool);
    if (extra) {
      size_t n = max - room < NT_CHUNK_SIZE ? max - room : NT_CHUNK_SIZE;
      iov[iovcnt].iov_base = extra->data;
      iov[iovcnt++].iov_len = n;
    }
  }
  ssize_t n;
  do {
    n = readv(fd, iov, iovcnt);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    if (extra) {
      chunk_put(sb->pool, extra);
    }
    return n;
  }
  size_t first = (size_t)n < room ? (size_t)n : room;
  c->len += first;
  if (extra) {
    if ((size_t)n > room) {
      extra->len = (size_t)n - room;
      c->next = extra;
      sb->tail = extra;
    } else {
      chunk_put(sb->pool, extra);
    }
  }
  sb->queued += (uint64_t)n;
  return n;
}

/* Finds the chunk that holds stream offset |sent| (its end, when every
 * queued byte is sent) by walking from the head. */
static void locate_unsent(nt_sendbuf *sb) {
  uint64_t skip = sb->sent - sb->acked + sb->head_off;
  nt_chunk *c = sb->head;
  while (c && c->next && skip >= c->len) {
    skip -= c->len;
    c = c->next;
  }
  sb->cur = c;
  sb->cur_off = c && skip <= c->len ? (size_t)skip : 0;
  if (c && skip > c->len) {
    sb->cur = NULL; /* sent beyond what is queued: cannot be */
  }
}

size_t nt_sendbuf_unsent_iov_upto(nt_sendbuf *sb, struct iovec *iov,
                                  size_t maxv, size_t want) {
  size_t n = 0, off, got = 0;

  if (!sb->cur) {
    locate_unsent(sb);
  }
  off = sb->cur_off;
  for (nt_chunk *c = sb->cur; c && n < maxv && got < want; c = c->next) {
    if (off < c->len) {
      iov[n].iov_base = c->data + off;
      iov[n].iov_len = c->len - off;
      got += iov[n].iov_len;
      n++;
    }
    off = 0;
  }
  return n;
}

size_t nt_sendbuf_unsent_iov(nt_sendbuf *sb, struct iovec *iov,
                             size_t maxv) {
  return nt_sendbuf_unsent_iov_upto(sb, iov, maxv, SIZE_MAX);
}

void nt_sendbuf_mark_sent(nt_sendbuf *sb, size_t n) {
  sb->sent += n;
  /* Move the cursor along; it stays valid as chunks are appended at the
   * tail (an end-of-tail position just gains bytes after it). */
  while (n > 0 && sb->cur) {
    size_t avail = sb->cur->len - sb->cur_off;
    if (n <= avail) {
      sb->cur_off += n;
      return;
    }
    n -= avail;
    sb->cur = sb->cur->next;
    sb->cur_off = 0;
  }
  if (n > 0) {
    sb->cur = NULL; /* past the queue's end: find it again */
  }
}

void nt_sendbuf_ack(nt_sendbuf *sb, uint64_t offset) {
  if (offset <= sb->acked) {
    return;
  }
  if (offset > sb->sent) {
    offset = sb->sent; /* never release what ngtcp2 has not seen */
  }
  uint64_t n = offset - sb->acked;
  sb->acked = offset;
  while (n > 0 && sb->head) {
    nt_chunk *c = sb->head;
    size_t avail = c->len - sb->head_off;
    if (n < avail) {
      sb->head_off += (size_t)n;
      return;
    }
    n -= avail;
    /* Every byte of it is acknowledged: back to the pool, the tail too,
     * so an idle stream holds no chunk. */
    sb->head = c->next;
    if (!sb->head) {
      sb->tail = NULL;
    }
    if (sb->cur == c) {
      sb->cur = NULL; /* it sat at the end of this chunk */
    }
    sb->head_off = 0;
    chunk_put(sb->pool, c);
  }
}

void nt_sendbuf_drop_front(nt_sendbuf *sb, size_t n) {
  if (n > nt_sendbuf_unsent(sb)) {
    n = (size_t)nt_sendbuf_unsent(sb);
  }
  nt_sendbuf_mark_sent(sb, n);
  nt_sendbuf_ack(sb, sb->acked + n);
}
