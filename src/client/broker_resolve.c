/* Resolving the names of the broker list again (broker_resolve.h). */
#include "client/broker_resolve.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client/broker_list.h"
#include "client/client_internal.h"
#include "natter.h"

typedef struct resolve_item {
  nt_broker_resolve *r;
  char host[256];
  char port[8];
  int numeric; /* an address: nothing to ask */
  struct evdns_getaddrinfo_request *req;
  int failed;
  char why[96];
  nt_broker_list got; /* this item's addresses */
} resolve_item;

struct nt_broker_resolve {
  natter_client *c;
  resolve_item items[NT_BROKERS_MAX];
  size_t nitems;
  size_t pending; /* lookups under way */
  int starting;   /* evdns may answer before evdns_getaddrinfo returns */
  struct event *deadline;
  int have_pending_list; /* an answer waits for the client to be idle */
  nt_broker_list pending_list;
};

static void deadline_cb(evutil_socket_t fd, short what, void *arg);

static int is_numeric(const char *host) {
  unsigned char buf[16];
  return evutil_inet_pton(AF_INET, host, buf) == 1 ||
         evutil_inet_pton(AF_INET6, host, buf) == 1;
}

int nt_broker_resolve_new(nt_broker_resolve **out, natter_client *c) {
  char item[NT_BROKER_LIST_TEXT_MAX + 1], err[160];
  const char *text = c->broker_text;
  nt_broker_resolve *r;
  int names = 0;

  *out = NULL;
  r = calloc(1, sizeof(*r));
  if (r == NULL) {
    return NATTER_ERR_NOMEM;
  }
  r->c = c;
  /* broker_text is the list as parsed at start, without blanks. */
  for (const char *p = text; *p && r->nitems < NT_BROKERS_MAX;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    resolve_item *it = &r->items[r->nitems];
    if (n < sizeof(item)) {
      memcpy(item, p, n);
      item[n] = '\0';
      if (nt_broker_list_split(item, it->host, sizeof(it->host), it->port,
                               sizeof(it->port), err, sizeof(err)) == 0) {
        it->r = r;
        it->numeric = is_numeric(it->host);
        names += !it->numeric;
        r->nitems++;
      }
    }
    if (!comma) {
      break;
    }
    p = comma + 1;
  }
  if (names == 0) {
    free(r);
    return 0;
  }
  r->deadline = evtimer_new(c->base, deadline_cb, r);
  if (r->deadline == NULL) {
    free(r);
    return NATTER_ERR_NOMEM;
  }
  *out = r;
  return 0;
}

static void cancel_all(nt_broker_resolve *r) {
  for (size_t i = 0; i < r->nitems; i++) {
    if (r->items[i].req) {
      struct evdns_getaddrinfo_request *req = r->items[i].req;
      r->items[i].req = NULL;
      evdns_getaddrinfo_cancel(req); /* its callback says EAI_CANCEL */
    }
  }
}

void nt_broker_resolve_free(nt_broker_resolve *r) {
  if (r == NULL) {
    return;
  }
  r->starting = 1; /* no list is applied from here on */
  cancel_all(r);
  event_free(r->deadline);
  free(r);
}

/* "a, b, c" of a list, for the log. */
static void list_str(const nt_broker_list *l, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < l->n && used + 2 < len; i++) {
    char a[NT_ADDR_STRLEN];
    int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                     nt_addr_str((const struct sockaddr *)&l->addr[i].ss, a));
    if (w < 0) {
      break;
    }
    used += (size_t)w < len - used ? (size_t)w : len - used - 1;
  }
}

static int same_list(const nt_broker_list *a, const nt_broker_list *b) {
  if (a->n != b->n) {
    return 0;
  }
  for (size_t i = 0; i < a->n; i++) {
    if (!nt_addr_equal((const struct sockaddr *)&a->addr[i].ss,
                       (const struct sockaddr *)&b->addr[i].ss)) {
      return 0;
    }
  }
  return 1;
}

/* Puts |l| in place of the client's list: the next connection goes to its
 * first broker. Only while no connection to a broker is under way. */
static void apply(nt_broker_resolve *r, const nt_broker_list *l) {
  natter_client *c = r->c;
  char was[NT_BROKERS_MAX * (NT_ADDR_STRLEN + 2)];
  char now[sizeof(was)];

  list_str(&c->brokers, was, sizeof(was));
  list_str(l, now, sizeof(now));
  nt_info(&c->log, "brokers %s resolved again: now %s (was %s)", c->broker_text,
          now, was);
  c->brokers = *l;
  c->broker_index = 0;
  c->broker_tries = 0;
  c->broker_addr = c->brokers.addr[0];
  c->self.broker = c->broker_addr;
}

/* Every lookup has ended: the new list, if it is one. */
static void finish(nt_broker_resolve *r) {
  natter_client *c = r->c;
  nt_broker_list l;
  int full = 0;

  evtimer_del(r->deadline);
  memset(&l, 0, sizeof(l));
  for (size_t i = 0; i < r->nitems; i++) {
    resolve_item *it = &r->items[i];
    if (it->failed) {
      nt_warn(&c->log,
              "cannot resolve broker %s again: %s; the list stays as it was",
              it->host, it->why);
      return;
    }
    for (size_t k = 0; k < it->got.n; k++) {
      const nt_addr *a = &it->got.addr[k];
      if (!nt_endpoint_reaches(c->ep, a->ss.ss_family)) {
        continue; /* as at start: a family our socket cannot reach */
      }
      if (nt_broker_list_add(&l, (const struct sockaddr *)&a->ss, a->len) !=
          0) {
        full = 1;
      }
    }
  }
  if (full) {
    nt_warn(&c->log,
            "brokers %s resolve to more than %d addresses now: the list "
            "stays as it was (a network is at most %d brokers)",
            c->broker_text, NT_BROKERS_MAX, NT_BROKERS_MAX);
    return;
  }
  if (l.n == 0 || same_list(&l, &c->brokers)) {
    nt_debug(&c->log, "brokers %s resolved again: no change", c->broker_text);
    return;
  }
  if (c->broker_conn != NULL) {
    r->pending_list = l; /* for the next round */
    r->have_pending_list = 1;
    return;
  }
  apply(r, &l);
}

static void item_done(resolve_item *it) {
  nt_broker_resolve *r = it->r;
  if (--r->pending == 0 && !r->starting) {
    finish(r);
  }
}

static void answer_cb(int result, struct evutil_addrinfo *res, void *arg) {
  resolve_item *it = arg;
  it->req = NULL;
  if (result == EVUTIL_EAI_CANCEL) {
    if (res) {
      evutil_freeaddrinfo(res);
    }
    if (it->r->starting) {
      return; /* freeing */
    }
    it->failed = 1;
    snprintf(it->why, sizeof(it->why), "no answer in %d s",
             NT_BROKER_RESOLVE_TIMEOUT_S);
    item_done(it);
    return;
  }
  if (result != 0 || res == NULL) {
    it->failed = 1;
    snprintf(it->why, sizeof(it->why), "%s",
             result ? evutil_gai_strerror(result) : "no address");
  } else {
    for (struct evutil_addrinfo *ai = res; ai; ai = ai->ai_next) {
      if (nt_broker_list_add(&it->got, ai->ai_addr, ai->ai_addrlen) != 0) {
        break; /* 16 of one name: the sum says the rest */
      }
    }
  }
  if (res) {
    evutil_freeaddrinfo(res);
  }
  item_done(it);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  cancel_all(arg);
}

void nt_broker_resolve_start(nt_broker_resolve *r) {
  natter_client *c;
  struct evutil_addrinfo hints;
  struct timeval tv = {NT_BROKER_RESOLVE_TIMEOUT_S, 0};

  if (r == NULL || r->pending > 0) {
    return;
  }
  c = r->c;
  if (r->have_pending_list && c->broker_conn == NULL) {
    r->have_pending_list = 0;
    apply(r, &r->pending_list);
    return; /* the round with it comes first */
  }
  r->have_pending_list = 0;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  evtimer_add(r->deadline, &tv);
  nt_debug(&c->log,
           "no broker of %s answered this round: resolving its "
           "names again",
           c->broker_text);
  r->starting = 1;
  for (size_t i = 0; i < r->nitems; i++) {
    resolve_item *it = &r->items[i];
    it->failed = 0;
    memset(&it->got, 0, sizeof(it->got));
    if (it->numeric) {
      struct evutil_addrinfo *res = NULL;
      hints.ai_flags = EVUTIL_AI_NUMERICHOST;
      if (evutil_getaddrinfo(it->host, it->port, &hints, &res) == 0 && res) {
        (void)nt_broker_list_add(&it->got, res->ai_addr, res->ai_addrlen);
      }
      if (res) {
        evutil_freeaddrinfo(res);
      }
      hints.ai_flags = 0;
      continue;
    }
    r->pending++;
    it->req =
        evdns_getaddrinfo(c->dns, it->host, it->port, &hints, answer_cb, it);
    /* NULL: answered (or failed) already, in answer_cb. */
  }
  r->starting = 0;
  if (r->pending == 0) {
    finish(r);
  }
}
