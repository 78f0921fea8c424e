/* worker.h - a worker thread: its own loop (net/wloop.h, not libev: see
 * there why), listener socket (SO_REUSEPORT), connections, timeout lists,
 * read buffer and handler state.
 *
 *   main thread                     worker i (thread)
 *   server_start() --spawn------->  wloop_run(loop)
 *   server_stop()  --wasync------>    on_wake: drain, then wloop_break
 *
 * Per iteration the worker's before-sleep hook (after the iteration's
 * callbacks and timers, before the loop polls again) flushes every dirty
 * connection with one writev each, then frees the connections released
 * during the iteration (Redis beforeSleep).
 *
 * Ownership: struct server owns the workers array, the store and the bus;
 * each worker owns its connections. Nothing of a worker is touched by
 * another thread except the atomic stats, the wasync handles and the
 * mailboxes.
 *
 * worker.c is the top of core/app: it creates every module's part and
 * wires them together (hooks, mail receivers, the store and bus hosts).
 */
#ifndef RC_APP_WORKER_H
#define RC_APP_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bus.h"
#include "config.h"
#include "conn.h"
#include "drain.h"
#include "host.h"
#include "idmap.h"
#include "listener.h"
#include "mailbox.h"
#include "room.h"
#include "stats.h"
#include "store.h"
#include "tlsserver.h"
#include "users.h"
#include "wloop.h"

struct server;

/* A worker is its loop and thread plus one sub-struct per module, each set
 * up and used by that module (the modules never include this header):
 * connections (conn.h), the mailbox (mailbox.h), the drain (drain.h), the
 * wss:// listener (tlsserver.h); its share of the room registry lives in
 * server->rooms (room.h), its Lua state in handler_state (lhandler.c). */
struct worker {
    int id;
    pthread_t thread;
    struct wloop *loop;          /* owned */
    struct server *srv;          /* borrowed */
    const struct rc_config *cfg; /* borrowed, read-only */
    struct listener lst;
    struct tls_listener tls; /* tlsserver.h */
    struct wasync wake;
    struct wtimer drain_timer; /* releases what the drain left after close_timeout */
    struct drain drain;        /* drain.h */
    struct connset cs;         /* conn.h: connections, timeouts, dirty and reap lists */
    struct mailbox mbox;       /* mailbox.h */
    struct worker_stats stats;
    const struct conn_handler *handler; /* borrowed (static) */
    void *handler_state;                /* owned by the handler (e.g. the Lua state) */
    /* handler (script) generation: written by this worker (lhandler.c),
     * read by the admin endpoint on the main thread (/stats, /metrics); the
     * one way to read it from another thread */
    _Atomic uint64_t generation;
    atomic_int stop_requested;
    int draining;
    int joined; /* main thread: pthread_join done */
};

struct server {
    struct rc_config *cfg;              /* borrowed */
    const struct conn_handler *handler; /* borrowed (static) */
    struct users users;                 /* users.h: the user index */
    struct rooms rooms;                 /* room.h: the room registry */
    struct host host;                   /* host.h: how the store and bus reach the workers */
    struct store *store;                /* owned: history (config `store`) */
    struct bus *bus;                    /* owned: delivery (config `bus`) */
    struct worker *workers;
    int nworkers;
    int port;             /* the bound port (resolved when -p 0) */
    unsigned next_worker; /* handoff accept: round-robin cursor (worker 0's thread only) */
    ev_tstamp started;
    atomic_int running;
};

/* Binds the listeners (one socket per worker, SO_REUSEPORT), creates the
 * loops, the store and the bus, and logs "listening on ws://ADDR:PORT/".
 * Returns 0 or -errno. Threads are not started yet. Main thread only. */
int server_init(struct server *s, struct rc_config *cfg, const struct conn_handler *handler);

/* Starts the worker threads. Returns 0 or -errno. */
int server_start(struct server *s);

/* Asks every worker to drain (close 1001) and stop; returns at once. Async-safe
 * enough to call from the main loop's signal watcher. `immediate` skips the drain. */
void server_stop(struct server *s, int immediate);

/* Joins the threads not joined yet and frees everything. */
void server_join(struct server *s);

/* Sum of one counter over all workers. Any thread. */
uint64_t server_stat_sum(const struct server *s, size_t offset);

/* The worker that owns a connection id (the id's tag: idmap.h). */
static inline int worker_of_conn_id(uint64_t id)
{
    return idmap_tag_of(id);
}

/* Asks every worker to reload its handler state (posts MAIL_RELOAD). Any thread. */
void server_reload(struct server *s);

/* The worker running on the calling thread, or NULL (main thread). */
struct worker *worker_current(void);

#endif
