/* Test builds only (natter-hostile, NATTER_HOSTILE_PEER): a listener that
 * misbehaves on purpose, so the tests can show what the connecting side
 * does with a hostile peer. Never part of libnatter. */
#ifndef NT_HOSTILE_H
#define NT_HOSTILE_H

#include <stddef.h>

#include "quic/endpoint.h"

/* When |argv|[0] names one of the misbehaviours (hostile-*), writes its
 * bytes on |stream| in place of an honest answer and returns 1; the
 * listener then only waits for the opener to reset. Otherwise 0. */
int nt_hostile_command(nt_stream *stream, char *const *argv, size_t argc);

#endif
