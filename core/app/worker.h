/* worker.h - a worker thread: its own ev_loop, listener socket
 * (SO_REUSEPORT), connections, timeout lists, read buffer and handler state.
 *
 *   main thread                     worker i (thread)
 *   server_start() --spawn------->  ev_run(loop)
 *   server_stop()  --ev_async---->    on_wake: drain, then ev_break
 *
 * Per iteration the worker's ev_prepare (the last thing before the loop
 * sleeps) flushes every dirty connection with one writev each, then frees the
 * connections released during the iteration (Redis beforeSleep).
 *
 * Ownership: struct server owns the workers array; each worker owns its
 * connections. Nothing of a worker is touched by another thread except the
 * atomic stats, the ev_async watchers and the mailboxes.
 */
#ifndef RC_APP_WORKER_H
#define RC_APP_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "heartbeat.h"
#include "list.h"
#include "listener.h"
#include "stats.h"
#include "strmap.h"

#define WORKER_RBUF_SIZE (64 * 1024)
#define RC_MAX_WORKERS 64

struct server;
struct mail;

struct worker {
    int id;
    pthread_t thread;
    struct ev_loop *loop;        /* owned */
    struct server *srv;          /* borrowed */
    const struct rc_config *cfg; /* borrowed, read-only */
    struct listener lst;
    struct listener tls_lst; /* wss:// (tls.c); fd -1 when TLS is off */
    ev_prepare prepare;
    ev_async wake;
    ev_timer drain_timer;
    ev_timer drain_pace;       /* drain.c: closes 1001 in batches over drain_time */
    size_t drain_batch;        /* connections closed per pace tick */
    struct rc_list conns;      /* every live conn (for drain and stop) */
    struct rc_list dirty;      /* conns with output to flush this iteration */
    struct rc_list reap;       /* released conns, freed by the prepare hook */
    struct tlist hs_list;      /* HTTP state, by accept time: handshake timeout */
    struct tlist idle_list;    /* OPEN, by last activity: ping after ping_interval */
    struct tlist pong_list;    /* OPEN, pinged, by ping time: close after pong_timeout */
    struct tlist close_list;   /* CLOSING/LINGER, by close time: hard close after close_timeout */
    uint8_t *rbuf;             /* owned: the one read buffer of this worker */
    struct ws_msg_cfg msg_cfg; /* shared by this worker's receivers */
    uint64_t next_seq;
    struct worker_stats stats;
    const struct conn_handler *handler; /* borrowed (static) */
    void *handler_state;                /* owned by the handler (e.g. the Lua state) */
    /* conn id -> conn without hashing: the id carries the slot (see conn.h).
     * A free slot holds (next free << 1) | 1; a used one the conn pointer. */
    uintptr_t *slots; /* owned */
    uint32_t nslots, slots_cap;
    uint32_t free_slot;        /* head of the free list, UINT32_MAX if none */
    struct strmap local_rooms; /* room name -> struct local_room * (my members) */
    /* rooms owned by this worker: name -> struct room *; read by other
     * workers under rooms_lock */
    struct strmap rooms;
    pthread_mutex_t rooms_lock;
    ev_timer room_gc;
    /* mailbox (mailbox.h) */
    pthread_mutex_t mbox_lock;
    struct mail *mbox_head, *mbox_tail;   /* under mbox_lock */
    struct mail *local_head, *local_tail; /* self-posted, no lock */
    ev_async mbox_async;
    ev_timer tick;
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
    pthread_mutex_t users_lock;
    struct strmap users;   /* user id -> struct user_conns * (users.c), under users_lock */
    struct strmap user_of; /* conn id (8 bytes) -> char * user (owned), under users_lock */
    struct worker *workers;
    int nworkers;
    int port;             /* the bound port (resolved when -p 0) */
    unsigned next_worker; /* handoff accept: round-robin cursor (worker 0's thread only) */
    ev_tstamp started;
    atomic_int running;
};

/* Binds the listeners (one socket per worker, SO_REUSEPORT), creates the
 * loops and logs "listening on ws://ADDR:PORT/". Returns 0 or -errno. Threads
 * are not started yet. Main thread only. */
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

/* The worker that owns a connection id. */
static inline int worker_of_conn_id(uint64_t id)
{
    return (int)(id & 0xff);
}

/* Asks every worker to reload its handler state (posts MAIL_RELOAD). Any thread. */
void server_reload(struct server *s);

/* The worker running on the calling thread, or NULL (main thread). */
struct worker *worker_current(void);

/* The accept-time checks (draining, per-IP cap, accept rate): 1 to go on,
 * or 0 after closing fd. Worker thread. */
int worker_admit(struct worker *w, int fd, const struct sockaddr_storage *peer);

/* Marks c dirty (to be flushed in this iteration's prepare). */
void worker_mark_dirty(struct worker *w, struct conn *c);

#endif
