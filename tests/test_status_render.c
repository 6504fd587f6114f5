/* Unit tests for the status renderers (src/status/status_render.c) and the
 * snapshots they read (src/status/snapshot.c). Snapshots with several rows
 * and hostile names (quotes, backslashes, control bytes, "</script>",
 * newlines, non-ASCII) are rendered, and the output is parsed back: the
 * JSON by a strict validator that also decodes every string, so a name
 * must come back as it went in; the Prometheus text line by line as the
 * exposition format defines it, label values unescaped and compared. */
#include "status/snapshot.h"
#include "status/status_render.h"
#include "test.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <stdlib.h>

/* ---- hostile rows ---- */

#define FP_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* Names as a broken or hostile peer, broker or config might supply them.
 * All are valid UTF-8 (the metrics format wants UTF-8). The peer names
 * (0, 3, 6) and forward targets (7, 8) become label values. */
static const char *const hostile[] = {
    "quo\"te",
    "ctl\x01\x02\x1f\x7f",
    "</script><b>x</b>",
    "new\nline\r\n",
    "tab\there",
    "caf\xc3\xa9 \xe2\x82\xac",
    "back\\slash\\",
    "\"\\\"\\n",
    "plain-name_1.x",
};
#define NHOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static const char *const cands_a[] = {"127.0.0.1:4000", "[fd00::1]:4000",
                                      "bad\"cand\\"};

static void client_snapshot(nt_client_snapshot *s, natter_peer_info *peers,
                            natter_forward_info *forwards) {
  nt_client_snapshot_init(s);
  s->fingerprint = FP_A;
  s->status.uptime_ms = 3723456;
  s->status.checked_in = 1;
  s->status.mapping = NATTER_NAT_MAPPING_SYMMETRIC;
  snprintf(s->status.public_address, sizeof(s->status.public_address),
           "198.51.100.7:5000");
  s->status.local_port = 5000;
  s->status.check_ins = 2;
  s->status.peers_connected = 1;
  s->status.punch_by_mapping[1][2][1] = 7;
  s->status.errors[-NATTER_ERR_PUNCH] = 3;
  s->status.errors[-NATTER_ERR_REGISTRY] = 1;
  for (size_t i = 0; i < 3; i++) {
    memset(&peers[i], 0, sizeof(peers[i]));
    peers[i].name = hostile[i * 3];
    peers[i].fingerprint = i ? FP_B : "";
    peers[i].state = i == 1 ? hostile[1] : "connected";
    peers[i].path = i == 2 ? "" : "direct";
    peers[i].address = hostile[i * 3 + 1];
    peers[i].mapping = (int)i;
    peers[i].rtt_us = 1500 * (i + 1);
    peers[i].bytes_sent = 1000000 * i;
    peers[i].ncandidates = i == 0 ? 3 : 0;
    peers[i].candidates = cands_a;
    peers[i].probes_from = hostile[i * 3 + 2];
  }
  for (size_t i = 0; i < 2; i++) {
    memset(&forwards[i], 0, sizeof(forwards[i]));
    forwards[i].peer = hostile[i + 4];
    forwards[i].target = hostile[i + 7];
    forwards[i].local_port = (uint16_t)(i ? 0 : 8080);
    forwards[i].stats.connections = 5 + i;
    forwards[i].stats.bytes_sent = 12345;
  }
  s->peers = peers;
  s->npeers = 3;
  s->forwards = forwards;
  s->nforwards = 2;
}

static void broker_snapshot(nt_broker_snapshot *s,
                            natter_broker_client_info *rows) {
  nt_broker_snapshot_init(s);
  s->fingerprint = FP_B;
  s->status.uptime_ms = 61000;
  s->status.clients = 4;
  s->status.clients_by_mapping[1] = 3;
  s->relay_channels = 7;
  s->now_unix_ms = 1800000000000ull;
  for (size_t i = 0; i < 4; i++) {
    memset(&rows[i], 0, sizeof(rows[i]));
    rows[i].name = hostile[(i * 2) % NHOSTILE];
    rows[i].fingerprint = i % 2 ? FP_A : FP_B;
    rows[i].address = hostile[(i * 2 + 1) % NHOSTILE];
    rows[i].mapping = (int)(i % 3);
    rows[i].listening = (int)(i % 2);
    rows[i].connected_unix_ms = i ? 1799999990000ull + i : 0;
    rows[i].last_seen_unix_ms = 1799999999000ull;
    rows[i].bytes_received = 999 * i;
  }
  s->clients = rows;
  s->nclients = 4;
}

/* The rendered text as a NUL-terminated string (freed by the caller). */
static char *take(struct evbuffer *buf) {
  size_t n = evbuffer_get_length(buf);
  char *s = malloc(n + 1);
  evbuffer_remove(buf, s, n);
  s[n] = '\0';
  evbuffer_free(buf);
  return s;
}

/* ---- a strict JSON reader (RFC 8259) that keeps every string ---- */

#define MAX_STRINGS 512

typedef struct json_reader {
  const char *p;
  int depth;
  char *strings[MAX_STRINGS]; /* every string, keys too, decoded */
  size_t nstrings;
  const char *error;
} json_reader;

static int json_fail(json_reader *r, const char *why) {
  if (!r->error) {
    r->error = why;
  }
  return -1;
}

static void json_ws(json_reader *r) {
  while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r') {
    r->p++;
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

/* The renderer writes each byte outside printable ASCII as \u00XX, so a
 * \u escape below 0x100 decodes to that byte: the bytes come back as they
 * went in. Other code points are valid JSON but never written. */
static int json_string(json_reader *r) {
  char out[1024];
  size_t n = 0;
  if (*r->p != '"') {
    return json_fail(r, "string expected");
  }
  r->p++;
  for (;;) {
    unsigned char c = (unsigned char)*r->p;
    if (c == '\0') {
      return json_fail(r, "unterminated string");
    }
    if (c < 0x20) {
      return json_fail(r, "raw control byte in a string");
    }
    if (c == '"') {
      r->p++;
      break;
    }
    if (c == '\\') {
      char e = r->p[1];
      const char *simple = strchr("\"\\/bfnrt", e);
      if (e && simple) {
        out[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
        r->p += 2;
      } else if (e == 'u') {
        int v = 0;
        for (int i = 2; i < 6; i++) {
          int h = hexval(r->p[i]);
          if (h < 0) {
            return json_fail(r, "bad \\u escape");
          }
          v = v * 16 + h;
        }
        if (v >= 0x100) {
          return json_fail(r, "\\u escape the renderer never writes");
        }
        out[n++] = (char)v;
        r->p += 6;
      } else {
        return json_fail(r, "bad escape");
      }
    } else {
      if (c >= 0x80) {
        return json_fail(r, "raw non-ASCII byte (the renderer escapes them)");
      }
      out[n++] = (char)c;
      r->p++;
    }
    if (n >= sizeof(out) - 1) {
      return json_fail(r, "string too long for the test");
    }
  }
  out[n] = '\0';
  if (r->nstrings < MAX_STRINGS) {
    r->strings[r->nstrings++] = strdup(out);
  }
  return 0;
}

static int json_number(json_reader *r) {
  const char *p = r->p;
  if (*p == '-') {
    p++;
  }
  if (*p == '0') {
    p++;
  } else if (*p >= '1' && *p <= '9') {
    while (isdigit((unsigned char)*p)) {
      p++;
    }
  } else {
    return json_fail(r, "number expected");
  }
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p)) {
      return json_fail(r, "digit expected after '.'");
    }
    while (isdigit((unsigned char)*p)) {
      p++;
    }
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') {
      p++;
    }
    if (!isdigit((unsigned char)*p)) {
      return json_fail(r, "digit expected in exponent");
    }
    while (isdigit((unsigned char)*p)) {
      p++;
    }
  }
  r->p = p;
  return 0;
}

static int json_value(json_reader *r);

/* Object or array: |close| ends it; objects have "key": before values. */
static int json_container(json_reader *r, char close, int object) {
  if (++r->depth > 32) {
    return json_fail(r, "nested too deep");
  }
  r->p++;
  json_ws(r);
  if (*r->p == close) {
    r->p++;
    r->depth--;
    return 0;
  }
  for (;;) {
    json_ws(r);
    if (object) {
      if (json_string(r) != 0) {
        return -1;
      }
      json_ws(r);
      if (*r->p != ':') {
        return json_fail(r, "':' expected");
      }
      r->p++;
    }
    if (json_value(r) != 0) {
      return -1;
    }
    json_ws(r);
    if (*r->p == ',') {
      r->p++;
      continue;
    }
    if (*r->p == close) {
      r->p++;
      r->depth--;
      return 0;
    }
    return json_fail(r, "',' or end of container expected");
  }
}

static int json_value(json_reader *r) {
  json_ws(r);
  switch (*r->p) {
  case '{':
    return json_container(r, '}', 1);
  case '[':
    return json_container(r, ']', 0);
  case '"':
    return json_string(r);
  case 't':
  case 'f':
  case 'n': {
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
      if (strncmp(r->p, words[i], strlen(words[i])) == 0) {
        r->p += strlen(words[i]);
        return 0;
      }
    }
    return json_fail(r, "bad literal");
  }
  default:
    return json_number(r);
  }
}

/* Parses |doc| as one JSON object followed by a newline. */
static int json_read(json_reader *r, const char *doc) {
  memset(r, 0, sizeof(*r));
  r->p = doc;
  if (*r->p != '{' || json_value(r) != 0) {
    json_fail(r, "not an object");
  } else if (strcmp(r->p, "\n") != 0) {
    json_fail(r, "trailing bytes after the document");
  }
  if (r->error) {
    fprintf(stderr, "JSON error \"%s\" at offset %zu in:\n%s\n", r->error,
            (size_t)(r->p - doc), doc);
    return -1;
  }
  return 0;
}

static size_t json_count(const json_reader *r, const char *s) {
  size_t n = 0;
  for (size_t i = 0; i < r->nstrings; i++) {
    n += strcmp(r->strings[i], s) == 0;
  }
  return n;
}

static void json_done(json_reader *r) {
  for (size_t i = 0; i < r->nstrings; i++) {
    free(r->strings[i]);
  }
}

/* ---- the Prometheus text format (exposition format 0.0.4) ---- */

#define MAX_LABEL_VALUES 1024

typedef struct prom_reader {
  char *values[MAX_LABEL_VALUES]; /* every label value, unescaped */
  size_t nvalues;
  size_t samples;
  char families[128][80]; /* every # TYPE name, in order */
  size_t nfamilies;
} prom_reader;

static int metric_name_char(char c, int first) {
  return isalpha((unsigned char)c) || c == '_' || c == ':' ||
         (!first && isdigit((unsigned char)c));
}

/* Checks one sample line "name{label="value",...} value" and that it
 * belongs to the family of the latest # TYPE line. */
static int prom_sample(prom_reader *r, const char *line) {
  const char *p = line;
  char name[80];
  size_t n = 0;
  while (metric_name_char(*p, p == line) && n < sizeof(name) - 1) {
    name[n++] = *p++;
  }
  name[n] = '\0';
  if (n == 0) {
    return -1;
  }
  if (r->nfamilies == 0 || strcmp(name, r->families[r->nfamilies - 1]) != 0) {
    fprintf(stderr, "sample %s outside its family's block\n", name);
    return -1;
  }
  if (*p == '{') {
    p++;
    for (;;) {
      if (!isalpha((unsigned char)*p) && *p != '_') {
        return -1;
      }
      while (isalnum((unsigned char)*p) || *p == '_') {
        p++;
      }
      if (p[0] != '=' || p[1] != '"') {
        return -1;
      }
      p += 2;
      char value[1024];
      size_t v = 0;
      while (*p != '"') {
        if (*p == '\0' || v >= sizeof(value) - 1) {
          return -1;
        }
        if (*p == '\\') {
          if (p[1] == '\\' || p[1] == '"') {
            value[v++] = p[1];
          } else if (p[1] == 'n') {
            value[v++] = '\n';
          } else {
            return -1; /* the format has no other escape */
          }
          p += 2;
        } else {
          value[v++] = *p++;
        }
      }
      value[v] = '\0';
      p++;
      if (r->nvalues < MAX_LABEL_VALUES) {
        r->values[r->nvalues++] = strdup(value);
      }
      if (*p == ',') {
        p++;
        continue;
      }
      if (*p == '}') {
        p++;
        break;
      }
      return -1;
    }
  }
  if (*p++ != ' ') {
    return -1;
  }
  /* The value: digits with an optional fraction, as we write them. */
  if (!isdigit((unsigned char)*p)) {
    return -1;
  }
  while (isdigit((unsigned char)*p)) {
    p++;
  }
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p)) {
      return -1;
    }
    while (isdigit((unsigned char)*p)) {
      p++;
    }
  }
  r->samples++;
  return *p == '\0' ? 0 : -1;
}

/* "# HELP name text" then "# TYPE name counter|gauge", once per family. */
static int prom_comment(prom_reader *r, const char *line, const char *prev) {
  char name[80], type[16];
  if (strncmp(line, "# HELP ", 7) == 0) {
    return 0;
  }
  if (sscanf(line, "# TYPE %79s %15s", name, type) != 2 ||
      (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0)) {
    return -1;
  }
  for (size_t i = 0; i < strlen(name); i++) {
    if (!metric_name_char(name[i], i == 0)) {
      return -1;
    }
  }
  for (size_t i = 0; i < r->nfamilies; i++) {
    if (strcmp(r->families[i], name) == 0) {
      fprintf(stderr, "family %s declared twice\n", name);
      return -1;
    }
  }
  char help[100];
  snprintf(help, sizeof(help), "# HELP %s ", name);
  if (!prev || strncmp(prev, help, strlen(help)) != 0) {
    return -1;
  }
  if (r->nfamilies < 128) {
    snprintf(r->families[r->nfamilies++], sizeof(r->families[0]), "%s", name);
  }
  return 0;
}

/* A UTF-8 check (RFC 3629): the format is UTF-8 text. */
static int valid_utf8(const unsigned char *s) {
  while (*s) {
    size_t extra = *s < 0x80             ? 0
                   : (*s & 0xe0) == 0xc0 ? 1
                   : (*s & 0xf0) == 0xe0 ? 2
                   : (*s & 0xf8) == 0xf0 ? 3
                                         : 9;
    if (extra == 9 || (extra == 1 && *s < 0xc2)) {
      return 0;
    }
    s++;
    for (size_t i = 0; i < extra; i++, s++) {
      if ((*s & 0xc0) != 0x80) {
        return 0;
      }
    }
  }
  return 1;
}

/* Parses the whole exposition |text| (which it cuts into lines). */
static int prom_read(prom_reader *r, char *text) {
  memset(r, 0, sizeof(*r));
  if (!valid_utf8((const unsigned char *)text)) {
    fprintf(stderr, "metrics are not UTF-8\n");
    return -1;
  }
  size_t len = strlen(text);
  if (len == 0 || text[len - 1] != '\n') {
    return -1;
  }
  const char *prev = NULL;
  for (char *line = text, *end; *line; line = end + 1) {
    end = strchr(line, '\n');
    *end = '\0';
    int rv =
        line[0] == '#' ? prom_comment(r, line, prev) : prom_sample(r, line);
    if (rv != 0) {
      fprintf(stderr, "bad metrics line: \"%s\"\n", line);
      return -1;
    }
    prev = line;
  }
  return 0;
}

static size_t prom_count(const prom_reader *r, const char *value) {
  size_t n = 0;
  for (size_t i = 0; i < r->nvalues; i++) {
    n += strcmp(r->values[i], value) == 0;
  }
  return n;
}

static void prom_done(prom_reader *r) {
  for (size_t i = 0; i < r->nvalues; i++) {
    free(r->values[i]);
  }
}

/* ---- the tests ---- */

static void test_client_json(void) {
  nt_client_snapshot s;
  natter_peer_info peers[3];
  natter_forward_info forwards[2];
  json_reader r;
  client_snapshot(&s, peers, forwards);

  struct evbuffer *buf = evbuffer_new();
  nt_render_client_json(buf, &s, 1);
  char *doc = take(buf);
  CHECK(json_read(&r, doc) == 0);
  for (const unsigned char *p = (const unsigned char *)doc; *p; p++) {
    CHECK((*p >= 0x20 && *p < 0x7f) || (*p == '\n' && !p[1]));
  }
  CHECK(json_count(&r, "name") == 3);   /* one per peer */
  CHECK(json_count(&r, "target") == 2); /* one per forward */
  for (size_t i = 0; i < 9; i++) {
    CHECK(json_count(&r, hostile[i]) >= 1); /* back as they went in */
  }
  CHECK(json_count(&r, "bad\"cand\\") == 1);
  CHECK(json_count(&r, FP_A) == 1);
  CHECK(json_count(&r, "0123456789abcdef") == 0); /* peers: FP_B prefix */
  CHECK(json_count(&r, "fedcba9876543210") == 2);
  CHECK_STR_CONTAINS(doc, "\"uptime_s\":3723.456,");
  json_done(&r);
  free(doc);

  /* Not detailed: no rows, no fingerprint. */
  buf = evbuffer_new();
  nt_render_client_json(buf, &s, 0);
  doc = take(buf);
  CHECK(json_read(&r, doc) == 0);
  CHECK(json_count(&r, "peers") == 0 && json_count(&r, FP_A) == 0);
  json_done(&r);
  free(doc);
}

static void test_broker_json(void) {
  nt_broker_snapshot s;
  natter_broker_client_info rows[4];
  json_reader r;
  broker_snapshot(&s, rows);

  struct evbuffer *buf = evbuffer_new();
  nt_render_broker_json(buf, &s, 1);
  char *doc = take(buf);
  CHECK(json_read(&r, doc) == 0);
  CHECK(json_count(&r, "name") == 4);
  for (size_t i = 0; i < 8; i++) {
    CHECK(json_count(&r, hostile[i]) == 1);
  }
  CHECK(json_count(&r, FP_B) == 1); /* the broker's own, in full */
  CHECK(json_count(&r, "") == 1);   /* connected_since 0: never */
  CHECK(json_count(&r, "2027-01-15T08:00:00.000Z") == 0);
  CHECK(json_count(&r, "2027-01-15T07:59:59.000Z") == 4);
  json_done(&r);
  free(doc);

  buf = evbuffer_new();
  nt_render_broker_json(buf, &s, 0);
  doc = take(buf);
  CHECK(json_read(&r, doc) == 0);
  CHECK(json_count(&r, "client_list") == 0 && json_count(&r, FP_B) == 0);
  json_done(&r);
  free(doc);
}

static void test_client_metrics(void) {
  nt_client_snapshot s;
  natter_peer_info peers[3];
  natter_forward_info forwards[2];
  prom_reader r;
  client_snapshot(&s, peers, forwards);

  struct evbuffer *buf = evbuffer_new();
  nt_render_client_metrics(buf, &s);
  char *text = take(buf);
  CHECK(prom_read(&r, text) == 0);
  /* Every peer name under each of its families (bytes: twice). */
  for (size_t i = 0; i < 3; i++) {
    size_t want = 2 + (peers[i].path[0] ? 1 : 0) + 1 + 1;
    CHECK(prom_count(&r, hostile[i * 3]) == want);
  }
  CHECK(prom_count(&r, hostile[1]) == 1); /* a hostile state */
  for (size_t i = 0; i < 2; i++) {
    /* Each forward target: bytes twice, connections, failures, active,
     * datagrams three times. */
    CHECK(prom_count(&r, hostile[i + 7]) == 8);
  }
  CHECK(prom_count(&r, "8080") == 8);
  CHECK(prom_count(&r, "registry") == 1); /* every error code a row */
  prom_done(&r);
  free(text);
}

static void test_broker_metrics(void) {
  nt_broker_snapshot s;
  natter_broker_client_info rows[4];
  prom_reader r;
  broker_snapshot(&s, rows);

  struct evbuffer *buf = evbuffer_new();
  nt_render_broker_metrics(buf, &s);
  char *text = take(buf);
  CHECK_STR_CONTAINS(text, "\nnatter_broker_clients 4\n");
  CHECK_STR_CONTAINS(text, "\nnatter_broker_uptime_seconds 61.000000\n");
  CHECK_STR_CONTAINS(text, "\nnatter_broker_relay_channels 7\n");
  CHECK(prom_read(&r, text) == 0); /* cuts |text| into lines */
  CHECK(r.samples > 10);
  prom_done(&r);
  free(text);
}

/* The tables: every row there, rows as many lines as rows (names are
 * printed as they are; natter -status escapes what it prints). */
static void test_text_tables(void) {
  nt_client_snapshot cs;
  natter_peer_info peers[3];
  natter_forward_info forwards[2];
  client_snapshot(&cs, peers, forwards);
  struct evbuffer *buf = evbuffer_new();
  nt_render_client_text(buf, &cs, 1);
  char *text = take(buf);
  CHECK_STR_CONTAINS(text, "up 1h02m, key 0123456789abcdef\n");
  CHECK_STR_CONTAINS(text, "127.0.0.1:4000,[fd00::1]:4000,bad\"cand\\\n");
  CHECK_STR_CONTAINS(text, "\nstdio    ");
  CHECK(strstr(text, "port-mapped") == NULL);
  free(text);
  /* A port mapping at the gateway (status V3) follows the UDP port. */
  snprintf(cs.status.portmap, sizeof(cs.status.portmap),
           "port-mapped (PCP) at 198.51.100.7:6000");
  buf = evbuffer_new();
  nt_render_client_text(buf, &cs, 1);
  text = take(buf);
  CHECK_STR_CONTAINS(text,
                     "UDP port 5000, port-mapped (PCP) at 198.51.100.7:6000\n");
  free(text);
  buf = evbuffer_new();
  nt_render_client_json(buf, &cs, 1);
  text = take(buf);
  CHECK_STR_CONTAINS(text,
                     "\"portmap\":\"port-mapped (PCP) at 198.51.100.7:6000\"");
  free(text);

  nt_broker_snapshot bs;
  natter_broker_client_info rows[4];
  broker_snapshot(&bs, rows);
  buf = evbuffer_new();
  nt_render_broker_text(buf, &bs, 1);
  text = take(buf);
  CHECK_STR_CONTAINS(text, "NAME             KEY");
  CHECK_STR_CONTAINS(text, "     1s ago"); /* now - last seen */
  free(text);
  buf = evbuffer_new();
  nt_render_broker_text(buf, &bs, 0);
  text = take(buf);
  CHECK_STR_CONTAINS(text, "(per-client rows are for -admin keys only)\n");
  CHECK(strstr(text, "NAME") == NULL);
  free(text);
}

/* The add functions copy: the source's strings may go right after. */
static void test_snapshot_copies_rows(void) {
  nt_client_snapshot s;
  char name[16], cand[24];
  const char *cands[1] = {cand};
  nt_client_snapshot_init(&s);
  for (int i = 0; i < 20; i++) { /* past the first growth */
    natter_peer_info p;
    memset(&p, 0, sizeof(p));
    snprintf(name, sizeof(name), "peer%d", i);
    snprintf(cand, sizeof(cand), "192.0.2.%d:1", i);
    p.name = name;
    p.fingerprint = p.state = p.path = p.address = "";
    p.probes_from = NULL;
    p.ncandidates = 1;
    p.candidates = cands;
    CHECK(nt_client_snapshot_add_peer(&s, &p) == 0);
    natter_forward_info f;
    memset(&f, 0, sizeof(f));
    f.peer = name;
    f.target = cand;
    CHECK(nt_client_snapshot_add_forward(&s, &f) == 0);
  }
  memset(name, 'x', sizeof(name) - 1);
  memset(cand, 'y', sizeof(cand) - 1);
  CHECK(s.npeers == 20 && s.nforwards == 20);
  CHECK(strcmp(s.peers[13].name, "peer13") == 0);
  CHECK(strcmp(s.peers[13].candidates[0], "192.0.2.13:1") == 0);
  CHECK(s.peers[13].probes_from == NULL);
  CHECK(strcmp(s.forwards[19].target, "192.0.2.19:1") == 0);
  nt_client_snapshot_clear(&s);
  CHECK(s.npeers == 0 && s.peers == NULL && s.mem == NULL);

  nt_broker_snapshot b;
  nt_broker_snapshot_init(&b);
  natter_broker_client_info c;
  memset(&c, 0, sizeof(c));
  snprintf(name, sizeof(name), "alice");
  c.name = name;
  c.fingerprint = FP_A;
  c.address = "203.0.113.9:7";
  CHECK(nt_broker_snapshot_add_client(&b, &c) == 0);
  name[0] = 'X';
  CHECK(strcmp(b.clients[0].name, "alice") == 0);
  nt_broker_snapshot_clear(&b);
}

int main(void) {
  static const nt_test_case cases[] = {
      {"client_json", test_client_json},
      {"broker_json", test_broker_json},
      {"client_metrics", test_client_metrics},
      {"broker_metrics", test_broker_metrics},
      {"text_tables", test_text_tables},
      {"snapshot_copies_rows", test_snapshot_copies_rows},
      {NULL, NULL}};
  return nt_test_run(cases);
}
