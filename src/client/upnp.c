#include "client/upnp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/addr.h"
#include "base/budget.h"
#include "client/portmap.h"
#include "codec/upnp.h"
#include "natter.h"
#include "quic/endpoint.h"
#include "trust/tls.h"

enum { IDLE = 0, SEARCH, DESCRIBE, GET_IP, ADD };

#define STR_(x) #x
#define STR(x) STR_(x)

struct nt_upnp {
  nt_upnp_env env;
  int state;
  struct event *timer;
  /* SSDP */
  int ssdp_fd;
  struct event *ssdp_ev;
  unsigned searches;
  char elsewhere[NT_UPNP_URL_MAX]; /* an answer we refused, for the log */
  nt_log_gate ignored_log;
  /* the IGD */
  nt_upnp_url location, control;
  char type[NT_UPNP_TYPE_MAX];
  /* one HTTP exchange at a time */
  int fd;
  struct event *io;
  uint64_t deadline_ns;
  char req[NT_UPNP_REQUEST_MAX];
  size_t req_len, sent;
  char *resp; /* NT_HTTP_RESPONSE_MAX + 1 */
  size_t resp_len;
  /* the mapping */
  uint8_t ext_ip[4];
  uint16_t ext_port;
  uint32_t lease_s;
  int mapped; /* held at the gateway (delete on free) */
  unsigned conflicts;
};

static void url_str(const nt_upnp_url *u, char *buf, size_t cap) {
  snprintf(buf, cap, "http://%u.%u.%u.%u:%u%s", u->ip[0], u->ip[1], u->ip[2],
           u->ip[3], u->port, u->path);
}

static void http_close(nt_upnp *u) {
  if (u->io) {
    event_free(u->io);
    u->io = NULL;
  }
  if (u->fd >= 0) {
    close(u->fd);
    u->fd = -1;
  }
}

static void ssdp_close(nt_upnp *u) {
  if (u->ssdp_ev) {
    event_free(u->ssdp_ev);
    u->ssdp_ev = NULL;
  }
  if (u->ssdp_fd >= 0) {
    close(u->ssdp_fd);
    u->ssdp_fd = -1;
  }
}

/* Asking is over: one result. */
static void finish(nt_upnp *u, int what, const char *why) {
  u->state = IDLE;
  http_close(u);
  ssdp_close(u);
  event_del(u->timer);
  u->env.result(u->env.user_data, what, u->ext_ip, u->ext_port, u->lease_s,
                why);
}

static void io_cb(evutil_socket_t fd, short what, void *arg);

static int arm_io(nt_upnp *u, short what) {
  uint64_t now = nt_monotonic_ns();
  uint64_t left = u->deadline_ns > now ? u->deadline_ns - now : 0;
  struct timeval tv = {(time_t)(left / 1000000000u),
                       (suseconds_t)(left % 1000000000u / 1000)};
  if (u->io) {
    event_free(u->io);
  }
  u->io = event_new(u->env.base, u->fd, what, io_cb, u);
  return u->io && event_add(u->io, &tv) == 0 ? 0 : -1;
}

/* Starts the exchange of u->req with |url|'s host. */
static int http_start(nt_upnp *u, const nt_upnp_url *url) {
  struct sockaddr_in sin;
  http_close(u);
  u->sent = 0;
  u->resp_len = 0;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(url->port);
  memcpy(&sin.sin_addr, url->ip, 4);
  u->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u->fd < 0 || (connect(u->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 &&
                    errno != EINPROGRESS)) {
    return -1;
  }
  u->deadline_ns =
      nt_monotonic_ns() + (uint64_t)NT_UPNP_HTTP_TIMEOUT_MS * 1000000u;
  return arm_io(u, EV_WRITE);
}

static void on_response(nt_upnp *u, int status, char *body, size_t len);

/* Waits for |what| again; out of memory in libevent ends the exchange. */
static void rearm(nt_upnp *u, short what) {
  if (arm_io(u, what) != 0) {
    finish(u, NT_UPNP_FAILED, "the UPnP exchange could not be waited for");
  }
}

static void io_cb(evutil_socket_t fd, short what, void *arg) {
  nt_upnp *u = arg;
  char why[96];
  const char *step = u->state == DESCRIBE ? "description" : "control";
  if (what & EV_TIMEOUT) {
    snprintf(why, sizeof(why), "the UPnP gateway's %s did not answer in %d ms",
             step, NT_UPNP_HTTP_TIMEOUT_MS);
    finish(u, NT_UPNP_FAILED, why);
    return;
  }
  if (u->sent < u->req_len) {
    ssize_t n = send(fd, u->req + u->sent, u->req_len - u->sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      rearm(u, EV_WRITE);
      return;
    }
    if (n <= 0) {
      snprintf(why, sizeof(why), "the UPnP gateway's %s: %s", step,
               strerror(errno));
      finish(u, NT_UPNP_FAILED, why);
      return;
    }
    u->sent += (size_t)n;
    rearm(u, u->sent < u->req_len ? EV_WRITE : EV_READ);
    return;
  }
  ssize_t n = recv(fd, u->resp + u->resp_len,
                   NT_HTTP_RESPONSE_MAX + 1 - u->resp_len, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    rearm(u, EV_READ);
    return;
  }
  if (n < 0) {
    snprintf(why, sizeof(why), "the UPnP gateway's %s: %s", step,
             strerror(errno));
    finish(u, NT_UPNP_FAILED, why);
    return;
  }
  u->resp_len += (size_t)n;
  int status;
  char *body;
  size_t blen;
  int r = u->resp_len > NT_HTTP_RESPONSE_MAX
              ? -1
              : nt_http_parse_response(u->resp, u->resp_len, n == 0, &status,
                                       &body, &blen);
  if (r == 0) {
    rearm(u, EV_READ);
    return;
  }
  http_close(u);
  if (r < 0) {
    snprintf(why, sizeof(why),
             "the UPnP gateway's %s sent a malformed HTTP answer (or over %d "
             "bytes)",
             step, NT_HTTP_RESPONSE_MAX);
    finish(u, NT_UPNP_FAILED, why);
    return;
  }
  on_response(u, status, body, blen);
}

static void soap(nt_upnp *u, const char *action, const char *const *names,
                 const char *const *values, size_t n) {
  u->req_len = nt_upnp_encode_soap(u->req, sizeof(u->req), &u->control, u->type,
                                   action, names, values, n);
  if (!u->req_len || http_start(u, &u->control) != 0) {
    finish(u, NT_UPNP_FAILED, "cannot reach the UPnP gateway's control URL");
  }
}

static void get_ip(nt_upnp *u) {
  u->state = GET_IP;
  soap(u, "GetExternalIPAddress", NULL, NULL, 0);
}

static void add(nt_upnp *u) {
  char ext[8], in[8], client[INET_ADDRSTRLEN], lease[12];
  static const char *const names[] = {"NewRemoteHost",
                                      "NewExternalPort",
                                      "NewProtocol",
                                      "NewInternalPort",
                                      "NewInternalClient",
                                      "NewEnabled",
                                      "NewPortMappingDescription",
                                      "NewLeaseDuration"};
  const char *values[] = {"", ext, "UDP", in, client, "1", "natter", lease};
  snprintf(ext, sizeof(ext), "%u", u->ext_port);
  snprintf(in, sizeof(in), "%u", u->env.port);
  inet_ntop(AF_INET, u->env.local_ip, client, sizeof(client));
  snprintf(lease, sizeof(lease), "%u", (unsigned)u->lease_s);
  u->state = ADD;
  soap(u, "AddPortMapping", names, values, 8);
}

static void on_description(nt_upnp *u, int status, char *body, size_t len) {
  char a[NT_UPNP_URL_MAX + 32];
  if (status != 200 ||
      !nt_upnp_find_control(body, len, &u->location, &u->control, u->type)) {
    finish(u, NT_UPNP_FAILED,
           status != 200 ? "the UPnP gateway did not send its description"
                         : "the UPnP description names no WANIPConnection or "
                           "WANPPPConnection service we can use");
    return;
  }
  url_str(&u->control, a, sizeof(a));
  if (!nt_upnp_url_at(&u->control, u->env.gw_ip)) {
    char why[NT_UPNP_URL_MAX + 96];
    snprintf(why, sizeof(why),
             "the UPnP description's control URL %s is not at the gateway", a);
    finish(u, NT_UPNP_FAILED, why);
    return;
  }
  nt_debug(u->env.log, "UPnP: control URL %s (%s)", a, u->type);
  get_ip(u);
}

static void on_external_ip(nt_upnp *u, int status, char *body, size_t len) {
  char value[NT_UPNP_VALUE_MAX], why[160];
  uint8_t ip[4];
  nt_addr checked;
  int r = nt_upnp_soap_result(status, body, len, "GetExternalIPAddress",
                              "NewExternalIPAddress", value);
  if (r == NT_UPNP_SOAP_BAD) {
    finish(u, NT_UPNP_FAILED,
           "the UPnP gateway's answer to GetExternalIPAddress is malformed");
    return;
  }
  if (r > 0) {
    snprintf(why, sizeof(why),
             "the UPnP gateway refused GetExternalIPAddress (error %d)", r);
    finish(u, NT_UPNP_FAILED, why);
    return;
  }
  nt_debug(u->env.log, "UPnP: external address '%s'", value);
  if (!value[0]) {
    finish(u, NT_UPNP_FAILED,
           "the UPnP gateway has no external address (it cannot forward: "
           "its WAN address is private or reserved, or it is offline)");
    return;
  }
  if (inet_pton(AF_INET, value, ip) != 1 ||
      nt_portmap_answer_check(NT_PORTMAP_LIFETIME_S, ip, 1, u->env.local_ip,
                              u->env.gw_ip, &checked) != NT_PORTMAP_USABLE) {
    snprintf(why, sizeof(why),
             "the UPnP gateway's external address '%s' is not a public one",
             value);
    finish(u, NT_UPNP_FAILED, why);
    return;
  }
  memcpy(u->ext_ip, ip, 4);
  if (!u->mapped) {
    u->conflicts = 0;
    u->lease_s = NT_PORTMAP_LIFETIME_S;
    u->ext_port = u->env.port;
  }
  add(u);
}

static uint16_t random_port(void) {
  uint16_t r = 0;
  if (nt_random_bytes(&r, sizeof(r)) != 0) {
    r = (uint16_t)nt_monotonic_ns();
  }
  return (uint16_t)(1024 + r % (65536 - 1024));
}

static void on_added(nt_upnp *u, int status, char *body, size_t len) {
  char why[160];
  int r = nt_upnp_soap_result(status, body, len, "AddPortMapping", NULL, NULL);
  if (r == NT_UPNP_SOAP_OK) {
    u->mapped = 1;
    nt_debug(u->env.log, "UPnP: AddPortMapping external port %u, lease %u s",
             u->ext_port, (unsigned)u->lease_s);
    finish(u, NT_UPNP_MAPPED, "");
    return;
  }
  if (r == NT_UPNP_ERR_CONFLICT && u->conflicts < NT_UPNP_CONFLICT_TRIES) {
    u->conflicts++;
    u->ext_port = random_port();
    nt_debug(u->env.log, "UPnP: external port taken (718), trying %u",
             u->ext_port);
    add(u);
    return;
  }
  if (r == NT_UPNP_ERR_SAME_PORT && u->ext_port != u->env.port) {
    u->ext_port = u->env.port;
    add(u);
    return;
  }
  if (r == NT_UPNP_ERR_PERMANENT_ONLY && u->lease_s != 0) {
    nt_debug(u->env.log, "UPnP: only permanent leases (725): lease 0, "
                         "deleted on exit");
    u->lease_s = 0;
    add(u);
    return;
  }
  u->mapped = 0; /* a renewal refused: what we had is not ours now */
  if (r == NT_UPNP_SOAP_BAD) {
    snprintf(why, sizeof(why),
             "the UPnP gateway's answer to AddPortMapping is malformed");
  } else {
    snprintf(why, sizeof(why),
             "the UPnP gateway refused AddPortMapping "
             "(error %d%s)",
             r, r == 501 ? ", ActionFailed" : "");
  }
  finish(u, NT_UPNP_FAILED, why);
}

static void on_response(nt_upnp *u, int status, char *body, size_t len) {
  switch (u->state) {
  case DESCRIBE:
    on_description(u, status, body, len);
    break;
  case GET_IP:
    on_external_ip(u, status, body, len);
    break;
  case ADD:
    on_added(u, status, body, len);
    break;
  default:
    break;
  }
}

/* ---- SSDP ---- */

static void search_send(nt_upnp *u) {
  char buf[256];
  static const char *const st[] = {NT_UPNP_IGD1, NT_UPNP_IGD2};
  struct sockaddr_in to;
  memset(&to, 0, sizeof(to));
  to.sin_family = AF_INET;
  to.sin_port = htons(NT_SSDP_PORT);
  inet_pton(AF_INET, NT_SSDP_GROUP, &to.sin_addr);
  for (size_t i = 0; i < 2; i++) {
    size_t n = nt_ssdp_encode_search(buf, sizeof(buf), st[i]);
    if (n) {
      (void)sendto(u->ssdp_fd, buf, n, 0, (struct sockaddr *)&to, sizeof(to));
    }
  }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  nt_upnp *u = arg;
  (void)fd;
  (void)what;
  if (u->state != SEARCH) {
    return;
  }
  if (u->searches >= NT_UPNP_SEARCH_TRIES) {
    char why[NT_UPNP_URL_MAX + 96];
    if (u->elsewhere[0]) {
      snprintf(why, sizeof(why),
               "the only UPnP answer named another host than the gateway "
               "(%s)",
               u->elsewhere);
      finish(u, NT_UPNP_FAILED, why);
    } else {
      finish(u, NT_UPNP_NO_ANSWER, "no answer to the UPnP search");
    }
    return;
  }
  search_send(u);
  u->searches++;
  struct timeval tv = {NT_UPNP_SEARCH_WAIT_MS / 1000,
                       (NT_UPNP_SEARCH_WAIT_MS % 1000) * 1000};
  event_add(u->timer, &tv);
}

static void ignored(nt_upnp *u, const struct sockaddr_in *from,
                    const char *location, const char *why) {
  char a[NT_ADDR_STRLEN];
  unsigned held = 0;
  if (location[0] && !u->elsewhere[0]) {
    snprintf(u->elsewhere, sizeof(u->elsewhere), "%s", location);
  }
  if (nt_log_gate_pass(&u->ignored_log, nt_monotonic_ns(), &held)) {
    nt_info(u->env.log,
            "port mapping: UPnP answer from %s ignored: %s (%u more not "
            "logged)",
            nt_addr_str((const struct sockaddr *)from, a), why, held);
  }
}

static void ssdp_cb(evutil_socket_t fd, short what, void *arg) {
  nt_upnp *u = arg;
  char buf[NT_SSDP_MAX_LEN + 1], location[NT_UPNP_URL_MAX];
  struct sockaddr_in from;
  (void)what;
  for (int i = 0; i < 16 && u->state == SEARCH; i++) {
    socklen_t fl = sizeof(from);
    ssize_t n =
        recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
    if (n < 0) {
      return;
    }
    if (fl != sizeof(from) || from.sin_family != AF_INET ||
        memcmp(&from.sin_addr, u->env.gw_ip, 4) != 0) {
      continue; /* not the gateway */
    }
    if ((size_t)n > NT_SSDP_MAX_LEN ||
        !nt_ssdp_parse_answer(buf, (size_t)n, location)) {
      ignored(
          u, &from, "",
          "not an SSDP answer about an InternetGatewayDevice (or over "
          "the limits: " STR(NT_SSDP_MAX_LEN) " bytes, a LOCATION under " STR(
              NT_UPNP_URL_MAX) ")");
      continue;
    }
    if (!nt_upnp_url_parse(location, strlen(location), &u->location)) {
      ignored(u, &from, "", "its LOCATION is not an http://IPv4 URL");
      continue;
    }
    if (!nt_upnp_url_at(&u->location, u->env.gw_ip)) {
      ignored(u, &from, location,
              "its LOCATION names another host than the gateway");
      continue;
    }
    nt_debug(u->env.log, "UPnP: the gateway answered the search: %s", location);
    ssdp_close(u);
    event_del(u->timer);
    u->state = DESCRIBE;
    u->req_len = nt_upnp_encode_get(u->req, sizeof(u->req), &u->location);
    if (!u->req_len || http_start(u, &u->location) != 0) {
      finish(u, NT_UPNP_FAILED, "cannot reach the UPnP gateway's description");
    }
    return;
  }
}

static int ssdp_open(nt_upnp *u) {
  struct sockaddr_in sin;
  struct in_addr ifa;
  unsigned char ttl = 2, loop = 0;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  memcpy(&sin.sin_addr, u->env.local_ip, 4);
  memcpy(&ifa, u->env.local_ip, 4);
  u->ssdp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u->ssdp_fd < 0 ||
      bind(u->ssdp_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
      setsockopt(u->ssdp_fd, IPPROTO_IP, IP_MULTICAST_IF, &ifa, sizeof(ifa)) !=
          0 ||
      setsockopt(u->ssdp_fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) !=
          0 ||
      setsockopt(u->ssdp_fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop,
                 sizeof(loop)) != 0) {
    return -1;
  }
  u->ssdp_ev =
      event_new(u->env.base, u->ssdp_fd, EV_READ | EV_PERSIST, ssdp_cb, u);
  return u->ssdp_ev && event_add(u->ssdp_ev, NULL) == 0 ? 0 : -1;
}

int nt_upnp_new(nt_upnp **pu, const nt_upnp_env *env) {
  *pu = NULL;
  nt_upnp *u = calloc(1, sizeof(*u));
  if (!u) {
    return NATTER_ERR_NOMEM;
  }
  u->env = *env;
  u->fd = -1;
  u->ssdp_fd = -1;
  u->resp = malloc(NT_HTTP_RESPONSE_MAX + 1);
  u->timer = event_new(env->base, -1, 0, timer_cb, u);
  if (!u->resp || !u->timer) {
    nt_upnp_free(u);
    return NATTER_ERR_NOMEM;
  }
  if (ssdp_open(u) != 0) {
    nt_debug(env->log, "UPnP: no SSDP socket: %s", strerror(errno));
    nt_upnp_free(u);
    return NATTER_ERR_SOCKET;
  }
  u->state = SEARCH;
  timer_cb(-1, 0, u);
  *pu = u;
  return 0;
}

void nt_upnp_renew(nt_upnp *u) {
  if (u->state != IDLE || !u->mapped) {
    finish(u, NT_UPNP_FAILED, "nothing to renew");
    return;
  }
  get_ip(u);
}

/* DeletePortMapping, blocking for at most NT_UPNP_DELETE_WAIT_MS: the
 * process is on its way out and the loop may not run again. */
static void delete_now(nt_upnp *u) {
  char ext[8];
  static const char *const names[] = {"NewRemoteHost", "NewExternalPort",
                                      "NewProtocol"};
  const char *values[] = {"", ext, "UDP"};
  struct sockaddr_in sin;
  snprintf(ext, sizeof(ext), "%u", u->ext_port);
  size_t len = nt_upnp_encode_soap(u->req, sizeof(u->req), &u->control, u->type,
                                   "DeletePortMapping", names, values, 3);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(u->control.port);
  memcpy(&sin.sin_addr, u->control.ip, 4);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (!len || fd < 0 ||
      (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 &&
       errno != EINPROGRESS)) {
    if (fd >= 0) {
      close(fd);
    }
    return;
  }
  uint64_t deadline =
      nt_monotonic_ns() + (uint64_t)NT_UPNP_DELETE_WAIT_MS * 1000000u;
  size_t sent = 0;
  char sink[512];
  for (;;) {
    uint64_t now = nt_monotonic_ns();
    if (now >= deadline) {
      break;
    }
    struct pollfd pfd = {fd, sent < len ? POLLOUT : POLLIN, 0};
    if (poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) <= 0) {
      break;
    }
    if (sent < len) {
      ssize_t n = send(fd, u->req + sent, len - sent, MSG_NOSIGNAL);
      if (n <= 0 && errno != EAGAIN && errno != EINTR) {
        break;
      }
      sent += n > 0 ? (size_t)n : 0;
      continue;
    }
    ssize_t n = recv(fd, sink, sizeof(sink), 0); /* the answer: not read */
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      break;
    }
  }
  close(fd);
  nt_debug(u->env.log, "UPnP: DeletePortMapping external port %u %s",
           u->ext_port, sent == len ? "sent" : "not sent");
}

void nt_upnp_free(nt_upnp *u) {
  if (!u) {
    return;
  }
  http_close(u);
  ssdp_close(u);
  if (u->mapped) {
    delete_now(u);
  }
  if (u->timer) {
    event_free(u->timer);
  }
  free(u->resp);
  free(u);
}
