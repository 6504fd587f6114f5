/* Framing of control messages on QUIC streams: a varint length (protobuf
 * base-128, at most 3 bytes here) followed by that many message bytes. */
#ifndef NT_WIRE_H
#define NT_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Upper bound for one message body; anything longer is a protocol error. */
#define NT_WIRE_MAX_MSG 16384
/* Bytes needed for the longest length prefix we produce or accept. */
#define NT_WIRE_MAX_HDR 3

#define NT_WIRE_NEED_MORE 0
#define NT_WIRE_ERR_MALFORMED (-1) /* bad varint (non-minimal, too long) */
#define NT_WIRE_ERR_TOO_BIG (-2)   /* length > NT_WIRE_MAX_MSG */

/* Looks for one complete frame at the start of |buf|. Returns 1 and sets
 * *hdrlen and *bodylen when the whole frame is present; NT_WIRE_NEED_MORE
 * when more bytes are needed; a negative NT_WIRE_ERR_* on bad input. */
int nt_wire_frame_peek(const uint8_t *buf, size_t len, size_t *hdrlen,
                       size_t *bodylen);

/* Writes the length prefix for a body of |bodylen| bytes (<=
 * NT_WIRE_MAX_MSG) into |out| and returns its size (1..3). */
size_t nt_wire_frame_header(uint8_t out[NT_WIRE_MAX_HDR], size_t bodylen);

/* Accumulates bytes of a stream until one frame is complete. A frame that
 * arrives whole is handed out in place, without a copy; only a body split
 * across calls is held, in a buffer of exactly its size that goes once
 * the frame is done. So an idle reader holds no memory beyond this
 * struct, and never more than NT_WIRE_MAX_MSG. A reader starts zeroed
 * ({0} or calloc). */
#define NT_WIRE_ERR_NOMEM (-3)

typedef struct nt_wire_reader {
  uint8_t hdr[NT_WIRE_MAX_HDR];
  size_t hdrlen;  /* prefix bytes seen of the current frame */
  size_t bodylen; /* once have_len */
  int have_len;
  uint8_t *body;  /* a split body so far (heap), or NULL */
  size_t got;     /* its bytes held */
  int returned;   /* the last call handed out |body|: release it next */
  int error;      /* sticky: every later call repeats it until a reset */
} nt_wire_reader;

/* Feeds up to |len| bytes from |data|. Consumes only as much as completes
 * the current frame, storing the consumed count in *consumed. Returns 1 when
 * a frame is complete (body in *body / *bodylen, valid until the next call
 * of nt_wire_reader_feed or nt_wire_reader_reset, and while |data| is), 
 * NT_WIRE_NEED_MORE when all input was taken without completing one, or a
 * negative NT_WIRE_ERR_*. After a complete frame, the next call starts a
 * new frame. */
int nt_wire_reader_feed(nt_wire_reader *r, const uint8_t *data, size_t len,
                        size_t *consumed, const uint8_t **body,
                        size_t *bodylen);

/* Forgets any partial frame and releases what the reader holds; call it
 * before freeing the reader. */
void nt_wire_reader_reset(nt_wire_reader *r);

/* Called for each complete frame; returns nonzero to stop reading. */
typedef int (*nt_wire_frame_fn)(const uint8_t *body, size_t bodylen,
                                void *user_data);

/* Feeds all of |data| and calls |fn| for every complete frame in order.
 * Returns 0 when all was taken, 1 when |fn| asked to stop (the rest is
 * not read), or a negative NT_WIRE_ERR_* on bad framing. */
int nt_wire_reader_each(nt_wire_reader *r, const uint8_t *data, size_t len,
                        nt_wire_frame_fn fn, void *user_data);
/* nt_wire_reader_each that also stores in *taken how many bytes of |data|
 * were read (all of them unless |fn| asked to stop), so that a caller can
 * keep the rest for later. */
int nt_wire_reader_until(nt_wire_reader *r, const uint8_t *data, size_t len,
                         nt_wire_frame_fn fn, void *user_data, size_t *taken);

#endif
