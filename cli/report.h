/* natter -check: the joint report of a connectivity check, as a table or
 * as one JSON object, and the exit status of each verdict. */
#ifndef NATTER_CLI_REPORT_H
#define NATTER_CLI_REPORT_H

#include <stdio.h>

#include "natter.h"

/* The exit status for |verdict| (natter(1), EXIT STATUS): 0 direct (also
 * only via prediction), 1 the check failed, 3 needs relay, 4 UDP blocked,
 * 5 the peer does not listen, 6 unknown peer, 7 the peer refuses us. */
int report_exit_code(natter_check_verdict verdict);

/* Prints |r| to |out|: a table ending in the verdict line, or with
 * |json| one JSON object with stable keys (natter -check in
 * doc/operations.md). */
void report_print(FILE *out, const natter_check_result *r, const char *broker,
                  int json);

#endif
