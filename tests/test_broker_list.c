/* The brokers of one network: the -broker list (src/client/broker_list.c).
 * Numeric addresses only: no resolver is asked. */
#include "client/broker_list.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "natter.h"
#include "test.h"

static void test_one(void) {
  nt_broker_list l;
  char norm[128], err[256];
  CHECK(nt_broker_list_parse(&l, "127.0.0.1:10000", norm, sizeof(norm), err,
                             sizeof(err)) == 0);
  CHECK(l.n == 1);
  CHECK(strcmp(norm, "127.0.0.1:10000") == 0);
  CHECK(nt_addr_port((struct sockaddr *)&l.addr[0].ss) == 10000);
}

static void test_list(void) {
  nt_broker_list l;
  char norm[128], err[256];
  /* Blanks around the commas go; a repeated address counts once; the
   * order is kept. */
  CHECK(nt_broker_list_parse(&l,
                             "127.0.0.2:1, [::1]:2 ,127.0.0.2:1,\t127.0.0.3:3",
                             norm, sizeof(norm), err, sizeof(err)) == 0);
  CHECK(l.n == 3);
  CHECK(strcmp(norm, "127.0.0.2:1,[::1]:2,127.0.0.2:1,127.0.0.3:3") == 0);
  CHECK(l.addr[0].ss.ss_family == AF_INET);
  CHECK(l.addr[1].ss.ss_family == AF_INET6);
  CHECK(nt_addr_port((struct sockaddr *)&l.addr[2].ss) == 3);
}

static void test_bad(void) {
  static const char *const bad[] = {
      "",          ",",           "127.0.0.1:1,",    "127.0.0.1:1,,127.0.0.1:2",
      "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+1",
      "[::1:1",    "[::1]1",      "127.0.0.1:1x",    " , 127.0.0.1:1",
  };
  nt_broker_list l;
  char norm[128], err[256];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = '\0';
    if (nt_broker_list_parse(&l, bad[i], norm, sizeof(norm), err,
                             sizeof(err)) == 0) {
      fprintf(stderr, "accepted \"%s\"\n", bad[i]);
      CHECK(0);
    }
    CHECK(err[0] != '\0');
  }
}

static void test_limits(void) {
  nt_broker_list l;
  char text[NT_BROKER_LIST_TEXT_MAX * 2], norm[NT_BROKER_LIST_TEXT_MAX + 1],
      err[256];
  size_t used = 0;
  /* NT_BROKERS_MAX addresses are fine, one more is refused, saying so. */
  for (int i = 0; i < NT_BROKERS_MAX; i++) {
    used += (size_t)snprintf(text + used, sizeof(text) - used, "%s127.0.0.%d:1",
                             i ? "," : "", i + 1);
  }
  CHECK(nt_broker_list_parse(&l, text, norm, sizeof(norm), err, sizeof(err)) ==
        0);
  CHECK(l.n == NT_BROKERS_MAX);
  snprintf(text + used, sizeof(text) - used, ",127.0.0.99:1");
  CHECK(nt_broker_list_parse(&l, text, norm, sizeof(norm), err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "more than 16 broker addresses");
  /* The text itself is bounded. */
  memset(text, 'a', NT_BROKER_LIST_TEXT_MAX + 1);
  text[NT_BROKER_LIST_TEXT_MAX + 1] = '\0';
  CHECK(nt_broker_list_parse(&l, text, norm, sizeof(norm), err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK_STR_CONTAINS(err, "longer than");
  /* A normalized list that does not fit the caller's buffer. */
  CHECK(nt_broker_list_parse(&l, "127.0.0.1:1,127.0.0.2:2", norm, 12, err,
                             sizeof(err)) == NATTER_ERR_INVALID);
}

/* One item split into host and port (broker_resolve.c asks the host
 * again), and the bounded append it builds the new list with. */
static void test_split_add(void) {
  char host[256], port[8], err[256];
  nt_broker_list l;
  struct sockaddr_in sin;

  CHECK(nt_broker_list_split("brokers.example.net:10000", host, sizeof(host),
                             port, sizeof(port), err, sizeof(err)) == 0);
  CHECK(strcmp(host, "brokers.example.net") == 0);
  CHECK(strcmp(port, "10000") == 0);
  CHECK(nt_broker_list_split("[2001:db8::1]:7", host, sizeof(host), port,
                             sizeof(port), err, sizeof(err)) == 0);
  CHECK(strcmp(host, "2001:db8::1") == 0);
  CHECK(strcmp(port, "7") == 0);
  CHECK(nt_broker_list_split(":9", host, sizeof(host), port, sizeof(port), err,
                             sizeof(err)) == 0);
  CHECK(strcmp(host, "127.0.0.1") == 0);
  CHECK(nt_broker_list_split("a:0", host, sizeof(host), port, sizeof(port),
                             err, sizeof(err)) == NATTER_ERR_INVALID);
  CHECK(nt_broker_list_split("a:65536", host, sizeof(host), port,
                             sizeof(port), err, sizeof(err)) ==
        NATTER_ERR_INVALID);
  CHECK(nt_broker_list_split("noport", host, sizeof(host), port, sizeof(port),
                             err, sizeof(err)) == NATTER_ERR_INVALID);
  CHECK(nt_broker_list_split("[::1:5", host, sizeof(host), port, sizeof(port),
                             err, sizeof(err)) == NATTER_ERR_INVALID);

  memset(&l, 0, sizeof(l));
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(10000);
  for (unsigned i = 0; i < NT_BROKERS_MAX; i++) {
    sin.sin_addr.s_addr = htonl(0x7f000100u + i);
    CHECK(nt_broker_list_add(&l, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    /* The same again: listed already, not added. */
    CHECK(nt_broker_list_add(&l, (struct sockaddr *)&sin, sizeof(sin)) == 0);
  }
  CHECK(l.n == NT_BROKERS_MAX);
  sin.sin_addr.s_addr = htonl(0x7f000200u);
  CHECK(nt_broker_list_add(&l, (struct sockaddr *)&sin, sizeof(sin)) == -1);
  CHECK(l.n == NT_BROKERS_MAX);
}

int main(void) {
  static const nt_test_case cases[] = {{"one", test_one},
                                       {"list", test_list},
                                       {"bad", test_bad},
                                       {"limits", test_limits},
                                       {"split_add", test_split_add},
                                       {NULL, NULL}};
  return nt_test_run(cases);
}
