/* The remote-command frame protocol, without I/O.
 *
 * A command's stream carries, from listener to opener, frames instead of
 * raw bytes, so that stderr and the exit status reach the opener:
 *
 *   [channel u8][length u16 big-endian][payload: length bytes]
 *
 * channel 1 is stdout, 2 stderr (payload 0..NT_CMDFRAME_MAX bytes each),
 * 3 the exit status (payload exactly 4 bytes, big-endian, 0..255: the
 * command's status, or 128+N when killed by signal N). The exit frame is
 * the last frame: exactly one, nothing after it. The opener -> listener
 * direction stays raw bytes (the command's stdin).
 *
 * Everything here comes from the peer, which may be hostile: the decoder
 * bounds every length by the channel's limit, accepts one exit frame only,
 * and keeps no more than one 3-byte header and one 4-byte status. */
#ifndef NT_CMDFRAME_H
#define NT_CMDFRAME_H

#include <stddef.h>
#include <stdint.h>

#define NT_CMDFRAME_HDR 3
#define NT_CMDFRAME_MAX 16384 /* payload bytes of one stdout/stderr frame */
#define NT_CMDFRAME_EXIT_LEN 4
#define NT_CMDFRAME_EXIT_MAX 255

typedef enum nt_cmdframe_channel {
  NT_CMDFRAME_STDOUT = 1,
  NT_CMDFRAME_STDERR = 2,
  NT_CMDFRAME_EXIT = 3
} nt_cmdframe_channel;

/* ---- encoding (listener) ---- */

/* Writes the header of a |channel| frame with |len| payload bytes
 * (len <= NT_CMDFRAME_MAX). */
void nt_cmdframe_header(uint8_t out[NT_CMDFRAME_HDR], nt_cmdframe_channel ch,
                        size_t len);

/* Writes a whole exit frame (header and status, |status| 0..255). */
void nt_cmdframe_exit(uint8_t out[NT_CMDFRAME_HDR + NT_CMDFRAME_EXIT_LEN],
                      int status);

/* ---- decoding (opener) ---- */

typedef struct nt_cmdframe_decoder {
  uint8_t hdr[NT_CMDFRAME_HDR];
  size_t hdr_len;    /* header bytes of the current frame so far */
  size_t left;       /* payload bytes of the current frame still due */
  int channel;       /* of the current frame */
  uint8_t status[NT_CMDFRAME_EXIT_LEN];
  size_t status_len;
  int exited;        /* the exit frame is complete: nothing may follow */
  const char *failed; /* first error, then every later call returns it */
} nt_cmdframe_decoder;

typedef enum nt_cmdframe_result {
  NT_CMDFRAME_NEED_MORE = 0, /* all input taken, nothing to hand out */
  NT_CMDFRAME_DATA = 1,      /* ev->channel stdout/stderr, ev->data/len */
  NT_CMDFRAME_EXITED = 2,    /* ev->exit_status */
  NT_CMDFRAME_ERROR = -1     /* ev->error says what; the stream is bad */
} nt_cmdframe_result;

typedef struct nt_cmdframe_event {
  nt_cmdframe_channel channel;
  const uint8_t *data; /* points into the caller's input */
  size_t len;
  int exit_status;
  const char *error; /* static text */
} nt_cmdframe_event;

void nt_cmdframe_decoder_init(nt_cmdframe_decoder *d);

/* Decodes from |data|/|len|, consuming *used bytes (which the caller drops
 * from its input), and returns what was found. Call again with the rest
 * until it returns NT_CMDFRAME_NEED_MORE with all input used. After
 * NT_CMDFRAME_ERROR the decoder stays failed. */
nt_cmdframe_result nt_cmdframe_decode(nt_cmdframe_decoder *d,
                                      const uint8_t *data, size_t len,
                                      size_t *used, nt_cmdframe_event *ev);

/* The stream ended (FIN). Returns NULL when it ended cleanly after the
 * exit frame, or a static text that says what was missing. */
const char *nt_cmdframe_finish(const nt_cmdframe_decoder *d);

#endif
