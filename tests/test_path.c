/* The path planner's decisions (path.h), without a network: when punching
 * gives way to the relay, when port prediction starts and on which side,
 * the direct attempts of a relayed connection, the re-punch of a silent
 * one, giving up, and which of the peer's addresses are probed. */
#include <arpa/inet.h>

#include "client/path.h"
#include "codec/mapping.h"
#include "test.h"
#include "test_addrs.h"

#define MS 1000000ull
#define T0 (1000 * MS) /* the introduction */

static const uint8_t nonce[NT_PUNCH_NONCE_LEN] = {7, 7, 7};
static const uint8_t seed[8] = {1, 2, 3, 4, 5, 6, 7, 8};

/* A meeting at T0 with one candidate, a 10 s connect timeout and a relay
 * offered; prediction as the mappings say. */
static void meet(nt_path *pa, int initiator, int self, int peer, int relay,
                 uint32_t timeout_ms) {
  nt_addr cand = addr4("203.0.113.5", 4000);
  nt_path_meeting m = {nonce, &cand, 1,          initiator,           self,
                       peer,  relay, timeout_ms, T0 + timeout_ms * MS};
  memset(pa, 0, sizeof(*pa));
  nt_path_meet(pa, &m, T0);
  nt_path_start_prediction(pa, 1, seed);
}

/* Runs the punching schedule from T0 as a timer would, until |stop_ns|;
 * returns when the relay fallback started (0: never). */
static uint64_t fallback_time(nt_path *pa, uint64_t stop_ns) {
  nt_path_plan plan;
  uint64_t now = T0;
  while (now < stop_ns) {
    nt_path_due(pa, NT_PATH_PUNCHING, 0, now, &plan);
    if (plan.start_relay_fallback) {
      return now;
    }
    if (plan.give_up || plan.next_ns == UINT64_MAX) {
      return 0;
    }
    CHECK(plan.next_ns > now);
    if (plan.next_ns <= now) {
      return 0;
    }
    now = plan.next_ns;
  }
  return 0;
}

static void test_relay_fallback_schedule(void) {
  nt_path pa;
  /* Both endpoint-independent: a punch answers at once or not at all. */
  meet(&pa, 0, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       1, 10000);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 1000 * MS);
  /* Both symmetric: nothing direct can work. */
  meet(&pa, 0, NT_MAPPING_PER_DESTINATION, NT_MAPPING_PER_DESTINATION, 1,
       10000);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 1000 * MS);
  /* A mapping unknown: 3 s. */
  meet(&pa, 0, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_UNKNOWN, 1, 10000);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 3000 * MS);
  meet(&pa, 0, NT_MAPPING_UNKNOWN, NT_MAPPING_UNKNOWN, 1, 10000);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 3000 * MS);
  /* Port prediction runs (one side symmetric): 3 s. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_PER_DESTINATION, 1,
       10000);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 3000 * MS);
  /* A third of a short connect timeout at most, to leave time to connect. */
  meet(&pa, 0, NT_MAPPING_UNKNOWN, NT_MAPPING_ENDPOINT_INDEPENDENT, 1, 6000);
  CHECK(fallback_time(&pa, T0 + 6000 * MS) == T0 + 2000 * MS);
  CHECK(nt_path_relay_after_ms(NT_MAPPING_ENDPOINT_INDEPENDENT,
                               NT_MAPPING_ENDPOINT_INDEPENDENT, 1500) == 500);
  /* No relay offered: punching alone, until it gives up. */
  meet(&pa, 0, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  CHECK(fallback_time(&pa, T0 + 20000 * MS) == 0);
}

static void test_relay_fallback_follows_own_mapping(void) {
  nt_path pa;
  /* Our mapping is learned after the introduction: the fallback moves. */
  meet(&pa, 0, NT_MAPPING_UNKNOWN, NT_MAPPING_ENDPOINT_INDEPENDENT, 1, 10000);
  nt_path_on_self_mapping(&pa, NT_MAPPING_ENDPOINT_INDEPENDENT);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 1000 * MS);
  /* ... but not once it has started. */
  meet(&pa, 0, NT_MAPPING_UNKNOWN, NT_MAPPING_ENDPOINT_INDEPENDENT, 1, 10000);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 3000 * MS);
  nt_path_on_self_mapping(&pa, NT_MAPPING_ENDPOINT_INDEPENDENT);
  CHECK(pa.relay_at_ns == T0 + 3000 * MS);
}

static void test_relay_fallback_sides(void) {
  nt_path pa;
  nt_path_plan plan;
  /* The initiator connects through the relay: the handshake's schedule,
   * probing on, no more binds. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       1, 10000);
  uint64_t at = fallback_time(&pa, T0 + 10000 * MS);
  CHECK(at == T0 + 1000 * MS);
  CHECK(pa.relay_started);
  CHECK(pa.deadline_ns == T0 + 10000 * MS);
  nt_path_due(&pa, NT_PATH_CONNECTING, 0, at + 1000 * MS, &plan);
  CHECK(plan.nprobes == 1);
  CHECK(!plan.relay_bind);
  CHECK(plan.next_ns > at + 1000 * MS && plan.next_ns <= pa.deadline_ns);
  /* The other side waits for the Initial through the relay, punching on
   * and telling the relay where it is every second. */
  meet(&pa, 0, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       1, 10000);
  at = fallback_time(&pa, T0 + 10000 * MS);
  CHECK(at == T0 + 1000 * MS);
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, at + 500 * MS, &plan);
  CHECK(!plan.relay_bind && !plan.start_relay_fallback);
  CHECK(plan.next_ns <= at + 1000 * MS);
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, at + 1000 * MS, &plan);
  CHECK(plan.relay_bind);
  CHECK(plan.next_ns <= at + 2000 * MS);
}

static void test_prediction_start_and_side(void) {
  nt_path pa;
  nt_path_plan plan;
  /* We are behind the symmetric NAT: extra sockets, from 300 ms on. */
  meet(&pa, 0, NT_MAPPING_PER_DESTINATION, NT_MAPPING_ENDPOINT_INDEPENDENT, 0,
       10000);
  CHECK(pa.predict.role == NT_PREDICT_HARD);
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, T0, &plan);
  CHECK(!plan.predict_burst);
  CHECK(plan.next_ns <= T0 + NT_PREDICT_HARD_START_MS * MS);
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, T0 + NT_PREDICT_HARD_START_MS * MS,
              &plan);
  CHECK(plan.predict_open && plan.predict_burst);
  CHECK(plan.npredict_ports == 0);
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, T0 + 1300 * MS, &plan);
  CHECK(!plan.predict_open && plan.predict_burst); /* a repeat round */
  /* The peer is: its ports, from 400 ms on, in batches. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_PER_DESTINATION, 0,
       10000);
  CHECK(pa.predict.role == NT_PREDICT_EASY);
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, T0 + 399 * MS, &plan);
  CHECK(plan.npredict_ports == 0);
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, T0 + NT_PREDICT_EASY_START_MS * MS,
              &plan);
  CHECK(plan.npredict_ports == NT_PATH_PREDICT_BATCH && plan.predict_first);
  CHECK(plan.predict_ports[0] >= NT_PREDICT_PORT_MIN);
  CHECK(plan.next_ns <= T0 + (NT_PREDICT_EASY_START_MS + 10) * MS);
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, plan.next_ns, &plan);
  CHECK(plan.npredict_ports == NT_PATH_PREDICT_BATCH && !plan.predict_first);
  /* Neither or both symmetric, or the caller says it cannot work: none. */
  meet(&pa, 0, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  CHECK(pa.predict.role == NT_PREDICT_NONE);
  meet(&pa, 0, NT_MAPPING_PER_DESTINATION, NT_MAPPING_PER_DESTINATION, 0,
       10000);
  CHECK(pa.predict.role == NT_PREDICT_NONE);
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_PER_DESTINATION, 0,
       10000);
  nt_path_start_prediction(&pa, 0, seed); /* e.g. both behind one address */
  CHECK(pa.predict.role == NT_PREDICT_NONE);
  CHECK(nt_predict_next(&pa.predict) == UINT64_MAX);
  meet(&pa, 0, NT_MAPPING_UNKNOWN, NT_MAPPING_ENDPOINT_INDEPENDENT, 0, 10000);
  CHECK(pa.predict.role == NT_PREDICT_NONE);
  /* Our mapping learned later: the caller restarts it, timed from the
   * introduction. */
  nt_path_on_self_mapping(&pa, NT_MAPPING_PER_DESTINATION);
  nt_path_start_prediction(&pa, 1, seed);
  CHECK(pa.predict.role == NT_PREDICT_HARD);
  CHECK(nt_predict_next(&pa.predict) == T0 + NT_PREDICT_HARD_START_MS * MS);
}

static void test_give_up(void) {
  nt_path pa;
  nt_path_plan plan;
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  uint64_t now = T0;
  int rounds = 0;
  for (;;) {
    nt_path_due(&pa, NT_PATH_PUNCHING, 0, now, &plan);
    if (plan.give_up) {
      break;
    }
    CHECK(plan.next_ns <= pa.deadline_ns);
    now = plan.next_ns;
    rounds++;
    if (rounds > 100) {
      break;
    }
  }
  CHECK(plan.give_up);
  CHECK(now == T0 + 10000 * MS);
  CHECK(rounds < 30);
  /* A handshake that outlives the meeting is closed. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  nt_path_due(&pa, NT_PATH_CONNECTING, 0, T0 + 5000 * MS, &plan);
  CHECK(!plan.handshake_timeout && plan.next_ns == pa.deadline_ns);
  nt_path_due(&pa, NT_PATH_CONNECTING, 0, pa.deadline_ns, &plan);
  CHECK(plan.handshake_timeout);
}

static void test_probes_and_replies(void) {
  nt_path pa;
  nt_addr known = addr4("203.0.113.5", 4000);
  nt_addr other = addr4("203.0.113.5", 4999);
  /* The initiator probes back at once and connects on the answer. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  CHECK(nt_path_on_probe(&pa, NT_PATH_PUNCHING, &known, 0) ==
        NT_PATH_PROBE_BACK);
  CHECK(pa.have_probe_from && pa.punch.probes_seen == 1);
  /* A probe from a port the broker never saw: a new candidate. */
  CHECK(nt_path_on_probe(&pa, NT_PATH_PUNCHING, &other, 0) ==
        NT_PATH_PROBE_BACK_NEW);
  CHECK(pa.punch.ncandidates == 2);
  CHECK(nt_addr_equal((struct sockaddr *)&pa.probe_from.ss,
                      (struct sockaddr *)&known.ss));
  CHECK(nt_path_on_probe(&pa, NT_PATH_PUNCHING, &known, 1) ==
        NT_PATH_PROBE_BACK_ON_SOCKET);
  CHECK(nt_path_on_reply(&pa, NT_PATH_PUNCHING, &known, 0) ==
        NT_PATH_REPLY_CONNECT);
  CHECK(!pa.predicted);
  /* Once answered, probes are only answered. */
  CHECK(nt_path_on_probe(&pa, NT_PATH_PUNCHING, &known, 0) ==
        NT_PATH_PROBE_ANSWER_ONLY);
  /* The other side waits for the initiator's Initial. */
  meet(&pa, 0, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  CHECK(nt_path_on_probe(&pa, NT_PATH_PUNCHING, &known, 0) ==
        NT_PATH_PROBE_ANSWER_ONLY);
  CHECK(nt_path_on_reply(&pa, NT_PATH_PUNCHING, &known, 0) ==
        NT_PATH_REPLY_IGNORE);
  /* Probing a symmetric peer's ports: an answer from a port the broker
   * never saw was found by prediction. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_PER_DESTINATION, 0,
       10000);
  CHECK(nt_path_on_reply(&pa, NT_PATH_PUNCHING, &other, 0) ==
        NT_PATH_REPLY_CONNECT);
  CHECK(pa.predicted);
}

static void test_upgrade_while_relayed(void) {
  nt_path pa;
  nt_path_plan plan;
  nt_addr direct = addr4("203.0.113.5", 4000);
  uint64_t up = T0 + 5000 * MS;
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       1, 10000);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 1000 * MS);
  nt_path_on_established(&pa, up, 1, 0);
  /* A round of probes every NT_PATH_UPGRADE_MS ... */
  CHECK(nt_path_live_next(&pa) == up + NT_PATH_UPGRADE_MS * MS);
  nt_path_due(&pa, NT_PATH_CONNECTED, 1, up + 1000 * MS, &plan);
  CHECK(plan.nprobes == 0);
  CHECK(plan.next_ns == up + NT_PATH_UPGRADE_MS * MS);
  uint64_t now = plan.next_ns;
  unsigned sent = 0;
  while (now <= up + (NT_PATH_UPGRADE_MS + NT_PATH_UPGRADE_ROUND_MS) * MS) {
    nt_path_due(&pa, NT_PATH_CONNECTED, 1, now, &plan);
    sent += (unsigned)plan.nprobes;
    CHECK(plan.next_ns > now);
    if (plan.next_ns <= now) {
      break;
    }
    now = plan.next_ns;
  }
  CHECK(sent >= 7);
  /* ... of NT_PATH_UPGRADE_ROUND_MS, then quiet until the next. */
  CHECK(now == up + (2 * NT_PATH_UPGRADE_MS + NT_PATH_UPGRADE_ROUND_MS) * MS);
  /* An answer: the initiator moves the connection there. */
  CHECK(nt_path_on_reply(&pa, NT_PATH_CONNECTED, &direct, 0) ==
        NT_PATH_REPLY_MOVE_DIRECT);
  nt_path_on_moved_direct(&pa);
  CHECK(nt_path_live_next(&pa) == UINT64_MAX);
}

static void test_direct_found_during_relayed_handshake(void) {
  nt_path pa;
  nt_path_plan plan;
  nt_addr direct = addr4("203.0.113.5", 4000);
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       1, 10000);
  CHECK(fallback_time(&pa, T0 + 10000 * MS) == T0 + 1000 * MS);
  /* Answered while the relayed handshake runs: kept for later. */
  CHECK(nt_path_on_reply(&pa, NT_PATH_CONNECTING, &direct, 0) ==
        NT_PATH_REPLY_IGNORE);
  CHECK(pa.have_direct);
  /* Up through the relay: the move is due at once. */
  nt_path_on_established(&pa, T0 + 2000 * MS, 1, 0);
  CHECK(nt_path_live_next(&pa) == T0 + 2000 * MS);
  nt_path_due(&pa, NT_PATH_CONNECTED, 1, T0 + 2000 * MS, &plan);
  CHECK(plan.move_direct);
  CHECK(nt_addr_equal((struct sockaddr *)&plan.direct.ss,
                      (struct sockaddr *)&direct.ss));
  /* The migration failed: the round of probes goes on. */
  nt_path_due(&pa, NT_PATH_CONNECTED, 1, T0 + 2000 * MS, &plan);
  CHECK(!plan.move_direct && plan.nprobes == 1);
  /* The other side sees the connection leave the relay. */
  meet(&pa, 0, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       1, 10000);
  nt_path_on_established(&pa, T0 + 2000 * MS, 1, 0);
  nt_path_due(&pa, NT_PATH_CONNECTED, 0, T0 + 3000 * MS, &plan);
  CHECK(plan.now_direct);
  CHECK(nt_path_live_next(&pa) == UINT64_MAX);
  /* A direct connection has no direct attempts. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       1, 10000);
  nt_path_on_established(&pa, T0 + 500 * MS, 0, 1);
  CHECK(nt_path_live_next(&pa) == UINT64_MAX);
  CHECK(pa.predicted); /* up on a prediction socket */
}

static void test_repunch_after_silence(void) {
  nt_path pa;
  nt_path_plan plan;
  uint8_t fresh[NT_PUNCH_NONCE_LEN] = {9, 9};
  nt_addr cand = addr4("198.51.100.7", 5000);
  nt_addr moved = addr4("198.51.100.7", 5123);
  uint64_t t = T0 + 60000 * MS;
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  nt_path_on_established(&pa, T0 + 100 * MS, 0, 0);
  /* Silent with data outstanding: ask the broker, at most every 1 s. */
  CHECK(nt_path_refresh_due(&pa, t));
  CHECK(!nt_path_refresh_due(&pa, t + 500 * MS));
  CHECK(!nt_path_refresh_due(&pa, t + (NT_PATH_REFRESH_INTERVAL_MS - 1) * MS));
  CHECK(nt_path_refresh_due(&pa, t + NT_PATH_REFRESH_INTERVAL_MS * MS));
  /* The refresh introduction: a punch schedule of 5 s on the connection. */
  nt_path_repunch_start(&pa, fresh, &cand, 1, t);
  CHECK(nt_path_is_repunch(&pa, fresh));
  CHECK(!nt_path_is_repunch(&pa, nonce));
  CHECK(nt_path_live_next(&pa) == t);
  nt_path_due(&pa, NT_PATH_CONNECTED, 0, t, &plan);
  CHECK(plan.nrepunch_probes == 1 && plan.nprobes == 0);
  CHECK(plan.next_ns > t && plan.next_ns < t + 1000 * MS);
  /* A probe from where the peer is now: probed back, once. */
  CHECK(nt_path_on_repunch_packet(&pa, NT_PUNCH_PROBE, &moved) == 1);
  CHECK(nt_path_on_repunch_packet(&pa, NT_PUNCH_PROBE, &moved) == 0);
  CHECK(nt_path_on_repunch_packet(&pa, NT_PUNCH_PROBE, NULL) == 0);
  CHECK(nt_path_on_repunch_packet(&pa, NT_PUNCH_REPLY, &cand) == 0);
  CHECK(pa.repunch.probes_seen == 3 && pa.repunch.replies_seen == 1);
  /* Loss recovery resends at most every 100 ms. */
  CHECK(nt_path_kick_due(&pa, t + 1000 * MS));
  CHECK(!nt_path_kick_due(&pa, t + 1050 * MS));
  CHECK(nt_path_kick_due(&pa, t + 1101 * MS));
  /* Over after NT_PATH_REPUNCH_S. */
  uint64_t now = plan.next_ns;
  for (int i = 0; i < 100 && pa.repunch_active; i++) {
    nt_path_due(&pa, NT_PATH_CONNECTED, 0, now, &plan);
    if (plan.next_ns == UINT64_MAX || plan.next_ns <= now) {
      break;
    }
    now = plan.next_ns;
  }
  CHECK(!pa.repunch_active);
  CHECK(now == t + NT_PATH_REPUNCH_S * 1000 * MS);
  CHECK(nt_path_live_next(&pa) == UINT64_MAX);
  /* The connection ends: so does a re-punch. */
  nt_path_repunch_start(&pa, fresh, &cand, 1, t);
  nt_path_reset(&pa);
  CHECK(!nt_path_is_repunch(&pa, fresh));
}

/* A live connection whose path needs port prediction (one NAT
 * symmetric): the refresh predicts again at once, with the re-punch's
 * nonce (and the one before, until both sides switched), one at a time,
 * and it ends with the re-punch (the caller then closes its sockets). */
static void test_repredict_live(void) {
  nt_path pa;
  nt_path_plan plan;
  uint8_t n1[NT_PUNCH_NONCE_LEN] = {9, 1}, n2[NT_PUNCH_NONCE_LEN] = {9, 2};
  uint8_t n3[NT_PUNCH_NONCE_LEN] = {9, 3};
  nt_addr cand = addr4("198.51.100.7", 5000);
  uint64_t t = T0 + 60000 * MS;
  /* Both cone: nothing to predict, a re-punch mends it. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  nt_path_on_established(&pa, T0 + 100 * MS, 0, 0);
  nt_path_repunch_start(&pa, n1, &cand, 1, t);
  CHECK(nt_path_repredict_start(&pa, seed, t) == NT_PREDICT_NONE);
  CHECK(!pa.repredict);
  /* We are the symmetric side: sockets and a burst at once. */
  meet(&pa, 1, NT_MAPPING_PER_DESTINATION, NT_MAPPING_ENDPOINT_INDEPENDENT, 0,
       10000);
  nt_path_on_established(&pa, T0 + 100 * MS, 0, 1);
  CHECK(pa.predicted);
  CHECK(nt_path_repredict_start(&pa, seed, t) ==
        NT_PREDICT_NONE); /* no re-punch */
  nt_path_repunch_start(&pa, n1, &cand, 1, t);
  CHECK(nt_path_repredict_start(&pa, seed, t) == NT_PREDICT_HARD);
  CHECK(pa.repredict);
  CHECK(nt_path_repredict_start(&pa, seed, t) == NT_PREDICT_NONE); /* one */
  CHECK(nt_path_live_next(&pa) == t);
  nt_path_due(&pa, NT_PATH_CONNECTED, 0, t, &plan);
  CHECK(plan.predict_open && plan.predict_burst && plan.nrepunch_probes == 1);
  /* Another refresh: the newest nonce and the one before count. */
  nt_path_repunch_start(&pa, n2, &cand, 1, t + 10 * MS);
  CHECK(nt_path_is_repunch(&pa, n2) && nt_path_is_repunch(&pa, n1));
  nt_path_repunch_start(&pa, n3, &cand, 1, t + 20 * MS);
  CHECK(nt_path_is_repunch(&pa, n3) && nt_path_is_repunch(&pa, n2));
  CHECK(!nt_path_is_repunch(&pa, n1));
  /* It ends with the re-punch, NT_PATH_REPUNCH_S after the last. */
  uint64_t now = t + 20 * MS;
  int bursts = 0;
  for (int i = 0; i < 1000 && pa.repredict; i++) {
    nt_path_due(&pa, NT_PATH_CONNECTED, 0, now, &plan);
    bursts += plan.predict_burst;
    if (plan.next_ns == UINT64_MAX || plan.next_ns <= now) {
      break;
    }
    now = plan.next_ns;
  }
  CHECK(!pa.repredict && pa.repredict_over);
  CHECK(bursts == 2); /* the rounds after the first, at 1 s and 2.5 s */
  CHECK(now == t + 20 * MS + NT_PATH_REPUNCH_S * 1000 * MS);
  /* The peer is the symmetric one: its ports are probed at once. */
  meet(&pa, 0, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_PER_DESTINATION, 0,
       10000);
  nt_addr found = addr4("203.0.113.5", 4444),
          given = addr4("203.0.113.5", 4000);
  nt_path_on_remote(&pa, &found);
  CHECK(!pa.predicted); /* no prediction probe yet: punching found it */
  pa.predict.sent = 1;
  nt_path_on_remote(&pa, &given);
  CHECK(!pa.predicted); /* the port the broker saw */
  nt_path_on_remote(&pa, &found);
  CHECK(pa.predicted); /* a port only prediction finds */
  nt_path_on_established(&pa, T0 + 100 * MS, 0, 0);
  nt_path_repunch_start(&pa, n1, &cand, 1, t);
  CHECK(nt_path_repredict_start(&pa, seed, t) == NT_PREDICT_EASY);
  pa.predict_alone = 1; /* twice a meeting's rate: batches every 5 ms */
  nt_path_due(&pa, NT_PATH_CONNECTED, 0, t, &plan);
  CHECK(plan.npredict_ports > 0 && plan.predict_first);
  CHECK(plan.next_ns ==
        t + NT_PREDICT_TICK_MS * MS * NT_PREDICT_RATE / NT_PATH_PREDICT_RATE);
  pa.predict_alone = 0; /* shared: a meeting's rate */
  nt_path_due(&pa, NT_PATH_CONNECTED, 0, plan.next_ns, &plan);
  CHECK(plan.npredict_ports > 0 && !plan.predict_first);
  CHECK(nt_predict_next(&pa.predict) ==
        t + NT_PREDICT_TICK_MS * MS * NT_PREDICT_RATE / NT_PATH_PREDICT_RATE +
            NT_PREDICT_TICK_MS * MS);
  /* Found: it stops, and the connection ending clears it. */
  nt_path_repredict_end(&pa);
  CHECK(!pa.repredict);
  nt_path_repunch_start(&pa, n2, &cand, 1, t);
  CHECK(nt_path_repredict_start(&pa, seed, t) == NT_PREDICT_EASY);
  nt_path_reset(&pa);
  CHECK(!pa.repredict);
}

static int same(const nt_addr *a, const nt_addr *b) {
  return nt_addr_equal((const struct sockaddr *)&a->ss,
                       (const struct sockaddr *)&b->ss);
}

static void test_candidates(void) {
  nt_addr us = addr4("198.51.100.1", 4000);
  nt_addr our_local[2] = {addr4("192.168.1.2", 4000),
                          addr6("2001:db8:1:2::5", 4000)};
  nt_path_self self = {&us, our_local, 2, 1, 1};
  nt_addr them = addr4("203.0.113.5", 5000);
  nt_addr their_local[5] = {
      addr4("10.0.0.7", 5000),        /* LAN */
      addr6("2001:db8:9:9::7", 5000), /* global IPv6 */
      addr6("fd00::7", 5000),         /* unique local */
      addr6("2001:db8:1:2::7", 5000), /* global, but in our own /64 */
      addr4("203.0.113.5", 5000)};    /* repeats the observed one */
  nt_addr cands[NT_PUNCH_MAX_CANDIDATES];
  size_t skipped;
  /* Behind another public address: observed and global IPv6 only. */
  size_t n = nt_path_candidates(&self, &them, their_local, 5, cands, &skipped);
  CHECK(n == 2);
  CHECK(same(&cands[0], &them));
  CHECK(same(&cands[1], &their_local[1]));
  CHECK(skipped == 3);
  /* Behind our own public address: its LAN addresses too, after. */
  nt_addr them_here = addr4("198.51.100.1", 5000);
  n = nt_path_candidates(&self, &them_here, their_local, 4, cands, &skipped);
  CHECK(n == 5 && skipped == 0);
  CHECK(same(&cands[0], &them_here));
  CHECK(same(&cands[1], &their_local[1]));
  CHECK(same(&cands[2], &their_local[0]));
  /* A public IPv4 address named as a LAN address: never probed, even
   * behind our own public address. */
  nt_addr fake_lan[2] = {addr4("8.8.8.8", 53), addr4("172.16.0.9", 5000)};
  n = nt_path_candidates(&self, &them_here, fake_lan, 2, cands, &skipped);
  CHECK(n == 2 && skipped == 1);
  CHECK(same(&cands[1], &fake_lan[1]));
  /* Only families our socket reaches. */
  nt_path_self v4only = {&us, our_local, 2, 1, 0};
  n = nt_path_candidates(&v4only, &them, their_local, 5, cands, &skipped);
  CHECK(n == 1 && same(&cands[0], &them));
  nt_addr them6 = addr6("2001:db8:9:9::1", 5000);
  n = nt_path_candidates(&v4only, &them6, their_local, 0, cands, &skipped);
  CHECK(n == 0);
  /* Bounded, however many it names. */
  nt_addr many[NT_PUNCH_MAX_CANDIDATES + 4];
  for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++) {
    many[i] = addr6("2001:db8:9:9::7", (uint16_t)(6000 + i));
  }
  n = nt_path_candidates(&self, &them, many, sizeof(many) / sizeof(many[0]),
                         cands, &skipped);
  CHECK(n == NT_PUNCH_MAX_CANDIDATES);
}

/* Port prediction's budgets: one prediction per peer at a time and a
 * cool-down after one that found nothing, a few per IP address and per
 * endpoint, and an even share of the endpoint's probe rate. */
static void test_prediction_budgets(void) {
  nt_path pa;
  uint64_t deadline = T0 + 10000 * MS;
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_PER_DESTINATION, 0,
       10000);
  CHECK(pa.predict.role == NT_PREDICT_EASY);
  /* A new introduction while that one runs, or after it failed: none
   * until the cool-down after its deadline is over. */
  CHECK(nt_path_predict_gate(&pa, T0 + 2000 * MS, 0, 0) ==
        NT_PATH_PREDICT_COOLING);
  uint64_t quiet = deadline + NT_PATH_PREDICT_COOLDOWN_MS * MS;
  CHECK(nt_path_predict_gate(&pa, quiet - 1, 0, 0) == NT_PATH_PREDICT_COOLING);
  CHECK(nt_path_predict_gate(&pa, quiet, 0, 0) == NT_PATH_PREDICT_OK);
  /* The replacing meeting predicts nothing when the caller follows it. */
  nt_addr cand = addr4("203.0.113.5", 4000);
  nt_path_meeting m = {nonce,
                       &cand,
                       1,
                       1,
                       NT_MAPPING_ENDPOINT_INDEPENDENT,
                       NT_MAPPING_PER_DESTINATION,
                       0,
                       10000,
                       T0 + 12000 * MS};
  nt_path_meet(&pa, &m, T0 + 2000 * MS);
  CHECK(pa.predict_quiet_until_ns == quiet); /* kept across meetings */
  nt_path_start_prediction(&pa,
                           nt_path_predict_gate(&pa, T0 + 2000 * MS, 0, 0) ==
                               NT_PATH_PREDICT_OK,
                           seed);
  CHECK(pa.predict.role == NT_PREDICT_NONE);
  CHECK(pa.predict_quiet_until_ns == quiet); /* not pushed further */
  /* A connection clears it. */
  nt_path_on_established(&pa, T0 + 3000 * MS, 0, 0);
  CHECK(nt_path_predict_gate(&pa, T0 + 3000 * MS, 0, 0) == NT_PATH_PREDICT_OK);
  /* Per IP address and per endpoint. */
  CHECK(nt_path_predict_gate(&pa, T0, NT_PATH_PREDICT_PER_IP - 1, 0) ==
        NT_PATH_PREDICT_OK);
  CHECK(nt_path_predict_gate(&pa, T0, NT_PATH_PREDICT_PER_IP, 0) ==
        NT_PATH_PREDICT_IP_BUSY);
  CHECK(nt_path_predict_gate(&pa, T0, 0, NT_PATH_PREDICT_MAX - 1) ==
        NT_PATH_PREDICT_OK);
  CHECK(nt_path_predict_gate(&pa, T0, 0, NT_PATH_PREDICT_MAX) ==
        NT_PATH_PREDICT_BUSY);
  CHECK(NT_PREDICT_SOCKETS * NT_PATH_PREDICT_MAX == 1024);
  /* Mappings that need no prediction spend nothing. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_ENDPOINT_INDEPENDENT,
       0, 10000);
  CHECK(pa.predict_quiet_until_ns == 0);
  CHECK(nt_path_predict_gate(&pa, T0, 0, 0) == NT_PATH_PREDICT_NOT_NEEDED);
  /* The endpoint's rate, shared evenly, never over a meeting's own. */
  size_t tick = NT_PATH_PREDICT_RATE * NT_PREDICT_TICK_MS / 1000;
  CHECK(nt_path_predict_share(1) == NT_PATH_PREDICT_BATCH);
  for (unsigned k = 1; k <= NT_PATH_PREDICT_MAX; k++) {
    CHECK(nt_path_predict_share(k) * k <= tick);
    CHECK(nt_path_predict_share(k) >= 1);
  }
  /* The planner sends no more than the share in a tick. */
  meet(&pa, 1, NT_MAPPING_ENDPOINT_INDEPENDENT, NT_MAPPING_PER_DESTINATION, 0,
       10000);
  pa.predict_batch = nt_path_predict_share(4);
  nt_path_plan plan;
  nt_path_due(&pa, NT_PATH_PUNCHING, 0, T0 + NT_PREDICT_EASY_START_MS * MS,
              &plan);
  CHECK(plan.npredict_ports == nt_path_predict_share(4));
  CHECK(pa.predict.sent == plan.npredict_ports); /* none skipped */
}

/* What a broker may say it saw of a peer, by the scope of its own
 * address as we reach it. */
static void test_observed_scope(void) {
  nt_addr lo = addr4("127.0.0.1", 9000), lan = addr4("192.168.1.1", 9000),
          pub = addr4("203.0.113.1", 9000), pub6 = addr6("2001:db8::1", 9000);
  nt_addr peer_lo = addr4("127.0.0.99", 5000),
          peer_lan = addr4("10.1.2.3", 5000),
          peer_cgn = addr4("100.64.1.2", 5000),
          peer_pub = addr4("198.51.100.7", 5000),
          peer_ula = addr6("fd00::7", 5000),
          peer_pub6 = addr6("2001:db8:9::7", 5000);
  CHECK(nt_path_scope_of((struct sockaddr *)&peer_cgn.ss) ==
        NT_PATH_SCOPE_PRIVATE);
  nt_addr bench = addr4("198.19.255.1", 1);
  CHECK(nt_path_scope_of((struct sockaddr *)&bench.ss) ==
        NT_PATH_SCOPE_PRIVATE);
  nt_addr outside = addr4("198.20.0.1", 1);
  CHECK(nt_path_scope_of((struct sockaddr *)&outside.ss) ==
        NT_PATH_SCOPE_GLOBAL);
  /* A broker on loopback (tests, one host) may name anything usable. */
  CHECK(nt_path_observed_usable(&lo, &peer_lo));
  CHECK(nt_path_observed_usable(&lo, &peer_lan));
  CHECK(nt_path_observed_usable(&lo, &peer_pub));
  /* One on a LAN: not loopback. */
  CHECK(!nt_path_observed_usable(&lan, &peer_lo));
  CHECK(nt_path_observed_usable(&lan, &peer_lan));
  CHECK(nt_path_observed_usable(&lan, &peer_ula));
  CHECK(nt_path_observed_usable(&lan, &peer_pub));
  /* One on a global address: global addresses only. */
  CHECK(!nt_path_observed_usable(&pub, &peer_lo));
  CHECK(!nt_path_observed_usable(&pub, &peer_lan));
  CHECK(!nt_path_observed_usable(&pub, &peer_cgn));
  CHECK(!nt_path_observed_usable(&pub6, &peer_ula));
  CHECK(nt_path_observed_usable(&pub, &peer_pub));
  CHECK(nt_path_observed_usable(&pub, &peer_pub6));
  /* Never what names no one host. */
  const char *bad4[] = {"0.0.0.0",    "0.1.2.3",         "224.0.0.1",
                        "239.1.1.1",  "255.255.255.255", "240.0.0.1",
                        "169.254.1.1"};
  for (size_t i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
    nt_addr a = addr4(bad4[i], 5000);
    CHECK(!nt_path_observed_usable(&lo, &a));
  }
  const char *bad6[] = {"::", "ff02::1", "fe80::1", "::ffff:1.2.3.4"};
  for (size_t i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++) {
    nt_addr a = addr6(bad6[i], 5000);
    CHECK(!nt_path_observed_usable(&lo, &a));
  }
  nt_addr port0 = addr4("198.51.100.7", 0), none;
  memset(&none, 0, sizeof(none));
  CHECK(!nt_path_observed_usable(&pub, &port0));
  CHECK(!nt_path_observed_usable(&pub, &none));
}

int main(void) {
  static const nt_test_case cases[] = {
      {"relay_fallback_schedule", test_relay_fallback_schedule},
      {"relay_fallback_follows_own_mapping",
       test_relay_fallback_follows_own_mapping},
      {"relay_fallback_sides", test_relay_fallback_sides},
      {"prediction_start_and_side", test_prediction_start_and_side},
      {"give_up", test_give_up},
      {"probes_and_replies", test_probes_and_replies},
      {"upgrade_while_relayed", test_upgrade_while_relayed},
      {"direct_found_during_relayed_handshake",
       test_direct_found_during_relayed_handshake},
      {"repunch_after_silence", test_repunch_after_silence},
      {"repredict_live", test_repredict_live},
      {"candidates", test_candidates},
      {"prediction_budgets", test_prediction_budgets},
      {"observed_scope", test_observed_scope},
      {NULL, NULL}};
  return nt_test_run(cases);
}
