/* The verdict of a connectivity check (natter -check), from both sides'
 * data alone: pure, table-tested (tests/test_verdict.c). */
#ifndef NT_VERDICT_H
#define NT_VERDICT_H

#include <stddef.h>

#include "natter.h"

/* Decides from everything in |r| but its verdict fields; writes the one
 * line for users into |text| and returns the verdict. */
natter_check_verdict nt_check_verdict(const natter_check_result *r, char *text,
                                      size_t len);

#endif
