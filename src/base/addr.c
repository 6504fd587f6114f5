#include "base/addr.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natter.h"

int nt_addr_parse(nt_addr *addr, const char *text, const char *any_host,
                  char *err, size_t errlen) {
  char host[256];
  const char *colon, *port, *h = text;
  size_t hostlen;
  struct addrinfo hints, *res = NULL;
  int rv;

  if (text[0] == '[') {
    const char *end = strchr(text, ']');
    if (!end || end[1] != ':') {
      snprintf(err, errlen, "bad address \"%s\": expected [IPV6]:PORT", text);
      return NATTER_ERR_INVALID;
    }
    h = text + 1;
    hostlen = (size_t)(end - h);
    port = end + 2;
  } else {
    colon = strrchr(text, ':');
    if (!colon) {
      snprintf(err, errlen, "bad address \"%s\": expected HOST:PORT", text);
      return NATTER_ERR_INVALID;
    }
    hostlen = (size_t)(colon - text);
    port = colon + 1;
  }
  if (hostlen >= sizeof(host)) {
    snprintf(err, errlen, "bad address: host name too long");
    return NATTER_ERR_INVALID;
  }
  memcpy(host, h, hostlen);
  host[hostlen] = '\0';
  if (hostlen == 0) {
    snprintf(host, sizeof(host), "%s", any_host);
  }
  char *end;
  long p = strtol(port, &end, 10);
  if (*port == '\0' || *end != '\0' || p < 0 || p > 65535 || port[0] == '+' ||
      port[0] == '-') {
    snprintf(err, errlen, "bad address \"%s\": port must be 0..65535", text);
    return NATTER_ERR_INVALID;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  rv = getaddrinfo(host, port, &hints, &res);
  if (rv != 0 || !res) {
    snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
             rv ? gai_strerror(rv) : "no address");
    return NATTER_ERR_RESOLVE;
  }
  memset(addr, 0, sizeof(*addr));
  memcpy(&addr->ss, res->ai_addr, res->ai_addrlen);
  addr->len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

const char *nt_addr_str(const struct sockaddr *sa, char *out) {
  char ip[INET6_ADDRSTRLEN];

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
    snprintf(out, NT_ADDR_STRLEN, "%s:%u", ip, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
    snprintf(out, NT_ADDR_STRLEN, "[%s]:%u", ip, ntohs(in6->sin6_port));
  } else {
    snprintf(out, NT_ADDR_STRLEN, "(unknown address)");
  }
  return out;
}

int nt_addr_equal(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family) {
    return 0;
  }
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a;
    const struct sockaddr_in *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return 0;
}

int nt_addr_same_host(const struct sockaddr *a, const struct sockaddr *b) {
  size_t alen, blen;
  const uint8_t *x = nt_addr_raw(a, &alen), *y = nt_addr_raw(b, &blen);
  return x && y && alen == blen && memcmp(x, y, alen) == 0;
}

uint16_t nt_addr_port(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  }
  if (sa->sa_family == AF_INET6) {
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  }
  return 0;
}

void nt_addr_set_port(struct sockaddr *sa, uint16_t port) {
  if (sa->sa_family == AF_INET) {
    ((struct sockaddr_in *)sa)->sin_port = htons(port);
  } else if (sa->sa_family == AF_INET6) {
    ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
  }
}

int nt_addr_from_raw(nt_addr *addr, const uint8_t *ip, size_t iplen,
                     uint16_t port) {
  memset(addr, 0, sizeof(*addr));
  if (port == 0) {
    return -1;
  }
  if (iplen == 4) {
    struct sockaddr_in *in = (struct sockaddr_in *)&addr->ss;
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, ip, 4);
    in->sin_port = htons(port);
    addr->len = sizeof(*in);
    return 0;
  }
  if (iplen == 16) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr->ss;
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, ip, 16);
    in6->sin6_port = htons(port);
    addr->len = sizeof(*in6);
    return 0;
  }
  return -1;
}

const uint8_t *nt_addr_raw(const struct sockaddr *sa, size_t *iplen) {
  if (sa->sa_family == AF_INET) {
    *iplen = 4;
    return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
  }
  if (sa->sa_family == AF_INET6) {
    *iplen = 16;
    return (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  }
  *iplen = 0;
  return NULL;
}

int nt_addr_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return 0;
}

int nt_addr_is_own(const struct sockaddr *sa) {
  struct ifaddrs *all, *ifa;
  int own = 0;

  if (nt_addr_is_loopback(sa)) {
    return 1;
  }
  if (getifaddrs(&all) != 0) {
    return 0;
  }
  for (ifa = all; ifa && !own; ifa = ifa->ifa_next) {
    own = ifa->ifa_addr && ifa->ifa_addr->sa_family == sa->sa_family &&
          nt_addr_same_host(ifa->ifa_addr, sa);
  }
  freeifaddrs(all);
  return own;
}

void nt_addr_unmap(struct sockaddr_storage *ss, socklen_t *len) {
  const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
  if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
    return;
  }
  struct sockaddr_in in;
  memset(&in, 0, sizeof(in));
  in.sin_family = AF_INET;
  in.sin_port = in6->sin6_port;
  memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
  memset(ss, 0, sizeof(*ss));
  memcpy(ss, &in, sizeof(in));
  *len = sizeof(in);
}

socklen_t nt_addr_for_socket(int sock_family, int sock_v6only,
                             const struct sockaddr *sa,
                             struct sockaddr_storage *out) {
  socklen_t len;
  memset(out, 0, sizeof(*out));
  if (sa->sa_family == AF_INET6) {
    len = sizeof(struct sockaddr_in6);
    memcpy(out, sa, len);
    if (sock_family == AF_INET6) {
      return len;
    }
    /* An IPv4 socket can still reach a v4-mapped address. */
    nt_addr_unmap(out, &len);
    return out->ss_family == sock_family ? len : 0;
  }
  if (sa->sa_family != AF_INET) {
    return 0;
  }
  if (sock_family == AF_INET) {
    memcpy(out, sa, sizeof(struct sockaddr_in));
    return sizeof(struct sockaddr_in);
  }
  if (sock_family != AF_INET6 || sock_v6only) {
    return 0;
  }
  const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
  in6->sin6_family = AF_INET6;
  in6->sin6_port = in->sin_port;
  in6->sin6_addr.s6_addr[10] = 0xff;
  in6->sin6_addr.s6_addr[11] = 0xff;
  memcpy(&in6->sin6_addr.s6_addr[12], &in->sin_addr, 4);
  return sizeof(*in6);
}
