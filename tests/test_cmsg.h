/* Control messages for unit tests: a msghdr for one buffer, with one
 * control message, as sendmsg takes it or recvmsg fills it in. */
#ifndef NT_TEST_CMSG_H
#define NT_TEST_CMSG_H

#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Sets |msg| up for the buffer |iov| to or from |name| (|namelen| bytes),
 * with |ctrl| (|ctrllen| bytes, aligned for a cmsghdr; zeroed here) for
 * control messages. */
static inline void test_msg_init(struct msghdr *msg, void *name,
                                 socklen_t namelen, struct iovec *iov,
                                 void *ctrl, size_t ctrllen) {
  memset(msg, 0, sizeof(*msg));
  memset(ctrl, 0, ctrllen);
  msg->msg_name = name;
  msg->msg_namelen = namelen;
  msg->msg_iov = iov;
  msg->msg_iovlen = 1;
  msg->msg_control = ctrl;
  msg->msg_controllen = ctrllen;
}

/* Writes a control message of |len| bytes of |data| at the start of
 * |msg|'s control buffer, which must hold CMSG_SPACE(|len|); returns it. */
static inline struct cmsghdr *test_cmsg_put(struct msghdr *msg, int level,
                                            int type, const void *data,
                                            size_t len) {
  struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
  cm->cmsg_level = level;
  cm->cmsg_type = type;
  cm->cmsg_len = CMSG_LEN(len);
  memcpy(CMSG_DATA(cm), data, len);
  return cm;
}

#endif
