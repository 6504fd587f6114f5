/* The brokers of one network (broker_list.h). */
#include "client/broker_list.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "natter.h"

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

int nt_broker_list_split(const char *item, char *host, size_t hostlen,
                         char *port, size_t portlen, char *err, size_t errlen) {
  const char *h = item, *p;
  size_t n;

  if (item[0] == '[') {
    const char *end = strchr(item, ']');
    if (!end || end[1] != ':') {
      snprintf(err, errlen,
               "bad broker address \"%.80s\": expected [IPV6]:PORT", item);
      return NATTER_ERR_INVALID;
    }
    h = item + 1;
    n = (size_t)(end - h);
    p = end + 2;
  } else {
    const char *colon = strrchr(item, ':');
    if (!colon) {
      snprintf(err, errlen, "bad broker address \"%.80s\": expected HOST:PORT",
               item);
      return NATTER_ERR_INVALID;
    }
    n = (size_t)(colon - item);
    p = colon + 1;
  }
  if (n >= hostlen) {
    snprintf(err, errlen, "bad broker address: host name too long");
    return NATTER_ERR_INVALID;
  }
  memcpy(host, h, n);
  host[n] = '\0';
  if (n == 0) {
    snprintf(host, hostlen, "127.0.0.1");
  }
  char *end;
  long v = strtol(p, &end, 10);
  if (*p < '0' || *p > '9' || *end != '\0' || v < 1 || v > 65535 ||
      strlen(p) >= portlen) {
    snprintf(err, errlen, "bad broker address \"%.80s\": port must be 1..65535",
             item);
    return NATTER_ERR_INVALID;
  }
  snprintf(port, portlen, "%s", p);
  return 0;
}

int nt_broker_list_add(nt_broker_list *out, const struct sockaddr *sa,
                       size_t salen) {
  nt_addr a;

  if (salen > sizeof(a.ss)) {
    return 0;
  }
  memset(&a, 0, sizeof(a));
  memcpy(&a.ss, sa, salen);
  a.len = (socklen_t)salen;
  for (size_t i = 0; i < out->n; i++) {
    if (nt_addr_equal((struct sockaddr *)&out->addr[i].ss,
                      (struct sockaddr *)&a.ss)) {
      return 0; /* listed already */
    }
  }
  if (out->n == NT_BROKERS_MAX) {
    return -1;
  }
  out->addr[out->n++] = a;
  return 0;
}

/* Appends every address of |item| not listed yet. */
static int resolve_item(nt_broker_list *out, const char *item, char *err,
                        size_t errlen) {
  char host[256], port[8];
  struct addrinfo hints, *res = NULL, *ai;
  int rv = nt_broker_list_split(item, host, sizeof(host), port, sizeof(port),
                                err, errlen);

  if (rv != 0) {
    return rv;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  rv = getaddrinfo(host, port, &hints, &res);
  if (rv != 0 || !res) {
    snprintf(err, errlen, "cannot resolve broker \"%.80s\": %s", host,
             rv ? gai_strerror(rv) : "no address");
    if (res) {
      freeaddrinfo(res);
    }
    return NATTER_ERR_RESOLVE;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    if (nt_broker_list_add(out, ai->ai_addr, ai->ai_addrlen) != 0) {
      freeaddrinfo(res);
      snprintf(err, errlen,
               "more than %d broker addresses (\"%.80s\" adds more): a "
               "network is at most %d brokers",
               NT_BROKERS_MAX, item, NT_BROKERS_MAX);
      return NATTER_ERR_INVALID;
    }
  }
  freeaddrinfo(res);
  return 0;
}

int nt_broker_list_parse(nt_broker_list *out, const char *text, char *norm,
                         size_t normlen, char *err, size_t errlen) {
  char item[NT_BROKER_LIST_TEXT_MAX + 1];
  size_t len = strlen(text), pos = 0, used = 0;

  memset(out, 0, sizeof(*out));
  if (normlen == 0) {
    return NATTER_ERR_INVALID;
  }
  norm[0] = '\0';
  if (len > NT_BROKER_LIST_TEXT_MAX) {
    snprintf(err, errlen, "the broker list is longer than %d bytes",
             NT_BROKER_LIST_TEXT_MAX);
    return NATTER_ERR_INVALID;
  }
  for (;;) {
    const char *comma = memchr(text + pos, ',', len - pos);
    size_t b = pos, e = comma ? (size_t)(comma - text) : len;
    while (b < e && is_blank(text[b])) {
      b++;
    }
    while (e > b && is_blank(text[e - 1])) {
      e--;
    }
    if (b == e) {
      snprintf(err, errlen, "bad broker list \"%.80s\": an empty item", text);
      return NATTER_ERR_INVALID;
    }
    memcpy(item, text + b, e - b);
    item[e - b] = '\0';
    int rv = resolve_item(out, item, err, errlen);
    if (rv != 0) {
      return rv;
    }
    if (used + (e - b) + 2 > normlen) {
      snprintf(err, errlen, "the broker list is too long");
      return NATTER_ERR_INVALID;
    }
    if (used) {
      norm[used++] = ',';
    }
    memcpy(norm + used, item, e - b);
    used += e - b;
    norm[used] = '\0';
    if (!comma) {
      break;
    }
    pos = (size_t)(comma - text) + 1;
  }
  return 0;
}
