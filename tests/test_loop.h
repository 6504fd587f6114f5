/* Event-loop helpers for in-process tests: run a libevent base until a
 * condition holds, never past a deadline. */
#ifndef NT_TEST_LOOP_H
#define NT_TEST_LOOP_H

#include <event2/event.h>

static void nt_test_on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  *(int *)arg = 1;
}

/* Runs |base| until pred(arg) holds or |ms| pass. Returns pred(arg). */
static inline int run_until(struct event_base *base, int (*pred)(void *),
                            void *arg, int ms) {
  int timed_out = 0;
  struct event *deadline =
      evtimer_new(base, nt_test_on_deadline, &timed_out);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  evtimer_add(deadline, &tv);
  while (!pred(arg) && !timed_out) {
    event_base_loop(base, EVLOOP_ONCE);
  }
  event_free(deadline);
  return pred(arg);
}

#endif
