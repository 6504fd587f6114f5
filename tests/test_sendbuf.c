/* A stream's send buffer (src/quic/sendbuf.c): bytes queued, handed to ngtcp2
 * (sent) and released on acknowledgement, in chunks that never move. */
#include "quic/sendbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

/* The stream's byte at |offset|: every test queues this pattern, so any
 * byte read back can be checked against its stream offset. */
static uint8_t pattern(uint64_t offset) {
  return (uint8_t)((offset * 31 + 7) ^ (offset >> 16));
}

static void fill_pattern(uint8_t *buf, uint64_t offset, size_t len) {
  for (size_t i = 0; i < len; i++) {
    buf[i] = pattern(offset + i);
  }
}

/* Appends |len| pattern bytes starting at the buffer's queued offset. */
static int append_pattern(nt_sendbuf *sb, size_t len) {
  uint8_t *buf = malloc(len ? len : 1);
  int rv;

  if (buf == NULL) {
    return -1;
  }
  fill_pattern(buf, sb->queued, len);
  rv = nt_sendbuf_append(sb, buf, len);
  free(buf);
  return rv;
}

/* Total length of the unsent iovecs; checks that they hold the stream's
 * bytes from offset |sb->sent| on, in order. */
static uint64_t check_unsent(nt_sendbuf *sb) {
  struct iovec iov[64];
  size_t n = nt_sendbuf_unsent_iov(sb, iov, 64);
  uint64_t off = sb->sent;
  int bad = 0;

  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = iov[i].iov_base;
    CHECK(iov[i].iov_len > 0);
    for (size_t j = 0; j < iov[i].iov_len && !bad; j++) {
      if (p[j] != pattern(off + j)) {
        fprintf(stderr, "byte at stream offset %llu is wrong\n",
                (unsigned long long)(off + j));
        bad = 1;
      }
    }
    off += iov[i].iov_len;
  }
  CHECK(!bad);
  return off - sb->sent;
}

static void test_empty(void) {
  nt_chunk_pool pool;
  nt_sendbuf sb;
  struct iovec iov[4];

  nt_chunk_pool_init(&pool, 4);
  nt_sendbuf_init(&sb, &pool);
  CHECK(nt_sendbuf_held(&sb) == 0);
  CHECK(nt_sendbuf_unsent(&sb) == 0);
  CHECK(nt_sendbuf_unsent_iov(&sb, iov, 4) == 0);
  /* An empty append queues nothing and takes no chunk. */
  CHECK(nt_sendbuf_append(&sb, (const uint8_t *)"", 0) == 0);
  CHECK(sb.head == NULL && sb.queued == 0);
  /* Acks of nothing, or past what was sent, change nothing. */
  nt_sendbuf_ack(&sb, 0);
  nt_sendbuf_ack(&sb, 1000);
  CHECK(sb.acked == 0 && sb.head == NULL);
  nt_sendbuf_free(&sb);
  nt_sendbuf_free(&sb); /* twice is harmless */
  CHECK(pool.nfree == 0);
  nt_chunk_pool_clear(&pool);
}

static void test_append_send_ack(void) {
  nt_chunk_pool pool;
  nt_sendbuf sb;

  nt_chunk_pool_init(&pool, 4);
  nt_sendbuf_init(&sb, &pool);
  CHECK(append_pattern(&sb, 1000) == 0);
  CHECK(nt_sendbuf_held(&sb) == 1000 && nt_sendbuf_unsent(&sb) == 1000);
  CHECK(check_unsent(&sb) == 1000);

  /* ngtcp2 takes 300 bytes: the rest starts at stream offset 300. */
  nt_sendbuf_mark_sent(&sb, 300);
  CHECK(nt_sendbuf_unsent(&sb) == 700 && nt_sendbuf_held(&sb) == 1000);
  CHECK(check_unsent(&sb) == 700);

  /* Acks release the head but never unsent bytes: an ack past what was
   * sent only releases up to the sent offset. */
  nt_sendbuf_ack(&sb, 100);
  CHECK(sb.acked == 100 && nt_sendbuf_held(&sb) == 900);
  CHECK(check_unsent(&sb) == 700);
  nt_sendbuf_ack(&sb, 5000);
  CHECK(sb.acked == 300 && nt_sendbuf_held(&sb) == 700);
  CHECK(check_unsent(&sb) == 700);

  /* An older ack arriving late is ignored. */
  nt_sendbuf_ack(&sb, 200);
  CHECK(sb.acked == 300);

  /* Everything sent and acked: nothing held, not even the tail chunk (an
   * idle stream must not keep memory: a broker holds thousands). These
   * were small appends, so their chunks were small and are freed, not
   * pooled. */
  nt_sendbuf_mark_sent(&sb, 700);
  CHECK(check_unsent(&sb) == 0);
  nt_sendbuf_ack(&sb, 1000);
  CHECK(nt_sendbuf_held(&sb) == 0 && nt_sendbuf_unsent(&sb) == 0);
  CHECK(sb.head == NULL && sb.tail == NULL && pool.nfree == 0);
  CHECK(append_pattern(&sb, 50) == 0);
  CHECK(sb.head != NULL && sb.head == sb.tail);
  CHECK(sb.head->cap < NT_CHUNK_SMALL);
  CHECK(check_unsent(&sb) == 50);
  nt_sendbuf_free(&sb);
  CHECK(pool.nfree == 0);

  /* A bulk append takes pooled chunks, and they go back to the pool. */
  nt_sendbuf_init(&sb, &pool);
  CHECK(append_pattern(&sb, 20000) == 0);
  CHECK(sb.head->cap == NT_CHUNK_SIZE);
  nt_sendbuf_mark_sent(&sb, 20000);
  nt_sendbuf_ack(&sb, 20000);
  CHECK(sb.head == NULL && pool.nfree == 1);
  nt_sendbuf_free(&sb);
  CHECK(pool.nfree == 1); /* the chunk went back to the pool */
  nt_chunk_pool_clear(&pool);
  CHECK(pool.nfree == 0 && pool.free == NULL);
}

static void test_chunk_boundaries(void) {
  nt_chunk_pool pool;
  nt_sendbuf sb;
  struct iovec iov[4];
  const size_t total = 2 * NT_CHUNK_SIZE + 123;

  nt_chunk_pool_init(&pool, 8);
  nt_sendbuf_init(&sb, &pool);
  /* In odd-sized pieces, so appends straddle chunk ends. */
  for (size_t done = 0; done < total;) {
    size_t n = total - done < 7777 ? total - done : 7777;
    CHECK(append_pattern(&sb, n) == 0);
    done += n;
  }
  CHECK(sb.queued == total);
  CHECK(nt_sendbuf_unsent_iov(&sb, iov, 4) == 3);
  CHECK(iov[0].iov_len == NT_CHUNK_SIZE && iov[2].iov_len == 123);
  CHECK(check_unsent(&sb) == total);
  /* Fewer iovecs than chunks: the first ones, in order. */
  CHECK(nt_sendbuf_unsent_iov(&sb, iov, 1) == 1);
  CHECK(iov[0].iov_len == NT_CHUNK_SIZE);

  /* Sent up to one byte before a chunk end, then exactly to it. */
  nt_sendbuf_mark_sent(&sb, NT_CHUNK_SIZE - 1);
  CHECK(nt_sendbuf_unsent_iov(&sb, iov, 4) == 3 && iov[0].iov_len == 1);
  CHECK(check_unsent(&sb) == total - (NT_CHUNK_SIZE - 1));
  nt_sendbuf_mark_sent(&sb, 1);
  CHECK(nt_sendbuf_unsent_iov(&sb, iov, 4) == 2);
  CHECK(check_unsent(&sb) == total - NT_CHUNK_SIZE);

  /* Acking the first chunk exactly releases it into the pool; the offsets
   * of what remains do not move. */
  nt_sendbuf_mark_sent(&sb, 1000);
  nt_sendbuf_ack(&sb, NT_CHUNK_SIZE);
  CHECK(pool.nfree == 1 && sb.head_off == 0);
  CHECK(check_unsent(&sb) == total - NT_CHUNK_SIZE - 1000);
  /* Acking into the middle of the next one only moves head_off. */
  nt_sendbuf_ack(&sb, NT_CHUNK_SIZE + 10);
  CHECK(pool.nfree == 1 && sb.head_off == 10);
  CHECK(check_unsent(&sb) == total - NT_CHUNK_SIZE - 1000);

  /* A new chunk comes from the pool before malloc. */
  nt_sendbuf_mark_sent(&sb, total - NT_CHUNK_SIZE - 1000);
  nt_sendbuf_ack(&sb, total);
  CHECK(nt_sendbuf_held(&sb) == 0);
  CHECK(append_pattern(&sb, NT_CHUNK_SIZE) == 0);
  CHECK(check_unsent(&sb) == NT_CHUNK_SIZE);
  nt_sendbuf_free(&sb);
  nt_chunk_pool_clear(&pool);
}

/* The pool keeps at most max_free chunks; the rest are freed. */
static void test_pool_bound(void) {
  nt_chunk_pool pool;
  nt_sendbuf sb;

  nt_chunk_pool_init(&pool, 2);
  nt_sendbuf_init(&sb, &pool);
  CHECK(append_pattern(&sb, 5 * NT_CHUNK_SIZE) == 0);
  nt_sendbuf_free(&sb);
  CHECK(pool.nfree == 2);
  nt_chunk_pool_clear(&pool);

  nt_chunk_pool_init(&pool, 0);
  nt_sendbuf_init(&sb, &pool);
  CHECK(append_pattern(&sb, 10) == 0);
  nt_sendbuf_free(&sb);
  CHECK(pool.nfree == 0 && pool.free == NULL);
}

/* Many rounds of append, partial send and out-of-order acks, as a stream
 * sees them; every byte handed out must be the right one. */
static void test_stream_of_rounds(void) {
  nt_chunk_pool pool;
  nt_sendbuf sb;
  uint64_t acks[4] = {0};
  unsigned seed = 12345;

  nt_chunk_pool_init(&pool, 4);
  nt_sendbuf_init(&sb, &pool);
  for (int round = 0; round < 400; round++) {
    seed = seed * 1103515245u + 12345u;
    CHECK(append_pattern(&sb, (seed >> 8) % 40000) == 0);
    CHECK(check_unsent(&sb) == nt_sendbuf_unsent(&sb));
    nt_sendbuf_mark_sent(&sb,
                         (size_t)(nt_sendbuf_unsent(&sb) * (seed % 4) / 3));
    /* Acks for recent sent offsets, delivered in a shuffled order. */
    acks[round % 4] = sb.sent;
    nt_sendbuf_ack(&sb, acks[(round + seed) % 4]);
    CHECK(sb.acked <= sb.sent && sb.sent <= sb.queued);
    CHECK(pool.nfree <= pool.max_free);
  }
  nt_sendbuf_mark_sent(&sb, nt_sendbuf_unsent(&sb));
  nt_sendbuf_ack(&sb, sb.queued);
  CHECK(nt_sendbuf_held(&sb) == 0);
  nt_sendbuf_free(&sb);
  nt_chunk_pool_clear(&pool);
}

/* Packet by packet, as the write loop takes it: ngtcp2 is handed the
 * unsent bytes, takes a packet's worth, and the next packet starts where
 * that one ended, while reads append at the tail and acks free chunks
 * behind (the cursor to the first unsent byte must follow all three,
 * including an ack that frees the very chunk it sits at the end of). */
static void test_packets(void) {
  nt_chunk_pool pool;
  nt_sendbuf sb;
  struct iovec iov[16];
  unsigned seed = 777;

  nt_chunk_pool_init(&pool, 8);
  nt_sendbuf_init(&sb, &pool);
  for (int i = 0; i < 20000; i++) {
    seed = seed * 1103515245u + 12345u;
    if (nt_sendbuf_unsent(&sb) < 100000 && seed % 3 == 0) {
      CHECK(append_pattern(&sb, (seed >> 8) % 70000) == 0);
    }
    size_t n = nt_sendbuf_unsent_iov_upto(&sb, iov, 16, 1444);
    CHECK((n == 0) == (nt_sendbuf_unsent(&sb) == 0));
    /* A packet's worth: the iovecs stop once they hold 1444 bytes. */
    size_t held = 0;
    for (size_t k = 0; k + 1 < n; k++) {
      held += iov[k].iov_len;
    }
    CHECK(held < 1444);
    if (n > 0) {
      CHECK(*(uint8_t *)iov[0].iov_base == pattern(sb.sent));
      size_t take = 1 + (seed >> 4) % 1444;
      if (take > iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0)) {
        take = iov[0].iov_len;
      }
      nt_sendbuf_mark_sent(&sb, take);
    }
    if ((seed >> 12) % 4 == 0) {
      nt_sendbuf_ack(&sb, sb.sent); /* may free the cursor's chunk */
    } else if ((seed >> 12) % 4 == 1) {
      nt_sendbuf_ack(&sb, sb.acked + (sb.sent - sb.acked) / 2);
    }
    if (i % 97 == 0) {
      CHECK(check_unsent(&sb) == nt_sendbuf_unsent(&sb));
    }
  }
  nt_sendbuf_mark_sent(&sb, nt_sendbuf_unsent(&sb));
  nt_sendbuf_ack(&sb, sb.queued);
  CHECK(sb.head == NULL && nt_sendbuf_unsent_iov(&sb, iov, 16) == 0);
  CHECK(append_pattern(&sb, 3000) == 0);
  CHECK(check_unsent(&sb) == 3000);
  nt_sendbuf_free(&sb);
  nt_chunk_pool_clear(&pool);
}

static int write_pattern(int fd, uint64_t offset, size_t len) {
  uint8_t *buf = malloc(len);
  ssize_t n;

  if (buf == NULL) {
    return -1;
  }
  fill_pattern(buf, offset, len);
  n = write(fd, buf, len);
  free(buf);
  return n == (ssize_t)len ? 0 : -1;
}

static void test_read_fd(void) {
  nt_chunk_pool pool;
  nt_sendbuf sb;
  int p[2];

  nt_chunk_pool_init(&pool, 4);
  nt_sendbuf_init(&sb, &pool);
  CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  CHECK(fcntl(p[1], F_SETPIPE_SZ, 256 * 1024) >= 256 * 1024);

  /* Nothing to read: -1/EAGAIN, and nothing queued. */
  errno = 0;
  CHECK(nt_sendbuf_read_fd(&sb, p[0], 1000) == -1 && errno == EAGAIN);
  CHECK(sb.queued == 0);

  /* |max| bounds the read. */
  CHECK(write_pattern(p[1], 0, 5000) == 0);
  CHECK(nt_sendbuf_read_fd(&sb, p[0], 3000) == 3000);
  CHECK(nt_sendbuf_read_fd(&sb, p[0], 65536) == 2000);
  CHECK(sb.queued == 5000 && check_unsent(&sb) == 5000);

  /* A nearly full tail: one read fills it and goes on into a second
   * chunk, so reads stay large. */
  CHECK(append_pattern(&sb, NT_CHUNK_SIZE - 5000 - 100) == 0);
  CHECK(write_pattern(p[1], sb.queued, 30000) == 0);
  CHECK(nt_sendbuf_read_fd(&sb, p[0], 65536) == 30000);
  CHECK(sb.head != sb.tail && sb.tail->len == 30000 - 100);
  CHECK(sb.head->len == NT_CHUNK_SIZE);
  CHECK(check_unsent(&sb) == sb.queued);

  /* The same with little to read: the spare chunk goes back to the pool. */
  nt_sendbuf_mark_sent(&sb, (size_t)sb.queued);
  nt_sendbuf_ack(&sb, sb.queued);
  CHECK(sb.head == NULL && sb.tail == NULL); /* all acked: nothing held */
  CHECK(append_pattern(&sb, NT_CHUNK_SIZE - 10) == 0);
  size_t nfree = pool.nfree;
  CHECK(write_pattern(p[1], sb.queued, 5) == 0);
  CHECK(nt_sendbuf_read_fd(&sb, p[0], 65536) == 5);
  CHECK(pool.nfree == nfree && sb.tail->len == NT_CHUNK_SIZE - 5);
  CHECK(check_unsent(&sb) == nt_sendbuf_unsent(&sb));
  /* ... and when the read fails. */
  CHECK(nt_sendbuf_read_fd(&sb, p[0], 65536) == -1 && errno == EAGAIN);
  CHECK(pool.nfree == nfree);

  /* EOF: 0, nothing queued. */
  uint64_t before = sb.queued;
  close(p[1]);
  CHECK(nt_sendbuf_read_fd(&sb, p[0], 65536) == 0);
  CHECK(sb.queued == before);
  close(p[0]);
  nt_sendbuf_free(&sb);
  nt_chunk_pool_clear(&pool);
}

/* A local queue (the tunnel's bytes for its local end): packet-sized
 * pieces go into pooled chunks only, never a small chunk each, and leave
 * from the head with nt_sendbuf_drop_front. Filling and draining it again
 * and again reuses the same chunks: after the first round the pool holds
 * the same number each time (nothing goes back to malloc), and the bytes
 * come out in order. */
static void test_local_queue(void) {
  nt_chunk_pool pool;
  nt_sendbuf q;
  uint8_t piece[1452];

  nt_chunk_pool_init(&pool, 64);
  nt_sendbuf_init(&q, &pool);
  size_t nfree_after_first = 0;
  for (int round = 0; round < 5; round++) {
    /* About 1 MiB in 1452-byte pieces, as a receive window's worth. */
    for (int i = 0; i < 700; i++) {
      fill_pattern(piece, q.queued, sizeof(piece));
      CHECK(nt_sendbuf_append_bulk(&q, piece, sizeof(piece)) == 0);
    }
    for (nt_chunk *c = q.head; c; c = c->next) {
      CHECK(c->cap == NT_CHUNK_SIZE);
    }
    CHECK(check_unsent(&q) == nt_sendbuf_held(&q));
    /* Written out in uneven gulps, as a socket takes them. */
    while (nt_sendbuf_held(&q) > 0) {
      nt_sendbuf_drop_front(&q, 50000);
      CHECK(check_unsent(&q) == nt_sendbuf_held(&q));
    }
    CHECK(q.head == NULL && q.tail == NULL);
    if (round == 0) {
      nfree_after_first = pool.nfree;
    }
    CHECK(pool.nfree == nfree_after_first);
  }
  /* Never more than what is queued leaves. */
  CHECK(nt_sendbuf_append_bulk(&q, piece, 10) == 0);
  nt_sendbuf_drop_front(&q, 1000);
  CHECK(nt_sendbuf_held(&q) == 0 && q.sent == q.queued && q.acked == q.queued);
  nt_sendbuf_free(&q);
  nt_chunk_pool_clear(&pool);
}

nt_test_case cases[] = {
    {"local_queue", test_local_queue},
    {"empty", test_empty},
    {"append_send_ack", test_append_send_ack},
    {"chunk_boundaries", test_chunk_boundaries},
    {"pool_bound", test_pool_bound},
    {"stream_of_rounds", test_stream_of_rounds},
    {"read_fd", test_read_fd},
    {"packets", test_packets},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
