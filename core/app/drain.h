/* drain.h - SIGTERM: close every connection with 1001, paced.
 *
 * Closing 50 000 clients in one loop iteration would have all of them
 * reconnect (to another node, or to us after a restart) at the same instant.
 * drain_begin() therefore closes the open connections in batches, one batch
 * every DRAIN_TICK seconds, so the last close frame leaves after at most
 * drain_time seconds; a few connections go in the first batch. Connections
 * still in the HTTP upgrade are dropped at once (the caller has closed the
 * listeners). Queued frames are still flushed: the close frame goes behind
 * them (conn_close).
 *
 *   t=0            listeners closed, HTTP conns dropped, batch 1 closed
 *   every tick     next batch: ceil(open / (drain_time / tick)) conns
 *   drain_time     every open connection has been sent its close frame
 *   + close_timeout  the worker's drain_timer releases what is left
 *
 * Worker thread only.
 */
#ifndef RC_APP_DRAIN_H
#define RC_APP_DRAIN_H

#include <stddef.h>

#include "conn.h"

#define DRAIN_TICK 0.05

/* One worker's drain; embedded in struct worker (zeroed until drain_begin). */
struct drain {
    struct connset *cs; /* borrowed */
    struct wtimer pace; /* closes 1001 in batches over drain_time */
    size_t batch;       /* connections closed per pace tick */
};

/* Starts the paced drain of cs's connections over drain_time seconds. */
void drain_begin(struct drain *d, struct connset *cs, double drain_time);

/* Stops the pacing (an immediate stop after a drain began). */
void drain_stop(struct drain *d);

#endif
