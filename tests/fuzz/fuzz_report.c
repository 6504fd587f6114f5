/* libFuzzer target: a connectivity check's report (natter -check) as the
 * peer's CheckReport shapes it. The report comes from the other side
 * through the broker: it is decoded (src/codec/control.c), filled into
 * the peer's side (nt_check_report_side), judged (src/client/verdict.c)
 * and printed by the CLI as a table and as JSON (cli/report.c). Whatever
 * the peer says, the verdict is one of the known ones, the table holds
 * nothing but printable text and line ends (no terminal escapes from a
 * peer), and the JSON is one well-formed object on one line. The first
 * bytes set our own side and the attempt's outcome. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/verdict.h"
#include "codec/control.h"
#include "report.h"

/* ---- a small JSON checker: one value, RFC 8259 grammar ---- */

static const char *json_value(const char *p, const char *end, int depth);

static const char *json_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
    p++;
  }
  return p;
}

static const char *json_string(const char *p, const char *end) {
  if (p >= end || *p != '"') {
    return NULL;
  }
  for (p++; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') {
      return p + 1;
    }
    if (c < 0x20) {
      return NULL;
    }
    if (c == '\\') {
      if (++p >= end) {
        return NULL;
      }
      if (*p == 'u') {
        for (int i = 0; i < 4; i++) {
          if (++p >= end || !strchr("0123456789abcdefABCDEF", *p)) {
            return NULL;
          }
        }
      } else if (!strchr("\"\\/bfnrt", *p)) {
        return NULL;
      }
    }
  }
  return NULL;
}

static const char *json_number(const char *p, const char *end) {
  const char *start = p;
  if (p < end && *p == '-') {
    p++;
  }
  while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
                     *p == 'E' || *p == '+' || *p == '-')) {
    p++;
  }
  return p > start ? p : NULL;
}

static const char *json_value(const char *p, const char *end, int depth) {
  if (depth > 8 || (p = json_ws(p, end)) >= end) {
    return NULL;
  }
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    int object = *p == '{';
    p = json_ws(p + 1, end);
    if (p < end && *p == close) {
      return p + 1;
    }
    for (;;) {
      if (object) {
        p = json_string(json_ws(p, end), end);
        if (!p || (p = json_ws(p, end)) >= end || *p != ':') {
          return NULL;
        }
        p++;
      }
      if (!(p = json_value(p, end, depth + 1)) ||
          (p = json_ws(p, end)) >= end) {
        return NULL;
      }
      if (*p == close) {
        return p + 1;
      }
      if (*p != ',') {
        return NULL;
      }
      p++;
    }
  }
  if (*p == '"') {
    return json_string(p, end);
  }
  for (const char *const *w =
           (const char *const[]){"true", "false", "null", NULL};
       *w; w++) {
    size_t n = strlen(*w);
    if ((size_t)(end - p) >= n && memcmp(p, *w, n) == 0) {
      return p + n;
    }
  }
  return json_number(p, end);
}

static void check_json(const char *s, size_t len) {
  const char *end = s + len;
  if (len < 2 || s[0] != '{' || s[len - 1] != '\n' ||
      memchr(s, '\n', len - 1) != NULL) {
    abort();
  }
  const char *p = json_value(s, end, 0);
  if (!p || json_ws(p, end) != end) {
    abort();
  }
}

static void check_table(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c != '\n' && (c < 0x20 || c >= 0x7f)) {
      abort();
    }
  }
  if (!strstr(s, "verdict: ")) {
    abort();
  }
}

static void render(const natter_check_result *r, int json) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f) {
    return;
  }
  report_print(f, r, "broker.example:10000", json);
  fclose(f);
  if (json) {
    check_json(out, len);
  } else {
    check_table(out, len);
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int errors[] = {0,
                               NATTER_ERR_PUNCH,
                               NATTER_ERR_TIMEOUT,
                               NATTER_ERR_TLS,
                               NATTER_ERR_CLOSED,
                               NATTER_ERR_PEER_UNKNOWN,
                               NATTER_ERR_PEER_NOT_LISTENING,
                               NATTER_ERR_INVALID};
  static const char *const self_cands[] = {"198.51.100.7:4433",
                                           "[2001:db8::7]:4433"};
  static nt_control msg; /* large: off the stack */
  natter_check_result r;
  nt_check_side_text peer_text;
  char text[1400];

  if (size < 4) {
    return 0;
  }
  uint8_t flags = data[0], mapping = data[1], counts = data[2];
  memset(&r, 0, sizeof(r));
  r.connected = flags & 1;
  r.relayed = (flags >> 1) & 1;
  r.relay_offered = (flags >> 2) & 1;
  r.predicted = r.connected && !r.relayed && ((flags >> 3) & 1);
  r.error = r.connected ? 0 : errors[(flags >> 4) & 7];
  r.message = r.connected ? "" : "the attempt's \"own\" message";
  r.address = r.connected ? "203.0.113.9:4433" : "";
  r.connect_ms = counts;
  r.rtt_us = (uint64_t)counts * 977;

  natter_check_side *a = &r.self, *b = &r.peer;
  a->name = "self-name";
  a->reported = 1;
  a->outcome = r.connected ? "connected" : r.error ? "failed" : "";
  a->mapping = (natter_nat_mapping)(mapping % 3);
  a->public_address = (flags & 0x80) ? "198.51.100.7:4433" : "";
  a->candidates = self_cands;
  a->ncandidates = (counts >> 6) % 3;
  a->probe_rounds = counts & 7;
  a->probes_received = (counts >> 3) & 7;
  a->replies_received = counts & 3;
  a->probes_from = (mapping & 0x10) ? "198.51.100.8:5000" : "";

  /* What the broker told us about the peer, then the peer's own report. */
  b->name = "peer.name";
  b->outcome = "";
  b->probes_from = "";
  b->candidates = peer_text.pcand;
  b->mapping = (natter_nat_mapping)((mapping >> 2) % 3);
  b->public_address = (mapping & 0x20) ? "203.0.113.9:4433" : "";
  if (nt_control_decode(&msg, data + 3, size - 3) == 0 &&
      msg.type == NT_CONTROL_CHECK_REPORT) {
    nt_check_report_side(b, &msg.u.check_report, &peer_text);
  }

  r.verdict = nt_check_verdict(&r, text, sizeof(text));
  r.verdict_text = text;
  if ((int)r.verdict < NATTER_CHECK_DIRECT || r.verdict > NATTER_CHECK_FAILED ||
      text[0] == '\0') {
    abort();
  }
  int code = report_exit_code(r.verdict);
  if (code < 0 || code > 7 || code == 2 ||
      (code == 0) != (r.verdict == NATTER_CHECK_DIRECT ||
                      r.verdict == NATTER_CHECK_DIRECT_PREDICTED)) {
    abort();
  }
  render(&r, 0);
  render(&r, 1);
  return 0;
}
