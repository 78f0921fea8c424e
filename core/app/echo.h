/* echo.h - the built-in C echo handler (--echo): every text or binary
 * message goes back to its sender as it came. Used to exercise the protocol
 * core and as the benchmark's echo server. */
#ifndef RC_APP_ECHO_H
#define RC_APP_ECHO_H

#include "conn.h"

extern const struct conn_handler echo_handler;

#endif
