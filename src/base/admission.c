#include "base/admission.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/addr.h"
#include "natter.h"

typedef struct nt_source {
  uint8_t ip[16]; /* the key */
  size_t iplen;
  unsigned count;
  LIST_ENTRY(nt_source) link;
} nt_source;

void nt_sources_init(nt_sources *s, const uint8_t seed[NT_HASHMAP_SEED_LEN]) {
  nt_hashmap_init(&s->map, seed);
  LIST_INIT(&s->all);
}

void nt_sources_clear(nt_sources *s) {
  nt_source *src;
  while ((src = LIST_FIRST(&s->all))) {
    LIST_REMOVE(src, link);
    free(src);
  }
  nt_hashmap_clear(&s->map);
}

static const uint8_t *ip_of(const struct sockaddr *sa, size_t *len) {
  return nt_addr_raw(sa, len);
}

unsigned nt_sources_count(const nt_sources *s, const struct sockaddr *sa) {
  size_t len;
  const uint8_t *ip = ip_of(sa, &len);
  nt_source *src = ip ? nt_hashmap_get(&s->map, ip, len) : NULL;
  return src ? src->count : 0;
}

int nt_sources_add(nt_sources *s, const struct sockaddr *sa) {
  size_t len;
  const uint8_t *ip = ip_of(sa, &len);
  if (!ip) {
    return NATTER_ERR_INVALID;
  }
  nt_source *src = nt_hashmap_get(&s->map, ip, len);
  if (!src) {
    src = calloc(1, sizeof(*src));
    if (!src) {
      return NATTER_ERR_NOMEM;
    }
    memcpy(src->ip, ip, len);
    src->iplen = len;
    if (nt_hashmap_put(&s->map, src->ip, len, src) != 0) {
      free(src);
      return NATTER_ERR_NOMEM;
    }
    LIST_INSERT_HEAD(&s->all, src, link);
  }
  src->count++;
  return 0;
}

void nt_sources_remove(nt_sources *s, const struct sockaddr *sa) {
  size_t len;
  const uint8_t *ip = ip_of(sa, &len);
  nt_source *src = ip ? nt_hashmap_get(&s->map, ip, len) : NULL;
  if (!src) {
    return;
  }
  if (--src->count == 0) {
    nt_hashmap_remove(&s->map, src->ip, src->iplen);
    LIST_REMOVE(src, link);
    free(src);
  }
}

size_t nt_sources_addresses(const nt_sources *s) {
  return nt_hashmap_count(&s->map);
}

void nt_rate_init(nt_rate *r, unsigned burst, uint64_t now_ns) {
  r->tokens = burst;
  r->last_ns = now_ns;
}

int nt_rate_take(nt_rate *r, unsigned rate, unsigned burst, uint64_t now_ns) {
  if (now_ns > r->last_ns) {
    r->tokens += (double)(now_ns - r->last_ns) * rate / 1e9;
    if (r->tokens > burst) {
      r->tokens = burst;
    }
    r->last_ns = now_ns;
  }
  if (r->tokens < 1.0) {
    return 0;
  }
  r->tokens -= 1.0;
  return 1;
}

int nt_candidate_acceptable(const struct sockaddr *cand, int allow_loopback) {
  if ((cand->sa_family != AF_INET && cand->sa_family != AF_INET6) ||
      nt_addr_port(cand) == 0) {
    return 0;
  }
  if (nt_addr_is_loopback(cand)) {
    return allow_loopback;
  }
  if (cand->sa_family == AF_INET) {
    uint32_t a = ntohl(((const struct sockaddr_in *)cand)->sin_addr.s_addr);
    return a != INADDR_ANY && a != INADDR_BROADCAST &&
           (a >> 28) != 0xe &&       /* 224.0.0.0/4 multicast */
           (a >> 24) != 0 &&         /* 0.0.0.0/8 "this network" */
           (a >> 16) != 0xa9fe;      /* 169.254.0.0/16 link-local */
  }
  const struct in6_addr *a6 = &((const struct sockaddr_in6 *)cand)->sin6_addr;
  return !IN6_IS_ADDR_UNSPECIFIED(a6) && !IN6_IS_ADDR_MULTICAST(a6) &&
         !IN6_IS_ADDR_LINKLOCAL(a6) && !IN6_IS_ADDR_V4MAPPED(a6);
}
