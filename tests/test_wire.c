/* Unit tests for control-message framing (src/codec/wire.c). */
#include "test.h"
#include "codec/wire.h"

#include <stdint.h>
#include <stdlib.h>

/* Deterministic bytes so that a failure reproduces. */
static uint32_t rng_state;

static uint8_t rng_byte(void) {
  rng_state = rng_state * 1103515245u + 12345u;
  return (uint8_t)(rng_state >> 16);
}

/* Builds header + body of |bodylen| patterned bytes into |out|; returns the
 * frame size. */
static size_t make_frame(uint8_t *out, size_t bodylen, uint8_t seed) {
  size_t hdr = nt_wire_frame_header(out, bodylen);
  for (size_t i = 0; i < bodylen; i++) {
    out[hdr + i] = (uint8_t)(seed + i * 7);
  }
  return hdr + bodylen;
}

static int body_matches(const uint8_t *body, size_t bodylen, uint8_t seed) {
  for (size_t i = 0; i < bodylen; i++) {
    if (body[i] != (uint8_t)(seed + i * 7)) {
      return 0;
    }
  }
  return 1;
}

static void test_header_sizes(void) {
  uint8_t h[NT_WIRE_MAX_HDR];

  CHECK(nt_wire_frame_header(h, 0) == 1 && h[0] == 0x00);
  CHECK(nt_wire_frame_header(h, 1) == 1 && h[0] == 0x01);
  CHECK(nt_wire_frame_header(h, 127) == 1 && h[0] == 0x7f);
  CHECK(nt_wire_frame_header(h, 128) == 2 && h[0] == 0x80 && h[1] == 0x01);
  CHECK(nt_wire_frame_header(h, 300) == 2 && h[0] == 0xac && h[1] == 0x02);
  CHECK(nt_wire_frame_header(h, 16383) == 2 && h[0] == 0xff && h[1] == 0x7f);
  CHECK(nt_wire_frame_header(h, 16384) == 3 && h[0] == 0x80 && h[1] == 0x80 &&
        h[2] == 0x01);
  /* Beyond the limit nothing is produced rather than a prefix every peer
   * rejects. */
  CHECK(nt_wire_frame_header(h, NT_WIRE_MAX_MSG + 1) == 0);
}

/* Every length: the prefix decodes back to it, with or without the body. */
static void test_round_trip_all_lengths(void) {
  static uint8_t buf[NT_WIRE_MAX_HDR + NT_WIRE_MAX_MSG];

  for (size_t len = 0; len <= NT_WIRE_MAX_MSG; len++) {
    size_t hdr = nt_wire_frame_header(buf, len);
    size_t got_hdr = 99, got_body = 99;
    int rc;

    CHECK(hdr == (len < 128 ? 1u : len < 16384 ? 2u : 3u));
    memset(buf + hdr, 0xa5, len);
    rc = nt_wire_frame_peek(buf, hdr + len, &got_hdr, &got_body);
    CHECK(rc == 1);
    if (rc != 1) {
      fprintf(stderr, "length %zu: rc %d\n", len, rc);
      return;
    }
    CHECK(got_hdr == hdr);
    CHECK(got_body == len);
    /* Trailing bytes after the frame do not change the verdict. */
    CHECK(nt_wire_frame_peek(buf, sizeof(buf), &got_hdr, &got_body) == 1);
    CHECK(got_hdr == hdr && got_body == len);
    if (len > 0) {
      CHECK(nt_wire_frame_peek(buf, hdr + len - 1, &got_hdr, &got_body) ==
            NT_WIRE_NEED_MORE);
    }
  }
}

static void test_boundaries(void) {
  static const size_t lens[] = {0, 1, 127, 128, 129, 16383, 16384};
  static uint8_t buf[NT_WIRE_MAX_HDR + NT_WIRE_MAX_MSG + 8];
  nt_wire_reader *r = calloc(1, sizeof(*r)); /* a reader starts zeroed */

  CHECK(r != NULL);
  if (r == NULL) {
    return;
  }
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    size_t n = make_frame(buf, lens[i], (uint8_t)i);
    size_t consumed;
    const uint8_t *body;
    size_t bodylen;

    nt_wire_reader_reset(r);
    CHECK(nt_wire_reader_feed(r, buf, n, &consumed, &body, &bodylen) == 1);
    CHECK(consumed == n);
    CHECK(bodylen == lens[i]);
    CHECK(body_matches(body, bodylen, (uint8_t)i));
  }

  /* 16385 cannot be framed; its hand-made prefix is refused. */
  {
    static const uint8_t over[] = {0x81, 0x80, 0x01};
    size_t hdr, body;
    CHECK(nt_wire_frame_peek(over, sizeof(over), &hdr, &body) ==
          NT_WIRE_ERR_TOO_BIG);
  }
  nt_wire_reader_reset(r);
  free(r);
}

static void test_truncated_prefix(void) {
  static const uint8_t two[] = {0x80, 0x01};
  static const uint8_t three[] = {0x80, 0x80, 0x01};
  size_t hdr = 99, body = 99;

  CHECK(nt_wire_frame_peek(two, 0, &hdr, &body) == NT_WIRE_NEED_MORE);
  CHECK(nt_wire_frame_peek(two, 1, &hdr, &body) == NT_WIRE_NEED_MORE);
  CHECK(nt_wire_frame_peek(three, 1, &hdr, &body) == NT_WIRE_NEED_MORE);
  CHECK(nt_wire_frame_peek(three, 2, &hdr, &body) == NT_WIRE_NEED_MORE);
  /* Outputs are left alone until a frame is complete. */
  CHECK(hdr == 99 && body == 99);
  /* Prefix complete but body missing. */
  CHECK(nt_wire_frame_peek(two, 2, &hdr, &body) == NT_WIRE_NEED_MORE);
  CHECK(nt_wire_frame_peek(NULL, 0, &hdr, &body) == NT_WIRE_NEED_MORE);
}

static void test_zero_length_body(void) {
  static const uint8_t empty[] = {0x00};
  size_t hdr, body;

  CHECK(nt_wire_frame_peek(empty, 1, &hdr, &body) == 1);
  CHECK(hdr == 1 && body == 0);
}

static void test_non_minimal(void) {
  static const uint8_t zero2[] = {0x80, 0x00};
  static const uint8_t one2[] = {0x81, 0x00};
  static const uint8_t zero3[] = {0x80, 0x80, 0x00};
  static const uint8_t small3[] = {0xff, 0x80, 0x00};
  size_t hdr, body;

  CHECK(nt_wire_frame_peek(zero2, 2, &hdr, &body) == NT_WIRE_ERR_MALFORMED);
  CHECK(nt_wire_frame_peek(one2, 2, &hdr, &body) == NT_WIRE_ERR_MALFORMED);
  CHECK(nt_wire_frame_peek(zero3, 3, &hdr, &body) == NT_WIRE_ERR_MALFORMED);
  /* 0xff 0x80 is already over the limit, whatever follows. */
  CHECK(nt_wire_frame_peek(small3, 3, &hdr, &body) == NT_WIRE_ERR_TOO_BIG);
}

static void test_four_byte_varint(void) {
  static const uint8_t four[] = {0x80, 0x80, 0x80, 0x01};
  static const uint8_t four_small[] = {0x81, 0x80, 0x80, 0x00};
  size_t hdr, body;

  CHECK(nt_wire_frame_peek(four, 4, &hdr, &body) == NT_WIRE_ERR_MALFORMED);
  /* The third byte already shows a fourth is coming. */
  CHECK(nt_wire_frame_peek(four, 3, &hdr, &body) == NT_WIRE_ERR_MALFORMED);
  CHECK(nt_wire_frame_peek(four_small, 4, &hdr, &body) < 0);
}

/* The length is refused from the prefix alone, before any body arrives. */
static void test_oversize(void) {
  static const uint8_t over[] = {0x81, 0x80, 0x01};
  static const uint8_t big[] = {0x80, 0x80, 0x02};
  static const uint8_t max3[] = {0xff, 0xff, 0x7f};
  static const uint8_t early[] = {0x81, 0x80};
  static const uint8_t exact[] = {0x80, 0x80};
  size_t hdr, body;

  CHECK(nt_wire_frame_peek(over, 3, &hdr, &body) == NT_WIRE_ERR_TOO_BIG);
  CHECK(nt_wire_frame_peek(big, 3, &hdr, &body) == NT_WIRE_ERR_TOO_BIG);
  CHECK(nt_wire_frame_peek(max3, 3, &hdr, &body) == NT_WIRE_ERR_TOO_BIG);
  /* Two bytes with low bits set and a continuation: at least 16385. */
  CHECK(nt_wire_frame_peek(early, 2, &hdr, &body) == NT_WIRE_ERR_TOO_BIG);
  /* ...but 0x80 0x80 may still become exactly 16384. */
  CHECK(nt_wire_frame_peek(exact, 2, &hdr, &body) == NT_WIRE_NEED_MORE);
}

static void test_reader_oversize(void) {
  static const uint8_t over[] = {0x81, 0x80, 0x01, 'x', 'y'};
  nt_wire_reader *r = calloc(1, sizeof(*r)); /* a reader starts zeroed */
  size_t consumed;
  const uint8_t *body;
  size_t bodylen;

  CHECK(r != NULL);
  if (r == NULL) {
    return;
  }
  nt_wire_reader_reset(r);
  CHECK(nt_wire_reader_feed(r, over, sizeof(over), &consumed, &body,
                            &bodylen) == NT_WIRE_ERR_TOO_BIG);
  CHECK(consumed <= 3);
  CHECK(body == NULL);
  /* The error sticks until a reset. */
  CHECK(nt_wire_reader_feed(r, over, sizeof(over), &consumed, &body,
                            &bodylen) == NT_WIRE_ERR_TOO_BIG);
  nt_wire_reader_reset(r);

  /* Byte by byte the verdict comes with the prefix, not after the body. */
  CHECK(nt_wire_reader_feed(r, over, 1, &consumed, &body, &bodylen) ==
        NT_WIRE_NEED_MORE);
  CHECK(nt_wire_reader_feed(r, over + 1, 1, &consumed, &body, &bodylen) ==
        NT_WIRE_ERR_TOO_BIG);

  nt_wire_reader_reset(r);
  {
    static const uint8_t bad[] = {0x80, 0x00, 0x00};
    CHECK(nt_wire_reader_feed(r, bad, sizeof(bad), &consumed, &body,
                              &bodylen) == NT_WIRE_ERR_MALFORMED);
  }
  nt_wire_reader_reset(r);
  free(r);
}

/* Two frames back to back, then raw bytes that belong to someone else: the
 * reader must stop exactly at each frame's end. */
static void test_reader_chunks(void) {
  static uint8_t stream[2 * (NT_WIRE_MAX_HDR + 200) + 16];
  static const uint8_t raw[] = "RAW-DATA";
  nt_wire_reader *r = calloc(1, sizeof(*r)); /* a reader starts zeroed */
  size_t n1, n2, total, consumed, bodylen;
  const uint8_t *body;

  CHECK(r != NULL);
  if (r == NULL) {
    return;
  }
  n1 = make_frame(stream, 200, 1);
  n2 = make_frame(stream + n1, 5, 2);
  memcpy(stream + n1 + n2, raw, sizeof(raw));
  total = n1 + n2 + sizeof(raw);

  nt_wire_reader_reset(r);
  CHECK(nt_wire_reader_feed(r, stream, total, &consumed, &body, &bodylen) == 1);
  CHECK(consumed == n1);
  CHECK(bodylen == 200 && body_matches(body, bodylen, 1));
  CHECK(nt_wire_reader_feed(r, stream + n1, total - n1, &consumed, &body,
                            &bodylen) == 1);
  CHECK(consumed == n2);
  CHECK(bodylen == 5 && body_matches(body, bodylen, 2));
  CHECK(memcmp(stream + n1 + n2, raw, sizeof(raw)) == 0);

  /* The same stream one byte at a time. */
  nt_wire_reader_reset(r);
  {
    size_t frames = 0, pos = 0;
    while (frames < 2 && pos < total) {
      int rc =
          nt_wire_reader_feed(r, stream + pos, 1, &consumed, &body, &bodylen);
      CHECK(rc >= 0);
      CHECK(consumed == 1);
      pos += consumed;
      if (rc == 1) {
        frames++;
        CHECK(pos == (frames == 1 ? n1 : n1 + n2));
        CHECK(bodylen == (frames == 1 ? 200u : 5u));
        CHECK(body_matches(body, bodylen, (uint8_t)frames));
      } else {
        CHECK(body == NULL && bodylen == 0);
      }
    }
    CHECK(frames == 2);
    CHECK(pos == n1 + n2);
  }

  /* Empty feeds are harmless, and zero-length bodies come out as frames. */
  nt_wire_reader_reset(r);
  CHECK(nt_wire_reader_feed(r, NULL, 0, &consumed, &body, &bodylen) ==
        NT_WIRE_NEED_MORE);
  CHECK(consumed == 0);
  {
    static const uint8_t empties[] = {0x00, 0x00, 0x01, 'z'};
    CHECK(nt_wire_reader_feed(r, empties, 4, &consumed, &body, &bodylen) == 1);
    CHECK(consumed == 1 && bodylen == 0 && body != NULL);
    CHECK(nt_wire_reader_feed(r, empties + 1, 3, &consumed, &body, &bodylen) ==
          1);
    CHECK(consumed == 1 && bodylen == 0);
    CHECK(nt_wire_reader_feed(r, empties + 2, 2, &consumed, &body, &bodylen) ==
          1);
    CHECK(consumed == 2 && bodylen == 1 && body[0] == 'z');
  }
  nt_wire_reader_reset(r);
  free(r);
}

/* Frames of every size class through random chunk sizes. */
static void test_reader_random_chunks(void) {
  static const size_t lens[] = {0,   1,     127,   128, 129, 1000,
                                300, 16383, 16384, 7,   0,   5000};
  size_t nframes = sizeof(lens) / sizeof(lens[0]);
  size_t cap = nframes * (NT_WIRE_MAX_HDR + NT_WIRE_MAX_MSG);
  uint8_t *stream = malloc(cap);
  nt_wire_reader *r = calloc(1, sizeof(*r)); /* a reader starts zeroed */
  size_t total = 0;

  CHECK(stream != NULL && r != NULL);
  if (stream == NULL || r == NULL) {
    free(stream);
    nt_wire_reader_reset(r);
    free(r);
    return;
  }
  for (size_t i = 0; i < nframes; i++) {
    total += make_frame(stream + total, lens[i], (uint8_t)(i * 31));
  }
  rng_state = 7;
  for (int round = 0; round < 50; round++) {
    size_t pos = 0, frame = 0;
    nt_wire_reader_reset(r);
    while (pos < total) {
      size_t chunk = 1 + rng_byte() * (size_t)(round + 1);
      size_t consumed, bodylen;
      const uint8_t *body;
      int rc;

      if (chunk > total - pos) {
        chunk = total - pos;
      }
      rc = nt_wire_reader_feed(r, stream + pos, chunk, &consumed, &body,
                               &bodylen);
      CHECK(rc >= 0);
      CHECK(consumed <= chunk);
      CHECK(rc == 1 || consumed == chunk);
      if (rc < 0) {
        break;
      }
      pos += consumed;
      if (rc == 1) {
        CHECK(frame < nframes);
        CHECK(bodylen == lens[frame]);
        CHECK(body_matches(body, bodylen, (uint8_t)(frame * 31)));
        frame++;
      }
    }
    CHECK(frame == nframes);
  }
  free(stream);
  nt_wire_reader_reset(r);
  free(r);
}

/* Random bytes: never a crash, never a read or write out of bounds (ASan),
 * and never more consumed than given. */
static void test_random_garbage(void) {
  static uint8_t data[4096];
  nt_wire_reader *r = calloc(1, sizeof(*r)); /* a reader starts zeroed */

  CHECK(r != NULL);
  if (r == NULL) {
    return;
  }
  rng_state = 99;
  for (int iter = 0; iter < 2000; iter++) {
    size_t len = rng_byte() % 64 + (iter % 10 == 0 ? sizeof(data) - 64 : 0);
    size_t pos = 0;
    for (size_t i = 0; i < len; i++) {
      data[i] = rng_byte();
    }
    {
      size_t hdr, body;
      int rc = nt_wire_frame_peek(data, len, &hdr, &body);
      CHECK(rc >= NT_WIRE_ERR_TOO_BIG && rc <= 1);
      if (rc == 1) {
        CHECK(hdr >= 1 && hdr <= NT_WIRE_MAX_HDR);
        CHECK(body <= NT_WIRE_MAX_MSG && hdr + body <= len);
      }
    }
    nt_wire_reader_reset(r);
    while (pos < len) {
      size_t chunk = 1 + rng_byte() % 100, consumed, bodylen;
      const uint8_t *body;
      int rc;
      if (chunk > len - pos) {
        chunk = len - pos;
      }
      rc =
          nt_wire_reader_feed(r, data + pos, chunk, &consumed, &body, &bodylen);
      CHECK(consumed <= chunk);
      pos += consumed;
      if (rc < 0) {
        CHECK(rc == NT_WIRE_ERR_MALFORMED || rc == NT_WIRE_ERR_TOO_BIG);
        break;
      }
      if (rc == 1) {
        CHECK(bodylen <= NT_WIRE_MAX_MSG);
      }
      CHECK(r->got <= NT_WIRE_MAX_MSG && r->hdrlen <= NT_WIRE_MAX_HDR);
    }
  }
  nt_wire_reader_reset(r);
  free(r);
}

typedef struct frames_seen {
  int count;
  size_t total;
  int stop_after;
} frames_seen;

static int count_frame(const uint8_t *body, size_t len, void *ud) {
  frames_seen *f = ud;
  (void)body;
  f->count++;
  f->total += len;
  return f->stop_after && f->count >= f->stop_after;
}

static void test_reader_each(void) {
  uint8_t stream[3 * (NT_WIRE_MAX_HDR + 10)];
  size_t n = 0;
  nt_wire_reader *r = calloc(1, sizeof(*r));
  frames_seen all = {0, 0, 0}, first = {0, 0, 1}, bad = {0, 0, 0};

  for (int i = 0; i < 3; i++) {
    n += nt_wire_frame_header(stream + n, 10);
    memset(stream + n, 'a' + i, 10);
    n += 10;
  }
  CHECK(nt_wire_reader_each(r, stream, n, count_frame, &all) == 0);
  CHECK(all.count == 3 && all.total == 30);
  nt_wire_reader_reset(r);
  CHECK(nt_wire_reader_each(r, stream, n, count_frame, &first) == 1);
  CHECK(first.count == 1); /* stopped: the rest was not read */
  nt_wire_reader_reset(r);
  const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
  CHECK(nt_wire_reader_each(r, garbage, sizeof(garbage), count_frame, &bad) <
        0);
  CHECK(bad.count == 0);
  nt_wire_reader_reset(r);
  free(r);
}

static const nt_test_case cases[] = {
    {"reader_each", test_reader_each},
    {"header_sizes", test_header_sizes},
    {"round_trip_all_lengths", test_round_trip_all_lengths},
    {"boundaries", test_boundaries},
    {"truncated_prefix", test_truncated_prefix},
    {"zero_length_body", test_zero_length_body},
    {"non_minimal", test_non_minimal},
    {"four_byte_varint", test_four_byte_varint},
    {"oversize", test_oversize},
    {"reader_oversize", test_reader_oversize},
    {"reader_chunks", test_reader_chunks},
    {"reader_random_chunks", test_reader_random_chunks},
    {"random_garbage", test_random_garbage},
    {NULL, NULL},
};

int main(void) {
  return nt_test_run(cases);
}
