/* The remote-command frame codec (src/codec/cmdframe.c): what an honest
 * listener sends decodes back, byte by byte or at once, and every way a hostile
 * listener can bend the framing is refused. */
#include <stdlib.h>

#include "codec/cmdframe.h"
#include "test.h"

typedef struct decoded {
  char out[256], err[256];
  size_t out_len, err_len;
  int exit_status, exits;
  const char *error;
} decoded;

/* Feeds |len| bytes in pieces of |step| and collects what comes out. */
static void decode_all(nt_cmdframe_decoder *d, const uint8_t *data,
                       size_t len, size_t step, decoded *r) {
  memset(r, 0, sizeof(*r));
  r->exit_status = -1;
  while (len > 0 && !r->error) {
    size_t chunk = len < step ? len : step;
    const uint8_t *p = data;
    size_t left = chunk;
    while (left > 0) {
      nt_cmdframe_event ev;
      size_t used;
      nt_cmdframe_result rv = nt_cmdframe_decode(d, p, left, &used, &ev);
      CHECK(used <= left);
      if (rv == NT_CMDFRAME_ERROR) {
        r->error = ev.error;
        break;
      }
      if (rv == NT_CMDFRAME_DATA) {
        CHECK(ev.data >= p && ev.data + ev.len <= p + used);
        char *buf = ev.channel == NT_CMDFRAME_STDOUT ? r->out : r->err;
        size_t *blen =
            ev.channel == NT_CMDFRAME_STDOUT ? &r->out_len : &r->err_len;
        if (*blen + ev.len < sizeof(r->out)) {
          memcpy(buf + *blen, ev.data, ev.len);
          *blen += ev.len;
        }
      } else if (rv == NT_CMDFRAME_EXITED) {
        r->exit_status = ev.exit_status;
        r->exits++;
      } else {
        CHECK(used == left); /* NEED_MORE takes everything */
      }
      p += used;
      left -= used;
    }
    data += chunk;
    len -= chunk;
  }
}

static size_t frame(uint8_t *out, int channel, const char *payload) {
  size_t n = strlen(payload);
  nt_cmdframe_header(out, (nt_cmdframe_channel)channel, n);
  memcpy(out + NT_CMDFRAME_HDR, payload, n);
  return NT_CMDFRAME_HDR + n;
}

static void test_round_trip(void) {
  uint8_t buf[128];
  size_t n = 0;
  n += frame(buf + n, NT_CMDFRAME_STDOUT, "hello ");
  n += frame(buf + n, NT_CMDFRAME_STDERR, "warn");
  n += frame(buf + n, NT_CMDFRAME_STDOUT, "");
  n += frame(buf + n, NT_CMDFRAME_STDOUT, "world");
  nt_cmdframe_exit(buf + n, 3);
  n += NT_CMDFRAME_HDR + NT_CMDFRAME_EXIT_LEN;

  for (size_t step = 1; step <= n; step++) {
    nt_cmdframe_decoder d;
    decoded r;
    nt_cmdframe_decoder_init(&d);
    decode_all(&d, buf, n, step, &r);
    CHECK(r.error == NULL);
    CHECK(r.out_len == 11 && memcmp(r.out, "hello world", 11) == 0);
    CHECK(r.err_len == 4 && memcmp(r.err, "warn", 4) == 0);
    CHECK(r.exits == 1 && r.exit_status == 3);
    CHECK(nt_cmdframe_finish(&d) == NULL);
  }
}

static void test_exit_statuses(void) {
  int statuses[] = {0, 1, 127, 128 + 9, 255};
  for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
    uint8_t buf[NT_CMDFRAME_HDR + NT_CMDFRAME_EXIT_LEN];
    nt_cmdframe_decoder d;
    decoded r;
    nt_cmdframe_exit(buf, statuses[i]);
    nt_cmdframe_decoder_init(&d);
    decode_all(&d, buf, sizeof(buf), sizeof(buf), &r);
    CHECK(r.error == NULL && r.exit_status == statuses[i]);
  }
}

/* The attack of issue 8: a second exit frame used to overwrite the
 * decoder's own bookkeeping. Every variation must be a clean error. */
static void test_second_exit_frame(void) {
  uint8_t buf[64];
  size_t n = 0;
  nt_cmdframe_exit(buf, 0);
  n += 7;
  uint8_t evil[] = {NT_CMDFRAME_EXIT, 0, 4, 0xff, 0xff, 0xff, 0xf0};
  memcpy(buf + n, evil, sizeof(evil));
  n += sizeof(evil);
  memcpy(buf + n, evil, sizeof(evil));
  n += sizeof(evil);
  for (size_t step = 1; step <= n; step++) {
    nt_cmdframe_decoder d;
    decoded r;
    nt_cmdframe_decoder_init(&d);
    decode_all(&d, buf, n, step, &r);
    CHECK(r.exits == 1 && r.exit_status == 0);
    CHECK(r.error != NULL);
    CHECK_STR_CONTAINS(r.error ? r.error : "", "after the exit status");
    CHECK(nt_cmdframe_finish(&d) != NULL);
  }
}

static void test_output_after_exit(void) {
  uint8_t buf[64];
  size_t n = 0;
  nt_cmdframe_exit(buf, 0);
  n += 7;
  n += frame(buf + n, NT_CMDFRAME_STDOUT, "late");
  nt_cmdframe_decoder d;
  decoded r;
  nt_cmdframe_decoder_init(&d);
  decode_all(&d, buf, n, n, &r);
  CHECK(r.error != NULL && r.out_len == 0);
}

static void test_bad_headers(void) {
  static const struct {
    uint8_t bytes[8];
    size_t len;
    const char *error;
  } cases[] = {
      {{0, 0, 1, 'x'}, 4, "unknown channel"},
      {{4, 0, 1, 'x'}, 4, "unknown channel"},
      {{0xff, 0xff, 0xff}, 3, "unknown channel"},
      {{1, 0x40, 0x01}, 3, "longer than 16384"},
      {{2, 0xff, 0xff}, 3, "longer than 16384"},
      {{3, 0, 3, 0, 0, 0}, 6, "not 4 bytes"},
      {{3, 0, 5, 0, 0, 0, 0, 0}, 8, "not 4 bytes"},
      {{3, 0, 0}, 3, "not 4 bytes"},
      {{3, 0, 4, 0, 0, 1, 0}, 7, "out of range"},
      {{3, 0, 4, 0x80, 0, 0, 0}, 7, "out of range"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    nt_cmdframe_decoder d;
    decoded r;
    nt_cmdframe_decoder_init(&d);
    decode_all(&d, cases[i].bytes, cases[i].len, 1, &r);
    CHECK(r.error != NULL);
    CHECK_STR_CONTAINS(r.error ? r.error : "", cases[i].error);
    CHECK(r.out_len == 0 && r.exits == 0);
    /* A failed decoder stays failed. */
    nt_cmdframe_event ev;
    size_t used;
    uint8_t ok[4];
    CHECK(nt_cmdframe_decode(&d, ok, frame(ok, 1, "x"), &used, &ev) ==
          NT_CMDFRAME_ERROR);
  }
}

static void test_max_frame(void) {
  size_t n = NT_CMDFRAME_HDR + NT_CMDFRAME_MAX;
  uint8_t *buf = calloc(1, n);
  nt_cmdframe_header(buf, NT_CMDFRAME_STDOUT, NT_CMDFRAME_MAX);
  nt_cmdframe_decoder d;
  nt_cmdframe_event ev;
  size_t used, total = 0;
  nt_cmdframe_decoder_init(&d);
  const uint8_t *p = buf;
  size_t left = n;
  while (left > 0) {
    nt_cmdframe_result rv = nt_cmdframe_decode(&d, p, left, &used, &ev);
    CHECK(rv != NT_CMDFRAME_ERROR);
    if (rv == NT_CMDFRAME_DATA) {
      total += ev.len;
    }
    p += used;
    left -= used;
  }
  CHECK(total == NT_CMDFRAME_MAX);
  free(buf);
}

static void test_truncated(void) {
  uint8_t buf[32];
  size_t n = frame(buf, NT_CMDFRAME_STDOUT, "abcdef");
  nt_cmdframe_decoder d;
  decoded r;

  /* Cut inside the payload, inside a header, and with no exit frame. */
  nt_cmdframe_decoder_init(&d);
  decode_all(&d, buf, n - 2, 1, &r);
  CHECK(r.error == NULL);
  CHECK_STR_CONTAINS(nt_cmdframe_finish(&d), "inside a frame");

  nt_cmdframe_decoder_init(&d);
  decode_all(&d, buf, 2, 1, &r);
  CHECK_STR_CONTAINS(nt_cmdframe_finish(&d), "inside a frame");

  nt_cmdframe_decoder_init(&d);
  decode_all(&d, buf, n, 1, &r);
  CHECK_STR_CONTAINS(nt_cmdframe_finish(&d), "without an exit status");

  nt_cmdframe_decoder_init(&d);
  CHECK_STR_CONTAINS(nt_cmdframe_finish(&d), "without an exit status");

  /* Cut inside the exit frame. */
  nt_cmdframe_exit(buf, 1);
  nt_cmdframe_decoder_init(&d);
  decode_all(&d, buf, 5, 2, &r);
  CHECK(r.exits == 0);
  CHECK_STR_CONTAINS(nt_cmdframe_finish(&d), "inside a frame");
}

int main(void) {
  static const nt_test_case cases[] = {
      {"round_trip", test_round_trip},
      {"exit_statuses", test_exit_statuses},
      {"second_exit_frame", test_second_exit_frame},
      {"output_after_exit", test_output_after_exit},
      {"bad_headers", test_bad_headers},
      {"max_frame", test_max_frame},
      {"truncated", test_truncated},
      {NULL, NULL}};
  return nt_test_run(cases);
}
