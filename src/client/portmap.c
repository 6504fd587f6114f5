#include "client/portmap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/budget.h"
#include "client/path.h"
#include "client/upnp.h"
#include "codec/portmap.h"
#include "natter.h"
#include "trust/tls.h"

enum { ASKING = 1, MAPPED, RENEWING, GAVE_UP };

#define STR_(x) #x
#define STR(x) STR_(x)

struct nt_portmap {
  nt_portmap_env env;
  struct event *ev;
  nt_addr gw; /* gateway:5351 */
  uint8_t gw_ip[4];
  uint8_t local_ip[4]; /* ours, as the gateway sees us */
  uint16_t port;       /* our UDP port (internal) */
  uint8_t nonce[NT_PCP_NONCE_LEN];
  int state;
  int method;           /* being asked, or that made the mapping */
  int natpmp_have_addr; /* NAT-PMP: the external address is known */
  uint8_t natpmp_ip[4];
  unsigned tries;
  nt_addr external; /* len 0: none */
  uint32_t lifetime_s;
  uint64_t expires_ns; /* when the mapping we hold runs out */
  int have_epoch;      /* the gateway's epoch, seen at epoch_ns */
  uint32_t epoch;
  uint64_t epoch_ns;
  /* PCP or NAT-PMP answered (even refusing): UPnP is not tried then. */
  int answered;
  nt_upnp *upnp; /* UPnP asked (client/upnp.h) */
  /* Answers whose claims we refuse are logged at most once a second:
   * anyone on the LAN can send them from the gateway's address. */
  nt_log_gate refused_log;
};

/* Reads /proc/net/route (bounded) for the IPv4 default gateway. */
static int default_gateway(uint8_t gw[4]) {
  char *buf = malloc(NT_ROUTE_TEXT_MAX);
  if (!buf) {
    return 0;
  }
  int fd = open("/proc/net/route", O_RDONLY | O_CLOEXEC);
  size_t len = 0;
  if (fd >= 0) {
    ssize_t n;
    while (len < NT_ROUTE_TEXT_MAX &&
           (n = read(fd, buf + len, NT_ROUTE_TEXT_MAX - len)) > 0) {
      len += (size_t)n;
    }
    close(fd);
  }
  int ok = len > 0 && nt_route_default_gateway(buf, len, gw);
  free(buf);
  return ok;
}

/* Our address toward the gateway: the source the kernel picks (PCP wants
 * it in the request, and miniupnpd's secure mode compares it). */
static int local_toward(const nt_addr *gw, uint8_t ip[4]) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin;
  socklen_t sl = sizeof(sin);
  int ok = fd >= 0 &&
           connect(fd, (const struct sockaddr *)&gw->ss, gw->len) == 0 &&
           getsockname(fd, (struct sockaddr *)&sin, &sl) == 0 &&
           sin.sin_family == AF_INET;
  if (ok) {
    memcpy(ip, &sin.sin_addr, 4);
  }
  if (fd >= 0) {
    close(fd);
  }
  return ok;
}

static void send_request(nt_portmap *pm, uint32_t lifetime_s) {
  uint8_t buf[NT_PCP_MAP_LEN];
  size_t len;
  uint16_t suggest = pm->external.len
                         ? nt_addr_port((struct sockaddr *)&pm->external.ss)
                         : pm->port;
  if (pm->method == NT_PORTMAP_PCP) {
    len = nt_pcp_encode_map(buf, pm->nonce, pm->local_ip, pm->port, suggest,
                            lifetime_s);
  } else if (!pm->natpmp_have_addr) {
    len = nt_natpmp_encode_addr(buf);
  } else {
    /* RFC 6886 §3.4: a deletion names external port 0. */
    len = nt_natpmp_encode_map(buf, pm->port, lifetime_s ? suggest : 0,
                               lifetime_s);
  }
  nt_endpoint_sendto(pm->env.ep, buf, len, (struct sockaddr *)&pm->gw.ss,
                     pm->gw.len);
}

static void arm_ms(nt_portmap *pm, uint64_t ms) {
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  event_add(pm->ev, &tv);
}

static void drop(nt_portmap *pm, const char *why) {
  int had = pm->external.len != 0;
  char a[NT_ADDR_STRLEN];
  pm->state = GAVE_UP;
  event_del(pm->ev);
  if (had) {
    nt_info(pm->env.log, "port mapping %s (%s) lost: %s",
            nt_addr_str((struct sockaddr *)&pm->external.ss, a),
            nt_portmap_method_name(pm->method), why);
    memset(&pm->external, 0, sizeof(pm->external));
    if (pm->env.changed) {
      pm->env.changed(pm->env.user_data);
    }
  } else {
    nt_info(pm->env.log, "no port mapping from the gateway %s: %s",
            nt_addr_str((struct sockaddr *)&pm->gw.ss, a), why);
    if (pm->env.changed) {
      pm->env.changed(pm->env.user_data); /* settled */
    }
  }
}

/* The next protocol to ask after |pm->method| gave nothing; 0: none.
 * UPnP only when neither PCP nor NAT-PMP answered at all: a gateway that
 * speaks one of them and refuses will not map by UPnP either. */
static int next_method(nt_portmap *pm) {
  if (pm->state == ASKING && pm->method == NT_PORTMAP_PCP) {
    pm->method = NT_PORTMAP_NATPMP;
    pm->natpmp_have_addr = 0;
    pm->tries = 0;
    return 1;
  }
  if (pm->state == ASKING && pm->method == NT_PORTMAP_NATPMP && !pm->answered) {
    pm->method = NT_PORTMAP_UPNP;
    return 1;
  }
  return 0;
}

static void granted(nt_portmap *pm, const uint8_t ip[4],
                    const nt_portmap_answer *ans);

uint64_t nt_portmap_retry_ms(uint64_t now_ns, uint64_t expires_ns) {
  uint64_t left = expires_ns > now_ns ? expires_ns - now_ns : 0;
  if (left < (uint64_t)NT_PORTMAP_RETRY_MIN_S * 1000000000u) {
    return 0;
  }
  return left / 2 / 1000000u;
}

/* A renewal went unanswered (or UPnP's failed): the mapping still holds
 * until it runs out, so ask again later rather than drop it now. */
static void renewal_failed(nt_portmap *pm, const char *why) {
  uint64_t ms = nt_portmap_retry_ms(nt_monotonic_ns(), pm->expires_ns);
  if (!ms) {
    drop(pm, why);
    return;
  }
  nt_debug(pm->env.log,
           "port mapping: renewal failed (%s); trying again in "
           "%llu s",
           why, (unsigned long long)(ms / 1000));
  pm->state = MAPPED;
  arm_ms(pm, ms);
}

int nt_portmap_epoch_ok(uint32_t prev_epoch, uint64_t prev_ns, uint32_t epoch,
                        uint64_t now_ns) {
  if ((uint64_t)epoch + 1 < prev_epoch) {
    return 0;
  }
  uint64_t client = now_ns > prev_ns ? (now_ns - prev_ns) / 1000000000u : 0;
  uint64_t server = epoch > prev_epoch ? (uint64_t)(epoch - prev_epoch) : 0;
  return client + 2 >= server - server / 16 &&
         server + 2 >= client - client / 16;
}

/* What UPnP (client/upnp.c) made of asking or renewing. */
static void upnp_result(void *ud, int what, const uint8_t ip[4], uint16_t port,
                        uint32_t lease_s, const char *why) {
  nt_portmap *pm = ud;
  if (what == NT_UPNP_MAPPED) {
    nt_portmap_answer ans;
    memset(&ans, 0, sizeof(ans));
    /* A permanent lease (0) is renewed like one of ours, harmlessly. */
    ans.lifetime_s = lease_s ? lease_s : NT_PORTMAP_LIFETIME_S;
    ans.external_port = port;
    granted(pm, ip, &ans);
    if (pm->state != MAPPED) {
      drop(pm, "the UPnP gateway's mapping is not usable");
    }
    return;
  }
  if (pm->state == RENEWING) {
    renewal_failed(pm, why);
    return;
  }
  drop(pm,
       what == NT_UPNP_NO_ANSWER ? "no answer to PCP, NAT-PMP or UPnP" : why);
}

static void start_upnp(nt_portmap *pm) {
  nt_upnp_env env;
  memset(&env, 0, sizeof(env));
  env.base = pm->env.base;
  env.log = pm->env.log;
  memcpy(env.gw_ip, pm->gw_ip, 4);
  memcpy(env.local_ip, pm->local_ip, 4);
  env.port = pm->port;
  env.result = upnp_result;
  env.user_data = pm;
  nt_upnp_free(pm->upnp);
  pm->upnp = NULL;
  nt_debug(pm->env.log, "port mapping: no answer to PCP or NAT-PMP, asking "
                        "UPnP");
  if (nt_upnp_new(&pm->upnp, &env) != 0) {
    drop(pm, "no answer to PCP or NAT-PMP, and UPnP cannot be asked");
  }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  nt_portmap *pm = arg;
  (void)fd;
  (void)what;
  if (pm->state == MAPPED) { /* half the lifetime is over: renew */
    pm->state = RENEWING;
    pm->tries = 0;
    if (pm->method == NT_PORTMAP_UPNP) {
      nt_upnp_renew(pm->upnp); /* upnp_result says how it went */
      return;
    }
  }
  if ((pm->state != ASKING && pm->state != RENEWING) ||
      pm->method == NT_PORTMAP_UPNP) {
    return; /* UPnP keeps its own time */
  }
  if (pm->tries >= NT_PORTMAP_TRIES && !next_method(pm)) {
    if (pm->state == RENEWING) {
      renewal_failed(pm, "the gateway did not renew it");
      return;
    }
    drop(pm, "no answer to PCP or NAT-PMP");
    return;
  }
  if (pm->method == NT_PORTMAP_UPNP) {
    start_upnp(pm);
    return;
  }
  send_request(pm, NT_PORTMAP_LIFETIME_S);
  arm_ms(pm, (uint64_t)NT_PORTMAP_FIRST_WAIT_MS << pm->tries);
  pm->tries++;
}

/* Finds the gateway and our address toward it; 0 when there is none. */
static int find_gateway(nt_portmap *pm, uint8_t gw_ip[4], uint8_t local_ip[4],
                        nt_addr *gw) {
  return default_gateway(gw_ip) &&
         nt_addr_from_raw(gw, gw_ip, 4, NT_PORTMAP_PORT) == 0 &&
         local_toward(gw, local_ip) && nt_endpoint_reaches(pm->env.ep, AF_INET);
}

/* Starts asking |gw| afresh (a new nonce), forgetting any mapping. */
static void start(nt_portmap *pm, const uint8_t gw_ip[4],
                  const uint8_t local_ip[4], const nt_addr *gw) {
  event_del(pm->ev);
  nt_upnp_free(pm->upnp); /* deletes what it held at the old gateway */
  pm->upnp = NULL;
  pm->answered = 0;
  memcpy(pm->gw_ip, gw_ip, 4);
  memcpy(pm->local_ip, local_ip, 4);
  pm->gw = *gw;
  memset(&pm->external, 0, sizeof(pm->external));
  pm->natpmp_have_addr = 0;
  pm->have_epoch = 0;
  pm->tries = 0;
  pm->method = NT_PORTMAP_PCP;
  if (nt_random_bytes(pm->nonce, sizeof(pm->nonce)) != 0) {
    pm->state = GAVE_UP;
    return;
  }
  nt_endpoint_set_raw_source(pm->env.ep, &pm->gw);
  pm->state = ASKING;
  timer_cb(-1, 0, pm);
}

int nt_portmap_new(nt_portmap **ppm, const nt_portmap_env *env) {
  uint8_t gw_ip[4], local_ip[4];
  nt_addr gw;
  *ppm = NULL;
  nt_portmap *pm = calloc(1, sizeof(*pm));
  if (!pm) {
    return NATTER_ERR_NOMEM;
  }
  pm->env = *env;
  pm->port = nt_endpoint_port(env->ep);
  pm->ev = event_new(env->base, -1, 0, timer_cb, pm);
  if (!pm->ev) {
    free(pm);
    return NATTER_ERR_NOMEM;
  }
  pm->state = GAVE_UP;
  if (find_gateway(pm, gw_ip, local_ip, &gw)) {
    start(pm, gw_ip, local_ip, &gw);
  } else {
    nt_debug(env->log, "port mapping: no IPv4 default gateway to ask");
  }
  *ppm = pm;
  return 0;
}

void nt_portmap_recheck(nt_portmap *pm) {
  uint8_t gw_ip[4], local_ip[4];
  nt_addr gw;
  if (!pm || pm->state == ASKING || pm->state == RENEWING) {
    return;
  }
  if (!find_gateway(pm, gw_ip, local_ip, &gw)) {
    return; /* none now: what we hold stays until its renewal fails */
  }
  int moved = memcmp(gw_ip, pm->gw_ip, 4) != 0 ||
              memcmp(local_ip, pm->local_ip, 4) != 0;
  if (pm->state == MAPPED && !moved) {
    return;
  }
  int had = pm->external.len != 0;
  nt_debug(pm->env.log, "port mapping: asking the gateway again (%s)",
           moved ? "another gateway or address" : "it gave none before");
  start(pm, gw_ip, local_ip, &gw);
  if (had && pm->env.changed) {
    pm->env.changed(pm->env.user_data); /* the old one is gone */
  }
}

void nt_portmap_free(nt_portmap *pm) {
  if (!pm) {
    return;
  }
  if (pm->external.len && pm->method != NT_PORTMAP_UPNP) {
    send_request(pm, 0); /* delete it; no answer awaited */
  }
  nt_upnp_free(pm->upnp); /* deletes its mapping (bounded wait) */
  nt_addr none;
  memset(&none, 0, sizeof(none));
  nt_endpoint_set_raw_source(pm->env.ep, &none);
  event_free(pm->ev);
  free(pm);
}

int nt_portmap_answer_check(uint32_t lifetime_s, const uint8_t ip[4],
                            uint16_t port, const uint8_t local_ip[4],
                            const uint8_t gw_ip[4], nt_addr *out) {
  memset(out, 0, sizeof(*out));
  if (lifetime_s < NT_PORTMAP_MIN_LIFETIME_S) {
    return NT_PORTMAP_BAD_LIFETIME;
  }
  if (port == 0 || memcmp(ip, local_ip, 4) == 0 || memcmp(ip, gw_ip, 4) == 0 ||
      nt_addr_from_raw(out, ip, 4, port) != 0 ||
      nt_path_scope_of((struct sockaddr *)&out->ss) != NT_PATH_SCOPE_GLOBAL) {
    memset(out, 0, sizeof(*out));
    return NT_PORTMAP_BAD_ADDRESS;
  }
  return NT_PORTMAP_USABLE;
}

static void granted(nt_portmap *pm, const uint8_t ip[4],
                    const nt_portmap_answer *ans) {
  nt_addr ext;
  char a[NT_ADDR_STRLEN];
  unsigned held = 0;
  int bad = nt_portmap_answer_check(ans->lifetime_s, ip, ans->external_port,
                                    pm->local_ip, pm->gw_ip, &ext);
  if (bad != NT_PORTMAP_USABLE) {
    if (nt_log_gate_pass(&pm->refused_log, nt_monotonic_ns(), &held)) {
      nt_debug(pm->env.log,
               "port mapping: %s answer ignored: %s (%u more not logged)",
               nt_portmap_method_name(pm->method),
               bad == NT_PORTMAP_BAD_LIFETIME
                   ? "lifetime under " STR(NT_PORTMAP_MIN_LIFETIME_S) " s"
                   : "no public address of its own",
               held);
    }
    return;
  }
  pm->answered = 1;
  int changed =
      !pm->external.len || !nt_addr_equal((struct sockaddr *)&ext.ss,
                                          (struct sockaddr *)&pm->external.ss);
  pm->external = ext;
  pm->lifetime_s = ans->lifetime_s < NT_PORTMAP_LIFETIME_S
                       ? ans->lifetime_s
                       : NT_PORTMAP_LIFETIME_S;
  pm->state = MAPPED;
  pm->expires_ns = nt_monotonic_ns() + (uint64_t)pm->lifetime_s * 1000000000u;
  arm_ms(pm, (uint64_t)pm->lifetime_s * 1000 / 2);
  if (changed) {
    nt_info(pm->env.log, "the gateway maps our port at %s (%s, %u s)",
            nt_addr_str((struct sockaddr *)&ext.ss, a),
            nt_portmap_method_name(pm->method), (unsigned)pm->lifetime_s);
    if (pm->env.changed) {
      pm->env.changed(pm->env.user_data);
    }
  }
}

/* The gateway refused (a result code): the other protocol, or give up. */
static void refused(nt_portmap *pm, int result) {
  char why[64];
  pm->answered = 1;
  nt_debug(pm->env.log, "port mapping: %s result %d",
           nt_portmap_method_name(pm->method), result);
  if (next_method(pm)) {
    event_del(pm->ev);
    timer_cb(-1, 0, pm);
    return;
  }
  snprintf(why, sizeof(why), "the gateway refused (%s result %d)",
           nt_portmap_method_name(pm->method), result);
  drop(pm, why);
}

/* The epoch of an answer to us or of a PCP ANNOUNCE: when it shows that
 * the gateway lost its state while we held a mapping, that mapping is
 * gone. An answer to our renewal made it anew (logged only); on an
 * ANNOUNCE (we are MAPPED) we map again at once. */
static void epoch_seen(nt_portmap *pm, uint32_t epoch) {
  uint64_t now = nt_monotonic_ns();
  int lost = pm->have_epoch && pm->external.len &&
             !nt_portmap_epoch_ok(pm->epoch, pm->epoch_ns, epoch, now);
  uint32_t prev = pm->epoch;
  pm->have_epoch = 1;
  pm->epoch = epoch;
  pm->epoch_ns = now;
  if (!lost) {
    return;
  }
  nt_info(pm->env.log,
          "port mapping: the gateway lost its state (epoch %u after %u): "
          "mapping again",
          (unsigned)epoch, (unsigned)prev);
  if (pm->state == MAPPED) {
    event_del(pm->ev);
    timer_cb(-1, 0, pm); /* MAPPED: the renewal's request, now */
  }
}

int nt_portmap_on_datagram(nt_portmap *pm, const uint8_t *data, size_t len,
                           const struct sockaddr *from) {
  nt_portmap_answer ans;
  if (!pm || !nt_addr_equal(from, (struct sockaddr *)&pm->gw.ss)) {
    return 0;
  }
  uint32_t epoch;
  if (pm->state == MAPPED && pm->method == NT_PORTMAP_PCP &&
      nt_pcp_decode_announce(data, len, &epoch)) {
    epoch_seen(pm, epoch); /* a restarted gateway tells (RFC 6887 §14.1.3) */
    return 1;
  }
  if ((pm->state != ASKING && pm->state != RENEWING) ||
      pm->method == NT_PORTMAP_UPNP || !nt_portmap_is_answer(data, len)) {
    return 1; /* nothing asked, or not an answer: dropped */
  }
  if (pm->method == NT_PORTMAP_PCP) {
    if (data[0] != 2) {
      /* A NAT-PMP gateway's "unsupported version" (RFC 6887 §9) */
      if (nt_natpmp_decode_map(data, len, pm->port, &ans) &&
          ans.result != NT_PORTMAP_SUCCESS) {
        refused(pm, ans.result);
      }
      return 1;
    }
    if (!nt_pcp_decode_map(data, len, pm->nonce, pm->port, &ans)) {
      return 1;
    }
    epoch_seen(pm, ans.epoch_s);
    if (ans.result != NT_PORTMAP_SUCCESS) {
      refused(pm, ans.result);
    } else if (ans.external_ipv4) {
      granted(pm, ans.external_ip, &ans);
    }
    return 1;
  }
  if (!pm->natpmp_have_addr) {
    if (nt_natpmp_decode_addr(data, len, &ans)) {
      if (ans.result != NT_PORTMAP_SUCCESS) {
        refused(pm, ans.result);
        return 1;
      }
      memcpy(pm->natpmp_ip, ans.external_ip, 4);
      pm->natpmp_have_addr = 1;
      pm->tries = 0;
      event_del(pm->ev);
      timer_cb(-1, 0, pm); /* now the mapping */
    }
    return 1;
  }
  if (nt_natpmp_decode_map(data, len, pm->port, &ans)) {
    epoch_seen(pm, ans.epoch_s);
    if (ans.result != NT_PORTMAP_SUCCESS) {
      refused(pm, ans.result);
    } else {
      granted(pm, pm->natpmp_ip, &ans);
    }
  }
  return 1;
}

int nt_portmap_settled(const nt_portmap *pm) {
  return !pm || pm->state == MAPPED || pm->state == GAVE_UP;
}

int nt_portmap_get(const nt_portmap *pm, nt_addr *external) {
  memset(external, 0, sizeof(*external));
  if (!pm || !pm->external.len) {
    return NT_PORTMAP_NONE;
  }
  *external = pm->external;
  return pm->method;
}
