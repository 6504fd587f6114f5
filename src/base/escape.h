/* Makes text from the network safe to show: log lines and event messages
 * pass through here, so a peer, a client or a broker cannot forge a line,
 * move the cursor or clear a terminal with what it sends. */
#ifndef NT_ESCAPE_H
#define NT_ESCAPE_H

#include <stddef.h>

/* Copies |in| to |out| (|outlen| > 0, always NUL-terminated, cut at a
 * character boundary when too long). Printable ASCII and well-formed UTF-8
 * of printable characters stay as they are; control characters (C0, DEL,
 * C1) become \n, \r, \t or \xHH, and every byte of malformed UTF-8
 * (overlong, surrogate, out of range, truncated) becomes \xHH. Returns the
 * length written. */
size_t nt_escape(char *out, size_t outlen, const char *in);

#endif
