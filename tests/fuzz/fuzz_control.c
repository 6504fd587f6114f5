/* libFuzzer target: a control message as a hostile broker sends it to a
 * client (or a hostile client to a broker): protobuf-c's unpack of every
 * Control variant, then the client's own checks of an Introduction
 * (src/codec/wire_intro.c), of a CheckReport (src/codec/wire_check.c, as
 * the broker and the requester apply them) and of the addresses inside
 * any message. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/admission.h"
#include "codec/wire_check.h"
#include "codec/wire_intro.h"
#include "codec/wire_msg.h"

static void check_addr(const Natter__Address *a) {
  nt_addr out;
  if (a && nt_wire_addr_to_sockaddr(&out, a) == 0 &&
      (out.len == 0 || out.len > sizeof(out.ss))) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > NT_WIRE_MAX_MSG) {
    return 0; /* the framing never hands out more */
  }
  Natter__Control *msg = natter__control__unpack(NULL, size, data);
  if (!msg) {
    return 0;
  }
  switch (msg->msg_case) {
  case NATTER__CONTROL__MSG_INTRODUCTION: {
    nt_introduction intro;
    if (nt_wire_introduction(&intro, msg->introduction) == 0 &&
        (intro.nlocal > NT_MAX_LOCAL_ADDRS ||
         strlen(intro.name) > NT_NAME_MAX || !nt_name_valid(intro.name))) {
      abort();
    }
    break;
  }
  case NATTER__CONTROL__MSG_CHECK_REPORT:
    for (int need_peer = 0; need_peer < 2; need_peer++) {
      nt_check_side side;
      if (nt_wire_check_report(&side, msg->check_report, need_peer) != 0) {
        continue;
      }
      if (side.nprobed > NT_PUNCH_MAX_CANDIDATES ||
          side.outcome < NT_CHECK_CONNECTED ||
          side.outcome > NT_CHECK_REFUSED ||
          (need_peer && !nt_name_valid(side.peer))) {
        abort();
      }
      /* What the broker passes on encodes again within its bounds. */
      nt_wire_check_buf buf;
      nt_wire_check_encode(&buf, &side);
      if (buf.msg.n_probed != side.nprobed ||
          natter__check_report__get_packed_size(&buf.msg) > NT_WIRE_MAX_MSG) {
        abort();
      }
    }
    break;
  case NATTER__CONTROL__MSG_CHECK_IN_RESULT:
    check_addr(msg->check_in_result->observed);
    nt_wire_string_ok(msg->check_in_result->message, 150);
    break;
  case NATTER__CONTROL__MSG_CHECK_IN:
    for (size_t i = 0; i < msg->check_in->n_local_addrs && i < 64; i++) {
      nt_addr a;
      check_addr(msg->check_in->local_addrs[i]);
      /* The broker's filter of reported candidates (admission.c). */
      if (nt_wire_addr_to_sockaddr(&a, msg->check_in->local_addrs[i]) == 0) {
        const struct sockaddr *sa = (struct sockaddr *)&a.ss;
        int off_lo = nt_candidate_acceptable(sa, 0);
        int on_lo = nt_candidate_acceptable(sa, 1);
        if ((on_lo && sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
            (off_lo && nt_addr_is_loopback(sa)) || (off_lo && !on_lo) ||
            (on_lo && sa->sa_family == AF_INET6 &&
             IN6_IS_ADDR_V4MAPPED(
                 &((const struct sockaddr_in6 *)sa)->sin6_addr))) {
          abort(); /* no family, loopback when not allowed, v4-mapped */
        }
      }
    }
    nt_name_valid(msg->check_in->name);
    break;
  case NATTER__CONTROL__MSG_NAT_REPORT:
    check_addr(msg->nat_report->mapped);
    break;
  case NATTER__CONTROL__MSG_CONNECT_REQUEST:
    nt_name_valid(msg->connect_request->peer);
    break;
  case NATTER__CONTROL__MSG_CONNECT_RESULT:
    nt_wire_string_ok(msg->connect_result->message, 150);
    break;
  default:
    break;
  }
  natter__control__free_unpacked(msg, NULL);
  return 0;
}
