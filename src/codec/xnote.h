/* A note between brokers that share one PostgreSQL registry
 * (natter.proto, BrokerNote): the payload of a NOTIFY on the receiving
 * broker's channel, as lowercase hex of the packed message, so that it is
 * text whatever the database's encoding. The database and the other
 * brokers are trusted to be brokers of this network, yet every field is
 * bounded and checked here as if they were not: a note that breaks a
 * rule is refused whole (doc/design.md, "Introductions across brokers").
 * Pure format: no I/O. */
#ifndef NT_XNOTE_H
#define NT_XNOTE_H

#include <stddef.h>
#include <stdint.h>

#include "codec/control.h"

#define NT_XNOTE_VERSION 1
/* A broker id: hex, this run's (NT_REGISTRY_BROKER_ID_MAX; not its key). */
#define NT_XNOTE_BROKER_MAX 64
/* The packed message, at most; its hex is twice that, under PostgreSQL's
 * 8000-byte NOTIFY payload. */
#define NT_XNOTE_MAX 3000
#define NT_XNOTE_TEXT_MAX (2 * NT_XNOTE_MAX)
/* The embedded Control message (an Introduction or a CheckReport). */
#define NT_XNOTE_SIDE_MAX 2048

typedef enum nt_xnote_kind {
  NT_XNOTE_ASK = 1,      /* introduce |intro|'s client to |peer| */
  NT_XNOTE_ADMITTED = 2, /* |intro| is the listener, with the nonce */
  NT_XNOTE_REFUSED = 3,  /* |code| and |message| for the requester */
  NT_XNOTE_REPORT = 4,   /* |report| is the checked listener's */
  NT_XNOTE_NOTICE = 5,   /* |intro| (name, key) restarted: tell |peer| */
  NT_XNOTE_REFRESH = 6,  /* |intro| (with a nonce) and |peer| punch again */
  NT_XNOTE_REFRESHED = 7 /* the answer: |intro| is |peer|'s side */
} nt_xnote_kind;

typedef struct nt_xnote {
  nt_xnote_kind kind;
  uint64_t xid;                          /* the asking broker's; never 0 */
  char from[NT_XNOTE_BROKER_MAX + 1];    /* 1..64 lowercase hex digits */
  char peer[NT_NAME_MAX + 1];            /* all but the answers to ASK */
  int check;                             /* ASK */
  /* ASK: the requester takes a relay at the listener's broker; ADMITTED:
   * |intro| carries its relay token and that relay's address when a
   * channel was opened (relay_port and relay, both or neither). */
  int relay;
  nt_control_code code;                  /* REFUSED: not OK */
  char message[NT_CONTROL_TEXT_MAX + 1]; /* REFUSED: printable */
  nt_introduction intro;                 /* all but REFUSED, REPORT */
  nt_check_side report;                  /* REPORT */
} nt_xnote;

/* Encodes |n| as hex text into |out| (NT_XNOTE_TEXT_MAX + 1 bytes,
 * NUL-terminated). Returns its length, or 0 when |n| breaks a bound. */
size_t nt_xnote_encode(char *out, const nt_xnote *n);

/* Decodes |len| bytes of hex text. 0 and |out| filled, or
 * NATTER_ERR_PROTOCOL (too long, not hex, not a BrokerNote, another
 * version, a kind this one does not know, a field out of bounds, the
 * side missing or of the wrong type for the kind). */
int nt_xnote_decode(nt_xnote *out, const char *text, size_t len);

/* 1 when |s| is a broker id: 1..NT_XNOTE_BROKER_MAX lowercase hex. */
int nt_xnote_broker_id_ok(const char *s);

#endif
