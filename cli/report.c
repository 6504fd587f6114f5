#include "report.h"

#include <string.h>

int report_exit_code(natter_check_verdict verdict) {
  switch (verdict) {
  case NATTER_CHECK_DIRECT:
  case NATTER_CHECK_DIRECT_PREDICTED:
    return 0;
  case NATTER_CHECK_NEEDS_RELAY:
    return 3;
  case NATTER_CHECK_UDP_BLOCKED:
    return 4;
  case NATTER_CHECK_NOT_LISTENING:
    return 5;
  case NATTER_CHECK_PEER_UNKNOWN:
    return 6;
  case NATTER_CHECK_REFUSED:
    return 7;
  default:
    return 1;
  }
}

static const char *verdict_key(natter_check_verdict verdict) {
  switch (verdict) {
  case NATTER_CHECK_DIRECT:
    return "direct";
  case NATTER_CHECK_DIRECT_PREDICTED:
    return "direct-predicted";
  case NATTER_CHECK_NEEDS_RELAY:
    return "needs-relay";
  case NATTER_CHECK_UDP_BLOCKED:
    return "udp-blocked";
  case NATTER_CHECK_NOT_LISTENING:
    return "not-listening";
  case NATTER_CHECK_PEER_UNKNOWN:
    return "unknown-peer";
  case NATTER_CHECK_REFUSED:
    return "refused";
  default:
    return "failed";
  }
}

/* A JSON string; the library's messages are escaped already, but quotes
 * and backslashes may remain. */
static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      fprintf(out, "\\%c", ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      fprintf(out, "\\u%04x", ch);
    } else {
      fputc(ch, out);
    }
  }
  fputc('"', out);
}

static void json_side(FILE *out, const natter_check_side *s) {
  fprintf(out, "{\"name\":");
  json_str(out, s->name);
  fprintf(out, ",\"reported\":%s,\"outcome\":", s->reported ? "true" : "false");
  json_str(out, s->outcome);
  fprintf(out, ",\"mapping\":");
  json_str(out, natter_nat_mapping_name(s->mapping));
  fprintf(out, ",\"public_address\":");
  json_str(out, s->public_address);
  fprintf(out, ",\"candidates\":[");
  for (size_t i = 0; i < s->ncandidates; i++) {
    if (i) {
      fputc(',', out);
    }
    json_str(out, s->candidates[i]);
  }
  fprintf(out,
          "],\"probe_rounds\":%u,\"probes_received\":%u,"
          "\"replies_received\":%u,\"probes_from\":",
          s->probe_rounds, s->probes_received, s->replies_received);
  json_str(out, s->probes_from);
  fputc('}', out);
}

static void print_json(FILE *out, const natter_check_result *r,
                       const char *broker) {
  fprintf(out, "{\"verdict\":");
  json_str(out, verdict_key(r->verdict));
  fprintf(out, ",\"verdict_text\":");
  json_str(out, r->verdict_text);
  fprintf(out, ",\"exit_code\":%d,\"broker\":", report_exit_code(r->verdict));
  json_str(out, broker);
  fprintf(out, ",\"connected\":%s,\"path\":", r->connected ? "true" : "false");
  json_str(out, !r->connected ? "" : r->relayed ? "relay" : "direct");
  fprintf(out, ",\"address\":");
  json_str(out, r->address);
  fprintf(out,
          ",\"connect_ms\":%llu,\"rtt_ms\":%.3f,\"relay_offered\":%s,"
          "\"predicted\":%s,\"over_tcp\":%s,"
          "\"error\":",
          (unsigned long long)r->connect_ms, (double)r->rtt_us / 1000.0,
          r->relay_offered ? "true" : "false", r->predicted ? "true" : "false",
          r->over_tcp ? "true" : "false");
  json_str(out, natter_error_name(r->error));
  fprintf(out, ",\"message\":");
  json_str(out, r->message);
  fprintf(out, ",\"self\":");
  json_side(out, &r->self);
  fprintf(out, ",\"peer\":");
  json_side(out, &r->peer);
  fprintf(out, ",\"self_portmap\":");
  json_str(out, r->self_portmap ? r->self_portmap : "");
  fprintf(out, ",\"peer_portmap\":");
  json_str(out, r->peer_portmap ? r->peer_portmap : "");
  fprintf(out, "}\n");
}

#define COL 34

static void row(FILE *out, const char *label, const char *a, const char *b) {
  fprintf(out, "%-17s%-*s %s\n", label, COL, a, b);
}

static void counted(char *buf, size_t len, const natter_check_side *s,
                    unsigned n, int from) {
  if (!s->reported) {
    snprintf(buf, len, "-");
  } else if (from && n && s->probes_from[0]) {
    snprintf(buf, len, "%u (from %s)", n, s->probes_from);
  } else {
    snprintf(buf, len, "%u", n);
  }
}

static void print_table(FILE *out, const natter_check_result *r,
                        const char *broker) {
  const natter_check_side *a = &r->self, *b = &r->peer;
  char ca[120], cb[120], head[80];
  size_t n = a->ncandidates > b->ncandidates ? a->ncandidates : b->ncandidates;

  fprintf(out, "natter check: %s -> %s, broker %s\n\n", a->name, b->name,
          broker);
  snprintf(head, sizeof(head), "%s (this side)", a->name);
  snprintf(cb, sizeof(cb), "%s%s", b->name,
           b->reported ? "" : " (sent no report)");
  row(out, "", head, cb);
  row(out, "NAT mapping", natter_nat_mapping_name(a->mapping),
      natter_nat_mapping_name(b->mapping));
  row(out, "public address", a->public_address[0] ? a->public_address : "-",
      b->public_address[0] ? b->public_address : "-");
  if ((r->self_portmap && r->self_portmap[0]) ||
      (r->peer_portmap && r->peer_portmap[0])) {
    /* "port-mapped (PCP) at ADDR": the words after "port-mapped " */
    row(out, "port-mapped",
        r->self_portmap && r->self_portmap[0] ? r->self_portmap + 12 : "-",
        r->peer_portmap && r->peer_portmap[0] ? r->peer_portmap + 12 : "-");
  }
  for (size_t i = 0; i < n || i == 0; i++) {
    row(out, i ? "" : "probed",
        i < a->ncandidates ? a->candidates[i]
        : i                ? ""
                           : "-",
        i < b->ncandidates ? b->candidates[i]
        : i || b->reported ? ""
                           : "-");
  }
  counted(ca, sizeof(ca), a, a->probe_rounds, 0);
  counted(cb, sizeof(cb), b, b->probe_rounds, 0);
  row(out, "probe rounds", ca, cb);
  counted(ca, sizeof(ca), a, a->probes_received, 1);
  counted(cb, sizeof(cb), b, b->probes_received, 1);
  row(out, "probes arrived", ca, cb);
  counted(ca, sizeof(ca), a, a->replies_received, 0);
  counted(cb, sizeof(cb), b, b->replies_received, 0);
  row(out, "answers arrived", ca, cb);
  row(out, "outcome", a->outcome[0] ? a->outcome : "-",
      b->outcome[0] ? b->outcome : "-");
  fputc('\n', out);
  if (r->connected) {
    fprintf(out,
            "path: %s %s, connected %llu ms after the introduction, "
            "RTT %.1f ms; closed (check done)\n",
            !r->relayed   ? "direct to"
            : r->over_tcp ? "relayed over TCP (UDP to the broker got no "
                            "answer) through the broker's relay at"
                          : "through the broker's relay at",
            r->address, (unsigned long long)r->connect_ms,
            (double)r->rtt_us / 1000.0);
  } else if (r->message[0] && r->verdict == NATTER_CHECK_FAILED) {
    /* The other verdicts say it all; this one needs the details. */
    fprintf(out, "attempt: %s\n", r->message);
  }
  fprintf(out, "verdict: %s\n", r->verdict_text);
}

void report_print(FILE *out, const natter_check_result *r, const char *broker,
                  int json) {
  if (json) {
    print_json(out, r, broker);
  } else {
    print_table(out, r, broker);
  }
  fflush(out);
}
