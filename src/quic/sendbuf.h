/* The bytes of one QUIC stream from the moment they are queued until the
 * peer acknowledges them. ngtcp2 does not copy stream data (it keeps
 * pointers for retransmission), so bytes never move once queued: they live
 * in chunks, appended at the tail and released from the head. Bulk data
 * goes in pooled 64 KiB chunks; a small message into a chunk just big
 * enough (control streams, of which a broker holds thousands, stay small). */
#ifndef NT_SENDBUF_H
#define NT_SENDBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NT_CHUNK_SIZE (64 * 1024 - 64)
#define NT_CHUNK_SMALL 4096 /* appends shorter than this get a small chunk */

typedef struct nt_chunk {
  struct nt_chunk *next;
  size_t len; /* bytes used in data */
  size_t cap; /* NT_CHUNK_SIZE (pooled), or less for a small one */
  uint8_t data[];
} nt_chunk;

/* Recycles chunks so the data path does not allocate per read. */
typedef struct nt_chunk_pool {
  nt_chunk *free;
  size_t nfree;
  size_t max_free;
} nt_chunk_pool;

void nt_chunk_pool_init(nt_chunk_pool *pool, size_t max_free);
void nt_chunk_pool_clear(nt_chunk_pool *pool);

typedef struct nt_sendbuf {
  nt_chunk_pool *pool;
  nt_chunk *head, *tail;
  size_t head_off; /* released bytes at the start of head */
  uint64_t acked;  /* stream offset of the first unreleased byte */
  uint64_t sent;   /* stream offset up to which ngtcp2 has the data */
  uint64_t queued; /* stream offset after the last queued byte */
  /* Where the first unsent byte (stream offset |sent|) lies, so that
   * each packet does not walk the chunks already in flight (up to the
   * stream window, 64 of them) to find it: cur->data + cur_off, or
   * NULL when not known (found again from the head). */
  nt_chunk *cur;
  size_t cur_off;
} nt_sendbuf;

void nt_sendbuf_init(nt_sendbuf *sb, nt_chunk_pool *pool);
void nt_sendbuf_free(nt_sendbuf *sb);

/* Bytes queued and not yet acknowledged. */
static inline uint64_t nt_sendbuf_held(const nt_sendbuf *sb) {
  return sb->queued - sb->acked;
}
static inline uint64_t nt_sendbuf_unsent(const nt_sendbuf *sb) {
  return sb->queued - sb->sent;
}

/* Copies |len| bytes in. Returns 0 or -1 (out of memory). */
int nt_sendbuf_append(nt_sendbuf *sb, const uint8_t *data, size_t len);

/* The same for bulk data that arrives in pieces (a packet's payload at a
 * time): always pooled chunks, never a small one per piece, so a queue
 * that fills and drains at line rate reuses the same warm memory instead
 * of making the heap grow and shrink. */
int nt_sendbuf_append_bulk(nt_sendbuf *sb, const uint8_t *data, size_t len);

/* Reads at most |max| bytes from |fd| straight into the buffer. Returns
 * what read(2) returned (-1 with errno on error, 0 on EOF). */
ssize_t nt_sendbuf_read_fd(nt_sendbuf *sb, int fd, size_t max);

/* Fills up to |maxv| iovecs with unsent bytes; returns the count. */
size_t nt_sendbuf_unsent_iov(nt_sendbuf *sb, struct iovec *iov,
                             size_t maxv);
/* The same, stopping once the iovecs hold |want| bytes: a packet takes
 * a packet's worth, and each further chunk costs a cache miss or two. */
size_t nt_sendbuf_unsent_iov_upto(nt_sendbuf *sb, struct iovec *iov,
                                  size_t maxv, size_t want);

void nt_sendbuf_mark_sent(nt_sendbuf *sb, size_t n);

/* Releases acknowledged bytes up to stream offset |offset|. */
void nt_sendbuf_ack(nt_sendbuf *sb, uint64_t offset);

/* For a buffer used as a plain queue (no QUIC acknowledgements): the first
 * |n| bytes were written out; they leave at once. */
void nt_sendbuf_drop_front(nt_sendbuf *sb, size_t n);

#endif
