#include "codec/upnp.h"

#include <stdio.h>
#include <string.h>

static int lower(int c) {
  return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int prefix_nocase(const char *p, size_t len, const char *word) {
  size_t n = strlen(word);
  if (len < n) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (lower((unsigned char)p[i]) != lower((unsigned char)word[i])) {
      return 0;
    }
  }
  return 1;
}

static int equal_nocase(const char *p, size_t len, const char *word) {
  return len == strlen(word) && prefix_nocase(p, len, word);
}

/* Trims spaces and tabs on both ends of [*p, *p + *len). */
static void trim(const char **p, size_t *len) {
  while (*len && (**p == ' ' || **p == '\t')) {
    (*p)++;
    (*len)--;
  }
  while (*len && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t')) {
    (*len)--;
  }
}

/* The next line of [*p, end), without its CRLF (or LF); 0 at the end or
 * for a line that does not end (a truncated answer). */
static int next_line(const char **p, const char *end, const char **line,
                     size_t *len) {
  const char *nl = *p < end ? memchr(*p, '\n', (size_t)(end - *p)) : NULL;
  if (!nl) {
    return 0;
  }
  *line = *p;
  *len = (size_t)(nl - *p);
  if (*len && (*line)[*len - 1] == '\r') {
    (*len)--;
  }
  *p = nl + 1;
  return 1;
}

/* Splits a header line "Name: value" (value trimmed). */
static int header_split(const char *line, size_t len, const char **name,
                        size_t *nlen, const char **value, size_t *vlen) {
  const char *colon = memchr(line, ':', len);
  if (!colon || colon == line) {
    return 0;
  }
  *name = line;
  *nlen = (size_t)(colon - line);
  *value = colon + 1;
  *vlen = len - *nlen - 1;
  trim(value, vlen);
  return 1;
}

size_t nt_ssdp_encode_search(char *buf, size_t cap, const char *st) {
  int n = snprintf(buf, cap,
                   "M-SEARCH * HTTP/1.1\r\n"
                   "HOST: " NT_SSDP_GROUP ":%d\r\n"
                   "MAN: \"ssdp:discover\"\r\n"
                   "MX: 1\r\n"
                   "ST: %s\r\n"
                   "\r\n",
                   NT_SSDP_PORT, st);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* "HTTP/1.x 200 ..." */
static int status_line(const char *line, size_t len, int *status) {
  if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 ||
      (line[7] != '0' && line[7] != '1') || line[8] != ' ') {
    return 0;
  }
  const char *s = line + 9;
  if (s[0] < '1' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
      s[2] > '9' || (len > 12 && s[3] != ' ')) {
    return 0;
  }
  *status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  return 1;
}

int nt_ssdp_parse_answer(const char *buf, size_t len, char *location) {
  const char *p = buf, *end = buf + len, *line, *name, *value;
  size_t llen, nlen, vlen;
  int status, st_ok = 0, have_loc = 0;
  location[0] = '\0';
  if (len > NT_SSDP_MAX_LEN || !next_line(&p, end, &line, &llen) ||
      !status_line(line, llen, &status) || status != 200) {
    return 0;
  }
  while (next_line(&p, end, &line, &llen) && llen) {
    if (!header_split(line, llen, &name, &nlen, &value, &vlen)) {
      continue; /* not a header: ignored, as a browser would */
    }
    if (equal_nocase(name, nlen, "ST")) {
      st_ok = equal_nocase(value, vlen, NT_UPNP_IGD1) ||
              equal_nocase(value, vlen, NT_UPNP_IGD2);
    } else if (equal_nocase(name, nlen, "LOCATION")) {
      if (have_loc || vlen == 0 || vlen >= NT_UPNP_URL_MAX) {
        location[0] = '\0';
        return 0; /* two, or too long: which one would be meant? */
      }
      for (size_t i = 0; i < vlen; i++) {
        if (value[i] <= ' ' || value[i] >= 0x7f) {
          return 0; /* a URL has no spaces, controls or bytes over 0x7e */
        }
      }
      memcpy(location, value, vlen);
      location[vlen] = '\0';
      have_loc = 1;
    }
  }
  if (!st_ok || !have_loc) {
    location[0] = '\0';
    return 0;
  }
  return 1;
}

/* A path character we accept: printable, no space, quote, angle bracket
 * or backslash (it goes into a request line as it is). */
static int path_char(int c) {
  return c > ' ' && c < 0x7f && c != '"' && c != '<' && c != '>' && c != '\\';
}

/* A dotted quad, exactly: four decimal parts 0..255, no leading zeros. */
static int dotted_quad(const char *p, size_t len, uint8_t ip[4]) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    unsigned v = 0, digits = 0;
    if (part) {
      if (i >= len || p[i] != '.') {
        return 0;
      }
      i++;
    }
    while (i < len && p[i] >= '0' && p[i] <= '9' && digits < 4) {
      v = v * 10 + (unsigned)(p[i] - '0');
      digits++;
      i++;
    }
    if (digits == 0 || digits > 3 || v > 255 ||
        (digits > 1 && p[i - digits] == '0')) {
      return 0;
    }
    ip[part] = (uint8_t)v;
  }
  return i == len;
}

int nt_upnp_url_parse(const char *text, size_t len, nt_upnp_url *out) {
  memset(out, 0, sizeof(*out));
  if (len >= NT_UPNP_URL_MAX || !prefix_nocase(text, len, "http://")) {
    return 0;
  }
  const char *p = text + 7, *end = text + len;
  const char *host = p;
  while (p < end && *p != ':' && *p != '/') {
    p++;
  }
  if (!dotted_quad(host, (size_t)(p - host), out->ip)) {
    return 0;
  }
  out->port = 80;
  if (p < end && *p == ':') {
    unsigned v = 0, digits = 0;
    p++;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) {
      v = v * 10 + (unsigned)(*p - '0');
      digits++;
      p++;
    }
    if (digits == 0 || v == 0 || v > 65535) {
      return 0;
    }
    out->port = (uint16_t)v;
  }
  if (p == end) {
    memcpy(out->path, "/", 2);
    return 1;
  }
  if (*p != '/') {
    return 0;
  }
  size_t plen = (size_t)(end - p);
  for (size_t i = 0; i < plen; i++) {
    if (!path_char((unsigned char)p[i])) {
      return 0;
    }
  }
  memcpy(out->path, p, plen);
  out->path[plen] = '\0';
  return 1;
}

int nt_upnp_url_at(const nt_upnp_url *u, const uint8_t gw[4]) {
  return memcmp(u->ip, gw, 4) == 0;
}

/* ---- the tag scanner ---- */

/* An element found: its content [start, start + len). */
typedef struct elem {
  const char *start;
  size_t len;
  const char *after; /* past its end tag (or the empty tag) */
} elem;

/* The local name of the tag at |p| (just past '<'): [*name, *nlen). */
static const char *tag_name(const char *p, const char *end, const char **name,
                            size_t *nlen) {
  const char *s = p;
  while (p < end && *p != ' ' && *p != '>' && *p != '/' && *p != '\t' &&
         *p != '\r' && *p != '\n') {
    p++;
  }
  const char *local = s;
  for (const char *q = s; q < p; q++) {
    if (*q == ':') {
      local = q + 1;
    }
  }
  *name = local;
  *nlen = (size_t)(p - local);
  return p;
}

/* The first element named |want| (local name) in [p, end) at any depth;
 * its content ends at the first end tag of the same local name (no
 * nesting of the same name in what we read). Returns 1, else 0. */
static int find_elem(const char *p, const char *end, const char *want,
                     elem *out) {
  size_t wlen = strlen(want);
  while (p < end) {
    const char *lt = memchr(p, '<', (size_t)(end - p));
    if (!lt || lt + 1 >= end) {
      return 0;
    }
    p = lt + 1;
    if (*p == '/' || *p == '?' || *p == '!') {
      continue;
    }
    const char *name;
    size_t nlen;
    const char *q = tag_name(p, end, &name, &nlen);
    const char *gt = q < end ? memchr(q, '>', (size_t)(end - q)) : NULL;
    if (!gt) {
      return 0;
    }
    if (nlen != wlen || memcmp(name, want, wlen) != 0) {
      p = gt + 1;
      continue;
    }
    if (gt[-1] == '/') { /* <name/> */
      out->start = gt;
      out->len = 0;
      out->after = gt + 1;
      return 1;
    }
    const char *c = gt + 1;
    for (const char *s = c; s < end;) {
      const char *e = memchr(s, '<', (size_t)(end - s));
      if (!e || e + 1 >= end) {
        return 0;
      }
      if (e[1] == '/') {
        const char *ename;
        size_t elen;
        const char *eq = tag_name(e + 2, end, &ename, &elen);
        if (elen == wlen && memcmp(ename, want, wlen) == 0 && eq < end &&
            *eq == '>') {
          out->start = c;
          out->len = (size_t)(e - c);
          out->after = eq + 1;
          return 1;
        }
      }
      s = e + 1;
    }
    return 0;
  }
  return 0;
}

/* An element's text, trimmed of white space. */
static void elem_text(const elem *e, const char **p, size_t *len) {
  *p = e->start;
  *len = e->len;
  while (*len && (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')) {
    (*p)++;
    (*len)--;
  }
  while (*len && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t' ||
                  (*p)[*len - 1] == '\r' || (*p)[*len - 1] == '\n')) {
    (*len)--;
  }
}

static const char *const conn_types[] = {
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
};

/* Resolves |rel| against |base| (a relative URL keeps host and port). */
static int resolve(const char *rel, size_t len, const nt_upnp_url *base,
                   nt_upnp_url *out) {
  if (prefix_nocase(rel, len, "http://")) {
    return nt_upnp_url_parse(rel, len, out);
  }
  if (len == 0 || len + 2 > NT_UPNP_URL_MAX) {
    return 0;
  }
  *out = *base;
  size_t at = 0;
  if (rel[0] != '/') {
    out->path[at++] = '/';
  }
  for (size_t i = 0; i < len; i++) {
    if (!path_char((unsigned char)rel[i])) {
      return 0;
    }
    out->path[at++] = rel[i];
  }
  out->path[at] = '\0';
  return 1;
}

int nt_upnp_find_control(const char *xml, size_t len,
                         const nt_upnp_url *location, nt_upnp_url *control,
                         char *type) {
  const char *end = xml + len, *p = xml, *t;
  size_t tlen;
  nt_upnp_url base = *location;
  elem e, svc;
  memset(control, 0, sizeof(*control));
  type[0] = '\0';
  if (len > NT_HTTP_RESPONSE_MAX) {
    return 0;
  }
  if (find_elem(xml, end, "URLBase", &e)) {
    elem_text(&e, &t, &tlen);
    if (tlen && !nt_upnp_url_parse(t, tlen, &base)) {
      return 0; /* a base we cannot read: its relative URLs neither */
    }
  }
  while (find_elem(p, end, "service", &svc)) {
    const char *s_end = svc.start + svc.len;
    p = svc.after;
    if (!find_elem(svc.start, s_end, "serviceType", &e)) {
      continue;
    }
    elem_text(&e, &t, &tlen);
    int known = 0;
    for (size_t i = 0; i < sizeof(conn_types) / sizeof(conn_types[0]); i++) {
      known |= equal_nocase(t, tlen, conn_types[i]);
    }
    if (!known || tlen >= NT_UPNP_TYPE_MAX) {
      continue;
    }
    memcpy(type, t, tlen);
    type[tlen] = '\0';
    if (!find_elem(svc.start, s_end, "controlURL", &e)) {
      break;
    }
    elem_text(&e, &t, &tlen);
    if (resolve(t, tlen, &base, control)) {
      return 1;
    }
    break; /* the service we would use has a URL we cannot use */
  }
  memset(control, 0, sizeof(*control));
  type[0] = '\0';
  return 0;
}

static int host_port(char *buf, size_t cap, const nt_upnp_url *u) {
  return snprintf(buf, cap, "%u.%u.%u.%u:%u", u->ip[0], u->ip[1], u->ip[2],
                  u->ip[3], u->port);
}

size_t nt_upnp_encode_get(char *buf, size_t cap, const nt_upnp_url *u) {
  char hp[32];
  host_port(hp, sizeof(hp), u);
  int n = snprintf(buf, cap,
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "Connection: close\r\n"
                   "\r\n",
                   u->path, hp);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t nt_upnp_encode_soap(char *buf, size_t cap, const nt_upnp_url *control,
                           const char *type, const char *action,
                           const char *const *names, const char *const *values,
                           size_t nargs) {
  char body[NT_UPNP_REQUEST_MAX], hp[32];
  int n = snprintf(body, sizeof(body),
                   "<?xml version=\"1.0\"?>\r\n"
                   "<s:Envelope "
                   "xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
                   "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/"
                   "encoding/\"><s:Body><u:%s xmlns:u=\"%s\">",
                   action, type);
  if (n <= 0 || (size_t)n >= sizeof(body)) {
    return 0;
  }
  size_t blen = (size_t)n;
  for (size_t i = 0; i < nargs; i++) {
    n = snprintf(body + blen, sizeof(body) - blen, "<%s>%s</%s>", names[i],
                 values[i], names[i]);
    if (n <= 0 || (size_t)n >= sizeof(body) - blen) {
      return 0;
    }
    blen += (size_t)n;
  }
  n = snprintf(body + blen, sizeof(body) - blen,
               "</u:%s></s:Body></s:Envelope>\r\n", action);
  if (n <= 0 || (size_t)n >= sizeof(body) - blen) {
    return 0;
  }
  blen += (size_t)n;
  host_port(hp, sizeof(hp), control);
  n = snprintf(buf, cap,
               "POST %s HTTP/1.1\r\n"
               "Host: %s\r\n"
               "Content-Type: text/xml; charset=\"utf-8\"\r\n"
               "SOAPAction: \"%s#%s\"\r\n"
               "Content-Length: %zu\r\n"
               "Connection: close\r\n"
               "\r\n"
               "%s",
               control->path, hp, type, action, blen, body);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* A decimal or hex number, bounded. */
static int number(const char *p, size_t len, int base, size_t max,
                  size_t *out) {
  size_t v = 0;
  if (len == 0 || len > 8) {
    return 0;
  }
  for (size_t i = 0; i < len; i++) {
    int c = lower((unsigned char)p[i]), d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return 0;
    }
    v = v * (size_t)base + (size_t)d;
  }
  if (v > max) {
    return 0;
  }
  *out = v;
  return 1;
}

/* Walks a chunked body in [p, end): 0 more needed, -1 bad, 1 complete,
 * with the decoded length in |*out_len|; when |dst| is not NULL the data
 * is copied there (it may overlap |p|: it only moves left). */
static int chunks(const char *p, const char *end, char *dst, size_t *out_len) {
  size_t total = 0;
  for (;;) {
    const char *line;
    size_t llen, size;
    if (!next_line(&p, end, &line, &llen)) {
      return (size_t)(end - p) > 32 ? -1 : 0;
    }
    const char *semi = memchr(line, ';', llen); /* extensions ignored */
    if (semi) {
      llen = (size_t)(semi - line);
    }
    trim(&line, &llen);
    if (!number(line, llen, 16, NT_HTTP_RESPONSE_MAX, &size)) {
      return -1;
    }
    if (size == 0) {
      *out_len = total; /* trailers are not read: we have the body */
      return 1;
    }
    if ((size_t)(end - p) < size + 2) {
      return 0;
    }
    if (p[size] != '\r' || p[size + 1] != '\n') {
      return -1;
    }
    if (dst) {
      memmove(dst + total, p, size);
    }
    total += size;
    p += size + 2;
  }
}

int nt_http_parse_response(char *buf, size_t len, int eof, int *status,
                           char **body, size_t *body_len) {
  const char *p = buf, *end = buf + len, *line, *name, *value;
  size_t llen, nlen, vlen, clen = 0;
  int have_clen = 0, chunked = 0;
  *status = 0;
  *body = NULL;
  *body_len = 0;
  if (len > NT_HTTP_RESPONSE_MAX) {
    return -1;
  }
  /* The end of the headers first: nothing is read before it is there. */
  const char *hend = NULL;
  const char *hlimit =
      len < NT_HTTP_HEADER_MAX ? end : buf + NT_HTTP_HEADER_MAX;
  for (const char *q = buf; q + 1 < hlimit; q++) {
    if (q[0] == '\n' && q[1] == '\n') {
      hend = q + 2;
      break;
    }
    if (q + 3 < hlimit && memcmp(q, "\r\n\r\n", 4) == 0) {
      hend = q + 4;
      break;
    }
  }
  if (!hend) {
    return len >= NT_HTTP_HEADER_MAX || eof ? -1 : 0;
  }
  if (!next_line(&p, hend, &line, &llen) || !status_line(line, llen, status)) {
    return -1;
  }
  while (next_line(&p, hend, &line, &llen) && llen) {
    if (!header_split(line, llen, &name, &nlen, &value, &vlen)) {
      return -1;
    }
    if (equal_nocase(name, nlen, "Content-Length")) {
      size_t v;
      if (have_clen || !number(value, vlen, 10, NT_HTTP_RESPONSE_MAX, &v)) {
        return -1;
      }
      clen = v;
      have_clen = 1;
    } else if (equal_nocase(name, nlen, "Transfer-Encoding")) {
      if (!equal_nocase(value, vlen, "chunked")) {
        return -1;
      }
      chunked = 1;
    }
  }
  char *b = buf + (hend - buf);
  size_t avail = (size_t)(end - hend);
  if (chunked) {
    size_t n;
    int r = chunks(b, end, NULL, &n);
    if (r == 0) {
      return eof ? -1 : 0;
    }
    if (r < 0) {
      return -1;
    }
    chunks(b, end, b, &n);
    *body = b;
    *body_len = n;
    return 1;
  }
  if (have_clen) {
    if (avail < clen) {
      return eof ? -1 : 0;
    }
    *body = b;
    *body_len = clen;
    return 1;
  }
  if (!eof) {
    return 0;
  }
  *body = b;
  *body_len = avail;
  return 1;
}

int nt_upnp_soap_result(int status, const char *body, size_t len,
                        const char *action, const char *field, char *value) {
  char want[NT_UPNP_TYPE_MAX];
  const char *end = body + len, *t;
  size_t tlen;
  elem e, resp;
  if (value) {
    value[0] = '\0';
  }
  if (!body || len > NT_HTTP_RESPONSE_MAX) {
    return NT_UPNP_SOAP_BAD;
  }
  if (status == 500) {
    size_t code;
    if (!find_elem(body, end, "UPnPError", &e) ||
        !find_elem(e.start, e.start + e.len, "errorCode", &e)) {
      return NT_UPNP_SOAP_BAD;
    }
    elem_text(&e, &t, &tlen);
    if (!number(t, tlen, 10, 999, &code) || code == 0) {
      return NT_UPNP_SOAP_BAD;
    }
    return (int)code;
  }
  int n = snprintf(want, sizeof(want), "%sResponse", action);
  if (status != 200 || n <= 0 || (size_t)n >= sizeof(want) ||
      !find_elem(body, end, want, &resp)) {
    return NT_UPNP_SOAP_BAD;
  }
  if (!field) {
    return NT_UPNP_SOAP_OK;
  }
  if (!find_elem(resp.start, resp.start + resp.len, field, &e)) {
    return NT_UPNP_SOAP_OK; /* absent: "" */
  }
  elem_text(&e, &t, &tlen);
  if (tlen >= NT_UPNP_VALUE_MAX) {
    return NT_UPNP_SOAP_BAD;
  }
  for (size_t i = 0; i < tlen; i++) {
    if (t[i] < ' ' || t[i] > '~') {
      return NT_UPNP_SOAP_BAD;
    }
  }
  memcpy(value, t, tlen);
  value[tlen] = '\0';
  return NT_UPNP_SOAP_OK;
}
